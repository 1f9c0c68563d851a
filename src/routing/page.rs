//! The hosted home-realm page: when a request has nothing to route on, ask for a work email
//! and continue the same flow. Plain HTML, no JavaScript, bound to the pending request.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Request, Response};

use super::cookie::Cookie;
use crate::model::{email_domain, split_email};
use crate::oidc::authorize::{bounded_json, route, AuthorizationRequest, Next};
use crate::oidc::error::{capitalized, upstream_error_meaning, AuthorizeFailure, OidcError};
use crate::oidc::params::{Params, MAX_BODY_BYTES};
use crate::pages::{self, escape};
use crate::state::AppState;
use crate::store::{keys, take_json, Store};
use crate::tokens::{random_token, secrets_equal};

/// Binds the form to the browser that was shown it (double submit: cookie and hidden field).
const COOKIE: Cookie = Cookie { base: "ssobridge_hrd" };
pub const SUBMIT_PATH: &str = "/login/email";

/// Shows the email page for `request`. `error` is shown in the page; `typed` refills the field.
pub async fn ask_email(
    app: &AppState,
    request: AuthorizationRequest,
    typed: Option<&str>,
    error: Option<&str>,
) -> Response {
    let Ok(Some(client)) = app.client(&request.client_id).await else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Sign-in request not accepted", "Unknown application.");
    };
    let id = match random_token(24) {
        Ok(id) => id,
        Err(e) => return request.fail(e.into()).into_response(&app.issuer),
    };
    let ttl = Duration::from_secs(app.config.tokens.flow_ttl_seconds);
    let mut request = request;
    let ticket = match app.pending_flows.admit(&request.client_ip) {
        Ok(ticket) => ticket,
        Err(retry_after) => return AuthorizeFailure::Busy { retry_after }.into_response(&app.issuer),
    };
    request.pending_ticket = Some(ticket.clone());
    let stored = match bounded_json(&request) {
        Ok(bytes) => app.store.put(&keys::pending(&id), &bytes, ttl).await.map_err(OidcError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = stored {
        app.pending_flows.release(&ticket);
        return request.fail(error).into_response(&app.issuer);
    }
    let app_name = client.record.display_name();
    let error_html = error
        .map(|e| format!("<p id=\"email-error\" class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let described_by = if error.is_some() { " aria-describedby=\"email-error\" aria-invalid=\"true\"" } else { "" };
    let body = format!(
        "<h1>Sign in to {app}</h1>\n<p>Enter your work email. You will continue at your company's sign-in page.</p>\n{error_html}\
<form method=\"post\" action=\"{SUBMIT_PATH}\">\
<input type=\"hidden\" name=\"flow\" value=\"{id}\">\
<label for=\"email\">Work email</label>\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" inputmode=\"email\" required autofocus value=\"{typed}\"{described_by}>\
<button type=\"submit\">Continue</button></form>",
        app = escape(app_name),
        typed = escape(typed.unwrap_or("")),
    );
    let mut response = pages::page(
        if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK },
        &format!("Sign in to {app_name}"),
        &body,
    );
    COOKIE.set(&mut response, app.https(), &id, ttl.as_secs());
    response
}

fn expired() -> Response {
    pages::error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in form has expired",
        "Go back to the application and start the sign-in again.",
    )
}

/// `POST /login/email`: the email typed at the home-realm page.
#[handler]
pub async fn submit_email(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let Ok(bytes) = body.into_bytes_limit(MAX_BODY_BYTES).await else {
        return expired();
    };
    let form = Params::parse(&bytes);
    let (Ok(Some(flow_id)), Ok(email)) = (form.get("flow"), form.get("email")) else {
        return expired();
    };
    // The hidden field must match the cookie set with the page: a form posted from another
    // site, or replayed in another browser, fails here.
    if !COOKIE.get(req, state.https()).is_some_and(|cookie| secrets_equal(cookie, flow_id)) {
        tracing::info!("home-realm form without its cookie");
        return expired();
    }
    let mut request: AuthorizationRequest = match take_json(&state.store, &keys::pending(flow_id)).await {
        Ok(Some(request)) => request,
        Ok(None) => return expired(),
        Err(e) => {
            let error: OidcError = e.into();
            return pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable",
                &error.description,
            );
        }
    };
    if let Some(ticket) = request.pending_ticket.take() {
        state.pending_flows.release(&ticket);
    }
    request.client_ip = crate::protect::client_ip(req, state.config.rate_limits.trust_forwarded_for);
    let email = email.unwrap_or("").trim();
    let Some(domain) = email_domain(email) else {
        return ask_email(&state, request, Some(email), Some("Enter your work email address, like name@company.com."))
            .await;
    };
    request.selectors.login_hint = Some(email.to_owned());
    let retry = request.clone();
    match route(&state, request, true).await {
        Ok(Next::Denied { .. }) => {
            let message =
                format!("Single sign-on is not set up for {domain}. Check the address, or ask your administrator.");
            ask_email(&state, retry, Some(email), Some(&message)).await
        }
        Ok(next) => next.into_response(&state).await,
        Err(failure) => failure.into_response(&state.issuer),
    }
}

/// The upstream cannot sign in the address the user typed (`upstream_error`: no SSO for its
/// domain, the organization's SSO is off, …): ask again, saying why in the broker's own words.
pub async fn ask_again(app: &AppState, mut request: AuthorizationRequest, upstream_error: &str) -> Response {
    let typed = request.selectors.login_hint.take();
    let message = match upstream_error {
        "domain_not_found" => {
            let domain = typed.as_deref().and_then(split_email).map(|(_, d)| d.to_owned()).unwrap_or_default();
            format!("Single sign-on is not set up for {domain}. Check the address, or ask your administrator.")
        }
        other => {
            let (_, reason, _) = upstream_error_meaning(other);
            let typed = typed.as_deref().unwrap_or("");
            format!("{} ({typed}). Check the address, or ask your administrator.", capitalized(reason))
        }
    };
    ask_email(app, request, typed.as_deref(), Some(&message)).await
}
