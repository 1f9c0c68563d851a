//! The Redis store, shared by every instance of a deployment.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::{Store, StoreError};

/// INCR and, for a new counter, its expiry, in one round trip and atomically.
const INCR_WITH_TTL: &str =
    "local v = redis.call('INCR', KEYS[1]) if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return v";

/// SET only if the current value is the expected one, atomically.
const COMPARE_AND_SET: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
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

impl RedisStore {
    /// Connects to `url` (`redis://` or `rediss://`); keys are stored under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Config(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(unavailable)?;
        Ok(RedisStore { connection, prefix: prefix.to_owned() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
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
        let mut connection = self.connection.clone();
        let pattern = format!("{}{}*", escape_glob(&self.prefix), escape_glob(prefix));
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let value: Option<Vec<u8>> = connection.get(&key).await.map_err(unavailable)?;
            if let Some(value) = value {
                found.push((key[self.prefix.len()..].to_owned(), value));
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

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("EVAL")
            .arg(INCR_WITH_TTL)
            .arg(1)
            .arg(self.key(key))
            .arg(millis(ttl))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING").query_async::<String>(&mut connection).await.map(|_| ()).map_err(unavailable)
    }
}
