//! Route sync: Scalekit's organizations and their SSO domains (research/scalekit.md §7) as
//! routes tagged [`RouteSource::Synced`].
//!
//! - A domain becomes a route when its `verification_status` is `VERIFIED` or `AUTO_VERIFIED`
//!   (`verified = true`), exact domain only (Scalekit matches domains exactly), to the
//!   organization (Scalekit picks its active connection), open to every client.
//! - `PENDING` and `FAILED` domains are not routed: Scalekit does not route by them either
//!   (§7.3), and routing them would let any organization's admin claim another company's
//!   domain and receive its users' logins.
//! - Routes from the config file and the admin API are the operator's: a sync never writes over
//!   one, nor deletes one. It deletes only synced routes whose domain is gone (or unverified).
//! - Every write is a compare-and-set against what was read, so an admin taking a route over
//!   mid-sync wins; a sync that fails to read Scalekit changes nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::table::{Route, RouteSource, RouteTable};
use crate::model::normalize_domain;
use crate::store::{Store, StoreError};
use crate::upstream::scalekit::{Domain, ScalekitApi, ScalekitError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Api(#[from] ScalekitError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Trouble that a later attempt may not meet (Scalekit or the store down).
    pub fn is_transient(&self) -> bool {
        matches!(self, SyncError::Api(ScalekitError::Unreachable(_)) | SyncError::Store(StoreError::Unavailable(_)))
    }
}

/// What a sync found at Scalekit and did to the route table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Organizations read.
    pub organizations: u64,
    /// `ORGANIZATION_DOMAIN` domains read, whatever their status.
    pub domains: u64,
    /// Of those, `PENDING` or `FAILED` (or unreadable): not routed.
    pub unverified: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    /// Verified domains that a config or admin-API route already routes: left alone.
    pub kept: u64,
}

/// The routes of one organization's domains.
fn wanted(organization_id: &str, domains: &[Domain], changes: &mut Changes) -> BTreeMap<String, Route> {
    let mut routes = BTreeMap::new();
    for domain in domains {
        changes.domains += 1;
        let normalized = match normalize_domain(&domain.domain) {
            Ok(normalized) if domain.is_verified() => normalized,
            Ok(_) => {
                changes.unverified += 1;
                continue;
            }
            Err(_) => {
                tracing::warn!(organization_id, domain = %domain.domain, "Scalekit domain is not a valid domain; not routed");
                changes.unverified += 1;
                continue;
            }
        };
        let route = Route {
            domain: normalized.clone(),
            organization_id: organization_id.to_owned(),
            connection_id: None,
            clients: Vec::new(),
            include_subdomains: false,
            verified: true,
            source: RouteSource::Synced,
        };
        routes.insert(normalized, route);
    }
    routes
}

/// Which synced routes a sync may delete when their domain is not among the wanted ones.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// A full sync: every synced route.
    All,
    /// One organization's re-sync: its synced routes only.
    Organization(&'a str),
}

/// Brings the synced routes in line with `wanted`.
async fn apply<S: Store>(
    table: &RouteTable<'_, S>,
    wanted: &BTreeMap<String, Route>,
    scope: Scope<'_>,
    changes: &mut Changes,
) -> Result<(), StoreError> {
    let current = table.entries().await?;
    let existing: HashMap<&str, (&Route, &[u8])> =
        current.iter().map(|(route, bytes)| (route.domain.as_str(), (route, bytes.as_slice()))).collect();
    for (domain, route) in wanted {
        match existing.get(domain.as_str()) {
            None => {
                if table.replace(route, None).await? {
                    changes.added += 1;
                } else {
                    changes.kept += 1; // written meanwhile by someone else
                }
            }
            Some((found, _)) if found.source != RouteSource::Synced => changes.kept += 1,
            Some((found, _)) if *found == route => {}
            Some((_, bytes)) => {
                if table.replace(route, Some(bytes)).await? {
                    changes.updated += 1;
                }
            }
        }
    }
    for (route, bytes) in &current {
        let in_scope = match scope {
            Scope::All => true,
            Scope::Organization(organization) => route.organization_id == organization,
        };
        if route.source != RouteSource::Synced || !in_scope || wanted.contains_key(&route.domain) {
            continue;
        }
        // The store has no compare-and-delete: read again, so that a route an admin took over
        // since the listing (now `api`) is not deleted.
        if table.read(&route.domain).await?.is_some_and(|(_, now)| &now == bytes) {
            table.delete(&route.domain).await?;
            changes.removed += 1;
        }
    }
    Ok(())
}

/// A full sync: every organization and its domains, then the synced routes made to match. A
/// failure to read Scalekit changes nothing.
pub async fn sync_all<S: Store>(api: &ScalekitApi, table: &RouteTable<'_, S>) -> Result<Changes, SyncError> {
    let mut changes = Changes::default();
    let organizations = api.organizations().await?;
    changes.organizations = organizations.len() as u64;
    let mut wanted_routes = BTreeMap::new();
    for organization in &organizations {
        let domains = match api.domains(&organization.id).await {
            Ok(domains) => domains,
            // Deleted between the two calls.
            Err(ScalekitError::NotFound(_)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        for (domain, route) in wanted(&organization.id, &domains, &mut changes) {
            match wanted_routes.get(&domain) {
                Some(Route { organization_id, .. }) => tracing::warn!(
                    %domain,
                    first = %organization_id,
                    second = %organization.id,
                    "a domain is verified for two Scalekit organizations; the first keeps it"
                ),
                None => {
                    wanted_routes.insert(domain, route);
                }
            }
        }
    }
    apply(table, &wanted_routes, Scope::All, &mut changes).await?;
    Ok(changes)
}

/// One organization's domains read again and its synced routes made to match (a webhook said
/// it changed). An organization Scalekit no longer knows loses its synced routes.
pub async fn sync_organization<S: Store>(
    api: &ScalekitApi,
    table: &RouteTable<'_, S>,
    organization_id: &str,
) -> Result<Changes, SyncError> {
    let mut changes = Changes { organizations: 1, ..Changes::default() };
    let domains = match api.domains(organization_id).await {
        Ok(domains) => domains,
        Err(ScalekitError::NotFound(_)) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let wanted_routes = wanted(organization_id, &domains, &mut changes);
    apply(table, &wanted_routes, Scope::Organization(organization_id), &mut changes).await?;
    Ok(changes)
}

/// Deletes an organization's synced routes without asking Scalekit (`organization.deleted`).
pub async fn remove_organization<S: Store>(
    table: &RouteTable<'_, S>,
    organization_id: &str,
) -> Result<Changes, StoreError> {
    let mut changes = Changes { organizations: 1, ..Changes::default() };
    apply(table, &BTreeMap::new(), Scope::Organization(organization_id), &mut changes).await?;
    Ok(changes)
}

/// How many routes each source has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteCounts {
    pub config: u64,
    pub api: u64,
    pub synced: u64,
}

impl RouteCounts {
    pub fn of(routes: &[Route]) -> RouteCounts {
        let mut counts = RouteCounts::default();
        for route in routes {
            match route.source {
                RouteSource::Config => counts.config += 1,
                RouteSource::Api => counts.api += 1,
                RouteSource::Synced => counts.synced += 1,
            }
        }
        counts
    }
}

/// The last full sync, kept in the store for `/admin/status` on every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Unix seconds.
    pub started_at: u64,
    pub finished_at: u64,
    /// What went wrong; `None` when the sync completed.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub changes: Changes,
    /// The route table after the sync (before it, when the sync failed).
    #[serde(default)]
    pub routes: RouteCounts,
    /// When a sync last completed, this one or an earlier one.
    #[serde(default)]
    pub last_success_at: Option<u64>,
}

/// The last webhook that was applied, kept in the store for `/admin/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// Unix seconds.
    pub received_at: u64,
    pub event_type: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub changes: Changes,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn domain(name: &str, status: &str) -> Domain {
        serde_json::from_value(serde_json::json!({
            "id": format!("dom_{name}"), "domain": name, "domain_type": "ORGANIZATION_DOMAIN",
            "organization_id": "org_a", "verification_status": status,
        }))
        .expect("domain")
    }

    fn route(domain: &str, organization: &str, source: RouteSource) -> Route {
        Route {
            domain: domain.into(),
            organization_id: organization.into(),
            connection_id: None,
            clients: vec![],
            include_subdomains: false,
            verified: true,
            source,
        }
    }

    async fn apply_org(table: &RouteTable<'_, MemoryStore>, org: &str, domains: &[Domain]) -> Changes {
        let mut changes = Changes::default();
        let wanted = wanted(org, domains, &mut changes);
        apply(table, &wanted, Scope::Organization(org), &mut changes).await.expect("apply");
        changes
    }

    #[tokio::test]
    async fn verified_domains_become_synced_routes_and_nothing_else_is_touched() {
        let store = MemoryStore::new();
        let table = RouteTable::new(&store);
        table.put(&route("pinned.example", "org_config", RouteSource::Config)).await.expect("put");
        table.put(&route("admin.example", "org_admin", RouteSource::Api)).await.expect("put");
        let changes = apply_org(
            &table,
            "org_a",
            &[
                domain("A.example", "VERIFIED"),
                domain("auto.example", "AUTO_VERIFIED"),
                domain("pending.example", "PENDING"),
                domain("failed.example", "FAILED"),
                domain("pinned.example", "VERIFIED"),
                domain("admin.example", "VERIFIED"),
            ],
        )
        .await;
        assert_eq!((changes.domains, changes.unverified, changes.added, changes.kept), (6, 2, 2, 2));
        let synced = table.get("a.example").await.expect("get").expect("normalized domain routed");
        assert_eq!(synced, route("a.example", "org_a", RouteSource::Synced));
        assert!(table.get("pending.example").await.expect("get").is_none());
        assert_eq!(table.get("pinned.example").await.expect("get").expect("kept").organization_id, "org_config");
        assert_eq!(table.get("admin.example").await.expect("get").expect("kept").organization_id, "org_admin");

        // The domain goes away at Scalekit (and another becomes pending): only its synced route goes.
        let changes = apply_org(&table, "org_a", &[domain("auto.example", "VERIFIED")]).await;
        assert_eq!((changes.removed, changes.added, changes.updated), (1, 0, 0));
        assert!(table.get("a.example").await.expect("get").is_none());
        assert!(table.get("pinned.example").await.expect("get").is_some(), "an operator's route stays");
        assert!(table.get("admin.example").await.expect("get").is_some(), "an operator's route stays");

        // Another organization's re-sync leaves org_a's routes alone; a domain moved to it moves.
        let changes = apply_org(&table, "org_b", &[domain("auto.example", "VERIFIED")]).await;
        assert_eq!((changes.updated, changes.removed), (1, 0));
        assert_eq!(table.get("auto.example").await.expect("get").expect("moved").organization_id, "org_b");
        assert_eq!(remove_organization(&table, "org_b").await.expect("remove").removed, 1);
        assert_eq!(table.list().await.expect("list").len(), 2);
    }
}
