//! The Management API v2 calls the adapter makes, and the parts of a user it reads.
//!
//! Consistency (Auth0's "Search for Users"): `GET /users/{id}` and `GET /users-by-email` are
//! immediately consistent; `GET /users?q=` (search) is eventually consistent, so a user
//! created or linked seconds ago may be missing from it or shown as it was. The linking logic
//! never acts on search results alone.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use ssobridge_adapter_core::AdapterError;
use tokio::time::Instant;
use url::Url;

use crate::http::{misconfigured, Exchange, Http};
use crate::token::TokenSource;

/// The user fields the adapter reads; asking for fewer keeps the answers small.
const FIELDS: &str = "user_id,email,email_verified,identities,app_metadata";
/// More than one holder of one identity is impossible; more than a handful of users with one
/// email is not a case to link automatically.
const PER_PAGE: &str = "10";

/// An Auth0 user, as far as linking is concerned.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct User {
    pub user_id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: bool,
    #[serde(default)]
    pub identities: Vec<UserIdentity>,
    #[serde(default)]
    pub app_metadata: Option<Map<String, Value>>,
}

/// One entry of a user's `identities[]`: the first is the user's own, the others are linked.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UserIdentity {
    #[serde(default)]
    pub connection: String,
    #[serde(default)]
    pub provider: String,
    /// A string, or a number for some social providers; sent back to Auth0 exactly as read.
    #[serde(default)]
    pub user_id: Value,
}

/// Some enterprise profiles carry `email_verified` as the string "true".
fn lenient_bool<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(b) => b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

impl UserIdentity {
    pub(crate) fn user_id_text(&self) -> Option<String> {
        match &self.user_id {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// The identity an ssobridge login has in Auth0: provider `oidc`, the connection's name, and
/// `CONNECTION|SUB` as the identity's `user_id` (the user's own id is `oidc|CONNECTION|SUB`).
#[derive(Debug, Clone)]
pub(crate) struct SsoIdentity {
    pub connection: String,
    pub identity_user_id: String,
    pub user_id: String,
}

impl SsoIdentity {
    pub(crate) fn new(connection: &str, subject: &str) -> SsoIdentity {
        SsoIdentity {
            connection: connection.to_owned(),
            identity_user_id: format!("{connection}|{subject}"),
            user_id: format!("oidc|{connection}|{subject}"),
        }
    }

    /// Whether `entry` is this identity.
    pub(crate) fn is(&self, entry: &UserIdentity) -> bool {
        entry.provider == "oidc"
            && entry.connection == self.connection
            && entry.user_id_text().as_deref() == Some(self.identity_user_id.as_str())
    }

    /// Whether `user` holds this identity, as its own or as a linked one.
    pub(crate) fn held_by(&self, user: &User) -> bool {
        user.user_id == self.user_id || user.identities.iter().any(|i| self.is(i))
    }
}

/// A link request Auth0 did not accept: 409 "Specified identity already exists", or 400/404
/// for a secondary or primary that is gone (typically: a racing login linked it first).
#[derive(Debug)]
pub(crate) struct LinkRefused {
    pub status: StatusCode,
    pub message: String,
}

/// Quotes a Lucene phrase: backslash and double quote are the only specials inside quotes.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Percent-encodes one path segment: user ids contain `|` (and whatever the subject holds).
fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The Management API with a cached token: 401 refreshes the token once, 403 is a missing
/// scope.
pub(crate) struct Api {
    http: Http,
    tokens: TokenSource,
    base: Url,
}

impl Api {
    pub(crate) fn new(http: Http, tokens: TokenSource, base: Url) -> Api {
        Api { http, tokens, base }
    }

    fn url(&self, path: &str) -> Result<Url, AdapterError> {
        self.base.join(path).map_err(|e| misconfigured(format!("bad Management API URL for {path}: {e}")))
    }

    /// One call; a 403 (a scope the application lacks) is a misconfiguration.
    async fn call(
        &self,
        what: &str,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Exchange, AdapterError> {
        let exchange = self.exchange(what, method, url, body, deadline).await?;
        match exchange.status {
            StatusCode::FORBIDDEN => Err(Self::forbidden(what, &exchange)),
            _ => Ok(exchange),
        }
    }

    /// Auth0's 403 names the scopes it expected ("Insufficient scope, expected any of: …").
    fn forbidden(what: &str, exchange: &Exchange) -> AdapterError {
        misconfigured(format!(
            "{what}: the Management API refused ({}); grant the application the scopes listed in \
             deploy/recipes/auth0.md",
            exchange.message()
        ))
    }

    /// One call with the token handled: 401 fetches a new token once; every other answer is
    /// the caller's to read.
    async fn exchange(
        &self,
        what: &str,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Exchange, AdapterError> {
        let mut refreshed = false;
        loop {
            let token = self.tokens.get(deadline).await?;
            let exchange = self
                .http
                .send(what, deadline, || {
                    let request = self.http.client.request(method.clone(), url.clone()).bearer_auth(token.expose());
                    match body {
                        Some(body) => request.json(body),
                        None => request,
                    }
                })
                .await?;
            match exchange.status {
                // A cached token can stop working early (revoked, signing keys rotated): get a
                // new one once; a fresh token that is refused is a configuration problem.
                StatusCode::UNAUTHORIZED if !refreshed => {
                    tracing::info!("Management API refused the cached token; fetching a new one");
                    self.tokens.invalidate(&token).await;
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(misconfigured(format!(
                        "{what}: the Management API refused a fresh token ({})",
                        exchange.message()
                    )))
                }
                _ => return Ok(exchange),
            }
        }
    }

    fn unexpected(what: &str, exchange: &Exchange) -> AdapterError {
        misconfigured(format!("{what}: unexpected answer {} ({})", exchange.status, exchange.message()))
    }

    fn users(what: &str, exchange: &Exchange) -> Result<Vec<User>, AdapterError> {
        exchange.json().map_err(|e| misconfigured(format!("{what}: unreadable users: {e}")))
    }

    /// Users holding `identity` (search v3: eventually consistent).
    pub(crate) async fn search_identity(
        &self,
        identity: &SsoIdentity,
        deadline: Instant,
    ) -> Result<Vec<User>, AdapterError> {
        let what = "user search";
        let query = format!(
            "identities.connection:{} AND identities.user_id:{}",
            quoted(&identity.connection),
            quoted(&identity.identity_user_id)
        );
        let mut url = self.url("users")?;
        url.query_pairs_mut()
            .append_pair("q", &query)
            .append_pair("search_engine", "v3")
            .append_pair("per_page", PER_PAGE)
            .append_pair("fields", FIELDS)
            .append_pair("include_fields", "true");
        let exchange = self.call(what, Method::GET, &url, None, deadline).await?;
        match exchange.status {
            StatusCode::OK => Self::users(what, &exchange),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// One user by id (immediately consistent); `None` when there is no such user.
    pub(crate) async fn get_user(&self, user_id: &str, deadline: Instant) -> Result<Option<User>, AdapterError> {
        let what = "get user";
        let mut url = self.url(&format!("users/{}", segment(user_id)))?;
        url.query_pairs_mut().append_pair("fields", FIELDS).append_pair("include_fields", "true");
        let exchange = self.call(what, Method::GET, &url, None, deadline).await?;
        match exchange.status {
            StatusCode::OK => {
                let user: User = exchange.json().map_err(|e| misconfigured(format!("{what}: unreadable user: {e}")))?;
                Ok(Some(user).filter(|u| u.user_id == user_id))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// Users whose email is exactly `email` (immediately consistent, case-sensitive).
    pub(crate) async fn users_by_email(&self, email: &str, deadline: Instant) -> Result<Vec<User>, AdapterError> {
        let what = "users by email";
        let mut url = self.url("users-by-email")?;
        url.query_pairs_mut()
            .append_pair("email", email)
            .append_pair("fields", FIELDS)
            .append_pair("include_fields", "true");
        let exchange = self.call(what, Method::GET, &url, None, deadline).await?;
        match exchange.status {
            StatusCode::OK => Self::users(what, &exchange),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// Links `secondary` (provider and user_id exactly as its `identities[]` entry has them)
    /// into `primary_id`.
    pub(crate) async fn link(
        &self,
        primary_id: &str,
        secondary: &UserIdentity,
        deadline: Instant,
    ) -> Result<Result<(), LinkRefused>, AdapterError> {
        let what = "link identity";
        let url = self.url(&format!("users/{}/identities", segment(primary_id)))?;
        let body = json!({ "provider": secondary.provider, "user_id": secondary.user_id });
        let exchange = self.call(what, Method::POST, &url, Some(&body), deadline).await?;
        match exchange.status {
            StatusCode::CREATED | StatusCode::OK => Ok(Ok(())),
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => {
                Ok(Err(LinkRefused { status: exchange.status, message: exchange.message() }))
            }
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// Merges `changes` into the user's `app_metadata` (Auth0 merges its first level).
    /// `None` when the user is gone (linked into another meanwhile).
    pub(crate) async fn update_app_metadata(
        &self,
        user_id: &str,
        changes: Map<String, Value>,
        deadline: Instant,
    ) -> Result<Option<()>, AdapterError> {
        let what = "update app_metadata";
        let url = self.url(&format!("users/{}", segment(user_id)))?;
        let body = json!({ "app_metadata": changes });
        let exchange = self.call(what, Method::PATCH, &url, Some(&body), deadline).await?;
        match exchange.status {
            StatusCode::OK => Ok(Some(())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }
}

/// An Auth0 role (RBAC): roles are assigned by id, named by the broker.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Role {
    pub id: String,
    pub name: String,
}

/// Roles per page: the most Auth0 allows.
const ROLES_PER_PAGE: &str = "100";
/// A user with more than this many roles is not one the adapter pages through further.
const MAX_ROLE_PAGES: u32 = 10;

/// What a best-effort call came to.
#[derive(Debug)]
pub(crate) enum BestEffort {
    Done,
    /// Auth0 would not (a scope the application lacks, a feature of another plan, a user
    /// gone): the caller logs it and goes on.
    Refused {
        status: StatusCode,
        message: String,
    },
}

impl Api {
    /// Sets `blocked` (an administrator's block: no sign-in until lifted). `None` when there
    /// is no such user.
    pub(crate) async fn set_blocked(
        &self,
        user_id: &str,
        blocked: bool,
        deadline: Instant,
    ) -> Result<Option<()>, AdapterError> {
        let what = if blocked { "block user" } else { "unblock user" };
        let url = self.url(&format!("users/{}", segment(user_id)))?;
        let exchange = self.call(what, Method::PATCH, &url, Some(&json!({ "blocked": blocked })), deadline).await?;
        match exchange.status {
            StatusCode::OK => Ok(Some(())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// Deletes the user. Auth0 documents no 404 here (deleting a missing user succeeds); one
    /// is read as "already gone" all the same.
    pub(crate) async fn delete_user(&self, user_id: &str, deadline: Instant) -> Result<Option<()>, AdapterError> {
        let what = "delete user";
        let url = self.url(&format!("users/{}", segment(user_id)))?;
        let exchange = self.call(what, Method::DELETE, &url, None, deadline).await?;
        match exchange.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(Some(())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// `DELETE /users/{id}/sessions` or `/refresh-tokens`: accepted (202) and carried out
    /// asynchronously. Available on Auth0's Enterprise plans only, hence best effort.
    pub(crate) async fn revoke(
        &self,
        user_id: &str,
        what_kind: Revocable,
        deadline: Instant,
    ) -> Result<BestEffort, AdapterError> {
        let (what, path) = match what_kind {
            Revocable::Sessions => ("delete sessions", "sessions"),
            Revocable::RefreshTokens => ("delete refresh tokens", "refresh-tokens"),
        };
        let url = self.url(&format!("users/{}/{path}", segment(user_id)))?;
        let exchange = self.exchange(what, Method::DELETE, &url, None, deadline).await?;
        match exchange.status {
            StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(BestEffort::Done),
            status => Ok(BestEffort::Refused { status, message: exchange.message() }),
        }
    }

    /// The user's roles; `None` when there is no such user.
    pub(crate) async fn user_roles(&self, user_id: &str, deadline: Instant) -> Result<Option<Vec<Role>>, AdapterError> {
        let what = "get user roles";
        let mut roles = Vec::new();
        for page in 0..MAX_ROLE_PAGES {
            let mut url = self.url(&format!("users/{}/roles", segment(user_id)))?;
            url.query_pairs_mut().append_pair("per_page", ROLES_PER_PAGE).append_pair("page", &page.to_string());
            let exchange = self.call(what, Method::GET, &url, None, deadline).await?;
            let batch: Vec<Role> = match exchange.status {
                StatusCode::OK => {
                    exchange.json().map_err(|e| misconfigured(format!("{what}: unreadable roles: {e}")))?
                }
                StatusCode::NOT_FOUND => return Ok(None),
                _ => return Err(Self::unexpected(what, &exchange)),
            };
            let last = batch.len() < 100;
            roles.extend(batch);
            if last {
                break;
            }
        }
        Ok(Some(roles))
    }

    /// The tenant's role named exactly `name`. Auth0's `name_filter` ignores case and may
    /// match more than the name, so the answer is compared here.
    pub(crate) async fn role_named(&self, name: &str, deadline: Instant) -> Result<Option<Role>, AdapterError> {
        let what = "get roles";
        let mut url = self.url("roles")?;
        url.query_pairs_mut().append_pair("name_filter", name).append_pair("per_page", ROLES_PER_PAGE);
        let exchange = self.call(what, Method::GET, &url, None, deadline).await?;
        match exchange.status {
            StatusCode::OK => {
                let roles: Vec<Role> =
                    exchange.json().map_err(|e| misconfigured(format!("{what}: unreadable roles: {e}")))?;
                Ok(roles.into_iter().find(|r| r.name == name))
            }
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }

    /// Assigns (`POST`) or removes (`DELETE`) roles by id; `None` when there is no such user.
    pub(crate) async fn change_roles(
        &self,
        user_id: &str,
        assign: bool,
        role_ids: &[String],
        deadline: Instant,
    ) -> Result<Option<()>, AdapterError> {
        let (what, method) = if assign { ("assign roles", Method::POST) } else { ("remove roles", Method::DELETE) };
        let url = self.url(&format!("users/{}/roles", segment(user_id)))?;
        let exchange = self.call(what, method, &url, Some(&json!({ "roles": role_ids })), deadline).await?;
        match exchange.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(Some(())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::unexpected(what, &exchange)),
        }
    }
}

/// What `DELETE /users/{id}/…` ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Revocable {
    Sessions,
    RefreshTokens,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lucene_phrases_escape_quotes_and_backslashes() {
        assert_eq!(quoted(r#"a"b\c|d"#), r#""a\"b\\c|d""#);
    }

    #[test]
    fn user_ids_are_encoded_as_one_segment() {
        assert_eq!(segment("oidc|ssobridge|conn_1;a@b.c/x"), "oidc%7Cssobridge%7Cconn_1%3Ba%40b.c%2Fx");
        assert_eq!(segment("auth0|5f7c8ec7c33c6c004bbafe82"), "auth0%7C5f7c8ec7c33c6c004bbafe82");
    }

    #[test]
    fn the_identity_is_matched_on_provider_connection_and_its_own_user_id() {
        let me = SsoIdentity::new("ssobridge", "abc");
        assert_eq!(me.user_id, "oidc|ssobridge|abc");
        let entry = |provider: &str, connection: &str, user_id: Value| UserIdentity {
            provider: provider.into(),
            connection: connection.into(),
            user_id,
        };
        assert!(me.is(&entry("oidc", "ssobridge", json!("ssobridge|abc"))));
        assert!(!me.is(&entry("oidc", "other", json!("ssobridge|abc"))));
        assert!(!me.is(&entry("samlp", "ssobridge", json!("ssobridge|abc"))));
        assert!(!me.is(&entry("oidc", "ssobridge", json!("abc"))));
        assert_eq!(entry("facebook", "facebook", json!(10158)).user_id_text().unwrap(), "10158");
    }

    #[test]
    fn users_parse_leniently() {
        let user: User = serde_json::from_value(json!({
            "user_id": "samlp|x|y", "email_verified": "true", "identities": [{"provider": "samlp", "connection": "x", "user_id": "x|y", "isSocial": false}]
        }))
        .unwrap();
        assert!(user.email_verified && user.email.is_none() && user.app_metadata.is_none());
        assert_eq!(user.identities[0].user_id_text().unwrap(), "x|y");
    }
}
