//! The shared store of in-flight state: flows, codes, access tokens, counters.
//!
//! One small trait, two backends ([`MemoryStore`] for one process, [`RedisStore`] for many),
//! one conformance suite ([`conformance::run`]) that both must pass.

pub mod conformance;
mod memory;
mod redis;

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
use crate::config::StoreConfig;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or failed the command.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value did not decode: written by an incompatible version, or tampered with.
    #[error("stored value under {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("store configuration: {0}")]
    Config(String),
}

/// A key-value store with expiry. Keys are given without the deployment prefix; the backend adds it.
pub trait Store: Send + Sync {
    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `value` only if `key` holds nothing; says whether it did.
    fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores `value` under `key` with no expiry (configuration such as routes).
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces the value under `key` (no expiry) only if it currently equals `expected`
    /// (`None`: only if absent). Says whether it did: an atomic compare-and-set, which is what
    /// keeps two admins from losing each other's updates.
    fn replace(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every live key starting with `prefix` and its value, in no particular order. Meant for
    /// small sets (the route table), not for in-flight state.
    fn scan_prefix(&self, prefix: &str) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StoreError>> + Send;

    /// The live value under `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Atomically returns and deletes the value under `key`: of any number of concurrent
    /// callers exactly one gets it. This is what makes states and codes single-use.
    fn take(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Deletes `key` if present.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Increments the counter under `key` and returns the new value; a new counter lives `ttl`.
    fn incr(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Succeeds when the backend answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The configured backend.
#[derive(Clone)]
pub enum AnyStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl AnyStore {
    pub async fn connect(config: &StoreConfig) -> Result<AnyStore, StoreError> {
        if config.url == "memory" {
            Ok(AnyStore::Memory(MemoryStore::new()))
        } else {
            Ok(AnyStore::Redis(RedisStore::connect(&config.url, &config.key_prefix).await?))
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Memory(_) => "memory",
            AnyStore::Redis(_) => "redis",
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($s) => $call.await,
            AnyStore::Redis($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        dispatch!(self, s => s.put(key, value, ttl))
    }
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, s => s.put_new(key, value, ttl))
    }
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        dispatch!(self, s => s.set(key, value))
    }
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        dispatch!(self, s => s.scan_prefix(prefix))
    }
    async fn replace(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        dispatch!(self, s => s.replace(key, expected, value))
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.get(key))
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        dispatch!(self, s => s.take(key))
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.delete(key))
    }
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        dispatch!(self, s => s.incr(key, ttl))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping())
    }
}

/// JSON helpers over any [`Store`].
pub async fn put_json<S: Store, T: Serialize>(
    store: &S,
    key: &str,
    value: &T,
    ttl: Duration,
) -> Result<(), StoreError> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| StoreError::Corrupt { key: key.to_owned(), detail: e.to_string() })?;
    store.put(key, &bytes, ttl).await
}

pub async fn take_json<S: Store, T: DeserializeOwned>(store: &S, key: &str) -> Result<Option<T>, StoreError> {
    decode(key, store.take(key).await?)
}

pub async fn get_json<S: Store, T: DeserializeOwned>(store: &S, key: &str) -> Result<Option<T>, StoreError> {
    decode(key, store.get(key).await?)
}

fn decode<T: DeserializeOwned>(key: &str, bytes: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    bytes
        .map(|b| {
            serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt { key: key.to_owned(), detail: e.to_string() })
        })
        .transpose()
}

/// The key layout. Secrets (codes, tokens) appear only as their SHA-256.
pub mod keys {
    pub fn flow(upstream_state: &str) -> String {
        format!("flow:{upstream_state}")
    }
    /// A request waiting at the home-realm page for the user's email.
    pub fn pending(id: &str) -> String {
        format!("hrd:{id}")
    }
    /// The connection an IdP-initiated login asked for, waiting for the client's `/authorize`.
    pub fn remembered_connection(id: &str) -> String {
        format!("idp:{id}")
    }
    pub fn code(code_hash: &str) -> String {
        format!("code:{code_hash}")
    }
    /// Left behind when a code is redeemed, naming the access token it produced, so that a
    /// replay of the code can revoke it (RFC 6749 §4.1.2).
    pub fn code_used(code_hash: &str) -> String {
        format!("code-used:{code_hash}")
    }
    pub fn access_token(token_hash: &str) -> String {
        format!("at:{token_hash}")
    }
    /// A `private_key_jwt` assertion's `jti`, kept until the assertion expires (single use).
    pub fn client_assertion(client_id: &str, jti_hash: &str) -> String {
        format!("jti:{client_id}:{jti_hash}")
    }
}
