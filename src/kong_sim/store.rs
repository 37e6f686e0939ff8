//! The simulator's database: consumers and their JWT credentials, with Kong's uniqueness,
//! foreign-key and cascade rules, ordered by primary key the way Kong's Postgres strategy lists
//! them.
//!
//! Pure data: no I/O, no clock, no locking (the server wraps the store in one `Mutex`). Field
//! validation lives in `schema`; this module only enforces what needs the whole table.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::ids;

/// A Kong consumer; every schema field is kept so responses can show `null` for unset ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    pub id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub tags: Option<Vec<String>>,
}

impl Consumer {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "username": self.username,
            "custom_id": self.custom_id,
            "tags": self.tags,
        })
    }
}

/// A `jwt_secrets` row. `key`, `secret` and `algorithm` can be `null` when a client sends an
/// explicit JSON null, exactly as in Kong, so they are optional here too.
#[derive(Clone, Debug, PartialEq)]
pub struct Credential {
    pub id: String,
    pub created_at: i64,
    pub consumer_id: String,
    pub key: Option<String>,
    pub secret: Option<String>,
    pub rsa_public_key: Option<String>,
    pub algorithm: Option<String>,
    pub tags: Option<Vec<String>>,
}

impl Credential {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "created_at": self.created_at,
            "consumer": {"id": self.consumer_id},
            "key": self.key,
            "secret": self.secret,
            "rsa_public_key": self.rsa_public_key,
            "algorithm": self.algorithm,
            "tags": self.tags,
        })
    }
}

/// Why a write was refused by a table-wide rule.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreError {
    /// Insert of an id that already exists (Kong code 3).
    PrimaryKey { id: String },
    /// A credential naming a consumer that does not exist (Kong code 4).
    ForeignKey { consumer_id: String },
    /// A second row with the same unique value (Kong code 5).
    Unique { field: &'static str, value: String },
}

/// Whether a write may only create a row or may also replace the one with the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Create,
    Replace,
}

/// Both tables plus the unique indexes Kong has as database constraints.
#[derive(Default, Debug)]
pub struct Store {
    consumers: BTreeMap<String, Consumer>,
    credentials: BTreeMap<String, Credential>,
    consumer_by_username: HashMap<String, String>,
    consumer_by_custom_id: HashMap<String, String>,
    credential_by_key: HashMap<String, String>,
    credentials_by_consumer: BTreeMap<String, BTreeSet<String>>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub fn credential_count(&self) -> usize {
        self.credentials.len()
    }

    pub fn consumer(&self, id: &str) -> Option<&Consumer> {
        self.consumers.get(&id.to_ascii_lowercase())
    }

    pub fn credential(&self, id: &str) -> Option<&Credential> {
        self.credentials.get(&id.to_ascii_lowercase())
    }

    /// Kong's path rule: a UUID-shaped segment is always the id, anything else the username.
    pub fn consumer_by_segment(&self, segment: &str) -> Option<&Consumer> {
        if ids::looks_like_uuid(segment) {
            self.consumer(segment)
        } else {
            let id = self.consumer_by_username.get(segment)?;
            self.consumers.get(id)
        }
    }

    /// Kong's path rule for credentials: a UUID-shaped segment is the id, anything else the key.
    pub fn credential_by_segment(&self, segment: &str) -> Option<&Credential> {
        if ids::looks_like_uuid(segment) {
            self.credential(segment)
        } else {
            let id = self.credential_by_key.get(segment)?;
            self.credentials.get(id)
        }
    }

    pub fn consumer_by_custom_id(&self, custom_id: &str) -> Option<&Consumer> {
        let id = self.consumer_by_custom_id.get(custom_id)?;
        self.consumers.get(id)
    }

    /// Consumers with an id greater than `after`, in id order.
    pub fn consumers_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a Consumer> + 'a> {
        match after {
            Some(after) => Box::new(
                self.consumers
                    .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .map(|(_, consumer)| consumer),
            ),
            None => Box::new(self.consumers.values()),
        }
    }

    /// All credentials with an id greater than `after`, in id order.
    pub fn credentials_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> Box<dyn Iterator<Item = &'a Credential> + 'a> {
        match after {
            Some(after) => Box::new(
                self.credentials
                    .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .map(|(_, credential)| credential),
            ),
            None => Box::new(self.credentials.values()),
        }
    }

    /// One consumer's credentials with an id greater than `after`, in id order.
    pub fn credentials_of<'a>(
        &'a self,
        consumer_id: &str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Credential> + 'a {
        self.credentials_by_consumer
            .get(consumer_id)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter(move |id| after.is_none_or(|after| id.as_str() > after))
            .filter_map(|id| self.credentials.get(id))
    }

    /// Inserts `consumer`, or replaces the row with its id when `mode` allows it.
    pub fn put_consumer(&mut self, consumer: Consumer, mode: WriteMode) -> Result<(), StoreError> {
        let consumer = Consumer {
            id: consumer.id.to_ascii_lowercase(),
            ..consumer
        };
        if mode == WriteMode::Create && self.consumers.contains_key(&consumer.id) {
            return Err(StoreError::PrimaryKey { id: consumer.id });
        }
        if let Some(username) = &consumer.username
            && let Some(owner) = self.consumer_by_username.get(username)
            && *owner != consumer.id
        {
            return Err(StoreError::Unique {
                field: "username",
                value: username.clone(),
            });
        }
        if let Some(custom_id) = &consumer.custom_id
            && let Some(owner) = self.consumer_by_custom_id.get(custom_id)
            && *owner != consumer.id
        {
            return Err(StoreError::Unique {
                field: "custom_id",
                value: custom_id.clone(),
            });
        }
        if let Some(old) = self.consumers.remove(&consumer.id) {
            self.unindex_consumer(&old);
        }
        if let Some(username) = &consumer.username {
            self.consumer_by_username
                .insert(username.clone(), consumer.id.clone());
        }
        if let Some(custom_id) = &consumer.custom_id {
            self.consumer_by_custom_id
                .insert(custom_id.clone(), consumer.id.clone());
        }
        self.consumers.insert(consumer.id.clone(), consumer);
        Ok(())
    }

    /// Deletes a consumer and, like Kong's `on_delete = cascade`, all its credentials. Returns
    /// whether it existed (Kong answers 204 either way).
    pub fn delete_consumer(&mut self, id: &str) -> bool {
        let Some(old) = self.consumers.remove(&id.to_ascii_lowercase()) else {
            return false;
        };
        self.unindex_consumer(&old);
        let owned = self
            .credentials_by_consumer
            .remove(&old.id)
            .unwrap_or_default();
        for credential_id in owned {
            if let Some(credential) = self.credentials.remove(&credential_id)
                && let Some(key) = &credential.key
            {
                self.credential_by_key.remove(key);
            }
        }
        true
    }

    fn unindex_consumer(&mut self, old: &Consumer) {
        if let Some(username) = &old.username {
            self.consumer_by_username.remove(username);
        }
        if let Some(custom_id) = &old.custom_id {
            self.consumer_by_custom_id.remove(custom_id);
        }
    }

    /// Inserts `credential`, or replaces the row with its id when `mode` allows it. Keys are
    /// unique across all consumers and compared case-sensitively.
    pub fn put_credential(
        &mut self,
        credential: Credential,
        mode: WriteMode,
    ) -> Result<(), StoreError> {
        let credential = Credential {
            id: credential.id.to_ascii_lowercase(),
            consumer_id: credential.consumer_id.to_ascii_lowercase(),
            ..credential
        };
        if mode == WriteMode::Create && self.credentials.contains_key(&credential.id) {
            return Err(StoreError::PrimaryKey { id: credential.id });
        }
        if let Some(key) = &credential.key
            && let Some(owner) = self.credential_by_key.get(key)
            && *owner != credential.id
        {
            return Err(StoreError::Unique {
                field: "key",
                value: key.clone(),
            });
        }
        if !self.consumers.contains_key(&credential.consumer_id) {
            return Err(StoreError::ForeignKey {
                consumer_id: credential.consumer_id,
            });
        }
        self.delete_credential(&credential.id);
        if let Some(key) = &credential.key {
            self.credential_by_key
                .insert(key.clone(), credential.id.clone());
        }
        self.credentials_by_consumer
            .entry(credential.consumer_id.clone())
            .or_default()
            .insert(credential.id.clone());
        self.credentials.insert(credential.id.clone(), credential);
        Ok(())
    }

    /// Deletes one credential; returns whether it existed.
    pub fn delete_credential(&mut self, id: &str) -> bool {
        let Some(old) = self.credentials.remove(&id.to_ascii_lowercase()) else {
            return false;
        };
        if let Some(key) = &old.key {
            self.credential_by_key.remove(key);
        }
        if let Some(owned) = self.credentials_by_consumer.get_mut(&old.consumer_id) {
            owned.remove(&old.id);
            if owned.is_empty() {
                self.credentials_by_consumer.remove(&old.consumer_id);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(id: &str, username: &str) -> Consumer {
        Consumer {
            id: id.to_owned(),
            created_at: 1,
            updated_at: 1,
            username: Some(username.to_owned()),
            custom_id: None,
            tags: None,
        }
    }

    fn credential(id: &str, consumer_id: &str, key: &str) -> Credential {
        Credential {
            id: id.to_owned(),
            created_at: 1,
            consumer_id: consumer_id.to_owned(),
            key: Some(key.to_owned()),
            secret: Some("s".to_owned()),
            rsa_public_key: None,
            algorithm: Some("HS256".to_owned()),
            tags: None,
        }
    }

    const C1: &str = "00000000-0000-4000-8000-000000000001";
    const C2: &str = "00000000-0000-4000-8000-000000000002";
    const J1: &str = "00000000-0000-4000-9000-000000000001";
    const J2: &str = "00000000-0000-4000-9000-000000000002";
    const J3: &str = "00000000-0000-4000-9000-000000000003";

    fn two_consumers() -> Store {
        let mut store = Store::new();
        store
            .put_consumer(consumer(C1, "alice"), WriteMode::Create)
            .unwrap();
        store
            .put_consumer(consumer(C2, "bob"), WriteMode::Create)
            .unwrap();
        store
    }

    #[test]
    fn segments_resolve_by_uuid_then_name() {
        let mut store = two_consumers();
        // A username shaped like a UUID can never be found through the path.
        let sneaky = "00000000-0000-4000-8000-0000000000ff";
        store
            .put_consumer(consumer(C2, sneaky), WriteMode::Replace)
            .unwrap();
        assert_eq!(store.consumer_by_segment("alice").unwrap().id, C1);
        assert_eq!(
            store.consumer_by_segment(&C1.to_uppercase()).unwrap().id,
            C1
        );
        assert!(store.consumer_by_segment(sneaky).is_none());
        assert!(store.consumer_by_segment("Alice").is_none());
        assert!(store.consumer_by_segment("bob").is_none());
    }

    #[test]
    fn unique_rules() {
        let mut store = two_consumers();
        assert_eq!(
            store.put_consumer(consumer(J1, "alice"), WriteMode::Create),
            Err(StoreError::Unique {
                field: "username",
                value: "alice".to_owned()
            })
        );
        assert_eq!(
            store.put_consumer(consumer(C1, "carol"), WriteMode::Create),
            Err(StoreError::PrimaryKey { id: C1.to_owned() })
        );
        store
            .put_credential(credential(J1, C1, "k"), WriteMode::Create)
            .unwrap();
        assert_eq!(
            store.put_credential(credential(J2, C2, "k"), WriteMode::Create),
            Err(StoreError::Unique {
                field: "key",
                value: "k".to_owned()
            })
        );
        // Keys are case-sensitive.
        store
            .put_credential(credential(J2, C2, "K"), WriteMode::Create)
            .unwrap();
        assert_eq!(
            store.put_credential(credential(J3, J3, "x"), WriteMode::Create),
            Err(StoreError::ForeignKey {
                consumer_id: J3.to_owned()
            })
        );
    }

    #[test]
    fn replace_reindexes_and_delete_cascades() {
        let mut store = two_consumers();
        store
            .put_credential(credential(J2, C1, "k2"), WriteMode::Create)
            .unwrap();
        store
            .put_credential(credential(J1, C1, "k1"), WriteMode::Create)
            .unwrap();
        store
            .put_credential(credential(J3, C2, "k3"), WriteMode::Create)
            .unwrap();
        let listed: Vec<&str> = store
            .credentials_of(C1, None)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(listed, [J1, J2], "listed in id order, not insert order");
        let after: Vec<&str> = store
            .credentials_of(C1, Some(J1))
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(after, [J2]);

        store
            .put_credential(credential(J1, C1, "k1-new"), WriteMode::Replace)
            .unwrap();
        assert!(store.credential_by_segment("k1").is_none());
        assert_eq!(store.credential_by_segment("k1-new").unwrap().id, J1);

        assert!(store.delete_consumer(C1));
        assert!(!store.delete_consumer(C1));
        assert_eq!(store.credential_count(), 1);
        assert!(store.credential_by_segment("k2").is_none());
        assert!(store.consumer_by_segment("alice").is_none());
        let rest: Vec<&str> = store.consumers_after(None).map(|c| c.id.as_str()).collect();
        assert_eq!(rest, [C2]);
    }
}
