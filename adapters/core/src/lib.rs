//! The contract between ssobridge and the downstream auth systems it keeps users in.
//!
//! An adapter is called once per verified upstream login, after the upstream ID token has been
//! checked and before the broker issues its own code. It makes sure the user exists downstream
//! (linking or creating it) and may add claims to the broker's tokens. This crate does no I/O.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// Links or creates a verified identity in a downstream auth system.
///
/// Contract every implementation keeps (checked by the shared conformance suite):
/// - idempotent: the same identity twice yields the same downstream user, never a duplicate,
///   including when two first logins of one user race;
/// - links by email only when `identity.email_verified` is true, and only into an account whose
///   own email the downstream marks verified; an account that holds the address unverified is
///   never taken over (pre-account takeover): the login is [`AdapterError::Refused`];
/// - never stores an email it was not told is verified as a verified address;
/// - every downstream call is bounded by a timeout and reported as [`AdapterError::Transient`].
pub trait Adapter: Send + Sync {
    /// A short name for logs and metrics (`none`, `auth0`, `cognito`, `firebase`).
    fn name(&self) -> &'static str;

    /// Makes sure `identity` has a downstream user and says which.
    fn link<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>>;
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
}

pub mod conformance;
mod entitlements;
pub mod retry;
mod secret;

pub use entitlements::{Entitlements, RolePlan, MAX_NAME_CHARS};
pub use secret::Secret;
