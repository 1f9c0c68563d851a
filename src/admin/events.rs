//! `/admin/events`: the event log, filtered and paged, one event by id, and an NDJSON export
//! for SIEMs.

use std::sync::Arc;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use time::OffsetDateTime;

use super::{problem, unavailable, AdminToken, Problem, Tag, DEFAULT_PAGE, MAX_PAGE};
use crate::events::{Event as StoredEvent, Filter, Kind, Outcome};
use crate::state::AppState;

/// The most events one export holds (the log is bounded by `events.max_events` anyway).
const MAX_EXPORT: usize = 1_000_000;

pub struct EventsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum EventType {
    /// A sign-in through `/authorize`, from its start to the code or its failure.
    Login,
    /// An IdP-initiated login handed to a client.
    IdpInitiated,
    /// A change made through the admin API.
    Admin,
    /// A user deprovisioned or reactivated from their directory.
    Deprovision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum EventOutcome {
    Success,
    Failure,
}

/// One event. Fields that do not apply to it are absent. No secret, code or token is ever
/// part of an event; the email only with `events.include_email`, else `email_hash`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Event {
    /// Orders the log by time (`<milliseconds>-<sequence>`); a cursor for paging.
    pub id: String,
    /// RFC 3339, UTC.
    pub time: String,
    #[oai(rename = "type")]
    pub kind: EventType,
    pub outcome: EventOutcome,
    /// The `X-Request-Id` of the request that ended the attempt (in the broker's logs too).
    pub request_id: Option<String>,
    pub client: Option<String>,
    pub organization: Option<String>,
    pub connection: Option<String>,
    /// How the login was routed: `connection_id`, `organization_id`, `domain_hint`,
    /// `login_hint` (its domain's route), `default` (the client's), `fallback`,
    /// `home_realm_page` (the email typed there), `idp_initiated`.
    pub routed_by: Option<String>,
    /// Why it failed, as `ssobridge_logins_failed_total{reason}` says it: the upstream's error
    /// code (`user_not_active`, `domain_not_found`, ...; an unknown one is
    /// `upstream_error_other`), the broker's own (`invalid_state`, `nonce_mismatch`,
    /// `organization_mismatch`, `adapter_refused`, `redirect_uri_not_registered`, ...), or the
    /// OAuth error code when nothing says more. The list: README, "Login events".
    pub reason: Option<String>,
    /// What the adapter did: `linked`, `created`, `unchanged`, `refused`, `transient`,
    /// `misconfigured`.
    pub adapter: Option<String>,
    /// Time spent at the upstream (the code exchange and the ID token's verification; for an
    /// IdP-initiated login, its token's), in milliseconds.
    pub upstream_ms: Option<u64>,
    /// Time spent in the adapter, in milliseconds.
    pub adapter_ms: Option<u64>,
    /// From the start of the attempt (the client's `/authorize`) to its end, in milliseconds.
    pub duration_ms: Option<u64>,
    pub email: Option<String>,
    /// A keyed hash of the lower-cased email: the same user, the same hash.
    pub email_hash: Option<String>,
    /// The `sub` the broker issued to the client.
    pub subject: Option<String>,
    /// Who made an admin change (a token's label).
    pub actor: Option<String>,
    /// The admin change (`client.update`, `route.create`, `keys.rotate`, ...).
    pub action: Option<String>,
    /// What it changed (a client id, a route's domain, a key id).
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct EventPage {
    /// Newest first.
    pub items: Vec<Event>,
    /// Pass as `cursor` for older events; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ListResponse {
    #[oai(status = 200)]
    Ok(Json<EventPage>),
    /// Bad query parameters.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request and returned at once
pub enum GetResponse {
    #[oai(status = 200)]
    Ok(Json<Event>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// No such event, or the log no longer holds it.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum ExportResponse {
    /// One event per line, as JSON (newline-delimited JSON), newest first.
    #[oai(status = 200, content_type = "application/x-ndjson")]
    Ok(Binary<Vec<u8>>),
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

/// The query's filter.
fn filter(
    kind: Option<EventType>,
    client: Option<String>,
    organization: Option<String>,
    outcome: Option<EventOutcome>,
    reason: Option<String>,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Filter {
    let ms = |time: OffsetDateTime| u64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Filter {
        kind: kind.map(|kind| match kind {
            EventType::Login => Kind::Login,
            EventType::IdpInitiated => Kind::IdpInitiated,
            EventType::Admin => Kind::Admin,
            EventType::Deprovision => Kind::Deprovision,
        }),
        client: client.filter(|c| !c.is_empty()),
        organization: organization.filter(|o| !o.is_empty()),
        outcome: outcome.map(|outcome| match outcome {
            EventOutcome::Success => Outcome::Success,
            EventOutcome::Failure => Outcome::Failure,
        }),
        reason: reason.filter(|r| !r.is_empty()),
        since_ms: since.map(ms),
        until_ms: until.map(ms),
        after: None,
    }
}

/// The API's view of an event: its JSON form read as the schema type.
fn view(event: StoredEvent) -> Option<Event> {
    let document = serde_json::to_value(&event).ok()?;
    Event::parse_from_json(Some(document))
        .map_err(|e| tracing::error!(error = %e.message(), "an event does not fit the API schema"))
        .ok()
}

#[OpenApi(tag = "Tag::Events")]
impl EventsApi {
    /// List events
    ///
    /// Newest first. Every filter given must match; `since` and `until` are RFC 3339 times.
    #[oai(path = "/events", method = "get")]
    #[allow(clippy::too_many_arguments)] // the query parameters, as poem-openapi takes them
    async fn list(
        &self,
        _auth: AdminToken,
        #[oai(name = "type")] kind: Query<Option<EventType>>,
        client: Query<Option<String>>,
        organization: Query<Option<String>>,
        outcome: Query<Option<EventOutcome>>,
        /// The failure reason, e.g. `access_denied` or `organization_mismatch`.
        reason: Query<Option<String>>,
        since: Query<Option<OffsetDateTime>>,
        until: Query<Option<OffsetDateTime>>,
        /// Page size, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// From a previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Only events newer than this event id, e.g. the newest one a live view shows: it
        /// then reads what came since, not a page again.
        #[oai(validator(pattern = "^[0-9]{1,15}-[0-9]{1,19}$"))]
        after: Query<Option<String>>,
    ) -> ListResponse {
        let mut filter = filter(kind.0, client.0, organization.0, outcome.0, reason.0, since.0, until.0);
        if let Some(after) = after.0.filter(|a| !a.is_empty()) {
            let Some(id) = crate::store::parse_log_id(&after) else {
                return ListResponse::BadRequest(problem(400, "after must be an event id, e.g. 1765432100000-0"));
            };
            filter.after = Some(id);
        }
        let limit = limit.0.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
        match self.state.events.page(&filter, limit, cursor.0.as_deref()).await {
            Ok(page) => ListResponse::Ok(Json(EventPage {
                items: page.events.into_iter().filter_map(view).collect(),
                next_cursor: page.next_cursor,
            })),
            Err(error) => ListResponse::Unavailable(unavailable(error)),
        }
    }

    /// Export events
    ///
    /// The events the same filters select, all of them, as newline-delimited JSON for a SIEM.
    #[oai(path = "/events/export", method = "get")]
    #[allow(clippy::too_many_arguments)] // the query parameters, as poem-openapi takes them
    async fn export(
        &self,
        _auth: AdminToken,
        #[oai(name = "type")] kind: Query<Option<EventType>>,
        client: Query<Option<String>>,
        organization: Query<Option<String>>,
        outcome: Query<Option<EventOutcome>>,
        reason: Query<Option<String>>,
        since: Query<Option<OffsetDateTime>>,
        until: Query<Option<OffsetDateTime>>,
    ) -> ExportResponse {
        let filter = filter(kind.0, client.0, organization.0, outcome.0, reason.0, since.0, until.0);
        let mut body = Vec::new();
        let (mut cursor, mut exported) = (None, 0);
        loop {
            let page = match self.state.events.page(&filter, 1000, cursor.as_deref()).await {
                Ok(page) => page,
                Err(error) => return ExportResponse::Unavailable(unavailable(error)),
            };
            for event in page.events {
                if serde_json::to_writer(&mut body, &event).is_ok() {
                    body.push(b'\n');
                    exported += 1;
                }
            }
            match page.next_cursor {
                Some(next) if exported < MAX_EXPORT => cursor = Some(next),
                _ => return ExportResponse::Ok(Binary(body)),
            }
        }
    }

    /// Get an event
    #[oai(path = "/events/:id", method = "get")]
    async fn get(&self, _auth: AdminToken, id: Path<String>) -> GetResponse {
        match self.state.events.get(&id.0).await {
            Ok(Some(event)) => match view(event) {
                Some(event) => GetResponse::Ok(Json(event)),
                None => GetResponse::Unavailable(problem(503, "internal error")),
            },
            Ok(None) => GetResponse::NotFound(problem(404, format!("no event {}", id.0))),
            Err(error) => GetResponse::Unavailable(unavailable(error)),
        }
    }
}
