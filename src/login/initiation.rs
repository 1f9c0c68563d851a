//! IdP-initiated login, as steps of a login. The upstream's `idp_initiated_login` token is
//! never accepted as a login: [`hand_off`] verifies it, spends it (single use), remembers the
//! connection it names (short-lived, single use, bound to the browser by the face's cookie)
//! and says where to send the browser: the downstream client's `initiate_login_uri` (OIDC Core
//! §4). The client's own `/authorize` follows, and [`recall`] routes it to that connection, so
//! every such login is a fresh SP-initiated round trip.

use std::sync::Arc;
use std::time::Duration;

use super::attempt::{Attempt, Stage};
use super::error::{unsolicited_upstream_error, LoginError};
use super::records::{AuthorizationRequest, Initiation, Lifetimes};
use crate::clients::{Client, ClientRecord};
use crate::routing::{LoginHint, Selectors};
use crate::state::AppState;
use crate::store::{keys, put_json, take_json, Store};
use crate::tokens::{random_token, sha256_hex};

/// Where to send the browser with an IdP-initiated login, and what to remember it by.
pub struct HandOff {
    /// The client's `initiate_login_uri`.
    pub initiate_login_uri: String,
    /// The user the initiation named.
    pub login_hint: Option<String>,
    /// Where the client should send the user after signing them in (at its own origin only).
    pub target_link_uri: Option<String>,
    /// The remembered initiation's id, for the browser to carry to `/authorize`.
    pub id: String,
    pub lifetime: Duration,
}

/// Hands the IdP-initiated login of `token` to a client: the one `named` in its URL, else the
/// one its organization implies. Recorded as an `idp_initiated` event either way.
pub async fn hand_off(app: &AppState, token: &str, named: Option<&str>) -> Result<HandOff, LoginError> {
    let mut attempt = Attempt::start(crate::events::Kind::IdpInitiated);
    attempt.routed_by = Some("idp_initiated");
    let handed = hand_off_to_client(app, token, named, &mut attempt).await;
    match &handed {
        Ok(_) => attempt.succeeded(app),
        Err(failure) => attempt.failed(app, Stage::Upstream, failure),
    }
    handed
}

/// The upstream sent an error where an IdP-initiated login was expected: recorded, and shown
/// as a page ([`unsolicited_upstream_error`]).
pub fn upstream_refused(app: &AppState, error: &str, description: Option<&str>) -> LoginError {
    let failure = unsolicited_upstream_error(error, description);
    Attempt::start(crate::events::Kind::IdpInitiated).failed(app, Stage::Upstream, &failure);
    failure
}

async fn hand_off_to_client(
    app: &AppState,
    token: &str,
    named: Option<&str>,
    attempt: &mut Attempt,
) -> Result<HandOff, LoginError> {
    let link_not_valid = |message: &str| LoginError::refused("Sign-in link not valid", message);
    let claims = match attempt.at_upstream(app.upstream.verify_login_initiation(token)).await {
        Ok(claims) => claims,
        Err(error) if error.is_transient() => {
            tracing::warn!(error = %error, "IdP-initiated login: upstream unreachable");
            return Err(LoginError::Unavailable {
                message: "The identity provider could not be reached. Try again from your portal.".to_owned(),
                reason: "upstream_unreachable",
            });
        }
        Err(error) => {
            tracing::warn!(error = %error, "IdP-initiated login token refused");
            return Err(link_not_valid(
                "The link from your identity provider is invalid or has expired. Start again from your portal.",
            )
            .because("idp_link_invalid"));
        }
    };
    let store_failure = |error: crate::store::StoreError| {
        tracing::error!(error = %error, "store failure");
        LoginError::Unavailable { message: "Try again in a moment.".to_owned(), reason: "store_unavailable" }
    };
    // Single use: the token may start one login, however often it is replayed. Scalekit's has
    // no `jti`, so the token itself is the key: its signed part (header and payload), which no
    // one can change, rather than the whole text, whose signature a replay could re-encode (or
    // with ECDSA re-sign, `s` to `n - s`) into another string that verifies as well.
    let now = crate::clock::now_secs() as i64;
    let spent_for = Duration::from_secs((claims.exp - now).max(0) as u64 + app.config.upstream.clock_skew_seconds);
    let signed_part = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
    match app.store.put_new(&keys::initiation_used(&sha256_hex(signed_part)), b"1", spent_for).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("IdP-initiated login token replayed");
            return Err(LoginError::refused(
                "Sign-in link already used",
                "This link from your identity provider was already used. Start again from your portal.",
            )
            .because("idp_link_replayed"));
        }
        Err(error) => return Err(store_failure(error)),
    }
    (attempt.organization, attempt.connection) = (claims.organization_id.clone(), claims.connection_id.clone());
    attempt.email = claims.login_hint.clone();
    let client = choose_client(app, named, claims.organization_id.as_deref())
        .await
        .map_err(|m| link_not_valid(&m).because("idp_client_unknown"))?;
    attempt.client = Some(client.record.client_id.clone());
    let Some(initiate_login_uri) = client.record.initiate_login_uri.clone() else {
        let name = client.record.display_name();
        return Err(LoginError::refused(
            "Sign-in from your portal is not enabled",
            format!("IdP-initiated login is not enabled for {name}. Open {name} and sign in there."),
        )
        .because("idp_initiated_disabled"));
    };
    let id = random_token(24).map_err(|_| LoginError::Failed)?;
    let remembered = Initiation {
        client_id: client.record.client_id.clone(),
        organization_id: claims.organization_id.clone(),
        connection_id: claims.connection_id.clone(),
        login_hint: claims.login_hint.clone().map(LoginHint::from),
    };
    let lifetime = Lifetimes::of(&app.config).initiation;
    put_json(&app.store, &keys::remembered_connection(&id), &remembered, lifetime).await.map_err(store_failure)?;
    // Only to where the client itself lives: a relay state is the IdP's to set, and the client
    // would send the user on to it after signing them in.
    let target_link_uri = claims.relay_state.filter(|target| at_registered_origin(&client.record, target));
    tracing::info!(client_id = %client.record.client_id, "IdP-initiated login handed to the client");
    Ok(HandOff { initiate_login_uri, login_hint: claims.login_hint, target_link_uri, id, lifetime })
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

/// At `/authorize`: if the browser carries a remembered initiation (`id`), route to its
/// connection only the hand-off it was made for: the same client, no selector of the request's
/// own, and the initiation's user (or none) as `login_hint`. Single use: any other request
/// spends it.
pub async fn recall(app: &AppState, id: Option<&str>, request: &mut AuthorizationRequest) {
    let Some(id) = id else { return };
    let remembered: Initiation = match take_json(&app.store, &keys::remembered_connection(id)).await {
        Ok(Some(remembered)) => remembered,
        _ => return,
    };
    let selectors = &request.selectors;
    let own_selector =
        selectors.connection_id.is_some() || selectors.organization_id.is_some() || selectors.domain_hint.is_some();
    let same_user = match (&selectors.login_hint, &remembered.login_hint) {
        (None, _) => true,
        (Some(hint), Some(initiated)) => hint.same_user(initiated),
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
