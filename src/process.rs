//! Figures about this process from the kernel: resident memory and CPU time.
//!
//! Reads `/proc/self` and calls `getrusage`; cheap enough for `/metrics` and once-a-second
//! samplers, not meant for the per-request path.

/// Resident set size in bytes (0 where `/proc` is unavailable).
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

/// Peak resident set size (`VmHWM`) in bytes.
pub fn peak_resident_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; a negative answer means "unknown".
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// User plus system CPU seconds consumed by the whole process so far.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_plausible() {
        assert!(resident_bytes() > 0);
        assert!(peak_resident_bytes() >= resident_bytes() / 2);
        assert!(cpu_seconds() >= 0.0);
    }
}
