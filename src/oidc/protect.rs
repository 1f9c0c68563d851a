//! What every response passes through: the per-source rate limit on the login endpoints
//! (shared through the store, 429 with `Retry-After`), and transport security headers. The
//! per-client limits are counted where the client is known: at `/authorize` per client and
//! source once the client and its redirect URI are checked, at `/token` once the client has
//! authenticated, so that nobody can spend a client's budget by naming it.

use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::state::AppState;
use crate::store::keys;

const WINDOW_SECS: u64 = 60;

/// Requests whose use is counted: the login endpoints, and IdP-initiated logins wherever they
/// arrive (the callback takes them too).
fn limited(path: &str, query: Option<&str>) -> bool {
    matches!(path, "/authorize" | "/token" | "/login/email" | "/initiate-login" | "/logout")
        || path.starts_with("/initiate-login/")
        || (path == "/callback" && query.is_some_and(|q| q.contains("idp_initiated_login=")))
}

pub struct Protect;

impl<E: Endpoint> Middleware<E> for Protect {
    type Output = ProtectEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ProtectEndpoint(ep)
    }
}

pub struct ProtectEndpoint<E>(E);

impl<E: Endpoint> Endpoint for ProtectEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let Some(state) = req.data::<Arc<AppState>>().cloned() else {
            return self.0.call(req).await.map(IntoResponse::into_response);
        };
        if limited(req.uri().path(), req.uri().query()) {
            let source = client_ip(&req, state.config.rate_limits.trust_forwarded_for);
            // Counting adds no store round trip ([`crate::limiter`]); store trouble blocks no login.
            if let Err(retry_after) =
                count(&state, |window| keys::requests_from(&source, window), state.config.rate_limits.per_ip_per_minute)
            {
                return Ok(too_many(req.uri().path(), "ip", retry_after));
            }
        }
        let mut response = match self.0.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if state.issuer.starts_with("https://") {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            );
        }
        Ok(response)
    }
}

/// Counts one request under the key of this minute; past `limit`, the seconds until the next.
fn count(state: &AppState, key: impl Fn(u64) -> String, limit: u64) -> Result<(), u64> {
    if limit == 0 {
        return Ok(());
    }
    let now = crate::clock::now_secs();
    let window = now / WINDOW_SECS;
    let ttl = Duration::from_secs(WINDOW_SECS + 1);
    if state.limiter.hit(&key(window), window, ttl) > limit {
        return Err(WINDOW_SECS - now % WINDOW_SECS);
    }
    Ok(())
}

/// A client's own per-minute budget, counted once the client is known: at `/authorize` per
/// source address too, at `/token` after it authenticated.
pub fn count_client(state: &AppState, client_id: &str, source: Option<&str>) -> Result<(), u64> {
    count(state, |window| keys::requests_of(client_id, source, window), state.config.rate_limits.per_client_per_minute)
}

/// Where a request comes from, as the limits count it: the peer address, or behind a trusted
/// proxy the last `X-Forwarded-For` entry (the one the proxy added); an IPv6 address by its
/// /64, since one subscriber holds a whole /64 and could otherwise count as 2^64 sources.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse::<std::net::IpAddr>().ok());
    let ip = forwarded.or_else(|| req.remote_addr().as_socket_addr().map(|a| a.ip()));
    match ip {
        Some(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        Some(ip) => ip.to_string(),
        None => "unknown".to_owned(),
    }
}

pub fn too_many(path: &str, which: &'static str, retry_after: u64) -> Response {
    crate::telemetry::count("ssobridge_rate_limited_total", &[("limit", which)]);
    let mut response = if path == "/token" {
        super::error::json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "temporarily_unavailable", "error_description": "too many requests; retry later"}),
        )
    } else {
        crate::pages::error_page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts",
            "Too many sign-in attempts came from here. Wait a minute and try again.",
        )
    };
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
