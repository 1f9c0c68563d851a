//! The deployment of `deploy/`, checked without a container engine (none runs here).
//!
//! The topology of `deploy/compose.yaml` runs as plain processes: Redis, the upstream
//! (`oidc-provider`, like Scalekit), two `ssobridge serve` processes of the real binary with one
//! signing key file, one `public_url` (the proxy's) and one Redis, and Debian's nginx in front
//! running `deploy/nginx.conf` itself, with only its addresses replaced. Logins go through the
//! proxy as a browser does them. The compose configuration is checked by the binary's own
//! `check-config` (the Helm chart: `chart.rs`).
//!
//! nginx comes from `scripts/deps/nginx.sh`; a missing one fails the test.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::tempdir::TempDir;
use crate::common::{
    authorize_url, query, verify_id_token, Browser, Redis, TestClient, Upstream, AUTH0_CLIENT, COGNITO_CLIENT,
    STARTUP_DEADLINE, VERIFIER,
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const BINARY: &str = env!("CARGO_BIN_EXE_ssobridge");

/// How long a log line may take to reach the test after the response it describes.
const LOG_DEADLINE: Duration = Duration::from_secs(10);

/// What [`LogBook`] records when a process closes its stdout (it exited).
const EXITED: &str = "<exited>";

pub(crate) fn deploy_dir() -> PathBuf {
    crate::common::repo_root().join("deploy")
}

/// A program from `PATH`, or from `extra` (Debian puts nginx in /usr/sbin, which a non-root
/// `PATH` may lack). Panics naming the install script when it is nowhere.
pub(crate) fn program(name: &str, extra: &[&str], script: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed ({script} installs it; scripts/install-test-deps.sh runs it)")
        })
}

/// Runs a command to completion; panics with its output unless it succeeds. Returns stdout.
pub(crate) async fn run_ok(command: &mut Command, what: &str) -> String {
    let output = command.output().await.unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A new signing key, made by the binary as an operator makes one.
pub(crate) async fn generate_key(dir: &Path) -> PathBuf {
    let key = dir.join("signing.pem");
    run_ok(Command::new(BINARY).args(["keys", "generate", "--out"]).arg(&key), "ssobridge keys generate").await;
    key
}

/// Every line the topology's processes print on stdout, tagged with the process, in arrival
/// order: the instances' JSON logs and nginx's access log.
struct LogBook {
    lines: Mutex<Vec<(String, String)>>,
    version: watch::Sender<u64>,
}

impl LogBook {
    fn new() -> Arc<LogBook> {
        Arc::new(LogBook { lines: Mutex::new(Vec::new()), version: watch::channel(0).0 })
    }

    /// Reads `stream` into the book under `source` until it closes, then records [`EXITED`].
    fn collect(self: &Arc<Self>, source: &str, stream: impl AsyncRead + Unpin + Send + 'static) {
        let book = self.clone();
        let source = source.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                book.push(&source, line);
            }
            book.push(&source, EXITED.to_owned());
        });
    }

    fn push(&self, source: &str, line: String) {
        self.lines.lock().expect("log book").push((source.to_owned(), line));
        self.version.send_modify(|v| *v += 1);
    }

    fn lines_of(&self, source: &str) -> Vec<String> {
        let lines = self.lines.lock().expect("log book");
        lines.iter().filter(|(s, _)| s == source).map(|(_, l)| l.clone()).collect()
    }

    /// Waits until `pick` accepts a line (`Some(Ok)`) or refuses the wait (`Some(Err)`), for at
    /// most `deadline`. Woken by each new line: no polling.
    async fn wait_for<T>(
        &self,
        deadline: Duration,
        what: &str,
        mut pick: impl FnMut(&str, &str) -> Option<Result<T, String>>,
    ) -> T {
        let mut version = self.version.subscribe();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let found = {
                let lines = self.lines.lock().expect("log book");
                lines.iter().find_map(|(source, line)| pick(source, line))
            };
            match found {
                Some(Ok(value)) => return value,
                Some(Err(error)) => panic!("{what}: {error}"),
                None => {}
            }
            if !matches!(tokio::time::timeout_at(until, version.changed()).await, Ok(Ok(()))) {
                panic!("{what}: not seen within {deadline:?}");
            }
        }
    }
}

/// One `ssobridge serve` process of the real binary.
struct Instance {
    name: String,
    child: Child,
    addr: SocketAddr,
    /// The operations listener: /readyz, /metrics (not behind the proxy).
    ops_addr: SocketAddr,
}

impl Instance {
    /// Starts it and waits for its "ssobridge serving" log line, which names the bound address
    /// (the config says port 0).
    async fn start(name: &str, config: &Path, logs: &Arc<LogBook>) -> Instance {
        let mut child = Command::new(BINARY)
            .args(["serve", "--config"])
            .arg(config)
            // Nothing from the test's environment: an SSOBRIDGE_ variable would override the file.
            .env_clear()
            .env("SSOBRIDGE_LOG", "info")
            .env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value)
            // Two instances on one host: each its own operations port (containers each have 9090).
            .env(crate::common::OPS_LISTEN.name, crate::common::OPS_LISTEN.value)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("run ssobridge serve");
        logs.collect(name, child.stdout.take().expect("stdout piped"));
        // The operations listener is logged first, then the public one.
        let ops_addr = logs
            .wait_for(STARTUP_DEADLINE, &format!("{name} operations listener"), |source, line| {
                if source != name {
                    None
                } else if line == EXITED {
                    Some(Err("exited before it was serving (its stderr is above)".to_owned()))
                } else if line.contains("operations listener serving") {
                    let parsed: Value = serde_json::from_str(line).ok()?;
                    let listen = parsed["fields"]["listen"].as_str().and_then(|a| a.parse().ok());
                    Some(listen.ok_or_else(|| format!("no listen address in {line}")))
                } else {
                    None
                }
            })
            .await;
        let addr = logs
            .wait_for(STARTUP_DEADLINE, &format!("{name} start"), |source, line| {
                if source != name {
                    None
                } else if line == EXITED {
                    Some(Err("exited before it was serving (its stderr is above)".to_owned()))
                } else if line.contains("ssobridge serving") {
                    let parsed: Value = serde_json::from_str(line).ok()?;
                    let listen = parsed["fields"]["listen"].as_str().and_then(|a| a.parse().ok());
                    Some(listen.ok_or_else(|| format!("no listen address in {line}")))
                } else {
                    None
                }
            })
            .await;
        Instance { name: name.to_owned(), child, addr, ops_addr }
    }
}

/// Debian's nginx running deploy/nginx.conf, as one foreground process.
struct Nginx {
    _child: Child,
    _dir: TempDir,
}

impl Nginx {
    /// deploy/nginx.conf with this run's addresses: the two `server ssobridge-N:8080` lines name
    /// the instances, `listen` the proxy's loopback port, and the temp paths (Debian's defaults
    /// are under /var/lib/nginx) go into `dir`. Nothing else changes.
    fn config(port: u16, instances: [SocketAddr; 2], dir: &Path) -> String {
        let shipped = std::fs::read_to_string(deploy_dir().join("nginx.conf")).expect("read deploy/nginx.conf");
        let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
            .iter()
            .map(|kind| format!("    {kind}_temp_path {};\n", dir.join(kind).display()))
            .collect();
        let mut config = shipped;
        for (from, to) in [
            ("server ssobridge-1:8080 ", format!("server {} ", instances[0])),
            ("server ssobridge-2:8080 ", format!("server {} ", instances[1])),
            ("listen 8080;", format!("listen 127.0.0.1:{port};")),
            ("http {\n", format!("http {{\n{temp_paths}")),
        ] {
            assert_eq!(
                config.matches(from).count(),
                1,
                "deploy/nginx.conf must contain `{from}` exactly once: tests/topology.rs replaces it"
            );
            config = config.replacen(from, &to, 1);
        }
        config
    }

    /// Starts nginx on `port` and waits until `/healthz` answers through it. An error means
    /// nginx exited (someone took the port between [`crate::common::free_port`] and now).
    async fn start(port: u16, instances: [SocketAddr; 2], logs: &Arc<LogBook>) -> Result<Nginx, String> {
        let dir = TempDir::new("nginx");
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, Self::config(port, instances, dir.path())).expect("write nginx.conf");
        let errors = dir.path().join("error.log");
        let mut child = Command::new(program("nginx", &["/usr/sbin"], "scripts/deps/nginx.sh"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config)
            .args(["-e", "stderr", "-g"])
            // One process in the foreground, so that killing it (on drop) leaves no worker behind.
            .arg(format!("daemon off; master_process off; pid {};", dir.path().join("nginx.pid").display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&errors).expect("nginx error log")))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run nginx: {e}"))?;
        logs.collect("nginx", child.stdout.take().expect("stdout piped"));
        let error_log = || std::fs::read_to_string(&errors).unwrap_or_default();
        let url = format!("http://127.0.0.1:{port}/healthz");
        let http = crate::common::http();
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("nginx exited ({status}): {}", error_log()));
            }
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(Nginx { _child: child, _dir: dir });
                }
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not answer within {STARTUP_DEADLINE:?}: {}", error_log()));
            }
            // Polling the port: nginx prints nothing when it is ready.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The whole topology. Dropping it stops every process.
struct Topology {
    proxy: Proxy,
    instances: Vec<Instance>,
    _nginx: Nginx,
    _upstream: Upstream,
    _redis: Redis,
    _dir: TempDir,
}

impl Topology {
    async fn start() -> Topology {
        let redis = Redis::start().await;
        let dir = TempDir::new("topology");
        let key = generate_key(dir.path()).await;
        let mut failures = Vec::new();
        for attempt in 0..3 {
            // The proxy's address is the issuer, so its port is chosen first; should nginx find
            // it taken by then, everything starts again on another one.
            let port = crate::common::free_port();
            let url = format!("http://127.0.0.1:{port}");
            let logs = LogBook::new();
            let upstream = Upstream::start(&[format!("{url}/callback")]).await;
            let prefix = format!("topology-{}:", uuid::Uuid::new_v4());
            // One file for both instances, as compose mounts one: same issuer, store, key.
            let config = dir.path().join(format!("ssobridge-{attempt}.toml"));
            let toml = crate::common::broker_toml(&url, &redis.url(), &prefix, &upstream.issuer)
                + &format!("[signing]\nkey_file = \"{}\"\n", key.display());
            std::fs::write(&config, toml).expect("write config");
            let instances = vec![
                Instance::start("ssobridge-1", &config, &logs).await,
                Instance::start("ssobridge-2", &config, &logs).await,
            ];
            match Nginx::start(port, [instances[0].addr, instances[1].addr], &logs).await {
                Ok(nginx) => {
                    return Topology {
                        proxy: Proxy { url, logs },
                        instances,
                        _nginx: nginx,
                        _upstream: upstream,
                        _redis: redis,
                        _dir: dir,
                    }
                }
                Err(error) => failures.push(error),
            }
        }
        panic!("nginx did not start: {failures:#?}");
    }

    /// Kills an instance (SIGKILL: a crash, no graceful shutdown) by its process.
    async fn kill(&mut self, name: &str) {
        let instance = self.instances.iter_mut().find(|i| i.name == name).expect("instance");
        instance.child.kill().await.expect("kill instance");
    }

    fn addr_of(&self, name: &str) -> SocketAddr {
        self.instances.iter().find(|i| i.name == name).expect("instance").addr
    }
}

/// The proxy as browsers and the downstream see it, and the logs that tell which instance
/// answered each response (by its `x-request-id`).
#[derive(Clone)]
struct Proxy {
    url: String,
    logs: Arc<LogBook>,
}

/// One login through the proxy, and the instance that answered each of its steps.
#[derive(Debug)]
struct Login {
    sub: String,
    authorize: String,
    callback: String,
    token: String,
    userinfo: String,
}

impl Login {
    fn steps(&self) -> [&str; 4] {
        [&self.authorize, &self.callback, &self.token, &self.userinfo]
    }
}

/// The absolute URL a redirect points to.
fn location(from: &str, response: &reqwest::Response) -> Option<String> {
    let location = response.headers().get("location")?.to_str().ok()?;
    Some(url::Url::parse(from).ok()?.join(location).ok()?.to_string())
}

impl Proxy {
    /// The instance whose log has the request line of `response` (by its `x-request-id`).
    async fn instance_for(&self, response: &reqwest::Response) -> String {
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-request-id on the answer from {}", response.url()))
            .to_owned();
        self.logs
            .wait_for(LOG_DEADLINE, &format!("the instance that answered request {id}"), |source, line| {
                (source.starts_with("ssobridge-") && line.contains(&id) && line.contains(r#""message":"request""#))
                    .then(|| Ok(source.to_owned()))
            })
            .await
    }

    /// A whole login: /authorize, the upstream, /callback, /token, /userinfo, all but the
    /// upstream through the proxy.
    async fn login(&self, client: TestClient<'_>, email: &str) -> Login {
        let browser = Browser::default();
        let start = authorize_url(&self.url, client, Some(VERIFIER), &[("login_hint", email)]);
        let response = browser.get(&start).await;
        let authorize = self.instance_for(&response).await;
        let next = location(&start, &response)
            .unwrap_or_else(|| panic!("/authorize answered {} without a redirect", response.status()));
        self.finish(&browser, client, email, authorize, next).await
    }

    /// The rest of a login whose /authorize (answered by `authorize`) redirected to `next`.
    async fn finish(
        &self,
        browser: &Browser,
        client: TestClient<'_>,
        email: &str,
        authorize: String,
        mut next: String,
    ) -> Login {
        let callback_url = format!("{}/callback", self.url);
        let mut callback = None;
        for _ in 0..20 {
            if next.starts_with(client.redirect_uri) {
                break;
            }
            let response = browser.get(&next).await;
            if next.starts_with(&callback_url) {
                callback = Some(self.instance_for(&response).await);
            }
            let status = response.status();
            next = match location(&next, &response) {
                Some(location) => location,
                None => panic!("{status} at {next}: {}", response.text().await.unwrap_or_default()),
            };
        }
        assert!(next.starts_with(client.redirect_uri), "the login did not reach the client: {next}");
        let callback = callback.expect("the login went through /callback");
        let params = query(&url::Url::parse(&next).expect("redirect_uri"));
        assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"), "{params:?}");
        assert_eq!(params.get("iss"), Some(&self.url), "iss is the proxy's address: {params:?}");
        let code = params.get("code").unwrap_or_else(|| panic!("no code: {params:?}"));

        let http = crate::common::http();
        let response = http
            .post(format!("{}/token", self.url))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", client.redirect_uri),
                ("client_id", client.client_id),
                ("client_secret", client.secret),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("token");
        let token = self.instance_for(&response).await;
        assert_eq!(response.status(), 200, "/token");
        let tokens: Value = response.json().await.expect("token json");
        let id_token = tokens["id_token"].as_str().expect("id_token");
        let claims = verify_id_token(&self.url, id_token, client.client_id).await;
        assert_eq!(claims["email"], email);

        let access_token = tokens["access_token"].as_str().expect("access_token");
        let response =
            http.get(format!("{}/userinfo", self.url)).bearer_auth(access_token).send().await.expect("userinfo");
        let userinfo = self.instance_for(&response).await;
        assert_eq!(response.status(), 200, "/userinfo");
        let info: Value = response.json().await.expect("userinfo json");
        assert_eq!(info["sub"], claims["sub"], "userinfo and ID token agree");
        assert_eq!(info["email"], email);

        let sub = claims["sub"].as_str().expect("sub").to_owned();
        Login { sub, authorize, callback, token, userinfo }
    }

    /// nginx's access log, one JSON object per request.
    fn access_log(&self) -> Vec<Value> {
        self.logs
            .lines_of("nginx")
            .iter()
            .filter(|line| line.as_str() != EXITED)
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("access log line {line}: {e}")))
            .collect()
    }

    fn request_lines(&self, instance: &str) -> usize {
        self.logs.lines_of(instance).iter().filter(|l| l.contains(r#""message":"request""#)).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_through_the_proxy_are_spread_over_both_instances() {
    let topology = Topology::start().await;
    let proxy = topology.proxy.clone();

    // Each instance is ready on its operations listener (probes go there, not through the proxy).
    for ops in topology.instances.iter().map(|i| i.ops_addr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = crate::common::http().get(format!("http://{ops}/readyz")).send().await.expect("readyz");
            let (status, body) = (ready.status(), ready.json::<Value>().await.expect("json"));
            if status == 200 {
                // The test upstream grants no client_credentials: it cannot say whether the
                // broker's credentials are right ("unknown", which counts as ready).
                assert_eq!(body, serde_json::json!({"store": "ok", "upstream": "ok", "credentials": "unknown"}));
                break;
            }
            assert!(Instant::now() < deadline, "not ready: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let public = crate::common::http().get(format!("{}/readyz", proxy.url)).send().await.expect("readyz");
    assert_eq!(public.status(), 404, "not on the public listener by default");

    // 20 logins, four at a time, alternating between the two clients.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for stream in 0..4 {
        let proxy = proxy.clone();
        tasks.spawn(async move {
            let mut logins = Vec::new();
            for i in 0..5 {
                let (client, email) = if (stream + i) % 2 == 0 {
                    (AUTH0_CLIENT, "alice@acme.test")
                } else {
                    (COGNITO_CLIENT, "bob@globex.test")
                };
                logins.push((client.client_id, proxy.login(client, email).await));
            }
            logins
        });
    }
    let mut logins = Vec::new();
    while let Some(result) = tasks.join_next().await {
        logins.extend(result.expect("login task"));
    }
    eprintln!("20 logins through nginx and two instances in {:?}", started.elapsed());
    assert_eq!(logins.len(), 20);

    // Both instances took part, in about equal shares (round robin).
    let mut steps: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, login) in &logins {
        for step in login.steps() {
            *steps.entry(step).or_default() += 1;
        }
    }
    assert_eq!(steps.len(), 2, "both instances answered login steps: {steps:?}");
    assert!(steps.values().all(|&n| n >= 16), "each instance took at least a fifth of the 80 steps: {steps:?}");
    for instance in ["ssobridge-1", "ssobridge-2"] {
        assert!(proxy.request_lines(instance) >= 16, "{instance} logged its requests");
    }

    // Steps of one login crossed instances, and still completed: the flow begun by one was
    // finished by the other, a code minted by one was redeemed at the other, an access token
    // issued by one was accepted by the other.
    let crossed = |f: fn(&Login) -> bool| logins.iter().filter(|(_, l)| f(l)).count();
    assert!(crossed(|l| l.callback != l.authorize) > 0, "a callback landed on the other instance: {logins:#?}");
    assert!(crossed(|l| l.token != l.callback) > 0, "a code was redeemed on the other instance: {logins:#?}");
    assert!(crossed(|l| l.userinfo != l.token) > 0, "an access token was used on the other instance: {logins:#?}");

    // One signing key, one salt: the same user gets the same pairwise sub from either instance.
    let subs: HashSet<&str> =
        logins.iter().filter(|(client, _)| *client == AUTH0_CLIENT.client_id).map(|(_, l)| l.sub.as_str()).collect();
    assert_eq!(subs.len(), 1, "one pairwise sub for alice whichever instance answered: {subs:?}");

    // nginx's view agrees: requests went to both addresses. Its log has paths, never the query
    // strings that carry codes and state.
    let access = proxy.access_log();
    let upstreams: HashSet<&str> = access.iter().filter_map(|l| l["upstream_addr"].as_str()).collect();
    for instance in &topology.instances {
        assert!(upstreams.contains(instance.addr.to_string().as_str()), "nginx sent requests to {}", instance.name);
    }
    let raw = proxy.logs.lines_of("nginx").join("\n");
    assert!(!raw.contains("code=") && !raw.contains("state="), "no query string in the access log");
    assert!(access.iter().all(|l| l["request_id"].as_str().is_some_and(|id| !id.is_empty())), "request ids logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_begun_on_an_instance_that_dies_completes_on_the_other() {
    let mut topology = Topology::start().await;
    let proxy = topology.proxy.clone();
    proxy.login(AUTH0_CLIENT, "alice@acme.test").await;

    // Begin a login, then kill the instance that answered its /authorize: the flow it stored
    // is in Redis, and the callback reaches the survivor.
    let browser = Browser::default();
    let start = authorize_url(&proxy.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    let response = browser.get(&start).await;
    let dead = proxy.instance_for(&response).await;
    let next = location(&start, &response).expect("redirect to the upstream");
    topology.kill(&dead).await;
    let started = Instant::now();
    let survivor = if dead == "ssobridge-1" { "ssobridge-2" } else { "ssobridge-1" };
    let login = proxy.finish(&browser, AUTH0_CLIENT, "alice@acme.test", dead.clone(), next).await;
    assert_eq!([login.callback.as_str(), &login.token, &login.userinfo], [survivor; 3], "{login:?}");

    // Logins go on, all through the survivor.
    for i in 0..10 {
        let (client, email) =
            if i % 2 == 0 { (AUTH0_CLIENT, "alice@acme.test") } else { (COGNITO_CLIENT, "bob@globex.test") };
        let login = proxy.login(client, email).await;
        assert_eq!(login.steps(), [survivor; 4], "{login:?}");
    }
    eprintln!("11 logins after {dead} was killed, in {:?}", started.elapsed());

    // nginx met the dead instance (a refused connection) and passed the request on, and no
    // client ever saw that: no 502 or 504 answered.
    let access = proxy.access_log();
    let dead_addr = topology.addr_of(&dead).to_string();
    let retried: Vec<&Value> = access
        .iter()
        .filter(|l| l["upstream_addr"].as_str().is_some_and(|a| a.starts_with(&dead_addr) && a.contains(", ")))
        .collect();
    assert!(!retried.is_empty(), "a request was retried on the survivor: {access:#?}");
    assert!(retried.iter().all(|l| l["upstream_status"].as_str().is_some_and(|s| s.starts_with("502, "))));
    assert!(access.iter().all(|l| l["status"] != 502 && l["status"] != 504), "{access:#?}");
}

/// Reads a dotenv file as compose does for the values used here: `KEY=value`, or a double-quoted
/// value over several lines.
fn read_env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut vars = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=value: {line}"));
        let value = match value.strip_prefix('"') {
            Some(rest) => {
                let mut value = rest.to_owned();
                while !value.ends_with('"') {
                    value.push('\n');
                    value.push_str(lines.next().unwrap_or_else(|| panic!("unterminated quote in {key}")));
                }
                value.pop();
                value
            }
            None => value.to_owned(),
        };
        vars.push((key.to_owned(), value));
    }
    vars
}

/// `ssobridge check-config` on `config` with exactly `env`; returns (success, output).
pub(crate) async fn check_config(config: &Path, env: &[(String, String)]) -> (bool, String) {
    let output = Command::new(BINARY)
        .args(["check-config", "--config"])
        .arg(config)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .expect("run check-config");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

/// Replaces the placeholder signing key of an example environment with a real key.
fn with_key(mut env: Vec<(String, String)>, pem: &str) -> Vec<(String, String)> {
    let slot = env.iter_mut().find(|(k, _)| k == "SSOBRIDGE_SIGNING__KEY_PEM").expect("the signing key is documented");
    slot.1 = pem.to_owned();
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_configuration_is_what_the_binary_accepts() {
    let deploy = deploy_dir();
    let compose = std::fs::read_to_string(deploy.join("compose.yaml")).expect("compose.yaml");
    for mounted in ["./nginx.conf:/etc/nginx/nginx.conf:ro", "./ssobridge.toml:/etc/ssobridge/ssobridge.toml:ro"] {
        assert!(compose.contains(mounted), "compose.yaml mounts {mounted}");
    }
    assert!(compose.contains("env_file: ssobridge.env"), "compose.yaml reads the secrets from ssobridge.env");
    let dockerfile = std::fs::read_to_string(deploy.join("Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains(r#"CMD ["serve", "--config", "/etc/ssobridge/ssobridge.toml"]"#));

    // The mounted file holds no secret: alone it is refused, naming what is missing.
    let config = deploy.join("ssobridge.toml");
    let (ok, output) = check_config(&config, &[]).await;
    assert!(!ok && output.contains("client_secret"), "{output}");

    // With the example environment (and a real key in place of the placeholder) it is valid.
    let dir = TempDir::new("compose");
    let pem = std::fs::read_to_string(generate_key(dir.path()).await).expect("key");
    let env = with_key(read_env_file(&deploy.join("ssobridge.env.example")), &pem);
    let (ok, output) = check_config(&config, &env).await;
    assert!(ok, "deploy/ssobridge.toml with ssobridge.env.example: {output}");
    assert!(output.contains("store redis://redis:6379/0"), "{output}");
}
