//! The operations face: `/healthz` (the process answers), `/readyz` (the last background
//! checks passed) and `/metrics` (Prometheus text).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{handler, Response};

use crate::state::AppState;

/// Prometheus text exposition, with what is read at each scrape: the signing keys' ages, and
/// the adapter outcomes of the registered clients' adapters at zero until they happen.
#[handler]
pub async fn metrics(state: poem::web::Data<&Arc<AppState>>) -> Response {
    refresh(&state).await;
    Response::builder().content_type("text/plain; version=0.0.4").body(crate::telemetry::render())
}

async fn refresh(state: &AppState) {
    // The store may be down: the rest of the metrics still answer (its error is counted where
    // logins meet it, and in ssobridge_ready).
    if let Ok(keys) = state.keys.list().await {
        let now = crate::clock::now_secs();
        let ages: Vec<(Vec<(&str, &str)>, f64)> = keys
            .iter()
            .filter(|key| key.retired_at.is_none())
            .filter_map(|key| {
                let created = key.created_at?;
                Some((vec![("kid", key.kid.as_str()), ("kty", key.kty.name())], now.saturating_sub(created) as f64))
            })
            .collect();
        crate::telemetry::gauge_set_all("ssobridge_signing_key_age_seconds", &ages);
    }
    if let Ok(clients) = state.clients.list().await {
        let mut adapters: Vec<&'static str> = clients.iter().map(|c| c.adapter.name()).collect();
        adapters.sort_unstable();
        adapters.dedup();
        for adapter in adapters {
            for outcome in crate::login::attempt::ADAPTER_OUTCOMES {
                crate::telemetry::touch(
                    "ssobridge_adapter_duration_seconds",
                    &[("adapter", adapter), ("outcome", outcome)],
                );
            }
        }
    }
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
