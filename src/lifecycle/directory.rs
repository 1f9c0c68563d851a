//! A customer's directory (Scalekit directory sync: SCIM from Okta, Entra ID, Google
//! Workspace), as its webhooks tell it (research/lifecycle.md §1).
//!
//! What it says is kept in [`crate::people`].
//!
//! The webhook only writes the record and queues a job; the job ([`reconcile`]) brings every
//! downstream to what the record says *when it runs*. Deliveries arrive in any order and any
//! number of times, and a job may run twice: the result is the same, because each event is
//! judged by its `occurred_at` and each job reads the current record.

use serde::Deserialize;
use serde_json::{json, Value};
use ssobridge_adapter_core::{AdapterError, UserChange};

use crate::events::{Event, Kind, Outcome};
use crate::jobs::JobError;
use crate::model::Deprovision;
use crate::people::{person_id, Applied, DirectoryRecord, Person};
use crate::state::AppState;
use crate::store::{get_json, keys, update_json, Store, StoreError};

/// The directory user events the broker acts on.
pub const USER_CREATED: &str = "organization.directory.user_created";
pub const USER_UPDATED: &str = "organization.directory.user_updated";
pub const USER_DELETED: &str = "organization.directory.user_deleted";

/// `DirectoryUserEventData` (research/lifecycle.md §1.3); `user_deleted` carries only `id`,
/// `organization_id` and `email`.
#[derive(Debug, Deserialize)]
struct DirectoryUser {
    id: String,
    organization_id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    groups: Option<Vec<GroupRef>>,
    #[serde(default)]
    roles: Option<Vec<RoleRef>>,
}

#[derive(Debug, Deserialize)]
struct GroupRef {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RoleRef {
    role_name: String,
}

/// What a directory user event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserEventOutcome {
    /// The record changed: `change` is `deprovisioned`, `reactivated` or `updated`.
    Changed { organization_id: String, change: &'static str },
    /// Nothing to do, and why.
    Ignored(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the record of a directory user changed concurrently too many times")]
    Contended,
}

/// Applies a signed directory user event: writes the record and, when a downstream must
/// change, queues the job that changes it. Answers once both are stored.
pub async fn apply_user_event(
    app: &AppState,
    kind: &str,
    occurred_at: Option<&str>,
    data: &Value,
) -> Result<UserEventOutcome, DirectoryError> {
    let Ok(user) = DirectoryUser::deserialize(data) else {
        return Ok(UserEventOutcome::Ignored("the event carries no directory user"));
    };
    let Some(email) = user.email.as_deref().map(str::trim).filter(|e| e.contains('@')) else {
        return Ok(UserEventOutcome::Ignored("the directory user has no email to match a login by"));
    };
    let occurred_at_ms = occurred_at.and_then(parse_rfc3339_ms).unwrap_or_else(crate::events::now_ms);
    let person = person_id(&user.organization_id, email);
    let key = keys::directory_user(&person);
    for _ in 0..8 {
        let current_bytes = app.store.get(&key).await?;
        let current: Option<DirectoryRecord> =
            current_bytes.as_deref().and_then(|bytes| serde_json::from_slice(bytes).ok());
        if current.as_ref().is_some_and(|c| c.occurred_at_ms > occurred_at_ms) {
            return Ok(UserEventOutcome::Ignored("older than what the directory said since"));
        }
        let was_active = current.as_ref().is_none_or(|c| c.active);
        let active = match kind {
            USER_DELETED => false,
            USER_CREATED => user.active.unwrap_or(true),
            _ => user.active.unwrap_or(was_active),
        };
        // Groups and roles come as full sets; an event without them (`user_deleted` carries
        // only the user's id and email) keeps what the record had.
        let keep = |pick: fn(&DirectoryRecord) -> &Vec<String>| current.as_ref().map(pick).cloned().unwrap_or_default();
        let sent = kind != USER_DELETED;
        let groups =
            user.groups.as_ref().filter(|_| sent).map(|groups| {
                sorted_names(groups.iter().filter_map(|g| g.name.as_deref().or(g.display_name.as_deref())))
            });
        let roles =
            user.roles.as_ref().filter(|_| sent).map(|roles| sorted_names(roles.iter().map(|r| r.role_name.as_str())));
        let record = DirectoryRecord {
            directory_user_id: user.id.clone(),
            organization_id: user.organization_id.clone(),
            email: email.to_owned(),
            active,
            groups: groups.unwrap_or_else(|| keep(|c| &c.groups)),
            roles: roles.unwrap_or_else(|| keep(|c| &c.roles)),
            occurred_at_ms,
            applied: current.as_ref().and_then(|c| c.applied.clone()),
            applying: current.as_ref().and_then(|c| c.applying.clone()),
            may_be_disabled: current.as_ref().is_some_and(|c| c.may_be_disabled),
        };
        let change = match (was_active, active) {
            (true, false) => "deprovisioned",
            (false, true) => "reactivated",
            _ => "updated",
        };
        if current.as_ref() == Some(&record) && record.settled() {
            return Ok(UserEventOutcome::Ignored("the directory user is already as the event says"));
        }
        // The job first: a record written without its job would leave a downstream behind
        // with nothing to bring it along (a redelivery finds the record unchanged). A job
        // that runs before the record is written finds nothing to do and a later one runs.
        if !record.settled() {
            let job_kind = match (record.active, record.may_be_disabled()) {
                (false, _) => "deprovision",
                (true, true) => "reactivate",
                (true, false) => "roles",
            };
            app.jobs.enqueue(job_kind, json!({ "person": person, "organization_id": user.organization_id })).await?;
        }
        let bytes =
            serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt { key: key.clone(), detail: e.to_string() })?;
        if app.store.replace(&key, current_bytes.as_deref(), &bytes).await? {
            if change != "updated" {
                let mut event = Event::new(Kind::Deprovision, Outcome::Success);
                event.organization = Some(user.organization_id.clone());
                event.action = Some(change.to_owned());
                event.reason = Some(kind.rsplit('.').next().unwrap_or(kind).to_owned());
                app.events.identify(&mut event, Some(email));
                app.events.record(event);
            }
            tracing::info!(organization_id = %user.organization_id, change, "directory user recorded");
            return Ok(UserEventOutcome::Changed { organization_id: user.organization_id, change });
        }
    }
    Err(DirectoryError::Contended)
}

/// Names trimmed, without empty ones, sorted, each once.
fn sorted_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = names.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
    names.sort();
    names.dedup();
    names
}

fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The job's task.
#[derive(Debug, Deserialize)]
struct Task {
    person: String,
    /// Set by a login: the client whose new downstream user gets its roles (Auth0 creates it
    /// only when it redeems the code, so "not found" is worth waiting for).
    #[serde(default)]
    after_login: Option<String>,
}

/// Brings every client's downstream user of the person to what the directory record says.
pub async fn reconcile(app: &AppState, task: &Value) -> Result<(), JobError> {
    let task: Task = Task::deserialize(task).map_err(|e| JobError::Permanent(format!("not a directory task: {e}")))?;
    // One job per person at a time across the fleet (the queue claims one job at a time, not
    // one person): two instances must not interleave one user's downstream writes.
    let lock = keys::person_lock(&task.person);
    if !app.store.put_new(&lock, b"1", PERSON_LEASE).await.map_err(retry)? {
        return Err(JobError::Retry("another job is bringing this user along".into()));
    }
    let outcome = reconcile_locked(app, &task).await;
    if let Err(error) = app.store.delete(&lock).await {
        tracing::warn!(error = %error, "a person's job lease was not released; it runs out by itself");
    }
    outcome
}

/// How long one job may hold a person (the queue's own lease is as long).
const PERSON_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

async fn reconcile_locked(app: &AppState, task: &Task) -> Result<(), JobError> {
    let record_key = keys::directory_user(&task.person);
    let person: Person = get_json(&app.store, &keys::person(&task.person)).await.map_err(retry)?.unwrap_or_default();
    if let Some(client_id) = &task.after_login {
        let record: Option<DirectoryRecord> = get_json(&app.store, &record_key).await.map_err(retry)?;
        return match record {
            Some(record) => after_login(app, &record, &person, client_id).await,
            None => Ok(()),
        };
    }
    let Some(record) = begin(app, &record_key).await? else {
        return Ok(()); // no directory word on this person, or nothing left to bring about
    };
    let target = record.desired();
    let enable = record.may_be_disabled();
    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    for (client_id, user_id) in &person.links {
        let Some(client) = app.client(client_id).await.map_err(retry)? else { continue };
        let spec = &client.record.spec;
        let adapter = &client.adapter;
        let action = match (record.active, enable, spec.deprovision) {
            (false, _, Deprovision::Disable) => "user.disable",
            (false, _, Deprovision::Delete) => "user.delete",
            (true, true, Deprovision::Disable) => "user.enable",
            _ => "user.roles",
        };
        let result = match (record.active, enable, spec.deprovision) {
            (false, _, Deprovision::Disable) => adapter.disable(user_id).await,
            (false, _, Deprovision::Delete) => {
                let result = adapter.delete(user_id).await;
                if result.is_ok() {
                    deleted.push(client_id.clone());
                }
                result
            }
            (true, true, Deprovision::Disable) => adapter.enable(user_id).await,
            (false, _, Deprovision::None) | (true, true, _) | (true, false, _) => Ok(UserChange::Unchanged),
        };
        let result = match result {
            Ok(_) if record.active && spec.claims.wants_entitlements() => {
                adapter.set_roles(user_id, &record.entitlements(&spec.claims), &spec.claims.managed_roles()).await
            }
            other => other,
        };
        match result {
            // The same audit line as an admin change, its actor the customer's directory.
            Ok(change) => tracing::info!(
                target: "audit",
                audit = true,
                actor = "directory",
                action,
                resource = %format!("{client_id}/{user_id}"),
                adapter = adapter.name(),
                ?change,
                active = record.active,
                "downstream user brought to the directory's word"
            ),
            Err(error) => failures.push(adapter_failure(client_id, adapter.name(), error)),
        }
    }
    if !record.active {
        ended_sessions(app, &person).await?;
    }
    if let Some(failure) = failures.iter().find(|f| matches!(f, JobError::Retry(_))).or(failures.first()) {
        // The record keeps saying that this job began (`applying`, `may_be_disabled`): its
        // retry, and any job a newer event queues, know what may already have changed.
        return Err(failure.clone());
    }
    if !deleted.is_empty() {
        forget_links(app, &task.person, &deleted).await.map_err(retry)?;
    }
    settle(app, &record_key, &target).await
}

/// Marks in the record, before any downstream is touched, that a job is bringing them to what
/// it says now (and, for a deprovisioning, that they may hold the user disabled from here
/// on). An event arriving meanwhile then finds the record unsettled and queues its own job,
/// which runs after this one; a retry after a half-done attempt knows what it may have
/// changed. `None`: no record, or it is settled.
async fn begin(app: &AppState, key: &str) -> Result<Option<DirectoryRecord>, JobError> {
    update_json(&app.store, key, |record: Option<DirectoryRecord>| {
        let mut record = record.filter(|r| !r.settled())?;
        record.applying = Some(record.desired());
        record.may_be_disabled |= !record.active;
        Some(record)
    })
    .await
    .map_err(record_error)
}

/// Marks the record applied up to `target`. What a newer event asked meanwhile stays unsettled
/// (its own job follows: `begin` made sure the event saw this one under way).
async fn settle(app: &AppState, key: &str, target: &Applied) -> Result<(), JobError> {
    update_json(&app.store, key, |record: Option<DirectoryRecord>| {
        let mut record = record?;
        record.applied = Some(target.clone());
        if record.applying.as_ref() == Some(target) {
            record.applying = None;
        }
        // Enabled everywhere, and no other job under way that may have disabled since.
        if target.active && record.applying.is_none() {
            record.may_be_disabled = false;
        }
        Some(record)
    })
    .await
    .map(|_| ())
    .map_err(record_error)
}

/// A directory record that does not decode cannot be brought along by trying again.
fn record_error(error: StoreError) -> JobError {
    match error {
        StoreError::Corrupt { detail, .. } => JobError::Permanent(format!("unreadable directory record: {detail}")),
        other => retry(other),
    }
}

async fn after_login(
    app: &AppState,
    record: &DirectoryRecord,
    person: &Person,
    client_id: &str,
) -> Result<(), JobError> {
    if !record.active {
        return Ok(());
    }
    let (Some(user_id), Some(client)) = (person.links.get(client_id), app.client(client_id).await.map_err(retry)?)
    else {
        return Ok(());
    };
    let mapping = &client.record.spec.claims;
    match client.adapter.set_roles(user_id, &record.entitlements(mapping), &mapping.managed_roles()).await {
        Ok(UserChange::NotFound) => Err(JobError::Retry("the downstream has not created the user yet".into())),
        Ok(_) => Ok(()),
        Err(error) => Err(adapter_failure(client_id, client.adapter.name(), error)),
    }
}

/// Ends the broker's sessions of a deprovisioned person: their access tokens stop working and
/// clients that registered a back-channel logout are told.
async fn ended_sessions(app: &AppState, person: &Person) -> Result<(), JobError> {
    for subject in &person.subjects {
        let ended = crate::login::logout::end_user_sessions(app, subject).await.map_err(retry)?;
        tracing::info!(sessions = ended, "a deprovisioned user's broker sessions ended");
    }
    Ok(())
}

async fn forget_links(app: &AppState, person: &str, clients: &[String]) -> Result<(), StoreError> {
    update_json(&app.store, &keys::person(person), |current: Option<Person>| {
        let mut current = current?;
        current.links.retain(|client, _| !clients.contains(client));
        Some(current)
    })
    .await
    .map(|_| ())
}

fn adapter_failure(client_id: &str, adapter: &str, error: AdapterError) -> JobError {
    let text = format!("client {client_id} ({adapter}): {error}");
    match error {
        AdapterError::Transient { .. } => JobError::Retry(text),
        _ => JobError::Permanent(text),
    }
}

fn retry(error: StoreError) -> JobError {
    JobError::Retry(format!("store: {error}"))
}
