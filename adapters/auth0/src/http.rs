//! One HTTP exchange with Auth0, retried while the failure is transient.
//!
//! Transient: the network, a timeout, any 5xx, and 429. A 429 waits what Auth0 asks for:
//! `Retry-After` (seconds), else `x-ratelimit-reset` (UNIX seconds at which the bucket refills,
//! which is what the Management API sends), else an exponential backoff. Never past the
//! caller's deadline: when the wait would cross it, the caller gets [`AdapterError::Transient`]
//! with the wait as `retry_after`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use ssobridge_adapter_core::retry::{self, Failed, Policy};
use ssobridge_adapter_core::AdapterError;
use tokio::time::Instant;

/// First try plus two retries: enough to ride out a blip, few enough to keep a sign-in short;
/// any wait that fits in the caller's deadline.
const POLICY: Policy =
    Policy { max_attempts: 3, first_backoff: Duration::from_millis(200), max_wait: Duration::from_secs(60) };
/// Auth0's messages go into operator logs only, and only this much of them.
const MAX_MESSAGE_CHARS: usize = 200;

/// An answer that is not transient: the caller decides what the status means.
#[derive(Debug)]
pub(crate) struct Exchange {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Exchange {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Auth0's own words about an error, bounded: `message` (Management API) or
    /// `error: error_description` (OAuth endpoints).
    pub(crate) fn message(&self) -> String {
        error_message(&self.body)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { message: Some(m), .. }) => m,
        Ok(ErrorBody { error: Some(e), error_description: Some(d), .. }) => format!("{e}: {d}"),
        Ok(ErrorBody { error: Some(e), .. }) => e,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE_CHARS).collect();
    if text.is_empty() {
        "no message".to_owned()
    } else {
        text
    }
}

/// The shared client and the bound on one exchange.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub timeout: Duration,
}

pub(crate) fn transient(detail: impl Into<String>, retry_after: Option<Duration>) -> AdapterError {
    AdapterError::Transient { detail: detail.into(), retry_after }
}

pub(crate) fn misconfigured(detail: impl Into<String>) -> AdapterError {
    AdapterError::Misconfigured { detail: detail.into() }
}

impl Http {
    pub(crate) fn new(timeout: Duration) -> Result<Http, AdapterError> {
        let client = ssobridge_adapter_core::http::client_builder(
            concat!("ssobridge-adapter-auth0/", env!("CARGO_PKG_VERSION")),
            timeout,
        )
        .build()
        .map_err(|e| misconfigured(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http { client, timeout })
    }

    /// Sends the request `build` makes (once per attempt) until the answer is not transient.
    pub(crate) async fn send(
        &self,
        what: &str,
        deadline: Instant,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Exchange, AdapterError> {
        let attempt = |_| async {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Failed::fatal(transient(format!("{what}: out of time"), None)));
            }
            match self.attempt(&build, self.timeout.min(remaining)).await {
                Ok(exchange) => Ok(exchange),
                Err(Failure::Status { status, headers, body }) => {
                    let asked = asked_wait(&headers);
                    // Only a wait Auth0 asked for is worth passing on; a backoff is ours.
                    let detail = format!("{what}: Auth0 answered {status} ({})", error_message(&body));
                    Err(Failed::retry(transient(detail, asked), asked))
                }
                Err(Failure::Network(detail)) => Err(Failed::retry(transient(format!("{what}: {detail}"), None), None)),
            }
        };
        let on_retry = |attempt, wait: Duration, error: &AdapterError| {
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, "retrying Auth0: {error}");
        };
        retry::run(POLICY, deadline.into_std(), attempt, tokio::time::sleep, on_retry).await
    }

    async fn attempt(
        &self,
        build: &impl Fn() -> reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Exchange, Failure> {
        // reqwest's per-request timeout covers connecting, the headers and the whole body.
        let response = build().timeout(timeout).send().await.map_err(|e| Failure::Network(describe(&e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| Failure::Network(describe(&e)))?.to_vec();
        if is_transient(status) {
            return Err(Failure::Status { status, headers, body });
        }
        Ok(Exchange { status, body })
    }
}

enum Failure {
    Network(String),
    Status { status: StatusCode, headers: HeaderMap, body: Vec<u8> },
}

fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// reqwest's own text, without the URL (users-by-email carries the address in the query).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        let mut detail = String::from("network error");
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
        while let Some(s) = source {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            source = s.source();
        }
        detail
    }
}

/// What a rate-limited answer asks for: `Retry-After`, else `x-ratelimit-reset`.
fn asked_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(wait) = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry::retry_after) {
        return Some(wait);
    }
    let reset = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    // The bucket refills at the start of that second; already past means try now-ish.
    Some(Duration::from_secs(reset.saturating_sub(now)).max(POLICY.first_backoff))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_wins_over_the_reset_time() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1"));
        assert_eq!(asked_wait(&headers), Some(Duration::from_secs(3)));
    }

    #[test]
    fn reset_time_is_unix_seconds() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", HeaderValue::from_str(&(now + 5).to_string()).unwrap());
        let wait = asked_wait(&headers).unwrap();
        assert!(wait >= Duration::from_secs(4) && wait <= Duration::from_secs(5), "{wait:?}");
        headers.insert("x-ratelimit-reset", HeaderValue::from_str(&(now - 5).to_string()).unwrap());
        assert_eq!(asked_wait(&headers), Some(POLICY.first_backoff));
        assert_eq!(asked_wait(&HeaderMap::new()), None);
    }

    #[test]
    fn error_messages_are_bounded_and_single_line() {
        let body =
            br#"{"statusCode":403,"error":"Forbidden","message":"Insufficient scope, expected any of: read:users"}"#;
        assert_eq!(error_message(body), "Insufficient scope, expected any of: read:users");
        assert_eq!(
            error_message(br#"{"error":"access_denied","error_description":"Unauthorized"}"#),
            "access_denied: Unauthorized"
        );
        let long = format!("line\n{}", "x".repeat(1000));
        let shown = error_message(long.as_bytes());
        assert!(shown.chars().count() <= MAX_MESSAGE_CHARS && !shown.contains('\n'));
    }
}
