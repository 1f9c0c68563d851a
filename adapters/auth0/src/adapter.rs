//! The decisions: which Auth0 user a login belongs to, and when to link (see the crate docs).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, Identity, LinkOutcome, UserChange};
use tokio::time::Instant;
use tracing::Instrument;

use crate::api::{Api, SsoIdentity, User};
use crate::http::{misconfigured, transient, Http};
use crate::settings::Auth0Settings;
use crate::token::TokenSource;

/// A sign-in makes up to about six calls; three exchange timeouts bound all of them together.
const BUDGET_IN_TIMEOUTS: u32 = 3;

const UNVERIFIED_COLLISION: &str = "An account with this email address already exists in this application, and \
     your organization's email domain is not verified for single sign-on, so the two cannot be joined. Sign in \
     with the existing account, or ask your administrator to verify the domain.";

const EXISTING_EMAIL_UNVERIFIED: &str = "An account with your email address already exists in this application \
     but its address was never verified, so single sign-on cannot take it over. Ask the application's \
     administrator.";

/// Links ssobridge logins to the users of one Auth0 tenant through the Management API.
pub struct Auth0Adapter {
    pub(crate) api: Api,
    pub(crate) connection: String,
    pub(crate) budget: Duration,
    /// Whether roles are also assigned as Auth0 roles (`auth0.assign_roles`).
    pub(crate) assign_roles: bool,
}

impl fmt::Debug for Auth0Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth0Adapter").field("connection", &self.connection).finish_non_exhaustive()
    }
}

fn linked(user_id: &str) -> LinkOutcome {
    LinkOutcome::Linked { downstream_user_id: user_id.to_owned(), extra_claims: Map::new(), token_fields: Map::new() }
}

impl Auth0Adapter {
    /// Validates the settings and builds the HTTP client; makes no network call.
    pub fn new(settings: Auth0Settings) -> Result<Self, AdapterError> {
        let settings = settings.validate()?;
        let http = Http::new(settings.timeout)?;
        let tokens = TokenSource::new(http.clone(), &settings);
        Ok(Auth0Adapter {
            api: Api::new(http, tokens, settings.api_url.clone()),
            connection: settings.connection,
            budget: settings.timeout * BUDGET_IN_TIMEOUTS,
            assign_roles: settings.assign_roles,
        })
    }

    async fn resolve(&self, identity: &Identity, deadline: Instant) -> Result<LinkOutcome, AdapterError> {
        if identity.subject.is_empty() {
            return Err(misconfigured("the broker passed an identity without a subject"));
        }
        let me = SsoIdentity::new(&self.connection, &identity.subject);

        // Who holds the identity? Search finds it linked into another user too.
        let found = self.api.search_identity(&me, deadline).await?;
        if let Some(holder) = found.iter().find(|u| u.user_id != me.user_id && me.held_by(u)) {
            return self.finish(holder, identity, deadline).await;
        }
        let mut secondary = found.into_iter().find(|u| u.user_id == me.user_id);
        if secondary.is_none() {
            // Search lags behind writes; the user may exist since a login seconds ago.
            secondary = self.api.get_user(&me.user_id, deadline).await?;
        }

        let email = identity.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
        let same_email = match email {
            Some(email) => self.users_with_email(email, deadline).await?,
            None => Vec::new(),
        };
        // Linked meanwhile (search had not caught up): users-by-email is immediately consistent.
        if let Some(holder) = same_email.iter().find(|u| u.user_id != me.user_id && me.held_by(u)) {
            return self.finish(holder, identity, deadline).await;
        }
        let others: Vec<&User> = same_email.iter().filter(|u| u.user_id != me.user_id).collect();
        let primaries: Vec<&User> = match email {
            Some(email) if identity.email_verified => {
                others.iter().copied().filter(|u| u.email_verified && same_address(u, email)).collect()
            }
            _ => Vec::new(),
        };

        let Some(secondary) = secondary else {
            // First login: Auth0 creates the user when it redeems ssobridge's code.
            if !identity.email_verified && !others.is_empty() {
                tracing::info!("first sign-in with an unverified email that another user has; refused");
                return Err(AdapterError::Refused { reason: UNVERIFIED_COLLISION.to_owned() });
            }
            // Pre-account takeover: the address is held only by accounts whose holders never
            // proved it (anyone can sign up with someone else's address). Going on would leave
            // Auth0 with the person's SSO user next to the squatter's, both with the address,
            // for the application or a rule that trusts emails to join: refuse and say so.
            // A returning login (the OIDC user exists) is kept apart below instead, so that a
            // later sign-up with the address cannot lock its owner out.
            if primaries.is_empty() {
                if let Some(squatter) = others.iter().find(|u| !u.email_verified) {
                    tracing::warn!(
                        audit = true,
                        action = "link_refused",
                        reason = "existing_account_email_unverified",
                        adapter = "auth0",
                        downstream_user_id = %squatter.user_id,
                        "auth0: refused a first sign-in whose email an unverified account holds"
                    );
                    return Err(AdapterError::Refused { reason: EXISTING_EMAIL_UNVERIFIED.to_owned() });
                }
            }
            if let [primary] = primaries.as_slice() {
                tracing::info!(
                    primary = %primary.user_id,
                    secondary = %me.user_id,
                    "first sign-in of an existing user: Auth0 creates the OIDC user now, it is linked at the next sign-in"
                );
            }
            return Ok(LinkOutcome::Created {
                downstream_user_id: me.user_id,
                extra_claims: Map::new(),
                token_fields: Map::new(),
            });
        };

        if secondary.identities.len() > 1 {
            // Other accounts were linked into the OIDC user: it is a primary itself; moving it
            // under another account is for an administrator to decide.
            return self.finish(&secondary, identity, deadline).await;
        }
        match primaries.as_slice() {
            [] => {
                if !others.is_empty() {
                    tracing::info!(user = %secondary.user_id, "another user has this email; not linking (unverified)");
                }
                self.finish(&secondary, identity, deadline).await
            }
            [primary] => {
                let user = self.link_into(primary, &secondary, &me, deadline).await?;
                self.finish(&user, identity, deadline).await
            }
            several => {
                tracing::warn!(
                    user = %secondary.user_id,
                    candidates = several.len(),
                    "several verified users share this email; not linking automatically"
                );
                self.finish(&secondary, identity, deadline).await
            }
        }
    }

    /// Users with `email`, asked in lower case first: users-by-email is case-sensitive and
    /// Auth0 stores database emails in lower case; social and enterprise profiles keep the
    /// case their provider sent, so the address as given is asked too when it differs.
    async fn users_with_email(&self, email: &str, deadline: Instant) -> Result<Vec<User>, AdapterError> {
        let lower = email.to_lowercase();
        let mut users = self.api.users_by_email(&lower, deadline).await?;
        if lower != email {
            for user in self.api.users_by_email(email, deadline).await? {
                if !users.iter().any(|u| u.user_id == user.user_id) {
                    users.push(user);
                }
            }
        }
        Ok(users)
    }

    /// Links `secondary` into `primary`; a refusal is re-read, since a racing login may have
    /// linked it first. Returns the user the identity belongs to afterwards.
    async fn link_into(
        &self,
        primary: &User,
        secondary: &User,
        me: &SsoIdentity,
        deadline: Instant,
    ) -> Result<User, AdapterError> {
        // Provider and user_id exactly as Auth0 lists them; the user id string is never split.
        let Some(entry) = secondary.identities.iter().find(|i| me.is(i)) else {
            tracing::warn!(user = %secondary.user_id, "the OIDC user lists no identity of this connection; not linking");
            return Ok(secondary.clone());
        };
        let refused = match self.api.link(&primary.user_id, entry, deadline).await? {
            Ok(()) => {
                tracing::info!(primary = %primary.user_id, secondary = %secondary.user_id, "linked by verified email");
                return Ok(primary.clone());
            }
            Err(refused) => refused,
        };
        if let Some(fresh) = self.api.get_user(&primary.user_id, deadline).await? {
            if me.held_by(&fresh) {
                tracing::info!(primary = %fresh.user_id, "already linked (a racing sign-in linked it first)");
                return Ok(fresh);
            }
        }
        if let Some(still) = self.api.get_user(&me.user_id, deadline).await? {
            tracing::error!(
                primary = %primary.user_id,
                secondary = %still.user_id,
                status = %refused.status,
                message = %refused.message,
                "Auth0 refused to link; the accounts stay apart until the next sign-in"
            );
            return Ok(still);
        }
        // Gone, and not into the user we chose: someone linked it elsewhere just now.
        let found = self.api.search_identity(me, deadline).await?;
        match found.into_iter().find(|u| u.user_id != me.user_id && me.held_by(u)) {
            Some(holder) => Ok(holder),
            None => Err(transient("the Auth0 user changed during sign-in; try again", None)),
        }
    }

    /// Brings `org_id` and `connection_id` in the user's `app_metadata` up to date.
    async fn finish(&self, user: &User, identity: &Identity, deadline: Instant) -> Result<LinkOutcome, AdapterError> {
        let current = user.app_metadata.clone().unwrap_or_default();
        let mut changes = Map::new();
        for (key, value) in [("org_id", &identity.organization_id), ("connection_id", &identity.connection_id)] {
            if let Some(value) = value {
                let wanted = Value::String(value.clone());
                if current.get(key) != Some(&wanted) {
                    changes.insert(key.to_owned(), wanted);
                }
            }
        }
        if !changes.is_empty() && self.api.update_app_metadata(&user.user_id, changes, deadline).await?.is_none() {
            // Linked into another user between our read and the update.
            return Err(transient("the Auth0 user changed during sign-in; try again", None));
        }
        Ok(linked(&user.user_id))
    }
}

fn same_address(user: &User, email: &str) -> bool {
    user.email.as_deref().is_some_and(|e| e.trim().to_lowercase() == email.to_lowercase())
}

impl Adapter for Auth0Adapter {
    fn name(&self) -> &'static str {
        "auth0"
    }

    fn link<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        let span = tracing::info_span!(
            "auth0_link",
            connection = %self.connection,
            connection_id = identity.connection_id.as_deref().unwrap_or(""),
        );
        Box::pin(
            async move {
                let deadline = Instant::now() + self.budget;
                match tokio::time::timeout_at(deadline, self.resolve(identity, deadline)).await {
                    Ok(result) => result,
                    Err(_) => Err(transient(format!("Auth0 did not finish within {}s", self.budget.as_secs()), None)),
                }
            }
            .instrument(span),
        )
    }

    fn disable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("auth0", "disable", user_id, self.disable_user(user_id))
    }

    fn enable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("auth0", "enable", user_id, self.enable_user(user_id))
    }

    fn delete<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited("auth0", "delete", user_id, self.delete_user(user_id))
    }

    fn set_roles<'a>(
        &'a self,
        user_id: &'a str,
        entitlements: &'a Entitlements,
        managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        ssobridge_adapter_core::audited(
            "auth0",
            "set_roles",
            user_id,
            self.set_user_roles(user_id, entitlements, managed),
        )
    }
}
