//! The `[clients.auth0]` table of a client with `adapter = "auth0"`, checked once at start.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use ssobridge_adapter_core::AdapterError;
use url::Url;

use ssobridge_adapter_core::Secret;

/// Default bound on one HTTP exchange with Auth0.
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// A sign-in waits on these calls; anything longer is an outage, not a slow answer.
const MAX_TIMEOUT_SECONDS: u64 = 60;

/// How the adapter reaches one Auth0 tenant.
///
/// ```toml
/// [clients.auth0]
/// domain = "acme.us.auth0.com"        # the tenant's canonical domain (not a custom domain)
/// client_id = "..."                   # a machine-to-machine application of the tenant
/// client_secret = "..."
/// connection = "ssobridge"            # the name of the Auth0 OIDC connection that is ssobridge
/// # api_base = "http://127.0.0.1:4010"  # optional: another base URL for /oauth/token and /api/v2
/// # timeout_seconds = 10
/// # assign_roles = false              # true: also assign the Auth0 roles named like the user's roles
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth0Settings {
    /// The tenant's canonical domain, e.g. `acme.us.auth0.com`: the Management API audience is
    /// `https://DOMAIN/api/v2/`, which a custom domain does not change.
    pub domain: String,
    /// Client id of the machine-to-machine application authorized for the Management API.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The name of the Auth0 enterprise OIDC connection that points at ssobridge.
    pub connection: String,
    /// Base URL for `/oauth/token` and `/api/v2/` instead of `https://DOMAIN` (tests, proxies).
    /// `http://` only for loopback hosts.
    #[serde(default)]
    pub api_base: Option<String>,
    /// Bound on each HTTP exchange (default 10 s); a whole sign-in is bounded by three times it.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Whether writing a user's roles also assigns (and removes) the tenant's Auth0 roles of
    /// the same names, besides `app_metadata.roles` (needs `read:roles`, `read:role_members`,
    /// `create:role_members`, `delete:role_members`; the roles must exist). Off by default.
    #[serde(default)]
    pub assign_roles: Option<bool>,
}

impl fmt::Debug for Auth0Settings {
    // Hand-written so that the client secret never reaches a log line or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth0Settings")
            .field("domain", &self.domain)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("connection", &self.connection)
            .field("api_base", &self.api_base)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("assign_roles", &self.assign_roles)
            .finish()
    }
}

/// Settings after validation: URLs parsed, defaults applied, the secret wrapped.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub client_id: String,
    pub client_secret: Secret,
    pub connection: String,
    pub token_url: Url,
    /// Ends with `/api/v2/`.
    pub api_url: Url,
    pub audience: String,
    pub timeout: Duration,
    pub assign_roles: bool,
}

fn misconfigured(detail: impl Into<String>) -> AdapterError {
    AdapterError::Misconfigured { detail: detail.into() }
}

impl Auth0Settings {
    pub(crate) fn validate(&self) -> Result<Validated, AdapterError> {
        let domain = self.domain.trim();
        if domain.is_empty() || domain.contains("://") || domain.contains('/') {
            return Err(misconfigured("auth0.domain must be a host name such as acme.us.auth0.com, without https://"));
        }
        let canonical = Url::parse(&format!("https://{domain}/"))
            .map_err(|e| misconfigured(format!("auth0.domain is not a host name: {e}")))?;
        if canonical.host_str().is_none() || canonical.port().is_some() {
            return Err(misconfigured("auth0.domain must be a host name without a port"));
        }
        if self.client_id.trim().is_empty() {
            return Err(misconfigured("auth0.client_id is empty"));
        }
        if self.client_secret.is_empty() {
            return Err(misconfigured("auth0.client_secret is empty"));
        }
        let connection = self.connection.trim();
        // The connection name becomes part of Auth0 user ids (`oidc|NAME|sub`) and of Lucene
        // queries; Auth0 itself allows only letters, digits and dashes.
        if connection.is_empty()
            || connection.len() > 128
            || !connection.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(misconfigured("auth0.connection must be the OIDC connection's name (letters, digits, -)"));
        }
        let base = match self.api_base.as_deref() {
            None => canonical.clone(),
            Some(raw) => {
                let url = Url::parse(raw).map_err(|e| misconfigured(format!("auth0.api_base is not a URL: {e}")))?;
                let loopback = match url.host() {
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    Some(url::Host::Domain(name)) => name == "localhost",
                    None => false,
                };
                match url.scheme() {
                    "https" => {}
                    // Client credentials and bearer tokens never cross a network in the clear.
                    "http" if loopback => {}
                    _ => return Err(misconfigured("auth0.api_base must be https:// (http:// only for loopback)")),
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(misconfigured("auth0.api_base must not have a query or fragment"));
                }
                url
            }
        };
        let base = base.as_str().trim_end_matches('/').to_owned();
        let token_url =
            Url::parse(&format!("{base}/oauth/token")).map_err(|e| misconfigured(format!("auth0 token URL: {e}")))?;
        let api_url =
            Url::parse(&format!("{base}/api/v2/")).map_err(|e| misconfigured(format!("auth0 API URL: {e}")))?;
        let timeout_seconds = self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        if timeout_seconds == 0 || timeout_seconds > MAX_TIMEOUT_SECONDS {
            return Err(misconfigured(format!("auth0.timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}")));
        }
        Ok(Validated {
            client_id: self.client_id.trim().to_owned(),
            client_secret: Secret::new(self.client_secret.clone()),
            connection: connection.to_owned(),
            token_url,
            api_url,
            audience: format!("https://{domain}/api/v2/"),
            timeout: Duration::from_secs(timeout_seconds),
            assign_roles: self.assign_roles.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings() -> Auth0Settings {
        Auth0Settings {
            domain: "acme.us.auth0.com".into(),
            client_id: "m2m".into(),
            client_secret: "very-secret-value".into(),
            connection: "ssobridge".into(),
            api_base: None,
            timeout_seconds: None,
            assign_roles: None,
        }
    }

    #[test]
    fn defaults_point_at_the_tenant() {
        let v = settings().validate().unwrap();
        assert_eq!(v.token_url.as_str(), "https://acme.us.auth0.com/oauth/token");
        assert_eq!(v.api_url.as_str(), "https://acme.us.auth0.com/api/v2/");
        assert_eq!(v.audience, "https://acme.us.auth0.com/api/v2/");
        assert_eq!(v.timeout, Duration::from_secs(10));
    }

    #[test]
    fn api_base_overrides_the_host_but_not_the_audience() {
        let mut s = settings();
        s.api_base = Some("http://127.0.0.1:4010/".into());
        let v = s.validate().unwrap();
        assert_eq!(v.token_url.as_str(), "http://127.0.0.1:4010/oauth/token");
        assert_eq!(v.api_url.as_str(), "http://127.0.0.1:4010/api/v2/");
        assert_eq!(v.audience, "https://acme.us.auth0.com/api/v2/");
    }

    #[test]
    fn refuses_what_cannot_work() {
        type Change = fn(&mut Auth0Settings);
        let cases: [(&str, Change); 9] = [
            ("scheme in domain", |s| s.domain = "https://acme.us.auth0.com".into()),
            ("empty domain", |s| s.domain = " ".into()),
            ("empty client id", |s| s.client_id = String::new()),
            ("empty secret", |s| s.client_secret = String::new()),
            ("pipe in connection", |s| s.connection = "a|b".into()),
            ("quote in connection", |s| s.connection = "a\"b".into()),
            ("plain http to a remote host", |s| s.api_base = Some("http://example.com".into())),
            ("zero timeout", |s| s.timeout_seconds = Some(0)),
            ("huge timeout", |s| s.timeout_seconds = Some(3600)),
        ];
        for (what, change) in cases {
            let mut s = settings();
            change(&mut s);
            assert!(matches!(s.validate(), Err(AdapterError::Misconfigured { .. })), "{what} must be refused");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<Auth0Settings, _> = serde_json::from_value(serde_json::json!({
            "domain": "acme.us.auth0.com", "client_id": "a", "client_secret": "b", "connection": "c",
            "conection": "typo"
        }));
        assert!(parsed.is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?} {:?}", settings(), settings().validate().unwrap());
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
