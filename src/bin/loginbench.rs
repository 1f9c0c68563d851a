//! loginbench: what a complete login costs the broker: logins per second, the broker's CPU per
//! login against the cost of the one signature it must make, latency, memory, store round trips.
//!
//! ```text
//! cargo build --release --bin loginbench --bin ssobridge
//! target/release/loginbench [--alg RS256,ES256] [--store memory,redis] [--ssobridge PATH]
//!                           [--upstream simulator|in-process] [--concurrency 1,8,32,64] [--duration-secs 5]
//! target/release/loginbench --url http://127.0.0.1:PORT [--server-pid PID]
//! ```
//!
//! By default it measures the broker alone: `ssobridge serve` (the binary next to loginbench,
//! or `--ssobridge PATH`) pinned to core 0 with a temporary config, its upstream
//! `ssobridge simulator` as its own process on core 1, and loginbench on core 1 too, so that
//! the broker's CPU time (/proc/PID/stat) is the broker's only. With `--store redis` it starts a
//! `redis-server` of its own on a free loopback port, on core 1. `--upstream in-process` runs
//! `ssobridge demo` instead (broker and simulator in one process, as earlier figures were made).
//!
//! A login: GET /authorize (login_hint) → the simulator's /authorize → the broker's /callback
//! (which redeems the upstream code at the simulator) → the client's redirect_uri (read, not
//! followed) → POST /token (client_secret_basic) → GET /userinfo. Every step is checked; a
//! failed step counts as an error, not a login. Then the token endpoint alone: codes made
//! beforehand (the authorize part of a login), only POST /token timed.
//!
//! Beside the rates it prints, per configuration: the cost of one RSA-2048 and one ES256
//! signature measured on core 0 in the same run (aws-lc, as the broker signs) and the broker's
//! CPU per login over it; p50/p99 of one login alone; the broker's RSS idle and with 1,000 logins
//! in flight; what a pending flow and an unredeemed code keep; on Redis, the commands each
//! step sends (INFO commandstats) and the stored value sizes.
//!
//! This is a benchmark, not a test: it asserts nothing about the figures.

use std::collections::BTreeMap;
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

/// loginbench: what a complete login costs the broker (by default `ssobridge serve` alone on
/// core 0, its upstream simulator and loginbench on core 1).
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
    /// Start the broker itself; the default without --url
    #[arg(long, conflicts_with = "url")]
    spawn: bool,
    /// The ssobridge binary to measure [default: the one next to loginbench]
    #[arg(long, value_name = "PATH")]
    ssobridge: Option<std::path::PathBuf>,
    /// simulator: `ssobridge serve` with `ssobridge simulator` as its own process on another
    /// core (the broker's figures alone); in-process: `ssobridge demo` (broker and simulator in
    /// one process)
    #[arg(long, default_value = "simulator", value_parser = ["simulator", "in-process"])]
    upstream: String,
    /// Logins in flight at once, one keep-alive connection each
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "1,8,32,64", value_parser = positive)]
    concurrency: Vec<usize>,
    /// How long each login phase runs, in seconds (the token phases run at most 3 s each)
    #[arg(long = "duration-secs", value_name = "N", default_value = "5", value_parser = seconds)]
    duration: Duration,
    /// The ID token algorithm(s) of client `demo`, each run in turn; when loginbench starts the
    /// broker it configures the client so, and every ID token's header is checked for it
    #[arg(long = "alg", value_name = "LIST", value_delimiter = ',', default_value = "RS256", value_parser = ["RS256", "PS256", "ES256"])]
    algs: Vec<String>,
    /// The store(s), each run in turn: memory, redis (a redis-server loginbench starts on a
    /// free loopback port, on core 1) or a redis:// URL
    #[arg(long = "store", value_name = "LIST", value_delimiter = ',', default_value = "memory")]
    stores: Vec<String>,
    /// The broker's RSS is read with this many logins in flight at once (0: not measured)
    #[arg(long, value_name = "N", default_value = "1000")]
    in_flight: usize,
    /// Skip the token-endpoint-alone phases
    #[arg(long)]
    no_token_phase: bool,
    /// Instead of logins: what N pending flows cost
    ///
    /// Starts its own demos and sends N unauthenticated /authorize requests that are never
    /// finished: typical ones, then worst-case ones (every parameter at its limit), printing the
    /// bytes each flow keeps and the server's RSS growth; with the pending-flow caps lifted, then
    /// at their defaults.
    #[arg(long, value_name = "N")]
    pending_flows: Option<usize>,
    /// Print the cost of one RSA-2048 and one ES256 signature on this process's core, and exit
    /// (loginbench runs itself so, under taskset, on the broker's core)
    #[arg(long, hide = true)]
    signature_cost: bool,
    /// The ID token algorithm of the run under way.
    #[arg(skip)]
    alg: String,
    /// The store of the run under way.
    #[arg(skip)]
    store: Option<String>,
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
    /// Where /authorize sends a login upstream (a prefix of its Location).
    upstream: String,
}

impl Target {
    fn new(base: &str, alg: &str, upstream: &str) -> Result<Self, Error> {
        let base = url::Url::parse(base)?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(format!("{base} is not an http(s) URL").into());
        }
        Ok(Self { base, alg: alg.to_owned(), upstream: upstream.to_owned() })
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

/// GET /authorize for login `n` (login_hint user<n>@example.com, state bench<n>).
fn authorize_url(target: &Target, n: u64) -> Result<url::Url, Error> {
    let mut url = target.endpoint("/authorize")?;
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", &format!("bench{n}"))
        .append_pair("login_hint", &format!("user{n}@example.com"));
    Ok(url)
}

/// One redirect: GET `url`, which must answer 302/303; the absolute Location.
async fn hop(http: &reqwest::Client, target: &Target, url: url::Url) -> Result<url::Url, Error> {
    let response = http.get(url.clone()).send().await?;
    let status = response.status();
    if status != reqwest::StatusCode::FOUND && status != reqwest::StatusCode::SEE_OTHER {
        let path = url.path().to_owned();
        let body = response.text().await.unwrap_or_default();
        return Err(format!("{path}: {status}: {}", first_chars(&body, 200)).into());
    }
    let location =
        response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).ok_or("no Location")?;
    let next = url.join(location)?;
    // Drain the (empty) body so the connection goes back to the pool.
    response.bytes().await?;
    Ok(target.same_server(next))
}

/// The code of login `n` at the client's redirect_uri, if `url` is that.
fn code_at(url: &url::Url, n: u64) -> Option<Result<String, Error>> {
    if !url.as_str().starts_with(REDIRECT) {
        return None;
    }
    let get = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if let Some(error) = get("error") {
        return Some(Err(format!("authorize: {error}: {}", get("error_description").unwrap_or_default()).into()));
    }
    if get("state").as_deref() != Some(format!("bench{n}").as_str()) {
        return Some(Err("authorize: the state did not come back".into()));
    }
    Some(get("code").ok_or_else(|| "authorize: no code at the redirect_uri".into()))
}

/// The authorize part of a login: from GET /authorize to the code at the client's redirect_uri.
async fn code(http: &reqwest::Client, target: &Target, n: u64) -> Result<String, Error> {
    let mut url = authorize_url(target, n)?;
    for hop_number in 0..MAX_HOPS {
        url = hop(http, target, url).await.map_err(|e| format!("hop {hop_number} {e}"))?;
        if let Some(code) = code_at(&url, n) {
            return code;
        }
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

/// The processes a run started (killed when dropped) and its temporary directory.
struct Spawned {
    /// The broker: `ssobridge serve`, or `ssobridge demo` with the upstream in process.
    child: tokio::process::Child,
    /// `ssobridge simulator`, when the upstream runs on its own.
    simulator: Option<tokio::process::Child>,
    url: String,
    pinned: bool,
    /// Where a login leaves the broker for its upstream (a prefix of the Location).
    upstream: String,
    /// What was started, for the header.
    how: String,
    /// The temporary config and keys.
    _dir: Option<TempDir>,
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Spawned {
    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        if let Some(simulator) = self.simulator.as_mut() {
            let _ = simulator.start_kill();
            let _ = simulator.wait().await;
        }
    }
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

/// The ssobridge binary to measure: --ssobridge, else the one next to loginbench.
fn ssobridge_exe(options: &Options) -> Result<std::path::PathBuf, Error> {
    let exe = match &options.ssobridge {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name(format!("ssobridge{}", std::env::consts::EXE_SUFFIX)),
    };
    if !exe.exists() {
        return Err(format!(
            "{} not found: build it too (cargo build --release --bin ssobridge --bin loginbench)",
            exe.display()
        )
        .into());
    }
    Ok(exe)
}

/// `program`, under `taskset -c core` when given one.
fn on_core(program: &std::path::Path, core: Option<&str>) -> tokio::process::Command {
    match core {
        Some(core) => {
            let mut command = tokio::process::Command::new("taskset");
            command.args(["-c", core]).arg(program);
            command
        }
        None => tokio::process::Command::new(program),
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Reads `lines` until one starts with `prefix` (within 30 s), then keeps draining them so that
/// the process never blocks on a full pipe; returns the rest of that line.
async fn wait_for_line(
    mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    prefix: &str,
    what: &str,
) -> Result<String, Error> {
    let found = tokio::time::timeout(secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok::<_, std::io::Error>(Some(rest.trim().to_owned()));
            }
        }
        Ok(None)
    })
    .await;
    let rest = match found {
        Ok(Ok(Some(rest))) => rest,
        Ok(Ok(None)) => return Err(format!("{what} exited before it was ready").into()),
        Ok(Err(error)) => return Err(format!("reading the output of {what}: {error}").into()),
        Err(_) => return Err(format!("{what} was not ready within 30 s").into()),
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(rest)
}

/// Starts `ssobridge demo --port 0`, on core 0 when it can: broker and simulator in one process.
async fn spawn_demo(pin: bool, options: &Options) -> Result<Spawned, Error> {
    let exe = ssobridge_exe(options)?;
    let mut command = on_core(&exe, pin.then_some("0"));
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
    let url = wait_for_line(BufReader::new(stdout).lines(), "ssobridge demo listening on ", "the demo").await?;
    Ok(Spawned {
        child,
        simulator: None,
        upstream: format!("{url}/simulator/"),
        url,
        pinned: pin,
        how: format!("{} demo (broker and simulator in one process)", exe.display()),
        _dir: None,
    })
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)?;
    Ok(())
}

/// Starts `ssobridge simulator` on core 1 and `ssobridge serve` on core 0 with a temporary
/// config (memory store unless the run's store is a Redis URL): the broker alone in its process.
async fn spawn_serve(pin: bool, options: &Options) -> Result<Spawned, Error> {
    use ssobridge::tokens::{generate_pem, random_token, KeyType};
    let exe = ssobridge_exe(options)?;
    let dir = TempDir(std::env::temp_dir().join(format!("loginbench-{}-{}", std::process::id(), random_token(6)?)));
    std::fs::create_dir_all(&dir.0)?;
    let (rsa, ec) = (dir.0.join("rsa.pem"), dir.0.join("ec.pem"));
    write_private(&rsa, generate_pem(KeyType::Rsa)?.as_bytes())?;
    write_private(&ec, generate_pem(KeyType::Ec)?.as_bytes())?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let upstream_secret = random_token(24)?;

    let mut simulator = on_core(&exe, pin.then_some("1"))
        .args(["simulator", "--port", "0", "--client-id", "ssobridge-bench", "--client-secret", &upstream_secret])
        .args(["--redirect-uri", &format!("{url}/callback")])
        .env("SSOBRIDGE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = simulator.stdout.take().ok_or("no stdout from the simulator")?;
    let ready = wait_for_line(BufReader::new(stdout).lines(), "READY ", "ssobridge simulator").await?;
    let ready: serde_json::Value = serde_json::from_str(&ready)?;
    let issuer = ready["issuer"].as_str().ok_or("the simulator's READY line has no issuer")?.to_owned();

    let store = options.store.clone().unwrap_or_else(|| "memory".to_owned());
    let config = format!(
        r#"public_url = "{url}"
listen = "127.0.0.1:{port}"
[store]
url = "{store}"
[signing]
key_file = "{rsa}"
ec_key_file = "{ec}"
[tokens]
pairwise_salt = "{salt}"
[admin]
listen = "public"
[rate_limits]
per_ip_per_minute = {RATE_LIMIT}
per_client_per_minute = {RATE_LIMIT}
[upstream]
issuer = "{issuer}"
client_id = "ssobridge-bench"
client_secret = "{upstream_secret}"
allowed_algorithms = ["RS256"]
[[clients]]
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uris = ["{REDIRECT}"]
id_token_signed_response_alg = "{alg}"
[[routes]]
domain = "example.com"
organization_id = "org_example_com"
connection_id = "conn_example_com"
[[routes]]
domain = "example.org"
organization_id = "org_example_org"
connection_id = "conn_example_org"
"#,
        rsa = rsa.display(),
        ec = ec.display(),
        salt = random_token(32)?,
        alg = options.alg,
    );
    let config_path = dir.0.join("ssobridge.toml");
    write_private(&config_path, config.as_bytes())?;
    let mut child = on_core(&exe, pin.then_some("0"))
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env("SSOBRIDGE_LOG", std::env::var("SSOBRIDGE_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    // Ready when discovery answers.
    let http = http_client()?;
    let discovery = format!("{url}/.well-known/openid-configuration");
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(&discovery).send().await {
            if response.status().is_success() {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("ssobridge serve exited ({status})").into());
        }
        if started.elapsed() > secs(30) {
            return Err("ssobridge serve did not answer discovery within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let how = format!(
        "{exe} serve (store {store}) on core {broker}; {exe} simulator on core {other}",
        exe = exe.display(),
        store = store.split('@').next_back().unwrap_or(&store),
        broker = if pin { "0" } else { "any" },
        other = if pin { "1" } else { "any" },
    );
    Ok(Spawned { child, simulator: Some(simulator), url, pinned: pin, upstream: issuer, how, _dir: Some(dir) })
}

/// A `redis-server` loginbench started on a free loopback port (core 1 when pinned).
struct RedisServer {
    _child: tokio::process::Child,
    url: String,
}

async fn start_redis(pin: bool) -> Result<RedisServer, Error> {
    let port = free_port()?;
    let child = on_core(std::path::Path::new("redis-server"), pin.then_some("1"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("redis-server: {e}"))?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let started = Instant::now();
    loop {
        if redis_connection(&url).await.is_ok() {
            return Ok(RedisServer { _child: child, url });
        }
        if started.elapsed() > secs(10) {
            return Err("redis-server did not answer within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn redis_connection(url: &str) -> Result<redis::aio::MultiplexedConnection, Error> {
    let mut connection = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut connection).await?;
    Ok(connection)
}

/// Calls per command so far (INFO commandstats), lower-case names.
async fn command_calls(connection: &mut redis::aio::MultiplexedConnection) -> Result<BTreeMap<String, u64>, Error> {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(connection).await?;
    let mut calls = BTreeMap::new();
    for line in info.lines() {
        let Some((name, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else { continue };
        let count = stats.split(',').find_map(|kv| kv.strip_prefix("calls=")).and_then(|n| n.parse().ok());
        if let Some(count) = count {
            calls.insert(name.to_owned(), count);
        }
    }
    Ok(calls)
}

/// Stored string values by kind of key (`flow`, `code`, `at`, …): how many, and their bytes.
async fn value_sizes(
    connection: &mut redis::aio::MultiplexedConnection,
) -> Result<BTreeMap<String, (u64, u64)>, Error> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(connection).await?;
    let mut sizes = BTreeMap::new();
    for key in keys {
        let Ok(len) = redis::cmd("STRLEN").arg(&key).query_async::<u64>(connection).await else { continue };
        let bare = key.strip_prefix("ssobridge:").unwrap_or(&key);
        let kind = bare.split(':').next().unwrap_or(bare).to_owned();
        let entry = sizes.entry(kind).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += len;
    }
    Ok(sizes)
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
    if options.signature_cost {
        return match signature_cost() {
            Ok(line) => {
                println!("{line}");
                std::process::ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loginbench: {error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    // Without --url it measures a broker of its own.
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

/// The cost of one signature on this core, in µs.
#[derive(Clone, Copy)]
struct Signatures {
    rsa2048_us: f64,
    es256_us: f64,
}

impl Signatures {
    /// The signature an ID token of `alg` costs.
    fn of(&self, alg: &str) -> f64 {
        if alg == "ES256" {
            self.es256_us
        } else {
            self.rsa2048_us
        }
    }
}

/// This thread's CPU time so far, in ns (/proc/thread-self/schedstat, Linux).
fn thread_cpu_ns() -> Result<u64, Error> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    Ok(stat.split_whitespace().next().ok_or("empty schedstat")?.parse()?)
}

/// `--signature-cost`: one RSA-2048 (RS256) and one P-256 (ES256) signature of an ID-token-sized
/// message with aws-lc, as the broker signs, in this thread's CPU µs: the median of 7 batches.
fn signature_cost() -> Result<String, Error> {
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    // header.payload of a typical ID token, base64url: about 700 bytes.
    let message = vec![b'e'; 700];
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| "RSA key generation failed")?;
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| "EC key generation failed")?;
    let mut rsa_signature = vec![0u8; rsa.public_modulus_len()];
    let median = |batch: u64, sign: &mut dyn FnMut() -> Result<(), Error>| -> Result<f64, Error> {
        sign()?;
        let mut costs = Vec::new();
        for _ in 0..7 {
            let started = thread_cpu_ns()?;
            for _ in 0..batch {
                sign()?;
            }
            costs.push((thread_cpu_ns()? - started) as f64 / batch as f64 / 1e3);
        }
        costs.sort_by(f64::total_cmp);
        Ok(costs[costs.len() / 2])
    };
    let rsa2048_us = median(150, &mut || {
        rsa.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut rsa_signature).map_err(|_| Error::from("RSA signing failed"))
    })?;
    let es256_us =
        median(1500, &mut || ec.sign(&rng, &message).map(|_| ()).map_err(|_| Error::from("EC signing failed")))?;
    Ok(format!("rsa2048_us={rsa2048_us:.1} es256_us={es256_us:.1}"))
}

/// Runs `loginbench --signature-cost` on the broker's core (core 0 when pinned).
async fn measure_signatures(pin: bool) -> Result<Signatures, Error> {
    let exe = std::env::current_exe()?;
    let output = on_core(&exe, pin.then_some("0")).arg("--signature-cost").output().await?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        text.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<f64>().ok())
    };
    match (field("rsa2048_us"), field("es256_us")) {
        (Some(rsa2048_us), Some(es256_us)) => Ok(Signatures { rsa2048_us, es256_us }),
        _ => Err(format!("loginbench --signature-cost: {text} {}", String::from_utf8_lossy(&output.stderr)).into()),
    }
}

/// The load average (/proc/loadavg: 1, 5 and 15 minutes).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// What one configuration (algorithm, store) gave, for the closing table.
#[derive(Default)]
struct Summary {
    label: String,
    /// The store was Redis.
    redis: bool,
    alg: String,
    load: String,
    signature_us: Option<f64>,
    /// Broker CPU per login (ms), over the phases with 8 or more logins in flight.
    cpu_ms: Option<f64>,
    /// The broker's CPU share (1.0 = one core) in those phases.
    busy: Option<f64>,
    best_rate: f64,
    /// One login alone (concurrency 1).
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    rss_idle: Option<u64>,
    rss_in_flight: Option<u64>,
}

async fn run(options: Options, machine_cores: usize, client_cores: Option<String>) -> Result<(), Error> {
    let pin = client_cores.is_some();
    let first_alg = options.algs.first().cloned().unwrap_or_else(|| "RS256".to_owned());
    if let Some(n) = options.pending_flows {
        let store = options.stores.first().filter(|s| s.starts_with("redis://")).cloned();
        let options = Options { alg: first_alg, store, ..options.clone() };
        return pending_flows(&options, pin, n).await;
    }
    if !options.spawn {
        let options = Options { alg: first_alg, ..options.clone() };
        bench(&options, None, machine_cores, &client_cores).await?;
        return Ok(());
    }
    let mut summaries = Vec::new();
    for store in &options.stores {
        let redis = match store.as_str() {
            "redis" => Some(start_redis(pin).await?),
            _ => None,
        };
        let store_url = match (store.as_str(), &redis) {
            ("memory", _) => None,
            (_, Some(redis)) => Some(redis.url.clone()),
            (url, None) => Some(url.to_owned()),
        };
        for alg in &options.algs {
            let setup = Options { alg: alg.clone(), store: store_url.clone(), ..options.clone() };
            if let Some(url) = &store_url {
                let mut connection = redis_connection(url).await?;
                redis::cmd("FLUSHDB").query_async::<()>(&mut connection).await?;
            }
            println!(
                "\n=== {alg}, store {} ===",
                if store == "redis" { "redis (started by loginbench)" } else { store }
            );
            let before = measure_signatures(pin).await?;
            let spawned = match options.upstream.as_str() {
                "in-process" => spawn_demo(pin, &setup).await?,
                _ => spawn_serve(pin, &setup).await?,
            };
            let result = bench(&setup, Some(&spawned), machine_cores, &client_cores).await;
            spawned.stop().await;
            let after = measure_signatures(pin).await?;
            let mut summary = result?;
            let signature = before.of(alg).min(after.of(alg));
            println!(
                "\nsignatures on the broker's core (aws-lc, thread CPU, before / after the run): RSA-2048 {:.0} / {:.0} µs, ES256 {:.1} / {:.1} µs",
                before.rsa2048_us, after.rsa2048_us, before.es256_us, after.es256_us
            );
            if let Some(cpu_ms) = summary.cpu_ms {
                println!(
                    "broker CPU per login {:.0} µs = {:.2} × one {} signature ({signature:.0} µs); {:.0} logins per second per core",
                    cpu_ms * 1e3,
                    cpu_ms * 1e3 / signature,
                    if alg == "ES256" { "ES256" } else { "RSA-2048" },
                    1e3 / cpu_ms
                );
            }
            summary.signature_us = Some(signature);
            summary.label =
                format!("{alg} {}", if store == "redis" || store.starts_with("redis") { "redis" } else { "memory" });
            summary.redis = store_url.is_some();
            summary.alg = alg.clone();
            summaries.push(summary);
        }
    }
    print_summaries(&summaries);
    Ok(())
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("{:.1}", b as f64 / 1e6)).unwrap_or_else(|| "-".to_owned())
}

fn print_summaries(summaries: &[Summary]) {
    println!("\nsummary (broker CPU at 8+ logins in flight; latency of one login alone; RSS in MB)");
    println!(
        "{:<14} {:>9} {:>10} {:>6} {:>10} {:>9} {:>6} {:>7} {:>7} {:>8} {:>9} {:>8} {:<14}",
        "run",
        "sign µs",
        "CPU µs/lg",
        "ratio",
        "logins/s/c",
        "measured",
        "busy",
        "p50 ms",
        "p99 ms",
        "RSS idle",
        "RSS 1000",
        "vs mem",
        "load"
    );
    for s in summaries {
        let memory = summaries.iter().find(|m| !m.redis && m.alg == s.alg).and_then(|m| m.cpu_ms);
        let versus = match (s.redis, s.cpu_ms, memory) {
            (true, Some(cpu), Some(memory)) => format!("{:+.0}%", 100.0 * (cpu / memory - 1.0)),
            _ => "-".to_owned(),
        };
        let f = |v: Option<f64>, digits: usize| v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".to_owned());
        println!(
            "{:<14} {:>9} {:>10} {:>6} {:>10} {:>9.0} {:>6} {:>7} {:>7} {:>8} {:>9} {:>8} {:<14}",
            s.label,
            f(s.signature_us, 0),
            f(s.cpu_ms.map(|ms| ms * 1e3), 0),
            f(s.cpu_ms.zip(s.signature_us).map(|(ms, us)| ms * 1e3 / us), 2),
            f(s.cpu_ms.map(|ms| 1e3 / ms), 0),
            s.best_rate,
            s.busy.map(|b| format!("{:.0}%", b * 100.0)).unwrap_or_else(|| "-".to_owned()),
            f(s.p50_ms, 2),
            f(s.p99_ms, 2),
            mb(s.rss_idle),
            mb(s.rss_in_flight),
            versus,
            s.load
        );
    }
    println!(
        "ratio: broker CPU per login over one signature of the ID token's algorithm, both measured on core 0 in the same run;\n\
         logins/s/c: 1000 / CPU ms per login, what one fully busy core gives; measured: the best rate seen, with the broker at `busy`."
    );
}

/// Percentile `q` of sorted `values`.
fn percentile(values: &[f64], q: f64) -> f64 {
    let count = values.len();
    values.get(((count as f64 * q).ceil() as usize).clamp(1, count.max(1)) - 1).copied().unwrap_or(0.0)
}

async fn bench(
    options: &Options,
    spawned: Option<&Spawned>,
    machine_cores: usize,
    client_cores: &Option<String>,
) -> Result<Summary, Error> {
    let base = match (spawned, &options.url) {
        (Some(server), _) => server.url.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => return Err("no server: pass --url or --spawn".into()),
    };
    let server_pid = spawned.and_then(|s| s.child.id()).or(options.server_pid);
    let upstream = spawned.map(|s| s.upstream.clone()).unwrap_or_else(|| format!("{base}/simulator/"));
    let target = Arc::new(Target::new(&base, &options.alg, &upstream)?);
    let max_concurrency = options.concurrency.iter().copied().max().unwrap_or(1).max(8);
    let clients = (0..max_concurrency.max(options.in_flight)).map(|_| http_client()).collect::<Result<Vec<_>, _>>()?;
    let numbers = Arc::new(AtomicU64::new(0));
    let mut summary = Summary { load: load(), ..Summary::default() };

    println!(
        "loginbench: complete demo logins (authorize → simulator → callback → token → userinfo), then /token alone"
    );
    println!("  server:  {base}{}", spawned.map(|s| format!(" ({})", s.how)).unwrap_or_default());
    if let (Some(_), Some(pid)) = (spawned, server_pid) {
        // benches/profile.sh attaches perf to this process.
        println!("  broker pid: {pid}");
    }
    println!("  commit:  {} (loginbench)", commit());
    println!("  machine: {machine_cores} core(s) (nproc); load average {}", summary.load);
    println!(
        "  client:  demo, ID tokens {}; store {}",
        options.alg,
        match (spawned, &options.store) {
            (Some(_), Some(store)) => store.split('@').next_back().unwrap_or(store.as_str()).to_owned(),
            (Some(_), None) => "memory".to_owned(),
            (None, _) => "as the server was started".to_owned(),
        }
    );
    match (spawned, client_cores) {
        (Some(s), Some(cores)) if s.pinned => {
            println!("  pinning: broker on core 0 (taskset -c 0), loginbench (and simulator, redis) on core(s) {cores}")
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
    let warm = logins(&clients[..max_concurrency], &target, max_concurrency, secs(1), &numbers, server_pid).await;
    if warm.latencies_ms.is_empty() {
        return Err(format!("warm-up: no login succeeded: {}", warm.first_error.unwrap_or_default()).into());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    summary.rss_idle = rss_bytes(server_pid);

    if spawned.is_some() {
        what_is_kept(&clients[0], &target, &numbers, server_pid, options.store.as_deref()).await?;
    }

    let mut redis = match (spawned, options.store.as_deref()) {
        (Some(_), Some(url)) => Some(redis_connection(url).await?),
        _ => None,
    };
    let commands_before = match redis.as_mut() {
        Some(connection) => Some(command_calls(connection).await?),
        None => None,
    };
    let mut all_logins = 0usize;
    println!("\ncomplete logins ({} s each)", options.duration.as_secs_f64());
    println!("{}", header("logins/s"));
    let (mut loaded_cpu, mut loaded_logins, mut loaded_wall) = (Duration::ZERO, 0usize, Duration::ZERO);
    for &concurrency in &options.concurrency {
        let run =
            report(concurrency, logins(&clients, &target, concurrency, options.duration, &numbers, server_pid).await);
        summary.best_rate = summary.best_rate.max(run.per_second());
        all_logins += run.latencies_ms.len();
        if concurrency == 1 {
            summary.p50_ms = Some(percentile(&run.latencies_ms, 0.5));
            summary.p99_ms = Some(percentile(&run.latencies_ms, 0.99));
        }
        if let (true, Some(cpu)) = (concurrency >= 8 || options.concurrency.len() == 1, run.server_cpu) {
            loaded_cpu += cpu;
            loaded_logins += run.latencies_ms.len();
            loaded_wall += run.elapsed;
        }
    }
    if let (Some(connection), Some(before)) = (redis.as_mut(), commands_before) {
        let after = command_calls(connection).await?;
        let line: Vec<String> = after
            .iter()
            .filter(|(name, _)| !["info", "client|setinfo", "hello", "ping"].contains(&name.as_str()))
            .filter_map(|(name, calls)| {
                let per_login = calls.saturating_sub(*before.get(name).unwrap_or(&0)) as f64 / all_logins.max(1) as f64;
                (per_login >= 0.005).then(|| format!("{} {per_login:.2}", name.to_uppercase()))
            })
            .collect();
        println!(
            "Redis commands per login over these phases (INFO commandstats; scripts' own commands counted too): {}",
            line.join(", ")
        );
    }
    if loaded_logins > 0 && !loaded_cpu.is_zero() {
        summary.cpu_ms = Some(loaded_cpu.as_secs_f64() * 1e3 / loaded_logins as f64);
        summary.busy = Some(loaded_cpu.as_secs_f64() / loaded_wall.as_secs_f64().max(1e-9));
    }

    if options.in_flight > 0 && server_pid.is_some() {
        let n = options.in_flight;
        let peak = Arc::new(AtomicU64::new(0));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(server_pid).unwrap_or(0), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let mut run = logins(&clients, &target, n, secs(3), &numbers, server_pid).await;
        done.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        run.latencies_ms.sort_by(f64::total_cmp);
        summary.rss_in_flight = Some(peak.load(Ordering::Relaxed));
        println!(
            "\n{n} logins in flight (3 s): broker RSS {} MB at its peak, {} MB idle before; {:.0} logins/s, p50 {:.1} ms, {} errors{}",
            mb(summary.rss_in_flight),
            mb(summary.rss_idle),
            run.per_second(),
            percentile(&run.latencies_ms, 0.5),
            run.errors,
            run.first_error.take().map(|e| format!(" (first: {e})")).unwrap_or_default()
        );
    }

    if !options.no_token_phase {
        let duration = token_duration(options);
        println!("\ntoken endpoint alone (POST /token with fresh codes, up to {} s each)", duration.as_secs_f64());
        println!("{}", header("tokens/s"));
        for &concurrency in &options.concurrency {
            // /token alone runs at 1.5 to 2 times the login rate (more when signing is cheap); running
            // out early only shortens the phase. Codes live 60 s: make them just before.
            let wanted = ((summary.best_rate * 2.5 * duration.as_secs_f64()) as usize).clamp(500, 40_000);
            let codes = make_codes(&clients, &target, max_concurrency, wanted, &numbers).await?;
            let made = codes.len();
            let run =
                report(concurrency, tokens_only(&clients, &target, concurrency, codes, duration, server_pid).await);
            if run.elapsed < duration.mul_f64(0.9) {
                println!("            (all {made} codes redeemed in {:.2} s)", run.elapsed.as_secs_f64());
            }
        }
    }
    if spawned.is_some() {
        println!(
            "\nsrv CPU: the broker process's user+system time over the phase's wall time (/proc; 100% = one core);\n\
             srv CPU ms: broker CPU per login (per /token), whatever the concurrency; at 100% CPU: 1000 / that,\n\
             the rate one fully busy core would give; bench CPU: loginbench itself (100% = one core)."
        );
    }
    Ok(summary)
}

/// What a pending flow and an unredeemed code keep (the broker's RSS growth for 2,000 of each;
/// on Redis the stored values too), and on Redis the commands each step of a login sends.
async fn what_is_kept(
    http: &reqwest::Client,
    target: &Target,
    numbers: &AtomicU64,
    pid: Option<u32>,
    store: Option<&str>,
) -> Result<(), Error> {
    const N: usize = 2000;
    let mut redis = match store {
        Some(url) => Some(redis_connection(url).await?),
        None => None,
    };
    println!("\nwhat is kept ({N} of each; RSS growth of the broker; on Redis the stored value sizes)");
    let rss = || rss_bytes(pid).unwrap_or(0) as f64;
    let before = rss();
    let from = numbers.fetch_add(N as u64, Ordering::Relaxed);
    let (admitted, _) = leave_pending(http, target, from, N, None).await?;
    let per_flow = (rss() - before) / admitted.max(1) as f64;
    let before = rss();
    let mut codes = Vec::with_capacity(N);
    for _ in 0..N {
        codes.push(code(http, target, numbers.fetch_add(1, Ordering::Relaxed)).await?);
    }
    let per_code = (rss() - before) / N as f64;
    println!("  pending flow:     RSS +{per_flow:.0} B each ({admitted} left pending)");
    println!("  unredeemed code:  RSS +{per_code:.0} B each");
    if let Some(connection) = redis.as_mut() {
        // Some of the codes redeemed, for the access token's record and the used-code marker.
        for code in codes.iter().take(200) {
            let access_token = token(http, target, code).await?;
            userinfo(http, target, &access_token).await?;
        }
        let sizes = value_sizes(connection).await?;
        let line: Vec<String> = sizes
            .iter()
            .filter(|(kind, _)| ["flow", "code", "code-used", "at"].contains(&kind.as_str()))
            .map(|(kind, (count, bytes))| format!("{kind} {:.0} B", *bytes as f64 / (*count).max(1) as f64))
            .collect();
        println!("  stored values (Redis STRLEN, mean; the memory store keeps the same bytes): {}", line.join(", "));
        round_trips(http, target, numbers, connection).await?;
    }
    Ok(())
}

/// The Redis commands each step of a login sends (INFO commandstats before and after 200 logins
/// made one step at a time), per login.
async fn round_trips(
    http: &reqwest::Client,
    target: &Target,
    numbers: &AtomicU64,
    connection: &mut redis::aio::MultiplexedConnection,
) -> Result<(), Error> {
    const K: u64 = 200;
    let from = numbers.fetch_add(K, Ordering::Relaxed);
    let mut per_step = Vec::new();
    let mut measure = |step: &str, before: BTreeMap<String, u64>, after: BTreeMap<String, u64>| {
        let ours = ["info", "keys", "strlen", "ping", "flushdb", "client|setinfo", "hello"];
        let line: Vec<String> = after
            .iter()
            .filter(|(name, _)| !ours.contains(&name.as_str()))
            .filter_map(|(name, calls)| {
                let delta = calls.saturating_sub(*before.get(name).unwrap_or(&0)) as f64 / K as f64;
                (delta >= 0.005).then(|| format!("{} {delta:.2}", name.to_uppercase()))
            })
            .collect();
        per_step.push(format!("  {step:<16} {}", if line.is_empty() { "none".to_owned() } else { line.join(", ") }));
    };
    let before = command_calls(connection).await?;
    let mut upstream = Vec::new();
    for n in from..from + K {
        upstream.push(hop(http, target, authorize_url(target, n)?).await?);
    }
    measure("GET /authorize", before, command_calls(connection).await?);
    let mut callbacks = Vec::new();
    for url in upstream {
        callbacks.push(hop(http, target, url).await?);
    }
    let before = command_calls(connection).await?;
    let mut codes = Vec::new();
    for (n, url) in (from..).zip(callbacks) {
        let back = hop(http, target, url).await?;
        codes.push(code_at(&back, n).ok_or("the callback did not go to the redirect_uri")??);
    }
    measure("GET /callback", before, command_calls(connection).await?);
    let before = command_calls(connection).await?;
    let mut access_tokens = Vec::new();
    for code in codes {
        access_tokens.push(token(http, target, &code).await?);
    }
    measure("POST /token", before, command_calls(connection).await?);
    let before = command_calls(connection).await?;
    for access_token in access_tokens {
        userinfo(http, target, &access_token).await?;
    }
    measure("GET /userinfo", before, command_calls(connection).await?);
    println!("  Redis commands per login, by step ({K} logins one step at a time; INFO commandstats; rate-limit counters are sent off the request path, as EVAL):");
    for line in per_step {
        println!("{line}");
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
            .is_some_and(|l| l.starts_with(&target.upstream));
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
        if location.starts_with(&target.upstream) {
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
        let target = Target::new(&server.url, &options.alg, &server.upstream)?;
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
