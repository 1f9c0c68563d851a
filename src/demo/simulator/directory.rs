//! The simulated environment's organizations: the contract fixtures ([`ORGS`],
//! [`MISCONFIGURED`]) at start, and what the portal adds or removes since. Routing, the
//! management API and the webhooks all read this one table, so they always agree.

use serde_json::{json, Value};

use super::{IdpKind, MISCONFIGURED, ORGS};

/// Scalekit's verification statuses that route (research/scalekit.md §7.3).
pub fn routes_by(status: &str) -> bool {
    matches!(status, "VERIFIED" | "AUTO_VERIFIED")
}

/// One `ORGANIZATION_DOMAIN` of an organization.
#[derive(Debug, Clone)]
pub struct OrgDomain {
    pub id: String,
    pub domain: String,
    /// `PENDING`, `VERIFIED`, `FAILED` or `AUTO_VERIFIED`.
    pub status: &'static str,
    /// `DNS` or `ADMIN`.
    pub method: &'static str,
    pub created_at: u64,
    pub updated_at: u64,
}

/// An organization and its one SSO connection, if any.
#[derive(Debug, Clone)]
pub struct Org {
    pub id: String,
    pub display_name: String,
    /// The connection's id and whether it is enabled (an enabled one is `COMPLETED`).
    pub connection: Option<(String, bool)>,
    pub domains: Vec<OrgDomain>,
    /// Who the portal signs in, and whom a hint outside the organization becomes.
    pub default_user: String,
    pub idp: IdpKind,
    pub created_at: u64,
}

/// What a login needs of an organization that signs users in.
#[derive(Debug, Clone)]
pub struct OrgRef {
    pub organization_id: String,
    pub connection_id: String,
    pub idp: IdpKind,
    /// Its routing domains: the addresses its IdP may assert.
    pub domains: Vec<String>,
    pub default_user: String,
}

impl Org {
    /// The organization as a login sees it, if its connection is enabled.
    pub fn signing(&self) -> Option<OrgRef> {
        match &self.connection {
            Some((connection_id, true)) => Some(OrgRef {
                organization_id: self.id.clone(),
                connection_id: connection_id.clone(),
                idp: self.idp,
                domains: self.routing_domains().map(str::to_owned).collect(),
                default_user: self.default_user.clone(),
            }),
            _ => None,
        }
    }

    /// Scalekit's configuration error for a login routed here, or the organization.
    pub fn sign_in_target(&self) -> Result<OrgRef, &'static str> {
        match &self.connection {
            None => Err("no_configured_connections"),
            Some((_, false)) => Err("no_active_connections"),
            Some(_) => self.signing().ok_or("no_active_connections"),
        }
    }

    pub fn routing_domains(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().filter(|d| routes_by(d.status)).map(|d| d.domain.as_str())
    }

    /// §7.2's Organization, with the `metadata` every simulated organization carries.
    pub fn json(&self, metadata: &[(String, String)]) -> Value {
        let metadata: serde_json::Map<String, Value> =
            metadata.iter().map(|(key, value)| (key.clone(), json!(value))).collect();
        json!({
            "id": self.id,
            "display_name": self.display_name,
            "external_id": "",
            "region_code": "US",
            "metadata": metadata,
            "create_time": rfc3339(self.created_at),
            "update_time": rfc3339(self.created_at),
            "settings": {"features": [
                {"name": "sso", "enabled": self.connection.is_some()},
                {"name": "dir_sync", "enabled": false},
            ]},
        })
    }

    /// §7.4's ListConnection, if the organization has a connection.
    pub fn connection_json(&self) -> Option<Value> {
        let (id, enabled) = self.connection.as_ref()?;
        Some(json!({
            "id": id,
            "key_id": id,
            "provider": "IDP_SIMULATOR",
            "provider_key": "idp_simulator",
            "type": match self.idp { IdpKind::Oidc => "OIDC", IdpKind::Saml => "SAML" },
            "status": "COMPLETED",
            "enabled": enabled,
            "organization_id": self.id,
            "organization_name": self.display_name,
            "domains": self.routing_domains().collect::<Vec<_>>(),
        }))
    }
}

impl OrgDomain {
    /// §7.3's Domain (REST: `create_time` / `update_time`).
    pub fn json(&self, organization_id: &str, environment_id: &str) -> Value {
        json!({
            "id": self.id,
            "domain": self.domain,
            "domain_type": "ORGANIZATION_DOMAIN",
            "organization_id": organization_id,
            "environment_id": environment_id,
            "verification_status": self.status,
            "verification_method": self.method,
            "create_time": rfc3339(self.created_at),
            "update_time": rfc3339(self.updated_at),
        })
    }

    /// §8.4's domain event data (webhooks: `updated_at`, and the TXT record).
    pub fn event_json(&self, organization_id: &str, environment_id: &str) -> Value {
        json!({
            "id": self.id,
            "domain": self.domain,
            "domain_type": "ORGANIZATION_DOMAIN",
            "organization_id": organization_id,
            "environment_id": environment_id,
            "txt_record_key": "scalekit-domain-verification",
            "txt_record_secret": format!("sk-verify-{}", self.id),
            "verification_status": self.status,
            "verification_method": self.method,
            "updated_at": rfc3339(self.updated_at),
        })
    }
}

/// The fixtures every simulator starts with.
pub fn seed(now: u64) -> Vec<Org> {
    let domain = |name: &str| OrgDomain {
        id: format!("dom_{}", name.replace(['.', '-'], "_")),
        domain: name.to_owned(),
        status: "VERIFIED",
        method: "ADMIN",
        created_at: now,
        updated_at: now,
    };
    let signing = ORGS.iter().map(|o| Org {
        id: o.organization_id.to_owned(),
        display_name: o.display_name.to_owned(),
        connection: Some((o.connection_id.to_owned(), true)),
        domains: vec![domain(o.domain)],
        default_user: o.default_user.to_owned(),
        idp: o.idp,
        created_at: now,
    });
    let misconfigured = MISCONFIGURED.iter().map(|m| Org {
        id: m.organization_id.to_owned(),
        display_name: m.domain.to_owned(),
        connection: m.inactive_connection.map(|c| (c.to_owned(), false)),
        domains: vec![domain(m.domain)],
        default_user: format!("someone@{}", m.domain),
        idp: IdpKind::Oidc,
        created_at: now,
    });
    signing.chain(misconfigured).collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (Howard Hinnant's civil-from-days).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_614_265_330), "2021-02-25T15:02:10Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
