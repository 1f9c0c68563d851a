//! `[scalekit]`: routes from Scalekit's organizations, its webhooks, the lookup on a miss.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::Problem;
use crate::model::url::check_base_url;
use crate::secret::Secret;

/// Shortest webhook key accepted: Standard Webhooks secrets are 24 to 64 bytes.
const MIN_WEBHOOK_KEY_BYTES: usize = 16;

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
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Some(secret) = &self.webhook_secret {
            if let Err(message) = decode_webhook_secret(secret.expose()) {
                problems.push(Problem::new("scalekit.webhook_secret", message));
            }
        }
        if let Some(url) = &self.api_url {
            if let Err(message) = check_base_url(url) {
                problems.push(Problem::new("scalekit.api_url", message));
            }
        }
        if self.lookup_cache_seconds == 0 || self.lookup_cache_seconds > 86_400 {
            problems.push(Problem::new("scalekit.lookup_cache_seconds", "must be between 1 and 86400".to_owned()));
        }
        problems
    }
}

/// The HMAC key of a Standard Webhooks secret as Scalekit shows it, `whsec_<base64>`.
pub fn decode_webhook_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.trim().strip_prefix("whsec_").ok_or("must start with whsec_ (as Scalekit shows it)")?;
    let key = STANDARD.decode(encoded).map_err(|_| "the part after whsec_ must be standard base64".to_owned())?;
    if key.len() < MIN_WEBHOOK_KEY_BYTES {
        return Err(format!("the key after whsec_ must be at least {MIN_WEBHOOK_KEY_BYTES} bytes"));
    }
    Ok(key)
}
