//! `[rate_limits]` and `[outbound]`.

use serde::{Deserialize, Serialize};

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
