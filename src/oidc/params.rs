//! Request parameters as the protocol sees them: form-urlencoded, each at most once
//! (RFC 6749 §3.1), bounded in size.

use crate::routing::{LoginHint, Selectors};

/// Longest value accepted for a parameter not named in [`max_len`].
pub const MAX_PARAM_LEN: usize = 2048;

/// The longest value accepted for `name`: what the standards and real clients need (an email
/// address is at most 320 characters, a DNS name 253), so that nothing an outsider sends can
/// make a pending flow large.
pub fn max_len(name: &str) -> usize {
    match name {
        "state" => 1536,
        "nonce" => 512,
        "login_hint" => 320,
        "domain_hint" | "domain" => 253,
        "connection_id" | "connection" | "organization_id" | "organization" => 128,
        "acr_values" => 256,
        "code_challenge" | "code_verifier" => 128,
        "prompt" | "response_type" | "response_mode" | "code_challenge_method" | "grant_type" | "max_age" => 64,
        "client_assertion" | "id_token_hint" => 8192,
        _ => MAX_PARAM_LEN,
    }
}
/// Largest form body read on the token and authorize endpoints.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParamError {
    Repeated(String),
    TooLong(String),
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::Repeated(name) => write!(f, "parameter {name} is repeated"),
            ParamError::TooLong(name) => write!(f, "parameter {name} is too long"),
        }
    }
}

impl Params {
    pub fn parse(encoded: &[u8]) -> Params {
        Params { pairs: url::form_urlencoded::parse(encoded).into_owned().collect() }
    }

    /// The value of `name`, or None; an error if it is repeated or oversized. An empty value
    /// counts as absent (RFC 6749 §3.1: "parameters sent without a value MUST be treated as if
    /// they were omitted").
    pub fn get(&self, name: &str) -> Result<Option<&str>, ParamError> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ParamError::Repeated(name.to_owned()));
        }
        match first {
            Some(v) if v.len() > max_len(name) => Err(ParamError::TooLong(name.to_owned())),
            Some("") | None => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, v)| k == name && !v.is_empty())
    }
}

// Reading the selectors is the provider face's: which request parameters name them is a
// matter of the protocol and its clients, not of routing.
impl Selectors {
    /// Reads the selectors, also under the names Auth0's `upstream_params` and Scalekit's SDK
    /// use (`organization`, `connection`, `domain`).
    pub fn from_params(params: &Params) -> Result<Selectors, ParamError> {
        let owned = |names: &[&str]| first_of(params, names).map(|v| v.map(str::to_owned));
        Ok(Selectors {
            connection_id: owned(&["connection_id", "connection"])?,
            organization_id: owned(&["organization_id", "organization"])?,
            domain_hint: owned(&["domain_hint", "domain"])?,
            login_hint: owned(&["login_hint"])?.map(LoginHint::from),
        })
    }
}

/// The first of `names` that is present.
fn first_of<'p>(params: &'p Params, names: &[&str]) -> Result<Option<&'p str>, ParamError> {
    for name in names {
        if let Some(value) = params.get(name)? {
            return Ok(Some(value));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_empty_parameters() {
        let params = Params::parse(b"a=1&b=&c=x&c=y");
        assert_eq!(params.get("a"), Ok(Some("1")));
        assert_eq!(params.get("b"), Ok(None));
        assert_eq!(params.get("missing"), Ok(None));
        assert_eq!(params.get("c"), Err(ParamError::Repeated("c".into())));
    }
}
