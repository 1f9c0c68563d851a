//! The contract between ssobridge and the downstream auth systems it keeps users in.
//!
//! An adapter is called once per verified upstream login, after the upstream ID token has been
//! checked and before the broker issues its own code. It makes sure the user exists downstream
//! (linking or creating it) and may add claims to the broker's tokens.
//!
//! Later, when the user's directory changes (a webhook: deactivated, deleted, reactivated, a
//! group added), the broker acts on the downstream user `link` named, by its
//! `downstream_user_id`: [`Adapter::disable`], [`Adapter::enable`], [`Adapter::delete`],
//! [`Adapter::set_roles`]. Roles reach the downstream the same way at a login: `link`, then
//! `set_roles` with the user's current [`Entitlements`] ([`Identity`] carries none, so that
//! every caller and every stored identity stays as it is). This crate does no I/O.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Instrument;

/// A verified, normalized upstream identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The upstream subject exactly as the upstream sent it (Scalekit: `conn_…;user@idp`).
    pub upstream_subject: String,
    /// The subject the broker issues to the downstream client for this user.
    pub subject: String,
    /// The upstream connection the user came through, if known.
    pub connection_id: Option<String>,
    /// The upstream organization the user belongs to, if known.
    pub organization_id: Option<String>,
    /// The email as the upstream sent it (not case-folded).
    pub email: Option<String>,
    /// The broker's statement that the email belongs to this user: the upstream did not deny
    /// it *and* the email's domain is a verified route of the user's own organization (a
    /// customer's IdP may assert any address). The same value the broker's tokens carry.
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// What an adapter did with an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LinkOutcome {
    /// The identity belongs to a user that already existed downstream.
    Linked { downstream_user_id: String, extra_claims: Map<String, Value>, token_fields: Map<String, Value> },
    /// A new downstream user was created for the identity.
    Created { downstream_user_id: String, extra_claims: Map<String, Value>, token_fields: Map<String, Value> },
    /// The adapter made no downstream change (the `none` adapter).
    Unchanged,
}

impl LinkOutcome {
    /// Fields the adapter wants added to the broker's token-endpoint response (artifacts such
    /// as a Firebase custom token, which must not travel inside the ID token).
    pub fn token_fields(&self) -> Option<&Map<String, Value>> {
        match self {
            LinkOutcome::Linked { token_fields, .. } | LinkOutcome::Created { token_fields, .. } => Some(token_fields),
            LinkOutcome::Unchanged => None,
        }
    }

    /// The downstream user the identity is now, for later lifecycle operations.
    pub fn downstream_user_id(&self) -> Option<&str> {
        match self {
            LinkOutcome::Linked { downstream_user_id, .. } | LinkOutcome::Created { downstream_user_id, .. } => {
                Some(downstream_user_id)
            }
            LinkOutcome::Unchanged => None,
        }
    }

    /// Claims the adapter wants added to the broker's ID token and userinfo.
    pub fn extra_claims(&self) -> Option<&Map<String, Value>> {
        match self {
            LinkOutcome::Linked { extra_claims, .. } | LinkOutcome::Created { extra_claims, .. } => Some(extra_claims),
            LinkOutcome::Unchanged => None,
        }
    }
}

/// What an operation on an existing downstream user (disable, enable, delete, set roles) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserChange {
    /// The downstream user is now as asked (it may have been already: every operation is
    /// idempotent).
    Applied,
    /// The downstream has no user with this id: deleted (by this adapter earlier, an
    /// administrator or the application), or not created yet (Auth0 creates a first login's
    /// user only when it redeems the broker's code). For `delete` this is success.
    NotFound,
    /// The adapter keeps no downstream users (the `none` adapter): nothing to do.
    Unchanged,
}

/// Why an adapter could not link the identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    /// The downstream system is unreachable, slow or rate limiting; the login may be retried.
    #[error("downstream temporarily unavailable: {detail}")]
    Transient { detail: String, retry_after: Option<Duration> },
    /// The downstream system refused this user; `reason` is safe to show to the user.
    #[error("refused: {reason}")]
    Refused { reason: String },
    /// The adapter's settings or credentials are wrong; an operator must act.
    #[error("adapter misconfigured: {detail}")]
    Misconfigured { detail: String },
}

/// A boxed future, so that adapters of different types can sit behind one `dyn Adapter`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Links or creates a verified identity in a downstream auth system, and keeps that downstream
/// user in step with the directory afterwards.
///
/// Contract of `link`, kept by every implementation (checked by the shared conformance suite):
/// - idempotent: the same identity twice yields the same downstream user, never a duplicate,
///   including when two first logins of one user race;
/// - links by email only when `identity.email_verified` is true, and only into an account whose
///   own email the downstream marks verified; an account that holds the address unverified is
///   never taken over (pre-account takeover): the login is [`AdapterError::Refused`];
/// - never stores an email it was not told is verified as a verified address;
/// - every downstream call is bounded by a timeout and reported as [`AdapterError::Transient`].
///
/// Contract of the operations on a downstream user (`disable`, `enable`, `delete`,
/// `set_roles`), which take the `downstream_user_id` of an earlier [`LinkOutcome`] and are
/// meant to run from a durable queue, retried:
/// - idempotent: running one twice leaves the user as running it once (a retried job, a
///   webhook delivered twice);
/// - a user the downstream does not have is `Ok(`[`UserChange::NotFound`]`)`, never an error:
///   for `delete` that is success, for the others there is nothing to change (yet: Auth0
///   creates a first login's user only when it redeems the broker's code);
/// - bounded by the adapter's timeout; an outage, throttling past what the adapter waits out
///   inside that bound, or a `Retry-After` longer than it is [`AdapterError::Transient`] (with
///   the server's wait in `retry_after`): retry later;
/// - wrong credentials, missing permissions or scopes, a setting that cannot work, or roles
///   the downstream cannot take are [`AdapterError::Misconfigured`]: an operator must act,
///   retrying does not help. These operations never answer [`AdapterError::Refused`];
/// - nothing that is a secret (credentials, tokens) in an error or a log line.
pub trait Adapter: Send + Sync {
    /// A short name for logs and metrics (`none`, `auth0`, `cognito`, `firebase`).
    fn name(&self) -> &'static str;

    /// Makes sure `identity` has a downstream user and says which.
    fn link<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>>;

    /// Stops the user signing in downstream and ends the sessions and tokens the downstream
    /// lets an administrator end (each adapter's docs say which; tokens an application
    /// verifies on its own stay valid until they expire). For a deactivated or deleted
    /// directory user under `deprovision = "disable"`.
    fn disable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>>;

    /// Lifts [`Adapter::disable`]: the user may sign in again (sessions it ended stay ended).
    fn enable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>>;

    /// Deletes the downstream user, for `deprovision = "delete"`. A user already gone is
    /// `Ok(NotFound)` (or `Ok(Applied)` where the downstream cannot tell).
    fn delete<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>>;

    /// Writes the user's groups and roles downstream. `managed` lists every role name the
    /// broker manages for this client (the values of its group-to-role table): among those
    /// the user ends up with exactly `entitlements.roles`; roles outside `managed` that the
    /// user has downstream are never touched, and a role in `entitlements.roles` outside
    /// `managed` is refused ([`AdapterError::Misconfigured`], nothing written). Groups are
    /// the full current set, written where the downstream keeps them (the adapter's docs).
    fn set_roles<'a>(
        &'a self,
        user_id: &'a str,
        entitlements: &'a Entitlements,
        managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>>;
}

/// The adapter for clients that keep no downstream user store: it changes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopAdapter;

impl Adapter for NoopAdapter {
    fn name(&self) -> &'static str {
        "none"
    }

    fn link<'a>(&'a self, _identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        Box::pin(async { Ok(LinkOutcome::Unchanged) })
    }

    fn disable<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async { Ok(UserChange::Unchanged) })
    }

    fn enable<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async { Ok(UserChange::Unchanged) })
    }

    fn delete<'a>(&'a self, _user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async { Ok(UserChange::Unchanged) })
    }

    fn set_roles<'a>(
        &'a self,
        _user_id: &'a str,
        _entitlements: &'a Entitlements,
        _managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        Box::pin(async { Ok(UserChange::Unchanged) })
    }
}

/// Runs one operation on a downstream user inside its span and leaves one line of what it came
/// to: an audit line when it changed the user, a warning or an error when it failed. Every
/// adapter's lifecycle operations go through it.
pub fn audited<'a>(
    adapter: &'static str,
    action: &'static str,
    user_id: &'a str,
    operation: impl std::future::Future<Output = Result<UserChange, AdapterError>> + Send + 'a,
) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
    let span = tracing::info_span!("adapter.user", adapter, action, downstream_user_id = user_id);
    Box::pin(
        async move {
            let result = operation.await;
            match &result {
                Ok(change) => tracing::info!(
                    audit = true,
                    action,
                    adapter,
                    downstream_user_id = user_id,
                    outcome = ?change,
                    "{adapter}: {action} done"
                ),
                Err(error @ AdapterError::Misconfigured { .. }) => {
                    tracing::error!(action, %error, "{adapter}: {action} failed: misconfigured")
                }
                Err(error) => tracing::warn!(action, %error, "{adapter}: {action} failed; retry later"),
            }
            result
        }
        .instrument(span),
    )
}

pub mod conformance;
mod entitlements;
pub mod http;
pub mod retry;
mod secret;

pub use entitlements::{Entitlements, RolePlan, MAX_NAME_CHARS};
pub use secret::Secret;

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    /// The noop adapter's futures are ready at once: one poll finishes them.
    fn now<T>(future: BoxFuture<'_, T>) -> T {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let mut future = future;
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => panic!("the noop adapter never waits"),
        }
    }

    #[test]
    fn the_noop_adapter_changes_nothing_and_succeeds() {
        let noop = NoopAdapter;
        let roles = Entitlements { groups: vec!["g".into()], roles: vec!["r".into()] };
        assert_eq!(now(noop.disable("u")), Ok(UserChange::Unchanged));
        assert_eq!(now(noop.enable("u")), Ok(UserChange::Unchanged));
        assert_eq!(now(noop.delete("u")), Ok(UserChange::Unchanged));
        assert_eq!(now(noop.set_roles("u", &roles, &[])), Ok(UserChange::Unchanged));
        assert_eq!(serde_json::to_string(&UserChange::NotFound).ok().as_deref(), Some("\"not_found\""));
    }
}
