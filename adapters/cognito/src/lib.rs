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
//! 2. takes over an existing account with the same email only when `identity.email_verified`,
//!    only when exactly one account has it, and only when that account's own `email_verified`
//!    is `true` (otherwise [`AdapterError::Refused`], with an audit line): an account signed up
//!    with someone else's address and never confirmed must not collect that person's SSO
//!    identity (pre-account takeover);
//! 3. otherwise creates the user (`AdminCreateUser`, `MessageAction: SUPPRESS`), under the
//!    deterministic username so that two racing first logins collide on `UsernameExistsException`
//!    instead of making two users. The email becomes the user's address (verified) only when the
//!    broker vouches for it; otherwise it is not written at all, and a pool that needs one (email
//!    usernames, or `email` required) refuses the sign-in;
//! 4. sets `custom:org_id` / `custom:connection_id`, and links the federated identity
//!    (`AdminLinkProviderForUser`: destination `Cognito` + username, source the provider +
//!    `Cognito_Subject` = the `sub` ssobridge issues), so the next federated sign-in *is* that user.
//!
//! In a pool whose usernames are email addresses (`UsernameAttributes: [email]`) the user is
//! created under the email instead; Cognito keeps emails unique there, which plays the same part.
//!
//! After the login, the [`Adapter`] operations act on the username `link` reported:
//! `disable` = `AdminUserGlobalSignOut` (ID, access and refresh tokens invalidated) then
//! `AdminDisableUser`; `enable` = `AdminEnableUser`; `delete` = `AdminDeleteUser`; `set_roles`
//! makes the user's membership in the pool groups named like the managed roles equal the roles
//! given (`AdminListGroupsForUser`, `AdminAddUserToGroup`, `AdminRemoveUserFromGroup`; a missing
//! group is created with `create_groups`, else reported), never touching other groups; the
//! application sees them in `cognito:groups`. Directory groups are not written to Cognito. The
//! IAM actions are in `iam-policy.json`.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod api;
mod client;
mod error;
mod lifecycle;
mod settings;

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Map;
use sha2::{Digest, Sha256};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, Identity, LinkOutcome, UserChange};
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
    /// Whether a missing group of a managed role is created (`cognito.create_groups`).
    create_groups: bool,
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
            create_groups: settings.create_groups,
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

    fn disable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("cognito", "disable", user_id, self.disable_user(user_id))
    }

    fn enable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("cognito", "enable", user_id, self.enable_user(user_id))
    }

    fn delete<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("cognito", "delete", user_id, self.delete_user(user_id))
    }

    fn set_roles<'a>(
        &'a self,
        user_id: &'a str,
        entitlements: &'a Entitlements,
        managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited(
            "cognito",
            "set_roles",
            user_id,
            self.set_user_roles(user_id, entitlements, managed),
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
        // 3. Nobody: create the user. Only an email the broker vouches for becomes its address:
        // an unverified one on a new user would be an account that a later sign-in (or the
        // application) takes for that person's.
        let address = email.filter(|_| identity.email_verified);
        let requires_email = facts.schema.get("email").is_some_and(|(_, required)| *required);
        let username = match address {
            Some(address) if email_is_username => address,
            None if email_is_username || requires_email => {
                return Err(refused(match email {
                    Some(_) => reason::UNVERIFIED_EMAIL_NOT_ADDRESS,
                    None => reason::EMAIL_REQUIRED,
                }))
            }
            _ => own_username.as_str(),
        };
        match self.pool.create_user(username, &new_user_attributes(identity, address), deadline).await {
            Ok(user) => self.finish(user, identity, Found::Created, deadline).await,
            Err(e) if e.is("UsernameExistsException") => {
                // A racing first sign-in of the same identity created it a moment ago: the
                // deterministic username (or the pool's unique email) made the two collide.
                let user = match address {
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
        let accounts: Vec<User> = users.into_iter().filter(|u| !u.is_federated()).collect();
        match accounts.as_slice() {
            [] => Ok(None),
            // An unverified email proves nothing: linking would hand the account to whoever
            // controls an IdP that asserts this address.
            _ if !identity.email_verified => Err(refused(reason::UNVERIFIED_EMAIL_TAKEN)),
            [account] if account.email_verified() => Ok(Some(account.clone())),
            // Pre-account takeover: anyone can sign up with someone else's address and wait for
            // that person's SSO sign-in. Only an address the account's holder proved is theirs
            // may join the two.
            [account] => {
                audit_link_refused(&account.username);
                Err(refused(reason::EXISTING_EMAIL_UNVERIFIED))
            }
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

/// The audit trail's line for a sign-in that would have taken over an account whose email was
/// never verified: the username only (no email, no token), so that an administrator can look
/// at the account.
fn audit_link_refused(username: &str) {
    tracing::warn!(
        audit = true,
        action = "link_refused",
        reason = "existing_account_email_unverified",
        adapter = "cognito",
        downstream_user_id = %username,
        "cognito: refused to link into an account whose email is not verified"
    );
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

/// The new user's attributes. `address` is the email to give it; it is written, as verified,
/// only when the broker vouches for the identity's email: an unverified address is not written
/// at all (Cognito would let the application, and the next sign-in by email, take it for the
/// person's).
fn new_user_attributes(identity: &Identity, address: Option<&str>) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    if let Some(address) = address.filter(|_| identity.email_verified) {
        attributes.push(Attribute::new("email", address));
        attributes.push(Attribute::new("email_verified", "true"));
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
            create_groups: None,
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
    fn new_users_get_an_email_only_when_the_broker_vouches_for_it() {
        let verified = new_user_attributes(&identity("t", "a@example.com", true), Some("a@example.com"));
        assert!(verified.contains(&Attribute::new("email", "a@example.com")));
        assert!(verified.contains(&Attribute::new("email_verified", "true")));
        assert!(verified.contains(&Attribute::new(ORG_ATTRIBUTE, "org_test")));
        assert!(verified.contains(&Attribute::new(CONNECTION_ATTRIBUTE, "conn_test")));
        // Not even unverified: the address is not written at all.
        let unverified = new_user_attributes(&identity("t", "a@example.com", false), Some("a@example.com"));
        assert!(unverified.iter().all(|a| a.name != "email" && a.name != "email_verified"), "{unverified:?}");
        assert!(unverified.contains(&Attribute::new("given_name", "Test")));
    }

    fn pool_user(name: &str, attributes: &[(&str, &str)]) -> User {
        User {
            username: name.into(),
            enabled: true,
            status: Some("CONFIRMED".into()),
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn adapter() -> CognitoAdapter {
        CognitoAdapter::new(CognitoSettings {
            region: "eu-west-1".into(),
            user_pool_id: "eu-west-1_AbC".into(),
            identity_provider_name: "ssobridge".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: None,
            endpoint: None,
            timeout_seconds: None,
            create_groups: None,
        })
        .unwrap()
    }

    fn reason_of(result: Result<Option<User>, AdapterError>) -> String {
        match result {
            Err(AdapterError::Refused { reason }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Collects every event as `LEVEL field=value …`: enough to see what an audit line says
    /// (the adapter crates have no subscriber crate of their own).
    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Line(String);
            impl tracing::field::Visit for Line {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!(" {}={:?}", field.name(), value));
                }
            }
            let mut line = Line(event.metadata().level().to_string());
            event.record(&mut line);
            self.0.lock().unwrap().push(line.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    impl Recorder {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    #[test]
    fn an_account_whose_own_email_is_unverified_is_never_taken_over() {
        let adapter = adapter();
        let victim = identity("victim", "v@example.com", true);
        let squatter = pool_user("squatter", &[("email", "v@example.com"), ("email_verified", "false")]);
        let recorder = Recorder::default();
        let refused = tracing::subscriber::with_default(recorder.clone(), || adapter.choose(vec![squatter], &victim));
        assert_eq!(reason_of(refused), reason::EXISTING_EMAIL_UNVERIFIED);
        let lines = recorder.lines();
        assert_eq!(lines.len(), 1, "one audit line: {lines:?}");
        for part in [
            "WARN",
            "audit=true",
            r#"action="link_refused""#,
            r#"reason="existing_account_email_unverified""#,
            "downstream_user_id=squatter",
        ] {
            assert!(lines[0].contains(part), "{part} missing from {lines:?}");
        }
        assert!(!lines[0].contains("v@example.com"), "no email in the audit line: {lines:?}");
        let never_confirmed = pool_user("unconfirmed", &[("email", "v@example.com")]);
        assert_eq!(reason_of(adapter.choose(vec![never_confirmed], &victim)), reason::EXISTING_EMAIL_UNVERIFIED);
        let owner = pool_user("owner", &[("email", "v@example.com"), ("email_verified", "true")]);
        assert_eq!(adapter.choose(vec![owner], &victim).unwrap().map(|u| u.username).as_deref(), Some("owner"));
        assert!(adapter.choose(Vec::new(), &victim).unwrap().is_none());
    }

    #[test]
    fn the_identitys_own_user_is_found_whatever_its_email_says() {
        // A user this identity was linked to earlier stays its own, verified address or not.
        let adapter = adapter();
        let who = identity("own", "o@example.com", true);
        let linked = format!(r#"[{{"userId":"{}","providerName":"ssobridge"}}]"#, who.subject);
        let own = pool_user("own", &[("email", "o@example.com"), ("identities", &linked)]);
        let other = pool_user("other", &[("email", "o@example.com"), ("email_verified", "false")]);
        assert_eq!(adapter.choose(vec![other, own], &who).unwrap().map(|u| u.username).as_deref(), Some("own"));
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
