//! A stand-in for Scalekit's IdP simulator, for `ssobridge demo` only: an OIDC provider with
//! two simulated organizations that completes logins without any real IdP.
//!
//! It is reached by the broker over HTTP through the same upstream client as a real provider.
//! It signs with EdDSA (Ed25519), the cheapest signature to make and to check (12 and 42 µs
//! here, against 19 and 60 µs for ES256), so that its own tokens cost a login little.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, post, Body, EndpointExt, Request, Response, Route};
use serde_json::json;

use crate::oidc::error::{json_response, redirect, with_query};
use crate::oidc::params::Params;
use crate::pages::{self, escape};
use crate::tokens::{pkce_s256, random_token, secrets_equal, TokenError};

/// A simulated customer: one email domain, one organization, one connection.
#[derive(Debug, Clone)]
pub struct SimulatedOrg {
    pub domain: &'static str,
    pub organization_id: &'static str,
    pub connection_id: &'static str,
    pub default_user: &'static str,
    pub display_name: &'static str,
}

pub const ORGS: &[SimulatedOrg] = &[
    SimulatedOrg {
        domain: "example.com",
        organization_id: "org_example_com",
        connection_id: "conn_example_com",
        default_user: "alice@example.com",
        display_name: "Example Corp (example.com)",
    },
    SimulatedOrg {
        domain: "example.org",
        organization_id: "org_example_org",
        connection_id: "conn_example_org",
        default_user: "bob@example.org",
        display_name: "Example Org (example.org)",
    },
];

const CODE_TTL: Duration = Duration::from_secs(60);

/// Proof that the caller is the `demo` command: the simulator cannot be built without it.
pub struct DemoOnly(());

impl DemoOnly {
    /// Only `demo` calls this; it refuses when the environment says production.
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

struct Issued {
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    org: &'static SimulatedOrg,
    email: String,
    issued_at: Instant,
}

/// The simulator's Ed25519 signing key, made at start.
struct SimulatorKey {
    encoding: jsonwebtoken::EncodingKey,
    kid: String,
    public_jwk: serde_json::Value,
}

impl SimulatorKey {
    fn generate() -> Result<SimulatorKey, TokenError> {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        use base64::Engine;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|e| TokenError::Key(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| TokenError::Key(e.to_string()))?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = random_token(8)?;
        let public_jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"});
        Ok(SimulatorKey { encoding: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()), kid, public_jwk })
    }

    fn public_jwk(&self) -> &serde_json::Value {
        &self.public_jwk
    }

    fn sign_jwt(&self, claims: &serde_json::Value) -> Result<String, TokenError> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| TokenError::Sign)
    }
}

pub struct Simulator {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    broker_url: String,
    key: SimulatorKey,
    codes: Mutex<HashMap<String, Issued>>,
}

impl Simulator {
    /// A simulator at `issuer` (`…/simulator`) accepting one client: the broker.
    pub fn new(
        _proof: DemoOnly,
        issuer: String,
        client_id: String,
        client_secret: String,
        redirect_uri: String,
    ) -> Result<Simulator, TokenError> {
        let broker_url = redirect_uri.trim_end_matches("/callback").to_owned();
        Ok(Simulator {
            issuer,
            client_id,
            client_secret,
            redirect_uri,
            broker_url,
            key: SimulatorKey::generate()?,
            codes: Mutex::new(HashMap::new()),
        })
    }

    /// The simulator's routes, to be nested under `/simulator`.
    pub fn routes(self: Arc<Self>) -> impl poem::Endpoint {
        Route::new()
            .at("/.well-known/openid-configuration", get(discovery))
            .at("/keys", get(keys))
            .at("/oauth/authorize", get(authorize).post(authorize))
            .at("/oauth/token", post(token))
            .at("/portal", get(portal))
            .at("/portal/start", get(portal_start))
            .data(self)
    }

    fn route(&self, params: &Params) -> Result<Option<(&'static SimulatedOrg, String)>, (&'static str, String)> {
        let value = |name| params.get(name).ok().flatten().map(str::to_ascii_lowercase);
        let login_hint = value("login_hint");
        let org = if let Some(connection) = value("connection_id") {
            Some(
                ORGS.iter()
                    .find(|o| o.connection_id == connection)
                    .ok_or(("invalid_request", format!("unknown connection {connection}")))?,
            )
        } else if let Some(organization) = value("organization_id") {
            Some(
                ORGS.iter()
                    .find(|o| o.organization_id == organization)
                    .ok_or(("invalid_request", format!("unknown organization {organization}")))?,
            )
        } else if let Some(domain) = value("domain_hint").or_else(|| value("domain")) {
            Some(
                ORGS.iter()
                    .find(|o| o.domain == domain)
                    .ok_or(("domain_not_found", format!("no organization has the domain {domain}")))?,
            )
        } else if let Some(hint) = &login_hint {
            let domain = hint.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
            Some(
                ORGS.iter()
                    .find(|o| o.domain == domain)
                    .ok_or(("domain_not_found", format!("no organization has the domain {domain}")))?,
            )
        } else {
            None
        };
        Ok(org.map(|org| {
            // The hinted user if they belong to the organization, else its default user.
            let email = login_hint
                .filter(|h| h.ends_with(&format!("@{}", org.domain)) && h.len() > org.domain.len() + 1)
                .unwrap_or_else(|| org.default_user.to_owned());
            (org, email)
        }))
    }
}

#[handler]
fn discovery(sim: Data<&Arc<Simulator>>) -> Response {
    let issuer = &sim.issuer;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/oauth/authorize"),
            "token_endpoint": format!("{issuer}/oauth/token"),
            "jwks_uri": format!("{issuer}/keys"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

#[handler]
fn keys(sim: Data<&Arc<Simulator>>) -> Response {
    json_response(StatusCode::OK, &json!({"keys": [sim.key.public_jwk()]}))
}

#[handler]
async fn authorize(req: &Request, body: Body, sim: Data<&Arc<Simulator>>) -> Response {
    let mut params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    if req.method() == poem::http::Method::POST {
        if let Ok(bytes) = body.into_bytes_limit(16 * 1024).await {
            params = Params::parse(&bytes);
        }
    }
    let get = |name| params.get(name).ok().flatten();
    if get("client_id") != Some(sim.client_id.as_str()) || get("redirect_uri") != Some(sim.redirect_uri.as_str()) {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Simulator: unknown client",
            "client_id or redirect_uri is not the broker's.",
        );
    }
    let state = get("state").unwrap_or("");
    let error = |code: &str, description: &str| {
        redirect(&with_query(
            &sim.redirect_uri,
            &[("error", code), ("error_description", description), ("state", state), ("iss", &sim.issuer)],
        ))
    };
    if get("response_type") != Some("code") {
        return error("unsupported_response_type", "only code is supported");
    }
    match sim.route(&params) {
        Err((code, description)) => error(code, &description),
        Ok(None) => login_form(&params),
        Ok(Some((org, email))) => {
            let code = match random_token(32) {
                Ok(code) => code,
                Err(_) => return error("server_error", "no randomness"),
            };
            let issued = Issued {
                client_id: sim.client_id.clone(),
                redirect_uri: sim.redirect_uri.clone(),
                code_challenge: get("code_challenge").map(str::to_owned),
                nonce: get("nonce").map(str::to_owned),
                org,
                email,
                issued_at: Instant::now(),
            };
            {
                let mut codes = sim.codes.lock().unwrap_or_else(|p| p.into_inner());
                codes.retain(|_, i| i.issued_at.elapsed() < CODE_TTL);
                codes.insert(code.clone(), issued);
            }
            redirect(&with_query(&sim.redirect_uri, &[("code", &code), ("state", state), ("iss", &sim.issuer)]))
        }
    }
}

/// With nothing to route on, the simulator asks for an email, like Scalekit's hosted page.
fn login_form(params: &Params) -> Response {
    let hidden: String = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .filter_map(|name| params.get(name).ok().flatten().map(|v| (name, v)))
    .map(|(name, value)| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value)))
    .collect();
    let orgs: String = ORGS
        .iter()
        .map(|o| format!("<li>{} — for example <code>{}</code></li>", escape(o.display_name), o.default_user))
        .collect();
    let body = format!(
        "<h1>IdP simulator</h1><p>This is the demo's stand-in for a company identity provider. Simulated organizations:</p><ul>{orgs}</ul>\
<form method=\"post\" action=\"authorize\">{hidden}<label for=\"login_hint\">Work email</label>\
<input id=\"login_hint\" name=\"login_hint\" type=\"email\" autocomplete=\"email\" required>\
<button type=\"submit\">Sign in</button></form>"
    );
    pages::page(StatusCode::OK, "IdP simulator", &body)
}

#[handler]
async fn token(req: &Request, body: Body, sim: Data<&Arc<Simulator>>) -> Response {
    let refuse = |status: StatusCode, error: &str| json_response(status, &json!({"error": error}));
    let params = match body.into_bytes_limit(16 * 1024).await {
        Ok(bytes) => Params::parse(&bytes),
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "invalid_request"),
    };
    let get = |name| params.get(name).ok().flatten();
    let basic = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let authenticated = match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => id == sim.client_id && secrets_equal(secret, &sim.client_secret),
        None => {
            get("client_id") == Some(sim.client_id.as_str())
                && secrets_equal(get("client_secret").unwrap_or(""), &sim.client_secret)
        }
    };
    if !authenticated {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if get("grant_type") != Some("authorization_code") {
        return refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let issued = {
        let mut codes = sim.codes.lock().unwrap_or_else(|p| p.into_inner());
        get("code").and_then(|code| codes.remove(code))
    };
    let Some(issued) = issued.filter(|i| i.issued_at.elapsed() < CODE_TTL) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let pkce_ok = match (&issued.code_challenge, get("code_verifier")) {
        (Some(challenge), Some(verifier)) => pkce_s256(verifier) == *challenge,
        (None, None) => true,
        _ => false,
    };
    if !pkce_ok || get("redirect_uri") != Some(issued.redirect_uri.as_str()) || issued.client_id != sim.client_id {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = crate::oidc::callback::now_secs();
    let local = issued.email.split('@').next().unwrap_or("user");
    let given = capitalize(local.split('.').next().unwrap_or(local));
    let family = local
        .split('.')
        .nth(1)
        .map(capitalize)
        .unwrap_or_else(|| capitalize(issued.org.domain.split('.').next().unwrap_or("")));
    let mut claims = json!({
        "iss": sim.issuer,
        "sub": format!("{};{}", issued.org.connection_id, issued.email),
        "aud": sim.client_id,
        "azp": sim.client_id,
        "iat": now,
        "exp": now + 300,
        "email": issued.email,
        "email_verified": true,
        "name": format!("{given} {family}"),
        "given_name": given,
        "family_name": family,
        "oid": issued.org.organization_id,
        "amr": [issued.org.connection_id],
    });
    if let Some(nonce) = issued.nonce {
        claims["nonce"] = json!(nonce);
    }
    let Ok(id_token) = sim.key.sign_jwt(&claims) else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    let access_token = random_token(24).unwrap_or_default();
    json_response(
        StatusCode::OK,
        &json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}),
    )
}

/// An IdP portal with a tile per simulated organization: each starts an IdP-initiated login.
#[handler]
fn portal() -> Response {
    let tiles: String = ORGS
        .iter()
        .map(|o| {
            format!(
                "<a href=\"portal/start?organization_id={}\">ssobridge demo app<br><small>as {} ({})</small></a>",
                o.organization_id,
                o.default_user,
                escape(o.display_name)
            )
        })
        .collect();
    let body = format!(
        "<h1>IdP portal (simulated)</h1><p>Your company's app launcher. Each tile signs you in to the demo app \
without visiting it first (IdP-initiated login).</p><div class=\"tiles\">{tiles}</div>"
    );
    pages::page(StatusCode::OK, "IdP portal (simulated)", &body)
}

/// A tile click: mint an `idp_initiated_login` token, as Scalekit does, and hand it to the broker.
#[handler]
fn portal_start(req: &Request, sim: Data<&Arc<Simulator>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let requested = params.get("organization_id").ok().flatten().unwrap_or("");
    let Some(org) = ORGS.iter().find(|o| o.organization_id == requested) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "Unknown organization", "Pick a tile on the portal.");
    };
    let now = crate::oidc::callback::now_secs();
    let claims = json!({
        "iss": sim.issuer,
        "aud": sim.client_id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": random_token(16).unwrap_or_default(),
        "organization_id": org.organization_id,
        "connection_id": org.connection_id,
        "login_hint": org.default_user,
    });
    match sim.key.sign_jwt(&claims) {
        Ok(jwt) => {
            redirect(&with_query(&format!("{}/initiate-login", sim.broker_url), &[("idp_initiated_login", &jwt)]))
        }
        Err(_) => pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Simulator error", "Could not sign the token."),
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
