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
/// A `jwks_uri` is fetched at most this often, whatever the assertions say (an unknown `kid`
/// asks for a fetch; so does a failed one): a stream of junk cannot make the broker a
/// request amplifier.
const FETCH_AT_MOST_EVERY: Duration = Duration::from_secs(2);
/// Fetched documents kept at most; past this the oldest go.
const MAX_CACHED_KEY_SETS: usize = 1024;

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

/// An assertion's claims as read, unverified, before anything is fetched.
#[derive(Deserialize)]
struct Unverified {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<crate::upstream::Audience>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
}

/// What an assertion claims, checked for shape before any key is fetched.
#[derive(Debug)]
pub struct Claimed {
    /// The client it claims to be (`iss` = `sub`).
    pub client_id: String,
    header: jsonwebtoken::Header,
}

/// Reads `assertion` without verifying it and refuses what no key could make valid (RFC 7523
/// §3): not a signed JWT of an accepted algorithm, `iss` ≠ `sub`, an `aud` that is not this
/// broker's token endpoint or issuer, no `exp` or one outside [now − skew, now + 10 min], no
/// `jti`. Only an assertion that passes may cause a fetch of the client's `jwks_uri`.
pub fn inspect(assertion: &str, issuer: &str) -> Result<Claimed, AssertionError> {
    if assertion.len() > 16 * 1024 || assertion.split('.').count() != 3 {
        return Err(invalid("not a compact JWS"));
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| invalid(format!("header: {e}")))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid(format!("algorithm {:?} is not accepted", header.alg)));
    }
    let payload = assertion.split('.').nth(1).ok_or_else(|| invalid("no payload"))?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid("payload is not base64url"))?;
    let claims: Unverified = serde_json::from_slice(&bytes).map_err(|e| invalid(format!("claims: {e}")))?;
    let (Some(iss), Some(sub)) = (claims.iss, claims.sub) else { return Err(invalid("iss and sub are required")) };
    if iss != sub || sub.is_empty() {
        return Err(invalid("iss and sub must both be the client_id"));
    }
    let accepted = audiences(issuer);
    if !claims.aud.is_some_and(|aud| aud.0.iter().any(|a| accepted.contains(a))) {
        return Err(invalid("aud is not this token endpoint or issuer"));
    }
    let now = jsonwebtoken::get_current_timestamp();
    match claims.exp {
        None => return Err(invalid("exp is required")),
        Some(exp) if exp + SKEW_SECONDS < now => return Err(invalid("expired")),
        Some(exp) if exp > now + MAX_LIFETIME_SECONDS => {
            return Err(invalid(format!("exp is more than {MAX_LIFETIME_SECONDS} s away")))
        }
        Some(_) => {}
    }
    if claims.jti.as_deref().is_none_or(|jti| jti.is_empty() || jti.len() > 256) {
        return Err(invalid("jti must be 1 to 256 characters"));
    }
    Ok(Claimed { client_id: sub, header })
}

/// The audiences an assertion may name: the token endpoint, or the issuer (RFC 7523 §3).
fn audiences(issuer: &str) -> [String; 3] {
    [format!("{issuer}/token"), issuer.to_owned(), format!("{issuer}/")]
}

/// What is read after verification; `iss`, `sub` and `aud` are checked by the validation itself.
#[derive(Deserialize)]
struct AssertionClaims {
    exp: u64,
    jti: String,
    #[serde(default)]
    iat: Option<u64>,
}

/// A fetched key set (or a failed fetch) and when.
#[derive(Clone)]
struct Fetched {
    at: Instant,
    keys: Result<Arc<Vec<Jwk>>, String>,
}

/// Fetched `jwks_uri` documents, per URI; one fetch per URI at a time.
pub struct ClientKeySets {
    http: reqwest::Client,
    fetched: Mutex<HashMap<String, Fetched>>,
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ClientKeySets {
    /// `http` must be a [`crate::http::guarded_client`]: the URIs come from the admin API.
    pub fn new(http: reqwest::Client) -> ClientKeySets {
        ClientKeySets { http, fetched: Mutex::default(), fetching: Mutex::default() }
    }

    fn cached(&self, uri: &str) -> Option<Fetched> {
        self.fetched.lock().unwrap_or_else(|p| p.into_inner()).get(uri).cloned()
    }

    /// The client's keys: inline, or from its `jwks_uri` (fetched again when stale, or when
    /// the assertion names a `kid` the cached document lacks — a client that rotated — but
    /// never more often than [`FETCH_AT_MOST_EVERY`]).
    async fn keys_of(&self, client: &ClientRecord, kid: Option<&str>) -> Result<Arc<Vec<Jwk>>, AssertionError> {
        if let Some(jwks) = &client.jwks {
            return Ok(Arc::new(parse_keys(jwks)));
        }
        let uri = client.jwks_uri.as_deref().ok_or_else(|| invalid("the client registered no keys"))?;
        let usable = |fetched: &Fetched| {
            let knows_kid = match &fetched.keys {
                Ok(keys) => kid.is_none_or(|kid| keys.iter().any(|k| k.common.key_id.as_deref() == Some(kid))),
                Err(_) => false,
            };
            fetched.at.elapsed() < FETCH_AT_MOST_EVERY || (fetched.at.elapsed() < KEYS_FRESH_FOR && knows_kid)
        };
        if let Some(fetched) = self.cached(uri).filter(usable) {
            return fetched.keys.map_err(AssertionError::KeysUnavailable);
        }
        // One fetch per URI at a time; who waited finds the fresh document in the cache.
        let gate = self.fetching.lock().unwrap_or_else(|p| p.into_inner()).entry(uri.to_owned()).or_default().clone();
        let _turn = gate.lock().await;
        if let Some(fetched) = self.cached(uri).filter(usable) {
            return fetched.keys.map_err(AssertionError::KeysUnavailable);
        }
        let keys = self.fetch(uri).await.map(Arc::new);
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        if fetched.len() >= MAX_CACHED_KEY_SETS {
            fetched.retain(|_, f| f.at.elapsed() < KEYS_FRESH_FOR);
            if fetched.len() >= MAX_CACHED_KEY_SETS {
                fetched.clear();
            }
        }
        fetched.insert(uri.to_owned(), Fetched { at: Instant::now(), keys: keys.clone() });
        drop(fetched);
        self.fetching.lock().unwrap_or_else(|p| p.into_inner()).remove(uri);
        keys.map_err(AssertionError::KeysUnavailable)
    }

    async fn fetch(&self, uri: &str) -> Result<Vec<Jwk>, String> {
        let response = self.http.get(uri).send().await.map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("jwks_uri answered {}", response.status()));
        }
        let body = crate::http::read_capped(response).await.map_err(|e| e.to_string())?;
        let document: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        Ok(parse_keys(&document))
    }

    /// Verifies `assertion` for `client` (RFC 7523 §3), after [`inspect`]: signature by one of
    /// its keys with an asymmetric algorithm, `iss` = `sub` = client_id, `aud` this broker's
    /// token endpoint or issuer, `exp` soon, and a `jti` never seen before.
    pub async fn verify<S: Store>(
        &self,
        store: &S,
        issuer: &str,
        client: &ClientRecord,
        assertion: &str,
        claimed: &Claimed,
    ) -> Result<(), AssertionError> {
        let header = &claimed.header;
        let keys = self.keys_of(client, header.kid.as_deref()).await?;
        let jwk = crate::upstream::select_key(&keys, header.kid.as_deref(), header.alg)
            .ok_or_else(|| invalid("no registered key matches the assertion's kid and algorithm"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        let accepted = audiences(issuer);
        validation.set_audience(&accepted);
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
