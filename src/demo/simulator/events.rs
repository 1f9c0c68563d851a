//! The portal's organization admin and the webhooks it sends: adding a domain (to a new
//! organization with a working connection, or to an existing one) or removing one changes the
//! simulator's organizations, then sends the events Scalekit sends for that change
//! (research/scalekit.md §8), signed per Standard Webhooks, to the configured endpoint.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Response};
use serde_json::{json, Value};

use super::directory::{rfc3339, Org, OrgDomain};
use super::{random_digits, IdpKind, Simulator};
use crate::model::normalize_domain;
use crate::oidc::params::Params;
use crate::pages::{self, escape};

/// Deliveries the portal lists.
const KEEP_DELIVERIES: usize = 20;

/// One webhook sent, as the portal shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: u64,
    pub event_type: String,
    pub organization_id: String,
    /// The endpoint's status code, or why nothing came back.
    pub result: String,
}

/// `organization.domain_created` → `Organization Domain Created` (the envelope's `display_name`).
fn display_name(event_type: &str) -> String {
    event_type
        .split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Simulator {
    /// Sends one event to the webhook endpoint, if there is one, and records what happened.
    pub(super) async fn send(
        &self,
        event_type: &str,
        object: &str,
        organization_id: &str,
        data: Value,
    ) -> Option<Delivery> {
        let (Some(url), Some(secret)) = (&self.settings.webhook_url, &self.settings.webhook_secret) else {
            return None;
        };
        let now = Self::now();
        let event_id = random_digits(17).unwrap_or_default();
        let envelope = json!({
            "spec_version": "1",
            "id": format!("evt_{event_id}"),
            "type": event_type,
            "object": object,
            "occurred_at": rfc3339(now),
            "environment_id": self.environment_id,
            "organization_id": organization_id,
            "data": data,
            "display_name": display_name(event_type),
        });
        let body = envelope.to_string();
        // Svix message ids: `msg_` and 27 characters.
        let message_id = format!("msg_{}", crate::tokens::random_token(20).unwrap_or_default());
        let result = match crate::webhooks::signature::decode_secret(secret.expose()) {
            Ok(key) => {
                let signature = crate::webhooks::signature::sign(&key, &message_id, now, body.as_bytes());
                let sent = self
                    .http
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &message_id)
                    .header("webhook-timestamp", now.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) => response.status().to_string(),
                    Err(error) => format!("not delivered: {}", error.without_url()),
                }
            }
            Err(why) => format!("not sent: {why}"),
        };
        tracing::info!(event = event_type, organization_id, result = %result, "simulator sent a webhook");
        let delivery = Delivery {
            at: now,
            event_type: event_type.to_owned(),
            organization_id: organization_id.to_owned(),
            result,
        };
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        deliveries.push_back(delivery.clone());
        while deliveries.len() > KEEP_DELIVERIES {
            deliveries.pop_front();
        }
        Some(delivery)
    }

    /// Sets a domain's status; the domain's event data after the change.
    fn set_status(&self, domain: &str, status: &'static str) -> Option<(String, Value)> {
        let mut directory = self.directory();
        let org = directory.iter_mut().find(|o| o.domains.iter().any(|d| d.domain == domain))?;
        let entry = org.domains.iter_mut().find(|d| d.domain == domain)?;
        entry.status = status;
        entry.updated_at = Self::now();
        let data = entry.event_json(&org.id, &self.environment_id);
        Some((org.id.clone(), data))
    }
}

/// The portal's organizations-and-domains section: what Scalekit's dashboard would show, with
/// forms to add and remove domains, and the last webhooks sent.
pub(super) fn admin_section(sim: &Simulator) -> String {
    let directory = sim.directory();
    let rows: String = directory
        .iter()
        .flat_map(|o| {
            o.domains.iter().map(move |d| {
                format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape(&o.display_name),
                    escape(&o.id),
                    escape(&d.domain),
                    d.status
                )
            })
        })
        .collect();
    let options: String = directory
        .iter()
        .map(|o| {
            format!("<option value=\"{id}\">{name} ({id})</option>", id = escape(&o.id), name = escape(&o.display_name))
        })
        .collect();
    let domains: String = directory
        .iter()
        .flat_map(|o| o.domains.iter().map(|d| format!("<option value=\"{d}\">{d}</option>", d = escape(&d.domain))))
        .collect();
    drop(directory);
    let webhooks = match &sim.settings.webhook_url {
        Some(url) => format!("Changes are sent as signed webhooks to <code>{}</code>.", escape(url)),
        None => "No webhook endpoint is configured: the broker sees changes at its next sync.".to_owned(),
    };
    let deliveries: String = sim
        .deliveries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .map(|d| {
            format!(
                "<li>{} <code>{}</code> ({}): {}</li>",
                rfc3339(d.at),
                escape(&d.event_type),
                escape(&d.organization_id),
                escape(&d.result)
            )
        })
        .collect();
    format!(
        "<section><h2>Organizations and domains</h2><p>{webhooks}</p>\
<table><tr><th>Organization</th><th>Id</th><th>Domain</th><th>Status</th></tr>{rows}</table>\
<form method=\"post\" action=\"portal/domains\"><h3>Add a domain</h3>\
<label for=\"add-domain\">Domain</label> <input id=\"add-domain\" name=\"domain\" placeholder=\"newco.example\" required> \
<label for=\"add-org\">to</label> <select id=\"add-org\" name=\"organization_id\">\
<option value=\"\">a new organization (with an SSO connection)</option>{options}</select> \
<label for=\"add-verification\">verified</label> <select id=\"add-verification\" name=\"verification\">\
<option value=\"dns\">by DNS (pending, then verified)</option><option value=\"admin\">by an admin (at once)</option>\
<option value=\"pending\">not yet (stays pending)</option><option value=\"failed\">never (DNS check fails)</option></select> \
<button type=\"submit\">Add</button></form>\
<form method=\"post\" action=\"portal/domains/delete\"><h3>Remove a domain</h3>\
<label for=\"remove-domain\">Domain</label> <select id=\"remove-domain\" name=\"domain\">{domains}</select> \
<button type=\"submit\">Remove</button></form>\
<h3>Webhooks sent</h3><ul>{deliveries}</ul></section>"
    )
}

pub(super) fn result_page(sim: &Simulator, title: &str, done: &str, deliveries: &[Delivery]) -> Response {
    let sent: String = deliveries
        .iter()
        .map(|d| format!("<li><code>{}</code>: {}</li>", escape(&d.event_type), escape(&d.result)))
        .collect();
    let sent = if deliveries.is_empty() {
        "<p>No webhook was sent (none is configured).</p>".to_owned()
    } else {
        format!("<p>Webhooks sent:</p><ul>{sent}</ul>")
    };
    let body = format!(
        "<h1>{}</h1><p>{done}</p>{sent}<p><a href=\"{}/portal\">Back to the portal</a></p>",
        escape(title),
        escape(&sim.settings.issuer)
    );
    pages::page(StatusCode::OK, title, &body)
}

pub(super) async fn form(body: Body) -> Option<Params> {
    body.into_bytes_limit(16 * 1024).await.ok().map(|bytes| Params::parse(&bytes))
}

/// `POST /portal/domains`: adds `domain` to `organization_id` (empty: a new organization named
/// after it, with an enabled OIDC connection), verified as `verification` says.
#[handler]
pub(super) async fn add_domain(body: Body, sim: Data<&Arc<Simulator>>) -> Response {
    let refuse = |why: &str| pages::error_page(StatusCode::BAD_REQUEST, "Domain not added", why);
    let Some(params) = form(body).await else { return refuse("The form could not be read.") };
    let get = |name| params.get(name).ok().flatten().unwrap_or("");
    let Ok(domain) = normalize_domain(get("domain")) else { return refuse("Enter a domain such as newco.example.") };
    let (initial, method) = match get("verification") {
        "admin" => ("VERIFIED", "ADMIN"),
        "dns" | "pending" | "failed" | "" => ("PENDING", "DNS"),
        _ => return refuse("Pick how the domain is verified."),
    };
    let now = Simulator::now();
    let slug = domain.replace(['.', '-'], "_");
    let entry = OrgDomain {
        id: format!("dom_{slug}"),
        domain: domain.clone(),
        status: initial,
        method,
        created_at: now,
        updated_at: now,
    };
    let (organization_id, new_org) = {
        let mut directory = sim.directory();
        if let Some(owner) = directory.iter().find(|o| o.domains.iter().any(|d| d.domain == domain)) {
            return refuse(&format!("{domain} already belongs to {}.", owner.id));
        }
        match get("organization_id") {
            "" => {
                let id = format!("org_{slug}");
                if directory.iter().any(|o| o.id == id) {
                    return refuse(&format!("The organization {id} exists: add the domain to it."));
                }
                let org = Org {
                    id: id.clone(),
                    display_name: domain.clone(),
                    connection: Some((format!("conn_{slug}"), true)),
                    domains: vec![entry.clone()],
                    default_user: format!("someone@{domain}"),
                    idp: IdpKind::Oidc,
                    created_at: now,
                };
                let created = org.json(&sim.settings.organization_metadata);
                directory.push(org);
                (id, Some(created))
            }
            existing => match directory.iter_mut().find(|o| o.id == existing) {
                Some(org) => {
                    org.domains.push(entry.clone());
                    (org.id.clone(), None)
                }
                None => return refuse("Pick an organization on the portal."),
            },
        }
    };
    let mut sent = Vec::new();
    if let Some(created) = new_org {
        sent.extend(sim.send("organization.created", "Organization", &organization_id, created).await);
        let connection = sim.directory().iter().find(|o| o.id == organization_id).and_then(Org::connection_json);
        if let Some(connection) = connection {
            let data = json!({
                "id": connection["id"], "organization_id": organization_id, "connection_type": "OIDC",
                "provider": "IDP_SIMULATOR", "enabled": true, "status": "COMPLETED",
            });
            sent.extend(sim.send("organization.sso_enabled", "Connection", &organization_id, data).await);
        }
    }
    let data = entry.event_json(&organization_id, &sim.environment_id);
    sent.extend(sim.send("organization.domain_created", "Organization", &organization_id, data).await);
    // The DNS check, done at once: Scalekit reports its outcome as its own event.
    let outcome = match get("verification") {
        "dns" | "" => Some(("VERIFIED", "organization.domain_dns_verification_success")),
        "failed" => Some(("FAILED", "organization.domain_dns_verification_failed")),
        _ => None,
    };
    if let Some((status, event)) = outcome {
        if let Some((org, data)) = sim.set_status(&domain, status) {
            sent.extend(sim.send(event, "Organization", &org, data).await);
        }
    }
    let status = sim
        .directory()
        .iter()
        .flat_map(|o| o.domains.iter())
        .find(|d| d.domain == domain)
        .map(|d| d.status)
        .unwrap_or("");
    result_page(
        &sim,
        "Domain added",
        &format!(
            "{} is an SSO domain of {} ({status}). Users at it, such as someone@{}, sign in through it.",
            escape(&domain),
            escape(&organization_id),
            escape(&domain)
        ),
        &sent,
    )
}

/// `POST /portal/domains/delete`: removes `domain` from its organization.
#[handler]
pub(super) async fn remove_domain(body: Body, sim: Data<&Arc<Simulator>>) -> Response {
    let refuse = |why: &str| pages::error_page(StatusCode::BAD_REQUEST, "Domain not removed", why);
    let Some(params) = form(body).await else { return refuse("The form could not be read.") };
    let Ok(domain) = normalize_domain(params.get("domain").ok().flatten().unwrap_or("")) else {
        return refuse("Pick a domain on the portal.");
    };
    let removed = {
        let mut directory = sim.directory();
        directory.iter_mut().find_map(|org| {
            let at = org.domains.iter().position(|d| d.domain == domain)?;
            let entry = org.domains.remove(at);
            Some((org.id.clone(), entry))
        })
    };
    let Some((organization_id, entry)) = removed else { return refuse("No organization has that domain.") };
    let data = entry.event_json(&organization_id, &sim.environment_id);
    let sent: Vec<Delivery> =
        sim.send("organization.domain_deleted", "Organization", &organization_id, data).await.into_iter().collect();
    result_page(
        &sim,
        "Domain removed",
        &format!("{} is no longer a domain of {}.", escape(&domain), escape(&organization_id)),
        &sent,
    )
}
