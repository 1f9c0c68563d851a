//! Broker sessions: each login opens one, named by a random `sid` that the ID token carries
//! (Back-Channel Logout 1.0 §2.1), and the access token's record names it too. A session lives
//! in the store while it is open (`session:<sid>`) and is *taken* when it ends: `/userinfo`
//! then refuses its access tokens, and the one step that took it owes the back-channel logout
//! (so two sign-outs racing notify a client once).
//!
//! Per user (by the SHA-256 of the upstream subject) a session index lists the sessions the
//! broker opened, so that a sign-out or a deprovisioning can reach every client the user
//! signed in to. The index is a ring of [`INDEX_SLOTS`] slots, written in turn through a
//! counter: appending is atomic on every backend (no read-modify-write to lose a concurrent
//! login), its length is bounded, and the oldest entry is replaced first. It is approximate
//! in one way: a user with more live sessions than slots has the oldest dropped from it; for
//! deprovisioning, [`keys::user_signed_out`] still refuses those sessions' access tokens.

use serde::{Deserialize, Serialize};

use super::records::{AccessGrant, Lifetimes, SessionRef};
use crate::state::AppState;
use crate::store::{get_json, keys, put_json, take_json, Store, StoreError};
use crate::tokens::{random_token, sha256_hex, TokenError};

/// How many sessions of one user the index keeps.
pub const INDEX_SLOTS: u64 = 16;

/// One open session: a login of one user at one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub sid: String,
    pub client_id: String,
    /// The `sub` the client knows the user by (pairwise or upstream).
    pub sub: String,
    /// SHA-256 of the upstream subject.
    pub user: String,
    /// When it began (Unix milliseconds: a login just after a deprovisioning is told apart).
    pub created_at: u64,
}

impl Session {
    pub fn reference(&self) -> SessionRef {
        SessionRef { sid: self.sid.clone(), user: self.user.clone(), session_at: self.created_at }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// The index key of a user: SHA-256 of their upstream subject (`conn_…;<IdP user id>`).
pub fn user_hash(upstream_subject: &str) -> String {
    sha256_hex(upstream_subject)
}

/// Opens a session for the user `upstream_subject`, known to `client_id` as `sub`.
pub async fn open(app: &AppState, client_id: &str, sub: &str, upstream_subject: &str) -> Result<Session, SessionError> {
    let lifetime = Lifetimes::of(&app.config).session;
    let session = Session {
        sid: random_token(16)?,
        client_id: client_id.to_owned(),
        sub: sub.to_owned(),
        user: user_hash(upstream_subject),
        created_at: crate::events::now_ms(),
    };
    // The session and its index slot are written side by side (their round trips overlap).
    let indexed = async {
        let n = app.store.incr(&keys::user_session_counter(&session.user), 1, lifetime).await?;
        let slot = n.unsigned_abs() % INDEX_SLOTS;
        put_json(&app.store, &keys::user_session(&session.user, slot), &session, lifetime).await
    };
    let session_key = keys::session(&session.sid);
    tokio::try_join!(put_json(&app.store, &session_key, &session, lifetime), indexed)?;
    Ok(session)
}

/// The sessions the index lists for a user, open or not (an ended one stays listed until its
/// slot is reused or expires; [`end`] tells them apart).
pub async fn listed(app: &AppState, user: &str) -> Result<Vec<Session>, StoreError> {
    let mut sessions: Vec<Session> = Vec::new();
    for slot in 0..INDEX_SLOTS {
        // A slot that does not decode (another version wrote it) is skipped, not fatal.
        let Ok(Some(session)) = get_json::<_, Session>(&app.store, &keys::user_session(user, slot)).await else {
            continue;
        };
        if !sessions.iter().any(|s| s.sid == session.sid) {
            sessions.push(session);
        }
    }
    sessions.sort_by_key(|s| s.created_at);
    Ok(sessions)
}

/// The open session `sid`, if it is.
pub async fn find(app: &AppState, sid: &str) -> Result<Option<Session>, StoreError> {
    get_json(&app.store, &keys::session(sid)).await
}

/// Ends the session `sid`: the session if this call ended it, None if it had ended already.
pub async fn end(app: &AppState, sid: &str) -> Result<Option<Session>, StoreError> {
    take_json(&app.store, &keys::session(sid)).await
}

/// Marks every session of `user` begun until now as ended, whether or not the index still
/// lists it (deprovisioning).
pub async fn end_all_before_now(app: &AppState, user: &str) -> Result<(), StoreError> {
    let lifetime = Lifetimes::of(&app.config).session;
    let now = crate::events::now_ms();
    app.store.put(&keys::user_signed_out(user), now.to_string().as_bytes(), lifetime).await
}

/// Whether the session of an access token is still open. Tokens from before sessions existed
/// have none, and are judged by their lifetime alone.
pub async fn is_open(app: &AppState, grant: &AccessGrant) -> Result<bool, StoreError> {
    let Some(session) = &grant.session else { return Ok(true) };
    let (session_key, signed_out_key) = (keys::session(&session.sid), keys::user_signed_out(&session.user));
    let (open, signed_out) = tokio::join!(app.store.get(&session_key), app.store.get(&signed_out_key));
    if open?.is_none() {
        return Ok(false);
    }
    let signed_out_at = signed_out?.and_then(|bytes| String::from_utf8(bytes).ok()?.parse::<u64>().ok());
    Ok(signed_out_at.is_none_or(|at| session.session_at > at))
}

impl From<SessionError> for super::error::OidcError {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(error) => error.into(),
            SessionError::Token(error) => error.into(),
        }
    }
}
