//! Wiring: the shared state, the HTTP application, and serving it.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{get, handler, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Server};
use tracing::Instrument;

use crate::clients::{ClientRecord, ClientRegistry};
use crate::config::Config;
use crate::store::{AnyStore, Store, StoreError};
use crate::tokens::{KeyRing, SigningKey, TokenError};
use crate::upstream::{UpstreamClient, UpstreamError};

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
    /// The caps on pending flows (their counters too are shared through the store).
    pub pending_flows: crate::protect::PendingFlows,
    route_cache: crate::routing::RouteCache,
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

    /// Builds the state on `store` and seeds the configured clients and routes into it.
    pub async fn with_store(config: Config, key: SigningKey, store: AnyStore) -> Result<Arc<AppState>, StartError> {
        let state = Self::build(config, key, store)?;
        state.seed().await?;
        Ok(Arc::new(state))
    }

    /// A state good enough to describe the admin API: no I/O, nothing seeded.
    pub fn for_spec(config: Config) -> Result<Arc<AppState>, StartError> {
        Ok(Arc::new(Self::build(config, SigningKey::generate_rsa()?, AnyStore::Memory(Default::default()))?))
    }

    fn build(config: Config, key: SigningKey, store: AnyStore) -> Result<AppState, StartError> {
        let issuer = config.public_url.clone();
        let upstream = UpstreamClient::new(&config.upstream, format!("{issuer}/callback"))?;
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
        let pending_flows = crate::protect::PendingFlows::new(crate::limiter::RateLimiter::for_store(&store), &config);
        Ok(AppState {
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
            pending_flows,
            route_cache: crate::routing::RouteCache::default(),
            store,
        })
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
            let domain = crate::routing::normalize_domain(&route.domain)
                .map_err(|e| StoreError::Config(format!("routes: {e}")))?;
            table
                .put(&crate::routing::Route {
                    domain,
                    organization_id: route.organization_id.clone(),
                    connection_id: route.connection_id.clone(),
                    clients: route.clients.clone(),
                    include_subdomains: route.include_subdomains,
                    verified: route.verified,
                })
                .await?;
        }
        self.store.set(SEED_MARKER, b"1").await?;
        Ok(())
    }
}

/// Present while the store holds what `seed` wrote.
const SEED_MARKER: &str = "seeded";

/// The whole public application. `extra` is served for every path the broker does not
/// answer itself (the demo's pages and simulator, the admin API when it shares the listener).
pub fn endpoint(state: Arc<AppState>, extra: Option<BoxEndpoint<'static>>) -> impl Endpoint<Output = Response> {
    let mut routes =
        crate::oidc::routes().at("/healthz", get(healthz)).at("/readyz", get(readyz)).at("/metrics", get(metrics));
    if let Some(extra) = extra {
        routes = routes.nest("/", extra);
    }
    routes.with(crate::protect::Protect).data(state).with(RequestLog).map_to_response()
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

/// Ready when the store answers and the upstream's discovery can be fetched.
#[handler]
async fn readyz(state: poem::web::Data<&Arc<AppState>>) -> Response {
    // Not ready while the store answers but has lost the configuration (re-seeded here).
    let store = state.reseed_if_lost().await.map(|_| ());
    let upstream = state.upstream.discover().await;
    let body = serde_json::json!({
        "store": if store.is_ok() { "ok" } else { "unavailable" },
        "upstream": if upstream.is_ok() { "ok" } else { "unavailable" },
    });
    let status = if store.is_ok() && upstream.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
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
