//! The bearer token for the Identity Toolkit admin API.
//!
//! Production: an OAuth 2.0 access token from Google's token endpoint by the JWT-bearer grant
//! (RFC 7523 §2.1) signed with the service account's key, cached until shortly before it
//! expires. The emulator: the literal `owner`, which it takes as full admin rights.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use ssobridge_adapter_core::AdapterError;
use tokio::sync::Mutex;

use crate::http::{self, Deadline};
use crate::token::{unix_now, SigningKey};
use ssobridge_adapter_core::Secret;

/// The Identity Toolkit v1 admin methods (`projects.accounts.*`) document this scope; what the
/// token may actually do is bounded by the service account's IAM roles.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Google's token endpoint, also the `token_uri` of every key file it issues.
pub(crate) const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A cached token is replaced this long before it expires, so that no request goes out with a
/// token that expires in flight (the Admin SDKs use the same margin).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Google accepts assertions valid for at most an hour.
const ASSERTION_LIFETIME_SECONDS: u64 = 3600;

pub(crate) enum Credentials {
    Emulator,
    ServiceAccount(ServiceAccount),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Emulator => f.write_str("Emulator"),
            Credentials::ServiceAccount(sa) => f
                .debug_struct("ServiceAccount")
                .field("email", &sa.email)
                .field("token_uri", &sa.token_uri.as_str())
                .finish_non_exhaustive(),
        }
    }
}

pub(crate) struct ServiceAccount {
    email: String,
    key: Arc<SigningKey>,
    token_uri: Url,
    /// Held across a refresh, so that concurrent logins wait for one token request instead of
    /// each sending their own.
    cache: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

impl ServiceAccount {
    pub(crate) fn new(email: String, key: Arc<SigningKey>, token_uri: Url) -> Self {
        ServiceAccount { email, key, token_uri, cache: Mutex::new(None) }
    }
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// RFC 6749 §5.2.
#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl Credentials {
    /// The value for `Authorization: Bearer …`.
    pub(crate) async fn bearer(&self, http: &reqwest::Client, deadline: Deadline) -> Result<Secret, AdapterError> {
        match self {
            Credentials::Emulator => Ok(Secret::new("owner")),
            Credentials::ServiceAccount(sa) => sa.access_token(http, deadline).await,
        }
    }

    /// Forgets `stale` (the API refused it), unless another login already replaced it.
    pub(crate) async fn invalidate(&self, stale: &Secret) {
        if let Credentials::ServiceAccount(sa) = self {
            let mut cache = sa.cache.lock().await;
            if cache.as_ref().is_some_and(|c| c.token.expose() == stale.expose()) {
                *cache = None;
            }
        }
    }

    pub(crate) fn is_emulator(&self) -> bool {
        matches!(self, Credentials::Emulator)
    }
}

impl ServiceAccount {
    async fn access_token(&self, http: &reqwest::Client, deadline: Deadline) -> Result<Secret, AdapterError> {
        let mut cache = tokio::time::timeout(deadline.remaining(), self.cache.lock()).await.map_err(|_| {
            AdapterError::Transient {
                detail: "oauth token: timed out waiting for a refresh".to_owned(),
                retry_after: None,
            }
        })?;
        if let Some(cached) = cache.as_ref() {
            if Instant::now() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }
        let requested_at = Instant::now();
        let now = unix_now();
        let assertion = self.key.sign(
            &Assertion {
                iss: &self.email,
                scope: SCOPE,
                aud: self.token_uri.as_str(),
                iat: now,
                exp: now + ASSERTION_LIFETIME_SECONDS,
            },
            true,
        )?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.expose())];
        let reply = http::send("oauth token", deadline, || http.post(self.token_uri.clone()).form(&form)).await?;
        if !reply.status.is_success() {
            let detail = match serde_json::from_slice::<TokenError>(&reply.body) {
                Ok(e) => format!("{}{}", e.error, e.error_description.map(|d| format!(": {d}")).unwrap_or_default()),
                Err(_) => "no OAuth error in the body".to_owned(),
            };
            // 400/401 here mean a wrong, deleted or disabled key, or a skewed clock.
            return Err(AdapterError::Misconfigured {
                detail: format!("the token endpoint refused the service account (HTTP {}): {detail}", reply.status),
            });
        }
        let body: TokenResponse = serde_json::from_slice(&reply.body).map_err(|e| AdapterError::Transient {
            detail: format!("oauth token: unreadable token response: {e}"),
            retry_after: None,
        })?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let token = Secret::new(body.access_token);
        *cache = Some(CachedToken {
            token: token.clone(),
            // Counted from before the request: the token's clock started no later than that.
            refresh_at: requested_at + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        tracing::debug!(expires_in = lifetime.as_secs(), "fetched an access token for the Identity Toolkit API");
        Ok(token)
    }
}
