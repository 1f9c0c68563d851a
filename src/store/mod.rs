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
pub use self::redis::{tls_certificates, RedisStore};
use crate::config::{StoreConfig, StoreMode};

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
    /// `scan_prefix` was asked for keys outside [`keys::COLLECTIONS`]: only those are kept
    /// where one command can list them (one hash slot in a Redis Cluster).
    #[error("scan_prefix({0:?}) is not within a listable collection (store::keys::COLLECTIONS)")]
    NotListable(String),
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
    /// small sets (the route table), not for in-flight state. `prefix` must start with one of
    /// [`keys::COLLECTIONS`] ([`StoreError::NotListable`] otherwise), on every backend, so that
    /// a listing that would be incomplete on a Redis Cluster fails in every test too.
    fn scan_prefix(&self, prefix: &str) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StoreError>> + Send;

    /// The live value under `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Atomically returns and deletes the value under `key`: of any number of concurrent
    /// callers exactly one gets it. This is what makes states and codes single-use.
    fn take(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Deletes `key` if present.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds `by` to the counter under `key` and returns the new value; a new counter lives `ttl`.
    fn incr(&self, key: &str, by: i64, ttl: Duration) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Redeems a single-use value in one atomic step (one round trip): takes the value under
    /// `key` and, if there was one, leaves `marker` under `marker_key` and the value itself
    /// under `copy_key`, both for `ttl`. If there was none, answers what `marker_key` holds, so
    /// that a replay of a redeemed value can be told from an unknown one. In a Redis Cluster
    /// the three keys must share a hash tag (see [`keys::code`]).
    fn redeem(
        &self,
        key: &str,
        marker_key: &str,
        marker: &[u8],
        copy_key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Redeemed, StoreError>> + Send;

    /// Succeeds when the backend answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `entries` to the append-only log under `key` in one round trip and returns
    /// their ids, which order the log by time (`<milliseconds>-<sequence>`, a Redis stream
    /// id). The log keeps at most about `max_len` entries and none older than `keep_since_ms`
    /// (Unix milliseconds): older ones are trimmed on write (Redis trims in whole nodes, so a
    /// few more may stay for a while).
    fn log_append(
        &self,
        key: &str,
        entries: &[Vec<u8>],
        max_len: u64,
        keep_since_ms: u64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Up to `count` entries of the log, newest first: those older than the id `before`
    /// (exclusive; None: from the newest) and not older than `since_ms`.
    fn log_range(
        &self,
        key: &str,
        before: Option<&str>,
        since_ms: u64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StoreError>> + Send;
}

/// A log entry id as the store writes it: milliseconds and a sequence number.
pub fn parse_log_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// What [`Store::redeem`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The value, now taken; the marker and the copy are in place.
    Taken(Vec<u8>),
    /// No value; the marker a previous redemption left, if any.
    Missing { marker: Option<Vec<u8>> },
}

/// The configured backend.
#[derive(Clone)]
pub enum AnyStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl AnyStore {
    pub async fn connect(config: &StoreConfig) -> Result<AnyStore, StoreError> {
        match (config.url.as_str(), config.mode) {
            ("memory", StoreMode::Standalone) => Ok(AnyStore::Memory(MemoryStore::new())),
            ("memory", StoreMode::Cluster) => {
                Err(StoreError::Config("store.mode = \"cluster\" needs redis:// seed node URLs, not memory".to_owned()))
            }
            _ => Ok(AnyStore::Redis(RedisStore::from_config(config).await?)),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Memory(_) => "memory",
            AnyStore::Redis(s) if s.is_cluster() => "redis-cluster",
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
    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, StoreError> {
        dispatch!(self, s => s.incr(key, by, ttl))
    }
    async fn redeem(
        &self,
        key: &str,
        marker_key: &str,
        marker: &[u8],
        copy_key: &str,
        ttl: Duration,
    ) -> Result<Redeemed, StoreError> {
        dispatch!(self, s => s.redeem(key, marker_key, marker, copy_key, ttl))
    }
    async fn log_append(
        &self,
        key: &str,
        entries: &[Vec<u8>],
        max_len: u64,
        keep_since_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.log_append(key, entries, max_len, keep_since_ms))
    }

    async fn log_range(
        &self,
        key: &str,
        before: Option<&str>,
        since_ms: u64,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        dispatch!(self, s => s.log_range(key, before, since_ms, count))
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

/// Changes the JSON value under `key` (kept without expiry) by compare-and-set: `change` is
/// given the current value (`None`: absent) and answers the value to write, or `None` to leave
/// it as it is. When another writer got in between, it runs again on what that one wrote.
/// Answers what was written, `None` when nothing was.
pub async fn update_json<S: Store, T: Serialize + DeserializeOwned>(
    store: &S,
    key: &str,
    mut change: impl FnMut(Option<T>) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    for _ in 0..8 {
        let current = store.get(key).await?;
        let Some(updated) = change(decode(key, current.clone())?) else { return Ok(None) };
        let bytes = serde_json::to_vec(&updated)
            .map_err(|e| StoreError::Corrupt { key: key.to_owned(), detail: e.to_string() })?;
        if store.replace(key, current.as_deref(), &bytes).await? {
            return Ok(Some(updated));
        }
    }
    Err(StoreError::Unavailable(format!("{key} kept changing under concurrent writers; try again")))
}

fn decode<T: DeserializeOwned>(key: &str, bytes: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    bytes
        .map(|b| {
            serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt { key: key.to_owned(), detail: e.to_string() })
        })
        .transpose()
}

/// The collection of [`keys::COLLECTIONS`] that `prefix` lies within.
fn collection_of(prefix: &str) -> Result<&'static str, StoreError> {
    keys::COLLECTIONS
        .iter()
        .find(|c| prefix.starts_with(**c))
        .copied()
        .ok_or_else(|| StoreError::NotListable(prefix.to_owned()))
}

/// The key layout. Secrets (codes, tokens) appear only as their SHA-256.
///
/// In a Redis Cluster in-flight keys (flows, codes, tokens, counters) spread over all slots.
/// Two kinds of keys are kept together: the collections listed by `scan_prefix` (one hash tag
/// each, added by `RedisStore`), and the three keys `/token` redeems in one step, a code, its
/// used-marker and the access token it yields, which carry the hash tag of their login
/// ([`login_tag`]) in their names.
pub mod keys {
    /// Routes, by domain: `route:<domain>`.
    pub const ROUTES: &str = "route:";
    /// Clients, by id: `client:<client_id>`.
    pub const CLIENTS: &str = "client:";
    /// Work owed to a downstream or a client, by id: `job:<id>` ([`crate::jobs`]).
    pub const JOBS: &str = "job:";
    /// The prefixes `scan_prefix` may list. Each must end with `:`.
    pub const COLLECTIONS: &[&str] = &[ROUTES, CLIENTS, JOBS];
    /// A counter every route write bumps: instances drop their route cache when it moves.
    /// Not under `route:`, which lists routes only.
    pub const ROUTES_GENERATION: &str = "routes-generation";
    /// Held by the instance running a full route sync (a TTL, never released early), so that
    /// a fleet syncs about once per interval rather than once per instance.
    pub const ROUTE_SYNC_LOCK: &str = "route-sync:lock";
    /// The last full route sync's report, for `/admin/status` on any instance.
    pub const ROUTE_SYNC_REPORT: &str = "route-sync:report";
    /// The last webhook that changed something, for `/admin/status`.
    pub const WEBHOOK_LAST: &str = "webhook-last";

    /// A webhook delivery by the SHA-256 of its `webhook-id`: `pending` while it is applied,
    /// then `done`, so that a redelivery changes nothing.
    pub fn webhook(id_hash: &str) -> String {
        format!("webhook:{id_hash}")
    }

    /// What a customer's directory last said of a user (active, groups, roles), by the
    /// SHA-256 of organization and lower-cased email ([`crate::lifecycle::directory`]).
    pub fn directory_user(person: &str) -> String {
        format!("diruser:{person}")
    }
    /// Who a user is downstream (the upstream subjects they signed in as, their user at each
    /// client's adapter), by the same hash: written at each login.
    pub fn person(person: &str) -> String {
        format!("person:{person}")
    }
    /// Held while a job brings a person's downstream users along, so that one runs at a time.
    pub fn person_lock(person: &str) -> String {
        format!("person-lock:{person}")
    }

    /// The upstream ID token of a session, kept for a sign-out continued at the upstream
    /// (`upstream.logout_at_upstream`).
    pub fn upstream_logout_hint(sid: &str) -> String {
        format!("upstream-hint:{sid}")
    }
    /// A sign-out waiting for the upstream's end-session endpoint to send the browser back.
    pub fn pending_logout(id: &str) -> String {
        format!("logout:{id}")
    }

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
    /// Characters of a [`login_tag`].
    pub const LOGIN_TAG_LEN: usize = 8;

    /// The hash tag of a login's `/token` keys: the start of the code's SHA-256. The access
    /// token begins with it too (it is the start of a spent code's hash, nothing secret), so
    /// that `/userinfo` finds the token's key from the token alone.
    pub fn login_tag(code_hash: &str) -> &str {
        code_hash.get(..LOGIN_TAG_LEN).unwrap_or(code_hash)
    }

    pub fn code(code_hash: &str) -> String {
        format!("code:{{{}}}{code_hash}", login_tag(code_hash))
    }
    /// Left behind when a code is redeemed, naming the access token it produced, so that a
    /// replay of the code can revoke it (RFC 6749 §4.1.2).
    pub fn code_used(code_hash: &str) -> String {
        format!("code-used:{{{}}}{code_hash}", login_tag(code_hash))
    }
    /// An access token, by its tag (its first [`LOGIN_TAG_LEN`] characters) and its SHA-256.
    pub fn access_token(tag: &str, token_hash: &str) -> String {
        format!("at:{{{tag}}}{token_hash}")
    }
    /// A `private_key_jwt` assertion's `jti`, kept until the assertion expires (single use).
    pub fn client_assertion(client_id: &str, jti_hash: &str) -> String {
        format!("jti:{client_id}:{jti_hash}")
    }
    /// An IdP-initiated login token already spent, by the SHA-256 of its signed part.
    pub fn initiation_used(token_hash: &str) -> String {
        format!("idp-used:{token_hash}")
    }
    /// A broker session (one login of one user at one client, named by the ID token's `sid`),
    /// while it lives: taken when it ends, so that `/userinfo` refuses its access tokens.
    pub fn session(sid: &str) -> String {
        format!("session:{sid}")
    }
    /// One slot of a user's session index, by the SHA-256 of their upstream subject: a ring of
    /// [`crate::login::sessions::INDEX_SLOTS`] slots, written in turn (the oldest is replaced).
    pub fn user_session(user_hash: &str, slot: u64) -> String {
        format!("sessions:{user_hash}:{slot}")
    }
    /// The counter that picks a user's next session slot.
    pub fn user_session_counter(user_hash: &str) -> String {
        format!("sessions:{user_hash}:n")
    }
    /// When every session of a user ended (deprovisioned): sessions begun before are refused
    /// at `/userinfo`, including those the bounded index no longer lists.
    pub fn user_signed_out(user_hash: &str) -> String {
        format!("signed-out:{user_hash}")
    }
    /// Present while the store holds what the configuration seeded into it.
    pub const SEEDED: &str = "seeded";

    /// Requests per minute from one source address, in the minute `window`.
    pub fn requests_from(source: &str, window: u64) -> String {
        format!("rl:ip:{source}:{window}")
    }
    /// Requests per minute of one client (from one source at `/authorize`), in the minute `window`.
    pub fn requests_of(client_id: &str, source: Option<&str>, window: u64) -> String {
        match source {
            Some(source) => format!("rl:client:{client_id}:{source}:{window}"),
            None => format!("rl:client:{client_id}:{window}"),
        }
    }
    /// Pending flows started from one source address in the flow-lifetime `window`.
    pub fn pending_flows_from(source: &str, window: u64) -> String {
        format!("pf:ip:{source}:{window}")
    }
    /// Pending flows started in all in the flow-lifetime `window`.
    pub fn pending_flows(window: u64) -> String {
        format!("pf:all:{window}")
    }
}
