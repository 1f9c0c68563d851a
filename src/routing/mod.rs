//! Home realm discovery: which upstream organization or connection a login goes to.
//!
//! Precedence, as Scalekit documents it: `connection_id`, then `organization_id`, then
//! `domain_hint`, then the domain of `login_hint`, then the client's configured default.
//! What goes upstream is the single strongest selector (a domain without a route as both
//! `domain_hint` and `domain`), plus `login_hint` when given.
//!
//! Routing decides and answers: [`decide`] and [`check_arrival`] read the route table (and, on
//! a miss, Scalekit's lookup) and call nothing above them; the login layer acts on what they
//! answer.

pub mod lookup;
pub mod sync;
pub mod table;

use serde::{Deserialize, Serialize};

pub use self::lookup::{DomainLookup, Lookup, NoLookup};
pub use self::table::{Route, RouteCache, RouteIndex, RouteSource, RouteTable};
use crate::model::{normalize_domain, split_email};
use crate::model::{ClientSpec, Fallback};
use crate::store::{Store, StoreError};

/// The routing selectors of a downstream request (short names: kept with pending requests).
/// The provider face reads them from the request (`oidc::params`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selectors {
    #[serde(rename = "cn", alias = "connection_id", default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(rename = "o", alias = "organization_id", default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(rename = "d", alias = "domain_hint", default, skip_serializing_if = "Option::is_none")]
    pub domain_hint: Option<String>,
    #[serde(rename = "l", alias = "login_hint", default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<LoginHint>,
}

impl Selectors {
    pub fn is_empty(&self) -> bool {
        *self == Selectors::default()
    }

    /// The domain of `login_hint`, if it is an email address.
    pub fn login_hint_domain(&self) -> Option<&str> {
        self.login_hint.as_ref().and_then(LoginHint::domain)
    }
}

/// A `login_hint` (OIDC Core §3.1.2.1), read once: the text as given (by the client, by an
/// IdP-initiated login, or typed at the home-realm page), and its domain when it is an email
/// address. Stored as the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct LoginHint {
    text: String,
    /// Where the domain starts in `text`, when `text` is one email address.
    domain_at: Option<usize>,
}

impl From<String> for LoginHint {
    fn from(text: String) -> LoginHint {
        let domain_at = split_email(&text).map(|(local, _)| local.len() + 1);
        LoginHint { text, domain_at }
    }
}

impl From<LoginHint> for String {
    fn from(hint: LoginHint) -> String {
        hint.text
    }
}

impl LoginHint {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The domain as given (not normalized), when the hint is an email address.
    pub fn domain(&self) -> Option<&str> {
        self.text.get(self.domain_at?..)
    }

    /// Whether `other` names the same user (addresses compare without case).
    pub fn same_user(&self, other: &LoginHint) -> bool {
        self.text.eq_ignore_ascii_case(&other.text)
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

/// Where a routed login must end: the organization and connection it was sent to, as far as
/// routing knew them. Kept with the flow and held against the upstream's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "o", alias = "organization_id", default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(rename = "cn", alias = "connection_id", default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
}

/// Where a login goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// To the upstream with these parameters.
    Upstream { params: Vec<(&'static str, String)>, routed_by: RoutedBy, target: Target },
    /// Nothing to go on: ask the user for their work email.
    AskEmail,
    /// The domain has no single sign-on and the client's fallback is `deny`.
    Deny { domain: String },
    /// The request names an organization or connection the client may not reach.
    OutOfReach,
}

/// Whether `client` may reach `organization`: its own `allowed_organizations`, then the route
/// table (an organization whose routes all belong to other clients is theirs); with `fallback =
/// "deny"` only what a route, the client's default or its allowed list names.
fn reachable(client: &ClientSpec, index: &RouteIndex, organization: &str) -> bool {
    let named = client.allowed_organizations.iter().any(|o| o == organization)
        || client.default_organization_id.as_deref() == Some(organization);
    client.allows_organization(organization)
        && index.open_to(organization, &client.client_id)
        && (client.fallback != Fallback::Deny || named || index.routes_to(organization, &client.client_id))
}

/// Decides where a login of `client` with `selectors` goes. A request's own `connection_id` or
/// `organization_id` is honoured only within what the client may reach: no parameter gets past
/// `fallback = "deny"`, a client's `allowed_organizations` or a route restricted to other clients.
///
/// A domain with no route at all, for a client whose fallback is `pass`, is first asked of
/// `lookup` (Scalekit's own domain table, `[scalekit] lookup_on_miss`): found, the login goes
/// there as if routed; not found, it is denied here rather than at Scalekit's error page.
pub async fn decide<S: Store, L: DomainLookup>(
    table: &RouteTable<'_, S>,
    lookup: &L,
    client: &ClientSpec,
    selectors: &Selectors,
) -> Result<Decision, StoreError> {
    let upstream = |mut params: Vec<(&'static str, String)>, routed_by, target: Target| {
        if let Some(hint) = &selectors.login_hint {
            params.push(("login_hint", hint.as_str().to_owned()));
        }
        Decision::Upstream { params, routed_by, target }
    };
    let route_target = |route: &Route| Target {
        organization_id: Some(route.organization_id.clone()),
        connection_id: route.connection_id.clone(),
    };
    if let Some(connection) = &selectors.connection_id {
        let index = table.index().await?;
        let organization = index.organization_of(connection).map(str::to_owned);
        let permitted = match &organization {
            Some(organization) => reachable(client, &index, organization),
            // A connection no route names: its organization shows at the callback, which holds
            // it against the client's reach. With `deny`, only the client's own default passes.
            None => client.fallback != Fallback::Deny || client.default_connection_id.as_ref() == Some(connection),
        };
        if !permitted {
            return Ok(Decision::OutOfReach);
        }
        let target = Target { organization_id: organization, connection_id: Some(connection.clone()) };
        return Ok(upstream(vec![("connection_id", connection.clone())], RoutedBy::ConnectionId, target));
    }
    if let Some(organization) = &selectors.organization_id {
        if !reachable(client, &*table.index().await?, organization) {
            return Ok(Decision::OutOfReach);
        }
        let target = Target { organization_id: Some(organization.clone()), connection_id: None };
        return Ok(upstream(vec![("organization_id", organization.clone())], RoutedBy::OrganizationId, target));
    }
    let (domain, routed_by) = match (&selectors.domain_hint, selectors.login_hint_domain()) {
        (Some(hint), _) => (hint.as_str(), RoutedBy::DomainHint),
        (None, Some(domain)) => (domain, RoutedBy::LoginHint),
        (None, None) => {
            let target = Target {
                organization_id: client.default_organization_id.clone(),
                connection_id: client.default_connection_id.clone(),
            };
            return Ok(match (&client.default_connection_id, &client.default_organization_id) {
                (Some(connection), _) => {
                    upstream(vec![("connection_id", connection.clone())], RoutedBy::ClientDefault, target)
                }
                (None, Some(org)) => upstream(vec![("organization_id", org.clone())], RoutedBy::ClientDefault, target),
                (None, None) => Decision::AskEmail,
            });
        }
    };
    let Ok(domain) = normalize_domain(domain) else {
        return Ok(Decision::Deny { domain: domain.to_owned() });
    };
    if let Some(route) = table.resolve(&domain, &client.client_id).await? {
        if !client.allows_organization(&route.organization_id) {
            return Ok(Decision::OutOfReach);
        }
        return Ok(upstream(route.upstream_selector(), routed_by, route_target(&route)));
    }
    // `deny` and a named fallback route are the client's own choice for unrouted domains; a
    // domain with a route for other clients only is theirs.
    if client.fallback == Fallback::Pass && table.get(&domain).await?.is_none() {
        match lookup.find(&domain, table.epoch()).await {
            Lookup::Found { organization_id, connection_id } => {
                if !reachable(client, &*table.index().await?, &organization_id) {
                    return Ok(Decision::OutOfReach);
                }
                tracing::info!(%domain, %organization_id, "routed by Scalekit's answer to a lookup");
                let params = match &connection_id {
                    Some(connection) => vec![("connection_id", connection.clone())],
                    None => vec![("organization_id", organization_id.clone())],
                };
                let target = Target { organization_id: Some(organization_id), connection_id };
                return Ok(upstream(params, routed_by, target));
            }
            Lookup::NotFound => return Ok(Decision::Deny { domain }),
            Lookup::Unknown => {}
        }
    }
    Ok(match &client.fallback {
        Fallback::Pass => {
            // Let the upstream decide: Scalekit keeps its own domain table and answers
            // domain_not_found when it has nothing. The domain goes as a selector whether it
            // came as `domain_hint` or in `login_hint`: Scalekit documents `domain` (its SDKs
            // send `domain_hint` too) as the selector, `login_hint` only as a prefill
            // (research/scalekit.md §2.1, §3.1: invalid_connection_selector names `domain`).
            let params = vec![("domain_hint", domain.clone()), ("domain", domain.clone())];
            upstream(params, RoutedBy::Fallback, Target::default())
        }
        Fallback::Deny => Decision::Deny { domain },
        Fallback::Route(named) => match table.get(named).await? {
            Some(route) => upstream(route.upstream_selector(), RoutedBy::Fallback, route_target(&route)),
            None => {
                tracing::error!(route = %named, "the client's fallback route does not exist");
                Decision::Deny { domain }
            }
        },
    })
}

/// Why an upstream login does not count for the client, though it verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stray {
    /// It ended in another organization or connection than the one it was sent to.
    Elsewhere,
    /// It ended in an organization the client may not reach.
    OutOfReach,
}

/// Holds where an upstream login ended (`organization`, `connection`, from the upstream's ID
/// token) against where it was sent (`target`) and what the client may reach. A user who
/// edits the upstream authorize URL, or an upstream that routes on its own, cannot land the
/// login in another organization.
pub async fn check_arrival<S: Store>(
    table: &RouteTable<'_, S>,
    client: &ClientSpec,
    target: &Target,
    organization: Option<&str>,
    connection: Option<&str>,
) -> Result<Result<(), Stray>, StoreError> {
    if target.connection_id.as_deref().is_some_and(|c| Some(c) != connection)
        || target.organization_id.as_deref().is_some_and(|o| Some(o) != organization)
    {
        return Ok(Err(Stray::Elsewhere));
    }
    // Where routing knew the organization, /authorize already held it against the client.
    if target.organization_id.is_some() {
        return Ok(Ok(()));
    }
    Ok(match organization {
        Some(organization) => {
            let index = table.index().await?;
            let open = client.allows_organization(organization) && index.open_to(organization, &client.client_id);
            if open {
                Ok(())
            } else {
                Err(Stray::OutOfReach)
            }
        }
        // No organization to hold against a client that is limited to some.
        None if !client.allowed_organizations.is_empty() => Err(Stray::OutOfReach),
        None => Ok(()),
    })
}
