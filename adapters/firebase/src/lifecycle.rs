//! What the broker does to an account after the login that made it: disable it (and end its
//! sessions), enable it, delete it, and keep its roles and groups as custom claims.
//!
//! | operation | Identity Toolkit call | what a user of the project sees |
//! |---|---|---|
//! | disable | `accounts:update {localId, disableUser: true, validSince: now}` | sign-in and token refresh fail with `USER_DISABLED`; ID tokens issued before fail `verifyIdToken(…, checkRevoked)` |
//! | enable | `accounts:update {localId, disableUser: false}` | sign-in works again; sessions ended by the disable stay ended |
//! | delete | `accounts:delete {localId}` | the account is gone |
//! | set_roles | `accounts:lookup`, then `accounts:update {localId, customAttributes}` | the claims `roles` and `groups` in every ID token minted afterwards |
//!
//! An account that does not exist (`USER_NOT_FOUND`) is [`UserChange::NotFound`].
//!
//! Custom claims are one JSON object per account, shared with the application and with
//! `org_id`/`connection_id` that each login writes: the adapter reads it, changes only `roles`
//! (among the managed names) and `groups`, and writes it back whole; every other key stays.
//! Firebase has no conditional write, so a login or another writer racing the same account in
//! the same instant can lose its change (the broker serializes its own changes per user).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use ssobridge_adapter_core::{AdapterError, Entitlements, UserChange};

use crate::http::Deadline;
use crate::token::MAX_CLAIMS_BYTES;
use crate::toolkit::CallError;
use crate::FirebaseAdapter;

/// The custom claims the broker owns on an account.
pub const ROLES_CLAIM: &str = "roles";
pub const GROUPS_CLAIM: &str = "groups";

/// A missing account is an outcome, not an error; anything else is mapped as for a login.
fn outcome(result: Result<(), CallError>, what: &str) -> Result<UserChange, AdapterError> {
    match result {
        Ok(()) => Ok(UserChange::Applied),
        Err(CallError::Rejected(code)) if code == "USER_NOT_FOUND" => Ok(UserChange::NotFound),
        Err(e) => Err(e.into_adapter_error(what)),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl FirebaseAdapter {
    /// Bounds a whole operation, as `link` is bounded: every call already runs under the
    /// deadline, this covers anything between them.
    pub(crate) async fn bounded(
        &self,
        operation: impl std::future::Future<Output = Result<UserChange, AdapterError>>,
    ) -> Result<UserChange, AdapterError> {
        match tokio::time::timeout(self.timeout + Duration::from_millis(500), operation).await {
            Ok(result) => result,
            Err(_) => Err(AdapterError::Transient {
                detail: "firebase: the calls took longer than timeout_seconds".to_owned(),
                retry_after: None,
            }),
        }
    }

    /// Disables the account and revokes its refresh tokens (`validSince` = now).
    pub(crate) async fn disable_user(&self, uid: &str) -> Result<UserChange, AdapterError> {
        let deadline = Deadline::after(self.timeout);
        outcome(self.toolkit.set_access(deadline, uid, true, Some(unix_now())).await, "disable")
    }

    /// Lets the account sign in again.
    pub(crate) async fn enable_user(&self, uid: &str) -> Result<UserChange, AdapterError> {
        let deadline = Deadline::after(self.timeout);
        outcome(self.toolkit.set_access(deadline, uid, false, None).await, "enable")
    }

    /// Deletes the account; one already gone is [`UserChange::NotFound`].
    pub(crate) async fn delete_user(&self, uid: &str) -> Result<UserChange, AdapterError> {
        let deadline = Deadline::after(self.timeout);
        outcome(self.toolkit.delete(deadline, uid).await, "delete")
    }

    /// Writes the roles (among `managed`) and the groups into the account's custom claims.
    pub(crate) async fn set_user_roles(
        &self,
        uid: &str,
        entitlements: &Entitlements,
        managed: &[String],
    ) -> Result<UserChange, AdapterError> {
        entitlements.check(managed)?;
        let deadline = Deadline::after(self.timeout);
        let found = self.toolkit.lookup(deadline, &[uid], &[]).await?;
        let Some(account) = found.iter().find(|a| a.local_id == uid) else {
            return Ok(UserChange::NotFound);
        };
        let Some(claims) = claims_with(account.custom_attributes.as_deref(), entitlements, managed)? else {
            return Ok(UserChange::Applied);
        };
        outcome(self.toolkit.set_custom_attributes(deadline, uid, &claims).await, "set roles")
    }
}

/// The account's custom claims with `roles` and `groups` as the broker wants them, serialized;
/// `None` when they already are.
pub(crate) fn claims_with(
    existing: Option<&str>,
    entitlements: &Entitlements,
    managed: &[String],
) -> Result<Option<String>, AdapterError> {
    let mut claims = match existing.map(str::trim).filter(|s| !s.is_empty()) {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            // Firebase itself only stores objects; anything else is not ours to overwrite.
            _ => {
                return Err(AdapterError::Misconfigured {
                    detail: "firebase: the account's custom claims are not a JSON object".to_owned(),
                })
            }
        },
    };
    let current: Vec<String> = match claims.get(ROLES_CLAIM) {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let before = claims.clone();
    claims.insert(ROLES_CLAIM.to_owned(), names(entitlements.merged_roles(&current, managed)));
    claims.insert(GROUPS_CLAIM.to_owned(), names(entitlements.wanted_groups()));
    if claims == before {
        return Ok(None);
    }
    let text = serde_json::to_string(&claims)
        .map_err(|e| AdapterError::Misconfigured { detail: format!("firebase: custom claims: {e}") })?;
    // Firebase counts the characters of the JSON text as JavaScript does (UTF-16 code units).
    let length = text.encode_utf16().count();
    if length > MAX_CLAIMS_BYTES {
        return Err(AdapterError::Misconfigured {
            detail: format!(
                "firebase: with these roles and groups the account's custom claims would be {length} characters; \
                 Firebase allows {MAX_CLAIMS_BYTES}: map fewer or shorter groups for this client"
            ),
        });
    }
    Ok(Some(text))
}

fn names(list: Vec<String>) -> Value {
    Value::Array(list.into_iter().map(Value::String).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn claims_keep_other_keys_and_unmanaged_roles() {
        let managed = strings(&["viewer", "editor"]);
        let wanted = Entitlements { groups: strings(&["eng"]), roles: strings(&["editor"]) };
        let existing = r#"{"org_id":"org_1","plan":"gold","roles":["owner","viewer"]}"#;
        let text = claims_with(Some(existing), &wanted, &managed).unwrap().unwrap();
        let claims: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(claims, json!({"org_id": "org_1", "plan": "gold", "roles": ["owner", "editor"], "groups": ["eng"]}));
        assert_eq!(claims_with(Some(&text), &wanted, &managed).unwrap(), None, "nothing to write twice");
        let fresh = claims_with(None, &wanted, &managed).unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&fresh).unwrap(), json!({"roles": ["editor"], "groups": ["eng"]}));
    }

    #[test]
    fn claims_past_the_limit_are_a_clear_error() {
        let managed = strings(&["viewer"]);
        let groups: Vec<String> = (0..60).map(|n| format!("group-number-{n:04}")).collect();
        let wanted = Entitlements { groups, roles: strings(&["viewer"]) };
        match claims_with(None, &wanted, &managed) {
            Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("1000"), "{detail}"),
            other => panic!("expected a clear refusal, got {other:?}"),
        }
        // Counted as Firebase counts (UTF-16 code units), not in bytes: é is one, 😀 is two.
        let accented = Entitlements { groups: vec!["é".repeat(600)], roles: Vec::new() };
        assert!(claims_with(None, &accented, &managed).unwrap().is_some(), "1200 bytes, 629 characters");
        let wide = Entitlements { groups: vec!["😀".repeat(490)], roles: Vec::new() };
        assert!(claims_with(None, &wide, &managed).is_err());
        assert!(claims_with(Some("[1]"), &Entitlements::default(), &managed).is_err());
    }
}
