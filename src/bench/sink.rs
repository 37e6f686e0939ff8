//! An OTLP/HTTP sink for the telemetry rows of `bench`: it accepts the exporters' POSTs on
//! 127.0.0.1 and answers 200 with nothing decoded, so the figures measure what exporting
//! costs the service, not a collector.
//!
//! It is our tiny_http with a body limit big enough for an export batch, and one thread that
//! answers until the sink is dropped. Must not parse OTLP: this is a load sink, not a test
//! receiver (`tests/it/telemetry.rs` decodes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};

/// Bodies up to this are read with the head; an export batch is well under it.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub struct Sink {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    worker: Option<JoinHandle<()>>,
}

impl Sink {
    pub fn start() -> std::io::Result<Sink> {
        let server = tiny_http::Server::new(tiny_http::ServerConfig {
            addr: tiny_http::ConfigListenAddr::from_socket_addrs("127.0.0.1:0")?,
            limits: tiny_http::Limits {
                body_read_max: MAX_BODY,
                ..tiny_http::Limits::default()
            },
            urgent: None,
        })
        .map(Arc::new)
        .map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("the sink has no IP address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let worker = {
            let (server, stop, requests) = (
                Arc::clone(&server),
                Arc::clone(&stop),
                Arc::clone(&requests),
            );
            thread::Builder::new()
                .name("bench-otlp-sink".into())
                .spawn(move || {
                    while let Ok(request) = server.recv() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        requests.fetch_add(1, Ordering::Relaxed);
                        let _ = request.respond(tiny_http::Response::empty(200));
                    }
                })?
        };
        Ok(Sink {
            addr,
            server,
            stop,
            requests,
            worker: Some(worker),
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
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

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
            let mut answer = [0u8; 256];
            let n = stream.read(&mut answer).unwrap();
            assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
        // An export batch is far over the connection layer's default body limit; it is read
        // and the connection stays open.
        let batch = vec![b'x'; 256 * 1024];
        write!(
            stream,
            "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            batch.len()
        )
        .unwrap();
        stream.write_all(&batch).unwrap();
        let mut answer = [0u8; 256];
        let n = stream.read(&mut answer).unwrap();
        let head = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert_eq!(sink.requests(), 3);
    }
}
