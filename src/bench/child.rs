//! A server under test: `auth-service serve --host 127.0.0.1 --port 0` as a child process, and
//! what the kernel says about it (`/proc/PID/status` RSS and VmHWM, `/proc/PID/stat` CPU time).
//!
//! Owns the child's lifetime: `stop` sends SIGTERM and waits, and `Drop` kills a child that is
//! still running, so no server outlives the bench. Must not talk to the server beyond the
//! readiness probe; the engine drives the load.

use std::fmt;
use std::path::Path;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use crate::loadgen::child::{Announcing, StderrTail, spawn_announcing};
use crate::loadgen::client::{self, Target};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);
const STDERR_TAIL_LINES: usize = 20;

#[derive(Debug)]
pub enum ChildError {
    Spawn(std::io::Error),
    Exited { status: String, tail: String },
    NotReady { what: &'static str, tail: String },
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::Spawn(_) => f.write_str("cannot start the server"),
            ChildError::Exited { status, tail } => {
                write!(
                    f,
                    "the server exited with {status}; its last output:\n{tail}"
                )
            }
            ChildError::NotReady { what, tail } => {
                write!(f, "the server {what} within 20s; its last output:\n{tail}")
            }
        }
    }
}

impl std::error::Error for ChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChildError::Spawn(err) => Some(err),
            _ => None,
        }
    }
}

pub struct Server {
    child: Child,
    pub url: String,
    pub target: Target,
    /// From spawn to the first `/health/ready` 200.
    pub start_to_ready: Duration,
    tail: StderrTail,
}

impl Server {
    /// Spawns the binary with `env` on top of this process's environment and waits until
    /// `/health/ready` answers 200, polling every millisecond (the cold-start figure).
    pub fn start(binary: &Path, env: &[(&str, String)]) -> Result<Server, ChildError> {
        let began = Instant::now();
        let mut command = Command::new(binary);
        command.args(["serve", "--host", "127.0.0.1", "--port", "0"]);
        for (name, value) in env {
            command.env(name, value);
        }
        let Announcing {
            mut child,
            address: url_rx,
            stderr_tail: tail,
        } = spawn_announcing(&mut command, STDERR_TAIL_LINES).map_err(ChildError::Spawn)?;
        let deadline = began + START_TIMEOUT;
        let url = loop {
            match url_rx.recv_timeout(Duration::from_millis(1)) {
                Ok(url) => break url,
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        thread::sleep(Duration::from_millis(50));
                        return Err(ChildError::Exited {
                            status: status.to_string(),
                            tail: tail.text(),
                        });
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(ChildError::NotReady {
                            what: "printed no address",
                            tail: tail.text(),
                        });
                    }
                }
            }
        };
        let target = match Target::parse(&url) {
            Ok(target) => target,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::NotReady {
                    what: "printed an unusable address",
                    tail: url,
                });
            }
        };
        let mut server = Server {
            child,
            url,
            target,
            start_to_ready: Duration::ZERO,
            tail,
        };
        loop {
            if let Ok((200, _)) = client::fetch(&server.target, "GET", "/health/ready", &[]) {
                server.start_to_ready = began.elapsed();
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(ChildError::Exited {
                    status: status.to_string(),
                    tail: server.tail.text(),
                });
            }
            if Instant::now() > deadline {
                return Err(ChildError::NotReady {
                    what: "was not ready (/health/ready)",
                    tail: server.tail.text(),
                });
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        status_kib(self.pid(), "VmRSS:").map(|kib| kib * 1024)
    }

    /// Peak resident memory (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        status_kib(self.pid(), "VmHWM:").map(|kib| kib * 1024)
    }

    /// User plus system CPU seconds of the child so far (clock ticks, so 10 ms resolution).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        cpu_seconds_of_stat(&stat, clock_ticks())
    }

    /// SIGTERM, then wait for the exit; a child that does not exit in time is killed.
    pub fn stop(mut self) -> Result<(), ChildError> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(ChildError::Exited {
                        status: status.to_string(),
                        tail: self.tail.text(),
                    });
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(ChildError::NotReady {
                        what: "did not exit after SIGTERM",
                        tail: self.tail.text(),
                    });
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, field)
}

/// The `kB` figure of one `/proc/PID/status` line, e.g. `VmRSS:     8120 kB`.
pub fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in seconds. The command name
/// in field 2 may hold spaces and parentheses, so the fields are counted after the last `)`.
pub fn cpu_seconds_of_stat(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so utime (14) is index 11.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; a non-positive answer means "unknown".
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields() {
        let status = "Name:\tauth-service\nVmHWM:\t   21480 kB\nVmRSS:\t    9120 kB\n";
        assert_eq!(status_field_kib(status, "VmRSS:"), Some(9120));
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(21480));
        assert_eq!(status_field_kib(status, "VmSwap:"), None);
        let stat = "4242 (auth (x) svc) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_seconds_of_stat(stat, 100.0), Some(3.0));
        assert_eq!(cpu_seconds_of_stat("garbage", 100.0), None);
    }
}
