//! The provider face: ssobridge as an OpenID Provider to downstream clients (Auth0, Cognito),
//! over HTTP. Each handler reads its request, calls one step of the login (`crate::login`) and
//! answers with what it returns; `error` is where failures become responses, `protect` what
//! guards the public endpoints.

pub mod authorize;
pub mod callback;
mod cookie;
pub mod end_session;
pub mod error;
pub mod home_realm;
pub mod initiate_login;
pub mod params;
pub mod protect;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, post, Response, Route};
use serde_json::json;

use crate::tokens::SigningAlgorithm;

use self::error::json_response;
use crate::state::AppState;

/// Every public OIDC endpoint.
pub fn routes() -> Route {
    Route::new()
        .at("/.well-known/openid-configuration", get(discovery))
        .at("/jwks", get(jwks))
        .at("/authorize", get(authorize::authorize).post(authorize::authorize))
        .at("/callback", get(callback::callback))
        .at(initiate_login::PATH, get(initiate_login::initiate))
        .at(format!("{}/:client_id", initiate_login::PATH), get(initiate_login::initiate_for_client))
        .at(home_realm::SUBMIT_PATH, post(home_realm::submit_email))
        .at("/token", post(token::token))
        .at("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .at(end_session::PATH, get(end_session::end_session).post(end_session::end_session))
}

/// OpenID Connect Discovery 1.0 §3: only what is really implemented.
fn discovery_document(issuer: &str) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "scopes_supported": ["openid", "profile", "email"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["pairwise", "public"],
        // Completed per request from the key ring (ES256 only with an EC key).
        "id_token_signing_alg_values_supported": ["RS256", "PS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported":
            crate::client_assertion::ALGORITHMS.iter().map(|alg| format!("{alg:?}")).collect::<Vec<_>>(),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "nonce", "azp", "at_hash",
            "email", "email_verified", "name", "given_name", "family_name", "org_id", "connection_id", "sid"
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        // RP-Initiated Logout 1.0 §2.1, Back-Channel Logout 1.0 §2.1: logout tokens carry
        // `sid`, which ID tokens carry too; no front-channel logout.
        "end_session_endpoint": format!("{issuer}{}", end_session::PATH),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    })
}

#[handler]
async fn discovery(state: Data<&Arc<AppState>>) -> Response {
    let mut document = discovery_document(&state.issuer);
    document["id_token_signing_alg_values_supported"] =
        json!(state.keys.algorithms().await.into_iter().map(SigningAlgorithm::name).collect::<Vec<_>>());
    cacheable(json_response(StatusCode::OK, &document))
}

#[handler]
async fn jwks(state: Data<&Arc<AppState>>) -> Response {
    cacheable(json_response(StatusCode::OK, &state.keys.jwks().await))
}

/// Public documents may be cached briefly (key rotation keeps old keys published meanwhile).
fn cacheable(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(poem::http::header::CACHE_CONTROL, poem::http::HeaderValue::from_static("public, max-age=300"));
    response.headers_mut().remove(poem::http::header::PRAGMA);
    response
}
