//! The hosted home-realm page in a real browser (Debian's Chromium driven by playwright-core):
//! keyboard only, with and without JavaScript, through the real upstream to the client.
//! Screenshots land in tests/artifacts/.

use crate::common::{authorize_url, query, Stack, TestClient, AUTH0_CLIENT};
use serde_json::{json, Value};
use tokio::process::Command;

const DENY_CLIENT: TestClient =
    TestClient { client_id: "deny-test", secret: "deny-test-secret", redirect_uri: "https://deny.example/cb" };

const EXTRA: &str = r#"
[[clients]]
client_id = "deny-test"
client_secret = "deny-test-secret"
redirect_uris = ["https://deny.example/cb"]
name = "Deny Corp"
fallback = "deny"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
[[routes]]
domain = "globex.test"
organization_id = "org_globex"
"#;

async fn browse(input: Value) -> Value {
    let output = Command::new("node")
        .arg(crate::common::peers_dir().join("browser.mjs"))
        .arg(input.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .expect("run browser.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("{stdout}: {e}"))
}

fn artifact(name: &str) -> String {
    let dir = crate::common::repo_root().join("tests/artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir.join(name).display().to_string()
}

async fn sign_in(stack: &Stack, client: TestClient<'_>, email: &str, javascript: bool, shot: &str) -> Value {
    browse(json!({
        "start_url": authorize_url(&stack.broker.url, client, None, &[]),
        "stop_prefix": client.redirect_uri,
        "email": email,
        "javascript": javascript,
        "screenshot": artifact(shot),
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_page_in_a_real_browser_with_and_without_javascript() {
    let stack = Stack::start_with("memory", "b:", EXTRA).await;
    for (javascript, email, connection) in
        [(true, "alice@acme.test", "conn_acme1"), (false, "bob@globex.test", "conn_globex1")]
    {
        let shot = if javascript { "hosted-page.png" } else { "hosted-page-nojs.png" };
        let result = sign_in(&stack, AUTH0_CLIENT, email, javascript, shot).await;
        assert_eq!(result["ok"], true, "{result}");
        let form = &result["form"];
        assert_eq!(form["heading"], "Sign in to Acme (Auth0)", "the client's name is shown: {result}");
        assert_eq!(form["label"], "Work email");
        assert_eq!(form["autocomplete"], "email");
        assert_eq!(form["focused"], true, "reachable by keyboard");
        assert_eq!(result["reached"], true, "javascript={javascript}: {result}");
        let landed = url::Url::parse(result["final_url"].as_str().expect("url")).expect("url");
        let params = query(&landed);
        assert!(params.contains_key("code"), "{params:?}");
        assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"));
        let upstream = stack.upstream.requests().await.pop().expect("request");
        assert_eq!(upstream["login_hint"], email);
        if javascript {
            assert_eq!(upstream["connection_id"], connection);
        } else {
            assert_eq!(upstream["organization_id"], "org_globex");
        }
    }
    assert!(std::path::Path::new(&artifact("hosted-page.png")).exists(), "screenshot kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_domain_is_shown_in_the_page() {
    let stack = Stack::start_with("memory", "b:", EXTRA).await;
    // The client refuses unknown domains itself (fallback = deny).
    let result = sign_in(&stack, DENY_CLIENT, "eve@nowhere.test", false, "hosted-page-deny.png").await;
    assert_eq!(result["reached"], false, "{result}");
    let text = result["error_text"].as_str().unwrap_or_default();
    assert!(text.contains("Single sign-on is not set up for nowhere.test"), "{result}");
    // The client passes unknown domains to the upstream, which answers domain_not_found.
    let result = sign_in(&stack, AUTH0_CLIENT, "eve@nowhere.test", true, "hosted-page-upstream-unknown.png").await;
    assert_eq!(result["reached"], false, "{result}");
    let text = result["error_text"].as_str().unwrap_or_default();
    assert!(text.contains("nowhere.test"), "{result}");
}
