//! `[store]`: memory, or Redis standalone or cluster, over TLS if asked.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::Problem;

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
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let is_redis = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
        let urls = self.urls();
        match self.mode {
            StoreMode::Standalone if self.url.contains(',') => problems.push(Problem::new(
                "store.url",
                "one URL in standalone mode; a comma-separated list of seed nodes needs store.mode = \"cluster\""
                    .to_owned(),
            )),
            StoreMode::Standalone if self.url != "memory" && !is_redis(&self.url) => {
                problems.push(Problem::new("store.url", "must be \"memory\" or a redis:// or rediss:// URL".to_owned()))
            }
            StoreMode::Standalone => {}
            StoreMode::Cluster if self.url.trim() == "memory" => problems.push(Problem::new(
                "store.mode",
                "cluster needs store.url to list redis:// or rediss:// seed nodes; the memory store has no cluster"
                    .to_owned(),
            )),
            StoreMode::Cluster => {
                if urls.is_empty() || !urls.iter().all(|u| is_redis(u)) {
                    problems.push(Problem::new(
                        "store.url",
                        "in cluster mode: one or more redis:// or rediss:// seed node URLs, separated by commas"
                            .to_owned(),
                    ));
                } else if urls.iter().any(|u| u.starts_with("rediss://"))
                    && !urls.iter().all(|u| u.starts_with("rediss://"))
                {
                    problems
                        .push(Problem::new("store.url", "seed nodes must be all redis:// or all rediss://".to_owned()));
                }
                if self.key_prefix.contains(['{', '}']) {
                    problems.push(Problem::new(
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
                problems.push(Problem::new(key, "applies to rediss:// URLs only".to_owned()));
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            problems
                .push(Problem::new("store.tls_cert_file", "set tls_cert_file and tls_key_file together".to_owned()));
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
                "store.mode: must be \"standalone\" or \"cluster\", not {other:?}"
            ))),
        }
    }
}

fn default_store_url() -> String {
    "memory".to_owned()
}
fn default_key_prefix() -> String {
    "ssobridge:".to_owned()
}
