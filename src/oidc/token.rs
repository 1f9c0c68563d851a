//! `POST /token`: read the client's credentials and the code, let the login authenticate the
//! client and redeem the code once, answer the tokens as JSON (`no-store`).

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use poem::http::{header, StatusCode};
use poem::web::Data;
use poem::{handler, Body, Request, Response};
use serde_json::{json, Value};

use super::error::{json_response, token_error};
use super::params::{Params, MAX_BODY_BYTES};
use super::protect::{count_client, too_many};
use crate::login::{self, ClientCredentials, CodeRedemption, ErrorCode, OidcError, Tokens};
use crate::state::AppState;

fn invalid(code: ErrorCode, description: &str) -> OidcError {
    OidcError::new(code, description)
}

#[handler]
pub async fn token(req: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let basic = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let used_basic = basic.as_deref().is_some_and(|v| v.len() >= 6 && v[..6].eq_ignore_ascii_case("basic "));
    let form_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return refused(
            None,
            &invalid(ErrorCode::InvalidRequest, "the body must be application/x-www-form-urlencoded"),
            false,
        );
    }
    let params = match body.into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => Params::parse(&bytes),
        Err(_) => {
            return refused(None, &invalid(ErrorCode::InvalidRequest, "the body is too large or unreadable"), false)
        }
    };
    let authenticated = match credentials(basic.as_deref(), &params) {
        Ok(credentials) => login::authenticate_client(&state, credentials).await,
        Err(error) => Err(error),
    };
    let client = match authenticated {
        Ok(client) => client,
        Err(error) => return refused(None, &error, used_basic),
    };
    // The client's own budget, spent only by requests it authenticated.
    if let Err(retry_after) = count_client(&state, &client.record.client_id, None) {
        return too_many("/token", "client", retry_after);
    }
    let redeemed = match code_redemption(&params) {
        Ok(redemption) => login::redeem(&state, &client, redemption).await,
        Err(error) => Err(error),
    };
    match redeemed {
        Ok(tokens) => json_response(StatusCode::OK, &token_response(tokens)),
        Err(error) => refused(Some(&client.record.client_id), &error, used_basic),
    }
}

/// The error response, counted in `ssobridge_token_failures_total{client,error}`: `client` is
/// the client that authenticated, `unknown` before one did (whatever the request claims).
fn refused(client: Option<&str>, error: &OidcError, basic_challenge: bool) -> Response {
    crate::telemetry::count(
        "ssobridge_token_failures_total",
        &[("client", client.unwrap_or("unknown")), ("error", error.code.as_str())],
    );
    token_error(error, basic_challenge)
}

/// An authorization code grant request (RFC 6749 §4.1.3).
fn code_redemption(params: &Params) -> Result<CodeRedemption<'_>, OidcError> {
    let get = |name: &str| params.get(name).map_err(|e| invalid(ErrorCode::InvalidRequest, &e.to_string()));
    match get("grant_type")? {
        None => return Err(invalid(ErrorCode::InvalidRequest, "grant_type is missing")),
        Some("authorization_code") => {}
        Some(_) => return Err(invalid(ErrorCode::UnsupportedGrantType, "only authorization_code is supported")),
    }
    let code = get("code")?.ok_or_else(|| invalid(ErrorCode::InvalidRequest, "code is missing"))?;
    Ok(CodeRedemption { code, redirect_uri: get("redirect_uri"), code_verifier: get("code_verifier") })
}

/// RFC 6749 §5.1; the protocol fields win over anything the client's adapter adds.
fn token_response(tokens: Tokens) -> Value {
    let mut response = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "id_token": tokens.id_token,
        "scope": tokens.scope,
    });
    if let Some(object) = response.as_object_mut() {
        for (name, value) in tokens.adapter_fields {
            object.entry(name).or_insert(value);
        }
    }
    response
}

/// `client_secret_basic`, `client_secret_post` or `private_key_jwt`: exactly one of them
/// (RFC 6749 §2.3).
fn credentials<'p>(authorization: Option<&str>, params: &'p Params) -> Result<ClientCredentials<'p>, OidcError> {
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
        return Ok(ClientCredentials::Assertion { client_id: form_id, assertion_type, assertion });
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
    Ok(ClientCredentials::Secret { client_id, secret })
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
