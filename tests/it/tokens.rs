//! `/tokens` and `/tokens/validate` end to end: the SPEC 2.1 error table, the claim set, and
//! the validation rejections, against a real kong-sim.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::{self, AUDIENCE, AUTHORITY, CONSUMER_ID, CONSUMER_KEY, CONSUMER_NAME, Reply};

/// Request headers of one table row.
type Headers<'a> = Vec<(&'a str, &'a str)>;

const SECOND_ID: &str = "00000000-0000-4000-8000-000000000002";
const SECOND_NAME: &str = "test-consumer-002";

fn assert_problem(reply: &Reply, status: u16, code: Option<&str>) -> Value {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{reply:?}"
    );
    let body = reply.json();
    match code {
        Some(code) => {
            assert_eq!(body["code"], code, "{body}");
            let expected_type = format!(
                "urn:problem-type:auth-service/{}",
                code.to_lowercase().replace('_', "-")
            );
            assert_eq!(body["type"], expected_type);
        }
        None => {
            assert!(body.get("code").is_none(), "{body}");
            assert_eq!(body["type"], "about:blank");
        }
    }
    for field in ["title", "detail", "instance", "requestId", "timestamp"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
    assert_eq!(body["status"], status);
    assert_eq!(body["requestId"].as_str(), reply.header("x-request-id"));
    body
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn sign(header: &Value, claims: &Value, secret: &str, algorithm: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        algorithm,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

fn issue(url: &str, id: &str, name: &str) -> String {
    let reply = support::get(&format!("{url}/tokens"), &support::consumer(id, name));
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn validate(url: &str, token: &str, id: &str, name: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    let [a, b] = support::consumer(id, name);
    support::request(
        "POST",
        &format!("{url}/tokens/validate"),
        &[("Authorization", &bearer), a, b],
        None,
    )
}

#[test]
fn issued_token_verifies_with_the_kong_secret_and_carries_every_claim() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[("JWT_EXPIRATION_MINUTES", "5")]);
    let reply = support::get(
        &format!("{}/tokens", server.url),
        &support::consumer(CONSUMER_ID, CONSUMER_NAME),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap();

    let (key, secret) = support::credential_of(&sim.url, CONSUMER_ID);
    assert_eq!(key, CONSUMER_KEY);
    let (message, signature) = token.rsplit_once('.').unwrap();
    let verified = jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    assert!(verified, "signature must verify with the secret Kong holds");

    assert_eq!(decode_part(token, 0), json!({"alg": "HS256", "typ": "JWT"}));
    let claims = decode_part(token, 1);
    assert_eq!(claims["sub"], CONSUMER_NAME);
    assert_eq!(claims["key"], CONSUMER_KEY);
    assert_eq!(claims["iss"], AUTHORITY);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["name"], CONSUMER_NAME);
    assert_eq!(
        claims["unique_name"],
        format!("pvhcorp.com#{CONSUMER_NAME}")
    );
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    assert_eq!(claims["iat"], claims["nbf"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    let second = issue(&server.url, CONSUMER_ID, CONSUMER_NAME);
    assert_ne!(
        decode_part(&second, 1)["jti"],
        claims["jti"],
        "jti is unique per token"
    );
}

#[test]
fn key_claim_name_issuer_and_several_audiences_follow_config() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(
        &sim.url,
        &[
            ("KONG_JWT_AUDIENCE", "api-a,api-b"),
            ("KONG_JWT_ISSUER", "issuer-one,issuer-two"),
            ("KONG_JWT_KEY_CLAIM_NAME", "iss_key"),
            ("JWT_UNIQUE_NAME_PREFIX", "corp#"),
        ],
    );
    let token = issue(&server.url, CONSUMER_ID, CONSUMER_NAME);
    let claims = decode_part(&token, 1);
    assert_eq!(claims["aud"], json!(["api-a", "api-b"]));
    assert_eq!(claims["iss"], "issuer-one");
    assert_eq!(claims["iss_key"], CONSUMER_KEY);
    assert!(claims.get("key").is_none());
    assert_eq!(claims["unique_name"], format!("corp#{CONSUMER_NAME}"));
    let reply = validate(&server.url, &token, CONSUMER_ID, CONSUMER_NAME);
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn error_table_for_requests() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[]);
    let url = format!("{}/tokens", server.url);
    let long = "x".repeat(257);
    let cases: Vec<(&str, Headers, u16, &str)> = vec![
        ("no headers", vec![], 401, "AUTH_001"),
        (
            "no username",
            vec![("X-Consumer-ID", CONSUMER_ID)],
            401,
            "AUTH_001",
        ),
        (
            "no id",
            vec![("X-Consumer-Username", CONSUMER_NAME)],
            401,
            "AUTH_001",
        ),
        (
            "empty id",
            vec![
                ("X-Consumer-ID", ""),
                ("X-Consumer-Username", CONSUMER_NAME),
            ],
            401,
            "AUTH_001",
        ),
        (
            "long id",
            vec![
                ("X-Consumer-ID", &long),
                ("X-Consumer-Username", CONSUMER_NAME),
            ],
            400,
            "AUTH_007",
        ),
        (
            "long username",
            vec![
                ("X-Consumer-ID", CONSUMER_ID),
                ("X-Consumer-Username", &long),
            ],
            400,
            "AUTH_007",
        ),
        (
            "anonymous",
            vec![
                ("X-Consumer-ID", CONSUMER_ID),
                ("X-Consumer-Username", CONSUMER_NAME),
                ("X-Anonymous-Consumer", "TRUE"),
            ],
            401,
            "AUTH_009",
        ),
        (
            "unknown consumer",
            vec![
                ("X-Consumer-ID", "00000000-0000-4000-8000-00000000ffff"),
                ("X-Consumer-Username", "ghost"),
            ],
            401,
            "AUTH_002",
        ),
    ];
    for (name, headers, status, code) in cases {
        for method in ["GET", "POST"] {
            let reply = support::request(method, &url, &headers, None);
            let body = assert_problem(&reply, status, Some(code));
            assert_eq!(body["instance"], "/tokens", "{name}");
        }
    }
    let anonymous_false = support::request(
        "GET",
        &url,
        &[
            ("X-Consumer-ID", CONSUMER_ID),
            ("X-Consumer-Username", CONSUMER_NAME),
            ("X-Anonymous-Consumer", "false"),
        ],
        None,
    );
    assert_eq!(
        anonymous_false.status, 200,
        "X-Anonymous-Consumer: false is a real consumer"
    );
}

#[test]
fn error_table_for_validation() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[]);
    let url = format!("{}/tokens/validate", server.url);
    let [id, name] = support::consumer(CONSUMER_ID, CONSUMER_NAME);
    let cases: Vec<(Headers, u16, &str)> = vec![
        (vec![id, name], 400, "AUTH_012"),
        (
            vec![("Authorization", "Basic abc"), id, name],
            400,
            "AUTH_012",
        ),
        (
            vec![("Authorization", "Bearer "), id, name],
            400,
            "AUTH_011",
        ),
        (vec![("Authorization", "Bearer a.b.c")], 401, "AUTH_001"),
        (
            vec![("Authorization", "Bearer not-a-token"), id, name],
            400,
            "AUTH_011",
        ),
    ];
    for (headers, status, code) in cases {
        let reply = support::request("GET", &url, &headers, None);
        assert_problem(&reply, status, Some(code));
    }
}

#[test]
fn validation_accepts_our_tokens_and_rejects_every_forgery() {
    let sim = support::kong_sim(&[]);
    let server = support::serve(&sim.url, &[]);
    let token = issue(&server.url, CONSUMER_ID, CONSUMER_NAME);
    let reply = validate(&server.url, &token, CONSUMER_ID, CONSUMER_NAME);
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["valid"], true);
    assert_eq!(body["subject"], CONSUMER_NAME);
    assert_eq!(body["issuer"], AUTHORITY);
    assert_eq!(body["audience"], AUDIENCE);
    assert_eq!(body["tokenId"], decode_part(&token, 1)["jti"]);
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert!(body["expiresIn"].as_i64().unwrap() > 800);

    let (_, secret) = support::credential_of(&sim.url, CONSUMER_ID);
    let now = decode_part(&token, 1)["iat"].as_i64().unwrap();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let good = json!({"sub": CONSUMER_NAME, "key": CONSUMER_KEY, "iat": now, "nbf": now, "exp": now + 600, "iss": AUTHORITY, "aud": AUDIENCE});
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        match value {
            Value::Null => {
                claims.as_object_mut().unwrap().remove(field);
            }
            value => claims[field] = value,
        }
        sign(&hs256, &claims, &secret, Algorithm::HS256)
    };
    let mut tampered = token.clone();
    let flipped = if tampered.ends_with('A') { 'B' } else { 'A' };
    tampered.pop();
    tampered.push(flipped);
    let payload = token.split('.').nth(1).unwrap();
    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let hs512 = sign(
        &json!({"alg": "HS512", "typ": "JWT"}),
        &good,
        &secret,
        Algorithm::HS512,
    );
    let other_consumer = issue(&server.url, SECOND_ID, SECOND_NAME);

    let rejected: Vec<(&str, String, &str)> = vec![
        ("tampered signature", tampered, "AUTH_011"),
        ("alg none", alg_none, "AUTH_011"),
        ("HS512", hs512, "AUTH_011"),
        ("missing exp", with("exp", Value::Null), "AUTH_011"),
        ("expired", with("exp", json!(now - 10)), "AUTH_010"),
        ("exp equals now", with("exp", json!(now - 1)), "AUTH_010"),
        (
            "nbf in the future",
            with("nbf", json!(now + 3600)),
            "AUTH_011",
        ),
        (
            "wrong iss",
            with("iss", json!("https://evil.test")),
            "AUTH_011",
        ),
        ("wrong aud", with("aud", json!("other-api")), "AUTH_011"),
        (
            "wrong key claim",
            with("key", json!("test-key-002")),
            "AUTH_011",
        ),
        ("another consumer's token", other_consumer, "AUTH_011"),
        ("garbage", "garbage".to_owned(), "AUTH_011"),
        ("four parts", format!("{token}.x"), "AUTH_011"),
    ];
    for (name, forged, code) in rejected {
        let reply = validate(&server.url, &forged, CONSUMER_ID, CONSUMER_NAME);
        let body = assert_problem(
            &reply,
            if code == "AUTH_010" { 401 } else { 400 },
            Some(code),
        );
        match code {
            "AUTH_010" => assert!(
                body["extensions"]["expiredAt"].is_string(),
                "{name}: {body}"
            ),
            _ => assert!(body["extensions"]["reason"].is_string(), "{name}: {body}"),
        }
    }
}
