//! The upstream's answer: take the flow (single use), check where the answer came from and
//! where the login ended, verify the identity, let the client's adapter link the user, and mint
//! the broker's code.

use ssobridge_adapter_core::Identity;
use tracing::instrument;

use super::attempt::{Attempt, Stage};
use super::error::{adapter_error, routed_upstream_error, unsolicited_upstream_error, upstream_error};
use super::error::{ErrorCode, LoginError, OidcError};
use super::home_realm::{ask_again, AskAgain};
use super::records::{AuthorizationRequest, CodeGrant, Flow, Lifetimes, TOKEN_FIELDS_CONTEXT};
use crate::clock::now_secs;
use crate::model::SubjectMode;
use crate::state::AppState;
use crate::store::{keys, put_json, take_json, Store};
use crate::tokens::{pairwise_subject, random_token, sha256_hex, user_claims, ClaimScopes, Sealer, TokenError};
use crate::upstream::UpstreamClaims;

/// What the upstream sent back (each parameter as given; one sent twice counts as absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct UpstreamAnswer<'a> {
    pub state: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
}

/// How a login ends when it does not fail.
pub enum Finished {
    /// Back to the client's `redirect_uri` with the broker's `code` and the request's `state`.
    Issued { redirect_uri: String, code: String, state: Option<String> },
    /// The email typed at the home-realm page cannot sign in as it is (no SSO for its domain,
    /// the organization's SSO is off, …): the page asks again, saying why.
    AskAgain(Box<AskAgain>),
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

/// Finishes the login the upstream answered, and records how it ended (one event).
pub async fn finish(app: &AppState, answer: UpstreamAnswer<'_>) -> Result<Finished, LoginError> {
    let mut attempt = Attempt::start(crate::events::Kind::Login);
    let finished = complete(app, answer, &mut attempt).await;
    match &finished {
        Ok(Finished::Issued { .. }) => attempt.succeeded(app),
        // The user types another address: the attempt goes on.
        Ok(Finished::AskAgain(_)) => {}
        Err(failure) => attempt.failed(app, Stage::Upstream, failure),
    }
    finished
}

#[instrument(skip_all, fields(client_id, connection_id))]
async fn complete(app: &AppState, answer: UpstreamAnswer<'_>, attempt: &mut Attempt) -> Result<Finished, LoginError> {
    let expired = || {
        LoginError::refused(
            "This sign-in link is no longer valid",
            "The sign-in attempt has expired or was already completed. Go back to the application and sign in again.",
        )
        .because("invalid_state")
    };
    // An upstream error with no sign-in of ours to return it to (Scalekit's simulator sends
    // its "Error" choice without `state`): say what happened, rather than that a link expired.
    let unsolicited = || answer.error.map(|error| unsolicited_upstream_error(error, answer.error_description));
    let Some(upstream_state) = answer.state else {
        return Err(unsolicited().unwrap_or_else(expired));
    };
    // Taken, not read: a replayed or forged state finds nothing (single use).
    let flow: Flow = match take_json(&app.store, &keys::flow(upstream_state)).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return Err(unsolicited().unwrap_or_else(expired)),
        Err(error) => return Err(LoginError::unavailable(error)),
    };
    let request = &flow.request;
    if let Some(ticket) = &request.pending_ticket {
        app.pending_flows.release(ticket);
    }
    tracing::Span::current().record("client_id", request.client_id.as_str());
    attempt.client = Some(request.client_id.clone());
    attempt.began_ms = Some(request.requested_at_ms).filter(|ms| *ms > 0);
    attempt.routed(flow.routed_by, flow.via_hosted_page);
    (attempt.organization, attempt.connection) =
        (flow.target.organization_id.clone(), flow.target.connection_id.clone());
    attempt.email = request.selectors.login_hint.as_ref().map(|hint| String::from(hint.clone()));
    let fail = |error: OidcError| request.fail(error);
    // RFC 9207: the response must come from the upstream we sent the user to (mix-up defence).
    let endpoints = app.upstream.endpoints().await.map_err(|e| fail(e.into()))?;
    match answer.iss {
        Some(iss) if iss != app.upstream.issuer() => {
            tracing::warn!("callback iss does not match the upstream issuer");
            return Err(fail(
                OidcError::new(ErrorCode::AccessDenied, "the sign-in response came from an unexpected issuer")
                    .because("issuer_mismatch"),
            ));
        }
        None if endpoints.iss_parameter_supported => {
            return Err(fail(
                OidcError::new(ErrorCode::AccessDenied, "the sign-in response is missing its issuer")
                    .because("issuer_missing"),
            ));
        }
        _ => {}
    }
    if let Some(error) = answer.error {
        let description = answer.error_description;
        if let Some(asked) = ASK_AGAIN.iter().find(|code| **code == error).filter(|_| flow.via_hosted_page) {
            upstream_error(error, description);
            tracing::info!("the upstream cannot sign in the typed address; asking again");
            return Ok(Finished::AskAgain(Box::new(ask_again(flow.request, asked))));
        }
        return Err(fail(routed_upstream_error(error, description, flow.routed_by)));
    }
    let code = answer.code.ok_or_else(|| {
        fail(OidcError::new(ErrorCode::ServerError, "the identity provider returned no code").because("no_code"))
    })?;
    let claims = attempt
        .at_upstream(app.upstream.exchange(code, &flow.upstream_pkce_verifier, &flow.upstream_nonce))
        .await
        .map_err(|e| fail(e.into()))?;
    attempt.organization = claims.organization().map(str::to_owned).or(attempt.organization.take());
    attempt.connection = claims.connection().map(str::to_owned).or(attempt.connection.take());
    attempt.email = claims.email.clone().or(attempt.email.take());
    let client = match app.client(&request.client_id).await {
        Ok(Some(client)) => client,
        // The client was removed while the user was away.
        Ok(None) => {
            return Err(fail(
                OidcError::new(ErrorCode::UnauthorizedClient, "the application is no longer registered")
                    .because("unknown_client"),
            ))
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
        return Err(fail(
            OidcError::new(
                ErrorCode::AccessDenied,
                "the sign-in ended in another organization than the application accepts",
            )
            .because("organization_mismatch"),
        ));
    }
    let mut identity = identity(app, &request.client_id, client.record.subject, &claims);
    // The broker's own statement, in its tokens and to the adapter alike: a customer's IdP may
    // say anything about any address, so an email counts as verified only when the IdP did not
    // deny it and its domain is a verified route of the organization the upstream names.
    identity.email_verified = claims.email_verified != Some(false)
        && domain_verified(app, &identity, &request.client_id).await.map_err(|e| fail(e.into()))?;
    tracing::Span::current().record("connection_id", identity.connection_id.as_deref().unwrap_or(""));
    attempt.subject = Some(identity.subject.clone());
    // The customer's directory has the last word: a user it deactivated does not sign in,
    // whatever their IdP session says.
    let directory = match (&identity.organization_id, &identity.email) {
        (Some(organization), Some(email)) => {
            crate::people::record_of(&app.store, organization, email).await.map_err(|e| fail(e.into()))?
        }
        _ => None,
    };
    if directory.as_ref().is_some_and(|record| !record.active) {
        tracing::warn!(reason = "deprovisioned", "the user's directory has deactivated them; login refused");
        return Err(fail(
            OidcError::new(
                ErrorCode::AccessDenied,
                "this account has been deactivated in your organization's directory",
            )
            .because("deprovisioned"),
        ));
    }
    let outcome = attempt
        .at_adapter(client.adapter.name(), client.adapter.link(&identity))
        .await
        .map_err(|e| fail(adapter_error(client.adapter.name(), e)))?;
    // Sign-out: the session this login opens, named in the ID token and the access token. It
    // is opened while the user's downstream id is remembered: independent store writes, so
    // their round trips overlap.
    let remembering = async {
        if let (Some(organization), Some(email)) = (&identity.organization_id, &identity.email) {
            remember(app, &client.record.spec, organization, email, &identity, &outcome, directory.is_some()).await;
        }
    };
    let (session, ()) =
        tokio::join!(super::sessions::open(app, &request.client_id, &identity.subject, &claims.sub), remembering);
    let session = session.map_err(|e| fail(e.into()))?;
    let extra = extra_claims(&client.record.claims, &claims, directory.as_ref(), outcome.extra_claims());
    let user_claims =
        user_claims(&identity, ClaimScopes::from_scope(&request.scope), Some(&extra), &client.record.claims);
    let code = random_token(32).map_err(|e| fail(e.into()))?;
    let sealed_token_fields = match outcome.token_fields().filter(|fields| !fields.is_empty()) {
        Some(fields) => {
            let json = serde_json::to_vec(fields).map_err(|e| fail(TokenError::Serialize(e.to_string()).into()))?;
            let sealer = Sealer::from_secret(&code).map_err(|e| fail(e.into()))?;
            Some(sealer.seal(TOKEN_FIELDS_CONTEXT, &json).map_err(|e| fail(e.into()))?)
        }
        None => None,
    };
    if app.config.upstream.logout_at_upstream && !claims.id_token.is_empty() {
        let lifetime = Lifetimes::of(&app.config).session;
        let key = keys::upstream_logout_hint(&session.sid);
        if let Err(error) = app.store.put(&key, claims.id_token.as_bytes(), lifetime).await {
            tracing::warn!(error = %error, "the upstream ID token was not kept; a sign-out will not reach the upstream");
        }
    }
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
        session: Some(session.reference()),
    };
    let lifetime = Lifetimes::of(&app.config).code;
    put_json(&app.store, &keys::code(&sha256_hex(&code)), &grant, lifetime).await.map_err(|e| fail(e.into()))?;
    crate::telemetry::count("ssobridge_logins_completed_total", &[("client", &request.client_id)]);
    tracing::info!("login completed upstream; code issued");
    Ok(Finished::Issued { redirect_uri: request.redirect_uri.clone(), code, state: request.state.clone() })
}

/// Remembers who the user is downstream, for their directory's later word, and queues the
/// writing of their directory roles there. A failure costs only that (the login goes on).
async fn remember(
    app: &AppState,
    client: &crate::model::ClientSpec,
    organization: &str,
    email: &str,
    identity: &Identity,
    outcome: &ssobridge_adapter_core::LinkOutcome,
    in_directory: bool,
) {
    let user_id = outcome.downstream_user_id();
    let remembered = crate::people::remember_login(
        &app.store,
        organization,
        email,
        &identity.upstream_subject,
        &client.client_id,
        user_id,
    )
    .await;
    let queued = match (in_directory && user_id.is_some() && client.claims.wants_entitlements(), &remembered) {
        (true, Ok(())) => {
            let person = crate::people::person_id(organization, email);
            crate::people::queue_roles_after_login(&app.jobs, &person, &client.client_id).await
        }
        _ => Ok(()),
    };
    if let Err(error) = remembered.and(queued) {
        tracing::warn!(error = %error, "could not remember the login for directory sync");
    }
}

/// Claims beyond the fixed ones: the client's mapped upstream attributes, the user's directory
/// groups and roles when the client takes them, and the adapter's own (which win).
fn extra_claims(
    mapping: &crate::model::ClaimMapping,
    claims: &UpstreamClaims,
    directory: Option<&crate::people::DirectoryRecord>,
    adapter_claims: Option<&serde_json::Map<String, serde_json::Value>>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    for (from, to) in &mapping.attributes {
        if let Some(value) = claims.other.get(from) {
            extra.insert(to.clone(), value.clone());
        }
    }
    if mapping.wants_entitlements() {
        let entitlements = directory.map(|record| record.entitlements(mapping)).unwrap_or_default();
        if mapping.groups {
            extra.insert("groups".into(), entitlements.groups.into());
        }
        extra.insert("roles".into(), entitlements.roles.into());
    }
    if let Some(adapter_claims) = adapter_claims {
        extra.extend(adapter_claims.iter().map(|(name, value)| (name.clone(), value.clone())));
    }
    extra
}

/// When the user signed in: the upstream's `auth_time`, else now (the callback follows the
/// sign-in it reports). Held against what the client asked: `max_age` and `prompt=login`
/// (OIDC Core §3.1.2.1) are forwarded upstream, and an answer that does not honour them is
/// refused rather than passed on as a fresh sign-in.
fn authenticated_at(app: &AppState, request: &AuthorizationRequest, claims: &UpstreamClaims) -> Result<u64, OidcError> {
    let now = now_secs();
    let skew = app.config.upstream.clock_skew_seconds;
    let auth_time = match claims.auth_time {
        Some(at) if at < 0 || at as u64 > now + skew => {
            tracing::warn!(auth_time = at, "upstream auth_time is in the future");
            return Err(OidcError::new(
                ErrorCode::AccessDenied,
                "the identity provider's answer could not be verified",
            )
            .because("auth_time_invalid"));
        }
        Some(at) => at as u64,
        None => now,
    };
    let stale = |reason: &str| {
        tracing::info!(auth_time, reason, "the upstream did not re-authenticate as the client asked");
        OidcError::new(ErrorCode::LoginRequired, "the user did not sign in again at their identity provider")
            .because("reauthentication_missing")
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
