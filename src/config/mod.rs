//! Typed configuration: a TOML file overlaid with `SSOBRIDGE_<SECTION>__<KEY>` environment
//! variables ([`env`]), validated once at start: one file per section, each checking itself,
//! every problem named by its key. Nothing reads the environment after [`Config::load`]. This
//! layer stands on the model alone.

mod admin;
mod clients;
mod env;
mod events;
mod limits;
mod scalekit;
mod signing;
mod store;
mod tokens;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::admin::AdminConfig;
pub use self::clients::{AdapterSettings, ClientConfig};
use self::env::overlay_env;
pub use self::env::ENV_PREFIX;
pub use self::events::EventsConfig;
pub use self::limits::{OutboundConfig, RateLimitConfig};
pub use self::scalekit::{decode_webhook_secret, ScalekitConfig};
pub use self::signing::SigningConfig;
pub use self::store::{StoreConfig, StoreMode};
pub use self::tokens::TokenConfig;
pub use self::upstream::{UpstreamConfig, VERIFIABLE_ALGORITHMS};
use crate::model::url::check_base_url;
use crate::model::{Route, RouteSource};

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
    /// The login event log.
    #[serde(default)]
    pub events: EventsConfig,
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

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

/// One thing wrong with the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { key: key.into(), message: message.into() }
    }
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
        ConfigError::Invalid(vec![Problem::new(key, message)])
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
        let mut config: Config = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
            let key = error_key(&e);
            let message = e.message().strip_prefix(&format!("{key}: ")).unwrap_or(e.message());
            ConfigError::one(key.clone(), message.to_owned())
        })?;
        config.environment = environment;
        config.ignored_env = ignored_env;
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config.normalized())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// URLs without trailing slashes and route domains normalized, as everything else uses them.
    fn normalized(mut self) -> Self {
        upstream::trim_slashes(&mut self.public_url);
        self.upstream.normalize();
        for route in &mut self.routes {
            // Checked by problems(): the domain normalizes.
            if let Ok(domain) = crate::model::normalize_domain(&route.domain) {
                route.domain = domain;
            }
            route.source = RouteSource::Config;
        }
        if let Some(url) = self.scalekit.as_mut().and_then(|s| s.api_url.as_mut()) {
            upstream::trim_slashes(url);
        }
        self
    }

    /// Everything wrong with the configuration, one problem per key, each section checking
    /// itself.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(message) = check_base_url(&self.public_url) {
            problems.push(Problem::new("public_url", message));
        }
        problems.extend(self.store.problems());
        problems.extend(self.scalekit.iter().flat_map(ScalekitConfig::problems));
        problems.extend(self.signing.problems());
        problems.extend(self.upstream.problems());
        problems.extend(self.tokens.problems());
        let context = clients::Context {
            has_ec_key: self.signing.has_ec_key(),
            allow_private_networks: self.outbound.allow_private_networks,
            environment: self.environment,
        };
        problems.extend(clients::problems(&self.clients, &context));
        problems.extend(self.admin.problems());
        problems.extend(self.events.problems());
        problems.extend(clients::route_problems(&self.routes, &self.clients));
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
    // Our own messages start with the key they are about (`store.mode: …`).
    match message.split_once(':') {
        Some((key, _)) if key.contains('.') && key.bytes().all(|b| b.is_ascii_lowercase() || b"._".contains(&b)) => {
            key.to_owned()
        }
        _ => "config".to_owned(),
    }
}

#[cfg(test)]
mod tests;
