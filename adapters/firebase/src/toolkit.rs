//! The Identity Toolkit v1 admin calls the adapter makes, as the Admin SDKs make them:
//! `POST …/projects/{project}[/tenants/{tenant}]/accounts` (create, with our own `localId`),
//! `…/accounts:lookup` (by uid and email), `…/accounts:update` (custom attributes, disabling,
//! revoking refresh tokens) and `…/accounts:delete`.

use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use ssobridge_adapter_core::AdapterError;

use crate::credentials::Credentials;
use crate::http::{self, Deadline};

/// An account as `accounts:lookup` returns it (only the fields the adapter reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Account {
    pub(crate) local_id: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
    /// `emailVerified`: whether the account's holder proved the address (a confirmed sign-up,
    /// or a provider that vouches for it). Absent means not verified.
    #[serde(default)]
    pub(crate) email_verified: bool,
    #[serde(default)]
    pub(crate) disabled: bool,
    /// Custom claims, as a JSON object serialized into a string.
    #[serde(default)]
    pub(crate) custom_attributes: Option<String>,
}

#[derive(Deserialize)]
struct LookupResponse {
    #[serde(default)]
    users: Vec<Account>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LookupRequest<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    local_id: &'a [&'a str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    email: &'a [&'a str],
}

/// The body of a create: `localId` is ours, so that racing creates of one user collide.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewAccount<'a> {
    pub(crate) local_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<&'a str>,
    pub(crate) email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateAttributes<'a> {
    local_id: &'a str,
    custom_attributes: &'a str,
}

/// `accounts:update` for sign-in access: `disableUser` (the Admin SDKs' `disabled`), and
/// `validSince`, UNIX seconds before which the account's refresh tokens and ID tokens are
/// refused (the Admin SDKs' `revokeRefreshTokens`). An int64, so a string in Google's JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateAccess<'a> {
    local_id: &'a str,
    disable_user: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_since: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeleteAccount<'a> {
    local_id: &'a str,
}

/// Google's error body: `{"error": {"code": 400, "message": "EMAIL_EXISTS", "status": …}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: Option<String>,
}

/// Why a call failed: a 400 with an Identity Toolkit error code the caller may handle, or an
/// error already typed for the broker.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The code before any ` : detail` (`DUPLICATE_LOCAL_ID`, `EMAIL_EXISTS`, …).
    Rejected(String),
    Adapter(AdapterError),
}

impl From<AdapterError> for CallError {
    fn from(e: AdapterError) -> Self {
        CallError::Adapter(e)
    }
}

impl CallError {
    /// An unexpected rejection is a configuration problem (wrong project, tenant, API off),
    /// except an email Firebase will not take, which is the user's to hear about.
    pub(crate) fn into_adapter_error(self, what: &str) -> AdapterError {
        match self {
            CallError::Rejected(code) if code == "INVALID_EMAIL" => AdapterError::Refused {
                reason: "This application's sign-in service does not accept your email address.".to_owned(),
            },
            CallError::Rejected(code) => {
                AdapterError::Misconfigured { detail: format!("identity toolkit {what} rejected: {code}") }
            }
            CallError::Adapter(e) => e,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Toolkit {
    http: reqwest::Client,
    /// `…/v1/projects/{project}` or `…/v1/projects/{project}/tenants/{tenant}`, no trailing slash.
    base: String,
    credentials: Credentials,
}

impl Toolkit {
    pub(crate) fn new(http: reqwest::Client, base: String, credentials: Credentials) -> Self {
        Toolkit { http, base, credentials }
    }

    /// Every account whose uid is in `uids` or whose email is in `emails`.
    pub(crate) async fn lookup(
        &self,
        deadline: Deadline,
        uids: &[&str],
        emails: &[&str],
    ) -> Result<Vec<Account>, AdapterError> {
        let body = LookupRequest { local_id: uids, email: emails };
        let reply = self.call(deadline, "accounts:lookup", &body).await.map_err(|e| e.into_adapter_error("lookup"))?;
        let parsed: LookupResponse = parse(&reply, "accounts:lookup")?;
        Ok(parsed.users)
    }

    pub(crate) async fn create(&self, deadline: Deadline, account: &NewAccount<'_>) -> Result<(), CallError> {
        self.call(deadline, "accounts", account).await.map(drop)
    }

    pub(crate) async fn set_custom_attributes(
        &self,
        deadline: Deadline,
        uid: &str,
        attributes: &str,
    ) -> Result<(), CallError> {
        let body = UpdateAttributes { local_id: uid, custom_attributes: attributes };
        self.call(deadline, "accounts:update", &body).await.map(drop)
    }

    /// Disables or enables sign-in; `revoke_before` (UNIX seconds) also ends every session
    /// that started before it: refresh tokens stop working, and ID tokens issued earlier fail
    /// `verifyIdToken(…, checkRevoked)`. Tokens minted within that same second survive (the
    /// timestamp has a resolution of one second).
    pub(crate) async fn set_access(
        &self,
        deadline: Deadline,
        uid: &str,
        disabled: bool,
        revoke_before: Option<u64>,
    ) -> Result<(), CallError> {
        let body =
            UpdateAccess { local_id: uid, disable_user: disabled, valid_since: revoke_before.map(|s| s.to_string()) };
        self.call(deadline, "accounts:update", &body).await.map(drop)
    }

    pub(crate) async fn delete(&self, deadline: Deadline, uid: &str) -> Result<(), CallError> {
        self.call(deadline, "accounts:delete", &DeleteAccount { local_id: uid }).await.map(drop)
    }

    /// POSTs `body` to `{base}/{method}`; on a 401 in production the cached access token is
    /// dropped and the call made once more with a fresh one (it may have been revoked).
    async fn call<B: Serialize>(&self, deadline: Deadline, method: &str, body: &B) -> Result<Vec<u8>, CallError> {
        let url = format!("{}/{method}", self.base);
        let mut refreshed = false;
        loop {
            let bearer = self.credentials.bearer(&self.http, deadline).await?;
            let reply = http::send(method, deadline, || {
                self.http.post(&url).header(AUTHORIZATION, format!("Bearer {}", bearer.expose())).json(body)
            })
            .await?;
            match reply.status {
                s if s.is_success() => return Ok(reply.body),
                StatusCode::UNAUTHORIZED if !refreshed && !self.credentials.is_emulator() => {
                    self.credentials.invalidate(&bearer).await;
                    refreshed = true;
                }
                StatusCode::BAD_REQUEST => {
                    let message = serde_json::from_slice::<ErrorBody>(&reply.body)
                        .map(|b| b.error.message)
                        .unwrap_or_else(|_| "unreadable error".to_owned());
                    let code = message.split([' ', ':']).next().unwrap_or_default();
                    return Err(CallError::Rejected(code.to_owned()));
                }
                status => {
                    // 401/403: wrong key, missing IAM role or API disabled; 404: no such
                    // project or tenant. Google's message says which; it holds no secrets.
                    let message = error_message(&reply.body);
                    let message: String = message.chars().take(300).collect();
                    return Err(CallError::Adapter(AdapterError::Misconfigured {
                        detail: format!("identity toolkit {method}: HTTP {}: {message}", status.as_u16()),
                    }));
                }
            }
        }
    }
}

fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => match error.status {
            Some(status) if !error.message.starts_with(&status) => format!("{status} {}", error.message),
            _ => error.message,
        },
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, AdapterError> {
    // A 2xx that is not the documented JSON is most likely a proxy or an outage page.
    serde_json::from_slice(body)
        .map_err(|e| AdapterError::Transient { detail: format!("{what}: unreadable response: {e}"), retry_after: None })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lookup_answers_carry_email_verified() {
        // The shape of accounts:lookup (UserInfo), trimmed to what matters here.
        let body = br#"{"kind":"identitytoolkit#GetAccountInfoResponse","users":[
            {"localId":"a","email":"x@example.com","emailVerified":true,"passwordHash":"h"},
            {"localId":"b","email":"x@example.com","emailVerified":false},
            {"localId":"c","email":"y@example.com"}]}"#;
        let parsed: LookupResponse = parse(body, "accounts:lookup").unwrap();
        let verified: Vec<(&str, bool)> =
            parsed.users.iter().map(|a| (a.local_id.as_str(), a.email_verified)).collect();
        assert_eq!(verified, [("a", true), ("b", false), ("c", false)]);
    }
}
