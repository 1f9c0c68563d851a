//! The claims behind an access token (OIDC Core §5.3): the same user claims the ID token
//! carries, and its `sub`.

use serde_json::{Map, Value};

use super::error::{ErrorCode, OidcError};
use super::records::{access_token_key, AccessGrant};
use crate::state::AppState;
use crate::store::get_json;

/// The user claims of `access_token`; `invalid_token` for one that is not (or no longer) ours.
pub async fn userinfo(app: &AppState, access_token: &str) -> Result<Map<String, Value>, OidcError> {
    let unknown = || OidcError::new(ErrorCode::InvalidToken, "the access token is invalid, expired or revoked");
    let key = access_token_key(access_token).ok_or_else(unknown)?;
    let grant: AccessGrant = get_json(&app.store, &key).await?.ok_or_else(unknown)?;
    // Signed out, or deprovisioned: the session's tokens are revoked with it.
    if !super::sessions::is_open(app, &grant).await? {
        return Err(unknown());
    }
    let mut claims = grant.claims;
    claims.insert("sub".into(), Value::String(grant.sub));
    Ok(claims)
}
