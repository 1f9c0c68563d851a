//! Groups and roles the broker carries to a downstream user, and the one rule every adapter
//! applies when it writes them: the broker owns the role names it *manages* (the values of the
//! client's group-to-role table) and nothing else. Among those, the downstream ends up with
//! exactly the roles given; every other role the user has downstream (granted by the
//! application, an administrator, another tool) is left as it is.

use serde::{Deserialize, Serialize};

use crate::AdapterError;

/// Longest role or group name the broker passes on: Cognito's limit on group names.
pub const MAX_NAME_CHARS: usize = 128;

/// What the directory says a user is, as the broker maps it for one client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlements {
    /// Directory group names, as the client may see them (the full current set: a replace).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Application role names from the client's group-to-role table (the full current set).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// How a downstream's role set changes: what to add and what to take away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePlan {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl RolePlan {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

impl Entitlements {
    /// Refuses what no downstream should receive: a role the broker does not manage (the
    /// broker builds both from one table, so this is a broker or configuration fault, and
    /// writing it could never be taken back), and empty, over-long or control-character
    /// names. Checked before any call, so that a refused change writes nothing.
    pub fn check(&self, managed: &[String]) -> Result<(), AdapterError> {
        let misconfigured = |detail: String| Err(AdapterError::Misconfigured { detail });
        for name in self.roles.iter().chain(&self.groups).chain(managed) {
            if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return misconfigured(format!(
                    "role and group names must be 1 to {MAX_NAME_CHARS} printable characters, got {name:?}"
                ));
            }
        }
        if let Some(role) = self.roles.iter().find(|r| !managed.contains(r)) {
            return misconfigured(format!("role {role:?} is not among the roles the broker manages for this client"));
        }
        Ok(())
    }

    /// The roles the user should hold among `managed`, once each, in the order given.
    pub fn wanted_roles(&self, managed: &[String]) -> Vec<String> {
        unique(self.roles.iter().filter(|r| managed.contains(r)))
    }

    /// The groups, once each, in the order given.
    pub fn wanted_groups(&self) -> Vec<String> {
        unique(self.groups.iter())
    }

    /// What to add to and remove from `current` (the user's roles or groups as the downstream
    /// lists them) so that, among `managed`, the user holds exactly the wanted roles.
    pub fn plan(&self, current: &[String], managed: &[String]) -> RolePlan {
        let wanted = self.wanted_roles(managed);
        RolePlan {
            add: wanted.iter().filter(|r| !current.contains(r)).cloned().collect(),
            remove: unique(current.iter().filter(|r| managed.contains(r) && !wanted.contains(r))),
        }
    }

    /// A role list kept as one value (Auth0 `app_metadata.roles`, a Firebase claim): the
    /// entries the broker does not manage, in their order, then the wanted roles. Applying it
    /// twice gives the same list.
    pub fn merged_roles(&self, current: &[String], managed: &[String]) -> Vec<String> {
        let kept = current.iter().filter(|r| !managed.contains(r));
        unique(kept.chain(self.wanted_roles(managed).iter()))
    }
}

fn unique<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn given(roles: &[&str]) -> Entitlements {
        Entitlements { groups: names(&["g"]), roles: names(roles) }
    }

    #[test]
    fn only_managed_roles_are_added_or_removed() {
        let managed = names(&["viewer", "editor", "admin"]);
        let plan = given(&["viewer", "editor"]).plan(&names(&["admin", "app-owner", "viewer"]), &managed);
        assert_eq!(plan.add, names(&["editor"]));
        assert_eq!(plan.remove, names(&["admin"]), "app-owner is not the broker's to remove");
        assert!(given(&["viewer"]).plan(&names(&["viewer", "app-owner"]), &managed).is_empty());
        assert_eq!(given(&[]).plan(&names(&["viewer", "viewer"]), &managed).remove, names(&["viewer"]));
    }

    #[test]
    fn merged_lists_keep_other_entries_and_settle() {
        let managed = names(&["viewer", "editor"]);
        let once = given(&["editor", "viewer", "editor"]).merged_roles(&names(&["viewer", "app-owner"]), &managed);
        assert_eq!(once, names(&["app-owner", "editor", "viewer"]));
        assert_eq!(given(&["editor", "viewer"]).merged_roles(&once, &managed), once, "idempotent");
        assert_eq!(given(&[]).merged_roles(&once, &managed), names(&["app-owner"]));
    }

    #[test]
    fn unmanaged_or_malformed_names_are_refused() {
        let managed = names(&["viewer"]);
        assert!(given(&["viewer"]).check(&managed).is_ok());
        let refused = |e: Entitlements| matches!(e.check(&managed), Err(AdapterError::Misconfigured { .. }));
        assert!(refused(given(&["admin"])), "not managed");
        assert!(refused(given(&[" "])));
        assert!(refused(Entitlements { groups: names(&["a\nb"]), roles: Vec::new() }));
        assert!(refused(Entitlements { groups: vec!["x".repeat(129)], roles: Vec::new() }));
    }

    #[test]
    fn entitlements_deserialize_with_defaults() {
        let e: Entitlements = serde_json::from_str(r#"{"roles":["viewer"]}"#).unwrap();
        assert_eq!(e, Entitlements { groups: Vec::new(), roles: names(&["viewer"]) });
    }
}
