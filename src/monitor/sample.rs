//! The request path's side of the SLA monitor: one `Copy` sample per answered request, sent
//! with `try_send` on a bounded channel.
//!
//! This is the only monitor code a worker runs. It must never block and never allocate: a
//! route without a threshold is skipped with one array lookup, a full (or closed) channel drops
//! the sample and bumps `sla_samples_dropped_total`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::SlaThreshold;
use crate::metrics::RouteLabel;

/// Room for bursts while the monitor sleeps between drains (it drains at least every 10 ms).
pub const CHANNEL_CAPACITY: usize = 8192;

/// One answered request. Latency runs from when the worker took the request off tiny_http's
/// queue to when the response was written (queueing before that is not included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub route: RouteLabel,
    /// Saturates at `u32::MAX` (about 71 minutes).
    pub micros: u32,
    pub status: u16,
}

/// The workers' handle: cheap to clone, all methods take `&self`.
#[derive(Clone)]
pub struct SampleSender {
    tx: Sender<Sample>,
    /// Routes with an SLA threshold, indexed by `RouteLabel as usize`.
    tracked: [bool; RouteLabel::ALL.len()],
    dropped: Arc<AtomicU64>,
}

/// The bounded channel between the workers and the monitor thread; the receiver belongs to
/// the monitor alone.
pub fn channel(thresholds: &[SlaThreshold]) -> (SampleSender, Receiver<Sample>) {
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let mut tracked = [false; RouteLabel::ALL.len()];
    for label in RouteLabel::ALL {
        tracked[label as usize] = thresholds.iter().any(|t| t.route == label.as_str());
    }
    let sender = SampleSender {
        tx,
        tracked,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    (sender, rx)
}

impl SampleSender {
    /// Offers one sample; never blocks. Untracked routes cost one array lookup.
    #[inline]
    pub fn record(&self, route: RouteLabel, latency: Duration, status: u16) {
        if !self.tracked[route as usize] {
            return;
        }
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        match self.tx.try_send(Sample {
            route,
            micros,
            status,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Samples lost to a full or closed channel (`sla_samples_dropped_total`).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn is_tracked(&self, route: RouteLabel) -> bool {
        self.tracked[route as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_sla_thresholds;

    #[test]
    fn untracked_routes_are_not_sent_and_a_full_channel_drops() {
        let thresholds = parse_sla_thresholds("/tokens=100:200").unwrap();
        let (sender, rx) = channel(&thresholds);
        assert!(sender.is_tracked(RouteLabel::Tokens));
        assert!(!sender.is_tracked(RouteLabel::Metrics));
        sender.record(RouteLabel::Metrics, Duration::from_millis(5), 200);
        assert!(rx.is_empty());
        for _ in 0..CHANNEL_CAPACITY + 3 {
            sender.record(RouteLabel::Tokens, Duration::from_micros(1500), 201);
        }
        assert_eq!(rx.len(), CHANNEL_CAPACITY);
        assert_eq!(sender.dropped(), 3);
        assert_eq!(
            rx.recv().unwrap(),
            Sample {
                route: RouteLabel::Tokens,
                micros: 1500,
                status: 201
            }
        );
        drop(rx);
        sender.record(RouteLabel::Tokens, Duration::from_secs(u64::MAX / 2), 200);
        assert_eq!(sender.dropped(), 4);
    }
}
