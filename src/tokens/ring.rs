//! The signing keys every instance shares: the configured key, plus keys rotated in through
//! the admin API, kept in the store sealed with a key-encryption key. A new key signs at once
//! on every instance (within the refresh interval); a retired key stays in the JWKS until the
//! tokens it signed have expired.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Sealer, SigningKey, TokenError};
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
}

/// One rotated key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// PKCS#8 PEM sealed with AES-256-GCM: base64url(nonce || ciphertext || tag).
    sealed_pem: String,
    created_at: u64,
    #[serde(default)]
    retired_at: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredRing {
    keys: Vec<StoredKey>,
    /// When the configured key was retired by the first rotation.
    #[serde(default)]
    configured_retired_at: Option<u64>,
}

/// A key with its life, as the admin API and status show it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: &'static str,
    pub active: bool,
    /// `config` or `rotated`.
    pub source: &'static str,
    pub created_at: Option<u64>,
    pub retired_at: Option<u64>,
}

struct Loaded {
    at: Instant,
    raw: Option<Vec<u8>>,
    active: Arc<SigningKey>,
    /// Keys published in the JWKS, with their retirement time.
    published: Vec<(Arc<SigningKey>, Option<u64>)>,
    infos: Vec<KeyInfo>,
}

/// The key ring of one instance.
pub struct KeyRing {
    configured: Arc<SigningKey>,
    store: AnyStore,
    seal: Option<Sealer>,
    /// A retired key stays published this long after retirement (the ID token lifetime).
    overlap: u64,
    loaded: RwLock<Arc<Loaded>>,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl KeyRing {
    /// `encryption_key`: any secret string; its SHA-256 is the AES-256-GCM key.
    pub fn new(configured: SigningKey, store: AnyStore, encryption_key: Option<&str>, overlap: Duration) -> KeyRing {
        let seal = encryption_key.and_then(|secret| Sealer::from_secret(secret).ok());
        let configured = Arc::new(configured);
        let loaded = Loaded {
            // Stale from the start, so the first use reads the store.
            at: Instant::now() - REFRESH_EVERY * 2,
            raw: None,
            active: configured.clone(),
            published: vec![(configured.clone(), None)],
            infos: vec![info(&configured, true, "config", None, None)],
        };
        KeyRing { configured, store, seal, overlap: overlap.as_secs(), loaded: RwLock::new(Arc::new(loaded)) }
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
                active: current.active.clone(),
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
        let now = now();
        let live = |retired: Option<u64>| retired.is_none_or(|at| at + self.overlap > now);
        let mut published = Vec::new();
        let mut infos = Vec::new();
        let newest =
            ring.keys.iter().filter(|k| k.retired_at.is_none()).max_by_key(|k| k.created_at).map(|k| k.kid.clone());
        let mut active = self.configured.clone();
        if live(ring.configured_retired_at) {
            published.push((self.configured.clone(), ring.configured_retired_at));
        }
        infos.push(info(&self.configured, newest.is_none(), "config", None, ring.configured_retired_at));
        for stored in &ring.keys {
            if !live(stored.retired_at) && newest.as_deref() != Some(stored.kid.as_str()) {
                continue;
            }
            let key = Arc::new(self.unseal(&stored.sealed_pem)?);
            let is_active = newest.as_deref() == Some(stored.kid.as_str());
            if is_active {
                active = key.clone();
            }
            infos.push(info(&key, is_active, "rotated", Some(stored.created_at), stored.retired_at));
            published.push((key, stored.retired_at));
        }
        Ok(Loaded { at: Instant::now(), raw, active, published, infos })
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

    /// The key that signs now. Store trouble is not fatal: the last known ring keeps signing.
    pub async fn active(&self) -> Arc<SigningKey> {
        match self.fresh().await {
            Ok(loaded) => loaded.active.clone(),
            Err(error) => {
                tracing::warn!(error = %error, "key ring refresh failed; signing with the last known key");
                self.current().active.clone()
            }
        }
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

    /// A new RSA key signs from now on, on every instance; the previous one is retired and
    /// stays published for the overlap.
    pub async fn rotate(&self) -> Result<KeyInfo, RingError> {
        if self.seal.is_none() {
            return Err(RingError::NoEncryptionKey);
        }
        let raw = self.store.get(RING_KEY).await?;
        let mut ring: StoredRing = match &raw {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| RingError::Unseal(e.to_string()))?,
            None => StoredRing::default(),
        };
        let now = now();
        for key in ring.keys.iter_mut().filter(|k| k.retired_at.is_none()) {
            key.retired_at = Some(now);
        }
        ring.configured_retired_at.get_or_insert(now);
        // Keys past their overlap are dropped for good.
        ring.keys.retain(|k| k.retired_at.is_none_or(|at| at + self.overlap > now));
        let pem = super::generate_rsa_pem()?;
        let key = SigningKey::from_pem(&pem)?;
        ring.keys.push(StoredKey {
            kid: key.kid().to_owned(),
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
    KeyInfo { kid: key.kid().to_owned(), alg: key.algorithm().name(), active, source, created_at, retired_at }
}
