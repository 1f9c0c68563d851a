//! IdP-initiated login. Scalekit sends the browser to the broker's initiate-login endpoint
//! (`/initiate-login/{client_id}`, or `/initiate-login?client_id=…`; its simulator also to
//! `/callback`) with an `idp_initiated_login` JWT. The login layer verifies and spends it and
//! remembers the connection; this face sends the browser to the downstream client's
//! `initiate_login_uri` (OIDC Core §4) with a cookie that binds the remembered connection to
//! this browser, for the client's own `/authorize` to route to.
//!
//! Scalekit refuses query strings in registered URLs but expands organization templates in
//! their path (research/scalekit.md §6.2, §6.3): `/initiate-login/{{ssobridge_client}}`, with
//! the client id in each organization's metadata under `ssobridge_client`, names the client.

use std::sync::Arc;

use poem::web::{Data, Path};
use poem::{handler, Request, Response};

use super::cookie::Cookie;
use super::error::{failure_response, redirect, with_query};
use super::params::Params;
use crate::login::{self, LoginError};
use crate::state::AppState;

pub const PATH: &str = "/initiate-login";
/// The organization metadata key the README's initiate-login URL template names:
/// `<public_url>/initiate-login/{{ssobridge_client}}`.
pub const CLIENT_METADATA_KEY: &str = "ssobridge_client";
const COOKIE: Cookie = Cookie { base: "ssobridge_idp" };

/// `GET /initiate-login?idp_initiated_login=JWT[&client_id=…]`
#[handler]
pub async fn initiate(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    hand_off(&state, &params, None).await
}

/// `GET /initiate-login/{client_id}?idp_initiated_login=JWT`: the form Scalekit can register.
#[handler]
pub async fn initiate_for_client(
    req: &Request,
    Path(client_id): Path<String>,
    state: Data<&Arc<AppState>>,
) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    hand_off(&state, &params, Some(&client_id)).await
}

/// An IdP-initiated login (or the error Scalekit sends in its place) handed to the client:
/// `path_client` is the client the path names, which a `client_id` parameter must agree with.
pub async fn hand_off(state: &AppState, params: &Params, path_client: Option<&str>) -> Response {
    let refuse =
        |message: &str| failure_response(LoginError::refused("Sign-in link not valid", message), &state.issuer);
    // Scalekit's handlers read `error` at this endpoint too (research/scalekit.md §4.1).
    if let Some(error) = params.get("error").ok().flatten() {
        let failure = login::initiation::upstream_refused(state, error, params.get("error_description").ok().flatten());
        return failure_response(failure, &state.issuer);
    }
    let Ok(Some(token)) = params.get("idp_initiated_login") else {
        return refuse("The link from your identity provider is incomplete.");
    };
    // Before the token is spent: a link that names two applications opens neither.
    let named = match (path_client, params.get("client_id").ok().flatten()) {
        (Some(path), Some(query)) if path != query => {
            tracing::warn!("IdP-initiated login names one client in its path and another in client_id; refused");
            return refuse("The link names two different applications.");
        }
        (Some(path), _) => Some(path),
        (None, query) => query,
    };
    let hand_off = match login::initiation::hand_off(state, token, named).await {
        Ok(hand_off) => hand_off,
        Err(failure) => return failure_response(failure, &state.issuer),
    };
    // OIDC Core §4: iss (required), login_hint and target_link_uri (optional).
    let mut query = vec![("iss", state.issuer.as_str())];
    if let Some(hint) = hand_off.login_hint.as_deref() {
        query.push(("login_hint", hint));
    }
    if let Some(target) = hand_off.target_link_uri.as_deref() {
        query.push(("target_link_uri", target));
    }
    let mut response = redirect(&with_query(&hand_off.initiate_login_uri, &query));
    COOKIE.set(&mut response, state.https(), &hand_off.id, hand_off.lifetime.as_secs());
    response
}

/// The remembered IdP-initiated login this browser carries to `/authorize`, if any.
pub fn remembered<'r>(req: &'r Request, app: &AppState) -> Option<&'r str> {
    COOKIE.get(req, app.https())
}
