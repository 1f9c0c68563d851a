//! `[upstream]`: the OpenID Provider the broker signs users in with (Scalekit).

use std::str::FromStr;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use url::Url;

use super::Problem;
use crate::model::url::check_base_url;
use crate::secret::Secret;

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
    #[serde(default = "default_upstream_algorithms", deserialize_with = "verifiable_algorithms")]
    pub allowed_algorithms: Vec<Algorithm>,
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
    /// A sign-out at `/logout` continues at the upstream's end-session endpoint (Scalekit's
    /// `/oidc/logout`, with the upstream ID token of that session as `id_token_hint`), which
    /// returns to `<public_url>/logout/done`: register that as a Post logout URL at Scalekit.
    #[serde(default)]
    pub logout_at_upstream: bool,
}

fn default_upstream_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}
fn default_upstream_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256, Algorithm::ES256, Algorithm::PS256]
}
fn default_clock_skew() -> u64 {
    60
}
fn default_upstream_timeout() -> u64 {
    10
}

/// Upstream algorithms ssobridge can verify.
/// Never HMAC: its "key" would be the broker's own client secret, which the upstream is not
/// the only holder of; never `none`.
pub const VERIFIABLE_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// Algorithm names, each one of [`VERIFIABLE_ALGORITHMS`], parsed once.
fn verifiable_algorithms<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Algorithm>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|name| match Algorithm::from_str(name) {
            Ok(alg) if VERIFIABLE_ALGORITHMS.contains(&name.as_str()) => Ok(alg),
            _ => Err(serde::de::Error::custom(format!(
                "upstream.allowed_algorithms: {name} is not allowed (use {})",
                VERIFIABLE_ALGORITHMS.join(", ")
            ))),
        })
        .collect()
}

impl UpstreamConfig {
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if let Err(message) = check_base_url(&self.issuer) {
            problems.push(Problem::new("upstream.issuer", message));
        }
        if self.client_id.is_empty() {
            problems.push(Problem::new("upstream.client_id", "must not be empty"));
        }
        if self.client_secret.is_empty() {
            problems.push(Problem::new("upstream.client_secret", "must not be empty"));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            problems.push(Problem::new("upstream.scopes", "must include openid"));
        }
        if self.allowed_algorithms.is_empty() {
            problems.push(Problem::new("upstream.allowed_algorithms", "must list at least one algorithm"));
        }
        if self.timeout_seconds == 0 {
            problems.push(Problem::new("upstream.timeout_seconds", "must be at least 1"));
        }
        for issuer in &self.idp_initiated_issuers {
            // Only compared with a signed claim, never fetched: http is as good as https here.
            let valid = Url::parse(issuer).is_ok_and(|url| {
                matches!(url.scheme(), "https" | "http")
                    && url.host().is_some()
                    && url.query().is_none()
                    && url.fragment().is_none()
            });
            if !valid {
                problems.push(Problem::new(
                    "upstream.idp_initiated_issuers",
                    format!("{issuer}: each must be an http(s) URL without query or fragment"),
                ));
            }
        }
        problems
    }

    /// Without trailing slashes, as everything else compares them.
    pub(super) fn normalize(&mut self) {
        trim_slashes(&mut self.issuer);
        self.idp_initiated_issuers.iter_mut().for_each(trim_slashes);
    }
}

pub(super) fn trim_slashes(url: &mut String) {
    while url.ends_with('/') {
        url.pop();
    }
}
