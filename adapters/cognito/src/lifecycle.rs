//! What the broker does to a pool user after the sign-in that linked it: disable it (and sign it
//! out everywhere), enable it, delete it, and keep its role groups.
//!
//! | operation | Admin API calls | what the pool shows |
//! |---|---|---|
//! | disable | `AdminUserGlobalSignOut`, then `AdminDisableUser` | `Enabled: false`; the user's refresh tokens are refused, access tokens revoked |
//! | enable | `AdminEnableUser` | `Enabled: true`; sessions ended by the disable stay ended |
//! | delete | `AdminDeleteUser` | no such user |
//! | set_roles | `AdminListGroupsForUser`, `AdminAddUserToGroup` / `AdminRemoveUserFromGroup` (and `CreateGroup` with `create_groups`) | membership in the managed role groups equals the roles given; `cognito:groups` in the next tokens |
//!
//! Order in `disable`: signing out first means a user who is already disabled (a retried job)
//! was signed out by the earlier run; `AdminDisableUser` revokes access tokens only, and a
//! later `AdminEnableUser` would otherwise bring old refresh tokens back to life. Neither ends
//! the managed-login cookie, and tokens verified locally stay valid until they expire
//! (Cognito's documentation of `AdminUserGlobalSignOut`).
//!
//! Roles become pool groups of the same name, on the pool user the sign-in was linked to (the
//! native user carries `cognito:groups` for linked federated sign-ins). Groups the broker does
//! not manage are never touched. Directory groups are not written to Cognito: they travel in
//! the broker's `groups` claim, which the pool's attribute mapping can store.
//!
//! A user the pool does not have (`UserNotFoundException`) is [`UserChange::NotFound`].

use ssobridge_adapter_core::{AdapterError, Entitlements, UserChange};
use tokio::time::Instant;

use crate::error::CognitoError;
use crate::CognitoAdapter;

/// A missing user is an outcome; every other error is mapped as for a sign-in.
fn outcome(result: Result<(), CognitoError>) -> Result<UserChange, AdapterError> {
    match result {
        Ok(()) => Ok(UserChange::Applied),
        Err(e) if e.is("UserNotFoundException") => Ok(UserChange::NotFound),
        Err(e) => Err(e.into()),
    }
}

impl CognitoAdapter {
    /// Runs one operation under the adapter's budget (retries and backoff included).
    async fn bounded<F, Fut>(&self, operation: F) -> Result<UserChange, AdapterError>
    where
        F: FnOnce(Instant) -> Fut,
        Fut: std::future::Future<Output = Result<UserChange, AdapterError>>,
    {
        let deadline = Instant::now() + self.budget;
        match tokio::time::timeout_at(deadline, operation(deadline)).await {
            Ok(result) => result,
            Err(_) => Err(CognitoError::Deadline(self.budget).into()),
        }
    }

    /// Signs the user out everywhere, then disables it.
    pub(crate) async fn disable_user(&self, username: &str) -> Result<UserChange, AdapterError> {
        self.bounded(|deadline| async move {
            match self.pool.global_sign_out(username, deadline).await {
                Ok(()) => {}
                Err(e) if e.is("UserNotFoundException") => return Ok(UserChange::NotFound),
                // Whether Cognito signs out a user who is disabled already is not documented;
                // if it refuses, the earlier run that disabled the user signed it out first.
                Err(e) if e.is("NotAuthorizedException") && e.to_string().contains("disabled") => {
                    tracing::info!(username, "cognito: the user is disabled already");
                }
                Err(e) => return Err(e.into()),
            }
            outcome(self.pool.disable(username, deadline).await)
        })
        .await
    }

    /// Lets the user sign in again.
    pub(crate) async fn enable_user(&self, username: &str) -> Result<UserChange, AdapterError> {
        self.bounded(|deadline| async move { outcome(self.pool.enable(username, deadline).await) }).await
    }

    /// Deletes the user; one already gone is [`UserChange::NotFound`].
    pub(crate) async fn delete_user(&self, username: &str) -> Result<UserChange, AdapterError> {
        self.bounded(|deadline| async move { outcome(self.pool.delete(username, deadline).await) }).await
    }

    /// Makes the user's membership in the managed role groups equal the roles given.
    pub(crate) async fn set_user_roles(
        &self,
        username: &str,
        entitlements: &Entitlements,
        managed: &[String],
    ) -> Result<UserChange, AdapterError> {
        entitlements.check(managed)?;
        self.bounded(|deadline| async move {
            let current = match self.pool.groups_of(username, deadline).await {
                Ok(groups) => groups,
                Err(e) if e.is("UserNotFoundException") => return Ok(UserChange::NotFound),
                Err(e) => return Err(e.into()),
            };
            let plan = entitlements.plan(&current, managed);
            for group in &plan.add {
                match self.add(username, group, deadline).await? {
                    UserChange::Applied => {}
                    other => return Ok(other),
                }
            }
            for group in &plan.remove {
                match self.pool.remove_from_group(username, group, deadline).await {
                    // Deleted meanwhile: the user is not in it any more either way.
                    Err(e) if e.is("ResourceNotFoundException") => {}
                    result => match outcome(result)? {
                        UserChange::Applied => {}
                        other => return Ok(other),
                    },
                }
            }
            if !plan.is_empty() {
                tracing::info!(username, added = ?plan.add, removed = ?plan.remove, "cognito: role groups updated");
            }
            Ok(UserChange::Applied)
        })
        .await
    }

    /// Adds the user to `group`, creating the group first when it is missing and allowed.
    async fn add(&self, username: &str, group: &str, deadline: Instant) -> Result<UserChange, AdapterError> {
        match self.pool.add_to_group(username, group, deadline).await {
            // The same exception names a missing pool; creating the group then fails with it.
            Err(e) if e.is("ResourceNotFoundException") && self.create_groups => {
                match self.pool.create_group(group, deadline).await {
                    // A racing update created it a moment ago.
                    Err(e) if !e.is("GroupExistsException") => return Err(e.into()),
                    _ => tracing::info!(group, "cognito: created the group of a managed role"),
                }
                outcome(self.pool.add_to_group(username, group, deadline).await)
            }
            Err(e) if e.is("ResourceNotFoundException") => Err(AdapterError::Misconfigured {
                detail: format!(
                    "user pool {} has no group {group:?} for this role: create it, or set cognito.create_groups = true \
                     ({e})",
                    self.pool.id
                ),
            }),
            result => outcome(result),
        }
    }
}
