//! What can go wrong talking to Cognito, and the one place it becomes an [`AdapterError`].

use std::time::Duration;

use ssobridge_adapter_core::AdapterError;

/// Reasons shown to the user (through the client's error page), so fixed text, never AWS's.
pub(crate) mod reason {
    pub const UNVERIFIED_EMAIL_TAKEN: &str = "An account with this email address already exists in the application, \
        and your organization's sign-in could not prove that the address is yours. Ask your administrator to \
        verify your organization's email domain.";
    pub const EXISTING_EMAIL_UNVERIFIED: &str = "An account with your email address already exists in this \
        application but its address was never verified, so single sign-on cannot take it over. Ask the \
        application's administrator.";
    pub const UNVERIFIED_EMAIL_NOT_ADDRESS: &str = "The application needs a verified email address for every \
        account, and your organization's sign-in could not prove that this address is yours. Ask your \
        administrator to verify your organization's email domain.";
    pub const AMBIGUOUS_EMAIL: &str = "Several accounts in the application use this email address, so the sign-in \
        cannot tell which one is yours. Ask the application's support to merge them.";
    pub const ACCOUNT_DISABLED: &str = "Your account in the application is disabled.";
    pub const EMAIL_REQUIRED: &str = "The application needs an email address, and your organization's sign-in \
        did not provide one.";
    pub const ALREADY_LINKED_ELSEWHERE: &str = "This sign-in is already linked to another account in the \
        application. Ask the application's support to unlink it.";
    pub const TOO_MANY_LINKS: &str = "Your account in the application has reached its limit of linked sign-ins.";
    pub const REJECTED_BY_APPLICATION: &str = "The application did not accept this account.";
    pub const EMAIL_IN_USE: &str = "Another account in the application already uses this email address.";
    pub const UNSUPPORTED_EMAIL: &str = "Your email address contains characters the application cannot look up.";
}

/// One failed exchange with the Cognito API.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CognitoError {
    #[error("{action}: no answer within {timeout:?}")]
    Timeout { action: &'static str, timeout: Duration },
    #[error("{action}: network error: {detail}")]
    Network { action: &'static str, detail: String },
    /// An AWS error answer: `kind` is the bare exception name (`ThrottlingException`).
    #[error("{action}: {kind} (HTTP {status}): {message}")]
    Service { action: &'static str, status: u16, kind: String, message: String, retry_after: Option<Duration> },
    #[error("{action}: unexpected answer (HTTP {status}): {detail}")]
    Decode { action: &'static str, status: u16, detail: String },
    #[error("could not sign the request: {0}")]
    Signing(String),
    #[error("the sign-in's time budget of {0:?} ran out")]
    Deadline(Duration),
}

/// Exception names that mean "slow down or try again" (AWS's throttling and server faults).
const TRANSIENT_KINDS: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalErrorException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Exception names that mean the credentials, the permissions or the pool are wrong.
const MISCONFIGURED_KINDS: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "AccessDeniedException",
    "AccessDenied",
    "NotAuthorizedException",
    "ResourceNotFoundException",
    "InvalidParameterException",
    "InvalidUserPoolConfigurationException",
    "OperationNotEnabledException",
    "UnexpectedLambdaException",
    "InvalidLambdaResponseException",
    "UnsupportedOperationException",
];

impl CognitoError {
    /// The bare AWS exception name, when this is an AWS error answer.
    pub(crate) fn kind(&self) -> Option<&str> {
        match self {
            CognitoError::Service { kind, .. } => Some(kind),
            _ => None,
        }
    }

    pub(crate) fn is(&self, kind: &str) -> bool {
        self.kind() == Some(kind)
    }

    /// Whether sending the same request again may succeed. Timeouts are not retried: the user is
    /// waiting, and a call that hung once will most likely hang again.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            CognitoError::Network { .. } => true,
            CognitoError::Service { status, kind, .. } => {
                *status == 429 || *status >= 500 || TRANSIENT_KINDS.contains(&kind.as_str())
            }
            _ => false,
        }
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            CognitoError::Service { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The single mapping to the broker's error type. `detail` may carry AWS's text: it goes to
    /// the log and to operators, never to the user (only `Refused` reasons do, and those are ours).
    pub(crate) fn into_adapter_error(self) -> AdapterError {
        let detail = self.to_string();
        match &self {
            CognitoError::Timeout { .. } | CognitoError::Network { .. } | CognitoError::Deadline(_) => {
                AdapterError::Transient { detail, retry_after: None }
            }
            CognitoError::Decode { .. } | CognitoError::Signing(_) => AdapterError::Misconfigured { detail },
            CognitoError::Service { action, status, kind, retry_after, .. } => {
                if self.is_retryable() {
                    return AdapterError::Transient { detail, retry_after: *retry_after };
                }
                match kind.as_str() {
                    "AliasExistsException" => refused(reason::ALREADY_LINKED_ELSEWHERE),
                    // For linking, the limit is Cognito's five federated identities per user.
                    "LimitExceededException" if *action == "AdminLinkProviderForUser" => {
                        refused(reason::TOO_MANY_LINKS)
                    }
                    // A pre sign-up or similar trigger of the application said no to this user.
                    "UserLambdaValidationException" => refused(reason::REJECTED_BY_APPLICATION),
                    // The user went away between two calls (deleted by an admin): the next attempt
                    // starts over and does the right thing.
                    "UserNotFoundException" | "UsernameExistsException" => {
                        AdapterError::Transient { detail, retry_after: None }
                    }
                    k if MISCONFIGURED_KINDS.contains(&k) => AdapterError::Misconfigured { detail },
                    _ if *status == 401 || *status == 403 => AdapterError::Misconfigured { detail },
                    // Any other client error is a request this adapter should not have sent with
                    // these settings: an operator has to look.
                    _ => AdapterError::Misconfigured { detail },
                }
            }
        }
    }
}

fn refused(reason: &str) -> AdapterError {
    AdapterError::Refused { reason: reason.to_owned() }
}

/// The bare exception name from what AWS JSON protocols send: `x-amzn-ErrorType` or `__type`,
/// either of which may carry a namespace (`com.amazon.coral.service#`, `aws.cognito.model.`) or a
/// `:http://...` suffix.
pub(crate) fn bare_kind(raw: &str) -> String {
    let raw = raw.split(':').next().unwrap_or(raw);
    let raw = raw.rsplit('#').next().unwrap_or(raw);
    raw.rsplit('.').next().unwrap_or(raw).trim().to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn service(status: u16, kind: &str) -> CognitoError {
        CognitoError::Service {
            action: "ListUsers",
            status,
            kind: kind.to_owned(),
            message: "m".to_owned(),
            retry_after: None,
        }
    }

    #[test]
    fn kinds_are_stripped_of_namespaces() {
        assert_eq!(bare_kind("ResourceNotFoundException"), "ResourceNotFoundException");
        assert_eq!(bare_kind("com.amazon.coral.service#UnrecognizedClientException"), "UnrecognizedClientException");
        assert_eq!(
            bare_kind("ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/"),
            "ThrottlingException"
        );
        assert_eq!(
            bare_kind("com.amazonaws.cognito.identity.idp.model.UserNotFoundException"),
            "UserNotFoundException"
        );
    }

    #[test]
    fn throttling_and_server_faults_are_transient_and_retried() {
        for e in [service(400, "TooManyRequestsException"), service(400, "ThrottlingException"), service(503, "X")] {
            assert!(e.is_retryable());
            assert!(matches!(e.into_adapter_error(), AdapterError::Transient { .. }));
        }
        let timeout = CognitoError::Timeout { action: "ListUsers", timeout: Duration::from_secs(1) };
        assert!(!timeout.is_retryable(), "a hung call is not sent again");
        assert!(matches!(timeout.into_adapter_error(), AdapterError::Transient { .. }));
    }

    #[test]
    fn credential_and_pool_errors_are_misconfigured() {
        for e in [
            service(400, "UnrecognizedClientException"),
            service(400, "InvalidSignatureException"),
            service(403, "SignatureDoesNotMatch"),
            service(400, "AccessDeniedException"),
            service(400, "ResourceNotFoundException"),
            service(400, "ExpiredTokenException"),
            service(403, "Whatever"),
        ] {
            assert!(!e.is_retryable());
            assert!(matches!(e.into_adapter_error(), AdapterError::Misconfigured { .. }));
        }
    }

    #[test]
    fn refusals_carry_our_text_not_aws_text() {
        match service(400, "AliasExistsException").into_adapter_error() {
            AdapterError::Refused { reason } => assert_eq!(reason, reason::ALREADY_LINKED_ELSEWHERE),
            other => panic!("{other:?}"),
        }
    }
}
