//! The `[clients.firebase]` table, checked once when the adapter is built.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use ssobridge_adapter_core::AdapterError;

use crate::credentials::GOOGLE_TOKEN_URI;
use crate::token::SigningKey;

const DEFAULT_API_BASE: &str = "https://identitytoolkit.googleapis.com";
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
const MAX_TIMEOUT_SECONDS: u64 = 120;

/// How a client with `adapter = "firebase"` reaches its Firebase project.
///
/// Production needs the service account's key: `private_key` (PEM) or `service_account_file`
/// (the JSON key file Google issues), exactly one. With `emulator_host` the adapter talks to
/// the Firebase Auth emulator instead (plain HTTP, `Authorization: Bearer owner`) and a key is
/// optional: without one, custom tokens are unsigned, which only the emulator accepts.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirebaseSettings {
    /// The Firebase (Google Cloud) project id, e.g. `acme-prod`.
    pub project_id: String,
    /// The service account that signs custom tokens (`iss` and `sub`) and calls the admin API.
    pub service_account_email: String,
    /// The service account's RSA private key, PEM (PKCS#8 as Google issues it, or PKCS#1).
    /// Literal `\n` sequences, as environment variables often carry them, are accepted.
    #[serde(default)]
    pub private_key: Option<String>,
    /// A Google service account key file (JSON with `client_email` and `private_key`); its
    /// `client_email` must be `service_account_email`.
    #[serde(default)]
    pub service_account_file: Option<PathBuf>,
    /// An Identity Platform tenant: users live in it and custom tokens carry `tenant_id`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// `host:port` of a Firebase Auth emulator (as in `FIREBASE_AUTH_EMULATOR_HOST`). For
    /// development and tests only: the emulator verifies nothing.
    #[serde(default)]
    pub emulator_host: Option<String>,
    /// The budget of one login's calls to Google, retries included (default 10, at most 120).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// The OAuth token endpoint (default: the key file's `token_uri`, else
    /// `https://oauth2.googleapis.com/token`). `https`, or `http` to a loopback host.
    #[serde(default)]
    pub token_uri: Option<String>,
    /// The Identity Toolkit API root (default `https://identitytoolkit.googleapis.com`), for a
    /// private endpoint. `https`, or `http` to a loopback host.
    #[serde(default)]
    pub api_base: Option<String>,
}

impl fmt::Debug for FirebaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FirebaseSettings")
            .field("project_id", &self.project_id)
            .field("service_account_email", &self.service_account_email)
            .field("private_key", &self.private_key.as_ref().map(|_| "[redacted]"))
            .field("service_account_file", &self.service_account_file)
            .field("tenant_id", &self.tenant_id)
            .field("emulator_host", &self.emulator_host)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("token_uri", &self.token_uri)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// A Google service account key file; only the fields the adapter uses.
#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

/// Where the admin API is and how the adapter authenticates to it.
#[derive(Debug)]
pub(crate) enum Endpoint {
    Emulator { host: String },
    Production { api_base: Url, token_uri: Url },
}

/// Settings after every check.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) project_id: String,
    pub(crate) tenant_id: Option<String>,
    pub(crate) service_account_email: String,
    pub(crate) key: Option<Arc<SigningKey>>,
    pub(crate) endpoint: Endpoint,
    pub(crate) timeout: Duration,
}

impl Resolved {
    /// `…/v1/projects/{project}[/tenants/{tenant}]` without a trailing slash.
    pub(crate) fn accounts_base(&self) -> String {
        let root = match &self.endpoint {
            // The emulator serves the API under its production host name as a path.
            Endpoint::Emulator { host } => format!("http://{host}/identitytoolkit.googleapis.com"),
            Endpoint::Production { api_base, .. } => api_base.as_str().trim_end_matches('/').to_owned(),
        };
        match &self.tenant_id {
            Some(tenant) => format!("{root}/v1/projects/{}/tenants/{tenant}", self.project_id),
            None => format!("{root}/v1/projects/{}", self.project_id),
        }
    }
}

fn misconfigured(detail: impl Into<String>) -> AdapterError {
    AdapterError::Misconfigured { detail: format!("firebase: {}", detail.into()) }
}

/// Project ids are lowercase letters, digits and hyphens, with a `domain:` prefix for old
/// Google Workspace projects; the id goes into URL paths, so nothing else gets through.
fn valid_project_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c))
}

fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An absolute `https` URL, or `http` to a loopback host (as everywhere in ssobridge).
fn endpoint_url(key: &str, value: &str) -> Result<Url, AdapterError> {
    let url = Url::parse(value).map_err(|e| misconfigured(format!("{key} is not a URL ({e})")))?;
    let allowed = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !allowed || url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
        return Err(misconfigured(format!("{key} must be an https URL (http only to a loopback host), got {value}")));
    }
    Ok(url)
}

fn emulator_host(value: &str) -> Result<String, AdapterError> {
    let bad = || misconfigured(format!("emulator_host must be host:port, like 127.0.0.1:9099, got {value:?}"));
    if value.is_empty() || value.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let url = Url::parse(&format!("http://{value}/")).map_err(|_| bad())?;
    if url.host_str().is_none() || url.port().is_none() {
        return Err(bad());
    }
    Ok(value.to_owned())
}

impl FirebaseSettings {
    pub(crate) fn resolve(self) -> Result<Resolved, AdapterError> {
        if !valid_project_id(&self.project_id) {
            return Err(misconfigured(format!("project_id {:?} is not a Firebase project id", self.project_id)));
        }
        let email = self.service_account_email.trim().to_owned();
        if email.is_empty() || !email.contains('@') || email.contains(char::is_whitespace) {
            return Err(misconfigured("service_account_email must be the service account's email address"));
        }
        if let Some(tenant) = &self.tenant_id {
            if !valid_tenant_id(tenant) {
                return Err(misconfigured(format!("tenant_id {tenant:?} is not an Identity Platform tenant id")));
            }
        }
        let timeout = match self.timeout_seconds {
            None => DEFAULT_TIMEOUT_SECONDS,
            Some(s) if (1..=MAX_TIMEOUT_SECONDS).contains(&s) => s,
            Some(s) => {
                return Err(misconfigured(format!("timeout_seconds must be 1 to {MAX_TIMEOUT_SECONDS}, got {s}")))
            }
        };

        let (pem, key_id, file_token_uri) = match (&self.private_key, &self.service_account_file) {
            (Some(_), Some(_)) => return Err(misconfigured("set private_key or service_account_file, not both")),
            (Some(pem), None) => (Some(pem.clone()), None, None),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| misconfigured(format!("reading service_account_file {}: {e}", path.display())))?;
                // Only the position of a parse error: serde_json's message may quote content.
                let file: KeyFile = serde_json::from_str(&text).map_err(|e| {
                    misconfigured(format!(
                        "service_account_file {} is not a service account key file (line {}, column {})",
                        path.display(),
                        e.line(),
                        e.column()
                    ))
                })?;
                if file.kind.as_deref().is_some_and(|k| k != "service_account") {
                    return Err(misconfigured("service_account_file is not a service account key"));
                }
                if !file.client_email.eq_ignore_ascii_case(&email) {
                    return Err(misconfigured(format!(
                        "service_account_file belongs to {}, not to service_account_email {email}",
                        file.client_email
                    )));
                }
                (Some(file.private_key), file.private_key_id, file.token_uri)
            }
            (None, None) => (None, None, None),
        };
        let key = match pem {
            Some(pem) => Some(Arc::new(
                SigningKey::from_pem(&pem, key_id).map_err(|e| misconfigured(format!("service account key: {e}")))?,
            )),
            None => None,
        };

        let endpoint = match &self.emulator_host {
            Some(host) => {
                if self.api_base.is_some() || self.token_uri.is_some() {
                    return Err(misconfigured("emulator_host excludes api_base and token_uri"));
                }
                Endpoint::Emulator { host: emulator_host(host)? }
            }
            None => {
                if key.is_none() {
                    return Err(misconfigured(
                        "production needs the service account key: set private_key or service_account_file",
                    ));
                }
                let api_base = endpoint_url("api_base", self.api_base.as_deref().unwrap_or(DEFAULT_API_BASE))?;
                let token_uri = self.token_uri.as_deref().or(file_token_uri.as_deref()).unwrap_or(GOOGLE_TOKEN_URI);
                Endpoint::Production { api_base, token_uri: endpoint_url("token_uri", token_uri)? }
            }
        };

        Ok(Resolved {
            project_id: self.project_id,
            tenant_id: self.tenant_id,
            service_account_email: email,
            key,
            endpoint,
            timeout: Duration::from_secs(timeout),
        })
    }
}
