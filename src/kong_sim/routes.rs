//! The simulated Admin API surface: which path is which resource (`classify`), and what one
//! request does to the store and answers (`respond`), following `KONG.md` section 1.
//!
//! Transport-neutral and synchronous: takes a `SimRequest`, returns a `SimResponse`. Must not
//! sleep, lock, read sockets or name tiny_http types; the server loop in `mod.rs` adds the
//! cross-cutting headers, the admin-token gate, latency and injected failures.

use serde_json::{Map, Value, json};

use crate::ids;
use crate::kong_sim::codec;
use crate::kong_sim::schema::{self, DaoError, Violations, Write};
use crate::kong_sim::store::{Consumer, Credential, Store, StoreError, WriteMode};

/// The Kong version the simulator claims to be.
pub const KONG_VERSION: &str = "3.9.1";

/// Kong's Admin API body limit (`client_max_body_size` 10m).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// One inbound request, already read off the wire.
#[derive(Clone, Debug, Default)]
pub struct SimRequest {
    pub method: String,
    /// Path and query exactly as sent (still percent-encoded).
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SimRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn query(&self) -> &str {
        self.url
            .split_once('?')
            .map(|(_, query)| query)
            .unwrap_or("")
    }
}

/// What to send back; `mod.rs` adds `Server`, latency and CORS headers.
#[derive(Clone, Debug, PartialEq)]
pub struct SimResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SimResponse {
    pub fn json(status: u16, body: &Value) -> SimResponse {
        SimResponse {
            status,
            headers: vec![(
                "Content-Type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn message(status: u16, message: &str) -> SimResponse {
        SimResponse::json(status, &json!({ "message": message }))
    }

    pub fn empty(status: u16) -> SimResponse {
        SimResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn not_found() -> SimResponse {
        SimResponse::message(404, "Not found")
    }

    pub fn method_not_allowed() -> SimResponse {
        SimResponse::message(405, "Method not allowed")
    }
}

/// The Admin API resources the simulator knows, plus its own `/_sim` hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Root,
    Status,
    Consumers,
    Consumer,
    ConsumerJwts,
    ConsumerJwt,
    Jwts,
    Jwt,
    JwtConsumer,
    SimStats,
    SimResetStats,
}

impl Resource {
    /// The route template, as counted by `/_sim/stats`.
    fn template(self) -> &'static str {
        match self {
            Resource::Root => "/",
            Resource::Status => "/status",
            Resource::Consumers => "/consumers",
            Resource::Consumer => "/consumers/{c}",
            Resource::ConsumerJwts => "/consumers/{c}/jwt",
            Resource::ConsumerJwt => "/consumers/{c}/jwt/{j}",
            Resource::Jwts => "/jwts",
            Resource::Jwt => "/jwts/{j}",
            Resource::JwtConsumer => "/jwts/{j}/consumer",
            Resource::SimStats => "/_sim/stats",
            Resource::SimResetStats => "/_sim/reset-stats",
        }
    }

    /// Methods the route answers, sorted as Kong lists them in `Allow`.
    pub fn allowed_methods(self) -> &'static [&'static str] {
        match self {
            Resource::Root | Resource::Status | Resource::SimStats => &["GET", "HEAD", "OPTIONS"],
            Resource::Consumers | Resource::ConsumerJwts | Resource::Jwts => {
                &["GET", "HEAD", "OPTIONS", "POST"]
            }
            Resource::Consumer | Resource::ConsumerJwt | Resource::Jwt => {
                &["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "PUT"]
            }
            Resource::JwtConsumer => &["GET", "HEAD", "OPTIONS", "PATCH", "PUT"],
            Resource::SimResetStats => &["OPTIONS", "POST"],
        }
    }
}

/// A path segment standing for an entity: as sent, and URL-decoded (`None` if not UTF-8,
/// which no stored name can equal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub raw: String,
    pub decoded: Option<String>,
}

/// A matched route: the resource, whether it came under Konnect's `/core-entities` prefix, and
/// its entity segments in path order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub resource: Resource,
    pub konnect: bool,
    pub segments: Vec<Segment>,
}

impl Target {
    fn prefix(&self) -> &'static str {
        if self.konnect { "/core-entities" } else { "" }
    }

    pub fn template(&self) -> String {
        format!("{}{}", self.prefix(), self.resource.template())
    }
}

/// Matches a request URL to a route. The raw path is split on `/` before decoding, so `%2F`
/// stays inside its segment; one trailing slash is tolerated; literals are case-sensitive.
pub fn classify(url: &str) -> Option<Target> {
    let path = url.split_once('?').map(|(path, _)| path).unwrap_or(url);
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut parts: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    if parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    let konnect = parts.first() == Some(&"core-entities");
    if konnect {
        parts.remove(0);
    }
    let segment = |raw: &str| Segment {
        raw: raw.to_owned(),
        decoded: codec::percent_decode_utf8(raw, false),
    };
    let (resource, segments) = match parts.as_slice() {
        [] if !konnect => (Resource::Root, vec![]),
        ["status"] if !konnect => (Resource::Status, vec![]),
        ["_sim", "stats"] if !konnect => (Resource::SimStats, vec![]),
        ["_sim", "reset-stats"] if !konnect => (Resource::SimResetStats, vec![]),
        ["consumers"] => (Resource::Consumers, vec![]),
        ["consumers", c] => (Resource::Consumer, vec![segment(c)]),
        ["consumers", c, "jwt"] => (Resource::ConsumerJwts, vec![segment(c)]),
        ["consumers", c, "jwt", j] => (Resource::ConsumerJwt, vec![segment(c), segment(j)]),
        ["jwts"] => (Resource::Jwts, vec![]),
        ["jwts", j] => (Resource::Jwt, vec![segment(j)]),
        ["jwts", j, "consumer"] => (Resource::JwtConsumer, vec![segment(j)]),
        _ => return None,
    };
    Some(Target {
        resource,
        konnect,
        segments,
    })
}

/// Facts about the simulated node that `GET /` and `GET /status` report.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node_id: String,
    pub hostname: String,
    pub pid: u32,
    pub listen: String,
}

/// Everything outside the store that a response may mention.
pub struct Ambient<'a> {
    pub node: &'a NodeInfo,
    pub now: i64,
    pub total_requests: u64,
}

/// Why a handler did not produce its success response.
enum Failure {
    NotFound,
    Dao(DaoError),
    Reply(SimResponse),
}

impl From<DaoError> for Failure {
    fn from(err: DaoError) -> Failure {
        Failure::Dao(err)
    }
}

impl From<Violations> for Failure {
    fn from(violations: Violations) -> Failure {
        Failure::Dao(DaoError::Schema(violations))
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Failure {
        Failure::Dao(DaoError::Store(err))
    }
}

type Outcome = Result<SimResponse, Failure>;

/// Answers one Admin API request against `store`. `/_sim` hooks are not handled here.
pub fn respond(
    store: &mut Store,
    ambient: &Ambient,
    request: &SimRequest,
    target: &Target,
) -> SimResponse {
    let allowed = target.resource.allowed_methods();
    let method = request.method.as_str();
    if method == "OPTIONS" {
        let list = allowed.join(", ");
        let mut response = SimResponse::empty(204);
        response.headers.push(("Allow".to_owned(), list.clone()));
        response
            .headers
            .push(("Access-Control-Allow-Methods".to_owned(), list));
        response.headers.push((
            "Access-Control-Allow-Headers".to_owned(),
            "Content-Type".to_owned(),
        ));
        return response;
    }
    if !allowed.contains(&method) {
        return SimResponse::method_not_allowed();
    }
    // HEAD is GET without a body; the transport drops the body.
    let method = if method == "HEAD" { "GET" } else { method };
    let outcome = dispatch(store, ambient, request, target, method);
    match outcome {
        Ok(response) => response,
        Err(Failure::NotFound) => SimResponse::not_found(),
        Err(Failure::Dao(err)) => SimResponse::json(err.status(), &err.body()),
        Err(Failure::Reply(response)) => response,
    }
}

fn dispatch(
    store: &mut Store,
    ambient: &Ambient,
    request: &SimRequest,
    target: &Target,
    method: &str,
) -> Outcome {
    let now = ambient.now;
    let first = target.segments.first();
    let second = target.segments.get(1);
    match (target.resource, method) {
        (Resource::Root, "GET") => Ok(SimResponse::json(200, &root_info(ambient.node))),
        (Resource::Status, "GET") => Ok(SimResponse::json(200, &status_info(ambient))),
        (Resource::Consumers, "GET") => list_consumers(store, request, target),
        (Resource::Consumers, "POST") => {
            let args = arguments(request)?;
            let consumer = schema::consumer_from(&args, None, Write::Insert, now)?;
            store.put_consumer(consumer.clone(), WriteMode::Create)?;
            Ok(SimResponse::json(201, &consumer.to_json()))
        }
        (Resource::Consumer, "GET") => {
            let consumer = find_consumer(store, first)?;
            Ok(SimResponse::json(200, &consumer.to_json()))
        }
        (Resource::Consumer, "PUT") => {
            let args = arguments(request)?;
            let segment = decoded(first)?;
            upsert_consumer(store, args, segment, now)
        }
        (Resource::Consumer, "PATCH") => {
            let args = arguments(request)?;
            let segment = decoded(first)?;
            let existing = store
                .consumer_by_segment(segment)
                .cloned()
                .ok_or_else(|| missing_for_patch("username", segment))?;
            patch_consumer(store, &existing, args, now)
        }
        (Resource::Consumer, "DELETE") => {
            if let Ok(consumer) = find_consumer(store, first) {
                let id = consumer.id.clone();
                store.delete_consumer(&id);
            }
            Ok(SimResponse::empty(204))
        }
        (Resource::ConsumerJwts, "GET") => {
            let consumer = find_consumer(store, first)?;
            let page = PageOptions::parse(request, false)?;
            let (rows, offset) = paginate(
                store.credentials_of(&consumer.id, page.after.as_deref()),
                |row| page.keeps(&row.tags),
                page.size,
                |row| &row.id,
            );
            let next = offset.as_ref().map(|offset| {
                format!(
                    "{}/consumers/{}/jwt?offset={}",
                    target.prefix(),
                    target.segments[0].raw,
                    codec::escape_uri(offset)
                )
            });
            Ok(envelope(rows.iter().map(|row| row.to_json()), next, offset))
        }
        (Resource::ConsumerJwts, "POST") => {
            let consumer_id = find_consumer(store, first)?.id.clone();
            let mut args = arguments(request)?;
            // Kong always takes the consumer from the path, whatever the body says.
            args.insert("consumer".to_owned(), json!({ "id": consumer_id }));
            let credential = schema::credential_from(&args, None, Write::Insert, now)?;
            store.put_credential(credential.clone(), WriteMode::Create)?;
            Ok(SimResponse::json(201, &credential.to_json()))
        }
        (Resource::ConsumerJwt, _) => {
            let consumer_id = find_consumer(store, first)?.id.clone();
            let segment = decoded(second)?;
            let existing = store.credential_by_segment(segment).cloned();
            if let Some(existing) = &existing
                && existing.consumer_id != consumer_id
            {
                return Err(Failure::NotFound);
            }
            nested_credential(store, request, method, consumer_id, segment, existing, now)
        }
        (Resource::Jwts, "GET") => {
            let page = PageOptions::parse(request, true)?;
            let (rows, offset) = paginate(
                store.credentials_after(page.after.as_deref()),
                |row| page.keeps(&row.tags),
                page.size,
                |row| &row.id,
            );
            let next = offset
                .as_ref()
                .map(|offset| page.top_level_next(&format!("{}/jwts", target.prefix()), offset));
            Ok(envelope(rows.iter().map(|row| row.to_json()), next, offset))
        }
        (Resource::Jwts, "POST") => {
            let args = arguments(request)?;
            let credential = schema::credential_from(&args, None, Write::Insert, now)?;
            store.put_credential(credential.clone(), WriteMode::Create)?;
            Ok(SimResponse::json(201, &credential.to_json()))
        }
        (Resource::Jwt, "GET") => {
            let credential = find_credential(store, first)?;
            Ok(SimResponse::json(200, &credential.to_json()))
        }
        (Resource::Jwt, "PUT") => {
            let mut args = arguments(request)?;
            let segment = decoded(first)?;
            let existing = store.credential_by_segment(segment).cloned();
            name_credential(&mut args, segment, existing.as_ref());
            let credential = schema::credential_from(&args, existing.as_ref(), Write::Upsert, now)?;
            store.put_credential(credential.clone(), WriteMode::Replace)?;
            Ok(SimResponse::json(200, &credential.to_json()))
        }
        (Resource::Jwt, "PATCH") => {
            let args = arguments(request)?;
            let segment = decoded(first)?;
            let existing = store
                .credential_by_segment(segment)
                .cloned()
                .ok_or_else(|| missing_for_patch("key", segment))?;
            patch_credential(store, &existing, args, now)
        }
        (Resource::Jwt, "DELETE") => {
            if let Ok(credential) = find_credential(store, first) {
                let id = credential.id.clone();
                store.delete_credential(&id);
            }
            Ok(SimResponse::empty(204))
        }
        (Resource::JwtConsumer, _) => {
            let consumer_id = find_credential(store, first)?.consumer_id.clone();
            let consumer = store
                .consumer(&consumer_id)
                .cloned()
                .ok_or(Failure::NotFound)?;
            match method {
                "GET" => Ok(SimResponse::json(200, &consumer.to_json())),
                "PATCH" => {
                    let args = arguments(request)?;
                    patch_consumer(store, &consumer, args, now)
                }
                _ => {
                    let args = arguments(request)?;
                    upsert_consumer(store, args, &consumer.id, now)
                }
            }
        }
        _ => Err(Failure::Reply(SimResponse::method_not_allowed())),
    }
}

/// GET, PUT, PATCH and DELETE of `/consumers/{c}/jwt/{j}`, after the consumer is resolved and
/// the credential (if any) is known to belong to it.
fn nested_credential(
    store: &mut Store,
    request: &SimRequest,
    method: &str,
    consumer_id: String,
    segment: &str,
    existing: Option<Credential>,
    now: i64,
) -> Outcome {
    match method {
        "GET" => {
            let credential = existing.ok_or(Failure::NotFound)?;
            Ok(SimResponse::json(200, &credential.to_json()))
        }
        "DELETE" => {
            let credential = existing.ok_or(Failure::NotFound)?;
            store.delete_credential(&credential.id);
            Ok(SimResponse::empty(204))
        }
        "PATCH" => {
            let credential = existing.ok_or(Failure::NotFound)?;
            let mut args = arguments(request)?;
            // Nested PATCH sets the consumer only when the body leaves it out.
            args.entry("consumer")
                .or_insert_with(|| json!({ "id": consumer_id }));
            patch_credential(store, &credential, args, now)
        }
        _ => {
            let mut args = arguments(request)?;
            args.insert("consumer".to_owned(), json!({ "id": consumer_id }));
            name_credential(&mut args, segment, existing.as_ref());
            let credential = schema::credential_from(&args, existing.as_ref(), Write::Upsert, now)?;
            store.put_credential(credential.clone(), WriteMode::Replace)?;
            Ok(SimResponse::json(200, &credential.to_json()))
        }
    }
}

/// PUT by id or key: the path decides the id (or the key, keeping an existing row's id).
fn name_credential(args: &mut Map<String, Value>, segment: &str, existing: Option<&Credential>) {
    if ids::looks_like_uuid(segment) {
        args.insert("id".to_owned(), Value::String(segment.to_owned()));
    } else {
        args.insert("key".to_owned(), Value::String(segment.to_owned()));
        if let Some(existing) = existing {
            args.insert("id".to_owned(), Value::String(existing.id.clone()));
        }
    }
}

fn upsert_consumer(
    store: &mut Store,
    mut args: Map<String, Value>,
    segment: &str,
    now: i64,
) -> Outcome {
    let existing = store.consumer_by_segment(segment).cloned();
    if ids::looks_like_uuid(segment) {
        args.insert("id".to_owned(), Value::String(segment.to_owned()));
    } else {
        args.insert("username".to_owned(), Value::String(segment.to_owned()));
        if let Some(existing) = &existing {
            args.insert("id".to_owned(), Value::String(existing.id.clone()));
        }
    }
    let consumer = schema::consumer_from(&args, existing.as_ref(), Write::Upsert, now)?;
    store.put_consumer(consumer.clone(), WriteMode::Replace)?;
    Ok(SimResponse::json(200, &consumer.to_json()))
}

fn patch_consumer(
    store: &mut Store,
    existing: &Consumer,
    args: Map<String, Value>,
    now: i64,
) -> Outcome {
    let mut consumer = schema::consumer_from(&args, Some(existing), Write::Patch, now)?;
    // The primary key is the row being patched, whatever the body says.
    consumer.id = existing.id.clone();
    store.put_consumer(consumer.clone(), WriteMode::Replace)?;
    Ok(SimResponse::json(200, &consumer.to_json()))
}

fn patch_credential(
    store: &mut Store,
    existing: &Credential,
    args: Map<String, Value>,
    now: i64,
) -> Outcome {
    let mut credential = schema::credential_from(&args, Some(existing), Write::Patch, now)?;
    credential.id = existing.id.clone();
    store.put_credential(credential.clone(), WriteMode::Replace)?;
    Ok(SimResponse::json(200, &credential.to_json()))
}

/// Top-level PATCH of a missing row answers Kong's code-6 body rather than plain Not found.
fn missing_for_patch(endpoint_key: &'static str, segment: &str) -> Failure {
    let by_primary_key = ids::looks_like_uuid(segment);
    Failure::Dao(DaoError::NotFound {
        field: if by_primary_key { "id" } else { endpoint_key },
        value: segment.to_owned(),
        by_primary_key,
    })
}

fn decoded(segment: Option<&Segment>) -> Result<&str, Failure> {
    segment
        .and_then(|segment| segment.decoded.as_deref())
        .ok_or(Failure::NotFound)
}

fn find_consumer<'a>(store: &'a Store, segment: Option<&Segment>) -> Result<&'a Consumer, Failure> {
    store
        .consumer_by_segment(decoded(segment)?)
        .ok_or(Failure::NotFound)
}

fn find_credential<'a>(
    store: &'a Store,
    segment: Option<&Segment>,
) -> Result<&'a Credential, Failure> {
    store
        .credential_by_segment(decoded(segment)?)
        .ok_or(Failure::NotFound)
}

fn list_consumers(store: &Store, request: &SimRequest, target: &Target) -> Outcome {
    let pairs = codec::query_pairs(request.query());
    if let Some((_, custom_id)) = pairs.iter().find(|(name, _)| name == "custom_id") {
        if custom_id.is_empty() {
            return Err(Failure::Reply(SimResponse::message(
                400,
                "custom_id must be an unempty string",
            )));
        }
        let data: Vec<Value> = store
            .consumer_by_custom_id(custom_id)
            .map(Consumer::to_json)
            .into_iter()
            .collect();
        return Ok(SimResponse::json(200, &json!({"data": data, "next": null})));
    }
    let page = PageOptions::parse(request, true)?;
    let (rows, offset) = paginate(
        store.consumers_after(page.after.as_deref()),
        |row| page.keeps(&row.tags),
        page.size,
        |row| &row.id,
    );
    let next = offset
        .as_ref()
        .map(|offset| page.top_level_next(&format!("{}/consumers", target.prefix()), offset));
    Ok(envelope(rows.iter().map(|row| row.to_json()), next, offset))
}

/// `size`, `offset` and `tags` of a list request, validated with Kong's error bodies.
struct PageOptions {
    size: usize,
    size_given: bool,
    after: Option<String>,
    tags: Option<TagFilter>,
    tags_raw: Option<String>,
}

/// `?tags=a,b` needs all of them, `?tags=a/b` any of them.
enum TagFilter {
    All(Vec<String>),
    Any(Vec<String>),
}

impl PageOptions {
    fn parse(request: &SimRequest, tags_allowed: bool) -> Result<PageOptions, DaoError> {
        let pairs = codec::query_pairs(request.query());
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let mut options = PageOptions {
            size: 100,
            size_given: false,
            after: None,
            tags: None,
            tags_raw: None,
        };
        if let Some(size) = value("size") {
            let number: f64 = size
                .trim()
                .parse()
                .map_err(|_| DaoError::InvalidSize("size must be a number"))?;
            if number.fract() != 0.0 || !(1.0..=1000.0).contains(&number) {
                return Err(DaoError::InvalidSize(
                    "size must be an integer between 1 and 1000",
                ));
            }
            options.size = number as usize;
            options.size_given = true;
        }
        if let Some(token) = value("offset") {
            options.after = Some(decode_offset(token)?);
        }
        if tags_allowed && let Some(tags) = value("tags") {
            if tags.is_empty() {
                return Err(DaoError::InvalidOption {
                    option: "tags",
                    message: "cannot be null",
                });
            }
            let filter = match (tags.contains(','), tags.contains('/')) {
                (true, true) => {
                    return Err(DaoError::InvalidOption {
                        option: "tags",
                        message: "invalid filter syntax",
                    });
                }
                (_, true) => TagFilter::Any(tags.split('/').map(str::to_owned).collect()),
                _ => TagFilter::All(tags.split(',').map(str::to_owned).collect()),
            };
            options.tags = Some(filter);
            options.tags_raw = Some(tags.to_owned());
        }
        Ok(options)
    }

    fn keeps(&self, tags: &Option<Vec<String>>) -> bool {
        let have = tags.as_deref().unwrap_or(&[]);
        match &self.tags {
            None => true,
            Some(TagFilter::All(wanted)) => wanted.iter().all(|tag| have.contains(tag)),
            Some(TagFilter::Any(wanted)) => wanted.iter().any(|tag| have.contains(tag)),
        }
    }

    /// `/consumers?offset=…[&tags=…][&size=…]`, Kong's top-level `next` link.
    fn top_level_next(&self, path: &str, offset: &str) -> String {
        let mut next = format!("{path}?offset={}", codec::escape_uri(offset));
        if let Some(tags) = &self.tags_raw {
            next.push_str("&tags=");
            next.push_str(&codec::escape_uri(tags));
        }
        if self.size_given {
            next.push_str(&format!("&size={}", self.size));
        }
        next
    }
}

/// The offset token is unpadded base64 of a JSON array holding the last row's id.
fn decode_offset(token: &str) -> Result<String, DaoError> {
    let invalid = |reason| DaoError::InvalidOffset {
        token: token.to_owned(),
        reason,
    };
    let bytes = codec::base64_decode(token).ok_or_else(|| invalid("bad base64 encoding"))?;
    let keys: Vec<String> =
        serde_json::from_slice(&bytes).map_err(|_| invalid("bad json encoding"))?;
    keys.into_iter()
        .next()
        .map(|id| id.to_ascii_lowercase())
        .ok_or_else(|| invalid("bad json encoding"))
}

fn encode_offset(id: &str) -> String {
    codec::base64_unpadded(json!([id]).to_string().as_bytes())
}

/// Takes up to `size` kept rows; the offset names the last one when more remain (Kong fetches
/// `size + 1` rows to find out).
fn paginate<'a, T: 'a>(
    rows: impl Iterator<Item = &'a T>,
    keep: impl Fn(&T) -> bool,
    size: usize,
    id: impl Fn(&T) -> &str,
) -> (Vec<&'a T>, Option<String>) {
    let mut page: Vec<&T> = rows.filter(|row| keep(row)).take(size + 1).collect();
    if page.len() > size {
        page.truncate(size);
        let offset = page.last().map(|row| encode_offset(id(row)));
        (page, offset)
    } else {
        (page, None)
    }
}

/// `{"data": [...], "next": …}` plus `offset` only when another page exists.
fn envelope(
    data: impl Iterator<Item = Value>,
    next: Option<String>,
    offset: Option<String>,
) -> SimResponse {
    let mut body = Map::new();
    body.insert("data".to_owned(), Value::Array(data.collect()));
    body.insert("next".to_owned(), next.map_or(Value::Null, Value::String));
    if let Some(offset) = offset {
        body.insert("offset".to_owned(), Value::String(offset));
    }
    SimResponse::json(200, &Value::Object(body))
}

/// Reads POST/PUT/PATCH arguments by Kong's content-type rules (`KONG.md` 1.8).
fn arguments(request: &SimRequest) -> Result<Map<String, Value>, Failure> {
    let content_types: Vec<&str> = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
        .collect();
    if content_types.len() > 1 {
        let mut reply = SimResponse::empty(400);
        reply.headers.push((
            "Content-Type".to_owned(),
            "text/plain; charset=utf-8".to_owned(),
        ));
        reply.body = b"Multiple Content-Type headers not allowed".to_vec();
        return Err(Failure::Reply(reply));
    }
    let Some(content_type) = content_types.first() else {
        return if request.body.is_empty() {
            Ok(Map::new())
        } else {
            Err(Failure::Reply(SimResponse::empty(415)))
        };
    };
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("application/json") {
        match serde_json::from_slice(&request.body) {
            Ok(Value::Object(args)) => Ok(args),
            _ => Err(Failure::Reply(SimResponse::message(
                400,
                "Cannot parse JSON body",
            ))),
        }
    } else if lower.starts_with("application/x-www-form-urlencoded") {
        Ok(codec::form_to_json(&String::from_utf8_lossy(&request.body)))
    } else if lower.starts_with("multipart/form-data") {
        Ok(codec::multipart_to_json(content_type, &request.body).unwrap_or_default())
    } else {
        Err(Failure::Reply(SimResponse::empty(415)))
    }
}

fn root_info(node: &NodeInfo) -> Value {
    let plugin = |priority: u32| json!({"version": KONG_VERSION, "priority": priority});
    json!({
        "tagline": "Welcome to kong",
        "version": KONG_VERSION,
        "edition": "community",
        "hostname": node.hostname,
        "node_id": node.node_id,
        "lua_version": "LuaJIT 2.1.0-20231117",
        "timers": {"running": 0, "pending": 1},
        "plugins": {
            "available_on_server": {
                "jwt": plugin(1450),
                "key-auth": plugin(1250),
                "basic-auth": plugin(1100),
                "acl": plugin(950),
                "rate-limiting": plugin(910),
                "cors": plugin(2000),
            },
            "enabled_in_cluster": ["jwt"],
        },
        "configuration": {
            "admin_listen": [node.listen],
            "database": "postgres",
            "role": "traditional",
            "headers": ["server_tokens", "latency_tokens", "X-Kong-Request-Id"],
            "simulator": true,
        },
        "pids": {"master": node.pid, "workers": [node.pid]},
    })
}

fn status_info(ambient: &Ambient) -> Value {
    let total = ambient.total_requests;
    json!({
        "server": {
            "connections_active": 1,
            "connections_reading": 0,
            "connections_writing": 1,
            "connections_waiting": 0,
            "connections_accepted": total,
            "connections_handled": total,
            "total_requests": total,
        },
        "memory": {
            "workers_lua_vms": [{"http_allocated_gc": "12.00 MiB", "pid": ambient.node.pid}],
            "lua_shared_dicts": {
                "kong": {"allocated_slabs": "0.04 MiB", "capacity": "5.00 MiB"},
                "kong_db_cache": {"allocated_slabs": "0.80 MiB", "capacity": "128.00 MiB"},
            },
        },
        "database": {"reachable": true},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "00000000-0000-4000-8000-000000000001";

    fn node() -> NodeInfo {
        NodeInfo {
            node_id: C1.to_owned(),
            hostname: "test".to_owned(),
            pid: 1,
            listen: "127.0.0.1:0".to_owned(),
        }
    }

    fn call(store: &mut Store, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = SimRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            ..SimRequest::default()
        };
        if let Some(body) = body {
            request
                .headers
                .push(("Content-Type".to_owned(), "application/json".to_owned()));
            request.body = body.to_string().into_bytes();
        }
        let node = node();
        let ambient = Ambient {
            node: &node,
            now: 100,
            total_requests: 0,
        };
        let response = match classify(url) {
            Some(target) => respond(store, &ambient, &request, &target),
            None => SimResponse::not_found(),
        };
        let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, body)
    }

    #[test]
    fn classify_paths() {
        // (url, expected (resource, konnect prefix, decoded segments))
        type Expected = Option<(Resource, bool, &'static [Option<&'static str>])>;
        let cases: [(&str, Expected); 11] = [
            ("/", Some((Resource::Root, false, &[]))),
            ("/consumers/", Some((Resource::Consumers, false, &[]))),
            (
                "/consumers/bob/jwt?size=1",
                Some((Resource::ConsumerJwts, false, &[Some("bob")])),
            ),
            (
                "/consumers/%C3%BC%20b%2Fc%3F/jwt/k/",
                Some((Resource::ConsumerJwt, false, &[Some("ü b/c?"), Some("k")])),
            ),
            (
                "/core-entities/consumers/x/jwt",
                Some((Resource::ConsumerJwts, true, &[Some("x")])),
            ),
            ("/jwts/%ff", Some((Resource::Jwt, false, &[None]))),
            (
                "/jwts/k/consumer",
                Some((Resource::JwtConsumer, false, &[Some("k")])),
            ),
            ("/Consumers", None),
            ("/consumers//jwt", None),
            ("/core-entities/status", None),
            ("/consumers/a/b", None),
        ];
        for (url, expected) in cases {
            let got = classify(url).map(|target| {
                (
                    target.resource,
                    target.konnect,
                    target
                        .segments
                        .iter()
                        .map(|segment| segment.decoded.clone())
                        .collect::<Vec<_>>(),
                )
            });
            let expected = expected.map(|(resource, konnect, segments)| {
                (
                    resource,
                    konnect,
                    segments
                        .iter()
                        .map(|segment| segment.map(str::to_owned))
                        .collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, expected, "for {url}");
        }
        assert_eq!(
            classify("/core-entities/consumers/x/jwt")
                .unwrap()
                .template(),
            "/core-entities/consumers/{c}/jwt"
        );
    }

    #[test]
    fn nested_credentials_flow() {
        let mut store = Store::new();
        let (status, _) = call(&mut store, "GET", "/consumers/nobody/jwt", None);
        assert_eq!(status, 404);
        let (status, bob) = call(
            &mut store,
            "POST",
            "/consumers",
            Some(json!({"username": "bob"})),
        );
        assert_eq!(status, 201);
        let (status, alice) = call(
            &mut store,
            "POST",
            "/consumers",
            Some(json!({"username": "alice"})),
        );
        assert_eq!(status, 201);
        let (status, body) = call(
            &mut store,
            "POST",
            "/consumers",
            Some(json!({"username": "bob"})),
        );
        assert_eq!((status, body["code"].as_i64()), (409, Some(5)));

        let (status, made) = call(
            &mut store,
            "POST",
            "/consumers/bob/jwt",
            Some(json!({"key": "k1"})),
        );
        assert_eq!(status, 201);
        assert_eq!(made["consumer"]["id"], bob["id"]);
        let (status, body) = call(
            &mut store,
            "POST",
            "/consumers/alice/jwt",
            Some(json!({"key": "k1"})),
        );
        assert_eq!(status, 409);
        assert_eq!(
            body["message"],
            "UNIQUE violation detected on '{key=\"k1\"}'"
        );

        let (status, list) = call(&mut store, "GET", "/consumers/bob/jwt", None);
        assert_eq!(status, 200);
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert!(list.get("offset").is_none());
        assert_eq!(list["next"], Value::Null);

        // A credential is only reachable under its own consumer.
        let alice_path = format!("/consumers/{}/jwt/k1", alice["id"].as_str().unwrap());
        assert_eq!(call(&mut store, "GET", &alice_path, None).0, 404);
        assert_eq!(call(&mut store, "DELETE", &alice_path, None).0, 404);
        assert_eq!(
            call(&mut store, "GET", "/consumers/bob/jwt/k1", None).0,
            200
        );
        let (status, patched) = call(
            &mut store,
            "PATCH",
            "/consumers/bob/jwt/k1",
            Some(json!({"secret": "s2"})),
        );
        assert_eq!((status, patched["secret"].as_str()), (200, Some("s2")));
        assert_eq!(
            call(&mut store, "GET", "/jwts/k1/consumer", None).1["username"],
            "bob"
        );
        assert_eq!(
            call(&mut store, "DELETE", "/consumers/bob/jwt/k1", None).0,
            204
        );
        assert_eq!(call(&mut store, "GET", "/jwts/k1", None).0, 404);
        assert_eq!(call(&mut store, "DELETE", "/jwts/k1", None).0, 204);
    }

    #[test]
    fn errors_and_methods() {
        let mut store = Store::new();
        assert_eq!(
            call(&mut store, "GET", "/nope", None),
            (404, json!({"message": "Not found"}))
        );
        assert_eq!(
            call(&mut store, "DELETE", "/consumers", None),
            (405, json!({"message": "Method not allowed"}))
        );
        let (status, body) = call(&mut store, "POST", "/consumers", Some(json!({})));
        assert_eq!((status, body["code"].as_i64()), (400, Some(2)));
        let (status, body) = call(&mut store, "PATCH", "/consumers/ghost", Some(json!({})));
        assert_eq!((status, body["code"].as_i64()), (404, Some(6)));
        let (status, body) = call(&mut store, "GET", "/consumers?size=0", None);
        assert_eq!((status, body["code"].as_i64()), (400, Some(9)));
        let (status, body) = call(&mut store, "GET", "/consumers?size=x", None);
        assert_eq!(body["message"], "size must be a number", "{status}");
        let (status, body) = call(&mut store, "GET", "/jwts?offset=!!", None);
        assert_eq!((status, body["code"].as_i64()), (400, Some(7)));
        let (status, body) = call(&mut store, "GET", "/consumers?custom_id=", None);
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("custom_id must be an unempty string"))
        );
        let (status, body) = call(
            &mut store,
            "POST",
            "/jwts",
            Some(json!({"consumer": {"id": C1}})),
        );
        assert_eq!((status, body["code"].as_i64()), (400, Some(4)));
    }

    #[test]
    fn pagination_walks_every_row_once() {
        let mut store = Store::new();
        for index in 0..5 {
            let body =
                json!({"username": format!("user-{index}"), "custom_id": format!("c{index}")});
            assert_eq!(call(&mut store, "POST", "/consumers", Some(body)).0, 201);
        }
        let mut seen = Vec::new();
        let mut url = "/consumers?size=2".to_owned();
        loop {
            let (status, page) = call(&mut store, "GET", &url, None);
            assert_eq!(status, 200);
            for row in page["data"].as_array().unwrap() {
                seen.push(row["id"].as_str().unwrap().to_owned());
            }
            match page["next"].as_str() {
                Some(next) => {
                    assert!(next.ends_with("&size=2"), "{next}");
                    assert!(page["offset"].is_string());
                    url = next.to_owned();
                }
                None => {
                    assert!(page.get("offset").is_none());
                    break;
                }
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "listed in id order");
        assert_eq!(seen.len(), 5);
        let (_, found) = call(&mut store, "GET", "/consumers?custom_id=c3", None);
        assert_eq!(found["data"][0]["username"], "user-3");
    }

    #[test]
    fn content_type_rules() {
        let mut store = Store::new();
        let node = node();
        let ambient = Ambient {
            node: &node,
            now: 1,
            total_requests: 0,
        };
        let target = classify("/consumers").unwrap();
        let send = |store: &mut Store, content_type: Option<&str>, body: &str| {
            let mut request = SimRequest {
                method: "POST".to_owned(),
                url: "/consumers".to_owned(),
                body: body.as_bytes().to_vec(),
                ..SimRequest::default()
            };
            if let Some(content_type) = content_type {
                request
                    .headers
                    .push(("Content-Type".to_owned(), content_type.to_owned()));
            }
            respond(store, &ambient, &request, &target)
        };
        assert_eq!(send(&mut store, Some("text/plain"), "x").status, 415);
        assert_eq!(send(&mut store, None, "x").status, 415);
        let bad = send(&mut store, Some("application/json"), "{");
        assert_eq!(bad.status, 400);
        assert_eq!(bad.body, br#"{"message":"Cannot parse JSON body"}"#);
        assert_eq!(
            send(
                &mut store,
                Some("application/x-www-form-urlencoded"),
                "username=a%20b&tags=x"
            )
            .status,
            201
        );
        assert_eq!(
            store.consumer_by_segment("a b").unwrap().tags,
            Some(vec!["x".to_owned()])
        );
        // No body and no type reaches the schema (which then wants a name).
        assert_eq!(send(&mut store, None, "").status, 400);
    }
}
