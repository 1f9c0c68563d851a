//! The AWS Cognito adapter: makes sure every verified upstream identity has a user in a Cognito
//! user pool, linked to ssobridge's federated identity, before Cognito sees the first federated
//! sign-in.
//!
//! ssobridge is registered in the pool as an OIDC identity provider. Left alone, Cognito would
//! make a separate federated user (`<provider>_<sub>`) on the first sign-in, even when the person
//! already has a password account. So for each login the adapter, through the Admin API (JSON 1.1,
//! SigV4, no AWS SDK):
//!
//! 1. looks for the user this identity got before: by its deterministic username
//!    (`ssobridge-<sha256(sub)>`), then among the users with the identity's email (`ListUsers`,
//!    `email = "…"`), where a user whose `identities` already lists (provider, `sub`) is this
//!    identity's own;
//! 2. takes over an existing account with the same email only when `identity.email_verified`
//!    (otherwise [`AdapterError::Refused`]), and only when exactly one account has it;
//! 3. otherwise creates the user (`AdminCreateUser`, `MessageAction: SUPPRESS`), under the
//!    deterministic username so that two racing first logins collide on `UsernameExistsException`
//!    instead of making two users;
//! 4. sets `custom:org_id` / `custom:connection_id`, and links the federated identity
//!    (`AdminLinkProviderForUser`: destination `Cognito` + username, source the provider +
//!    `Cognito_Subject` = the `sub` ssobridge issues), so the next federated sign-in *is* that user.
//!
//! In a pool whose usernames are email addresses (`UsernameAttributes: [email]`) the user is
//! created under the email instead; Cognito keeps emails unique there, which plays the same part.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod api;
mod client;
mod error;
mod secret;
mod settings;

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Map;
use sha2::{Digest, Sha256};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Identity, LinkOutcome};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::Instrument;

use crate::api::{Attribute, Pool, PoolFacts, User};
use crate::client::Client;
use crate::error::{reason, CognitoError};
pub use crate::settings::CognitoSettings;

/// A whole sign-in (up to five calls, some retried) is bounded by this many single timeouts.
const BUDGET_TIMEOUTS: u32 = 3;
/// Where the broker's organization and connection go; both must exist in the pool, mutable.
const ORG_ATTRIBUTE: &str = "custom:org_id";
const CONNECTION_ATTRIBUTE: &str = "custom:connection_id";

/// Links or creates ssobridge identities in one Cognito user pool.
#[derive(Debug)]
pub struct CognitoAdapter {
    pool: Pool,
    /// The pool's name for ssobridge as an OIDC identity provider.
    provider: String,
    budget: Duration,
    /// Read once per process: how usernames work in the pool, and whether its schema fits.
    facts: OnceCell<PoolFacts>,
}

impl CognitoAdapter {
    /// Checks the settings and builds the HTTP client; makes no call to AWS.
    pub fn new(settings: CognitoSettings) -> Result<Self, AdapterError> {
        let settings = settings.validate()?;
        let client = Client::new(&settings)?;
        Ok(CognitoAdapter {
            pool: Pool { client, id: settings.user_pool_id.clone() },
            provider: settings.identity_provider_name.clone(),
            budget: settings.timeout * BUDGET_TIMEOUTS,
            facts: OnceCell::new(),
        })
    }
}

impl From<CognitoError> for AdapterError {
    fn from(error: CognitoError) -> AdapterError {
        error.into_adapter_error()
    }
}

impl Adapter for CognitoAdapter {
    fn name(&self) -> &'static str {
        "cognito"
    }

    fn link<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        let span = tracing::info_span!(
            "cognito_link",
            connection_id = identity.connection_id.as_deref().unwrap_or(""),
            organization_id = identity.organization_id.as_deref().unwrap_or(""),
        );
        Box::pin(
            async move {
                let deadline = Instant::now() + self.budget;
                // Each call has its own timeout; this bounds the sum, retries and backoff included.
                let result = match tokio::time::timeout_at(deadline, self.link_identity(identity, deadline)).await {
                    Ok(result) => result,
                    Err(_) => Err(CognitoError::Deadline(self.budget).into()),
                };
                match &result {
                    Ok(LinkOutcome::Created { downstream_user_id, .. }) => {
                        tracing::info!(username = %downstream_user_id, "cognito: created and linked user")
                    }
                    Ok(outcome) => tracing::debug!(?outcome, "cognito: linked user"),
                    Err(error @ AdapterError::Refused { .. }) => tracing::info!(%error, "cognito: refused"),
                    Err(error @ AdapterError::Transient { .. }) => tracing::warn!(%error, "cognito: unavailable"),
                    Err(error @ AdapterError::Misconfigured { .. }) => {
                        tracing::error!(%error, "cognito: misconfigured")
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Whether the outcome is a new user or one that already existed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Existing,
    Created,
}

impl CognitoAdapter {
    async fn link_identity(&self, identity: &Identity, deadline: Instant) -> Result<LinkOutcome, AdapterError> {
        if identity.subject.is_empty() {
            return Err(AdapterError::Misconfigured { detail: "identity without a subject".to_owned() });
        }
        let facts = self.facts(deadline).await?;
        let email_is_username = facts.username_attributes.iter().any(|a| a == "email");
        let email = identity.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
        if email.is_some_and(|e| e.chars().any(char::is_control)) {
            return Err(refused(reason::UNSUPPORTED_EMAIL));
        }
        let own_username = username_for(&identity.subject);

        // 1. The user an earlier sign-in of this identity created.
        if !email_is_username {
            if let Some(user) = self.pool.get_user(&own_username, deadline).await? {
                return self.finish(user, identity, Found::Existing, deadline).await;
            }
        }
        // 2. A user with the same email: this identity's own (linked earlier), or one to take over.
        if let Some(email) = email {
            let users = self.users_with_email(email, deadline).await?;
            if let Some(user) = self.choose(users, identity)? {
                return self.finish(user, identity, Found::Existing, deadline).await;
            }
        }
        // 3. Nobody: create the user.
        let requires_email = facts.schema.get("email").is_some_and(|(_, required)| *required);
        let username = match email {
            Some(email) if email_is_username => email,
            None if email_is_username || requires_email => return Err(refused(reason::EMAIL_REQUIRED)),
            _ => own_username.as_str(),
        };
        match self.pool.create_user(username, &new_user_attributes(identity, email), deadline).await {
            Ok(user) => self.finish(user, identity, Found::Created, deadline).await,
            Err(e) if e.is("UsernameExistsException") => {
                // A racing first sign-in of the same identity created it a moment ago: the
                // deterministic username (or the pool's unique email) made the two collide.
                let user = match email {
                    Some(email) if email_is_username => {
                        self.choose(self.users_with_email(email, deadline).await?, identity)?
                    }
                    _ => self.pool.get_user(&own_username, deadline).await?,
                };
                match user {
                    Some(user) => self.finish(user, identity, Found::Existing, deadline).await,
                    None => Err(e.into()),
                }
            }
            // Another user holds the email as a verified alias under a spelling ListUsers did not
            // match (letter case): not ours to take.
            Err(e) if e.is("AliasExistsException") => Err(refused(reason::EMAIL_IN_USE)),
            Err(e) => Err(e.into()),
        }
    }

    /// The pool's username scheme and schema, read on the first sign-in and kept. A pool that
    /// cannot work is reported as misconfigured (and read again on the next sign-in).
    async fn facts(&self, deadline: Instant) -> Result<&PoolFacts, AdapterError> {
        self.facts
            .get_or_try_init(|| async {
                let facts = self.pool.describe(deadline).await?;
                check_pool(&self.pool.id, &facts)?;
                Ok::<_, AdapterError>(facts)
            })
            .await
    }

    /// Users with this email; also under its lowercase spelling, as ListUsers matches exactly.
    async fn users_with_email(&self, email: &str, deadline: Instant) -> Result<Vec<User>, CognitoError> {
        let mut users = self.pool.users_with_email(email, deadline).await?;
        let lower = email.to_lowercase();
        if lower != email {
            for user in self.pool.users_with_email(&lower, deadline).await? {
                if !users.iter().any(|u| u.username == user.username) {
                    users.push(user);
                }
            }
        }
        Ok(users)
    }

    /// Picks, among the users with the identity's email, the one it may sign in as.
    fn choose(&self, users: Vec<User>, identity: &Identity) -> Result<Option<User>, AdapterError> {
        if let Some(own) = users.iter().find(|u| u.is_linked_to(&self.provider, &identity.subject)) {
            return Ok(Some(own.clone()));
        }
        // Users Cognito made for other federated sign-ins cannot be a `Cognito` destination.
        let mut accounts: Vec<User> = users.into_iter().filter(|u| !u.is_federated()).collect();
        match accounts.len() {
            0 => Ok(None),
            // An unverified email proves nothing: linking would hand the account to whoever
            // controls an IdP that asserts this address.
            _ if !identity.email_verified => Err(refused(reason::UNVERIFIED_EMAIL_TAKEN)),
            1 => Ok(accounts.pop()),
            _ => Err(refused(reason::AMBIGUOUS_EMAIL)),
        }
    }

    /// Brings the organization and connection up to date and makes sure the federated identity
    /// is linked, then says which user it is.
    async fn finish(
        &self,
        user: User,
        identity: &Identity,
        found: Found,
        deadline: Instant,
    ) -> Result<LinkOutcome, AdapterError> {
        if !user.enabled {
            return Err(refused(reason::ACCOUNT_DISABLED));
        }
        let updates = custom_attribute_updates(&user, identity);
        if !updates.is_empty() {
            self.pool.update_attributes(&user.username, &updates, deadline).await?;
        }
        if !user.is_linked_to(&self.provider, &identity.subject) {
            if let Err(e) = self.pool.link_provider(&user.username, &self.provider, &identity.subject, deadline).await {
                if e.is_retryable() || e.kind().is_none() {
                    return Err(e.into());
                }
                // Cognito refuses to link an identity twice. A racing sign-in, or an earlier
                // attempt that timed out after Cognito acted, may have linked it already.
                match self.pool.get_user(&user.username, deadline).await? {
                    Some(now) if now.is_linked_to(&self.provider, &identity.subject) => {}
                    _ => return Err(e.into()),
                }
            }
        }
        let (downstream_user_id, extra_claims, token_fields) = (user.username, Map::new(), Map::new());
        Ok(match found {
            Found::Created => LinkOutcome::Created { downstream_user_id, extra_claims, token_fields },
            Found::Existing => LinkOutcome::Linked { downstream_user_id, extra_claims, token_fields },
        })
    }
}

fn refused(reason: &str) -> AdapterError {
    AdapterError::Refused { reason: reason.to_owned() }
}

/// `ssobridge-` + hex SHA-256 of the broker's `sub`: stable, within Cognito's 128-character
/// username limit whatever the subject, and safe in pools with case-insensitive usernames.
fn username_for(subject: &str) -> String {
    let digest = Sha256::digest(subject.as_bytes());
    let mut username = String::with_capacity(10 + 64);
    username.push_str("ssobridge-");
    for byte in digest {
        let _ = write!(username, "{byte:02x}");
    }
    username
}

fn check_pool(pool_id: &str, facts: &PoolFacts) -> Result<(), AdapterError> {
    let misconfigured = |detail: String| AdapterError::Misconfigured { detail };
    if !facts.username_attributes.is_empty() && !facts.username_attributes.iter().any(|a| a == "email") {
        return Err(misconfigured(format!(
            "user pool {pool_id} signs in by phone number only; the adapter needs usernames or email addresses"
        )));
    }
    for name in [ORG_ATTRIBUTE, CONNECTION_ATTRIBUTE] {
        match facts.schema.get(name) {
            None => {
                return Err(misconfigured(format!(
                    "user pool {pool_id} has no {name} attribute: add it as a mutable String attribute"
                )))
            }
            // AdminLinkProviderForUser fails for users with any immutable custom attribute.
            Some((false, _)) => {
                return Err(misconfigured(format!(
                    "{name} in user pool {pool_id} is immutable; Cognito cannot link users with immutable custom \
                     attributes (recreate it as mutable)"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn new_user_attributes(identity: &Identity, email: Option<&str>) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    if let Some(email) = email {
        attributes.push(Attribute::new("email", email));
        // Only what the broker vouches for: an unverified address stays unverified downstream.
        if identity.email_verified {
            attributes.push(Attribute::new("email_verified", "true"));
        }
    }
    let optional = [
        ("name", &identity.name),
        ("given_name", &identity.given_name),
        ("family_name", &identity.family_name),
        (ORG_ATTRIBUTE, &identity.organization_id),
        (CONNECTION_ATTRIBUTE, &identity.connection_id),
    ];
    for (name, value) in optional {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            attributes.push(Attribute::new(name, value));
        }
    }
    attributes
}

/// The organization and connection, where the user's differ from the identity's. Profile
/// attributes of an existing user are left alone: they are the application's, and Cognito's
/// attribute mapping refreshes them at every federated sign-in.
fn custom_attribute_updates(user: &User, identity: &Identity) -> Vec<Attribute> {
    [(ORG_ATTRIBUTE, &identity.organization_id), (CONNECTION_ATTRIBUTE, &identity.connection_id)]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = value.as_deref().filter(|v| !v.is_empty())?;
            (user.attribute(name) != Some(value)).then(|| Attribute::new(name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::collections::BTreeMap;

    use super::*;
    use ssobridge_adapter_core::conformance::identity;

    #[test]
    fn the_adapter_never_shows_its_secrets() {
        let adapter = CognitoAdapter::new(CognitoSettings {
            region: "eu-west-1".into(),
            user_pool_id: "eu-west-1_AbC".into(),
            identity_provider_name: "ssobridge".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret-key".into(),
            session_token: Some("very-secret-token".into()),
            endpoint: None,
            timeout_seconds: None,
        })
        .unwrap();
        let shown = format!("{adapter:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("AKIAEXAMPLE") && shown.contains("cognito-idp.eu-west-1.amazonaws.com"));
        assert_eq!(adapter.name(), "cognito");
    }

    #[test]
    fn usernames_are_stable_hashes_of_the_subject() {
        let a = username_for("conn_1;alice@idp");
        assert_eq!(a, username_for("conn_1;alice@idp"));
        assert_ne!(a, username_for("conn_1;Alice@idp"));
        assert_eq!(a.len(), 74);
        assert!(a.starts_with("ssobridge-") && a[10..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_uppercase()));
        // Known value, so that a change of scheme (which would duplicate every user) is noticed.
        assert_eq!(username_for(""), "ssobridge-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn new_users_get_email_verified_only_when_the_broker_vouches() {
        let verified = new_user_attributes(&identity("t", "a@example.com", true), Some("a@example.com"));
        assert!(verified.contains(&Attribute::new("email_verified", "true")));
        assert!(verified.contains(&Attribute::new(ORG_ATTRIBUTE, "org_test")));
        assert!(verified.contains(&Attribute::new(CONNECTION_ATTRIBUTE, "conn_test")));
        let unverified = new_user_attributes(&identity("t", "a@example.com", false), Some("a@example.com"));
        assert!(unverified.iter().all(|a| a.name != "email_verified"));
        assert!(unverified.contains(&Attribute::new("email", "a@example.com")));
    }

    #[test]
    fn only_changed_custom_attributes_are_written() {
        let who = identity("t", "a@example.com", true);
        let mut user = User { username: "u".into(), enabled: true, status: None, attributes: BTreeMap::new() };
        assert_eq!(custom_attribute_updates(&user, &who).len(), 2);
        user.attributes.insert(ORG_ATTRIBUTE.into(), "org_test".into());
        user.attributes.insert(CONNECTION_ATTRIBUTE.into(), "conn_test".into());
        assert!(custom_attribute_updates(&user, &who).is_empty());
    }

    #[test]
    fn pools_that_cannot_work_are_misconfigured() {
        let mut facts = PoolFacts::default();
        assert!(check_pool("p", &facts).is_err(), "no custom attributes");
        facts.schema.insert(ORG_ATTRIBUTE.into(), (true, false));
        facts.schema.insert(CONNECTION_ATTRIBUTE.into(), (false, false));
        assert!(check_pool("p", &facts).is_err(), "immutable custom attribute");
        facts.schema.insert(CONNECTION_ATTRIBUTE.into(), (true, false));
        assert!(check_pool("p", &facts).is_ok());
        facts.username_attributes = vec!["phone_number".into()];
        assert!(check_pool("p", &facts).is_err(), "phone-number usernames");
        facts.username_attributes = vec!["email".into(), "phone_number".into()];
        assert!(check_pool("p", &facts).is_ok());
    }
}
