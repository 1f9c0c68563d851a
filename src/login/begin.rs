//! The first step: a validated authorization request, routed (home realm discovery, in
//! `routing`): to the upstream with its flow stored, to the home-realm page, or refused.

use tracing::instrument;

use super::attempt::{Attempt, Stage};
use super::error::{ErrorCode, LoginError, OidcError};
use super::records::{bounded_json, AuthorizationRequest, Flow, Lifetimes};
use crate::routing::{self, Decision, RoutedBy, Selectors, Target};
use crate::state::AppState;
use crate::store::{keys, Store};
use crate::tokens::{pkce_s256, random_token};

/// Where a login goes next.
pub enum Next {
    /// To the upstream's authorization endpoint: the flow is stored.
    Upstream(String),
    /// Nothing to route on: the home-realm page asks for the user's work email.
    AskEmail(Box<AuthorizationRequest>),
}

/// Where routing sent a login, before a refusal is made the client's error.
pub(super) enum Routed {
    Next(Next),
    /// The domain has no single sign-on and the client's fallback is `deny`.
    Denied {
        request: Box<AuthorizationRequest>,
        domain: String,
    },
}

/// Routes a validated request: to the upstream (its flow stored) or to the home-realm page. A
/// domain without single sign-on (fallback `deny`), or an organization or connection the client
/// may not reach, is the client's `access_denied`. A refusal ends the attempt (its event).
pub async fn begin(app: &AppState, request: AuthorizationRequest) -> Result<Next, LoginError> {
    let attempt = Attempt::of_request(&request);
    let failure = match route(app, request, false).await {
        Ok(Routed::Next(next)) => return Ok(next),
        Ok(Routed::Denied { request, domain }) => request.fail(
            OidcError::new(ErrorCode::AccessDenied, format!("single sign-on is not set up for the domain {domain}"))
                .because("domain_not_routed"),
        ),
        Err(failure) => failure,
    };
    attempt.failed(app, Stage::Authorize, &failure);
    Err(failure)
}

/// Routes `request`; `via_hosted_page`: its `login_hint` is what the user typed at the
/// home-realm page (kept with the flow, to ask again if the upstream does not know its domain).
#[instrument(skip_all, fields(client_id = %request.client_id))]
pub(super) async fn route(
    app: &AppState,
    request: AuthorizationRequest,
    via_hosted_page: bool,
) -> Result<Routed, LoginError> {
    let client = match app.client(&request.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return Err(request.fail(
                OidcError::new(ErrorCode::UnauthorizedClient, "the application is no longer registered")
                    .because("unknown_client"),
            ))
        }
        Err(e) => return Err(request.fail(e.into())),
    };
    let decision = routing::decide(&app.routes(), app.domain_lookup(), &client.record, &request.selectors)
        .await
        .map_err(|e| request.fail(e.into()))?;
    match decision {
        Decision::AskEmail => Ok(Routed::Next(Next::AskEmail(Box::new(request)))),
        Decision::Deny { domain } => {
            tracing::info!(%domain, "no single sign-on for the domain; client fallback is deny");
            Ok(Routed::Denied { request: Box::new(request), domain })
        }
        Decision::OutOfReach => {
            tracing::warn!(
                organization_id = request.selectors.organization_id.as_deref().unwrap_or(""),
                connection_id = request.selectors.connection_id.as_deref().unwrap_or(""),
                "the request names an organization or connection the client may not reach"
            );
            Err(request.fail(
                OidcError::new(
                    ErrorCode::AccessDenied,
                    "the application does not accept sign-in through that organization",
                )
                .because("organization_not_allowed"),
            ))
        }
        Decision::Upstream { mut params, routed_by, target } => {
            params.extend(request.reauthentication.upstream_params());
            let selectors: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let location = go_upstream(app, request, &selectors, routed_by, target, via_hosted_page).await?;
            Ok(Routed::Next(Next::Upstream(location)))
        }
    }
}

/// Stores the flow and returns the upstream authorization URL.
async fn go_upstream(
    app: &AppState,
    request: AuthorizationRequest,
    selectors: &[(&str, &str)],
    routed_by: RoutedBy,
    target: Target,
    via_hosted_page: bool,
) -> Result<String, LoginError> {
    let secret = |bytes| random_token(bytes).map_err(|e| request.fail(e.into()));
    let upstream_state = secret(32)?;
    let upstream_nonce = secret(32)?;
    let upstream_pkce_verifier = secret(32)?;
    let location = app
        .upstream
        .authorize_url(&upstream_state, &upstream_nonce, &pkce_s256(&upstream_pkce_verifier), selectors)
        .await
        .map_err(|e| request.fail(e.into()))?;
    let mut request = request;
    // Routed: the selectors went upstream; only an email typed at the hosted page is kept, to
    // ask again with it if the upstream does not know its domain.
    request.selectors = Selectors {
        login_hint: request.selectors.login_hint.take().filter(|_| via_hosted_page),
        ..Selectors::default()
    };
    let ticket = app.pending_flows.admit(&request.client_ip).map_err(|retry_after| {
        tracing::warn!(source = %request.client_ip, "too many pending sign-ins; refused");
        LoginError::Busy { retry_after }
    })?;
    request.pending_ticket = Some(ticket.clone());
    let flow = Flow { request, upstream_nonce, upstream_pkce_verifier, routed_by, target, via_hosted_page };
    let stored = match bounded_json(&flow) {
        Ok(bytes) => app
            .store
            .put(&keys::flow(&upstream_state), &bytes, Lifetimes::of(&app.config).flow)
            .await
            .map_err(OidcError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = stored {
        app.pending_flows.release(&ticket);
        return Err(flow.request.fail(error));
    }
    crate::telemetry::count("ssobridge_logins_started_total", &[("client", &flow.request.client_id)]);
    tracing::info!(routed_by = ?routed_by, "login started");
    Ok(location)
}
