//! `[admin]`: the operations listener and the admin API's tokens.

use serde::{Deserialize, Serialize};

use super::Problem;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the admin API listens: an address (default `127.0.0.1:9090`, not on the internet),
    /// or `public` to serve it under `/admin` on the public listener.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// SHA-256 (hex) of bearer tokens that may read.
    #[serde(default)]
    pub read_tokens_sha256: Vec<String>,
    /// SHA-256 (hex) of bearer tokens that may read and write.
    #[serde(default)]
    pub write_tokens_sha256: Vec<String>,
    /// `/readyz` and `/metrics` are on the admin listener; this serves them on the public
    /// listener as well (where anyone may call them). `/healthz` is on both always.
    #[serde(default)]
    pub ops_on_public_listener: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            read_tokens_sha256: Vec::new(),
            write_tokens_sha256: Vec::new(),
            ops_on_public_listener: false,
        }
    }
}

impl AdminConfig {
    pub fn enabled(&self) -> bool {
        !self.read_tokens_sha256.is_empty() || !self.write_tokens_sha256.is_empty()
    }

    pub(super) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.listen != "public" && self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(Problem::new("admin.listen", "must be an address such as 127.0.0.1:9090, or \"public\""));
        }
        for (key, hashes) in [
            ("admin.read_tokens_sha256", &self.read_tokens_sha256),
            ("admin.write_tokens_sha256", &self.write_tokens_sha256),
        ] {
            let hex = |h: &String| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hashes.iter().all(hex) {
                problems.push(Problem::new(
                    key,
                    "each entry must be a lower-case hex SHA-256 (ssobridge admin-token prints one)",
                ));
            }
        }
        problems
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:9090".to_owned()
}
