//! What goes wrong in a login, in the protocol's words and in the user's: an [`OidcError`] (an
//! RFC 6749 / OIDC Core code and a description safe to show), and a [`LoginError`], which also
//! says who is told: the client at its redirect URI, or (before the client and its redirect URI
//! are trusted, or with no sign-in to return to) only the user. Failures of the layers below are
//! logged here, once, with their detail, and become generic protocol errors; upstream error
//! codes are mapped by one table. `oidc::error` turns these into responses, nothing else does.

use ssobridge_adapter_core::AdapterError;

use crate::routing::RoutedBy;
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
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OidcError {
    pub code: ErrorCode,
    pub description: String,
    /// Why, for the operator: the `reason` of the login event and of
    /// `ssobridge_logins_failed_total` (one of [`REASONS`], an upstream error code of
    /// [`UPSTREAM_ERRORS`], or the OAuth code itself when nothing says more).
    pub reason: &'static str,
}

impl OidcError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OidcError { code, description: description.into(), reason: code.as_str() }
    }

    /// The same error, for the operator's `reason`.
    pub fn because(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
}

/// The broker's own reasons a login fails, beside the OAuth error codes and the upstream's
/// error codes ([`UPSTREAM_ERRORS`]): one bounded vocabulary for the event log and the metrics,
/// whatever a request carries.
pub const REASONS: &[(&str, &str)] = &[
    ("unknown_client", "the request names no registered client"),
    ("redirect_uri_not_registered", "the redirect_uri is not one the client registered"),
    ("domain_not_routed", "the email's domain has no single sign-on and the client's fallback is deny"),
    ("organization_not_allowed", "the request names an organization or connection the client may not reach"),
    ("rate_limited", "too many requests or pending sign-ins from the source or for the client"),
    ("store_unavailable", "the store failed"),
    ("token_failure", "the broker could not mint or seal what it issues"),
    ("invalid_state", "the callback's state names no sign-in in progress (expired, used, or forged)"),
    ("issuer_mismatch", "the callback came from another issuer than the upstream (RFC 9207)"),
    ("issuer_missing", "the callback has no iss though the upstream sends it"),
    ("no_code", "the upstream answered with neither a code nor an error"),
    ("upstream_unreachable", "the upstream could not be reached or answered 5xx"),
    ("upstream_malformed", "the upstream answered something the broker cannot read"),
    ("upstream_credentials_refused", "the upstream refused the broker's own client credentials"),
    ("upstream_code_refused", "the upstream refused to redeem the code"),
    ("id_token_invalid", "the upstream's ID token did not verify (signature, audience, expiry)"),
    ("nonce_mismatch", "the upstream's ID token carries another nonce than the sign-in's"),
    ("auth_time_invalid", "the upstream's auth_time is in the future"),
    ("reauthentication_missing", "the upstream did not re-authenticate as max_age or prompt=login asked"),
    ("organization_mismatch", "the sign-in ended in another organization or connection than it was routed to"),
    ("routing_misconfigured", "a route or client default names an organization the upstream does not know"),
    ("upstream_error_other", "an upstream error code the broker does not know"),
    ("deprovisioned", "the user's directory deactivated or deleted them (Scalekit directory sync)"),
    ("adapter_refused", "the client's adapter refused the user"),
    ("adapter_unavailable", "the client's adapter could not reach the downstream"),
    ("adapter_misconfigured", "the downstream refused the adapter's credentials or settings"),
    ("idp_link_invalid", "an IdP-initiated login's token did not verify or expired"),
    ("idp_link_replayed", "an IdP-initiated login's token was used before"),
    ("idp_client_unknown", "no client could be chosen for an IdP-initiated login"),
    ("idp_initiated_disabled", "the client has no initiate_login_uri"),
    ("server_error", "the broker failed"),
];

/// The upstream's error code as a reason: itself when [`UPSTREAM_ERRORS`] has it, else
/// `upstream_error_other` (a code is another party's text: it must not grow the metrics).
pub fn upstream_reason(error: &str) -> &'static str {
    UPSTREAM_ERRORS.iter().find(|(code, ..)| *code == error).map_or("upstream_error_other", |(code, ..)| code)
}

/// Failures of the layers below, logged once here with their detail and turned into a
/// generic protocol error.
impl From<StoreError> for OidcError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = %error, "store failure");
        crate::telemetry::count("ssobridge_store_errors_total", &[]);
        OidcError::new(ErrorCode::TemporarilyUnavailable, "the service is temporarily unavailable; try again")
            .because("store_unavailable")
    }
}

impl From<TokenError> for OidcError {
    fn from(error: TokenError) -> Self {
        tracing::error!(error = %error, "token failure");
        OidcError::new(ErrorCode::ServerError, "the service could not issue tokens").because("token_failure")
    }
}

impl From<UpstreamError> for OidcError {
    fn from(error: UpstreamError) -> Self {
        match &error {
            UpstreamError::Unreachable(_) => {
                tracing::warn!(error = %error, "upstream unreachable");
                OidcError::new(ErrorCode::TemporarilyUnavailable, "the identity provider is not reachable; try again")
                    .because("upstream_unreachable")
            }
            UpstreamError::Malformed(_) => {
                tracing::error!(error = %error, "upstream misbehaved");
                OidcError::new(ErrorCode::ServerError, "the identity provider answered unexpectedly")
                    .because("upstream_malformed")
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
                    .because("upstream_credentials_refused")
            }
            UpstreamError::TokenRefused { error: refusal } if refusal == "unauthorized_client" => {
                tracing::error!(
                    error = %error,
                    "the upstream does not let the broker's client redeem codes: check the client registered at the \
                     upstream (upstream.client_id)"
                );
                OidcError::new(ErrorCode::ServerError, "the sign-in service is misconfigured at the identity provider")
                    .because("upstream_credentials_refused")
            }
            UpstreamError::TokenRefused { .. } => {
                tracing::warn!(error = %error, "upstream refused the code");
                OidcError::new(ErrorCode::AccessDenied, "the identity provider did not confirm the sign-in")
                    .because("upstream_code_refused")
            }
            UpstreamError::InvalidIdToken(detail) => {
                tracing::warn!(error = %error, "upstream ID token rejected");
                let reason = if detail.contains("nonce") { "nonce_mismatch" } else { "id_token_invalid" };
                OidcError::new(ErrorCode::AccessDenied, "the identity provider's answer could not be verified")
                    .because(reason)
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
    OidcError::new(mapped, text).because(upstream_reason(error))
}

/// An upstream error that arrived without a sign-in in progress to return it to (no `state`,
/// an unknown one, or at the initiate-login endpoint): logged, and shown as a page naming the
/// condition. Never a redirect: without a flow there is no trusted client to send it to.
pub fn unsolicited_upstream_error(error: &str, description: Option<&str>) -> LoginError {
    tracing::info!("an upstream error arrived without a sign-in in progress");
    let shown = upstream_error(error, description);
    LoginError::refused("Sign-in did not complete", format!("{}.", capitalized(&shown.description)))
        .because(shown.reason)
}

/// `text` with its first letter in upper case: an error description as a page's sentence.
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// An upstream error about a flow, as the client sees it ([`upstream_error`]). An organization
/// or connection the upstream does not know is the client's request at fault when the request
/// named it, and the operator's (a route, the client's default) when routing chose it.
pub fn routed_upstream_error(error: &str, description: Option<&str>, routed_by: RoutedBy) -> OidcError {
    let mapped = upstream_error(error, description);
    let named_by_request = matches!(routed_by, RoutedBy::ConnectionId | RoutedBy::OrganizationId);
    if matches!(error, "invalid_organization_id" | "invalid_connection_id") && !named_by_request {
        tracing::error!(
            upstream_error = error,
            routed_by = ?routed_by,
            "a route or the client's default names an organization or connection the upstream does not know: check \
             [[routes]] and the client's default_organization_id / default_connection_id"
        );
        return OidcError::new(ErrorCode::ServerError, "the sign-in service's routing is misconfigured")
            .because("routing_misconfigured");
    }
    mapped
}

/// What the client sees when its adapter could not link the user (logged here with its detail).
pub fn adapter_error(adapter: &str, error: AdapterError) -> OidcError {
    match error {
        AdapterError::Transient { .. } => {
            tracing::warn!(adapter, error = %error, "adapter unavailable");
            OidcError::new(
                ErrorCode::TemporarilyUnavailable,
                "the application's user directory is temporarily unavailable",
            )
            .because("adapter_unavailable")
        }
        AdapterError::Refused { reason } => {
            tracing::info!(adapter, "adapter refused the user");
            OidcError::new(ErrorCode::AccessDenied, reason).because("adapter_refused")
        }
        AdapterError::Misconfigured { .. } => {
            tracing::error!(adapter, error = %error, "adapter misconfigured");
            OidcError::new(ErrorCode::ServerError, "the application's user directory is misconfigured")
                .because("adapter_misconfigured")
        }
    }
}

/// A login that cannot go on, and who is told.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Told the user only: the client or its redirect URI is not trusted (RFC 6749 §4.1.2.1),
    /// or there is no sign-in in progress to return to.
    #[error("{title}: {message}")]
    Refused { title: &'static str, message: String, reason: &'static str },
    /// The service itself cannot go on (its store or the upstream is unreachable): told the
    /// user as the outage it is, so that monitoring counts it.
    #[error("sign-in is unavailable: {message}")]
    Unavailable { message: String, reason: &'static str },
    /// The broker failed before it knew whom to tell more.
    #[error("sign-in failed")]
    Failed,
    /// Too many sign-ins are pending from where the request came (or in all).
    #[error("too many sign-ins pending; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    /// Back to the client's registered redirect URI, with the request's `state`.
    #[error("{error}")]
    Redirect { redirect_uri: String, state: Option<String>, error: OidcError },
}

impl LoginError {
    pub fn refused(title: &'static str, message: impl Into<String>) -> Self {
        LoginError::Refused { title, message: message.into(), reason: "invalid_request" }
    }

    /// The same failure, for the operator's `reason` ([`OidcError::reason`]).
    pub fn because(mut self, why: &'static str) -> Self {
        match &mut self {
            LoginError::Refused { reason, .. } => *reason = why,
            LoginError::Redirect { error, .. } => error.reason = why,
            _ => {}
        }
        self
    }

    /// Why, for the operator: the login event's and the metrics' `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::Refused { reason, .. } => reason,
            LoginError::Unavailable { reason, .. } => reason,
            LoginError::Failed => "server_error",
            LoginError::Busy { .. } => "rate_limited",
            LoginError::Redirect { error, .. } => error.reason,
        }
    }

    /// The store failed where no client can be told yet: logged ([`OidcError`]'s conversion),
    /// and the user told the service is unavailable.
    pub fn unavailable(error: StoreError) -> Self {
        let error: OidcError = error.into();
        LoginError::Unavailable { message: error.description, reason: error.reason }
    }
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

    /// The reasons are one bounded vocabulary: the broker's own, the OAuth codes and the
    /// upstream's known codes; an unknown upstream code is one reason, whatever its text.
    #[test]
    fn reasons_are_a_bounded_vocabulary() {
        let mut own: Vec<&str> = REASONS.iter().map(|(r, _)| *r).collect();
        own.sort_unstable();
        own.dedup();
        assert_eq!(own.len(), REASONS.len(), "no reason twice");
        assert_eq!(upstream_reason("user_not_active"), "user_not_active");
        assert_eq!(upstream_reason("anything\nat all"), "upstream_error_other");
        assert_eq!(upstream_error("evil_code_1234", None).reason, "upstream_error_other");
        assert_eq!(OidcError::new(ErrorCode::InvalidScope, "x").reason, "invalid_scope");
        let nonce: OidcError = UpstreamError::InvalidIdToken("nonce does not match".into()).into();
        assert_eq!(nonce.reason, "nonce_mismatch");
        // An operator reads them in the README's list.
        let readme = include_str!("../../README.md");
        for (reason, _) in REASONS {
            assert!(readme.contains(&format!("`{reason}`")), "README, Login events: {reason} is not listed");
        }
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
        let LoginError::Refused { message, .. } = unsolicited_upstream_error("authentication_not_completed", Some("x"))
        else {
            panic!("a page, never a redirect")
        };
        assert_eq!(message, "The sign-in at the identity provider was not completed.");
    }
}
