//! Test peers for the Firebase adapter: the real Firebase Auth emulator (firebase-tools, installed
//! by scripts/deps/firebase.sh), a client for its REST API, a fault-injecting proxy in front of
//! it, a stand-in for Google's OAuth token endpoint, and a listener that never answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Response, Route, Server};
use serde_json::{json, Value};
use ssobridge_adapter_firebase::{FirebaseAdapter, FirebaseSettings};
use tokio::task::JoinHandle;

/// The demo- prefix tells firebase-tools never to reach a real project.
pub const PROJECT_ID: &str = "demo-ssobridge";
pub const SERVICE_ACCOUNT: &str = "ssobridge-test@demo-ssobridge.iam.gserviceaccount.com";
/// How long the emulator may take to come up (it compiles its API spec at start: ~15 s of CPU
/// on a 2-core machine, more while cargo builds alongside).
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

/// reqwest is built without a default TLS crypto provider (as in the broker).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

/// A port nobody listens on right now (the emulator takes port numbers, not sockets).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn firebase_cli() -> PathBuf {
    // This harness also serves the broker's end-to-end tests, whose manifest is the workspace root.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base =
        if here.join("emulator").is_dir() { here.join("emulator") } else { here.join("adapters/firebase/emulator") };
    base.join("node_modules/firebase-tools/lib/bin/firebase.js")
}

/// The Firebase Auth emulator in its own process group, stopped (group and all) on drop.
pub struct Emulator {
    child: Child,
    /// Held open for the emulator's lifetime; closing it stops the group.
    _watchdog: Option<std::process::ChildStdin>,
    dir: tempfile::TempDir,
    pub host: String,
}

impl Emulator {
    pub async fn start() -> Emulator {
        let cli = firebase_cli();
        assert!(cli.is_file(), "{} is missing: run scripts/install-test-deps.sh", cli.display());
        let dir = tempfile::Builder::new().prefix("ssobridge-firebase-").tempdir().expect("temp dir");
        let (auth, hub, logging) = (free_port(), free_port(), free_port());
        // Hub and logging ports too: their defaults (4400, 4500) would collide with any other
        // emulator on the machine.
        let config = json!({
            "emulators": {
                "auth": {"host": "127.0.0.1", "port": auth},
                "hub": {"host": "127.0.0.1", "port": hub},
                "logging": {"host": "127.0.0.1", "port": logging},
                "ui": {"enabled": false},
                "singleProjectMode": true
            }
        });
        std::fs::write(dir.path().join("firebase.json"), config.to_string()).expect("firebase.json");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let log = File::create(dir.path().join("emulator.log")).expect("log file");
        // A watchdog shell leads the emulator's process group: if this test process dies
        // without running drop (SIGKILL, a CI timeout), its end of the stdin pipe closes, `read`
        // returns and the shell takes the whole group down. If node exits, so does the group.
        let mut command = Command::new("sh");
        command
            .args(["-c", r#"( "$@"; kill -KILL 0 ) & read -r _; kill -KILL 0"#, "emulator-watchdog", "node"])
            .arg(&cli)
            .args(["emulators:start", "--only", "auth", "--project", PROJECT_ID])
            .current_dir(dir.path())
            // Nothing global is read or written: no user config, no credentials from the
            // environment, the hub's locator file in our own temp dir.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("TMPDIR", dir.path())
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        // Its own process group, so that drop stops whatever node starts underneath.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("starting the emulator through sh");
        let watchdog = child.stdin.take();
        let mut emulator = Emulator { child, _watchdog: watchdog, dir, host: format!("127.0.0.1:{auth}") };
        emulator.wait_ready().await;
        emulator
    }

    async fn wait_ready(&mut self) {
        let http = http_client();
        let started = Instant::now();
        let url = format!("http://{}/", self.host);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("the emulator exited ({status}) before it was ready:\n{}", self.log());
            }
            if let Ok(response) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
                if let Ok(body) = response.json::<Value>().await {
                    if body["authEmulator"]["ready"] == true {
                        return;
                    }
                }
            }
            assert!(
                started.elapsed() < STARTUP_DEADLINE,
                "the emulator was not ready within {STARTUP_DEADLINE:?}:\n{}",
                self.log()
            );
            // A poll interval, not a guess at readiness: the loop ends on the emulator's answer.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    pub fn api(&self) -> EmulatorApi {
        EmulatorApi::new(&self.host, None)
    }

    /// Signals the emulator's process group; false once no process of it is left.
    fn signal_group(&self, signal: i32) -> bool {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals the process group we created for the
        // emulator (signal 0 only asks whether it still exists); it touches no memory of ours.
        unsafe { libc::kill(-pgid, signal) == 0 }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGTERM lets firebase-tools shut down tidily; whatever is left after a few seconds
        // (node and anything it started) is killed.
        self.signal_group(libc::SIGTERM);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.signal_group(0) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal_group(libc::SIGKILL);
    }
}

/// The emulator's REST API as an application or an admin sees it.
#[derive(Clone)]
pub struct EmulatorApi {
    http: reqwest::Client,
    root: String,
    tenant_id: Option<String>,
}

impl EmulatorApi {
    pub fn new(host: &str, tenant_id: Option<String>) -> Self {
        EmulatorApi { http: http_client(), root: format!("http://{host}/identitytoolkit.googleapis.com"), tenant_id }
    }

    pub fn for_tenant(&self, tenant_id: &str) -> Self {
        EmulatorApi { tenant_id: Some(tenant_id.to_owned()), ..self.clone() }
    }

    fn accounts(&self) -> String {
        match &self.tenant_id {
            Some(t) => format!("{}/v1/projects/{PROJECT_ID}/tenants/{t}/accounts", self.root),
            None => format!("{}/v1/projects/{PROJECT_ID}/accounts", self.root),
        }
    }

    async fn admin(&self, url: String, body: Value) -> Value {
        let response = self.http.post(&url).bearer_auth("owner").json(&body).send().await.expect("emulator call");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert!(status.is_success(), "{url}: {status} {body}");
        body
    }

    /// A password user, created the way an app's sign-up form does it.
    pub async fn sign_up_with_password(&self, email: &str) -> String {
        let mut body = json!({"email": email, "password": "correct horse battery", "returnSecureToken": true});
        if let Some(t) = &self.tenant_id {
            body["tenantId"] = json!(t);
        }
        let url = format!("{}/v1/accounts:signUp?key=fake-api-key", self.root);
        let response = self.http.post(&url).json(&body).send().await.expect("signUp");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert!(status.is_success(), "signUp: {status} {body}");
        body["localId"].as_str().expect("localId").to_owned()
    }

    /// A password user whose owner has followed the confirmation link (`emailVerified`).
    pub async fn sign_up_verified(&self, email: &str) -> String {
        let uid = self.sign_up_with_password(email).await;
        self.update(json!({"localId": uid, "emailVerified": true})).await;
        uid
    }

    pub async fn all_users(&self) -> Vec<Value> {
        let body = self.admin(format!("{}:query", self.accounts()), json!({"returnUserInfo": true})).await;
        body["userInfo"].as_array().cloned().unwrap_or_default()
    }

    pub async fn user(&self, uid: &str) -> Option<Value> {
        let body = self.admin(format!("{}:lookup", self.accounts()), json!({"localId": [uid]})).await;
        body["users"].as_array().and_then(|u| u.first().cloned())
    }

    pub async fn update(&self, body: Value) {
        self.admin(format!("{}:update", self.accounts()), body).await;
    }

    pub async fn create_tenant(&self) -> String {
        let url = format!("{}/v2/projects/{PROJECT_ID}/tenants", self.root);
        let body = self.admin(url, json!({"displayName": "acme", "allowPasswordSignup": true})).await;
        body["tenantId"].as_str().expect("tenantId").to_owned()
    }

    /// Exchanges a custom token as the Firebase client SDK does; returns the ID token's claims
    /// and the session's refresh token.
    pub async fn start_session(&self, token: &str) -> Result<(Value, String), String> {
        let mut body = json!({"token": token, "returnSecureToken": true});
        if let Some(t) = &self.tenant_id {
            body["tenantId"] = json!(t);
        }
        let url = format!("{}/v1/accounts:signInWithCustomToken?key=fake-api-key", self.root);
        let response = self.http.post(&url).json(&body).send().await.expect("signInWithCustomToken");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        if !status.is_success() {
            return Err(body["error"]["message"].as_str().unwrap_or("?").to_owned());
        }
        let refresh = body["refreshToken"].as_str().expect("refreshToken").to_owned();
        Ok((jwt_payload(body["idToken"].as_str().expect("idToken")), refresh))
    }

    /// Trades a refresh token for a new ID token as the client SDK does when its token nears
    /// expiry (securetoken.googleapis.com); returns the new ID token's claims.
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<Value, String> {
        let root = self.root.replace("identitytoolkit.googleapis.com", "securetoken.googleapis.com");
        let url = format!("{root}/v1/token?key=fake-api-key");
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        let response = self.http.post(&url).form(&form).send().await.expect("securetoken");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        if !status.is_success() {
            return Err(body["error"]["message"].as_str().unwrap_or("?").to_owned());
        }
        Ok(jwt_payload(body["id_token"].as_str().expect("id_token")))
    }

    /// Exchanges a custom token as the Firebase client SDK does; returns the ID token's claims.
    pub async fn sign_in_with_custom_token(&self, token: &str) -> Result<Value, String> {
        let mut body = json!({"token": token, "returnSecureToken": true});
        if let Some(t) = &self.tenant_id {
            body["tenantId"] = json!(t);
        }
        let url = format!("{}/v1/accounts:signInWithCustomToken?key=fake-api-key", self.root);
        let response = self.http.post(&url).json(&body).send().await.expect("signInWithCustomToken");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        if !status.is_success() {
            return Err(body["error"]["message"].as_str().unwrap_or("?").to_owned());
        }
        Ok(jwt_payload(body["idToken"].as_str().expect("idToken")))
    }
}

/// The payload of a JWT, unverified (the emulator's ID tokens are unsigned).
pub fn jwt_payload(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json payload")
}

/// One RSA key per test process: PKCS#8 PEM and the public key that verifies its signatures.
pub fn service_account_key() -> (String, DecodingKey) {
    static KEY: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    let (pem, public) = KEY.get_or_init(|| {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let der = pair.as_der().expect("PKCS#8");
        let body = STANDARD.encode(der.as_ref());
        let lines: Vec<String> = body.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
        (pem, pair.public_key().as_ref().to_vec())
    });
    (pem.clone(), DecodingKey::from_rsa_der(public))
}

pub fn settings(value: Value) -> FirebaseSettings {
    serde_json::from_value(value).expect("settings")
}

/// An adapter for the emulator, signing its custom tokens with the test key.
pub fn emulator_adapter(host: &str, tenant_id: Option<&str>, timeout_seconds: u64) -> FirebaseAdapter {
    let (pem, _) = service_account_key();
    let mut value = json!({
        "project_id": PROJECT_ID,
        "service_account_email": SERVICE_ACCOUNT,
        "private_key": pem,
        "emulator_host": host,
        "timeout_seconds": timeout_seconds,
    });
    if let Some(t) = tenant_id {
        value["tenant_id"] = json!(t);
    }
    FirebaseAdapter::new(settings(value)).expect("adapter")
}

/// A local server that accepts connections and never answers: the outage case.
pub struct Blackhole {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> Blackhole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Blackhole { port, task }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on a fresh loopback port until dropped.
pub struct LocalServer {
    pub base: String,
    task: JoinHandle<()>,
}

impl LocalServer {
    pub async fn start(app: impl poem::Endpoint + 'static) -> LocalServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        LocalServer { base, task }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fault the proxy answers with instead of forwarding.
#[derive(Clone, Debug)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<&'static str>,
}

/// What the proxy saw and what it is told to do.
#[derive(Default)]
pub struct ProxyState {
    pub faults: Mutex<VecDeque<Fault>>,
    /// Faults served for every request while set (after the queue is empty).
    pub always: Mutex<Option<Fault>>,
    /// `(path, authorization header, answered status)` per request.
    pub seen: Mutex<Vec<(String, String, u16)>>,
    /// Holds the answers to the next `n` look-ups until the emulator has answered all `n`, so
    /// that racing logins all look before any of them creates: the race, every time.
    pub lookup_barrier: Mutex<Option<(Arc<tokio::sync::Barrier>, usize)>>,
}

struct Upstream {
    http: reqwest::Client,
    root: String,
    state: Arc<ProxyState>,
}

#[handler]
async fn proxy(req: &Request, body: poem::Body, upstream: Data<&Arc<Upstream>>) -> Response {
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let barrier = if path_and_query.ends_with(":lookup") {
        let mut slot = upstream.state.lookup_barrier.lock().unwrap();
        let barrier = slot.as_ref().map(|(b, _)| b.clone());
        if let Some((_, left)) = slot.as_mut() {
            *left -= 1;
            if *left == 0 {
                *slot = None;
            }
        }
        barrier
    } else {
        None
    };
    let fault = {
        let queued = upstream.state.faults.lock().unwrap().pop_front();
        queued.or_else(|| upstream.state.always.lock().unwrap().clone())
    };
    if let Some(fault) = fault {
        upstream.state.seen.lock().unwrap().push((path_and_query, authorization, fault.status));
        let mut response = Response::builder().status(StatusCode::from_u16(fault.status).unwrap());
        if let Some(after) = fault.retry_after {
            response = response.header("retry-after", after);
        }
        let error = json!({"error": {"code": fault.status, "message": "injected by the test proxy"}});
        return response.content_type("application/json").body(error.to_string());
    }
    let body = body.into_vec().await.unwrap_or_default();
    let mut forward = upstream.http.post(format!("{}{path_and_query}", upstream.root)).body(body);
    if !authorization.is_empty() {
        forward = forward.header("authorization", &authorization);
    }
    if let Some(ct) = req.headers().get("content-type").and_then(|v| v.to_str().ok()) {
        forward = forward.header("content-type", ct);
    }
    let answer = forward.send().await.expect("forward to the emulator");
    let status = answer.status().as_u16();
    let bytes = answer.bytes().await.unwrap_or_default();
    upstream.state.seen.lock().unwrap().push((path_and_query, authorization, status));
    // Answers held until every racing look-up has been answered by the emulator.
    if let Some(barrier) = barrier {
        barrier.wait().await;
    }
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(bytes.to_vec())
}

/// A proxy in front of the emulator that can answer with injected faults instead.
pub struct FaultProxy {
    pub server: LocalServer,
    pub state: Arc<ProxyState>,
}

impl FaultProxy {
    pub async fn start(emulator_host: &str) -> FaultProxy {
        let state = Arc::new(ProxyState::default());
        let upstream =
            Arc::new(Upstream { http: http_client(), root: format!("http://{emulator_host}"), state: state.clone() });
        let server = LocalServer::start(Route::new().at("/*path", poem::post(proxy)).data(upstream)).await;
        FaultProxy { server, state }
    }

    /// `host:port`, for `emulator_host`.
    pub fn host(&self) -> String {
        self.server.base.trim_start_matches("http://").to_owned()
    }

    pub fn fail_next(&self, faults: &[Fault]) {
        self.state.faults.lock().unwrap().extend(faults.iter().cloned());
    }

    pub fn fail_always(&self, fault: Option<Fault>) {
        *self.state.always.lock().unwrap() = fault;
    }

    pub fn seen(&self) -> Vec<(String, String, u16)> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn race_next_lookups(&self, n: usize) {
        *self.state.lookup_barrier.lock().unwrap() = Some((Arc::new(tokio::sync::Barrier::new(n)), n));
    }

    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
    }

    /// Ends every injected fault: requests reach the emulator again.
    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
        *self.state.always.lock().unwrap() = None;
    }
}

/// How the stand-in token endpoint answers.
#[derive(Clone, Debug)]
pub enum TokenReply {
    Grant { expires_in: u64 },
    Refuse,
}

pub struct TokenServerState {
    pub reply: Mutex<TokenReply>,
    pub issued: Mutex<Vec<String>>,
    /// Every assertion, checked as Google checks it; a bad one is recorded here and refused.
    pub problems: Mutex<Vec<String>>,
    pub public_key: DecodingKey,
    pub expected_kid: String,
    pub token_uri: Mutex<String>,
}

#[handler]
async fn token_endpoint(body: String, state: Data<&Arc<TokenServerState>>) -> Response {
    let form: Vec<(String, String)> = url_decode(&body);
    let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut problems = Vec::new();
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        problems.push(format!("grant_type {:?}", get("grant_type")));
    }
    let assertion = get("assertion");
    let mut validation = Validation::new(Algorithm::RS256);
    let uri = state.token_uri.lock().unwrap().clone();
    validation.set_audience(&[uri.as_str()]);
    validation.set_issuer(&[SERVICE_ACCOUNT]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    match jsonwebtoken::decode::<Value>(&assertion, &state.public_key, &validation) {
        Ok(data) => {
            let claims = data.claims;
            if data.header.kid.as_deref() != Some(state.expected_kid.as_str()) {
                problems.push(format!("kid {:?}", data.header.kid));
            }
            let scopes = claims["scope"].as_str().unwrap_or_default();
            if !scopes.split(' ').any(|s| s == "https://www.googleapis.com/auth/cloud-platform") {
                problems.push(format!("scope {scopes:?}"));
            }
            let lifetime = claims["exp"].as_u64().unwrap_or(0).saturating_sub(claims["iat"].as_u64().unwrap_or(0));
            if lifetime == 0 || lifetime > 3600 {
                problems.push(format!("assertion lifetime {lifetime}"));
            }
        }
        Err(e) => problems.push(format!("assertion: {e}")),
    }
    if !problems.is_empty() {
        state.problems.lock().unwrap().extend(problems);
        return Response::builder().status(StatusCode::BAD_REQUEST).body(r#"{"error":"invalid_grant"}"#);
    }
    let reply = state.reply.lock().unwrap().clone();
    match reply {
        TokenReply::Grant { expires_in } => {
            let mut issued = state.issued.lock().unwrap();
            // The emulator takes any `ya29.` token as the project owner's, like a real one.
            let token = format!("ya29.test-{}", issued.len() + 1);
            issued.push(token.clone());
            let body = json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"});
            Response::builder().content_type("application/json").body(body.to_string())
        }
        TokenReply::Refuse => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .body(r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#),
    }
}

fn url_decode(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A stand-in for https://oauth2.googleapis.com/token that verifies assertions like Google.
pub struct TokenServer {
    pub server: LocalServer,
    pub state: Arc<TokenServerState>,
}

impl TokenServer {
    pub async fn start(expected_kid: &str) -> TokenServer {
        let (_, public_key) = service_account_key();
        let state = Arc::new(TokenServerState {
            reply: Mutex::new(TokenReply::Grant { expires_in: 3599 }),
            issued: Mutex::new(Vec::new()),
            problems: Mutex::new(Vec::new()),
            public_key,
            expected_kid: expected_kid.to_owned(),
            token_uri: Mutex::new(String::new()),
        });
        let server =
            LocalServer::start(Route::new().at("/token", poem::post(token_endpoint)).data(state.clone())).await;
        *state.token_uri.lock().unwrap() = format!("{}/token", server.base);
        TokenServer { server, state }
    }

    pub fn uri(&self) -> String {
        format!("{}/token", self.server.base)
    }

    pub fn issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }

    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }

    pub fn reply_with(&self, reply: TokenReply) {
        *self.state.reply.lock().unwrap() = reply;
    }
}

#[allow(unused_imports)] // not every test crate that includes this harness records the log
pub use ssobridge_adapter_core::conformance::LogRecorder;
