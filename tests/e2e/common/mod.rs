//! The test harness: real peers (redis-server, the `oidc-provider` upstream, the
//! `openid-client` relying party) started on loopback, on free ports, and stopped on drop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use ssobridge::app;
use ssobridge::config::Config;
use ssobridge::state::AppState;
use ssobridge::tokens::SigningKey;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// An environment variable the tests give `ssobridge` processes.
#[derive(Clone, Copy, Debug)]
pub struct EnvVar {
    pub name: &'static str,
    pub value: &'static str,
}

/// The pairwise salt every `ssobridge serve` of the tests gets (serve refuses to run without one).
pub const PAIRWISE_SALT: EnvVar =
    EnvVar { name: "SSOBRIDGE_TOKENS__PAIRWISE_SALT", value: "test-pairwise-salt-0123456789" };

/// The operations listener of a `ssobridge serve` the tests start: a free port (several run at
/// once), not the default 127.0.0.1:9090.
pub const OPS_LISTEN: EnvVar = EnvVar { name: "SSOBRIDGE_ADMIN__LISTEN", value: "127.0.0.1:0" };
/// `/readyz` and `/metrics` on the public listener too, for tests that probe them there.
pub const OPS_PUBLIC: EnvVar = EnvVar { name: "SSOBRIDGE_ADMIN__OPS_ON_PUBLIC_LISTENER", value: "true" };

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn peers_dir() -> PathBuf {
    repo_root().join("tests/peers")
}

/// A plain HTTP client for tests (reqwest is built without a bundled TLS provider).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

/// A port the OS just handed out. The caller retries if someone takes it first.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Reads `child`'s stdout until a line satisfies `ready`; returns that line. Fails at the
/// deadline or when the process exits first. Later output is drained in the background.
pub async fn wait_for_line(child: &mut Child, what: &str, ready: impl Fn(&str) -> bool) -> Result<String, String> {
    let stdout = child.stdout.take().ok_or("stdout not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(STARTUP_DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if ready(&line) {
                return Ok(line);
            }
        }
        Err(format!("{what} exited before it was ready"))
    })
    .await
    .map_err(|_| format!("{what} not ready within {STARTUP_DEADLINE:?}"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found)
}

/// Polls `condition` until it holds; fails naming `what` once `deadline` has passed.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !condition().await {
        assert!(started.elapsed() < deadline, "{what}: not within {deadline:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// How often [`wait_until`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

pub mod redis_server;
pub use redis_server::{ClientCertificate, Redis, RedisOptions, RedisTls};

/// A fresh temporary directory, removed on drop.
pub mod tempdir {
    use std::path::PathBuf;

    pub struct TempDir {
        pub path: PathBuf,
    }

    impl TempDir {
        pub fn new(prefix: &str) -> TempDir {
            let path = std::env::temp_dir().join(format!("ssobridge-test-{prefix}-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("temp dir");
            TempDir { path }
        }

        pub fn path(&self) -> &std::path::Path {
            &self.path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The upstream: npm `oidc-provider` configured like Scalekit (tests/peers/upstream.mjs).
pub struct Upstream {
    child: Child,
    pub issuer: String,
    http: reqwest::Client,
}

pub const UPSTREAM_CLIENT_ID: &str = "ssobridge";
pub const UPSTREAM_CLIENT_SECRET: &str = "upstream-client-secret-for-tests";

impl Upstream {
    /// Starts the provider with the broker registered as its client, `redirect_uris` being the
    /// broker's callbacks.
    pub async fn start(redirect_uris: &[String]) -> Upstream {
        let clients = json!([{
            "client_id": UPSTREAM_CLIENT_ID,
            "client_secret": UPSTREAM_CLIENT_SECRET,
            "redirect_uris": redirect_uris,
        }]);
        let mut child = Command::new("node")
            .arg(peers_dir().join("upstream.mjs"))
            .env("PORT", "0")
            .env("UPSTREAM_CLIENTS", clients.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed (scripts/install-test-deps.sh)");
        let line =
            wait_for_line(&mut child, "upstream.mjs", |l| l.starts_with("READY ")).await.expect("upstream ready");
        let ready: Value = serde_json::from_str(&line["READY ".len()..]).expect("READY json");
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        Upstream { child, issuer, http: http() }
    }

    /// Every authorization request the upstream received, oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        let url = format!("{}/__test/requests", self.issuer);
        self.http.get(url).send().await.expect("requests").json().await.expect("requests json")
    }

    /// Makes the next ID token misbehave (see upstream.mjs for the modes).
    pub async fn tamper(&self, mode: &str) {
        let url = format!("{}/__test/tamper", self.issuer);
        let response = self.http.post(url).json(&json!({"mode": mode})).send().await.expect("tamper");
        assert!(response.status().is_success(), "tamper {mode}: {}", response.status());
    }

    /// Makes the next ID token carry `claims` instead of the user's own (null removes one),
    /// validly signed: what a customer's IdP may assert through the upstream.
    pub async fn tamper_claims(&self, claims: &Value) {
        let url = format!("{}/__test/tamper", self.issuer);
        let response =
            self.http.post(url).json(&json!({"mode": "claims", "claims": claims})).send().await.expect("tamper");
        assert!(response.status().is_success(), "tamper claims: {}", response.status());
    }

    pub async fn reset(&self) {
        self.http.post(format!("{}/__test/reset", self.issuer)).send().await.expect("reset");
    }

    /// Makes the next authorization request (client and redirect URI valid) fail with
    /// Scalekit's `error` code, as the upstream would answer it (`state` included).
    pub async fn fail(&self, error: &str) {
        let url = format!("{}/__test/fail", self.issuer);
        let response = self.http.post(url).json(&json!({"error": error})).send().await.expect("fail");
        assert!(response.status().is_success(), "fail {error}: {}", response.status());
    }

    /// An `idp_initiated_login` token shaped as Scalekit's docs show it (no `aud`, no `jti`).
    pub async fn idp_initiated(&self, organization_id: &str, connection_id: &str, login_hint: &str) -> String {
        let body =
            json!({"organization_id": organization_id, "connection_id": connection_id, "login_hint": login_hint});
        let response: Value = self
            .http
            .post(format!("{}/__test/idp_initiated", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("idp_initiated")
            .json()
            .await
            .expect("idp_initiated json");
        response["jwt"].as_str().expect("jwt").to_owned()
    }

    /// A JWT signed with the upstream's real signing key.
    pub async fn sign(&self, claims: &Value) -> String {
        let response: Value = self
            .http
            .post(format!("{}/__test/sign", self.issuer))
            .json(claims)
            .send()
            .await
            .expect("sign")
            .json()
            .await
            .expect("sign json");
        response["jwt"].as_str().expect("jwt").to_owned()
    }
}

/// The upstream's `sub` for `email` signing in at `connection`: Scalekit's
/// `<connection_id>;<IdP user id>`, the id being upstream.mjs's opaque one ("00u" + the first
/// 17 hex digits of SHA-256 of the lower-cased email).
pub fn upstream_subject(connection: &str, email: &str) -> String {
    let hash = ssobridge::tokens::sha256_hex(&email.to_ascii_lowercase());
    format!("{connection};00u{}", &hash[..17])
}

/// A broker listening on a port known before it is configured, running in this process.
pub struct Broker {
    pub url: String,
    pub state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A bound but not yet serving listener, so that the upstream can be told the callback URL.
pub struct BrokerSocket {
    listener: tokio::net::TcpListener,
    pub url: String,
}

impl BrokerSocket {
    pub async fn bind() -> BrokerSocket {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        BrokerSocket { listener, url }
    }

    pub fn callback(&self) -> String {
        format!("{}/callback", self.url)
    }

    /// Serves a broker configured by `toml` (see [`broker_toml`]).
    pub async fn serve(self, toml: &str, key: SigningKey) -> Broker {
        self.serve_with(toml, key, false).await
    }

    /// The same, with the admin API under `/admin` (tokens [`ADMIN_READ_TOKEN`], [`ADMIN_WRITE_TOKEN`]).
    pub async fn serve_with_admin(self, toml: &str, key: SigningKey) -> Broker {
        self.serve_with(toml, key, true).await
    }

    async fn serve_with(self, toml: &str, key: SigningKey, admin: bool) -> Broker {
        let config = Config::from_toml(toml, Vec::<(String, String)>::new(), Path::new("test.toml")).expect("config");
        let state = AppState::new(config, key).await.expect("state");
        // As `ssobridge serve` does: the queued work (deprovisioning, back-channel logouts) runs.
        ssobridge::lifecycle::spawn_worker(&state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let extra = admin.then(|| {
            let tokens = ssobridge::admin::AdminTokens {
                read: vec![ssobridge::tokens::sha256_hex(ADMIN_READ_TOKEN)],
                write: vec![ssobridge::tokens::sha256_hex(ADMIN_WRITE_TOKEN)],
            };
            poem::EndpointExt::boxed(
                poem::Route::new().nest("/admin", ssobridge::admin::endpoint(state.clone(), tokens)),
            )
        });
        let endpoint = app::endpoint(state.clone(), extra, true);
        let task = tokio::spawn(async move {
            let _ = app::serve(self.listener, endpoint, async move {
                let _ = rx.await;
            })
            .await;
        });
        Broker { url: self.url, state, shutdown: Some(tx), task }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
    }
}

pub const ADMIN_READ_TOKEN: &str = "admin-read-token-for-tests";
pub const ADMIN_WRITE_TOKEN: &str = "admin-write-token-for-tests";

/// A downstream client registered with the broker under test, as its relying party knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestClient<'a> {
    pub client_id: &'a str,
    pub secret: &'a str,
    pub redirect_uri: &'a str,
}

/// Downstream clients the tests register.
pub const AUTH0_CLIENT: TestClient = TestClient {
    client_id: "auth0-test",
    secret: "auth0-test-secret",
    redirect_uri: "https://acme.us.auth0.com/login/callback",
};
pub const COGNITO_CLIENT: TestClient = TestClient {
    client_id: "cognito-test",
    secret: "cognito-test-secret",
    redirect_uri: "https://acme.auth.us-east-1.amazoncognito.com/oauth2/idpresponse",
};

/// A broker configuration for tests: the given issuer, store and upstream, the two clients.
pub fn broker_toml(public_url: &str, store_url: &str, key_prefix: &str, upstream_issuer: &str) -> String {
    format!(
        r#"
public_url = "{public_url}"
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
key_prefix = "{key_prefix}"
[upstream]
issuer = "{upstream_issuer}"
client_id = "{UPSTREAM_CLIENT_ID}"
client_secret = "{UPSTREAM_CLIENT_SECRET}"
[[clients]]
client_id = "{a0}"
client_secret = "{a0s}"
redirect_uris = ["{a0r}"]
name = "Acme (Auth0)"
initiate_login_uri = "https://acme.us.auth0.com/login/initiate"
[[clients]]
client_id = "{cg}"
client_secret = "{cgs}"
redirect_uris = ["{cgr}"]
subject = "upstream"
"#,
        a0 = AUTH0_CLIENT.client_id,
        a0s = AUTH0_CLIENT.secret,
        a0r = AUTH0_CLIENT.redirect_uri,
        cg = COGNITO_CLIENT.client_id,
        cgs = COGNITO_CLIENT.secret,
        cgr = COGNITO_CLIENT.redirect_uri,
    )
}

/// Upstream + broker on the memory store (or `store_url`), ready for logins.
pub struct Stack {
    pub upstream: Upstream,
    pub broker: Broker,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with_store("memory", "t:").await
    }

    pub async fn start_with_store(store_url: &str, prefix: &str) -> Stack {
        Self::start_with(store_url, prefix, "").await
    }

    /// `extra` is appended to the broker's TOML (more clients, routes).
    pub async fn start_with(store_url: &str, prefix: &str, extra: &str) -> Stack {
        let socket = BrokerSocket::bind().await;
        let upstream = Upstream::start(&[socket.callback()]).await;
        let toml = broker_toml(&socket.url, store_url, prefix, &upstream.issuer) + extra;
        let broker = socket.serve(&toml, SigningKey::generate_rsa().expect("key")).await;
        Stack { upstream, broker }
    }
}

/// Runs tests/peers/rp.mjs (openid-client) once and returns its JSON verdict.
pub async fn rp(input: &Value) -> Value {
    let output = Command::new("node")
        .arg(peers_dir().join("rp.mjs"))
        .arg(input.to_string())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("run rp.mjs");
    assert!(output.status.success(), "rp.mjs crashed: {:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("rp.mjs printed {stdout:?}: {e}"))
}

/// A browser without JavaScript: follows redirects by hand and keeps cookies per host.
pub struct Browser {
    pub http: reqwest::Client,
    cookies: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl Default for Browser {
    fn default() -> Self {
        let _ = http();
        Browser {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            cookies: Mutex::new(HashMap::new()),
        }
    }
}

impl Browser {
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.send(self.http.get(url), url).await
    }

    /// Submits a form as a browser would (with this browser's cookies).
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(self.http.post(url).form(form), url).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> reqwest::Response {
        let parsed = url::Url::parse(url).expect("url");
        let host = format!("{}:{}", parsed.host_str().unwrap_or(""), parsed.port_or_known_default().unwrap_or(0));
        let cookie = {
            let jar = self.cookies.lock().expect("jar");
            jar.get(&host).map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
        };
        let mut request = request;
        if let Some(cookie) = cookie.filter(|c| !c.is_empty()) {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.expect("request");
        let mut jar = self.cookies.lock().expect("jar");
        for value in response.headers().get_all("set-cookie") {
            if let Some((pair, _)) =
                value.to_str().unwrap_or("").split_once(';').or(Some((value.to_str().unwrap_or(""), "")))
            {
                if let Some((name, value)) = pair.split_once('=') {
                    jar.entry(host.clone()).or_default().insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
        response
    }

    /// Follows redirects from `url` until one points at a URL starting with `stop`; returns it.
    pub async fn follow_until(&self, url: &str, stop: &str) -> Result<url::Url, String> {
        let mut current = url.to_owned();
        for _ in 0..20 {
            if current.starts_with(stop) {
                return Ok(url::Url::parse(&current).expect("url"));
            }
            let response = self.get(&current).await;
            let status = response.status();
            let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned)
            else {
                let body = response.text().await.unwrap_or_default();
                return Err(format!("{status} at {current}: {}", &body[..body.len().min(500)]));
            };
            current = url::Url::parse(&current).expect("url").join(&location).expect("location").to_string();
        }
        Err("too many redirects".to_owned())
    }
}

/// The query parameters of `url` as a map.
pub fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// An authorize URL for `client` with PKCE `verifier` and extra `params`.
pub fn authorize_url(broker: &str, client: TestClient<'_>, verifier: Option<&str>, params: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{broker}/authorize")).expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client.client_id)
            .append_pair("redirect_uri", client.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid profile email")
            .append_pair("state", "client-state-123");
        if let Some(verifier) = verifier {
            q.append_pair("code_challenge", &ssobridge::tokens::pkce_s256(verifier))
                .append_pair("code_challenge_method", "S256");
        }
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

pub const VERIFIER: &str = "test-verifier-0123456789-0123456789-0123456789";

/// Runs a login by redirects up to the client's redirect_uri and returns that URL's parameters.
pub async fn login_to_client(
    stack: &Stack,
    client: TestClient<'_>,
    params: &[(&str, &str)],
) -> HashMap<String, String> {
    let browser = Browser::default();
    let url = authorize_url(&stack.broker.url, client, Some(VERIFIER), params);
    let landed = browser.follow_until(&url, client.redirect_uri).await.expect("reach the client");
    query(&landed)
}

/// Redeems a code at `/token` with client_secret_post.
pub async fn redeem(broker: &str, client: TestClient<'_>, code: &str, verifier: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", client.redirect_uri),
        ("client_id", client.client_id),
        ("client_secret", client.secret),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let response = http().post(format!("{broker}/token")).form(&form).send().await.expect("token");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Verifies a broker ID token as a relying party would: signature against `/jwks`, RS256,
/// `iss` = the broker, `aud` = `client_id`, not expired. Returns the claims.
pub async fn verify_id_token(broker: &str, jwt: &str, client_id: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        http().get(format!("{broker}/jwks")).send().await.expect("jwks").json().await.expect("jwks json");
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("kid published in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[broker]);
    validation.set_audience(&[client_id]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("ID token verifies").claims
}

/// The value of the hidden input `name` in an HTML page.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..].split('"').next()?.to_owned())
}
