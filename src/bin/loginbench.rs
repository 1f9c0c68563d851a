//! loginbench: complete demo logins per second, and token requests per second, against a
//! running ssobridge (or a `demo` it starts, pinned to one core).
//!
//! `cargo run --release --bin loginbench -- [--url URL] [--concurrency 1,8,32,64] [--duration-secs 3]`
//!
//! A login: GET /authorize (login_hint) → the simulator's authorize → /callback → the
//! client's redirect_uri (not followed), POST /token (client_secret_basic), GET /userinfo.
//! Every step is checked; a failed step counts as an error, not a login.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

const REDIRECT: &str = "http://localhost:3000/callback";

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    url: Option<String>,
    concurrency: Vec<usize>,
    duration: Duration,
}

fn options() -> Result<Options, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let concurrency = value("--concurrency")
        .unwrap_or_else(|| "1,8,32,64".to_owned())
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()?;
    let duration = Duration::from_secs(value("--duration-secs").map(|d| d.parse()).transpose()?.unwrap_or(3));
    Ok(Options { url: value("--url"), concurrency, duration })
}

fn client() -> Result<reqwest::Client, Error> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Ok(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(256).build()?)
}

/// Authorize to the client's redirect: the code.
async fn code(http: &reqwest::Client, base: &str, n: u64) -> Result<String, Error> {
    let mut url = url::Url::parse(&format!("{base}/authorize"))?;
    url.query_pairs_mut()
        .append_pair("client_id", "demo")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", "bench")
        .append_pair("login_hint", &format!("user{n}@example.com"));
    let mut current = url.to_string();
    for _ in 0..6 {
        let response = http.get(&current).send().await?;
        if response.status() != 302 {
            return Err(format!("{} at {current}", response.status()).into());
        }
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).ok_or("no Location")?;
        let next = url::Url::parse(&current)?.join(location)?;
        if next.as_str().starts_with(REDIRECT) {
            return next
                .query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .ok_or_else(|| format!("no code: {next}").into());
        }
        current = next.to_string();
    }
    Err("too many hops".into())
}

async fn token(http: &reqwest::Client, base: &str, code: &str) -> Result<String, Error> {
    let response = http
        .post(format!("{base}/token"))
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)])
        .send()
        .await?;
    if response.status() != 200 {
        return Err(format!("token: {}", response.status()).into());
    }
    let body: serde_json::Value = response.json().await?;
    if !body["id_token"].is_string() {
        return Err("no id_token".into());
    }
    Ok(body["access_token"].as_str().ok_or("no access_token")?.to_owned())
}

async fn login(http: &reqwest::Client, base: &str, n: u64) -> Result<(), Error> {
    let code = code(http, base, n).await?;
    let access_token = token(http, base, &code).await?;
    let response = http.get(format!("{base}/userinfo")).bearer_auth(access_token).send().await?;
    if response.status() != 200 {
        return Err(format!("userinfo: {}", response.status()).into());
    }
    response.bytes().await?;
    Ok(())
}

struct Run {
    latencies_ms: Vec<f64>,
    errors: u64,
    elapsed: Duration,
}

fn report(label: &str, concurrency: usize, mut run: Run) {
    run.latencies_ms.sort_by(f64::total_cmp);
    let count = run.latencies_ms.len();
    let pick = |q: f64| {
        run.latencies_ms.get(((count as f64 * q) as usize).min(count.saturating_sub(1))).copied().unwrap_or(0.0)
    };
    println!(
        "{label:<8} {concurrency:>11} {:>10.0} {:>8.2} {:>8.2} {:>7}",
        count as f64 / run.elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.99),
        run.errors
    );
}

async fn logins(http: &reqwest::Client, base: &str, concurrency: usize, duration: Duration) -> Run {
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, base, counter, errors) = (http.clone(), base.to_owned(), counter.clone(), errors.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    match login(&http, &base, n).await {
                        Ok(()) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies_ms = Vec::new();
    for worker in workers {
        latencies_ms.extend(worker.await.unwrap_or_default());
    }
    Run { latencies_ms, errors: errors.load(Ordering::Relaxed), elapsed: started.elapsed() }
}

async fn tokens_only(http: &reqwest::Client, base: &str, concurrency: usize, codes: Vec<String>) -> Run {
    let queue = Arc::new(std::sync::Mutex::new(codes));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, base, queue, errors) = (http.clone(), base.to_owned(), queue.clone(), errors.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some(code) = next else { break };
                    let t = Instant::now();
                    match token(&http, &base, &code).await {
                        Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies_ms = Vec::new();
    for worker in workers {
        latencies_ms.extend(worker.await.unwrap_or_default());
    }
    Run { latencies_ms, errors: errors.load(Ordering::Relaxed), elapsed: started.elapsed() }
}

/// Starts `ssobridge demo --port 0` next to this binary, on core 0 when taskset exists.
async fn spawn_demo() -> Result<(tokio::process::Child, String, bool), Error> {
    let exe = std::env::current_exe()?.with_file_name("ssobridge");
    let pinned = std::process::Command::new("taskset").arg("--version").output().is_ok();
    let mut command = if pinned {
        let mut c = tokio::process::Command::new("taskset");
        c.args(["-c", "0"]).arg(&exe);
        c
    } else {
        tokio::process::Command::new(&exe)
    };
    let mut child = command
        .args(["demo", "--port", "0"])
        .env("SSOBRIDGE_LOG", "warn")
        // The benchmark measures the login path, not the limiter that would stop it.
        .env("SSOBRIDGE_RATE_LIMITS__PER_IP_PER_MINUTE", "0")
        .env("SSOBRIDGE_RATE_LIMITS__PER_CLIENT_PER_MINUTE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(url) = line.strip_prefix("ssobridge demo listening on ") {
            let url = url.replace("localhost", "127.0.0.1");
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((child, url, pinned));
        }
    }
    Err("the demo exited before listening".into())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let options = options()?;
    let (_demo, base, pinned) = match &options.url {
        Some(url) => (None, url.clone(), false),
        None => {
            let (child, url, pinned) = spawn_demo().await?;
            (Some(child), url, pinned)
        }
    };
    let http = client()?;
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "loginbench against {base} (commit {commit}, {} cores, server {})",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if pinned { "pinned to core 0 with taskset" } else { "not pinned" }
    );
    // Warm up: discovery, JWKS, connections.
    for n in 0..50 {
        login(&http, &base, n).await?;
    }
    println!(
        "\n{:<8} {:>11} {:>10} {:>8} {:>8} {:>7}",
        "phase", "concurrency", "per sec", "p50 ms", "p99 ms", "errors"
    );
    for &c in &options.concurrency {
        report("login", c, logins(&http, &base, c, options.duration).await);
    }
    for &c in &options.concurrency {
        let wanted = 3000;
        let mut codes = Vec::with_capacity(wanted);
        for n in 0..wanted {
            codes.push(code(&http, &base, n as u64).await?);
        }
        report("token", c, tokens_only(&http, &base, c, codes).await);
    }
    Ok(())
}
