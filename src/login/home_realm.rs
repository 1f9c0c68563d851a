//! The home-realm page's part of a login: a request with nothing to route on is held while the
//! page asks for the user's work email, and goes on with the address typed. An address the
//! upstream cannot sign in (its domain has no single sign-on, its organization's is off) is
//! asked for again, rather than ending the login: the user may have mistyped it.

use std::time::Duration;

use super::attempt::{Attempt, Stage};
use super::begin::{route, Next, Routed};
use super::error::{upstream_error_meaning, LoginError, OidcError};
use super::records::{bounded_json, AuthorizationRequest, Lifetimes};
use crate::model::email_domain;
use crate::routing::LoginHint;
use crate::state::AppState;
use crate::store::{keys, take_json, Store};
use crate::tokens::random_token;

/// A request held for the home-realm page: the page's form names it by `id`.
pub struct Held {
    pub id: String,
    /// The application the user is signing in to, as the page names it.
    pub app_name: String,
    /// How long the request is held (the page's cookie lives as long).
    pub lifetime: Duration,
}

/// Why the page asks for the email (again).
pub enum EmailProblem {
    /// What was typed is not an email address.
    NotAnAddress,
    /// The address's domain has no single sign-on.
    NoSso { domain: String },
    /// The upstream cannot sign in the address, for this reason.
    Upstream { reason: &'static str },
}

/// The page again, for `request`, with what the user typed and what is wrong with it.
pub struct AskAgain {
    pub request: AuthorizationRequest,
    pub typed: Option<String>,
    pub problem: EmailProblem,
}

/// What the email typed at the page leads to.
pub enum Submitted {
    Next(Next),
    AskAgain(Box<AskAgain>),
}

/// Holds `request` in the store for the page (counted as a pending flow). A failure ends the
/// attempt (its event).
pub async fn hold(app: &AppState, request: AuthorizationRequest) -> Result<Held, LoginError> {
    let attempt = Attempt::of_request(&request);
    let held = hold_request(app, request).await;
    if let Err(failure) = &held {
        attempt.failed(app, Stage::Authorize, failure);
    }
    held
}

async fn hold_request(app: &AppState, request: AuthorizationRequest) -> Result<Held, LoginError> {
    let Ok(Some(client)) = app.client(&request.client_id).await else {
        return Err(
            LoginError::refused("Sign-in request not accepted", "Unknown application.").because("unknown_client")
        );
    };
    let id = random_token(24).map_err(|e| request.fail(e.into()))?;
    let lifetime = Lifetimes::of(&app.config).flow;
    let mut request = request;
    let ticket = app.pending_flows.admit(&request.client_ip).map_err(|retry_after| LoginError::Busy { retry_after })?;
    request.pending_ticket = Some(ticket.clone());
    let stored = match bounded_json(&request) {
        Ok(bytes) => app.store.put(&keys::pending(&id), &bytes, lifetime).await.map_err(OidcError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = stored {
        app.pending_flows.release(&ticket);
        return Err(request.fail(error));
    }
    Ok(Held { id, app_name: client.record.display_name().to_owned(), lifetime })
}

/// The answer to a form that no held request matches (expired, already used, or not this
/// browser's).
pub fn form_expired() -> LoginError {
    LoginError::refused("This sign-in form has expired", "Go back to the application and start the sign-in again.")
        .because("invalid_state")
}

/// The page posted `email` for the request held under `id`: take it (once), and route it by
/// the address. `client_ip` is where the post came from, as the limits count it. A failure
/// ends the attempt (its event).
pub async fn submit(app: &AppState, id: &str, email: &str, client_ip: String) -> Result<Submitted, LoginError> {
    let mut request: AuthorizationRequest = match take_json(&app.store, &keys::pending(id)).await {
        Ok(Some(request)) => request,
        Ok(None) => return Err(ended(app, Attempt::start(crate::events::Kind::Login), form_expired())),
        Err(error) => {
            return Err(ended(app, Attempt::start(crate::events::Kind::Login), LoginError::unavailable(error)))
        }
    };
    if let Some(ticket) = request.pending_ticket.take() {
        app.pending_flows.release(&ticket);
    }
    request.client_ip = client_ip;
    let typed = Some(email.to_owned());
    let Some(domain) = email_domain(email) else {
        return Ok(Submitted::AskAgain(Box::new(AskAgain { request, typed, problem: EmailProblem::NotAnAddress })));
    };
    request.selectors.login_hint = Some(LoginHint::from(email.to_owned()));
    let attempt = Attempt::of_request(&request);
    match route(app, request, true).await.map_err(|failure| ended(app, attempt, failure))? {
        Routed::Next(next) => Ok(Submitted::Next(next)),
        Routed::Denied { request, .. } => Ok(Submitted::AskAgain(Box::new(AskAgain {
            request: *request,
            typed,
            problem: EmailProblem::NoSso { domain },
        }))),
    }
}

fn ended(app: &AppState, attempt: Attempt, failure: LoginError) -> LoginError {
    attempt.failed(app, Stage::Authorize, &failure);
    failure
}

/// The upstream answered `upstream_error` for the address typed at the page (one the user may
/// have mistyped): ask again, saying why.
pub fn ask_again(mut request: AuthorizationRequest, upstream_error: &str) -> AskAgain {
    let typed = request.selectors.login_hint.take();
    let problem = match upstream_error {
        "domain_not_found" => {
            EmailProblem::NoSso { domain: typed.as_ref().and_then(LoginHint::domain).unwrap_or_default().to_owned() }
        }
        other => EmailProblem::Upstream { reason: upstream_error_meaning(other).1 },
    };
    AskAgain { request, typed: typed.map(String::from), problem }
}
