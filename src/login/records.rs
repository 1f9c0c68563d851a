//! What a login keeps in the store while the user is away, and how long. Each record is written
//! by one step and taken (once) by the next; their keys are coined in `store::keys`.
//!
//! | record | key | written by | taken by | lives |
//! |---|---|---|---|---|
//! | [`AuthorizationRequest`] | `hrd:<id>` | the home-realm page | the email it posts | [`Lifetimes::flow`] |
//! | [`Flow`] | `flow:<upstream state>` | `begin` | `finish` | [`Lifetimes::flow`] |
//! | [`CodeGrant`] | `code:{tag}<SHA-256(code)>` | `finish` | `redeem` | [`Lifetimes::code`] |
//! | [`AccessGrant`] | `at:{tag}<SHA-256(token)>` | `redeem` (the grant, copied) | read by `userinfo` | [`Lifetimes::access_token`] |
//! | [`Initiation`] | `idp:<id>` | an IdP-initiated hand-off | the client's `/authorize` | [`Lifetimes::initiation`] |
//! | [`super::sessions::Session`] | `session:<sid>`, `sessions:<user>:<slot>` | `finish` | taken at sign-out | [`Lifetimes::session`] |
//!
//! Stored fields have short names and skip what is empty: an outsider can start flows, so
//! every byte counts per pending flow ([`MAX_FLOW_BYTES`]). The long names stay readable as
//! aliases, and records already in the store keep their form.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ErrorCode, LoginError, OidcError};
use crate::config::Config;
use crate::routing::{LoginHint, RoutedBy, Selectors, Target};
use crate::store::keys;
use crate::tokens::sha256_hex;

/// The most a pending flow (or a request waiting at the home-realm page) may keep in the store,
/// whatever the request carried: an outsider's requests cost the broker at most this each.
pub const MAX_FLOW_BYTES: usize = 2048;

/// How long each record lives.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// A flow, and a request waiting at the home-realm page (`tokens.flow_ttl_seconds`).
    pub flow: Duration,
    /// A broker code (`tokens.code_ttl_seconds`).
    pub code: Duration,
    /// An access token (`tokens.access_token_ttl_seconds`).
    pub access_token: Duration,
    /// An IdP-initiated login waiting for the client's `/authorize`.
    pub initiation: Duration,
    /// A broker session and the user's session index: longer than any token of the session
    /// (a code redeemed at its last second, then its access token), and at least a day, since
    /// the relying parties' own sessions, which back-channel logout ends, outlive the tokens.
    pub session: Duration,
}

impl Lifetimes {
    pub fn of(config: &Config) -> Lifetimes {
        let tokens = &config.tokens;
        Lifetimes {
            flow: Duration::from_secs(tokens.flow_ttl_seconds),
            code: Duration::from_secs(tokens.code_ttl_seconds),
            access_token: Duration::from_secs(tokens.access_token_ttl_seconds),
            initiation: Duration::from_secs(300),
            session: Duration::from_secs(
                (tokens.code_ttl_seconds + tokens.access_token_ttl_seconds.max(tokens.id_token_ttl_seconds))
                    .max(24 * 3600),
            ),
        }
    }
}

/// A validated downstream authorization request: kept in the flow, or on its own while the
/// home-realm page waits for the user's email.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    #[serde(rename = "c", alias = "client_id")]
    pub client_id: String,
    #[serde(rename = "r", alias = "redirect_uri")]
    pub redirect_uri: String,
    #[serde(rename = "s", alias = "state", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(rename = "n", alias = "nonce", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(rename = "cc", alias = "code_challenge", default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// The scopes granted: those of the request this provider defines (`openid profile email`).
    #[serde(rename = "sc", alias = "scope")]
    pub scope: String,
    #[serde(rename = "sel", alias = "selectors", default, skip_serializing_if = "Selectors::is_empty")]
    pub selectors: Selectors,
    /// What the client asked about re-authentication (OIDC Core §3.1.2.1), passed upstream.
    #[serde(rename = "ra", alias = "reauthentication", default, skip_serializing_if = "Reauthentication::is_empty")]
    pub reauthentication: Reauthentication,
    /// When the client sent the request (seconds): `prompt=login` asks for a sign-in after it.
    #[serde(rename = "t", alias = "requested_at", default)]
    pub requested_at: u64,
    /// The same, in milliseconds: the login event's `duration_ms` counts from it.
    #[serde(rename = "ms", default)]
    pub requested_at_ms: u64,
    /// Its place in the pending-flow count ([`crate::limiter::PendingFlows`]) while stored.
    #[serde(rename = "pf", default, skip_serializing_if = "Option::is_none")]
    pub pending_ticket: Option<String>,
    /// Where the request came from, as the limits count it; set by the face, never stored.
    #[serde(skip)]
    pub client_ip: String,
}

impl AuthorizationRequest {
    /// An error for this request, to be sent back to the client (the step that returns it
    /// records the attempt's end: [`super::attempt`]).
    pub fn fail(&self, error: OidcError) -> LoginError {
        LoginError::Redirect { redirect_uri: self.redirect_uri.clone(), state: self.state.clone(), error }
    }
}

/// `prompt` (other than `none`), `max_age` and `acr_values`: forwarded to the upstream, and
/// `prompt=login` / `max_age` held against the upstream's `auth_time` at the callback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reauthentication {
    #[serde(rename = "p", alias = "prompt", default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(rename = "m", alias = "max_age", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    #[serde(rename = "a", alias = "acr_values", default, skip_serializing_if = "Option::is_none")]
    pub acr_values: Option<String>,
}

impl Reauthentication {
    pub fn is_empty(&self) -> bool {
        *self == Reauthentication::default()
    }

    /// Whether the user must have signed in again for this request.
    pub fn login_required(&self) -> bool {
        self.prompt.as_deref().is_some_and(|p| p.split(' ').any(|v| v == "login")) || self.max_age == Some(0)
    }

    /// The parameters to pass upstream.
    pub fn upstream_params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        if let Some(prompt) = &self.prompt {
            params.push(("prompt", prompt.clone()));
        }
        if let Some(max_age) = self.max_age {
            params.push(("max_age", max_age.to_string()));
        }
        if let Some(acr_values) = &self.acr_values {
            params.push(("acr_values", acr_values.clone()));
        }
        params
    }
}

/// Everything the callback needs to finish a login: stored under the upstream `state`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    pub request: AuthorizationRequest,
    #[serde(rename = "un", alias = "upstream_nonce")]
    pub upstream_nonce: String,
    #[serde(rename = "uv", alias = "upstream_pkce_verifier")]
    pub upstream_pkce_verifier: String,
    #[serde(rename = "rb", alias = "routed_by")]
    pub routed_by: RoutedBy,
    /// Where the login must end; the callback holds the upstream's answer against it.
    #[serde(rename = "tg", alias = "target", default)]
    pub target: Target,
    /// The user typed their email at the home-realm page: an unknown domain goes back there.
    #[serde(rename = "h", alias = "via_hosted_page", default)]
    pub via_hosted_page: bool,
}

/// The stored form of `value`, refused beyond [`MAX_FLOW_BYTES`].
pub fn bounded_json<T: Serialize>(value: &T) -> Result<Vec<u8>, OidcError> {
    let bytes = serde_json::to_vec(value).map_err(|e| OidcError::new(ErrorCode::ServerError, e.to_string()))?;
    if bytes.len() > MAX_FLOW_BYTES {
        return Err(OidcError::new(
            ErrorCode::InvalidRequest,
            "the request is too large: state, nonce, login_hint and acr_values together are limited",
        ));
    }
    Ok(bytes)
}

/// What a broker code stands for: stored under SHA-256 of the code, taken once at `/token`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: String,
    pub sub: String,
    /// The user claims (no protocol claims), identical in the ID token and at userinfo.
    pub claims: Map<String, Value>,
    pub auth_time: u64,
    /// The upstream's `acr`, passed on as the upstream said it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Fields the adapter adds to the token response (a Firebase custom token), sealed under
    /// the code itself: the store alone cannot read them, the code's redeemer can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_token_fields: Option<String>,
    /// The broker session this login opened ([`super::sessions`]): its `sid` in the ID token,
    /// and what `/userinfo` checks before it answers for the access token.
    #[serde(rename = "ses", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionRef>,
}

/// A session as a code and its access token name it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRef {
    pub sid: String,
    /// SHA-256 of the user's upstream subject ([`super::sessions::user_hash`]).
    #[serde(rename = "uh")]
    pub user: String,
    /// When the session began (Unix milliseconds).
    #[serde(rename = "sat")]
    pub session_at: u64,
}

/// The authenticated data of sealed token fields.
pub const TOKEN_FIELDS_CONTEXT: &str = "token-fields";

/// What an access token stands for, as `/userinfo` reads it. The stored value is the redeemed
/// [`CodeGrant`] itself, copied by the store in the step that takes the code; its other
/// fields are ignored (none is a secret: the sealed token fields need the spent code).
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessGrant {
    pub client_id: String,
    pub sub: String,
    pub claims: Map<String, Value>,
    /// Absent on tokens issued before sessions existed.
    #[serde(rename = "ses", default)]
    pub session: Option<SessionRef>,
}

/// Left under the code's hash once redeemed, so that a replay can revoke what was issued.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RedeemedCode {
    pub access_token_hash: String,
}

/// The connection an IdP-initiated login asked for, waiting for the client's `/authorize`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Initiation {
    pub client_id: String,
    pub organization_id: Option<String>,
    pub connection_id: Option<String>,
    /// The user the initiation named: the hand-off's `/authorize` names them too, or none.
    #[serde(default)]
    pub login_hint: Option<LoginHint>,
}

/// The store key of an access token: its tag (its first characters, see
/// [`keys::login_tag`]) and its SHA-256. None for a string too short to be one of ours.
pub fn access_token_key(access_token: &str) -> Option<String> {
    let tag = access_token.get(..keys::LOGIN_TAG_LEN)?;
    (access_token.len() > keys::LOGIN_TAG_LEN).then(|| keys::access_token(tag, &sha256_hex(access_token)))
}
