//! `GET /callback`: the upstream's answer, handed to the login to finish; the browser goes back
//! to the client with a code, to the home-realm page to try another address, or to an error.

use std::sync::Arc;

use poem::web::Data;
use poem::{handler, Request, Response};

use super::error::{failure_response, redirect, with_query};
use super::params::Params;
use super::{home_realm, initiate_login};
use crate::login::{self, Finished, UpstreamAnswer};
use crate::state::AppState;

#[handler]
pub async fn callback(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    // A parameter sent twice (or too long) counts as absent.
    let param = |name: &str| params.get(name).ok().flatten();
    // Scalekit's test guide says its simulator delivers IdP-initiated logins to the "default
    // redirect URL" (research/scalekit.md §4.1, §5): a token with no sign-in of ours behind
    // it (no `state`) is an initiation, handled as at the initiate-login endpoint.
    if param("state").is_none() && param("idp_initiated_login").is_some() {
        return initiate_login::hand_off(&state, &params, None).await;
    }
    let answer = UpstreamAnswer {
        state: param("state"),
        iss: param("iss"),
        code: param("code"),
        error: param("error"),
        error_description: param("error_description"),
    };
    match login::finish(&state, answer).await {
        Ok(Finished::Issued { redirect_uri, code, state: client_state }) => {
            let mut response = vec![("code", code.as_str())];
            if let Some(client_state) = client_state.as_deref() {
                response.push(("state", client_state));
            }
            response.push(("iss", state.issuer.as_str()));
            redirect(&with_query(&redirect_uri, &response))
        }
        Ok(Finished::AskAgain(again)) => home_realm::ask_again(&state, *again).await,
        Err(failure) => failure_response(failure, &state.issuer),
    }
}
