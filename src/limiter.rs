//! Rate-limit counters shared through the store without a store round trip per request.
//!
//! Each instance counts requests in memory and adds its counts to the deployment's counters
//! in the store (`INCRBY`), reading back the deployment-wide totals; a request does not wait
//! for that. It is judged on the last total the store answered plus what this instance counted
//! since. One increment per counter is on its way at a time, each sent [`LINGER`] after the
//! count that called for it, and what comes in meanwhile goes with it or the next one: under
//! load a counter costs the store one command per linger and round trip, not one per request
//! (loginbench measured 3.5 counter commands per login at 1,500 logins per second without the
//! linger). On one instance the count is exact; across several, an instance learns of the
//! others' requests with its next answer from the store, so a limit can be overrun by what the
//! instances admit within one linger and round trip of each other. While the store is down each
//! instance goes on limiting with its own counts, and adds them to the store once it is back.
//! With the memory store (one process) the counts stay in the process.
//!
//! [`PendingFlows`] counts this way how many sign-ins are pending, to cap what an outsider can
//! make the broker keep.
//!
//! Written here rather than taken from a crate: the limiters on crates.io (governor and the
//! like) count within one process; this one shares its counts through the broker's own store
//! (Redis, or Redis Cluster) without a store round trip per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::store::{keys, AnyStore, Store};

/// How long a count waits for others to go to the store with it: short beside the one-minute
/// windows the limits count in.
pub const LINGER: Duration = Duration::from_millis(10);

/// Counters for fixed windows, keyed by name (the name includes the window).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the deployment's counters are; None for one process alone (the memory store),
    /// whose own counts are the deployment's.
    store: Option<AnyStore>,
    counters: Mutex<HashMap<String, Counter>>,
    /// The newest window counted; counters of older ones go when it moves on.
    window: AtomicU64,
}

#[derive(Default)]
struct Counter {
    window: u64,
    /// The deployment-wide total the store last answered, this instance's sent counts included.
    total: i64,
    /// Counted here, not yet sent.
    unflushed: i64,
    /// Sent, not yet answered.
    in_flight: i64,
    /// Whether an increment is on its way (its task sends what accumulates after it).
    sending: bool,
}

impl Counter {
    fn estimate(&self) -> i64 {
        self.total.saturating_add(self.in_flight).saturating_add(self.unflushed)
    }
}

impl RateLimiter {
    /// Counters shared through `store`.
    pub fn shared(store: AnyStore) -> RateLimiter {
        Self::with(Some(store))
    }

    /// Counters of this process alone.
    pub fn local() -> RateLimiter {
        Self::with(None)
    }

    /// Shared through a Redis store; local with the memory store, which no other process sees.
    pub fn for_store(store: &AnyStore) -> RateLimiter {
        match store {
            AnyStore::Memory(_) => Self::local(),
            AnyStore::Redis(_) => Self::shared(store.clone()),
        }
    }

    fn with(store: Option<AnyStore>) -> RateLimiter {
        RateLimiter { inner: Arc::new(Inner { store, counters: Mutex::default(), window: AtomicU64::new(0) }) }
    }

    /// Counts one request under `key` (of `window`) and answers the deployment-wide count as
    /// far as this instance knows, this request included. `ttl` is how long the store keeps
    /// the counter.
    pub fn hit(&self, key: &str, window: u64, ttl: Duration) -> u64 {
        self.add(key, window, ttl, 1).max(0) as u64
    }

    /// Adds `delta` (which may be negative: a pending flow that completed) to the counter under
    /// `key` of `window` and answers the deployment-wide count as far as this instance knows.
    pub fn add(&self, key: &str, window: u64, ttl: Duration, delta: i64) -> i64 {
        let (count, send) = {
            let mut counters = self.inner.counters();
            if self.inner.window.fetch_max(window, Ordering::AcqRel) < window {
                // The window before stays: counts that span two windows read both.
                counters.retain(|_, c| c.window + 1 >= window || c.sending);
            }
            let counter = counters.entry(key.to_owned()).or_insert_with(|| Counter { window, ..Counter::default() });
            counter.unflushed += delta;
            let send = !counter.sending && self.inner.store.is_some();
            counter.sending |= send;
            (counter.estimate(), send)
        };
        if send {
            tokio::spawn(self.inner.clone().send(key.to_owned(), ttl));
        }
        count
    }

    /// The count under `key` as far as this instance knows, without adding to it.
    pub fn count(&self, key: &str) -> i64 {
        self.inner.counters().get(key).map(Counter::estimate).unwrap_or(0)
    }
}

impl Inner {
    /// Waits until every count this instance took has been answered by the store (tests wait
    /// on this rather than for a while).
    #[cfg(test)]
    async fn flushed(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.counters().values().any(|c| c.sending) {
            assert!(std::time::Instant::now() < deadline, "the store never answered");
            tokio::task::yield_now().await;
        }
    }

    fn counters(&self) -> MutexGuard<'_, HashMap<String, Counter>> {
        // Each update is a few integer operations: a panic cannot leave one half done.
        self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends the counts under `key` until none is left, one increment at a time.
    async fn send(self: Arc<Self>, key: String, ttl: Duration) {
        loop {
            tokio::time::sleep(LINGER).await;
            let batch = {
                let mut counters = self.counters();
                let Some(counter) = counters.get_mut(&key) else { return };
                if counter.unflushed == 0 {
                    counter.sending = false;
                    return;
                }
                counter.in_flight = std::mem::take(&mut counter.unflushed);
                counter.in_flight
            };
            let Some(store) = &self.store else { return };
            let answer = store.incr(&key, batch, ttl).await;
            let mut counters = self.counters();
            let Some(counter) = counters.get_mut(&key) else { return };
            counter.in_flight = 0;
            match answer {
                // A window's counter only grows: keep the larger of what we knew and the answer.
                Ok(total) => counter.total = counter.total.max(total),
                Err(error) => {
                    // Kept, and sent with the next request's increment.
                    counter.unflushed += batch;
                    counter.sending = false;
                    drop(counters);
                    tracing::warn!(error = %error, "rate limit counter could not be updated; limiting on this instance's counts");
                    crate::telemetry::count("ssobridge_store_errors_total", &[]);
                    return;
                }
            }
        }
    }
}

/// Pending flows (and requests waiting at the home-realm page) counted per source address and
/// in all, each counter per flow-lifetime window: a flow counts in the window it started in
/// and leaves the count when it is taken, so the pending ones are the two newest windows'.
/// Flows that are never taken expire from the count with their window. Counting adds no
/// store round trip (the counters above).
pub struct PendingFlows {
    limiter: RateLimiter,
    per_ip: u64,
    total: u64,
    window_secs: u64,
}

impl PendingFlows {
    pub fn new(limiter: RateLimiter, config: &crate::config::Config) -> PendingFlows {
        PendingFlows {
            limiter,
            per_ip: config.rate_limits.pending_flows_per_ip,
            total: config.rate_limits.pending_flows_total,
            window_secs: config.tokens.flow_ttl_seconds.max(1),
        }
    }

    fn keys(window: u64, ip: &str) -> [String; 2] {
        [keys::pending_flows_from(ip, window), keys::pending_flows(window)]
    }

    /// Counts one more pending flow from `ip`; its ticket (to [`PendingFlows::release`] when
    /// the flow is taken), or how many seconds to wait when a cap is reached.
    pub fn admit(&self, ip: &str) -> Result<String, u64> {
        let now = crate::clock::now_secs();
        let window = now / self.window_secs;
        let ttl = Duration::from_secs(2 * self.window_secs + 1);
        let [ip_key, all_key] = Self::keys(window, ip);
        let [previous_ip, previous_all] = Self::keys(window.saturating_sub(1), ip);
        let from_ip = self.limiter.add(&ip_key, window, ttl, 1) + self.limiter.count(&previous_ip);
        let in_all = self.limiter.add(&all_key, window, ttl, 1) + self.limiter.count(&previous_all);
        let over = |count: i64, cap: u64| cap > 0 && count > cap as i64;
        if over(from_ip, self.per_ip) || over(in_all, self.total) {
            self.limiter.add(&ip_key, window, ttl, -1);
            self.limiter.add(&all_key, window, ttl, -1);
            crate::telemetry::count("ssobridge_rate_limited_total", &[("limit", "pending_flows")]);
            return Err(self.window_secs - now % self.window_secs);
        }
        Ok(format!("{window}|{ip}"))
    }

    /// The flow of `ticket` was taken: it no longer counts.
    pub fn release(&self, ticket: &str) {
        let Some((window, ip)) = ticket.split_once('|') else { return };
        let Ok(window) = window.parse::<u64>() else { return };
        let ttl = Duration::from_secs(2 * self.window_secs + 1);
        for key in Self::keys(window, ip) {
            self.limiter.add(&key, window, ttl, -1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn instances_learn_of_each_others_counts_with_their_next_answer() {
        let store = AnyStore::Memory(MemoryStore::new());
        let (a, b) = (RateLimiter::shared(store.clone()), RateLimiter::shared(store.clone()));
        let ttl = Duration::from_secs(61);
        let settle = || async { tokio::join!(a.inner.flushed(), b.inner.flushed()) };
        let counts: Vec<u64> = (0..3).map(|_| a.hit("k:7", 7, ttl)).collect();
        assert_eq!(counts, [1, 2, 3], "exact on one instance");
        settle().await;
        assert_eq!(b.hit("k:7", 7, ttl), 1, "B has not had an answer from the store yet");
        settle().await;
        assert_eq!(b.hit("k:7", 7, ttl), 5, "B's answer had A's three");
        settle().await;
        assert_eq!(a.hit("k:7", 7, ttl), 4, "A knows the total of its last answer");
        settle().await;
        assert_eq!(a.hit("k:7", 7, ttl), 7, "and learns of B's counts with its next answer");
        settle().await;
        assert_eq!(store.get("k:7").await.expect("get").as_deref(), Some(&b"7"[..]), "the store holds the total");
        assert_eq!(a.add("k:7", 7, ttl, -2), 5, "counts down too");
        settle().await;
        b.hit("k:7", 7, ttl);
        settle().await;
        assert_eq!(b.count("k:7"), 6, "B learns of A's decrement with its next answer");
    }

    #[tokio::test]
    async fn a_past_window_is_forgotten() {
        let limiter = RateLimiter::local();
        let ttl = Duration::from_secs(61);
        limiter.hit("k:1", 1, ttl);
        limiter.hit("k:2", 2, ttl);
        {
            let counters = limiter.inner.counters();
            assert!(counters.contains_key("k:2") && counters.contains_key("k:1"), "the window before is kept");
        }
        limiter.hit("k:3", 3, ttl);
        let counters = limiter.inner.counters();
        assert!(counters.contains_key("k:3") && !counters.contains_key("k:1"), "older ones go");
    }

    #[tokio::test]
    async fn a_local_limiter_counts_exactly_and_writes_nothing() {
        let store = AnyStore::Memory(MemoryStore::new());
        let limiter = RateLimiter::for_store(&store);
        let ttl = Duration::from_secs(61);
        let counts: Vec<u64> = (0..4).map(|_| limiter.hit("k:3", 3, ttl)).collect();
        assert_eq!(counts, [1, 2, 3, 4]);
        limiter.inner.flushed().await;
        assert_eq!(store.get("k:3").await.expect("get"), None, "one process: nothing to share");
    }
}
