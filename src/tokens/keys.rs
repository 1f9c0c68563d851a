//! Signing keys: loaded from PEM (PKCS#1 or PKCS#8) or generated, published as JWKs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use super::TokenError;

pub use crate::model::client::{KeyType, SigningAlgorithm};

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key with its `kid` and public JWK.
pub struct SigningKey {
    kid: String,
    pair: Pair,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("kty", &self.key_type()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A key from PEM: RSA as `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN PRIVATE KEY` (PKCS#8);
    /// P-256 as `BEGIN PRIVATE KEY` (PKCS#8) or `BEGIN EC PRIVATE KEY` (SEC1, what
    /// `openssl ecparam -genkey` writes).
    pub fn from_pem(pem: &str) -> Result<SigningKey, TokenError> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "RSA PRIVATE KEY" => Self::rsa_checked(RsaKeyPair::from_der(&der)),
            "EC PRIVATE KEY" => Self::ec_checked(EcdsaKeyPair::from_private_key_der(P256, &der)),
            "PRIVATE KEY" => match RsaKeyPair::from_pkcs8(&der) {
                Ok(pair) => Self::rsa_checked(Ok(pair)),
                Err(_) => Self::ec_checked(EcdsaKeyPair::from_pkcs8(P256, &der))
                    .map_err(|_| TokenError::Key("the PKCS#8 key is neither RSA nor EC P-256".to_owned())),
            },
            other => Err(TokenError::Key(format!("expected an RSA or EC private key, found a PEM \"{other}\""))),
        }
    }

    fn rsa_checked(pair: Result<RsaKeyPair, aws_lc_rs::error::KeyRejected>) -> Result<SigningKey, TokenError> {
        let pair = pair.map_err(|e| TokenError::Key(format!("not a usable RSA private key: {e}")))?;
        if pair.public_modulus_len() < 256 {
            return Err(TokenError::Key("RSA keys must be at least 2048 bits".to_owned()));
        }
        Ok(Self::rsa(pair))
    }

    fn ec_checked(pair: Result<EcdsaKeyPair, aws_lc_rs::error::KeyRejected>) -> Result<SigningKey, TokenError> {
        let pair = pair.map_err(|e| TokenError::Key(format!("not a usable EC P-256 private key: {e}")))?;
        Self::ec(pair)
    }

    /// A fresh RSA-2048 key (ephemeral keys of the demo; `keys generate`).
    pub fn generate_rsa() -> Result<SigningKey, TokenError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| TokenError::Key("RSA key generation failed".to_owned()))?;
        Ok(Self::rsa(pair))
    }

    /// A fresh P-256 key.
    pub fn generate_es256() -> Result<SigningKey, TokenError> {
        let pair = EcdsaKeyPair::generate(P256).map_err(|_| TokenError::Key("EC key generation failed".to_owned()))?;
        Self::ec(pair)
    }

    fn ec(pair: EcdsaKeyPair) -> Result<SigningKey, TokenError> {
        let point = pair.public_key().as_ref();
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        if point.len() != 65 {
            return Err(TokenError::Key("unexpected EC public key encoding".to_owned()));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638 §3.2: required members in lexicographic order.
        let kid = thumbprint(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"});
        Ok(SigningKey { kid, pair: Pair::Ec(pair), jwk })
    }

    fn rsa(pair: RsaKeyPair) -> SigningKey {
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        // No `alg` member: the one RSA key verifies both RS256 and PS256 tokens, and relying
        // parties that honour a JWK's `alg` would otherwise refuse it for PS256.
        let jwk = json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "use": "sig"});
        SigningKey { kid, pair: Pair::Rsa(pair), jwk }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The same key under another `kid` (the upstream simulator names its keys as Scalekit
    /// does, `snk_<digits>`). Only URL-safe characters: the kid is written into JWS headers as is.
    pub fn with_kid(mut self, kid: &str) -> Result<SigningKey, TokenError> {
        if kid.is_empty() || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
            return Err(TokenError::Key("a kid is made of letters, digits, '_', '-' and '.'".to_owned()));
        }
        self.kid = kid.to_owned();
        self.jwk["kid"] = Value::String(self.kid.clone());
        Ok(self)
    }

    pub fn key_type(&self) -> KeyType {
        match self.pair {
            Pair::Rsa(_) => KeyType::Rsa,
            Pair::Ec(_) => KeyType::Ec,
        }
    }

    /// The algorithm this key signs with when nobody asks for another.
    pub fn default_algorithm(&self) -> SigningAlgorithm {
        match self.pair {
            Pair::Rsa(_) => SigningAlgorithm::Rs256,
            Pair::Ec(_) => SigningAlgorithm::Es256,
        }
    }

    /// The public key as a JWK, with `kid` and `use`.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// A compact JWS of `claims` with header `{alg, kid, typ: JWT}`, signed with the key's
    /// default algorithm.
    pub fn sign_jwt<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        self.sign_jwt_with(self.default_algorithm(), claims)
    }

    /// A compact JWS of `claims` signed with `alg`, which must suit the key.
    pub fn sign_jwt_with<T: Serialize>(&self, alg: SigningAlgorithm, claims: &T) -> Result<String, TokenError> {
        self.sign_typed_jwt(alg, "JWT", claims)
    }

    /// A compact JWS of `claims` signed with `alg`, its header naming the type `typ` (RFC 8725
    /// §3.11: `logout+jwt` keeps a logout token from passing for an ID token). `typ` is one of
    /// the broker's own constants.
    pub fn sign_typed_jwt<T: Serialize>(
        &self,
        alg: SigningAlgorithm,
        typ: &str,
        claims: &T,
    ) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Serialize(e.to_string()))?;
        let header = format!(r#"{{"alg":"{}","kid":"{}","typ":"{typ}"}}"#, alg.name(), self.kid);
        let mut jwt = String::with_capacity(4 * (header.len() + payload.len()) / 3 + 360);
        URL_SAFE_NO_PAD.encode_string(header, &mut jwt);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jwt);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match (&self.pair, alg) {
            (Pair::Rsa(pair), SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256) => {
                let padding = if alg == SigningAlgorithm::Ps256 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &rng, jwt.as_bytes(), &mut signature).map_err(|_| TokenError::Sign)?;
                signature
            }
            (Pair::Ec(pair), SigningAlgorithm::Es256) => {
                pair.sign(&rng, jwt.as_bytes()).map_err(|_| TokenError::Sign)?.as_ref().to_vec()
            }
            _ => return Err(TokenError::Key(format!("a {} key cannot sign {}", self.key_type().name(), alg.name()))),
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }
}

const P256: &signature::EcdsaSigningAlgorithm = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;

/// A new private key of `key_type` as PKCS#8 PEM: RSA-2048 or EC P-256.
pub fn generate_pem(key_type: KeyType) -> Result<String, TokenError> {
    let der = match key_type {
        KeyType::Rsa => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| TokenError::Key("RSA key generation failed".to_owned()))?;
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(|_| TokenError::Key("RSA key encoding failed".to_owned()))?
                .as_ref()
                .to_vec()
        }
        KeyType::Ec => EcdsaKeyPair::generate(P256)
            .and_then(|pair| pair.to_pkcs8v1())
            .map_err(|_| TokenError::Key("EC key generation failed".to_owned()))?
            .as_ref()
            .to_vec(),
    };
    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// A new RSA-2048 private key as PKCS#8 PEM.
pub fn generate_rsa_pem() -> Result<String, TokenError> {
    generate_pem(KeyType::Rsa)
}

/// RFC 7638 JWK thumbprint of the canonical JSON.
fn thumbprint(canonical: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
}

/// The label and DER of the first PEM block in `text`.
fn pem_decode(text: &str) -> Result<(String, Vec<u8>), TokenError> {
    let mut lines = text.lines().map(str::trim).skip_while(|l| !l.starts_with("-----BEGIN "));
    let begin = lines.next().ok_or_else(|| TokenError::Key("no PEM block found".to_owned()))?;
    let label = begin.trim_start_matches("-----BEGIN ").trim_end_matches("-----").to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for line in lines.by_ref() {
        if line == end {
            let der = STANDARD.decode(body).map_err(|_| TokenError::Key("PEM body is not base64".to_owned()))?;
            return Ok((label, der));
        }
        if line.contains(':') {
            return Err(TokenError::Key("encrypted PEM keys are not supported".to_owned()));
        }
        body.push_str(line);
    }
    Err(TokenError::Key(format!("PEM block {label} has no END line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pem_loads_and_signs_verifiably() {
        let pem = generate_rsa_pem().expect("generate");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let key = SigningKey::from_pem(&pem).expect("load");
        let jwt = key.sign_jwt(&json!({"sub": "x", "exp": 4_000_000_000u64})).expect("sign");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone()).expect("jwk");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&jwt, &decoding, &validation).expect("verifies");
        assert_eq!(data.claims["sub"], "x");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
    }

    #[test]
    fn a_renamed_key_signs_under_its_new_kid() {
        let key = SigningKey::generate_rsa().expect("key").with_kid("snk_12345").expect("kid");
        assert_eq!(key.public_jwk()["kid"], "snk_12345");
        let jwt = key.sign_jwt(&json!({"sub": "x"})).expect("sign");
        assert_eq!(jsonwebtoken::decode_header(&jwt).expect("header").kid.as_deref(), Some("snk_12345"));
        assert!(SigningKey::generate_es256().expect("key").with_kid("a\"b").is_err(), "never breaks the header");
    }

    #[test]
    fn es256_signs_verifiably() {
        let key = SigningKey::generate_es256().expect("generate");
        let jwt = key.sign_jwt(&json!({"sub": "y", "exp": 4_000_000_000u64})).expect("sign");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone()).expect("jwk");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(&jwt, &decoding, &validation).expect("verifies");
    }

    #[test]
    fn one_rsa_key_signs_rs256_and_ps256_and_an_ec_pem_loads() {
        let key = SigningKey::from_pem(&generate_rsa_pem().expect("generate")).expect("load");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk().clone()).expect("jwk");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
        for alg in [jsonwebtoken::Algorithm::RS256, jsonwebtoken::Algorithm::PS256] {
            let ours = SigningAlgorithm::from_name(&format!("{alg:?}")).expect("known");
            let jwt = key.sign_jwt_with(ours, &json!({"sub": "x"})).expect("sign");
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            jsonwebtoken::decode::<Value>(&jwt, &decoding, &validation).expect("verifies");
            // The header names the algorithm, so a verifier cannot be talked into the other.
            let mut other = jsonwebtoken::Validation::new(if ours == SigningAlgorithm::Rs256 {
                jsonwebtoken::Algorithm::PS256
            } else {
                jsonwebtoken::Algorithm::RS256
            });
            other.validate_aud = false;
            other.required_spec_claims.clear();
            other.validate_exp = false;
            assert!(jsonwebtoken::decode::<Value>(&jwt, &decoding, &other).is_err());
        }
        assert!(key.sign_jwt_with(SigningAlgorithm::Es256, &json!({})).is_err());
        let ec = SigningKey::from_pem(&generate_pem(KeyType::Ec).expect("generate")).expect("load EC");
        assert_eq!(ec.key_type(), KeyType::Ec);
        assert!(ec.sign_jwt_with(SigningAlgorithm::Rs256, &json!({})).is_err());
    }

    #[test]
    fn non_rsa_pem_is_refused() {
        let err = SigningKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
        assert!(SigningKey::from_pem("garbage").is_err());
    }
}
