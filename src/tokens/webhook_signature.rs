//! Standard Webhooks signatures, as Scalekit's SDKs verify them (research/scalekit.md §8.1):
//! the key is the base64 after `whsec_`; the MAC is HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{raw body}`, sent as `webhook-signature: v1,<base64>`
//! (several space-separated entries during a secret rotation: any `v1` match passes);
//! the timestamp must be within 5 minutes of now, either way.
//!
//! No I/O: the handler passes the headers, the raw body and the clock in.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// Scalekit's (and every Standard Webhooks SDK's) tolerance: older or newer is refused, so a
/// captured delivery cannot be replayed once the idempotency record could have expired.
pub const TOLERANCE_SECONDS: u64 = 5 * 60;
/// An HMAC-SHA256 tag.
const MAC_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook-id, webhook-timestamp or webhook-signature header is missing or malformed")]
    MissingHeaders,
    #[error("the webhook timestamp is more than 5 minutes away from now")]
    Stale,
    #[error("no webhook signature matches")]
    Mismatch,
}

/// The three headers of a delivery.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The HMAC key of a `whsec_<base64>` secret (the SDKs split on `_` and decode the rest).
pub use crate::config::decode_webhook_secret as decode_secret;

/// A new secret in Scalekit's form, `whsec_` and 24 random bytes in base64 (the demo's).
pub fn generate_secret() -> Result<String, crate::tokens::TokenError> {
    let mut key = [0u8; 24];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| crate::tokens::TokenError::Random)?;
    Ok(format!("whsec_{}", STANDARD.encode(key)))
}

fn mac(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    context.sign()
}

/// The `webhook-signature` value for a delivery: what the simulator sends and tests forge.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(key, id, timestamp, body).as_ref()))
}

/// Checks a delivery; `now` in Unix seconds. On success, the `webhook-id`.
pub fn verify<'a>(headers: Headers<'a>, body: &[u8], key: &[u8], now: u64) -> Result<&'a str, SignatureError> {
    let (Some(id), Some(timestamp), Some(signatures)) = (headers.id, headers.timestamp, headers.signature) else {
        return Err(SignatureError::MissingHeaders);
    };
    if id.is_empty() || id.len() > 256 {
        return Err(SignatureError::MissingHeaders);
    }
    let timestamp: u64 = timestamp.trim().parse().map_err(|_| SignatureError::MissingHeaders)?;
    if now.abs_diff(timestamp) > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    let expected = mac(key, id, timestamp, body);
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        // Fixed-length digests only: subtle's slice compare returns early on a length mismatch.
        .filter(|received| received.len() == MAC_LEN)
        .fold(subtle::Choice::from(0), |any, received| any | received.ct_eq(expected.as_ref()));
    if bool::from(matched) {
        Ok(id)
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector Svix's libraries test their signing against (e.g. its PHP library's
    /// `testSignFunctionWorks`), which Standard Webhooks libraries reuse.
    /// Cross-checked with Python:
    /// `base64.b64encode(hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ///  b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}', hashlib.sha256).digest())`
    /// prints `g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=`.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(signature: &'a str, timestamp: &'a str) -> Headers<'a> {
        Headers { id: Some(ID), timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn the_published_vector_signs_and_verifies() {
        let key = decode_secret(SECRET).expect("secret");
        assert_eq!(sign(&key, ID, TIMESTAMP, BODY), SIGNATURE);
        assert_eq!(verify(headers(SIGNATURE, "1614265330"), BODY, &key, TIMESTAMP + 299), Ok(ID));
        // A rotation sends several entries; one match is enough, other versions are skipped.
        let several = format!("v2,abc v1,bm9wZQ== {SIGNATURE}");
        assert_eq!(verify(headers(&several, "1614265330"), BODY, &key, TIMESTAMP), Ok(ID));
    }

    #[test]
    fn anything_else_is_refused() {
        let key = decode_secret(SECRET).expect("secret");
        let at = |signature, timestamp, body: &[u8], now| verify(headers(signature, timestamp), body, &key, now);
        assert_eq!(at(SIGNATURE, "1614265330", b"{\"test\": 1}", TIMESTAMP), Err(SignatureError::Mismatch));
        assert_eq!(at(SIGNATURE, "1614265331", BODY, TIMESTAMP), Err(SignatureError::Mismatch), "timestamp signed");
        assert_eq!(at(SIGNATURE, "1614265330", BODY, TIMESTAMP + 301), Err(SignatureError::Stale));
        assert_eq!(at(SIGNATURE, "1614265330", BODY, TIMESTAMP - 301), Err(SignatureError::Stale));
        assert_eq!(
            at("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330", BODY, TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            at("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "1614265330", BODY, TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(at("v1,g0hM9SsE", "1614265330", BODY, TIMESTAMP), Err(SignatureError::Mismatch), "a prefix");
        assert_eq!(at(SIGNATURE, "soon", BODY, TIMESTAMP), Err(SignatureError::MissingHeaders));
        let other = decode_secret("whsec_c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQ=").expect("secret");
        assert_eq!(verify(headers(SIGNATURE, "1614265330"), BODY, &other, TIMESTAMP), Err(SignatureError::Mismatch));
        let missing = Headers { id: Some(ID), timestamp: Some("1614265330"), signature: None };
        assert_eq!(verify(missing, BODY, &key, TIMESTAMP), Err(SignatureError::MissingHeaders));
    }

    #[test]
    fn secrets_must_look_like_scalekits() {
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err(), "no whsec_ prefix");
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(decode_secret("whsec_c2hvcnQ=").is_err(), "5 bytes");
        assert_eq!(decode_secret(SECRET).expect("ok").len(), 24);
        let generated = generate_secret().expect("random");
        assert_eq!(decode_secret(&generated).expect("its own form").len(), 24);
        assert_ne!(generated, generate_secret().expect("random"));
    }
}
