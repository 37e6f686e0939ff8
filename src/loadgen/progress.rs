//! The live status line of a run: elapsed/total, active VUs, requests per second and errors,
//! on stderr. On a terminal it is redrawn about twice a second in place (`\r`); otherwise
//! (CI logs, a pipe) one plain line is printed every 5 s, so a long run still shows it is alive
//! without flooding the log.
//!
//! Owns one display thread for the length of a run; `finish` stops it and clears the line.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::loadgen::Live;

const REDRAW: Duration = Duration::from_millis(500);
/// How often a plain progress line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    terminal: bool,
}

impl Progress {
    /// Starts the display: redrawn in place on a terminal, plain lines every 5 s otherwise.
    pub fn start(live: Arc<Live>, total: Duration, show_vus: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("progress".to_owned())
            .spawn(move || draw(&live, total, show_vus, terminal, &flag))
            .ok();
        Progress {
            stop,
            thread,
            terminal,
        }
    }

    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            if !self.terminal {
                return;
            }
            // Erase the status line so the summary starts on a clean line.
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn draw(live: &Live, total: Duration, show_vus: bool, terminal: bool, stop: &AtomicBool) {
    let start = Instant::now();
    let every = if terminal { REDRAW } else { PLAIN_EVERY };
    let mut last_requests = 0;
    let mut last = start;
    let mut next = start + every;
    while !stop.load(Ordering::Relaxed) {
        // Short sleeps so `finish` never waits a whole plain interval for this thread.
        thread::sleep(REDRAW.min(next.saturating_duration_since(Instant::now())));
        let now = Instant::now();
        if now < next {
            continue;
        }
        next += every;
        let requests = live.requests.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let rps = (requests - last_requests) as f64 / (now - last).as_secs_f64().max(1e-3);
        last_requests = requests;
        last = now;
        let elapsed = start.elapsed().min(total);
        let vus = if show_vus {
            format!("  vus {:>4}", live.active.load(Ordering::Relaxed))
        } else {
            String::new()
        };
        let line = format!(
            "[{:>5.1}s/{:.0}s]{vus}  {rps:>8.0} req/s  requests {requests}  errors {errors}",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
        );
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "progress {line}")
        };
        let _ = err.flush();
    }
}
