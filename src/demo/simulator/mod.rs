//! A stand-in for a Scalekit environment and its IdP simulator, for `ssobridge demo` (served
//! in process under `/simulator`) and `ssobridge simulator` (the same code, on its own port):
//! an OpenID Provider that answers as Scalekit documents it (research/scalekit.md), with
//! simulated organizations whose logins complete without any real IdP.
//!
//! What it sends, as Scalekit does:
//! - `/oauth/authorize` routes by `connection_id` > `organization_id` > `domain` (or
//!   `domain_hint`) > the domain of `login_hint`, and answers the broker's redirect URI with
//!   `code` and `state`, or with one of Scalekit's error codes, `error_description` and `state`.
//!   No RFC 9207 `iss` (Scalekit does not document it) unless `iss_on_redirect` is set.
//! - `/oauth/token` (client_secret_post, PKCE S256) returns an RS256 ID token, `kid` `snk_…`
//!   from `/keys`, with `aud` an array, `azp`, `client_id`, `amr: [conn_…]`, `oid`,
//!   `sub = conn_…;<opaque IdP user id>`, `sid: ses_…`, `at_hash`, `c_hash`, `iat`, `exp`, the
//!   email and what the user's IdP says about them (`email_verified` and `name` are optional).
//! - The portal signs users in IdP-initiated: an `idp_initiated_login` token shaped like the
//!   docs' (no `aud`, no `jti`) to the initiate-login URL or to the default redirect URL, or
//!   returns an error (to either, without `state`), as Scalekit's simulator offers. The
//!   initiate-login URL may be a template: `{{key}}` in it is the organization's metadata
//!   value (docs:guides/dashboard/org-redirect-urls), e.g. `…/initiate-login/{{ssobridge_client}}`.
//! - The management API (§7: client_credentials at `/oauth/token`, organizations, their
//!   domains, connections by domain, paginated as documented) over the same organizations,
//!   which the portal can add domains (and organizations) to or remove them from, sending the
//!   signed webhooks Scalekit sends (§8) to a configured endpoint.
//!
//! Routing errors need fixtures: organizations without working SSO (`MISCONFIGURED`) and
//! users with something wrong (`USERS`).

mod api;
pub mod directory;
mod events;
mod people;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, post, Body, EndpointExt, Request, Response, Route};
use serde_json::json;

use self::directory::{Org, OrgRef};
use crate::oidc::error::{json_response, redirect, with_query};
use crate::oidc::params::Params;
use crate::pages::{self, escape};
use crate::secret::Secret;
use crate::tokens::{at_hash, pkce_s256, random_token, secrets_equal, sha256_hex, SigningKey, TokenError};

/// The kind of IdP behind a connection: it only changes how its user ids look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpKind {
    /// Okta-like OIDC: user ids `00u` + 17 characters.
    Oidc,
    /// Entra-like SAML: user ids are GUIDs.
    Saml,
}

/// A simulated customer: one email domain, one organization, one active connection.
#[derive(Debug, Clone)]
pub struct SimulatedOrg {
    pub domain: &'static str,
    pub organization_id: &'static str,
    pub connection_id: &'static str,
    pub default_user: &'static str,
    pub display_name: &'static str,
    pub idp: IdpKind,
}

/// The organizations that sign users in; the demo routes their domains. Their names are
/// contracts (README, tests): Scalekit's test organization has the domains example.com and
/// example.org.
pub const ORGS: &[SimulatedOrg] = &[
    SimulatedOrg {
        domain: "example.com",
        organization_id: "org_example_com",
        connection_id: "conn_example_com",
        default_user: "alice@example.com",
        display_name: "Example Corp (example.com)",
        idp: IdpKind::Oidc,
    },
    SimulatedOrg {
        domain: "example.org",
        organization_id: "org_example_org",
        connection_id: "conn_example_org",
        default_user: "bob@example.org",
        display_name: "Example Org (example.org)",
        idp: IdpKind::Saml,
    },
];

/// An organization whose SSO does not work, to answer Scalekit's configuration errors. The
/// demo routes none of them: a client reaches one by naming it, or by a `login_hint` at its
/// domain (the broker passes unknown domains on).
#[derive(Debug, Clone)]
pub struct Misconfigured {
    pub organization_id: &'static str,
    pub domain: &'static str,
    /// A connection that exists but is not enabled; none at all when `None`.
    pub inactive_connection: Option<&'static str>,
}

pub const MISCONFIGURED: &[Misconfigured] = &[
    // An organization with no SSO connection: `no_configured_connections`.
    Misconfigured { organization_id: "org_no_sso", domain: "no-sso.example.net", inactive_connection: None },
    // Its only connection is disabled: `no_active_connections`, or `connection_not_active`
    // when the connection is named.
    Misconfigured {
        organization_id: "org_sso_off",
        domain: "sso-off.example.net",
        inactive_connection: Some("conn_sso_off"),
    },
];

/// What a simulated IdP says about one of its users (any other user gets a profile made from
/// the address: `jane.doe@…` is Jane Doe, `email_verified: true`).
#[derive(Debug, Clone)]
pub struct SimulatedUser {
    pub email: &'static str,
    pub account: Account,
    /// Shown on the demo's pages.
    pub note: &'static str,
}

#[derive(Debug, Clone)]
pub enum Account {
    /// Signs in with these attributes; absent ones are not sent (Scalekit documents
    /// `email_verified`, `name`, `given_name` and `family_name` as optional).
    Profile { given_name: &'static str, family_name: &'static str, name: bool, email_verified: bool },
    /// Deactivated at the IdP: `user_not_active`.
    Inactive,
    /// The IdP asserts another address, outside the organization's domains: `invalid_user_domain`.
    Asserts(&'static str),
}

pub const USERS: &[SimulatedUser] = &[
    SimulatedUser {
        email: "carol@example.org",
        account: Account::Profile { given_name: "Carol", family_name: "Jones", name: false, email_verified: false },
        note: "a SAML user: only given_name and family_name, no name, no email_verified",
    },
    SimulatedUser {
        email: "dave@example.org",
        account: Account::Inactive,
        note: "deactivated at the IdP: user_not_active",
    },
    SimulatedUser {
        email: "guest@example.com",
        account: Account::Asserts("guest@partner.example"),
        note: "the IdP asserts guest@partner.example: invalid_user_domain",
    },
];

/// Scalekit's authorization errors with their documented descriptions
/// (docs:sso/reference/sso-integration-errors): the simulator sends these texts as
/// `error_description`.
pub const ERRORS: &[(&str, &str)] = &[
    ("invalid_redirect_uri", "Redirect URI is not part of the pre-approved list of redirect URIs"),
    (
        "invalid_connection_selector",
        "Missing organization_id (or) connection_id (or) domain (or) provider in the authorization URL",
    ),
    ("no_active_connections", "There are no active SSO connections configured to process the single sign-on request"),
    ("connection_not_active", "The configured connection is not active"),
    ("no_configured_connections", "No active SSO connections configured"),
    ("invalid_organization_id", "Invalid organization ID"),
    ("invalid_connection_id", "Invalid connection ID"),
    ("domain_not_found", "No domain specified for the SSO connection(s)"),
    ("invalid_user_domain", "User's domain not allowed for this SSO connection"),
    ("invalid_client", "The client application is not recognized or not configured correctly"),
    ("application_not_active", "The application is inactive"),
    ("invalid_request", "The authorization request contains invalid or missing parameters"),
    ("unauthorized", "The request is unauthorized"),
    ("user_not_active", "The user account is inactive"),
    ("server_error", "The server could not complete the request"),
    ("mandatory_attribute_missing", "Missing mandatory user attributes"),
    ("invalid_id_token", "Invalid ID token"),
    ("failed_to_exchange_token", "Token exchange failure due to incorrect client_secret"),
    ("user_info_retrieve_failed", "User info retrieval failed"),
    ("invalid_saml_metadata", "Incorrect SAML metadata configuration"),
    ("invalid_saml_response", "Invalid SAML response"),
    ("invalid_saml_request", "The SAML request is invalid"),
    ("invalid_saml_form_params", "The SAML form parameters are invalid or malformed"),
    ("signature_validation_failed", "Failed signature validation"),
    ("invalid_acs_url", "Invalid ACS URL"),
    ("invalid_assertion_url", "The assertion URL in the SAML request is invalid"),
    ("invalid_status", "Invalid status"),
    ("malformed_saml_response", "Marshalling error"),
    ("assertion_expired", "Expired SAML assertion"),
    ("response_expired", "Expired SAML response"),
    ("authentication_not_completed", "The authentication flow was not completed"),
    ("user_login_required", "User login is required to continue"),
];

/// What the portal's "error" choice can return: which code Scalekit's own simulator sends is
/// not documented, so the user picks one a failing IdP would cause.
const PORTAL_ERRORS: &[&str] = &[
    "authentication_not_completed",
    "user_not_active",
    "mandatory_attribute_missing",
    "invalid_saml_response",
    "signature_validation_failed",
    "assertion_expired",
    "user_login_required",
    "server_error",
];

fn describe(code: &str) -> &'static str {
    ERRORS.iter().find(|(c, _)| *c == code).map(|(_, d)| *d).unwrap_or("")
}

/// Scalekit's codes live about ten minutes (docs:authenticate/fsa/complete-login).
const CODE_TTL: Duration = Duration::from_secs(600);
/// Not documented; the docs' examples vary (30 min to 72 h).
const ID_TOKEN_TTL: u64 = 3600;
/// `expiresIn: 899` in the docs' auth-result examples.
const ACCESS_TOKEN_TTL: u64 = 899;
/// The docs' IdP-initiated example lives 300 s.
const IDP_INITIATED_TTL: u64 = 300;

/// Proof that the caller is a development command (`demo`, `simulator`): the simulator cannot
/// be built without it.
pub struct DemoOnly(());

impl DemoOnly {
    /// Only `demo` and `simulator` call this; it refuses when the environment says production.
    pub fn claim() -> Result<DemoOnly, String> {
        let environment = std::env::var("SSOBRIDGE_ENV").unwrap_or_default();
        if environment.eq_ignore_ascii_case("production") || environment.eq_ignore_ascii_case("prod") {
            return Err(
                "the upstream simulator is a development tool and refuses to run with SSOBRIDGE_ENV=production"
                    .to_owned(),
            );
        }
        Ok(DemoOnly(()))
    }
}

/// What the simulator is told about its environment and its one client (the broker).
#[derive(Debug, Clone)]
pub struct SimulatorSettings {
    /// The environment URL: `iss`, and the base of every endpoint.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Allowed callback URLs, matched exactly; the first is the "default redirect URL" the
    /// portal delivers IdP-initiated logins and errors to.
    pub redirect_uris: Vec<String>,
    /// Where IdP-initiated logins go (Scalekit's Initiate Login URL); `{{key}}` in it is
    /// replaced by the organization's metadata value for `key`, as Scalekit does.
    pub initiate_login_uri: Option<String>,
    /// The metadata every organization carries (Scalekit: key and value strings, set per
    /// organization in its dashboard or API).
    pub organization_metadata: Vec<(String, String)>,
    /// Adds RFC 9207 `iss` to authorization responses and says so in discovery.
    pub iss_on_redirect: bool,
    /// Where the portal's changes are sent as signed webhooks (the broker's
    /// `/webhooks/scalekit`), with `webhook_secret` (`whsec_…`); none: no webhooks.
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("{0}")]
    Key(#[from] TokenError),
    #[error("{0}")]
    Setting(String),
}

impl SimulatorSettings {
    /// Scalekit's rules for redirect URLs (docs:guides/dashboard/redirects): absolute, no query
    /// string, no fragment, at most 256 characters.
    fn check(&self) -> Result<(), SimulatorError> {
        let invalid = |what: &str, uri: &str, why: &str| SimulatorError::Setting(format!("{what} {uri}: {why}"));
        if url::Url::parse(&self.issuer).is_err() {
            return Err(invalid("issuer URL", &self.issuer, "not an absolute URL"));
        }
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err(SimulatorError::Setting("a client id and a client secret are required".to_owned()));
        }
        if self.redirect_uris.is_empty() {
            return Err(SimulatorError::Setting("at least one redirect URI is required".to_owned()));
        }
        let uris = self.redirect_uris.iter().map(|u| ("redirect URI", u));
        for (what, uri) in uris.chain(self.initiate_login_uri.iter().map(|u| ("initiate-login URI", u))) {
            let parsed = url::Url::parse(uri).map_err(|_| invalid(what, uri, "not an absolute URL"))?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(invalid(what, uri, "Scalekit allows no query string and no fragment"));
            }
            if uri.len() > 256 {
                return Err(invalid(what, uri, "Scalekit allows at most 256 characters"));
            }
        }
        match (&self.webhook_url, &self.webhook_secret) {
            (None, None) => {}
            (Some(url), Some(secret)) => {
                if url::Url::parse(url).is_err() {
                    return Err(invalid("webhook URL", url, "not an absolute URL"));
                }
                crate::webhooks::signature::decode_secret(secret.expose())
                    .map_err(|why| SimulatorError::Setting(format!("webhook secret: {why}")))?;
            }
            _ => return Err(SimulatorError::Setting("a webhook URL needs a webhook secret, and back".to_owned())),
        }
        Ok(())
    }

    /// The initiate-login URL for an organization: its template's `{{key}}`s replaced by the
    /// organization's metadata, percent-encoded. A key it lacks fails, as at Scalekit ("the
    /// template is not expanded and the request is rejected").
    fn initiate_login_uri(&self) -> Result<Option<String>, String> {
        let Some(template) = &self.initiate_login_uri else { return Ok(None) };
        let mut expanded = String::new();
        let mut rest = template.as_str();
        while let Some(start) = rest.find("{{") {
            let end = rest[start..].find("}}").ok_or_else(|| format!("{template}: an unclosed {{{{"))? + start;
            let key = rest[start + 2..end].trim();
            let value = self
                .organization_metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("the organization has no metadata {key:?} for the template {template}"))?;
            expanded.push_str(&rest[..start]);
            // RFC 3986 unreserved characters as they are, every other byte percent-encoded.
            for byte in value.bytes() {
                match byte {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        expanded.push(char::from(byte))
                    }
                    other => expanded.push_str(&format!("%{other:02X}")),
                }
            }
            rest = &rest[end + 2..];
        }
        expanded.push_str(rest);
        Ok(Some(expanded))
    }
}

/// The user an authorization request signs in, and what their IdP says.
#[derive(Debug, Clone)]
struct SignedIn {
    org: OrgRef,
    email: String,
    given_name: String,
    family_name: String,
    name: Option<String>,
    email_verified: Option<bool>,
}

struct Issued {
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    user: SignedIn,
    sid: String,
    issued_at: Instant,
}

pub struct Simulator {
    settings: SimulatorSettings,
    key: SigningKey,
    codes: Mutex<HashMap<String, Issued>>,
    /// The organizations, their domains and connections.
    directory: Mutex<Vec<Org>>,
    /// `env_…`, as in every API object and event.
    environment_id: String,
    /// Management API tokens (client_credentials) and when they expire.
    api_tokens: Mutex<HashMap<String, Instant>>,
    /// Requests received, by endpoint (`authorize`, and the management API's `token`,
    /// `organizations`, `domains`, `connections`): what tests count.
    requests: Mutex<HashMap<&'static str, u64>>,
    /// The last webhooks sent, newest last, for the portal.
    deliveries: Mutex<VecDeque<events::Delivery>>,
    /// Directory users the portal changed.
    people: Mutex<Vec<people::DirectoryUser>>,
    http: reqwest::Client,
}

impl Simulator {
    pub fn new(_proof: DemoOnly, settings: SimulatorSettings) -> Result<Simulator, SimulatorError> {
        settings.check()?;
        let key = SigningKey::generate_rsa()?.with_kid(&format!("snk_{}", random_digits(17)?))?;
        let http = crate::http::client(Duration::from_secs(10))
            .map_err(|e| SimulatorError::Setting(format!("HTTP client: {e}")))?;
        Ok(Simulator {
            settings,
            key,
            codes: Mutex::new(HashMap::new()),
            directory: Mutex::new(directory::seed(Self::now())),
            environment_id: format!("env_{}", random_digits(17)?),
            api_tokens: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
            deliveries: Mutex::new(VecDeque::new()),
            people: Mutex::new(Vec::new()),
            http,
        })
    }

    fn people(&self) -> std::sync::MutexGuard<'_, Vec<people::DirectoryUser>> {
        self.people.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The organization a domain belongs to, whatever its verification status.
    fn organization_of_domain(&self, domain: &str) -> Option<String> {
        self.directory().iter().find(|o| o.domains.iter().any(|d| d.domain == domain)).map(|o| o.id.clone())
    }

    fn directory(&self) -> std::sync::MutexGuard<'_, Vec<Org>> {
        // Each use is a short read or one edit: a panic cannot leave it half written.
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many requests `endpoint` (`authorize`, `token` for client_credentials,
    /// `organizations`, `domains`, `connections`) has answered.
    pub fn requests(&self, endpoint: &str) -> u64 {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).get(endpoint).copied().unwrap_or(0)
    }

    fn count(&self, endpoint: &'static str) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry(endpoint).or_default() += 1;
    }

    /// Expires every management API token at once, as a rotated credential would: the next
    /// call with one is answered 401.
    pub fn expire_api_tokens(&self) {
        self.api_tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn settings(&self) -> &SimulatorSettings {
        &self.settings
    }

    /// The `kid` of the signing key, as published at `/keys`.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The simulator's routes, relative to the issuer URL.
    pub fn routes(self: Arc<Self>) -> impl poem::Endpoint {
        Route::new()
            .at("/.well-known/openid-configuration", get(discovery))
            .at("/keys", get(keys))
            .at("/oauth/authorize", get(authorize))
            .at("/oauth/token", post(token))
            .at("/portal", get(portal))
            .at("/portal/start", get(portal_start))
            .at("/portal/error", get(portal_error))
            .at("/portal/domains", post(events::add_domain))
            .at("/portal/domains/delete", post(events::remove_domain))
            .at("/portal/directory", post(people::change))
            .at("/api/v1/organizations", get(api::organizations))
            .at("/api/v1/organizations/:organization_id/domains", get(api::domains))
            .at("/api/v1/connections", get(api::connections))
            .data(self)
    }

    /// Scalekit's precedence (docs:sso/guides/authorization-url): `connection_id` >
    /// `organization_id` > `domain` (the SDKs also send `domain_hint`) > the domain of
    /// `login_hint`. One of them is required. The error is a Scalekit code.
    fn route(&self, params: &Params) -> Result<SignedIn, &'static str> {
        let value = |name| params.get(name).ok().flatten().map(str::to_ascii_lowercase);
        let login_hint = value("login_hint");
        let org = {
            let directory = self.directory();
            if let Some(connection) = value("connection_id") {
                match directory.iter().find(|o| o.connection.as_ref().is_some_and(|(c, _)| *c == connection)) {
                    Some(org) => org.signing().ok_or("connection_not_active")?,
                    None => return Err("invalid_connection_id"),
                }
            } else if let Some(organization) = value("organization_id") {
                directory.iter().find(|o| o.id == organization).ok_or("invalid_organization_id")?.sign_in_target()?
            } else if let Some(domain) = value("domain").or_else(|| value("domain_hint")) {
                by_domain(&directory, &domain)?
            } else if let Some(hint) = &login_hint {
                let domain = match hint.rsplit_once('@') {
                    Some((local, domain)) if !local.is_empty() && !domain.is_empty() => domain,
                    _ => return Err("invalid_connection_selector"),
                };
                by_domain(&directory, domain)?
            } else {
                return Err("invalid_connection_selector");
            }
        };
        // The hinted user when they belong to the organization (the IdP's login page would
        // be prefilled with them), else its default user.
        let email = login_hint
            .filter(|h| h.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && org.domains.iter().any(|o| o == d)))
            .unwrap_or_else(|| org.default_user.clone());
        sign_in(org, email)
    }

    fn redirect_with<'a>(&'a self, redirect_uri: &str, mut params: Vec<(&'a str, &'a str)>) -> Response {
        if self.settings.iss_on_redirect {
            params.push(("iss", &self.settings.issuer));
        }
        redirect(&with_query(redirect_uri, &params))
    }

    fn now() -> u64 {
        crate::clock::now_secs()
    }

    /// An `idp_initiated_login` token as the docs show it (docs:sso/guides/idp-init-sso):
    /// `organization_id`, `connection_id`, `login_hint`, `exp`, `nbf`, `iat`, `iss`, and
    /// `relay_state` when there is one; no `aud`, no `jti`.
    fn idp_initiated_token(
        &self,
        org: &OrgRef,
        login_hint: &str,
        relay_state: Option<&str>,
    ) -> Result<String, TokenError> {
        let now = Self::now();
        let mut claims = json!({
            "organization_id": org.organization_id,
            "connection_id": org.connection_id,
            "login_hint": login_hint,
            "exp": now + IDP_INITIATED_TTL,
            "nbf": now,
            "iat": now,
            "iss": self.settings.issuer,
        });
        if let Some(relay_state) = relay_state {
            claims["relay_state"] = json!(relay_state);
        }
        self.key.sign_jwt(&claims)
    }
}

/// The organization that routes `domain` (a verified domain only, as at Scalekit), or its
/// configuration error, or `domain_not_found`.
fn by_domain(directory: &[Org], domain: &str) -> Result<OrgRef, &'static str> {
    let org = directory.iter().find(|o| o.routing_domains().any(|d| d == domain)).ok_or("domain_not_found")?;
    org.sign_in_target()
}

/// What the organization's IdP says when `email` signs in.
fn sign_in(org: OrgRef, email: String) -> Result<SignedIn, &'static str> {
    let org_word = capitalize(org.domains.first().and_then(|d| d.split('.').next()).unwrap_or(""));
    let derived = |email: &str| {
        let local = email.split('@').next().unwrap_or("user");
        let given = capitalize(local.split(['.', '_', '+', '-']).next().unwrap_or(local));
        let family = local.split('.').nth(1).map(capitalize).unwrap_or_else(|| org_word.clone());
        (given, family)
    };
    match USERS.iter().find(|u| u.email == email).map(|u| &u.account) {
        Some(Account::Inactive) => Err("user_not_active"),
        // Scalekit checks the address the IdP asserts against the organization's domains.
        Some(Account::Asserts(other))
            if !other.rsplit_once('@').is_some_and(|(_, d)| org.domains.iter().any(|o| o == d)) =>
        {
            Err("invalid_user_domain")
        }
        Some(Account::Asserts(other)) => {
            let (given_name, family_name) = derived(other);
            let name = Some(format!("{given_name} {family_name}"));
            Ok(SignedIn { org, email: (*other).to_owned(), given_name, family_name, name, email_verified: Some(true) })
        }
        Some(Account::Profile { given_name, family_name, name, email_verified }) => Ok(SignedIn {
            org,
            name: name.then(|| format!("{given_name} {family_name}")),
            email_verified: email_verified.then_some(true),
            given_name: (*given_name).to_owned(),
            family_name: (*family_name).to_owned(),
            email,
        }),
        None => {
            let (given_name, family_name) = derived(&email);
            let name = Some(format!("{given_name} {family_name}"));
            Ok(SignedIn { org, email, given_name, family_name, name, email_verified: Some(true) })
        }
    }
}

/// The IdP's own id for a user: opaque, stable, never the email (Scalekit's `sub` is
/// `<connection_id>;<IdP user id>`).
pub fn idp_user_id(idp: IdpKind, email: &str) -> String {
    let hash = sha256_hex(&email.to_ascii_lowercase());
    match idp {
        IdpKind::Oidc => format!("00u{}", &hash[..17]),
        IdpKind::Saml => {
            format!("{}-{}-{}-{}-{}", &hash[..8], &hash[8..12], &hash[12..16], &hash[16..20], &hash[20..32])
        }
    }
}

/// `count` random decimal digits (Scalekit's ids are `snk_`, `ses_`, `conn_` + digits).
fn random_digits(count: usize) -> Result<String, TokenError> {
    let mut bytes = vec![0u8; count];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    // A modulo bias of a few percent does not matter for identifiers of a simulator.
    Ok(bytes.iter().enumerate().map(|(i, b)| char::from(b'0' + if i == 0 { 1 + b % 9 } else { b % 10 })).collect())
}

#[handler]
fn discovery(sim: Data<&Arc<Simulator>>) -> Response {
    let issuer = &sim.settings.issuer;
    // Scalekit publishes no example of its discovery document beyond `issuer` and `jwks_uri`:
    // the endpoints are the documented ones, the rest what the simulator does.
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "aud", "azp", "client_id", "sub", "oid", "amr", "sid", "at_hash", "c_hash", "iat", "exp",
            "email", "email_verified", "name", "given_name", "family_name",
        ],
    });
    if sim.settings.iss_on_redirect {
        document["authorization_response_iss_parameter_supported"] = json!(true);
    }
    json_response(StatusCode::OK, &document)
}

#[handler]
fn keys(sim: Data<&Arc<Simulator>>) -> Response {
    let mut jwk = sim.key.public_jwk().clone();
    // As in Scalekit's JWKS: {use, kty, kid, alg, n, e}.
    jwk["alg"] = json!("RS256");
    json_response(StatusCode::OK, &json!({"keys": [jwk]}))
}

#[handler]
fn authorize(req: &Request, sim: Data<&Arc<Simulator>>) -> Response {
    sim.count("authorize");
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let get = |name| params.get(name).ok().flatten();
    // Before the client and redirect URI are known good, errors cannot be redirected.
    if get("client_id") != Some(sim.settings.client_id.as_str()) {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_client", describe("invalid_client"));
    }
    let Some(redirect_uri) = get("redirect_uri").filter(|r| sim.settings.redirect_uris.iter().any(|u| u == r)) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "invalid_redirect_uri", describe("invalid_redirect_uri"));
    };
    // `state` comes back with errors too: undocumented for Modular SSO, shown in the FSA docs.
    let state = get("state");
    let error = |code: &str| {
        let mut query = vec![("error", code), ("error_description", describe(code))];
        query.extend(state.map(|s| ("state", s)));
        sim.redirect_with(redirect_uri, query)
    };
    let scope_has_openid = get("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    // PKCE is optional; when sent it is S256 (the only method the SDKs name).
    let pkce_ok =
        matches!((get("code_challenge"), get("code_challenge_method")), (Some(_), Some("S256")) | (None, None));
    if get("response_type") != Some("code") || !scope_has_openid || !pkce_ok {
        return error("invalid_request");
    }
    let user = match sim.route(&params) {
        Ok(user) => user,
        Err(code) => return error(code),
    };
    let (Ok(code), Ok(sid)) = (random_token(32), random_digits(17)) else {
        return error("server_error");
    };
    let issued = Issued {
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: get("code_challenge").map(str::to_owned),
        nonce: get("nonce").map(str::to_owned),
        user,
        sid: format!("ses_{sid}"),
        issued_at: Instant::now(),
    };
    {
        let mut codes = sim.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, i| i.issued_at.elapsed() < CODE_TTL);
        codes.insert(code.clone(), issued);
    }
    let mut query = vec![("code", code.as_str())];
    query.extend(state.map(|s| ("state", s)));
    sim.redirect_with(redirect_uri, query)
}

#[handler]
async fn token(body: Body, sim: Data<&Arc<Simulator>>) -> Response {
    let refuse = |status: StatusCode, error: &str| json_response(status, &json!({"error": error}));
    let params = match body.into_bytes_limit(16 * 1024).await {
        Ok(bytes) => Params::parse(&bytes),
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "invalid_request"),
    };
    let get = |name| params.get(name).ok().flatten();
    // Credentials in the body (client_secret_post), as every Scalekit SDK sends them; HTTP
    // Basic is not documented.
    let authenticated = get("client_id") == Some(sim.settings.client_id.as_str())
        && secrets_equal(get("client_secret").unwrap_or(""), sim.settings.client_secret.expose());
    if !authenticated {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match get("grant_type") {
        Some("authorization_code") => {}
        // The management API's token (research/scalekit.md §7.1).
        Some("client_credentials") => return api::issue_token(&sim),
        _ => return refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let Some(code) = get("code") else { return refuse(StatusCode::BAD_REQUEST, "invalid_request") };
    let issued = sim.codes.lock().unwrap_or_else(|p| p.into_inner()).remove(code);
    let Some(issued) = issued.filter(|i| i.issued_at.elapsed() < CODE_TTL) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let pkce_ok = match (&issued.code_challenge, get("code_verifier")) {
        (Some(challenge), Some(verifier)) => pkce_s256(verifier) == *challenge,
        (None, None) => true,
        _ => false,
    };
    if !pkce_ok || get("redirect_uri") != Some(issued.redirect_uri.as_str()) {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let Ok(access_token) = random_token(32) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    let user = &issued.user;
    let client_id = sim.settings.client_id.as_str();
    let now = Simulator::now();
    // The claims of docs:guides/idtoken-claims and of the decoded token in docs:sso/quickstart.
    let mut claims = json!({
        "iss": sim.settings.issuer,
        "aud": [client_id],
        "azp": client_id,
        "client_id": client_id,
        "sub": format!("{};{}", user.org.connection_id, idp_user_id(user.org.idp, &user.email)),
        "oid": user.org.organization_id,
        "amr": [user.org.connection_id],
        "sid": issued.sid,
        "at_hash": at_hash(&access_token),
        // OIDC Core §3.3.2.11: the same construction as at_hash, over the code.
        "c_hash": at_hash(code),
        "iat": now,
        "exp": now + ID_TOKEN_TTL,
        "email": user.email,
        "given_name": user.given_name,
        "family_name": user.family_name,
    });
    if let Some(name) = &user.name {
        claims["name"] = json!(name);
    }
    if let Some(verified) = user.email_verified {
        claims["email_verified"] = json!(verified);
    }
    // Whether Scalekit echoes `nonce` is not documented; a relying party that sends one
    // checks it, so the simulator echoes it.
    if let Some(nonce) = &issued.nonce {
        claims["nonce"] = json!(nonce);
    }
    let Ok(id_token) = sim.key.sign_jwt(&claims) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "id_token": id_token,
        }),
    )
}

/// An IdP portal with a card per simulated organization: sign in IdP-initiated (to the
/// initiate-login URL, or to the default redirect URL as Scalekit's test guide says its
/// simulator does), or return an error as the simulator's "Error" choice does.
#[handler]
fn portal(sim: Data<&Arc<Simulator>>) -> Response {
    let errors: String = PORTAL_ERRORS.iter().map(|c| format!("<option value=\"{c}\">{c}</option>")).collect();
    let default_redirect = sim.settings.redirect_uris.first().map(String::as_str).unwrap_or("");
    let signing: Vec<(String, OrgRef)> =
        sim.directory().iter().filter_map(|o| Some((o.display_name.clone(), o.signing()?))).collect();
    let cards: String = signing
        .iter()
        .map(|(display_name, o)| {
            let initiate = match &sim.settings.initiate_login_uri {
                Some(uri) => format!(
                    "<li><a href=\"portal/start?organization_id={org}\">Sign in to the application</a> \
<small>(IdP-initiated, to the initiate-login URL {})</small></li>",
                    escape(uri),
                    org = o.organization_id
                ),
                None => String::new(),
            };
            format!(
                "<section><h2>{name}</h2><p>as {user}</p><ul>{initiate}\
<li><a href=\"portal/start?organization_id={org}&amp;deliver=redirect\">Sign in, delivered to the default redirect URL</a> \
<small>({redirect})</small></li></ul>\
<form method=\"get\" action=\"portal/error\"><input type=\"hidden\" name=\"organization_id\" value=\"{org}\">\
<label for=\"error-{org}\">Error</label> <select id=\"error-{org}\" name=\"error\">{errors}</select> \
<label for=\"deliver-{org}\">to</label> <select id=\"deliver-{org}\" name=\"deliver\">\
<option value=\"redirect\">the default redirect URL</option><option value=\"initiate\">the initiate-login URL</option></select> \
<button type=\"submit\">Return the error</button></form></section>",
                name = escape(display_name),
                user = escape(&o.default_user),
                org = escape(&o.organization_id),
                redirect = escape(default_redirect),
            )
        })
        .collect();
    let body = format!(
        "<h1>IdP portal (simulated)</h1><p>Your company's app launcher. Each card signs you in to the application \
without visiting it first (IdP-initiated login), or makes the identity provider fail.</p>{cards}{admin}{people}",
        admin = events::admin_section(&sim),
        people = people::section(&sim),
    );
    pages::page(StatusCode::OK, "IdP portal (simulated)", &body)
}

/// A sign-in from the portal: mint an `idp_initiated_login` token, as Scalekit does, and send it
/// to the initiate-login URL, or with `deliver=redirect` to the default redirect URL.
#[handler]
fn portal_start(req: &Request, sim: Data<&Arc<Simulator>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let get = |name| params.get(name).ok().flatten();
    let org = sim.directory().iter().find(|o| Some(o.id.as_str()) == get("organization_id")).and_then(Org::signing);
    let Some(org) = org else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Unknown organization", "Pick a card on the portal.");
    };
    let target = match get("deliver") {
        Some("redirect") => Ok(sim.settings.redirect_uris.first().cloned()),
        _ => sim.settings.initiate_login_uri(),
    };
    let target = match target {
        Ok(target) => target,
        Err(why) => return pages::error_page(StatusCode::BAD_REQUEST, "Initiate-login URL not expanded", &why),
    };
    let Some(target) = target else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "No initiate-login URL",
            "The simulator has no initiate-login URL: deliver to the default redirect URL instead.",
        );
    };
    match sim.idp_initiated_token(&org, &org.default_user, get("relay_state")) {
        Ok(jwt) => redirect(&with_query(&target, &[("idp_initiated_login", &jwt)])),
        Err(_) => pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Simulator error", "Could not sign the token."),
    }
}

/// The portal's "Error" choice: the error goes to the default redirect URL (or with
/// `deliver=initiate` to the initiate-login URL, where the docs' handlers read it too), with no
/// `state` (no request of the application started it).
#[handler]
fn portal_error(req: &Request, sim: Data<&Arc<Simulator>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let get = |name| params.get(name).ok().flatten();
    let known_org =
        sim.directory().iter().any(|o| Some(o.id.as_str()) == get("organization_id") && o.signing().is_some());
    let code = get("error").and_then(|e| PORTAL_ERRORS.iter().find(|c| **c == e));
    let target = match get("deliver") {
        Some("initiate") => sim.settings.initiate_login_uri().ok().flatten(),
        _ => sim.settings.redirect_uris.first().cloned(),
    };
    let (true, Some(code), Some(target)) = (known_org, code, target) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Unknown choice", "Pick an error on the portal.");
    };
    sim.redirect_with(&target, vec![("error", code), ("error_description", describe(code))])
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Runs the simulator on its own listener, its routes under the issuer URL's path, until
/// `shutdown` completes (`ssobridge simulator`).
pub async fn serve(
    simulator: Arc<Simulator>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), crate::state::StartError> {
    let path = url::Url::parse(&simulator.settings.issuer).map(|u| u.path().trim_end_matches('/').to_owned());
    let path = path.unwrap_or_default();
    let routes = Route::new().nest(if path.is_empty() { "/" } else { path.as_str() }, simulator.routes());
    crate::app::serve(listener, routes, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SimulatorSettings {
        SimulatorSettings {
            issuer: "http://127.0.0.1:1".into(),
            client_id: "broker".into(),
            client_secret: Secret::new("s"),
            redirect_uris: vec!["http://127.0.0.1:2/callback".into()],
            initiate_login_uri: Some("http://127.0.0.1:2/initiate-login".into()),
            organization_metadata: Vec::new(),
            iss_on_redirect: false,
            webhook_url: None,
            webhook_secret: None,
        }
    }

    fn route(query: &str) -> Result<(String, String), &'static str> {
        let sim = Simulator::new(DemoOnly(()), settings()).expect("simulator");
        sim.route(&Params::parse(query.as_bytes())).map(|u| (u.org.connection_id.to_owned(), u.email))
    }

    #[test]
    fn routes_by_scalekit_precedence() {
        let alice = Ok(("conn_example_com".to_owned(), "alice@example.com".to_owned()));
        let bob = Ok(("conn_example_org".to_owned(), "bob@example.org".to_owned()));
        assert_eq!(route("connection_id=conn_example_org&organization_id=org_example_com"), bob);
        assert_eq!(route("organization_id=org_example_com&domain=example.org"), alice);
        assert_eq!(route("domain_hint=example.org&login_hint=alice@example.com"), bob);
        assert_eq!(route("login_hint=Alice@Example.COM"), alice);
        assert_eq!(
            route("login_hint=jane.doe@example.org"),
            Ok(("conn_example_org".to_owned(), "jane.doe@example.org".to_owned()))
        );
    }

    #[test]
    fn each_routing_failure_has_its_scalekit_code() {
        assert_eq!(route(""), Err("invalid_connection_selector"));
        assert_eq!(route("login_hint=nobody"), Err("invalid_connection_selector"));
        assert_eq!(route("connection_id=conn_nope"), Err("invalid_connection_id"));
        assert_eq!(route("connection_id=conn_sso_off"), Err("connection_not_active"));
        assert_eq!(route("organization_id=org_nope"), Err("invalid_organization_id"));
        assert_eq!(route("organization_id=org_no_sso"), Err("no_configured_connections"));
        assert_eq!(route("organization_id=org_sso_off"), Err("no_active_connections"));
        assert_eq!(route("login_hint=x@sso-off.example.net"), Err("no_active_connections"));
        assert_eq!(route("domain=unknown.test"), Err("domain_not_found"));
        assert_eq!(route("login_hint=eve@unknown.test"), Err("domain_not_found"));
        assert_eq!(route("login_hint=dave@example.org"), Err("user_not_active"));
        assert_eq!(route("login_hint=guest@example.com"), Err("invalid_user_domain"));
        for (code, _) in ERRORS {
            assert!(!describe(code).is_empty());
        }
    }

    #[test]
    fn users_have_opaque_stable_ids_and_optional_claims() {
        let id = idp_user_id(IdpKind::Oidc, "alice@example.com");
        assert_eq!(id, idp_user_id(IdpKind::Oidc, "ALICE@example.com"));
        assert!(id.starts_with("00u") && id.len() == 20 && !id.contains('@'), "{id}");
        let guid = idp_user_id(IdpKind::Saml, "bob@example.org");
        assert_eq!(guid.len(), 36);
        let example_org = directory::seed(0)[1].signing().expect("example.org signs users in");
        let carol = sign_in(example_org.clone(), "carol@example.org".into()).expect("carol");
        assert_eq!((carol.name, carol.email_verified), (None, None));
        assert_eq!((carol.given_name.as_str(), carol.family_name.as_str()), ("Carol", "Jones"));
        let jane = sign_in(example_org, "jane.doe@example.org".into()).expect("jane");
        assert_eq!((jane.name.as_deref(), jane.email_verified), (Some("Jane Doe"), Some(true)));
    }

    #[test]
    fn the_initiate_login_url_template_takes_the_organizations_metadata() {
        let mut templated = settings();
        templated.initiate_login_uri = Some("http://127.0.0.1:2/initiate-login/{{ssobridge_client}}".into());
        assert!(templated.initiate_login_uri().is_err(), "no such metadata: rejected, as at Scalekit");
        templated.organization_metadata = vec![("ssobridge_client".into(), "auth0 prod".into())];
        assert_eq!(
            templated.initiate_login_uri(),
            Ok(Some("http://127.0.0.1:2/initiate-login/auth0%20prod".to_owned()))
        );
        assert!(Simulator::new(DemoOnly(()), templated).is_ok(), "a template in the path is allowed");
    }

    #[test]
    fn redirect_uris_follow_scalekits_rules() {
        let mut with_query = settings();
        with_query.initiate_login_uri = Some("http://127.0.0.1:2/initiate-login?client_id=x".into());
        assert!(Simulator::new(DemoOnly(()), with_query).is_err());
        let mut none = settings();
        none.redirect_uris.clear();
        assert!(Simulator::new(DemoOnly(()), none).is_err());
    }
}
