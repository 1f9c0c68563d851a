//! A home-realm route, defined once: an email domain and the upstream organization (and
//! optionally connection) its users sign in with. The config file's `[[routes]]`, the store's
//! record and the admin API's shapes are views of [`Route`]; [`Route::problems`] is the one set
//! of rules.

use serde::{Deserialize, Serialize};

use super::client::{is_client_id, is_upstream_id};
use super::email::normalize_domain;

/// Where a route comes from. Routes from the config file and the admin API are the operator's
/// and authoritative; route sync writes, updates and deletes only its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSource {
    /// Seeded from the config file's `[[routes]]`.
    Config,
    /// Made or changed through the admin API (and records written before sources existed).
    #[default]
    Api,
    /// Written by route sync from Scalekit's organization domains.
    Synced,
}

impl RouteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Config => "config",
            RouteSource::Api => "api",
            RouteSource::Synced => "synced",
        }
    }
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The email domain; normalized (lower case, IDNA ASCII form) once checked.
    pub domain: String,
    pub organization_id: String,
    #[serde(default)]
    pub connection_id: Option<String>,
    /// Downstream clients allowed to use this route; empty means every client.
    #[serde(default)]
    pub clients: Vec<String>,
    /// Whether `sub.domain` also matches `domain`.
    #[serde(default)]
    pub include_subdomains: bool,
    /// Whether the organization has proven it owns the domain: only then is an email at it
    /// `email_verified` (and linked by adapters).
    #[serde(default = "yes")]
    pub verified: bool,
    #[serde(default)]
    pub source: RouteSource,
}

fn yes() -> bool {
    true
}

impl Route {
    /// The strongest selector the route gives: its connection, else its organization.
    pub fn upstream_selector(&self) -> Vec<(&'static str, String)> {
        match &self.connection_id {
            Some(connection) => vec![("connection_id", connection.clone())],
            None => vec![("organization_id", self.organization_id.clone())],
        }
    }

    /// Whether `client_id` may use the route.
    pub fn allows(&self, client_id: &str) -> bool {
        self.clients.is_empty() || self.clients.iter().any(|c| c == client_id)
    }

    /// Every rule the route breaks (field, position in a list, what is wrong). A valid route's
    /// domain is normalized in place.
    pub fn problems(&mut self) -> Vec<(&'static str, Option<usize>, String)> {
        let mut problems = Vec::new();
        match normalize_domain(&self.domain) {
            Ok(domain) => self.domain = domain,
            Err(error) => problems.push(("domain", None, error.to_string())),
        }
        if !is_upstream_id(&self.organization_id) {
            problems.push(("organization_id", None, "1 to 128 printable characters".to_owned()));
        }
        if self.connection_id.as_deref().is_some_and(|c| !is_upstream_id(c)) {
            problems.push(("connection_id", None, "1 to 128 printable characters".to_owned()));
        }
        for (i, client) in self.clients.iter().enumerate() {
            if !is_client_id(client) {
                problems.push(("clients", Some(i), "not a client id".to_owned()));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_checked_and_its_domain_normalized() {
        let mut route: Route = serde_json::from_value(serde_json::json!({
            "domain": "Bücher.Example", "organization_id": "org_1", "clients": ["ok", "not ok"],
        }))
        .expect("route");
        let problems: Vec<_> = route.problems().into_iter().map(|(f, i, _)| (f, i)).collect();
        assert_eq!(problems, [("clients", Some(1))]);
        assert_eq!(route.domain, "xn--bcher-kva.example");
        assert!(route.verified && route.source == RouteSource::Api, "defaults");
    }
}
