//! Serde mirrors of the Kong Admin API JSON we read (KONG.md 1.3, 1.6).
//!
//! Only the fields we use; unknown fields are ignored and nullable ones are `Option`. These
//! types never leave the `kong` module as-is.

use serde::Deserialize;

/// `{"data": [...], "next": ...}` as returned by `GET /consumers/{c}/jwt`.
#[derive(Debug, Deserialize)]
pub struct JwtList {
    pub data: Vec<JwtCredential>,
}

#[derive(Debug, Deserialize)]
pub struct JwtCredential {
    #[serde(default)]
    pub consumer: Option<ConsumerRef>,
    pub key: Option<String>,
    pub secret: Option<String>,
    #[serde(default)]
    pub algorithm: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ConsumerRef {
    pub id: Option<String>,
}
