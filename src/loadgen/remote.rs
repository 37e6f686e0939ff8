//! A client of the target's profiling API (`/debug/profiling/{start,stop,reports,report}`,
//! SPEC section 5): start a session before a load, stop it after, and download the session's
//! artifacts.
//!
//! Owns the wire contract only: JSON shapes, the 404 that means "no debug routes here"
//! (production), and atomic downloads (temp file + rename). Deciding what to do about a
//! missing API and how to name the files is the caller's.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::loadgen::client::{self, ClientError, Target};

/// What a session records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cpu,
    Heap,
    Both,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Heap => "heap",
            Kind::Both => "both",
        }
    }
}

#[derive(Debug)]
pub enum RemoteError {
    /// 404 on a `/debug` route: the target runs without debug routes (production).
    NotAvailable,
    Status {
        call: &'static str,
        status: u16,
        body: String,
    },
    Client {
        call: &'static str,
        source: ClientError,
    },
    Json {
        call: &'static str,
        source: serde_json::Error,
    },
    Write {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::NotAvailable => {
                f.write_str("the target has no /debug/profiling routes (404; production?)")
            }
            RemoteError::Status { call, status, body } => {
                write!(f, "{call} answered {status}: {body}")
            }
            RemoteError::Client { call, .. } => write!(f, "{call} failed"),
            RemoteError::Json { call, .. } => write!(f, "{call} answered unreadable JSON"),
            RemoteError::Write { path, .. } => write!(f, "cannot write {}", path.display()),
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteError::Client { source, .. } => Some(source),
            RemoteError::Json { source, .. } => Some(source),
            RemoteError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `POST /debug/profiling/stop`'s answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stopped {
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub artifacts: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry {
    #[serde(default)]
    pub session_id: Option<String>,
    pub filename: String,
}

#[derive(Deserialize)]
struct Reports {
    #[serde(default)]
    reports: Vec<ReportEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    #[serde(default)]
    session_id: Option<String>,
}

pub struct DebugApi {
    target: Target,
}

impl DebugApi {
    pub fn new(target: &Target) -> DebugApi {
        DebugApi {
            target: target.clone(),
        }
    }

    /// Starts a session; returns its id when the answer names one.
    pub fn start(&self, kind: Kind) -> Result<Option<String>, RemoteError> {
        let path = format!("/debug/profiling/start?type={}", kind.as_str());
        let body = self.call("POST", &path, "profiling start")?;
        let started: Started = json("profiling start", &body)?;
        Ok(started.session_id)
    }

    pub fn stop(&self) -> Result<Stopped, RemoteError> {
        let body = self.call("POST", "/debug/profiling/stop", "profiling stop")?;
        json("profiling stop", &body)
    }

    pub fn reports(&self) -> Result<Vec<ReportEntry>, RemoteError> {
        let body = self.call("GET", "/debug/profiling/reports", "profiling reports")?;
        Ok(json::<Reports>("profiling reports", &body)?.reports)
    }

    /// The bare file names of a stopped session: its `artifacts` (paths reduced to names)
    /// plus every listed report of the same session, without duplicates.
    pub fn session_files(&self, stopped: &Stopped) -> Result<Vec<String>, RemoteError> {
        let mut names: Vec<String> = stopped
            .artifacts
            .iter()
            .filter_map(|artifact| file_name(artifact))
            .collect();
        if let Some(session) = &stopped.session_id {
            for report in self.reports()? {
                if report.session_id.as_deref() == Some(session.as_str())
                    && !names.contains(&report.filename)
                {
                    names.push(report.filename);
                }
            }
        }
        Ok(names)
    }

    /// Downloads one artifact to `dest` atomically; returns its size.
    pub fn download(&self, file: &str, dest: &Path) -> Result<u64, RemoteError> {
        let path = format!("/debug/profiling/report?file={}", encode_query(file));
        let body = self.call("GET", &path, "profiling report download")?;
        write_atomically(dest, &body)?;
        Ok(body.len() as u64)
    }

    fn call(&self, method: &str, path: &str, call: &'static str) -> Result<Vec<u8>, RemoteError> {
        let (status, body) = client::fetch(&self.target, method, path, &[])
            .map_err(|source| RemoteError::Client { call, source })?;
        match status {
            200..=299 => Ok(body),
            // A missing report is an ordinary failure; a missing control route means the
            // target has no debug routes at all.
            404 if !path.starts_with("/debug/profiling/report?") => Err(RemoteError::NotAvailable),
            _ => Err(RemoteError::Status {
                call,
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }
}

fn json<T: for<'de> Deserialize<'de>>(call: &'static str, body: &[u8]) -> Result<T, RemoteError> {
    serde_json::from_slice(body).map_err(|source| RemoteError::Json { call, source })
}

/// The last path component of an artifact path or name; `None` for an empty one.
fn file_name(artifact: &str) -> Option<String> {
    let name = artifact
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(artifact)
        .trim();
    (!name.is_empty()).then(|| name.to_owned())
}

fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Writes `bytes` to a temporary sibling, then renames it over `dest`, so a reader never
/// sees a partial file.
pub fn write_atomically(dest: &Path, bytes: &[u8]) -> Result<(), RemoteError> {
    let fail = |source| RemoteError::Write {
        path: dest.to_path_buf(),
        source,
    };
    let mut temp = dest.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    std::fs::write(&temp, bytes).map_err(fail)?;
    std::fs::rename(&temp, dest).map_err(|err| {
        let _ = std::fs::remove_file(&temp);
        fail(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_and_queries() {
        assert_eq!(
            file_name("/tmp/p/CPU.1.2.md").as_deref(),
            Some("CPU.1.2.md")
        );
        assert_eq!(
            file_name("Heap.1.2.pb.gz").as_deref(),
            Some("Heap.1.2.pb.gz")
        );
        assert_eq!(file_name(""), None);
        assert_eq!(encode_query("CPU 1&x.md"), "CPU%201%26x.md");
        let stopped: Stopped = serde_json::from_str(
            r#"{"success":true,"sessionId":"profile-1-ab","duration":"2.0s","artifacts":["a/CPU.1.md"]}"#,
        )
        .unwrap();
        assert_eq!(stopped.session_id.as_deref(), Some("profile-1-ab"));
        assert_eq!(stopped.artifacts, ["a/CPU.1.md"]);
        let none: Stopped = serde_json::from_str(
            r#"{"success":true,"message":"No active profiling session","sessionId":null,"artifacts":[]}"#,
        )
        .unwrap();
        assert_eq!(none.session_id, None);
    }
}
