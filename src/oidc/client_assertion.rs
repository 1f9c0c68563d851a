//! `private_key_jwt` client authentication (OIDC Core §9, RFC 7523 §2.2 and §3): the client
//! proves itself with a short-lived JWT signed by a key it registered (`jwks` or `jwks_uri`),
//! instead of a shared secret. Auth0 OIDC connections can authenticate this way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clients::ClientRecord;
use crate::store::{keys, Store, StoreError};
use crate::tokens::sha256_hex;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Signature algorithms accepted for assertions: asymmetric only (an HMAC "key" would be a
/// shared secret again, and `none` is no signature).
pub const ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
];

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const SKEW_SECONDS: u64 = 30;
/// An assertion may not be valid for longer than this from now: it is meant for one request,
/// and its `jti` must be remembered until it expires.
const MAX_LIFETIME_SECONDS: u64 = 600;
/// How long a fetched `jwks_uri` document is trusted.
const KEYS_FRESH_FOR: Duration = Duration::from_secs(300);
/// An unknown `kid` refetches the document, at most this often per URI.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The assertion does not authenticate the client; the detail is for the log.
    #[error("{0}")]
    Invalid(String),
    #[error("the client assertion was already used")]
    Replayed,
    #[error("the client's jwks_uri could not be fetched: {0}")]
    KeysUnavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(detail: impl Into<String>) -> AssertionError {
    AssertionError::Invalid(detail.into())
}

/// What is read after verification; `iss`, `sub` and `aud` are checked by the validation itself.
#[derive(Deserialize)]
struct AssertionClaims {
    exp: u64,
    jti: String,
    #[serde(default)]
    iat: Option<u64>,
}

/// The client the assertion claims to be (`sub`), read without verifying anything: it only
/// says whose keys to verify with.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Subject {
        sub: String,
    }
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Subject>(&bytes).ok().map(|s| s.sub)
}

/// A fetched key set and when it was fetched.
type Fetched = (Instant, Arc<Vec<Jwk>>);

/// Fetched `jwks_uri` documents, per URI.
pub struct ClientKeySets {
    http: reqwest::Client,
    fetched: Mutex<HashMap<String, Fetched>>,
}

impl ClientKeySets {
    pub fn new(http: reqwest::Client) -> ClientKeySets {
        ClientKeySets { http, fetched: Mutex::new(HashMap::new()) }
    }

    /// The client's keys: inline, or from its `jwks_uri` (fetched again when stale, or when
    /// the assertion names a `kid` the cached document lacks — a client that rotated).
    async fn keys_of(&self, client: &ClientRecord, kid: Option<&str>) -> Result<Arc<Vec<Jwk>>, AssertionError> {
        if let Some(jwks) = &client.jwks {
            return Ok(Arc::new(parse_keys(jwks)));
        }
        let uri = client.jwks_uri.as_deref().ok_or_else(|| invalid("the client registered no keys"))?;
        let cached = self.fetched.lock().unwrap_or_else(|p| p.into_inner()).get(uri).cloned();
        if let Some((at, keys)) = &cached {
            let knows_kid = kid.is_none_or(|kid| keys.iter().any(|k| k.common.key_id.as_deref() == Some(kid)));
            if at.elapsed() < KEYS_FRESH_FOR && (knows_kid || at.elapsed() < REFETCH_AT_MOST_EVERY) {
                return Ok(keys.clone());
            }
        }
        let unavailable = |e: reqwest::Error| AssertionError::KeysUnavailable(e.without_url().to_string());
        let document: serde_json::Value = self
            .http
            .get(uri)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let keys = Arc::new(parse_keys(&document));
        self.fetched.lock().unwrap_or_else(|p| p.into_inner()).insert(uri.to_owned(), (Instant::now(), keys.clone()));
        Ok(keys)
    }

    /// Verifies `assertion` for `client` (RFC 7523 §3): signature by one of its keys with an
    /// asymmetric algorithm, `iss` = `sub` = client_id, `aud` this broker's token endpoint or
    /// issuer, `exp` soon, and a `jti` never seen before.
    pub async fn verify<S: Store>(
        &self,
        store: &S,
        issuer: &str,
        client: &ClientRecord,
        assertion: &str,
    ) -> Result<(), AssertionError> {
        let header = jsonwebtoken::decode_header(assertion).map_err(|e| invalid(format!("header: {e}")))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let keys = self.keys_of(client, header.kid.as_deref()).await?;
        let jwk = crate::upstream::select_key(&keys, header.kid.as_deref(), header.alg)
            .ok_or_else(|| invalid("no registered key matches the assertion's kid and algorithm"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        let token_endpoint = format!("{issuer}/token");
        let issuer_slash = format!("{issuer}/");
        validation.set_audience(&[token_endpoint.as_str(), issuer, issuer_slash.as_str()]);
        validation.set_issuer(&[client.client_id.as_str()]);
        validation.sub = Some(client.client_id.clone());
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.leeway = SKEW_SECONDS;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
            .map_err(|e| invalid(e.to_string()))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.exp > now + MAX_LIFETIME_SECONDS {
            return Err(invalid(format!("exp is more than {MAX_LIFETIME_SECONDS} s away")));
        }
        if claims.iat.is_some_and(|iat| iat > now + SKEW_SECONDS) {
            return Err(invalid("iat is in the future"));
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(invalid("jti must be 1 to 256 characters"));
        }
        // Remembered until the assertion could no longer pass the exp check anyway.
        let remember = Duration::from_secs(claims.exp.saturating_sub(now) + SKEW_SECONDS + 1);
        let key = keys::client_assertion(&client.client_id, &sha256_hex(&claims.jti));
        if !store.put_new(&key, b"1", remember).await? {
            return Err(AssertionError::Replayed);
        }
        Ok(())
    }
}

/// The usable public keys of a JWK Set; members that do not parse are skipped.
fn parse_keys(document: &serde_json::Value) -> Vec<Jwk> {
    document
        .get("keys")
        .and_then(|k| k.as_array())
        .map(|keys| {
            keys.iter()
                // Never verify with a symmetric key, whatever the document says.
                .filter(|k| k.get("k").is_none())
                .filter_map(|k| serde_json::from_value(k.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}
