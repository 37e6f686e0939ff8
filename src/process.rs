//! Figures about this process from the kernel and the C allocator: resident memory, the
//! allocator's footprint, CPU time, and the limits on descriptors and threads.
//!
//! Reads `/proc` and calls `getrusage`/`setrlimit`/`mallinfo2`; cheap enough for `/metrics` and
//! once-a-second samplers, not meant for the per-request path.

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
/// Bytes the C allocator holds from the kernel (arenas plus mmapped chunks): the heap's
/// "total" beside the live bytes our counting allocator reports as "used". `None` where glibc's
/// `mallinfo2` is not available.
pub fn allocator_footprint_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
        let info = unsafe { libc::mallinfo2() };
        Some((info.arena + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Gives the calling thread (only it: Linux applies `setpriority` per thread id) the lowest
/// scheduling priority, nice 19. Best effort: a failure leaves the priority as it was.
pub fn lower_current_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority only reads its integer arguments.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

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

/// Raises the soft limit on open descriptors to the hard limit; returns the soft limit now
/// in force (unchanged when raising is refused).
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct we own; RLIMIT_NOFILE is valid.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur as u64;
            }
        }
        limit.rlim_cur as u64
    }
}

/// How many threads this process can have before the kernel refuses one: the smaller of
/// `pid_max`, `threads-max` and a quarter of `vm.max_map_count` (each thread maps its stack
/// and its signal stack, each with a guard page; std aborts the whole process when a new
/// thread cannot map its signal stack). `None` where `/proc` does not say.
pub fn kernel_thread_limit() -> Option<u64> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
    };
    [
        read("/proc/sys/kernel/pid_max"),
        read("/proc/sys/kernel/threads-max"),
        read("/proc/sys/vm/max_map_count").map(|maps| maps / 4),
    ]
    .into_iter()
    .flatten()
    .min()
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
