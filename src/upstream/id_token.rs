//! Verification of upstream-signed JWTs (ID tokens, IdP-initiated login tokens).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};

use super::UpstreamError;

/// The upstream claims the broker reads. The others are kept in `other`, for a client's
/// `claims.attributes` (custom attributes of a connection).
#[derive(Debug, Clone, Deserialize)]
pub struct UpstreamClaims {
    pub sub: String,
    #[serde(default)]
    pub aud: Audience,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub iat: Option<i64>,
    /// When the user signed in at their IdP (OIDC Core §2).
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// The authentication context the upstream vouches for, if any.
    #[serde(default)]
    pub acr: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub family_name: Option<String>,
    /// Scalekit's organization id.
    #[serde(default)]
    pub oid: Option<String>,
    /// Scalekit puts the connection id in `amr`.
    #[serde(default)]
    pub amr: Option<Vec<String>>,
    /// Some deployments name them explicitly.
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
    /// The verified token itself, as received from the token endpoint (the `id_token_hint` of
    /// a sign-out continued at the upstream); empty for other tokens.
    #[serde(skip)]
    pub id_token: String,
}

impl UpstreamClaims {
    pub fn organization(&self) -> Option<&str> {
        self.oid.as_deref().or(self.organization_id.as_deref())
    }

    pub fn connection(&self) -> Option<&str> {
        self.connection_id
            .as_deref()
            .or_else(|| self.amr.as_ref()?.iter().find(|a| a.starts_with("conn_")).map(String::as_str))
    }
}

/// `aud` as a string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Default)]
pub struct Audience(pub Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(Audience(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }))
    }
}

/// Some providers send `"email_verified": "true"`.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        String(String),
    }
    Ok(match Option::<BoolOrString>::deserialize(deserializer)? {
        Some(BoolOrString::Bool(b)) => Some(b),
        Some(BoolOrString::String(s)) => Some(s.eq_ignore_ascii_case("true")),
        None => None,
    })
}

#[derive(Debug, thiserror::Error)]
pub(super) enum VerifyError {
    #[error("no key in the JWKS matches the token")]
    UnknownKey,
    #[error("{0}")]
    Invalid(String),
}

impl From<VerifyError> for UpstreamError {
    fn from(error: VerifyError) -> Self {
        UpstreamError::InvalidIdToken(error.to_string())
    }
}

pub(super) struct Verifier {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    skew: u64,
    /// The `iss` an IdP-initiated login token may carry besides `issuer`.
    initiation_issuers: Vec<String>,
    /// The upstream's RSA keys, each parsed once per algorithm: rebuilding the key from its JWK
    /// (and its Montgomery context) at every verification cost a fifth of the RSA check.
    parsed: RwLock<Vec<(Jwk, Algorithm, Arc<ParsedPublicKey>)>>,
}

/// How many parsed keys are kept (a JWKS holds a few; a rotation adds one).
const PARSED_KEYS_KEPT: usize = 16;

/// A claim as jsonwebtoken reads it for validation: there, absent (or null), or of another type.
#[derive(Default)]
enum Claim<T> {
    Parsed(T),
    FailedToParse,
    #[default]
    NotPresent,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Claim<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer) {
            Ok(Some(value)) => Claim::Parsed(value),
            Ok(None) => Claim::NotPresent,
            Err(_) => Claim::FailedToParse,
        })
    }
}

impl<T> Claim<T> {
    fn is_parsed(&self) -> bool {
        matches!(self, Claim::Parsed(_))
    }
}

/// A NumericDate as jsonwebtoken accepts it: a non-negative integer, or a float rounded;
/// anything else that is there (null included) does not parse. Called only when present.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Claim<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer) {
        Ok(serde_json::Value::Number(number)) => match (number.as_u64(), number.as_f64()) {
            (Some(n), _) => Claim::Parsed(n),
            (None, Some(f)) if number.is_f64() && f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                Claim::Parsed(f.round() as u64)
            }
            _ => Claim::FailedToParse,
        },
        _ => Claim::FailedToParse,
    })
}

/// `iat` when present: a number, or (null included) something that is not.
fn present_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Claim<serde_json::Number>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer) {
        Ok(serde_json::Value::Number(number)) => Claim::Parsed(number),
        _ => Claim::FailedToParse,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            OneOrMany::One(one) => one == wanted,
            OneOrMany::Many(many) => many.iter().any(|one| one == wanted),
        }
    }
}

/// The registered claims jsonwebtoken validates, read as it reads them.
#[derive(Deserialize)]
struct Registered {
    #[serde(default, deserialize_with = "numeric_date")]
    exp: Claim<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    nbf: Claim<u64>,
    #[serde(default)]
    sub: Claim<String>,
    #[serde(default)]
    iss: Claim<OneOrMany>,
    #[serde(default)]
    aud: Claim<OneOrMany>,
    #[serde(default, deserialize_with = "present_number")]
    iat: Claim<serde_json::Number>,
}

/// The RSA verification algorithm of `alg`, as jsonwebtoken verifies it (2048 to 8192 bits).
fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// An RSA JWK parsed for `alg` (the same components jsonwebtoken's `DecodingKey::from_jwk`
/// reads); None for other keys and algorithms, which are verified through jsonwebtoken.
fn parse_rsa_key(jwk: &Jwk, alg: Algorithm) -> Option<ParsedPublicKey> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else { return None };
    let parameters = rsa_parameters(alg)?;
    let n = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
    let e = URL_SAFE_NO_PAD.decode(&rsa.e).ok()?;
    RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.to_parsed_public_key(parameters).ok()
}

impl Verifier {
    pub(super) fn new(
        issuer: String,
        audience: String,
        algorithms: &[Algorithm],
        skew: u64,
    ) -> Result<Verifier, UpstreamError> {
        // Never HMAC, whatever the caller passes: the "key" would be our own client secret,
        // which the upstream is not the only holder of.
        if let Some(alg) =
            algorithms.iter().find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(UpstreamError::Malformed(format!("algorithm {alg:?} is not allowed")));
        }
        let algorithms = algorithms.to_vec();
        Ok(Verifier {
            issuer,
            audience,
            algorithms,
            skew,
            initiation_issuers: Vec::new(),
            parsed: RwLock::new(Vec::new()),
        })
    }

    /// Also accepts these issuers on IdP-initiated login tokens (`upstream.idp_initiated_issuers`).
    pub(super) fn with_initiation_issuers(mut self, issuers: Vec<String>) -> Verifier {
        self.initiation_issuers = issuers;
        self
    }

    pub(super) fn header_kid(&self, jwt: &str) -> Result<Option<String>, UpstreamError> {
        let header =
            jsonwebtoken::decode_header(jwt).map_err(|e| UpstreamError::InvalidIdToken(format!("header: {e}")))?;
        Ok(header.kid)
    }

    /// `jwk` parsed for `alg`, from the cache or now.
    fn parsed_key(&self, jwk: &Jwk, alg: Algorithm) -> Option<Arc<ParsedPublicKey>> {
        {
            let cache = self.parsed.read().unwrap_or_else(|p| p.into_inner());
            if let Some((_, _, key)) = cache.iter().find(|(k, a, _)| *a == alg && k == jwk) {
                return Some(key.clone());
            }
        }
        let key = Arc::new(parse_rsa_key(jwk, alg)?);
        let mut cache = self.parsed.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= PARSED_KEYS_KEPT {
            cache.clear();
        }
        cache.push((jwk.clone(), alg, key.clone()));
        Some(key)
    }

    /// Signature with an allow-listed algorithm, `iss` (when `check_issuer`), `aud` (required or
    /// only when present), `exp` and `nbf` with skew, and an `iat` that is not in the future.
    /// Returns the claims' JSON.
    fn verify_claims(
        &self,
        jwt: &str,
        keys: &[Jwk],
        required: &[&str],
        check_issuer: bool,
    ) -> Result<Vec<u8>, VerifyError> {
        // decode_header refuses `alg: none` (not an Algorithm) before anything else is read.
        let header = jsonwebtoken::decode_header(jwt).map_err(|e| VerifyError::Invalid(format!("header: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(VerifyError::Invalid(format!("algorithm {:?} is not allowed", header.alg)));
        }
        let jwk = select_key(keys, header.kid.as_deref(), header.alg).ok_or(VerifyError::UnknownKey)?;
        let Some(key) = self.parsed_key(jwk, header.alg) else {
            return self.verify_with_jsonwebtoken(jwt, jwk, header.alg, required, check_issuer);
        };
        // The token split as jsonwebtoken splits it: the signature after the last dot, the
        // claims between it and the one before.
        let invalid = |what: &str| VerifyError::Invalid(what.to_owned());
        let (message, signature) = jwt.rsplit_once('.').ok_or_else(|| invalid("InvalidToken"))?;
        let (_, payload) = message.rsplit_once('.').ok_or_else(|| invalid("InvalidToken"))?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        key.verify_sig(message.as_bytes(), &signature).map_err(|_| invalid("InvalidSignature"))?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        let claims: Registered = serde_json::from_slice(&payload).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        self.validate(&claims, required, check_issuer)?;
        Ok(payload)
    }

    /// What `jsonwebtoken::decode` checks of the registered claims with the validation
    /// [`Self::verify_with_jsonwebtoken`] configures, and the `iat` check.
    fn validate(&self, claims: &Registered, required: &[&str], check_issuer: bool) -> Result<(), VerifyError> {
        let invalid = |what: String| Err(VerifyError::Invalid(what));
        for claim in required {
            let present = match *claim {
                "exp" => claims.exp.is_parsed(),
                "sub" => claims.sub.is_parsed(),
                "iss" => claims.iss.is_parsed(),
                "aud" => claims.aud.is_parsed(),
                "nbf" => claims.nbf.is_parsed(),
                "iat" => !matches!(claims.iat, Claim::NotPresent),
                _ => continue,
            };
            if !present {
                return invalid(format!("{claim} is missing"));
            }
        }
        let now = jsonwebtoken::get_current_timestamp();
        match claims.exp {
            Claim::FailedToParse => return invalid("exp is not a NumericDate".to_owned()),
            Claim::Parsed(exp) if exp < now.saturating_sub(self.skew) => return invalid("ExpiredSignature".to_owned()),
            _ => {}
        }
        match claims.nbf {
            Claim::FailedToParse => return invalid("nbf is not a NumericDate".to_owned()),
            Claim::Parsed(nbf) if nbf > now.saturating_add(self.skew) => {
                return invalid("ImmatureSignature".to_owned())
            }
            _ => {}
        }
        if check_issuer && matches!(&claims.iss, Claim::Parsed(iss) if !iss.contains(&self.issuer)) {
            return invalid("InvalidIssuer".to_owned());
        }
        if matches!(&claims.aud, Claim::Parsed(aud) if !aud.contains(&self.audience)) {
            return invalid("InvalidAudience".to_owned());
        }
        match &claims.iat {
            Claim::FailedToParse => invalid("iat is not a number".to_owned()),
            Claim::Parsed(iat) => match iat.as_i64() {
                None => invalid("iat is not a number".to_owned()),
                Some(iat) if iat > now as i64 + self.skew as i64 => invalid("iat is in the future".to_owned()),
                Some(_) => Ok(()),
            },
            Claim::NotPresent => Ok(()),
        }
    }

    /// The same checks through jsonwebtoken, for keys that are not pre-parsed (EC, Ed25519).
    fn verify_with_jsonwebtoken(
        &self,
        jwt: &str,
        jwk: &Jwk,
        alg: Algorithm,
        required: &[&str],
        check_issuer: bool,
    ) -> Result<Vec<u8>, VerifyError> {
        let key = DecodingKey::from_jwk(jwk).map_err(|e| VerifyError::Invalid(format!("JWK: {e}")))?;
        let mut validation = Validation::new(alg);
        if check_issuer {
            validation.set_issuer(&[&self.issuer]);
        }
        validation.set_audience(&[&self.audience]);
        validation.required_spec_claims = required.iter().map(|c| c.to_string()).collect::<HashSet<_>>();
        validation.leeway = self.skew;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
            .map_err(|e| VerifyError::Invalid(e.to_string()))?
            .claims;
        let now = jsonwebtoken::get_current_timestamp() as i64;
        match claims.get("iat").map(|v| v.as_i64()) {
            None if required.contains(&"iat") => return Err(VerifyError::Invalid("iat is missing".to_owned())),
            Some(None) => return Err(VerifyError::Invalid("iat is not a number".to_owned())),
            Some(Some(iat)) if iat > now + self.skew as i64 => {
                return Err(VerifyError::Invalid("iat is in the future".to_owned()))
            }
            _ => {}
        }
        serde_json::to_vec(&claims).map_err(|e| VerifyError::Invalid(e.to_string()))
    }

    /// An upstream ID token (OIDC Core §3.1.3.7).
    pub(super) fn verify(&self, jwt: &str, keys: &[Jwk], nonce: Option<&str>) -> Result<UpstreamClaims, VerifyError> {
        let claims = self.verify_claims(jwt, keys, &["exp", "iss", "aud", "sub", "iat"], true)?;
        let claims: UpstreamClaims =
            serde_json::from_slice(&claims).map_err(|e| VerifyError::Invalid(format!("claims: {e}")))?;
        // Items 4 and 5: several audiences need an azp, and an azp must be this client.
        if claims.aud.0.len() > 1 && claims.azp.is_none() {
            return Err(VerifyError::Invalid("several audiences and no azp".to_owned()));
        }
        if claims.azp.as_deref().is_some_and(|azp| azp != self.audience) {
            return Err(VerifyError::Invalid("azp is not this client".to_owned()));
        }
        if let Some(expected) = nonce {
            if claims.nonce.as_deref() != Some(expected) {
                return Err(VerifyError::Invalid("nonce does not match".to_owned()));
            }
        }
        Ok(claims)
    }

    /// A Scalekit `idp_initiated_login` token: short-lived, signed by the upstream (its JWKS),
    /// naming the organization and connection; `exp` required, `nbf` when present, as the SDKs
    /// check it (research/scalekit.md §4.3). `aud`, when present, must be this client. `iss` is
    /// required (both of the docs' tokens carry one): the upstream issuer, or one of
    /// `upstream.idp_initiated_issuers`, as the docs' example names the application's URL.
    pub(super) fn verify_login_initiation(&self, jwt: &str, keys: &[Jwk]) -> Result<LoginInitiation, VerifyError> {
        let claims = self.verify_claims(jwt, keys, &["exp", "iss"], false)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&claims).map_err(|e| VerifyError::Invalid(format!("claims: {e}")))?;
        let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        let trimmed = iss.trim_end_matches('/');
        if trimmed != self.issuer && !self.initiation_issuers.iter().any(|allowed| allowed == trimmed) {
            // The received issuer, bounded, for the operator to add if it is theirs.
            let received: String = iss.chars().filter(|c| !c.is_control()).take(200).collect();
            return Err(VerifyError::Invalid(format!(
                "iss {received:?} is neither the upstream issuer nor one of upstream.idp_initiated_issuers"
            )));
        }
        serde_json::from_value(claims).map_err(|e| VerifyError::Invalid(format!("claims: {e}")))
    }
}

/// What an IdP-initiated login token says.
#[derive(Debug, Clone, Deserialize)]
pub struct LoginInitiation {
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(default)]
    pub login_hint: Option<String>,
    #[serde(default)]
    pub relay_state: Option<String>,
    pub exp: i64,
}

/// The key named by `kid`, or without a `kid` the only key that fits the algorithm.
pub(crate) fn select_key<'k>(keys: &'k [Jwk], kid: Option<&str>, alg: Algorithm) -> Option<&'k Jwk> {
    let family = alg.family();
    let fits = |k: &&Jwk| {
        let kty_fits = match &k.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => family == jsonwebtoken::AlgorithmFamily::Rsa,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => family == jsonwebtoken::AlgorithmFamily::Ec,
            // RFC 8037: EdDSA with Ed25519 (jsonwebtoken verifies no other curve).
            jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => {
                family == jsonwebtoken::AlgorithmFamily::Ed && p.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519
            }
            _ => false,
        };
        let use_fits = !matches!(k.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption));
        // A key published for one algorithm verifies that one only (RFC 7517 §4.4).
        let alg_fits = k.common.key_algorithm.is_none_or(|key_alg| format!("{key_alg:?}") == format!("{alg:?}"));
        kty_fits && use_fits && alg_fits
    };
    match kid {
        Some(kid) => keys.iter().filter(fits).find(|k| k.common.key_id.as_deref() == Some(kid)),
        None => {
            let mut candidates = keys.iter().filter(fits);
            let only = candidates.next()?;
            candidates.next().is_none().then_some(only)
        }
    }
}

/// Property tests: whatever an attacker sends as an upstream token, verification neither
/// panics nor accepts it.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::tokens::SigningKey;

    fn setup() -> (Verifier, Vec<Jwk>, String) {
        let key = SigningKey::generate_es256().expect("key");
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).expect("jwk");
        let verifier =
            Verifier::new("https://up.example".into(), "client".into(), &[Algorithm::ES256, Algorithm::RS256], 60)
                .expect("verifier");
        let now = jsonwebtoken::get_current_timestamp();
        let valid = key
            .sign_jwt(&json!({"iss": "https://up.example", "aud": "client", "sub": "conn_1;a@b.c", "iat": now, "exp": now + 300, "nonce": "n"}))
            .expect("sign");
        (verifier, vec![jwk], valid)
    }

    /// The attacker has a token signed with the upstream's key under one algorithm, and the
    /// upstream published that key for another: a key verifies only the algorithm it names.
    #[test]
    fn a_key_published_for_one_algorithm_does_not_verify_another() {
        use crate::tokens::SigningAlgorithm;
        let key = SigningKey::generate_rsa().expect("key");
        let mut public = key.public_jwk().clone();
        public["alg"] = json!("RS256");
        let jwk: Jwk = serde_json::from_value(public).expect("jwk");
        let verifier =
            Verifier::new("https://up.example".into(), "client".into(), &[Algorithm::RS256, Algorithm::PS256], 60)
                .expect("verifier");
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"iss": "https://up.example", "aud": "client", "sub": "s", "iat": now, "exp": now + 300});
        let rs256 = key.sign_jwt_with(SigningAlgorithm::Rs256, &claims).expect("sign");
        let ps256 = key.sign_jwt_with(SigningAlgorithm::Ps256, &claims).expect("sign");
        assert!(verifier.verify(&rs256, std::slice::from_ref(&jwk), None).is_ok());
        assert!(verifier.verify(&ps256, &[jwk], None).is_err(), "PS256 under an RS256 key is refused");
    }

    #[test]
    fn the_unmutated_token_verifies() {
        let (verifier, keys, valid) = setup();
        assert!(verifier.verify(&valid, &keys, Some("n")).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_are_refused(input in ".{0,600}") {
            let (verifier, keys, _) = setup();
            prop_assert!(verifier.verify(&input, &keys, Some("n")).is_err());
            prop_assert!(verifier.verify_login_initiation(&input, &keys).is_err());
        }

        #[test]
        fn any_changed_byte_is_refused(position in 0usize..10_000, byte in any::<u8>()) {
            let (verifier, keys, valid) = setup();
            let mut bytes = valid.clone().into_bytes();
            let position = position % bytes.len();
            prop_assume!(bytes[position] != byte);
            bytes[position] = byte;
            let mutated = String::from_utf8_lossy(&bytes).into_owned();
            // base64url has several encodings of the same trailing bits; only a different
            // decoded token counts as a change.
            let decoded = |t: &str| t.split('.').map(|p| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, p).ok()).collect::<Vec<_>>();
            prop_assume!(decoded(&mutated) != decoded(&valid));
            prop_assert!(verifier.verify(&mutated, &keys, Some("n")).is_err(), "accepted {mutated}");
        }
    }
}

/// The pre-parsed RSA path and jsonwebtoken's decide alike, whatever the registered claims
/// say: an attacker gains nothing from the one the broker takes.
#[cfg(test)]
mod same_decisions {
    use serde_json::{json, Value};

    use super::*;
    use crate::tokens::SigningKey;

    #[test]
    fn the_parsed_key_path_accepts_and_refuses_what_jsonwebtoken_does() {
        let key = SigningKey::generate_rsa().expect("key");
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).expect("jwk");
        let verifier =
            Verifier::new("https://up.example".into(), "client".into(), &[Algorithm::RS256], 60).expect("verifier");
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let variants: Vec<(&str, Vec<Value>)> = vec![
            (
                "exp",
                vec![
                    json!(null),
                    json!("soon"),
                    json!(-5),
                    json!(now - 30),
                    json!(now - 120),
                    json!(now + 300),
                    json!((now + 300) as f64 + 0.4),
                    json!(1e30),
                    json!([now + 300]),
                ],
            ),
            (
                "nbf",
                vec![
                    json!(null),
                    json!("x"),
                    json!(now + 30),
                    json!(now + 120),
                    json!(now - 10),
                    json!(now as f64 + 200.5),
                ],
            ),
            (
                "iss",
                vec![
                    json!(null),
                    json!(7),
                    json!("https://evil.example"),
                    json!(["https://up.example"]),
                    json!(["https://evil.example", "https://up.example"]),
                    json!(["https://evil.example"]),
                    json!([]),
                    json!([1]),
                ],
            ),
            (
                "aud",
                vec![
                    json!(null),
                    json!(7),
                    json!("other"),
                    json!(["client"]),
                    json!(["other", "client"]),
                    json!(["other"]),
                    json!([]),
                    json!({"a": 1}),
                ],
            ),
            ("sub", vec![json!(null), json!(7), json!(""), json!("s")]),
            (
                "iat",
                vec![
                    json!(null),
                    json!("x"),
                    json!(1.5),
                    json!(now + 30),
                    json!(now + 120),
                    json!(now - 1000),
                    json!(-1),
                ],
            ),
        ];
        let base = json!({"iss": "https://up.example", "aud": "client", "sub": "s", "iat": now, "exp": now + 300});
        let mut cases = vec![base.clone()];
        for (name, values) in &variants {
            let mut absent = base.clone();
            absent.as_object_mut().expect("object").remove(*name);
            cases.push(absent);
            for value in values {
                let mut changed = base.clone();
                changed[*name] = value.clone();
                cases.push(changed);
            }
        }
        let mut accepted = 0;
        for claims in &cases {
            let jwt = key.sign_jwt(claims).expect("sign");
            for (required, check_issuer) in
                [(&["exp", "iss", "aud", "sub", "iat"][..], true), (&["exp", "iss"][..], false)]
            {
                let parsed = verifier.verify_claims(&jwt, std::slice::from_ref(&jwk), required, check_issuer);
                let reference = verifier.verify_with_jsonwebtoken(&jwt, &jwk, Algorithm::RS256, required, check_issuer);
                assert_eq!(parsed.is_ok(), reference.is_ok(), "{claims} {required:?}: {parsed:?} vs {reference:?}");
                accepted += usize::from(parsed.is_ok());
            }
        }
        assert!(accepted > 10, "the cases include accepted tokens");
        assert!(verifier.parsed.read().expect("cache").len() == 1, "the key was parsed once");
        // A signature made by another key, and a changed claim, are refused on the parsed path.
        let other = SigningKey::generate_rsa().expect("key").with_kid(key.kid()).expect("kid");
        let forged = other.sign_jwt(&base).expect("sign");
        assert!(verifier.verify(&forged, std::slice::from_ref(&jwk), None).is_err());
        let jwt = key.sign_jwt(&base).expect("sign");
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        let mut changed = base.clone();
        changed["sub"] = json!("admin");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&changed).expect("json"));
        assert!(verifier.verify(&parts.join("."), std::slice::from_ref(&jwk), None).is_err());
        assert!(verifier.verify(&jwt, std::slice::from_ref(&jwk), None).is_ok());
    }
}

#[cfg(test)]
mod eddsa {
    use base64::Engine;
    use serde_json::json;

    use super::*;

    /// An Ed25519 key as a JWK, and a token signed with it.
    fn signed(claims: &serde_json::Value) -> (Vec<Jwk>, String) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwk = serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed"})).expect("jwk");
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("ed".into());
        let jwt = jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()))
            .expect("sign");
        (vec![jwk], jwt)
    }

    #[test]
    fn eddsa_tokens_verify_when_allowed_and_only_then() {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"iss": "https://up.example", "aud": "client", "sub": "conn_1;a@b.c", "iat": now, "exp": now + 300, "nonce": "n"});
        let (keys, jwt) = signed(&claims);
        let allowing = Verifier::new("https://up.example".into(), "client".into(), &[Algorithm::EdDSA], 60).expect("v");
        assert_eq!(allowing.verify(&jwt, &keys, Some("n")).expect("verifies").sub, "conn_1;a@b.c");
        let (other_keys, _) = signed(&claims);
        assert!(allowing.verify(&jwt, &other_keys, Some("n")).is_err(), "another key's signature is refused");
        let refusing = Verifier::new("https://up.example".into(), "client".into(), &[Algorithm::ES256], 60).expect("v");
        assert!(refusing.verify(&jwt, &keys, Some("n")).is_err(), "EdDSA is refused unless allowed");
    }
}

/// IdP-initiated login tokens as Scalekit's docs show them (no `aud`, no `jti`), checked as its
/// SDKs check them, and `iss` held to the upstream or `upstream.idp_initiated_issuers`.
#[cfg(test)]
mod initiation {
    use serde_json::json;

    use super::*;
    use crate::tokens::SigningKey;

    fn token(key: &SigningKey, change: serde_json::Value) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "organization_id": "org_1", "connection_id": "conn_1", "login_hint": "a@b.test",
            "iss": "https://up.example", "iat": now, "nbf": now, "exp": now + 300,
        });
        for (name, value) in change.as_object().expect("object") {
            match value {
                serde_json::Value::Null => claims.as_object_mut().expect("object").remove(name),
                value => claims.as_object_mut().expect("object").insert(name.clone(), value.clone()),
            };
        }
        key.sign_jwt(&claims).expect("sign")
    }

    #[test]
    fn only_the_upstream_and_the_listed_issuers_start_a_login() {
        let key = SigningKey::generate_rsa().expect("key");
        let keys: Vec<Jwk> = vec![serde_json::from_value(key.public_jwk().clone()).expect("jwk")];
        let verifier = Verifier::new("https://up.example".into(), "client".into(), &[Algorithm::RS256], 60)
            .expect("verifier")
            .with_initiation_issuers(vec!["https://sso.example.com".into()]);
        let verify = |change| verifier.verify_login_initiation(&token(&key, change), &keys);
        let claims = verify(json!({})).expect("the upstream's own");
        assert_eq!((claims.connection_id.as_deref(), claims.login_hint.as_deref()), (Some("conn_1"), Some("a@b.test")));
        assert!(verify(json!({"iss": "https://sso.example.com"})).is_ok(), "a listed issuer");
        assert!(verify(json!({"iss": "https://sso.example.com/"})).is_ok(), "with a trailing slash");
        let refused = verify(json!({"iss": "https://evil.example"})).expect_err("another issuer");
        assert!(refused.to_string().contains("\"https://evil.example\""), "the received iss is named: {refused}");
        assert!(verify(json!({"iss": null})).is_err(), "no iss");
        assert!(verify(json!({"exp": null})).is_err(), "no exp");
        let now = jsonwebtoken::get_current_timestamp();
        assert!(verify(json!({"exp": now - 120, "iat": now - 420, "nbf": now - 420})).is_err(), "expired");
        assert!(verify(json!({"nbf": now + 600})).is_err(), "not yet valid");
        assert!(verify(json!({"aud": "someone-else"})).is_err(), "an aud, when present, is this client");
        assert!(verify(json!({"aud": "client"})).is_ok());
        let other = SigningKey::generate_rsa().expect("key");
        assert!(verifier.verify_login_initiation(&token(&other, json!({})), &keys).is_err(), "another key");
    }
}
