//! Downstream clients: kept in the store (config-file entries are seeded there at start, the
//! admin API adds and changes others), so that every instance sees the same registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ssobridge_adapter_auth0::{Auth0Adapter, Auth0Settings};
use ssobridge_adapter_cognito::{CognitoAdapter, CognitoSettings};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Identity, LinkOutcome, NoopAdapter};
use ssobridge_adapter_firebase::{FirebaseAdapter, FirebaseSettings};

use crate::config::{AdapterKind, ClaimMapping, ClientConfig, Fallback, SubjectMode, TokenAuthMethod};
use crate::store::{keys, AnyStore, Store, StoreError};
use crate::tokens::SigningAlgorithm;

/// How long an instance trusts its copy of a client before reading the store again: a change
/// made through the admin API on another instance takes effect within this time.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// A registered downstream client as stored. The secret is kept only as a salted hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    /// [`crate::tokens::hash_secret`]'s form (or a bare SHA-256 from a config file); empty
    /// for a `private_key_jwt` client.
    #[serde(alias = "secret_sha256")]
    pub secret_hash: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub adapter: AdapterKind,
    #[serde(default)]
    pub subject: SubjectMode,
    #[serde(default)]
    pub require_pkce: bool,
    #[serde(default)]
    pub claims: ClaimMapping,
    #[serde(default)]
    pub default_organization_id: Option<String>,
    #[serde(default)]
    pub default_connection_id: Option<String>,
    #[serde(default)]
    pub fallback: Fallback,
    /// The organizations the client's users may come from; empty: any the routes allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_organizations: Vec<String>,
    #[serde(default)]
    pub initiate_login_uri: Option<String>,
    #[serde(default)]
    pub id_token_signed_response_alg: SigningAlgorithm,
    #[serde(default)]
    pub token_endpoint_auth_method: TokenAuthMethod,
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Public keys only (checked when registered).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// `config` (seeded from the file at every start) or `api`.
    #[serde(default)]
    pub source: String,
}

impl ClientRecord {
    /// The record of a config-file client. A clear secret is hashed with a new salt: `seed`
    /// keeps the stored hash when it still matches, so that a restart changes nothing.
    pub fn from_config(config: &ClientConfig) -> Result<ClientRecord, crate::tokens::TokenError> {
        Ok(ClientRecord {
            client_id: config.client_id.clone(),
            secret_hash: match (&config.client_secret, &config.client_secret_hash) {
                (Some(secret), _) => crate::tokens::hash_secret(secret.expose())?,
                (None, Some(hash)) => hash.clone(),
                // Refused by validation; an unmatchable hash if it ever got here.
                (None, None) => String::new(),
            },
            redirect_uris: config.redirect_uris.clone(),
            name: config.name.clone(),
            adapter: config.adapter,
            subject: config.subject,
            require_pkce: config.require_pkce,
            claims: config.claims.clone(),
            default_organization_id: config.default_organization_id.clone(),
            default_connection_id: config.default_connection_id.clone(),
            fallback: config.fallback.clone(),
            allowed_organizations: config.allowed_organizations.clone(),
            initiate_login_uri: config.initiate_login_uri.clone(),
            id_token_signed_response_alg: config.id_token_signed_response_alg,
            token_endpoint_auth_method: config.token_endpoint_auth_method,
            jwks_uri: config.jwks_uri.clone(),
            // Validation refuses a jwks that is not JSON; a config that skipped it gets none.
            jwks: config.jwks.as_deref().and_then(|text| serde_json::from_str(text).ok()),
            source: "config".to_owned(),
        })
    }

    /// Constant-time check of a presented secret. A `private_key_jwt` client has no secret.
    pub fn secret_matches(&self, presented: &str) -> bool {
        let matches = crate::tokens::secret_matches_hash(presented, &self.secret_hash);
        matches && self.token_endpoint_auth_method.uses_secret() && !self.secret_hash.is_empty()
    }

    /// Whether the client's users may come from `organization` (its own limit only; routes
    /// restricted to other clients are the route table's to say).
    pub fn allows_organization(&self, organization: &str) -> bool {
        self.allowed_organizations.is_empty() || self.allowed_organizations.iter().any(|o| o == organization)
    }

    /// What hosted pages call the application.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.client_id)
    }
}

/// A client ready for use: its record and its adapter.
pub struct Client {
    pub record: ClientRecord,
    pub adapter: Arc<dyn Adapter>,
}

fn key(client_id: &str) -> String {
    format!("{}{client_id}", keys::CLIENTS)
}

/// An adapter's settings. They hold downstream credentials, so they live in the config file
/// and environment only, never in the store.
#[derive(Clone)]
pub enum AdapterSettings {
    Auth0(Auth0Settings),
    Cognito(CognitoSettings),
    Firebase(FirebaseSettings),
}

impl AdapterSettings {
    fn of(config: &ClientConfig) -> Option<AdapterSettings> {
        match config.adapter {
            AdapterKind::Auth0 => config.auth0.clone().map(AdapterSettings::Auth0),
            AdapterKind::Cognito => config.cognito.clone().map(AdapterSettings::Cognito),
            AdapterKind::Firebase => config.firebase.clone().map(AdapterSettings::Firebase),
            AdapterKind::None => None,
        }
    }
}

/// Whether the client's adapter can be built from its settings (for config validation).
pub fn check_adapter(config: &ClientConfig) -> Result<(), String> {
    let settings = AdapterSettings::of(config);
    match (config.adapter, &settings) {
        (AdapterKind::None, _) => Ok(()),
        (kind, None) => Err(format!("adapter {kind:?} needs its settings table ([clients.{}])", adapter_name(kind))),
        (kind, Some(settings)) => try_build(kind, Some(settings)).map(|_| ()).map_err(|e| e.to_string()),
    }
}

/// The keys a `private_key_jwt` client registers: exactly one of `jwks_uri` (https to a public
/// address, see [`crate::http::check_registered_url`]) and `jwks` (a JWK Set of public signing
/// keys). Other clients register none. Errors name the field.
pub fn check_client_keys(
    method: TokenAuthMethod,
    jwks_uri: Option<&str>,
    jwks: Option<&serde_json::Value>,
    allow_private_networks: bool,
) -> Result<(), (&'static str, String)> {
    if method != TokenAuthMethod::PrivateKeyJwt {
        return match (jwks_uri, jwks) {
            (None, None) => Ok(()),
            (Some(_), _) => Err(("jwks_uri", "is only used with token_endpoint_auth_method private_key_jwt".into())),
            (None, Some(_)) => Err(("jwks", "is only used with token_endpoint_auth_method private_key_jwt".into())),
        };
    }
    match (jwks_uri, jwks) {
        (Some(uri), None) => {
            if uri.len() > 2000 {
                return Err(("jwks_uri", "at most 2000 characters".into()));
            }
            crate::http::check_registered_url(uri, allow_private_networks).map(|_| ()).map_err(|e| ("jwks_uri", e))
        }
        (None, Some(jwks)) => {
            let keys = jwks
                .get("keys")
                .and_then(|k| k.as_array())
                .filter(|k| !k.is_empty())
                .ok_or(("jwks", "must be a JWK Set: {\"keys\": [ ... ]} with at least one key".to_owned()))?;
            for (i, key) in keys.iter().enumerate() {
                // A private member here means the client's private key was pasted by mistake.
                if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| key.get(m).is_some()) {
                    return Err(("jwks", format!("key {i} holds private key material; register the public key only")));
                }
                let jwk: jsonwebtoken::jwk::Jwk =
                    serde_json::from_value(key.clone()).map_err(|e| ("jwks", format!("key {i}: {e}")))?;
                jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| ("jwks", format!("key {i}: {e}")))?;
            }
            Ok(())
        }
        (None, None) => Err(("jwks_uri", "private_key_jwt needs the client's keys: jwks_uri or jwks".into())),
        (Some(_), Some(_)) => Err(("jwks", "set jwks_uri or jwks, not both".into())),
    }
}

fn adapter_name(kind: AdapterKind) -> &'static str {
    match kind {
        AdapterKind::None => "none",
        AdapterKind::Auth0 => "auth0",
        AdapterKind::Cognito => "cognito",
        AdapterKind::Firebase => "firebase",
    }
}

fn try_build(kind: AdapterKind, settings: Option<&AdapterSettings>) -> Result<Arc<dyn Adapter>, AdapterError> {
    let missing =
        || AdapterError::Misconfigured { detail: format!("no settings for the {} adapter", adapter_name(kind)) };
    Ok(match (kind, settings) {
        (AdapterKind::None, _) => Arc::new(NoopAdapter),
        (AdapterKind::Auth0, Some(AdapterSettings::Auth0(s))) => Arc::new(Auth0Adapter::new(s.clone())?),
        (AdapterKind::Cognito, Some(AdapterSettings::Cognito(s))) => Arc::new(CognitoAdapter::new(s.clone())?),
        (AdapterKind::Firebase, Some(AdapterSettings::Firebase(s))) => Arc::new(FirebaseAdapter::new(s.clone())?),
        _ => return Err(missing()),
    })
}

/// Stands in for an adapter that could not be built: every login fails as misconfigured
/// (the user sees a readable error, the operator a log line), nothing is linked by accident.
struct Unavailable(&'static str, String);

impl Adapter for Unavailable {
    fn name(&self) -> &'static str {
        self.0
    }

    fn link<'a>(&'a self, _identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        Box::pin(async move { Err(AdapterError::Misconfigured { detail: self.1.clone() }) })
    }
}

/// The registry over the store, with a short per-instance cache.
pub struct ClientRegistry {
    store: AnyStore,
    cache: Mutex<HashMap<String, (Instant, Arc<Client>)>>,
    settings: HashMap<String, AdapterSettings>,
}

impl ClientRegistry {
    /// `configured`: the config file's clients, whose adapter settings are kept here.
    pub fn new(store: AnyStore, configured: &[ClientConfig]) -> ClientRegistry {
        let settings =
            configured.iter().filter_map(|c| AdapterSettings::of(c).map(|s| (c.client_id.clone(), s))).collect();
        ClientRegistry { store, cache: Mutex::new(HashMap::new()), settings }
    }

    fn build_adapter(&self, record: &ClientRecord) -> Arc<dyn Adapter> {
        match try_build(record.adapter, self.settings.get(&record.client_id)) {
            Ok(adapter) => adapter,
            Err(error) => {
                tracing::error!(client_id = %record.client_id, error = %error, "adapter unavailable");
                Arc::new(Unavailable(adapter_name(record.adapter), error.to_string()))
            }
        }
    }

    /// The client, or None if it is not registered.
    pub async fn get(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some((at, client)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(client_id) {
            if at.elapsed() < CACHE_FOR {
                return Ok(Some(client.clone()));
            }
        }
        let Some((record, _)) = self.read(client_id).await? else {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(client_id);
            return Ok(None);
        };
        let client = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(client_id) {
                // Unchanged: keep the adapter already built (it may hold connections, tokens).
                Some((_, cached)) if cached.record == record => cached.clone(),
                _ => Arc::new(Client { adapter: self.build_adapter(&record), record }),
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.to_owned(), (Instant::now(), client.clone()));
        Ok(Some(client))
    }

    /// The record and its stored bytes (for compare-and-set), straight from the store.
    pub async fn read(&self, client_id: &str) -> Result<Option<(ClientRecord, Vec<u8>)>, StoreError> {
        let Some(bytes) = self.store.get(&key(client_id)).await? else { return Ok(None) };
        let record = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt { key: key(client_id), detail: e.to_string() })?;
        Ok(Some((record, bytes)))
    }

    /// Every client, sorted by id.
    pub async fn list(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let mut records = Vec::new();
        for (k, bytes) in self.store.scan_prefix(keys::CLIENTS).await? {
            records.push(
                serde_json::from_slice::<ClientRecord>(&bytes)
                    .map_err(|e| StoreError::Corrupt { key: k, detail: e.to_string() })?,
            );
        }
        records.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(records)
    }

    /// Writes `record`, replacing whatever is there.
    pub async fn put(&self, record: &ClientRecord) -> Result<(), StoreError> {
        self.store.set(&key(&record.client_id), &encode(record)?).await?;
        self.forget(&record.client_id);
        Ok(())
    }

    /// Writes `record` only if the stored bytes are still `expected` (None: only if absent).
    pub async fn replace(&self, record: &ClientRecord, expected: Option<&[u8]>) -> Result<bool, StoreError> {
        let replaced = self.store.replace(&key(&record.client_id), expected, &encode(record)?).await?;
        self.forget(&record.client_id);
        Ok(replaced)
    }

    pub async fn delete(&self, client_id: &str) -> Result<(), StoreError> {
        self.store.delete(&key(client_id)).await?;
        self.forget(client_id);
        Ok(())
    }

    fn forget(&self, client_id: &str) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).remove(client_id);
    }
}

fn encode(record: &ClientRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt { key: key(&record.client_id), detail: e.to_string() })
}
