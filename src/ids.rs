//! Random identifiers: UUID v4 (request ids, `jti`, session ids) and Kong-style credential
//! strings.
//!
//! Randomness comes from the OS (`getrandom`) in per-thread batches, so an id costs no syscall
//! on the hot path. Nothing here may block or log.

use std::cell::RefCell;

const BATCH: usize = 512;

struct Pool {
    bytes: [u8; BATCH],
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; BATCH], used: BATCH }) };
}

/// Fills `out` with OS randomness, refilling this thread's batch when it runs dry.
pub fn fill_random(out: &mut [u8]) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let mut written = 0;
        while written < out.len() {
            if pool.used == BATCH {
                // The OS generator failing is unrecoverable for an identity service: ids would
                // repeat. Every supported platform has getrandom, so this is a real invariant.
                getrandom::fill(&mut pool.bytes).expect("os random source unavailable");
                pool.used = 0;
            }
            let at = pool.used;
            let take = (out.len() - written).min(BATCH - at);
            out[written..written + take].copy_from_slice(&pool.bytes[at..at + take]);
            // Spent bytes are wiped so a later reader of this thread's pool cannot recover
            // them. Only the bytes just taken: the rest of the spent prefix is zero already,
            // and wiping all of it cost up to 512 bytes of memset per id.
            pool.bytes[at..at + take].fill(0);
            pool.used += take;
            written += take;
        }
    });
}

/// A random UUID v4 as 36 lower-case characters, written into a stack buffer.
pub fn uuid_v4() -> UuidText {
    let mut raw = [0u8; 16];
    fill_random(&mut raw);
    raw[6] = (raw[6] & 0x0f) | 0x40;
    raw[8] = (raw[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 36];
    let mut out = 0;
    for (index, byte) in raw.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text[out] = b'-';
            out += 1;
        }
        text[out] = HEX[usize::from(byte >> 4)];
        text[out + 1] = HEX[usize::from(byte & 0x0f)];
        out += 2;
    }
    UuidText(text)
}

/// A UUID rendered as ASCII; `as_str` borrows it without allocating.
#[derive(Clone, Copy)]
pub struct UuidText([u8; 36]);

impl UuidText {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and dashes are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for UuidText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `count` random alphanumeric characters, the shape of Kong's generated keys and secrets.
pub fn alphanumeric(count: usize) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(count);
    let mut byte = [0u8; 1];
    while out.len() < count {
        fill_random(&mut byte);
        // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
        if byte[0] < 248 {
            out.push(char::from(ALPHABET[usize::from(byte[0] % 62)]));
        }
    }
    out
}

/// Whether `text` is an 8-4-4-4-12 hex UUID (any case), Kong's rule for "this is an id".
pub fn looks_like_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let first = uuid_v4();
        let second = uuid_v4();
        assert!(looks_like_uuid(first.as_str()));
        assert_eq!(&first.as_str()[14..15], "4");
        assert!(matches!(&first.as_str()[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(first.as_str(), second.as_str());
    }

    #[test]
    fn alphanumeric_has_kong_shape() {
        let key = alphanumeric(32);
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn uuid_shape_check() {
        assert!(looks_like_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
        assert!(!looks_like_uuid("test-consumer-001"));
        assert!(!looks_like_uuid("0f8fad5b-d9cb-469f-a165-70867728950"));
    }
}
