//! A SigV4-signed client for Cognito's JSON 1.1 API (service `cognito-idp`), with a timeout on
//! every exchange and a bounded retry of throttling and server faults.
//!
//! Every operation is `POST /` with `Content-Type: application/x-amz-json-1.1` and
//! `X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>`; errors come back as
//! `{"__type": "...Exception", "message": "..."}` (and `x-amzn-ErrorType`).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use ssobridge_adapter_core::retry::{self, Failed, Policy};
use ssobridge_adapter_core::AdapterError;
use tokio::time::Instant;
use url::Url;

use crate::error::{bare_kind, CognitoError};
use crate::settings::Validated;
use ssobridge_adapter_core::Secret;

const SERVICE: &str = "cognito-idp";
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// One try and two retries: enough to ride out a burst of throttling while a user waits. A
/// `Retry-After` over 5 s is not waited out inside a sign-in; the error carries it instead.
const POLICY: Policy =
    Policy { max_attempts: 3, first_backoff: Duration::from_millis(100), max_wait: Duration::from_secs(5) };
/// Far above any answer of the calls made here (a `ListUsers` page is at most 60 users).
const MAX_BODY_BYTES: usize = 4 << 20;

pub(crate) struct Client {
    http: reqwest::Client,
    endpoint: Url,
    region: String,
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    pub(crate) fn new(settings: &Validated) -> Result<Client, AdapterError> {
        let http = ssobridge_adapter_core::http::client_builder(
            concat!("ssobridge-adapter-cognito/", env!("CARGO_PKG_VERSION")),
            settings.timeout,
        )
        .timeout(settings.timeout)
        .build()
        .map_err(|e| AdapterError::Misconfigured { detail: format!("cognito HTTP client: {e}") })?;
        Ok(Client {
            http,
            endpoint: settings.endpoint.clone(),
            region: settings.region.clone(),
            access_key_id: settings.access_key_id.clone(),
            secret_access_key: settings.secret_access_key.clone(),
            session_token: settings.session_token.clone(),
            timeout: settings.timeout,
        })
    }

    /// Calls one operation, retrying throttling, server faults and network errors (never a
    /// timeout) with backoff, honouring `Retry-After`, and never past `deadline`.
    pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        action: &'static str,
        request: &Req,
        deadline: Instant,
    ) -> Result<Resp, CognitoError> {
        let body = serde_json::to_vec(request).map_err(|e| CognitoError::Signing(format!("{action} body: {e}")))?;
        let attempt = |_| async {
            match self.send_once(action, &body, deadline).await {
                Ok((status, bytes)) => decode(action, status, &bytes).map_err(Failed::fatal),
                Err(error) if error.is_retryable() => {
                    let asked = error.retry_after();
                    Err(Failed::retry(error, asked))
                }
                Err(error) => Err(Failed::fatal(error)),
            }
        };
        let on_retry = |attempt, wait: Duration, error: &CognitoError| {
            tracing::debug!(action, attempt, wait_ms = wait.as_millis() as u64, %error, "cognito: retrying");
        };
        retry::run(POLICY, deadline.into_std(), attempt, tokio::time::sleep, on_retry).await
    }

    async fn send_once(
        &self,
        action: &'static str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), CognitoError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(CognitoError::Deadline(self.timeout));
        }
        let timeout = self.timeout.min(remaining);
        let target = format!("{TARGET_PREFIX}{action}");
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .timeout(timeout)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", &target)
            .body(body.to_vec());
        for (name, value) in self.sign(&target, body)? {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|e| transport_error(action, timeout, &e))?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let error_type = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(action, timeout, &e))? {
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(CognitoError::Decode { action, status, detail: "answer too large".to_owned() });
            }
            bytes.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            Ok((status, bytes))
        } else {
            Err(service_error(action, status, error_type.as_deref(), &bytes, retry_after))
        }
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for one request.
    /// `host` is signed from the endpoint's authority, which is what reqwest sends.
    fn sign(&self, target: &str, body: &[u8]) -> Result<Vec<(String, String)>, CognitoError> {
        let identity = Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_owned(),
            self.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "ssobridge-cognito-settings",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| CognitoError::Signing(e.to_string()))?
            .into();
        let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", target)];
        let signable =
            SignableRequest::new("POST", self.endpoint.as_str(), headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| CognitoError::Signing(e.to_string()))?;
        let (instructions, _signature) =
            sign(signable, &params).map_err(|e| CognitoError::Signing(e.to_string()))?.into_parts();
        Ok(instructions.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect())
    }
}

fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok().and_then(retry::retry_after)
}

fn transport_error(action: &'static str, timeout: Duration, error: &reqwest::Error) -> CognitoError {
    if error.is_timeout() {
        return CognitoError::Timeout { action, timeout };
    }
    // The chain says what failed (connection refused, TLS, reset); the URL is not secret.
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    CognitoError::Network { action, detail }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// An AWS error answer. JSON protocols send `__type`/`message`; AWS's authentication layer (and
/// moto's) may answer in the query protocol's XML (`<Code>`, `<Message>`), so both are read.
fn service_error(
    action: &'static str,
    status: u16,
    error_type: Option<&str>,
    body: &[u8],
    retry_after: Option<Duration>,
) -> CognitoError {
    let json: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let text = String::from_utf8_lossy(body);
    let kind = error_type
        .map(str::to_owned)
        .or_else(|| json.as_ref().and_then(|b| b.kind.clone()))
        .or_else(|| xml_element(&text, "Code"))
        .map(|k| bare_kind(&k))
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = json.and_then(|b| b.message).or_else(|| xml_element(&text, "Message")).unwrap_or_default();
    CognitoError::Service { action, status, kind, message: truncate(&message, 300), retry_after }
}

fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_owned())
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

fn decode<T: DeserializeOwned>(action: &'static str, status: u16, bytes: &[u8]) -> Result<T, CognitoError> {
    // Operations without output answer `{}`; tolerate an empty body as the same thing.
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| CognitoError::Decode { action, status, detail: e.to_string() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn json_errors_are_read_from_header_or_body() {
        let body = br#"{"__type":"UserNotFoundException","message":"User does not exist."}"#;
        let e = service_error("AdminGetUser", 400, None, body, None);
        assert!(e.is("UserNotFoundException"));
        assert!(e.to_string().contains("User does not exist."));
        let e = service_error("ListUsers", 400, Some("ThrottlingException:http://internal/"), b"{}", None);
        assert!(e.is("ThrottlingException"));
        let body = br#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","Message":"bad token"}"#;
        assert!(service_error("ListUsers", 400, None, body, None).is("UnrecognizedClientException"));
    }

    #[test]
    fn xml_errors_are_read_too() {
        let body = br#"<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code>
            <Message>The request signature we calculated does not match</Message></Error></Errors></ErrorResponse>"#;
        let e = service_error("ListUsers", 403, None, body, None);
        assert!(e.is("SignatureDoesNotMatch"));
        assert!(e.to_string().contains("does not match"));
    }

    #[test]
    fn an_error_without_a_name_is_named_by_its_status() {
        let e = service_error("ListUsers", 502, None, b"<html>bad gateway</html>", None);
        assert!(e.is("HTTP502"));
        assert!(e.is_retryable());
    }

    #[test]
    fn empty_success_bodies_decode_as_empty_objects() {
        #[derive(Deserialize)]
        struct Empty {}
        let _: Empty = decode("AdminLinkProviderForUser", 200, b"").unwrap();
        let _: Empty = decode("AdminLinkProviderForUser", 200, b"{}").unwrap();
        assert!(decode::<Empty>("AdminLinkProviderForUser", 200, b"<html>").is_err());
    }
}
