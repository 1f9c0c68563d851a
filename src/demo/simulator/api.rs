//! The management API as research/scalekit.md §7 documents it, over the simulator's
//! organizations: bearer tokens from client_credentials, organizations paginated by
//! `page_token`, domains by `page_number` (no total, no token), connections by domain (active
//! only unless `include=all`). Errors carry the grpc-gateway body of §3.3.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{handler, Request, Response};
use serde_json::{json, Value};

use super::directory::routes_by;
use super::Simulator;
use crate::oidc::error::json_response;
use crate::oidc::params::Params;
use crate::tokens::random_token;

/// `expires_in` of the docs' example (§7.1).
const API_TOKEN_TTL: u64 = 86_399;

/// §3.3: `{code, message, details}`, `code` the gRPC status.
fn error(status: StatusCode, code: u8, message: &str) -> Response {
    json_response(
        status,
        &json!({
            "code": code,
            "message": message,
            "details": [{"@type": "type.googleapis.com/scalekit.v1.errdetails.ErrorInfo", "error_code": match code {
                3 => "INVALID_ARGUMENT", 5 => "NOT_FOUND", _ => "UNAUTHENTICATED",
            }}],
        }),
    )
}

impl Simulator {
    /// Whether the request carries a live token; counts the call either way.
    fn authorized(&self, req: &Request, endpoint: &'static str) -> bool {
        self.count(endpoint);
        let presented = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut tokens = self.api_tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, expires| *expires > Instant::now());
        presented.is_some_and(|token| tokens.contains_key(token))
    }
}

/// `POST /oauth/token` with `grant_type=client_credentials` (client already authenticated).
pub(super) fn issue_token(sim: &Simulator) -> Response {
    sim.count("token");
    let Ok(token) = random_token(32) else {
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "server_error"}));
    };
    sim.api_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.clone(), Instant::now() + Duration::from_secs(API_TOKEN_TTL));
    json_response(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": API_TOKEN_TTL, "scope": "openid"}),
    )
}

fn query(req: &Request) -> Params {
    Params::parse(req.uri().query().unwrap_or("").as_bytes())
}

fn unauthenticated() -> Response {
    error(StatusCode::UNAUTHORIZED, 16, "Token empty")
}

/// `GET /api/v1/organizations?page_size=10..100&page_token=` (§7.2).
#[handler]
pub(super) fn organizations(req: &Request, sim: Data<&Arc<Simulator>>) -> Response {
    if !sim.authorized(req, "organizations") {
        return unauthenticated();
    }
    let params = query(req);
    let get = |name| params.get(name).ok().flatten().filter(|v| !v.is_empty());
    let size = match get("page_size").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(size)) if (10..=100).contains(&size) => size,
        Some(_) => return error(StatusCode::BAD_REQUEST, 3, "page_size must be between 10 and 100"),
    };
    // Opaque to the caller; an offset here.
    let offset = match get("page_token").map(|t| t.strip_prefix("pt_").and_then(|o| o.parse::<usize>().ok())) {
        None => 0,
        Some(Some(offset)) => offset,
        Some(None) => return error(StatusCode::BAD_REQUEST, 3, "Invalid page token"),
    };
    let directory = sim.directory();
    let page: Vec<Value> =
        directory.iter().skip(offset).take(size).map(|o| o.json(&sim.settings.organization_metadata)).collect();
    let next = if offset + size < directory.len() { format!("pt_{}", offset + size) } else { String::new() };
    let prev = if offset > 0 { format!("pt_{}", offset.saturating_sub(size)) } else { String::new() };
    json_response(
        StatusCode::OK,
        &json!({
            "organizations": page,
            "next_page_token": next,
            "prev_page_token": prev,
            "total_size": directory.len(),
        }),
    )
}

/// `GET /api/v1/organizations/{organization_id}/domains?domain_type&page_size&page_number`
/// (§7.3): 0-based pages, default 30, at most 100, no total and no token.
#[handler]
pub(super) fn domains(req: &Request, organization_id: Path<String>, sim: Data<&Arc<Simulator>>) -> Response {
    if !sim.authorized(req, "domains") {
        return unauthenticated();
    }
    let params = query(req);
    let get = |name| params.get(name).ok().flatten().filter(|v| !v.is_empty());
    let size = match get("page_size").map(str::parse::<usize>) {
        None => 30,
        Some(Ok(size)) if (1..=100).contains(&size) => size,
        Some(_) => return error(StatusCode::BAD_REQUEST, 3, "page_size must be at most 100"),
    };
    let Ok(number) = get("page_number").map(str::parse::<usize>).unwrap_or(Ok(0)) else {
        return error(StatusCode::BAD_REQUEST, 3, "page_number must be a number");
    };
    // The simulator keeps organization domains only; allowed email domains are none.
    if get("domain_type").is_some_and(|t| t == "ALLOWED_EMAIL_DOMAIN") {
        return json_response(StatusCode::OK, &json!({"domains": [], "page_number": number, "page_size": size}));
    }
    let directory = sim.directory();
    let Some(org) = directory.iter().find(|o| o.id == organization_id.0) else {
        return error(StatusCode::NOT_FOUND, 5, "organization not found");
    };
    let page: Vec<Value> = org
        .domains
        .iter()
        .skip(number.saturating_mul(size))
        .take(size)
        .map(|d| d.json(&org.id, &sim.environment_id))
        .collect();
    json_response(StatusCode::OK, &json!({"domains": page, "page_number": number, "page_size": size}))
}

/// `GET /api/v1/connections?domain=&organization_id=&include=` (§7.4): active (completed and
/// enabled) connections unless `include=all`; `domain` matches an organization's verified domains.
#[handler]
pub(super) fn connections(req: &Request, sim: Data<&Arc<Simulator>>) -> Response {
    if !sim.authorized(req, "connections") {
        return unauthenticated();
    }
    let params = query(req);
    let get = |name| params.get(name).ok().flatten().filter(|v| !v.is_empty());
    let domain = get("domain").map(str::to_ascii_lowercase);
    let all = get("include") == Some("all");
    let directory = sim.directory();
    let connections: Vec<Value> = directory
        .iter()
        .filter(|o| get("organization_id").is_none_or(|id| o.id == id))
        .filter(|o| domain.as_deref().is_none_or(|d| o.domains.iter().any(|x| x.domain == d && routes_by(x.status))))
        .filter(|o| all || o.connection.as_ref().is_some_and(|(_, enabled)| *enabled))
        .filter_map(|o| o.connection_json())
        .collect();
    json_response(StatusCode::OK, &json!({ "connections": connections }))
}
