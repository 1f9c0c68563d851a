//! The command line as an operator uses it: keys generate, check-config, serve.

use std::process::Stdio;

use crate::common::tempdir::TempDir;
use crate::common::TestClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn ssobridge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ssobridge"));
    command.env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value);
    command.env(crate::common::OPS_LISTEN.name, crate::common::OPS_LISTEN.value);
    command
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: its last element, an OCTET STRING.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    fn header(der: &[u8]) -> (u8, usize, usize) {
        let tag = der[0];
        let first = der[1] as usize;
        if first < 0x80 {
            (tag, 2, first)
        } else {
            let n = first & 0x7f;
            let len = der[2..2 + n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (tag, 2 + n, len)
        }
    }
    let (_, start, _) = header(pkcs8); // outer SEQUENCE
    let mut rest = &pkcs8[start..];
    loop {
        let (tag, hdr, len) = header(rest);
        if tag == 0x04 {
            return rest[hdr..hdr + len].to_vec();
        }
        rest = &rest[hdr + len..];
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("ascii")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn minimal_config(key_file: &str) -> String {
    format!(
        r#"public_url = "http://127.0.0.1:9"
[signing]
key_file = "{key_file}"
[upstream]
issuer = "http://127.0.0.1:9/upstream"
client_id = "x"
client_secret = "y"
[[clients]]
client_id = "auth0-prod"
client_secret = "0123456789"
redirect_uris = ["https://acme.us.auth0.com/login/callback"]
"#
    )
}

/// Every verb and the flags scripts, the chart and the README call it with: the contract of
/// the command line.
const VERBS: &[(&str, &[&str])] = &[
    ("serve", &["--config"]),
    ("demo", &["--port", "--listen", "--public-url"]),
    (
        "simulator",
        &[
            "--port",
            "--client-id",
            "--client-secret",
            "--redirect-uri",
            "--initiate-login-uri",
            "--organization-metadata",
            "--issuer-url",
            "--iss-on-redirect",
            "--webhook-url",
            "--webhook-secret",
        ],
    ),
    ("check-config", &["--config"]),
    ("keys generate", &["--out", "--force", "--alg"]),
    ("export-config", &["--config"]),
    ("admin-token", &[]),
    ("openapi", &[]),
];

#[tokio::test]
async fn version_prints_the_crate_version() {
    for flag in ["--version", "-V"] {
        let out = ssobridge().arg(flag).output().await.expect("run");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("ssobridge {}\n", env!("CARGO_PKG_VERSION")));
    }
}

/// A mistyped flag is a usage error (exit code 2) naming it, never silently ignored.
#[tokio::test]
async fn an_unknown_flag_fails_with_exit_code_2_and_names_the_flag() {
    for args in
        [&["--frobnicate"][..], &["serve", "--config", "c.toml", "--frobnicate"], &["keys", "generate", "--frobnicate"]]
    {
        let out = ssobridge().args(args).output().await.expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("'--frobnicate'"), "{args:?}: {out:?}");
    }
    // A near miss is pointed at the real flag; an unknown verb is named too.
    let out = ssobridge().args(["check-config", "--confg", "c.toml"]).output().await.expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--config'"), "{out:?}");
    let out = ssobridge().arg("sreve").output().await.expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("'serve'"), "{out:?}");
}

/// `help VERB` and `VERB --help` print that verb's options on stdout and exit 0; bare
/// `ssobridge` lists the verbs.
#[tokio::test]
async fn help_shows_each_subcommands_options() {
    let out = ssobridge().output().await.expect("run");
    assert!(out.status.success(), "{out:?}");
    let overview = String::from_utf8_lossy(&out.stdout);
    for (verb, _) in VERBS {
        let first = verb.split(' ').next().unwrap_or(verb);
        assert!(overview.lines().any(|l| l.trim_start().starts_with(first)), "{first} listed: {overview}");
    }
    for (verb, flags) in VERBS {
        let words: Vec<&str> = verb.split(' ').collect();
        let help = ssobridge().arg("help").args(&words).output().await.expect("run");
        let dash_help = ssobridge().args(&words).arg("--help").output().await.expect("run");
        assert!(help.status.success() && dash_help.status.success(), "{verb}: {help:?} {dash_help:?}");
        assert_eq!(help.stdout, dash_help.stdout, "{verb}: the same help either way");
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains(&format!("Usage: ssobridge {verb}")), "{verb}: {text}");
        for flag in *flags {
            assert!(text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")), "{verb} {flag}: {text}");
        }
    }
}

/// `--alg` takes the key's algorithm under each name it has ever accepted.
#[tokio::test]
async fn keys_generate_takes_every_alg_name() {
    let dir = TempDir::new("alg");
    for (alg, label) in
        [("RS256", "RSA-2048"), ("PS256", "RSA-2048"), ("RSA", "RSA-2048"), ("ES256", "EC P-256"), ("EC", "EC P-256")]
    {
        let key = dir.path().join(format!("{alg}.pem"));
        let out = ssobridge().args(["keys", "generate", "--alg", alg, "--out"]).arg(&key).output().await.expect("run");
        assert!(out.status.success(), "{alg}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(label), "{alg}: {out:?}");
    }
    let out = ssobridge()
        .args(["keys", "generate", "--alg", "HS256", "--out"])
        .arg(dir.path().join("x.pem"))
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HS256"), "{out:?}");
}

#[tokio::test]
async fn keys_generate_writes_a_pkcs8_key_that_check_config_accepts_and_pkcs1_works_too() {
    let dir = TempDir::new("keys");
    let key = dir.path().join("signing.pem");
    let out = ssobridge().args(["keys", "generate", "--out"]).arg(&key).output().await.expect("run");
    assert!(out.status.success(), "{out:?}");
    let pkcs8_pem = std::fs::read_to_string(&key).expect("written");
    assert!(pkcs8_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777, 0o600, "private key is 0600");
    }
    let again = ssobridge().args(["keys", "generate", "--out"]).arg(&key).output().await.expect("run");
    assert!(!again.status.success(), "an existing key is not overwritten without --force");

    let config = dir.path().join("ssobridge.toml");
    std::fs::write(&config, minimal_config(&key.display().to_string())).expect("write");
    let check = ssobridge().args(["check-config", "--config"]).arg(&config).output().await.expect("run");
    assert!(check.status.success(), "PKCS#8 accepted: {check:?}");

    // The same key as PKCS#1 ("BEGIN RSA PRIVATE KEY").
    let der = STANDARD.decode(pkcs8_pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).expect("b64");
    let pkcs1 = dir.path().join("pkcs1.pem");
    std::fs::write(&pkcs1, pem("RSA PRIVATE KEY", &pkcs8_to_pkcs1(&der))).expect("write");
    std::fs::write(&config, minimal_config(&pkcs1.display().to_string())).expect("write");
    let check = ssobridge().args(["check-config", "--config"]).arg(&config).output().await.expect("run");
    assert!(check.status.success(), "PKCS#1 accepted: {check:?}");
    let a = ssobridge::tokens::SigningKey::from_pem(&pkcs8_pem).expect("pkcs8");
    let b = ssobridge::tokens::SigningKey::from_pem(&std::fs::read_to_string(&pkcs1).expect("read")).expect("pkcs1");
    assert_eq!(a.kid(), b.kid(), "the same key either way");
}

#[tokio::test]
async fn check_config_lists_every_problem_by_key() {
    let dir = TempDir::new("check");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        r#"public_url = "http://sso.example.com"
[store]
url = "postgres://x"
[upstream]
issuer = "https://acme.scalekit.dev"
client_id = "x"
client_secret = "y"
[[clients]]
client_id = "a"
client_secret = "short"
redirect_uris = ["https://app.example.com/cb#frag"]
"#,
    )
    .expect("write");
    let out = ssobridge().args(["check-config", "--config"]).arg(&config).output().await.expect("run");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let keys: Vec<&str> = stdout.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(keys, ["public_url", "store.url", "clients[0].client_secret", "clients[0].redirect_uris"], "{stdout}");

    // Environment overrides are applied before validation, and can fix a file.
    let out = ssobridge()
        .args(["check-config", "--config"])
        .arg(&config)
        .env("SSOBRIDGE_PUBLIC_URL", "https://sso.example.com")
        .env("SSOBRIDGE_STORE__URL", "memory")
        .env("SSOBRIDGE_CLIENTS__A__CLIENT_SECRET", "long-enough-secret")
        .env("SSOBRIDGE_CLIENTS__0__REDIRECT_URIS", "https://app.example.com/cb")
        .output()
        .await
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_signing_key_naming_the_key() {
    let dir = TempDir::new("nokey");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config("x").replace("[signing]\nkey_file = \"x\"\n", "")).expect("write");
    let out = ssobridge().args(["serve", "--config"]).arg(&config).output().await.expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing.key_file"), "{out:?}");
}

/// The operator leaves the pairwise salt unset (every pairwise `sub` would be a bare hash of
/// client and user anyone can recompute), or picks a guessable key-encryption key: `serve` and
/// `check-config` refuse, naming the key and how to make a good one.
#[tokio::test]
async fn serve_refuses_an_unset_pairwise_salt_and_a_weak_key_encryption_key() {
    let dir = TempDir::new("secrets");
    let key = dir.path().join("signing.pem");
    let out = ssobridge().args(["keys", "generate", "--out"]).arg(&key).output().await.expect("run");
    assert!(out.status.success(), "{out:?}");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config(&key.display().to_string())).expect("write");
    for command in ["serve", "check-config"] {
        let out = ssobridge()
            .args([command, "--config"])
            .arg(&config)
            .env_remove(crate::common::PAIRWISE_SALT.name)
            .output()
            .await
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {text}");
        assert!(text.contains("tokens.pairwise_salt") && text.contains("/dev/urandom"), "{command}: {text}");
    }
    for weak in ["password123", "a-test-key-encryption-key-of-some-length", &"A".repeat(64)] {
        let out = ssobridge()
            .args(["check-config", "--config"])
            .arg(&config)
            .env("SSOBRIDGE_SIGNING__KEY_ENCRYPTION_KEY", weak)
            .output()
            .await
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && text.contains("signing.key_encryption_key"), "{weak}: {text}");
    }
    let good = ssobridge::tokens::random_token(32).expect("random");
    let out = ssobridge()
        .args(["check-config", "--config"])
        .arg(&config)
        .env("SSOBRIDGE_SIGNING__KEY_ENCRYPTION_KEY", &good)
        .output()
        .await
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// In production the Firebase adapter must talk to Google, never to an emulator that anyone
/// on the network could run: a config with `emulator_host` is refused with SSOBRIDGE_ENV=production.
#[tokio::test]
async fn the_firebase_emulator_is_refused_in_production() {
    let dir = TempDir::new("emulator");
    let config = dir.path().join("c.toml");
    let toml = minimal_config("x").replace("[signing]\nkey_file = \"x\"\n", "")
        + "adapter = \"firebase\"\n[clients.firebase]\nproject_id = \"demo-p\"\n\
           service_account_email = \"sa@demo-p.iam.gserviceaccount.com\"\nemulator_host = \"127.0.0.1:9099\"\n";
    std::fs::write(&config, toml).expect("write");
    let check = |env: &'static str| {
        let config = config.clone();
        async move {
            ssobridge()
                .args(["check-config", "--config"])
                .arg(&config)
                .env("SSOBRIDGE_ENV", env)
                .output()
                .await
                .expect("run")
        }
    };
    let production = check("production").await;
    let text = String::from_utf8_lossy(&production.stdout);
    assert!(!production.status.success() && text.contains("clients[0].firebase.emulator_host"), "{text}");
    let development = String::from_utf8_lossy(&check("development").await.stdout).into_owned();
    assert!(!development.contains("emulator_host"), "allowed in development: {development}");
}

/// `export-config` of a deployment whose store URL holds a password: the password is not printed.
#[tokio::test]
async fn export_config_never_prints_the_store_password() {
    let dir = TempDir::new("export");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config("x")).expect("write");
    let redis = crate::common::Redis::start().await;
    let set = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "CONFIG", "SET", "requirepass", "hunter2-password"])
        .output()
        .await
        .expect("redis-cli");
    assert!(set.status.success(), "{set:?}");
    let out = ssobridge()
        .args(["export-config", "--config"])
        .arg(&config)
        .env("SSOBRIDGE_STORE__URL", format!("redis://:hunter2-password@127.0.0.1:{}/0", redis.port))
        .output()
        .await
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("redis://:redacted@127.0.0.1"), "redacted as check-config shows it: {text}");
}

/// A full login through `ssobridge serve` (the binary, on Redis), with its logs captured:
/// no code, token, secret or PKCE verifier may appear in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_carry_request_ids_and_never_a_secret() {
    let dir = TempDir::new("serve");
    let redis = crate::common::Redis::start().await;
    let port = crate::common::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let upstream = crate::common::Upstream::start(&[format!("{public_url}/callback")]).await;
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write");
    let config = dir.path().join("ssobridge.toml");
    // Webhooks on (a secret to keep out of the logs), no sync (the test upstream has no
    // management API).
    let webhook_secret = "whsec_bG9nLXRlc3Qtd2ViaG9vay1zZWNyZXQtMDEy";
    let toml = crate::common::broker_toml(&public_url, &redis.url(), "logs:", &upstream.issuer).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"", key.display()),
    ) + &format!("\n[scalekit]\nsync_interval_seconds = 0\nwebhook_secret = \"{webhook_secret}\"\n");
    std::fs::write(&config, toml).expect("write");
    let mut child = ssobridge()
        .args(["serve", "--config"])
        .arg(&config)
        .env("SSOBRIDGE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = logs.clone();
    let stdout_reader = tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if line.contains("ssobridge serving") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            sink.lock().expect("logs").push(line);
        }
    });
    let sink = logs.clone();
    let stderr_reader = tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            sink.lock().expect("logs").push(line);
        }
    });
    tokio::time::timeout(crate::common::STARTUP_DEADLINE, ready_rx).await.expect("serve ready in time").expect("ready");

    // A whole login as Auth0 does it, plus a replayed code and a bad secret for good measure.
    let client = crate::common::AUTH0_CLIENT;
    let browser = crate::common::Browser::default();
    let start = crate::common::authorize_url(
        &public_url,
        client,
        Some(crate::common::VERIFIER),
        &[("login_hint", "alice@acme.test")],
    );
    let landed = browser.follow_until(&start, client.redirect_uri).await.expect("login");
    let params = crate::common::query(&landed);
    let code = params.get("code").expect("code").clone();
    let (status, tokens) = crate::common::redeem(&public_url, client, &code, Some(crate::common::VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let access_token = tokens["access_token"].as_str().expect("at").to_owned();
    let id_token = tokens["id_token"].as_str().expect("id").to_owned();
    let status = crate::common::http()
        .get(format!("{public_url}/userinfo"))
        .bearer_auth(&access_token)
        .send()
        .await
        .expect("ui")
        .status();
    assert_eq!(status, 200);
    let _ = crate::common::redeem(&public_url, client, &code, Some(crate::common::VERIFIER)).await;
    let _ =
        crate::common::redeem(&public_url, TestClient { secret: "wrong-secret-value", ..client }, &code, None).await;
    // A signed webhook (ignored: no route event) and a forged one.
    let key = ssobridge::webhooks::signature::decode_secret(webhook_secret).expect("secret");
    let body = r#"{"type":"user.login","data":{}}"#;
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    for (signature, expected) in [
        (ssobridge::webhooks::signature::sign(&key, "msg_log", timestamp, body.as_bytes()), 200),
        ("v1,Zm9yZ2Vk".to_owned(), 401),
    ] {
        let response = crate::common::http()
            .post(format!("{public_url}/webhooks/scalekit"))
            .header("webhook-id", "msg_log")
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", &signature)
            .body(body)
            .send()
            .await
            .expect("webhook");
        assert_eq!(response.status(), expected);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    // Every line is in once the readers reach the end of the closed pipes.
    for reader in [stdout_reader, stderr_reader] {
        reader.await.expect("log reader");
    }

    let logs = logs.lock().expect("logs").join("\n");
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.len() >= 8, "JSON log lines were written: {logs}");
    let request_lines: Vec<&Value> = lines.iter().filter(|l| l["fields"]["message"] == "request").collect();
    assert!(!request_lines.is_empty());
    assert!(
        request_lines.iter().all(|l| l["span"]["request_id"].as_str().is_some_and(|id| id.len() == 36)),
        "every request line has a request id"
    );
    let secrets = [
        ("downstream code", code.as_str()),
        ("access token", access_token.as_str()),
        ("ID token", id_token.as_str()),
        ("ID token signature", id_token.rsplit('.').next().unwrap_or("")),
        ("client secret", client.secret),
        ("upstream client secret", crate::common::UPSTREAM_CLIENT_SECRET),
        ("webhook secret", webhook_secret.trim_start_matches("whsec_")),
        ("downstream PKCE verifier", crate::common::VERIFIER),
        ("client state", "client-state-123"),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "the logs contain the {what}");
    }
}

/// SIGTERM: the server stops accepting, finishes the request in flight, and exits in bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_exits() {
    let dir = TempDir::new("sigterm");
    // An upstream that accepts and never answers keeps a request in flight for the timeout.
    let stall = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stall_url = format!("http://{}", stall.local_addr().expect("addr"));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let _held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for connection in stall.incoming().flatten().take(16) {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            open.push(connection);
        }
    });
    let port = crate::common::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write");
    let toml = crate::common::broker_toml(&public_url, "memory", "sig:", &stall_url).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"", key.display()),
    ) + "\n";
    let toml = toml.replace(
        &format!("client_secret = \"{}\"\n[[clients]]", crate::common::UPSTREAM_CLIENT_SECRET),
        &format!("client_secret = \"{}\"\ntimeout_seconds = 2\n[[clients]]", crate::common::UPSTREAM_CLIENT_SECRET),
    );
    assert!(toml.contains("timeout_seconds = 2"), "{toml}");
    let config = dir.path().join("ssobridge.toml");
    std::fs::write(&config, toml).expect("write");
    let mut child = ssobridge()
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(crate::common::STARTUP_DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ssobridge serving") {
                return;
            }
        }
        panic!("serve exited before serving");
    })
    .await
    .expect("serving in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let url = crate::common::authorize_url(
        &public_url,
        crate::common::AUTH0_CLIENT,
        None,
        &[("login_hint", "alice@acme.test")],
    );
    let in_flight = tokio::spawn(async move { crate::common::Browser::default().get(&url).await });
    // The request is in flight once the broker, working on it, calls the upstream: the second
    // connection there (the first is the readiness check's at start; its next is 10 s away).
    crate::common::wait_until("the request at the upstream", crate::common::STARTUP_DEADLINE, || async {
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2
    })
    .await;
    let pid = child.id().expect("pid").to_string();
    let signalled = std::time::Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());

    let response =
        tokio::time::timeout(std::time::Duration::from_secs(10), in_flight).await.expect("answered").expect("task");
    assert_eq!(response.status(), 302, "the request in flight was finished, not cut");
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    assert!(location.contains("error=temporarily_unavailable"), "{location}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("exits in bounds")
        .expect("wait");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(signalled.elapsed() < std::time::Duration::from_secs(13));
    // And it accepts nothing new.
    assert!(crate::common::http().get(format!("{public_url}/healthz")).send().await.is_err());
}

/// Admin changes are written to the log as audit lines: who, what, before and after, and
/// never the secret the server generated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_are_audited_without_secrets() {
    let dir = TempDir::new("audit");
    let port = crate::common::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let upstream = crate::common::Upstream::start(&[format!("{public_url}/callback")]).await;
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write");
    let toml = crate::common::broker_toml(&public_url, "memory", "audit:", &upstream.issuer).replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"\n[admin]\nlisten = \"public\"\nwrite_tokens_sha256 = [\"{}\"]",
            key.display(),
            ssobridge::tokens::sha256_hex(crate::common::ADMIN_WRITE_TOKEN)
        ),
    );
    let config = dir.path().join("ssobridge.toml");
    std::fs::write(&config, toml).expect("write");
    let mut child = ssobridge()
        .args(["serve", "--config"])
        .arg(&config)
        // The file puts everything on the public listener.
        .env_remove(crate::common::OPS_LISTEN.name)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let sink = logs.clone();
    let reader = tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("ssobridge serving") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            sink.lock().expect("logs").push(line);
        }
    });
    tokio::time::timeout(crate::common::STARTUP_DEADLINE, ready_rx).await.expect("ready in time").expect("ready");

    let created: Value = crate::common::http()
        .post(format!("{public_url}/admin/clients"))
        .bearer_auth(crate::common::ADMIN_WRITE_TOKEN)
        .json(&serde_json::json!({"client_id": "audited", "redirect_uris": ["https://app.example.com/cb"]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let secret = created["client_secret"].as_str().expect("secret").to_owned();
    let _ = child.start_kill();
    let _ = child.wait().await;
    // Every line is in once the reader reaches the end of the closed pipe.
    reader.await.expect("log reader");

    let logs = logs.lock().expect("logs").join("\n");
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["audit"] == true)
        .collect();
    assert_eq!(audit.len(), 1, "{logs}");
    let fields = &audit[0]["fields"];
    assert_eq!(fields["action"], "client.create");
    assert_eq!(fields["resource"], "audited");
    assert!(fields["actor"].as_str().is_some_and(|a| a.starts_with("token:")), "who: {fields}");
    assert!(fields["after"].as_str().is_some_and(|a| a.contains("https://app.example.com/cb")), "after: {fields}");
    assert!(!logs.contains(&secret), "the generated secret is never logged");
    assert!(!logs.contains(crate::common::ADMIN_WRITE_TOKEN), "the admin token is never logged");
}

/// The variables Kubernetes gives a pod for the Services `ssobridge` (a release of that name)
/// and `ssobridge-redis-master` (a Redis installed beside it), as the kubelet writes them.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("SSOBRIDGE_SERVICE_HOST", "10.96.12.7"),
    ("SSOBRIDGE_SERVICE_PORT", "80"),
    ("SSOBRIDGE_SERVICE_PORT_HTTP", "80"),
    ("SSOBRIDGE_PORT", "tcp://10.96.12.7:80"),
    ("SSOBRIDGE_PORT_80_TCP", "tcp://10.96.12.7:80"),
    ("SSOBRIDGE_PORT_80_TCP_PROTO", "tcp"),
    ("SSOBRIDGE_PORT_80_TCP_PORT", "80"),
    ("SSOBRIDGE_PORT_80_TCP_ADDR", "10.96.12.7"),
    ("SSOBRIDGE_REDIS_MASTER_SERVICE_HOST", "10.96.40.3"),
    ("SSOBRIDGE_REDIS_MASTER_SERVICE_PORT", "6379"),
    ("SSOBRIDGE_REDIS_MASTER_SERVICE_PORT_TCP_REDIS", "6379"),
    ("SSOBRIDGE_REDIS_MASTER_PORT", "tcp://10.96.40.3:6379"),
    ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP", "tcp://10.96.40.3:6379"),
    ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_PROTO", "tcp"),
    ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_PORT", "6379"),
    ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_ADDR", "10.96.40.3"),
];

/// A pod next to Services whose names start with `ssobridge` gets their service-link variables
/// (when service links are on): `serve` starts and serves, logging one warning per variable by
/// name only; check-config lists them; a misspelt key beside them still stops both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_beside_kubernetes_service_links_and_still_refuses_a_typo() {
    let dir = TempDir::new("links");
    let port = crate::common::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write");
    // The upstream is not running: serve starts all the same (readiness says so, not startup).
    let toml = crate::common::broker_toml(&public_url, "memory", "links:", "http://127.0.0.1:9/upstream").replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"", key.display()),
    );
    let config = dir.path().join("ssobridge.toml");
    std::fs::write(&config, toml).expect("write");

    let mut child = ssobridge()
        .args(["serve", "--config"])
        .arg(&config)
        .envs(SERVICE_LINKS.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let logs = tokio::time::timeout(crate::common::STARTUP_DEADLINE, async {
        let mut logs = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let serving = line.contains("ssobridge serving");
            logs.push(line);
            if serving {
                return logs;
            }
        }
        panic!("serve exited before serving:\n{}", logs.join("\n"));
    })
    .await
    .expect("serving in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let health = crate::common::http().get(format!("{public_url}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    let warnings: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["level"] == "WARN" && l["fields"]["variable"].is_string())
        .collect();
    let mut warned: Vec<&str> = warnings.iter().filter_map(|l| l["fields"]["variable"].as_str()).collect();
    warned.sort_unstable();
    let mut expected: Vec<&str> = SERVICE_LINKS.iter().map(|(k, _)| *k).collect();
    expected.sort_unstable();
    assert_eq!(warned, expected, "one warning per variable");
    let text = logs.join("\n");
    assert!(!text.contains("10.96."), "warnings name variables, never their values:\n{text}");
    let _ = child.start_kill();
    let _ = child.wait().await;

    let check = ssobridge()
        .args(["check-config", "--config"])
        .arg(&config)
        .envs(SERVICE_LINKS.iter().copied())
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_ADDR ignored: a Kubernetes service link"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("warning: ")).count(), SERVICE_LINKS.len(), "{stdout}");

    // A real typo among them is still an unknown key: neither command accepts it.
    for command in ["serve", "check-config"] {
        let out = ssobridge()
            .args([command, "--config"])
            .arg(&config)
            .envs(SERVICE_LINKS.iter().copied())
            .env("SSOBRIDGE_UPSTREAM__CLIENT_SECRT", "typo")
            .output()
            .await
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {text}");
        assert!(text.contains("client_secrt"), "{command} names the key: {text}");
    }
}

/// `ssobridge serve` with a wrong `upstream.client_secret`: the log has one error line at start
/// that names the key to fix (never the value), before any user signs in, and `/readyz` says
/// the broker is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_upstream_secret_is_an_error_in_the_log_at_start() {
    let dir = TempDir::new("wrong-secret");
    let port = crate::common::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let sim = crate::simulator::Simulator::start(&format!("{public_url}/callback"), &[]).await;
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write");
    let config = dir.path().join("ssobridge.toml");
    let wrong = "wrong-upstream-secret-0123456789";
    let toml = crate::common::broker_toml(&public_url, "memory", "ws:", &sim.issuer)
        .replace(crate::common::UPSTREAM_CLIENT_SECRET, wrong)
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"", key.display()),
        );
    std::fs::write(&config, toml).expect("write");
    let mut child = ssobridge()
        .args(["serve", "--config"])
        .arg(&config)
        .env(crate::common::OPS_PUBLIC.name, crate::common::OPS_PUBLIC.value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut readers = Vec::new();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let sink = logs.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().expect("logs").push(line);
            }
        }));
    }
    let refused = |logs: &[String]| {
        logs.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["level"] == "ERROR" && l.to_string().contains("upstream.client_secret"))
            .count()
    };
    let deadline = std::time::Instant::now() + crate::common::STARTUP_DEADLINE;
    while refused(&logs.lock().expect("logs")) == 0 {
        assert!(std::time::Instant::now() < deadline, "no error line: {:?}", logs.lock().expect("logs"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ready = crate::common::http().get(format!("{public_url}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.expect("json")["credentials"], "unavailable");
    // Not a synchronisation: the background checks run every 2 s, and this is the window in
    // which a line per check would show.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    for reader in readers {
        reader.await.expect("log reader");
    }
    let logs = logs.lock().expect("logs").clone();
    assert_eq!(refused(&logs), 1, "one line, not one per check: {logs:?}");
    assert!(!logs.join("\n").contains(wrong), "the secret itself is never logged");
}
