//! Home realm discovery: which upstream connection a login goes to.

use serde::{Deserialize, Serialize};

use crate::oidc::params::{ParamError, Params};

/// The routing selectors of a downstream request, in Scalekit's precedence order:
/// `connection_id` > `organization_id` > `domain_hint` > the domain of `login_hint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    pub connection_id: Option<String>,
    pub organization_id: Option<String>,
    pub domain_hint: Option<String>,
    pub login_hint: Option<String>,
}

impl Selectors {
    pub fn from_params(params: &Params) -> Result<Selectors, ParamError> {
        let owned = |name| params.get(name).map(|v| v.map(str::to_owned));
        Ok(Selectors {
            connection_id: owned("connection_id")?,
            organization_id: owned("organization_id")?,
            // Scalekit's SDK sends `domain`; OIDC clients say `domain_hint`.
            domain_hint: match owned("domain_hint")? {
                Some(hint) => Some(hint),
                None => owned("domain")?,
            },
            login_hint: owned("login_hint")?,
        })
    }

    /// The parameters for the upstream authorization request. `domain_hint` goes out both as
    /// `domain_hint` and `domain`, as Scalekit's own SDK sends it.
    pub fn upstream_params(&self) -> Vec<(&'static str, &str)> {
        let mut params = Vec::new();
        if let Some(v) = &self.connection_id {
            params.push(("connection_id", v.as_str()));
        }
        if let Some(v) = &self.organization_id {
            params.push(("organization_id", v.as_str()));
        }
        if let Some(v) = &self.domain_hint {
            params.push(("domain_hint", v.as_str()));
            params.push(("domain", v.as_str()));
        }
        if let Some(v) = &self.login_hint {
            params.push(("login_hint", v.as_str()));
        }
        params
    }
}
