//! IdP-initiated login. Scalekit sends the browser to the broker's initiate-login endpoint
//! (`/initiate-login/{client_id}`, or `/initiate-login?client_id=…`; its simulator also to
//! `/callback`) with an `idp_initiated_login` JWT. The token is never accepted as a login: the
//! broker verifies it, remembers the connection (short-lived, single use, bound to this
//! browser), and sends the browser to the downstream client's `initiate_login_uri` (OIDC Core
//! §4), whose own `/authorize` then routes to that connection.
//!
//! Scalekit refuses query strings in registered URLs but expands organization templates in
//! their path (research/scalekit.md §6.2, §6.3): `/initiate-login/{{ssobridge_client}}`, with
//! the client id in each organization's metadata under `ssobridge_client`, names the client.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Request, Response};
use serde::{Deserialize, Serialize};

use super::cookie::Cookie;
use super::Selectors;
use crate::clients::{Client, ClientRecord};
use crate::oidc::authorize::AuthorizationRequest;
use crate::oidc::error::{redirect, unsolicited_upstream_error, with_query};
use crate::oidc::params::Params;
use crate::pages;
use crate::state::AppState;
use crate::store::{keys, put_json, take_json, Store};
use crate::tokens::{random_token, sha256_hex};

pub const PATH: &str = "/initiate-login";
/// The organization metadata key the README's initiate-login URL template names:
/// `<public_url>/initiate-login/{{ssobridge_client}}`.
pub const CLIENT_METADATA_KEY: &str = "ssobridge_client";
const COOKIE: Cookie = Cookie { base: "ssobridge_idp" };
/// How long the remembered connection waits for the client's `/authorize`.
const REMEMBER_FOR: Duration = Duration::from_secs(300);

/// The connection an IdP-initiated login asked for, waiting for the client's `/authorize`.
#[derive(Debug, Serialize, Deserialize)]
struct Remembered {
    client_id: String,
    organization_id: Option<String>,
    connection_id: Option<String>,
    /// The user the initiation named: the hand-off's `/authorize` names them too, or none.
    #[serde(default)]
    login_hint: Option<String>,
}

fn refuse(title: &str, message: &str) -> Response {
    pages::error_page(StatusCode::BAD_REQUEST, title, message)
}

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
    // Scalekit's handlers read `error` at this endpoint too (research/scalekit.md §4.1).
    if let Some(error) = params.get("error").ok().flatten() {
        return unsolicited_upstream_error(error, params.get("error_description").ok().flatten())
            .into_response(&state.issuer);
    }
    let Ok(Some(token)) = params.get("idp_initiated_login") else {
        return refuse("Sign-in link not valid", "The link from your identity provider is incomplete.");
    };
    // Before the token is spent: a link that names two applications opens neither.
    let named = match (path_client, params.get("client_id").ok().flatten()) {
        (Some(path), Some(query)) if path != query => {
            tracing::warn!("IdP-initiated login names one client in its path and another in client_id; refused");
            return refuse("Sign-in link not valid", "The link names two different applications.");
        }
        (Some(path), _) => Some(path),
        (None, query) => query,
    };
    let claims = match state.upstream.verify_login_initiation(token).await {
        Ok(claims) => claims,
        Err(error) if error.is_transient() => {
            tracing::warn!(error = %error, "IdP-initiated login: upstream unreachable");
            return pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable",
                "The identity provider could not be reached. Try again from your portal.",
            );
        }
        Err(error) => {
            tracing::warn!(error = %error, "IdP-initiated login token refused");
            return refuse(
                "Sign-in link not valid",
                "The link from your identity provider is invalid or has expired. Start again from your portal.",
            );
        }
    };
    // Single use: the token may start one login, however often it is replayed. Scalekit's has
    // no `jti`, so the token itself is the key: its signed part (header and payload), which no
    // one can change, rather than the whole text, whose signature a replay could re-encode (or
    // with ECDSA re-sign, `s` to `n - s`) into another string that verifies as well.
    let now = crate::clock::now_secs() as i64;
    let lifetime = Duration::from_secs((claims.exp - now).max(0) as u64 + state.config.upstream.clock_skew_seconds);
    let signed_part = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
    let marker = keys::initiation_used(&sha256_hex(signed_part));
    match state.store.put_new(&marker, b"1", lifetime).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("IdP-initiated login token replayed");
            return refuse(
                "Sign-in link already used",
                "This link from your identity provider was already used. Start again from your portal.",
            );
        }
        Err(error) => {
            tracing::error!(error = %error, "store failure");
            return pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable",
                "Try again in a moment.",
            );
        }
    }
    let client = match choose_client(state, named, claims.organization_id.as_deref()).await {
        Ok(client) => client,
        Err(message) => return refuse("Sign-in link not valid", &message),
    };
    let Some(initiate_login_uri) = client.record.initiate_login_uri.as_deref() else {
        let name = client.record.display_name();
        return refuse(
            "Sign-in from your portal is not enabled",
            &format!("IdP-initiated login is not enabled for {name}. Open {name} and sign in there."),
        );
    };
    let Ok(id) = random_token(24) else {
        return pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Try again.");
    };
    let remembered = Remembered {
        client_id: client.record.client_id.clone(),
        organization_id: claims.organization_id.clone(),
        connection_id: claims.connection_id.clone(),
        login_hint: claims.login_hint.clone(),
    };
    if let Err(error) = put_json(&state.store, &keys::remembered_connection(&id), &remembered, REMEMBER_FOR).await {
        tracing::error!(error = %error, "store failure");
        return pages::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is temporarily unavailable",
            "Try again in a moment.",
        );
    }
    // OIDC Core §4: iss (required), login_hint and target_link_uri (optional).
    let mut query = vec![("iss", state.issuer.as_str())];
    if let Some(hint) = claims.login_hint.as_deref() {
        query.push(("login_hint", hint));
    }
    // Only to where the client itself lives: a relay state is the IdP's to set, and the client
    // would send the user on to it after signing them in.
    if let Some(target) = claims.relay_state.as_deref().filter(|t| at_registered_origin(&client.record, t)) {
        query.push(("target_link_uri", target));
    }
    tracing::info!(client_id = %client.record.client_id, "IdP-initiated login handed to the client");
    let mut response = redirect(&with_query(initiate_login_uri, &query));
    COOKIE.set(&mut response, state.https(), &id, REMEMBER_FOR.as_secs());
    response
}

/// Whether `target` is an absolute URL (https, or http on loopback) at the origin of one of the
/// client's registered redirect URIs or its `initiate_login_uri`.
fn at_registered_origin(client: &ClientRecord, target: &str) -> bool {
    let Ok(target) = crate::model::url::check_redirect_uri(target) else { return false };
    client
        .redirect_uris
        .iter()
        .chain(client.initiate_login_uri.iter())
        .filter_map(|uri| url::Url::parse(uri).ok())
        .any(|registered| registered.origin() == target.origin())
}

/// The client an IdP-initiated login is for: named in the initiate URL, else the only client
/// the organization's routes allow, else the only client with an `initiate_login_uri`.
async fn choose_client(app: &AppState, named: Option<&str>, organization: Option<&str>) -> Result<Arc<Client>, String> {
    let unavailable = |_| "Sign-in is temporarily unavailable.".to_owned();
    let lookup = |client_id: String| async move {
        app.clients
            .get(&client_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| "The application in the link is not registered.".to_owned())
    };
    if let Some(client_id) = named {
        return lookup(client_id.to_owned()).await;
    }
    if let Some(organization) = organization {
        let routes = app.routes().list().await.map_err(unavailable)?;
        let mut allowed: Vec<&str> = routes
            .iter()
            .filter(|r| r.organization_id == organization)
            .flat_map(|r| r.clients.iter().map(String::as_str))
            .collect();
        allowed.sort_unstable();
        allowed.dedup();
        if let [only] = allowed.as_slice() {
            return lookup(only.to_string()).await;
        }
    }
    let all: Vec<ClientRecord> = app.clients.list().await.map_err(unavailable)?;
    let enabled: Vec<&ClientRecord> = all.iter().filter(|c| c.initiate_login_uri.is_some()).collect();
    match (enabled.as_slice(), all.as_slice()) {
        ([only], _) => lookup(only.client_id.clone()).await,
        ([], [only]) => lookup(only.client_id.clone()).await,
        ([], _) => Err("No application accepts sign-in from your portal.".to_owned()),
        _ => Err("The link does not say which application to open; ask your administrator to register \
                  /initiate-login/{client_id} at the identity provider."
            .to_owned()),
    }
}

/// At `/authorize`: if this browser carries a remembered IdP-initiated connection, route to it
/// only the hand-off it was made for: the same client, no selector of the request's own, and
/// the initiation's user (or none) as `login_hint`. Single use: any other request spends it.
pub async fn recall(app: &AppState, req: &Request, request: &mut AuthorizationRequest) {
    let Some(id) = COOKIE.get(req, app.https()) else { return };
    let remembered: Remembered = match take_json(&app.store, &keys::remembered_connection(id)).await {
        Ok(Some(remembered)) => remembered,
        _ => return,
    };
    let selectors = &request.selectors;
    let own_selector =
        selectors.connection_id.is_some() || selectors.organization_id.is_some() || selectors.domain_hint.is_some();
    let same_user = match (&selectors.login_hint, &remembered.login_hint) {
        (None, _) => true,
        (Some(hint), Some(initiated)) => hint.eq_ignore_ascii_case(initiated),
        (Some(_), None) => false,
    };
    if remembered.client_id != request.client_id || own_selector || !same_user {
        tracing::info!("a remembered IdP-initiated login does not match this request; not used");
        return;
    }
    tracing::info!("routing to the connection of an IdP-initiated login");
    request.selectors = Selectors {
        connection_id: remembered.connection_id,
        organization_id: remembered.organization_id,
        domain_hint: None,
        login_hint: request.selectors.login_hint.take(),
    };
}
