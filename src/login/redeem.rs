//! A broker code redeemed at `/token` (RFC 6749 §4.1.3): taken once, checked against the
//! client, its redirect URI and PKCE verifier, and turned into an ID token and an opaque access
//! token. A second use of a code revokes what the first one issued.

use serde_json::{Map, Value};
use tracing::instrument;

use super::error::{ErrorCode, OidcError};
use super::records::{CodeGrant, Lifetimes, RedeemedCode, TOKEN_FIELDS_CONTEXT};
use crate::clients::Client;
use crate::state::AppState;
use crate::store::{keys, Redeemed, Store, StoreError};
use crate::tokens::{id_token_claims, is_pkce_value, pkce_s256, random_token, secrets_equal, sha256_hex};
use crate::tokens::{ProtocolClaims, Sealer};

/// A token request for a code, as the face read it. `redirect_uri` and `code_verifier` are
/// checked only once the code is spent, so that a malformed one spends it too (single use).
pub struct CodeRedemption<'a> {
    pub code: &'a str,
    pub redirect_uri: Result<Option<&'a str>, OidcError>,
    pub code_verifier: Result<Option<&'a str>, OidcError>,
}

/// What a redeemed code yields (RFC 6749 §5.1, OIDC Core §3.1.3.3). No `Debug`: it holds tokens.
pub struct Tokens {
    pub access_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    pub id_token: String,
    pub scope: String,
    /// What the client's adapter adds to the response (a Firebase custom token).
    pub adapter_fields: Map<String, Value>,
}

fn invalid_grant(description: &str) -> OidcError {
    OidcError::new(ErrorCode::InvalidGrant, description)
}

/// Redeems the code of `redemption` for `client`, which authenticated.
#[instrument(skip_all, fields(client_id = %client.record.client_id))]
pub async fn redeem(app: &AppState, client: &Client, redemption: CodeRedemption<'_>) -> Result<Tokens, OidcError> {
    let code = redemption.code;
    let code_hash = sha256_hex(code);
    let tag = keys::login_tag(&code_hash);
    // The access token is minted before the code is taken, so that one store step takes the
    // code, marks it used (naming the token) and keeps the grant as the token's record. The
    // token is disclosed only if every check below passes; otherwise its record is deleted.
    let access_token = format!("{tag}{}", random_token(32)?);
    let access_hash = sha256_hex(&access_token);
    let access_key = keys::access_token(tag, &access_hash);
    let access_lifetime = Lifetimes::of(&app.config).access_token;
    let marker = serde_json::to_vec(&RedeemedCode { access_token_hash: access_hash })
        .map_err(|e| OidcError::new(ErrorCode::ServerError, e.to_string()))?;
    let code_key = keys::code(&code_hash);
    let grant =
        match app.store.redeem(&code_key, &keys::code_used(&code_hash), &marker, &access_key, access_lifetime).await? {
            Redeemed::Taken(bytes) => serde_json::from_slice::<CodeGrant>(&bytes)
                .map_err(|e| StoreError::Corrupt { key: code_key, detail: e.to_string() })?,
            Redeemed::Missing { marker } => {
                revoke_if_replayed(app, tag, marker.as_deref()).await?;
                return Err(invalid_grant("the code is invalid, expired or already used"));
            }
        };
    match check_grant(client, &grant, &redemption) {
        Ok(()) => issue(app, client, code, access_token, grant).await,
        Err(error) => {
            // The code is spent either way (RFC 6749 §10.5: single use); the token, never disclosed, goes.
            app.store.delete(&access_key).await?;
            Err(error)
        }
    }
}

/// Whether the client redeeming `grant` is the one it was issued to, with its redirect_uri and
/// PKCE verifier.
fn check_grant(client: &Client, grant: &CodeGrant, redemption: &CodeRedemption<'_>) -> Result<(), OidcError> {
    if grant.client_id != client.record.client_id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    // RFC 6749 §4.1.3: redirect_uri must be present and identical when it was in the request.
    if redemption.redirect_uri.clone()? != Some(grant.redirect_uri.as_str()) {
        return Err(invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&grant.code_challenge, redemption.code_verifier.clone()?) {
        (Some(_), None) => Err(invalid_grant("code_verifier is missing")),
        (Some(challenge), Some(verifier)) => {
            if !is_pkce_value(verifier) || !secrets_equal(&pkce_s256(verifier), challenge) {
                return Err(invalid_grant("code_verifier does not match the code_challenge"));
            }
            Ok(())
        }
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is refused.
        (None, Some(_)) => Err(invalid_grant("no code_challenge was sent for this code")),
        (None, None) => Ok(()),
    }
}

async fn issue(
    app: &AppState,
    client: &Client,
    code: &str,
    access_token: String,
    grant: CodeGrant,
) -> Result<Tokens, OidcError> {
    let claims = id_token_claims(
        grant.claims,
        &ProtocolClaims {
            issuer: &app.issuer,
            subject: &grant.sub,
            client_id: &client.record.client_id,
            issued_at: crate::clock::now_secs(),
            lifetime: app.config.tokens.id_token_ttl_seconds,
            auth_time: grant.auth_time,
            acr: grant.acr.as_deref(),
            access_token: &access_token,
            nonce: grant.nonce.as_deref(),
            sid: grant.session.as_ref().map(|s| s.sid.as_str()),
        },
    );
    let alg = client.record.id_token_signed_response_alg;
    let key = app.keys.active(alg).await.map_err(|error| {
        tracing::error!(error = %error, alg = alg.name(), "no key signs the client's ID token algorithm");
        OidcError::new(ErrorCode::ServerError, "the broker has no key for this client's id_token_signed_response_alg")
    })?;
    let id_token = key.sign_jwt_with(alg, &claims)?;
    crate::telemetry::count("ssobridge_tokens_issued_total", &[("client", &client.record.client_id)]);
    tracing::info!("tokens issued");
    let adapter_fields = match &grant.sealed_token_fields {
        Some(sealed) => Sealer::from_secret(code)?
            .open(TOKEN_FIELDS_CONTEXT, sealed)
            .and_then(|plain| serde_json::from_slice::<Map<String, Value>>(&plain).ok())
            .ok_or_else(|| OidcError::new(ErrorCode::ServerError, "the login's artifacts could not be read"))?,
        None => Map::new(),
    };
    Ok(Tokens {
        access_token,
        expires_in: app.config.tokens.access_token_ttl_seconds,
        id_token,
        scope: grant.scope,
        adapter_fields,
    })
}

/// A second use of a code revokes the access token the first use produced (RFC 6749 §4.1.2):
/// `marker` is what the first use left, if anything.
async fn revoke_if_replayed(app: &AppState, tag: &str, marker: Option<&[u8]>) -> Result<(), OidcError> {
    let Some(marker) = marker else { return Ok(()) };
    let redeemed: RedeemedCode = serde_json::from_slice(marker)
        .map_err(|e| StoreError::Corrupt { key: "code-used marker".to_owned(), detail: e.to_string() })?;
    tracing::warn!("authorization code replayed; revoking the tokens it produced");
    app.store.delete(&keys::access_token(tag, &redeemed.access_token_hash)).await?;
    Ok(())
}
