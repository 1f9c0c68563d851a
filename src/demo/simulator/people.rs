//! The portal's directory: what an IT admin does in Okta or Entra ID to a user, sent as
//! Scalekit's directory sync events (research/lifecycle.md §1.3), signed like every webhook of
//! the simulator. Deactivating sends `user_updated` with `active: false` (Okta's
//! "deactivate"), deleting sends `user_deleted`, reactivating `user_updated` with `active:
//! true`; a change of groups sends `user_updated` with the full new set, as Scalekit does.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem::{handler, Body, Response};
use serde_json::{json, Value};

use super::{random_digits, Simulator};
use crate::pages::{self, escape};

/// A user of a simulated directory, as the portal last changed them.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub id: String,
    pub organization_id: String,
    pub email: String,
    pub active: bool,
    pub groups: Vec<String>,
}

impl DirectoryUser {
    /// `DirectoryUserEventData`.
    fn event_data(&self) -> Value {
        let local = self.email.split('@').next().unwrap_or_default();
        let given = local.chars().next().map(|c| c.to_uppercase().chain(local.chars().skip(1)).collect::<String>());
        json!({
            "id": self.id,
            "organization_id": self.organization_id,
            "dp_id": format!("00u{}", &self.id[8..].chars().take(17).collect::<String>()),
            "email": self.email,
            "active": self.active,
            "given_name": given,
            "family_name": "Example",
            "name": format!("{} Example", given.clone().unwrap_or_default()),
            "preferred_username": self.email,
            "groups": self.groups.iter().map(|name| json!({
                "id": format!("dirgroup_{}", name.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
                "name": name,
            })).collect::<Vec<_>>(),
            "roles": [],
            "custom_attributes": {},
            "raw_attributes": {},
        })
    }
}

/// The portal's directory section.
pub(super) fn section(sim: &Simulator) -> String {
    let users = sim.people();
    let rows: String = users
        .iter()
        .map(|u| {
            format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&u.email),
                escape(&u.organization_id),
                if u.active { "active" } else { "deactivated" },
                escape(&u.groups.join(", "))
            )
        })
        .collect();
    let table = if users.is_empty() {
        "<p>No directory user has been changed yet.</p>".to_owned()
    } else {
        format!("<table><tr><th>User</th><th>Organization</th><th>Status</th><th>Groups</th></tr>{rows}</table>")
    };
    format!(
        "<section><h2>Directory (SCIM)</h2><p>What the IT admin does to a user in their directory; Scalekit sends \
it as a directory event.</p>{table}\
<form method=\"post\" action=\"portal/directory\"><h3>Change a user</h3>\
<label for=\"dir-email\">Email</label> <input id=\"dir-email\" name=\"email\" value=\"alice@example.com\" required> \
<label for=\"dir-action\">Action</label> <select id=\"dir-action\" name=\"action\">\
<option value=\"deactivate\">Deactivate (deprovision)</option><option value=\"reactivate\">Reactivate</option>\
<option value=\"delete\">Delete</option><option value=\"groups\">Set groups</option></select> \
<label for=\"dir-groups\">Groups (comma separated)</label> <input id=\"dir-groups\" name=\"groups\" placeholder=\"Engineering, Admins\"> \
<button type=\"submit\">Apply</button></form></section>"
    )
}

/// `POST /portal/directory`: `email`, `action` (`deactivate`, `reactivate`, `delete`,
/// `groups`), `groups`.
#[handler]
pub(super) async fn change(body: Body, sim: Data<&Arc<Simulator>>) -> Response {
    let refuse = |why: &str| pages::error_page(StatusCode::BAD_REQUEST, "Directory not changed", why);
    let Some(params) = super::events::form(body).await else { return refuse("The form could not be read.") };
    let get = |name| params.get(name).ok().flatten().unwrap_or("").trim().to_owned();
    let email = get("email").to_lowercase();
    let Some(domain) = crate::model::email_domain(&email) else { return refuse("Enter an email address.") };
    let Some(organization_id) = sim.organization_of_domain(&domain) else {
        return refuse(&format!("No simulated organization has the domain {domain}."));
    };
    let action = get("action");
    let (event_type, user) = {
        let mut people = sim.people();
        let index = match people.iter().position(|u| u.email == email) {
            Some(index) => index,
            None => {
                people.push(DirectoryUser {
                    id: format!("diruser_{}", random_digits(17).unwrap_or_default()),
                    organization_id: organization_id.clone(),
                    email: email.clone(),
                    active: true,
                    groups: Vec::new(),
                });
                people.len() - 1
            }
        };
        let user = &mut people[index];
        let event_type = match action.as_str() {
            "deactivate" => {
                user.active = false;
                "organization.directory.user_updated"
            }
            "reactivate" => {
                user.active = true;
                "organization.directory.user_updated"
            }
            "delete" => {
                user.active = false;
                "organization.directory.user_deleted"
            }
            "groups" => {
                user.groups = get("groups").split(',').map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()).collect();
                "organization.directory.user_updated"
            }
            _ => return refuse("Pick an action."),
        };
        (event_type, user.clone())
    };
    let data = if event_type.ends_with("user_deleted") {
        // `user_deleted` carries only these (research/lifecycle.md §1.3).
        let full = user.event_data();
        json!({ "id": full["id"], "organization_id": full["organization_id"], "dp_id": full["dp_id"], "email": full["email"] })
    } else {
        user.event_data()
    };
    let delivery = sim.send(event_type, "DirectoryUser", &organization_id, data).await;
    let done = format!(
        "{} is now {} in the directory of {}{}.",
        user.email,
        if user.active { "active" } else { "deactivated" },
        organization_id,
        if user.groups.is_empty() { String::new() } else { format!(", in {}", user.groups.join(", ")) }
    );
    super::events::result_page(&sim, "Directory changed", &done, delivery.as_slice())
}
