//! One bounded way to call Google: every request runs under the login's deadline, and what is
//! worth retrying (network errors, 408, 429, 5xx) is retried a bounded number of times with
//! backoff, honouring `Retry-After` when it fits in the time left.

use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, StatusCode};
use ssobridge_adapter_core::retry::{self, Failed, Policy};
use ssobridge_adapter_core::AdapterError;

/// Three attempts, 200 ms then 400 ms apart when Google names no wait; any wait that fits in the
/// login's deadline.
const POLICY: Policy =
    Policy { max_attempts: 3, first_backoff: Duration::from_millis(200), max_wait: Duration::from_secs(60) };

/// The point in time by which a whole `link` must be done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// A response whose status is final (not worth retrying): the caller maps it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT || status.is_server_error()
}

/// Sends the request `build` makes (once per attempt) until it gets a final status, runs out of
/// attempts, or would overrun `deadline`. `what` names the call in error details.
pub(crate) async fn send(
    what: &str,
    deadline: Deadline,
    build: impl Fn() -> RequestBuilder,
) -> Result<Reply, AdapterError> {
    let attempt = |_| async {
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            let error = AdapterError::Transient { detail: format!("{what}: timed out"), retry_after: None };
            return Err(Failed::fatal(error));
        }
        // The request timeout covers connecting, sending and reading the whole body.
        let response =
            build().timeout(remaining).send().await.map_err(|e| Failed::retry(transport_error(what, &e), None))?;
        let status = response.status();
        if !retryable(status) {
            return match response.bytes().await {
                Ok(body) => Ok(Reply { status, body: body.to_vec() }),
                Err(e) => Err(Failed::fatal(transport_error(what, &e))),
            };
        }
        let asked = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry::retry_after);
        let detail = format!("{what}: HTTP {}", status.as_u16());
        Err(Failed::retry(AdapterError::Transient { detail, retry_after: asked }, asked))
    };
    let on_retry = |attempt, wait: Duration, error: &AdapterError| {
        tracing::warn!(call = what, attempt, wait_ms = wait.as_millis() as u64, %error, "retrying");
    };
    retry::run(POLICY, deadline.0, attempt, tokio::time::sleep, on_retry).await
}

fn transport_error(what: &str, e: &reqwest::Error) -> AdapterError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "response body unreadable"
    } else {
        "request failed"
    };
    // `without_url` keeps the detail short; the URLs carry no secrets either way.
    let source = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    AdapterError::Transient { detail: format!("{what}: {kind}{source}"), retry_after: None }
}
