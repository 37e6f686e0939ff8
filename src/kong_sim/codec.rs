//! Wire encodings the simulated Admin API needs: percent-decoding of path segments and query
//! strings, URI escaping for `next` links, unpadded base64 for pagination offsets, and
//! `application/x-www-form-urlencoded` / `multipart/form-data` bodies turned into JSON objects.
//!
//! Pure functions of their inputs: no I/O, no store, no clock.

use serde_json::{Map, Value};

use crate::http::request::percent_decode_bytes as percent_decode;

/// Percent-decodes into a string; `None` when the bytes are not UTF-8 (no entity can match).
pub fn percent_decode_utf8(text: &str, plus_is_space: bool) -> Option<String> {
    String::from_utf8(percent_decode(text, plus_is_space)).ok()
}

/// Escapes everything but RFC 3986 unreserved characters, like `ngx.escape_uri` does for the
/// offset inside a `next` link.
pub fn escape_uri(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Splits a query string into decoded `(name, value)` pairs, in order; a name without `=` has
/// an empty value.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            (
                String::from_utf8_lossy(&percent_decode(name, true)).into_owned(),
                String::from_utf8_lossy(&percent_decode(value, true)).into_owned(),
            )
        })
        .collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard-alphabet base64 without `=` padding: the shape of Kong's pagination offsets.
pub fn base64_unpadded(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let word = u32::from(chunk[0]) << 16
            | u32::from(chunk.get(1).copied().unwrap_or(0)) << 8
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        let emitted = chunk.len() + 1;
        for position in 0..emitted {
            let sextet = (word >> (18 - 6 * position)) & 0x3f;
            out.push(char::from(BASE64[sextet as usize]));
        }
    }
    out
}

/// Decodes standard base64, padded or not; `None` on any other character or a bad length.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    if trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut word: u32 = 0;
    let mut bits = 0;
    for byte in trimmed.bytes() {
        let value = BASE64.iter().position(|candidate| *candidate == byte)? as u32;
        word = word << 6 | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((word >> bits) as u8);
            word &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Parses a form body into a JSON object the way Kong's argument decoder does: `a.b=x` nests,
/// `a[]=x` / `a[1]=x` and repeated names build arrays. Values stay strings; the caller infers
/// types from the entity schema.
pub fn form_to_json(body: &str) -> Map<String, Value> {
    let mut object = Map::new();
    for (name, value) in query_pairs(body) {
        insert_form_value(&mut object, &name, value);
    }
    object
}

fn insert_form_value(object: &mut Map<String, Value>, name: &str, value: String) {
    // `tags[]` and `tags[2]` both append; the index only orders in Kong, which a set ignores.
    if let Some(open) = name.find('[')
        && name.ends_with(']')
    {
        let base = &name[..open];
        push_array_value(object, base, value);
        return;
    }
    if let Some((head, rest)) = name.split_once('.') {
        let child = object
            .entry(head.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        if let Value::Object(child) = child {
            insert_form_value(child, rest, value);
        }
        return;
    }
    match object.get_mut(name) {
        Some(Value::Array(items)) => items.push(Value::String(value)),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, Value::String(value)]);
        }
        None => {
            object.insert(name.to_owned(), Value::String(value));
        }
    }
}

fn push_array_value(object: &mut Map<String, Value>, name: &str, value: String) {
    let slot = object
        .entry(name.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    match slot {
        Value::Array(items) => items.push(Value::String(value)),
        other => {
            let first = other.take();
            *other = Value::Array(vec![first, Value::String(value)]);
        }
    }
}

/// Parses a `multipart/form-data` body (text parts only) into the same object shape as a form;
/// `None` when the boundary is missing or the body does not follow it.
pub fn multipart_to_json(content_type: &str, body: &[u8]) -> Option<Map<String, Value>> {
    let boundary = content_type.split(';').find_map(|param| {
        let (name, value) = param.trim().split_once('=')?;
        name.eq_ignore_ascii_case("boundary")
            .then(|| value.trim_matches('"').to_owned())
    })?;
    let text = String::from_utf8_lossy(body);
    let delimiter = format!("--{boundary}");
    let mut object = Map::new();
    let mut parts = text.split(delimiter.as_str());
    parts.next()?; // preamble
    for part in parts {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (head, content) = part.split_once("\r\n\r\n")?;
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        let name = head.lines().find_map(|line| {
            let (field, rest) = line.split_once(':')?;
            if !field.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            rest.split(';').find_map(|param| {
                let (key, value) = param.trim().split_once('=')?;
                (key == "name").then(|| value.trim_matches('"').to_owned())
            })
        })?;
        insert_form_value(&mut object, &name, content.to_owned());
    }
    Some(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_decoding() {
        let cases: [(&str, bool, &[u8]); 6] = [
            ("%C3%BC%20b%2Fc%3F", false, "ü b/c?".as_bytes()),
            ("a+b", false, b"a+b"),
            ("a+b", true, b"a b"),
            ("100%", false, b"100%"),
            ("%zz%4", false, b"%zz%4"),
            ("%e5%86%86", false, "円".as_bytes()),
        ];
        for (input, plus, expected) in cases {
            assert_eq!(percent_decode(input, plus), expected, "for {input}");
        }
        assert_eq!(percent_decode_utf8("%ff", false), None);
    }

    #[test]
    fn base64_round_trips_without_padding() {
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "[\"00000000-0000-4000-8000-000000000001\"]",
        ] {
            let encoded = base64_unpadded(text.as_bytes());
            assert!(!encoded.contains('='));
            assert_eq!(base64_decode(&encoded).unwrap(), text.as_bytes());
        }
        assert_eq!(base64_unpadded(b"ab"), "YWI");
        assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
        assert_eq!(base64_decode("Y!I"), None);
        assert_eq!(base64_decode("YWJjZ"), None);
    }

    #[test]
    fn escape_keeps_unreserved_only() {
        assert_eq!(escape_uri("aZ09-._~+/="), "aZ09-._~%2B%2F%3D");
    }

    #[test]
    fn form_bodies_nest_and_collect() {
        let parsed = form_to_json("consumer.id=abc&tags[]=a&tags[2]=b&key=k%20x&x=1&x=2");
        assert_eq!(
            Value::Object(parsed),
            json!({"consumer": {"id": "abc"}, "tags": ["a", "b"], "key": "k x", "x": ["1", "2"]})
        );
    }

    #[test]
    fn multipart_text_parts() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nabc\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"consumer.id\"\r\n\r\nid1\r\n--XX--\r\n";
        let parsed = multipart_to_json("multipart/form-data; boundary=XX", body.as_bytes());
        assert_eq!(
            parsed.map(Value::Object),
            Some(json!({"key": "abc", "consumer": {"id": "id1"}}))
        );
    }
}
