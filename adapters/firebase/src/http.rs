//! One bounded way to call Google: every request runs under the login's deadline, and what is
//! worth retrying (network errors, 408, 429, 5xx) is retried a bounded number of times with
//! backoff, honouring `Retry-After` when it fits in the time left.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use ssobridge_adapter_core::AdapterError;

/// Attempts per request, the first included.
const MAX_ATTEMPTS: u32 = 3;

/// The wait before the second attempt when the server names none; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

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
    let mut last = AdapterError::Transient { detail: format!("{what}: timed out"), retry_after: None };
    for attempt in 1..=MAX_ATTEMPTS {
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            break;
        }
        // The request timeout covers connecting, sending and reading the whole body.
        let wait = match build().timeout(remaining).send().await {
            Ok(response) => {
                let status = response.status();
                if !retryable(status) {
                    return match response.bytes().await {
                        Ok(body) => Ok(Reply { status, body: body.to_vec() }),
                        Err(e) => Err(transport_error(what, &e)),
                    };
                }
                let retry_after = retry_after(response.headers());
                last = AdapterError::Transient { detail: format!("{what}: HTTP {}", status.as_u16()), retry_after };
                retry_after.unwrap_or(backoff(attempt))
            }
            Err(e) => {
                last = transport_error(what, &e);
                backoff(attempt)
            }
        };
        if attempt == MAX_ATTEMPTS {
            break;
        }
        // A wait that would end after the deadline is not worth starting: report now, with the
        // server's Retry-After, and let the user retry the login.
        if wait >= deadline.remaining() {
            break;
        }
        tracing::warn!(call = what, attempt, wait_ms = wait.as_millis() as u64, error = %last, "retrying");
        tokio::time::sleep(wait).await;
    }
    Err(last)
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1))
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

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past means now");
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(110) && wait <= Duration::from_secs(120), "{wait:?}");
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
    }
}
