//! The client face: ssobridge as a relying party of the upstream provider (Scalekit or any
//! OIDC provider taking the same routing parameters).

mod id_token;
pub mod scalekit;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, ProviderMetadata};
use serde::{Deserialize, Serialize};
use tracing::instrument;

pub(crate) use self::id_token::select_key;
pub use self::id_token::{Audience, LoginInitiation, UpstreamClaims};
use crate::config::UpstreamConfig;
use crate::http::HttpError;
use crate::secret::Secret;

/// How long discovery and JWKS are trusted before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// At most one JWKS refetch (on an unknown `kid`) per this interval, however many arrive.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Network failure or timeout talking to the upstream.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream answered something that is not what the protocol says.
    #[error("upstream response malformed: {0}")]
    Malformed(String),
    /// The token endpoint refused the code.
    #[error("upstream token endpoint refused the code: {error}")]
    TokenRefused { error: String },
    /// The ID token failed verification; the reason is for logs only.
    #[error("upstream ID token rejected: {0}")]
    InvalidIdToken(String),
}

impl UpstreamError {
    /// Network-level trouble the user may retry past.
    pub fn is_transient(&self) -> bool {
        matches!(self, UpstreamError::Unreachable(_))
    }
}

/// What the upstream's token endpoint says of the broker's client credentials
/// ([`UpstreamClient::check_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A client_credentials grant was issued with them.
    Accepted,
    /// Refused as `invalid_client` (or with a bare 401): `upstream.client_secret` (or the
    /// client id) is not what the upstream has.
    Refused,
    /// The upstream answered without saying (`unsupported_grant_type`, `unauthorized_client`, …:
    /// not every OIDC provider grants client_credentials); its answer, for the log.
    Unknown(String),
}

/// RFC 9207 and the rest of what openidconnect's core metadata does not model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraProviderMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// RP-Initiated Logout 1.0 (Scalekit: `/oidc/logout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraProviderMetadata {}

type Metadata = ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// What the broker needs from the upstream's discovery document.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub iss_parameter_supported: bool,
    /// Where a sign-out continues at the upstream, when it has one.
    pub end_session_endpoint: Option<String>,
}

struct Discovered {
    endpoints: Arc<Endpoints>,
    /// The two endpoints a login uses, parsed once rather than per request.
    authorization_url: url::Url,
    token_url: url::Url,
    keys: Arc<Vec<Jwk>>,
    fetched_at: Instant,
}

/// The upstream relying party. Cheap to share: discovery and keys are cached inside.
pub struct UpstreamClient {
    issuer: String,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    scope: String,
    verifier: id_token::Verifier,
    http: reqwest::Client,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_jwks_fetch: Mutex<Option<Instant>>,
}

/// The token endpoint's answer, as far as the broker uses it.
#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
}

fn transport(error: reqwest::Error) -> UpstreamError {
    // reqwest's Display can include the URL; that is fine for logs (no secrets in our URLs).
    UpstreamError::Unreachable(error.to_string())
}

impl From<HttpError> for UpstreamError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::TooLarge(_) => UpstreamError::Malformed(error.to_string()),
            HttpError::Transport(_) | HttpError::Build(_) => UpstreamError::Unreachable(error.to_string()),
        }
    }
}

/// A JSON document from `url`, read with the response cap; a status other than 200 is an error.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T, UpstreamError> {
    let response = http.get(url).header(reqwest::header::ACCEPT, "application/json").send().await.map_err(transport)?;
    let status = response.status();
    if status.is_server_error() {
        return Err(UpstreamError::Unreachable(format!("{what} answered {status}")));
    }
    if !status.is_success() {
        return Err(UpstreamError::Malformed(format!("{what} answered {status}")));
    }
    let body = crate::http::read_capped(response).await?;
    serde_json::from_slice(&body).map_err(|e| UpstreamError::Malformed(format!("{what}: {e}")))
}

/// The keys of a JWK Set document; members that do not parse (unknown key types) are skipped.
fn jwk_set(document: &serde_json::Value) -> Vec<Jwk> {
    document
        .get("keys")
        .and_then(|k| k.as_array())
        .map(|keys| keys.iter().filter_map(|k| serde_json::from_value(k.clone()).ok()).collect())
        .unwrap_or_default()
}

impl UpstreamClient {
    /// The relying party of the broker at `public_url` (its redirect URI is `/callback` there).
    pub fn new(config: &UpstreamConfig, public_url: &str) -> Result<UpstreamClient, UpstreamError> {
        let http = crate::http::client(Duration::from_secs(config.timeout_seconds))?;
        // Besides the upstream issuer; by default the broker's own URL, as the docs' example of
        // an IdP-initiated token names the application there (research/scalekit.md §4.2).
        let initiation_issuers = match config.idp_initiated_issuers.as_slice() {
            [] => vec![public_url.to_owned()],
            listed => listed.to_vec(),
        };
        let verifier = id_token::Verifier::new(
            config.issuer.clone(),
            config.client_id.clone(),
            &config.allowed_algorithms,
            config.clock_skew_seconds,
        )?
        .with_initiation_issuers(initiation_issuers);
        let redirect_uri = format!("{public_url}/callback");
        Ok(UpstreamClient {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_uri,
            scope: config.scopes.join(" "),
            verifier,
            http,
            discovered: RwLock::new(None),
            last_jwks_fetch: Mutex::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    fn cached(&self) -> Option<Arc<Discovered>> {
        let guard = self.discovered.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|d| d.fetched_at.elapsed() < METADATA_TTL).cloned()
    }

    async fn discovered(&self) -> Result<Arc<Discovered>, UpstreamError> {
        if let Some(discovered) = self.cached() {
            return Ok(discovered);
        }
        self.fetch_discovery().await
    }

    /// Fetches discovery and JWKS now, replacing the cache: at start and for readiness.
    pub async fn discover(&self) -> Result<(), UpstreamError> {
        self.fetch_discovery().await.map(|_| ())
    }

    /// Discovery (OIDC Discovery 1.0 §4) and the JWKS it names, each read with the response cap.
    #[instrument(skip_all, fields(issuer = %self.issuer))]
    async fn fetch_discovery(&self) -> Result<Arc<Discovered>, UpstreamError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let discovery = get_json::<Metadata>(&self.http, &url, "discovery");
        let metadata = crate::telemetry::timed_outcome(
            "ssobridge_upstream_duration_seconds",
            &[("operation", "discovery")],
            discovery,
            |result| if result.is_ok() { "ok" } else { "error" },
        )
        .await?;
        // §4.3: the document must name the issuer it was fetched for (mix-up defence).
        if metadata.issuer().as_str().trim_end_matches('/') != self.issuer {
            return Err(UpstreamError::Malformed(format!(
                "discovery names issuer {}, not {}",
                metadata.issuer().as_str(),
                self.issuer
            )));
        }
        let token_endpoint = metadata
            .token_endpoint()
            .ok_or_else(|| UpstreamError::Malformed("discovery has no token_endpoint".to_owned()))?;
        let endpoints = Endpoints {
            authorization_endpoint: metadata.authorization_endpoint().url().to_string(),
            token_endpoint: token_endpoint.url().to_string(),
            jwks_uri: metadata.jwks_uri().url().to_string(),
            iss_parameter_supported: metadata
                .additional_metadata()
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
            end_session_endpoint: metadata.additional_metadata().end_session_endpoint.clone(),
        };
        let parse =
            |url: &str, name: &str| url::Url::parse(url).map_err(|e| UpstreamError::Malformed(format!("{name}: {e}")));
        let authorization_url = parse(&endpoints.authorization_endpoint, "authorization_endpoint")?;
        let token_url = parse(&endpoints.token_endpoint, "token_endpoint")?;
        let keys = jwk_set(&get_json::<serde_json::Value>(&self.http, &endpoints.jwks_uri, "JWKS").await?);
        let discovered = Arc::new(Discovered {
            endpoints: Arc::new(endpoints),
            authorization_url,
            token_url,
            keys: Arc::new(keys),
            fetched_at: Instant::now(),
        });
        *self.discovered.write().unwrap_or_else(|p| p.into_inner()) = Some(discovered.clone());
        Ok(discovered)
    }

    /// A client_credentials grant with the broker's credentials at the upstream's token
    /// endpoint (Scalekit issues one to the same credentials it redeems codes for): a wrong
    /// secret shows at start, not at the first user's callback. The token is dropped.
    #[instrument(skip_all)]
    pub async fn check_credentials(&self) -> Result<Credentials, UpstreamError> {
        let endpoints = self.endpoints().await?;
        let url = url::Url::parse(&endpoints.token_endpoint)
            .map_err(|e| UpstreamError::Malformed(format!("token_endpoint: {e}")))?;
        let grant =
            scalekit::client_credentials(&self.http, url, &self.client_id, &self.client_secret, "credentials_check");
        match grant.await {
            Ok(_) => Ok(Credentials::Accepted),
            Err(scalekit::ScalekitError::TokenRefused { status, error }) => Ok(match error {
                Some(error) if error == "invalid_client" => Credentials::Refused,
                None if status == 401 => Credentials::Refused,
                Some(error) => Credentials::Unknown(error),
                None => Credentials::Unknown(format!("status {status}")),
            }),
            Err(scalekit::ScalekitError::Unreachable(error)) => Err(UpstreamError::Unreachable(error)),
            Err(other) => Err(UpstreamError::Malformed(other.to_string())),
        }
    }

    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, UpstreamError> {
        Ok(self.discovered().await?.endpoints.clone())
    }

    /// The upstream authorization URL for one flow. `selectors` are the routing parameters
    /// (`connection_id`, `organization_id`, `domain_hint`, `login_hint`, …) to pass on.
    pub async fn authorize_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
        selectors: &[(&str, &str)],
    ) -> Result<String, UpstreamError> {
        let mut url = self.discovered().await?.authorization_url.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("scope", &self.scope)
                .append_pair("state", state)
                .append_pair("nonce", nonce)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            for (name, value) in selectors {
                query.append_pair(name, value);
            }
        }
        Ok(url.into())
    }

    /// Redeems `code` (client_secret_post, PKCE) and verifies the ID token against `nonce`.
    #[instrument(skip_all)]
    pub async fn exchange(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<UpstreamClaims, UpstreamError> {
        let token_url = self.discovered().await?.token_url.clone();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("code_verifier", pkce_verifier),
        ];
        let request = self.http.post(token_url).header(reqwest::header::ACCEPT, "application/json").form(&form);
        let response = crate::telemetry::timed_outcome(
            "ssobridge_upstream_duration_seconds",
            &[("operation", "token")],
            request.send(),
            crate::telemetry::http_outcome,
        )
        .await
        .map_err(transport)?;
        let status = response.status();
        let body = crate::http::read_capped(response).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<TokenErrorResponse>(&body) {
                Ok(refusal) if status.is_client_error() => UpstreamError::TokenRefused { error: refusal.error },
                _ if status.is_server_error() => {
                    UpstreamError::Unreachable(format!("token endpoint answered {status}"))
                }
                _ => UpstreamError::Malformed(format!("token endpoint answered {status}")),
            });
        }
        let tokens: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| UpstreamError::Malformed(format!("token response: {e}")))?;
        let id_token =
            tokens.id_token.ok_or_else(|| UpstreamError::Malformed("token response has no id_token".to_owned()))?;
        let mut claims = self.verify(&id_token, Some(nonce)).await?;
        claims.id_token = id_token;
        Ok(claims)
    }

    /// Verifies an upstream-signed JWT: signature with an allow-listed algorithm, `iss`, `aud`,
    /// `azp`, `exp`/`iat`/`nbf` with bounded skew, and `nonce` when given.
    pub async fn verify(&self, jwt: &str, nonce: Option<&str>) -> Result<UpstreamClaims, UpstreamError> {
        let kid = self.verifier.header_kid(jwt)?;
        let keys = self.discovered().await?.keys.clone();
        match self.verifier.verify(jwt, &keys, nonce) {
            Err(id_token::VerifyError::UnknownKey) => {
                // Key rotation upstream: refetch the JWKS once, then decide.
                let keys = self.refetch_keys(kid.as_deref()).await?;
                self.verifier.verify(jwt, &keys, nonce).map_err(Into::into)
            }
            other => other.map_err(Into::into),
        }
    }

    /// Verifies an IdP-initiated login token (signature, issuer, expiry, not-before).
    pub async fn verify_login_initiation(&self, jwt: &str) -> Result<LoginInitiation, UpstreamError> {
        let kid = self.verifier.header_kid(jwt)?;
        let keys = self.discovered().await?.keys.clone();
        match self.verifier.verify_login_initiation(jwt, &keys) {
            Err(id_token::VerifyError::UnknownKey) => {
                let keys = self.refetch_keys(kid.as_deref()).await?;
                self.verifier.verify_login_initiation(jwt, &keys).map_err(Into::into)
            }
            other => other.map_err(Into::into),
        }
    }

    async fn refetch_keys(&self, kid: Option<&str>) -> Result<Arc<Vec<Jwk>>, UpstreamError> {
        let discovered = self.discovered().await?;
        {
            let mut last = self.last_jwks_fetch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL) {
                return Ok(discovered.keys.clone());
            }
            *last = Some(Instant::now());
        }
        tracing::info!(kid, "unknown upstream signing key; refetching JWKS");
        let document = get_json::<serde_json::Value>(&self.http, &discovered.endpoints.jwks_uri, "JWKS").await?;
        let keys = Arc::new(jwk_set(&document));
        let refreshed = Arc::new(Discovered {
            endpoints: discovered.endpoints.clone(),
            authorization_url: discovered.authorization_url.clone(),
            token_url: discovered.token_url.clone(),
            keys: keys.clone(),
            fetched_at: discovered.fetched_at,
        });
        *self.discovered.write().unwrap_or_else(|p| p.into_inner()) = Some(refreshed);
        Ok(keys)
    }
}
