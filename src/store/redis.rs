//! The Redis store, shared by every instance of a deployment: one Redis endpoint (standalone)
//! or a Redis Cluster.
//!
//! In a cluster every command touches one key, so the cluster client routes it by the key's
//! slot and follows MOVED/ASK redirections and failovers by itself. The collections that
//! `scan_prefix` lists ([`super::keys::COLLECTIONS`]) are the exception: there their keys carry a
//! hash tag (`ssobridge:{route}:example.com`), so that each collection lives in one slot and one
//! SCAN on the primary owning that slot sees all of it. Everything else (flows, codes, tokens,
//! counters) stays untagged and spreads over the cluster. Standalone keeps untagged
//! names (`ssobridge:route:example.com`): the layout existing deployments have in their Redis.

use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, ClientTlsConfig, Cmd, RedisFuture, TlsCertificates, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{collection_of, Redeemed, Store, StoreError};
use crate::config::{StoreConfig, StoreMode};

/// INCRBY and, for a new counter, its expiry, in one round trip and atomically.
const INCR_WITH_TTL: &str = "local v = redis.call('INCRBY', KEYS[1], ARGV[2]) \
     if v == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return v";

/// [`Store::redeem`]: GETDEL the value; if there was one, SET the marker and a copy of the
/// value (both PX ARGV[2]); if not, answer the marker. KEYS share a hash tag in a cluster.
const REDEEM: &str = "local v = redis.call('GETDEL', KEYS[1]) \
     if v then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) \
     redis.call('SET', KEYS[3], v, 'PX', ARGV[2]) return {1, v} end \
     local m = redis.call('GET', KEYS[2]) if m then return {0, m} end return {0}";

/// SET only if the current value is the expected one, atomically.
const COMPARE_AND_SET: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";

/// Every key matching ARGV[1] on the node holding KEYS[1]'s slot, SCANned to the end. The key
/// is there for routing only: a cluster node that does not own its slot answers MOVED, which
/// the client follows, so this runs on the slot's primary and nowhere else. (A bare SCAN routed
/// by slot is answered by whichever node gets it: the cluster client falls back to any
/// connected node while the slot's primary is unreachable, as during a failover, and an empty
/// list would come back as if the collection were empty.)
const SCAN_SLOT: &str = "local cursor, found = '0', {} repeat \
     local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000) cursor = r[1] \
     for _, k in ipairs(r[2]) do found[#found + 1] = k end until cursor == '0' return found";

/// Each attempt at a command or a connection is bounded; a cluster request (with its retries
/// through a failover) is bounded as a whole, so that an outage answers within seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CLUSTER_REQUEST_TIMEOUT: Duration = Duration::from_secs(4);

/// One Redis (through a reconnecting manager) or a cluster. Both speak [`ConnectionLike`], so
/// the commands below are written once for both.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A failed first connection, saying where to (without a password) and, for a certificate
/// the client refused, what to check.
fn cannot_connect(config: &StoreConfig, error: redis::RedisError) -> StoreError {
    let text = error.to_string();
    let hint = if text.contains("certificate") || text.contains("UnknownIssuer") {
        " (rediss://: does store.tls_ca_file hold the CA that issued the server's certificate, and does the \
         certificate name the host in the URL?)"
    } else {
        ""
    };
    StoreError::Unavailable(format!("cannot connect to {}: {text}{hint}", config.redacted_url()))
}

fn millis(ttl: Duration) -> u64 {
    // Redis refuses a zero expiry; a sub-millisecond TTL means "expire at once".
    (ttl.as_millis() as u64).max(1)
}

/// Escapes Redis glob metacharacters so that a prefix matches literally.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The TLS material `[store]` names, read and checked; `None` when it names none (`rediss://`
/// then trusts the Mozilla roots). check-config calls it too, so a bad file is found early.
pub fn tls_certificates(config: &StoreConfig) -> Result<Option<TlsCertificates>, StoreError> {
    fn read(key: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
        std::fs::read(path).map_err(|e| StoreError::Config(format!("{key} {}: {e}", path.display())))
    }
    let root_cert = match &config.tls_ca_file {
        Some(path) => {
            let pem = read("store.tls_ca_file", path)?;
            let certificates = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Config(format!("store.tls_ca_file {}: {e}", path.display())))?;
            if certificates.is_empty() {
                return Err(StoreError::Config(format!(
                    "store.tls_ca_file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => {
            let client_cert = read("store.tls_cert_file", cert)?;
            let client_key = read("store.tls_key_file", key)?;
            // Parsed here only to report a bad file by its key; the error names no key material.
            PrivateKeyDer::from_pem_slice(&client_key)
                .map_err(|e| StoreError::Config(format!("store.tls_key_file {}: {e}", key.display())))?;
            Some(ClientTlsConfig { client_cert, client_key })
        }
        (None, None) => None,
        _ => return Err(StoreError::Config("set store.tls_cert_file and store.tls_key_file together".to_owned())),
    };
    Ok((root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates { client_tls, root_cert }))
}

impl RedisStore {
    /// Connects to one Redis at `url` (`redis://` or `rediss://` trusting the Mozilla roots);
    /// keys are stored under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let config = StoreConfig { url: url.to_owned(), key_prefix: prefix.to_owned(), ..StoreConfig::default() };
        Self::from_config(&config).await
    }

    /// Connects as `[store]` says: one Redis or a cluster, with its TLS files. Fails when no
    /// node answers (or its certificate is refused), so that serve refuses to start.
    pub async fn from_config(config: &StoreConfig) -> Result<RedisStore, StoreError> {
        let certificates = tls_certificates(config)?;
        if config.urls().iter().any(|u| u.starts_with("rediss://")) {
            // The process-wide rustls provider, as for the upstream's HTTPS client.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let connection = match config.mode {
            StoreMode::Standalone => {
                let url = config.url.trim();
                let client = match certificates {
                    Some(certificates) => redis::Client::build_with_tls(url, certificates),
                    None => redis::Client::open(url),
                }
                .map_err(|e| StoreError::Config(e.to_string()))?;
                let manager = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2);
                let manager =
                    ConnectionManager::new_with_config(client, manager).await.map_err(|e| cannot_connect(config, e))?;
                Connection::Standalone(manager)
            }
            StoreMode::Cluster => {
                if config.key_prefix.contains(['{', '}']) {
                    return Err(StoreError::Config(
                        "store.key_prefix must not contain { or } in cluster mode".to_owned(),
                    ));
                }
                let mut builder = ClusterClientBuilder::new(config.urls())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .overall_response_timeout(Some(CLUSTER_REQUEST_TIMEOUT))
                    // The defaults wait seconds between retries; a failover is over in about
                    // cluster-node-timeout, and a login should not wait much longer than that.
                    .retries(5)
                    .min_retry_wait(100)
                    .max_retry_wait(1000);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                let client = builder.build().map_err(|e| StoreError::Config(e.to_string()))?;
                let cluster = client.get_async_connection().await.map_err(|e| cannot_connect(config, e))?;
                Connection::Cluster(cluster)
            }
        };
        Ok(RedisStore { connection, prefix: config.key_prefix.clone() })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    fn key(&self, key: &str) -> String {
        stored_key(&self.prefix, self.is_cluster(), key)
    }
}

/// The Redis key of a logical key: the deployment prefix, and in a cluster a hash tag for the
/// keys of a listable collection (`route:x` → `<prefix>{route}:x`).
fn stored_key(prefix: &str, cluster: bool, key: &str) -> String {
    match collection_of(key) {
        Ok(collection) if cluster => {
            let rest = &key[collection.len()..];
            format!("{prefix}{{{}}}:{rest}", collection.trim_end_matches(':'))
        }
        _ => format!("{prefix}{key}"),
    }
}

impl Store for RedisStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .query_async::<()>(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(reply.is_some())
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        connection.set::<_, _, ()>(self.key(key), value).await.map_err(unavailable)
    }

    async fn replace(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let replaced: i64 = match expected {
            // One key (KEYS[1]), so that a cluster runs the script on the node holding it.
            Some(expected) => redis::cmd("EVAL")
                .arg(COMPARE_AND_SET)
                .arg(1)
                .arg(self.key(key))
                .arg(expected)
                .arg(value)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?,
            None => {
                let set: Option<String> = redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(value)
                    .arg("NX")
                    .query_async(&mut connection)
                    .await
                    .map_err(unavailable)?;
                i64::from(set.is_some())
            }
        };
        Ok(replaced == 1)
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let collection = collection_of(prefix)?;
        let mut connection = self.connection.clone();
        // The Redis name of the collection itself: what every key found starts with.
        let stored_collection = self.key(collection);
        let stored_prefix = self.key(prefix);
        let pattern = format!("{}*", escape_glob(&stored_prefix));
        // One key, in the collection's slot (its hash tag), to run the SCAN where the collection is.
        let keys: Vec<String> = redis::cmd("EVAL")
            .arg(SCAN_SLOT)
            .arg(1)
            .arg(&stored_collection)
            .arg(&pattern)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let value: Option<Vec<u8>> = connection.get(&key).await.map_err(unavailable)?;
            if let (Some(value), Some(rest)) = (value, key.strip_prefix(&stored_collection)) {
                found.push((format!("{collection}{rest}"), value));
            }
        }
        Ok(found)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        connection.get(self.key(key)).await.map_err(unavailable)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut connection = self.connection.clone();
        // GETDEL (Redis ≥ 6.2) is atomic: of concurrent takers exactly one sees the value.
        redis::cmd("GETDEL").arg(self.key(key)).query_async(&mut connection).await.map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        connection.del::<_, ()>(self.key(key)).await.map_err(unavailable)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("EVAL")
            .arg(INCR_WITH_TTL)
            .arg(1)
            .arg(self.key(key))
            .arg(millis(ttl))
            .arg(by)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn redeem(
        &self,
        key: &str,
        marker_key: &str,
        marker: &[u8],
        copy_key: &str,
        ttl: Duration,
    ) -> Result<Redeemed, StoreError> {
        let mut connection = self.connection.clone();
        let reply: Vec<Value> = redis::cmd("EVAL")
            .arg(REDEEM)
            .arg(3)
            .arg(self.key(key))
            .arg(self.key(marker_key))
            .arg(self.key(copy_key))
            .arg(marker)
            .arg(millis(ttl))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let corrupt = || StoreError::Corrupt { key: key.to_owned(), detail: "unexpected redeem reply".to_owned() };
        let bytes = |value: &Value| match value {
            Value::BulkString(bytes) => Ok(bytes.clone()),
            _ => Err(corrupt()),
        };
        match reply.as_slice() {
            [Value::Int(1), value] => Ok(Redeemed::Taken(bytes(value)?)),
            [Value::Int(0), marker] => Ok(Redeemed::Missing { marker: Some(bytes(marker)?) }),
            [Value::Int(0)] => Ok(Redeemed::Missing { marker: None }),
            _ => Err(corrupt()),
        }
    }

    async fn log_append(
        &self,
        key: &str,
        entries: &[Vec<u8>],
        max_len: u64,
        keep_since_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let stored = self.key(key);
        let mut pipeline = redis::pipe();
        for entry in entries {
            pipeline.cmd("XADD").arg(&stored).arg("MAXLEN").arg("~").arg(max_len).arg("*").arg("e").arg(entry);
        }
        pipeline.cmd("XTRIM").arg(&stored).arg("MINID").arg(keep_since_ms).ignore();
        let mut connection = self.connection.clone();
        pipeline.query_async(&mut connection).await.map_err(unavailable)
    }

    async fn log_range(
        &self,
        key: &str,
        before: Option<&str>,
        since_ms: u64,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let newest = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
        let mut connection = self.connection.clone();
        let reply: Value = redis::cmd("XREVRANGE")
            .arg(self.key(key))
            .arg(newest)
            .arg(since_ms)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        let corrupt = || StoreError::Corrupt { key: key.to_owned(), detail: "unexpected XREVRANGE reply".to_owned() };
        let Value::Array(items) = reply else { return Err(corrupt()) };
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            // [id, [field, value, ...]]; the entry is the value of field `e`.
            let Value::Array(pair) = item else { return Err(corrupt()) };
            let [Value::BulkString(id), Value::Array(fields)] = pair.as_slice() else { return Err(corrupt()) };
            let entry = fields.chunks(2).find_map(|field| match field {
                [Value::BulkString(name), Value::BulkString(value)] if name.as_slice() == b"e" => Some(value.clone()),
                _ => None,
            });
            entries.push((String::from_utf8_lossy(id).into_owned(), entry.ok_or_else(corrupt)?));
        }
        Ok(entries)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        // In a cluster PING goes to one node; every command routes by its own slot anyway.
        redis::cmd("PING").query_async::<String>(&mut connection).await.map(|_| ()).map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;
    use redis::cluster_routing::Slot;

    #[test]
    fn collection_keys_share_one_slot_and_the_rest_spread() {
        let cluster = |key: &str| stored_key("ssobridge:", true, key);
        assert_eq!(cluster("route:acme.test"), "ssobridge:{route}:acme.test");
        assert_eq!(
            stored_key("ssobridge:", false, "route:acme.test"),
            "ssobridge:route:acme.test",
            "standalone unchanged"
        );
        for collection in keys::COLLECTIONS {
            assert!(collection.ends_with(':'), "{collection}");
            let slot = |id: &str| Slot::for_key(cluster(&format!("{collection}{id}")));
            assert_eq!(slot("a.example"), slot("zz.example"), "{collection} lives in one slot");
        }
        let spread = |key: fn(&str) -> String| {
            (0..32)
                .map(|i| Slot::for_key(cluster(&key(&format!("id{i}")))))
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        for key in [keys::flow, keys::code, keys::pending, |h: &str| keys::access_token(keys::login_tag(h), h)] {
            assert!(spread(key) > 16, "in-flight keys spread over slots");
        }
    }

    #[test]
    fn a_code_its_marker_and_its_access_token_share_a_slot() {
        let cluster = |key: &str| Slot::for_key(stored_key("ssobridge:", true, key));
        let code_hash = crate::tokens::sha256_hex("some code");
        let tag = keys::login_tag(&code_hash);
        let access_token = format!("{tag}the-rest-of-the-token");
        let access_key = crate::login::records::access_token_key(&access_token).expect("key");
        assert_eq!(cluster(&keys::code(&code_hash)), cluster(&keys::code_used(&code_hash)));
        assert_eq!(cluster(&keys::code(&code_hash)), cluster(&access_key), "one slot for the /token step");
    }
}
