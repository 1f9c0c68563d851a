//! The event log: one event per login attempt (and per IdP-initiated hand-off, admin change and
//! deprovisioning), kept in the store where every instance writes and reads it, bounded by
//! count and age. Recording never waits for the store: events go to a writer task that appends
//! whatever has queued in one round trip, so the log is current within milliseconds and a
//! login costs no store command for it. No secret, code or token is ever an event field; the
//! email only if `events.include_email`, otherwise a keyed hash of it.

mod query;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use self::query::{Filter, Page};
use crate::config::EventsConfig;
use crate::store::{AnyStore, Store};

/// The store key of the log (one per deployment: the store adds the deployment's prefix).
const LOG_KEY: &str = "events";
/// Events waiting for the writer; beyond this they are dropped and counted, never blocking a login.
const QUEUE: usize = 10_000;
/// Most events appended in one round trip.
const BATCH: usize = 500;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A sign-in through `/authorize`, from start to the code (or its failure).
    Login,
    /// An IdP-initiated login handed to a client.
    IdpInitiated,
    /// A change made through the admin API (the audit line).
    Admin,
    /// A user deprovisioned or reactivated from their directory.
    Deprovision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

/// One event. Optional fields are left out when they do not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the store when the event is appended; empty before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// How the login was routed: `connection_id`, `organization_id`, `domain_hint`,
    /// `login_hint`, `default`, `fallback`, `home_realm_page`, `idp_initiated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_by: Option<String>,
    /// Why it failed: the `reason` of `ssobridge_logins_failed_total` (`login::REASONS`, an
    /// upstream error code of `login::UPSTREAM_ERRORS`, or an OAuth error code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The adapter's outcome: `linked`, `created`, `unchanged`, `refused`, `transient`,
    /// `misconfigured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Only with `events.include_email = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A keyed hash of the lower-cased email (the same address, the same hash, in one
    /// deployment): to follow one user without keeping their address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_hash: Option<String>,
    /// The subject the broker issued to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Who made an admin change (a token's label, never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl Event {
    /// A new event of `kind`, now.
    pub fn new(kind: Kind, outcome: Outcome) -> Event {
        Event {
            id: String::new(),
            time: rfc3339_millis(now_ms()),
            kind,
            outcome,
            request_id: None,
            client: None,
            organization: None,
            connection: None,
            routed_by: None,
            reason: None,
            adapter: None,
            upstream_ms: None,
            adapter_ms: None,
            duration_ms: None,
            email: None,
            email_hash: None,
            subject: None,
            actor: None,
            action: None,
            resource: None,
        }
    }
}

/// The log: record from anywhere, read from the admin API.
pub struct EventLog {
    store: AnyStore,
    queue: mpsc::Sender<Event>,
    include_email: bool,
    email_key: hmac::Key,
    max_events: u64,
    max_age: Duration,
    dropped: AtomicU64,
}

impl EventLog {
    /// The log over `store`, with its writer task (on the current Tokio runtime). `key_material`
    /// keys the email hash (the deployment's pairwise salt: stable, secret).
    pub fn start(store: AnyStore, config: &EventsConfig, key_material: &[u8]) -> Arc<EventLog> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let log = Arc::new(EventLog {
            store,
            queue,
            include_email: config.include_email,
            email_key: hmac::Key::new(hmac::HMAC_SHA256, &[b"ssobridge events\0", key_material].concat()),
            max_events: config.max_events,
            max_age: Duration::from_secs(config.max_age_hours * 3600),
            dropped: AtomicU64::new(0),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(write(Arc::downgrade(&log), receiver));
        }
        log
    }

    /// Queues `event`; never waits. A full queue (the store far behind) drops it and counts it.
    pub fn record(&self, event: Event) {
        crate::telemetry::count("ssobridge_events_total", &[("type", kind_name(event.kind))]);
        if self.queue.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::count("ssobridge_events_dropped_total", &[]);
        }
    }

    /// Sets the event's email fields as configured: the address, or its keyed hash.
    pub fn identify(&self, event: &mut Event, email: Option<&str>) {
        let Some(email) = email.filter(|e| !e.is_empty()) else { return };
        if self.include_email {
            event.email = Some(email.to_owned());
        } else {
            let tag = hmac::sign(&self.email_key, email.to_lowercase().as_bytes());
            event.email_hash = Some(hex(&tag.as_ref()[..16]));
        }
    }

    /// Events dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn keep_since_ms(&self) -> u64 {
        now_ms().saturating_sub(u64::try_from(self.max_age.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The writer: appends what has queued, in batches, until the log is dropped.
async fn write(log: std::sync::Weak<EventLog>, mut receiver: mpsc::Receiver<Event>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let Some(log) = log.upgrade() else { return };
        let encoded: Vec<Vec<u8>> = batch.iter().filter_map(|event| serde_json::to_vec(event).ok()).collect();
        if let Err(error) = log.store.log_append(LOG_KEY, &encoded, log.max_events, log.keep_since_ms()).await {
            // The login already happened; its event is lost, which the metric and this line say.
            tracing::warn!(error = %error, events = batch.len(), "event log write failed");
            crate::telemetry::count("ssobridge_events_dropped_total", &[]);
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Login => "login",
        Kind::IdpInitiated => "idp_initiated",
        Kind::Admin => "admin",
        Kind::Deprovision => "deprovision",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// `2026-12-06T03:04:05.678Z`.
pub fn rfc3339_millis(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
