//! The admin console (`/admin/console`) in a real browser: Debian's Chromium driven by
//! playwright-core (tests/peers/console.mjs), against `ssobridge serve` with its console on the
//! operations listener, and against the demo for the event log. Each browser run also reports
//! CSP violations, uncaught errors and `alert()`s: every test requires none. Screenshots land
//! in tests/artifacts/console-*.png.

use std::process::Stdio;

use crate::common::tempdir::TempDir;
use crate::common::{http, Upstream, ADMIN_READ_TOKEN, ADMIN_WRITE_TOKEN};
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `ssobridge serve` as deployed: a read and a write admin token, key rotation on, the
/// operations listener on its own port.
struct Served {
    _child: Child,
    _dir: TempDir,
    _upstream: Upstream,
    /// `http://127.0.0.1:PORT` of the operations listener.
    ops: String,
}

impl Served {
    fn console(&self) -> String {
        format!("{}/admin/console", self.ops)
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = http().request(method, format!("{}/admin/{path}", self.ops)).bearer_auth(ADMIN_WRITE_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn serve() -> Served {
    let dir = TempDir::new("console");
    let public_url = "http://127.0.0.1:9";
    let upstream = Upstream::start(&[format!("{public_url}/callback")]).await;
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write key");
    let key_encryption_key = base64::engine::general_purpose::STANDARD
        .encode([uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat());
    let toml = crate::common::broker_toml(public_url, "memory", "console:", &upstream.issuer)
        + &format!(
            "[signing]\nkey_file = \"{}\"\nkey_encryption_key = \"{key_encryption_key}\"\n\
[admin]\nwrite_tokens_sha256 = [\"{}\"]\nread_tokens_sha256 = [\"{}\"]\n",
            key.display(),
            ssobridge::tokens::sha256_hex(ADMIN_WRITE_TOKEN),
            ssobridge::tokens::sha256_hex(ADMIN_READ_TOKEN),
        );
    let config = dir.path().join("ssobridge.toml");
    std::fs::write(&config, toml).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .args(["serve", "--config"])
        .arg(&config)
        .env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value)
        .env(crate::common::OPS_LISTEN.name, crate::common::OPS_LISTEN.value)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run ssobridge serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // The operations listener is logged before the public one, which means ready.
    let ops = tokio::time::timeout(crate::common::STARTUP_DEADLINE, async {
        let mut ops = None;
        while let Ok(Some(line)) = lines.next_line().await {
            let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
            let listen = parsed["fields"]["listen"].as_str().map(str::to_owned);
            if line.contains("operations listener serving") {
                ops = listen;
            } else if line.contains("ssobridge serving") {
                return ops.expect("the operations listener is logged first");
            }
        }
        panic!("serve exited before it was serving (its stderr is above)");
    })
    .await
    .expect("serve starts in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Served { _child: child, _dir: dir, _upstream: upstream, ops: format!("http://{ops}") }
}

fn artifacts() -> String {
    let dir = crate::common::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir.display().to_string()
}

/// Runs one scenario of console.mjs; its report, which must show a clean page: no CSP
/// violation, no uncaught error, no dialog the page did not mean to open, the token in no URL
/// and no Referer, and nothing of the session outside sessionStorage.
async fn browse(input: Value) -> Value {
    browse_with(input, || {}).await
}

/// The same; `on_ready` runs when the script prints `READY` (its page is waiting for something
/// the test does).
async fn browse_with(mut input: Value, on_ready: impl FnOnce()) -> Value {
    input["artifacts"] = artifacts().into();
    let mut child = Command::new("node")
        .arg(crate::common::peers_dir().join("console.mjs"))
        .arg(input.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run console.mjs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut on_ready = Some(on_ready);
    let last = tokio::time::timeout(std::time::Duration::from_secs(240), async {
        let mut last = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            match (line.as_str(), on_ready.take()) {
                ("READY", Some(ready)) => ready(),
                (_, ready) => {
                    on_ready = ready;
                    last = line;
                }
            }
        }
        last
    })
    .await
    .expect("console.mjs finishes");
    let _ = child.wait().await;
    let report: Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{last}: {e}"));
    assert_eq!(report["ok"], true, "{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    assert_eq!(report["violations"], json!([]), "no CSP violation: {report}");
    assert_eq!(report["console_errors"], json!([]), "no error in the console: {report}");
    assert_eq!(report["page_errors"], json!([]), "no uncaught exception: {report}");
    assert_eq!(report["dialogs"], json!([]), "no alert/confirm/prompt: {report}");
    assert_eq!(report["token_in_url"], false, "the token is never in a URL: {report}");
    assert_eq!(report["referers"], json!([]), "API calls carry no Referer: {report}");
    let storage = &report["storage"];
    assert_eq!(storage["local_keys"], json!([]), "nothing in localStorage: {report}");
    assert_eq!(storage["cookies"], "", "no cookie: {report}");
    report
}

fn steps(report: &Value, name: &str) -> Value {
    report["steps"][name].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_three_static_files_under_a_strict_policy() {
    let served = serve().await;
    let page = http().get(served.console()).send().await.expect("console");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("content-security-policy"), POLICY);
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    let html = page.text().await.expect("html");
    // Nothing the policy would refuse: no inline script, style or handler, in the page itself.
    let lower = html.to_ascii_lowercase();
    assert_eq!(lower.matches("<script").count(), 1, "one script element");
    assert!(lower.contains(r#"<script type="module" src="console/console.js"></script>"#), "{html}");
    assert!(!lower.contains("<style") && !lower.contains(" style="), "no inline style");
    assert!(!regex_like_handler(&lower), "no inline event handler");
    // No token or data in the page: it is the same for everyone, and needs no token to load.
    assert!(!html.contains(ADMIN_WRITE_TOKEN) && !html.contains(ADMIN_READ_TOKEN));

    for (path, kind) in [("console/console.js", "text/javascript"), ("console/console.css", "text/css")] {
        let response = http().get(format!("{}/admin/{path}", served.ops)).send().await.expect("asset");
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers();
        assert!(h["content-type"].to_str().is_ok_and(|t| t.starts_with(kind)), "{path}: {h:?}");
        assert_eq!(h["content-security-policy"], POLICY, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let body = response.text().await.expect("body");
        assert!(!body.contains("innerHTML") && !body.contains("outerHTML"), "{path}: no markup from strings");
        assert!(!body.contains("eval(") && !body.contains("new Function"), "{path}: no code from strings");
    }
    // The page's relative file names hold at one address only; the other is sent there.
    let slash = crate::common::Browser::default().get(&format!("{}/", served.console())).await;
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "../console");
    // Not a way around the API: anything else under the console is a 404, and only GET is served.
    let missing = http().get(format!("{}/admin/console/app.js", served.ops)).send().await.expect("missing");
    assert_eq!(missing.status(), 404);
    let post = http().post(served.console()).bearer_auth(ADMIN_WRITE_TOKEN).send().await.expect("post");
    assert_eq!(post.status(), 405);
    // Not part of the API's description (whose committed copy a test compares with the code).
    let spec = served.admin(reqwest::Method::GET, "openapi.json", None).await.1;
    assert!(!spec.to_string().contains("console"), "the console is not in the OpenAPI document");
}

/// ` on…=` as an attribute of a tag: an inline event handler.
fn regex_like_handler(html: &str) -> bool {
    html.split('<').skip(1).filter_map(|tag| tag.split('>').next()).any(|tag| {
        tag.split_whitespace().skip(1).any(|attribute| attribute.starts_with("on") && attribute.contains('='))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_token_manages_clients_routes_and_keys_in_the_console() {
    let served = serve().await;
    let report = browse(json!({
        "scenario": "write",
        "console_url": served.console(),
        "token": ADMIN_WRITE_TOKEN,
        "client_id": "console-app",
        "route_domain": "console-test.example",
    }))
    .await;

    let signed_in = steps(&report, "sign_in");
    assert_eq!(signed_in["focused_at_start"], "signin-token", "the token field has focus: {signed_in}");
    assert_eq!(signed_in["role"], "read and write");
    assert_eq!(signed_in["read_only_note"], false);
    assert_eq!(report["storage"]["session_keys"].as_array().map(Vec::len), Some(2), "token and role, this tab only");

    let created = steps(&report, "create_client");
    assert_eq!(created["secret_length"], 43, "a 256-bit secret, base64url: {created}");
    assert_eq!(created["copied_matches"], true, "the copy button copies it: {created}");
    assert!(created["warning"].as_str().is_some_and(|w| w.contains("shown this once")), "{created}");
    assert_eq!(created["focused_in_dialog"], "secret-dialog");
    assert_eq!(created["secret_left_in_page"], false, "gone from the page once the dialog is closed");
    assert!(created["row_text"].as_str().is_some_and(|t| t.contains("Console Test App")), "{created}");
    assert_eq!(created["api"]["deprovision"], "delete", "the lifecycle settings are the console's too: {created}");
    assert_eq!(created["api"]["post_logout_redirect_uris"], json!(["https://app.example/signed-out"]), "{created}");

    let edited = steps(&report, "edit_client");
    assert_eq!(edited["id_read_only"], true);
    assert_eq!(edited["notice"], "Saved client console-app.");

    let stale = steps(&report, "edit_client_changed_meanwhile");
    assert_eq!(stale["other_admin_status"], 200);
    assert!(stale["alert"].as_str().is_some_and(|a| a.contains("Someone changed client console-app")), "{stale}");
    assert_eq!(stale["name_kept"], "Console Test App (edited)", "the stale edit changed nothing");
    assert_eq!(stale["reloaded_name"], "Console Test App (edited)", "Reload shows the stored version: {stale}");

    let rotated = steps(&report, "rotate_secret");
    assert_eq!(rotated["new_secret_differs"], true, "{rotated}");
    // The rotated secret is the one that works now (client_secret_basic at /token reaches the
    // secret check before anything else: a wrong one is 401 invalid_client).
    let deleted = steps(&report, "delete_client");
    assert_eq!(deleted["focused"], "Cancel", "the safe answer has focus: {deleted}");
    assert_eq!(deleted["api_status_after"], 404, "deleted: {deleted}");

    let route = steps(&report, "edit_route");
    assert_eq!(route["api"]["connection_id"], "conn_console", "{route}");
    assert_eq!(route["api"]["include_subdomains"], true, "{route}");
    assert_eq!(route["api"]["source"], "api", "{route}");
    assert_eq!(steps(&report, "delete_route")["api_status_after"], 404);

    let keys = steps(&report, "rotate_key");
    assert_eq!(keys["keys_after"].as_u64(), keys["keys_before"].as_u64().map(|n| n + 1), "{keys}");
    assert_eq!(keys["rotated_rows"], 1, "{keys}");
    let listed = served.admin(reqwest::Method::GET, "keys", None).await.1;
    assert!(listed["items"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k["source"] == "rotated" && k["active"] == true)));

    let status = steps(&report, "status");
    let service = status["service"].as_str().unwrap_or_default();
    assert!(service.contains(env!("CARGO_PKG_VERSION")) && service.contains("memory, reachable"), "{status}");

    let out = steps(&report, "sign_out");
    assert_eq!(out["storage"]["session_keys"], json!([]), "the token is forgotten: {out}");
    for shot in ["client-secret", "client-stale", "client-delete", "routes", "keys", "status"] {
        assert!(std::path::Path::new(&format!("{}/console-{shot}.png", artifacts())).exists(), "{shot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_sees_changes_disabled_and_a_forced_change_refused_in_words() {
    let served = serve().await;
    // More clients than a page holds (50): the rest come with "Load more clients".
    for n in 0..50 {
        let client = json!({"client_id": format!("page-{n:02}"), "redirect_uris": ["https://page.example/cb"]});
        assert_eq!(served.admin(reqwest::Method::POST, "clients", Some(client)).await.0, 201);
    }
    let report = browse(json!({
        "scenario": "read",
        "console_url": served.console(),
        "token": ADMIN_READ_TOKEN,
        "client_id": crate::common::AUTH0_CLIENT.client_id,
    }))
    .await;
    let signed_in = steps(&report, "sign_in");
    assert_eq!(signed_in["role"], "read only", "{signed_in}");
    assert_eq!(signed_in["read_only_note"], true);
    let paging = steps(&report, "paging");
    assert_eq!(paging["first_page"], 50, "{paging}");
    assert_eq!(paging["more_visible"], true, "{paging}");
    assert_eq!(paging["after_more"], 52, "the config's two and the fifty: {paging}");
    let disabled = steps(&report, "disabled");
    for (control, enabled) in [
        ("new_client", false),
        ("view_client", true),
        ("rotate_secret", false),
        ("delete_client", false),
        ("save", false),
        ("name_field", false),
        ("new_route", false),
        ("rotate_rsa", false),
    ] {
        assert_eq!(disabled[control], enabled, "{control}: {disabled}");
    }
    let refused = steps(&report, "forced_write");
    assert!(
        refused["alert"].as_str().is_some_and(|a| a.starts_with("Not allowed (this token is read-only)")),
        "{refused}"
    );
    assert!(
        report["http_errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e.as_str().is_some_and(|e| e.contains("403")))),
        "the API itself said 403: {report}"
    );
    let refused = steps(&report, "token_refused");
    assert!(refused["message"].as_str().is_some_and(|m| m.starts_with("The token was not accepted")), "{refused}");
    assert_eq!(refused["session_keys"], json!([]), "the refused token is forgotten: {refused}");
    assert_eq!(refused["nav_hidden"], true);
}

/// The attack: an admin (or anyone who can name a client, an organization) stores markup that
/// would run in another admin's console. It must show as the characters it is, and run nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_client_name_is_shown_as_text_and_runs_nothing_in_the_console() {
    let served = serve().await;
    let name = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    let (status, _) = served
        .admin(
            reqwest::Method::POST,
            "clients",
            Some(json!({"client_id": "hostile", "name": name, "redirect_uris": ["https://hostile.example/cb"]})),
        )
        .await;
    assert_eq!(status, 201);
    let report = browse(json!({
        "scenario": "hostile",
        "console_url": served.console(),
        "token": ADMIN_WRITE_TOKEN,
        "name": name,
    }))
    .await;
    let list = steps(&report, "list");
    assert_eq!(list["cell_text"], name, "{list}");
    assert_eq!(list["images"], 0, "no element was made from it: {list}");
    assert_eq!(list["scripts"], 1, "the console's own script only: {list}");
    assert_eq!(steps(&report, "open")["name_field"], name);
    let organization = steps(&report, "organization");
    assert!(organization["heading"].as_str().is_some_and(|h| h.contains(name)), "{organization}");
    assert_eq!(organization["images"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_with_the_keyboard_alone() {
    let served = serve().await;
    let report = browse(json!({
        "scenario": "keyboard",
        "console_url": served.console(),
        "token": ADMIN_WRITE_TOKEN,
        "client_id": "keyboard-app",
    }))
    .await;
    let signed_in = steps(&report, "sign_in");
    assert_eq!(signed_in["focused_at_start"], "signin-token");
    assert_eq!(signed_in["focused_after"], "clients-title", "focus moves to the section's heading: {signed_in}");
    let created = steps(&report, "create");
    assert_eq!(created["focus_visible"], true, "the focused control shows it: {created}");
    assert_eq!(created["first_field"], "client-client_id", "the dialog takes focus: {created}");
    assert_eq!(created["focused_in_secret_dialog"], "Copy the secret", "{created}");
    assert_eq!(created["focused_after"], "New client", "Escape closed the dialog, focus came back: {created}");
    let deleted = steps(&report, "delete");
    assert_eq!(deleted["focused_in_confirm"], "Cancel", "{deleted}");
    assert_eq!(deleted["focused_after_escape"], "Delete client keyboard-app", "{deleted}");
    assert_eq!(deleted["kept_after_escape"], 1, "Escape cancels: {deleted}");
    assert_eq!(deleted["confirm_button"], "Delete the client", "{deleted}");
    assert_eq!(deleted["focused_after_delete"], "clients-title", "focus is not lost with the row: {deleted}");
    let navigated = steps(&report, "navigate");
    assert_eq!(navigated["hash"], "#status");
    assert_eq!(navigated["focused"], "status-title");
    let (status, _) = served.admin(reqwest::Method::GET, "clients/keyboard-app", None).await;
    assert_eq!(status, 404, "deleted with the keyboard");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The per-organization view, live: a failed login recorded in the broker's event log is on
/// screen within a second, above the newer success, with its reason in words; the event log
/// finds it by organization and outcome, and exports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_is_on_screen_within_a_second_found_by_organization_with_its_reason() {
    use ssobridge::events::{Event, Kind, Outcome};
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = Upstream::start(&[socket.callback()]).await;
    let toml =
        crate::common::broker_toml(&socket.url, "memory", "ev:", &upstream.issuer) + "[events]\ninclude_email = true\n";
    let broker = socket.serve_with_admin(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let organization = "org_acme";
    let login = |outcome, organization: &str, email: &str| {
        let mut event = Event::new(Kind::Login, outcome);
        event.client = Some(crate::common::AUTH0_CLIENT.client_id.to_owned());
        event.organization = Some(organization.to_owned());
        event.connection = Some("conn_acme1".to_owned());
        event.routed_by = Some("login_hint".to_owned());
        event.duration_ms = Some(412);
        broker.state.events.identify(&mut event, Some(email));
        event
    };
    // Earlier events: a success of the organization, a failure of another one; the page then
    // follows the log from its newest event.
    broker.state.events.record(login(Outcome::Success, organization, "bob@acme.test"));
    let mut elsewhere = login(Outcome::Failure, "org_globex", "eve@globex.test");
    elsewhere.reason = Some("access_denied".to_owned());
    broker.state.events.record(elsewhere);
    let log = broker.state.events.clone();
    crate::common::wait_until("the earlier events in the log", std::time::Duration::from_secs(5), || {
        let log = log.clone();
        async move { log.page(&ssobridge::events::Filter::default(), 10, None).await.is_ok_and(|p| p.events.len() == 2) }
    })
    .await;
    let recorded_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let at = recorded_at.clone();
    let report = browse_with(
        json!({
            "scenario": "events",
            "console_url": format!("{}/admin/console", broker.url),
            "token": ADMIN_READ_TOKEN,
            "organization": organization,
            "signal": true,
        }),
        || {
            let mut failure = login(Outcome::Failure, organization, "dave@acme.test");
            failure.reason = Some("user_not_active".to_owned());
            at.store(now_ms(), std::sync::atomic::Ordering::SeqCst);
            broker.state.events.record(failure);
            broker.state.events.record(login(Outcome::Success, organization, "alice@acme.test"));
        },
    )
    .await;

    let seen = steps(&report, "failed_login");
    let after = seen["seen_at"]
        .as_u64()
        .unwrap_or(u64::MAX)
        .saturating_sub(recorded_at.load(std::sync::atomic::Ordering::SeqCst));
    assert!(after < 1000, "on screen {after} ms after it was recorded: {seen}");
    let rows = seen["rows"].as_array().expect("rows");
    // Outcome, time, reason, user, client, connection, duration: the failure first, then the
    // successes newest first; nothing of the other organization.
    let column = |i: usize| rows.iter().map(|row| row[i].clone()).collect::<Vec<_>>();
    assert_eq!(column(0), ["failure", "success", "success"], "{seen}");
    assert_eq!(column(3), ["dave@acme.test", "alice@acme.test", "bob@acme.test"], "{seen}");
    assert_eq!(rows[0][2], "user_not_active: the user is deactivated at their identity provider", "{seen}");
    assert_eq!(rows[0][4], crate::common::AUTH0_CLIENT.client_id);
    assert_eq!(seen["summary"], "1 failed and 2 successful of the last 3 logins.");

    let details = steps(&report, "details");
    assert_eq!(details["title"], "Failed login event", "{details}");
    assert_eq!(details["facts"]["organization"], organization, "{details}");
    assert_eq!(details["facts"]["routed_by"], "login_hint", "{details}");

    let log = steps(&report, "event_log");
    let rows = log["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "the failure only: {log}");
    // Time, type, outcome, organization, client, reason, user, duration.
    assert_eq!(rows[0][1], "login");
    assert_eq!(rows[0][2], "failure");
    assert_eq!(rows[0][3], organization);
    assert!(rows[0][5].as_str().is_some_and(|r| r.starts_with("user_not_active")), "{log}");
    assert_eq!(rows[0][7], "412 ms");

    let export = steps(&report, "export");
    assert_eq!(export["url_scheme"], "blob:", "fetched with the header, saved from memory: {export}");
    assert!(export["file_name"].as_str().is_some_and(|f| f.ends_with(".ndjson")), "{export}");
    let events = export["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "the export keeps the filters: {export}");
    assert_eq!(events[0]["reason"], "user_not_active");
    assert_eq!(events[0]["organization"], organization);
    for shot in ["organization", "event-details", "events"] {
        assert!(std::path::Path::new(&format!("{}/console-{shot}.png", artifacts())).exists(), "{shot}");
    }
}

/// The event log follows the log incrementally: twice a second it reads the log's newest id
/// (one entry) and, only when that moved, the events after the newest it has; new events go on
/// top while the rows already shown stay the same rows (the same DOM nodes), the row the reader
/// scrolled to stays where it was on screen, and the focused Details button keeps focus. While
/// the tab is hidden it asks nothing; shown again, it polls at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_adds_new_events_on_top_keeping_the_readers_rows_place_and_focus() {
    use ssobridge::events::{Event, Kind, Outcome};
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "live:", &upstream.issuer)
        + "[events]\ninclude_email = true\n";
    let broker = socket.serve_with_admin(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let login = |outcome, n: usize| {
        let mut event = Event::new(Kind::Login, outcome);
        event.client = Some(crate::common::AUTH0_CLIENT.client_id.to_owned());
        event.organization = Some(format!("org_{n:03}"));
        if outcome == Outcome::Failure {
            event.reason = Some("access_denied".to_owned());
        }
        broker.state.events.identify(&mut event, Some(&format!("user{n:03}@acme.test")));
        event
    };
    // More than a page (50) before the page opens.
    for n in 0..80 {
        broker.state.events.record(login(Outcome::Success, n));
    }
    let log = broker.state.events.clone();
    crate::common::wait_until("the earlier events in the log", std::time::Duration::from_secs(5), || {
        let log = log.clone();
        async move { log.page(&ssobridge::events::Filter::default(), 100, None).await.is_ok_and(|p| p.events.len() == 80) }
    })
    .await;
    let report = browse_with(
        json!({"scenario": "live", "console_url": format!("{}/admin/console", broker.url), "token": ADMIN_READ_TOKEN}),
        || {
            for n in 80..83 {
                broker.state.events.record(login(if n == 81 { Outcome::Failure } else { Outcome::Success }, n));
            }
        },
    )
    .await;

    let opened = steps(&report, "opened");
    assert_eq!(opened["rows"], 50, "{opened}");
    assert_eq!(opened["more_visible"], true, "{opened}");
    let before = steps(&report, "before");
    assert!(before["scroll_y"].as_f64().is_some_and(|y| y > 0.0), "scrolled down: {before}");
    assert!(before["focused"].as_str().is_some_and(|f| f.starts_with("Details of the success login at")), "{before}");
    let arrived = steps(&report, "arrived");
    assert_eq!(arrived["rows"], 53, "{arrived}");
    assert_eq!(arrived["kept"], 50, "the rows shown are the same rows: {arrived}");
    // Time, type, outcome, organization, client, reason, user, duration: newest first.
    let new_rows = arrived["new_rows"].as_array().expect("new rows");
    let column = |i: usize| new_rows.iter().map(|row| row[i].clone()).collect::<Vec<_>>();
    assert_eq!(column(6), ["user082@acme.test", "user081@acme.test", "user080@acme.test"], "{arrived}");
    assert_eq!(column(2), ["success", "failure", "success"], "{arrived}");
    let moved = arrived["top"].as_f64().unwrap_or(f64::MAX) - before["top"].as_f64().unwrap_or_default();
    assert!(moved.abs() <= 1.0, "the row read stays where it was on screen ({moved} px): {before} {arrived}");
    assert_eq!(arrived["focused"], before["focused"], "focus stays on the same button: {arrived}");
    assert!(arrived["announced"].as_str().is_some_and(|a| a.contains("new event")), "{arrived}");

    // The requests: the first load (the log's newest id, then the newest page), then polls that
    // read the newest id alone, and after it moved, only what is newer.
    let requests = steps(&report, "all_requests");
    let requests = requests.as_array().expect("requests");
    assert_eq!(requests[0]["query"], json!({"limit": "1"}), "{requests:?}");
    assert_eq!(requests[1]["query"], json!({"limit": "50"}), "{requests:?}");
    let polls = &requests[2..];
    assert!(polls.len() >= 5, "twice a second for the seconds the page was open: {requests:?}");
    let unread = polls.iter().filter(|p| p["items"].is_null()).count();
    assert!(unread <= 1, "only the last poll's body may be unread: {requests:?}");
    for poll in polls.iter().filter(|p| !p["items"].is_null()) {
        let query = &poll["query"];
        let head = query == &json!({"limit": "1"}) && poll["items"] == 1;
        let newer =
            query["after"].is_string() && query["limit"] == "200" && poll["items"].as_u64().is_some_and(|n| n <= 3);
        assert!(head || newer, "a poll reads the newest id or what is newer, never a page again: {poll}");
    }
    let newer: Vec<_> = polls.iter().filter(|p| p["query"]["after"].is_string()).collect();
    assert!((1..=3).contains(&newer.len()), "what is newer is read when the newest id moved, not before: {requests:?}");
    let read: u64 = newer.iter().filter_map(|p| p["items"].as_u64()).sum();
    assert_eq!(read, 3, "each new event read once, none of the 80 again: {requests:?}");
    let hidden = steps(&report, "hidden");
    assert_eq!(hidden["requests_while_hidden"], 0, "no polling while the tab is hidden: {hidden}");
    assert!(hidden["requests_on_showing"].as_u64().is_some_and(|n| n >= 1), "a poll at once when shown: {hidden}");
    assert!(std::path::Path::new(&format!("{}/console-events-live.png", artifacts())).exists());
}

/// The Jobs view: the work the broker owes, a failed job (out of attempts) and a pending one
/// (its next attempt an hour away, its last error shown); the failed one retried from the
/// console runs again at once (the broker's job worker), its attempts counted afresh; the
/// pending one deleted after confirming is gone from the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_view_shows_owed_work_and_retries_or_deletes_a_job() {
    use ssobridge::jobs::{Job, JobState};
    use ssobridge::store::Store;
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "jobs:", &upstream.issuer);
    let broker = socket.serve_with_admin(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    // The queue as hours of trying leave it (written as the queue writes jobs; the worker
    // leaves a failed job and one not yet due alone).
    let now = now_ms();
    let job = |id: &str, kind: &str, task: Value, state, attempts, next_at_ms, error: &str| Job {
        id: id.to_owned(),
        kind: kind.to_owned(),
        task,
        state,
        attempts,
        created_at_ms: now - 6 * 3600 * 1000 - u64::from(attempts), // the failed one first
        next_at_ms,
        lease_until_ms: 0,
        last_error: Some(error.to_owned()),
    };
    let failed = job(
        "0a1b2c3d4e5f40718293a4b5c6d7e8f9",
        "backchannel_logout",
        json!({"client_id": "gone-app", "sub": "user-1", "sid": "sid-1"}),
        JobState::Failed,
        12,
        now,
        "client gone-app no longer exists",
    );
    let pending = job(
        "9f8e7d6c5b4a43219f8e7d6c5b4a4321",
        "deprovision",
        json!({"organization": "org_acme"}),
        JobState::Pending,
        3,
        now + 3600 * 1000,
        "the downstream did not answer within 10 s",
    );
    for job in [&failed, &pending] {
        let bytes = serde_json::to_vec(job).expect("job");
        broker.state.store.set(&format!("{}{}", ssobridge::store::keys::JOBS, job.id), &bytes).await.expect("set");
    }

    let report = browse(json!({
        "scenario": "jobs",
        "console_url": format!("{}/admin/console", broker.url),
        "token": ADMIN_WRITE_TOKEN,
        "failed_id": failed.id,
        "pending_id": pending.id,
    }))
    .await;
    let list = steps(&report, "list");
    assert_eq!(list["summary"], "1 pending, 1 failed.", "{list}");
    assert_eq!(list["focused"], "jobs-title");
    // Job, kind, state, attempts, queued, next attempt, last error (oldest first).
    let rows = list["rows"].as_array().expect("rows");
    assert_eq!(rows[0][0], failed.id.as_str(), "{list}");
    assert_eq!(rows[0][1], "backchannel_logout");
    assert_eq!(rows[0][2], "failed");
    assert_eq!(rows[0][5], "only when retried");
    assert_eq!(rows[0][3], "12");
    assert_eq!(rows[0][6], "client gone-app no longer exists");
    assert_eq!(rows[1][0], pending.id.as_str(), "{list}");
    assert_eq!(rows[1][2], "pending");
    assert_eq!(rows[1][3], "3");
    assert_eq!(rows[1][6], "the downstream did not answer within 10 s");
    let failed_only = steps(&report, "failed_only");
    assert_eq!(failed_only["rows"].as_array().map(Vec::len), Some(1), "{failed_only}");
    // Retried, it ran at once and failed again for the same reason: one attempt, counted afresh.
    let retried = steps(&report, "retry");
    assert!(retried["notice"].as_str().is_some_and(|n| n.contains("runs again now")), "{retried}");
    assert_eq!(retried["row"][3], "1", "attempts counted afresh: {retried}");
    assert_eq!(retried["row"][6], "client gone-app no longer exists", "{retried}");
    let deleted = steps(&report, "delete");
    assert_eq!(deleted["focused_in_confirm"], "Cancel", "{deleted}");
    assert!(deleted["message"].as_str().is_some_and(|m| m.contains("nothing will do it")), "{deleted}");
    assert_eq!(deleted["rows"].as_array().map(Vec::len), Some(1), "{deleted}");

    // What the queue holds now, asked directly.
    let jobs = &broker.state.jobs;
    let after = jobs.get(&failed.id).await.expect("get").expect("the retried job");
    assert_eq!((after.state, after.attempts), (JobState::Failed, 1));
    assert_eq!(jobs.get(&pending.id).await.expect("get"), None, "deleted");
    assert!(std::path::Path::new(&format!("{}/console-jobs.png", artifacts())).exists());
}

/// Issue 17's test of done: in the demo, a login that fails at the upstream (`dave@example.org`
/// is deactivated at the simulated IdP: `user_not_active`) is on screen in the console within a
/// second, found by its organization, with its reason; a success of the same organization
/// comes after it. Both logins run in another tab of the same browser, as a user's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_demo_login_is_in_the_console_within_a_second_found_by_organization() {
    let demo = crate::demo::start_demo().await;
    let report = browse(json!({
        "scenario": "events",
        "console_url": format!("{}/admin/console", demo.url),
        "token": "demo-admin-token",
        "organization": "org_example_org",
        "success_url": crate::demo::authorize(&demo, "carol.smith@example.org"),
        "failure_url": crate::demo::authorize(&demo, "dave@example.org"),
        "stop_prefix": crate::demo::CLIENT_REDIRECT,
        "shot_prefix": "demo-",
    }))
    .await;
    let seen = steps(&report, "failed_login");
    assert!(seen["ended_at"].as_str().is_some_and(|u| u.contains("error=access_denied")), "{seen}");
    // Measured against the failed user's browser reaching the client's error page (the
    // console may show it before: the event is recorded when the callback fails), and after
    // that login began (the row is the live update, not one that was there).
    assert!(seen["visible_after_ms"].as_i64().is_some_and(|ms| ms < 1000), "within a second: {seen}");
    assert!(seen["visible_after_start_ms"].as_i64().is_some_and(|ms| ms > 0), "{seen}");
    let rows = seen["rows"].as_array().expect("rows");
    assert_eq!(rows[0][0], "failure", "{seen}");
    assert!(rows[0][2].as_str().is_some_and(|r| r.starts_with("user_not_active")), "{seen}");
    assert!(rows.iter().skip(1).any(|row| row[0] == "success"), "{seen}");
    let log = steps(&report, "event_log");
    assert!(log["rows"].as_array().is_some_and(|r| !r.is_empty()), "{log}");
    let export = steps(&report, "export");
    assert!(
        export["events"].as_array().is_some_and(|e| e.iter().any(|e| e["reason"] == "user_not_active")),
        "{export}"
    );
    for shot in ["organization", "event-details", "events"] {
        assert!(std::path::Path::new(&format!("{}/console-demo-{shot}.png", artifacts())).exists(), "{shot}");
    }
}
