//! `POST /webhooks/scalekit`: Scalekit's signed events (Standard Webhooks, research/scalekit.md
//! §8), in three steps, each in one place:
//!
//! 1. [`signature::verify`]: the three `webhook-*` headers, the raw body, the configured secret
//!    and the clock. Nothing is parsed, read or written before a delivery passes.
//! 2. Idempotency ([`claim`]): the `webhook-id` is claimed in the store. A redelivery of a done
//!    id answers 200 and changes nothing; one being applied elsewhere answers 409 (Scalekit
//!    retries with the same id); a failed one is released for the retry.
//! 3. Dispatch ([`events::EVENTS`]): the event type names what to do. Route events are applied
//!    before the answer, so that a failure answers 503 and Scalekit's retry tries again.
//!    Unknown types answer 200 and are ignored.
//!
//! An event family whose work is long (directory users and groups) can, in step 3, queue its
//! work durably in the store and answer once it is queued; steps 1 and 2 stay as they are.

pub mod events;
/// The signature check lives with the other key material ([`crate::tokens`]): the shared state
/// decodes the secret at start, below this face.
pub use crate::tokens::webhook_signature as signature;

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde_json::json;

use self::events::{Event, Outcome};
use self::signature::SignatureError;
use crate::clock::now_secs;
use crate::routing::sync::WebhookRecord;
use crate::state::AppState;
use crate::store::{keys, Store, StoreError};

pub const PATH: &str = "/webhooks/scalekit";
/// Scalekit's events are small (a domain, a connection); a directory user with its raw
/// attributes is the largest documented one.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A claimed delivery not finished within this time (its instance died) may be tried again.
const PENDING_TTL: Duration = Duration::from_secs(60);
/// How long a done `webhook-id` is remembered: Scalekit (Svix) retries one message for about a
/// day (research/scalekit.md §8.1), each time freshly signed; far beyond the 5-minute tolerance.
const DONE_TTL: Duration = Duration::from_secs(48 * 3600);

fn answer(status: StatusCode, outcome: &str) -> Response {
    crate::oidc::error::json_response(status, &json!({ "status": outcome }))
}

/// What the store says about a `webhook-id`.
enum Claim {
    /// Ours to apply.
    New,
    Done,
    /// Another delivery of it is being applied.
    InProgress,
}

/// Claims `key` for this delivery, or says why not.
async fn claim<S: Store>(store: &S, key: &str) -> Result<Claim, StoreError> {
    if store.put_new(key, b"pending", PENDING_TTL).await? {
        return Ok(Claim::New);
    }
    Ok(match store.get(key).await?.as_deref() {
        Some(b"done") => Claim::Done,
        Some(_) => Claim::InProgress,
        // It expired between the two calls: claim it again.
        None if store.put_new(key, b"pending", PENDING_TTL).await? => Claim::New,
        None => Claim::InProgress,
    })
}

#[handler]
pub async fn scalekit(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let Some(secret_key) = state.webhook_key() else {
        // Not configured: as if the endpoint did not exist.
        return answer(StatusCode::NOT_FOUND, "not_found");
    };
    let count = |event: &str, outcome: &str| {
        crate::telemetry::count("ssobridge_webhooks_total", &[("event", event), ("outcome", outcome)]);
    };
    let Ok(body) = body.into_bytes_limit(MAX_BODY_BYTES).await else {
        count("unverified", "refused");
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = signature::Headers {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let id = match signature::verify(headers, &body, secret_key, now_secs()) {
        Ok(id) => id,
        Err(error) => {
            count("unverified", "refused");
            tracing::warn!(reason = %error, "webhook refused");
            let status = match error {
                SignatureError::MissingHeaders => StatusCode::BAD_REQUEST,
                SignatureError::Stale | SignatureError::Mismatch => StatusCode::UNAUTHORIZED,
            };
            return answer(status, "refused");
        }
    };
    let event: Event = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            count("other", "refused");
            tracing::warn!(webhook_id = id, error = %error, "signed webhook is not an event");
            return answer(StatusCode::BAD_REQUEST, "malformed");
        }
    };
    let label = event.label();
    let key = keys::webhook(&crate::tokens::sha256_hex(id));
    match claim(&state.store, &key).await {
        Ok(Claim::New) => {}
        Ok(Claim::Done) => {
            count(label, "duplicate");
            tracing::info!(webhook_id = id, event = %event.kind, "webhook already applied; nothing to do");
            return answer(StatusCode::OK, "duplicate");
        }
        Ok(Claim::InProgress) => {
            count(label, "in_progress");
            return answer(StatusCode::CONFLICT, "in_progress");
        }
        Err(error) => {
            count(label, "failed");
            tracing::error!(webhook_id = id, error = %error, "store failure at a webhook");
            return answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        }
    }
    match events::apply(&state, &event).await {
        Ok(outcome) => {
            // Losing the done marker only means a redelivery is applied again, which is harmless.
            let _ = state.store.put(&key, b"done", DONE_TTL).await;
            match outcome {
                Outcome::Applied { organization_id, changes } => {
                    count(label, "applied");
                    tracing::info!(
                        webhook_id = id,
                        event = %event.kind,
                        organization_id = %organization_id,
                        added = changes.added,
                        updated = changes.updated,
                        removed = changes.removed,
                        "webhook applied"
                    );
                    let record = WebhookRecord {
                        received_at: now_secs(),
                        event_type: event.kind.clone(),
                        organization_id: Some(organization_id),
                        changes,
                    };
                    if let Ok(bytes) = serde_json::to_vec(&record) {
                        let _ = state.store.set(keys::WEBHOOK_LAST, &bytes).await;
                    }
                    answer(StatusCode::OK, "applied")
                }
                Outcome::Recorded { organization_id, change } => {
                    count(label, "applied");
                    tracing::info!(webhook_id = id, event = %event.kind, organization_id = %organization_id, change, "directory event recorded");
                    answer(StatusCode::OK, "applied")
                }
                Outcome::Ignored(why) => {
                    count(label, "ignored");
                    tracing::info!(webhook_id = id, event = %event.kind, why, "webhook ignored");
                    answer(StatusCode::OK, "ignored")
                }
            }
        }
        Err(error) => {
            let _ = state.store.delete(&key).await;
            count(label, "failed");
            tracing::warn!(webhook_id = id, event = %event.kind, error = %error, "webhook not applied; Scalekit will retry");
            answer(StatusCode::SERVICE_UNAVAILABLE, "retry")
        }
    }
}
