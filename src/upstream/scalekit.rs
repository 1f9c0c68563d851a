//! Scalekit's management REST API, as far as route sync needs it (research/scalekit.md §7):
//! a client_credentials token from `/oauth/token`, the organizations (paginated by
//! `page_token`), each organization's SSO domains (paginated by `page_number`), and the active
//! connections of one email domain. Wire JSON is snake_case; fields may be missing, so every
//! one has a default. Every response is read with a size cap; tokens never reach a log.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use tracing::instrument;
use url::Url;

use crate::http::HttpError;
use crate::secret::Secret;

/// Organizations and domains per page: the largest both endpoints take.
pub const PAGE_SIZE: u32 = 100;
/// A page of 100 organizations with metadata can pass the 64 KB other documents are held to.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// A pagination that has not ended after this many pages is a loop, not a tenant.
const MAX_PAGES: usize = 10_000;
/// A token is fetched again this long before Scalekit says it expires (`expires_in`, 86399).
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ScalekitError {
    /// Network trouble, a timeout, a 5xx or a 429: worth trying again later.
    #[error("Scalekit API unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint refused the client_credentials grant: `error` is RFC 6749 §5.2's
    /// code when the body has one (`invalid_client`: the credentials are wrong).
    #[error("the token endpoint refused the client credentials ({}, {status})", .error.as_deref().unwrap_or("no error code"))]
    TokenRefused { status: u16, error: Option<String> },
    /// The API refused a token just issued.
    #[error("Scalekit API refused the client credentials ({0})")]
    Unauthorized(String),
    #[error("Scalekit API: {0} not found")]
    NotFound(&'static str),
    #[error("Scalekit API answered {status} to {what}")]
    Refused { what: &'static str, status: u16 },
    #[error("Scalekit API response malformed: {0}")]
    Malformed(String),
}

impl From<HttpError> for ScalekitError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::TooLarge(_) => ScalekitError::Malformed(error.to_string()),
            HttpError::Transport(_) | HttpError::Build(_) => ScalekitError::Unreachable(error.to_string()),
        }
    }
}

fn transport(error: reqwest::Error) -> ScalekitError {
    // Without the URL: it carries nothing secret, but a domain typed by a user may be in it.
    ScalekitError::Unreachable(error.without_url().to_string())
}

/// `organizations[]` of `GET /api/v1/organizations` (§7.2).
#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
}

/// `domains[]` of `GET /api/v1/organizations/{id}/domains` (§7.3).
#[derive(Debug, Clone, Deserialize)]
pub struct Domain {
    #[serde(default)]
    pub id: String,
    pub domain: String,
    #[serde(default)]
    pub domain_type: String,
    #[serde(default)]
    pub organization_id: String,
    /// `PENDING`, `VERIFIED`, `FAILED` or `AUTO_VERIFIED`.
    #[serde(default)]
    pub verification_status: String,
}

impl Domain {
    /// Verified by DNS or by an admin (`VERIFIED`), or without DNS changes (`AUTO_VERIFIED`):
    /// the only domains Scalekit routes by (§7.3).
    pub fn is_verified(&self) -> bool {
        matches!(self.verification_status.as_str(), "VERIFIED" | "AUTO_VERIFIED")
    }
}

/// `connections[]` of `GET /api/v1/connections` (§7.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Connection {
    pub id: String,
    #[serde(default)]
    pub organization_id: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Deserialize)]
struct OrganizationPage {
    #[serde(default)]
    organizations: Vec<Organization>,
    #[serde(default)]
    next_page_token: String,
}

#[derive(Deserialize)]
struct DomainPage {
    #[serde(default)]
    domains: Vec<Domain>,
    #[serde(default)]
    page_size: Option<u32>,
}

#[derive(Deserialize)]
struct ConnectionList {
    #[serde(default)]
    connections: Vec<Connection>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// An access token from a client_credentials grant.
pub struct IssuedToken {
    pub access_token: Secret,
    /// Seconds, as the token endpoint says (Scalekit: 86399).
    pub expires_in: Option<u64>,
}

/// A client_credentials grant at `token_url` (research/scalekit.md §7.1): the credentials in
/// the form body (`client_secret_post`, as every Scalekit SDK sends them), the answer read with
/// the response cap. The management API's token, and the check at start that the broker's
/// credentials are the upstream's (`operation` names it in the metrics).
pub async fn client_credentials(
    http: &reqwest::Client,
    token_url: Url,
    client_id: &str,
    client_secret: &Secret,
    operation: &'static str,
) -> Result<IssuedToken, ScalekitError> {
    let form =
        [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret.expose())];
    let request = http.post(token_url).header(reqwest::header::ACCEPT, "application/json").form(&form);
    let response = crate::telemetry::timed_outcome(
        "ssobridge_upstream_duration_seconds",
        &[("operation", operation)],
        request.send(),
        crate::telemetry::http_outcome,
    )
    .await
    .map_err(transport)?;
    let status = response.status();
    let body = crate::http::read_capped(response).await?;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(ScalekitError::Unreachable(format!("token endpoint answered {status}")));
    }
    if !status.is_success() {
        // RFC 6749 §5.2's `error` only: the body is not logged whole.
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(|e| e.chars().take(64).collect()));
        return Err(ScalekitError::TokenRefused { status: status.as_u16(), error });
    }
    let token: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| ScalekitError::Malformed(format!("token response: {e}")))?;
    if token.access_token.is_empty() {
        return Err(ScalekitError::Malformed("token response has an empty access_token".to_owned()));
    }
    Ok(IssuedToken { access_token: Secret::new(token.access_token), expires_in: token.expires_in })
}

struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

/// The management API client. Cheap to share; the token is cached inside.
pub struct ScalekitApi {
    base: Url,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    /// Held while a token is fetched, so that concurrent callers wait for one fetch.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl ScalekitApi {
    /// `base` is the environment URL (a path in it prefixes every endpoint).
    pub fn new(base: &str, client_id: &str, client_secret: &Secret, timeout: Duration) -> Result<Self, ScalekitError> {
        let base = Url::parse(base).map_err(|e| ScalekitError::Malformed(format!("api_url: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(ScalekitError::Malformed("api_url cannot be a base URL".to_owned()));
        }
        Ok(ScalekitApi {
            base,
            client_id: client_id.to_owned(),
            client_secret: client_secret.clone(),
            http: crate::http::client(timeout)?,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// `<base>/<segments…>`, each segment escaped.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A bearer token: the cached one unless it is due, or `stale` (which the API refused).
    async fn token(&self, stale: Option<&Secret>) -> Result<Secret, ScalekitError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            let refused = stale.is_some_and(|s| s.expose() == token.value.expose());
            if !refused && Instant::now() < token.refresh_at {
                return Ok(token.value.clone());
            }
        }
        *cached = None;
        let token = client_credentials(
            &self.http,
            self.url(&["oauth", "token"]),
            &self.client_id,
            &self.client_secret,
            "api_token",
        )
        .await?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let value = token.access_token;
        *cached = Some(CachedToken {
            value: value.clone(),
            // Short-lived tokens are used for half their life, long ones until a minute before.
            refresh_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2)),
        });
        Ok(value)
    }

    /// GETs `url` with a bearer token; a 401 fetches a new token and tries once more (the
    /// SDKs re-authenticate on `Unauthenticated` the same way).
    async fn get<T: DeserializeOwned>(&self, url: Url, what: &'static str) -> Result<T, ScalekitError> {
        let mut refused = None;
        for _ in 0..2 {
            let token = self.token(refused.as_ref()).await?;
            let request = self
                .http
                .get(url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json");
            let response = crate::telemetry::timed_outcome(
                "ssobridge_upstream_duration_seconds",
                &[("operation", what)],
                request.send(),
                crate::telemetry::http_outcome,
            )
            .await
            .map_err(transport)?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED {
                refused = Some(token);
                continue;
            }
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(ScalekitError::NotFound(what));
            }
            if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Err(ScalekitError::Unreachable(format!("{what} answered {status}")));
            }
            if !status.is_success() {
                return Err(ScalekitError::Refused { what, status: status.as_u16() });
            }
            let body = crate::http::read_capped_to(response, MAX_RESPONSE_BYTES).await?;
            return serde_json::from_slice(&body).map_err(|e| ScalekitError::Malformed(format!("{what}: {e}")));
        }
        Err(ScalekitError::Unauthorized(format!("{what} answered 401 to a fresh token")))
    }

    /// Every organization: `page_token` pages of [`PAGE_SIZE`] until `next_page_token` is "".
    #[instrument(skip_all)]
    pub async fn organizations(&self) -> Result<Vec<Organization>, ScalekitError> {
        let mut organizations = Vec::new();
        let mut page_token = String::new();
        let mut seen = HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut url = self.url(&["api", "v1", "organizations"]);
            url.query_pairs_mut().append_pair("page_size", &PAGE_SIZE.to_string());
            if !page_token.is_empty() {
                url.query_pairs_mut().append_pair("page_token", &page_token);
            }
            let page: OrganizationPage = self.get(url, "api_organizations").await?;
            organizations.extend(page.organizations);
            if page.next_page_token.is_empty() {
                return Ok(organizations);
            }
            if !seen.insert(page.next_page_token.clone()) {
                return Err(ScalekitError::Malformed("organizations: a page token came back twice".to_owned()));
            }
            page_token = page.next_page_token;
        }
        Err(ScalekitError::Malformed(format!("organizations: more than {MAX_PAGES} pages")))
    }

    /// The SSO domains (`ORGANIZATION_DOMAIN`) of one organization, every status:
    /// `page_number` pages (0-based) until a short one, as the response has no total (§7.3).
    /// [`ScalekitError::NotFound`] when the organization does not exist (any more).
    #[instrument(skip_all, fields(organization_id))]
    pub async fn domains(&self, organization_id: &str) -> Result<Vec<Domain>, ScalekitError> {
        let mut domains = Vec::new();
        for page_number in 0..MAX_PAGES {
            let mut url = self.url(&["api", "v1", "organizations", organization_id, "domains"]);
            url.query_pairs_mut()
                .append_pair("domain_type", "ORGANIZATION_DOMAIN")
                .append_pair("page_size", &PAGE_SIZE.to_string())
                .append_pair("page_number", &page_number.to_string());
            let page: DomainPage = self.get(url, "api_domains").await?;
            // The page size the server used, if it says (it may hold requests to a smaller one).
            let size = page.page_size.filter(|s| *s > 0).unwrap_or(PAGE_SIZE) as usize;
            let count = page.domains.len();
            // The filter is in the query; an ALLOWED_EMAIL_DOMAIN never routes, whatever comes back.
            domains.extend(
                page.domains.into_iter().filter(|d| d.domain_type.is_empty() || d.domain_type == "ORGANIZATION_DOMAIN"),
            );
            if count < size {
                return Ok(domains);
            }
        }
        Err(ScalekitError::Malformed(format!("domains: more than {MAX_PAGES} pages")))
    }

    /// The active (completed and enabled) connections for an email domain (§7.4).
    #[instrument(skip_all)]
    pub async fn connections_for_domain(&self, domain: &str) -> Result<Vec<Connection>, ScalekitError> {
        let mut url = self.url(&["api", "v1", "connections"]);
        url.query_pairs_mut().append_pair("domain", domain);
        let list: ConnectionList = self.get(url, "api_connections").await?;
        Ok(list.connections)
    }
}
