//! `GET|POST /authorize`: validate the downstream request, route it, remember it as a flow,
//! send the browser upstream (or ask for an email first).

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::error::{redirect, AuthorizeFailure, ErrorCode, OidcError};
use super::params::{is_pkce_value, Params, MAX_BODY_BYTES};
use crate::clients::Client;
use crate::routing::{self, Decision, RoutedBy, Selectors, Target};
use crate::state::AppState;
use crate::store::{keys, Store};
use crate::tokens::{pkce_s256, random_token};

/// The most a pending flow (or a request waiting at the home-realm page) may keep in the store,
/// whatever the request carried: an outsider's requests cost the broker at most this each.
pub const MAX_FLOW_BYTES: usize = 2048;

/// A validated downstream authorization request. Kept in the store while the user is away, so
/// its fields have short names (and skip what is empty): every byte counts per pending flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    #[serde(rename = "c", alias = "client_id")]
    pub client_id: String,
    #[serde(rename = "r", alias = "redirect_uri")]
    pub redirect_uri: String,
    #[serde(rename = "s", alias = "state", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(rename = "n", alias = "nonce", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(rename = "cc", alias = "code_challenge", default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// The scopes granted: those of the request this provider defines (`openid profile email`).
    #[serde(rename = "sc", alias = "scope")]
    pub scope: String,
    #[serde(rename = "sel", alias = "selectors", default, skip_serializing_if = "Selectors::is_empty")]
    pub selectors: Selectors,
    /// What the client asked about re-authentication (OIDC Core §3.1.2.1), passed upstream.
    #[serde(rename = "ra", alias = "reauthentication", default, skip_serializing_if = "Reauthentication::is_empty")]
    pub reauthentication: Reauthentication,
    /// When the client sent the request (seconds): `prompt=login` asks for a sign-in after it.
    #[serde(rename = "t", alias = "requested_at", default)]
    pub requested_at: u64,
    /// Its place in the pending-flow count ([`crate::limiter::PendingFlows`]) while stored.
    #[serde(rename = "pf", default, skip_serializing_if = "Option::is_none")]
    pub pending_ticket: Option<String>,
    /// Where the request came from, as the limits count it; set by the handler, never stored.
    #[serde(skip)]
    pub client_ip: String,
}

/// The stored form of `value`, refused beyond [`MAX_FLOW_BYTES`].
pub fn bounded_json<T: Serialize>(value: &T) -> Result<Vec<u8>, OidcError> {
    let bytes = serde_json::to_vec(value).map_err(|e| OidcError::new(ErrorCode::ServerError, e.to_string()))?;
    if bytes.len() > MAX_FLOW_BYTES {
        return Err(OidcError::new(
            ErrorCode::InvalidRequest,
            "the request is too large: state, nonce, login_hint and acr_values together are limited",
        ));
    }
    Ok(bytes)
}

/// `prompt` (other than `none`), `max_age` and `acr_values`: forwarded to the upstream, and
/// `prompt=login` / `max_age` held against the upstream's `auth_time` at the callback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reauthentication {
    #[serde(rename = "p", alias = "prompt", default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(rename = "m", alias = "max_age", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    #[serde(rename = "a", alias = "acr_values", default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
}

impl Reauthentication {
    pub fn is_empty(&self) -> bool {
        *self == Reauthentication::default()
    }

    /// Whether the user must have signed in again for this request.
    pub fn login_required(&self) -> bool {
        self.prompt.as_deref().is_some_and(|p| p.split(' ').any(|v| v == "login")) || self.max_age == Some(0)
    }

    /// The parameters to pass upstream.
    pub fn upstream_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(prompt) = &self.prompt {
            params.push(("prompt", prompt.clone()));
        }
        if let Some(max_age) = self.max_age {
            params.push(("max_age", max_age.to_string()));
        }
        if let Some(acr_values) = &self.acr_values {
            params.push(("acr_values", acr_values.clone()));
        }
        params
    }
}

impl AuthorizationRequest {
    /// An error for this request, to be sent back to the client.
    pub fn fail(&self, error: OidcError) -> AuthorizeFailure {
        crate::telemetry::count(
            "ssobridge_logins_failed_total",
            &[("client", &self.client_id), ("reason", error.code.as_str())],
        );
        AuthorizeFailure::Redirect { redirect_uri: self.redirect_uri.clone(), state: self.state.clone(), error }
    }
}

/// Everything the callback needs to finish a login: stored under the upstream `state`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    pub request: AuthorizationRequest,
    #[serde(rename = "un", alias = "upstream_nonce")]
    pub upstream_nonce: String,
    #[serde(rename = "uv", alias = "upstream_pkce_verifier")]
    pub upstream_pkce_verifier: String,
    #[serde(rename = "rb", alias = "routed_by")]
    pub routed_by: RoutedBy,
    /// Where the login must end; the callback holds the upstream's answer against it.
    #[serde(rename = "tg", alias = "target", default)]
    pub target: Target,
    /// The user typed their email at the home-realm page: an unknown domain goes back there.
    #[serde(rename = "h", alias = "via_hosted_page", default)]
    pub via_hosted_page: bool,
}

/// What `/authorize` answers.
pub enum Next {
    /// To the upstream's authorization endpoint.
    Upstream(String),
    /// The home-realm page, for this pending request.
    AskEmail(AuthorizationRequest),
    /// The domain has no single sign-on and the client's fallback is `deny`.
    Denied { request: AuthorizationRequest, domain: String },
    /// The request names an organization or connection the client may not reach.
    OutOfReach(AuthorizationRequest),
}

impl Next {
    /// The `/authorize` answer: a redirect, the email page, or `access_denied` to the client.
    pub async fn into_response(self, app: &AppState) -> Response {
        match self {
            Next::Upstream(location) => redirect(&location),
            Next::AskEmail(request) => routing::page::ask_email(app, request, None, None).await,
            Next::Denied { request, domain } => request
                .fail(OidcError::new(
                    ErrorCode::AccessDenied,
                    format!("single sign-on is not set up for the domain {domain}"),
                ))
                .into_response(&app.issuer),
            Next::OutOfReach(request) => request
                .fail(OidcError::new(
                    ErrorCode::AccessDenied,
                    "the application does not accept sign-in through that organization",
                ))
                .into_response(&app.issuer),
        }
    }
}

#[handler]
pub async fn authorize(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let params = match read_params(req, body).await {
        Ok(params) => params,
        Err(failure) => return failure.into_response(&state.issuer),
    };
    let outcome = match validate(&state, &params).await {
        Ok((_, mut request)) => {
            request.client_ip = crate::protect::client_ip(req, state.config.rate_limits.trust_forwarded_for);
            // Per client and source: an outsider naming the client spends only their own share.
            if let Err(retry_after) = crate::protect::count_client(&state, &request.client_id, Some(&request.client_ip))
            {
                return crate::protect::too_many("/authorize", "client", retry_after);
            }
            routing::idp_initiated::recall(&state, req, &mut request).await;
            route(&state, request, false).await
        }
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(next) => next.into_response(&state).await,
        Err(failure) => failure.into_response(&state.issuer),
    }
}

/// The query string of a GET, or the form body of a POST (OIDC Core §3.1.2.1).
async fn read_params(req: &Request, body: Body) -> Result<Params, AuthorizeFailure> {
    if req.method() == poem::http::Method::POST {
        let bytes = body
            .into_bytes_limit(MAX_BODY_BYTES)
            .await
            .map_err(|_| AuthorizeFailure::page("Invalid request", "The request body is too large or unreadable."))?;
        Ok(Params::parse(&bytes))
    } else {
        Ok(Params::parse(req.uri().query().unwrap_or("").as_bytes()))
    }
}

/// Routes a validated request: to the upstream (flow stored), to the email page, or refused.
#[instrument(skip_all, fields(client_id = %request.client_id))]
pub async fn route(
    app: &AppState,
    request: AuthorizationRequest,
    via_hosted_page: bool,
) -> Result<Next, AuthorizeFailure> {
    let client = match app.client(&request.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(
                request.fail(OidcError::new(ErrorCode::UnauthorizedClient, "the application is no longer registered"))
            )
        }
        Err(e) => return Err(request.fail(e.into())),
    };
    let decision = routing::decide(&app.routes(), app.domain_lookup(), &client.record, &request.selectors)
        .await
        .map_err(|e| request.fail(e.into()))?;
    match decision {
        Decision::AskEmail => Ok(Next::AskEmail(request)),
        Decision::Deny { domain } => {
            tracing::info!(%domain, "no single sign-on for the domain; client fallback is deny");
            Ok(Next::Denied { request, domain })
        }
        Decision::OutOfReach => {
            tracing::warn!(
                organization_id = request.selectors.organization_id.as_deref().unwrap_or(""),
                connection_id = request.selectors.connection_id.as_deref().unwrap_or(""),
                "the request names an organization or connection the client may not reach"
            );
            Ok(Next::OutOfReach(request))
        }
        Decision::Upstream { mut params, routed_by, target } => {
            params.extend(request.reauthentication.upstream_params());
            let selectors: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            begin_upstream(app, request, &selectors, routed_by, target, via_hosted_page).await.map(Next::Upstream)
        }
    }
}

/// Stores the flow and returns the upstream authorization URL.
async fn begin_upstream(
    app: &AppState,
    request: AuthorizationRequest,
    selectors: &[(&str, &str)],
    routed_by: RoutedBy,
    target: Target,
    via_hosted_page: bool,
) -> Result<String, AuthorizeFailure> {
    let secret = |bytes| random_token(bytes).map_err(|e| request.fail(e.into()));
    let upstream_state = secret(32)?;
    let upstream_nonce = secret(32)?;
    let upstream_pkce_verifier = secret(32)?;
    let location = app
        .upstream
        .authorize_url(&upstream_state, &upstream_nonce, &pkce_s256(&upstream_pkce_verifier), selectors)
        .await
        .map_err(|e| request.fail(e.into()))?;
    let mut request = request;
    // Routed: the selectors went upstream; only an email typed at the hosted page is kept, to
    // ask again with it if the upstream does not know its domain.
    request.selectors = Selectors {
        login_hint: request.selectors.login_hint.take().filter(|_| via_hosted_page),
        ..Selectors::default()
    };
    let ticket = app.pending_flows.admit(&request.client_ip).map_err(|retry_after| {
        tracing::warn!(source = %request.client_ip, "too many pending sign-ins; refused");
        AuthorizeFailure::Busy { retry_after }
    })?;
    request.pending_ticket = Some(ticket.clone());
    let flow = Flow { request, upstream_nonce, upstream_pkce_verifier, routed_by, target, via_hosted_page };
    let ttl = Duration::from_secs(app.config.tokens.flow_ttl_seconds);
    let stored = match bounded_json(&flow) {
        Ok(bytes) => app.store.put(&keys::flow(&upstream_state), &bytes, ttl).await.map_err(OidcError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = stored {
        app.pending_flows.release(&ticket);
        return Err(flow.request.fail(error));
    }
    crate::telemetry::count("ssobridge_logins_started_total", &[("client", &flow.request.client_id)]);
    tracing::info!(routed_by = ?routed_by, "login started");
    Ok(location)
}

/// Checks the request against the client's registration and the protocol.
pub async fn validate(
    app: &AppState,
    params: &Params,
) -> Result<(Arc<Client>, AuthorizationRequest), AuthorizeFailure> {
    // Until client_id and redirect_uri are trusted, every error is a page (RFC 6749 §4.1.2.1).
    let page = |message: String| AuthorizeFailure::page("Sign-in request not accepted", message);
    let client_id = params
        .get("client_id")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request names no client (client_id is missing).".to_owned()))?;
    let client = match app.client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(page(
                "The application is not registered with this sign-in service (unknown client_id).".to_owned(),
            ))
        }
        Err(e) => {
            let error: OidcError = e.into();
            return Err(AuthorizeFailure::unavailable(error.description));
        }
    };
    let redirect_uri = params
        .get("redirect_uri")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request has no redirect_uri.".to_owned()))?;
    // Exact string match, no normalization (RFC 9700 §2.1).
    if !client.record.redirect_uris.iter().any(|registered| registered == redirect_uri) {
        return Err(page("The redirect_uri is not registered for this application.".to_owned()));
    }
    let state = params.get("state").ok().flatten().map(str::to_owned);
    let fail = |code: ErrorCode, description: &str| AuthorizeFailure::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error: OidcError::new(code, description),
    };
    let get = |name: &str| params.get(name).map_err(|e| fail(ErrorCode::InvalidRequest, &e.to_string()));

    if params.get("state").is_err() {
        return Err(AuthorizeFailure::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            state: None,
            error: OidcError::new(ErrorCode::InvalidRequest, "parameter state is repeated or too long"),
        });
    }
    if params.has("request") {
        return Err(fail(ErrorCode::RequestNotSupported, "request objects are not supported"));
    }
    if params.has("request_uri") {
        return Err(fail(ErrorCode::RequestUriNotSupported, "request_uri is not supported"));
    }
    match get("response_type")? {
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type is missing")),
        Some("code") => {}
        Some(_) => return Err(fail(ErrorCode::UnsupportedResponseType, "only response_type=code is supported")),
    }
    if let Some(mode) = get("response_mode")? {
        if mode != "query" {
            return Err(fail(ErrorCode::InvalidRequest, "only response_mode=query is supported"));
        }
    }
    let scope = get("scope")?.unwrap_or("");
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(fail(ErrorCode::InvalidScope, "scope must include openid"));
    }
    // Granted: the scopes this provider defines, in a fixed order (others are ignored, RFC
    // 6749 §3.3), which is also all a flow needs to keep of them.
    let scope = ["openid", "profile", "email"]
        .into_iter()
        .filter(|known| scope.split(' ').any(|s| s == *known))
        .collect::<Vec<_>>()
        .join(" ");
    let code_challenge = match (get("code_challenge")?, get("code_challenge_method")?) {
        (None, None) if client.record.require_pkce => {
            return Err(fail(ErrorCode::InvalidRequest, "PKCE is required: send code_challenge with method S256"))
        }
        (None, None) => None,
        (None, Some(_)) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method without code_challenge")),
        // BASE64URL(SHA-256) is exactly 43 characters (RFC 7636 §4.2).
        (Some(challenge), Some("S256")) if challenge.len() == 43 && is_pkce_value(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), Some("S256")) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge is malformed")),
        // A missing method means plain (RFC 7636 §4.3), which is not supported.
        (Some(_), _) => return Err(fail(ErrorCode::InvalidRequest, "only code_challenge_method=S256 is supported")),
    };
    let mut reauthentication = Reauthentication::default();
    if let Some(prompt) = get("prompt")? {
        let prompts: Vec<&str> = prompt.split(' ').filter(|p| !p.is_empty()).collect();
        if prompts.contains(&"none") {
            if prompts.len() > 1 {
                return Err(fail(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values"));
            }
            // Every login needs the user at their identity provider: no silent sign-in.
            return Err(fail(ErrorCode::LoginRequired, "the user must sign in at their identity provider"));
        }
        // Values this provider does not define are ignored, not forwarded.
        let known: Vec<&str> =
            prompts.into_iter().filter(|p| matches!(*p, "login" | "consent" | "select_account")).collect();
        reauthentication.prompt = (!known.is_empty()).then(|| known.join(" "));
    }
    if let Some(max_age) = get("max_age")? {
        // At most ten years: a larger bound means nothing and would overflow clock arithmetic.
        match max_age.parse::<u64>() {
            Ok(seconds) if seconds <= 315_360_000 => reauthentication.max_age = Some(seconds),
            _ => return Err(fail(ErrorCode::InvalidRequest, "max_age must be a number of seconds")),
        }
    }
    // Voluntary (OIDC Core §3.1.2.1): forwarded; the ID token carries the upstream's `acr`.
    reauthentication.acr_values = get("acr_values")?.map(str::to_owned);
    let nonce = get("nonce")?.map(str::to_owned);
    let selectors = Selectors::from_params(params).map_err(|e| fail(ErrorCode::InvalidRequest, &e.to_string()))?;
    Ok((
        client,
        AuthorizationRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            nonce,
            code_challenge,
            scope,
            selectors,
            reauthentication,
            requested_at: crate::clock::now_secs(),
            pending_ticket: None,
            client_ip: String::new(),
        },
    ))
}
