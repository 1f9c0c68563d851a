//! The route table: email domain → organization (and optionally connection), shared by every
//! instance through the store.
//!
//! Each instance caches what it looked up. Every write bumps a generation counter in the store;
//! an instance reads it at most every [`GENERATION_CHECK_EVERY`] on its way to a lookup and
//! drops its copy when it moved, so that a change made anywhere (admin API, route sync, a
//! webhook) applies everywhere within a fraction of a second. [`CACHE_FOR`] still bounds a
//! copy's life should a bump be lost.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::model::route::{Route, RouteSource};
use crate::store::{get_json, keys, Store, StoreError};

/// How long an instance trusts its copy of a route, or of a domain's having none, before
/// reading the store again: a change made on another instance (admin API, `routes import`)
/// takes effect within this time, as for clients. Changes made through this instance at once.
const CACHE_FOR: Duration = Duration::from_secs(5);
/// Domains come from users' login hints: past this many the stale ones go, then all.
const CACHE_MAX_ENTRIES: usize = 10_000;
/// How often an instance asks the store whether the routes changed: one small read per this
/// interval per instance, on the first lookup after it.
pub const GENERATION_CHECK_EVERY: Duration = Duration::from_millis(250);
/// The generation counter outlives any gap between two checks by far; should it expire, its
/// disappearance reads as a change too.
const GENERATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn key(domain: &str) -> String {
    format!("{}{domain}", keys::ROUTES)
}

/// Which organizations and connections the route table names, and for which clients: what a
/// request's own selectors, and the organization an upstream login ends in, are held against.
#[derive(Debug, Default)]
pub struct RouteIndex {
    organizations: HashMap<String, Access>,
    connections: HashMap<String, String>,
}

/// The clients the routes of one organization admit.
#[derive(Debug, Default)]
struct Access {
    /// Some route of the organization admits every client.
    open: bool,
    clients: HashSet<String>,
}

impl RouteIndex {
    pub fn from_routes(routes: &[Route]) -> RouteIndex {
        let mut index = RouteIndex::default();
        for route in routes {
            let access = index.organizations.entry(route.organization_id.clone()).or_default();
            access.open |= route.clients.is_empty();
            access.clients.extend(route.clients.iter().cloned());
            if let Some(connection) = &route.connection_id {
                index.connections.insert(connection.clone(), route.organization_id.clone());
            }
        }
        index
    }

    /// Whether a route that `client_id` may use leads to `organization`.
    pub fn routes_to(&self, organization: &str, client_id: &str) -> bool {
        self.organizations.get(organization).is_some_and(|a| a.open || a.clients.contains(client_id))
    }

    /// Whether the route table leaves `organization` open to `client_id`: no route names it,
    /// or one that does admits the client. An organization whose routes are all restricted to
    /// other clients is theirs alone, however a request names it.
    pub fn open_to(&self, organization: &str, client_id: &str) -> bool {
        !self.organizations.contains_key(organization) || self.routes_to(organization, client_id)
    }

    /// The organization of a connection some route names.
    pub fn organization_of(&self, connection: &str) -> Option<&str> {
        self.connections.get(connection).map(String::as_str)
    }
}

/// An instance's copy of the routes it looked up (and of the domains found to have none), so
/// that a login reads the store for its flow only; and of the [`RouteIndex`].
#[derive(Default)]
pub struct RouteCache {
    entries: Mutex<HashMap<String, (Instant, Option<Route>)>>,
    index: Mutex<Option<(Instant, Arc<RouteIndex>)>>,
    /// When the store's generation was last read, and what it held.
    generation: Mutex<(Option<Instant>, Option<Vec<u8>>)>,
    /// Moves each time this copy is dropped for a change: what other per-instance caches of
    /// routing answers (the miss lookup's) are tagged with.
    epoch: AtomicU64,
}

impl RouteCache {
    /// Whether the generation is due to be read; if so, the next caller's turn starts now.
    fn generation_due(&self) -> bool {
        let mut generation = self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if generation.0.is_some_and(|at| at.elapsed() < GENERATION_CHECK_EVERY) {
            return false;
        }
        generation.0 = Some(Instant::now());
        true
    }

    /// Drops everything when `seen` differs from the generation last read.
    fn observe_generation(&self, seen: Option<Vec<u8>>) {
        let changed = {
            let mut generation = self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let changed = generation.1 != seen;
            generation.1 = seen;
            changed
        };
        if changed {
            self.clear();
        }
    }

    fn clear(&self) {
        self.entries().clear();
        *self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Makes the next lookup read the generation (tests: instead of waiting for it).
    #[cfg(test)]
    fn check_soon(&self) {
        self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0 = None;
    }

    /// See [`RouteCache::epoch`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<Route>)>> {
        // Each use is one map operation: a panic cannot leave an entry half written.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, domain: &str) -> Option<Option<Route>> {
        self.entries().get(domain).filter(|(at, _)| at.elapsed() < CACHE_FOR).map(|(_, route)| route.clone())
    }

    fn keep(&self, domain: &str, route: Option<Route>) {
        let mut entries = self.entries();
        if entries.len() >= CACHE_MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
            if entries.len() >= CACHE_MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(domain.to_owned(), (Instant::now(), route));
    }

    fn forget(&self, domain: &str) {
        self.entries().remove(domain);
        *self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    fn index(&self) -> Option<Arc<RouteIndex>> {
        let index = self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        index.as_ref().filter(|(at, _)| at.elapsed() < CACHE_FOR).map(|(_, index)| index.clone())
    }

    fn keep_index(&self, index: Arc<RouteIndex>) {
        *self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((Instant::now(), index));
    }
}

/// Route operations over any store; lookups through a [`RouteCache`] when given one.
pub struct RouteTable<'s, S> {
    store: &'s S,
    cache: Option<&'s RouteCache>,
}

impl<'s, S: Store> RouteTable<'s, S> {
    /// Straight to the store: what a command-line tool or a test wants.
    pub fn new(store: &'s S) -> Self {
        RouteTable { store, cache: None }
    }

    /// Lookups served from `cache` while fresh; writes through this table refresh it.
    pub fn cached(store: &'s S, cache: &'s RouteCache) -> Self {
        RouteTable { store, cache: Some(cache) }
    }

    /// Drops the cache if the routes changed in the store since it was last checked (at most
    /// every [`GENERATION_CHECK_EVERY`]). A store error keeps the copy: [`CACHE_FOR`] bounds it.
    async fn check_generation(&self, cache: &RouteCache) {
        if cache.generation_due() {
            if let Ok(seen) = self.store.get(keys::ROUTES_GENERATION).await {
                cache.observe_generation(seen);
            }
        }
    }

    /// Tells every instance that the routes changed. Best effort: should the bump fail, the
    /// others still see the change within [`CACHE_FOR`].
    pub async fn bump_generation(&self) {
        if let Err(error) = self.store.incr(keys::ROUTES_GENERATION, 1, GENERATION_TTL).await {
            tracing::warn!(error = %error, "could not bump the routes generation");
        }
    }

    /// This instance's cache epoch (0 without a cache): see [`RouteCache::epoch`].
    pub fn epoch(&self) -> u64 {
        self.cache.map(RouteCache::epoch).unwrap_or(0)
    }

    /// The route stored for exactly `domain` (already normalized).
    pub async fn get(&self, domain: &str) -> Result<Option<Route>, StoreError> {
        let Some(cache) = self.cache else { return get_json(self.store, &key(domain)).await };
        self.check_generation(cache).await;
        if let Some(route) = cache.get(domain) {
            return Ok(route);
        }
        let route: Option<Route> = get_json(self.store, &key(domain)).await?;
        cache.keep(domain, route.clone());
        Ok(route)
    }

    fn forget(&self, domain: &str) {
        if let Some(cache) = self.cache {
            cache.forget(domain);
        }
    }

    pub async fn put(&self, route: &Route) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(route)
            .map_err(|e| StoreError::Corrupt { key: key(&route.domain), detail: e.to_string() })?;
        let written = self.store.set(&key(&route.domain), &bytes).await;
        self.forget(&route.domain);
        if written.is_ok() {
            self.bump_generation().await;
        }
        written
    }

    /// The route and its stored bytes (for compare-and-set).
    pub async fn read(&self, domain: &str) -> Result<Option<(Route, Vec<u8>)>, StoreError> {
        let Some(bytes) = self.store.get(&key(domain)).await? else { return Ok(None) };
        let route = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { key: key(domain), detail: e.to_string() })?;
        Ok(Some((route, bytes)))
    }

    /// Writes `route` only if the stored bytes are still `expected` (None: only if absent).
    pub async fn replace(&self, route: &Route, expected: Option<&[u8]>) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(route)
            .map_err(|e| StoreError::Corrupt { key: key(&route.domain), detail: e.to_string() })?;
        let replaced = self.store.replace(&key(&route.domain), expected, &bytes).await;
        self.forget(&route.domain);
        if replaced.as_ref().is_ok_and(|done| *done) {
            self.bump_generation().await;
        }
        replaced
    }

    pub async fn delete(&self, domain: &str) -> Result<(), StoreError> {
        let deleted = self.store.delete(&key(domain)).await;
        self.forget(domain);
        if deleted.is_ok() {
            self.bump_generation().await;
        }
        deleted
    }

    /// Every route, sorted by domain.
    pub async fn list(&self) -> Result<Vec<Route>, StoreError> {
        Ok(self.entries().await?.into_iter().map(|(route, _)| route).collect())
    }

    /// Every route with its stored bytes (for compare-and-set), sorted by domain.
    pub async fn entries(&self) -> Result<Vec<(Route, Vec<u8>)>, StoreError> {
        let mut routes = Vec::new();
        for (k, bytes) in self.store.scan_prefix(keys::ROUTES).await? {
            let route: Route =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt { key: k, detail: e.to_string() })?;
            routes.push((route, bytes));
        }
        routes.sort_by(|a, b| a.0.domain.cmp(&b.0.domain));
        Ok(routes)
    }

    /// The index of every route, through the cache when there is one.
    pub async fn index(&self) -> Result<Arc<RouteIndex>, StoreError> {
        if let Some(cache) = self.cache {
            self.check_generation(cache).await;
        }
        if let Some(index) = self.cache.and_then(RouteCache::index) {
            return Ok(index);
        }
        let index = Arc::new(RouteIndex::from_routes(&self.list().await?));
        if let Some(cache) = self.cache {
            cache.keep_index(index.clone());
        }
        Ok(index)
    }

    /// The route `client_id` may use for `domain`: the exact domain, else the nearest parent
    /// whose route includes subdomains.
    pub async fn resolve(&self, domain: &str, client_id: &str) -> Result<Option<Route>, StoreError> {
        if let Some(route) = self.get(domain).await? {
            return Ok(route.allows(client_id).then_some(route));
        }
        let mut rest = domain;
        while let Some((_, parent)) = rest.split_once('.') {
            if !parent.contains('.') {
                break; // never a bare TLD
            }
            if let Some(route) = self.get(parent).await? {
                if route.include_subdomains && route.allows(client_id) {
                    return Ok(Some(route));
                }
                return Ok(None);
            }
            rest = parent;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn route(domain: &str, subdomains: bool, clients: &[&str]) -> Route {
        Route {
            domain: domain.into(),
            organization_id: format!("org_{domain}"),
            connection_id: None,
            clients: clients.iter().map(|c| c.to_string()).collect(),
            include_subdomains: subdomains,
            verified: true,
            source: RouteSource::Api,
        }
    }

    #[tokio::test]
    async fn subdomains_match_only_when_the_route_says_so() {
        let store = MemoryStore::new();
        let table = RouteTable::new(&store);
        table.put(&route("acme.example", false, &[])).await.expect("put");
        table.put(&route("globex.example", true, &[])).await.expect("put");
        assert!(table.resolve("acme.example", "c").await.expect("r").is_some());
        assert!(table.resolve("eu.acme.example", "c").await.expect("r").is_none());
        assert!(table.resolve("eu.globex.example", "c").await.expect("r").is_some());
        assert!(table.resolve("a.b.globex.example", "c").await.expect("r").is_some());
        assert!(table.resolve("example", "c").await.expect("r").is_none());
    }

    #[tokio::test]
    async fn a_cached_table_sees_its_own_writes_at_once_and_others_within_the_cache_time() {
        let store = MemoryStore::new();
        let cache = RouteCache::default();
        let table = RouteTable::cached(&store, &cache);
        assert!(table.get("acme.example").await.expect("get").is_none());
        table.put(&route("acme.example", false, &[])).await.expect("put");
        assert!(table.get("acme.example").await.expect("get").is_some(), "its own write, at once");
        // Another instance (no shared cache) deletes it: this one still has its copy.
        RouteTable::new(&store).delete("acme.example").await.expect("delete");
        assert!(table.get("acme.example").await.expect("get").is_some(), "cached");
        table.delete("acme.example").await.expect("delete");
        assert!(table.get("acme.example").await.expect("get").is_none(), "its own delete, at once");
    }

    #[tokio::test]
    async fn another_instances_write_is_seen_at_the_next_generation_check() {
        let store = MemoryStore::new();
        let (mine, theirs) = (RouteCache::default(), RouteCache::default());
        let table = RouteTable::cached(&store, &mine);
        assert!(table.get("acme.example").await.expect("get").is_none());
        let epoch = table.epoch();
        RouteTable::cached(&store, &theirs).put(&route("acme.example", false, &[])).await.expect("put");
        assert!(table.get("acme.example").await.expect("get").is_none(), "not yet checked: cached");
        mine.check_soon();
        assert!(table.get("acme.example").await.expect("get").is_some(), "the generation moved");
        assert!(table.epoch() > epoch, "dependent caches are told");
    }

    #[test]
    fn records_without_a_source_are_the_operators() {
        let old = br#"{"domain":"acme.example","organization_id":"org_1"}"#;
        let route: Route = serde_json::from_slice(old).expect("old record");
        assert_eq!((route.source, route.verified), (RouteSource::Api, true));
    }

    #[tokio::test]
    async fn a_route_restricted_to_other_clients_is_invisible() {
        let store = MemoryStore::new();
        let table = RouteTable::new(&store);
        table.put(&route("acme.example", false, &["auth0-prod"])).await.expect("put");
        assert!(table.resolve("acme.example", "auth0-prod").await.expect("r").is_some());
        assert!(table.resolve("acme.example", "cognito").await.expect("r").is_none());
        assert_eq!(table.list().await.expect("list").len(), 1);
    }
}
