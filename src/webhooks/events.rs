//! What each Scalekit event does (research/scalekit.md §8.2–§8.4). The table is the whole
//! dispatch: a type not in it is acknowledged and ignored.
//!
//! Route events re-read the organization's domains from Scalekit instead of applying the
//! event's own `data`: deliveries are not ordered (a `domain_created` with `PENDING` may arrive
//! after its `domain_dns_verification_success`), and SSO events carry no domains at all. The
//! current state is the same whatever the order.

use serde::Deserialize;
use serde_json::Value;

use crate::routing::sync::{remove_organization, sync_organization, Changes, SyncError};
use crate::state::AppState;
use crate::store::StoreError;

/// What an event type does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the organization's domains again and make its synced routes match.
    SyncOrganization,
    /// Delete the organization's synced routes (it is gone at Scalekit).
    RemoveOrganization,
    /// Record what the directory says of a user and queue the downstream work
    /// ([`crate::lifecycle::directory`]).
    DirectoryUser,
    /// Acknowledged: membership arrives on `user_updated` (a full set of groups and roles, also
    /// for each member of a deleted group), and a directory switched off deprovisions no one.
    DirectoryNotice,
}

/// The dispatch table. Domain events change routes directly; SSO events change which
/// connections Scalekit's lookup answers with (and are a cheap moment to re-read the domains);
/// `organization.updated` may follow a domain change made some other way.
pub const EVENTS: &[(&str, Action)] = &[
    ("organization.domain_created", Action::SyncOrganization),
    ("organization.domain_deleted", Action::SyncOrganization),
    ("organization.domain_dns_verification_success", Action::SyncOrganization),
    ("organization.domain_dns_verification_failed", Action::SyncOrganization),
    ("organization.sso_created", Action::SyncOrganization),
    ("organization.sso_enabled", Action::SyncOrganization),
    ("organization.sso_disabled", Action::SyncOrganization),
    ("organization.sso_deleted", Action::SyncOrganization),
    ("organization.created", Action::SyncOrganization),
    ("organization.updated", Action::SyncOrganization),
    ("organization.deleted", Action::RemoveOrganization),
    (crate::lifecycle::directory::USER_CREATED, Action::DirectoryUser),
    (crate::lifecycle::directory::USER_UPDATED, Action::DirectoryUser),
    (crate::lifecycle::directory::USER_DELETED, Action::DirectoryUser),
    ("organization.directory.group_created", Action::DirectoryNotice),
    ("organization.directory.group_updated", Action::DirectoryNotice),
    ("organization.directory.group_deleted", Action::DirectoryNotice),
    ("organization.directory_enabled", Action::DirectoryNotice),
    ("organization.directory_disabled", Action::DirectoryNotice),
];

/// The envelope of §8.2; `data` as sent.
#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    /// RFC 3339: orders deliveries of one directory user, which may arrive in any order.
    #[serde(default)]
    pub occurred_at: Option<String>,
    #[serde(default)]
    pub data: Value,
}

impl Event {
    /// The type as a metrics label: a type of the table, else `other` (bounded cardinality).
    pub fn label(&self) -> &'static str {
        EVENTS.iter().find(|(kind, _)| *kind == self.kind).map(|(kind, _)| *kind).unwrap_or("other")
    }

    /// The organization the event is about: `data.organization_id` (domain and SSO events),
    /// the envelope's, or `data.id` of an organization event.
    fn organization(&self) -> Option<&str> {
        let organization_event =
            matches!(self.kind.as_str(), "organization.created" | "organization.updated" | "organization.deleted");
        self.data
            .get("organization_id")
            .and_then(Value::as_str)
            .or(self.organization_id.as_deref())
            .or_else(|| organization_event.then(|| self.data.get("id").and_then(Value::as_str)).flatten())
            .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
    }
}

#[derive(Debug)]
pub enum Outcome {
    Applied {
        organization_id: String,
        changes: Changes,
    },
    /// A directory event recorded (`change`: `deprovisioned`, `reactivated`, `updated`,
    /// `noted`), its downstream work queued.
    Recorded {
        organization_id: String,
        change: &'static str,
    },
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Sync(#[from] SyncError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Directory(#[from] crate::lifecycle::directory::DirectoryError),
}

/// Does what the table says for `event`, now.
pub async fn apply(state: &AppState, event: &Event) -> Result<Outcome, ApplyError> {
    let Some(action) = EVENTS.iter().find(|(kind, _)| *kind == event.kind).map(|(_, action)| *action) else {
        return Ok(Outcome::Ignored("not an event ssobridge acts on"));
    };
    // `domain_created` fires for allowed email domains too (§8.4); those never route.
    if event.data.get("domain_type").and_then(Value::as_str) == Some("ALLOWED_EMAIL_DOMAIN") {
        return Ok(Outcome::Ignored("an allowed email domain, not an SSO domain"));
    }
    let Some(organization_id) = event.organization() else {
        return Ok(Outcome::Ignored("the event names no organization"));
    };
    match action {
        Action::DirectoryUser => {
            use crate::lifecycle::directory::{apply_user_event, UserEventOutcome};
            return Ok(match apply_user_event(state, &event.kind, event.occurred_at.as_deref(), &event.data).await? {
                UserEventOutcome::Changed { organization_id, change } => Outcome::Recorded { organization_id, change },
                UserEventOutcome::Ignored(why) => Outcome::Ignored(why),
            });
        }
        Action::DirectoryNotice => {
            return Ok(Outcome::Recorded { organization_id: organization_id.to_owned(), change: "noted" })
        }
        Action::SyncOrganization | Action::RemoveOrganization => {}
    }
    let Some(api) = &state.scalekit else {
        return Ok(Outcome::Ignored("[scalekit] is not configured"));
    };
    let table = state.routes();
    let changes = match action {
        Action::SyncOrganization => sync_organization(api, &table, organization_id).await?,
        Action::RemoveOrganization => remove_organization(&table, organization_id).await?,
        Action::DirectoryUser | Action::DirectoryNotice => return Ok(Outcome::Ignored("not a route event")),
    };
    // Every instance drops its route cache and lookup answers now, also when no route changed
    // (an SSO connection did, which the miss lookup may have cached).
    table.bump_generation().await;
    Ok(Outcome::Applied { organization_id: organization_id.to_owned(), changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: Value) -> Event {
        serde_json::from_value(json).expect("event")
    }

    #[test]
    fn the_organization_comes_from_data_then_the_envelope() {
        let domain = event(serde_json::json!({
            "spec_version": "1", "id": "evt_1", "type": "organization.domain_created", "object": "Organization",
            "organization_id": "org_env",
            "data": {"id": "dom_1", "domain": "acme.example", "organization_id": "org_data"},
        }));
        assert_eq!(domain.organization(), Some("org_data"));
        assert_eq!(domain.label(), "organization.domain_created");
        let org = event(serde_json::json!({"type": "organization.deleted", "data": {"id": "org_gone"}}));
        assert_eq!(org.organization(), Some("org_gone"));
        let sso = event(serde_json::json!({"type": "organization.sso_enabled", "data": {"id": "conn_1"}}));
        assert_eq!(sso.organization(), None, "a connection's id is not an organization");
        let odd = event(serde_json::json!({"type": "user.login", "organization_id": "org 1/../x"}));
        assert_eq!((odd.organization(), odd.label()), (None, "other"));
    }
}
