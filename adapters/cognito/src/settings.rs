//! The `[clients.cognito]` table of a client with `adapter = "cognito"`, checked once at start.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use ssobridge_adapter_core::AdapterError;
use url::Url;

use ssobridge_adapter_core::Secret;

/// Default bound on one HTTP exchange with Cognito.
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// A sign-in waits on these calls; anything longer is an outage, not a slow answer.
const MAX_TIMEOUT_SECONDS: u64 = 60;
/// Cognito's limit on identity provider names.
const MAX_PROVIDER_NAME_CHARS: usize = 32;

/// How the adapter reaches one Cognito user pool.
///
/// ```toml
/// [clients.cognito]
/// region = "eu-west-1"
/// user_pool_id = "eu-west-1_AbCdEf123"
/// identity_provider_name = "ssobridge"   # the OIDC identity provider in the pool that is ssobridge
/// access_key_id = "AKIA..."              # an IAM principal allowed the calls in iam-policy.json
/// secret_access_key = "..."
/// # session_token = "..."                # with temporary credentials
/// # endpoint = "https://cognito-idp.eu-west-1.amazonaws.com"  # a VPC endpoint, or moto in tests
/// # timeout_seconds = 10
/// # create_groups = false              # true: create a missing group for a managed role
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoSettings {
    /// The AWS region of the user pool, e.g. `eu-west-1`; also the SigV4 signing region.
    pub region: String,
    /// The user pool id, e.g. `eu-west-1_AbCdEf123` (it starts with the region).
    pub user_pool_id: String,
    /// The name under which ssobridge is registered as an OIDC identity provider in the pool: the
    /// `ProviderName` of the federated identity linked to each user.
    pub identity_provider_name: String,
    /// Access key id of an IAM principal allowed the Admin API calls the adapter makes.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: String,
    /// The session token that goes with temporary credentials (STS), if any.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Base URL of the Cognito API instead of `https://cognito-idp.REGION.amazonaws.com`
    /// (a VPC interface endpoint, or moto in tests). `http://` only for loopback hosts.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bound on each HTTP exchange (default 10 s); a whole sign-in is bounded by three times it.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Whether writing a user's roles creates a pool group that does not exist yet (needs
    /// `cognito-idp:CreateGroup`). Off by default: a missing group is then reported as a
    /// misconfiguration naming it, for an administrator to create.
    #[serde(default)]
    pub create_groups: Option<bool>,
}

impl fmt::Debug for CognitoSettings {
    // Hand-written so that the secret key and the session token never reach a log line or a panic.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoSettings")
            .field("region", &self.region)
            .field("user_pool_id", &self.user_pool_id)
            .field("identity_provider_name", &self.identity_provider_name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .field("endpoint", &self.endpoint)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("create_groups", &self.create_groups)
            .finish()
    }
}

/// Settings after validation: the endpoint parsed, defaults applied, secrets wrapped.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub region: String,
    pub user_pool_id: String,
    pub identity_provider_name: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// Where every JSON 1.1 request is POSTed: the service root, path `/`.
    pub endpoint: Url,
    pub timeout: Duration,
    pub create_groups: bool,
}

fn misconfigured(detail: impl Into<String>) -> AdapterError {
    AdapterError::Misconfigured { detail: detail.into() }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

impl CognitoSettings {
    pub(crate) fn validate(&self) -> Result<Validated, AdapterError> {
        let region = self.region.trim();
        // Region names are lowercase words and digits joined by dashes (us-east-1, us-gov-west-1);
        // the value goes into the host name and the SigV4 credential scope.
        if region.is_empty()
            || region.len() > 32
            || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(misconfigured("cognito.region must be an AWS region such as eu-west-1"));
        }
        let user_pool_id = self.user_pool_id.trim();
        match user_pool_id.split_once('_') {
            Some((pool_region, rest))
                if pool_region == region
                    && !rest.is_empty()
                    && rest.len() <= 64
                    && rest.chars().all(|c| c.is_ascii_alphanumeric()) => {}
            Some((pool_region, _)) if pool_region != region => {
                return Err(misconfigured(format!(
                    "cognito.user_pool_id is a pool of {pool_region}, but cognito.region is {region}"
                )))
            }
            _ => return Err(misconfigured("cognito.user_pool_id must look like eu-west-1_AbCdEf123")),
        }
        let provider = self.identity_provider_name.trim();
        if provider.is_empty()
            || provider.chars().count() > MAX_PROVIDER_NAME_CHARS
            || provider.chars().any(|c| c.is_whitespace() || c.is_control())
            || provider == "Cognito"
        {
            return Err(misconfigured(
                "cognito.identity_provider_name must be the name of ssobridge's OIDC identity provider in the pool \
                 (1 to 32 characters, no spaces)",
            ));
        }
        let access_key_id = self.access_key_id.trim();
        if access_key_id.is_empty() || !access_key_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(misconfigured("cognito.access_key_id must be an AWS access key id such as AKIA..."));
        }
        if self.secret_access_key.trim().is_empty() {
            return Err(misconfigured("cognito.secret_access_key is empty"));
        }
        let session_token = match self.session_token.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(misconfigured("cognito.session_token is empty; leave it out instead")),
            Some(token) => Some(Secret::new(token.to_owned())),
        };
        let endpoint = match self.endpoint.as_deref() {
            None => {
                // China regions live under their own partition's domain.
                let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
                Url::parse(&format!("https://cognito-idp.{region}.{suffix}/"))
                    .map_err(|e| misconfigured(format!("cognito endpoint for region {region}: {e}")))?
            }
            Some(raw) => {
                let url =
                    Url::parse(raw.trim()).map_err(|e| misconfigured(format!("cognito.endpoint is not a URL: {e}")))?;
                match url.scheme() {
                    "https" => {}
                    // Signed requests carry the session token; they never cross a network in the clear.
                    "http" if is_loopback(&url) => {}
                    _ => return Err(misconfigured("cognito.endpoint must be https:// (http:// only for loopback)")),
                }
                // The JSON protocol always posts to the service root; a path would change what is signed.
                if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                    return Err(misconfigured("cognito.endpoint must be a bare origin such as https://host:port"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(misconfigured("cognito.endpoint must not carry credentials"));
                }
                url
            }
        };
        let timeout_seconds = self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        if timeout_seconds == 0 || timeout_seconds > MAX_TIMEOUT_SECONDS {
            return Err(misconfigured(format!("cognito.timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}")));
        }
        Ok(Validated {
            region: region.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
            identity_provider_name: provider.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: Secret::new(self.secret_access_key.trim().to_owned()),
            session_token,
            endpoint,
            timeout: Duration::from_secs(timeout_seconds),
            create_groups: self.create_groups.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn settings() -> CognitoSettings {
        CognitoSettings {
            region: "eu-west-1".into(),
            user_pool_id: "eu-west-1_AbCdEf123".into(),
            identity_provider_name: "ssobridge".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret-key".into(),
            session_token: Some("very-secret-token".into()),
            endpoint: None,
            timeout_seconds: None,
            create_groups: None,
        }
    }

    #[test]
    fn defaults_point_at_the_regional_endpoint() {
        let v = settings().validate().unwrap();
        assert_eq!(v.endpoint.as_str(), "https://cognito-idp.eu-west-1.amazonaws.com/");
        assert_eq!(v.timeout, Duration::from_secs(10));
        let mut china = settings();
        china.region = "cn-north-1".into();
        china.user_pool_id = "cn-north-1_AbC".into();
        assert_eq!(china.validate().unwrap().endpoint.as_str(), "https://cognito-idp.cn-north-1.amazonaws.com.cn/");
    }

    #[test]
    fn a_loopback_endpoint_may_be_plain_http() {
        let mut s = settings();
        s.endpoint = Some("http://127.0.0.1:5000".into());
        assert_eq!(s.validate().unwrap().endpoint.as_str(), "http://127.0.0.1:5000/");
    }

    type Change = Box<dyn Fn(&mut CognitoSettings)>;

    #[test]
    fn refuses_what_cannot_work() {
        let cases: Vec<(&str, Change)> = vec![
            ("empty region", Box::new(|s| s.region = " ".into())),
            ("region with a dot", Box::new(|s| s.region = "eu.west".into())),
            ("pool of another region", Box::new(|s| s.user_pool_id = "us-east-1_AbC".into())),
            ("pool id without region", Box::new(|s| s.user_pool_id = "AbCdEf123".into())),
            ("empty provider", Box::new(|s| s.identity_provider_name = String::new())),
            ("provider with a space", Box::new(|s| s.identity_provider_name = "sso bridge".into())),
            ("provider too long", Box::new(|s| s.identity_provider_name = "x".repeat(33))),
            ("provider named Cognito", Box::new(|s| s.identity_provider_name = "Cognito".into())),
            ("empty key id", Box::new(|s| s.access_key_id = String::new())),
            ("empty secret", Box::new(|s| s.secret_access_key = String::new())),
            ("empty session token", Box::new(|s| s.session_token = Some(String::new()))),
            ("plain http to a remote host", Box::new(|s| s.endpoint = Some("http://example.com".into()))),
            ("endpoint with a path", Box::new(|s| s.endpoint = Some("https://example.com/cognito".into()))),
            ("endpoint with credentials", Box::new(|s| s.endpoint = Some("https://u:p@example.com".into()))),
            ("zero timeout", Box::new(|s| s.timeout_seconds = Some(0))),
            ("huge timeout", Box::new(|s| s.timeout_seconds = Some(3600))),
        ];
        for (what, change) in cases {
            let mut s = settings();
            change(&mut s);
            assert!(matches!(s.validate(), Err(AdapterError::Misconfigured { .. })), "{what} must be refused");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<CognitoSettings, _> = serde_json::from_value(serde_json::json!({
            "region": "eu-west-1", "user_pool_id": "eu-west-1_A", "identity_provider_name": "ssobridge",
            "access_key_id": "AKIA", "secret_access_key": "s", "user_pool": "typo"
        }));
        assert!(parsed.is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let shown = format!("{:?} {:?}", settings(), settings().validate().unwrap());
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
