//! The HTTP application: the public and the operations listeners' routes, the request log
//! around them, and serving them.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use poem::endpoint::BoxEndpoint;
use poem::listener::TcpAcceptor;
use poem::{get, post, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Server};
use tracing::Instrument;

use crate::ops::{healthz, metrics, readyz};
use crate::state::{AppState, StartError};

/// The whole public application. `extra` is served for every path the broker does not
/// answer itself (the demo's pages and simulator, the admin API when it shares the listener);
/// `ops`: whether `/readyz` and `/metrics` are served here too (`/healthz` always is).
pub fn endpoint(
    state: Arc<AppState>,
    extra: Option<BoxEndpoint<'static>>,
    ops: bool,
) -> impl Endpoint<Output = Response> {
    let mut routes =
        crate::oidc::routes().at(crate::webhooks::PATH, post(crate::webhooks::scalekit)).at("/healthz", get(healthz));
    if ops {
        routes = routes.at("/readyz", get(readyz)).at("/metrics", get(metrics));
    }
    if let Some(extra) = extra {
        routes = routes.nest("/", extra);
    }
    routes.with(crate::oidc::protect::Protect).data(state).with(RequestLog).map_to_response()
}

/// The operations listener (`admin.listen`): `/healthz`, `/readyz`, `/metrics`, and the admin
/// API under `/admin` when it is enabled. Not for the internet: probes and scrapers only.
pub fn operations_endpoint(
    state: Arc<AppState>,
    admin: Option<BoxEndpoint<'static>>,
) -> impl Endpoint<Output = Response> {
    let mut routes =
        poem::Route::new().at("/healthz", get(healthz)).at("/readyz", get(readyz)).at("/metrics", get(metrics));
    if let Some(admin) = admin {
        routes = routes.nest("/admin", admin);
    }
    routes.data(state).with(RequestLog).map_to_response()
}

/// A request id per request (echoed as `x-request-id`), a span around the request so every log
/// line carries it, and one line per request. Only the path is logged: query strings carry
/// codes and states.
struct RequestLog;

impl<E: Endpoint> Middleware<E> for RequestLog {
    type Output = RequestLogEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestLogEndpoint(ep)
    }
}

struct RequestLogEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestLogEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let request_id = next_request_id();
        let span =
            tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %req.uri().path());
        let route = route_template(req.uri().path());
        let method = method_label(req.method());
        let call = crate::telemetry::with_request_id(request_id.clone(), self.0.call(req));
        async move {
            let started = Instant::now();
            let result = call.await;
            let mut response = match result {
                Ok(output) => output.into_response(),
                Err(error) => error.into_response(),
            };
            let elapsed = started.elapsed().as_secs_f64();
            let status = response.status().as_u16();
            tracing::info!(status, elapsed_ms = elapsed * 1e3, "request");
            crate::telemetry::count(
                "ssobridge_http_requests_total",
                &[("route", route), ("method", method), ("status", status_label(status))],
            );
            crate::telemetry::observe(
                "ssobridge_http_request_duration_seconds",
                &[("route", route), ("method", method)],
                elapsed,
            );
            if let Ok(value) = poem::http::HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-request-id", value);
            }
            Ok(response)
        }
        .instrument(span)
        .await
    }
}

/// The `route` label of a request: the template of the route that answers `path`, so that
/// what a client puts in a path (a client id, an admin resource's id, anything at all) never
/// becomes a series of its own.
pub fn route_template(path: &str) -> &'static str {
    const EXACT: &[&str] = &[
        "/authorize",
        "/callback",
        "/token",
        "/userinfo",
        "/jwks",
        "/.well-known/openid-configuration",
        crate::oidc::initiate_login::PATH,
        crate::oidc::home_realm::SUBMIT_PATH,
        crate::webhooks::PATH,
        "/healthz",
        "/readyz",
        "/metrics",
        "/admin",
    ];
    /// The admin API's collections (and its spec and docs): `/admin/clients/{id}` is `/admin/clients`.
    const ADMIN: &[&str] = &[
        "/admin/clients",
        "/admin/routes",
        "/admin/keys",
        "/admin/events",
        "/admin/status",
        "/admin/openapi.json",
        "/admin/docs",
    ];
    if let Some(exact) = EXACT.iter().find(|route| **route == path) {
        return exact;
    }
    if path.strip_prefix(crate::oidc::initiate_login::PATH).is_some_and(|rest| rest.starts_with('/')) {
        return "/initiate-login/{client_id}";
    }
    if let Some(rest) = path.strip_prefix("/admin/") {
        let segment = rest.split('/').next().unwrap_or("");
        return ADMIN.iter().find(|route| route[7..] == *segment).copied().unwrap_or("/admin");
    }
    "other"
}

/// The `method` label: the methods the broker answers, anything else `other`.
fn method_label(method: &poem::http::Method) -> &'static str {
    const KNOWN: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN.iter().find(|known| **known == method.as_str()).copied().unwrap_or("other")
}

/// The `status` label: the code, as text (a fixed set: responses are the broker's own).
fn status_label(status: u16) -> &'static str {
    const CODES: &[&str] = &[
        "200", "201", "204", "206", "301", "302", "303", "304", "307", "308", "400", "401", "403", "404", "405", "406",
        "409", "411", "412", "413", "414", "415", "422", "428", "429", "431", "500", "501", "502", "503", "504",
    ];
    let text = status.to_string();
    CODES.iter().find(|code| **code == text).copied().unwrap_or(match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    })
}

/// A request id in the UUID format: 60 random bits drawn once per process and a counter, so
/// that ids are unique across instances without a system call per request (a v4 UUID asked the
/// kernel for randomness on every request). Request ids are labels, not secrets.
fn next_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            // No randomness: the time still tells instances apart in practice.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            bytes = (now.as_nanos() as u64).to_be_bytes();
        }
        bytes
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(prefix);
    bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    // The version and variant bits land in the prefix and in the counter's top byte.
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// Serves `endpoint` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: impl Endpoint + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(endpoint, shutdown, Some(std::time::Duration::from_secs(10)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client puts in a path never becomes a `route` of its own.
    #[test]
    fn routes_are_templates_from_a_fixed_set() {
        assert_eq!(route_template("/authorize"), "/authorize");
        assert_eq!(route_template("/initiate-login"), "/initiate-login");
        assert_eq!(route_template("/initiate-login/auth0-prod"), "/initiate-login/{client_id}");
        assert_eq!(route_template("/admin/clients/some-client"), "/admin/clients");
        assert_eq!(route_template("/admin/anything-at-all"), "/admin");
        assert_eq!(route_template("/authorize/x"), "other");
        assert_eq!(route_template("/random-1234"), "other");
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(method_label(&poem::http::Method::from_bytes(b"BREW").expect("method")), "other");
    }

    #[test]
    fn request_ids_are_uuids_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::next_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 36 && uuid::Uuid::parse_str(id).is_ok()), "UUID format");
    }
}
