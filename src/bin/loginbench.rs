//! loginbench: complete demo logins per second, and token requests per second, against a
//! running ssobridge, or against a `ssobridge demo` it starts itself pinned to one core.
//!
//! ```text
//! cargo build --release --bin loginbench --bin ssobridge
//! target/release/loginbench [--url http://127.0.0.1:PORT] [--concurrency 1,8,32,64] [--duration-secs 5] [--spawn]
//! ```
//!
//! Without `--url` (or with `--spawn`) it starts `ssobridge demo --port 0` from its own
//! directory, under `taskset -c 0` when there is more than one core, and moves itself to the
//! other cores, so that server and client do not share a core.
//!
//! A login: GET /authorize (login_hint) → the simulator's /authorize → the broker's /callback
//! (which redeems the upstream code at the simulator) → the client's redirect_uri (read, not
//! followed) → POST /token (client_secret_basic) → GET /userinfo. Every step is checked; a
//! failed step counts as an error, not a login. Then the token endpoint alone: codes made
//! beforehand (the authorize part of a login), only POST /token timed.
//!
//! This is a benchmark, not a test: it asserts nothing about the figures.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

const CLIENT_ID: &str = "demo";
const CLIENT_SECRET: &str = "demo-secret";
const REDIRECT: &str = "http://localhost:3000/callback";
/// Per-minute rate limits given to the demo this bench starts (the defaults are 12,000 per IP).
const RATE_LIMIT: &str = "1000000000";
/// Redirect hops between /authorize and the client's redirect_uri (two in the demo).
const MAX_HOPS: usize = 8;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// loginbench: complete demo logins per second, and token requests per second, against a
/// running ssobridge demo or one it starts itself.
#[derive(Clone, Parser)]
#[command(name = "loginbench")]
struct Options {
    /// A running ssobridge demo (client demo/demo-secret, its simulator at /simulator)
    #[arg(long, value_name = "URL", value_parser = without_trailing_slash)]
    url: Option<String>,
    /// With --url: the server's process, to report its CPU time per login (Linux /proc)
    // A server loginbench started itself is known already.
    #[arg(long, value_name = "PID", requires = "url")]
    server_pid: Option<u32>,
    /// Start `ssobridge demo --port 0` (next to this binary) instead; the default without --url
    #[arg(long, conflicts_with = "url")]
    spawn: bool,
    /// Logins in flight at once, one keep-alive connection each
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,8,32,64", value_parser = positive)]
    concurrency: Vec<usize>,
    /// How long each login phase runs, in seconds (the token phases run at most 3 s each)
    #[arg(long = "duration-secs", value_name = "N", default_value = "5", value_parser = seconds)]
    duration: Duration,
    /// The ID token algorithm of client `demo`; with --spawn it is configured on the demo, and
    /// every ID token's header is checked for it
    #[arg(long, default_value = "RS256", value_parser = ["RS256", "PS256", "ES256"])]
    alg: String,
    /// With --spawn: the demo's store (default memory), e.g. redis://127.0.0.1:6379/0
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Instead of logins: what N pending flows cost
    ///
    /// Starts its own demos and sends N unauthenticated /authorize requests that are never
    /// finished: typical ones, then worst-case ones (every parameter at its limit), printing the
    /// bytes each flow keeps and the server's RSS growth; with the pending-flow caps lifted, then
    /// at their defaults.
    #[arg(long, value_name = "N")]
    pending_flows: Option<usize>,
    /// Extra environment for the demo this bench starts.
    #[arg(skip)]
    demo_env: Vec<(String, String)>,
}

fn without_trailing_slash(url: &str) -> Result<String, String> {
    Ok(url.trim_end_matches('/').to_owned())
}

fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("not a positive number".to_owned()),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(Duration::from_secs_f64(seconds)),
        Ok(_) => Err("must be between 0 and 3600".to_owned()),
        Err(_) => Err("not a number".to_owned()),
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One HTTP client per worker: its own keep-alive connection, as a separate browser and
/// relying party would have.
fn http_client() -> Result<reqwest::Client, Error> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4)
        .tcp_nodelay(true)
        .timeout(secs(30))
        .build()?)
}

/// Where the server is, and how to reach its own absolute redirects through the same connection.
struct Target {
    base: url::Url,
    /// The algorithm every ID token must be signed with.
    alg: String,
}

impl Target {
    fn new(base: &str, alg: &str) -> Result<Self, Error> {
        let base = url::Url::parse(base)?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(format!("{base} is not an http(s) URL").into());
        }
        Ok(Self { base, alg: alg.to_owned() })
    }

    fn endpoint(&self, path: &str) -> Result<url::Url, Error> {
        Ok(self.base.join(path)?)
    }

    /// A redirect to the server under another loopback name (the demo's issuer is
    /// `http://localhost:PORT`, the bench may be given `127.0.0.1`) goes to `base` instead, so
    /// that a worker keeps one connection.
    fn same_server(&self, mut url: url::Url) -> url::Url {
        let loopback = |u: &url::Url| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if loopback(&url) && loopback(&self.base) && url.port_or_known_default() == self.base.port_or_known_default() {
            let _ = url.set_host(self.base.host_str());
        }
        url
    }
}

/// The authorize part of a login: from GET /authorize to the code at the client's redirect_uri.
async fn code(http: &reqwest::Client, target: &Target, n: u64) -> Result<String, Error> {
    let mut url = target.endpoint("/authorize")?;
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", &format!("bench{n}"))
        .append_pair("login_hint", &format!("user{n}@example.com"));
    for hop in 0..MAX_HOPS {
        let response = http.get(url.clone()).send().await?;
        let status = response.status();
        if status != reqwest::StatusCode::FOUND && status != reqwest::StatusCode::SEE_OTHER {
            let path = url.path().to_owned();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("hop {hop} {path}: {status}: {}", first_chars(&body, 200)).into());
        }
        let location =
            response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).ok_or("no Location")?;
        if location.starts_with(REDIRECT) {
            let back = url::Url::parse(location)?;
            let get = |name: &str| back.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
            if let Some(error) = get("error") {
                return Err(format!("authorize: {error}: {}", get("error_description").unwrap_or_default()).into());
            }
            if get("state").as_deref() != Some(format!("bench{n}").as_str()) {
                return Err("authorize: the state did not come back".into());
            }
            return get("code").ok_or_else(|| "authorize: no code at the redirect_uri".into());
        }
        let next = url.join(location)?;
        // Drain the (empty) body so the connection goes back to the pool.
        response.bytes().await?;
        url = target.same_server(next);
    }
    Err(format!("more than {MAX_HOPS} redirects before the redirect_uri").into())
}

/// POST /token: the access token; the ID token must be there.
async fn token(http: &reqwest::Client, target: &Target, code: &str) -> Result<String, Error> {
    let response = http
        .post(target.endpoint("/token")?)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)])
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("token: {status}: {}", first_chars(&String::from_utf8_lossy(&body), 200)).into());
    }
    let body: serde_json::Value = serde_json::from_slice(&body)?;
    let id_token = body["id_token"].as_str().filter(|t| t.split('.').count() == 3).ok_or("token: no id_token")?;
    let alg = id_token
        .split('.')
        .next()
        .and_then(base64_url_decode)
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_owned));
    if alg.as_deref() != Some(target.alg.as_str()) {
        return Err(format!("token: the ID token is signed {alg:?}, not {}", target.alg).into());
    }
    Ok(body["access_token"].as_str().ok_or("token: no access_token")?.to_owned())
}

/// GET /userinfo with the access token: the user's claims.
async fn userinfo(http: &reqwest::Client, target: &Target, access_token: &str) -> Result<(), Error> {
    let response = http.get(target.endpoint("/userinfo")?).bearer_auth(access_token).send().await?;
    let status = response.status();
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("userinfo: {status}").into());
    }
    let claims: serde_json::Value = serde_json::from_slice(&body)?;
    if !claims["sub"].is_string() {
        return Err("userinfo: no sub".into());
    }
    Ok(())
}

async fn login(http: &reqwest::Client, target: &Target, n: u64) -> Result<(), Error> {
    let code = code(http, target, n).await?;
    let access_token = token(http, target, &code).await?;
    userinfo(http, target, &access_token).await
}

fn first_chars(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// What one timed phase gave.
struct Run {
    latencies_ms: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// Server CPU time used during the phase, when the server is a process we know.
    server_cpu: Option<Duration>,
    /// loginbench's own CPU time during the phase.
    client_cpu: Option<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Shared bookkeeping of a phase's workers.
#[derive(Default)]
struct Tally {
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, error: Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }

    fn finish(self, latencies_ms: Vec<f64>, elapsed: Duration, cpu: Cpu) -> Run {
        let first_error = self.first_error.into_inner().unwrap_or_else(|p| p.into_inner());
        let errors = self.errors.into_inner();
        Run { latencies_ms, errors, first_error, elapsed, server_cpu: cpu.server, client_cpu: cpu.client }
    }
}

/// The server's CPU time (user + system) so far, from /proc (Linux), for a process we started.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    cpu_time_of(&pid?.to_string())
}

/// CPU time (user + system) of `/proc/<which>` so far: a pid, or `self`.
fn cpu_time_of(which: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{which}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = clock_ticks_per_second();
    Some(Duration::from_secs_f64(ticks as f64 / hz))
}

/// CPU time used by the server and by loginbench.
#[derive(Clone, Copy)]
struct Cpu {
    server: Option<Duration>,
    client: Option<Duration>,
}

impl Cpu {
    fn now(server: Option<u32>) -> Self {
        Cpu { server: cpu_time(server), client: cpu_time_of("self") }
    }

    /// What was used since `self`.
    fn since(self, server: Option<u32>) -> Self {
        let now = Cpu::now(server);
        let used = |after: Option<Duration>, before: Option<Duration>| Some(after?.saturating_sub(before?));
        Cpu { server: used(now.server, self.server), client: used(now.client, self.client) }
    }
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Complete logins, `concurrency` at a time, for `duration`.
async fn logins(
    clients: &[reqwest::Client],
    target: &Arc<Target>,
    concurrency: usize,
    duration: Duration,
    numbers: &Arc<AtomicU64>,
    server: Option<u32>,
) -> Run {
    let tally = Arc::new(Tally::default());
    let cpu = Cpu::now(server);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = clients
        .iter()
        .take(concurrency)
        .map(|http| {
            let (http, target, numbers, tally) = (http.clone(), target.clone(), numbers.clone(), tally.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = numbers.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    match login(&http, &target, n).await {
                        Ok(()) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(error) => tally.error(error),
                    }
                }
                latencies
            })
        })
        .collect();
    let latencies_ms = join(workers).await;
    let elapsed = started.elapsed();
    finish(tally, latencies_ms, elapsed, cpu.since(server))
}

/// Codes for the token phase, made `parallel` at a time (each one a login's authorize part).
async fn make_codes(
    clients: &[reqwest::Client],
    target: &Arc<Target>,
    parallel: usize,
    wanted: usize,
    numbers: &Arc<AtomicU64>,
) -> Result<Vec<String>, Error> {
    let left = Arc::new(AtomicU64::new(wanted as u64));
    let workers: Vec<_> = clients
        .iter()
        .take(parallel)
        .map(|http| {
            let (http, target, numbers, left) = (http.clone(), target.clone(), numbers.clone(), left.clone());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                while left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                    codes.push(code(&http, &target, numbers.fetch_add(1, Ordering::Relaxed)).await?);
                }
                Ok::<_, Error>(codes)
            })
        })
        .collect();
    let mut codes = Vec::with_capacity(wanted);
    for worker in workers {
        codes.extend(worker.await??);
    }
    Ok(codes)
}

/// POST /token alone, `concurrency` at a time, until the codes run out or `duration` passes.
async fn tokens_only(
    clients: &[reqwest::Client],
    target: &Arc<Target>,
    concurrency: usize,
    codes: Vec<String>,
    duration: Duration,
    server: Option<u32>,
) -> Run {
    let queue = Arc::new(Mutex::new(codes));
    let tally = Arc::new(Tally::default());
    let cpu = Cpu::now(server);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = clients
        .iter()
        .take(concurrency)
        .map(|http| {
            let (http, target, queue, tally) = (http.clone(), target.clone(), queue.clone(), tally.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(code) = next else { break };
                    let t = Instant::now();
                    match token(&http, &target, &code).await {
                        Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(error) => tally.error(error),
                    }
                }
                latencies
            })
        })
        .collect();
    let latencies_ms = join(workers).await;
    let elapsed = started.elapsed();
    finish(tally, latencies_ms, elapsed, cpu.since(server))
}

async fn join(workers: Vec<tokio::task::JoinHandle<Vec<f64>>>) -> Vec<f64> {
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap_or_default());
    }
    all
}

fn finish(tally: Arc<Tally>, latencies_ms: Vec<f64>, elapsed: Duration, cpu: Cpu) -> Run {
    match Arc::try_unwrap(tally) {
        Ok(tally) => tally.finish(latencies_ms, elapsed, cpu),
        // Every worker has been joined, so this does not happen; count nothing rather than panic.
        Err(tally) => Run {
            latencies_ms,
            errors: tally.errors.load(Ordering::Relaxed),
            first_error: None,
            elapsed,
            server_cpu: cpu.server,
            client_cpu: cpu.client,
        },
    }
}

/// The table's header; `rate` names what is counted (`logins/s`, `tokens/s`).
fn header(rate: &str) -> String {
    format!(
        "{:>11} {rate:>9} {:>8} {:>8} {:>7} {:>8} {:>11} {:>13} {:>8}",
        "concurrency", "p50 ms", "p99 ms", "errors", "srv CPU", "srv CPU ms", "at 100% CPU", "bench CPU"
    )
}

fn report(concurrency: usize, mut run: Run) -> Run {
    run.latencies_ms.sort_by(f64::total_cmp);
    let count = run.latencies_ms.len();
    let pick = |q: f64| {
        run.latencies_ms.get(((count as f64 * q).ceil() as usize).clamp(1, count.max(1)) - 1).copied().unwrap_or(0.0)
    };
    let seconds = run.elapsed.as_secs_f64().max(1e-9);
    let share = |cpu: Option<Duration>| match cpu {
        Some(cpu) => format!("{:.0}%", 100.0 * cpu.as_secs_f64() / seconds),
        None => "-".to_owned(),
    };
    // Server CPU per operation, and the rate one fully busy server core would reach.
    let (per_op, full) = match run.server_cpu.filter(|cpu| count > 0 && !cpu.is_zero()) {
        Some(cpu) => {
            let ms = cpu.as_secs_f64() * 1e3 / count as f64;
            (format!("{ms:.3}"), format!("{:.0}/s", 1e3 / ms))
        }
        None => ("-".to_owned(), "-".to_owned()),
    };
    println!(
        "{concurrency:>11} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>8} {per_op:>11} {full:>13} {:>8}",
        run.per_second(),
        pick(0.5),
        pick(0.99),
        run.errors,
        share(run.server_cpu),
        share(run.client_cpu),
    );
    if let Some(error) = &run.first_error {
        println!("            first error: {error}");
    }
    run
}

/// The demo server this bench started: killed when dropped.
struct Spawned {
    child: tokio::process::Child,
    url: String,
    pinned: bool,
}

fn taskset_works() -> bool {
    std::process::Command::new("taskset")
        .args(["-c", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Cores this process may run on (after pinning: the pinned ones).
fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Cores the machine has online, whatever this process is pinned to (`nproc --all`).
fn machine_cores() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|info| info.lines().filter(|l| l.starts_with("processor")).count())
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(cores)
}

/// Moves this process (its threads to come included) to cores 1..: the server has core 0.
fn pin_self_off_core0() -> Option<String> {
    let cores = cores();
    if cores < 2 {
        return None;
    }
    let list = if cores == 2 { "1".to_owned() } else { format!("1-{}", cores - 1) };
    let ok = std::process::Command::new("taskset")
        .args(["-a", "-c", "-p", &list, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(list)
}

/// Starts `ssobridge demo --port 0` (the binary next to this one), on core 0 when it can.
async fn spawn_demo(pin: bool, options: &Options) -> Result<Spawned, Error> {
    let exe = std::env::current_exe()?.with_file_name(format!("ssobridge{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        return Err(format!(
            "{} not found: build it too (cargo build --release --bin ssobridge --bin loginbench)",
            exe.display()
        )
        .into());
    }
    let mut command = if pin {
        let mut c = tokio::process::Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        tokio::process::Command::new(&exe)
    };
    command.env("SSOBRIDGE_CLIENTS__DEMO__ID_TOKEN_SIGNED_RESPONSE_ALG", &options.alg);
    command.envs(options.demo_env.iter().map(|(k, v)| (k, v)));
    if let Some(store) = &options.store {
        command.env("SSOBRIDGE_STORE__URL", store);
    }
    let mut child = command
        .args(["demo", "--port", "0"])
        // Logs are JSON lines on stdout: keep only warnings, so that logging is not what is measured.
        .env("SSOBRIDGE_LOG", std::env::var("SSOBRIDGE_LOG").unwrap_or_else(|_| "warn".to_owned()))
        // Every request comes from 127.0.0.1 as client `demo`: raise the rate limits out of
        // reach rather than turning them off, so that their counters are still paid for.
        .env("SSOBRIDGE_RATE_LIMITS__PER_IP_PER_MINUTE", RATE_LIMIT)
        .env("SSOBRIDGE_RATE_LIMITS__PER_CLIENT_PER_MINUTE", RATE_LIMIT)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout from the demo")?;
    let mut lines = BufReader::new(stdout).lines();
    let listening = tokio::time::timeout(secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("ssobridge demo listening on ") {
                return Ok::<_, std::io::Error>(Some(url.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await;
    let url = match listening {
        Ok(Ok(Some(url))) => url,
        Ok(Ok(None)) => return Err("the demo exited before listening".into()),
        Ok(Err(error)) => return Err(format!("reading the demo's output: {error}").into()),
        Err(_) => return Err("the demo did not say it was listening within 30 s".into()),
    };
    // Keep reading its stdout, so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Spawned { child, url, pinned: pin })
}

/// The checked-out commit: of the current directory, else of the source tree loginbench was
/// built from (as it is now, which may be later than the build).
fn commit() -> String {
    let head = |dir: &str| {
        std::process::Command::new("git")
            .args(["-C", dir, "rev-parse", "--short", "HEAD"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let dirty = |dir: &str| {
        std::process::Command::new("git")
            .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .is_some_and(|o| o.status.success() && !o.stdout.is_empty())
    };
    for dir in [".", env!("CARGO_MANIFEST_DIR")] {
        if let Some(commit) = head(dir) {
            return if dirty(dir) { format!("{commit} (with uncommitted changes)") } else { commit };
        }
    }
    "unknown".to_owned()
}

fn main() -> std::process::ExitCode {
    // Usage mistakes exit with 2, --help with 0.
    let mut options = Options::parse();
    // Without --url it measures a demo of its own.
    options.spawn |= options.url.is_none();
    let machine_cores = machine_cores();
    // Pin before the runtime starts its threads: they inherit the mask.
    let pin = options.spawn && machine_cores >= 2 && taskset_works();
    let client_cores = if pin { pin_self_off_core0() } else { None };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(cores()).enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(options, machine_cores, client_cores)),
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loginbench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options, machine_cores: usize, client_cores: Option<String>) -> Result<(), Error> {
    let pin = client_cores.is_some();
    if let Some(n) = options.pending_flows {
        return pending_flows(&options, pin, n).await;
    }
    let mut spawned = match options.spawn {
        true => Some(spawn_demo(pin, &options).await?),
        false => None,
    };
    let result = bench(&options, spawned.as_ref(), machine_cores, client_cores).await;
    if let Some(server) = spawned.as_mut() {
        let _ = server.child.start_kill();
        let _ = server.child.wait().await;
    }
    result
}

async fn bench(
    options: &Options,
    spawned: Option<&Spawned>,
    machine_cores: usize,
    client_cores: Option<String>,
) -> Result<(), Error> {
    let base = match (spawned, &options.url) {
        (Some(server), _) => server.url.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => return Err("no server: pass --url or --spawn".into()),
    };
    let server_pid = spawned.and_then(|s| s.child.id()).or(options.server_pid);
    let target = Arc::new(Target::new(&base, &options.alg)?);
    let max_concurrency = options.concurrency.iter().copied().max().unwrap_or(1).max(8);
    let clients = (0..max_concurrency).map(|_| http_client()).collect::<Result<Vec<_>, _>>()?;
    let numbers = Arc::new(AtomicU64::new(0));

    println!(
        "loginbench: complete demo logins (authorize → simulator → callback → token → userinfo), then /token alone"
    );
    println!("  server:  {base}{}", if spawned.is_some() { " (ssobridge demo started by loginbench)" } else { "" });
    println!("  commit:  {}", commit());
    println!("  machine: {machine_cores} core(s) (nproc)");
    println!(
        "  client:  demo, ID tokens {}; store {}",
        options.alg,
        match (spawned, &options.store) {
            (Some(_), Some(store)) => store.split('@').next_back().unwrap_or(store.as_str()).to_owned(),
            (Some(_), None) => "memory".to_owned(),
            (None, _) => "as the server was started".to_owned(),
        }
    );
    match (spawned, &client_cores) {
        (Some(s), Some(cores)) if s.pinned => {
            println!("  pinning: server on core 0 (taskset -c 0), loginbench on core(s) {cores}")
        }
        (Some(_), _) => println!("  pinning: none (taskset missing or a single core): server and client share the CPU"),
        (None, _) => println!("  pinning: unknown (server given by --url; pin it yourself with taskset -c 0)"),
    }
    println!(
        "  phases:  warm-up 1 s, logins {:.1} s per concurrency, /token up to {:.1} s per concurrency",
        options.duration.as_secs_f64(),
        token_duration(options).as_secs_f64()
    );

    // Warm-up: one login alone (a clear error if the server is not a demo), then every
    // worker's connection, discovery and JWKS caches, the allocator.
    login(&clients[0], &target, numbers.fetch_add(1, Ordering::Relaxed)).await?;
    let warm = logins(&clients, &target, max_concurrency, secs(1), &numbers, server_pid).await;
    if warm.latencies_ms.is_empty() {
        return Err(format!("warm-up: no login succeeded: {}", warm.first_error.unwrap_or_default()).into());
    }

    println!("\ncomplete logins ({} s each)", options.duration.as_secs_f64());
    println!("{}", header("logins/s"));
    let mut best_login_rate: f64 = 0.0;
    for &concurrency in &options.concurrency {
        let run =
            report(concurrency, logins(&clients, &target, concurrency, options.duration, &numbers, server_pid).await);
        best_login_rate = best_login_rate.max(run.per_second());
    }

    let duration = token_duration(options);
    println!("\ntoken endpoint alone (POST /token with fresh codes, up to {} s each)", duration.as_secs_f64());
    println!("{}", header("tokens/s"));
    for &concurrency in &options.concurrency {
        // /token alone runs at 1.5 to 2 times the login rate (more when signing is cheap); running
        // out early only shortens the phase. Codes live 60 s: make them just before.
        let wanted = ((best_login_rate * 2.5 * duration.as_secs_f64()) as usize).clamp(500, 40_000);
        let codes = make_codes(&clients, &target, max_concurrency, wanted, &numbers).await?;
        let made = codes.len();
        let run = report(concurrency, tokens_only(&clients, &target, concurrency, codes, duration, server_pid).await);
        if run.elapsed < duration.mul_f64(0.9) {
            println!("            (all {made} codes redeemed in {:.2} s)", run.elapsed.as_secs_f64());
        }
    }
    if spawned.is_some() {
        println!(
            "\nsrv CPU: the demo process's user+system time over the phase's wall time (/proc; 100% = one core);\n\
             srv CPU ms: server CPU per login (per /token), whatever the concurrency; at 100% CPU: 1000 / that,\n\
             the rate one fully busy core would give; bench CPU: loginbench itself (100% = one core)."
        );
    }
    Ok(())
}

/// The server's resident set size (Linux /proc), in bytes.
fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let kib: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An unauthenticated /authorize for client `demo` that leaves a pending flow: the typical one
/// (what Auth0 sends) or one with every parameter at its limit, `state` of `state_len`.
fn authorize_request(target: &Target, n: u64, worst: Option<usize>) -> Result<url::Url, Error> {
    let mut url = target.endpoint("/authorize")?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email profile")
            .append_pair("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
            .append_pair("code_challenge_method", "S256");
        match worst {
            None => {
                query
                    .append_pair("state", &format!("{n:032}"))
                    .append_pair("login_hint", &format!("user{n}@example.com"));
            }
            Some(state_len) => {
                // The longest address (254): 64 characters before the @, example.com after.
                let label = "d".repeat(60);
                let hint = format!("{}@{label}.{label}.{}.example.com", "u".repeat(64), "d".repeat(55));
                query
                    .append_pair("state", &format!("{n:0>state_len$}"))
                    .append_pair("nonce", &"n".repeat(512))
                    .append_pair("login_hint", &hint)
                    .append_pair("acr_values", &"a".repeat(256))
                    .append_pair("prompt", "login consent select_account")
                    .append_pair("max_age", "315360000");
            }
        }
    }
    Ok(url)
}

/// Sends /authorize requests and says how many were admitted (a redirect upstream).
async fn leave_pending(
    http: &reqwest::Client,
    target: &Target,
    from: u64,
    n: usize,
    worst: Option<usize>,
) -> Result<(usize, usize), Error> {
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..n as u64 {
        let response = http.get(authorize_request(target, from + i, worst)?).send().await?;
        let upstream = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .is_some_and(|l| l.contains("/simulator/"));
        match response.status() {
            reqwest::StatusCode::FOUND if upstream => admitted += 1,
            reqwest::StatusCode::TOO_MANY_REQUESTS => refused += 1,
            status => {
                let location = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok());
                return Err(format!("/authorize answered {status} {}", location.unwrap_or_default()).into());
            }
        }
    }
    Ok((admitted, refused))
}

/// The longest `state` a worst-case request may carry and still be admitted (the flow's 2 KB).
async fn longest_state(http: &reqwest::Client, target: &Target) -> Result<usize, Error> {
    let (mut low, mut high) = (1usize, 1536usize);
    while low < high {
        let mid = (low + high).div_ceil(2);
        let response = http.get(authorize_request(target, 0, Some(mid))?).send().await?;
        let location = response.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("");
        if location.contains("/simulator/") {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    Ok(low)
}

/// The `--pending-flows` mode: what an outsider's unfinished sign-ins cost the broker.
async fn pending_flows(options: &Options, pin: bool, n: usize) -> Result<(), Error> {
    println!("loginbench --pending-flows {n}: unauthenticated /authorize requests left pending (memory store unless --store)");
    println!("  commit:  {}", commit());
    let http = http_client()?;
    for (caps, env) in [("caps lifted", "0"), ("caps at their defaults (5,000 per source, 50,000 in all)", "")] {
        let mut options = Options { demo_env: Vec::new(), pending_flows: None, ..options.clone() };
        if !env.is_empty() {
            options.demo_env = vec![
                ("SSOBRIDGE_RATE_LIMITS__PENDING_FLOWS_PER_IP".to_owned(), env.to_owned()),
                ("SSOBRIDGE_RATE_LIMITS__PENDING_FLOWS_TOTAL".to_owned(), env.to_owned()),
            ];
        }
        let mut server = spawn_demo(pin, &options).await?;
        let pid = server.child.id();
        let target = Target::new(&server.url, &options.alg)?;
        let state_len = longest_state(&http, &target).await?;
        // Warm the process (allocator arenas, caches) before measuring.
        leave_pending(&http, &target, 1_000_000, 200, None).await?;
        println!(
            "
{caps}"
        );
        let mut next = 2_000_000;
        for (label, worst) in [("typical", None), ("worst case", Some(state_len))] {
            let before = rss_bytes(pid);
            let started = Instant::now();
            let (admitted, refused) = leave_pending(&http, &target, next, n, worst).await?;
            next += n as u64;
            let grown = match (before, rss_bytes(pid)) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => 0,
            };
            let per_flow = if admitted > 0 { grown / admitted as u64 } else { 0 };
            println!(
                "  {label:<10} {admitted:>6} pending, {refused:>6} refused (429) in {:.1} s; RSS +{:.1} MB ({per_flow} B per pending flow)",
                started.elapsed().as_secs_f64(),
                grown as f64 / 1e6,
            );
        }
        println!("  stored bytes per flow: {}", stored_sizes(state_len));
        let _ = server.child.start_kill();
        let _ = server.child.wait().await;
    }
    Ok(())
}

/// The stored size of a typical and of a worst-case flow, as the broker serializes it.
fn stored_sizes(state_len: usize) -> String {
    use ssobridge::login::{AuthorizationRequest, Flow, Reauthentication};
    use ssobridge::routing::{RoutedBy, Selectors, Target};
    let flow =
        |state: String, nonce: Option<String>, reauthentication: Reauthentication, target: Target, routed_by| Flow {
            request: AuthorizationRequest {
                client_id: CLIENT_ID.to_owned(),
                redirect_uri: REDIRECT.to_owned(),
                state: Some(state),
                nonce,
                code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned()),
                scope: "openid profile email".to_owned(),
                selectors: Selectors::default(),
                reauthentication,
                requested_at: 1_800_000_000,
                requested_at_ms: 1_800_000_000_000,
                pending_ticket: Some("3000000|127.0.0.1".to_owned()),
                client_ip: String::new(),
            },
            upstream_nonce: "x".repeat(43),
            upstream_pkce_verifier: "x".repeat(43),
            routed_by,
            target,
            via_hosted_page: false,
        };
    let routed =
        Target { organization_id: Some("org_example_com".into()), connection_id: Some("conn_example_com".into()) };
    let typical = flow(format!("{:032}", 1), None, Reauthentication::default(), routed, RoutedBy::LoginHint);
    let worst = flow(
        "s".repeat(state_len),
        Some("n".repeat(512)),
        Reauthentication {
            prompt: Some("login consent select_account".into()),
            max_age: Some(315_360_000),
            acr_values: Some("a".repeat(256)),
        },
        // The worst-case address has no route: the upstream routes it.
        Target::default(),
        RoutedBy::Fallback,
    );
    let size = |f: &Flow| serde_json::to_vec(f).map(|b| b.len()).unwrap_or(0);
    format!("typical {} B, worst case {} B (the cap is 2,048 B)", size(&typical), size(&worst))
}

fn token_duration(options: &Options) -> Duration {
    options.duration.min(secs(3))
}

/// base64url without padding, as JWT segments are encoded.
fn base64_url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}
