//! OpenID Connect Back-Channel Logout 1.0 §2.4-§2.5, §2.8: a logout token posted to a
//! client's `backchannel_logout_uri`. The token is minted at each attempt (fresh `iat`, `exp`
//! and `jti`), signed with the key of the client's `id_token_signed_response_alg` (§2.4: the
//! keys of its ID tokens), typed `logout+jwt`, with `sub` and `sid` and never a `nonce`. It
//! goes through the guarded outbound client: the URI was registered through the admin API, so
//! it must not reach the broker's own network (SSRF) unless `outbound.allow_private_networks`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::jobs::JobError;
use crate::state::AppState;
use crate::tokens::random_token;

/// The event a logout token carries (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid: "preferably at most two minutes" (§4).
const LIFETIME_SECS: u64 = 120;
/// The bound on one delivery attempt.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What a `backchannel_logout` job names.
#[derive(Debug, Deserialize)]
struct Task {
    client_id: String,
    sub: String,
    sid: String,
}

/// Delivers one logout token. 200 and 204 are done (§2.8); anything else, or no answer, is
/// retried later (§2.5 allows retrying what may be a temporary failure); a client or URI that
/// is gone cannot be helped.
pub async fn deliver(app: &AppState, task: &serde_json::Value) -> Result<(), JobError> {
    let task: Task = serde_json::from_value(task.clone())
        .map_err(|e| JobError::Permanent(format!("not a back-channel logout task: {e}")))?;
    let client = match app.client(&task.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(JobError::Permanent(format!("client {} no longer exists", task.client_id))),
        Err(error) => return Err(JobError::Retry(format!("store: {error}"))),
    };
    let Some(uri) = client.record.backchannel_logout_uri.clone() else {
        return Err(JobError::Permanent(format!("client {} no longer has a backchannel_logout_uri", task.client_id)));
    };
    let alg = client.record.id_token_signed_response_alg;
    let key = app.keys.active(alg).await.map_err(|e| JobError::Retry(format!("signing key: {e}")))?;
    let now = crate::clock::now_secs();
    let claims = json!({
        "iss": app.issuer,
        "aud": task.client_id,
        "iat": now,
        "exp": now + LIFETIME_SECS,
        "jti": random_token(16).map_err(|e| JobError::Retry(e.to_string()))?,
        "events": { EVENT: {} },
        "sub": task.sub,
        "sid": task.sid,
    });
    let token = key.sign_typed_jwt(alg, "logout+jwt", &claims).map_err(|e| JobError::Retry(e.to_string()))?;
    let http = crate::http::guarded_client(TIMEOUT, app.config.outbound.allow_private_networks)
        .map_err(|e| JobError::Retry(e.to_string()))?;
    let response = http
        .post(&uri)
        .header(reqwest::header::CACHE_CONTROL, "no-store")
        .form(&[("logout_token", token.as_str())])
        .send()
        .await
        // Without the URL: it is the client's, and a query in it may be meant for the client only.
        .map_err(|e| JobError::Retry(format!("back-channel logout to {}: {}", task.client_id, e.without_url())))?;
    let status = response.status();
    match status.as_u16() {
        200 | 204 => {
            tracing::info!(client_id = %task.client_id, "back-channel logout delivered");
            Ok(())
        }
        // Back-Channel Logout 1.0 §2.8: 400 is the relying party refusing this token (invalid,
        // or the logout failed there); the same token again would be refused again. Kept as a
        // failed job for an operator, with what the client said.
        400 => Err(JobError::Permanent(format!("back-channel logout to {} was refused (400)", task.client_id))),
        _ => Err(JobError::Retry(format!("back-channel logout to {} answered {status}", task.client_id))),
    }
}
