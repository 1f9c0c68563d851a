//! Wiring: the shared state, the HTTP application, and serving it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{get, handler, post, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Server};
use tracing::Instrument;

use crate::clients::{ClientRecord, ClientRegistry};
use crate::config::Config;
use crate::routing::lookup::CachedLookup;
use crate::routing::sync::{RouteCounts, SyncReport};
use crate::store::{get_json, keys, AnyStore, Store, StoreError};
use crate::tokens::{KeyRing, SigningKey, TokenError};
use crate::upstream::scalekit::{ScalekitApi, ScalekitError};
use crate::upstream::{Credentials, UpstreamClient, UpstreamError};

/// Everything a request handler may use.
pub struct AppState {
    /// `public_url` without trailing slash: the `iss` of everything the broker issues.
    pub issuer: String,
    pub config: Config,
    pub store: AnyStore,
    pub keys: KeyRing,
    pub upstream: UpstreamClient,
    pub clients: ClientRegistry,
    /// The registered keys of `private_key_jwt` clients.
    pub client_keys: crate::oidc::client_assertion::ClientKeySets,
    pub pairwise_salt: String,
    pub discovery: serde_json::Value,
    pub started: Instant,
    /// Rate-limit counters, shared through the store.
    pub limiter: crate::limiter::RateLimiter,
    /// What `/readyz` answers: the last background checks of the store, the upstream and the
    /// broker's client credentials there.
    pub readiness: Readiness,
    /// The caps on pending flows (their counters too are shared through the store).
    pub pending_flows: crate::protect::PendingFlows,
    route_cache: crate::routing::RouteCache,
    /// Scalekit's management API, when `[scalekit]` is configured (route sync, webhooks).
    pub scalekit: Option<Arc<ScalekitApi>>,
    /// The miss lookup, when `[scalekit] lookup_on_miss` is on.
    domain_lookup: Option<CachedLookup>,
    /// The HMAC key of `[scalekit] webhook_secret`.
    webhook_key: Option<Vec<u8>>,
    /// Login, hand-off, admin and deprovisioning events, shared through the store.
    pub events: Arc<crate::events::EventLog>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("signing key: {0}")]
    Key(#[from] TokenError),
    #[error("upstream: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Scalekit(#[from] ScalekitError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The signing key the configuration names: `signing.key_pem`, else `signing.key_file`.
pub fn load_signing_key(config: &Config) -> Result<Option<SigningKey>, StartError> {
    load_key(config.signing.key_pem.as_ref(), config.signing.key_file.as_deref(), "signing.key_file")
}

/// The EC key for ES256: `signing.ec_key_pem`, else `signing.ec_key_file`.
pub fn load_ec_signing_key(config: &Config) -> Result<Option<SigningKey>, StartError> {
    load_key(config.signing.ec_key_pem.as_ref(), config.signing.ec_key_file.as_deref(), "signing.ec_key_file")
}

fn load_key(
    pem: Option<&crate::secret::Secret>,
    file: Option<&std::path::Path>,
    name: &str,
) -> Result<Option<SigningKey>, StartError> {
    if let Some(pem) = pem {
        return Ok(Some(SigningKey::from_pem(pem.expose())?));
    }
    if let Some(path) = file {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| StartError::Io(std::io::Error::new(e.kind(), format!("{name} {}: {e}", path.display()))))?;
        return Ok(Some(SigningKey::from_pem(&pem)?));
    }
    Ok(None)
}

impl AppState {
    pub async fn new(config: Config, key: SigningKey) -> Result<Arc<AppState>, StartError> {
        let store = AnyStore::connect(&config.store).await?;
        Self::with_store(config, key, store).await
    }

    /// Builds the state on `store`, seeds the configured clients and routes into it, and
    /// starts the background readiness checks (they end with the state).
    pub async fn with_store(config: Config, key: SigningKey, store: AnyStore) -> Result<Arc<AppState>, StartError> {
        let state = Self::build(config, key, store)?;
        state.seed().await?;
        let state = Arc::new(state);
        tokio::spawn(check_readiness(Arc::downgrade(&state)));
        Ok(state)
    }

    /// A state good enough to describe the admin API: no I/O, nothing seeded.
    pub fn for_spec(config: Config) -> Result<Arc<AppState>, StartError> {
        Ok(Arc::new(Self::build(config, SigningKey::generate_rsa()?, AnyStore::Memory(Default::default()))?))
    }

    fn build(config: Config, key: SigningKey, store: AnyStore) -> Result<AppState, StartError> {
        let issuer = config.public_url.clone();
        let upstream = UpstreamClient::new(&config.upstream, &issuer)?;
        let clients = ClientRegistry::new(store.clone(), &config.clients);
        let pairwise_salt = config.tokens.pairwise_salt.as_ref().map(|s| s.expose().to_owned()).unwrap_or_default();
        let discovery = crate::oidc::discovery_document(&issuer);
        let keys = KeyRing::new(
            key,
            load_ec_signing_key(&config)?,
            store.clone(),
            config.signing.key_encryption_key.as_ref().map(|k| k.expose()),
            std::time::Duration::from_secs(config.tokens.id_token_ttl_seconds),
        )
        .map_err(|e| StartError::Key(TokenError::Key(e.to_string())))?;
        let client_keys = crate::oidc::client_assertion::ClientKeySets::new(
            crate::http::guarded_client(
                std::time::Duration::from_secs(config.upstream.timeout_seconds),
                config.outbound.allow_private_networks,
            )
            .map_err(|e| StartError::Io(std::io::Error::other(e)))?,
        );
        let scalekit = match &config.scalekit {
            Some(settings) => Some(Arc::new(ScalekitApi::new(
                settings.api_url.as_deref().unwrap_or(&config.upstream.issuer),
                &config.upstream.client_id,
                &config.upstream.client_secret,
                Duration::from_secs(config.upstream.timeout_seconds),
            )?)),
            None => None,
        };
        let domain_lookup = match (&config.scalekit, &scalekit) {
            (Some(settings), Some(api)) if settings.lookup_on_miss => {
                Some(CachedLookup::new(api.clone(), Duration::from_secs(settings.lookup_cache_seconds)))
            }
            _ => None,
        };
        let webhook_key = config
            .scalekit
            .as_ref()
            .and_then(|s| s.webhook_secret.as_ref())
            .map(|secret| crate::webhooks::signature::decode_secret(secret.expose()))
            .transpose()
            .map_err(|message| {
                StartError::Config(crate::config::ConfigError::Invalid(vec![crate::config::Problem {
                    key: "scalekit.webhook_secret".to_owned(),
                    message,
                }]))
            })?;
        let pending_flows = crate::protect::PendingFlows::new(crate::limiter::RateLimiter::for_store(&store), &config);
        let events = crate::events::EventLog::start(store.clone(), &config.events, pairwise_salt.as_bytes());
        Ok(AppState {
            events,
            issuer,
            config,
            keys,
            upstream,
            clients,
            client_keys,
            pairwise_salt,
            discovery,
            started: Instant::now(),
            limiter: crate::limiter::RateLimiter::for_store(&store),
            readiness: Readiness::default(),
            pending_flows,
            route_cache: crate::routing::RouteCache::default(),
            store,
            scalekit,
            domain_lookup,
            webhook_key,
        })
    }

    /// What routing asks about a domain with no route (nothing, unless `lookup_on_miss`).
    pub fn domain_lookup(&self) -> &Option<CachedLookup> {
        &self.domain_lookup
    }

    /// The key webhooks are signed with, when they are enabled.
    pub fn webhook_key(&self) -> Option<&[u8]> {
        self.webhook_key.as_deref()
    }

    /// A full route sync from Scalekit, recorded in the store for `/admin/status` and in the
    /// metrics. Unless `force`, only when no other instance synced within the interval (a
    /// store lock with a TTL: a fleet hits the API about once per interval). `None` when
    /// `[scalekit]` is absent or another instance holds the lock.
    pub async fn sync_routes(&self, force: bool) -> Option<SyncReport> {
        let api = self.scalekit.as_ref()?;
        if !force {
            let interval = self.config.scalekit.as_ref().map(|s| s.sync_interval_seconds).unwrap_or(0);
            let hold = Duration::from_millis(interval.max(1) * 900);
            match self.store.put_new(keys::ROUTE_SYNC_LOCK, b"1", hold).await {
                Ok(true) => {}
                Ok(false) => {
                    crate::telemetry::count("ssobridge_route_sync_total", &[("outcome", "skipped")]);
                    // Another instance synced: show its result in this one's metrics too.
                    if let Some(report) = self.route_sync_report().await {
                        publish_route_metrics(&report);
                    }
                    return None;
                }
                Err(error) => {
                    crate::telemetry::count("ssobridge_route_sync_total", &[("outcome", "error")]);
                    tracing::warn!(error = %error, "route sync not started: the store is unavailable");
                    return None;
                }
            }
        }
        let started_at = crate::oidc::callback::now_secs();
        let table = self.routes();
        let result = crate::routing::sync::sync_all(api, &table).await;
        let previous = self.route_sync_report().await;
        let routes = table.list().await.map(|routes| RouteCounts::of(&routes)).unwrap_or_default();
        let finished_at = crate::oidc::callback::now_secs();
        let report = match result {
            Ok(changes) => {
                tracing::info!(
                    organizations = changes.organizations,
                    domains = changes.domains,
                    unverified = changes.unverified,
                    added = changes.added,
                    updated = changes.updated,
                    removed = changes.removed,
                    kept = changes.kept,
                    "route sync from Scalekit done"
                );
                SyncReport { started_at, finished_at, error: None, changes, routes, last_success_at: Some(finished_at) }
            }
            Err(error) => {
                tracing::warn!(error = %error, "route sync from Scalekit failed; routes unchanged");
                SyncReport {
                    started_at,
                    finished_at,
                    error: Some(error.to_string()),
                    changes: Default::default(),
                    routes,
                    last_success_at: previous.and_then(|p| p.last_success_at),
                }
            }
        };
        let outcome = if report.error.is_none() { "ok" } else { "error" };
        crate::telemetry::count("ssobridge_route_sync_total", &[("outcome", outcome)]);
        publish_route_metrics(&report);
        if let Ok(bytes) = serde_json::to_vec(&report) {
            if let Err(error) = self.store.set(keys::ROUTE_SYNC_REPORT, &bytes).await {
                tracing::warn!(error = %error, "could not record the route sync");
            }
        }
        Some(report)
    }

    /// The last full route sync of any instance.
    pub async fn route_sync_report(&self) -> Option<SyncReport> {
        get_json(&self.store, keys::ROUTE_SYNC_REPORT).await.ok().flatten()
    }

    /// Whether the broker is served over https (its cookies are `Secure` and `__Host-` then).
    pub fn https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The route table, looked up through this instance's cache.
    pub fn routes(&self) -> crate::routing::RouteTable<'_, AnyStore> {
        crate::routing::RouteTable::cached(&self.store, &self.route_cache)
    }

    /// The client, re-seeding the store first if it lost the configuration (a Redis restarted
    /// empty, a failover to an empty replica): config clients must not vanish with it.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<crate::clients::Client>>, StoreError> {
        match self.clients.get(client_id).await? {
            Some(client) => Ok(Some(client)),
            None if self.reseed_if_lost().await? => self.clients.get(client_id).await,
            None => Ok(None),
        }
    }

    /// Seeds again when the store's seed marker is gone; says whether it did. The marker (not
    /// the clients themselves) decides, so a config client deleted through the admin API
    /// stays deleted.
    pub async fn reseed_if_lost(&self) -> Result<bool, StoreError> {
        if self.store.get(SEED_MARKER).await?.is_some() {
            return Ok(false);
        }
        tracing::warn!("the store has lost the configuration (restarted empty?); seeding it again");
        self.seed().await?;
        Ok(true)
    }

    /// Writes the config file's clients and routes into the store: for the entries it lists,
    /// the file wins at start; entries added at run time through the admin API are kept.
    async fn seed(&self) -> Result<(), StoreError> {
        for client in &self.config.clients {
            let mut record =
                ClientRecord::from_config(client).map_err(|e| StoreError::Config(format!("clients: {e}")))?;
            // The same secret as stored: keep its hash (and salt), so that a restart changes
            // nothing (the client's ETag included).
            if let (Some(secret), Ok(Some((stored, _)))) =
                (&client.client_secret, self.clients.read(&client.client_id).await)
            {
                if stored.secret_matches(secret.expose()) {
                    record.secret_hash = stored.secret_hash;
                }
            }
            self.clients.put(&record).await?;
        }
        let table = self.routes();
        for route in &self.config.routes {
            let domain = crate::model::normalize_domain(&route.domain)
                .map_err(|e| StoreError::Config(format!("routes: {e}")))?;
            table
                .put(&crate::routing::Route {
                    domain,
                    organization_id: route.organization_id.clone(),
                    connection_id: route.connection_id.clone(),
                    clients: route.clients.clone(),
                    include_subdomains: route.include_subdomains,
                    verified: route.verified,
                    source: crate::routing::RouteSource::Config,
                })
                .await?;
        }
        self.store.set(SEED_MARKER, b"1").await?;
        Ok(())
    }
}

fn publish_route_metrics(report: &SyncReport) {
    for (source, count) in
        [("config", report.routes.config), ("api", report.routes.api), ("synced", report.routes.synced)]
    {
        crate::telemetry::gauge("ssobridge_routes", &[("source", source)], count as f64);
    }
    if let Some(at) = report.last_success_at {
        crate::telemetry::gauge("ssobridge_route_sync_last_success_timestamp_seconds", &[], at as f64);
    }
}

/// Starts the periodic route sync of `[scalekit] sync_interval_seconds` (0: none): once now,
/// then every interval, on the instance that takes the store lock.
pub fn spawn_route_sync(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = state.config.scalekit.as_ref()?.sync_interval_seconds;
    if interval == 0 || state.scalekit.is_none() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(interval));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            state.sync_routes(false).await;
        }
    }))
}

/// Present while the store holds what `seed` wrote.
const SEED_MARKER: &str = "seeded";

/// How often the background checks run: the store (a PING), the upstream (its discovery
/// document and keys, fetched again) and the broker's client credentials (a client_credentials
/// grant: at start, then rarely, so that a wrong secret is an error in the log before the first
/// user meets it). `/readyz` answers from their last result, so that probes cost neither the
/// store nor the upstream a request, and an outsider cannot make them.
const STORE_CHECK_EVERY: Duration = Duration::from_secs(2);
const UPSTREAM_CHECK_EVERY: Duration = Duration::from_secs(10);
const CREDENTIALS_CHECK_EVERY: Duration = Duration::from_secs(300);

type Slot<T> = std::sync::RwLock<Option<T>>;

/// The last result of each background check.
#[derive(Default)]
pub struct Readiness {
    store: Slot<Result<(), String>>,
    upstream: Slot<Result<(), String>>,
    /// The upstream's answer about the credentials; an error when it could not be asked.
    credentials: Slot<Result<Credentials, String>>,
}

/// What `/readyz` says of each check: `ok`, `unavailable`, or `starting` (not checked yet);
/// the credentials may also be `unknown` (the upstream grants no client_credentials, so it
/// cannot tell), which counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessReport {
    pub store: &'static str,
    pub upstream: &'static str,
    pub credentials: &'static str,
}

impl ReadinessReport {
    pub fn ready(&self) -> bool {
        self.store == "ok" && self.upstream == "ok" && matches!(self.credentials, "ok" | "unknown")
    }
}

impl Readiness {
    fn set<T>(slot: &Slot<T>, result: T) {
        *slot.write().unwrap_or_else(|p| p.into_inner()) = Some(result);
    }

    fn get<T: Clone>(slot: &Slot<T>) -> Option<T> {
        slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn report(&self) -> ReadinessReport {
        let word = |result: Option<Result<(), String>>| match result {
            Some(Ok(())) => "ok",
            Some(Err(_)) => "unavailable",
            None => "starting",
        };
        let credentials = match Self::get(&self.credentials) {
            Some(Ok(Credentials::Accepted)) => "ok",
            Some(Ok(Credentials::Unknown(_))) => "unknown",
            Some(Ok(Credentials::Refused) | Err(_)) => "unavailable",
            None => "starting",
        };
        ReadinessReport { store: word(Self::get(&self.store)), upstream: word(Self::get(&self.upstream)), credentials }
    }
}

/// Checks the store (re-seeding it if it lost the configuration), the upstream and the
/// broker's credentials there in the background, for as long as the state lives.
async fn check_readiness(state: std::sync::Weak<AppState>) {
    let mut upstream_checked: Option<Instant> = None;
    let mut credentials_due = Instant::now();
    loop {
        let Some(app) = state.upgrade() else { return };
        // Bounded: a store that hangs is as unavailable as one that refuses.
        let store = match tokio::time::timeout(STORE_CHECK_EVERY, app.reseed_if_lost()).await {
            Ok(result) => result.map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err("no answer within the check interval".to_owned()),
        };
        if let Err(error) = &store {
            tracing::warn!(error = %error, "readiness: the store is unavailable");
        }
        Readiness::set(&app.readiness.store, store);
        if upstream_checked.is_none_or(|at| at.elapsed() >= UPSTREAM_CHECK_EVERY) {
            let upstream = app.upstream.discover().await.map_err(|e| e.to_string());
            if let Err(error) = &upstream {
                tracing::warn!(error = %error, "readiness: the upstream is unavailable");
            }
            // The token endpoint is the discovery document's: asked once that is known.
            if upstream.is_ok() && Instant::now() >= credentials_due {
                let checked = app.upstream.check_credentials().await.map_err(|e| e.to_string());
                let previous = Readiness::get(&app.readiness.credentials);
                log_credentials(previous.as_ref(), &checked);
                // One that could not be asked is asked again with the next upstream check.
                credentials_due =
                    Instant::now() + if checked.is_ok() { CREDENTIALS_CHECK_EVERY } else { UPSTREAM_CHECK_EVERY };
                Readiness::set(&app.readiness.credentials, checked);
            }
            Readiness::set(&app.readiness.upstream, upstream);
            upstream_checked = Some(Instant::now());
        }
        drop(app);
        tokio::time::sleep(STORE_CHECK_EVERY).await;
    }
}

/// One line when what the upstream says of the credentials changes (a refusal is an error that
/// names the key to fix, never its value), and a warning each time it cannot be asked.
fn log_credentials(previous: Option<&Result<Credentials, String>>, checked: &Result<Credentials, String>) {
    let changed = previous != Some(checked);
    match checked {
        Ok(Credentials::Refused) if changed => tracing::error!(
            "the upstream refuses the broker's client credentials (invalid_client): check upstream.client_secret \
             (and upstream.client_id); every sign-in fails at its callback until they match"
        ),
        Ok(Credentials::Unknown(answer)) if changed => tracing::info!(
            answer = %answer,
            "the upstream grants no client_credentials, so it cannot confirm the client credentials; counted as ready"
        ),
        Ok(Credentials::Accepted) if changed => tracing::info!("the upstream accepts the broker's client credentials"),
        Ok(_) => {}
        Err(error) => tracing::warn!(error = %error, "readiness: the client credentials could not be checked"),
    }
}

/// The whole public application. `extra` is served for every path the broker does not
/// answer itself (the demo's pages and simulator, the admin API when it shares the listener);
/// `ops`: whether `/readyz` and `/metrics` are served here too (`/healthz` always is).
pub fn endpoint(
    state: Arc<AppState>,
    extra: Option<BoxEndpoint<'static>>,
    ops: bool,
) -> impl Endpoint<Output = Response> {
    let mut routes =
        crate::oidc::routes().at(crate::webhooks::PATH, post(crate::webhooks::scalekit)).at("/healthz", get(healthz));
    if ops {
        routes = routes.at("/readyz", get(readyz)).at("/metrics", get(metrics));
    }
    if let Some(extra) = extra {
        routes = routes.nest("/", extra);
    }
    routes.with(crate::protect::Protect).data(state).with(RequestLog).map_to_response()
}

/// The operations listener (`admin.listen`): `/healthz`, `/readyz`, `/metrics`, and the admin
/// API under `/admin` when it is enabled. Not for the internet: probes and scrapers only.
pub fn operations_endpoint(
    state: Arc<AppState>,
    admin: Option<BoxEndpoint<'static>>,
) -> impl Endpoint<Output = Response> {
    let mut routes =
        poem::Route::new().at("/healthz", get(healthz)).at("/readyz", get(readyz)).at("/metrics", get(metrics));
    if let Some(admin) = admin {
        routes = routes.nest("/admin", admin);
    }
    routes.data(state).with(RequestLog).map_to_response()
}

/// Prometheus text exposition.
#[handler]
fn metrics() -> Response {
    Response::builder().content_type("text/plain; version=0.0.4").body(crate::telemetry::render())
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Ready when the last background checks found the store answering (with its configuration),
/// the upstream's discovery and keys fetchable, and the broker's credentials not refused
/// there. Asks none of them itself.
#[handler]
fn readyz(state: poem::web::Data<&Arc<AppState>>) -> Response {
    let report = state.readiness.report();
    let body =
        serde_json::json!({"store": report.store, "upstream": report.upstream, "credentials": report.credentials});
    let status = if report.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// A request id per request (echoed as `x-request-id`), a span around the request so every log
/// line carries it, and one line per request. Only the path is logged: query strings carry
/// codes and states.
struct RequestLog;

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint(ep)
    }
}

struct RequestLogEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let span =
            tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %req.uri().path());
        async move {
            let started = Instant::now();
            let result = self.0.call(req).await;
            let mut response = match result {
                Ok(output) => output.into_response(),
                Err(error) => error.into_response(),
            };
            tracing::info!(
                status = response.status().as_u16(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "request"
            );
            if let Ok(value) = poem::http::HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-request-id", value);
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

/// Serves `endpoint` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: impl Endpoint + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(endpoint, shutdown, Some(std::time::Duration::from_secs(10)))
        .await?;
    Ok(())
}
