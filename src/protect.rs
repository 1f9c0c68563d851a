//! What every response passes through: rate limits on the login endpoints (shared through the
//! store, 429 with `Retry-After`), and transport security headers.

use std::sync::Arc;
use std::time::Duration;

use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::app::AppState;
use crate::oidc::params::{Params, MAX_BODY_BYTES};

const WINDOW_SECS: u64 = 60;

/// Paths whose use is counted.
fn limited(path: &str) -> bool {
    matches!(path, "/authorize" | "/token" | "/login/email" | "/initiate-login")
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

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let Some(state) = req.data::<Arc<AppState>>().cloned() else {
            return self.0.call(req).await.map(IntoResponse::into_response);
        };
        if limited(req.uri().path()) {
            match over_limit(&state, &mut req).await {
                Ok(Some((which, retry_after))) => return Ok(too_many(req.uri().path(), which, retry_after)),
                Ok(None) => {}
                Err(response) => return Ok(response),
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

/// Which limit the request is over, and for how long, if any. Counting adds no store round
/// trip to the request ([`crate::limiter`]), and store trouble does not block logins.
async fn over_limit(state: &AppState, req: &mut Request) -> Result<Option<(&'static str, u64)>, Response> {
    let limits = &state.config.rate_limits;
    let now = crate::oidc::callback::now_secs();
    let window = now / WINDOW_SECS;
    let retry_after = WINDOW_SECS - now % WINDOW_SECS;
    let ttl = Duration::from_secs(WINDOW_SECS + 1);
    if limits.per_ip_per_minute > 0 {
        let key = format!("rl:ip:{}:{window}", client_ip(req, limits.trust_forwarded_for));
        if state.limiter.hit(&key, window, ttl) > limits.per_ip_per_minute {
            return Ok(Some(("ip", retry_after)));
        }
    }
    if limits.per_client_per_minute > 0 {
        if let Some(client_id) = client_id(req).await? {
            let key = format!("rl:client:{client_id}:{window}");
            if state.limiter.hit(&key, window, ttl) > limits.per_client_per_minute {
                return Ok(Some(("client", retry_after)));
            }
        }
    }
    Ok(None)
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

/// Pending flows (and requests waiting at the home-realm page) counted per source address and
/// in all, each counter per flow-lifetime window: a flow counts in the window it started in
/// and leaves the count when it is taken, so the pending ones are the two newest windows'.
/// Flows that are never taken expire from the count with their window. Counting adds no
/// store round trip ([`crate::limiter`]).
pub struct PendingFlows {
    limiter: crate::limiter::RateLimiter,
    per_ip: u64,
    total: u64,
    window_secs: u64,
}

impl PendingFlows {
    pub fn new(limiter: crate::limiter::RateLimiter, config: &crate::config::Config) -> PendingFlows {
        PendingFlows {
            limiter,
            per_ip: config.rate_limits.pending_flows_per_ip,
            total: config.rate_limits.pending_flows_total,
            window_secs: config.tokens.flow_ttl_seconds.max(1),
        }
    }

    fn keys(window: u64, ip: &str) -> [String; 2] {
        [format!("pf:ip:{ip}:{window}"), format!("pf:all:{window}")]
    }

    /// Counts one more pending flow from `ip`; its ticket (to [`PendingFlows::release`] when
    /// the flow is taken), or how many seconds to wait when a cap is reached.
    pub fn admit(&self, ip: &str) -> Result<String, u64> {
        let now = crate::oidc::callback::now_secs();
        let window = now / self.window_secs;
        let ttl = Duration::from_secs(2 * self.window_secs + 1);
        let [ip_key, all_key] = Self::keys(window, ip);
        let [previous_ip, previous_all] = Self::keys(window.saturating_sub(1), ip);
        let from_ip = self.limiter.add(&ip_key, window, ttl, 1) + self.limiter.count(&previous_ip);
        let in_all = self.limiter.add(&all_key, window, ttl, 1) + self.limiter.count(&previous_all);
        let over = |count: i64, cap: u64| cap > 0 && count > cap as i64;
        if over(from_ip, self.per_ip) || over(in_all, self.total) {
            self.limiter.add(&ip_key, window, ttl, -1);
            self.limiter.add(&all_key, window, ttl, -1);
            crate::telemetry::count("ssobridge_rate_limited_total", &[("limit", "pending_flows")]);
            return Err(self.window_secs - now % self.window_secs);
        }
        Ok(format!("{window}|{ip}"))
    }

    /// The flow of `ticket` was taken: it no longer counts.
    pub fn release(&self, ticket: &str) {
        let Some((window, ip)) = ticket.split_once('|') else { return };
        let Ok(window) = window.parse::<u64>() else { return };
        let ttl = Duration::from_secs(2 * self.window_secs + 1);
        for key in Self::keys(window, ip) {
            self.limiter.add(&key, window, ttl, -1);
        }
    }
}

/// The client_id of the request: query, form body (read and put back), or HTTP Basic.
async fn client_id(req: &mut Request) -> Result<Option<String>, Response> {
    let from_query =
        Params::parse(req.uri().query().unwrap_or("").as_bytes()).get("client_id").ok().flatten().map(str::to_owned);
    if from_query.is_some() {
        return Ok(from_query);
    }
    if let Some(basic) = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if basic.len() > 6 && basic[..6].eq_ignore_ascii_case("basic ") {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD.decode(basic[6..].trim()).ok();
            let id = decoded
                .and_then(|d| String::from_utf8(d).ok())
                .and_then(|d| d.split_once(':').map(|(id, _)| id.to_owned()));
            if id.is_some() {
                return Ok(id);
            }
        }
    }
    if req.method() != Method::POST {
        return Ok(None);
    }
    let body =
        req.take_body().into_bytes_limit(MAX_BODY_BYTES).await.map_err(|_| {
            Response::builder().status(StatusCode::PAYLOAD_TOO_LARGE).body("the request body is too large")
        })?;
    let id = Params::parse(&body).get("client_id").ok().flatten().map(str::to_owned);
    req.set_body(body);
    Ok(id)
}

fn too_many(path: &str, which: &'static str, retry_after: u64) -> Response {
    crate::telemetry::count("ssobridge_rate_limited_total", &[("limit", which)]);
    let mut response = if path == "/token" {
        crate::oidc::error::json_response(
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
