//! The Management API token: client-credentials grant, cached per process.
//!
//! Auth0 counts token requests against its own rate limit and M2M token quota, so one token
//! serves every adapter instance of the process that uses the same tenant and application,
//! until shortly before it expires. Callers that find no usable token queue on one lock: the
//! first fetches, the others take its token (or its failure) instead of stampeding the endpoint.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use ssobridge_adapter_core::AdapterError;
use tokio::time::Instant;

use crate::http::{misconfigured, Http};
use crate::settings::Validated;
use ssobridge_adapter_core::Secret;

/// Refresh this long before expiry (less for short-lived tokens: half their life).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    token_url: String,
    client_id: String,
    audience: String,
    /// Two configurations naming one application with different secrets must not share a
    /// token: the wrong secret would go unnoticed until the right one is removed.
    secret_fingerprint: u64,
}

#[derive(Default)]
struct Slot {
    token: Option<Cached>,
    /// The last fetch's failure, handed to callers that were queued while it ran.
    failure: Option<(Instant, AdapterError)>,
}

struct Cached {
    value: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

type Cache = tokio::sync::Mutex<Slot>;

struct Registry {
    caches: Mutex<HashMap<CacheKey, Arc<Cache>>>,
    hasher: RandomState,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry { caches: Mutex::new(HashMap::new()), hasher: RandomState::new() })
}

/// Fetches and caches Management API tokens for one tenant and application.
pub(crate) struct TokenSource {
    http: Http,
    cache: Arc<Cache>,
    token_url: url::Url,
    client_id: String,
    client_secret: Secret,
    audience: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenSource {
    pub(crate) fn new(http: Http, settings: &Validated) -> TokenSource {
        let registry = registry();
        let key = CacheKey {
            token_url: settings.token_url.to_string(),
            client_id: settings.client_id.clone(),
            audience: settings.audience.clone(),
            secret_fingerprint: registry.hasher.hash_one(settings.client_secret.expose()),
        };
        let cache = {
            // A poisoned registry only means another thread panicked mid-insert; the map is
            // still consistent, so keep using it.
            let mut caches = registry.caches.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            caches.entry(key).or_default().clone()
        };
        TokenSource {
            http,
            cache,
            token_url: settings.token_url.clone(),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
            audience: settings.audience.clone(),
        }
    }

    /// A token valid for at least the refresh margin, from the cache or freshly fetched.
    pub(crate) async fn get(&self, deadline: Instant) -> Result<Secret, AdapterError> {
        let arrived = Instant::now();
        let mut slot = tokio::time::timeout_at(deadline, self.cache.lock())
            .await
            .map_err(|_| crate::http::transient("waiting for the Management API token: out of time", None))?;
        if let Some(token) = &slot.token {
            if Instant::now() < token.refresh_at {
                return Ok(token.value.clone());
            }
        }
        if let Some((at, error)) = &slot.failure {
            if *at >= arrived {
                // Someone fetched (and failed) while this caller waited: do not ask again.
                return Err(error.clone());
            }
        }
        match self.fetch(deadline).await {
            Ok(token) => {
                let value = token.value.clone();
                slot.token = Some(token);
                slot.failure = None;
                Ok(value)
            }
            Err(error) => {
                // Auth0's token endpoint is down but the old token has not expired yet: ride on it.
                if let (AdapterError::Transient { .. }, Some(old)) = (&error, &slot.token) {
                    if Instant::now() < old.expires_at {
                        tracing::warn!("could not refresh the Management API token; using the current one: {error}");
                        return Ok(old.value.clone());
                    }
                }
                slot.token = None;
                slot.failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Drops `used` from the cache after the API rejected it (revoked, or the signing key
    /// rotated); a token fetched meanwhile by someone else stays.
    pub(crate) async fn invalidate(&self, used: &Secret) {
        let mut slot = self.cache.lock().await;
        if slot.token.as_ref().is_some_and(|t| t.value.expose() == used.expose()) {
            slot.token = None;
        }
    }

    async fn fetch(&self, deadline: Instant) -> Result<Cached, AdapterError> {
        let requested_at = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("audience", self.audience.as_str()),
        ];
        let exchange = self
            .http
            .send("token request", deadline, || self.http.client.post(self.token_url.clone()).form(&form))
            .await?;
        match exchange.status {
            StatusCode::OK => {}
            // 401 access_denied (wrong client or secret), 403 (the application is not
            // authorized for the Management API), 400 (bad audience): an operator must act.
            status => {
                return Err(misconfigured(format!(
                    "Auth0 refused the client-credentials grant for client {}: {status} ({})",
                    self.client_id,
                    exchange.message()
                )))
            }
        }
        let token: TokenResponse = exchange
            .json()
            .map_err(|e| misconfigured(format!("the token endpoint answered 200 without a token: {e}")))?;
        if token.access_token.is_empty() {
            return Err(misconfigured("the token endpoint answered an empty access_token"));
        }
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(0));
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        tracing::debug!(expires_in = lifetime.as_secs(), "fetched a Management API token");
        // Counted from the request, not the answer, so that the token never outlives its use.
        Ok(Cached {
            value: Secret::new(token.access_token),
            refresh_at: requested_at + lifetime - margin,
            expires_at: requested_at + lifetime,
        })
    }
}
