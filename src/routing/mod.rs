//! Home realm discovery: which upstream organization or connection a login goes to.
//!
//! Precedence, as Scalekit documents it: `connection_id`, then `organization_id`, then
//! `domain_hint`, then the domain of `login_hint`, then the client's configured default.
//! What goes upstream is the single strongest selector, plus `login_hint` when given.

pub mod idp_initiated;
pub mod page;
pub mod table;

use serde::{Deserialize, Serialize};

pub use self::table::{email_domain, normalize_domain, split_email, Route, RouteCache, RouteTable};
use crate::clients::ClientRecord;
use crate::config::Fallback;
use crate::oidc::params::{ParamError, Params};
use crate::store::{Store, StoreError};

/// The routing selectors of a downstream request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    pub connection_id: Option<String>,
    pub organization_id: Option<String>,
    pub domain_hint: Option<String>,
    pub login_hint: Option<String>,
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

impl Selectors {
    /// Reads the selectors, also under the names Auth0's `upstream_params` and Scalekit's SDK
    /// use (`organization`, `connection`, `domain`).
    pub fn from_params(params: &Params) -> Result<Selectors, ParamError> {
        let owned = |names: &[&str]| first_of(params, names).map(|v| v.map(str::to_owned));
        Ok(Selectors {
            connection_id: owned(&["connection_id", "connection"])?,
            organization_id: owned(&["organization_id", "organization"])?,
            domain_hint: owned(&["domain_hint", "domain"])?,
            login_hint: owned(&["login_hint"])?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Selectors::default()
    }

    /// The domain of `login_hint`, if it is an email address.
    pub fn login_hint_domain(&self) -> Option<&str> {
        self.login_hint.as_deref().and_then(split_email).map(|(_, domain)| domain)
    }
}

/// Which selector decided the route (for logs, metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutedBy {
    ConnectionId,
    OrganizationId,
    DomainHint,
    LoginHint,
    ClientDefault,
    Fallback,
}

/// Where a login goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// To the upstream with these parameters.
    Upstream { params: Vec<(&'static str, String)>, routed_by: RoutedBy, organization_id: Option<String> },
    /// Nothing to go on: ask the user for their work email.
    AskEmail,
    /// The domain has no single sign-on and the client's fallback is `deny`.
    Deny { domain: String },
}

/// Decides where a login of `client` with `selectors` goes.
pub async fn decide<S: Store>(
    table: &RouteTable<'_, S>,
    client: &ClientRecord,
    selectors: &Selectors,
) -> Result<Decision, StoreError> {
    let login_hint = selectors.login_hint.clone();
    let upstream = |mut params: Vec<(&'static str, String)>, routed_by, organization_id: Option<String>| {
        if let Some(hint) = &login_hint {
            params.push(("login_hint", hint.clone()));
        }
        Decision::Upstream { params, routed_by, organization_id }
    };
    if let Some(connection) = &selectors.connection_id {
        return Ok(upstream(vec![("connection_id", connection.clone())], RoutedBy::ConnectionId, None));
    }
    if let Some(organization) = &selectors.organization_id {
        return Ok(upstream(
            vec![("organization_id", organization.clone())],
            RoutedBy::OrganizationId,
            Some(organization.clone()),
        ));
    }
    let (domain, routed_by) = match (&selectors.domain_hint, selectors.login_hint_domain()) {
        (Some(hint), _) => (hint.as_str(), RoutedBy::DomainHint),
        (None, Some(domain)) => (domain, RoutedBy::LoginHint),
        (None, None) => {
            return Ok(match (&client.default_connection_id, &client.default_organization_id) {
                (Some(connection), _) => {
                    upstream(vec![("connection_id", connection.clone())], RoutedBy::ClientDefault, None)
                }
                (None, Some(org)) => {
                    upstream(vec![("organization_id", org.clone())], RoutedBy::ClientDefault, Some(org.clone()))
                }
                (None, None) => Decision::AskEmail,
            });
        }
    };
    let Ok(domain) = normalize_domain(domain) else {
        return Ok(Decision::Deny { domain: domain.to_owned() });
    };
    if let Some(route) = table.resolve(&domain, &client.client_id).await? {
        return Ok(upstream(route.upstream_selector(), routed_by, Some(route.organization_id)));
    }
    Ok(match &client.fallback {
        Fallback::Pass => {
            // Let the upstream decide with what the request carried: Scalekit keeps its own
            // domain table and answers domain_not_found when it has nothing.
            let params = match routed_by {
                RoutedBy::DomainHint => vec![("domain_hint", domain.clone()), ("domain", domain.clone())],
                _ => Vec::new(),
            };
            upstream(params, RoutedBy::Fallback, None)
        }
        Fallback::Deny => Decision::Deny { domain },
        Fallback::Route(named) => match table.get(named).await? {
            Some(route) => upstream(route.upstream_selector(), RoutedBy::Fallback, Some(route.organization_id)),
            None => {
                tracing::error!(route = %named, "the client's fallback route does not exist");
                Decision::Deny { domain }
            }
        },
    })
}
