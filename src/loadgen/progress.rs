//! The live status line of a run: elapsed/total, active VUs, requests per second and errors,
//! redrawn about twice a second on stderr with `\r`, and only when stderr is a terminal (logs
//! and CI output stay clean).
//!
//! Owns one display thread for the length of a run; `finish` stops it and clears the line.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::loadgen::Live;

const REDRAW: Duration = Duration::from_millis(500);

pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing when stderr is a terminal; otherwise does nothing.
    pub fn start(live: Arc<Live>, total: Duration, show_vus: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let flag = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("progress".to_owned())
            .spawn(move || draw(&live, total, show_vus, &flag))
            .ok();
        Progress { stop, thread }
    }

    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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

fn draw(live: &Live, total: Duration, show_vus: bool, stop: &AtomicBool) {
    let start = Instant::now();
    let mut last_requests = 0;
    let mut last = start;
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(REDRAW);
        let now = Instant::now();
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
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{:>5.1}s/{:.0}s]{vus}  {rps:>8.0} req/s  requests {requests}  errors {errors}",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
        );
        let _ = err.flush();
    }
}
