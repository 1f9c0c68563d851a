//! `GET|POST /authorize`: validate the downstream request, remember it as a flow, send the
//! browser upstream.

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::instrument;

use super::error::{redirect, AuthorizeFailure, ErrorCode, OidcError};
use super::params::{is_pkce_value, Params, MAX_BODY_BYTES};
use crate::app::{AppState, Client};
use crate::routing::Selectors;
use crate::store::{keys, put_json};
use crate::tokens::{pkce_s256, random_token};

/// Everything the callback needs to finish a login: stored under the upstream `state`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub scope: String,
    pub selectors: Selectors,
    pub upstream_nonce: String,
    pub upstream_pkce_verifier: String,
}

/// The validated downstream request.
struct AuthorizationRequest {
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    scope: String,
    selectors: Selectors,
}

#[handler]
pub async fn authorize(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let params = match read_params(req, body).await {
        Ok(params) => params,
        Err(failure) => return failure.into_response(&state.issuer),
    };
    match begin_login(&state, &params).await {
        Ok(location) => redirect(&location),
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

/// Validates `params`, stores the flow and returns the upstream authorization URL.
#[instrument(skip_all, fields(client_id))]
pub async fn begin_login(app: &AppState, params: &Params) -> Result<String, AuthorizeFailure> {
    let (client, request) = validate(app, params)?;
    tracing::Span::current().record("client_id", client.config.client_id.as_str());
    let redirect_error = |error: OidcError| AuthorizeFailure::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        error,
    };
    let secret = |bytes| random_token(bytes).map_err(|e| redirect_error(e.into()));
    let upstream_state = secret(32)?;
    let flow = Flow {
        client_id: client.config.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        scope: request.scope.clone(),
        selectors: request.selectors.clone(),
        upstream_nonce: secret(32)?,
        upstream_pkce_verifier: secret(32)?,
    };
    let location = app
        .upstream
        .authorize_url(
            &upstream_state,
            &flow.upstream_nonce,
            &pkce_s256(&flow.upstream_pkce_verifier),
            &flow.selectors.upstream_params(),
        )
        .await
        .map_err(|e| redirect_error(e.into()))?;
    let ttl = Duration::from_secs(app.config.tokens.flow_ttl_seconds);
    put_json(&app.store, &keys::flow(&upstream_state), &flow, ttl).await.map_err(|e| redirect_error(e.into()))?;
    tracing::info!("login started");
    Ok(location)
}

fn validate<'a>(app: &'a AppState, params: &Params) -> Result<(&'a Client, AuthorizationRequest), AuthorizeFailure> {
    // Until client_id and redirect_uri are trusted, every error is a page (RFC 6749 §4.1.2.1).
    let page = |message: String| AuthorizeFailure::page("Sign-in request not accepted", message);
    let client_id = params
        .get("client_id")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request names no client (client_id is missing).".to_owned()))?;
    let client = app.clients.get(client_id).ok_or_else(|| {
        page("The application is not registered with this sign-in service (unknown client_id).".to_owned())
    })?;
    let redirect_uri = params
        .get("redirect_uri")
        .map_err(|e| page(e.to_string()))?
        .ok_or_else(|| page("The request has no redirect_uri.".to_owned()))?;
    // Exact string match, no normalization (RFC 9700 §2.1).
    if !client.config.redirect_uris.iter().any(|registered| registered == redirect_uri) {
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
    let code_challenge = match (get("code_challenge")?, get("code_challenge_method")?) {
        (None, None) if client.config.require_pkce => {
            return Err(fail(ErrorCode::InvalidRequest, "PKCE is required: send code_challenge with method S256"))
        }
        (None, None) => None,
        (None, Some(_)) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge_method without code_challenge")),
        (Some(_), None | Some("plain")) => {
            return Err(fail(ErrorCode::InvalidRequest, "only code_challenge_method=S256 is supported"))
        }
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Some(challenge.to_owned()),
        (Some(_), Some("S256")) => return Err(fail(ErrorCode::InvalidRequest, "code_challenge is malformed")),
        (Some(_), Some(_)) => {
            return Err(fail(ErrorCode::InvalidRequest, "only code_challenge_method=S256 is supported"))
        }
    };
    if let Some(prompt) = get("prompt")? {
        let prompts: Vec<&str> = prompt.split(' ').collect();
        if prompts.contains(&"none") {
            if prompts.len() > 1 {
                return Err(fail(ErrorCode::InvalidRequest, "prompt=none cannot be combined with other values"));
            }
            // Every login needs the user at their identity provider: no silent sign-in.
            return Err(fail(ErrorCode::LoginRequired, "the user must sign in at their identity provider"));
        }
    }
    let nonce = get("nonce")?.map(str::to_owned);
    let selectors = Selectors::from_params(params).map_err(|e| fail(ErrorCode::InvalidRequest, &e.to_string()))?;
    Ok((
        client,
        AuthorizationRequest {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            nonce,
            code_challenge,
            scope: scope.to_owned(),
            selectors,
        },
    ))
}
