//! Flamegraph SVG (`CPU.<ts>.<pid>.svg`) through pprof-rs's re-export of inferno.
//!
//! We fold the stacks ourselves instead of calling `Report::flamegraph`, which starts every
//! stack with the thread name (one tower per worker) and `unwrap()`s inferno's errors. Here all
//! threads merge into one tree and errors come back as `ProfilingError`. Pure; no I/O.

use std::collections::HashMap;

use crate::profiling::ProfilingError;
use crate::profiling::cpu::CpuProfile;

/// `root;caller;leaf count` lines, one per distinct stack, sorted for stable output.
pub fn folded_lines(profile: &CpuProfile) -> Vec<String> {
    let mut folded: HashMap<String, u64> = HashMap::new();
    for stack in &profile.stacks {
        let path: Vec<String> = if stack.frames.is_empty() {
            vec![crate::profiling::symbols::UNKNOWN.to_owned()]
        } else {
            // `;` separates frames in the folded format; it cannot appear inside a name.
            stack
                .frames
                .iter()
                .rev()
                .map(|f| f.function.replace(';', ":"))
                .collect()
        };
        *folded.entry(path.join(";")).or_default() += stack.count;
    }
    let mut lines: Vec<String> = folded
        .into_iter()
        .map(|(path, count)| format!("{path} {count}"))
        .collect();
    lines.sort();
    lines
}

pub fn render_svg(profile: &CpuProfile, title: &str) -> Result<Vec<u8>, ProfilingError> {
    let lines = folded_lines(profile);
    let mut options = pprof::flamegraph::Options::default();
    options.title = title.to_owned();
    options.count_name = "samples".to_owned();
    let mut svg = Vec::new();
    if lines.is_empty() {
        // inferno refuses empty input; an explicit empty picture is more useful than an error.
        svg.extend_from_slice(
            b"<?xml version=\"1.0\" standalone=\"no\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"60\"><text x=\"10\" y=\"30\">No samples collected</text></svg>\n",
        );
        return Ok(svg);
    }
    pprof::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .map_err(|err| ProfilingError::Flamegraph(err.to_string()))?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiling::cpu::CpuStack;
    use crate::profiling::symbols::FrameInfo;
    use std::time::{Duration, SystemTime};

    #[test]
    fn stacks_fold_root_first_and_render() {
        let f = |name: &str| FrameInfo {
            function: name.into(),
            file: None,
            line: 0,
        };
        let stack = |thread_id, count| CpuStack {
            frames: vec![f("leaf"), f("mid"), f("root")],
            thread_name: format!("t{thread_id}"),
            thread_id,
            count,
        };
        let profile = CpuProfile {
            stacks: vec![stack(1, 3), stack(2, 4)],
            frequency: 99,
            started: SystemTime::now(),
            duration: Duration::from_secs(1),
            cpu_seconds: 0.07,
            blocklist: vec![],
        };
        assert_eq!(folded_lines(&profile), ["root;mid;leaf 7"]);
        let svg = String::from_utf8(render_svg(&profile, "CPU").unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("leaf"), "{svg}");
    }
}
