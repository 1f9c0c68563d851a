//! `[signing]`: the broker's own signing keys.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Problem;
use crate::secret::Secret;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// RSA private key, PKCS#1 or PKCS#8 PEM: signs RS256 (every client's default) and PS256.
    pub key_file: Option<PathBuf>,
    /// The same PEM inline, for keys passed through the environment (`SSOBRIDGE_SIGNING__KEY_PEM`).
    #[serde(skip_serializing)]
    pub key_pem: Option<Secret>,
    /// EC P-256 private key, PKCS#8 or SEC1 PEM: signs ES256, for clients that ask for it.
    pub ec_key_file: Option<PathBuf>,
    /// The same PEM inline (`SSOBRIDGE_SIGNING__EC_KEY_PEM`).
    #[serde(skip_serializing)]
    pub ec_key_pem: Option<Secret>,
    /// Seals keys rotated through the admin API, which are kept in the store. Without it,
    /// rotation is done by changing key_file.
    #[serde(skip_serializing)]
    pub key_encryption_key: Option<Secret>,
}

impl SigningConfig {
    pub fn has_ec_key(&self) -> bool {
        self.ec_key_file.is_some() || self.ec_key_pem.is_some()
    }

    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.key_file.is_some() && self.key_pem.is_some() {
            problems.push(Problem::new("signing.key_file", "set key_file or key_pem, not both"));
        }
        if self.ec_key_file.is_some() && self.ec_key_pem.is_some() {
            problems.push(Problem::new("signing.ec_key_file", "set ec_key_file or ec_key_pem, not both"));
        }
        problems
    }
}
