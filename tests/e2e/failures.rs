//! Failure tests: real peers broken on purpose. Redis killed mid-login and restarted, the
//! upstream killed or too slow, 200 concurrent logins on two instances sharing one Redis, and
//! token lifetimes and clock skew at their edges. Each test asserts what the user's browser or
//! the downstream client sees, and each step that must fail fails within a stated bound.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::tempdir::TempDir;
use crate::common::{
    authorize_url, query, redeem, BrokerSocket, Browser, Redis, RedisOptions, Stack, TestClient, Upstream,
    AUTH0_CLIENT, VERIFIER,
};
use jsonwebtoken::jwk::JwkSet;
use serde_json::{json, Value};
use ssobridge::tokens::SigningKey;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const COGNITO_CLIENT: TestClient = crate::common::COGNITO_CLIENT;

/// The hard bound on any one request or redirect hop: past it, the test fails as a hang.
const STEP: Duration = Duration::from_secs(15);

/// The `state` every [`authorize_url`] sends.
const CLIENT_STATE: &str = "client-state-123";

/// How long a user or client may wait for the answer that says a peer is out. The broker bounds
/// each Redis command by 2 s (`RedisStore::connect`) and each upstream call by
/// `upstream.timeout_seconds` (1 s in these tests): 5 s is two such timeouts and change.
const OUTAGE_ANSWER: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, bound: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(bound, future).await.unwrap_or_else(|_| panic!("{what}: no answer within {bound:?}"))
}

/// Times the answers given while a peer is out. Each must come within [`STEP`] (else the test
/// fails there: a hang); those slower than `bound` are collected, so that one run reports all of
/// them at the end of the test ([`Stopwatch::assert_prompt`]) after checking everything else.
struct Stopwatch {
    bound: Duration,
    slow: Vec<String>,
}

impl Stopwatch {
    fn new(bound: Duration) -> Stopwatch {
        Stopwatch { bound, slow: Vec::new() }
    }

    async fn time<T>(&mut self, what: &str, future: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = within(what, STEP, future).await;
        let elapsed = started.elapsed();
        eprintln!("{what}: answered in {elapsed:?}");
        if elapsed > self.bound {
            self.slow.push(format!("{what}: {elapsed:.1?}"));
        }
        output
    }

    fn assert_prompt(&self) {
        assert!(self.slow.is_empty(), "answers slower than {:?} while a peer was out: {:?}", self.bound, self.slow);
    }
}

/// The Auth0 client uses PKCE, the Cognito client does not (as the real ones are set up).
fn verifier_for(client: TestClient<'_>) -> Option<&'static str> {
    (client.client_id == AUTH0_CLIENT.client_id).then_some(VERIFIER)
}

/// `toml` with `line` added to its `[upstream]` table.
fn with_upstream_setting(toml: &str, line: &str) -> String {
    toml.replacen("[upstream]\n", &format!("[upstream]\n{line}\n"), 1)
}

fn new_key() -> SigningKey {
    SigningKey::generate_rsa().expect("key")
}

/// GET `url` with no cookies: the status and the body.
async fn get(url: &str) -> (u16, String) {
    within(&format!("GET {url}"), STEP, async {
        let response = crate::common::http().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
    .await
}

/// Polls `/readyz` until it answers `want` (each poll bounded), for at most `deadline`.
async fn wait_for_readyz(broker: &str, want: u16, deadline: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = get(&format!("{broker}/readyz")).await;
        if status == want {
            return serde_json::from_str(&body).unwrap_or_else(|e| panic!("/readyz body {body:?}: {e}"));
        }
        assert!(started.elapsed() < deadline, "/readyz still {status} {body} after {deadline:?}; waiting for {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until nothing accepts connections on `port` any more.
async fn wait_until_refused(port: u16) {
    within(&format!("port {port} to close"), STEP, async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).expect("url").port().expect("port")
}

/// The title and alert of one of the broker's HTML pages (what the user reads).
fn page_message(body: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        Some(body[start..].split(close).next()?.to_owned())
    };
    match (between("<title>", "</title>"), between("role=\"alert\">", "</p>")) {
        (Some(title), Some(alert)) => format!("page {title:?}: {alert:?}"),
        _ => body.chars().take(300).collect(),
    }
}

/// Follows redirects from `url` until one points at a URL starting with `stop` (like
/// `Browser::follow_until`, each hop bounded), reporting a page by what it says.
async fn follow(browser: &Browser, url: &str, stop: &str) -> Result<url::Url, String> {
    let mut current = url.to_owned();
    for _ in 0..20 {
        if current.starts_with(stop) {
            return Ok(url::Url::parse(&current).expect("url"));
        }
        let response = within(&format!("GET {current}"), STEP, browser.get(&current)).await;
        let status = response.status();
        let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned) else {
            let path = url::Url::parse(&current).map(|u| u.path().to_owned()).unwrap_or_default();
            return Err(format!("{status} at {path}: {}", page_message(&response.text().await.unwrap_or_default())));
        };
        current = url::Url::parse(&current).expect("url").join(&location).expect("location").to_string();
    }
    Err("too many redirects".to_owned())
}

/// A whole login by redirects, from `broker`'s `/authorize` to the client's redirect URI: the code,
/// or what the user saw instead.
async fn login_code(broker: &str, client: TestClient<'_>, email: &str) -> Result<String, String> {
    let browser = Browser::default();
    let start = authorize_url(broker, client, verifier_for(client), &[("login_hint", email)]);
    let landed = follow(&browser, &start, client.redirect_uri).await?;
    let params = query(&landed);
    params.get("code").cloned().ok_or_else(|| format!("the client got no code: {params:?}"))
}

/// A login from `start_on`'s `/authorize` up to the moment the upstream sends the browser back to
/// the public callback: that callback URL, not yet delivered.
async fn to_callback(
    browser: &Browser,
    start_on: &str,
    public_url: &str,
    client: TestClient<'_>,
    email: &str,
) -> String {
    let start = authorize_url(start_on, client, verifier_for(client), &[("login_hint", email)]);
    let callback =
        follow(browser, &start, &format!("{public_url}/callback")).await.expect("the upstream sends the browser back");
    callback.to_string()
}

/// `POST /token` with client_secret_post: status, `Cache-Control`, JSON body.
async fn token_request(broker: &str, client: TestClient<'_>, code: &str) -> (u16, String, Value) {
    within("POST /token", STEP, async {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri),
            ("client_id", client.client_id),
            ("client_secret", client.secret),
        ];
        if let Some(verifier) = verifier_for(client) {
            form.push(("code_verifier", verifier));
        }
        let response = crate::common::http().post(format!("{broker}/token")).form(&form).send().await.expect("token");
        let status = response.status().as_u16();
        let cache = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.unwrap_or_default();
        (status, cache, serde_json::from_str(&text).unwrap_or_else(|_| json!({ "not_json": text })))
    })
    .await
}

async fn userinfo(broker: &str, access_token: &str) -> (u16, Value) {
    within("GET /userinfo", STEP, async {
        let response = crate::common::http()
            .get(format!("{broker}/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("userinfo");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
    .await
}

/// What the browser shows when a login cannot go on.
enum Refusal {
    /// `error=temporarily_unavailable` on the client's redirect URI, with `state` and `iss`.
    Redirect(HashMap<String, String>),
    /// An HTML page saying so (when the broker cannot know the client: its record is in the
    /// unavailable store).
    Page(u16, String),
}

impl Refusal {
    fn describe(&self) -> String {
        match self {
            Refusal::Redirect(params) => format!("error redirect: {params:?}"),
            Refusal::Page(status, body) => format!("page {status}: {body}"),
        }
    }
}

/// Checks that `response` is one of the two readable ways of saying "try again later", never a
/// bare 5xx, a success, or a redirect anywhere else.
async fn temporarily_unavailable(response: reqwest::Response, client: TestClient<'_>, issuer: &str) -> Refusal {
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = response.text().await.unwrap_or_default();
    if let Some(location) = location {
        assert!(status == 302 || status == 303, "{status} with a Location: {location}");
        assert!(
            location.starts_with(client.redirect_uri),
            "an error goes to the registered redirect_uri only: {location}"
        );
        let params = query(&url::Url::parse(&location).expect("location"));
        assert_eq!(params.get("error").map(String::as_str), Some("temporarily_unavailable"), "{location}");
        assert_eq!(params.get("state").map(String::as_str), Some(CLIENT_STATE), "{location}");
        assert_eq!(params.get("iss").map(String::as_str), Some(issuer), "RFC 9207: {location}");
        assert!(params.get("error_description").is_some_and(|d| !d.is_empty()), "{location}");
        assert!(!params.contains_key("code"), "{location}");
        return Refusal::Redirect(params);
    }
    assert!(status >= 400, "neither an error redirect nor an error page: {status} {body}");
    assert!(content_type.starts_with("text/html"), "a page for a person, not {content_type:?}: {status} {body}");
    assert!(
        body.to_lowercase().contains("temporarily unavailable"),
        "the page says what happened and that it is temporary: {status} {body}"
    );
    Refusal::Page(status, body)
}

/// Verifies a broker ID token against an already fetched JWKS, as a relying party does.
fn verify_with(jwks: &JwkSet, jwt: &str, issuer: &str, client_id: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.as_deref().ok_or("no kid")?;
    let jwk = jwks.find(kid).ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("jwk: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).map(|t| t.claims).map_err(|e| format!("ID token: {e}"))
}

/// Counts the keys under `prefix` in Redis by kind (`flow`, `code`, `code-used`, `at`, ...).
async fn redis_census(redis_url: &str, prefix: &str) -> HashMap<String, usize> {
    let client = redis::Client::open(redis_url).expect("redis client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("redis connect");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut connection).await.expect("KEYS");
    let mut census = HashMap::new();
    for key in keys {
        let kind = key[prefix.len()..].split(':').next().unwrap_or("").to_owned();
        *census.entry(kind).or_insert(0) += 1;
    }
    census
}

/// Reads `child`'s stdout until a line contains `marker`, within the startup deadline; the rest
/// of the output is kept in `sink` (or dropped).
async fn wait_for_output(child: &mut Child, marker: &str, sink: Option<Arc<Mutex<Vec<String>>>>) -> Result<(), String> {
    let stdout = child.stdout.take().ok_or("stdout not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let keep = |sink: &Option<Arc<Mutex<Vec<String>>>>, line: String| {
        if let Some(sink) = sink {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    };
    let found = tokio::time::timeout(crate::common::STARTUP_DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let ready = line.contains(marker);
            keep(&sink, line);
            if ready {
                return true;
            }
        }
        false
    })
    .await;
    match found {
        Ok(true) => {
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    keep(&sink, line);
                }
            });
            Ok(())
        }
        Ok(false) => Err(format!("exited before printing {marker:?}")),
        Err(_) => Err(format!("did not print {marker:?} within {:?}", crate::common::STARTUP_DEADLINE)),
    }
}

/// `ssobridge serve` as its own process, so that a crash shows as an exit; its log lines kept.
struct ServeProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl ServeProcess {
    /// Serves `toml` (from [`crate::common::broker_toml`]) on `port` with a fresh signing key file.
    async fn start(port: u16, toml: &str) -> ServeProcess {
        let dir = TempDir::new("failures-serve");
        let key = dir.path().join("signing.pem");
        std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write key");
        let config = dir.path().join("ssobridge.toml");
        let toml = toml.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"", key.display()),
        );
        std::fs::write(&config, toml).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
            .env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value)
            .env(crate::common::OPS_LISTEN.name, crate::common::OPS_LISTEN.value)
            .env(crate::common::OPS_PUBLIC.name, crate::common::OPS_PUBLIC.value)
            .args(["serve", "--config"])
            .arg(&config)
            .env("SSOBRIDGE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run ssobridge serve");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let ready = wait_for_output(&mut child, "ssobridge serving", Some(logs.clone())).await;
        let process = ServeProcess { child, logs, _dir: dir };
        if let Err(error) = ready {
            panic!("ssobridge serve {error}:\n{}", process.logs());
        }
        process
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    /// The process is still running and has not panicked anywhere.
    fn assert_alive(&mut self, when: &str) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!("{when}: the broker process exited ({status}):\n{}", self.logs()),
            Err(error) => panic!("{when}: cannot check the broker process: {error}"),
        }
        let logs = self.logs();
        assert!(!logs.contains("panicked"), "{when}: the broker panicked:\n{logs}");
    }
}

/// What clients and users get from `broker` while its Redis is out, each within [`OUTAGE_ANSWER`].
async fn redis_outage_answers(clock: &mut Stopwatch, broker: &str, pending_code: &str, access_token: &str) {
    // Alive but not ready.
    let (status, _) = clock.time("/healthz with Redis out", get(&format!("{broker}/healthz"))).await;
    assert_eq!(status, 200, "/healthz does not depend on the store");
    // /readyz answers from the background checks (every 2 s for the store): not ready soon.
    let (status, _) = clock.time("/readyz with Redis out", get(&format!("{broker}/readyz"))).await;
    assert!(status == 200 || status == 503, "{status}");
    let ready = wait_for_readyz(broker, 503, Duration::from_secs(10)).await;
    assert_eq!((ready["store"].as_str(), ready["upstream"].as_str()), (Some("unavailable"), Some("ok")), "{ready}");

    // The client redeeming its code: RFC 6749 §5.2 JSON, 503 temporarily_unavailable, not cacheable.
    let (status, cache, error) =
        clock.time("/token with Redis out", token_request(broker, AUTH0_CLIENT, pending_code)).await;
    assert_eq!((status, error["error"].as_str()), (503, Some("temporarily_unavailable")), "{error}");
    assert_eq!(cache, "no-store");
    // Userinfo: the token cannot be checked, which is not the same as invalid (no 401).
    let (status, error) = clock.time("/userinfo with Redis out", userinfo(broker, access_token)).await;
    assert_eq!((status, error["error"].as_str()), (503, Some("temporarily_unavailable")), "{error}");
    // A new login: told at once, not sent upstream to fail at the callback.
    let start = authorize_url(broker, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    let response = clock.time("/authorize with Redis out", Browser::default().get(&start)).await;
    temporarily_unavailable(response, AUTH0_CLIENT, broker).await;
}

/// Item 1: Redis killed while a user is at the upstream, then restarted on the same port (empty: the
/// harness's Redis keeps nothing on disk), against the real `ssobridge serve` binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_login_is_a_clear_error_and_logins_work_after_it_restarts() {
    let mut redis = Redis::start().await;
    let port = crate::common::free_port();
    let broker = format!("http://127.0.0.1:{port}");
    let upstream = Upstream::start(&[format!("{broker}/callback")]).await;
    let toml = crate::common::broker_toml(&broker, &redis.url(), "outage:", &upstream.issuer);
    let mut process = ServeProcess::start(port, &toml).await;

    // Before the outage: a login redeemed (its access token in hand), a code not yet redeemed,
    // and a user at the upstream whose callback is not yet delivered.
    let code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("login before the outage");
    let (status, _, tokens) = token_request(&broker, AUTH0_CLIENT, &code).await;
    assert_eq!(status, 200, "{tokens}");
    let access_token = tokens["access_token"].as_str().expect("access_token").to_owned();
    let pending_code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("second login");
    let browser = Browser::default();
    let callback = to_callback(&browser, &broker, &broker, AUTH0_CLIENT, "alice@acme.test").await;

    let mut clock = Stopwatch::new(OUTAGE_ANSWER);
    redis.kill().await;

    // The user comes back from the upstream: a page saying the service is temporarily unavailable.
    let response = clock.time("the callback with Redis down", browser.get(&callback)).await;
    let refusal = temporarily_unavailable(response, AUTH0_CLIENT, &broker).await;
    eprintln!("callback with Redis down: {}", refusal.describe());
    redis_outage_answers(&mut clock, &broker, &pending_code, &access_token).await;
    process.assert_alive("during the outage");

    redis.restart().await;
    let ready = wait_for_readyz(&broker, 200, Duration::from_secs(20)).await;
    assert_eq!(ready["store"], "ok", "the connection to Redis came back by itself: {ready}");

    // The user reloading the failed callback: told the attempt is over, no code minted from it.
    let response = within("the old callback after the restart", STEP, browser.get(&callback)).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap_or_default().contains("no longer valid"));

    // New logins complete, for a client not used since the restart and for the one used before.
    for client in [COGNITO_CLIENT, AUTH0_CLIENT] {
        let code = login_code(&broker, client, "bob@globex.test")
            .await
            .unwrap_or_else(|seen| panic!("a new {} login after Redis restarted: {seen}", client.client_id));
        let (status, _, tokens) = token_request(&broker, client, &code).await;
        assert_eq!(status, 200, "{} redeems after the restart: {tokens}", client.client_id);
        let claims =
            crate::common::verify_id_token(&broker, tokens["id_token"].as_str().expect("id_token"), client.client_id)
                .await;
        assert_eq!(claims["email"], "bob@globex.test");
        let (status, info) = userinfo(&broker, tokens["access_token"].as_str().expect("at")).await;
        assert_eq!((status, info["email"].as_str()), (200, Some("bob@globex.test")), "{info}");
    }
    // The code issued before the outage went with Redis's memory: the client is told so.
    let (status, _, error) = token_request(&broker, AUTH0_CLIENT, &pending_code).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "{error}");
    process.assert_alive("after the restart");
    clock.assert_prompt();
}

/// A redis-server that keeps its data across a kill, and can be frozen.
async fn durable_redis() -> Redis {
    Redis::start_with(RedisOptions { durable: true, ..RedisOptions::default() }).await
}

/// Item 1b: The same outage with a Redis that keeps its data: what failed during the outage consumed
/// nothing, so the user's reload finishes the login and the client's retry redeems its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_consumes_nothing_so_retries_after_it_succeed() {
    let mut redis = durable_redis().await;
    let stack = Stack::start_with_store(&redis.url(), "durable:").await;
    let broker = stack.broker.url.clone();
    let pending_code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("login");
    let browser = Browser::default();
    let callback = to_callback(&browser, &broker, &broker, AUTH0_CLIENT, "alice@acme.test").await;

    let mut clock = Stopwatch::new(OUTAGE_ANSWER);
    redis.kill().await;
    let response = clock.time("the callback with Redis down", browser.get(&callback)).await;
    temporarily_unavailable(response, AUTH0_CLIENT, &broker).await;
    let (status, _, error) =
        clock.time("/token with Redis down", token_request(&broker, AUTH0_CLIENT, &pending_code)).await;
    assert_eq!((status, error["error"].as_str()), (503, Some("temporarily_unavailable")), "{error}");

    redis.restart().await;
    wait_for_readyz(&broker, 200, Duration::from_secs(20)).await;

    let landed = follow(&browser, &callback, AUTH0_CLIENT.redirect_uri).await.expect("the reload finishes the login");
    let params = query(&landed);
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    assert_eq!(params.get("state").map(String::as_str), Some(CLIENT_STATE));
    for code in [code.as_str(), pending_code.as_str()] {
        let (status, tokens) = redeem(&broker, AUTH0_CLIENT, code, Some(VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        crate::common::verify_id_token(&broker, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id)
            .await;
        let (status, error) = redeem(&broker, AUTH0_CLIENT, code, Some(VERIFIER)).await;
        assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "still single use: {error}");
    }
    let census = redis_census(&redis.url(), "durable:").await;
    assert_eq!(census.get("flow"), None, "no flow left behind: {census:?}");
    assert_eq!(census.get("code"), None, "no code left behind: {census:?}");
    clock.assert_prompt();
}

/// Item 1c: Redis hanging (the process stopped: connections stay open, nothing is answered): every
/// answer still comes within a bound, and once Redis resumes, logins work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_redis_bounds_every_answer_and_logins_resume_after_it() {
    let redis = durable_redis().await;
    let stack = Stack::start_with_store(&redis.url(), "frozen:").await;
    let broker = stack.broker.url.clone();
    let code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("login");
    let (status, tokens) = redeem(&broker, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let access_token = tokens["access_token"].as_str().expect("access_token").to_owned();
    let pending_code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("login");
    let browser = Browser::default();
    let callback = to_callback(&browser, &broker, &broker, AUTH0_CLIENT, "alice@acme.test").await;

    let mut clock = Stopwatch::new(OUTAGE_ANSWER);
    redis.freeze().await;
    let response = clock.time("the callback with Redis hanging", browser.get(&callback)).await;
    temporarily_unavailable(response, AUTH0_CLIENT, &broker).await;
    redis_outage_answers(&mut clock, &broker, &pending_code, &access_token).await;

    redis.thaw().await;
    wait_for_readyz(&broker, 200, Duration::from_secs(20)).await;
    for client in [COGNITO_CLIENT, AUTH0_CLIENT] {
        let code = login_code(&broker, client, "bob@globex.test")
            .await
            .unwrap_or_else(|seen| panic!("a {} login after Redis resumed: {seen}", client.client_id));
        let (status, _, tokens) = token_request(&broker, client, &code).await;
        assert_eq!(status, 200, "{tokens}");
        let (status, info) = userinfo(&broker, tokens["access_token"].as_str().expect("at")).await;
        assert_eq!((status, info["email"].as_str()), (200, Some("bob@globex.test")), "{info}");
    }
    clock.assert_prompt();
}

/// The upstream (tests/peers/upstream.mjs) started by this file, on a chosen port, so that it can
/// be killed and started again at the same issuer.
struct NodeUpstream {
    child: Child,
    issuer: String,
}

impl NodeUpstream {
    /// `port` 0 picks a free one.
    async fn start(port: u16, redirect_uris: &[String]) -> NodeUpstream {
        let clients = json!([{
            "client_id": crate::common::UPSTREAM_CLIENT_ID,
            "client_secret": crate::common::UPSTREAM_CLIENT_SECRET,
            "redirect_uris": redirect_uris,
        }]);
        let mut child = Command::new("node")
            .arg(crate::common::peers_dir().join("upstream.mjs"))
            .env("PORT", port.to_string())
            .env("UPSTREAM_CLIENTS", clients.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed (scripts/install-test-deps.sh)");
        let lines = Arc::new(Mutex::new(Vec::new()));
        wait_for_output(&mut child, "READY ", Some(lines.clone())).await.expect("upstream.mjs ready");
        let ready = lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find_map(|l| l.strip_prefix("READY ").map(str::to_owned));
        let ready: Value = serde_json::from_str(&ready.expect("READY line")).expect("READY json");
        NodeUpstream { child, issuer: ready["issuer"].as_str().expect("issuer").to_owned() }
    }

    /// Kills the process and waits for it to be gone (its port closed).
    async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Item 2: The upstream process killed: a login waiting at the callback, and a broker that has not
/// fetched discovery yet. Then the upstream comes back at the same address (with a new signing key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_is_temporarily_unavailable_to_the_client_and_not_ready_until_it_returns() {
    let used = BrokerSocket::bind().await;
    let fresh = BrokerSocket::bind().await;
    let callbacks = [used.callback(), fresh.callback()];
    let mut upstream = NodeUpstream::start(0, &callbacks).await;
    let issuer = upstream.issuer.clone();
    let toml = |url: &str| {
        with_upstream_setting(&crate::common::broker_toml(url, "memory", "u:", &issuer), "timeout_seconds = 1")
    };
    let (used_url, fresh_url) = (used.url.clone(), fresh.url.clone());
    let _used = used.serve(&toml(&used_url), new_key()).await;
    let browser = Browser::default();
    let callback = to_callback(&browser, &used_url, &used_url, AUTH0_CLIENT, "alice@acme.test").await;

    let mut clock = Stopwatch::new(OUTAGE_ANSWER);
    upstream.kill().await;
    wait_until_refused(port_of(&issuer)).await;
    // Started now, this broker never reaches the upstream.
    let _fresh = fresh.serve(&toml(&fresh_url), new_key()).await;

    // Back from the upstream, but the code exchange cannot reach it: the client is told (the
    // flow names it), with its state and the broker's iss.
    let response = clock.time("the callback with the upstream down", browser.get(&callback)).await;
    if let Refusal::Page(status, body) = temporarily_unavailable(response, AUTH0_CLIENT, &used_url).await {
        panic!("the flow names the client, so the client is told: {status} {}", page_message(&body));
    }
    // The background check (every 10 s for the upstream) notices.
    let ready = wait_for_readyz(&used_url, 503, Duration::from_secs(20)).await;
    assert_eq!((ready["store"].as_str(), ready["upstream"].as_str()), (Some("ok"), Some("unavailable")), "{ready}");
    let (status, _) = get(&format!("{used_url}/healthz")).await;
    assert_eq!(status, 200);

    // A broker that never reached the upstream: /authorize tells the client at once.
    let start = authorize_url(&fresh_url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    let response = clock.time("/authorize with the upstream down", Browser::default().get(&start)).await;
    if let Refusal::Page(status, body) = temporarily_unavailable(response, AUTH0_CLIENT, &fresh_url).await {
        panic!("the client is trusted, so it is told: {status} {}", page_message(&body));
    }
    wait_for_readyz(&fresh_url, 503, Duration::from_secs(10)).await;

    // The upstream returns at the same issuer: both brokers become ready and log users in again.
    let _upstream = NodeUpstream::start(port_of(&issuer), &callbacks).await;
    for broker in [&used_url, &fresh_url] {
        wait_for_readyz(broker, 200, STEP).await;
        let code = login_code(broker, AUTH0_CLIENT, "alice@acme.test")
            .await
            .unwrap_or_else(|seen| panic!("a login on {broker} once the upstream is back: {seen}"));
        let (status, tokens) = redeem(broker, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        let claims =
            crate::common::verify_id_token(broker, tokens["id_token"].as_str().expect("id"), AUTH0_CLIENT.client_id)
                .await;
        assert_eq!(claims["email"], "alice@acme.test");
    }
    clock.assert_prompt();
}

/// Where a [`StallServer`] stops answering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// Accepts connections and never reads or answers anything.
    Everything,
    /// Serves discovery and an (empty) JWKS, then never answers the token endpoint.
    TokenEndpoint,
}

/// An upstream that is too slow: a plain TCP server that holds requests open without answering.
struct StallServer {
    issuer: String,
    token_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StallServer {
    async fn start(stall: Stall) -> StallServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let token_requests = Arc::new(AtomicUsize::new(0));
        let (counter, base) = (token_requests.clone(), issuer.clone());
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) drops every held connection.
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(Self::serve(stream, stall, base.clone(), counter.clone()));
            }
        });
        StallServer { issuer, token_requests, task }
    }

    async fn serve(mut stream: TcpStream, stall: Stall, issuer: String, token_requests: Arc<AtomicUsize>) {
        if stall == Stall::Everything {
            return Self::hold(stream).await;
        }
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        // The body too (a form at /token): the grant tells the code exchange from the check of
        // the credentials at start, which hangs as well but is not counted.
        let length = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = head.split_once("\r\n\r\n").map(|(_, b)| b.as_bytes().to_vec()).unwrap_or_default();
        while body.len() < length.min(65536) {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&buffer[..n]),
            }
        }
        let code_exchange = String::from_utf8_lossy(&body).contains("grant_type=authorization_code");
        let mut request_line = head.split_whitespace();
        let (method, path) = (request_line.next().unwrap_or(""), request_line.next().unwrap_or(""));
        let (status, body) = match (method, path) {
            ("GET", "/.well-known/openid-configuration") => (
                "200 OK",
                json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/auth"),
                    "token_endpoint": format!("{issuer}/token"),
                    "jwks_uri": format!("{issuer}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }),
            ),
            ("GET", "/jwks") => ("200 OK", json!({"keys": []})),
            ("POST", "/token") => {
                if code_exchange {
                    token_requests.fetch_add(1, Ordering::SeqCst);
                }
                return Self::hold(stream).await;
            }
            _ => ("404 Not Found", json!({"error": "not_found"})),
        };
        let body = body.to_string();
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    /// Keeps the connection open, answering nothing, until the server is dropped.
    async fn hold(stream: TcpStream) {
        let _open = stream;
        std::future::pending::<()>().await
    }
}

impl Drop for StallServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Item 2b: An upstream whose token endpoint never answers: the login ends after
/// `upstream.timeout_seconds` with `temporarily_unavailable` at the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_token_endpoint_ends_the_login_after_the_timeout() {
    let upstream = StallServer::start(Stall::TokenEndpoint).await;
    let socket = BrokerSocket::bind().await;
    let toml = with_upstream_setting(
        &crate::common::broker_toml(&socket.url, "memory", "slow:", &upstream.issuer),
        "timeout_seconds = 1",
    );
    let broker = socket.serve(&toml, new_key()).await;
    let browser = Browser::default();
    let start = authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    let response = within("/authorize", STEP, browser.get(&start)).await;
    assert_eq!(response.status(), 302, "discovery answered, so the browser goes upstream");
    let location = url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url");
    assert!(location.as_str().starts_with(&format!("{}/auth?", upstream.issuer)), "{location}");
    let upstream_state = query(&location).remove("state").expect("upstream state");

    // The upstream "sends the user back" with a code; redeeming it hangs.
    let mut callback = url::Url::parse(&format!("{}/callback", broker.url)).expect("url");
    callback
        .query_pairs_mut()
        .append_pair("code", "upstream-code")
        .append_pair("state", &upstream_state)
        .append_pair("iss", &upstream.issuer);
    let started = Instant::now();
    let response = within("the callback with a hanging token endpoint", STEP, browser.get(callback.as_str())).await;
    let elapsed = started.elapsed();
    match temporarily_unavailable(response, AUTH0_CLIENT, &broker.url).await {
        Refusal::Redirect(_) => {}
        Refusal::Page(status, body) => panic!("the flow names the client, so the client is told: {status} {body}"),
    }
    assert_eq!(upstream.token_requests.load(Ordering::SeqCst), 1, "the broker did call the token endpoint, once");
    assert!(elapsed >= Duration::from_millis(900), "it waited for the timeout, not less: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "bounded by upstream.timeout_seconds = 1: {elapsed:?}");
}

/// Item 2c: An upstream that accepts connections and never answers: `/readyz` and `/authorize` end
/// after `upstream.timeout_seconds`, `/healthz` is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_bounds_authorize_and_readyz() {
    let upstream = StallServer::start(Stall::Everything).await;
    let socket = BrokerSocket::bind().await;
    let toml = with_upstream_setting(
        &crate::common::broker_toml(&socket.url, "memory", "hang:", &upstream.issuer),
        "timeout_seconds = 1",
    );
    let broker = socket.serve(&toml, new_key()).await;

    // /readyz answers at once from the background check, which gives up after the timeout.
    let checking = Instant::now();
    loop {
        let started = Instant::now();
        let (status, body) = get(&format!("{}/readyz", broker.url)).await;
        assert!(started.elapsed() < Duration::from_secs(1), "/readyz never waits on the upstream");
        assert_eq!(status, 503, "{body}");
        let ready: Value = serde_json::from_str(&body).expect("json");
        if ready["upstream"] == "unavailable" {
            assert_eq!(ready["store"], "ok");
            break;
        }
        assert!(checking.elapsed() < Duration::from_secs(5), "the check is bounded by the upstream timeout: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let (status, _) = get(&format!("{}/healthz", broker.url)).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "/healthz never waits on the upstream");

    let start = authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    let started = Instant::now();
    let response = within("/authorize with a hanging upstream", STEP, Browser::default().get(&start)).await;
    let elapsed = started.elapsed();
    match temporarily_unavailable(response, AUTH0_CLIENT, &broker.url).await {
        Refusal::Redirect(_) => {}
        Refusal::Page(status, body) => panic!("the client is trusted, so it is told: {status} {body}"),
    }
    assert!(elapsed < Duration::from_secs(5), "/authorize bounded by the upstream timeout: {elapsed:?}");
}

/// What one of the concurrent logins produced.
struct Issued {
    code: String,
    access_token: String,
    sub: String,
    client_id: &'static str,
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// Login `i` of many: started on one instance, its callback delivered to one, redeemed on one,
/// checked and replayed on the other (the four combinations in turn).
async fn one_of_many(
    i: usize,
    instances: [String; 2],
    public_url: String,
    jwks: Arc<JwkSet>,
) -> Result<Issued, String> {
    let client = if i.is_multiple_of(2) { AUTH0_CLIENT } else { COGNITO_CLIENT };
    let email = format!("user{i}@acme.test");
    let (start_on, callback_on) = (&instances[i % 2], &instances[(i / 2) % 2]);
    let (redeem_on, check_on) = (&instances[(i / 4) % 2], &instances[(i / 4 + 1) % 2]);

    let browser = Browser::default();
    let start = authorize_url(start_on, client, verifier_for(client), &[("login_hint", email.as_str())]);
    let callback = follow(&browser, &start, &format!("{public_url}/callback")).await?;
    let delivered = callback.as_str().replacen(public_url.as_str(), callback_on, 1);
    let params = query(&follow(&browser, &delivered, client.redirect_uri).await?);
    ensure!(params.get("state").map(String::as_str) == Some(CLIENT_STATE), "login {i}: state {params:?}");
    ensure!(params.get("iss") == Some(&public_url), "login {i}: iss {params:?}");
    let code = params.get("code").cloned().ok_or_else(|| format!("login {i}: no code {params:?}"))?;

    let (status, tokens) = redeem(redeem_on, client, &code, verifier_for(client)).await;
    ensure!(status == 200, "login {i}: redeem {status} {tokens}");
    let access_token = tokens["access_token"].as_str().ok_or(format!("login {i}: {tokens}"))?.to_owned();
    let id_token = tokens["id_token"].as_str().ok_or(format!("login {i}: {tokens}"))?;
    let claims = verify_with(&jwks, id_token, &public_url, client.client_id).map_err(|e| format!("login {i}: {e}"))?;
    ensure!(claims["email"] == email.as_str(), "login {i} got another user's claims: {claims}");
    ensure!(claims["at_hash"] == ssobridge::tokens::at_hash(&access_token).as_str(), "login {i}: at_hash {claims}");
    let sub = claims["sub"].as_str().unwrap_or("").to_owned();
    if client == COGNITO_CLIENT {
        ensure!(sub == crate::common::upstream_subject("conn_acme1", &email), "login {i}: sub {sub}");
    }

    let (status, info) = userinfo(check_on, &access_token).await;
    ensure!(status == 200 && info["email"] == email.as_str() && info["sub"] == sub.as_str(), "login {i}: {info}");
    let (status, error) = redeem(check_on, client, &code, verifier_for(client)).await;
    ensure!(status == 400 && error["error"] == "invalid_grant", "login {i}: second redemption {status} {error}");
    let (status, _) = userinfo(redeem_on, &access_token).await;
    ensure!(status == 401, "login {i}: the replay revokes the access token on every instance, got {status}");
    Ok(Issued { code, access_token, sub, client_id: client.client_id })
}

/// Item 3: 200 logins, 32 at a time, on two instances sharing one Redis: every one completes, every
/// code redeems exactly once, nothing is shared between logins, nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_logins_on_two_instances_sharing_redis() {
    const LOGINS: usize = 200;
    let redis = Redis::start().await;
    let socket_a = BrokerSocket::bind().await;
    let socket_b = BrokerSocket::bind().await;
    let upstream = Upstream::start(&[socket_a.callback()]).await;
    let public_url = socket_a.url.clone();
    let pem = ssobridge::tokens::generate_rsa_pem().expect("pem");
    let toml = crate::common::broker_toml(&public_url, &redis.url(), "load:", &upstream.issuer);
    let instances = [socket_a.url.clone(), socket_b.url.clone()];
    let _a = socket_a.serve(&toml, SigningKey::from_pem(&pem).expect("key")).await;
    let _b = socket_b.serve(&toml, SigningKey::from_pem(&pem).expect("key")).await;

    let mut jwks = Vec::new();
    for instance in &instances {
        let (status, body) = get(&format!("{instance}/jwks")).await;
        assert_eq!(status, 200);
        jwks.push(serde_json::from_str::<Value>(&body).expect("jwks"));
    }
    assert_eq!(jwks[0], jwks[1], "both instances publish the same keys");
    let jwks: Arc<JwkSet> = Arc::new(serde_json::from_value(jwks.remove(0)).expect("jwk set"));

    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(32));
    let mut logins = JoinSet::new();
    for i in 0..LOGINS {
        let (permits, instances, public_url, jwks) =
            (permits.clone(), instances.clone(), public_url.clone(), jwks.clone());
        logins.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore");
            tokio::time::timeout(Duration::from_secs(60), one_of_many(i, instances, public_url, jwks))
                .await
                .unwrap_or_else(|_| Err(format!("login {i} took longer than 60 s")))
        });
    }
    let results = within("200 logins", Duration::from_secs(120), logins.join_all()).await;
    eprintln!("{LOGINS} concurrent logins on two instances in {:?}", started.elapsed());

    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {LOGINS} logins failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let issued: Vec<&Issued> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(issued.len(), LOGINS);
    let codes: HashSet<&str> = issued.iter().map(|i| i.code.as_str()).collect();
    assert_eq!(codes.len(), LOGINS, "no two logins got the same code");
    let tokens: HashSet<&str> = issued.iter().map(|i| i.access_token.as_str()).collect();
    assert_eq!(tokens.len(), LOGINS, "no two logins got the same access token");
    let subjects: HashSet<(&str, &str)> = issued.iter().map(|i| (i.client_id, i.sub.as_str())).collect();
    assert_eq!(subjects.len(), LOGINS, "200 users, 200 subjects");

    // Every flow and code was taken exactly once; every redemption left its marker; every access
    // token was revoked by the replay of its code.
    let census = redis_census(&redis.url(), "load:").await;
    assert_eq!(census.get("flow"), None, "flows left behind: {census:?}");
    assert_eq!(census.get("code"), None, "codes left behind: {census:?}");
    assert_eq!(census.get("code-used").copied(), Some(LOGINS), "one redemption marker per code: {census:?}");
    assert_eq!(census.get("at"), None, "access tokens not revoked: {census:?}");
}

/// Short lifetimes for the broker's own tokens (seconds).
const ID_TOKEN_TTL: u64 = 120;
const ACCESS_TOKEN_TTL: u64 = 2;
const CODE_TTL: u64 = 2;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Item 4: The broker's tokens live exactly as configured: ID token `exp - iat`, `expires_in`, and a
/// code or access token used once its lifetime is over is refused.
async fn tokens_live_as_configured(store_url: &str, prefix: &str) {
    let lifetimes = format!(
        "\n[tokens]\nid_token_ttl_seconds = {ID_TOKEN_TTL}\naccess_token_ttl_seconds = {ACCESS_TOKEN_TTL}\ncode_ttl_seconds = {CODE_TTL}\n"
    );
    let stack = Stack::start_with(store_url, prefix, &lifetimes).await;
    let broker = stack.broker.url.clone();

    // Within their lifetimes, everything works; the ID token's window is exactly the configured one.
    let code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("login");
    let code_received = Instant::now();
    let (status, tokens) = redeem(&broker, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
    let issued = Instant::now();
    assert_eq!(status, 200, "redeemed {:?} after issue: {tokens}", code_received.elapsed());
    assert_eq!(tokens["expires_in"], ACCESS_TOKEN_TTL, "{tokens}");
    let access_token = tokens["access_token"].as_str().expect("at").to_owned();
    let claims =
        crate::common::verify_id_token(&broker, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id)
            .await;
    let (iat, exp) = (claims["iat"].as_u64().expect("iat"), claims["exp"].as_u64().expect("exp"));
    assert_eq!(exp - iat, ID_TOKEN_TTL, "exp - iat is tokens.id_token_ttl_seconds: {claims}");
    assert!(iat.abs_diff(now()) <= 5, "iat is the broker's now: {iat} vs {}", now());
    assert!(claims["auth_time"].as_u64().expect("auth_time") <= iat, "{claims}");
    let (status, _) = userinfo(&broker, &access_token).await;
    assert_eq!(status, 200);

    // A second code, left until both lifetimes are over (one wait: the expiry is what is tested).
    let late_code = login_code(&broker, AUTH0_CLIENT, "alice@acme.test").await.expect("login");
    let margin = Duration::from_millis(500);
    let code_over = Instant::now() + Duration::from_secs(CODE_TTL) + margin;
    let token_over = issued + Duration::from_secs(ACCESS_TOKEN_TTL) + margin;
    tokio::time::sleep_until(code_over.max(token_over).into()).await;

    let (status, error) = redeem(&broker, AUTH0_CLIENT, &late_code, Some(VERIFIER)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "an expired code: {error}");
    let (status, error) = userinfo(&broker, &access_token).await;
    assert_eq!((status, error["error"].as_str()), (401, Some("invalid_token")), "an expired access token: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_tokens_live_exactly_as_configured_on_redis() {
    let redis = Redis::start().await;
    tokens_live_as_configured(&redis.url(), "ttl:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_tokens_live_exactly_as_configured_on_the_memory_store() {
    tokens_live_as_configured("memory", "ttl:").await;
}

/// Item 4b: Upstream clock skew at the configured bound: the upstream's tamper modes move `exp`
/// 10 minutes into the past or `iat` 10 minutes into the future. A broker tolerating 11 minutes
/// accepts both, one tolerating 9 refuses both; either way the broker's own tokens are dated by
/// its own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_clock_skew_is_tolerated_up_to_the_configured_bound_and_no_further() {
    let tolerant = BrokerSocket::bind().await;
    let strict = BrokerSocket::bind().await;
    let upstream = Upstream::start(&[tolerant.callback(), strict.callback()]).await;
    let toml = |url: &str, skew: u64| {
        with_upstream_setting(
            &crate::common::broker_toml(url, "memory", "skew:", &upstream.issuer),
            &format!("clock_skew_seconds = {skew}"),
        )
    };
    let (tolerant_url, strict_url) = (tolerant.url.clone(), strict.url.clone());
    let _tolerant = tolerant.serve(&toml(&tolerant_url, 660), new_key()).await;
    let _strict = strict.serve(&toml(&strict_url, 540), new_key()).await;

    for mode in ["expired", "future_iat"] {
        upstream.tamper(mode).await;
        let browser = Browser::default();
        let start = authorize_url(&strict_url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
        let landed = follow(&browser, &start, AUTH0_CLIENT.redirect_uri).await.expect("login");
        let params = query(&landed);
        assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{mode} beyond 540 s: {params:?}");
        assert_eq!(params.get("state").map(String::as_str), Some(CLIENT_STATE));
        assert!(!params.contains_key("code"));

        upstream.tamper(mode).await;
        let code = login_code(&tolerant_url, AUTH0_CLIENT, "alice@acme.test")
            .await
            .unwrap_or_else(|seen| panic!("{mode} within 660 s is accepted: {seen}"));
        let (status, tokens) = redeem(&tolerant_url, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        let claims = crate::common::verify_id_token(
            &tolerant_url,
            tokens["id_token"].as_str().expect("id"),
            AUTH0_CLIENT.client_id,
        )
        .await;
        let (iat, auth_time) = (claims["iat"].as_u64().expect("iat"), claims["auth_time"].as_u64().expect("auth_time"));
        assert!(iat.abs_diff(now()) <= 5 && auth_time.abs_diff(now()) <= 5, "{mode}: the broker's own clock: {claims}");
    }
}
