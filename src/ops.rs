//! The operations face: `/healthz` (the process answers), `/readyz` (the last background
//! checks passed) and `/metrics` (Prometheus text).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{handler, Response};

use crate::state::AppState;

/// Prometheus text exposition.
#[handler]
pub fn metrics() -> Response {
    Response::builder().content_type("text/plain; version=0.0.4").body(crate::telemetry::render())
}

#[handler]
pub fn healthz() -> &'static str {
    "ok"
}

/// Ready when the last background checks found the store answering (with its configuration),
/// the upstream's discovery and keys fetchable, and the broker's credentials not refused
/// there. Asks none of them itself.
#[handler]
pub fn readyz(state: poem::web::Data<&Arc<AppState>>) -> Response {
    let report = state.readiness.report();
    let body =
        serde_json::json!({"store": report.store, "upstream": report.upstream, "credentials": report.credentials});
    let status = if report.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}
