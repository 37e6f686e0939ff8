//! `/tokens` (issue) and `/tokens/validate` (validate): the checks, in the order of SPEC 2.2
//! and 2.3, and the mapping of every failure to its AUTH code.

use std::io::Write as _;

use crate::app::App;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::{Body, Request, Response};
use crate::kong::LookupError;
use crate::metrics::ValidationResult;
use crate::{jwt, timefmt};

/// Seconds a client should wait after AUTH_004 (Kong failed) before retrying.
const KONG_RETRY_AFTER_SECONDS: u64 = 30;
/// Seconds a client should wait after AUTH_004 because too many workers wait on Kong: the
/// condition clears as soon as one lookup ends.
const SATURATED_RETRY_AFTER_SECONDS: u64 = 1;
/// Tokens longer than this are not ours (ours are well under 1 KiB).
const MAX_TOKEN_LENGTH: usize = 8192;

/// The consumer Kong authenticated, from its forwarded headers.
struct Consumer<'a> {
    id: &'a str,
    username: &'a str,
}

/// Consumer headers, their lengths, the dot segments and the anonymous flag, in that order.
fn consumer<'a>(app: &App, request: &Request<'a>) -> Result<Consumer<'a>, Problem> {
    let id = request.header("x-consumer-id").unwrap_or("");
    let username = request.header("x-consumer-username").unwrap_or("");
    if id.is_empty() || username.is_empty() {
        let missing = match (id.is_empty(), username.is_empty()) {
            (true, true) => "X-Consumer-ID and X-Consumer-Username headers are required",
            (true, false) => "X-Consumer-ID header is required",
            _ => "X-Consumer-Username header is required",
        };
        return Err(Problem::auth(ErrorCode::MissingConsumerHeaders, missing));
    }
    let limit = app.config.server.max_header_length;
    for (name, value) in [("X-Consumer-ID", id), ("X-Consumer-Username", username)] {
        if value.len() > limit {
            return Err(Problem::auth(
                ErrorCode::InvalidRequestFormat,
                format!("{name} is longer than {limit} bytes"),
            ));
        }
    }
    // The id becomes a path segment of the Kong Admin API URL. `.` and `..` are dot segments
    // there whatever we do: a normalising proxy in front of Kong decodes `%2E` and resolves
    // `/consumers/../jwt` to another path. No Kong consumer can have such an id or username.
    if matches!(id, "." | "..") {
        return Err(Problem::auth(
            ErrorCode::InvalidRequestFormat,
            "X-Consumer-ID must not be \".\" or \"..\"",
        ));
    }
    if request
        .header("x-anonymous-consumer")
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
    {
        return Err(Problem::auth(
            ErrorCode::AnonymousConsumer,
            "Anonymous consumers are not allowed to request tokens",
        )
        .with_extension("reason", "Anonymous consumers are not allowed"));
    }
    Ok(Consumer { id, username })
}

fn lookup_problem(err: LookupError) -> Problem {
    match err {
        LookupError::NotFound(reason) => {
            Problem::auth(ErrorCode::ConsumerNotFound, "consumer not found in kong")
                .with_extension("reason", reason)
        }
        LookupError::Unavailable(cause) => {
            Problem::auth(ErrorCode::KongUnavailable, "kong admin api is unavailable")
                .with_extension("reason", cause)
                .with_retry_after(KONG_RETRY_AFTER_SECONDS)
        }
        LookupError::BreakerOpen { retry_after } => Problem::auth(
            ErrorCode::CircuitBreakerOpen,
            "kong circuit breaker is open; retry later",
        )
        .with_retry_after(retry_after.as_secs_f64().ceil().max(1.0) as u64),
        LookupError::Saturated => Problem::auth(
            ErrorCode::KongUnavailable,
            "the service is saturated waiting on kong; retry shortly",
        )
        .with_extension("reason", "too many requests are waiting on kong")
        .with_retry_after(SATURATED_RETRY_AFTER_SECONDS),
    }
}

/// `GET|POST /tokens`.
pub fn issue(app: &App, request: &Request<'_>) -> Response {
    let consumer = match consumer(app, request) {
        Ok(consumer) => consumer,
        Err(problem) => return problem.into_response(request),
    };
    let key = match app.store.credential(consumer.id) {
        Ok(key) => key,
        Err(err) => return lookup_problem(err).into_response(request),
    };
    let issued = match app
        .issuer
        .issue(consumer.username, &key, timefmt::unix_now())
    {
        Ok(issued) => issued,
        Err(err) => {
            log::error!("{err}");
            return Problem::auth(
                ErrorCode::JwtCreationFailed,
                "the token could not be signed",
            )
            .into_response(request);
        }
    };
    app.metrics
        .tokens_issued
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Written by hand: the token is base64url and dots, so it needs no escaping, and this is
    // the hottest response of the service.
    let mut body = Vec::with_capacity(issued.token.len() + 64);
    body.extend_from_slice(b"{\"access_token\":\"");
    body.extend_from_slice(issued.token.as_bytes());
    body.extend_from_slice(b"\",\"expires_in\":");
    // Written in place: `to_string` would allocate a String per token for a few digits.
    let _ = write!(body, "{}", issued.expires_in);
    body.extend_from_slice(b",\"token_type\":\"Bearer\"}");
    Response::new(200)
        .with_header("Content-Type", crate::http::response::JSON)
        .with_header("Cache-Control", "no-store")
        .with_header("Pragma", "no-cache")
        .with_body(Body::Bytes(body))
}

/// `GET|POST /tokens/validate`.
pub fn validate(app: &App, request: &Request<'_>) -> Response {
    let token = match bearer_token(request) {
        Ok(token) => token,
        Err(problem) => {
            app.metrics.record_validation(ValidationResult::Rejected);
            return problem.into_response(request);
        }
    };
    let consumer = match consumer(app, request) {
        Ok(consumer) => consumer,
        Err(problem) => {
            app.metrics.record_validation(ValidationResult::Rejected);
            return problem.into_response(request);
        }
    };
    let key = match app.store.credential(consumer.id) {
        Ok(key) => key,
        Err(err) => {
            app.metrics.record_validation(ValidationResult::Rejected);
            return lookup_problem(err).into_response(request);
        }
    };
    let now = timefmt::unix_now() as i64;
    match app.issuer.validate(token, &key, now) {
        Ok(valid) => {
            app.metrics.record_validation(ValidationResult::Valid);
            Response::json_bytes(200, validation_body(&valid, now))
                .with_header("Cache-Control", "no-store")
        }
        Err(jwt::Rejection::Expired { expired_at }) => {
            app.metrics.record_validation(ValidationResult::Expired);
            Problem::auth(ErrorCode::TokenExpired, "the token has expired")
                .with_extension("expiredAt", timefmt::iso8601(expired_at))
                .into_response(request)
        }
        Err(jwt::Rejection::Invalid(reason)) => {
            app.metrics.record_validation(ValidationResult::Invalid);
            Problem::auth(ErrorCode::InvalidToken, "the token is not valid")
                .with_extension("reason", reason)
                .into_response(request)
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
/// The 200 body of `/tokens/validate`, written straight into one buffer. It used to go
/// through `serde_json::json!`, which built a map of owned strings per request; the keys stay
/// in the order that map gave them (sorted), so the bytes are unchanged.
fn validation_body(valid: &jwt::ValidToken, now: i64) -> Vec<u8> {
    let mut body = Vec::with_capacity(320);
    // Writes into a Vec cannot fail, and these values always serialize (strings, numbers
    // and the configured audience), so the results carry no information.
    body.extend_from_slice(b"{\"audience\":");
    let _ = serde_json::to_writer(&mut body, &valid.audience);
    body.extend_from_slice(b",\"expiresAt\":\"");
    timefmt::push_iso8601_millis(&mut body, valid.expires_at, 0);
    let _ = write!(
        body,
        "\",\"expiresIn\":{},\"issuedAt\":",
        valid.expires_at - now
    );
    match valid.issued_at {
        Some(issued_at) => {
            body.push(b'"');
            timefmt::push_iso8601_millis(&mut body, issued_at, 0);
            body.push(b'"');
        }
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(b",\"issuer\":");
    let _ = serde_json::to_writer(&mut body, &valid.issuer);
    body.extend_from_slice(b",\"subject\":");
    let _ = serde_json::to_writer(&mut body, &valid.subject);
    body.extend_from_slice(b",\"tokenId\":");
    let _ = serde_json::to_writer(&mut body, &valid.token_id);
    body.extend_from_slice(b",\"valid\":true}");
    body
}

fn bearer_token<'a>(request: &Request<'a>) -> Result<&'a str, Problem> {
    let missing = || {
        Problem::auth(
            ErrorCode::MissingAuthorization,
            "an Authorization: Bearer <token> header is required",
        )
    };
    let value = request.header("authorization").ok_or_else(missing)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(missing());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(
            Problem::auth(ErrorCode::InvalidToken, "the bearer token is empty")
                .with_extension("reason", "empty token"),
        );
    }
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(
            Problem::auth(ErrorCode::InvalidToken, "the token is not valid")
                .with_extension("reason", "token is too long"),
        );
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the handler wrote before `validation_body`: the bytes must not change.
    fn old_body(valid: &jwt::ValidToken, now: i64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "valid": true,
            "tokenId": valid.token_id,
            "subject": valid.subject,
            "issuer": valid.issuer,
            "audience": valid.audience,
            "issuedAt": valid.issued_at.map(timefmt::iso8601),
            "expiresAt": timefmt::iso8601(valid.expires_at),
            "expiresIn": valid.expires_at - now,
        }))
        .unwrap()
    }

    #[test]
    fn validation_body_matches_the_json_map_bytes() {
        let check = |valid: jwt::ValidToken| {
            let now = 1_767_225_600;
            assert_eq!(
                String::from_utf8(validation_body(&valid, now)).unwrap(),
                String::from_utf8(old_body(&valid, now)).unwrap()
            );
        };
        check(jwt::ValidToken {
            token_id: Some("3ff72136-ee41-43ca-b214-a0c93865fc3e".to_owned()),
            subject: Some("test-consumer-001".to_owned()),
            issuer: "https://auth.example.com".to_owned(),
            audience: serde_json::json!("kong-api"),
            issued_at: Some(1_767_225_000),
            expires_at: 1_767_226_500,
        });
        check(jwt::ValidToken {
            token_id: None,
            subject: Some("quote \" back\\slash \u{1} é".to_owned()),
            issuer: "i".to_owned(),
            audience: serde_json::json!(["a", "b"]),
            issued_at: None,
            expires_at: 1_767_225_601,
        });
    }
}
