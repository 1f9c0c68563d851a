//! `/admin/status`: what an operator checks first.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{AdminToken, Problem, Tag};
use crate::app::AppState;
use crate::store::Store;

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
    /// Store and upstream reachability, signing keys, version.
    #[oai(path = "/status", method = "get")]
    async fn status(&self, _auth: AdminToken) -> StatusResponse {
        let store_reachable = self.state.store.ping().await.is_ok();
        let upstream_discovery_reachable = self.state.upstream.discover().await.is_ok();
        let keys = self.state.keys.list().await.unwrap_or_default();
        let now = crate::oidc::callback::now_secs();
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
        }))
    }
}
