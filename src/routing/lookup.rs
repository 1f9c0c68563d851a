//! The miss lookup: a domain the route table does not have is asked of Scalekit
//! (`GET /api/v1/connections?domain=`, research/scalekit.md §7.4) before the user is sent to
//! Scalekit's `domain_not_found` page. Routing takes it as a [`DomainLookup`], so that the
//! decision stays free of HTTP.
//!
//! Answers are kept per instance for `lookup_cache_seconds`, found or not, and dropped when the
//! route table changes anywhere (its cache epoch moves). Domains come from users, so the cache
//! is bounded, and at most [`LOOKUPS_PER_SECOND`] calls per instance reach Scalekit: past that
//! (or when Scalekit fails) a login goes on as without the lookup.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::normalize_domain;
use crate::upstream::scalekit::{Connection, ScalekitApi};

/// What a lookup says about a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Scalekit routes the domain here: the organization, and its connection when it has one
    /// active connection for the domain.
    Found { organization_id: String, connection_id: Option<String> },
    /// No active connection has the domain: it has no single sign-on.
    NotFound,
    /// No answer (no lookup configured, Scalekit unreachable, too many lookups, ambiguous).
    Unknown,
}

/// Where routing asks about a domain that has no route.
pub trait DomainLookup: Send + Sync {
    /// `epoch` is the route cache's: answers kept from before a route change are not reused.
    fn find(&self, domain: &str, epoch: u64) -> impl Future<Output = Lookup> + Send;
}

/// No lookup: every domain is [`Lookup::Unknown`].
pub struct NoLookup;

impl DomainLookup for NoLookup {
    async fn find(&self, _domain: &str, _epoch: u64) -> Lookup {
        Lookup::Unknown
    }
}

impl<L: DomainLookup> DomainLookup for Option<L> {
    async fn find(&self, domain: &str, epoch: u64) -> Lookup {
        match self {
            Some(lookup) => lookup.find(domain, epoch).await,
            None => Lookup::Unknown,
        }
    }
}

/// Calls to Scalekit per second and instance, at most.
pub const LOOKUPS_PER_SECOND: u32 = 20;
const MAX_ENTRIES: usize = 10_000;

struct Entry {
    at: Instant,
    epoch: u64,
    answer: Lookup,
}

/// [`DomainLookup`] over Scalekit's API, cached.
pub struct CachedLookup {
    api: Arc<ScalekitApi>,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// The current second's start and the calls made in it.
    budget: Mutex<(Instant, u32)>,
}

impl CachedLookup {
    pub fn new(api: Arc<ScalekitApi>, ttl: Duration) -> CachedLookup {
        CachedLookup { api, ttl, entries: Mutex::new(HashMap::new()), budget: Mutex::new((Instant::now(), 0)) }
    }

    fn cached(&self, domain: &str, epoch: u64) -> Option<Lookup> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(domain).filter(|e| e.epoch == epoch && e.at.elapsed() < self.ttl).map(|e| e.answer.clone())
    }

    fn keep(&self, domain: &str, epoch: u64, answer: Lookup) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.epoch == epoch && e.at.elapsed() < self.ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(domain.to_owned(), Entry { at: Instant::now(), epoch, answer });
    }

    /// Takes one call from this second's budget, if any is left.
    fn spend(&self) -> bool {
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        if budget.0.elapsed() >= Duration::from_secs(1) {
            *budget = (Instant::now(), 0);
        }
        budget.1 += 1;
        budget.1 <= LOOKUPS_PER_SECOND
    }
}

/// Scalekit's answer for `domain`: the organization of the active connections that list it.
fn interpret(domain: &str, connections: &[Connection]) -> Lookup {
    let active: Vec<&Connection> = connections
        .iter()
        .filter(|c| c.enabled != Some(false) && !c.organization_id.is_empty() && !c.id.is_empty())
        // The filter is Scalekit's; a connection that names other domains only is not this one's.
        .filter(|c| c.domains.is_empty() || c.domains.iter().any(|d| normalize_domain(d).as_deref() == Ok(domain)))
        .collect();
    let organizations: HashSet<&str> = active.iter().map(|c| c.organization_id.as_str()).collect();
    match (organizations.len(), active.as_slice()) {
        (0, _) => Lookup::NotFound,
        (1, [only]) => {
            Lookup::Found { organization_id: only.organization_id.clone(), connection_id: Some(only.id.clone()) }
        }
        // Several connections of one organization: Scalekit picks among them.
        (1, [first, ..]) => Lookup::Found { organization_id: first.organization_id.clone(), connection_id: None },
        _ => {
            tracing::warn!(%domain, "Scalekit lists the domain under several organizations; not routing by lookup");
            Lookup::Unknown
        }
    }
}

impl DomainLookup for CachedLookup {
    async fn find(&self, domain: &str, epoch: u64) -> Lookup {
        if let Some(answer) = self.cached(domain, epoch) {
            crate::telemetry::count("ssobridge_route_lookups_total", &[("outcome", "cached")]);
            return answer;
        }
        if !self.spend() {
            crate::telemetry::count("ssobridge_route_lookups_total", &[("outcome", "throttled")]);
            return Lookup::Unknown;
        }
        match self.api.connections_for_domain(domain).await {
            Ok(connections) => {
                let answer = interpret(domain, &connections);
                let outcome = match &answer {
                    Lookup::Found { .. } => "found",
                    Lookup::NotFound => "not_found",
                    Lookup::Unknown => "ambiguous",
                };
                crate::telemetry::count("ssobridge_route_lookups_total", &[("outcome", outcome)]);
                tracing::info!(%domain, outcome, "route lookup at Scalekit");
                self.keep(domain, epoch, answer.clone());
                answer
            }
            Err(error) => {
                crate::telemetry::count("ssobridge_route_lookups_total", &[("outcome", "error")]);
                tracing::warn!(%domain, error = %error, "route lookup at Scalekit failed; the upstream decides");
                Lookup::Unknown
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str, organization: &str, enabled: Option<bool>, domains: &[&str]) -> Connection {
        serde_json::from_value(serde_json::json!({
            "id": id, "organization_id": organization, "enabled": enabled, "domains": domains,
        }))
        .expect("connection")
    }

    #[test]
    fn scalekits_answer_is_one_organization_or_nothing() {
        let d = "acme.example";
        assert_eq!(interpret(d, &[]), Lookup::NotFound);
        assert_eq!(
            interpret(d, &[connection("conn_1", "org_1", Some(true), &["ACME.example"])]),
            Lookup::Found { organization_id: "org_1".into(), connection_id: Some("conn_1".into()) }
        );
        assert_eq!(
            interpret(d, &[connection("conn_1", "org_1", None, &[]), connection("conn_2", "org_1", None, &[])]),
            Lookup::Found { organization_id: "org_1".into(), connection_id: None },
            "two connections: the organization"
        );
        assert_eq!(interpret(d, &[connection("conn_1", "org_1", Some(false), &[d])]), Lookup::NotFound, "disabled");
        assert_eq!(interpret(d, &[connection("conn_1", "org_1", None, &["other.example"])]), Lookup::NotFound);
        assert_eq!(
            interpret(d, &[connection("conn_1", "org_1", None, &[d]), connection("conn_2", "org_2", None, &[d])]),
            Lookup::Unknown
        );
    }
}
