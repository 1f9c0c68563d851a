//! `GET|POST /authorize`: read and validate the downstream request, then begin the login: the
//! browser goes upstream, to the home-realm page, or back to the client with an error.

use std::sync::Arc;

use poem::web::Data;
use poem::{handler, Body, Request, Response};

use super::error::failure_response;
use super::params::{Params, MAX_BODY_BYTES};
use super::protect::{client_ip, count_client, too_many};
use super::{home_realm, initiate_login};
use crate::login::{self, AuthorizationRequest, ErrorCode, LoginError, OidcError, Reauthentication};
use crate::routing::Selectors;
use crate::state::AppState;
use crate::tokens::is_pkce_value;

#[handler]
pub async fn authorize(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let validated = match read_params(req, body).await {
        Ok(params) => validate(&state, &params).await.inspect_err(|failure| {
            login::attempt::refused_at_authorize(&state, params.get("client_id").ok().flatten(), failure);
        }),
        Err(failure) => {
            login::attempt::refused_at_authorize(&state, None, &failure);
            Err(failure)
        }
    };
    let mut request = match validated {
        Ok(request) => request,
        Err(failure) => return failure_response(failure, &state.issuer),
    };
    request.client_ip = client_ip(req, state.config.rate_limits.trust_forwarded_for);
    // Per client and source: an outsider naming the client spends only their own share.
    if let Err(retry_after) = count_client(&state, &request.client_id, Some(&request.client_ip)) {
        login::attempt::Attempt::of_request(&request).failed_because(
            &state,
            login::attempt::Stage::Authorize,
            "rate_limited",
        );
        return too_many("/authorize", "client", retry_after);
    }
    login::initiation::recall(&state, initiate_login::remembered(req, &state), &mut request).await;
    match login::begin(&state, request).await {
        Ok(next) => home_realm::next_step(&state, next).await,
        Err(failure) => failure_response(failure, &state.issuer),
    }
}

/// The query string of a GET, or the form body of a POST (OIDC Core §3.1.2.1).
async fn read_params(req: &Request, body: Body) -> Result<Params, LoginError> {
    if req.method() == poem::http::Method::POST {
        let bytes = body
            .into_bytes_limit(MAX_BODY_BYTES)
            .await
            .map_err(|_| LoginError::refused("Invalid request", "The request body is too large or unreadable."))?;
        Ok(Params::parse(&bytes))
    } else {
        Ok(Params::parse(req.uri().query().unwrap_or("").as_bytes()))
    }
}

/// Checks the request against the client's registration and the protocol.
pub async fn validate(app: &AppState, params: &Params) -> Result<AuthorizationRequest, LoginError> {
    // Until client_id and redirect_uri are trusted, every error is the user's (RFC 6749 §4.1.2.1).
    let page = |message: String| LoginError::refused("Sign-in request not accepted", message);
    let client_id = params
        .get("client_id")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request names no client (client_id is missing).".to_owned()))?;
    let client = match app.client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(page(
                "The application is not registered with this sign-in service (unknown client_id).".to_owned(),
            )
            .because("unknown_client"))
        }
        Err(e) => return Err(LoginError::unavailable(e)),
    };
    let redirect_uri = params
        .get("redirect_uri")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request has no redirect_uri.".to_owned()))?;
    // Exact string match, no normalization (RFC 9700 §2.1).
    if !client.record.redirect_uris.iter().any(|registered| registered == redirect_uri) {
        return Err(page("The redirect_uri is not registered for this application.".to_owned())
            .because("redirect_uri_not_registered"));
    }
    let state = params.get("state").ok().flatten().map(str::to_owned);
    let fail = |code: ErrorCode, description: &str| LoginError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error: OidcError::new(code, description),
    };
    let get = |name: &str| params.get(name).map_err(|e| fail(ErrorCode::InvalidRequest, &e.to_string()));

    if params.get("state").is_err() {
        return Err(LoginError::Redirect {
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
    Ok(AuthorizationRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        nonce,
        code_challenge,
        scope,
        selectors,
        reauthentication,
        requested_at: crate::clock::now_secs(),
        requested_at_ms: crate::events::now_ms(),
        pending_ticket: None,
        client_ip: String::new(),
    })
}
