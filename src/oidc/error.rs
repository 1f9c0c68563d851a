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
            // RFC 6749 §5.2: the client itself was not accepted. That is the broker's own
            // registration at the upstream, never the user's doing.
            UpstreamError::TokenRefused { error: refusal } if refusal == "invalid_client" => {
                tracing::error!(
                    error = %error,
                    "the upstream refused the broker's client credentials: check upstream.client_secret (and \
                     upstream.client_id)"
                );
                OidcError::new(ErrorCode::ServerError, "the sign-in service is misconfigured at the identity provider")
            }
            UpstreamError::TokenRefused { error: refusal } if refusal == "unauthorized_client" => {
                tracing::error!(
                    error = %error,
                    "the upstream does not let the broker's client redeem codes: check the client registered at the \
                     upstream (upstream.client_id)"
                );
                OidcError::new(ErrorCode::ServerError, "the sign-in service is misconfigured at the identity provider")
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

/// What each upstream authorization error (`error` on the redirect to `/callback`, or at the
/// initiate-login endpoint) means: the OIDC code the client gets, a fixed text for the client
/// and the user, and, when the operator's own configuration is at fault, what to check (that
/// goes to the log as an error). Every code Scalekit documents is here
/// (docs:sso/reference/sso-integration-errors, research/scalekit.md §3.1), and the standard
/// ones (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6): the user's or their organization's condition
/// is `access_denied`, a protocol condition its own code, the operator's mistake `server_error`.
/// The upstream's `error_description` is another party's text: it goes to the log only.
pub const UPSTREAM_ERRORS: &[(&str, ErrorCode, &str, Option<&str>)] = {
    use ErrorCode::*;
    const SCALEKIT_APP: &str = "the application at Scalekit (dashboard: Developers > Applications): \
        its client id is upstream.client_id, and it must be active";
    &[
        // The user, or their organization's single sign-on.
        ("access_denied", AccessDenied, "the identity provider denied the sign-in", None),
        ("domain_not_found", AccessDenied, "single sign-on is not set up for this email domain", None),
        ("invalid_user_domain", AccessDenied, "the email domain is not allowed by the organization's single sign-on", None),
        ("no_active_connections", AccessDenied, "the organization's single sign-on is not active", None),
        ("connection_not_active", AccessDenied, "the organization's single sign-on connection is not active", None),
        ("no_configured_connections", AccessDenied, "the organization has no single sign-on set up", None),
        ("user_not_active", AccessDenied, "the user is not active at their identity provider", None),
        ("authentication_not_completed", AccessDenied, "the sign-in at the identity provider was not completed", None),
        // The organization's identity provider is set up wrongly (its admin's to fix).
        ("mandatory_attribute_missing", AccessDenied, "the organization's identity provider did not send a required user attribute", None),
        ("invalid_id_token", AccessDenied, "the organization's identity provider sent an invalid token", None),
        ("failed_to_exchange_token", AccessDenied, "the organization's identity provider refused to complete the sign-in (its connection's client secret may be wrong)", None),
        ("user_info_retrieve_failed", AccessDenied, "the user's profile could not be read from the organization's identity provider", None),
        ("invalid_saml_metadata", AccessDenied, "the organization's SAML configuration is incorrect", None),
        ("invalid_saml_response", AccessDenied, "the organization's identity provider sent an invalid SAML response", None),
        ("invalid_saml_request", AccessDenied, "the organization's identity provider refused the SAML request", None),
        ("invalid_saml_form_params", AccessDenied, "the organization's identity provider sent malformed SAML form parameters", None),
        ("signature_validation_failed", AccessDenied, "the signature of the organization's identity provider could not be verified", None),
        ("invalid_acs_url", AccessDenied, "the organization's identity provider has a wrong assertion consumer service URL", None),
        ("invalid_assertion_url", AccessDenied, "the organization's identity provider has a wrong assertion URL", None),
        ("invalid_status", AccessDenied, "the organization's identity provider reported that the sign-in failed", None),
        ("malformed_saml_response", AccessDenied, "the organization's identity provider sent a malformed SAML response", None),
        ("assertion_expired", AccessDenied, "the identity provider's SAML assertion had expired (a clock may be wrong)", None),
        ("response_expired", AccessDenied, "the identity provider's SAML response had expired (a clock may be wrong)", None),
        // Protocol.
        ("login_required", LoginRequired, "the user must sign in at their identity provider", None),
        ("user_login_required", LoginRequired, "the user must sign in at their identity provider", None),
        ("interaction_required", InteractionRequired, "the identity provider needs the user to interact", None),
        ("consent_required", InteractionRequired, "the identity provider needs the user to interact", None),
        ("account_selection_required", InteractionRequired, "the identity provider needs the user to interact", None),
        ("temporarily_unavailable", TemporarilyUnavailable, "the identity provider is temporarily unavailable", None),
        ("invalid_request", InvalidRequest, "the identity provider refused the request as invalid", None),
        ("invalid_connection_selector", InvalidRequest, "the request does not say which organization to sign in with", None),
        ("invalid_organization_id", InvalidRequest, "the identity provider does not know the organization the request names", None),
        ("invalid_connection_id", InvalidRequest, "the identity provider does not know the connection the request names", None),
        // The identity provider's own failure.
        ("server_error", ServerError, "the identity provider could not complete the sign-in", None),
        // The operator's configuration, at the upstream or in the broker.
        ("invalid_redirect_uri", ServerError, "the sign-in service is not registered correctly at the identity provider",
            Some("register <public_url>/callback as a redirect URL of the application at Scalekit")),
        ("invalid_client", ServerError, "the sign-in service is not registered correctly at the identity provider",
            Some(SCALEKIT_APP)),
        ("application_not_active", ServerError, "the sign-in service is not active at the identity provider",
            Some(SCALEKIT_APP)),
        ("unauthorized", ServerError, "the sign-in service is not authorized at the identity provider",
            Some("upstream.client_id and upstream.client_secret")),
        ("unauthorized_client", ServerError, "the sign-in service is not authorized at the identity provider",
            Some("the grant types of upstream.client_id at the upstream (authorization code)")),
        ("unsupported_response_type", ServerError, "the sign-in service is not authorized at the identity provider",
            Some("the response types of upstream.client_id at the upstream (code)")),
        ("invalid_scope", ServerError, "the identity provider refused the scopes the sign-in service asks for",
            Some("upstream.scopes")),
    ]
};

/// What an upstream authorization error means ([`UPSTREAM_ERRORS`]); a code not in the table
/// is the upstream's failure as far as the client can tell.
pub fn upstream_error_meaning(error: &str) -> (ErrorCode, &'static str, Option<&'static str>) {
    UPSTREAM_ERRORS
        .iter()
        .find(|(code, ..)| *code == error)
        .map(|(_, code, text, check)| (*code, *text, *check))
        .unwrap_or((ErrorCode::ServerError, "the identity provider could not complete the sign-in", None))
}

/// Logs an upstream authorization error (its code and description bounded, without control
/// characters: both are another party's text) and maps it to what the client sees.
pub fn upstream_error(error: &str, description: Option<&str>) -> OidcError {
    let described: String = description.unwrap_or("").chars().filter(|c| !c.is_control()).take(300).collect();
    let code: String = error.chars().filter(|c| !c.is_control()).take(64).collect();
    let (mapped, text, check) = upstream_error_meaning(error);
    match check {
        Some(check) => tracing::error!(
            upstream_error = %code,
            upstream_error_description = %described,
            "the upstream reports a misconfiguration of the sign-in service: check {check}"
        ),
        None => {
            tracing::info!(upstream_error = %code, upstream_error_description = %described, "upstream returned an error")
        }
    }
    OidcError::new(mapped, text)
}

/// An upstream error that arrived without a sign-in in progress to return it to (no `state`,
/// an unknown one, or at the initiate-login endpoint): logged, and shown as a page naming the
/// condition. Never a redirect: without a flow there is no trusted client to send it to.
pub fn unsolicited_upstream_error(error: &str, description: Option<&str>) -> AuthorizeFailure {
    tracing::info!("an upstream error arrived without a sign-in in progress");
    let shown = upstream_error(error, description);
    AuthorizeFailure::page("Sign-in did not complete", format!("{}.", capitalized(&shown.description)))
}

/// `text` with its first letter in upper case: an error description as a page's sentence.
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error code of Scalekit's error reference (docs:sso/reference/sso-integration-errors,
    /// research/scalekit.md §3.1) and the standard ones, with the OIDC code the client must get.
    const EXPECTED: &[(&str, ErrorCode)] = &[
        ("invalid_redirect_uri", ErrorCode::ServerError),
        ("invalid_connection_selector", ErrorCode::InvalidRequest),
        ("no_active_connections", ErrorCode::AccessDenied),
        ("connection_not_active", ErrorCode::AccessDenied),
        ("no_configured_connections", ErrorCode::AccessDenied),
        ("invalid_organization_id", ErrorCode::InvalidRequest),
        ("invalid_connection_id", ErrorCode::InvalidRequest),
        ("domain_not_found", ErrorCode::AccessDenied),
        ("invalid_user_domain", ErrorCode::AccessDenied),
        ("invalid_client", ErrorCode::ServerError),
        ("application_not_active", ErrorCode::ServerError),
        ("invalid_request", ErrorCode::InvalidRequest),
        ("unauthorized", ErrorCode::ServerError),
        ("user_not_active", ErrorCode::AccessDenied),
        ("server_error", ErrorCode::ServerError),
        ("mandatory_attribute_missing", ErrorCode::AccessDenied),
        ("invalid_id_token", ErrorCode::AccessDenied),
        ("failed_to_exchange_token", ErrorCode::AccessDenied),
        ("user_info_retrieve_failed", ErrorCode::AccessDenied),
        ("invalid_saml_metadata", ErrorCode::AccessDenied),
        ("invalid_saml_response", ErrorCode::AccessDenied),
        ("invalid_saml_request", ErrorCode::AccessDenied),
        ("invalid_saml_form_params", ErrorCode::AccessDenied),
        ("signature_validation_failed", ErrorCode::AccessDenied),
        ("invalid_acs_url", ErrorCode::AccessDenied),
        ("invalid_assertion_url", ErrorCode::AccessDenied),
        ("invalid_status", ErrorCode::AccessDenied),
        ("malformed_saml_response", ErrorCode::AccessDenied),
        ("assertion_expired", ErrorCode::AccessDenied),
        ("response_expired", ErrorCode::AccessDenied),
        ("authentication_not_completed", ErrorCode::AccessDenied),
        ("user_login_required", ErrorCode::LoginRequired),
        // The standard ones (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
        ("access_denied", ErrorCode::AccessDenied),
        ("login_required", ErrorCode::LoginRequired),
        ("interaction_required", ErrorCode::InteractionRequired),
        ("consent_required", ErrorCode::InteractionRequired),
        ("account_selection_required", ErrorCode::InteractionRequired),
        ("temporarily_unavailable", ErrorCode::TemporarilyUnavailable),
        ("unauthorized_client", ErrorCode::ServerError),
        ("unsupported_response_type", ErrorCode::ServerError),
        ("invalid_scope", ErrorCode::ServerError),
    ];

    #[test]
    fn every_documented_upstream_error_is_mapped_deliberately() {
        assert_eq!(UPSTREAM_ERRORS.len(), EXPECTED.len(), "one row per code, none missing, none extra");
        for (error, expected) in EXPECTED {
            let row = UPSTREAM_ERRORS.iter().find(|(code, ..)| code == error);
            let Some((_, code, text, check)) = row else { panic!("{error} is not in the table") };
            assert_eq!(code, expected, "{error}");
            assert!(!text.is_empty() && text.chars().all(|c| !c.is_control()), "{error}: a fixed, readable text");
            // Only the operator's own mistakes name something to check, and those are server_error.
            if check.is_some() {
                assert_eq!(*code, ErrorCode::ServerError, "{error}");
            }
        }
        let mut codes: Vec<&str> = UPSTREAM_ERRORS.iter().map(|(code, ..)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), UPSTREAM_ERRORS.len(), "no code twice");
    }

    #[test]
    fn the_client_sees_the_fixed_text_never_the_upstreams() {
        let shown = upstream_error("user_not_active", Some("Call +1 555 0100 to unlock your account"));
        assert_eq!(
            (shown.code, shown.description.as_str()),
            (ErrorCode::AccessDenied, "the user is not active at their identity provider")
        );
        let unknown = upstream_error("something_new\n", Some("<script>"));
        assert_eq!(
            (unknown.code, unknown.description.as_str()),
            (ErrorCode::ServerError, "the identity provider could not complete the sign-in")
        );
        let AuthorizeFailure::Page { message, .. } =
            unsolicited_upstream_error("authentication_not_completed", Some("x"))
        else {
            panic!("a page, never a redirect")
        };
        assert_eq!(message, "The sign-in at the identity provider was not completed.");
    }
}
