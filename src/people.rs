//! What the broker knows of a person beyond one login, kept by organization and lower-cased
//! email (the only join Scalekit offers between a directory user and an SSO login,
//! research/lifecycle.md §1.8), hashed so that no address is in a key:
//! - [`DirectoryRecord`], what the customer's directory last said (active, groups, roles),
//!   written by its webhooks ([`crate::lifecycle::directory`]), with what the downstreams
//!   were last brought to;
//! - [`Person`], who the user is at each client's adapter, written at every login.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use ssobridge_adapter_core::Entitlements;

use crate::jobs::JobQueue;
use crate::model::ClaimMapping;
use crate::store::{get_json, keys, update_json, AnyStore, StoreError};
use crate::tokens::sha256_hex;

/// The key part of a person: organization and lower-cased email, hashed (no address in a key).
pub fn person_id(organization_id: &str, email: &str) -> String {
    sha256_hex(&format!("{organization_id}\n{}", email.trim().to_lowercase()))
}

/// What the directory last said of a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryRecord {
    pub directory_user_id: String,
    pub organization_id: String,
    pub email: String,
    pub active: bool,
    /// Group names, sorted.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Role names Scalekit's directory mapping gives, sorted.
    #[serde(default)]
    pub roles: Vec<String>,
    /// When the directory said it (the event's `occurred_at`): an older event changes nothing.
    pub occurred_at_ms: u64,
    /// What the downstreams were last brought to; `None` before the first job ran.
    #[serde(default)]
    pub applied: Option<Applied>,
    /// What a job began bringing the downstreams to and has not yet confirmed (it is running,
    /// or failed half-way): until it does, the downstreams may be anywhere between `applied`
    /// and this, so the record is not settled and a directory event queues its own job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applying: Option<Applied>,
    /// The broker may hold this user disabled downstream: set before a deprovisioning job
    /// touches a downstream, cleared only once a job for an active user has succeeded. A
    /// reactivation enables them whenever it is set, even after a job that failed half-way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub may_be_disabled: bool,
}

/// The part of a [`DirectoryRecord`] that downstreams are brought to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub active: bool,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

impl DirectoryRecord {
    pub fn desired(&self) -> Applied {
        Applied { active: self.active, groups: self.groups.clone(), roles: self.roles.clone() }
    }

    /// Whether the last job left every downstream as the record says, and none is under way.
    pub fn settled(&self) -> bool {
        self.applying.is_none() && self.applied.as_ref() == Some(&self.desired())
    }

    /// Whether a downstream may hold the user disabled by the broker (then reactivating them
    /// must enable them).
    pub fn may_be_disabled(&self) -> bool {
        self.may_be_disabled || [&self.applied, &self.applying].into_iter().flatten().any(|a| !a.active)
    }

    /// The entitlements a client with `mapping` gives this user: its directory groups, and the
    /// roles its groups and directory roles map to.
    pub fn entitlements(&self, mapping: &ClaimMapping) -> Entitlements {
        let names = self.groups.iter().chain(&self.roles).map(String::as_str);
        Entitlements {
            groups: if mapping.groups { self.groups.clone() } else { Vec::new() },
            roles: mapping.roles_for(names),
        }
    }
}

/// Who a user is downstream: written at each login.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The upstream subjects (`conn_…;…`) the user signed in as, newest last.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Client id to the user's id at that client's adapter.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
}

/// At most this many upstream subjects are kept per person (one per connection in practice).
const MAX_SUBJECTS: usize = 16;

/// The directory's word on a user signing in: `Some(record)` when it has one.
pub async fn record_of(
    store: &AnyStore,
    organization_id: &str,
    email: &str,
) -> Result<Option<DirectoryRecord>, StoreError> {
    get_json(store, &keys::directory_user(&person_id(organization_id, email))).await
}

/// Remembers, at a login, the upstream subject and the client's downstream user of a person.
pub async fn remember_login(
    store: &AnyStore,
    organization_id: &str,
    email: &str,
    upstream_subject: &str,
    client_id: &str,
    downstream_user_id: Option<&str>,
) -> Result<(), StoreError> {
    let key = keys::person(&person_id(organization_id, email));
    update_json(store, &key, |current: Option<Person>| {
        let mut person = current.clone().unwrap_or_default();
        if !person.subjects.iter().any(|s| s == upstream_subject) {
            person.subjects.push(upstream_subject.to_owned());
            if person.subjects.len() > MAX_SUBJECTS {
                person.subjects.remove(0);
            }
        }
        if let Some(user_id) = downstream_user_id {
            person.links.insert(client_id.to_owned(), user_id.to_owned());
        }
        // Written only when it changes: a returning user's login costs a read.
        (current.as_ref() != Some(&person)).then_some(person)
    })
    .await
    .map(|_| ())
}

/// Queues, after a login, the writing of the user's roles to the client's downstream.
pub async fn queue_roles_after_login(jobs: &JobQueue, person: &str, client_id: &str) -> Result<(), StoreError> {
    jobs.enqueue("roles", json!({ "person": person, "after_login": client_id })).await.map(|_| ())
}
