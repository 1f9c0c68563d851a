//! `/admin/status`: what an operator checks first.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AdminToken, Problem, Tag};
use crate::routing::sync::{Changes, RouteCounts, SyncReport, WebhookRecord};
use crate::state::AppState;
use crate::store::{get_json, keys, Store};

pub struct StatusApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Status {
    pub version: String,
    /// `memory` or `redis`.
    pub store_backend: String,
    pub store_reachable: bool,
    pub upstream_issuer: String,
    pub upstream_discovery_reachable: bool,
    pub signing_keys: Vec<KeyStatus>,
    /// Routes from Scalekit; absent without `[scalekit]`.
    #[oai(skip_serializing_if_is_none)]
    pub route_sync: Option<Box<RouteSyncStatus>>,
}

/// Route sync from Scalekit, as the store records it (the same on every instance).
#[derive(Debug, Clone, Object)]
pub struct RouteSyncStatus {
    /// Seconds between full syncs; 0: none (webhooks only).
    pub interval_seconds: u64,
    /// Whether `POST /webhooks/scalekit` accepts events (a webhook secret is configured).
    pub webhooks_enabled: bool,
    /// Whether a domain without a route is asked of Scalekit.
    pub lookup_on_miss: bool,
    /// The last full sync by any instance; absent until one ran.
    #[oai(skip_serializing_if_is_none)]
    pub last_sync: Option<SyncRun>,
    /// The last webhook applied; absent until one was.
    #[oai(skip_serializing_if_is_none)]
    pub last_webhook: Option<WebhookSeen>,
}

#[derive(Debug, Clone, Object)]
pub struct SyncRun {
    /// Unix seconds.
    pub started_at: u64,
    pub finished_at: u64,
    /// Whether it completed; when not, `error` says why and the routes were left unchanged.
    pub ok: bool,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// When a full sync last completed (this one or an earlier one).
    #[oai(skip_serializing_if_is_none)]
    pub last_success_at: Option<u64>,
    pub changes: SyncChanges,
    /// The route table after the sync, by source.
    pub routes: SourceCounts,
}

#[derive(Debug, Clone, Object)]
pub struct SyncChanges {
    /// Organizations read at Scalekit.
    pub organizations: u64,
    /// Their SSO domains (`ORGANIZATION_DOMAIN`), whatever their status.
    pub domains: u64,
    /// Of those, `PENDING` or `FAILED`: not routed.
    pub unverified_domains: u64,
    pub routes_added: u64,
    pub routes_updated: u64,
    pub routes_removed: u64,
    /// Verified domains already routed by a `config` or `api` route, which sync leaves alone.
    pub kept_operator_routes: u64,
}

#[derive(Debug, Clone, Object)]
pub struct SourceCounts {
    pub config: u64,
    pub api: u64,
    pub synced: u64,
}

#[derive(Debug, Clone, Object)]
pub struct WebhookSeen {
    /// Unix seconds.
    pub received_at: u64,
    /// The Scalekit event type, e.g. `organization.domain_created`.
    pub event_type: String,
    #[oai(skip_serializing_if_is_none)]
    pub organization_id: Option<String>,
    pub changes: SyncChanges,
}

impl From<Changes> for SyncChanges {
    fn from(c: Changes) -> SyncChanges {
        SyncChanges {
            organizations: c.organizations,
            domains: c.domains,
            unverified_domains: c.unverified,
            routes_added: c.added,
            routes_updated: c.updated,
            routes_removed: c.removed,
            kept_operator_routes: c.kept,
        }
    }
}

impl From<RouteCounts> for SourceCounts {
    fn from(c: RouteCounts) -> SourceCounts {
        SourceCounts { config: c.config, api: c.api, synced: c.synced }
    }
}

impl From<SyncReport> for SyncRun {
    fn from(r: SyncReport) -> SyncRun {
        SyncRun {
            started_at: r.started_at,
            finished_at: r.finished_at,
            ok: r.error.is_none(),
            error: r.error,
            last_success_at: r.last_success_at,
            changes: r.changes.into(),
            routes: r.routes.into(),
        }
    }
}

impl From<WebhookRecord> for WebhookSeen {
    fn from(w: WebhookRecord) -> WebhookSeen {
        WebhookSeen {
            received_at: w.received_at,
            event_type: w.event_type,
            organization_id: w.organization_id,
            changes: w.changes.into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct KeyStatus {
    pub kid: String,
    pub alg: String,
    /// Whether this key signs new tokens.
    pub active: bool,
    /// Seconds since the process loaded or created the key.
    pub age_seconds: u64,
}

impl poem_openapi::types::Example for Status {
    fn example() -> Self {
        Status {
            version: "0.1.0".into(),
            store_backend: "redis".into(),
            store_reachable: true,
            upstream_issuer: "https://acme.scalekit.dev".into(),
            upstream_discovery_reachable: true,
            signing_keys: vec![KeyStatus {
                kid: "bb-xRJ2b1fH".into(),
                alg: "RS256".into(),
                active: true,
                age_seconds: 86_400,
            }],
            route_sync: Some(Box::new(RouteSyncStatus {
                interval_seconds: 300,
                webhooks_enabled: true,
                lookup_on_miss: false,
                last_sync: Some(SyncRun {
                    started_at: 1_767_225_600,
                    finished_at: 1_767_225_602,
                    ok: true,
                    error: None,
                    last_success_at: Some(1_767_225_602),
                    changes: SyncChanges {
                        organizations: 42,
                        domains: 57,
                        unverified_domains: 3,
                        routes_added: 1,
                        routes_updated: 0,
                        routes_removed: 0,
                        kept_operator_routes: 2,
                    },
                    routes: SourceCounts { config: 2, api: 1, synced: 52 },
                }),
                last_webhook: Some(WebhookSeen {
                    received_at: 1_767_225_700,
                    event_type: "organization.domain_dns_verification_success".into(),
                    organization_id: Some("org_59615193906282635".into()),
                    changes: SyncChanges {
                        organizations: 1,
                        domains: 1,
                        unverified_domains: 0,
                        routes_added: 1,
                        routes_updated: 0,
                        routes_removed: 0,
                        kept_operator_routes: 0,
                    },
                }),
            })),
        }
    }
}

#[derive(ApiResponse)]
pub enum StatusResponse {
    #[oai(status = 200)]
    Ok(Json<Status>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
}

#[OpenApi(tag = "Tag::Status")]
impl StatusApi {
    /// Service status
    ///
    /// Store and upstream reachability, signing keys, version, and route sync from Scalekit
    /// (last sync, its counts or error; last webhook).
    #[oai(path = "/status", method = "get")]
    async fn status(&self, _auth: AdminToken) -> StatusResponse {
        let store_reachable = self.state.store.ping().await.is_ok();
        let upstream_discovery_reachable = self.state.upstream.discover().await.is_ok();
        let keys = self.state.keys.list().await.unwrap_or_default();
        let now = crate::clock::now_secs();
        let route_sync = match &self.state.config.scalekit {
            Some(settings) => Some(Box::new(RouteSyncStatus {
                interval_seconds: settings.sync_interval_seconds,
                webhooks_enabled: self.state.webhook_key().is_some(),
                lookup_on_miss: settings.lookup_on_miss,
                last_sync: self.state.route_sync_report().await.map(SyncRun::from),
                last_webhook: get_json::<_, WebhookRecord>(&self.state.store, keys::WEBHOOK_LAST)
                    .await
                    .ok()
                    .flatten()
                    .map(WebhookSeen::from),
            })),
            None => None,
        };
        StatusResponse::Ok(Json(Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            store_backend: self.state.store.backend_name().to_owned(),
            store_reachable,
            upstream_issuer: self.state.upstream.issuer().to_owned(),
            upstream_discovery_reachable,
            signing_keys: keys
                .iter()
                .map(|k| KeyStatus {
                    kid: k.kid.clone(),
                    alg: k.algorithms.first().copied().unwrap_or_default().to_owned(),
                    active: k.active,
                    // The configured key's age is the process's: it was loaded at start.
                    age_seconds: k
                        .created_at
                        .map(|at| now.saturating_sub(at))
                        .unwrap_or_else(|| self.state.started.elapsed().as_secs()),
                })
                .collect(),
            route_sync,
        }))
    }
}
