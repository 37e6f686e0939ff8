//! Attacks on the connection layer, each held against the real binary on loopback while the
//! service must keep answering: leaked HTTP/2 connections, idle and slow clients, a client
//! that stops reading, a declared body that never comes, request smuggling, too many
//! connections and descriptor exhaustion. Bounds are generous: they tell "answers" from
//! "hangs", never speed.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use crate::support::{self, CONSUMER_ID, CONSUMER_NAME, Proc};

/// How long a probe may take and still count as an answer.
const ANSWER: Duration = Duration::from_secs(1);

fn addr(server: &Proc) -> &str {
    server.url.trim_start_matches("http://")
}

/// `(threads, open descriptors)` of the server process.
fn counts(server: &Proc) -> (usize, usize) {
    let dir = |name: &str| {
        std::fs::read_dir(format!("/proc/{}/{name}", server.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    (dir("task"), dir("fd"))
}

/// Waits until both counts are back within a few of `baseline`.
fn back_to_baseline(server: &Proc, baseline: (usize, usize)) {
    // Connection threads beyond the pool's four idle ones end 5 s after their last connection.
    support::eventually(
        Duration::from_secs(15),
        "threads and descriptors back near their baseline",
        || {
            let (threads, fds) = counts(server);
            (threads <= baseline.0 + 6 && fds <= baseline.1 + 4).then_some(())
        },
    );
}

/// The status of one request on a fresh connection, or `None` when no answer came within
/// `ANSWER`.
fn probe(server: &Proc, path: &str, headers: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr(server)).ok()?;
    stream.set_read_timeout(Some(ANSWER)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while started.elapsed() < ANSWER {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

const CONSUMER_HEADERS: &str = "X-Consumer-ID: 00000000-0000-4000-8000-000000000001\r\nX-Consumer-Username: test-consumer-001\r\n";

/// `/health/live` and a cached `/tokens` both answer 200.
fn assert_serving(server: &Proc, during: &str) {
    assert_eq!(
        probe(server, "/health/live", ""),
        Some(200),
        "/health/live during {during}\n{}",
        server.output()
    );
    assert_eq!(
        probe(server, "/tokens", CONSUMER_HEADERS),
        Some(200),
        "cached /tokens during {during}\n{}",
        server.output()
    );
}

/// A Kong simulator and the service with `envs`, its first consumer already cached.
fn stack(envs: &[(&str, &str)]) -> (Proc, Proc) {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, envs);
    let warm = support::get(
        &format!("{}/tokens", server.url),
        &support::consumer(CONSUMER_ID, CONSUMER_NAME),
    );
    assert_eq!(warm.status, 200, "{warm:?}");
    (sim, server)
}

/// Everything the server sends until it closes, within `limit`; `None` if it did not close.
fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut chunk) {
            Ok(0) => return Some(String::from_utf8_lossy(&answer).into_owned()),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(String::from_utf8_lossy(&answer).into_owned()),
        }
    }
    None
}

fn metric(server: &Proc, name: &str) -> u64 {
    support::metric(&server.url, name)
}

#[test]
fn http2_prefaces_and_other_versions_get_505_and_leak_nothing() {
    let (_sim, server) = stack(&[]);
    assert_serving(&server, "warm-up");
    let baseline = counts(&server);
    for n in 0..600 {
        let mut stream = TcpStream::connect(addr(&server)).expect("connect");
        let hello: &[u8] = if n % 2 == 0 {
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        } else {
            b"GET / HTTP/2.0\r\n\r\n"
        };
        stream.write_all(hello).unwrap();
        if n % 100 == 0 {
            let answer = read_to_close(&mut stream, Duration::from_secs(5)).expect("closed");
            assert!(answer.starts_with("HTTP/1.1 505 "), "{answer:?}");
        }
    }
    assert_serving(&server, "600 HTTP/2 connections");
    back_to_baseline(&server, baseline);
    let mut old = TcpStream::connect(addr(&server)).unwrap();
    old.write_all(b"GET /health/live HTTP/0.9\r\n\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut old, Duration::from_secs(5)).as_deref(),
        Some(""),
        "HTTP/0.9 is closed without an HTTP/0.9 status line"
    );
}

#[test]
fn idle_and_half_sent_connections_are_closed_at_their_deadlines() {
    let (_sim, server) = stack(&[
        ("HTTP_KEEPALIVE_TIMEOUT_MS", "1500"),
        ("HTTP_HEADER_TIMEOUT_MS", "1000"),
    ]);
    assert_serving(&server, "warm-up");
    let baseline = counts(&server);
    // 100 idle connections, 100 that stop in the middle of their head.
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr(&server)).unwrap())
        .collect();
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = TcpStream::connect(addr(&server)).unwrap();
            stream
                .write_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .unwrap();
            stream
        })
        .collect();
    assert_serving(&server, "200 held connections");
    for stream in &mut slow {
        let answer = read_to_close(stream, Duration::from_secs(10))
            .expect("a half-sent head is cut at the header deadline");
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    }
    for stream in &mut idle {
        let answer =
            read_to_close(stream, Duration::from_secs(10)).expect("idle connection closed");
        assert_eq!(answer, "", "an idle connection is closed without an answer");
    }
    drop((idle, slow));
    back_to_baseline(&server, baseline);
    assert!(metric(&server, "http_connections_closed_total{reason=\"idle\"}") >= 100);
    assert!(
        metric(
            &server,
            "http_connections_closed_total{reason=\"header_timeout\"}"
        ) >= 100
    );
}

/// A connection whose receive buffer is small and that never reads what it is sent.
fn non_reading_client(server: &Proc) -> TcpStream {
    let target: std::net::SocketAddr = addr(server).parse().unwrap();
    let std::net::SocketAddr::V4(target) = target else {
        panic!("the test server listens on IPv4 loopback")
    };
    // SAFETY: plain socket calls on a descriptor this function creates and then hands to
    // TcpStream, which owns and closes it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: target.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*target.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let connected = libc::connect(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(connected, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn a_client_that_stops_reading_holds_up_no_one() {
    let (_sim, server) = stack(&[("HTTP_WRITE_TIMEOUT_MS", "1500")]);
    let baseline = counts(&server);
    let mut stuck = non_reading_client(&server);
    stuck
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = format!("GET /tokens HTTP/1.1\r\nHost: t\r\n{CONSUMER_HEADERS}\r\n").repeat(100);
    // Pipeline requests until the server stops taking them (it waits on the unread answers).
    let mut sent = 0;
    while sent < 200 && stuck.write_all(request.as_bytes()).is_ok() {
        sent += 1;
    }
    for _ in 0..3 {
        assert_serving(&server, "a pipelining client that never reads");
    }
    support::eventually(
        Duration::from_secs(10),
        "the server to give up on the client that does not read",
        || {
            (metric(
                &server,
                "http_connections_closed_total{reason=\"write_timeout\"}",
            ) >= 1)
                .then_some(())
        },
    );
    drop(stuck);
    assert_serving(&server, "after the write timeout");
    back_to_baseline(&server, baseline);
}

#[test]
fn a_declared_body_that_never_arrives_holds_up_no_one() {
    let (_sim, server) = stack(&[("HTTP_BODY_TIMEOUT_MS", "1000")]);
    let baseline = counts(&server);
    // Larger than the few KiB read with the head: answered at once, then the connection ends.
    let mut large: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut stream = TcpStream::connect(addr(&server)).unwrap();
            stream
                .write_all(
                    b"POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n",
                )
                .unwrap();
            stream
        })
        .collect();
    // Small enough to be read with the head: the connection thread waits for it, no worker.
    let mut small: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut stream = TcpStream::connect(addr(&server)).unwrap();
            stream
                .write_all(b"POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n{\"partial\":")
                .unwrap();
            stream
        })
        .collect();
    assert_serving(&server, "32 connections owing their bodies");
    for stream in &mut large {
        let answer = read_to_close(stream, Duration::from_secs(10)).expect("closed");
        assert!(answer.starts_with("HTTP/1.1 "), "answered: {answer:?}");
        assert!(answer.contains("Connection: close"), "{answer:?}");
    }
    for stream in &mut small {
        let answer = read_to_close(stream, Duration::from_secs(10)).expect("closed");
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    }
    drop((large, small));
    back_to_baseline(&server, baseline);
    assert!(
        metric(
            &server,
            "http_connections_closed_total{reason=\"body_timeout\"}"
        ) >= 16
    );
}

#[test]
fn ambiguous_framing_is_refused_and_never_read_as_a_second_request() {
    let (sim, server) = stack(&[]);
    let cases = [
        "POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        "POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        "POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        "POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /health/live HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET /health/live HTTP/1.1\r\n\r\n",
        "GET /health/live HTTP/1.1\r\nHost: t\r\nX-A: b\nX-Smuggled: c\r\n\r\n",
    ];
    for case in cases {
        let mut stream = TcpStream::connect(addr(&server)).unwrap();
        // A second, valid request right behind: it must never be answered.
        let smuggled = "GET /tokens HTTP/1.1\r\nHost: t\r\n\r\n";
        stream
            .write_all(format!("{case}{smuggled}").as_bytes())
            .unwrap();
        let answer = read_to_close(&mut stream, Duration::from_secs(5)).expect("closed");
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{case:?} -> {answer:?}"
        );
        assert_eq!(
            answer.matches("HTTP/1.1 ").count(),
            1,
            "{case:?}: the bytes after a refused head are not a request: {answer:?}"
        );
    }
    assert!(
        metric(
            &server,
            "http_connections_closed_total{reason=\"malformed\"}"
        ) >= cases.len() as u64
    );
    // A chunked body done right is still served.
    let mut stream = TcpStream::connect(addr(&server)).unwrap();
    stream
        .write_all(b"POST /health/live HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\n{}  \r\n0\r\n\r\n")
        .unwrap();
    let answer = read_to_close(&mut stream, Duration::from_secs(5)).expect("closed");
    assert!(answer.starts_with("HTTP/1.1 "), "{answer:?}");
    assert!(!answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    drop(sim);
}

#[test]
fn past_max_connections_new_connections_get_503_and_service_resumes() {
    let (_sim, server) = stack(&[("MAX_CONNECTIONS", "40")]);
    let held: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(addr(&server)).unwrap())
        .collect();
    // Sequencing only: the accept loop has counted the held connections.
    support::eventually(Duration::from_secs(5), "40 connections open", || {
        let mut extra = TcpStream::connect(addr(&server)).ok()?;
        let answer = read_to_close(&mut extra, Duration::from_secs(2))?;
        answer.starts_with("HTTP/1.1 503 ").then_some(())
    });
    let mut extra = TcpStream::connect(addr(&server)).unwrap();
    let answer = read_to_close(&mut extra, Duration::from_secs(2)).expect("closed at once");
    assert!(answer.contains("Retry-After: 1"), "{answer:?}");
    drop(held);
    support::eventually(
        Duration::from_secs(5),
        "service after the held connections",
        || (probe(&server, "/health/live", "") == Some(200)).then_some(()),
    );
    assert_serving(&server, "after the cap");
    assert!(
        metric(
            &server,
            "http_connections_closed_total{reason=\"over_capacity\"}"
        ) >= 2
    );
    assert_eq!(metric(&server, "http_connections_max"), 40);
}

#[test]
fn the_listener_survives_running_out_of_descriptors() {
    let sim = support::kong_sim(&[]);
    // A hard limit of 96 descriptors: the cap (at least 1024) cannot protect it, so accept
    // runs into EMFILE and must back off instead of ending.
    let server = support::serve_with_fd_limit(&sim.url, &[], 96);
    let before = metric(&server, "http_accept_errors_total");
    let held: Vec<TcpStream> = (0..110)
        .filter_map(|_| {
            TcpStream::connect_timeout(&addr(&server).parse().unwrap(), Duration::from_secs(1)).ok()
        })
        .collect();
    // Every descriptor in use with connections still waiting in the backlog: the next accept
    // fails with EMFILE. (Waiting for fewer let a slow accept loop see the clients close first.)
    support::eventually(Duration::from_secs(10), "every descriptor in use", || {
        let (_, fds) = counts(&server);
        (fds >= 96).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(held);
    support::eventually(
        Duration::from_secs(10),
        "the listener to accept again",
        || (probe(&server, "/health/live", "") == Some(200)).then_some(()),
    );
    assert!(
        metric(&server, "http_accept_errors_total") > before,
        "the EMFILE failures are counted"
    );
    assert_eq!(probe(&server, "/health/live", ""), Some(200));
}
