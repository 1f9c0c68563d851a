//! `GET /callback`: the upstream's answer. Take the flow (single use), verify, link the user
//! downstream, mint the broker's code, send the browser back to the client.

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem::{handler, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ssobridge_adapter_core::{AdapterError, Identity};
use tracing::instrument;

use super::authorize::{AuthorizationRequest as AuthorizeRequest, Flow};
use super::error::{
    redirect, unsolicited_upstream_error, upstream_error, with_query, AuthorizeFailure, ErrorCode, OidcError,
};
use super::params::Params;
use crate::clock::now_secs;
use crate::model::SubjectMode;
use crate::routing::RoutedBy;
use crate::state::AppState;
use crate::store::{keys, put_json, take_json};
use crate::tokens::{pairwise_subject, random_token, sha256_hex, user_claims, ClaimScopes, Sealer, TokenError};
use crate::upstream::UpstreamClaims;

/// What a broker code stands for: stored under SHA-256 of the code, taken once at `/token`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub sub: String,
    /// The user claims (no protocol claims), identical in the ID token and at userinfo.
    pub claims: Map<String, Value>,
    pub auth_time: u64,
    /// The upstream's `acr`, passed on as the upstream said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Fields the adapter adds to the token response (a Firebase custom token), sealed under
    /// the code itself: the store alone cannot read them, the code's redeemer can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_token_fields: Option<String>,
}

/// The authenticated data of sealed token fields.
pub const TOKEN_FIELDS_CONTEXT: &str = "token-fields";

#[handler]
pub async fn callback(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    // Scalekit's test guide says its simulator delivers IdP-initiated logins to the "default
    // redirect URL" (research/scalekit.md §4.1, §5): a token with no sign-in of ours behind
    // it (no `state`) is an initiation, handled as at the initiate-login endpoint.
    let state_param = params.get("state").ok().flatten();
    if state_param.is_none() && params.get("idp_initiated_login").ok().flatten().is_some() {
        return crate::routing::idp_initiated::hand_off(&state, &params, None).await;
    }
    match finish_login(&state, &params).await {
        Ok(Finished::Redirect(location)) => redirect(&location),
        Ok(Finished::AskAgain { request, upstream_error }) => {
            crate::routing::page::ask_again(&state, *request, upstream_error).await
        }
        Err(failure) => failure.into_response(&state.issuer),
    }
}

/// How a callback ends when it does not fail.
pub enum Finished {
    /// Back to the client with a code.
    Redirect(String),
    /// The email typed at the home-realm page cannot sign in as it is (no SSO for its domain,
    /// the organization's SSO is off, …: `upstream_error`): ask again, saying why.
    AskAgain { request: Box<AuthorizeRequest>, upstream_error: &'static str },
}

/// Upstream errors about the address the user typed at the home-realm page, or its
/// organization's single sign-on: the user may have mistyped it, so the page asks again.
const ASK_AGAIN: &[&str] = &[
    "domain_not_found",
    "invalid_user_domain",
    "no_active_connections",
    "connection_not_active",
    "no_configured_connections",
];

#[instrument(skip_all, fields(client_id, connection_id))]
pub async fn finish_login(app: &AppState, params: &Params) -> Result<Finished, AuthorizeFailure> {
    let expired = || {
        AuthorizeFailure::page(
            "This sign-in link is no longer valid",
            "The sign-in attempt has expired or was already completed. Go back to the application and sign in again.",
        )
    };
    // An upstream error with no sign-in of ours to return it to (Scalekit's simulator sends
    // its "Error" choice without `state`): say what happened, rather than that a link expired.
    let unsolicited = || {
        let error = params.get("error").ok().flatten()?;
        Some(unsolicited_upstream_error(error, params.get("error_description").ok().flatten()))
    };
    let Some(upstream_state) = params.get("state").ok().flatten() else {
        return Err(unsolicited().unwrap_or_else(expired));
    };
    // Taken, not read: a replayed or forged state finds nothing (single use).
    let flow: Flow = match take_json(&app.store, &keys::flow(upstream_state)).await {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            crate::telemetry::count(
                "ssobridge_logins_failed_total",
                &[("client", "unknown"), ("reason", "invalid_state")],
            );
            return Err(unsolicited().unwrap_or_else(expired));
        }
        Err(error) => {
            let error: OidcError = error.into();
            return Err(AuthorizeFailure::unavailable(error.description));
        }
    };
    let request = &flow.request;
    if let Some(ticket) = &request.pending_ticket {
        app.pending_flows.release(ticket);
    }
    tracing::Span::current().record("client_id", request.client_id.as_str());
    let fail = |error: OidcError| request.fail(error);
    // RFC 9207: the response must come from the upstream we sent the user to (mix-up defence).
    let endpoints = app.upstream.endpoints().await.map_err(|e| fail(e.into()))?;
    match params.get("iss").ok().flatten() {
        Some(iss) if iss != app.upstream.issuer() => {
            tracing::warn!("callback iss does not match the upstream issuer");
            return Err(fail(OidcError::new(
                ErrorCode::AccessDenied,
                "the sign-in response came from an unexpected issuer",
            )));
        }
        None if endpoints.iss_parameter_supported => {
            return Err(fail(OidcError::new(ErrorCode::AccessDenied, "the sign-in response is missing its issuer")));
        }
        _ => {}
    }
    if let Some(error) = params.get("error").ok().flatten() {
        let description = params.get("error_description").ok().flatten();
        if let Some(asked) = ASK_AGAIN.iter().find(|code| **code == error).filter(|_| flow.via_hosted_page) {
            upstream_error(error, description);
            tracing::info!("the upstream cannot sign in the typed address; asking again");
            return Ok(Finished::AskAgain { request: Box::new(flow.request), upstream_error: asked });
        }
        return Err(fail(routed_upstream_error(error, description, flow.routed_by)));
    }
    let code = params
        .get("code")
        .ok()
        .flatten()
        .ok_or_else(|| fail(OidcError::new(ErrorCode::ServerError, "the identity provider returned no code")))?;
    let claims = app
        .upstream
        .exchange(code, &flow.upstream_pkce_verifier, &flow.upstream_nonce)
        .await
        .map_err(|e| fail(e.into()))?;
    let client = match app.client(&request.client_id).await {
        Ok(Some(client)) => client,
        // The client was removed while the user was away.
        Ok(None) => {
            return Err(fail(OidcError::new(ErrorCode::UnauthorizedClient, "the application is no longer registered")))
        }
        Err(e) => return Err(fail(e.into())),
    };
    let auth_time = authenticated_at(app, request, &claims).map_err(fail)?;
    let arrival = crate::routing::check_arrival(
        &app.routes(),
        &client.record,
        &flow.target,
        claims.organization(),
        claims.connection(),
    )
    .await
    .map_err(|e| fail(e.into()))?;
    if let Err(stray) = arrival {
        tracing::warn!(
            ?stray,
            routed_organization_id = flow.target.organization_id.as_deref().unwrap_or(""),
            routed_connection_id = flow.target.connection_id.as_deref().unwrap_or(""),
            upstream_organization_id = claims.organization().unwrap_or(""),
            upstream_connection_id = claims.connection().unwrap_or(""),
            "the upstream login ended outside where it was routed; refused"
        );
        return Err(fail(OidcError::new(
            ErrorCode::AccessDenied,
            "the sign-in ended in another organization than the application accepts",
        )));
    }
    let mut identity = identity(app, &request.client_id, client.record.subject, &claims);
    // The broker's own statement, in its tokens and to the adapter alike: a customer's IdP may
    // say anything about any address, so an email counts as verified only when the IdP did not
    // deny it and its domain is a verified route of the organization the upstream names.
    identity.email_verified = claims.email_verified != Some(false)
        && domain_verified(app, &identity, &request.client_id).await.map_err(|e| fail(e.into()))?;
    tracing::Span::current().record("connection_id", identity.connection_id.as_deref().unwrap_or(""));
    let outcome = crate::telemetry::timed(
        "ssobridge_adapter_duration_seconds",
        &[("adapter", client.adapter.name())],
        client.adapter.link(&identity),
    )
    .await
    .map_err(|e| fail(adapter_error(client.adapter.name(), e)))?;
    let user_claims =
        user_claims(&identity, ClaimScopes::from_scope(&request.scope), outcome.extra_claims(), &client.record.claims);
    let code = random_token(32).map_err(|e| fail(e.into()))?;
    let sealed_token_fields = match outcome.token_fields().filter(|fields| !fields.is_empty()) {
        Some(fields) => {
            let json = serde_json::to_vec(fields).map_err(|e| fail(TokenError::Serialize(e.to_string()).into()))?;
            let sealer = Sealer::from_secret(&code).map_err(|e| fail(e.into()))?;
            Some(sealer.seal(TOKEN_FIELDS_CONTEXT, &json).map_err(|e| fail(e.into()))?)
        }
        None => None,
    };
    let grant = CodeGrant {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        scope: request.scope.clone(),
        sub: identity.subject.clone(),
        claims: user_claims,
        auth_time,
        acr: claims.acr.clone(),
        sealed_token_fields,
    };
    let ttl = Duration::from_secs(app.config.tokens.code_ttl_seconds);
    put_json(&app.store, &keys::code(&sha256_hex(&code)), &grant, ttl).await.map_err(|e| fail(e.into()))?;
    crate::telemetry::count("ssobridge_logins_completed_total", &[("client", &request.client_id)]);
    tracing::info!("login completed upstream; code issued");
    let mut response = vec![("code", code.as_str())];
    if let Some(state) = request.state.as_deref() {
        response.push(("state", state));
    }
    response.push(("iss", app.issuer.as_str()));
    Ok(Finished::Redirect(with_query(&request.redirect_uri, &response)))
}

/// When the user signed in: the upstream's `auth_time`, else now (the callback follows the
/// sign-in it reports). Held against what the client asked: `max_age` and `prompt=login`
/// (OIDC Core §3.1.2.1) are forwarded upstream, and an answer that does not honour them is
/// refused rather than passed on as a fresh sign-in.
fn authenticated_at(app: &AppState, request: &AuthorizeRequest, claims: &UpstreamClaims) -> Result<u64, OidcError> {
    let now = now_secs();
    let skew = app.config.upstream.clock_skew_seconds;
    let auth_time = match claims.auth_time {
        Some(at) if at < 0 || at as u64 > now + skew => {
            tracing::warn!(auth_time = at, "upstream auth_time is in the future");
            return Err(OidcError::new(
                ErrorCode::AccessDenied,
                "the identity provider's answer could not be verified",
            ));
        }
        Some(at) => at as u64,
        None => now,
    };
    let stale = |reason: &str| {
        tracing::info!(auth_time, reason, "the upstream did not re-authenticate as the client asked");
        OidcError::new(ErrorCode::LoginRequired, "the user did not sign in again at their identity provider")
    };
    let reauthentication = &request.reauthentication;
    if reauthentication.max_age.is_some_and(|max_age| now.saturating_sub(auth_time) > max_age + skew) {
        return Err(stale("max_age"));
    }
    if reauthentication.login_required() && auth_time + skew < request.requested_at {
        return Err(stale("prompt=login"));
    }
    Ok(auth_time)
}

fn identity(app: &AppState, client_id: &str, mode: SubjectMode, claims: &UpstreamClaims) -> Identity {
    let subject = match mode {
        SubjectMode::Upstream => claims.sub.clone(),
        SubjectMode::Pairwise => pairwise_subject(client_id, &claims.sub, &app.pairwise_salt),
    };
    Identity {
        upstream_subject: claims.sub.clone(),
        subject,
        connection_id: claims.connection().map(str::to_owned),
        organization_id: claims.organization().map(str::to_owned),
        email: claims.email.clone(),
        // Decided by the caller (the broker's rule, not the IdP's word).
        email_verified: false,
        name: full_name(claims),
        given_name: claims.given_name.clone(),
        family_name: claims.family_name.clone(),
    }
}

/// The upstream's `name`, else one made of `given_name` and `family_name`: a SAML IdP often
/// sends only those (Scalekit documents all three as optional), and downstreams show `name`.
fn full_name(claims: &UpstreamClaims) -> Option<String> {
    let present = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    present(&claims.name).or_else(|| {
        let parts: Vec<String> = [&claims.given_name, &claims.family_name].into_iter().filter_map(present).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    })
}

/// Whether the email is one valid address whose domain (normalized as the route table's) has a
/// verified route to the identity's own organization.
async fn domain_verified(
    app: &AppState,
    identity: &Identity,
    client_id: &str,
) -> Result<bool, crate::store::StoreError> {
    let (Some(email), Some(organization)) = (&identity.email, &identity.organization_id) else { return Ok(false) };
    let Some(domain) = crate::model::email_domain(email) else { return Ok(false) };
    let route = app.routes().resolve(&domain, client_id).await?;
    Ok(route.is_some_and(|r| r.verified && &r.organization_id == organization))
}

/// An upstream error about a flow, as the client sees it ([`upstream_error`]). An organization
/// or connection the upstream does not know is the client's request at fault when the request
/// named it, and the operator's (a route, the client's default) when routing chose it.
fn routed_upstream_error(error: &str, description: Option<&str>, routed_by: RoutedBy) -> OidcError {
    let mapped = upstream_error(error, description);
    let named_by_request = matches!(routed_by, RoutedBy::ConnectionId | RoutedBy::OrganizationId);
    if matches!(error, "invalid_organization_id" | "invalid_connection_id") && !named_by_request {
        tracing::error!(
            upstream_error = error,
            routed_by = ?routed_by,
            "a route or the client's default names an organization or connection the upstream does not know: check \
             [[routes]] and the client's default_organization_id / default_connection_id"
        );
        return OidcError::new(ErrorCode::ServerError, "the sign-in service's routing is misconfigured");
    }
    mapped
}

fn adapter_error(adapter: &str, error: AdapterError) -> OidcError {
    match error {
        AdapterError::Transient { .. } => {
            tracing::warn!(adapter, error = %error, "adapter unavailable");
            OidcError::new(
                ErrorCode::TemporarilyUnavailable,
                "the application's user directory is temporarily unavailable",
            )
        }
        AdapterError::Refused { reason } => {
            tracing::info!(adapter, "adapter refused the user");
            OidcError::new(ErrorCode::AccessDenied, reason)
        }
        AdapterError::Misconfigured { .. } => {
            tracing::error!(adapter, error = %error, "adapter misconfigured");
            OidcError::new(ErrorCode::ServerError, "the application's user directory is misconfigured")
        }
    }
}
