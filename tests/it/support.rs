//! Test harness: spawn the real binary, find its port from its `listening on` line, talk HTTP,
//! and give each test its own temporary directory. Failures print the command and its output.

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

pub const BIN: &str = env!("CARGO_BIN_EXE_auth-service");

/// A running child process of the binary; killed on drop unless it already exited.
pub struct Proc {
    pub url: String,
    child: Child,
    description: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `auth-service ARGS` with `envs` (on top of a clean, quiet environment) and waits
    /// for the line containing `listening on http://`.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Proc {
        Proc::start_in(None, args, envs)
    }

    pub fn start_in(dir: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        Proc::start_command(command(dir, args, envs), args, envs)
    }

    /// Like `start`, with the soft and hard limit on open descriptors set to `fd_limit`.
    pub fn start_with_fd_limit(args: &[&str], envs: &[(&str, &str)], fd_limit: u64) -> Proc {
        use std::os::unix::process::CommandExt;
        let mut command = command(None, args, envs);
        // SAFETY: setrlimit is async-signal-safe and touches only the child being started.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: fd_limit as libc::rlim_t,
                    rlim_max: fd_limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Proc::start_command(command, args, envs)
    }

    fn start_command(mut command: Command, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let description = format!("{BIN} {} (env {envs:?})", args.join(" "));
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {description}: {err}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (url_tx, url_rx) = mpsc::channel();
        let out_pipe = child.stdout.take().expect("stdout piped");
        let out_buf = Arc::clone(&stdout);
        thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].trim().to_owned();
                    let _ = url_tx.send(url);
                }
                let mut buf = out_buf.lock().unwrap();
                buf.push_str(&line);
                buf.push('\n');
            }
        });
        let err_pipe = child.stderr.take().expect("stderr piped");
        let err_buf = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut reader = BufReader::new(err_pipe);
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        let mut proc = Proc {
            url: String::new(),
            child,
            description,
            stdout,
            stderr,
        };
        match url_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => proc.url = url,
            Err(_) => {
                let status = proc.child.try_wait().ok().flatten();
                let _ = proc.child.kill();
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "{} did not print a listening line (status {status:?})\n--- stdout\n{}\n--- stderr\n{}",
                    proc.description,
                    proc.stdout(),
                    proc.stderr()
                );
            }
        }
        proc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(30))
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the pipe readers catch the last lines.
                thread::sleep(Duration::from_millis(50));
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit in {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.description,
                    self.stdout(),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process printed, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "{}\n--- stdout\n{}\n--- stderr\n{}",
            self.description,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary with `args`, a quiet log, no stdin, and no inherited Kong or log settings, so a
/// developer's shell cannot change what a test sees; `envs` come on top.
fn command(dir: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("KONG_ADMIN_URL")
        .env("LOG_LEVEL", "warn")
        .envs(envs.iter().copied())
        .stdin(Stdio::null());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
}

/// Output of a finished command-line run.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `auth-service ARGS` to completion (no stdin) in `dir` when given.
pub fn run(dir: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let output = command(dir, args, envs)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {BIN} {args:?}: {err}"));
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A plain HTTP response as a test sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {:?}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .allow_non_standard_methods(true)
        .build()
        .into()
}

/// Sends one request; `headers` as name/value pairs. Panics only on transport errors.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    thread_local! {
        static AGENT: ureq::Agent = agent();
    }
    AGENT.with(|agent| {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(body.unwrap_or("").to_owned())
            .expect("valid request");
        let mut response = agent
            .run(request)
            .unwrap_or_else(|err| panic!("{method} {url} failed: {err}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    })
}

/// Writes `request` as raw bytes to the server at `url` and returns what comes back until the
/// server closes (or 10 s pass), for requests a client library would not send.
pub fn raw_exchange(url: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

pub fn post(url: &str) -> Reply {
    request("POST", url, &[], None)
}

/// `serve` with the embedded Kong simulator and the debug routes on (`APP_ENV=test`), writing
/// manual profiling reports into `dir`; `extra` flags come last.
pub fn serve_profiling(dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["serve", "--kong-sim", "--port", "0", "--host", "127.0.0.1"];
    args.extend_from_slice(extra);
    let dir = dir.to_string_lossy().into_owned();
    Proc::start(
        &args,
        &[("APP_ENV", "test"), ("PROFILING_OUTPUT_DIR", &dir)],
    )
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", url, headers, None)
}

/// A fresh directory for one test, under the target directory; removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = Path::new(BIN)
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("it-tmp"))
            .unwrap_or_else(std::env::temp_dir);
        let path = root.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The first consumer every kong-sim seeds, and its credential key.
pub const CONSUMER_ID: &str = "00000000-0000-4000-8000-000000000001";
pub const CONSUMER_NAME: &str = "test-consumer-001";
pub const CONSUMER_KEY: &str = "test-key-001";
pub const AUTHORITY: &str = "https://issuer.test";
pub const AUDIENCE: &str = "test-audience";

/// `auth-service kong-sim --port 0 EXTRA...`.
pub fn kong_sim(extra: &[&str]) -> Proc {
    let mut args = vec!["kong-sim", "--port", "0"];
    args.extend_from_slice(extra);
    Proc::start(&args, &[])
}

/// `auth-service serve` on 127.0.0.1:0 against `kong_url`, with test issuer and audience;
/// `envs` come last and win.
pub fn serve(kong_url: &str, envs: &[(&str, &str)]) -> Proc {
    Proc::start(SERVE_ARGS, &serve_env(kong_url, envs))
}

/// `serve` as above, in a process limited to `fd_limit` open descriptors.
pub fn serve_with_fd_limit(kong_url: &str, envs: &[(&str, &str)], fd_limit: u64) -> Proc {
    Proc::start_with_fd_limit(SERVE_ARGS, &serve_env(kong_url, envs), fd_limit)
}

const SERVE_ARGS: &[&str] = &["serve", "--host", "127.0.0.1", "--port", "0"];

fn serve_env<'a>(kong_url: &'a str, envs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        ("KONG_ADMIN_URL", kong_url),
        ("KONG_JWT_AUTHORITY", AUTHORITY),
        ("KONG_JWT_AUDIENCE", AUDIENCE),
        ("APP_ENV", "test"),
    ];
    all.extend_from_slice(envs);
    all
}

pub fn post_json(url: &str, body: serde_json::Value) -> Reply {
    request(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        Some(&body.to_string()),
    )
}

/// The headers Kong forwards for an authenticated consumer.
pub fn consumer<'a>(id: &'a str, username: &'a str) -> [(&'a str, &'a str); 2] {
    [("X-Consumer-ID", id), ("X-Consumer-Username", username)]
}

/// `(key, secret)` of the consumer's first credential, read from the simulator's Admin API.
pub fn credential_of(sim_url: &str, consumer_id: &str) -> (String, String) {
    let list = get(&format!("{sim_url}/consumers/{consumer_id}/jwt"), &[]).json();
    let first = &list["data"][0];
    (
        first["key"].as_str().expect("key").to_owned(),
        first["secret"].as_str().expect("secret").to_owned(),
    )
}

/// The value of a Prometheus sample of the server at `server_url`, labels included in `name`
/// (`kong_cache_misses_total`, `http_connections_closed_total{reason="idle"}`).
pub fn metric(server_url: &str, name: &str) -> u64 {
    let text = get(&format!("{server_url}/metrics?format=prometheus"), &[]).body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// How many `GET /consumers/{c}/jwt` the simulator has answered.
pub fn kong_credential_gets(sim_url: &str) -> u64 {
    let stats = get(&format!("{sim_url}/_sim/stats"), &[]).json();
    stats["requests"]["GET /consumers/{c}/jwt"]
        .as_u64()
        .unwrap_or(0)
}

// Profile-tree helpers shared by the tool and workflow tests.

pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub fn ok(run: Run) -> Run {
    assert_eq!(run.code(), 0, "{run:?}");
    run
}

pub fn profiles_tree(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let profiles = dir.join("profiles");
    for sub in ["current", "auto", "archive", "baselines", "manual"] {
        fs::create_dir_all(profiles.join(sub)).unwrap();
        fs::write(profiles.join(sub).join(".gitkeep"), "").unwrap();
    }
    (dir, profiles)
}

/// Writes `size` bytes at `path` with a modification time `age_seconds` ago.
pub fn touch(path: &Path, size: usize, age_seconds: u64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, vec![b'x'; size]).unwrap();
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(age_seconds))
        .unwrap();
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
