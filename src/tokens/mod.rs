//! The broker's own tokens: signing keys, JWT minting, claim mapping, and the random values
//! and digests the protocol needs.

mod claims;
mod keys;
mod ring;
mod seal;
pub mod webhook_signature;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub use self::claims::{id_token_claims, pairwise_subject, user_claims, ClaimScopes, ProtocolClaims};
pub use self::keys::{generate_pem, generate_rsa_pem, KeyType, SigningAlgorithm, SigningKey};
pub use self::ring::{KeyInfo, KeyRing, RingError};
pub use self::seal::Sealer;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("signing key: {0}")]
    Key(String),
    #[error("signing failed")]
    Sign,
    #[error("system random generator failed")]
    Random,
    #[error("claims could not be serialized: {0}")]
    Serialize(String),
}

/// `bytes` of system randomness, base64url without padding.
pub fn random_token(bytes: usize) -> Result<String, TokenError> {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).map_err(|_| TokenError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(buffer))
}

/// Hex SHA-256: how codes and access tokens are keyed in the store.
pub fn sha256_hex(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = digest::digest(&digest::SHA256, input.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in hash.as_ref() {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0xf) as usize] as char);
    }
    out
}

/// A client secret as the store keeps it: `s256$<salt>$<hex SHA-256(salt || secret)>`, with a
/// random salt per secret, so that equal secrets do not hash alike and no precomputed table
/// fits. Secrets the broker generates are 256 random bits, which a fast hash protects well.
pub fn hash_secret(secret: &str) -> Result<String, TokenError> {
    let salt = random_token(16)?;
    Ok(format!("s256${salt}${}", sha256_hex(&format!("{salt}{secret}"))))
}

/// Whether `presented` is the secret `stored` was made from ([`hash_secret`]'s form, or a bare
/// hex SHA-256: a config file's `client_secret_sha256`), compared in constant time.
pub fn secret_matches_hash(presented: &str, stored: &str) -> bool {
    match stored.split('$').collect::<Vec<_>>().as_slice() {
        ["s256", salt, hash] => secrets_equal(&sha256_hex(&format!("{salt}{presented}")), hash),
        [hash] if hash.len() == 64 => secrets_equal(&sha256_hex(presented), &hash.to_ascii_lowercase()),
        _ => false,
    }
}

pub use crate::model::client::is_secret_hash;

/// RFC 7636 §4.1/§4.2: 43 to 128 characters of `[A-Za-z0-9-._~]`, the syntax of a PKCE
/// verifier and of an S256 challenge alike.
pub fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.2: `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// OIDC Core §3.1.3.6: base64url of the left half of the hash of the access token (SHA-256 for
/// RS256, ES256 and PS256 alike).
pub fn at_hash(access_token: &str) -> String {
    let hash = digest::digest(&digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])
}

/// Constant-time equality of two secrets, compared as fixed-length digests so that the
/// comparison does not reveal lengths either.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    let a = digest::digest(&digest::SHA256, a.as_bytes());
    let b = digest::digest(&digest::SHA256, b.as_bytes());
    a.as_ref().ct_eq(b.as_ref()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn pkce_syntax() {
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn sha256_hex_is_lower_case_hex_of_the_digest() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token(32).expect("random");
        let b = random_token(32).expect("random");
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn secret_hashes_are_salted_and_verify() {
        let a = hash_secret("s3cret-s3cret").expect("hash");
        let b = hash_secret("s3cret-s3cret").expect("hash");
        assert_ne!(a, b, "a salt per secret");
        assert!(secret_matches_hash("s3cret-s3cret", &a) && secret_matches_hash("s3cret-s3cret", &b));
        assert!(!secret_matches_hash("s3cret-s3cret!", &a));
        assert!(secret_matches_hash("abc", &sha256_hex("abc")), "a config file's bare SHA-256");
        assert!(is_secret_hash(&a) && is_secret_hash(&sha256_hex("x")) && !is_secret_hash("s256$$x"));
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("s3cret", "s3cret"));
        assert!(!secrets_equal("s3cret", "s3cret!"));
        assert!(!secrets_equal("", "x"));
    }
}
