//! What the broker does to an Auth0 user after the login that linked it: block it (and end its
//! sessions where the tenant allows), unblock it, delete it, and carry its roles and groups.
//!
//! | operation | Management API calls | what the tenant shows |
//! |---|---|---|
//! | disable | `PATCH /users/{id} {"blocked": true}`, then, best effort, `DELETE /users/{id}/sessions` and `DELETE /users/{id}/refresh-tokens` | `blocked: true`: Auth0 refuses the user's logins ("user is blocked"); sessions and refresh tokens deleted (asynchronously) where accepted |
//! | enable | `PATCH /users/{id} {"blocked": false}` | `blocked: false` (a brute-force block is separate: the User Blocks API) |
//! | delete | `DELETE /users/{id}` | no such user |
//! | set_roles | `PATCH /users/{id} {"app_metadata": {"roles", "groups"}}`; with `assign_roles`, also `GET /users/{id}/roles`, `GET /roles?name_filter=`, `POST`/`DELETE /users/{id}/roles` | `app_metadata.roles` / `app_metadata.groups` (what Actions and rules read), and the user's Auth0 roles |
//!
//! Blocking ends the Auth0 session layer only; access tokens Auth0 already issued stay valid
//! until they expire. The session and refresh-token endpoints are documented for Enterprise
//! plans (scopes `delete:sessions`, `delete:refresh_tokens`): when Auth0 refuses them the block
//! still stands and a warning says so; an outage of them is `Transient`, so that the broker
//! retries the whole (idempotent) disable.
//!
//! `app_metadata` is merged by Auth0 at its first level: the adapter writes only `roles` and
//! `groups`. In `roles` it changes only the names the broker manages and keeps the others.
//!
//! The id the broker holds may be that of the SSO user `oidc|CONNECTION|SUB` which a later
//! sign-in linked into an older account (its own id then no longer exists): the adapter acts
//! on the account that holds the identity. A first login's user does not exist until Auth0
//! redeems the broker's code, so an operation right after that first `link` is
//! [`UserChange::NotFound`]: retry it later, once the sign-in has completed.

use serde_json::{Map, Value};
use ssobridge_adapter_core::{AdapterError, Entitlements, UserChange};
use tokio::time::Instant;

use crate::api::{BestEffort, Revocable, SsoIdentity, User};
use crate::http::transient;
use crate::Auth0Adapter;

/// The `app_metadata` keys the broker owns.
pub const ROLES_KEY: &str = "roles";
pub const GROUPS_KEY: &str = "groups";

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn names(list: Vec<String>) -> Value {
    Value::Array(list.into_iter().map(Value::String).collect())
}

impl Auth0Adapter {
    /// Runs one operation under the adapter's budget (retries and waits included).
    async fn bounded<F, Fut>(&self, operation: F) -> Result<UserChange, AdapterError>
    where
        F: FnOnce(Instant) -> Fut,
        Fut: std::future::Future<Output = Result<UserChange, AdapterError>>,
    {
        let deadline = Instant::now() + self.budget;
        match tokio::time::timeout_at(deadline, operation(deadline)).await {
            Ok(result) => result,
            Err(_) => Err(transient(format!("Auth0 did not finish within {}s", self.budget.as_secs()), None)),
        }
    }

    /// The user `user_id` names now: itself, or the account its SSO identity was linked into.
    async fn current_user(&self, user_id: &str, deadline: Instant) -> Result<Option<User>, AdapterError> {
        if let Some(user) = self.api.get_user(user_id, deadline).await? {
            return Ok(Some(user));
        }
        let Some(subject) = user_id.strip_prefix(&format!("oidc|{}|", self.connection)) else {
            return Ok(None);
        };
        let me = SsoIdentity::new(&self.connection, subject);
        let found = self.api.search_identity(&me, deadline).await?;
        Ok(found.into_iter().find(|u| me.held_by(u)))
    }

    /// Blocks the user, then deletes its sessions and refresh tokens where Auth0 allows.
    pub(crate) async fn disable_user(&self, user_id: &str) -> Result<UserChange, AdapterError> {
        self.bounded(|deadline| async move {
            let Some(user) = self.current_user(user_id, deadline).await? else { return Ok(UserChange::NotFound) };
            if self.api.set_blocked(&user.user_id, true, deadline).await?.is_none() {
                return Ok(UserChange::NotFound);
            }
            for kind in [Revocable::Sessions, Revocable::RefreshTokens] {
                if let BestEffort::Refused { status, message } = self.api.revoke(&user.user_id, kind, deadline).await? {
                    tracing::warn!(
                        downstream_user_id = %user.user_id,
                        status = status.as_u16(),
                        %message,
                        "auth0: the user is blocked, but Auth0 did not delete its {kind:?} (the endpoint needs the \
                         scopes delete:sessions / delete:refresh_tokens and an Enterprise plan); they end at their \
                         own expiry"
                    );
                }
            }
            Ok(UserChange::Applied)
        })
        .await
    }

    /// Lifts the block.
    pub(crate) async fn enable_user(&self, user_id: &str) -> Result<UserChange, AdapterError> {
        self.bounded(|deadline| async move {
            let Some(user) = self.current_user(user_id, deadline).await? else { return Ok(UserChange::NotFound) };
            Ok(match self.api.set_blocked(&user.user_id, false, deadline).await? {
                Some(()) => UserChange::Applied,
                None => UserChange::NotFound,
            })
        })
        .await
    }

    /// Deletes the user (the account holding the SSO identity); one already gone is
    /// [`UserChange::NotFound`].
    pub(crate) async fn delete_user(&self, user_id: &str) -> Result<UserChange, AdapterError> {
        self.bounded(|deadline| async move {
            let Some(user) = self.current_user(user_id, deadline).await? else { return Ok(UserChange::NotFound) };
            Ok(match self.api.delete_user(&user.user_id, deadline).await? {
                Some(()) => UserChange::Applied,
                None => UserChange::NotFound,
            })
        })
        .await
    }

    /// Writes `app_metadata.roles` / `.groups`, and with `assign_roles` the user's Auth0 roles.
    pub(crate) async fn set_user_roles(
        &self,
        user_id: &str,
        entitlements: &Entitlements,
        managed: &[String],
    ) -> Result<UserChange, AdapterError> {
        entitlements.check(managed)?;
        self.bounded(|deadline| async move {
            let Some(user) = self.current_user(user_id, deadline).await? else { return Ok(UserChange::NotFound) };
            let metadata = user.app_metadata.clone().unwrap_or_default();
            let mut changes = Map::new();
            let roles = entitlements.merged_roles(&strings(metadata.get(ROLES_KEY)), managed);
            let groups = entitlements.wanted_groups();
            for (key, wanted) in [(ROLES_KEY, roles), (GROUPS_KEY, groups)] {
                if strings(metadata.get(key)) != wanted || !metadata.contains_key(key) {
                    changes.insert(key.to_owned(), names(wanted));
                }
            }
            // Every role id is looked up before anything is written: a missing role writes nothing.
            let role_changes = match self.assign_roles {
                true => match self.plan_roles(&user.user_id, entitlements, managed, deadline).await? {
                    Some(plan) => Some(plan),
                    None => return Ok(UserChange::NotFound),
                },
                false => None,
            };
            if !changes.is_empty() && self.api.update_app_metadata(&user.user_id, changes, deadline).await?.is_none() {
                // Linked into another account or deleted since it was read: the next try sees which.
                return Err(transient("the Auth0 user changed during the update; try again", None));
            }
            if let Some((add, remove)) = role_changes {
                for (assign, ids) in [(true, add), (false, remove)] {
                    if !ids.is_empty() && self.api.change_roles(&user.user_id, assign, &ids, deadline).await?.is_none()
                    {
                        return Err(transient("the Auth0 user changed during the update; try again", None));
                    }
                }
            }
            Ok(UserChange::Applied)
        })
        .await
    }

    /// The ids of the Auth0 roles to assign and to remove; `None` when the user is gone.
    async fn plan_roles(
        &self,
        user_id: &str,
        entitlements: &Entitlements,
        managed: &[String],
        deadline: Instant,
    ) -> Result<Option<(Vec<String>, Vec<String>)>, AdapterError> {
        let Some(held) = self.api.user_roles(user_id, deadline).await? else { return Ok(None) };
        let held_names: Vec<String> = held.iter().map(|r| r.name.clone()).collect();
        let plan = entitlements.plan(&held_names, managed);
        let mut add = Vec::new();
        for name in &plan.add {
            match self.api.role_named(name, deadline).await? {
                Some(role) => add.push(role.id),
                None => {
                    return Err(AdapterError::Misconfigured {
                        detail: format!(
                            "the Auth0 tenant has no role named {name:?}: create it (User Management > Roles), or \
                             set assign_roles = false to keep roles in app_metadata only"
                        ),
                    })
                }
            }
        }
        let remove = held.into_iter().filter(|r| plan.remove.contains(&r.name)).map(|r| r.id).collect();
        Ok(Some((add, remove)))
    }
}
