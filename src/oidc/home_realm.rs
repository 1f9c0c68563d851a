//! The hosted home-realm page: when a request has nothing to route on, ask for a work email
//! and continue the same flow. Plain HTML, no JavaScript, bound to the held request.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Request, Response};

use super::cookie::Cookie;
use super::error::{failure_response, redirect};
use super::params::{Params, MAX_BODY_BYTES};
use super::protect::client_ip;
use crate::login::home_realm::{self, AskAgain, EmailProblem, Submitted};
use crate::login::{capitalized, AuthorizationRequest, Next};
use crate::pages::{self, escape};
use crate::state::AppState;
use crate::tokens::secrets_equal;

/// Binds the form to the browser that was shown it (double submit: cookie and hidden field).
const COOKIE: Cookie = Cookie { base: "ssobridge_hrd" };
pub const SUBMIT_PATH: &str = "/login/email";

/// Where the browser goes for `next`: upstream, or to this page.
pub async fn next_step(app: &AppState, next: Next) -> Response {
    match next {
        Next::Upstream(location) => redirect(&location),
        Next::AskEmail(request) => ask_email(app, *request, None, None).await,
    }
}

/// Shows the email page for `request`. `error` is shown in the page; `typed` refills the field.
pub async fn ask_email(
    app: &AppState,
    request: AuthorizationRequest,
    typed: Option<&str>,
    error: Option<&str>,
) -> Response {
    let held = match home_realm::hold(app, request).await {
        Ok(held) => held,
        Err(failure) => return failure_response(failure, &app.issuer),
    };
    let app_name = &held.app_name;
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
        id = held.id,
        typed = escape(typed.unwrap_or("")),
    );
    let mut response = pages::page(
        if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK },
        &format!("Sign in to {app_name}"),
        &body,
    );
    COOKIE.set(&mut response, app.https(), &held.id, held.lifetime.as_secs());
    response
}

/// The page again, saying in the broker's own words why the address does not sign in.
pub async fn ask_again(app: &AppState, again: AskAgain) -> Response {
    let AskAgain { request, typed, problem } = again;
    let message = match problem {
        EmailProblem::NotAnAddress => "Enter your work email address, like name@company.com.".to_owned(),
        EmailProblem::NoSso { domain } => {
            format!("Single sign-on is not set up for {domain}. Check the address, or ask your administrator.")
        }
        EmailProblem::Upstream { reason } => format!(
            "{} ({}). Check the address, or ask your administrator.",
            capitalized(reason),
            typed.as_deref().unwrap_or("")
        ),
    };
    ask_email(app, request, typed.as_deref(), Some(&message)).await
}

/// `POST /login/email`: the email typed at the home-realm page.
#[handler]
pub async fn submit_email(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let expired = || failure_response(home_realm::form_expired(), &state.issuer);
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
    let email = email.unwrap_or("").trim();
    let source = client_ip(req, state.config.rate_limits.trust_forwarded_for);
    match home_realm::submit(&state, flow_id, email, source).await {
        Ok(Submitted::Next(next)) => next_step(&state, next).await,
        Ok(Submitted::AskAgain(again)) => ask_again(&state, *again).await,
        Err(failure) => failure_response(failure, &state.issuer),
    }
}
