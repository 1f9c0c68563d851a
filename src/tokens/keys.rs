//! Signing keys: loaded from PEM (PKCS#1 or PKCS#8) or generated, published as JWKs.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use super::TokenError;

/// JWS algorithms the broker signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Rs256,
    Es256,
}

impl SigningAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A private key with its `kid` and public JWK.
pub struct SigningKey {
    kid: String,
    algorithm: SigningAlgorithm,
    pair: Pair,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.algorithm).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An RSA key from PEM: `BEGIN RSA PRIVATE KEY` (PKCS#1) or `BEGIN PRIVATE KEY` (PKCS#8).
    pub fn from_pem(pem: &str) -> Result<SigningKey, TokenError> {
        let (label, der) = pem_decode(pem)?;
        let pair = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => return Err(TokenError::Key(format!("expected an RSA private key, found a PEM \"{other}\""))),
        }
        .map_err(|e| TokenError::Key(format!("not a usable RSA private key: {e}")))?;
        if pair.public_modulus_len() < 256 {
            return Err(TokenError::Key("RSA keys must be at least 2048 bits".to_owned()));
        }
        Ok(Self::rsa(pair))
    }

    /// A fresh RSA-2048 key (ephemeral keys of the demo; `keys generate`).
    pub fn generate_rsa() -> Result<SigningKey, TokenError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| TokenError::Key("RSA key generation failed".to_owned()))?;
        Ok(Self::rsa(pair))
    }

    /// A fresh P-256 key.
    pub fn generate_es256() -> Result<SigningKey, TokenError> {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| TokenError::Key("EC key generation failed".to_owned()))?;
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
        Ok(SigningKey { kid, algorithm: SigningAlgorithm::Es256, pair: Pair::Ec(pair), jwk })
    }

    fn rsa(pair: RsaKeyPair) -> SigningKey {
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
        let jwk = json!({"kty": "RSA", "n": n, "e": e, "kid": kid, "use": "sig", "alg": "RS256"});
        SigningKey { kid, algorithm: SigningAlgorithm::Rs256, pair: Pair::Rsa(pair), jwk }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The public key as a JWK, with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// A compact JWS of `claims` with header `{alg, kid, typ: JWT}`.
    pub fn sign_jwt<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let header = format!(r#"{{"alg":"{}","kid":"{}","typ":"JWT"}}"#, self.algorithm.name(), self.kid);
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Serialize(e.to_string()))?;
        let mut jwt = String::with_capacity(1024);
        URL_SAFE_NO_PAD.encode_string(header, &mut jwt);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jwt);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, jwt.as_bytes(), &mut signature)
                    .map_err(|_| TokenError::Sign)?;
                signature
            }
            Pair::Ec(pair) => pair.sign(&rng, jwt.as_bytes()).map_err(|_| TokenError::Sign)?.as_ref().to_vec(),
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }
}

/// A new RSA-2048 private key as PKCS#8 PEM.
pub fn generate_rsa_pem() -> Result<String, TokenError> {
    let pair =
        RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| TokenError::Key("RSA key generation failed".to_owned()))?;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
        .map_err(|_| TokenError::Key("RSA key encoding failed".to_owned()))?;
    let body = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
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
    fn non_rsa_pem_is_refused() {
        let err = SigningKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(err.to_string().contains("CERTIFICATE"), "{err}");
        assert!(SigningKey::from_pem("garbage").is_err());
    }
}
