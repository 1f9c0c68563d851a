//! The in-process store: the embedded default for a single instance and the demo.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Redeemed, Store, StoreError};

/// Expired entries are dropped when read, and all of them every this many writes.
const SWEEP_EVERY_WRITES: u64 = 4096;
/// "No expiry", for a process: a century.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: Mutex<HashMap<String, Entry>>,
    writes: AtomicU64,
    logs: Mutex<HashMap<String, Log>>,
}

/// An append-only log: entries by (milliseconds, sequence), as a Redis stream orders them.
#[derive(Default)]
struct Log {
    entries: BTreeMap<(u64, u64), Vec<u8>>,
    last: (u64, u64),
}

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry (each operation is
        // one map call), so a poisoned lock is still consistent.
        self.inner.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn note_write(&self, entries: &mut HashMap<String, Entry>) {
        if self.inner.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_WRITES == SWEEP_EVERY_WRITES - 1 {
            let now = Instant::now();
            entries.retain(|_, e| e.expires_at > now);
        }
    }

    /// Number of live entries (for tests and metrics).
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.entries().values().filter(|e| e.expires_at > now).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Store for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut entries = self.entries();
        entries.insert(key.to_owned(), Entry { value: value.to_vec(), expires_at: Instant::now() + ttl });
        self.note_write(&mut entries);
        Ok(())
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.get(key).is_some_and(|e| e.expires_at > now) {
            return Ok(false);
        }
        entries.insert(key.to_owned(), Entry { value: value.to_vec(), expires_at: now + ttl });
        self.note_write(&mut entries);
        Ok(true)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put(key, value, FOREVER).await
    }

    async fn replace(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries();
        let current = entries.get(key).filter(|e| e.expires_at > now).map(|e| e.value.as_slice());
        if current != expected {
            return Ok(false);
        }
        entries.insert(key.to_owned(), Entry { value: value.to_vec(), expires_at: now + FOREVER });
        Ok(true)
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        super::collection_of(prefix)?;
        let now = Instant::now();
        Ok(self
            .entries()
            .iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.expires_at > now)
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self.entries().get(key).filter(|e| e.expires_at > now).map(|e| e.value.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self.entries().remove(key).filter(|e| e.expires_at > now).map(|e| e.value))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.entries().remove(key);
        self.inner.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
        Ok(())
    }

    async fn redeem(
        &self,
        key: &str,
        marker_key: &str,
        marker: &[u8],
        copy_key: &str,
        ttl: Duration,
    ) -> Result<Redeemed, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries();
        match entries.remove(key).filter(|e| e.expires_at > now) {
            Some(taken) => {
                let expires_at = now + ttl;
                entries.insert(marker_key.to_owned(), Entry { value: marker.to_vec(), expires_at });
                entries.insert(copy_key.to_owned(), Entry { value: taken.value.clone(), expires_at });
                self.note_write(&mut entries);
                Ok(Redeemed::Taken(taken.value))
            }
            None => Ok(Redeemed::Missing {
                marker: entries.get(marker_key).filter(|e| e.expires_at > now).map(|e| e.value.clone()),
            }),
        }
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> Result<i64, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries();
        let entry = entries
            .entry(key.to_owned())
            .and_modify(|e| {
                if e.expires_at <= now {
                    *e = Entry { value: b"0".to_vec(), expires_at: now + ttl };
                }
            })
            .or_insert_with(|| Entry { value: b"0".to_vec(), expires_at: now + ttl });
        let current: i64 = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::Corrupt { key: key.to_owned(), detail: "counter is not a number".to_owned() })?;
        let next = current.saturating_add(by);
        entry.value = next.to_string().into_bytes();
        Ok(next)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn log_append(
        &self,
        key: &str,
        entries: &[Vec<u8>],
        max_len: u64,
        keep_since_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        let mut logs = self.inner.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let log = logs.entry(key.to_owned()).or_default();
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            // Never backwards, as Redis does when the clock is.
            log.last = if now_ms > log.last.0 { (now_ms, 0) } else { (log.last.0, log.last.1 + 1) };
            log.entries.insert(log.last, entry.clone());
            ids.push(format!("{}-{}", log.last.0, log.last.1));
        }
        while log.entries.len() as u64 > max_len || log.entries.keys().next().is_some_and(|(ms, _)| *ms < keep_since_ms)
        {
            log.entries.pop_first();
        }
        Ok(ids)
    }

    async fn log_range(
        &self,
        key: &str,
        before: Option<&str>,
        since_ms: u64,
        count: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let logs = self.inner.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(log) = logs.get(key) else { return Ok(Vec::new()) };
        let newest = match before {
            Some(id) => super::parse_log_id(id)
                .ok_or_else(|| StoreError::Corrupt { key: key.to_owned(), detail: format!("log id {id:?}") })?,
            None => (u64::MAX, u64::MAX),
        };
        Ok(log
            .entries
            .range(..newest)
            .rev()
            .take_while(|((ms, _), _)| *ms >= since_ms)
            .take(count)
            .map(|((ms, seq), entry)| (format!("{ms}-{seq}"), entry.clone()))
            .collect())
    }
}
