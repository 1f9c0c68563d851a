//! AES-256-GCM under a key derived from a secret (its SHA-256): for values the store keeps that
//! must not be readable there (rotated signing keys, adapter artifacts waiting for a code).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::TokenError;

pub struct Sealer(LessSafeKey);

impl Sealer {
    pub fn from_secret(secret: &str) -> Result<Sealer, TokenError> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes());
        let key = UnboundKey::new(&AES_256_GCM, digest.as_ref()).map_err(|_| TokenError::Key("sealing key".into()))?;
        Ok(Sealer(LessSafeKey::new(key)))
    }

    /// base64url(nonce || ciphertext || tag); `context` is authenticated, not encrypted.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, TokenError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| TokenError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| TokenError::Sign)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&in_out);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The plaintext, if `sealed` was sealed by this key with this context, untouched.
    pub fn open(&self, context: &str, sealed: &str) -> Option<Vec<u8>> {
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        self.0.open_in_place(nonce, Aad::from(context.as_bytes()), &mut ciphertext).ok().map(|plain| plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_secret_and_context() {
        let sealer = Sealer::from_secret("s1").expect("key");
        let sealed = sealer.seal("ctx", b"hello").expect("seal");
        assert_eq!(sealer.open("ctx", &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(sealer.open("other", &sealed), None);
        assert_eq!(Sealer::from_secret("s2").expect("key").open("ctx", &sealed), None);
        assert!(!sealed.contains("hello"));
    }
}
