//! The one place where failures become what a client or user sees: an HTML page (before the
//! client and redirect URI are trusted), an error redirect (after), or token-endpoint JSON.

use poem::http::{header, StatusCode};
use poem::Response;

use crate::pages;
use crate::store::StoreError;
use crate::tokens::TokenError;
use crate::upstream::UpstreamError;

/// RFC 6749 §4.1.2.1 and OIDC Core §3.1.2.6 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    LoginRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    // Token endpoint (RFC 6749 §5.2).
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    // Bearer tokens (RFC 6750 §3.1).
    InvalidToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidToken => "invalid_token",
        }
    }
}

/// A protocol error with a description safe to show (never library or upstream text).
#[derive(Debug, Clone)]
pub struct OidcError {
    pub code: ErrorCode,
    pub description: String,
}

impl OidcError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OidcError { code, description: description.into() }
    }
}

/// Failures of the layers below, logged once here with their detail and turned into a
/// generic protocol error.
impl From<StoreError> for OidcError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "store failure");
        crate::telemetry::count("ssobridge_store_errors_total", &[]);
        OidcError::new(ErrorCode::TemporarilyUnavailable, "the service is temporarily unavailable; try again")
    }
}

impl From<TokenError> for OidcError {
    fn from(error: TokenError) -> Self {
        tracing::error!(error = %error, "token failure");
        OidcError::new(ErrorCode::ServerError, "the service could not issue tokens")
    }
}

impl From<UpstreamError> for OidcError {
    fn from(error: UpstreamError) -> Self {
        match &error {
            UpstreamError::Unreachable(_) => {
                tracing::warn!(error = %error, "upstream unreachable");
                OidcError::new(ErrorCode::TemporarilyUnavailable, "the identity provider is not reachable; try again")
            }
            UpstreamError::Malformed(_) => {
                tracing::error!(error = %error, "upstream misbehaved");
                OidcError::new(ErrorCode::ServerError, "the identity provider answered unexpectedly")
            }
            UpstreamError::TokenRefused { .. } => {
                tracing::warn!(error = %error, "upstream refused the code");
                OidcError::new(ErrorCode::AccessDenied, "the identity provider did not confirm the sign-in")
            }
            UpstreamError::InvalidIdToken(_) => {
                tracing::warn!(error = %error, "upstream ID token rejected");
                OidcError::new(ErrorCode::AccessDenied, "the identity provider's answer could not be verified")
            }
        }
    }
}

/// Where an authorization-endpoint error goes.
#[derive(Debug)]
pub enum AuthorizeFailure {
    /// Client or redirect URI not trusted: show a page, never redirect (RFC 6749 §4.1.2.1).
    Page { title: &'static str, message: String, status: StatusCode },
    /// Back to the client's registered redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: OidcError },
    /// Too many sign-ins are pending from where the request came (or in all): a 429 page.
    Busy { retry_after: u64 },
}

impl AuthorizeFailure {
    pub fn page(title: &'static str, message: impl Into<String>) -> Self {
        AuthorizeFailure::Page { title, message: message.into(), status: StatusCode::BAD_REQUEST }
    }

    /// The service itself cannot go on (its store is down): a 503 page, so that monitoring
    /// counts it as the outage it is.
    pub fn unavailable(message: impl Into<String>) -> Self {
        AuthorizeFailure::Page {
            title: "Sign-in is temporarily unavailable",
            message: message.into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn into_response(self, issuer: &str) -> Response {
        match self {
            AuthorizeFailure::Page { title, message, status } => pages::error_page(status, title, &message),
            AuthorizeFailure::Busy { retry_after } => {
                let mut page = pages::error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-ins in progress",
                    "Too many sign-ins were started from your network and not finished. Wait a few minutes and \
                     try again.",
                );
                if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                    page.headers_mut().insert(header::RETRY_AFTER, value);
                }
                page
            }
            AuthorizeFailure::Redirect { redirect_uri, state, error } => {
                let mut params =
                    vec![("error", error.code.as_str()), ("error_description", error.description.as_str())];
                if let Some(state) = state.as_deref() {
                    params.push(("state", state));
                }
                params.push(("iss", issuer));
                redirect(&with_query(&redirect_uri, &params))
            }
        }
    }
}

/// `base` with `params` appended to its query (keeping any query it has, RFC 6749 §3.1.2).
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(base) {
        Ok(url) => url,
        // Registered redirect URIs are validated at load; this cannot fail for them.
        Err(_) => return base.to_owned(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    url.into()
}

pub fn redirect(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .finish()
}

/// RFC 6749 §5.2 JSON error. `basic_challenge`: the client tried HTTP Basic, so a 401 names it.
pub fn token_error(error: &OidcError, basic_challenge: bool) -> Response {
    let status = match error.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = json_response(
        status,
        &serde_json::json!({"error": error.code.as_str(), "error_description": error.description}),
    );
    if status == StatusCode::UNAUTHORIZED && basic_challenge {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"ssobridge\""));
    }
    response
}

/// A JSON body that must not be cached (RFC 6749 §5.1).
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(body.to_string())
}

/// RFC 6750 §3: 401 with a Bearer challenge.
pub fn bearer_error(description: &str) -> Response {
    let challenge = format!("Bearer realm=\"ssobridge\", error=\"invalid_token\", error_description=\"{description}\"");
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "invalid_token", "error_description": description}),
    );
    if let Ok(value) = header::HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
