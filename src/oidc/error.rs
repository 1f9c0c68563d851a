//! The one place where login failures become what a client or user sees: an HTML page (before
//! the client and redirect URI are trusted, or with no sign-in to return to), an error redirect
//! (after), token-endpoint JSON, or a Bearer challenge.

use poem::http::{header, StatusCode};
use poem::Response;

use crate::login::{ErrorCode, LoginError, OidcError};
use crate::pages;

/// What the user's browser gets for a login that cannot go on.
pub fn failure_response(failure: LoginError, issuer: &str) -> Response {
    match failure {
        LoginError::Refused { title, message, .. } => pages::error_page(StatusCode::BAD_REQUEST, title, &message),
        LoginError::Unavailable { message, .. } => {
            pages::error_page(StatusCode::SERVICE_UNAVAILABLE, "Sign-in is temporarily unavailable", &message)
        }
        LoginError::Failed => pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Try again."),
        LoginError::Busy { retry_after } => {
            let mut page = pages::error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-ins in progress",
                "Too many sign-ins were started from your network and not finished. Wait a few minutes and try \
                 again.",
            );
            if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            page
        }
        LoginError::Redirect { redirect_uri, state, error } => {
            let mut params = vec![("error", error.code.as_str()), ("error_description", error.description.as_str())];
            if let Some(state) = state.as_deref() {
                params.push(("state", state));
            }
            params.push(("iss", issuer));
            redirect(&with_query(&redirect_uri, &params))
        }
    }
}

/// `base` with `params` appended to its query (keeping any query it has, RFC 6749 §3.1.2).
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = match url::Url::parse(base) {
        Ok(url) => url,
        // Registered redirect URIs are validated at load; this cannot fail for them.
        Err(_) => return base.to_owned(),
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    url.into()
}

pub fn redirect(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .finish()
}

/// RFC 6749 §5.2 JSON error. `basic_challenge`: the client tried HTTP Basic, so a 401 names it.
pub fn token_error(error: &OidcError, basic_challenge: bool) -> Response {
    let status = match error.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response = json_response(
        status,
        &serde_json::json!({"error": error.code.as_str(), "error_description": error.description}),
    );
    if status == StatusCode::UNAUTHORIZED && basic_challenge {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"ssobridge\""));
    }
    response
}

/// What `/userinfo` answers for `error`: a token it does not know is a Bearer challenge
/// (RFC 6750 §3.1); anything else is the service being unavailable.
pub fn userinfo_error(error: &OidcError) -> Response {
    if error.code == ErrorCode::InvalidToken {
        return bearer_error(&error.description);
    }
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"error": error.code.as_str(), "error_description": error.description}),
    )
}

/// A JSON body that must not be cached (RFC 6749 §5.1).
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
        .body(body.to_string())
}

/// RFC 6750 §3: 401 with a Bearer challenge.
pub fn bearer_error(description: &str) -> Response {
    let challenge = format!("Bearer realm=\"ssobridge\", error=\"invalid_token\", error_description=\"{description}\"");
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "invalid_token", "error_description": description}),
    );
    if let Ok(value) = header::HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
