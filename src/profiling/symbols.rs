//! Turns raw instruction addresses into readable frames: demangled function names without the
//! `::h0123abcd` hash, and short locations (`src/jwt.rs:42`, `ureq/src/agent.rs:120`).
//!
//! Owns the address → frames cache shared by CPU and heap reports. Must never run inside the
//! allocator or a signal handler: resolving loads DWARF (tens of MB, allocates freely), so it
//! only runs on the session thread or a debug request, never on the request path.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

/// One source-level frame (an inlined call expands one address into several of these).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FrameInfo {
    /// Demangled, hash-free function name, or `[unknown]`.
    pub function: String,
    /// Shortened source file (`src/jwt.rs`, `ureq/src/agent.rs`), `None` when there is no debug info.
    pub file: Option<String>,
    /// 1-based line, 0 when unknown.
    pub line: u32,
}

impl FrameInfo {
    pub fn unknown() -> FrameInfo {
        FrameInfo {
            function: UNKNOWN.to_owned(),
            file: None,
            line: 0,
        }
    }

    /// `src/jwt.rs:42`, `src/jwt.rs` without a line, or `[unknown]`.
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), 0) => file.clone(),
            (Some(file), line) => format!("{file}:{line}"),
            (None, _) => UNKNOWN.to_owned(),
        }
    }

    /// The file part only, or `[unknown]`.
    pub fn file_or_unknown(&self) -> &str {
        self.file.as_deref().unwrap_or(UNKNOWN)
    }
}

pub const UNKNOWN: &str = "[unknown]";

/// Upper bound on cached addresses; a long-lived process re-resolves rather than growing forever.
const CACHE_LIMIT: usize = 200_000;

/// Address → frames (innermost inlined function first), cached for the process lifetime.
#[derive(Default)]
pub struct Symbolizer {
    cache: HashMap<usize, Arc<[FrameInfo]>>,
}

impl Symbolizer {
    pub fn new() -> Symbolizer {
        Symbolizer::default()
    }

    /// Resolves a return address or interrupted PC. `backtrace::resolve` looks up `ip - 1`, which
    /// lands inside the call instruction for return addresses, so lines name the call site.
    pub fn resolve(&mut self, ip: usize) -> Arc<[FrameInfo]> {
        if let Some(hit) = self.cache.get(&ip) {
            return Arc::clone(hit);
        }
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        let mut frames = Vec::new();
        backtrace::resolve(ip as *mut c_void, |symbol| {
            let function = match symbol.name() {
                Some(name) => strip_hash(&format!("{name:#}")).to_owned(),
                None => UNKNOWN.to_owned(),
            };
            let file = symbol
                .filename()
                .map(|path| shorten_path(&path.to_string_lossy()));
            frames.push(FrameInfo {
                function,
                file,
                line: symbol.lineno().unwrap_or(0),
            });
        });
        if frames.is_empty() {
            frames.push(FrameInfo::unknown());
        }
        let frames: Arc<[FrameInfo]> = frames.into();
        self.cache.insert(ip, Arc::clone(&frames));
        frames
    }
}

/// Drops a trailing legacy-mangling hash (`::h` + 16 hex digits) that survived demangling.
pub fn strip_hash(name: &str) -> &str {
    if let Some(at) = name.rfind("::h") {
        let hash = &name[at + 3..];
        if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return &name[..at];
        }
    }
    name
}

/// Shortens a DWARF file path for reports:
/// - our crate (under this manifest dir, or any `/src/` path outside registries): `src/x.rs`;
/// - crates.io dependencies: `crate/src/x.rs` (version suffix dropped);
/// - the standard library (`/rustc/<hash>/library/core/src/..`): `core/src/..`;
/// - anything else: its last two path segments.
pub fn shorten_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    if let Some(rest) = path.strip_prefix(manifest) {
        return rest.to_owned();
    }
    for marker in ["/.cargo/registry/src/", "/.cargo/git/checkouts/"] {
        if let Some(at) = path.find(marker) {
            // `<index-dir>/<crate>-<version>/src/...`: skip the index dir.
            let after = &path[at + marker.len()..];
            let mut parts = after.splitn(3, '/');
            let _index = parts.next();
            if let (Some(crate_dir), Some(rest)) = (parts.next(), parts.next()) {
                return format!("{}/{rest}", strip_version(crate_dir));
            }
        }
    }
    if let Some(at) = path.find("/library/")
        && path.starts_with("/rustc/")
    {
        return path[at + "/library/".len()..].to_owned();
    }
    if !path.starts_with('/') {
        return path;
    }
    if let Some(at) = path.rfind("/src/") {
        return path[at + 1..].to_owned();
    }
    let segments: Vec<&str> = path.rsplitn(3, '/').collect();
    match segments.as_slice() {
        [file, dir, _] => format!("{dir}/{file}"),
        _ => path.clone(),
    }
}

/// `ureq-3.1.2` → `ureq`; `serde_json-1.0.140` → `serde_json`.
fn strip_version(crate_dir: &str) -> &str {
    match crate_dir.rsplit_once('-') {
        Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => name,
        _ => crate_dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stripped() {
        let cases = [
            (
                "auth_service::jwt::sign::h0123456789abcdef",
                "auth_service::jwt::sign",
            ),
            ("auth_service::jwt::sign", "auth_service::jwt::sign"),
            ("core::fmt::write::hzzzz", "core::fmt::write::hzzzz"),
            ("a::h012", "a::h012"),
        ];
        for (input, expected) in cases {
            assert_eq!(strip_hash(input), expected, "for {input}");
        }
    }

    #[test]
    fn demangled_names_have_no_hash() {
        // The legacy mangling of `auth_service::jwt::sign` with a hash.
        let mangled = "_ZN12auth_service3jwt4sign17h0123456789abcdefE";
        let demangled = format!("{:#}", backtrace::SymbolName::new(mangled.as_bytes()));
        assert_eq!(strip_hash(&demangled), "auth_service::jwt::sign");
    }

    #[test]
    fn paths_are_shortened() {
        let manifest = env!("CARGO_MANIFEST_DIR");
        let cases = [
            (format!("{manifest}/src/jwt.rs"), "src/jwt.rs"),
            (
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/ureq-3.1.2/src/agent.rs"
                    .to_owned(),
                "ureq/src/agent.rs",
            ),
            (
                "/rustc/abc123/library/core/src/fmt/mod.rs".to_owned(),
                "core/src/fmt/mod.rs",
            ),
            ("/work/main/src/handlers/debug.rs".to_owned(), "src/handlers/debug.rs"),
            ("src/ids.rs".to_owned(), "src/ids.rs"),
            ("/usr/include/x86_64/bits/string.h".to_owned(), "bits/string.h"),
        ];
        for (input, expected) in cases {
            assert_eq!(shorten_path(&input), expected, "for {input}");
        }
    }

    #[test]
    fn our_own_function_resolves_with_a_location() {
        let mut symbols = Symbolizer::new();
        let ip = crate::profiling::workload::spin_cpu as *const () as usize;
        // +1 because resolve looks up ip - 1 (it expects return addresses).
        let frames = symbols.resolve(ip + 1);
        assert!(
            frames
                .iter()
                .any(|f| f.function == "auth_service::profiling::workload::spin_cpu"),
            "{frames:?}"
        );
        let frame = frames.last().unwrap();
        assert_eq!(frame.file.as_deref(), Some("src/profiling/workload.rs"));
    }
}
