//! The signing keys every instance shares: the configured keys (an RSA key, and optionally a
//! P-256 key), plus keys rotated in through the admin API, kept in the store sealed with a
//! key-encryption key. Each key type rotates on its own. A new key signs at once on every
//! instance (within the refresh interval); a retired key stays in the JWKS until the tokens it
//! signed have expired.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{KeyType, Sealer, SigningAlgorithm, SigningKey, TokenError};
use crate::store::{AnyStore, Store, StoreError};

const RING_KEY: &str = "signing-keys";
/// How long an instance trusts its copy of the ring before reading the store again.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(
        "key rotation through the API needs signing.key_encryption_key (rotated keys are kept in the store, sealed)"
    )]
    NoEncryptionKey,
    #[error("the key ring changed meanwhile; try again")]
    Conflict,
    #[error("a stored key could not be opened: {0}")]
    Unseal(String),
    #[error("no {0} signing key is configured (signing.ec_key_file or signing.ec_key_pem, or rotate one in)")]
    NoKey(&'static str),
}

/// One rotated key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// Rings written before EC keys existed hold RSA keys only.
    #[serde(default)]
    kty: KeyType,
    /// PKCS#8 PEM sealed with AES-256-GCM: base64url(nonce || ciphertext || tag).
    sealed_pem: String,
    created_at: u64,
    #[serde(default)]
    retired_at: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
    /// When the configured RSA key was retired by the first RSA rotation.
    #[serde(default)]
    configured_retired_at: Option<u64>,
    /// When the configured EC key was retired by the first EC rotation.
    #[serde(default)]
    configured_ec_retired_at: Option<u64>,
}

impl StoredRing {
    fn configured_retired_at(&mut self, kty: KeyType) -> &mut Option<u64> {
        match kty {
            KeyType::Rsa => &mut self.configured_retired_at,
            KeyType::Ec => &mut self.configured_ec_retired_at,
        }
    }
}

/// A key with its life, as the admin API and status show it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub kty: KeyType,
    /// The algorithms it signs: RS256 and PS256 for RSA, ES256 for EC.
    pub algorithms: Vec<&'static str>,
    pub active: bool,
    /// `config` or `rotated`.
    pub source: &'static str,
    pub created_at: Option<u64>,
    pub retired_at: Option<u64>,
}

struct Loaded {
    at: Instant,
    raw: Option<Vec<u8>>,
    active_rsa: Arc<SigningKey>,
    active_ec: Option<Arc<SigningKey>>,
    /// Keys published in the JWKS, with their retirement time.
    published: Vec<(Arc<SigningKey>, Option<u64>)>,
    infos: Vec<KeyInfo>,
}

/// The key ring of one instance.
pub struct KeyRing {
    configured: Arc<SigningKey>,
    configured_ec: Option<Arc<SigningKey>>,
    store: AnyStore,
    seal: Option<Sealer>,
    /// A retired key stays published this long after retirement (the ID token lifetime).
    overlap: u64,
    loaded: RwLock<Arc<Loaded>>,
}

impl KeyRing {
    /// `configured`: the RSA key of the configuration; `configured_ec`: its P-256 key, if any.
    /// `encryption_key`: any secret string; its SHA-256 is the AES-256-GCM key.
    pub fn new(
        configured: SigningKey,
        configured_ec: Option<SigningKey>,
        store: AnyStore,
        encryption_key: Option<&str>,
        overlap: Duration,
    ) -> Result<KeyRing, RingError> {
        if configured.key_type() != KeyType::Rsa {
            return Err(
                TokenError::Key("the main signing key must be RSA (RS256 is every client's default)".into()).into()
            );
        }
        if configured_ec.as_ref().is_some_and(|k| k.key_type() != KeyType::Ec) {
            return Err(TokenError::Key("the EC signing key must be an EC P-256 key".into()).into());
        }
        let seal = encryption_key.and_then(|secret| Sealer::from_secret(secret).ok());
        let configured = Arc::new(configured);
        let configured_ec = configured_ec.map(Arc::new);
        let mut published = vec![(configured.clone(), None)];
        let mut infos = vec![info(&configured, true, "config", None, None)];
        if let Some(ec) = &configured_ec {
            published.push((ec.clone(), None));
            infos.push(info(ec, true, "config", None, None));
        }
        let loaded = Loaded {
            // Stale from the start, so the first use reads the store.
            at: Instant::now() - REFRESH_EVERY * 2,
            raw: None,
            active_rsa: configured.clone(),
            active_ec: configured_ec.clone(),
            published,
            infos,
        };
        Ok(KeyRing {
            configured,
            configured_ec,
            store,
            seal,
            overlap: overlap.as_secs(),
            loaded: RwLock::new(Arc::new(loaded)),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The ring, re-read from the store when the local copy is older than the refresh interval.
    async fn fresh(&self) -> Result<Arc<Loaded>, RingError> {
        let current = self.current();
        if current.at.elapsed() < REFRESH_EVERY {
            return Ok(current);
        }
        self.reload().await
    }

    async fn reload(&self) -> Result<Arc<Loaded>, RingError> {
        let raw = self.store.get(RING_KEY).await?;
        let current = self.current();
        let loaded = if raw == current.raw {
            Arc::new(Loaded {
                at: Instant::now(),
                raw: current.raw.clone(),
                active_rsa: current.active_rsa.clone(),
                active_ec: current.active_ec.clone(),
                published: current.published.clone(),
                infos: current.infos.clone(),
            })
        } else {
            Arc::new(self.open(raw)?)
        };
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded.clone();
        Ok(loaded)
    }

    fn open(&self, raw: Option<Vec<u8>>) -> Result<Loaded, RingError> {
        let ring: StoredRing = match &raw {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| RingError::Unseal(e.to_string()))?,
            None => StoredRing::default(),
        };
        let now = crate::clock::now_secs();
        let live = |retired: Option<u64>| retired.is_none_or(|at| at + self.overlap > now);
        let mut published = Vec::new();
        let mut infos = Vec::new();
        let mut active_rsa = self.configured.clone();
        let mut active_ec = self.configured_ec.clone();
        for (kty, configured, configured_retired_at) in [
            (KeyType::Rsa, Some(&self.configured), ring.configured_retired_at),
            (KeyType::Ec, self.configured_ec.as_ref(), ring.configured_ec_retired_at),
        ] {
            let family = || ring.keys.iter().filter(move |k| k.kty == kty);
            let newest = family().filter(|k| k.retired_at.is_none()).max_by_key(|k| k.created_at).map(|k| &k.kid);
            if let Some(configured) = configured {
                if live(configured_retired_at) {
                    published.push((configured.clone(), configured_retired_at));
                }
                infos.push(info(configured, newest.is_none(), "config", None, configured_retired_at));
            }
            for stored in family() {
                let is_active = newest == Some(&stored.kid);
                if !live(stored.retired_at) && !is_active {
                    continue;
                }
                let key = Arc::new(self.unseal(&stored.sealed_pem)?);
                if key.key_type() != kty {
                    return Err(RingError::Unseal(format!("stored key {} is not of type {}", stored.kid, kty.name())));
                }
                if is_active {
                    match kty {
                        KeyType::Rsa => active_rsa = key.clone(),
                        KeyType::Ec => active_ec = Some(key.clone()),
                    }
                }
                infos.push(info(&key, is_active, "rotated", Some(stored.created_at), stored.retired_at));
                published.push((key, stored.retired_at));
            }
        }
        Ok(Loaded { at: Instant::now(), raw, active_rsa, active_ec, published, infos })
    }

    fn unseal(&self, sealed: &str) -> Result<SigningKey, RingError> {
        let seal = self.seal.as_ref().ok_or(RingError::NoEncryptionKey)?;
        let plain = seal
            .open(RING_KEY, sealed)
            .ok_or_else(|| RingError::Unseal("wrong key_encryption_key, or the ring was tampered with".into()))?;
        let pem = std::str::from_utf8(&plain).map_err(|e| RingError::Unseal(e.to_string()))?;
        Ok(SigningKey::from_pem(pem)?)
    }

    fn seal(&self, pem: &str) -> Result<String, RingError> {
        let seal = self.seal.as_ref().ok_or(RingError::NoEncryptionKey)?;
        Ok(seal.seal(RING_KEY, pem.as_bytes())?)
    }

    /// The key that signs `alg` now. Store trouble is not fatal: the last known ring keeps
    /// signing.
    pub async fn active(&self, alg: SigningAlgorithm) -> Result<Arc<SigningKey>, RingError> {
        let loaded = match self.fresh().await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(error = %error, "key ring refresh failed; signing with the last known key");
                self.current()
            }
        };
        match alg.key_type() {
            KeyType::Rsa => Ok(loaded.active_rsa.clone()),
            KeyType::Ec => loaded.active_ec.clone().ok_or(RingError::NoKey("EC")),
        }
    }

    /// The names of the algorithms some key can sign now (discovery, client validation).
    pub async fn algorithms(&self) -> Vec<SigningAlgorithm> {
        let loaded = self.fresh().await.unwrap_or_else(|_| self.current());
        let has_ec = loaded.active_ec.is_some();
        SigningAlgorithm::ALL.into_iter().filter(|alg| alg.key_type() == KeyType::Rsa || has_ec).collect()
    }

    /// The JWKS document: every key whose tokens may still be live.
    pub async fn jwks(&self) -> Value {
        let loaded = match self.fresh().await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(error = %error, "key ring refresh failed; publishing the last known keys");
                self.current()
            }
        };
        json!({ "keys": loaded.published.iter().map(|(k, _)| k.public_jwk().clone()).collect::<Vec<_>>() })
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, RingError> {
        Ok(self.reload().await?.infos.clone())
    }

    /// A new key of `kty` signs from now on, on every instance; the previous one of that type
    /// is retired and stays published for the overlap. Keys of the other type are untouched.
    pub async fn rotate(&self, kty: KeyType) -> Result<KeyInfo, RingError> {
        if self.seal.is_none() {
            return Err(RingError::NoEncryptionKey);
        }
        let raw = self.store.get(RING_KEY).await?;
        let mut ring: StoredRing = match &raw {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| RingError::Unseal(e.to_string()))?,
            None => StoredRing::default(),
        };
        let now = crate::clock::now_secs();
        for key in ring.keys.iter_mut().filter(|k| k.kty == kty && k.retired_at.is_none()) {
            key.retired_at = Some(now);
        }
        ring.configured_retired_at(kty).get_or_insert(now);
        // Keys past their overlap are dropped for good.
        ring.keys.retain(|k| k.retired_at.is_none_or(|at| at + self.overlap > now));
        let pem = super::keys::generate_pem(kty)?;
        let key = SigningKey::from_pem(&pem)?;
        ring.keys.push(StoredKey {
            kid: key.kid().to_owned(),
            kty,
            sealed_pem: self.seal(&pem)?,
            created_at: now,
            retired_at: None,
        });
        let bytes = serde_json::to_vec(&ring).map_err(|e| RingError::Unseal(e.to_string()))?;
        if !self.store.replace(RING_KEY, raw.as_deref(), &bytes).await? {
            return Err(RingError::Conflict);
        }
        self.reload().await?;
        Ok(info(&key, true, "rotated", Some(now), None))
    }
}

fn info(
    key: &SigningKey,
    active: bool,
    source: &'static str,
    created_at: Option<u64>,
    retired_at: Option<u64>,
) -> KeyInfo {
    let kty = key.key_type();
    let algorithms = SigningAlgorithm::ALL.into_iter().filter(|a| a.key_type() == kty).map(|a| a.name()).collect();
    KeyInfo { kid: key.kid().to_owned(), kty, algorithms, active, source, created_at, retired_at }
}
