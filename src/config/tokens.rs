//! `[tokens]`: lifetimes, and the salt of pairwise subjects.

use serde::{Deserialize, Serialize};

use super::Problem;
use crate::secret::Secret;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    #[serde(default = "default_token_ttl")]
    pub id_token_ttl_seconds: u64,
    #[serde(default = "default_token_ttl")]
    pub access_token_ttl_seconds: u64,
    #[serde(default = "default_code_ttl")]
    pub code_ttl_seconds: u64,
    #[serde(default = "default_flow_ttl")]
    pub flow_ttl_seconds: u64,
    /// Salt of pairwise subjects. Changing it changes every pairwise `sub`: set it once.
    #[serde(default, skip_serializing)]
    pub pairwise_salt: Option<Secret>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            id_token_ttl_seconds: default_token_ttl(),
            access_token_ttl_seconds: default_token_ttl(),
            code_ttl_seconds: default_code_ttl(),
            flow_ttl_seconds: default_flow_ttl(),
            pairwise_salt: None,
        }
    }
}

fn default_token_ttl() -> u64 {
    3600
}
fn default_code_ttl() -> u64 {
    60
}
fn default_flow_ttl() -> u64 {
    600
}

impl TokenConfig {
    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("tokens.id_token_ttl_seconds", self.id_token_ttl_seconds),
            ("tokens.access_token_ttl_seconds", self.access_token_ttl_seconds),
            ("tokens.code_ttl_seconds", self.code_ttl_seconds),
            ("tokens.flow_ttl_seconds", self.flow_ttl_seconds),
        ] {
            if value == 0 {
                problems.push(Problem::new(key, "must be at least 1"));
            }
        }
        if self.code_ttl_seconds > 600 {
            // RFC 6749 §4.1.2: a maximum lifetime of 10 minutes is recommended.
            problems.push(Problem::new("tokens.code_ttl_seconds", "must be at most 600"));
        }
        problems
    }
}
