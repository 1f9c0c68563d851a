//! `POST /token`: authenticate the client, redeem the code once, issue tokens.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use poem::http::{header, StatusCode};
use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::instrument;

use super::callback::{CodeGrant, TOKEN_FIELDS_CONTEXT};
use super::error::{json_response, token_error, ErrorCode, OidcError};
use super::params::{is_pkce_value, Params, MAX_BODY_BYTES};
use crate::clients::Client;
use crate::clock::now_secs;
use crate::model::TokenAuthMethod;
use crate::state::AppState;
use crate::store::{keys, Redeemed, Store, StoreError};
use crate::tokens::{at_hash, pkce_s256, random_token, secrets_equal, sha256_hex, Sealer};

/// What an access token stands for, as `/userinfo` reads it. The stored value is the redeemed
/// [`CodeGrant`] itself, copied by the store in the step that takes the code; its other
/// fields are ignored (none is a secret: the sealed token fields need the spent code).
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessGrant {
    pub client_id: String,
    pub sub: String,
    pub claims: Map<String, Value>,
}

/// The store key of an access token: its tag (its first characters, see
/// [`keys::login_tag`]) and its SHA-256. None for a string too short to be one of ours.
pub fn access_token_key(access_token: &str) -> Option<String> {
    let tag = access_token.get(..keys::LOGIN_TAG_LEN)?;
    (access_token.len() > keys::LOGIN_TAG_LEN).then(|| keys::access_token(tag, &sha256_hex(access_token)))
}

/// Left under the code's hash once redeemed, so that a replay can revoke what was issued.
#[derive(Debug, Serialize, Deserialize)]
struct RedeemedCode {
    access_token_hash: String,
}

fn invalid(code: ErrorCode, description: &str) -> OidcError {
    OidcError::new(code, description)
}

#[handler]
pub async fn token(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let basic = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let used_basic = basic.as_deref().is_some_and(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
    let form_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return token_error(
            &invalid(ErrorCode::InvalidRequest, "the body must be application/x-www-form-urlencoded"),
            false,
        );
    }
    let params = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => Params::parse(&bytes),
        Err(_) => {
            return token_error(&invalid(ErrorCode::InvalidRequest, "the body is too large or unreadable"), false)
        }
    };
    let client = match authenticate(&state, basic.as_deref(), &params).await {
        Ok(client) => client,
        Err(error) => return token_error(&error, used_basic),
    };
    // The client's own budget, spent only by requests it authenticated.
    if let Err(retry_after) = crate::protect::count_client(&state, &client.record.client_id, None) {
        return crate::protect::too_many("/token", "client", retry_after);
    }
    match redeem(&state, &client, &params).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => token_error(&error, used_basic),
    }
}

#[instrument(skip_all, fields(client_id = %client.record.client_id))]
async fn redeem(app: &AppState, client: &Arc<Client>, params: &Params) -> Result<Value, OidcError> {
    let get = |name: &str| params.get(name).map_err(|e| invalid(ErrorCode::InvalidRequest, &e.to_string()));
    match get("grant_type")? {
        None => return Err(invalid(ErrorCode::InvalidRequest, "grant_type is missing")),
        Some("authorization_code") => {}
        Some(_) => return Err(invalid(ErrorCode::UnsupportedGrantType, "only authorization_code is supported")),
    }
    let code = get("code")?.ok_or_else(|| invalid(ErrorCode::InvalidRequest, "code is missing"))?;
    let code_hash = sha256_hex(code);
    let tag = keys::login_tag(&code_hash);
    // The access token is minted before the code is taken, so that one store step takes the
    // code, marks it used (naming the token) and keeps the grant as the token's record. The
    // token is disclosed only if every check below passes; otherwise its record is deleted.
    let access_token = format!("{tag}{}", random_token(32)?);
    let access_hash = sha256_hex(&access_token);
    let access_key = keys::access_token(tag, &access_hash);
    let access_ttl = Duration::from_secs(app.config.tokens.access_token_ttl_seconds);
    let marker = serde_json::to_vec(&RedeemedCode { access_token_hash: access_hash })
        .map_err(|e| OidcError::new(ErrorCode::ServerError, e.to_string()))?;
    let code_key = keys::code(&code_hash);
    let grant =
        match app.store.redeem(&code_key, &keys::code_used(&code_hash), &marker, &access_key, access_ttl).await? {
            Redeemed::Taken(bytes) => serde_json::from_slice::<CodeGrant>(&bytes)
                .map_err(|e| StoreError::Corrupt { key: code_key, detail: e.to_string() })?,
            Redeemed::Missing { marker } => {
                revoke_if_replayed(app, tag, marker.as_deref()).await?;
                return Err(invalid(ErrorCode::InvalidGrant, "the code is invalid, expired or already used"));
            }
        };
    match check_grant(client, &grant, &get) {
        Ok(()) => issue(app, client, code, &access_token, grant).await,
        Err(error) => {
            // The code is spent either way (RFC 6749 §10.5: single use); the token, never disclosed, goes.
            app.store.delete(&access_key).await?;
            Err(error)
        }
    }
}

/// Whether the client redeeming `grant` is the one it was issued to, with its redirect_uri and
/// PKCE verifier.
fn check_grant<'p>(
    client: &Client,
    grant: &CodeGrant,
    get: &impl Fn(&str) -> Result<Option<&'p str>, OidcError>,
) -> Result<(), OidcError> {
    if grant.client_id != client.record.client_id {
        return Err(invalid(ErrorCode::InvalidGrant, "the code was issued to another client"));
    }
    // RFC 6749 §4.1.3: redirect_uri must be present and identical when it was in the request.
    if get("redirect_uri")? != Some(grant.redirect_uri.as_str()) {
        return Err(invalid(ErrorCode::InvalidGrant, "redirect_uri does not match the authorization request"));
    }
    match (&grant.code_challenge, get("code_verifier")?) {
        (Some(_), None) => Err(invalid(ErrorCode::InvalidGrant, "code_verifier is missing")),
        (Some(challenge), Some(verifier)) => {
            if !is_pkce_value(verifier) || !secrets_equal(&pkce_s256(verifier), challenge) {
                return Err(invalid(ErrorCode::InvalidGrant, "code_verifier does not match the code_challenge"));
            }
            Ok(())
        }
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is refused.
        (None, Some(_)) => Err(invalid(ErrorCode::InvalidGrant, "no code_challenge was sent for this code")),
        (None, None) => Ok(()),
    }
}

async fn issue(
    app: &AppState,
    client: &Client,
    code: &str,
    access_token: &str,
    grant: CodeGrant,
) -> Result<Value, OidcError> {
    let access_ttl = app.config.tokens.access_token_ttl_seconds;
    let now = now_secs();
    let mut claims = grant.claims;
    claims.insert("iss".into(), json!(app.issuer));
    claims.insert("sub".into(), json!(grant.sub));
    claims.insert("aud".into(), json!(client.record.client_id));
    claims.insert("azp".into(), json!(client.record.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + app.config.tokens.id_token_ttl_seconds));
    claims.insert("auth_time".into(), json!(grant.auth_time));
    if let Some(acr) = &grant.acr {
        claims.insert("acr".into(), json!(acr));
    }
    claims.insert("at_hash".into(), json!(at_hash(access_token)));
    // Echo the nonce only when the client sent one: Auth0 rejects an unexpected nonce.
    if let Some(nonce) = grant.nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    let alg = client.record.id_token_signed_response_alg;
    let key = app.keys.active(alg).await.map_err(|error| {
        tracing::error!(error = %error, alg = alg.name(), "no key signs the client's ID token algorithm");
        OidcError::new(ErrorCode::ServerError, "the broker has no key for this client's id_token_signed_response_alg")
    })?;
    let id_token = key.sign_jwt_with(alg, &claims)?;
    crate::telemetry::count("ssobridge_tokens_issued_total", &[("client", &client.record.client_id)]);
    tracing::info!("tokens issued");
    let mut response = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": access_ttl,
        "id_token": id_token,
        "scope": grant.scope,
    });
    if let Some(sealed) = &grant.sealed_token_fields {
        let fields = Sealer::from_secret(code)?
            .open(TOKEN_FIELDS_CONTEXT, sealed)
            .and_then(|plain| serde_json::from_slice::<Map<String, Value>>(&plain).ok())
            .ok_or_else(|| OidcError::new(ErrorCode::ServerError, "the login's artifacts could not be read"))?;
        if let Some(object) = response.as_object_mut() {
            for (name, value) in fields {
                // The protocol fields win over anything an adapter adds.
                object.entry(name).or_insert(value);
            }
        }
    }
    Ok(response)
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

/// `client_secret_basic`, `client_secret_post` or `private_key_jwt`: exactly one of them
/// (RFC 6749 §2.3).
async fn authenticate(app: &AppState, authorization: Option<&str>, params: &Params) -> Result<Arc<Client>, OidcError> {
    let unauthorized = || invalid(ErrorCode::InvalidClient, "client authentication failed");
    let get = |name: &str| params.get(name).map_err(|e| invalid(ErrorCode::InvalidRequest, &e.to_string()));
    let form_id = get("client_id")?;
    let form_secret = get("client_secret")?;
    let assertion_type = get("client_assertion_type")?;
    let assertion = get("client_assertion")?;
    if assertion_type.is_some() || assertion.is_some() {
        if authorization.is_some() || form_secret.is_some() {
            return Err(invalid(ErrorCode::InvalidRequest, "use one client authentication method, not two"));
        }
        let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
            return Err(invalid(ErrorCode::InvalidRequest, "client_assertion and client_assertion_type go together"));
        };
        return authenticate_assertion(app, form_id, assertion_type, assertion).await;
    }
    let (client_id, secret) = match authorization {
        Some(value) if value.len() >= 6 && value[..6].eq_ignore_ascii_case("basic ") => {
            if form_secret.is_some() {
                return Err(invalid(ErrorCode::InvalidRequest, "use one client authentication method, not two"));
            }
            let (id, secret) = decode_basic(&value[6..]).ok_or_else(unauthorized)?;
            if form_id.is_some_and(|form_id| form_id != id) {
                return Err(invalid(ErrorCode::InvalidRequest, "client_id does not match the Authorization header"));
            }
            (id, secret)
        }
        Some(_) => return Err(unauthorized()),
        None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => return Err(unauthorized()),
        },
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
    use crate::client_assertion::{inspect, AssertionError, ASSERTION_TYPE};
    let refuse = |detail: &str| {
        tracing::info!(reason = detail, "client assertion refused");
        invalid(ErrorCode::InvalidClient, "client authentication failed")
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

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined and base64-encoded.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape =
        |s: &str| url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = STANDARD.encode("my%20client:p%3Ass+word");
        assert_eq!(decode_basic(&header), Some(("my client".into(), "p:ss word".into())));
        assert_eq!(decode_basic("!!!"), None);
    }
}
