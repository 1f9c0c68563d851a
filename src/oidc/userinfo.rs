//! `GET|POST /userinfo` (OIDC Core §5.3): the access token read from the request, its claims
//! from the login.

use std::sync::Arc;

use poem::http::{header, Method, StatusCode};
use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde_json::Value;

use super::error::{bearer_error, json_response, userinfo_error};
use super::params::{Params, MAX_BODY_BYTES};
use crate::state::AppState;

#[handler]
pub async fn userinfo(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| (v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ")).then(|| v[7..].trim().to_owned()));
    // RFC 6750 §2.2: a form-encoded body parameter is the one other accepted place.
    let body_token = if req.method() == Method::POST && header_token.is_none() {
        match body.into_bytes_limit(MAX_BODY_BYTES).await {
            Ok(bytes) => Params::parse(&bytes).get("access_token").ok().flatten().map(str::to_owned),
            Err(_) => None,
        }
    } else {
        None
    };
    let Some(token) = header_token.or(body_token) else {
        return bearer_error("an access token is required");
    };
    match crate::login::userinfo(&state, &token).await {
        Ok(claims) => json_response(StatusCode::OK, &Value::Object(claims)),
        Err(error) => userinfo_error(&error),
    }
}
