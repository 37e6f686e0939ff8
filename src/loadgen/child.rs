//! Starting a server as a child process and learning its address: stdout is read for the
//! `listening on http://ADDR` line (and kept drained so the child never blocks on a full pipe),
//! stderr is kept as a short tail for error messages.
//!
//! Used by `profile` and `bench`. It only spawns and pipes: waiting for readiness, signals and
//! timeouts stay with the caller.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;

/// A spawned child whose address arrives on `address`.
pub struct Announcing {
    pub child: Child,
    pub address: Receiver<String>,
    pub stderr_tail: StderrTail,
}

/// The last lines the child wrote to stderr.
#[derive(Clone)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    pub fn text(&self) -> String {
        let tail = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Spawns `command` with piped stdout and stderr (stdin closed), keeping the last
/// `tail_lines` lines of stderr.
pub fn spawn_announcing(command: &mut Command, tail_lines: usize) -> io::Result<Announcing> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let stderr_tail = StderrTail(Arc::new(Mutex::new(VecDeque::new())));
    if let Some(pipe) = child.stderr.take() {
        let tail = stderr_tail.clone();
        thread::spawn(move || keep_tail(pipe, &tail, tail_lines));
    }
    let (url_tx, url_rx) = mpsc::channel();
    if let Some(pipe) = child.stdout.take() {
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let _ = url_tx.send(line[at + "listening on ".len()..].trim().to_owned());
                }
            }
        });
    }
    Ok(Announcing {
        child,
        address: url_rx,
        stderr_tail,
    })
}

fn keep_tail(pipe: impl Read, tail: &StderrTail, limit: usize) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        let mut tail = tail
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if tail.len() == limit {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}
