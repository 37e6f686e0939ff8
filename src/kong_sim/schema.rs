//! Kong's entity schemas for `consumers` and `jwt_secrets`: turning request arguments into
//! validated entities (defaults, auto-generated ids, keys and secrets), and the DAO error
//! bodies (`{code, name, message, fields}`) Kong answers with when that fails.
//!
//! Pure apart from randomness for generated ids, keys and secrets; the clock is passed in. No
//! store access: table-wide rules (uniqueness, foreign keys) are `store`'s.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::ids;
use crate::kong_sim::store::{Consumer, Credential, StoreError};

/// The algorithms Kong 3.7+ accepts for a JWT credential, in Kong's own order.
pub const ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA",
];

/// Algorithms whose credentials need a public key (Kong's conditional validation).
const NEEDS_PUBLIC_KEY: [&str; 7] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

/// How the arguments are applied: a fresh row (POST), a whole replacement (PUT), or a merge
/// into the existing row (PATCH).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Insert,
    Upsert,
    Patch,
}

/// Schema violations collected while validating one entity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Violations {
    /// Entity-level (`@entity`) messages, in the order found.
    pub entity: Vec<String>,
    /// Field errors keyed by dotted path (`consumer.id`), sorted by that path.
    pub fields: BTreeMap<String, String>,
}

impl Violations {
    pub fn field(path: &str, message: &str) -> Violations {
        let mut violations = Violations::default();
        violations.add(path, message);
        violations
    }

    fn add(&mut self, path: &str, message: &str) {
        self.fields
            .entry(path.to_owned())
            .or_insert_with(|| message.to_owned());
    }

    fn is_empty(&self) -> bool {
        self.entity.is_empty() && self.fields.is_empty()
    }

    /// `schema violation (x: y)` for one error, `N schema violations (a; b)` for several;
    /// entity-level messages first, then fields by name, as Kong formats them.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self
            .entity
            .iter()
            .cloned()
            .chain(
                self.fields
                    .iter()
                    .map(|(path, message)| format!("{path}: {message}")),
            )
            .collect();
        if parts.len() == 1 {
            format!("schema violation ({})", parts[0])
        } else {
            format!("{} schema violations ({})", parts.len(), parts.join("; "))
        }
    }

    /// The `fields` tree: dotted paths become nested objects, entity errors sit under `@entity`.
    pub fn tree(&self) -> Value {
        let mut root = Map::new();
        if !self.entity.is_empty() {
            root.insert("@entity".to_owned(), json!(self.entity));
        }
        for (path, message) in &self.fields {
            let mut node = &mut root;
            let mut segments = path.split('.').peekable();
            while let Some(segment) = segments.next() {
                if segments.peek().is_none() {
                    node.insert(segment.to_owned(), Value::String(message.clone()));
                } else {
                    let child = node
                        .entry(segment.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !child.is_object() {
                        *child = Value::Object(Map::new());
                    }
                    let Value::Object(child) = child else {
                        unreachable!("just made an object")
                    };
                    node = child;
                }
            }
        }
        Value::Object(root)
    }
}

/// A Kong DAO error, with the HTTP status and body Kong's Admin API gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum DaoError {
    Schema(Violations),
    Store(StoreError),
    /// Top-level PATCH of a missing row (code 6); `by_primary_key` when the path held an id.
    NotFound {
        field: &'static str,
        value: String,
        by_primary_key: bool,
    },
    InvalidOffset {
        token: String,
        reason: &'static str,
    },
    InvalidSize(&'static str),
    InvalidOption {
        option: &'static str,
        message: &'static str,
    },
}

impl DaoError {
    pub fn status(&self) -> u16 {
        match self {
            DaoError::Store(StoreError::Unique { .. }) => 409,
            DaoError::NotFound { .. } => 404,
            _ => 400,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            DaoError::Schema(violations) => json!({
                "code": 2, "name": "schema violation",
                "message": violations.message(), "fields": violations.tree(),
            }),
            DaoError::Store(StoreError::PrimaryKey { id }) => json!({
                "code": 3, "name": "primary key violation",
                "message": format!("primary key violation on key '{}'", pretty("id", id)),
                "fields": {"id": id},
            }),
            DaoError::Store(StoreError::ForeignKey { consumer_id }) => json!({
                "code": 4, "name": "foreign key violation",
                "message": format!(
                    "the foreign key '{}' does not reference an existing 'consumers' entity.",
                    pretty("id", consumer_id)
                ),
                "fields": {"consumer": {"id": consumer_id}},
            }),
            DaoError::Store(StoreError::Unique { field, value }) => json!({
                "code": 5, "name": "unique constraint violation",
                "message": format!("UNIQUE violation detected on '{}'", pretty(field, value)),
                "fields": {*field: value},
            }),
            DaoError::NotFound {
                field,
                value,
                by_primary_key,
            } => {
                let which = if *by_primary_key { "primary key " } else { "" };
                json!({
                    "code": 6, "name": "not found",
                    "message": format!(
                        "could not find the entity with {which}'{}'",
                        pretty(field, value)
                    ),
                    "fields": {*field: value},
                })
            }
            DaoError::InvalidOffset { token, reason } => json!({
                "code": 7, "name": "invalid offset",
                "message": format!("'{token}' is not a valid offset: {reason}"),
            }),
            DaoError::InvalidSize(message) => json!({
                "code": 9, "name": "invalid size", "message": message,
            }),
            DaoError::InvalidOption { option, message } => json!({
                "code": 11, "name": "invalid options",
                "message": format!("invalid option ({option}: {message})"),
                "options": {*option: message},
            }),
        }
    }
}

/// Penlight's compact table printer, which Kong uses in messages: `{key="value"}`.
fn pretty(field: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{{{field}=\"{escaped}\"}}")
}

const CONSUMER_FIELDS: [&str; 6] = [
    "id",
    "created_at",
    "updated_at",
    "username",
    "custom_id",
    "tags",
];

const CREDENTIAL_FIELDS: [&str; 8] = [
    "id",
    "created_at",
    "consumer",
    "key",
    "secret",
    "rsa_public_key",
    "algorithm",
    "tags",
];

/// Validates consumer arguments. `existing` is the stored row for PATCH (merged into) and PUT
/// (keeps its `created_at`); the caller has already put the path's id or username in `args`.
pub fn consumer_from(
    args: &Map<String, Value>,
    existing: Option<&Consumer>,
    write: Write,
    now: i64,
) -> Result<Consumer, Violations> {
    let mut violations = unknown_fields(args, &CONSUMER_FIELDS);
    let merged = merge(existing.map(Consumer::to_json), args, write);
    let id = id_field(&merged, &mut violations);
    let created_at = integer_field(&merged, "created_at", &mut violations)
        .or(existing.map(|row| row.created_at))
        .unwrap_or(now);
    // Kong stamps `updated_at` on every write unless the client sets it on insert.
    let updated_at = match write {
        Write::Patch => now,
        _ => integer_field(&merged, "updated_at", &mut violations).unwrap_or(now),
    };
    let username = string_field(&merged, "username", &mut violations);
    let custom_id = string_field(&merged, "custom_id", &mut violations);
    let tags = tags_field(&merged, &mut violations);
    if username.is_none()
        && custom_id.is_none()
        && !violations.fields.contains_key("username")
        && !violations.fields.contains_key("custom_id")
    {
        violations.entity.push(
            "at least one of these fields must be non-empty: 'custom_id', 'username'".to_owned(),
        );
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Consumer {
        id,
        created_at,
        updated_at,
        username,
        custom_id,
        tags,
    })
}

/// Validates JWT credential arguments; absent (not null) `key` and `secret` are generated on
/// insert and upsert, `algorithm` defaults to HS256. `consumer` must already be in `args`.
pub fn credential_from(
    args: &Map<String, Value>,
    existing: Option<&Credential>,
    write: Write,
    now: i64,
) -> Result<Credential, Violations> {
    let mut violations = unknown_fields(args, &CREDENTIAL_FIELDS);
    let mut merged = merge(existing.map(Credential::to_json), args, write);
    if write != Write::Patch {
        for auto in ["key", "secret"] {
            if !merged.contains_key(auto) {
                merged.insert(auto.to_owned(), Value::String(ids::alphanumeric(32)));
            }
        }
        if !merged.contains_key("algorithm") {
            merged.insert("algorithm".to_owned(), Value::String("HS256".to_owned()));
        }
    }
    let id = id_field(&merged, &mut violations);
    let created_at = integer_field(&merged, "created_at", &mut violations)
        .or(existing.map(|row| row.created_at))
        .unwrap_or(now);
    let consumer_id = consumer_reference(&merged, &mut violations);
    let key = string_field(&merged, "key", &mut violations);
    let secret = string_field(&merged, "secret", &mut violations);
    let rsa_public_key = string_field(&merged, "rsa_public_key", &mut violations);
    let algorithm = string_field(&merged, "algorithm", &mut violations);
    if let Some(algorithm) = &algorithm
        && !ALGORITHMS.contains(&algorithm.as_str())
    {
        violations.add(
            "algorithm",
            &format!("expected one of: {}", ALGORITHMS.join(", ")),
        );
    }
    if let Some(algorithm) = &algorithm
        && NEEDS_PUBLIC_KEY.contains(&algorithm.as_str())
        && !violations.fields.contains_key("rsa_public_key")
    {
        let problem = match &rsa_public_key {
            None => Some("required field missing"),
            // No crypto crate here: a PEM public-key armour is the best check we can make.
            Some(pem) if !pem.contains("-----BEGIN") || !pem.contains("PUBLIC KEY-----") => {
                Some("invalid key")
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            violations.add("rsa_public_key", problem);
            violations
                .entity
                .push("failed conditional validation given value of field 'algorithm'".to_owned());
        }
    }
    let tags = tags_field(&merged, &mut violations);
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Credential {
        id,
        created_at,
        consumer_id: consumer_id.unwrap_or_default(),
        key,
        secret,
        rsa_public_key,
        algorithm,
        tags,
    })
}

fn unknown_fields(args: &Map<String, Value>, known: &[&str]) -> Violations {
    let mut violations = Violations::default();
    for name in args.keys() {
        if !known.contains(&name.as_str()) {
            violations.add(name, "unknown field");
        }
    }
    violations
}

/// PATCH overlays the arguments on the stored row; POST and PUT start from nothing.
fn merge(existing: Option<Value>, args: &Map<String, Value>, write: Write) -> Map<String, Value> {
    let mut merged = match (write, existing) {
        (Write::Patch, Some(Value::Object(row))) => row,
        _ => Map::new(),
    };
    for (name, value) in args {
        merged.insert(name.clone(), value.clone());
    }
    merged
}

fn id_field(merged: &Map<String, Value>, violations: &mut Violations) -> String {
    match merged.get("id") {
        None | Some(Value::Null) => ids::uuid_v4().to_string(),
        Some(Value::String(id)) if ids::looks_like_uuid(id) => id.to_ascii_lowercase(),
        Some(_) => {
            violations.add("id", "expected a valid UUID");
            String::new()
        }
    }
}

fn integer_field(
    merged: &Map<String, Value>,
    name: &str,
    violations: &mut Violations,
) -> Option<i64> {
    match merged.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Number(number)) if number.as_i64().is_some() => number.as_i64(),
        // Form bodies carry every value as a string; Kong infers the schema type from it.
        Some(Value::String(text)) if text.parse::<i64>().is_ok() => text.parse().ok(),
        Some(_) => {
            violations.add(name, "expected an integer");
            None
        }
    }
}

fn string_field(
    merged: &Map<String, Value>,
    name: &str,
    violations: &mut Violations,
) -> Option<String> {
    match merged.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) if text.is_empty() => {
            violations.add(name, "length must be at least 1");
            None
        }
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            violations.add(name, "expected a string");
            None
        }
    }
}

fn tags_field(merged: &Map<String, Value>, violations: &mut Violations) -> Option<Vec<String>> {
    let items = match merged.get("tags") {
        None | Some(Value::Null) => return None,
        // A single form value `tags=a` is a one-element set, as Kong infers it.
        Some(Value::String(tag)) => vec![Value::String(tag.clone())],
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            violations.add("tags", "expected a set");
            return None;
        }
    };
    let mut tags: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(tag) = item else {
            violations.add("tags", "expected a string");
            return None;
        };
        let printable = tag
            .chars()
            .all(|c| !c.is_ascii() || (c.is_ascii_graphic() || c == ' ') && c != ',' && c != '/');
        if tag.is_empty() || !printable {
            violations.add(
                "tags",
                &format!(
                    "invalid tag '{tag}': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"
                ),
            );
            return None;
        }
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    Some(tags)
}

fn consumer_reference(merged: &Map<String, Value>, violations: &mut Violations) -> Option<String> {
    match merged.get("consumer") {
        None | Some(Value::Null) => {
            violations.add("consumer", "required field missing");
            None
        }
        Some(Value::Object(reference)) => match reference.get("id") {
            Some(Value::String(id)) if ids::looks_like_uuid(id) => Some(id.to_ascii_lowercase()),
            None | Some(Value::Null) => {
                violations.add("consumer.id", "required field missing");
                None
            }
            Some(_) => {
                violations.add("consumer.id", "expected a valid UUID");
                None
            }
        },
        Some(_) => {
            violations.add("consumer", "expected a record");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "00000000-0000-4000-8000-000000000001";

    fn args(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn consumer_needs_a_name() {
        let err = consumer_from(&args(json!({})), None, Write::Insert, 5).unwrap_err();
        assert_eq!(
            err.message(),
            "schema violation (at least one of these fields must be non-empty: 'custom_id', 'username')"
        );
        assert_eq!(
            err.tree(),
            json!({"@entity": ["at least one of these fields must be non-empty: 'custom_id', 'username'"]})
        );
        let err = consumer_from(
            &args(json!({"username": "", "foo": 1})),
            None,
            Write::Insert,
            5,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "2 schema violations (foo: unknown field; username: length must be at least 1)"
        );
    }

    #[test]
    fn consumer_patch_merges_and_stamps() {
        let first =
            consumer_from(&args(json!({"username": "bob"})), None, Write::Insert, 5).unwrap();
        assert!(ids::looks_like_uuid(&first.id));
        assert_eq!((first.created_at, first.updated_at), (5, 5));
        let patched = consumer_from(
            &args(json!({"custom_id": "c"})),
            Some(&first),
            Write::Patch,
            9,
        )
        .unwrap();
        assert_eq!(patched.username.as_deref(), Some("bob"));
        assert_eq!(patched.custom_id.as_deref(), Some("c"));
        assert_eq!(
            (patched.id.as_str(), patched.created_at, patched.updated_at),
            (first.id.as_str(), 5, 9)
        );
        let err = consumer_from(
            &args(json!({"username": null})),
            Some(&first),
            Write::Patch,
            9,
        )
        .unwrap_err();
        assert_eq!(err.entity.len(), 1);
    }

    #[test]
    fn credential_defaults_and_generation() {
        let made = credential_from(
            &args(json!({"consumer": {"id": C1}})),
            None,
            Write::Insert,
            7,
        )
        .unwrap();
        for generated in [&made.key, &made.secret] {
            let text = generated.as_deref().unwrap();
            assert_eq!(text.len(), 32);
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_eq!(made.algorithm.as_deref(), Some("HS256"));
        assert_eq!(made.rsa_public_key, None);
        assert_eq!(made.consumer_id, C1);
        // An explicit null is not "absent": nothing is generated.
        let nulled = credential_from(
            &args(json!({"consumer": {"id": C1}, "key": null})),
            None,
            Write::Insert,
            7,
        )
        .unwrap();
        assert_eq!(nulled.key, None);
    }

    #[test]
    fn credential_violations() {
        let cases = [
            (
                json!({}),
                "schema violation (consumer: required field missing)",
            ),
            (
                json!({"consumer": {"id": "zzz"}}),
                "schema violation (consumer.id: expected a valid UUID)",
            ),
            (
                json!({"consumer": {"id": C1}, "algorithm": "none"}),
                "schema violation (algorithm: expected one of: HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512, EdDSA)",
            ),
            (
                json!({"consumer": {"id": C1}, "algorithm": "RS256"}),
                "2 schema violations (failed conditional validation given value of field 'algorithm'; rsa_public_key: required field missing)",
            ),
        ];
        for (input, expected) in cases {
            let err = credential_from(&args(input.clone()), None, Write::Insert, 1).unwrap_err();
            assert_eq!(err.message(), expected, "for {input}");
        }
        let err = credential_from(
            &args(json!({"consumer": {"id": "zzz"}})),
            None,
            Write::Insert,
            1,
        )
        .unwrap_err();
        assert_eq!(
            err.tree(),
            json!({"consumer": {"id": "expected a valid UUID"}})
        );
        // ES* needs no key (Kong only fails it at verification time).
        assert!(
            credential_from(
                &args(json!({"consumer": {"id": C1}, "algorithm": "ES256"})),
                None,
                Write::Insert,
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn dao_bodies() {
        let unique = DaoError::Store(StoreError::Unique {
            field: "key",
            value: "bob".to_owned(),
        });
        assert_eq!(unique.status(), 409);
        assert_eq!(
            unique.body(),
            json!({"code": 5, "name": "unique constraint violation",
                   "message": "UNIQUE violation detected on '{key=\"bob\"}'", "fields": {"key": "bob"}})
        );
        let missing = DaoError::NotFound {
            field: "username",
            value: "x".to_owned(),
            by_primary_key: false,
        };
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.body()["message"],
            "could not find the entity with '{username=\"x\"}'"
        );
    }
}
