//! The full route sync from Scalekit: on demand (the admin API) and every
//! `[scalekit] sync_interval_seconds` on the instance that takes the store lock, recorded in the
//! store for `/admin/status` and in the metrics.

use std::sync::Arc;
use std::time::Duration;

use super::AppState;
use crate::clock::now_secs;
use crate::routing::sync::{sync_all, RouteCounts, SyncReport};
use crate::store::{get_json, keys, Store};

impl AppState {
    /// A full route sync from Scalekit. Unless `force`, only when no other instance synced
    /// within the interval (a store lock with a TTL: a fleet hits the API about once per
    /// interval). `None` when `[scalekit]` is absent or another instance holds the lock.
    pub async fn sync_routes(&self, force: bool) -> Option<SyncReport> {
        let api = self.scalekit.as_ref()?;
        if !force {
            let interval = self.config.scalekit.as_ref().map(|s| s.sync_interval_seconds).unwrap_or(0);
            let hold = Duration::from_millis(interval.max(1) * 900);
            match self.store.put_new(keys::ROUTE_SYNC_LOCK, b"1", hold).await {
                Ok(true) => {}
                Ok(false) => {
                    crate::telemetry::count("ssobridge_route_sync_total", &[("outcome", "skipped")]);
                    // Another instance synced: show its result in this one's metrics too.
                    if let Some(report) = self.route_sync_report().await {
                        publish_route_metrics(&report);
                    }
                    return None;
                }
                Err(error) => {
                    crate::telemetry::count("ssobridge_route_sync_total", &[("outcome", "error")]);
                    tracing::warn!(error = %error, "route sync not started: the store is unavailable");
                    return None;
                }
            }
        }
        let started_at = now_secs();
        let table = self.routes();
        let result = sync_all(api, &table).await;
        let previous = self.route_sync_report().await;
        let routes = table.list().await.map(|routes| RouteCounts::of(&routes)).unwrap_or_default();
        let finished_at = now_secs();
        let report = match result {
            Ok(changes) => {
                tracing::info!(
                    organizations = changes.organizations,
                    domains = changes.domains,
                    unverified = changes.unverified,
                    added = changes.added,
                    updated = changes.updated,
                    removed = changes.removed,
                    kept = changes.kept,
                    "route sync from Scalekit done"
                );
                SyncReport { started_at, finished_at, error: None, changes, routes, last_success_at: Some(finished_at) }
            }
            Err(error) => {
                tracing::warn!(error = %error, "route sync from Scalekit failed; routes unchanged");
                SyncReport {
                    started_at,
                    finished_at,
                    error: Some(error.to_string()),
                    changes: Default::default(),
                    routes,
                    last_success_at: previous.and_then(|p| p.last_success_at),
                }
            }
        };
        let outcome = if report.error.is_none() { "ok" } else { "error" };
        crate::telemetry::count("ssobridge_route_sync_total", &[("outcome", outcome)]);
        publish_route_metrics(&report);
        if let Ok(bytes) = serde_json::to_vec(&report) {
            if let Err(error) = self.store.set(keys::ROUTE_SYNC_REPORT, &bytes).await {
                tracing::warn!(error = %error, "could not record the route sync");
            }
        }
        Some(report)
    }

    /// The last full route sync of any instance.
    pub async fn route_sync_report(&self) -> Option<SyncReport> {
        get_json(&self.store, keys::ROUTE_SYNC_REPORT).await.ok().flatten()
    }
}

fn publish_route_metrics(report: &SyncReport) {
    for (source, count) in
        [("config", report.routes.config), ("api", report.routes.api), ("synced", report.routes.synced)]
    {
        crate::telemetry::gauge("ssobridge_routes", &[("source", source)], count as f64);
    }
    if let Some(at) = report.last_success_at {
        crate::telemetry::gauge("ssobridge_route_sync_last_success_timestamp_seconds", &[], at as f64);
    }
}

/// Starts the periodic route sync of `[scalekit] sync_interval_seconds` (0: none): once now,
/// then every interval, on the instance that takes the store lock.
pub fn spawn_route_sync(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = state.config.scalekit.as_ref()?.sync_interval_seconds;
    if interval == 0 || state.scalekit.is_none() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(interval));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            state.sync_routes(false).await;
        }
    }))
}
