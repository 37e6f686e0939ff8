//! Offline profile tools behind `analyze`, `compare`, `archive` and `cleanup`: parse our and
//! Bun's Markdown profiles, judge them, compare two, summarize a profiled run for the
//! terminal (`digest`), and manage the `profiles/` directory.
//!
//! Must not import `server`, `handlers` or `kong` (the tools run without a service), nor
//! read env vars. Only `storage` touches the profiles dir, and never outside it; `report::load`
//! reads profile files; everything else is pure and returns strings for `cmd/` to print.

pub mod advice;
pub mod analysis;
pub mod budgets;
pub mod categories;
pub mod comparison;
pub mod completeness;
pub mod digest;
pub mod growth;
pub mod markdown;
pub mod recommend;
pub mod report;
pub mod storage;
pub mod units;

use std::io::{self, Write};

/// Output format of `analyze` and `compare`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Json,
}

impl Format {
    /// `md` (or `markdown`) and `json`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "md" | "markdown" => Some(Format::Markdown),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// `value` as Markdown (through `markdown`) or as pretty JSON with a final newline.
    pub fn render<T: serde::Serialize>(
        self,
        value: &T,
        markdown: impl FnOnce(&T) -> String,
    ) -> String {
        match self {
            Format::Markdown => markdown(value),
            // Our report types are plain data: serializing them cannot fail.
            Format::Json => serde_json::to_string_pretty(value).expect("report serializes") + "\n",
        }
    }
}

/// Writes to stdout, treating a closed pipe (`analyze … | head`) as success: once the reader
/// is gone, later writes are dropped silently.
#[derive(Default)]
pub struct Stdout {
    closed: bool,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout::default()
    }

    pub fn write(&mut self, text: &str) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }

    pub fn line(&mut self, text: &str) -> io::Result<()> {
        self.write(&format!("{text}\n"))
    }
}
