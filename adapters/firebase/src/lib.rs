//! The Firebase adapter: keeps each SSO user as a Firebase Authentication account and hands the
//! application a Firebase custom token to sign in with.
//!
//! Per login it looks the user up through the Identity Toolkit admin API (by a uid derived from
//! the broker subject, and by email when the email is verified), creates the account when there
//! is none, records the organization and connection as custom attributes, and mints a custom
//! token. An existing account is joined by email only when its own `emailVerified` is true:
//! anyone can sign up with someone else's address, and linking the SSO login into such an
//! account would hand it the person's SSO identity (pre-account takeover), so that login is
//! refused instead. The token goes into the broker's token response as `firebase_token`, never into the ID
//! token: it is a bearer credential for the Firebase project.
//!
//! After the login, the [`Adapter`] operations act on the uid `link` reported: `disable` =
//! `accounts:update {disableUser: true, validSince: now}` (sign-in and token refresh refused,
//! earlier ID tokens fail `verifyIdToken(…, checkRevoked)`); `enable` = `{disableUser: false}`;
//! `delete` = `accounts:delete`; `set_roles` writes the custom claims [`ROLES_CLAIM`] (only the
//! managed names change) and [`GROUPS_CLAIM`], keeping every other claim, within Firebase's
//! 1000-character limit (past it: `Misconfigured`, nothing written). The claims reach the
//! application's ID tokens at their next refresh (within the hour) or sign-in.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::await_holding_lock)]

mod credentials;
mod http;
mod lifecycle;
mod settings;
mod token;
mod toolkit;

use std::fmt;
use std::time::Duration;

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, Identity, LinkOutcome, UserChange};
use tracing::Instrument as _;

use crate::credentials::{Credentials, ServiceAccount};
use crate::http::Deadline;
use crate::settings::{Endpoint, Resolved};
use crate::token::{check_developer_claims, CustomTokenMinter, MAX_CLAIMS_BYTES};
use crate::toolkit::{Account, CallError, NewAccount, Toolkit};

pub use crate::lifecycle::{GROUPS_CLAIM, ROLES_CLAIM};
pub use crate::settings::FirebaseSettings;

/// The token-response field that carries the custom token.
pub const TOKEN_FIELD: &str = "firebase_token";

/// The ID-token claim that carries the Firebase uid.
pub const UID_CLAIM: &str = "firebase_uid";

/// Developer claims (in the custom token) and custom attributes (on the account) the adapter
/// sets, named as the broker's own ID-token claims.
const ORGANIZATION_CLAIM: &str = "org_id";
const CONNECTION_CLAIM: &str = "connection_id";

/// Shown to a user whose SSO login would have joined an account that merely claims their address.
const EXISTING_EMAIL_UNVERIFIED: &str = "An account with your email address already exists in this application \
     but its address was never verified, so single sign-on cannot take it over. Ask the application's \
     administrator.";

/// Rounds of look-up-then-create: a create that loses a race is followed by a fresh look-up.
const MAX_ROUNDS: usize = 3;

/// The uid the adapter gives the account of a broker subject that has none yet: stable, at most
/// 128 characters, and the same for two racing first logins, so that the second create
/// collides (`DUPLICATE_LOCAL_ID`) instead of making a duplicate.
///
/// A subject may hold characters a uid should not (`conn_…;user@idp`), so it is hashed.
pub fn firebase_uid(subject: &str) -> String {
    format!("sso_{}", URL_SAFE_NO_PAD.encode(digest(&SHA256, subject.as_bytes())))
}

/// Links broker identities to Firebase Authentication accounts.
pub struct FirebaseAdapter {
    toolkit: Toolkit,
    minter: CustomTokenMinter,
    timeout: Duration,
    project_id: String,
    tenant_id: Option<String>,
    emulator: bool,
}

impl fmt::Debug for FirebaseAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirebaseAdapter")
            .field("project_id", &self.project_id)
            .field("tenant_id", &self.tenant_id)
            .field("emulator", &self.emulator)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl FirebaseAdapter {
    /// Checks the settings, loads and tests the service account key; no network call.
    pub fn new(settings: FirebaseSettings) -> Result<Self, AdapterError> {
        let resolved = settings.resolve()?;
        let base = resolved.accounts_base();
        let Resolved { project_id, tenant_id, service_account_email, key, endpoint, timeout } = resolved;
        let (credentials, emulator) = match endpoint {
            Endpoint::Emulator { .. } => (Credentials::Emulator, true),
            Endpoint::Production { token_uri, .. } => {
                let key = key.clone().ok_or_else(|| AdapterError::Misconfigured {
                    detail: "firebase: production needs the service account key".to_owned(),
                })?;
                (Credentials::ServiceAccount(ServiceAccount::new(service_account_email.clone(), key, token_uri)), false)
            }
        };
        let http = ssobridge_adapter_core::http::client_builder(
            concat!("ssobridge-adapter-firebase/", env!("CARGO_PKG_VERSION")),
            timeout,
        )
        .build()
        .map_err(|e| AdapterError::Misconfigured { detail: format!("firebase: building the HTTP client: {e}") })?;
        Ok(FirebaseAdapter {
            toolkit: Toolkit::new(http, base, credentials),
            minter: CustomTokenMinter::new(service_account_email, tenant_id.clone(), key),
            timeout,
            project_id,
            tenant_id,
            emulator,
        })
    }

    async fn link_identity(&self, identity: &Identity) -> Result<LinkOutcome, AdapterError> {
        let deadline = Deadline::after(self.timeout);
        let uid = firebase_uid(&identity.subject);
        let claims = developer_claims(identity);
        check_developer_claims(&claims)?;
        // Only a verified email may lead to someone else's account; an unverified one is not even
        // stored, so that no later verified login can be linked to an account its owner never
        // controlled (pre-account takeover). Lowercased, as Firebase keeps emails, so that the
        // look-up finds the account whatever case the upstream sent.
        let email = identity
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| identity.email_verified && !e.is_empty())
            .map(str::to_lowercase);
        let email = email.as_deref();
        let emails: Vec<&str> = email.into_iter().collect();

        for _ in 0..MAX_ROUNDS {
            let found = self.toolkit.lookup(deadline, &[uid.as_str()], &emails).await?;
            if let Some(account) = account_for(&found, &uid, email)? {
                return self.finish(account, false, &claims, deadline).await;
            }
            // `email` is `None` unless the broker vouches for it: a new account never holds an
            // address nobody proved, verified or not.
            let new = NewAccount {
                local_id: &uid,
                email,
                email_verified: email.is_some(),
                display_name: identity.name.as_deref().filter(|n| !n.trim().is_empty()),
            };
            match self.toolkit.create(deadline, &new).await {
                Ok(()) => {
                    let account = Account {
                        local_id: uid.clone(),
                        email: None,
                        email_verified: false,
                        disabled: false,
                        custom_attributes: None,
                    };
                    return self.finish(&account, true, &claims, deadline).await;
                }
                // A racing login created the account (same uid) or an account with the email
                // appeared since the look-up: look again.
                Err(CallError::Rejected(code)) if code == "DUPLICATE_LOCAL_ID" || code == "EMAIL_EXISTS" => {
                    tracing::debug!(code, "create lost a race; looking up again");
                }
                Err(e) => return Err(e.into_adapter_error("create")),
            }
        }
        Err(AdapterError::Transient {
            detail: "firebase: the account kept changing during the login".to_owned(),
            retry_after: None,
        })
    }

    /// Refuses disabled accounts, records the claims on the account, mints the custom token.
    async fn finish(
        &self,
        account: &Account,
        created: bool,
        claims: &Map<String, Value>,
        deadline: Deadline,
    ) -> Result<LinkOutcome, AdapterError> {
        if account.disabled {
            return Err(AdapterError::Refused { reason: "Your account in this application is disabled.".to_owned() });
        }
        if let Some(attributes) = merged_attributes(account.custom_attributes.as_deref(), claims) {
            match self.toolkit.set_custom_attributes(deadline, &account.local_id, &attributes).await {
                Ok(()) => {}
                // Deleted between look-up and update: the next login starts over.
                Err(CallError::Rejected(code)) if code == "USER_NOT_FOUND" => {
                    return Err(AdapterError::Transient {
                        detail: "firebase: the account was deleted during the login".to_owned(),
                        retry_after: None,
                    })
                }
                Err(e) => return Err(e.into_adapter_error("update")),
            }
        }
        let custom_token = self.minter.mint(&account.local_id, claims)?;
        let uid = account.local_id.clone();
        let mut extra_claims = Map::new();
        extra_claims.insert(UID_CLAIM.to_owned(), Value::String(uid.clone()));
        let mut token_fields = Map::new();
        token_fields.insert(TOKEN_FIELD.to_owned(), Value::String(custom_token.expose().to_owned()));
        tracing::info!(firebase_uid = %uid, created, "firebase account ready");
        Ok(if created {
            LinkOutcome::Created { downstream_user_id: uid, extra_claims, token_fields }
        } else {
            LinkOutcome::Linked { downstream_user_id: uid, extra_claims, token_fields }
        })
    }
}

/// Which looked-up account a login signs in to: its own (by uid) first, so that a returning user
/// stays where they are; else the one account with its (verified, lowercased) `email`, provided
/// that account's own email is verified too. `None`: there is none, create one.
fn account_for<'a>(found: &'a [Account], uid: &str, email: Option<&str>) -> Result<Option<&'a Account>, AdapterError> {
    if let Some(account) = found.iter().find(|a| a.local_id == uid) {
        return Ok(Some(account));
    }
    let Some(email) = email else { return Ok(None) };
    let same_email: Vec<&Account> =
        found.iter().filter(|a| a.email.as_deref().is_some_and(|e| e.to_lowercase() == email)).collect();
    match same_email.as_slice() {
        [] => Ok(None),
        [account] if account.email_verified => {
            // Worth a line in the audit trail: an existing account gains an SSO login.
            tracing::info!(firebase_uid = %account.local_id, "linking an existing account by verified email");
            Ok(Some(account))
        }
        // Pre-account takeover: the account's holder never proved the address (a sign-up anyone
        // could have made with it), so the person's SSO login must not land there. Refused,
        // never merged.
        [account] => {
            tracing::warn!(
                audit = true,
                action = "link_refused",
                reason = "existing_account_email_unverified",
                adapter = "firebase",
                downstream_user_id = %account.local_id,
                "firebase: refused to link into an account whose email is not verified"
            );
            Err(AdapterError::Refused { reason: EXISTING_EMAIL_UNVERIFIED.to_owned() })
        }
        _ => Err(AdapterError::Refused {
            reason: "Several accounts of this application use your email address; ask its administrator to \
                     merge them."
                .to_owned(),
        }),
    }
}

/// The organization and connection, as far as the broker knows them.
fn developer_claims(identity: &Identity) -> Map<String, Value> {
    let mut claims = Map::new();
    if let Some(org) = identity.organization_id.as_deref().filter(|o| !o.is_empty()) {
        claims.insert(ORGANIZATION_CLAIM.to_owned(), Value::from(org));
    }
    if let Some(conn) = identity.connection_id.as_deref().filter(|c| !c.is_empty()) {
        claims.insert(CONNECTION_CLAIM.to_owned(), Value::from(conn));
    }
    claims
}

/// The account's custom attributes with ours set, or `None` when nothing needs writing. The
/// application's own attributes are kept; attributes that are not a JSON object, or that would
/// grow past Firebase's limit, are left alone (the custom token still carries the claims).
fn merged_attributes(existing: Option<&str>, ours: &Map<String, Value>) -> Option<String> {
    if ours.is_empty() {
        return None;
    }
    let mut merged = match existing.map(str::trim).filter(|s| !s.is_empty()) {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => {
                tracing::warn!("custom attributes are not a JSON object; leaving them unchanged");
                return None;
            }
        },
    };
    let before = merged.clone();
    merged.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
    if merged == before {
        return None;
    }
    let text = serde_json::to_string(&merged).ok()?;
    if text.len() > MAX_CLAIMS_BYTES {
        tracing::warn!(bytes = text.len(), "custom attributes would exceed Firebase's limit; leaving them unchanged");
        return None;
    }
    Some(text)
}

impl Adapter for FirebaseAdapter {
    fn name(&self) -> &'static str {
        "firebase"
    }

    fn link<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        let span = tracing::info_span!(
            "adapter.link",
            adapter = "firebase",
            connection_id = identity.connection_id.as_deref(),
            organization_id = identity.organization_id.as_deref(),
        );
        Box::pin(
            async move {
                // Every call already runs under the deadline; this bounds the whole login even
                // if something between the calls were to stall.
                match tokio::time::timeout(self.timeout + Duration::from_millis(500), self.link_identity(identity))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(AdapterError::Transient {
                        detail: "firebase: the login's calls took longer than timeout_seconds".to_owned(),
                        retry_after: None,
                    }),
                }
            }
            .instrument(span),
        )
    }

    fn disable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("firebase", "disable", user_id, self.bounded(self.disable_user(user_id)))
    }

    fn enable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("firebase", "enable", user_id, self.bounded(self.enable_user(user_id)))
    }

    fn delete<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("firebase", "delete", user_id, self.bounded(self.delete_user(user_id)))
    }

    fn set_roles<'a>(
        &'a self,
        user_id: &'a str,
        entitlements: &'a Entitlements,
        managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited(
            "firebase",
            "set_roles",
            user_id,
            self.bounded(self.set_user_roles(user_id, entitlements, managed)),
        )
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! One RSA key per test process (generating one takes a moment).
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::OnceLock;

    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::KeyPair as _;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use jsonwebtoken::DecodingKey;

    /// The private key as PKCS#8 PEM (as in Google key files) and the matching public key.
    pub(crate) fn rsa_test_key() -> (String, DecodingKey) {
        static KEY: OnceLock<(String, Vec<u8>)> = OnceLock::new();
        let (pem, public) = KEY.get_or_init(|| {
            let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
            let der = pair.as_der().expect("PKCS#8 encoding");
            let body = STANDARD.encode(der.as_ref());
            let lines: Vec<&str> =
                body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
            let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
            (pem, pair.public_key().as_ref().to_vec())
        });
        (pem.clone(), DecodingKey::from_rsa_der(public))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn uid_is_stable_short_and_per_subject() {
        let a = firebase_uid("conn_123;alice@idp.example");
        assert_eq!(a, firebase_uid("conn_123;alice@idp.example"));
        assert_ne!(a, firebase_uid("conn_123;bob@idp.example"));
        assert!(a.len() <= 128);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'), "{a}");
    }

    fn account(uid: &str, email: &str, email_verified: bool) -> Account {
        Account {
            local_id: uid.to_owned(),
            email: Some(email.to_owned()),
            email_verified,
            disabled: false,
            custom_attributes: None,
        }
    }

    fn chosen(result: Result<Option<&Account>, AdapterError>) -> Option<String> {
        result.unwrap().map(|a| a.local_id.clone())
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
        let squatter = [account("squatter", "V@Example.com", false)];
        let recorder = Recorder::default();
        let refused = tracing::subscriber::with_default(recorder.clone(), || {
            account_for(&squatter, "sso_victim", Some("v@example.com")).map(|a| a.map(|a| a.local_id.clone()))
        });
        match refused {
            Err(AdapterError::Refused { reason }) => assert_eq!(reason, EXISTING_EMAIL_UNVERIFIED),
            other => panic!("expected a refusal, got {other:?}"),
        }
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
        assert!(!lines[0].to_lowercase().contains("v@example.com"), "no email in the audit line: {lines:?}");
        let owner = [account("owner", "V@Example.com", true)];
        assert_eq!(chosen(account_for(&owner, "sso_victim", Some("v@example.com"))).as_deref(), Some("owner"));
        // Without a verified email of its own the login looks at nobody else's account.
        assert_eq!(chosen(account_for(&squatter, "sso_victim", None)), None);
        assert_eq!(chosen(account_for(&[], "sso_victim", Some("v@example.com"))), None);
    }

    #[test]
    fn the_own_account_comes_first() {
        let found = [account("other", "o@example.com", false), account("sso_own", "o@example.com", false)];
        assert_eq!(chosen(account_for(&found, "sso_own", Some("o@example.com"))).as_deref(), Some("sso_own"));
        let two = [account("a", "t@example.com", true), account("b", "t@example.com", true)];
        assert!(matches!(account_for(&two, "sso_x", Some("t@example.com")), Err(AdapterError::Refused { .. })));
    }

    #[test]
    fn attributes_are_merged_and_unchanged_ones_not_rewritten() {
        let mut ours = Map::new();
        ours.insert("org_id".to_owned(), Value::from("org_1"));
        assert_eq!(merged_attributes(None, &ours).as_deref(), Some(r#"{"org_id":"org_1"}"#));
        let merged: Value =
            serde_json::from_str(&merged_attributes(Some(r#"{"role":"admin"}"#), &ours).unwrap()).unwrap();
        assert_eq!(merged, serde_json::json!({"role": "admin", "org_id": "org_1"}));
        assert_eq!(merged_attributes(Some(r#"{"org_id":"org_1","role":"x"}"#), &ours), None);
        assert_eq!(merged_attributes(Some("[1]"), &ours), None, "not an object: left alone");
        assert_eq!(merged_attributes(Some("{}"), &Map::new()), None);
        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(990));
        assert_eq!(merged_attributes(Some(&big), &ours), None, "over the limit: left alone");
    }
}
