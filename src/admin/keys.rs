//! `/admin/keys`: the signing keys, and rotation without downtime.

use std::sync::Arc;

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::{audit, problem, AdminToken, Problem, Role, Tag};
use crate::state::AppState;
use crate::tokens::{KeyInfo, KeyType, RingError};

/// Which kind of key to rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum KeyTypeParam {
    #[oai(rename = "RSA")]
    Rsa,
    #[oai(rename = "EC")]
    Ec,
}

pub struct KeysApi {
    pub state: Arc<AppState>,
}

/// A signing key (public information only).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Key {
    pub kid: String,
    /// `RSA` or `EC`.
    pub kty: String,
    /// The algorithm it signs by default (`RS256` for RSA, `ES256` for EC).
    pub alg: String,
    /// Every algorithm it signs: `RS256` and `PS256` for RSA, `ES256` for EC.
    pub algorithms: Vec<String>,
    /// Whether this key signs new tokens.
    pub active: bool,
    /// `config` (the configured key file) or `rotated` (made by a rotation, kept in the store).
    pub source: String,
    /// Unix time the key was made (rotated keys).
    #[oai(skip_serializing_if_is_none)]
    pub created_at: Option<u64>,
    /// Unix time the key stopped signing; it stays in the JWKS until its tokens expire.
    #[oai(skip_serializing_if_is_none)]
    pub retired_at: Option<u64>,
}

impl poem_openapi::types::Example for Key {
    fn example() -> Self {
        Key {
            kid: "bb-xRJ2b1fHAPgPiwYeSWXF-smKwenxX_CPWmPBa-Hc".into(),
            kty: "RSA".into(),
            alg: "RS256".into(),
            algorithms: vec!["RS256".into(), "PS256".into()],
            active: true,
            source: "rotated".into(),
            created_at: Some(1_795_420_000),
            retired_at: None,
        }
    }
}

impl From<&KeyInfo> for Key {
    fn from(k: &KeyInfo) -> Key {
        Key {
            kid: k.kid.clone(),
            kty: k.kty.name().to_owned(),
            alg: k.algorithms.first().copied().unwrap_or_default().to_owned(),
            algorithms: k.algorithms.iter().map(|a| (*a).to_owned()).collect(),
            active: k.active,
            source: k.source.to_owned(),
            created_at: k.created_at,
            retired_at: k.retired_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct KeyList {
    pub items: Vec<Key>,
}

#[derive(ApiResponse)]
pub enum ListResponse {
    #[oai(status = 200)]
    Ok(Json<KeyList>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum RotateResponse {
    /// The new key, signing from now on (on other instances within seconds).
    #[oai(status = 201)]
    Created(Json<Key>),
    /// `kty` is neither `RSA` nor `EC`.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// Rotation is not configured (no `signing.key_encryption_key`), or another rotation won.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[OpenApi(tag = "Tag::Keys")]
impl KeysApi {
    /// List signing keys
    ///
    /// Every key still published in the JWKS, and which one signs.
    #[oai(path = "/keys", method = "get")]
    async fn list(&self, _auth: AdminToken) -> ListResponse {
        match self.state.keys.list().await {
            Ok(keys) => ListResponse::Ok(Json(KeyList { items: keys.iter().map(Key::from).collect() })),
            Err(error) => {
                tracing::error!(error = %error, "key ring unavailable");
                ListResponse::Unavailable(problem(503, "the key ring is unavailable"))
            }
        }
    }

    /// Rotate a signing key
    ///
    /// A new key of the type asked for (`RSA`: RSA-2048 for RS256 and PS256, the default; `EC`:
    /// P-256 for ES256) signs from now on; the previous one of that type stays in the JWKS
    /// until the tokens it signed have expired, so nothing in flight breaks. Rotating `EC` with
    /// no EC key configured adds one, which lets clients use ES256.
    #[oai(path = "/keys/rotate", method = "post")]
    async fn rotate(&self, auth: AdminToken, kty: Query<Option<KeyTypeParam>>) -> RotateResponse {
        if auth.0.role != Role::Write {
            return RotateResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let kty = match kty.0 {
            Some(KeyTypeParam::Ec) => KeyType::Ec,
            Some(KeyTypeParam::Rsa) | None => KeyType::Rsa,
        };
        match self.state.keys.rotate(kty).await {
            Ok(key) => {
                audit(
                    &auth.0,
                    "key.rotate",
                    &key.kid,
                    None,
                    Some(&serde_json::json!({"kid": key.kid, "kty": key.kty.name()})),
                );
                RotateResponse::Created(Json(Key::from(&key)))
            }
            Err(error @ (RingError::NoEncryptionKey | RingError::Conflict)) => {
                RotateResponse::Conflict(problem(409, error.to_string()))
            }
            Err(error) => {
                tracing::error!(error = %error, "key rotation failed");
                RotateResponse::Unavailable(problem(503, "the key could not be rotated; try again"))
            }
        }
    }
}
