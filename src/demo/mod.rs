//! `ssobridge demo`: the broker, an upstream simulator and a sample client in one offline
//! process, on the memory store with an ephemeral key.

pub mod simulator;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::Data;
use poem::{get, handler, EndpointExt, Request, Response, Route};
use serde_json::Value;

use self::simulator::{DemoOnly, Simulator, SimulatorSettings, ORGS, USERS};
use crate::config::{Config, ConfigError};
use crate::oidc::error::{redirect, with_query};
use crate::oidc::params::Params;
use crate::pages::{self, escape};
use crate::state::{AppState, StartError};
use crate::tokens::{pkce_s256, random_token, SigningKey};

pub const DEMO_CLIENT_ID: &str = "demo";
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
/// The demo's admin API token (read and write); its SHA-256 is configured like a real one.
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";
pub const DEMO_EXTERNAL_REDIRECT: &str = "http://localhost:3000/callback";
const UPSTREAM_CLIENT_ID: &str = "ssobridge-demo";

/// The configuration `demo` runs with, for a server reachable at `public_url`, with the
/// `SSOBRIDGE_…` variables among `env` applied (so the demo client can be given an adapter:
/// `SSOBRIDGE_CLIENTS__DEMO__ADAPTER=firebase`, `SSOBRIDGE_CLIENTS__DEMO__FIREBASE__…`).
pub fn demo_config(
    public_url: &str,
    listen: SocketAddr,
    upstream_secret: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    // The demo's rotated keys are sealed with a key that lives as long as the process.
    let key_encryption_key = random_token(32).unwrap_or_default();
    // An ephemeral P-256 key, so that the demo client can be switched to ES256
    // (SSOBRIDGE_CLIENTS__DEMO__ID_TOKEN_SIGNED_RESPONSE_ALG=ES256).
    let ec_key_pem = crate::tokens::generate_pem(crate::tokens::KeyType::Ec).unwrap_or_default();
    // Shared with the simulator, which signs the webhooks of its portal with it.
    let webhook_secret = crate::webhooks::signature::generate_secret().unwrap_or_default();
    let routes: String = ORGS
        .iter()
        .map(|org| {
            format!(
                "[[routes]]\ndomain = \"{}\"\norganization_id = \"{}\"\nconnection_id = \"{}\"\n",
                org.domain, org.organization_id, org.connection_id
            )
        })
        .collect();
    let text = format!(
        r#"
public_url = "{public_url}"
listen = "{listen}"
[store]
url = "memory"
[signing]
key_encryption_key = "{key_encryption_key}"
ec_key_pem = '''
{ec_key_pem}'''
[upstream]
issuer = "{public_url}/simulator"
client_id = "{UPSTREAM_CLIENT_ID}"
client_secret = "{upstream_secret}"
allowed_algorithms = ["RS256"]
[[clients]]
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"
redirect_uris = ["{DEMO_EXTERNAL_REDIRECT}", "{public_url}/demo/callback"]
name = "ssobridge demo app"
initiate_login_uri = "{public_url}/demo/initiate"
# The portal's directory sends groups: these become the app's roles.
[clients.claims]
groups = true
[clients.claims.group_roles]
Engineering = ["editor"]
Admins = ["admin"]
{routes}
[scalekit]
# Routes from the simulator's organizations: a sync at start and every minute, and at once on
# each webhook its portal sends.
sync_interval_seconds = 60
webhook_secret = "{webhook_secret}"
"#
    );
    Config::from_toml(&text, env, std::path::Path::new("demo"))
}

/// A running demo: its state and routes, ready to be served.
pub struct Demo {
    pub state: Arc<AppState>,
    pub routes: Route,
}

/// Builds the demo for a server at `public_url` listening on `listen`.
pub async fn build(public_url: &str, listen: SocketAddr) -> Result<Demo, StartError> {
    let proof = DemoOnly::claim().map_err(|e| StartError::Io(std::io::Error::other(e)))?;
    let upstream_secret = random_token(24)?;
    let config = demo_config(public_url, listen, &upstream_secret, std::env::vars())?;
    let simulator = Simulator::new(
        proof,
        SimulatorSettings {
            issuer: config.upstream.issuer.clone(),
            client_id: UPSTREAM_CLIENT_ID.to_owned(),
            client_secret: crate::secret::Secret::new(upstream_secret),
            redirect_uris: vec![format!("{public_url}/callback")],
            // The registration the README recommends: the client in the path, from each
            // organization's metadata (Scalekit allows no query string in registered URLs).
            initiate_login_uri: Some(format!(
                "{public_url}{}/{{{{{}}}}}",
                crate::oidc::initiate_login::PATH,
                crate::oidc::initiate_login::CLIENT_METADATA_KEY
            )),
            organization_metadata: vec![(
                crate::oidc::initiate_login::CLIENT_METADATA_KEY.to_owned(),
                DEMO_CLIENT_ID.to_owned(),
            )],
            iss_on_redirect: false,
            webhook_url: Some(format!("{public_url}{}", crate::webhooks::PATH)),
            webhook_secret: config.scalekit.as_ref().and_then(|s| s.webhook_secret.clone()),
        },
    )
    .map_err(|e| StartError::Io(std::io::Error::other(e.to_string())))?;
    let simulator = Arc::new(simulator);
    // The memory store unless SSOBRIDGE_STORE__URL names another (loginbench measures Redis so).
    let store = crate::store::AnyStore::connect(&config.store).await?;
    let state = AppState::with_store(config, SigningKey::generate_rsa()?, store).await?;
    crate::lifecycle::spawn_worker(&state);
    let client = Arc::new(DemoClient {
        public_url: public_url.to_owned(),
        pending: Mutex::new(HashMap::new()),
        http: crate::http::client(Duration::from_secs(10)).map_err(|e| StartError::Io(std::io::Error::other(e)))?,
    });
    let routes = Route::new()
        .at("/", get(home))
        .nest(
            "/demo",
            Route::new()
                .at("/start", get(start))
                .at("/callback", get(callback))
                .at("/initiate", get(initiate))
                .data(client),
        )
        .nest("/simulator", simulator.routes())
        .nest(
            "/admin",
            crate::admin::endpoint(
                state.clone(),
                crate::admin::AdminTokens {
                    read: Vec::new(),
                    write: vec![crate::tokens::sha256_hex(DEMO_ADMIN_TOKEN)],
                },
            ),
        );
    Ok(Demo { state, routes })
}

/// The demo's own relying party: it runs the whole flow against the broker over HTTP.
struct DemoClient {
    public_url: String,
    pending: Mutex<HashMap<String, (String, Instant)>>,
    http: reqwest::Client,
}

impl DemoClient {
    fn redirect_uri(&self) -> String {
        format!("{}/demo/callback", self.public_url)
    }
}

#[handler]
fn home(req: &Request) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    // The portal's tiles come here with an organization: start at once.
    if let Some(org) = params.get("organization_id").ok().flatten() {
        return redirect(&format!(
            "/demo/start?organization_id={}",
            url::form_urlencoded::byte_serialize(org.as_bytes()).collect::<String>()
        ));
    }
    let orgs: String = ORGS
        .iter()
        .map(|o| {
            format!(
                "<li>{}: try <code>{}</code> or <a href=\"/demo/start?organization_id={}\">sign in by organization</a></li>",
                escape(o.display_name),
                o.default_user,
                o.organization_id
            )
        })
        .collect();
    let users: String =
        USERS.iter().map(|u| format!("<li><code>{}</code>: {}</li>", u.email, escape(u.note))).collect();
    let body = format!(
        "<h1>Sign in with SSO</h1>\
<p>This page is a sample application. It signs in through ssobridge, which sends you to the simulated company identity provider and back.</p>\
<form method=\"get\" action=\"/demo/start\"><label for=\"login_hint\">Work email</label>\
<input id=\"login_hint\" name=\"login_hint\" type=\"email\" autocomplete=\"email\" placeholder=\"alice@example.com\">\
<button type=\"submit\">Sign in with SSO</button></form>\
<h2>Simulated organizations</h2><ul>{orgs}</ul><p>Users with something particular:</p><ul>{users}</ul>\
<p>Leave the email empty to be asked by ssobridge's home-realm page. Other domains are refused as Scalekit refuses them (<code>domain_not_found</code>).</p>\
<p>Discovery: <a href=\"/.well-known/openid-configuration\">/.well-known/openid-configuration</a> · IdP portal: <a href=\"/simulator/portal\">/simulator/portal</a></p>"
    );
    pages::page(StatusCode::OK, "ssobridge demo", &body)
}

#[handler]
fn start(req: &Request, client: Data<&Arc<DemoClient>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let (Ok(state), Ok(verifier)) = (random_token(16), random_token(32)) else {
        return pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Demo error", "no randomness");
    };
    {
        let mut pending = client.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(600));
        pending.insert(state.clone(), (verifier.clone(), Instant::now()));
    }
    let challenge = pkce_s256(&verifier);
    let redirect_uri = client.redirect_uri();
    let mut query = vec![
        ("client_id", DEMO_CLIENT_ID),
        ("redirect_uri", redirect_uri.as_str()),
        ("response_type", "code"),
        ("scope", "openid profile email"),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for name in ["login_hint", "organization_id", "connection_id", "domain_hint"] {
        if let Ok(Some(value)) = params.get(name) {
            query.push((name, value));
        }
    }
    redirect(&with_query(&format!("{}/authorize", client.public_url), &query))
}

/// The demo app's `initiate_login_uri` (OIDC Core §4): a third party (here the broker, for an
/// IdP-initiated login) asks the app to start a login at `iss`.
#[handler]
fn initiate(req: &Request, client: Data<&Arc<DemoClient>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    if params.get("iss").ok().flatten() != Some(client.public_url.as_str()) {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown issuer",
            "The demo app only signs in through its own broker.",
        );
    }
    let mut location = format!("{}/demo/start", client.public_url);
    if let Ok(Some(hint)) = params.get("login_hint") {
        location = with_query(&location, &[("login_hint", hint)]);
    }
    redirect(&location)
}

#[handler]
async fn callback(req: &Request, client: Data<&Arc<DemoClient>>) -> Response {
    let params = Params::parse(req.uri().query().unwrap_or("").as_bytes());
    let get = |name| params.get(name).ok().flatten();
    if let Some(error) = get("error") {
        return pages::error_page(
            StatusCode::OK,
            "Sign-in did not complete",
            &format!("{error}: {}", get("error_description").unwrap_or("")),
        );
    }
    let verifier = get("state").and_then(|s| client.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(s));
    let (Some((verifier, _)), Some(code)) = (verifier, get("code")) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in did not complete",
            "Unknown or reused state: start again.",
        );
    };
    match redeem(&client, code, &verifier).await {
        Ok((claims, userinfo, extra_fields)) => {
            let extra = if extra_fields.is_empty() {
                String::new()
            } else {
                format!(
                    "<p>The token response also carried: <code>{}</code> (from the client's adapter).</p>",
                    escape(&extra_fields.join(", "))
                )
            };
            let rows: String = claims
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(&v.to_string())))
                .collect();
            let body = format!(
                "<h1>Signed in</h1><p>The sample application received this ID token from ssobridge (signature verified against <a href=\"/jwks\">/jwks</a>):</p>\
<table>{rows}</table>{extra}<h2>Userinfo</h2><pre>{}</pre><p><a href=\"/\">Sign in again</a></p>",
                escape(&serde_json::to_string_pretty(&userinfo).unwrap_or_default())
            );
            pages::page(StatusCode::OK, "Signed in", &body)
        }
        Err(message) => pages::error_page(StatusCode::BAD_GATEWAY, "Token exchange failed", &message),
    }
}

/// Code → tokens at `/token`, ID token verified with `/jwks`, then `/userinfo`.
async fn redeem(client: &DemoClient, code: &str, verifier: &str) -> Result<(Value, Value, Vec<String>), String> {
    let base = &client.public_url;
    let redirect_uri = client.redirect_uri();
    let tokens: Value = client
        .http
        .post(format!("{base}/token"))
        .basic_auth(DEMO_CLIENT_ID, Some(DEMO_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id_token = tokens["id_token"].as_str().ok_or_else(|| format!("no id_token: {}", tokens["error"]))?;
    let access_token = tokens["access_token"].as_str().ok_or("no access_token")?;
    let jwks: jsonwebtoken::jwk::JwkSet = client
        .http
        .get(format!("{base}/jwks"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| e.to_string())?;
    let jwk = jwks.find(header.kid.as_deref().unwrap_or("")).ok_or("unknown kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[DEMO_CLIENT_ID]);
    validation.set_issuer(&[base]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation).map_err(|e| e.to_string())?.claims;
    let userinfo: Value = client
        .http
        .get(format!("{base}/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let standard = ["access_token", "token_type", "expires_in", "id_token", "scope"];
    let extra_fields = tokens
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .filter(|k| !standard.contains(&k.as_str()))
        .collect();
    Ok((claims, userinfo, extra_fields))
}
