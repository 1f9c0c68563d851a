//! The shared state every face works on: the configuration, the store, the keys, the upstream,
//! the clients and routes, the limiters, and what the background checks last found. Built once
//! at start (the configured clients and routes seeded into the store); only lower layers are
//! imported here.

mod readiness;
mod route_sync;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use self::readiness::{Readiness, ReadinessReport};
pub use self::route_sync::spawn_route_sync;
use crate::client_assertion::ClientKeySets;
use crate::clients::{ClientRecord, ClientRegistry};
use crate::config::Config;
use crate::limiter::{PendingFlows, RateLimiter};
use crate::routing::lookup::CachedLookup;
use crate::routing::{RouteCache, RouteTable};
use crate::store::{keys, AnyStore, Store, StoreError};
use crate::tokens::{KeyRing, SigningKey, TokenError};
use crate::upstream::scalekit::{ScalekitApi, ScalekitError};
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
    pub client_keys: ClientKeySets,
    pub pairwise_salt: String,
    pub started: Instant,
    /// Rate-limit counters, shared through the store.
    pub limiter: RateLimiter,
    /// What `/readyz` answers: the last background checks of the store, the upstream and the
    /// broker's client credentials there.
    pub readiness: Readiness,
    /// The caps on pending flows (their counters too are shared through the store).
    pub pending_flows: PendingFlows,
    route_cache: RouteCache,
    /// Scalekit's management API, when `[scalekit]` is configured (route sync, webhooks).
    pub scalekit: Option<Arc<ScalekitApi>>,
    /// The miss lookup, when `[scalekit] lookup_on_miss` is on.
    domain_lookup: Option<CachedLookup>,
    /// The HMAC key of `[scalekit] webhook_secret`.
    webhook_key: Option<Vec<u8>>,
    /// Login, hand-off, admin and deprovisioning events, shared through the store.
    pub events: Arc<crate::events::EventLog>,
    /// Work owed to downstreams and clients, shared through the store ([`crate::lifecycle`]
    /// runs it).
    pub jobs: crate::jobs::JobQueue,
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
        // Outcomes at zero until they happen: an error ratio reads 0, not nothing.
        let scalekit: &[&str] = if state.scalekit.is_some() { crate::telemetry::SCALEKIT_OPERATIONS } else { &[] };
        for operation in crate::telemetry::UPSTREAM_OPERATIONS.iter().chain(scalekit) {
            for outcome in ["ok", "error"] {
                crate::telemetry::touch(
                    "ssobridge_upstream_duration_seconds",
                    &[("operation", operation), ("outcome", outcome)],
                );
            }
        }
        let state = Arc::new(state);
        tokio::spawn(readiness::check(Arc::downgrade(&state)));
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
        let keys = KeyRing::new(
            key,
            load_ec_signing_key(&config)?,
            store.clone(),
            config.signing.key_encryption_key.as_ref().map(|k| k.expose()),
            Duration::from_secs(config.tokens.id_token_ttl_seconds),
        )
        .map_err(|e| StartError::Key(TokenError::Key(e.to_string())))?;
        let client_keys = ClientKeySets::new(
            crate::http::guarded_client(
                Duration::from_secs(config.upstream.timeout_seconds),
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
            .map(|secret| crate::tokens::webhook_signature::decode_secret(secret.expose()))
            .transpose()
            .map_err(|message| {
                StartError::Config(crate::config::ConfigError::Invalid(vec![crate::config::Problem {
                    key: "scalekit.webhook_secret".to_owned(),
                    message,
                }]))
            })?;
        let pending_flows = PendingFlows::new(RateLimiter::for_store(&store), &config);
        let events = crate::events::EventLog::start(store.clone(), &config.events, pairwise_salt.as_bytes());
        Ok(AppState {
            events,
            jobs: crate::jobs::JobQueue::new(store.clone()),
            issuer,
            config,
            keys,
            upstream,
            clients,
            client_keys,
            pairwise_salt,
            started: Instant::now(),
            limiter: RateLimiter::for_store(&store),
            readiness: Readiness::default(),
            pending_flows,
            route_cache: RouteCache::default(),
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

    /// Whether the broker is served over https (its cookies are `Secure` and `__Host-` then).
    pub fn https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The route table, looked up through this instance's cache.
    pub fn routes(&self) -> RouteTable<'_, AnyStore> {
        RouteTable::cached(&self.store, &self.route_cache)
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
        if self.store.get(keys::SEEDED).await?.is_some() {
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
        self.store.set(keys::SEEDED, b"1").await?;
        Ok(())
    }
}
