//! `ssobridge demo`, run as a user runs it: the real binary, driven over HTTP.

use std::process::Stdio;

use crate::common::{query, Browser};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) const CLIENT_REDIRECT: &str = "http://localhost:3000/callback";

pub(crate) struct Demo {
    _child: Child,
    pub(crate) url: String,
}

pub(crate) async fn start_demo() -> Demo {
    start_demo_with(&["--port", "0"]).await
}

async fn start_demo_with(args: &[&str]) -> Demo {
    start_demo_env(args, &[]).await
}

/// `ssobridge demo` with `args`, and `env` (`SSOBRIDGE_…` settings) in its environment.
pub(crate) async fn start_demo_env(args: &[&str], env: &[(&str, &str)]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .arg("demo")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("run ssobridge demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(crate::common::STARTUP_DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("ssobridge demo listening on ") {
                return url.to_owned();
            }
        }
        panic!("demo exited before listening");
    })
    .await
    .expect("demo starts in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Demo { _child: child, url }
}

pub(crate) fn authorize(demo: &Demo, hint: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", demo.url)).expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", "demo")
        .append_pair("redirect_uri", CLIENT_REDIRECT)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email profile")
        .append_pair("state", "st-1")
        .append_pair("login_hint", hint);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_redirects_from_authorize_end_at_the_client_with_a_code_that_redeems() {
    let demo = start_demo().await;
    let browser = Browser::default();
    let landed = browser.follow_until(&authorize(&demo, "alice@example.com"), CLIENT_REDIRECT).await.expect("login");
    let params = query(&landed);
    assert_eq!(params.get("state").map(String::as_str), Some("st-1"));
    assert_eq!(params.get("iss"), Some(&demo.url), "RFC 9207 iss on the response");
    let code = params.get("code").expect("code");

    let tokens: Value = crate::common::http()
        .post(format!("{}/token", demo.url))
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CLIENT_REDIRECT)])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let claims = crate::common::verify_id_token(&demo.url, id_token, "demo").await;
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["org_id"], "org_example_com");
    assert_eq!(claims["connection_id"], "conn_example_com");
    assert_eq!(claims["iss"], demo.url.as_str());
    assert!(claims.get("nonce").is_none(), "no nonce was sent, none is echoed");

    let userinfo: Value = crate::common::http()
        .get(format!("{}/userinfo", demo.url))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(userinfo["sub"], claims["sub"]);
    assert_eq!(userinfo["email"], "alice@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_app_shows_the_verified_claims() {
    let demo = start_demo().await;
    let browser = Browser::default();
    let mut url = format!("{}/demo/start?login_hint=carol.smith%40example.org", demo.url);
    let page = loop {
        let response = browser.get(&url).await;
        match response.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(location) => url = url::Url::parse(&url).expect("url").join(location).expect("join").to_string(),
            None => break response.text().await.expect("page"),
        }
    };
    assert!(page.contains("<h1>Signed in</h1>"), "{page}");
    assert!(page.contains("carol.smith@example.org") && page.contains("org_example_org"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_the_simulator_does_not_know_comes_back_as_access_denied() {
    let demo = start_demo().await;
    let browser = Browser::default();
    let landed = browser.follow_until(&authorize(&demo, "eve@unknown.test"), CLIENT_REDIRECT).await.expect("redirect");
    let params = query(&landed);
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"));
    assert!(params.get("error_description").is_some_and(|d| d.contains("not set up")), "{params:?}");
    assert_eq!(params.get("state").map(String::as_str), Some("st-1"));
    assert_eq!(params.get("iss"), Some(&demo.url));
    assert!(!params.contains_key("code"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hint_the_home_realm_page_asks_for_an_email_and_continues() {
    let demo = start_demo().await;
    let browser = Browser::default();
    let mut url = url::Url::parse(&authorize(&demo, "x")).expect("url");
    let kept: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != "login_hint").collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Sign in to ssobridge demo app"), "the client's name is shown: {html}");
    assert!(html.contains("autocomplete=\"email\"") && html.contains("<label for=\"email\">"), "{html}");
    let flow = crate::common::hidden_input(&html, "flow").expect("flow field");

    let submit = format!("{}/login/email", demo.url);
    let response = browser.post_form(&submit, &[("flow", &flow), ("email", "bob@example.org")]).await;
    assert_eq!(response.status(), 302, "continues to the upstream");
    let next = response.headers()["location"].to_str().expect("location").to_owned();
    let landed = browser.follow_until(&next, CLIENT_REDIRECT).await.expect("to the client");
    let params = query(&landed);
    assert!(params.contains_key("code"), "{params:?}");
    assert_eq!(params.get("state").map(String::as_str), Some("st-1"));

    // The form is single use.
    let replay = browser.post_form(&submit, &[("flow", &flow), ("email", "bob@example.org")]).await;
    assert_eq!(replay.status(), 400);
}

/// `docker run -p 8080:8080 IMAGE demo --listen 0.0.0.0:8080`: the demo binds every address,
/// and its issuer is still the address a browser uses, `http://localhost:PORT`; a login works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_listens_on_any_address_with_the_browsers_url_as_issuer() {
    let demo = start_demo_with(&["--listen", "0.0.0.0:0"]).await;
    let port = demo.url.strip_prefix("http://localhost:").expect("issuer on localhost");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{}", demo.url);
    let discovery: Value = crate::common::http()
        .get(format!("http://127.0.0.1:{port}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("reachable on 127.0.0.1 too")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["issuer"], demo.url.as_str());
    let landed = Browser::default().follow_until(&authorize(&demo, "alice@example.com"), CLIENT_REDIRECT).await;
    assert!(query(&landed.expect("login")).contains_key("code"));

    // --public-url names another address for the issuer (here the same server by its IP).
    let port = crate::common::free_port();
    let (listen, public_url) = (format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}/"));
    let demo = start_demo_with(&["--listen", &listen, "--public-url", &public_url]).await;
    assert_eq!(demo.url, public_url.trim_end_matches('/'));
    let landed = Browser::default().follow_until(&authorize(&demo, "bob@example.org"), CLIENT_REDIRECT).await;
    assert_eq!(query(&landed.expect("login")).get("iss"), Some(&demo.url));

    // Both --listen and --port: refused with a clear message; and a bad address is named.
    for (args, message) in [
        (&["demo", "--listen", "0.0.0.0:8080", "--port", "8080"][..], "--listen ADDR or --port N, not both"),
        (&["demo", "--listen", "8080"][..], "--listen 8080 is not an address"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ssobridge")).args(args).output().await.expect("run");
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(message), "{output:?}");
    }
}

#[tokio::test]
async fn the_simulator_refuses_to_run_in_production() {
    let output = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .args(["demo", "--port", "0"])
        .env("SSOBRIDGE_ENV", "production")
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refuses to run"), "{output:?}");
}

/// Follows every redirect from `url` (with cookies) and returns the final page.
async fn browse(browser: &Browser, mut url: String) -> String {
    for _ in 0..20 {
        let response = browser.get(&url).await;
        match response.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(location) => url = url::Url::parse(&url).expect("url").join(location).expect("join").to_string(),
            None => return response.text().await.expect("page"),
        }
    }
    panic!("too many redirects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idp_portal_tile_signs_in_through_an_idp_initiated_login() {
    let demo = start_demo().await;
    let browser = Browser::default();
    let portal = browse(&browser, format!("{}/simulator/portal", demo.url)).await;
    assert!(portal.contains("portal/start?organization_id=org_example_org"), "{portal}");
    // The demo registers the initiate-login URL as the README says: the client in the path,
    // from the organization's metadata (Scalekit allows no query string there).
    assert!(portal.contains(&format!("{}/initiate-login/{{{{ssobridge_client}}}}", demo.url)), "{portal}");
    let start = format!("{}/simulator/portal/start?organization_id=org_example_org", demo.url);
    let response = browser.get(&start).await;
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with(&format!("{}/initiate-login/demo?idp_initiated_login=", demo.url)), "{location}");
    let page = browse(&browser, format!("{}/simulator/portal/start?organization_id=org_example_org", demo.url)).await;
    assert!(page.contains("<h1>Signed in</h1>"), "{page}");
    assert!(page.contains("conn_example_org") && page.contains("bob@example.org"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_id_routes_to_that_organization() {
    let demo = start_demo().await;
    let page = browse(&Browser::default(), format!("{}/demo/start?organization_id=org_example_org", demo.url)).await;
    assert!(page.contains("<h1>Signed in</h1>") && page.contains("org_example_org"), "{page}");
}

/// A login of `login_hint` through the demo, redeemed: the verified ID token claims and userinfo.
async fn sign_in(demo: &Demo, login_hint: &str) -> (Value, Value) {
    let landed = Browser::default().follow_until(&authorize(demo, login_hint), CLIENT_REDIRECT).await.expect("login");
    let params = query(&landed);
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    let tokens: Value = crate::common::http()
        .post(format!("{}/token", demo.url))
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CLIENT_REDIRECT)])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let claims =
        crate::common::verify_id_token(&demo.url, tokens["id_token"].as_str().expect("id_token"), "demo").await;
    let userinfo: Value = crate::common::http()
        .get(format!("{}/userinfo", demo.url))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    (claims, userinfo)
}

/// carol@example.org's IdP (SAML-style) sends given_name and family_name only: no name, no
/// email_verified, both optional at Scalekit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_user_without_name_or_email_verified_signs_in() {
    let demo = start_demo().await;
    let (claims, userinfo) = sign_in(&demo, "carol@example.org").await;
    assert_eq!(claims["email"], "carol@example.org");
    assert_eq!((&claims["given_name"], &claims["family_name"]), (&json!("Carol"), &json!("Jones")));
    // Downstreams show `name`: made of the two the IdP sent, in the ID token and at userinfo.
    assert_eq!((&claims["name"], &userinfo["name"]), (&json!("Carol Jones"), &json!("Carol Jones")), "{claims}");
    assert_eq!(userinfo["given_name"], "Carol");
    // The IdP said nothing: email_verified is the broker's own statement, true because
    // example.org is a verified route of org_example_org, the login's organization
    // (ARCHITECTURE "Who vouches for what"); never copied from the IdP.
    assert_eq!(claims["email_verified"], true);
    assert_eq!(userinfo["email_verified"], claims["email_verified"]);
    assert_eq!((&claims["org_id"], &claims["connection_id"]), (&json!("org_example_org"), &json!("conn_example_org")));
}

/// Each of Scalekit's routing and account errors, as the simulator sends them, reaches the demo
/// client as an OIDC error with its `state` and the broker's `iss`, and never a code: the
/// user's or their organization's condition as access_denied, an organization or connection
/// the request named and Scalekit does not know as invalid_request, each with the broker's own
/// fixed text (src/oidc/error.rs UPSTREAM_ERRORS). (`invalid_connection_selector` cannot come
/// through the broker, which asks for an email before it sends a request with nothing to route
/// on; tests/e2e/simulator.rs checks it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_simulator_error_reaches_the_client_as_an_oidc_error() {
    let demo = start_demo().await;
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "connection_id",
            "conn_nope",
            "invalid_connection_id",
            "invalid_request",
            "the identity provider does not know the connection the request names",
        ),
        (
            "organization_id",
            "org_nope",
            "invalid_organization_id",
            "invalid_request",
            "the identity provider does not know the organization the request names",
        ),
        (
            "login_hint",
            "eve@unknown.test",
            "domain_not_found",
            "access_denied",
            "single sign-on is not set up for this email domain",
        ),
        (
            "login_hint",
            "guest@example.com",
            "invalid_user_domain",
            "access_denied",
            "the email domain is not allowed by the organization's single sign-on",
        ),
        (
            "organization_id",
            "org_sso_off",
            "no_active_connections",
            "access_denied",
            "the organization's single sign-on is not active",
        ),
        (
            "connection_id",
            "conn_sso_off",
            "connection_not_active",
            "access_denied",
            "the organization's single sign-on connection is not active",
        ),
        (
            "organization_id",
            "org_no_sso",
            "no_configured_connections",
            "access_denied",
            "the organization has no single sign-on set up",
        ),
        (
            "login_hint",
            "dave@example.org",
            "user_not_active",
            "access_denied",
            "the user is not active at their identity provider",
        ),
    ];
    for (name, value, upstream_error, client_error, description) in cases {
        let browser = Browser::default();
        let mut url = url::Url::parse(&authorize(&demo, "x")).expect("url");
        let mut pairs: Vec<(String, String)> =
            url.query_pairs().into_owned().filter(|(k, _)| k != "login_hint").collect();
        pairs.push((name.to_string(), value.to_string()));
        url.query_pairs_mut().clear().extend_pairs(pairs);
        // The simulator's answer to the broker's callback, then what the client gets.
        let callback = browser.follow_until(url.as_str(), &format!("{}/callback", demo.url)).await.expect("callback");
        let upstream = query(&callback);
        assert_eq!(upstream.get("error").map(String::as_str), Some(*upstream_error), "{name}={value}: {upstream:?}");
        assert!(!upstream.contains_key("iss"), "no RFC 9207 iss from the simulator: {upstream:?}");
        let landed = browser.follow_until(callback.as_str(), CLIENT_REDIRECT).await.expect("to the client");
        let params = query(&landed);
        assert_eq!(params.get("error").map(String::as_str), Some(*client_error), "{upstream_error}: {params:?}");
        assert_eq!(params.get("error_description").map(String::as_str), Some(*description), "{params:?}");
        assert_eq!(params.get("state").map(String::as_str), Some("st-1"), "{upstream_error}");
        assert_eq!(params.get("iss"), Some(&demo.url), "{upstream_error}");
        assert!(!params.contains_key("code"), "{upstream_error}");
    }
}

/// The portal's other choices: an IdP-initiated token delivered to the default redirect URL
/// (the broker's /callback, as Scalekit's test guide says its simulator does), and an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_delivers_to_the_default_redirect_url_and_returns_errors() {
    let demo = start_demo().await;
    let browser = Browser::default();
    let portal = browse(&browser, format!("{}/simulator/portal", demo.url)).await;
    assert!(portal.contains("deliver=redirect") && portal.contains("action=\"portal/error\""), "{portal}");

    let start = format!("{}/simulator/portal/start?organization_id=org_example_com&deliver=redirect", demo.url);
    let response = browser.get(&start).await;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url");
    assert!(location.as_str().starts_with(&format!("{}/callback?", demo.url)), "{location}");
    let token = query(&location).remove("idp_initiated_login").expect("idp_initiated_login");
    let payload = token.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).expect("base64"),
    )
    .expect("json");
    let mut names: Vec<&str> = claims.as_object().expect("object").keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["connection_id", "exp", "iat", "iss", "login_hint", "nbf", "organization_id"], "{claims}");
    assert_eq!(claims["iss"], format!("{}/simulator", demo.url));
    // The broker's /callback takes it as its initiate-login endpoint does: the sample app is
    // handed the login (OIDC Core §4) and signs the user in through a fresh authorize.
    let page = browse(&browser, location.to_string()).await;
    assert!(page.contains("<h1>Signed in</h1>") && page.contains("alice@example.com"), "{page}");
    assert!(page.contains("conn_example_com"), "routed to the connection the IdP named: {page}");

    // The "Error" choice, to the default redirect URL and to the initiate-login URL: no
    // sign-in of the application's to return it to, so a page says what the IdP reported.
    for (deliver, endpoint) in [("redirect", "/callback?"), ("initiate", "/initiate-login/demo?")] {
        let error = format!(
            "{}/simulator/portal/error?organization_id=org_example_com&error=user_not_active&deliver={deliver}",
            demo.url
        );
        let response = browser.get(&error).await;
        assert_eq!(response.status(), 302);
        let location = url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url");
        assert!(location.as_str().starts_with(&format!("{}{endpoint}", demo.url)), "{location}");
        let params = query(&location);
        assert_eq!(params.get("error").map(String::as_str), Some("user_not_active"));
        assert!(!params.contains_key("state"), "no request of the application started it: {params:?}");
        let shown = browser.get(location.as_str()).await;
        assert_eq!(shown.status(), 400, "{deliver}");
        assert!(shown.headers().get("location").is_none(), "{deliver}: no client to send it to");
        let page = shown.text().await.expect("page");
        assert!(page.contains("The user is not active at their identity provider."), "{deliver}: {page}");
        assert!(
            !page.contains("no longer valid") && !page.contains("inactive"),
            "not an expired link, not Scalekit's text: {page}"
        );
    }
}

/// At the home-realm page, an address whose organization cannot sign it in (no SSO for its
/// domain, SSO switched off or never set up, a user outside the organization's domains) is
/// asked for again, with the reason in the broker's words, and the client hears nothing yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_realm_page_asks_again_with_the_reason() {
    let demo = start_demo().await;
    let cases = [
        ("eve@unknown.test", "Single sign-on is not set up for unknown.test."),
        ("x@sso-off.example.net", "The organization&#39;s single sign-on is not active (x@sso-off.example.net)."),
        ("x@no-sso.example.net", "The organization has no single sign-on set up (x@no-sso.example.net)."),
        (
            "guest@example.com",
            "The email domain is not allowed by the organization&#39;s single sign-on (guest@example.com).",
        ),
    ];
    for (email, reason) in cases {
        let browser = Browser::default();
        let mut url = url::Url::parse(&authorize(&demo, "x")).expect("url");
        let kept: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(k, _)| k != "login_hint").collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
        let html = browser.get(url.as_str()).await.text().await.expect("html");
        let flow = crate::common::hidden_input(&html, "flow").expect("flow field");
        let response =
            browser.post_form(&format!("{}/login/email", demo.url), &[("flow", &flow), ("email", email)]).await;
        let next = response.headers()["location"].to_str().expect("to the upstream").to_owned();
        let page = browse(&browser, next).await;
        assert!(page.contains(reason), "{email}: {page}");
        assert!(page.contains("Work email") && page.contains(&format!("value=\"{email}\"")), "asked again: {page}");
    }
}

/// Route sync in the demo: a domain added in the IdP portal reaches the broker as Scalekit's
/// signed webhooks, and its users sign in at once; the portal and `/admin/status` show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_added_in_the_portal_signs_in_at_once() {
    let demo = start_demo().await;
    let page = crate::common::http()
        .post(format!("{}/simulator/portal/domains", demo.url))
        .form(&[("domain", "newco.example"), ("organization_id", ""), ("verification", "dns")])
        .send()
        .await
        .expect("portal")
        .text()
        .await
        .expect("page");
    for event in ["organization.created", "organization.domain_created", "organization.domain_dns_verification_success"]
    {
        assert!(page.contains(&format!("<code>{event}</code>: 200 OK")), "{event}: {page}");
    }
    let (claims, _) = sign_in(&demo, "someone@newco.example").await;
    assert_eq!(
        (&claims["org_id"], &claims["connection_id"]),
        (&json!("org_newco_example"), &json!("conn_newco_example"))
    );
    assert_eq!(claims["email_verified"], true, "newco.example is a verified (synced) route of its organization");

    let portal = browse(&Browser::default(), format!("{}/simulator/portal", demo.url)).await;
    assert!(portal.contains("portal/start?organization_id=org_newco_example"), "a card for the new organization");
    let status: Value = crate::common::http()
        .get(format!("{}/admin/status", demo.url))
        .bearer_auth("demo-admin-token")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let sync = &status["route_sync"];
    assert_eq!(sync["last_webhook"]["event_type"], "organization.domain_dns_verification_success", "{status}");
    assert_eq!(sync["last_sync"]["ok"], true, "the sync at start: {status}");
    assert_eq!(
        sync["last_sync"]["changes"]["kept_operator_routes"], 2,
        "example.com and example.org are config routes"
    );
}
