//! What a login attempt leaves behind for the operator: one event in the event log and its
//! counters, with the same `client` and `reason`. Each step fills an [`Attempt`] as it learns
//! (the client, where the login was routed, the upstream's and the adapter's time and answer,
//! the user) and ends it once, where the step returns: [`Attempt::succeeded`] or
//! [`Attempt::failed`]. No code, token or secret is ever put in it; the email is hashed unless
//! `events.include_email`.

use std::time::{Duration, Instant};

use ssobridge_adapter_core::{AdapterError, LinkOutcome};

use super::error::LoginError;
use super::records::AuthorizationRequest;
use crate::events::{Event, Kind, Outcome};
use crate::routing::RoutedBy;
use crate::state::AppState;

/// Where a failure was answered: `/authorize` counts its refusals apart as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `/authorize` (and the home-realm page's email): the user was not sent upstream.
    Authorize,
    /// After the upstream: `/callback`, or an IdP-initiated hand-off.
    Upstream,
}

/// One login attempt, as far as it got.
#[derive(Debug)]
pub struct Attempt {
    started: Instant,
    /// When the attempt began, if in an earlier request (the `/authorize` of a callback).
    pub began_ms: Option<u64>,
    kind: Kind,
    /// A registered client's id only: what a request names is not trusted until then.
    pub client: Option<String>,
    pub organization: Option<String>,
    pub connection: Option<String>,
    pub routed_by: Option<&'static str>,
    pub upstream: Option<Duration>,
    pub adapter: Option<(&'static str, Duration)>,
    pub subject: Option<String>,
    pub email: Option<String>,
}

impl Attempt {
    /// An attempt starting now.
    pub fn start(kind: Kind) -> Attempt {
        Attempt {
            started: Instant::now(),
            began_ms: None,
            kind,
            client: None,
            organization: None,
            connection: None,
            routed_by: None,
            upstream: None,
            adapter: None,
            subject: None,
            email: None,
        }
    }

    /// A login attempt of a validated `request`: its client, and the organization, connection
    /// and user it names.
    pub fn of_request(request: &AuthorizationRequest) -> Attempt {
        let mut attempt = Attempt::start(Kind::Login);
        attempt.client = Some(request.client_id.clone());
        attempt.began_ms = Some(request.requested_at_ms).filter(|ms| *ms > 0);
        attempt.organization = request.selectors.organization_id.clone();
        attempt.connection = request.selectors.connection_id.clone();
        attempt.email = request.selectors.login_hint.clone().map(String::from);
        attempt
    }

    /// Times `future` as the upstream's part of the attempt.
    pub async fn at_upstream<T>(&mut self, future: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let result = future.await;
        self.upstream = Some(self.upstream.unwrap_or_default() + started.elapsed());
        result
    }

    /// Times the adapter's `link` and keeps its outcome; counted in
    /// `ssobridge_adapter_duration_seconds{adapter,outcome}`.
    pub async fn at_adapter(
        &mut self,
        adapter: &'static str,
        future: impl std::future::Future<Output = Result<LinkOutcome, AdapterError>>,
    ) -> Result<LinkOutcome, AdapterError> {
        let started = Instant::now();
        let result = future.await;
        let elapsed = started.elapsed();
        let outcome = adapter_outcome(&result);
        crate::telemetry::observe(
            "ssobridge_adapter_duration_seconds",
            &[("adapter", adapter), ("outcome", outcome)],
            elapsed.as_secs_f64(),
        );
        self.adapter = Some((outcome, elapsed));
        result
    }

    /// How routing chose where the login went.
    pub fn routed(&mut self, routed_by: RoutedBy, via_hosted_page: bool) {
        self.routed_by = Some(if via_hosted_page { "home_realm_page" } else { routed_by_name(routed_by) });
    }

    /// The login ended well: one success event.
    pub fn succeeded(self, app: &AppState) {
        let event = self.event(app, Outcome::Success, None);
        app.events.record(event);
    }

    /// The login ended in `failure` at `stage`: one failure event, counted in
    /// `ssobridge_logins_failed_total{client,reason}` (and at `/authorize` in
    /// `ssobridge_authorize_refusals_total` too).
    pub fn failed(self, app: &AppState, stage: Stage, failure: &LoginError) {
        self.failed_because(app, stage, failure.reason());
    }

    /// As [`Attempt::failed`], with the reason itself. A rate-limited attempt is counted but
    /// not logged: whoever floods the broker would otherwise push real logins out of the
    /// bounded log with their refusals.
    pub fn failed_because(self, app: &AppState, stage: Stage, reason: &'static str) {
        let client = self.client.clone().unwrap_or_else(|| "unknown".to_owned());
        crate::telemetry::count("ssobridge_logins_failed_total", &[("client", &client), ("reason", reason)]);
        if stage == Stage::Authorize {
            crate::telemetry::count("ssobridge_authorize_refusals_total", &[("client", &client), ("reason", reason)]);
        }
        if reason == "rate_limited" {
            return;
        }
        let event = self.event(app, Outcome::Failure, Some(reason));
        app.events.record(event);
    }

    fn event(self, app: &AppState, outcome: Outcome, reason: Option<&'static str>) -> Event {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut event = Event::new(self.kind, outcome);
        event.request_id = crate::telemetry::request_id();
        event.client = self.client;
        event.organization = self.organization;
        event.connection = self.connection;
        event.routed_by = self.routed_by.map(str::to_owned);
        event.reason = reason.map(str::to_owned);
        event.adapter = self.adapter.map(|(outcome, _)| outcome.to_owned());
        event.upstream_ms = self.upstream.map(millis);
        event.adapter_ms = self.adapter.map(|(_, d)| millis(d));
        event.duration_ms = Some(match self.began_ms {
            Some(began) => crate::events::now_ms().saturating_sub(began),
            None => millis(self.started.elapsed()),
        });
        event.subject = self.subject;
        app.events.identify(&mut event, self.email.as_deref());
        event
    }
}

/// `/authorize` refused a request before it was a login (its validation): counted and recorded
/// as a failed attempt. `named_client` is the request's `client_id`, kept only when the failure
/// shows it is registered.
pub fn refused_at_authorize(app: &AppState, named_client: Option<&str>, failure: &LoginError) {
    let mut attempt = Attempt::start(Kind::Login);
    let registered =
        matches!(failure, LoginError::Redirect { .. }) || failure.reason() == "redirect_uri_not_registered";
    attempt.client = named_client.filter(|_| registered).map(str::to_owned);
    attempt.failed(app, Stage::Authorize, failure);
}

/// The adapter outcomes (`ssobridge_adapter_duration_seconds{outcome}`, the event's `adapter`).
pub const ADAPTER_OUTCOMES: &[&str] = &["linked", "created", "unchanged", "refused", "transient", "misconfigured"];

fn adapter_outcome(result: &Result<LinkOutcome, AdapterError>) -> &'static str {
    match result {
        Ok(LinkOutcome::Linked { .. }) => "linked",
        Ok(LinkOutcome::Created { .. }) => "created",
        Ok(LinkOutcome::Unchanged) => "unchanged",
        Err(AdapterError::Refused { .. }) => "refused",
        Err(AdapterError::Transient { .. }) => "transient",
        Err(AdapterError::Misconfigured { .. }) => "misconfigured",
    }
}

/// The event's `routed_by` for a routing decision.
pub fn routed_by_name(routed_by: RoutedBy) -> &'static str {
    match routed_by {
        RoutedBy::ConnectionId => "connection_id",
        RoutedBy::OrganizationId => "organization_id",
        RoutedBy::DomainHint => "domain_hint",
        RoutedBy::LoginHint => "login_hint",
        RoutedBy::ClientDefault => "default",
        RoutedBy::Fallback => "fallback",
    }
}
