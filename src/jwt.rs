//! JWT issuing and validation: the claim set of SPEC 2.2 and the checks of SPEC 2.3.
//!
//! Pure: the caller passes `now` (Unix seconds) and the credential; nothing here reads a clock,
//! the network or the environment. Signing and the constant-time signature check go through
//! `jsonwebtoken::crypto`; the header and claims are encoded here so the claim order and the
//! header bytes are exactly what Kong's jwt plugin and our old clients expect.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Map, Value};

use crate::config::JwtConfig;
use crate::ids;

/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded once.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The signing settings derived from config once at start-up.
pub struct Issuer {
    key_claim_name: String,
    lifetime_seconds: u64,
    issuer: String,
    audience: Vec<String>,
    unique_name_prefix: String,
    /// `"iss":…,"aud":…` pre-rendered: it is the same for every token.
    iss_aud_fragment: String,
}

/// A credential as the signer needs it.
/// Both jsonwebtoken keys are built once per credential (it is cached), not per request.
pub struct SigningKey {
    pub key: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    pub fn new(key: String, secret: &str) -> SigningKey {
        SigningKey {
            key,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One issued token and the numbers the response reports.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

#[derive(Debug)]
pub struct SignError(jsonwebtoken::errors::Error);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot sign token: {}", self.0)
    }
}

impl std::error::Error for SignError {}

/// Why a token was rejected; `Expired` is AUTH_010, everything else AUTH_011.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Expired { expired_at: i64 },
    Invalid(&'static str),
}

/// The claims of an accepted token that the validate response reports.
#[derive(Debug)]
pub struct ValidToken {
    pub token_id: Option<String>,
    pub subject: Option<String>,
    pub issuer: String,
    pub audience: Value,
    pub issued_at: Option<i64>,
    pub expires_at: i64,
}

impl Issuer {
    pub fn new(config: &JwtConfig) -> Issuer {
        let mut iss_aud_fragment = String::from("\"iss\":");
        push_json_string(&mut iss_aud_fragment, &config.issuer);
        iss_aud_fragment.push_str(",\"aud\":");
        if let [only] = config.audience.as_slice() {
            push_json_string(&mut iss_aud_fragment, only);
        } else {
            iss_aud_fragment.push('[');
            for (index, audience) in config.audience.iter().enumerate() {
                if index > 0 {
                    iss_aud_fragment.push(',');
                }
                push_json_string(&mut iss_aud_fragment, audience);
            }
            iss_aud_fragment.push(']');
        }
        Issuer {
            key_claim_name: config.key_claim_name.clone(),
            lifetime_seconds: config.expiration_minutes * 60,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            unique_name_prefix: config.unique_name_prefix.clone(),
            iss_aud_fragment,
        }
    }

    pub fn lifetime_seconds(&self) -> u64 {
        self.lifetime_seconds
    }

    /// Signs the SPEC 2.2 claim set, in order: sub, key claim, jti, iat, nbf, exp, iss, aud,
    /// name, unique_name.
    pub fn issue(
        &self,
        username: &str,
        key: &SigningKey,
        now: u64,
    ) -> Result<IssuedToken, SignError> {
        let jti = ids::uuid_v4();
        let mut claims = String::with_capacity(256 + 3 * username.len());
        claims.push_str("{\"sub\":");
        push_json_string(&mut claims, username);
        claims.push(',');
        push_json_string(&mut claims, &self.key_claim_name);
        claims.push(':');
        push_json_string(&mut claims, &key.key);
        claims.push_str(",\"jti\":\"");
        claims.push_str(jti.as_str());
        let exp = now + self.lifetime_seconds;
        use std::fmt::Write as _;
        let _ = write!(claims, "\",\"iat\":{now},\"nbf\":{now},\"exp\":{exp},");
        claims.push_str(&self.iss_aud_fragment);
        claims.push_str(",\"name\":");
        push_json_string(&mut claims, username);
        claims.push_str(",\"unique_name\":\"");
        push_json_string_body(&mut claims, &self.unique_name_prefix);
        push_json_string_body(&mut claims, username);
        claims.push_str("\"}");

        let mut token = String::with_capacity(HEADER_B64.len() + claims.len() * 4 / 3 + 50);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
        let signature =
            crypto::sign(token.as_bytes(), &key.encoding, Algorithm::HS256).map_err(SignError)?;
        token.push('.');
        token.push_str(&signature);
        Ok(IssuedToken {
            token,
            expires_in: self.lifetime_seconds,
        })
    }

    /// Checks `token` for the consumer whose credential is `key`, at `now`.
    pub fn validate(
        &self,
        token: &str,
        key: &SigningKey,
        now: i64,
    ) -> Result<ValidToken, Rejection> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Invalid(
                "token must have three dot-separated parts",
            ));
        };
        let is_base64url_part = |part: &str| !part.is_empty() && part.bytes().all(is_base64url);
        if !is_base64url_part(header_b64) || !is_base64url_part(payload_b64) {
            return Err(Rejection::Invalid("token parts must be base64url"));
        }
        // Our own tokens carry exactly this header; anything else is decoded and checked.
        if header_b64 != HEADER_B64 {
            let header = decode_object(header_b64)
                .ok_or(Rejection::Invalid("token header is not a JSON object"))?;
            match header.get("alg").and_then(Value::as_str) {
                Some("HS256") => {}
                Some(_) => {
                    return Err(Rejection::Invalid(
                        "unsupported algorithm: only HS256 is accepted",
                    ));
                }
                None => return Err(Rejection::Invalid("token header has no alg")),
            }
        }
        if !is_base64url_part(signature_b64) {
            return Err(Rejection::Invalid("token parts must be base64url"));
        }
        let message_len = header_b64.len() + 1 + payload_b64.len();
        let message = &token.as_bytes()[..message_len];
        match crypto::verify(signature_b64, message, &key.decoding, Algorithm::HS256) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(Rejection::Invalid("signature does not match")),
        }
        let claims = decode_claims(payload_b64, &self.key_claim_name)
            .ok_or(Rejection::Invalid("token payload is not a JSON object"))?;

        let exp = match &claims.exp {
            Some(Value::Number(number)) => number
                .as_i64()
                .or_else(|| number.as_f64().map(|f| f.floor() as i64))
                .ok_or(Rejection::Invalid("exp claim must be a number"))?,
            Some(_) => return Err(Rejection::Invalid("exp claim must be a number")),
            None => return Err(Rejection::Invalid("exp claim is required")),
        };
        if exp <= now {
            return Err(Rejection::Expired { expired_at: exp });
        }
        match &claims.nbf {
            None => {}
            Some(Value::Number(number)) if number.as_f64().is_none_or(|nbf| nbf > now as f64) => {
                return Err(Rejection::Invalid(
                    "token is not valid yet (nbf is in the future)",
                ));
            }
            Some(Value::Number(_)) => {}
            Some(_) => return Err(Rejection::Invalid("nbf claim must be a number")),
        }
        match claims.iss.as_ref().and_then(Value::as_str) {
            Some(issuer) if issuer == self.issuer => {}
            Some(_) => return Err(Rejection::Invalid("issuer does not match")),
            None => return Err(Rejection::Invalid("iss claim is required")),
        }
        let audience = claims.aud.unwrap_or(Value::Null);
        let audience_matches = match &audience {
            Value::String(one) => self.audience.iter().any(|expected| expected == one),
            Value::Array(many) => many
                .iter()
                .filter_map(Value::as_str)
                .any(|one| self.audience.iter().any(|expected| expected == one)),
            _ => false,
        };
        if !audience_matches {
            return Err(Rejection::Invalid("audience does not match"));
        }
        match claims.key.as_ref().and_then(Value::as_str) {
            Some(claimed) if claimed == key.key => {}
            Some(_) => {
                return Err(Rejection::Invalid(
                    "token was issued for another credential",
                ));
            }
            None => return Err(Rejection::Invalid("key claim is missing")),
        }
        Ok(ValidToken {
            token_id: into_string(claims.jti),
            subject: into_string(claims.sub),
            issuer: self.issuer.clone(),
            audience,
            issued_at: claims.iat.as_ref().and_then(Value::as_i64),
            expires_at: exp,
        })
    }
}

fn is_base64url(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The claims validation looks at; every other member of the payload is skipped unparsed.
#[derive(Default)]
struct Claims {
    sub: Option<Value>,
    key: Option<Value>,
    jti: Option<Value>,
    iat: Option<Value>,
    nbf: Option<Value>,
    exp: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
}

/// The payload as `Claims`, `None` unless it is base64url of a JSON object. Decoding into a
/// fixed struct instead of a `Map` saves a tree of allocations per validation.
fn decode_claims(part: &str, key_claim: &str) -> Option<Claims> {
    use serde::de::DeserializeSeed;
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
    let claims = ClaimsSeed { key_claim }
        .deserialize(&mut deserializer)
        .ok()?;
    deserializer.end().ok()?;
    Some(claims)
}

struct ClaimsSeed<'k> {
    key_claim: &'k str,
}

impl<'de> serde::de::DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Claims, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ClaimsSeed<'_> {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = Claims::default();
        while let Some(slot) = map.next_key_seed(SlotSeed {
            key_claim: self.key_claim,
        })? {
            let target = match slot {
                Slot::Sub => &mut claims.sub,
                Slot::Key => &mut claims.key,
                Slot::Jti => &mut claims.jti,
                Slot::Iat => &mut claims.iat,
                Slot::Nbf => &mut claims.nbf,
                Slot::Exp => &mut claims.exp,
                Slot::Iss => &mut claims.iss,
                Slot::Aud => &mut claims.aud,
                Slot::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
            };
            *target = Some(map.next_value()?);
        }
        Ok(claims)
    }
}

enum Slot {
    Sub,
    Key,
    Jti,
    Iat,
    Nbf,
    Exp,
    Iss,
    Aud,
    Other,
}

/// Classifies a member name without allocating it.
struct SlotSeed<'k> {
    key_claim: &'k str,
}

impl<'de> serde::de::DeserializeSeed<'de> for SlotSeed<'_> {
    type Value = Slot;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for SlotSeed<'_> {
    type Value = Slot;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Slot, E> {
        Ok(match name {
            name if name == self.key_claim => Slot::Key,
            "sub" => Slot::Sub,
            "jti" => Slot::Jti,
            "iat" => Slot::Iat,
            "nbf" => Slot::Nbf,
            "exp" => Slot::Exp,
            "iss" => Slot::Iss,
            "aud" => Slot::Aud,
            _ => Slot::Other,
        })
    }
}

fn into_string(value: Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(text)) => Some(text),
        _ => None,
    }
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    push_json_string_body(out, text);
    out.push('"');
}

/// Appends `text` JSON-escaped, without quotes.
fn push_json_string_body(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if (ch as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", ch as u32);
            }
            ch => out.push(ch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(audience: &[&str]) -> Issuer {
        Issuer::new(&JwtConfig {
            key_claim_name: "key".into(),
            expiration_minutes: 15,
            issuer: "https://issuer.test".into(),
            audience: audience.iter().map(|a| a.to_string()).collect(),
            unique_name_prefix: "pvhcorp.com#".into(),
        })
    }

    fn sign_raw(header: &str, payload: &Value, secret: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature = crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn header_constant_is_the_documented_header() {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap(),
            br#"{"alg":"HS256","typ":"JWT"}"#
        );
    }

    #[test]
    fn issued_claims_in_order_and_valid() {
        let issuer = issuer(&["aud-a"]);
        let key = SigningKey::new("key-1".into(), "secret-1");
        let issued = issuer.issue("al\"ice", &key, NOW as u64).unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let order: Vec<usize> = [
            "\"sub\"",
            "\"key\"",
            "\"jti\"",
            "\"iat\"",
            "\"nbf\"",
            "\"exp\"",
            "\"iss\"",
            "\"aud\"",
            "\"name\"",
            "\"unique_name\"",
        ]
        .iter()
        .map(|claim| {
            text.find(claim)
                .unwrap_or_else(|| panic!("{claim} in {text}"))
        })
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let claims: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(claims["unique_name"], "pvhcorp.com#al\"ice");
        assert_eq!(claims["exp"], NOW + 900);
        let valid = issuer.validate(&issued.token, &key, NOW).unwrap();
        assert_eq!(valid.subject.as_deref(), Some("al\"ice"));
    }

    #[test]
    fn claims_decoding_skips_other_members_and_unescapes_names() {
        let payload =
            r#"{"extra":{"deep":[1,2,{"x":null}]},"e\u0078p":5,"k":"v","aud":["a"],"sub":"s"}"#;
        let claims = decode_claims(&URL_SAFE_NO_PAD.encode(payload), "k").unwrap();
        assert_eq!(claims.exp, Some(Value::from(5)));
        assert_eq!(claims.key, Some(Value::from("v")));
        assert_eq!(claims.aud, Some(serde_json::json!(["a"])));
        assert_eq!(into_string(claims.sub).as_deref(), Some("s"));
        assert!(claims.nbf.is_none() && claims.iss.is_none());
        for not_an_object in ["[1]", "\"text\"", "{\"exp\":1} trailing", "{"] {
            assert!(
                decode_claims(&URL_SAFE_NO_PAD.encode(not_an_object), "k").is_none(),
                "{not_an_object}"
            );
        }
    }

    #[test]
    fn several_audiences_make_an_array() {
        let issuer = issuer(&["a", "b"]);
        let key = SigningKey::new("k".into(), "s");
        let token = issuer.issue("u", &key, NOW as u64).unwrap().token;
        let payload = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn rejections() {
        let issuer = issuer(&["aud-a"]);
        let key = SigningKey::new("key-1".into(), "secret-1");
        let good = serde_json::json!({"sub":"u","key":"key-1","iat":NOW,"nbf":NOW,"exp":NOW+60,"iss":"https://issuer.test","aud":"aud-a"});
        let with = |field: &str, value: Value| {
            let mut payload = good.clone();
            if value.is_null() {
                payload.as_object_mut().unwrap().remove(field);
            } else {
                payload[field] = value;
            }
            sign_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, "secret-1")
        };
        let valid = with("sub", "u".into());
        assert!(issuer.validate(&valid, &key, NOW).is_ok());
        let mut tampered = valid.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            valid.split('.').nth(1).unwrap()
        );
        let hs512 = {
            let message = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT"}"#),
                valid.split('.').nth(1).unwrap()
            );
            let signature = crypto::sign(
                message.as_bytes(),
                &EncodingKey::from_secret(b"secret-1"),
                Algorithm::HS512,
            )
            .unwrap();
            format!("{message}.{signature}")
        };
        let other_secret = sign_raw(r#"{"alg":"HS256"}"#, &good, "secret-2");
        let cases: Vec<(&str, String, Rejection)> = vec![
            (
                "tampered",
                tampered,
                Rejection::Invalid("signature does not match"),
            ),
            (
                "alg none",
                none,
                Rejection::Invalid("unsupported algorithm: only HS256 is accepted"),
            ),
            (
                "hs512",
                hs512,
                Rejection::Invalid("unsupported algorithm: only HS256 is accepted"),
            ),
            (
                "no exp",
                with("exp", Value::Null),
                Rejection::Invalid("exp claim is required"),
            ),
            (
                "string exp",
                with("exp", "soon".into()),
                Rejection::Invalid("exp claim must be a number"),
            ),
            (
                "exp == now",
                with("exp", NOW.into()),
                Rejection::Expired { expired_at: NOW },
            ),
            (
                "expired",
                with("exp", (NOW - 5).into()),
                Rejection::Expired {
                    expired_at: NOW - 5,
                },
            ),
            (
                "nbf future",
                with("nbf", (NOW + 5).into()),
                Rejection::Invalid("token is not valid yet (nbf is in the future)"),
            ),
            (
                "wrong iss",
                with("iss", "evil".into()),
                Rejection::Invalid("issuer does not match"),
            ),
            (
                "wrong aud",
                with("aud", "other".into()),
                Rejection::Invalid("audience does not match"),
            ),
            (
                "other key",
                with("key", "key-2".into()),
                Rejection::Invalid("token was issued for another credential"),
            ),
            (
                "other secret",
                other_secret,
                Rejection::Invalid("signature does not match"),
            ),
            (
                "garbage",
                "not-a-token".into(),
                Rejection::Invalid("token must have three dot-separated parts"),
            ),
            (
                "bad chars",
                "a$.b.c".into(),
                Rejection::Invalid("token parts must be base64url"),
            ),
        ];
        for (name, token, expected) in cases {
            assert_eq!(
                issuer.validate(&token, &key, NOW).unwrap_err(),
                expected,
                "{name}"
            );
        }
    }
}
