//! What the simulator's database holds at start: either the default test population or the
//! contents of a `--seed-file`.
//!
//! Default seed, stable across runs so scripts can hard-code it (index `i` from 1, three or
//! more digits):
//! - consumer `test-consumer-00i`, id `00000000-0000-4000-8000-00000000000i`
//! - one HS256 credential per consumer: id `00000000-0000-4000-9000-00000000000i`, key
//!   `test-key-00i`, secret `test-secret-00i`
//! - plus consumer `anonymous`, id `00000000-0000-4000-8000-000000000000`, with no credential.
//!
//! Reads only the seed file it is given; validation goes through `schema` and `store` so a seed
//! cannot hold what the Admin API would refuse.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::ids;
use crate::kong_sim::schema::{self, Write};
use crate::kong_sim::store::{Store, StoreError, WriteMode};
use crate::kong_sim::{SeededConsumer, SimError};

/// The id of default-seed consumer `index` (0 is the anonymous consumer).
pub fn consumer_id(index: usize) -> String {
    format!("00000000-0000-4000-8000-{index:012}")
}

/// The id of default-seed consumer `index`'s credential.
pub fn credential_id(index: usize) -> String {
    format!("00000000-0000-4000-9000-{index:012}")
}

/// The default population: `count` test consumers with one HS256 credential each, then the
/// anonymous consumer.
pub fn default_seed(count: usize, now: i64) -> (Store, Vec<SeededConsumer>) {
    let mut plan = Vec::with_capacity(count + 1);
    for index in 1..=count {
        plan.push(PlannedConsumer {
            id: consumer_id(index),
            username: Some(format!("test-consumer-{index:03}")),
            custom_id: None,
            jwt: vec![PlannedCredential {
                id: Some(credential_id(index)),
                key: format!("test-key-{index:03}"),
                secret: format!("test-secret-{index:03}"),
                algorithm: None,
            }],
        });
    }
    plan.push(PlannedConsumer {
        id: consumer_id(0),
        username: Some("anonymous".to_owned()),
        custom_id: None,
        jwt: Vec::new(),
    });
    // Generated names are distinct by construction, so this cannot fail.
    load(plan, now).unwrap_or_else(|problem| panic!("default seed rejected: {problem}"))
}

/// Reads a seed file: `{"consumers": [{"id", "username", "custom_id"?, "jwt": [{"key",
/// "secret", "algorithm"?, "id"?}]}]}`. Every id must be a UUID.
pub fn from_file(path: &Path, now: i64) -> Result<(Store, Vec<SeededConsumer>), SimError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SimError::SeedRead {
        file: file.clone(),
        source,
    })?;
    let parsed: SeedFile = serde_json::from_str(&text).map_err(|err| SimError::SeedInvalid {
        file: file.clone(),
        problem: err.to_string(),
    })?;
    for consumer in &parsed.consumers {
        let credential_ids = consumer.jwt.iter().filter_map(|jwt| jwt.id.as_ref());
        for id in std::iter::once(&consumer.id).chain(credential_ids) {
            if !ids::looks_like_uuid(id) {
                return Err(SimError::SeedBadId {
                    file: file.clone(),
                    id: id.clone(),
                });
            }
        }
    }
    load(parsed.consumers, now).map_err(|problem| SimError::SeedInvalid { file, problem })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    consumers: Vec<PlannedConsumer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlannedConsumer {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    custom_id: Option<String>,
    #[serde(default)]
    jwt: Vec<PlannedCredential>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlannedCredential {
    #[serde(default)]
    id: Option<String>,
    key: String,
    secret: String,
    #[serde(default)]
    algorithm: Option<String>,
}

/// Inserts the plan through the same schema and store rules as the Admin API; the error is a
/// description naming the offending entry.
fn load(plan: Vec<PlannedConsumer>, now: i64) -> Result<(Store, Vec<SeededConsumer>), String> {
    let mut store = Store::new();
    let mut seeded = Vec::with_capacity(plan.len());
    for planned in plan {
        let mut args = Map::new();
        args.insert("id".to_owned(), json!(planned.id));
        args.insert("username".to_owned(), json!(planned.username));
        args.insert("custom_id".to_owned(), json!(planned.custom_id));
        let consumer = schema::consumer_from(&args, None, Write::Insert, now)
            .map_err(|violations| format!("consumer {}: {}", planned.id, violations.message()))?;
        store
            .put_consumer(consumer.clone(), WriteMode::Create)
            .map_err(|err| format!("consumer {}: {}", planned.id, describe(&err)))?;
        for jwt in &planned.jwt {
            let mut args = Map::new();
            if let Some(id) = &jwt.id {
                args.insert("id".to_owned(), json!(id));
            }
            args.insert("consumer".to_owned(), json!({ "id": consumer.id }));
            args.insert("key".to_owned(), json!(jwt.key));
            args.insert("secret".to_owned(), json!(jwt.secret));
            if let Some(algorithm) = &jwt.algorithm {
                args.insert("algorithm".to_owned(), Value::String(algorithm.clone()));
            }
            let credential =
                schema::credential_from(&args, None, Write::Insert, now).map_err(|violations| {
                    format!(
                        "credential {:?} of consumer {}: {}",
                        jwt.key,
                        planned.id,
                        violations.message()
                    )
                })?;
            store
                .put_credential(credential, WriteMode::Create)
                .map_err(|err| {
                    format!(
                        "credential {:?} of consumer {}: {}",
                        jwt.key,
                        planned.id,
                        describe(&err)
                    )
                })?;
        }
        let first = planned.jwt.first();
        seeded.push(SeededConsumer {
            id: consumer.id.clone(),
            username: consumer.username.clone().unwrap_or_default(),
            key: first.map(|jwt| jwt.key.clone()).unwrap_or_default(),
            secret: first.map(|jwt| jwt.secret.clone()).unwrap_or_default(),
        });
    }
    Ok((store, seeded))
}

fn describe(err: &StoreError) -> String {
    match err {
        StoreError::PrimaryKey { id } => format!("duplicate id {id}"),
        StoreError::ForeignKey { consumer_id } => format!("unknown consumer {consumer_id}"),
        StoreError::Unique { field, value } => format!("duplicate {field} {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_seed_is_stable() {
        let (store, seeded) = default_seed(3, 10);
        assert_eq!(store.consumer_count(), 4);
        assert_eq!(store.credential_count(), 3);
        assert_eq!(seeded[0].id, "00000000-0000-4000-8000-000000000001");
        assert_eq!(seeded[0].username, "test-consumer-001");
        assert_eq!(seeded[0].key, "test-key-001");
        assert_eq!(seeded[0].secret, "test-secret-001");
        assert_eq!(seeded[3].username, "anonymous");
        assert_eq!(seeded[3].key, "");
        assert!(ids::looks_like_uuid(&seeded[2].id));
        let credential = store.credential_by_segment("test-key-002").unwrap();
        assert_eq!(credential.id, credential_id(2));
        assert_eq!(credential.consumer_id, consumer_id(2));
        assert_eq!(credential.algorithm.as_deref(), Some("HS256"));
    }

    #[test]
    fn seed_plans_are_validated() {
        let plan = |json: &str| -> Vec<PlannedConsumer> {
            serde_json::from_str::<SeedFile>(json).unwrap().consumers
        };
        let duplicate_key = plan(
            r#"{"consumers": [
                {"id": "00000000-0000-4000-8000-000000000001", "username": "a", "jwt": [{"key": "k", "secret": "s"}]},
                {"id": "00000000-0000-4000-8000-000000000002", "username": "b", "jwt": [{"key": "k", "secret": "s"}]}
            ]}"#,
        );
        let problem = load(duplicate_key, 1).err().unwrap();
        assert!(problem.contains("duplicate key \"k\""), "{problem}");
        let nameless = plan(r#"{"consumers": [{"id": "00000000-0000-4000-8000-000000000001"}]}"#);
        assert!(load(nameless, 1).is_err());
    }
}
