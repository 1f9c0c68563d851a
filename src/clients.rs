//! Downstream clients: kept in the store (config-file entries are seeded there at start, the
//! admin API adds and changes others), so that every instance sees the same registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, Identity, LinkOutcome, UserChange};

use crate::config::{AdapterSettings, ClientConfig};
use crate::model::ClientSpec;
use crate::store::{keys, AnyStore, Store, StoreError};

/// How long an instance trusts its copy of a client before reading the store again: a change
/// made through the admin API on another instance takes effect within this time.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// A registered downstream client as stored: the one [`ClientSpec`], its secret kept only as a
/// salted hash, and where it came from. Reads as its spec (`record.redirect_uris`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    #[serde(flatten)]
    pub spec: ClientSpec,
    /// [`crate::tokens::hash_secret`]'s form (or a bare SHA-256 from a config file); empty
    /// for a `private_key_jwt` client.
    #[serde(alias = "secret_sha256")]
    pub secret_hash: String,
    /// `config` (seeded from the file at every start) or `api`.
    #[serde(default)]
    pub source: String,
}

impl std::ops::Deref for ClientRecord {
    type Target = ClientSpec;
    fn deref(&self) -> &ClientSpec {
        &self.spec
    }
}

impl ClientRecord {
    /// The record of a config-file client. A clear secret is hashed with a new salt: `seed`
    /// keeps the stored hash when it still matches, so that a restart changes nothing.
    pub fn from_config(config: &ClientConfig) -> Result<ClientRecord, crate::tokens::TokenError> {
        Ok(ClientRecord {
            spec: config.spec.clone(),
            secret_hash: match (&config.client_secret, &config.client_secret_hash) {
                (Some(secret), _) => crate::tokens::hash_secret(secret.expose())?,
                (None, Some(hash)) => hash.clone(),
                // Refused by validation; an unmatchable hash if it ever got here.
                (None, None) => String::new(),
            },
            source: "config".to_owned(),
        })
    }

    /// Constant-time check of a presented secret. A `private_key_jwt` client has no secret.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let matches = crate::tokens::secret_matches_hash(presented, &self.secret_hash);
        matches && self.token_endpoint_auth_method.uses_secret() && !self.secret_hash.is_empty()
    }
}

/// A client ready for use: its record and its adapter.
pub struct Client {
    pub record: ClientRecord,
    pub adapter: Arc<dyn Adapter>,
}

fn key(client_id: &str) -> String {
    format!("{}{client_id}", keys::CLIENTS)
}

/// Stands in for an adapter that could not be built: every login fails as misconfigured
/// (the user sees a readable error, the operator a log line), nothing is linked by accident.
struct Unavailable(&'static str, String);

impl Adapter for Unavailable {
    fn name(&self) -> &'static str {
        self.0
    }

    fn link<'a>(&'a self, _identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        Box::pin(async move { Err(AdapterError::Misconfigured { detail: self.1.clone() }) })
    }

    fn disable<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async move { Err(AdapterError::Misconfigured { detail: self.1.clone() }) })
    }

    fn enable<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async move { Err(AdapterError::Misconfigured { detail: self.1.clone() }) })
    }

    fn delete<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async move { Err(AdapterError::Misconfigured { detail: self.1.clone() }) })
    }

    fn set_roles<'a>(
        &'a self,
        _user_id: &'a str,
        _entitlements: &'a Entitlements,
        _managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async move { Err(AdapterError::Misconfigured { detail: self.1.clone() }) })
    }
}

/// The registry over the store, with a short per-instance cache.
pub struct ClientRegistry {
    store: AnyStore,
    cache: Mutex<HashMap<String, (Instant, Arc<Client>)>>,
    settings: HashMap<String, AdapterSettings>,
}

impl ClientRegistry {
    /// `configured`: the config file's clients, whose adapter settings are kept here.
    pub fn new(store: AnyStore, configured: &[ClientConfig]) -> ClientRegistry {
        let settings =
            configured.iter().filter_map(|c| c.adapter_settings().map(|s| (c.client_id.clone(), s))).collect();
        ClientRegistry { store, cache: Mutex::new(HashMap::new()), settings }
    }

    fn build_adapter(&self, record: &ClientRecord) -> Arc<dyn Adapter> {
        match AdapterSettings::build(record.adapter, self.settings.get(&record.client_id)) {
            Ok(adapter) => adapter,
            Err(error) => {
                tracing::error!(client_id = %record.client_id, error = %error, "adapter unavailable");
                Arc::new(Unavailable(record.adapter.name(), error.to_string()))
            }
        }
    }

    /// The client, or None if it is not registered.
    pub async fn get(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some((at, client)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(client_id) {
            if at.elapsed() < CACHE_FOR {
                return Ok(Some(client.clone()));
            }
        }
        let Some((record, _)) = self.read(client_id).await? else {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(client_id);
            return Ok(None);
        };
        let client = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(client_id) {
                // Unchanged: keep the adapter already built (it may hold connections, tokens).
                Some((_, cached)) if cached.record == record => cached.clone(),
                _ => Arc::new(Client { adapter: self.build_adapter(&record), record }),
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.to_owned(), (Instant::now(), client.clone()));
        Ok(Some(client))
    }

    /// The record and its stored bytes (for compare-and-set), straight from the store.
    pub async fn read(&self, client_id: &str) -> Result<Option<(ClientRecord, Vec<u8>)>, StoreError> {
        let Some(bytes) = self.store.get(&key(client_id)).await? else { return Ok(None) };
        let record = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { key: key(client_id), detail: e.to_string() })?;
        Ok(Some((record, bytes)))
    }

    /// Every client, sorted by id.
    pub async fn list(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let mut records = Vec::new();
        for (k, bytes) in self.store.scan_prefix(keys::CLIENTS).await? {
            records.push(
                serde_json::from_slice::<ClientRecord>(&bytes)
                    .map_err(|e| StoreError::Corrupt { key: k, detail: e.to_string() })?,
            );
        }
        records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(records)
    }

    /// Writes `record`, replacing whatever is there.
    pub async fn put(&self, record: &ClientRecord) -> Result<(), StoreError> {
        self.store.set(&key(&record.client_id), &encode(record)?).await?;
        self.forget(&record.client_id);
        Ok(())
    }

    /// Writes `record` only if the stored bytes are still `expected` (None: only if absent).
    pub async fn replace(&self, record: &ClientRecord, expected: Option<&[u8]>) -> Result<bool, StoreError> {
        let replaced = self.store.replace(&key(&record.client_id), expected, &encode(record)?).await?;
        self.forget(&record.client_id);
        Ok(replaced)
    }

    pub async fn delete(&self, client_id: &str) -> Result<(), StoreError> {
        self.store.delete(&key(client_id)).await?;
        self.forget(client_id);
        Ok(())
    }

    fn forget(&self, client_id: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(client_id);
    }
}

fn encode(record: &ClientRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt { key: key(&record.client_id), detail: e.to_string() })
}
