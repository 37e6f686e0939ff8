//! An OTLP/HTTP sink for the telemetry rows of `bench`: it accepts the exporters' POSTs on
//! 127.0.0.1, reads each body and answers 200 with nothing decoded, so the figures measure
//! what exporting costs the service, not a collector.
//!
//! One thread per connection (the service opens one per signal), each ending when its peer
//! closes or the sink is dropped. Must not parse OTLP: this is a load sink, not a test
//! receiver (`tests/it/telemetry.rs` decodes).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Bigger bodies than any export batch are refused, so a confused peer cannot hold memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub struct Sink {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    acceptor: Option<JoinHandle<()>>,
}

impl Sink {
    pub fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let acceptor = {
            let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
            thread::Builder::new()
                .name("bench-otlp-sink".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
                        let _ = thread::Builder::new()
                            .name("bench-otlp-conn".into())
                            .spawn(move || serve(stream, &stop, &requests));
                    }
                })?
        };
        Ok(Sink {
            addr,
            stop,
            requests,
            acceptor: Some(acceptor),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Export requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocked accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Answers requests on one keep-alive connection until the peer closes, a read times out,
/// or the request is malformed.
fn serve(stream: TcpStream, stop: &AtomicBool, requests: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut length = None;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let Some(length) = length.filter(|n| *n <= MAX_BODY) else {
            return;
        };
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_alive_posts_with_200() {
        let sink = Sink::start().unwrap();
        let mut stream = TcpStream::connect(sink.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for _ in 0..2 {
            stream
                .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap();
            let mut answer = [0u8; 80];
            let n = stream.read(&mut answer).unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
        assert_eq!(sink.requests(), 2);
    }
}
