//! Who is redeeming a code: the client's authentication at `/token` (RFC 6749 §2.3, OIDC Core
//! §9), with a shared secret (`client_secret_basic`, `client_secret_post`) or a JWT signed by a
//! key it registered (`private_key_jwt`, RFC 7523).

use std::sync::Arc;

use super::error::{ErrorCode, OidcError};
use crate::client_assertion::{inspect, AssertionError, ASSERTION_TYPE};
use crate::clients::Client;
use crate::model::TokenAuthMethod;
use crate::state::AppState;
use crate::tokens::secrets_equal;

/// What a token request presented: one method, as the face read it. (No `Debug`: it holds the
/// client's secret.)
pub enum ClientCredentials<'a> {
    /// `client_secret_basic` or `client_secret_post`.
    Secret { client_id: String, secret: String },
    /// `private_key_jwt`; `client_id` when the form named one as well.
    Assertion { client_id: Option<&'a str>, assertion_type: &'a str, assertion: &'a str },
}

fn unauthorized() -> OidcError {
    OidcError::new(ErrorCode::InvalidClient, "client authentication failed")
}

/// The client `credentials` prove, or `invalid_client` (the reason goes to the log only).
pub async fn authenticate(app: &AppState, credentials: ClientCredentials<'_>) -> Result<Arc<Client>, OidcError> {
    let (client_id, secret) = match credentials {
        ClientCredentials::Secret { client_id, secret } => (client_id, secret),
        ClientCredentials::Assertion { client_id, assertion_type, assertion } => {
            return authenticate_assertion(app, client_id, assertion_type, assertion).await
        }
    };
    let client = app.client(&client_id).await?;
    // Compare even for an unknown client, so that timing does not tell which client ids exist.
    let known = client.as_ref().is_some_and(|c| c.record.secret_matches(&secret));
    if client.is_none() {
        let _ = secrets_equal(&secret, "\u{0}no-such-client");
    }
    match client {
        Some(client) if known => Ok(client),
        _ => {
            tracing::info!("client authentication failed");
            Err(unauthorized())
        }
    }
}

/// RFC 7523 §2.2: the client named by the assertion's `sub`, if the assertion verifies with
/// one of its registered keys.
async fn authenticate_assertion(
    app: &AppState,
    form_id: Option<&str>,
    assertion_type: &str,
    assertion: &str,
) -> Result<Arc<Client>, OidcError> {
    let refuse = |detail: &str| {
        tracing::info!(reason = detail, "client assertion refused");
        unauthorized()
    };
    if assertion_type != ASSERTION_TYPE {
        return Err(refuse("unsupported client_assertion_type"));
    }
    // Shape first: nothing is fetched for an assertion no key could make valid.
    let claimed = inspect(assertion, &app.issuer).map_err(|e| refuse(&e.to_string()))?;
    let client_id = claimed.client_id.clone();
    if form_id.is_some_and(|form_id| form_id != client_id) {
        return Err(refuse("client_id differs from the assertion's sub"));
    }
    let Some(client) = app.client(&client_id).await? else { return Err(refuse("unknown client")) };
    tracing::Span::current().record("client_id", client_id.as_str());
    if client.record.token_endpoint_auth_method != TokenAuthMethod::PrivateKeyJwt {
        return Err(refuse("the client is not registered for private_key_jwt"));
    }
    match app.client_keys.verify(&app.store, &app.issuer, &client.record, assertion, &claimed).await {
        Ok(()) => Ok(client),
        Err(AssertionError::Store(error)) => Err(error.into()),
        Err(error) => Err(refuse(&error.to_string())),
    }
}
