//! `GET|POST /logout`: the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0 §2; the
//! spec requires both methods). The parameters are read, the sign-out is the login domain's
//! (`login::logout`), and the answer is a redirect to the registered
//! `post_logout_redirect_uri` with `state`, or a page. The path is a contract: recipes and
//! downstream configurations name it.

use std::sync::Arc;

use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::{handler, Body, Request, Response};

use super::error::{failure_response, redirect, with_query};
use super::params::{Params, MAX_BODY_BYTES};
use crate::login::logout::{end_session as sign_out, LogoutRequest, SignedOut};
use crate::login::LoginError;
use crate::pages::{escape, page};
use crate::state::AppState;

pub const PATH: &str = "/logout";

#[handler]
pub async fn end_session(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let params = if req.method() == Method::POST {
        match body.into_bytes_limit(MAX_BODY_BYTES).await {
            Ok(bytes) => Params::parse(&bytes),
            Err(_) => {
                let refused = LoginError::refused("Sign-out request not accepted", "The request body is too large.");
                return failure_response(refused, &state.issuer);
            }
        }
    } else {
        Params::parse(req.uri().query().unwrap_or("").as_bytes())
    };
    let get =
        |name: &str| params.get(name).map_err(|e| LoginError::refused("Sign-out request not accepted", e.to_string()));
    let request = (|| {
        Ok::<_, LoginError>(LogoutRequest {
            id_token_hint: get("id_token_hint")?,
            client_id: get("client_id")?,
            post_logout_redirect_uri: get("post_logout_redirect_uri")?,
            state: get("state")?,
        })
    })();
    let outcome = match request {
        Ok(request) => sign_out(&state, request).await,
        Err(refused) => Err(refused),
    };
    answer(outcome, &state.issuer)
}

/// `GET /logout/done`: the upstream's end-session endpoint sends the browser back here.
#[handler]
pub async fn back_from_upstream(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let returned = params.get("state").ok().flatten();
    answer(crate::login::logout::back_from_upstream(&state, returned).await, &state.issuer)
}

/// Where a sign-out sends the browser: the client's URI with its `state`, the upstream's
/// end-session endpoint, the signed-out page, or the page of what was wrong.
fn answer(outcome: Result<SignedOut, LoginError>, issuer: &str) -> Response {
    match outcome {
        Ok(SignedOut::Redirect { uri, state: Some(state) }) => redirect(&with_query(&uri, &[("state", &state)])),
        Ok(SignedOut::Redirect { uri, state: None } | SignedOut::Upstream { uri }) => redirect(&uri),
        Ok(SignedOut::Page { application }) => signed_out_page(application.as_deref()),
        Err(failure) => failure_response(failure, issuer),
    }
}

/// "You are signed out": where a sign-out with nowhere to return to ends.
pub fn signed_out_page(application: Option<&str>) -> Response {
    let of = application.map(|name| format!(" of {}", escape(name))).unwrap_or_default();
    let body = format!(
        "<h1>You are signed out</h1>\n<p>You have been signed out{of}. You can close this window, or return to \
         the application to sign in again.</p>"
    );
    page(StatusCode::OK, "You are signed out", &body)
}
