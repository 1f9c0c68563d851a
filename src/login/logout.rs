//! Sign-out: a relying party sends the user to `/logout` (OpenID Connect RP-Initiated Logout
//! 1.0), or the user's directory deprovisions them. Either way the user's broker sessions end
//! ([`super::sessions`]: their access tokens stop working at `/userinfo`) and every client that
//! registered a `backchannel_logout_uri` and had one of those sessions is owed a logout token
//! (Back-Channel Logout 1.0), delivered from the job queue by `lifecycle::backchannel`.
//!
//! The open-redirect defence: the browser goes back only to a `post_logout_redirect_uri` the
//! identified client registered, compared exactly (RP-Initiated Logout §3); any error in the
//! request is a page, never a redirect (§4), and ends nothing.

use serde::Deserialize;
use serde_json::json;

use super::error::LoginError;
use super::sessions::{self, Session};
use crate::state::AppState;
use crate::store::StoreError;

/// The job kind of a back-channel logout ([`crate::jobs`]).
pub const BACKCHANNEL_LOGOUT: &str = "backchannel_logout";

/// A logout request as the face read it (RP-Initiated Logout §2); `ui_locales` and
/// `logout_hint` change nothing here, unknown parameters are ignored.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogoutRequest<'a> {
    pub id_token_hint: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// How a sign-out ends.
#[derive(Debug, PartialEq, Eq)]
pub enum SignedOut {
    /// Back to the client's registered `post_logout_redirect_uri`, with its `state`.
    Redirect { uri: String, state: Option<String> },
    /// Nowhere to return to: a page saying the user is signed out (of the application named).
    Page { application: Option<String> },
    /// On to the upstream's end-session endpoint first (`upstream.logout_at_upstream`), which
    /// sends the browser back to `/logout/done`, where the sign-out ends as above.
    Upstream { uri: String },
}

/// Where a sign-out continued at the upstream ends, kept while the browser is away.
#[derive(Debug, serde::Serialize, Deserialize)]
struct PendingLogout {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    application: Option<String>,
}

/// How long the upstream may take to send the browser back.
const PENDING_LOGOUT_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Where the upstream's end-session endpoint returns to (register it at Scalekit as a Post
/// logout URL).
pub const UPSTREAM_RETURN_PATH: &str = "/logout/done";

/// The claims of an `id_token_hint` the broker looks at.
#[derive(Debug, Deserialize)]
struct Hint {
    sub: String,
    aud: Audience,
    #[serde(default)]
    sid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client_id: &str) -> bool {
        match self {
            Audience::One(one) => one == client_id,
            Audience::Many(many) => many.iter().any(|a| a == client_id),
        }
    }
    /// The client, when the audience names exactly one.
    fn single(&self) -> Option<&str> {
        match self {
            Audience::One(one) => Some(one),
            Audience::Many(many) if many.len() == 1 => Some(&many[0]),
            Audience::Many(_) => None,
        }
    }
}

/// RP-Initiated Logout 1.0 §2-§3 at `/logout`.
pub async fn end_session(app: &AppState, request: LogoutRequest<'_>) -> Result<SignedOut, LoginError> {
    let refused = |message: &str| LoginError::refused("Sign-out request not accepted", message);
    let hint = match request.id_token_hint {
        None => None,
        Some(jwt) => match verify_hint(app, jwt).await {
            Some(hint) => Some(hint),
            None => {
                tracing::warn!("logout id_token_hint is not an ID token of this broker; nothing signed out");
                return Err(refused(
                    "The sign-out request carries an ID token this service did not issue, so nothing was signed \
                     out. Close your browser to end your session.",
                ));
            }
        },
    };
    // The client: the hint's audience, and client_id, which must agree with it (§2).
    let client_id = match (&hint, request.client_id) {
        (Some(hint), Some(client_id)) if !hint.aud.contains(client_id) => {
            return Err(refused("The application named (client_id) is not the one the ID token was issued to."))
        }
        (Some(_), Some(client_id)) => Some(client_id),
        (Some(hint), None) => hint.aud.single(),
        (None, client_id) => client_id,
    };
    let client = match client_id {
        None => None,
        Some(client_id) => match app.client(client_id).await {
            Ok(Some(client)) => Some(client),
            Ok(None) => {
                return Err(refused("The application is not registered with this sign-in service (unknown client_id)."))
            }
            Err(error) => return Err(LoginError::unavailable(error)),
        },
    };
    let signed_out = match (request.post_logout_redirect_uri, &client) {
        (None, _) => SignedOut::Page { application: client.as_ref().map(|c| c.record.display_name().to_owned()) },
        (Some(_), None) => {
            return Err(refused(
                "The sign-out request names a page to return to but no application (client_id or id_token_hint).",
            ))
        }
        // Exact string match, as for redirect_uri (§3: "MUST NOT perform post-logout redirection"
        // to anything else): this is what keeps /logout from being an open redirect.
        (Some(uri), Some(client)) if client.record.post_logout_redirect_uris.iter().any(|r| r == uri) => {
            SignedOut::Redirect { uri: uri.to_owned(), state: request.state.map(str::to_owned) }
        }
        (Some(_), Some(_)) => {
            tracing::warn!("logout post_logout_redirect_uri is not registered for the client; not redirected");
            return Err(refused("The post_logout_redirect_uri is not registered for this application."));
        }
    };
    let Some(hint) = &hint else { return Ok(signed_out) };
    let ended = end_hinted(app, hint).await.map_err(LoginError::unavailable)?;
    tracing::info!(sessions_ended = ended, "signed out");
    match (app.config.upstream.logout_at_upstream, &hint.sid) {
        (true, Some(sid)) => Ok(at_upstream(app, sid, signed_out).await.map_err(LoginError::unavailable)?),
        _ => Ok(signed_out),
    }
}

/// Continues the sign-out at the upstream's end-session endpoint when the session's upstream
/// ID token was kept and the upstream has one; else ends here.
async fn at_upstream(app: &AppState, sid: &str, signed_out: SignedOut) -> Result<SignedOut, StoreError> {
    use crate::store::Store;
    let Some(token) = app.store.take(&crate::store::keys::upstream_logout_hint(sid)).await? else {
        return Ok(signed_out);
    };
    let endpoint = match app.upstream.endpoints().await {
        Ok(endpoints) => endpoints.end_session_endpoint.clone(),
        Err(error) => {
            tracing::warn!(error = %error, "the upstream's discovery is unavailable; sign-out ends at the broker");
            None
        }
    };
    let (Some(endpoint), Ok(token)) = (endpoint, String::from_utf8(token)) else { return Ok(signed_out) };
    let pending = match signed_out {
        SignedOut::Redirect { uri, state } => PendingLogout { uri: Some(uri), state, application: None },
        SignedOut::Page { application } => PendingLogout { uri: None, state: None, application },
        upstream @ SignedOut::Upstream { .. } => return Ok(upstream),
    };
    let id = crate::tokens::random_token(16)
        .map_err(|e| StoreError::Corrupt { key: "logout".into(), detail: e.to_string() })?;
    crate::store::put_json(&app.store, &crate::store::keys::pending_logout(&id), &pending, PENDING_LOGOUT_TTL).await?;
    let back = format!("{}{UPSTREAM_RETURN_PATH}", app.issuer);
    let mut uri = url::Url::parse(&endpoint)
        .map_err(|e| StoreError::Corrupt { key: "end_session_endpoint".into(), detail: e.to_string() })?;
    uri.query_pairs_mut()
        .append_pair("id_token_hint", &token)
        .append_pair("post_logout_redirect_uri", &back)
        .append_pair("state", &id);
    Ok(SignedOut::Upstream { uri: uri.into() })
}

/// The upstream's end-session endpoint sent the browser back: the sign-out ends where it was
/// going (the client's registered URI with its state, or the signed-out page). An unknown or
/// missing `state` (expired, used, or an upstream that does not echo it) ends at the page.
pub async fn back_from_upstream(app: &AppState, state: Option<&str>) -> Result<SignedOut, LoginError> {
    let Some(id) = state else { return Ok(SignedOut::Page { application: None }) };
    let pending: Option<PendingLogout> = crate::store::take_json(&app.store, &crate::store::keys::pending_logout(id))
        .await
        .map_err(LoginError::unavailable)?;
    Ok(match pending {
        Some(PendingLogout { uri: Some(uri), state, .. }) => SignedOut::Redirect { uri, state },
        Some(PendingLogout { application, .. }) => SignedOut::Page { application },
        None => SignedOut::Page { application: None },
    })
}

/// Ends the sessions of the user the hint's session belongs to. A hint whose session is gone
/// (ended already, or expired) ends nothing: logout is idempotent (§4). A `sid` that belongs to
/// another client or subject than the hint says is suspect (§2) and ends nothing either.
async fn end_hinted(app: &AppState, hint: &Hint) -> Result<usize, StoreError> {
    let Some(sid) = &hint.sid else { return Ok(0) };
    let Some(session) = sessions::find(app, sid).await? else { return Ok(0) };
    if !hint.aud.contains(&session.client_id) || session.sub != hint.sub {
        tracing::warn!("logout id_token_hint sid names another session; nothing signed out");
        return Ok(0);
    }
    let user = session.user.clone();
    end_listed(app, &user, Some(session)).await
}

/// Every broker session of the user `upstream_subject` (Scalekit's `conn_…;<IdP user id>`)
/// ends: their access tokens stop working at `/userinfo`, whether or not the bounded session
/// index still lists them, and each client that registered a `backchannel_logout_uri` and had
/// a listed session is sent a logout token (queued). For deprovisioning. Returns how many
/// sessions ended (those listed and still open).
pub async fn end_user_sessions(app: &AppState, upstream_subject: &str) -> Result<usize, StoreError> {
    let user = sessions::user_hash(upstream_subject);
    sessions::end_all_before_now(app, &user).await?;
    let ended = end_listed(app, &user, None).await?;
    tracing::info!(sessions_ended = ended, "every session of a user ended");
    Ok(ended)
}

/// Ends every session the index lists for `user` (and `also`), and queues the back-channel
/// logouts owed for those this call ended.
async fn end_listed(app: &AppState, user: &str, also: Option<Session>) -> Result<usize, StoreError> {
    let mut listed = sessions::listed(app, user).await?;
    if let Some(also) = also {
        if !listed.iter().any(|s| s.sid == also.sid) {
            listed.push(also);
        }
    }
    let mut ended = 0;
    for session in listed {
        // Taken: of two sign-outs at once, one ends each session and notifies its client.
        let Some(session) = sessions::end(app, &session.sid).await? else { continue };
        ended += 1;
        notify(app, &session).await?;
    }
    Ok(ended)
}

/// Queues the back-channel logout of `session` for its client, if the client takes them.
async fn notify(app: &AppState, session: &Session) -> Result<(), StoreError> {
    let Some(client) = app.client(&session.client_id).await? else { return Ok(()) };
    if client.record.backchannel_logout_uri.is_none() {
        return Ok(());
    }
    let task = json!({"client_id": session.client_id, "sub": session.sub, "sid": session.sid});
    app.jobs.enqueue(BACKCHANNEL_LOGOUT, task).await?;
    Ok(())
}

/// The claims of `jwt` if it is an ID token this broker signed (§2: "the OP MUST validate that
/// it was the issuer"): a JWS by a key of its ring still published (retired ones included),
/// `iss` the broker; expired is accepted, as the spec allows. A logout token is not a hint.
async fn verify_hint(app: &AppState, jwt: &str) -> Option<Hint> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(jwt).ok()?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256) {
        return None;
    }
    if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
        return None;
    }
    let kid = header.kid?;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.keys.jwks().await).ok()?;
    let key = DecodingKey::from_jwk(jwks.find(&kid)?).ok()?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false; // checked against client_id above
    validation.set_issuer(&[&app.issuer]);
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    jsonwebtoken::decode::<Hint>(jwt, &key, &validation).ok().map(|data| data.claims)
}
