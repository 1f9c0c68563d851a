//! Firebase custom tokens: the JWT a Firebase client exchanges through `signInWithCustomToken`.
//!
//! Shape (Firebase "Create custom tokens using a third-party JWT library"): RS256 signed with
//! the service account's key, `iss` = `sub` = the service account email, `aud` = the Identity
//! Toolkit audience, `iat`/`exp` at most one hour apart, `uid` of at most 128 characters,
//! `tenant_id` for Identity Platform tenants, developer claims under `claims`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{Map, Value};
use ssobridge_adapter_core::AdapterError;

use ssobridge_adapter_core::Secret;

/// The only audience Firebase accepts for custom tokens.
pub(crate) const CUSTOM_TOKEN_AUDIENCE: &str =
    "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit";

/// Firebase refuses a custom token that lives longer than this.
pub(crate) const CUSTOM_TOKEN_LIFETIME_SECONDS: u64 = 3600;

/// Firebase's limit on a uid.
pub(crate) const MAX_UID_LEN: usize = 128;

/// Firebase's limit on serialized developer claims (and on custom attributes).
pub(crate) const MAX_CLAIMS_BYTES: usize = 1000;

/// Claim names Firebase reserves: a custom token or custom attributes using one is rejected.
pub(crate) const RESERVED_CLAIMS: [&str; 16] = [
    "acr",
    "amr",
    "at_hash",
    "aud",
    "auth_time",
    "azp",
    "cnf",
    "c_hash",
    "exp",
    "firebase",
    "iat",
    "iss",
    "jti",
    "nbf",
    "nonce",
    "sub",
];

/// Checks developer claims (or custom attributes) against Firebase's rules, so that a bad
/// claim is reported as a configuration problem here rather than as an opaque rejection later.
pub(crate) fn check_developer_claims(claims: &Map<String, Value>) -> Result<(), AdapterError> {
    let reserved: Vec<&str> = claims.keys().map(String::as_str).filter(|k| RESERVED_CLAIMS.contains(k)).collect();
    if !reserved.is_empty() {
        return Err(AdapterError::Misconfigured {
            detail: format!("developer claims use names Firebase reserves: {}", reserved.join(", ")),
        });
    }
    let size = serde_json::to_vec(claims).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_CLAIMS_BYTES {
        return Err(AdapterError::Misconfigured {
            detail: format!("developer claims are {size} bytes serialized; Firebase allows {MAX_CLAIMS_BYTES}"),
        });
    }
    Ok(())
}

/// An RSA private key of the service account. Its `Debug` shows nothing of the key.
pub(crate) struct SigningKey {
    key: EncodingKey,
    /// `private_key_id` from a Google key file: sent as `kid` so Google picks the right public key.
    key_id: Option<String>,
}

impl SigningKey {
    /// Parses a PEM (PKCS#8 as in Google key files, or PKCS#1) and proves it can sign, so that a
    /// bad key fails at start instead of at the first login.
    pub(crate) fn from_pem(pem: &str, key_id: Option<String>) -> Result<Self, String> {
        // A PEM passed through an environment variable often arrives with literal `\n`.
        let pem = if !pem.contains('\n') && pem.contains("\\n") { pem.replace("\\n", "\n") } else { pem.to_owned() };
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("not an RSA private key PEM ({e})"))?;
        let probe = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &serde_json::json!({}), &key)
            .map_err(|e| format!("the RSA private key cannot sign ({e})"))?;
        drop(probe);
        Ok(SigningKey { key, key_id })
    }

    /// Signs `claims` as an RS256 JWT; `with_key_id` adds the `kid` header when known.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T, with_key_id: bool) -> Result<Secret, AdapterError> {
        let mut header = Header::new(Algorithm::RS256);
        if with_key_id {
            header.kid = self.key_id.clone();
        }
        jsonwebtoken::encode(&header, claims, &self.key)
            .map(Secret::new)
            .map_err(|e| AdapterError::Misconfigured { detail: format!("signing with the service account key: {e}") })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("key", &"[redacted]").field("key_id", &self.key_id).finish()
    }
}

#[derive(Serialize)]
struct CustomTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    claims: &'a Map<String, Value>,
}

/// Mints custom tokens for one service account (and tenant).
#[derive(Debug)]
pub(crate) struct CustomTokenMinter {
    service_account_email: String,
    tenant_id: Option<String>,
    /// `None` only against the emulator, which accepts unsigned tokens (as the Admin SDKs mint
    /// them there); production always has a key.
    key: Option<std::sync::Arc<SigningKey>>,
}

impl CustomTokenMinter {
    pub(crate) fn new(
        service_account_email: String,
        tenant_id: Option<String>,
        key: Option<std::sync::Arc<SigningKey>>,
    ) -> Self {
        CustomTokenMinter { service_account_email, tenant_id, key }
    }

    /// A custom token for `uid` carrying `claims`, valid for an hour from now.
    pub(crate) fn mint(&self, uid: &str, claims: &Map<String, Value>) -> Result<Secret, AdapterError> {
        self.mint_at(uid, claims, unix_now())
    }

    pub(crate) fn mint_at(&self, uid: &str, claims: &Map<String, Value>, now: u64) -> Result<Secret, AdapterError> {
        if uid.is_empty() || uid.chars().count() > MAX_UID_LEN {
            return Err(AdapterError::Misconfigured {
                detail: format!("a Firebase uid has 1 to {MAX_UID_LEN} characters, not {}", uid.chars().count()),
            });
        }
        check_developer_claims(claims)?;
        let token = CustomTokenClaims {
            iss: &self.service_account_email,
            sub: &self.service_account_email,
            aud: CUSTOM_TOKEN_AUDIENCE,
            iat: now,
            exp: now + CUSTOM_TOKEN_LIFETIME_SECONDS,
            uid,
            tenant_id: self.tenant_id.as_deref(),
            claims,
        };
        match &self.key {
            // Firebase verifies custom tokens against the service account's public keys by
            // `iss`; a `kid` is not needed (the Admin SDKs send none).
            Some(key) => key.sign(&token, false),
            None => unsigned(&token),
        }
    }
}

/// An `alg: none` JWT with an empty signature, which only the emulator accepts.
fn unsigned<T: Serialize>(claims: &T) -> Result<Secret, AdapterError> {
    let payload = serde_json::to_vec(claims)
        .map_err(|e| AdapterError::Misconfigured { detail: format!("serializing custom token claims: {e}") })?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    Ok(Secret::new(format!("{header}.{}.", URL_SAFE_NO_PAD.encode(payload))))
}

pub(crate) fn unix_now() -> u64 {
    // A clock before 1970 yields tokens Firebase rejects as expired: visible, not a panic.
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::test_keys::rsa_test_key;
    use jsonwebtoken::{DecodingKey, Validation};
    use std::sync::Arc;

    fn minter(tenant: Option<&str>) -> (CustomTokenMinter, DecodingKey) {
        let (pem, public) = rsa_test_key();
        let key = SigningKey::from_pem(&pem, Some("kid-1".to_owned())).unwrap();
        let minter = CustomTokenMinter::new(
            "adapter@demo-ssobridge.iam.gserviceaccount.com".to_owned(),
            tenant.map(str::to_owned),
            Some(Arc::new(key)),
        );
        (minter, public)
    }

    fn verify(token: &str, public: &DecodingKey) -> Value {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[CUSTOM_TOKEN_AUDIENCE]);
        validation.set_issuer(&["adapter@demo-ssobridge.iam.gserviceaccount.com"]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<Value>(token, public, &validation).expect("a valid RS256 custom token").claims
    }

    #[test]
    fn custom_token_has_the_claims_firebase_requires() {
        let (minter, public) = minter(None);
        let mut claims = Map::new();
        claims.insert("org_id".to_owned(), Value::from("org_1"));
        let token = minter.mint("sso_abc", &claims).unwrap();
        let header = jsonwebtoken::decode_header(token.expose()).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid, None, "custom tokens carry no kid");
        let body = verify(token.expose(), &public);
        assert_eq!(body["iss"], "adapter@demo-ssobridge.iam.gserviceaccount.com");
        assert_eq!(body["sub"], body["iss"]);
        assert_eq!(body["aud"], CUSTOM_TOKEN_AUDIENCE);
        assert_eq!(body["uid"], "sso_abc");
        assert_eq!(body["claims"]["org_id"], "org_1");
        assert!(body.get("tenant_id").is_none(), "no tenant unless configured");
        let lifetime = body["exp"].as_u64().unwrap() - body["iat"].as_u64().unwrap();
        assert!(lifetime > 0 && lifetime <= 3600, "lifetime {lifetime}");
        let now = unix_now();
        assert!(body["iat"].as_u64().unwrap().abs_diff(now) <= 5);
    }

    #[test]
    fn tenant_id_goes_into_the_token_and_empty_claims_are_left_out() {
        let (minter, public) = minter(Some("tenant-a1b2"));
        let token = minter.mint("sso_abc", &Map::new()).unwrap();
        let body = verify(token.expose(), &public);
        assert_eq!(body["tenant_id"], "tenant-a1b2");
        assert!(body.get("claims").is_none());
    }

    #[test]
    fn every_reserved_claim_name_is_refused() {
        let (minter, _) = minter(None);
        for name in RESERVED_CLAIMS {
            let mut claims = Map::new();
            claims.insert(name.to_owned(), Value::from("x"));
            match minter.mint("sso_abc", &claims) {
                Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains(name), "{detail}"),
                other => panic!("{name} must be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn oversized_claims_and_bad_uids_are_refused() {
        let (minter, _) = minter(None);
        let mut claims = Map::new();
        claims.insert("blob".to_owned(), Value::from("x".repeat(1000)));
        assert!(matches!(minter.mint("u", &claims), Err(AdapterError::Misconfigured { .. })));
        assert!(matches!(minter.mint("", &Map::new()), Err(AdapterError::Misconfigured { .. })));
        assert!(matches!(minter.mint(&"u".repeat(129), &Map::new()), Err(AdapterError::Misconfigured { .. })));
        assert!(minter.mint(&"u".repeat(128), &Map::new()).is_ok());
    }

    #[test]
    fn without_a_key_the_token_is_unsigned_for_the_emulator() {
        let minter = CustomTokenMinter::new("a@b.iam.gserviceaccount.com".to_owned(), None, None);
        let token = minter.mint_at("u1", &Map::new(), 1_700_000_000).unwrap();
        let parts: Vec<&str> = token.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "none");
        let body: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["exp"], 1_700_003_600u64);
    }

    #[test]
    fn pem_with_escaped_newlines_is_accepted_and_garbage_is_not() {
        let (pem, _) = rsa_test_key();
        assert!(SigningKey::from_pem(&pem.replace('\n', "\\n"), None).is_ok());
        assert!(SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None).is_err());
        let key = SigningKey::from_pem(&pem, None).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("MII") && shown.contains("redacted"), "{shown}");
    }
}
