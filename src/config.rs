//! Typed configuration: a TOML file overlaid with `SSOBRIDGE_<SECTION>__<KEY>` environment
//! variables, validated once at start. Nothing reads the environment after [`Config::load`].

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::model::client::{is_client_id, FieldProblem, Rules};
use crate::model::url::check_base_url;
use crate::model::{AdapterKind, ClientSpec, Fallback, Route, RouteSource, SigningAlgorithm};
use crate::secret::Secret;
use ssobridge_adapter_auth0::{Auth0Adapter, Auth0Settings};
use ssobridge_adapter_cognito::{CognitoAdapter, CognitoSettings};
use ssobridge_adapter_core::{Adapter, AdapterError, NoopAdapter};
use ssobridge_adapter_firebase::{FirebaseAdapter, FirebaseSettings};
use std::sync::Arc;

pub const ENV_PREFIX: &str = "SSOBRIDGE_";
/// `SSOBRIDGE_` variables that are not config keys: the log filter and the environment name.
const NOT_CONFIG: &[&str] = &["SSOBRIDGE_LOG", "SSOBRIDGE_ENV"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The issuer: exactly what discovery returns and what goes into `iss`.
    pub public_url: String,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub signing: SigningConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub tokens: TokenConfig,
    /// Exported from the store instead (with their secrets' hashes).
    #[serde(default, skip_serializing)]
    pub clients: Vec<ClientConfig>,
    /// The admin API; off unless a token is configured.
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// Calls to URLs clients register (a `private_key_jwt` client's `jwks_uri`).
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Home-realm routes seeded into the store at start (config wins over the store for the
    /// domains it lists).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Scalekit's management API and webhooks: routes synced from its organizations' domains.
    /// Absent: the broker never calls the management API (any OIDC upstream works).
    #[serde(default)]
    pub scalekit: Option<ScalekitConfig>,
    /// `SSOBRIDGE_ENV`, read with the rest of the environment (not a key of the file).
    #[serde(skip)]
    pub environment: Environment,
    /// The names (never the values) of `SSOBRIDGE_…` variables left out of the overlay as
    /// Kubernetes service links ([`is_service_link`]), for `check-config` to list.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

/// Where the process runs, from `SSOBRIDGE_ENV`: `production` (or `prod`) refuses development
/// conveniences (the demo, the upstream simulator, an adapter's emulator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Environment {
    #[default]
    Development,
    Production,
}

impl Environment {
    pub fn from_value(value: &str) -> Environment {
        if value.eq_ignore_ascii_case("production") || value.eq_ignore_ascii_case("prod") {
            Environment::Production
        } else {
            Environment::Development
        }
    }
}

/// Requests per minute on `/authorize`, `/token`, the hosted page and `/initiate-login`,
/// counted in the store so that every instance shares them. 0 turns a limit off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Per client IP. The default lets a burst of hundreds of logins per second through.
    #[serde(default = "default_per_ip")]
    pub per_ip_per_minute: u64,
    #[serde(default = "default_per_client")]
    pub per_client_per_minute: u64,
    /// Take the client IP from the last `X-Forwarded-For` entry (set it behind a proxy only).
    #[serde(default)]
    pub trust_forwarded_for: bool,
    /// Sign-ins started and not yet back from the upstream (or waiting at the home-realm
    /// page), per source address (an IPv6 /64) and in all: each costs the store up to 2 KB
    /// for `tokens.flow_ttl_seconds`, and an outsider can start them. 0 turns a cap off.
    #[serde(default = "default_pending_per_ip")]
    pub pending_flows_per_ip: u64,
    #[serde(default = "default_pending_total")]
    pub pending_flows_total: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_ip_per_minute: default_per_ip(),
            per_client_per_minute: default_per_client(),
            trust_forwarded_for: false,
            pending_flows_per_ip: default_pending_per_ip(),
            pending_flows_total: default_pending_total(),
        }
    }
}

fn default_per_ip() -> u64 {
    12_000
}
fn default_per_client() -> u64 {
    60_000
}
fn default_pending_per_ip() -> u64 {
    5_000
}
fn default_pending_total() -> u64 {
    50_000
}

/// Fetches of URLs that clients register, which an admin API caller (not the config file)
/// chooses: https only, and never to the broker's own network unless allowed here.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Allow loopback, private and link-local addresses (and http on loopback): for a
    /// deployment whose clients publish their keys inside a private network. Off by default,
    /// so that a registered URL cannot reach cloud metadata or internal services (SSRF).
    #[serde(default)]
    pub allow_private_networks: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin API listens: an address (default `127.0.0.1:9090`, not on the internet),
    /// or `public` to serve it under `/admin` on the public listener.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// SHA-256 (hex) of bearer tokens that may read.
    #[serde(default)]
    pub read_tokens_sha256: Vec<String>,
    /// SHA-256 (hex) of bearer tokens that may read and write.
    #[serde(default)]
    pub write_tokens_sha256: Vec<String>,
    /// `/readyz` and `/metrics` are on the admin listener; this serves them on the public
    /// listener as well (where anyone may call them). `/healthz` is on both always.
    #[serde(default)]
    pub ops_on_public_listener: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            read_tokens_sha256: Vec::new(),
            write_tokens_sha256: Vec::new(),
            ops_on_public_listener: false,
        }
    }
}

impl AdminConfig {
    pub fn enabled(&self) -> bool {
        !self.read_tokens_sha256.is_empty() || !self.write_tokens_sha256.is_empty()
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9090".to_owned()
}

/// Routes from Scalekit (research/scalekit.md §7, §8): its organizations' domains synced into
/// the route table, signed webhooks applied at once, and an optional lookup on a miss. The
/// management API is called with `upstream.client_id` / `upstream.client_secret`
/// (client_credentials), as Scalekit's Modular SSO uses one credential for both.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScalekitConfig {
    /// Seconds between full syncs (one at start too); 0: no periodic sync (webhooks only).
    #[serde(default = "default_sync_interval")]
    pub sync_interval_seconds: u64,
    /// The endpoint's signing secret, `whsec_<base64>`, from Scalekit's dashboard. Absent:
    /// `POST /webhooks/scalekit` answers 404.
    #[serde(default)]
    #[serde(skip_serializing)]
    pub webhook_secret: Option<Secret>,
    /// On a route-table miss, ask `GET /api/v1/connections?domain=` before letting the upstream
    /// answer `domain_not_found`.
    #[serde(default)]
    pub lookup_on_miss: bool,
    /// How long an instance keeps a lookup's answer, found or not.
    #[serde(default = "default_lookup_cache")]
    pub lookup_cache_seconds: u64,
    /// The environment URL of the management API; default `upstream.issuer`.
    #[serde(default)]
    pub api_url: Option<String>,
}

impl Default for ScalekitConfig {
    fn default() -> Self {
        ScalekitConfig {
            sync_interval_seconds: default_sync_interval(),
            webhook_secret: None,
            lookup_on_miss: false,
            lookup_cache_seconds: default_lookup_cache(),
            api_url: None,
        }
    }
}

fn default_sync_interval() -> u64 {
    300
}
fn default_lookup_cache() -> u64 {
    300
}

impl ScalekitConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(secret) = &self.webhook_secret {
            if let Err(message) = crate::webhooks::signature::decode_secret(secret.expose()) {
                problems.push(("scalekit.webhook_secret", message));
            }
        }
        if let Some(url) = &self.api_url {
            if let Err(message) = check_base_url(url) {
                problems.push(("scalekit.api_url", message));
            }
        }
        if self.lookup_cache_seconds == 0 || self.lookup_cache_seconds > 86_400 {
            problems.push(("scalekit.lookup_cache_seconds", "must be between 1 and 86400".to_owned()));
        }
        problems
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `memory` or a `redis://` / `rediss://` URL; in cluster mode, one or more seed node URLs
    /// separated by commas. May hold a password: never log it (see [`StoreConfig::redacted_url`]).
    #[serde(default = "default_store_url")]
    pub url: String,
    /// Prepended to every key, so that several deployments (or tests) can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// `standalone` (one Redis endpoint, failover if any behind it) or `cluster` (Redis Cluster).
    #[serde(default)]
    pub mode: StoreMode,
    /// PEM CA bundle trusted for `rediss://` instead of the Mozilla roots (a private CA).
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate (PEM, with `tls_key_file`) for Redis servers that require one.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: default_store_url(),
            key_prefix: default_key_prefix(),
            mode: StoreMode::default(),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl StoreConfig {
    /// The URLs in `url`: one in standalone mode, the seed nodes in cluster mode.
    pub fn urls(&self) -> Vec<&str> {
        match self.mode {
            StoreMode::Standalone => vec![self.url.trim()],
            StoreMode::Cluster => self.url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect(),
        }
    }

    /// `url` with any password replaced, fit for printing.
    pub fn redacted_url(&self) -> String {
        self.url
            .split(',')
            .map(|raw| match Url::parse(raw.trim()) {
                Ok(mut url) if url.password().is_some() => {
                    let _ = url.set_password(Some("redacted"));
                    url.to_string()
                }
                Ok(_) => raw.trim().to_owned(),
                Err(_) if !raw.contains("://") => raw.trim().to_owned(),
                // Unparsable: it may still hold a secret, so show only its scheme.
                Err(_) => format!("{}://…", raw.trim().split("://").next().unwrap_or("?")),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Everything wrong with `[store]`, by key. Files are read at connect (and by check-config).
    fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let is_redis = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
        let urls = self.urls();
        match self.mode {
            StoreMode::Standalone if self.url.contains(',') => problems.push((
                "store.url",
                "one URL in standalone mode; a comma-separated list of seed nodes needs store.mode = \"cluster\""
                    .to_owned(),
            )),
            StoreMode::Standalone if self.url != "memory" && !is_redis(&self.url) => {
                problems.push(("store.url", "must be \"memory\" or a redis:// or rediss:// URL".to_owned()))
            }
            StoreMode::Standalone => {}
            StoreMode::Cluster if self.url.trim() == "memory" => problems.push((
                "store.mode",
                "cluster needs store.url to list redis:// or rediss:// seed nodes; the memory store has no cluster"
                    .to_owned(),
            )),
            StoreMode::Cluster => {
                if urls.is_empty() || !urls.iter().all(|u| is_redis(u)) {
                    problems.push((
                        "store.url",
                        "in cluster mode: one or more redis:// or rediss:// seed node URLs, separated by commas"
                            .to_owned(),
                    ));
                } else if urls.iter().any(|u| u.starts_with("rediss://"))
                    && !urls.iter().all(|u| u.starts_with("rediss://"))
                {
                    problems.push(("store.url", "seed nodes must be all redis:// or all rediss://".to_owned()));
                }
                if self.key_prefix.contains(['{', '}']) {
                    problems.push((
                        "store.key_prefix",
                        "must not contain { or } in cluster mode: a hash tag in the prefix would put every key in \
                         one slot"
                            .to_owned(),
                    ));
                }
            }
        }
        let tls = urls.iter().any(|u| u.starts_with("rediss://"));
        for (key, file) in [
            ("store.tls_ca_file", &self.tls_ca_file),
            ("store.tls_cert_file", &self.tls_cert_file),
            ("store.tls_key_file", &self.tls_key_file),
        ] {
            if file.is_some() && !tls {
                problems.push((key, "applies to rediss:// URLs only".to_owned()));
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            problems.push(("store.tls_cert_file", "set tls_cert_file and tls_key_file together".to_owned()));
        }
        problems
    }
}

/// How the store reaches Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreMode {
    #[default]
    Standalone,
    Cluster,
}

impl Serialize for StoreMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            StoreMode::Standalone => "standalone",
            StoreMode::Cluster => "cluster",
        })
    }
}

impl<'de> Deserialize<'de> for StoreMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // By hand, so that the message names the key (serde's names only the variants).
        match String::deserialize(deserializer)?.as_str() {
            "standalone" => Ok(StoreMode::Standalone),
            "cluster" => Ok(StoreMode::Cluster),
            other => Err(serde::de::Error::custom(format!(
                "store.mode must be \"standalone\" or \"cluster\", not {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// RSA private key, PKCS#1 or PKCS#8 PEM: signs RS256 (every client's default) and PS256.
    pub key_file: Option<PathBuf>,
    /// The same PEM inline, for keys passed through the environment (`SSOBRIDGE_SIGNING__KEY_PEM`).
    #[serde(skip_serializing)]
    pub key_pem: Option<Secret>,
    /// EC P-256 private key, PKCS#8 or SEC1 PEM: signs ES256, for clients that ask for it.
    pub ec_key_file: Option<PathBuf>,
    /// The same PEM inline (`SSOBRIDGE_SIGNING__EC_KEY_PEM`).
    #[serde(skip_serializing)]
    pub ec_key_pem: Option<Secret>,
    /// Seals keys rotated through the admin API, which are kept in the store. Without it,
    /// rotation is done by changing key_file.
    #[serde(skip_serializing)]
    pub key_encryption_key: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub issuer: String,
    pub client_id: String,
    #[serde(skip_serializing)]
    pub client_secret: Secret,
    #[serde(default = "default_upstream_scopes")]
    pub scopes: Vec<String>,
    /// JWS algorithms accepted on upstream ID tokens. `none` and HMAC are never accepted.
    #[serde(default = "default_upstream_algorithms")]
    pub allowed_algorithms: Vec<String>,
    /// Tolerated clock difference with the upstream, for `exp` and `iat`.
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: u64,
    /// Bound on every HTTP call to the upstream.
    #[serde(default = "default_upstream_timeout")]
    pub timeout_seconds: u64,
    /// The `iss` an IdP-initiated login token may carry when it is not `issuer`: Scalekit's
    /// docs show the application's own URL there (research/scalekit.md §4.2). Empty (the
    /// default): `public_url`. `issuer` is accepted always.
    #[serde(default)]
    pub idp_initiated_issuers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    #[serde(default = "default_token_ttl")]
    pub id_token_ttl_seconds: u64,
    #[serde(default = "default_token_ttl")]
    pub access_token_ttl_seconds: u64,
    #[serde(default = "default_code_ttl")]
    pub code_ttl_seconds: u64,
    #[serde(default = "default_flow_ttl")]
    pub flow_ttl_seconds: u64,
    /// Salt of pairwise subjects. Changing it changes every pairwise `sub`: set it once.
    #[serde(default, skip_serializing)]
    pub pairwise_salt: Option<Secret>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            id_token_ttl_seconds: default_token_ttl(),
            access_token_ttl_seconds: default_token_ttl(),
            code_ttl_seconds: default_code_ttl(),
            flow_ttl_seconds: default_flow_ttl(),
            pairwise_salt: None,
        }
    }
}

/// A `[[clients]]` entry: the client as every view shares it ([`ClientSpec`], flattened into
/// the same table) plus what only the config file holds: the secret and the adapter's
/// downstream credentials.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub spec: ClientSpec,
    /// The secret in clear (from the environment, ideally) ...
    pub client_secret: Option<Secret>,
    /// ... or its hash, as `export-config` writes it: the salted form the store keeps, or a
    /// bare hex SHA-256 (also accepted as `client_secret_sha256`).
    pub client_secret_hash: Option<String>,
    /// Settings of `adapter = "auth0"` (kept in the config file and environment, never in the store).
    pub auth0: Option<ssobridge_adapter_auth0::Auth0Settings>,
    /// Settings of `adapter = "cognito"`.
    pub cognito: Option<ssobridge_adapter_cognito::CognitoSettings>,
    /// Settings of `adapter = "firebase"`.
    pub firebase: Option<ssobridge_adapter_firebase::FirebaseSettings>,
}

impl std::ops::Deref for ClientConfig {
    type Target = ClientSpec;
    fn deref(&self) -> &ClientSpec {
        &self.spec
    }
}

impl<'de> Deserialize<'de> for ClientConfig {
    /// The file's own keys are taken out; the rest must be exactly a [`ClientSpec`], so an
    /// unknown key is still refused by name.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fn take<'de, T: Deserialize<'de>, E: serde::de::Error>(
            table: &mut toml::Table,
            names: &[&str],
        ) -> Result<Option<T>, E> {
            let Some(value) = names.iter().find_map(|name| table.remove(*name)) else { return Ok(None) };
            value.try_into().map(Some).map_err(|e: toml::de::Error| E::custom(e.message()))
        }
        let mut table = toml::Table::deserialize(deserializer)?;
        let client_secret = take(&mut table, &["client_secret"])?;
        let client_secret_hash = take(&mut table, &["client_secret_hash", "client_secret_sha256"])?;
        let auth0 = take(&mut table, &["auth0"])?;
        let cognito = take(&mut table, &["cognito"])?;
        let firebase = take(&mut table, &["firebase"])?;
        let spec =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| serde::de::Error::custom(e.message()))?;
        Ok(ClientConfig { spec, client_secret, client_secret_hash, auth0, cognito, firebase })
    }
}

impl ClientConfig {
    /// The settings of the client's adapter, if it has one and they are given.
    pub fn adapter_settings(&self) -> Option<AdapterSettings> {
        match self.adapter {
            AdapterKind::Auth0 => self.auth0.clone().map(AdapterSettings::Auth0),
            AdapterKind::Cognito => self.cognito.clone().map(AdapterSettings::Cognito),
            AdapterKind::Firebase => self.firebase.clone().map(AdapterSettings::Firebase),
            AdapterKind::None => None,
        }
    }
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
    /// The adapter of `kind` over `settings` (none needed for `AdapterKind::None`).
    pub fn build(kind: AdapterKind, settings: Option<&AdapterSettings>) -> Result<Arc<dyn Adapter>, AdapterError> {
        Ok(match (kind, settings) {
            (AdapterKind::None, _) => Arc::new(NoopAdapter),
            (AdapterKind::Auth0, Some(AdapterSettings::Auth0(s))) => Arc::new(Auth0Adapter::new(s.clone())?),
            (AdapterKind::Cognito, Some(AdapterSettings::Cognito(s))) => Arc::new(CognitoAdapter::new(s.clone())?),
            (AdapterKind::Firebase, Some(AdapterSettings::Firebase(s))) => Arc::new(FirebaseAdapter::new(s.clone())?),
            _ => {
                return Err(AdapterError::Misconfigured {
                    detail: format!("no settings for the {} adapter", kind.name()),
                })
            }
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_store_url() -> String {
    "memory".to_owned()
}
fn default_key_prefix() -> String {
    "ssobridge:".to_owned()
}
fn default_upstream_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}
fn default_upstream_algorithms() -> Vec<String> {
    ["RS256", "ES256", "PS256"].map(str::to_owned).to_vec()
}
fn default_clock_skew() -> u64 {
    60
}
fn default_upstream_timeout() -> u64 {
    10
}
fn default_token_ttl() -> u64 {
    3600
}
fn default_code_ttl() -> u64 {
    60
}
fn default_flow_ttl() -> u64 {
    600
}

/// Upstream algorithms ssobridge can verify.
pub const VERIFIABLE_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// One thing wrong with the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid(vec![Problem { key: key.into(), message: message.into() }])
    }
}

impl Config {
    /// Reads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, std::env::vars(), path)
    }

    /// Parses `text`, overlays the `SSOBRIDGE_…` variables among `env`, validates.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        path: &Path,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        let environment =
            env.iter().find(|(k, _)| k == "SSOBRIDGE_ENV").map(|(_, v)| Environment::from_value(v)).unwrap_or_default();
        let ignored_env = overlay_env(&mut table, env)?;
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::one(error_key(&e), e.message().to_owned()))?;
        config.environment = environment;
        config.ignored_env = ignored_env;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config.normalized())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The issuer without a trailing slash, as everything else uses it.
    fn normalized(mut self) -> Self {
        while self.public_url.ends_with('/') {
            self.public_url.pop();
        }
        while self.upstream.issuer.ends_with('/') {
            self.upstream.issuer.pop();
        }
        for issuer in &mut self.upstream.idp_initiated_issuers {
            while issuer.ends_with('/') {
                issuer.pop();
            }
        }
        for route in &mut self.routes {
            // Checked by problems(): the domain normalizes.
            if let Ok(domain) = crate::model::normalize_domain(&route.domain) {
                route.domain = domain;
            }
            route.source = RouteSource::Config;
        }
        if let Some(url) = self.scalekit.as_mut().and_then(|s| s.api_url.as_mut()) {
            while url.ends_with('/') {
                url.pop();
            }
        }
        self
    }

    /// Everything wrong with the configuration, one problem per key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push(Problem { key: key.to_owned(), message });

        if let Err(message) = check_base_url(&self.public_url) {
            problem("public_url", message);
        }
        for (key, message) in self.store.problems() {
            problem(key, message);
        }
        for (key, message) in self.scalekit.iter().flat_map(ScalekitConfig::problems) {
            problem(key, message);
        }
        if let (Some(_), Some(_)) = (&self.signing.key_file, &self.signing.key_pem) {
            problem("signing.key_file", "set key_file or key_pem, not both".to_owned());
        }
        if let (Some(_), Some(_)) = (&self.signing.ec_key_file, &self.signing.ec_key_pem) {
            problem("signing.ec_key_file", "set ec_key_file or ec_key_pem, not both".to_owned());
        }
        let has_ec_key = self.signing.ec_key_file.is_some() || self.signing.ec_key_pem.is_some();
        if let Err(message) = check_base_url(&self.upstream.issuer) {
            problem("upstream.issuer", message);
        }
        if self.upstream.client_id.is_empty() {
            problem("upstream.client_id", "must not be empty".to_owned());
        }
        if self.upstream.client_secret.is_empty() {
            problem("upstream.client_secret", "must not be empty".to_owned());
        }
        if !self.upstream.scopes.iter().any(|s| s == "openid") {
            problem("upstream.scopes", "must include openid".to_owned());
        }
        if self.upstream.allowed_algorithms.is_empty() {
            problem("upstream.allowed_algorithms", "must list at least one algorithm".to_owned());
        }
        for alg in &self.upstream.allowed_algorithms {
            if !VERIFIABLE_ALGORITHMS.contains(&alg.as_str()) {
                problem(
                    "upstream.allowed_algorithms",
                    format!("{alg} is not allowed (use {})", VERIFIABLE_ALGORITHMS.join(", ")),
                );
            }
        }
        if self.upstream.timeout_seconds == 0 {
            problem("upstream.timeout_seconds", "must be at least 1".to_owned());
        }
        for issuer in &self.upstream.idp_initiated_issuers {
            // Only compared with a signed claim, never fetched: http is as good as https here.
            let valid = Url::parse(issuer).is_ok_and(|url| {
                matches!(url.scheme(), "https" | "http")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
            });
            if !valid {
                problem(
                    "upstream.idp_initiated_issuers",
                    format!("{issuer}: each must be an http(s) URL without query or fragment"),
                );
            }
        }
        for (key, value) in [
            ("tokens.id_token_ttl_seconds", self.tokens.id_token_ttl_seconds),
            ("tokens.access_token_ttl_seconds", self.tokens.access_token_ttl_seconds),
            ("tokens.code_ttl_seconds", self.tokens.code_ttl_seconds),
            ("tokens.flow_ttl_seconds", self.tokens.flow_ttl_seconds),
        ] {
            if value == 0 {
                problem(key, "must be at least 1".to_owned());
            }
        }
        if self.tokens.code_ttl_seconds > 600 {
            // RFC 6749 §4.1.2: a maximum lifetime of 10 minutes is recommended.
            problem("tokens.code_ttl_seconds", "must be at most 600".to_owned());
        }
        if self.clients.is_empty() {
            problem("clients", "at least one [[clients]] entry is needed".to_owned());
        }
        let mut algorithms = vec![SigningAlgorithm::Rs256, SigningAlgorithm::Ps256];
        if has_ec_key {
            algorithms.push(SigningAlgorithm::Es256);
        }
        let mut seen = HashSet::new();
        for (i, client) in self.clients.iter().enumerate() {
            let at = |field: &str| format!("clients[{i}].{}", field.replace('/', "."));
            let rules = Rules {
                signing_algorithms: &algorithms,
                allow_private_networks: self.outbound.allow_private_networks,
                adapter_settings: client.adapter == AdapterKind::None || client.adapter_settings().is_some(),
            };
            match (&client.client_secret, &client.client_secret_hash) {
                (None, None) if !client.token_endpoint_auth_method.uses_secret() => {}
                (Some(secret), None) if secret.expose().len() < 8 => {
                    problem(&at("client_secret"), "must be at least 8 characters".to_owned())
                }
                (Some(_), None) => {}
                (None, Some(hash)) if !crate::tokens::is_secret_hash(hash) => problem(
                    &at("client_secret_hash"),
                    "must be a hash as export-config writes it, or a hex SHA-256".to_owned(),
                ),
                (None, Some(_)) => {}
                _ => problem(&at("client_secret"), "set client_secret or client_secret_hash (exactly one)".to_owned()),
            }
            for FieldProblem { field, message, .. } in client.problems(&rules) {
                problem(&at(field), message);
            }
            if is_client_id(&client.client_id) && !seen.insert(client.client_id.as_str()) {
                problem(&at("client_id"), format!("{} is listed twice", client.client_id));
            }
            if let Some(settings) = client.adapter_settings() {
                if let Err(error) = AdapterSettings::build(client.adapter, Some(&settings)) {
                    problem(&at("adapter"), error.to_string());
                }
            }
            let emulated = client.firebase.as_ref().is_some_and(|f| f.emulator_host.is_some());
            if emulated && client.adapter == AdapterKind::Firebase && self.environment == Environment::Production {
                problem(
                    &at("firebase.emulator_host"),
                    "the Firebase Auth emulator is a development tool; refused with SSOBRIDGE_ENV=production"
                        .to_owned(),
                );
            }
        }
        if self.admin.listen != "public" && self.admin.listen.parse::<SocketAddr>().is_err() {
            problem("admin.listen", "must be an address such as 127.0.0.1:9090, or \"public\"".to_owned());
        }
        for (key, hashes) in [
            ("admin.read_tokens_sha256", &self.admin.read_tokens_sha256),
            ("admin.write_tokens_sha256", &self.admin.write_tokens_sha256),
        ] {
            if hashes
                .iter()
                .any(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            {
                problem(
                    key,
                    "each entry must be a lower-case hex SHA-256 (ssobridge admin-token prints one)".to_owned(),
                );
            }
        }
        let mut domains = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            let at = |field: &str| format!("routes[{i}].{field}");
            let mut route = route.clone();
            for (field, _, message) in route.problems() {
                problem(&at(field), message);
            }
            if crate::model::normalize_domain(&route.domain).is_ok() && !domains.insert(route.domain.clone()) {
                problem(&at("domain"), format!("{} is listed twice", route.domain));
            }
            for client in &route.clients {
                if !self.clients.iter().any(|c| &c.client_id == client) {
                    problem(&at("clients"), format!("{client} is not a configured client"));
                }
            }
        }
        for client in &self.clients {
            if let Fallback::Route(domain) = &client.fallback {
                let known =
                    self.routes.iter().any(|r| crate::model::normalize_domain(&r.domain).as_deref() == Ok(domain));
                if !known {
                    // Routes may also be added at run time; say so rather than refuse.
                    tracing::warn!(client = %client.client_id, %domain, "fallback route is not in the config file");
                }
            }
        }
        problems
    }

    /// What `serve` (and `check-config`) needs beyond a valid file: the secrets that must not be
    /// left to chance in a real deployment.
    pub fn serve_problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let make = "make one with: head -c 32 /dev/urandom | base64";
        if self.tokens.pairwise_salt.as_ref().is_none_or(|salt| salt.expose().trim().is_empty()) {
            problems.push(Problem {
                key: "tokens.pairwise_salt".to_owned(),
                message: format!(
                    "must be set: without it every pairwise sub is a bare hash anyone can recompute ({make}; set it \
                     once, it changes every pairwise sub)"
                ),
            });
        }
        if let Some(kek) = &self.signing.key_encryption_key {
            if !is_random_key(kek.expose()) {
                problems.push(Problem {
                    key: "signing.key_encryption_key".to_owned(),
                    message: format!("must be at least 32 random bytes, base64-encoded ({make})"),
                });
            }
        }
        problems
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// Whether `value` is base64 (standard or URL-safe, padded or not) of at least 32 bytes.
fn is_random_key(value: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let trimmed = value.trim().trim_end_matches('=');
    let decoded = STANDARD_NO_PAD.decode(trimmed).or_else(|_| URL_SAFE_NO_PAD.decode(trimmed));
    decoded.is_ok_and(|bytes| bytes.len() >= 32 && bytes.iter().any(|b| *b != bytes[0]))
}

/// The key a deserialization error is about, e.g. `upstream.client_id`.
fn error_key(error: &toml::de::Error) -> String {
    let message = error.message();
    // serde reports the missing or unknown field by name in the message; the path is not kept
    // once the table has been turned into a Value, so name the field at least.
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.split(marker).nth(1) {
            if let Some(name) = rest.split('`').next() {
                return name.to_owned();
            }
        }
    }
    "config".to_owned()
}

/// Applies `SSOBRIDGE_A__B__C=value` onto `table["a"]["b"]["c"]`. In `clients` the second part
/// is either an index or a client_id (`-` written as `_`, any case): `SSOBRIDGE_CLIENTS__AUTH0_PROD__CLIENT_SECRET`.
/// Kubernetes' service links ([`is_service_link`]) are left out with a warning each; their
/// names are returned. Any other unknown name is refused later, by the typed config.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_CONFIG.contains(&k.as_str())).collect();
    vars.sort();
    let mut ignored = Vec::new();
    for (name, value) in vars {
        if is_service_link(&name, &value) {
            // The name only: the value is an address, but a warning line never carries values.
            tracing::warn!(variable = %name, "ignored: a Kubernetes service link variable, not a config key");
            ignored.push(name);
            continue;
        }
        let path: Vec<String> = name[ENV_PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::one(name, "malformed variable name"));
        }
        set_path(table, &path, &value).map_err(|message| ConfigError::one(name.clone(), message))?;
    }
    Ok(ignored)
}

/// Whether `name=value` is one of the variables the kubelet gives every container for each
/// Service of its namespace (unless the pod sets `enableServiceLinks: false`): a Service
/// `ssobridge-redis-master` with port 6379 named `redis` yields
///
/// ```text
/// SSOBRIDGE_REDIS_MASTER_SERVICE_HOST=10.0.0.11
/// SSOBRIDGE_REDIS_MASTER_SERVICE_PORT=6379
/// SSOBRIDGE_REDIS_MASTER_SERVICE_PORT_REDIS=6379              (one per named port)
/// SSOBRIDGE_REDIS_MASTER_PORT=tcp://10.0.0.11:6379            (the first port; Docker-link style)
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP=tcp://10.0.0.11:6379   (and per port:)
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_PROTO=tcp
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_PORT=6379
/// SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_ADDR=10.0.0.11
/// ```
///
/// (kubelet `pkg/kubelet/envvars`: the name upper-cased, `-` and `.` written `_`; Docker's
/// legacy links have the same shapes.) So a Service named `ssobridge…` (the release's own, or
/// a Redis installed beside it) would otherwise stop `serve` as unknown keys. A config key
/// always has `__` between its parts and a service link never does (a Service name is a DNS
/// label), so only single-part names are considered, and the value must have the shape the
/// kubelet writes: a typo such as `SSOBRIDGE_UPSTREAM__CLIENT_SECRT` is still refused.
fn is_service_link(name: &str, value: &str) -> bool {
    let Some(rest) = name.strip_prefix("SSOBRIDGE") else { return false };
    if name.contains("__") || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        return false;
    }
    let is_port = |s: &str| s.parse::<u16>().is_ok();
    let is_ip = |s: &str| s.parse::<IpAddr>().is_ok();
    let is_proto = |s: &str| matches!(s, "TCP" | "UDP" | "SCTP");
    // `tcp://10.0.0.11:6379` (an IPv6 cluster IP is written unbracketed: `tcp://fd00::1:6379`).
    let is_link_url = |v: &str| {
        v.split_once("://").is_some_and(|(proto, addr)| {
            is_proto(&proto.to_ascii_uppercase())
                && addr.rsplit_once(':').is_some_and(|(ip, port)| is_ip(ip.trim_matches(['[', ']'])) && is_port(port))
        })
    };
    // `rest` is "" for a Service named exactly `ssobridge`, else `_REDIS_MASTER`… plus the suffix.
    if rest.ends_with("_SERVICE_HOST") {
        return is_ip(value);
    }
    if rest.ends_with("_SERVICE_PORT") || rest.contains("_SERVICE_PORT_") {
        return is_port(value);
    }
    if rest.ends_with("_PORT") && is_link_url(value) {
        return true;
    }
    // `…_PORT_<port>_<PROTO>` and its `_PROTO`, `_PORT`, `_ADDR`.
    let parts: Vec<&str> = rest.split('_').collect();
    let Some(at) = parts.windows(3).rposition(|w| w[0] == "PORT" && is_port(w[1]) && is_proto(w[2])) else {
        return false;
    };
    match &parts[at + 3..] {
        [] => is_link_url(value),
        ["PROTO"] => is_proto(&value.to_ascii_uppercase()),
        ["PORT"] => is_port(value),
        ["ADDR"] => is_ip(value),
        _ => false,
    }
}

fn set_path(table: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty path")?;
    if rest.is_empty() {
        let value = typed_like(table.get(first).or(schema_hint(first).as_ref()), raw)?;
        table.insert(first.clone(), value);
        return Ok(());
    }
    if first == "clients" {
        let clients = table
            .get_mut("clients")
            .and_then(toml::Value::as_array_mut)
            .ok_or("no [[clients]] entries in the file to override")?;
        let (selector, rest) = rest.split_first().ok_or("name a client")?;
        let entry = match selector.parse::<usize>() {
            Ok(i) => clients.get_mut(i),
            Err(_) => clients.iter_mut().find(|c| {
                c.get("client_id")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|id| id.replace('-', "_").eq_ignore_ascii_case(selector))
            }),
        };
        let entry = entry.and_then(toml::Value::as_table_mut).ok_or_else(|| format!("no client {selector}"))?;
        return set_path(entry, rest, raw);
    }
    let child = table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let child = child.as_table_mut().ok_or_else(|| format!("{first} is not a section"))?;
    set_path(child, rest, raw)
}

/// The type of a key the file does not set, so that `SSOBRIDGE_TOKENS__CODE_TTL_SECONDS=30`
/// works without a `[tokens]` section. Everything else is a string.
fn schema_hint(key: &str) -> Option<toml::Value> {
    if key.ends_with("_seconds") || key.ends_with("_per_minute") || key.starts_with("pending_flows_") {
        Some(toml::Value::Integer(0))
    } else if matches!(
        key,
        "require_pkce"
            | "trust_forwarded_for"
            | "include_subdomains"
            | "allow_private_networks"
            | "ops_on_public_listener"
            | "lookup_on_miss"
    ) {
        Some(toml::Value::Boolean(false))
    } else if matches!(key, "redirect_uris" | "scopes" | "allowed_algorithms" | "drop" | "idp_initiated_issuers") {
        Some(toml::Value::Array(Vec::new()))
    } else {
        None
    }
}

/// Parses an environment string as the type the file has (or a string when the file has none).
fn typed_like(existing: Option<&toml::Value>, raw: &str) -> Result<toml::Value, String> {
    match existing {
        Some(toml::Value::Integer(_)) => {
            raw.trim().parse().map(toml::Value::Integer).map_err(|_| "expected an integer".to_owned())
        }
        Some(toml::Value::Boolean(_)) => {
            raw.trim().parse().map(toml::Value::Boolean).map_err(|_| "expected true or false".to_owned())
        }
        Some(toml::Value::Array(_)) => {
            if raw.trim_start().starts_with('[') {
                let parsed: toml::Table =
                    format!("v = {raw}").parse().map_err(|_| "expected a TOML array".to_owned())?;
                parsed.get("v").cloned().ok_or_else(|| "expected a TOML array".to_owned())
            } else {
                Ok(toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ))
            }
        }
        _ => Ok(toml::Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
public_url = "https://sso.example.com/"
[upstream]
issuer = "https://acme.scalekit.dev"
client_id = "skc_1"
client_secret = "from-file"
[[clients]]
client_id = "auth0-prod"
client_secret = "0123456789"
redirect_uris = ["https://acme.us.auth0.com/login/callback"]
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string())), Path::new("test.toml"))
    }

    #[test]
    fn environment_overrides_file_values() {
        let config = load(
            MINIMAL,
            &[
                ("SSOBRIDGE_UPSTREAM__CLIENT_SECRET", "from-env"),
                ("SSOBRIDGE_CLIENTS__AUTH0_PROD__CLIENT_SECRET", "env-secret-1"),
                ("SSOBRIDGE_TOKENS__CODE_TTL_SECONDS", "30"),
            ],
        )
        .expect("valid");
        assert_eq!(config.upstream.client_secret.expose(), "from-env");
        assert_eq!(config.clients[0].client_secret.as_ref().map(|s| s.expose()), Some("env-secret-1"));
        assert_eq!(config.tokens.code_ttl_seconds, 30);
        assert_eq!(config.public_url, "https://sso.example.com");
    }

    #[test]
    fn problems_name_their_keys() {
        let text = MINIMAL
            .replace("https://acme.us.auth0.com/login/callback", "http://acme.example/cb#frag")
            .replace("https://acme.scalekit.dev", "http://acme.scalekit.dev");
        let Err(ConfigError::Invalid(problems)) = load(&text, &[]) else { panic!("must be invalid") };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["upstream.issuer", "clients[0].redirect_uris"], "{problems:?}");
    }

    #[test]
    fn unknown_and_missing_keys_are_named() {
        let Err(ConfigError::Invalid(problems)) = load(&format!("{MINIMAL}\nlisten_addr = \"x\""), &[]) else {
            panic!("must be invalid")
        };
        assert_eq!(problems[0].key, "listen_addr");
        let Err(ConfigError::Invalid(problems)) = load(&MINIMAL.replace("client_id = \"skc_1\"", ""), &[]) else {
            panic!("must be invalid")
        };
        assert_eq!(problems[0].key, "client_id");
    }

    #[test]
    fn loopback_http_is_accepted() {
        let text = MINIMAL
            .replace("https://sso.example.com/", "http://127.0.0.1:8080")
            .replace("https://acme.us.auth0.com/login/callback", "http://localhost:3000/callback");
        load(&text, &[]).expect("loopback http is fine");
    }

    #[test]
    fn unknown_env_key_is_refused() {
        let Err(ConfigError::Invalid(problems)) = load(MINIMAL, &[("SSOBRIDGE_UPSTREAM__CLIENT_SECRT", "x")]) else {
            panic!("must be invalid")
        };
        assert_eq!(problems[0].key, "client_secrt");
    }

    /// Kubernetes injects these for Services named `ssobridge` and `ssobridge-redis-master`:
    /// they are left out (by name), while a misspelt key beside them is still refused.
    #[test]
    fn kubernetes_service_links_are_ignored_and_typos_are_not() {
        let links = [
            ("SSOBRIDGE_SERVICE_HOST", "10.96.0.10"),
            ("SSOBRIDGE_SERVICE_PORT", "80"),
            ("SSOBRIDGE_SERVICE_PORT_HTTP", "80"),
            ("SSOBRIDGE_PORT", "tcp://10.96.0.10:80"),
            ("SSOBRIDGE_PORT_80_TCP", "tcp://10.96.0.10:80"),
            ("SSOBRIDGE_PORT_80_TCP_PROTO", "tcp"),
            ("SSOBRIDGE_PORT_80_TCP_PORT", "80"),
            ("SSOBRIDGE_PORT_80_TCP_ADDR", "10.96.0.10"),
            ("SSOBRIDGE_REDIS_MASTER_SERVICE_HOST", "fd00::11"),
            ("SSOBRIDGE_REDIS_MASTER_SERVICE_PORT_TCP_REDIS", "6379"),
            ("SSOBRIDGE_REDIS_MASTER_PORT", "tcp://fd00::11:6379"),
            ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP", "tcp://fd00::11:6379"),
            ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_ADDR", "fd00::11"),
            ("SSOBRIDGE_METRICS_PORT_9090_UDP_PROTO", "udp"),
            ("SSOBRIDGE_ADMIN_PORT_9090_SCTP_PORT", "9090"),
        ];
        let config = load(MINIMAL, &links).expect("service links are not config keys");
        let mut expected: Vec<&str> = links.iter().map(|(k, _)| *k).collect();
        expected.sort_unstable();
        assert_eq!(config.ignored_env, expected);
        // Beside them, a real override still applies and a typo is still refused.
        let mut env = links.to_vec();
        env.push(("SSOBRIDGE_TOKENS__CODE_TTL_SECONDS", "30"));
        assert_eq!(load(MINIMAL, &env).expect("valid").tokens.code_ttl_seconds, 30);
        env.push(("SSOBRIDGE_UPSTREAM__CLIENT_SECRT", "x"));
        assert!(matches!(load(MINIMAL, &env), Err(ConfigError::Invalid(p)) if p[0].key == "client_secrt"));
        // Shapes that are not the kubelet's are keys like any other: refused as unknown.
        for (name, value) in [
            ("SSOBRIDGE_REDIS_SERVICE_HOST", "redis.internal"),
            ("SSOBRIDGE_ADMIN_PORT", "9090"),
            ("SSOBRIDGE_PORT_80_TCP_ADDR", "not-an-ip"),
            ("SSOBRIDGE_PORT_80_HTTP", "tcp://10.0.0.1:80"),
            ("SSOBRIDGE_STORE__SERVICE_HOST", "10.0.0.1"),
            ("SSOBRIDGE_LISTEN_PORT", "tcp://10.0.0.1:80x"),
        ] {
            assert!(load(MINIMAL, &[(name, value)]).is_err(), "{name}={value} is not a service link");
        }
        // Top-level keys are single-part names too, and stay keys.
        let config = load(MINIMAL, &[("SSOBRIDGE_LISTEN", "0.0.0.0:8081")]).expect("listen");
        assert_eq!(config.listen.port(), 8081);
    }

    /// The `[store]` keys of `env` over MINIMAL: the problems' keys, or the store config.
    fn store(env: &[(&str, &str)]) -> Result<StoreConfig, Vec<String>> {
        match load(MINIMAL, env) {
            Ok(config) => Ok(config.store),
            Err(ConfigError::Invalid(problems)) => Err(problems.iter().map(|p| p.key.clone()).collect()),
            Err(other) => Err(vec![other.to_string()]),
        }
    }

    #[test]
    fn store_modes_and_their_problems() {
        let cluster =
            store(&[("SSOBRIDGE_STORE__MODE", "cluster"), ("SSOBRIDGE_STORE__URL", "redis://a:7000, redis://b:7001")])
                .expect("cluster seeds");
        assert_eq!((cluster.mode, cluster.urls()), (StoreMode::Cluster, vec!["redis://a:7000", "redis://b:7001"]));
        assert_eq!(store(&[]).expect("default").mode, StoreMode::Standalone);

        let problems = |env: &[(&str, &str)]| store(env).expect_err("must be invalid");
        assert_eq!(problems(&[("SSOBRIDGE_STORE__MODE", "cluster")]), ["store.mode"], "cluster on memory");
        assert_eq!(
            problems(&[("SSOBRIDGE_STORE__URL", "redis://a:1,redis://b:2")]),
            ["store.url"],
            "seeds need cluster"
        );
        assert_eq!(
            problems(&[("SSOBRIDGE_STORE__MODE", "cluster"), ("SSOBRIDGE_STORE__URL", "redis://a:1,rediss://b:2")]),
            ["store.url"],
            "one scheme for all seeds"
        );
        assert_eq!(
            problems(&[
                ("SSOBRIDGE_STORE__MODE", "cluster"),
                ("SSOBRIDGE_STORE__URL", "redis://a:1"),
                ("SSOBRIDGE_STORE__KEY_PREFIX", "{sso}:")
            ]),
            ["store.key_prefix"],
            "a hash tag in the prefix would put everything in one slot"
        );
        assert_eq!(
            problems(&[("SSOBRIDGE_STORE__URL", "redis://a:1"), ("SSOBRIDGE_STORE__TLS_CA_FILE", "/ca.pem")]),
            ["store.tls_ca_file"],
            "TLS files without rediss://"
        );
        assert_eq!(
            problems(&[("SSOBRIDGE_STORE__URL", "rediss://a:1"), ("SSOBRIDGE_STORE__TLS_CERT_FILE", "/c.pem")]),
            ["store.tls_cert_file"],
            "a client certificate without its key"
        );
        let Err(ConfigError::Invalid(bad)) = load(MINIMAL, &[("SSOBRIDGE_STORE__MODE", "sentinel")]) else {
            panic!("an unknown mode is refused")
        };
        assert!(bad[0].message.contains("store.mode must be \"standalone\" or \"cluster\""), "{bad:?}");
    }

    #[test]
    fn scalekit_settings_and_their_problems() {
        assert!(load(MINIMAL, &[]).expect("valid").scalekit.is_none(), "absent: no management API calls");
        let config = load(
            MINIMAL,
            &[
                ("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                ("SSOBRIDGE_SCALEKIT__LOOKUP_ON_MISS", "true"),
                ("SSOBRIDGE_SCALEKIT__API_URL", "https://acme.scalekit.dev/"),
            ],
        )
        .expect("valid");
        let scalekit = config.scalekit.expect("the section, from the environment");
        assert_eq!(
            (scalekit.sync_interval_seconds, scalekit.lookup_on_miss, scalekit.lookup_cache_seconds),
            (300, true, 300)
        );
        assert_eq!(scalekit.api_url.as_deref(), Some("https://acme.scalekit.dev"));
        let problems = |env: &[(&str, &str)]| match load(MINIMAL, env) {
            Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect::<Vec<_>>(),
            other => panic!("must be invalid: {other:?}"),
        };
        assert_eq!(
            problems(&[("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]),
            ["scalekit.webhook_secret"]
        );
        assert_eq!(problems(&[("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", "whsec_c2hvcnQ=")]), ["scalekit.webhook_secret"]);
        assert_eq!(problems(&[("SSOBRIDGE_SCALEKIT__API_URL", "http://acme.scalekit.dev")]), ["scalekit.api_url"]);
        assert_eq!(problems(&[("SSOBRIDGE_SCALEKIT__LOOKUP_CACHE_SECONDS", "0")]), ["scalekit.lookup_cache_seconds"]);
        let Err(ConfigError::Invalid(unknown)) = load(&format!("{MINIMAL}\n[scalekit]\nsync_every = 5\n"), &[]) else {
            panic!("an unknown key is refused")
        };
        assert_eq!(unknown[0].key, "sync_every");
    }

    #[test]
    fn idp_initiated_issuers_are_urls_and_come_from_the_environment() {
        assert!(load(MINIMAL, &[]).expect("valid").upstream.idp_initiated_issuers.is_empty(), "default: public_url");
        let config = load(
            MINIMAL,
            &[("SSOBRIDGE_UPSTREAM__IDP_INITIATED_ISSUERS", "https://b2b-app.com/, http://airdev.localhost:8888")],
        )
        .expect("valid");
        assert_eq!(config.upstream.idp_initiated_issuers, ["https://b2b-app.com", "http://airdev.localhost:8888"]);
        for bad in ["b2b-app.com", "https://b2b-app.com/?x=1", "ftp://b2b-app.com"] {
            let Err(ConfigError::Invalid(problems)) =
                load(MINIMAL, &[("SSOBRIDGE_UPSTREAM__IDP_INITIATED_ISSUERS", bad)])
            else {
                panic!("{bad} must be refused")
            };
            assert_eq!(problems[0].key, "upstream.idp_initiated_issuers", "{bad}");
        }
    }

    #[test]
    fn store_urls_print_without_passwords() {
        let config = |url: &str| StoreConfig { url: url.to_owned(), ..StoreConfig::default() };
        assert_eq!(config("redis://redis:6379/0").redacted_url(), "redis://redis:6379/0");
        assert_eq!(config("memory").redacted_url(), "memory");
        let redacted = config("rediss://user:hunter2@a:1,redis://:pw2@b:2/0").redacted_url();
        assert!(!redacted.contains("hunter2") && !redacted.contains("pw2"), "{redacted}");
        assert!(redacted.contains("rediss://user:redacted@a:1") && redacted.contains("@b:2/0"), "{redacted}");
    }
}
