//! k6-style stages: how many virtual users should be active at each moment of a run, the
//! built-in test profiles, their scaling by `--vus`/`--duration`, and duration parsing.
//!
//! Pure: no I/O, no clock; callers pass the elapsed time in.

use std::time::Duration;

/// Ramp linearly from the previous target to `target` over `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: u32,
}

/// A whole run: VUs at time zero, then the stages in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Stages {
    pub start: u32,
    pub stages: Vec<Stage>,
}

const fn stage(seconds: u64, target: u32) -> Stage {
    Stage {
        duration: Duration::from_secs(seconds),
        target,
    }
}

impl Stages {
    /// A constant number of VUs for `duration`.
    pub fn constant(vus: u32, duration: Duration) -> Stages {
        Stages {
            start: vus,
            stages: vec![Stage {
                duration,
                target: vus,
            }],
        }
    }

    /// `load`: ramp to 50 over 30 s, hold 60 s, ramp down over 15 s.
    pub fn load() -> Stages {
        Stages {
            start: 0,
            stages: vec![stage(30, 50), stage(60, 50), stage(15, 0)],
        }
    }

    /// `stress`: steps of 50, 100 and 200 VUs (20 s ramp, 40 s hold each), then down.
    pub fn stress() -> Stages {
        Stages {
            start: 0,
            stages: vec![
                stage(20, 50),
                stage(40, 50),
                stage(20, 100),
                stage(40, 100),
                stage(20, 200),
                stage(40, 200),
                stage(20, 0),
            ],
        }
    }

    /// `spike`: 10 VUs, a jump to 200 held for 20 s, back to 10.
    pub fn spike() -> Stages {
        Stages {
            start: 10,
            stages: vec![
                stage(10, 10),
                stage(1, 200),
                stage(20, 200),
                stage(1, 10),
                stage(15, 10),
            ],
        }
    }

    /// `soak`: 30 VUs for 10 minutes.
    pub fn soak() -> Stages {
        Stages::constant(30, Duration::from_secs(600))
    }

    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    pub fn peak(&self) -> u32 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, u32::max)
    }

    /// Active VUs at `elapsed`: linear within a stage, rounded to the nearest whole VU; the
    /// last target after the end.
    pub fn vus_at(&self, elapsed: Duration) -> u32 {
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for stage in &self.stages {
            let end = begin + stage.duration;
            if elapsed < end {
                let into = (elapsed - begin).as_secs_f64() / stage.duration.as_secs_f64();
                let value = f64::from(from) + (f64::from(stage.target) - f64::from(from)) * into;
                return value.round() as u32;
            }
            from = stage.target;
            begin = end;
        }
        from
    }

    /// The same shape with the peak at `vus`: every target is scaled by `vus / peak`, and a
    /// non-zero target stays at least 1.
    pub fn with_peak(&self, vus: u32) -> Stages {
        let peak = self.peak().max(1);
        let scale = |n: u32| {
            if n == 0 {
                0
            } else {
                ((u64::from(n) * u64::from(vus) + u64::from(peak) / 2) / u64::from(peak)).max(1)
                    as u32
            }
        };
        Stages {
            start: scale(self.start),
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    duration: s.duration,
                    target: scale(s.target),
                })
                .collect(),
        }
    }

    /// The same shape lasting `total`: every stage keeps its share of the run.
    pub fn with_total(&self, total: Duration) -> Stages {
        let old = self.total().as_secs_f64();
        if old == 0.0 {
            return self.clone();
        }
        let factor = total.as_secs_f64() / old;
        Stages {
            start: self.start,
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    duration: s.duration.mul_f64(factor),
                    target: s.target,
                })
                .collect(),
        }
    }
}

/// `30s`, `2m`, `1h`, `1m30s`, `500ms` or plain seconds (`45`, `2.5`); at least 1 ms.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.001).then(|| Duration::from_secs_f64(seconds));
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&at| at > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.001).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn interpolation_follows_stages() {
        let load = Stages::load();
        let check =
            |at: f64, expected: u32| assert_eq!(load.vus_at(secs(at)), expected, "at {at}s");
        check(0.0, 0);
        check(15.0, 25);
        check(29.9, 50);
        check(30.0, 50);
        check(89.0, 50);
        check(97.5, 25);
        check(105.0, 0);
        check(1000.0, 0);
        let spike = Stages::spike();
        assert_eq!(spike.vus_at(secs(5.0)), 10);
        assert_eq!(spike.vus_at(secs(10.5)), 105);
        assert_eq!(spike.vus_at(secs(20.0)), 200);
        assert_eq!(spike.vus_at(secs(40.0)), 10);
        assert_eq!(Stages::constant(3, secs(2.0)).vus_at(secs(1.0)), 3);
    }

    #[test]
    fn scaling_keeps_proportions() {
        let load = Stages::load().with_total(secs(21.0));
        assert_eq!(load.total(), secs(21.0));
        let durations: Vec<f64> = load
            .stages
            .iter()
            .map(|s| s.duration.as_secs_f64())
            .collect();
        for (got, expected) in durations.iter().zip([6.0, 12.0, 3.0]) {
            assert!((got - expected).abs() < 1e-9, "{durations:?}");
        }
        let stress = Stages::stress().with_peak(20);
        assert_eq!(stress.peak(), 20);
        let targets: Vec<u32> = stress.stages.iter().map(|s| s.target).collect();
        assert_eq!(targets, [5, 5, 10, 10, 20, 20, 0]);
        let tiny = Stages::spike().with_peak(2);
        assert_eq!(
            (tiny.start, tiny.peak()),
            (1, 2),
            "non-zero targets stay >= 1"
        );
        assert_eq!(Stages::soak().total(), secs(600.0));
    }

    #[test]
    fn durations_parse() {
        let check = |text: &str, expected: Option<f64>| {
            assert_eq!(parse_duration(text), expected.map(secs), "{text:?}");
        };
        check("30s", Some(30.0));
        check("2m", Some(120.0));
        check("1h", Some(3600.0));
        check("1m30s", Some(90.0));
        check("500ms", Some(0.5));
        check("45", Some(45.0));
        check(" 2.5 ", Some(2.5));
        check("0", None);
        check("0s", None);
        check("-3", None);
        check("", None);
        check("10x", None);
        check("s", None);
        check("1.2.3s", None);
        check("NaN", None);
    }
}
