//! What an operator relies on: metrics, rate limits, security headers.

use std::time::Duration;

use crate::common::{redeem, Browser, Stack, AUTH0_CLIENT, VERIFIER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_logins_tokens_requests_and_upstream_latency() {
    let stack = Stack::start().await;
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    let (status, _) = redeem(&stack.broker.url, AUTH0_CLIENT, &params["code"], Some(VERIFIER)).await;
    assert_eq!(status, 200);
    let failed = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "eve@nope.test")]).await;
    assert_eq!(failed["error"], "access_denied");
    let refused = crate::common::http()
        .post(format!("{}/token", stack.broker.url))
        .basic_auth(AUTH0_CLIENT.client_id, Some("not-the-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .expect("token");
    assert_eq!(refused.status(), 401);
    let response = crate::common::http().get(format!("{}/metrics", stack.broker.url)).send().await.expect("metrics");
    assert!(response.headers()["content-type"].to_str().expect("ct").starts_with("text/plain"));
    let text = response.text().await.expect("text");
    // The registry is per process and tests in this binary run in parallel: look for the series.
    for series in [
        "ssobridge_logins_started_total{client=\"auth0-test\"}",
        "ssobridge_logins_completed_total{client=\"auth0-test\"}",
        // The upstream's own code is the reason (the client sees access_denied).
        "ssobridge_logins_failed_total{client=\"auth0-test\",reason=\"domain_not_found\"}",
        "ssobridge_tokens_issued_total{client=\"auth0-test\"}",
        "ssobridge_upstream_duration_seconds_bucket{operation=\"token\",outcome=\"ok\",le=\"+Inf\"}",
        "ssobridge_adapter_duration_seconds_count{adapter=\"none\",outcome=\"unchanged\"}",
        "ssobridge_http_requests_total{method=\"GET\",route=\"/authorize\",status=\"302\"}",
        "ssobridge_token_failures_total{client=\"unknown\",error=\"invalid_client\"}",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_defaults_let_a_burst_through() {
    let limited = Stack::start_with("memory", "rl:", "\n[rate_limits]\nper_ip_per_minute = 5\n").await;
    let url =
        crate::common::authorize_url(&limited.broker.url, AUTH0_CLIENT, None, &[("login_hint", "alice@acme.test")]);
    let browser = Browser::default();
    away_from_a_window_edge().await;
    for _ in 0..5 {
        assert_eq!(browser.get(&url).await.status(), 302);
    }
    let refused = browser.get(&url).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
    assert!((1..=60).contains(&retry_after));
    assert!(refused.text().await.expect("page").contains("Too many sign-in attempts"));
    let token = crate::common::http()
        .post(format!("{}/token", limited.broker.url))
        .form(&[("grant_type", "authorization_code"), ("code", "x"), ("client_id", AUTH0_CLIENT.client_id)])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), 429);
    assert_eq!(token.headers()["content-type"], "application/json");

    // The defaults: a burst of 400 requests (100 logins' worth) from one address passes.
    let open = Stack::start().await;
    let url = crate::common::authorize_url(&open.broker.url, AUTH0_CLIENT, None, &[("login_hint", "alice@acme.test")]);
    let http = Browser::default().http;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let batch: Vec<_> = (0..50).map(|_| http.get(&url).send()).collect();
        for response in futures_join(batch).await {
            statuses.push(response.expect("authorize").status().as_u16());
        }
    }
    let mut seen = statuses.clone();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, [302], "a burst of 400 authorize requests from one address passes");
}

async fn futures_join<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_carry_security_headers() {
    let stack = Stack::start().await;
    let page = Browser::default().get(&crate::common::authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[])).await;
    let headers = page.headers();
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("strict-transport-security").is_none(), "HSTS only when the issuer is https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_by_instances_on_one_redis() {
    let redis = crate::common::Redis::start().await;
    let limits = "\n[rate_limits]\nper_ip_per_minute = 10\n";
    let a = Stack::start_with(&redis.url(), "shared-rl:", limits).await;
    let b = Stack::start_with(&redis.url(), "shared-rl:", limits).await;
    let url = |stack: &Stack| {
        crate::common::authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[("login_hint", "alice@acme.test")])
    };
    let browser = Browser::default();
    // An instance adds its counts to Redis after answering; each wait below is for Redis to
    // hold them, after which the next answer an instance gets carries them.
    let counted = |n: i64| until_counted(redis.url(), "shared-rl:", n);
    away_from_a_window_edge().await;
    for _ in 0..6 {
        assert_eq!(browser.get(&url(&a)).await.status(), 302);
    }
    counted(6).await;
    for _ in 0..4 {
        assert_eq!(browser.get(&url(&b)).await.status(), 302, "B admits the 7th to 10th");
    }
    counted(10).await;
    assert_eq!(browser.get(&url(&b)).await.status(), 429, "the 11th, on B, counts A's six");
    // A judges on the total of its last answer from Redis: it learns of B's requests with the
    // next one, so at most one more request gets through there.
    let a_statuses = [browser.get(&url(&a)).await.status(), {
        counted(12).await;
        browser.get(&url(&a)).await.status()
    }];
    assert_eq!(a_statuses[1], 429, "A counts B's requests too: {a_statuses:?}");
}

/// Waits until the deployment under `prefix` has counted `n` requests in Redis.
async fn until_counted(redis_url: String, prefix: &'static str, n: i64) {
    let what = format!("{n} requests counted in Redis");
    crate::common::wait_until(&what, Duration::from_secs(5), || async {
        requests_counted(&redis_url, prefix).await >= n
    })
    .await;
}

/// The requests per IP this minute, as the deployment under `prefix` has counted them in Redis
/// (refused ones included).
async fn requests_counted(redis_url: &str, prefix: &str) -> i64 {
    let client = redis::Client::open(redis_url).expect("redis client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("redis connect");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}rl:ip:*")).query_async(&mut connection).await.expect("KEYS");
    let mut total = 0;
    for key in keys {
        let count: Option<i64> = redis::cmd("GET").arg(&key).query_async(&mut connection).await.expect("GET");
        total += count.unwrap_or(0);
    }
    total
}

/// Counters are per minute of the clock: a test counting to a limit starts well inside one
/// (a wait for the clock, not for an event).
pub(crate) async fn away_from_a_window_edge() {
    let into_minute = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() % 60;
    if into_minute >= 50 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - into_minute)).await;
    }
}

/// `/readyz` once the background check of the client credentials has run (it runs at start):
/// its status and body.
async fn readiness_once_credentials_are_checked(broker: &str) -> (u16, serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let response = crate::common::http().get(format!("{broker}/readyz")).send().await.expect("readyz");
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.expect("json");
        if body["credentials"] != "starting" {
            return (status, body);
        }
        assert!(std::time::Instant::now() < deadline, "the credentials are checked at start: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The broker's upstream credentials are checked at start (a client_credentials grant), and
/// `/readyz` says so: `ok` where the upstream grants one (Scalekit, its simulator), `unknown`
/// where it cannot tell (the test upstream grants none; counted as ready), and 503 with
/// `unavailable` when the secret is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_whether_the_upstream_takes_the_brokers_credentials() {
    let stack = Stack::start().await;
    let (status, body) = readiness_once_credentials_are_checked(&stack.broker.url).await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"store": "ok", "upstream": "ok", "credentials": "unknown"})),
        "oidc-provider answers unsupported_grant_type: it cannot tell"
    );

    let socket = crate::common::BrokerSocket::bind().await;
    let sim = crate::simulator::Simulator::start(&socket.callback(), &[]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "cred:", &sim.issuer);
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let (status, body) = readiness_once_credentials_are_checked(&broker.url).await;
    assert_eq!((status, &body["credentials"]), (200, &serde_json::json!("ok")), "{body}");

    let socket = crate::common::BrokerSocket::bind().await;
    let sim = crate::simulator::Simulator::start(&socket.callback(), &[]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "cred:", &sim.issuer)
        .replace(crate::common::UPSTREAM_CLIENT_SECRET, "not-the-upstream-secret");
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let (status, body) = readiness_once_credentials_are_checked(&broker.url).await;
    assert_eq!(
        (status, body),
        (503, serde_json::json!({"store": "ok", "upstream": "ok", "credentials": "unavailable"})),
        "a wrong secret is not ready"
    );
}

/// A wrong `upstream.client_secret` is the operator's mistake: the user who meets it gets the
/// client's `server_error`, never "the identity provider did not confirm the sign-in".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_upstream_secret_is_a_server_error_not_a_refused_sign_in() {
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "wrong:", &upstream.issuer)
        .replace(crate::common::UPSTREAM_CLIENT_SECRET, "not-the-upstream-secret");
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let stack = Stack { upstream, broker };
    let got = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    assert_eq!(got.get("error").map(String::as_str), Some("server_error"), "{got:?}");
    assert_eq!(
        got.get("error_description").map(String::as_str),
        Some("the sign-in service is misconfigured at the identity provider")
    );
    assert_eq!(got.get("state").map(String::as_str), Some("client-state-123"));
    assert!(!got.contains_key("code"));
}
