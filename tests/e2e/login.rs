//! Complete logins through the broker, driven by a real relying party (`openid-client`) as
//! Auth0 and Cognito drive it, against a real upstream (`oidc-provider`, configured like
//! Scalekit), on the memory store and on a real Redis.

use crate::common::{query, redeem, rp, Browser, Stack, TestClient, AUTH0_CLIENT, COGNITO_CLIENT, VERIFIER};
use serde_json::{json, Value};

fn rp_input(stack: &Stack, client: TestClient<'_>, mode: &str, params: Value) -> Value {
    json!({
        "issuer": stack.broker.url,
        "client_id": client.client_id,
        "client_secret": client.secret,
        "redirect_uri": client.redirect_uri,
        "mode": mode,
        "params": params,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_style_login_pkce_no_nonce_claims_in_the_id_token() {
    let stack = Stack::start().await;
    let result = rp(&rp_input(&stack, AUTH0_CLIENT, "auth0", json!({"login_hint": "alice@acme.test"}))).await;
    assert_eq!(result["ok"], true, "{result}");
    let claims = &result["id_token_claims"];
    assert_eq!(claims["iss"], stack.broker.url.as_str());
    assert_eq!(claims["aud"], AUTH0_CLIENT.client_id);
    assert_eq!(claims["email"], "alice@acme.test");
    assert_eq!(claims["email_verified"], false, "no verified route of org_acme: the broker cannot vouch");
    assert_eq!(claims["name"], "Alice Anders");
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(claims["connection_id"], "conn_acme1");
    assert!(claims.get("nonce").is_none(), "Auth0 sends no nonce and rejects one it did not send");
    let sub = claims["sub"].as_str().expect("sub");
    assert!(sub.len() == 64 && sub.chars().all(|c| c.is_ascii_hexdigit()), "pairwise sub by default: {sub}");

    // What reached the upstream: PKCE S256, a nonce, the hint.
    let upstream = stack.upstream.requests().await;
    let last = upstream.last().expect("an upstream request");
    assert_eq!(last["login_hint"], "alice@acme.test");
    assert_eq!(last["code_challenge_method"], "S256");
    assert_eq!(last["nonce_present"], true);
    assert_eq!(last["client_id"], crate::common::UPSTREAM_CLIENT_ID);

    // The same user logs in again: the same sub.
    let again = rp(&rp_input(&stack, AUTH0_CLIENT, "auth0", json!({"login_hint": "alice@acme.test"}))).await;
    assert_eq!(again["id_token_claims"]["sub"], claims["sub"], "sub is stable across logins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_sent_is_echoed() {
    let stack = Stack::start().await;
    let mut input = rp_input(&stack, AUTH0_CLIENT, "auth0", json!({"organization_id": "org_globex"}));
    input["nonce"] = json!(true);
    let result = rp(&input).await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(result["id_token_claims"]["nonce"].is_string(), "openid-client checked it matches: {result}");
    assert_eq!(result["id_token_claims"]["org_id"], "org_globex");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_style_login_no_pkce_userinfo_matches_the_id_token() {
    let stack = Stack::start().await;
    let result = rp(&rp_input(&stack, COGNITO_CLIENT, "cognito", json!({"login_hint": "bob@globex.test"}))).await;
    assert_eq!(result["ok"], true, "{result}");
    let claims = &result["id_token_claims"];
    let userinfo = &result["userinfo"];
    assert_eq!(
        claims["sub"],
        crate::common::upstream_subject("conn_globex1", "bob@globex.test"),
        "this client is configured for upstream subjects: Scalekit's conn_…;<IdP user id>, not the email"
    );
    for name in ["sub", "email", "email_verified", "name", "given_name", "family_name", "org_id", "connection_id"] {
        assert_eq!(userinfo[name], claims[name], "userinfo {name} equals the ID token's");
    }
    let upstream = stack.upstream.requests().await;
    assert_eq!(
        upstream.last().expect("request")["code_challenge_method"],
        "S256",
        "the broker always uses PKCE upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_domain_not_found_reaches_the_client_as_access_denied() {
    let stack = Stack::start().await;
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "eve@nope.test")]).await;
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{params:?}");
    assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"));
    assert_eq!(params.get("iss"), Some(&stack.broker.url));
    assert!(!params.contains_key("code"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_reach_the_upstream_as_sent() {
    let stack = Stack::start().await;
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("domain_hint", "globex.test")]).await;
    assert!(params.contains_key("code"), "{params:?}");
    let last = stack.upstream.requests().await.pop().expect("request");
    assert_eq!(last["domain_hint"], "globex.test");
    assert_eq!(last["domain"], "globex.test", "sent as domain too, as Scalekit's SDK does");

    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("connection_id", "conn_globex2")]).await;
    assert!(params.contains_key("code"), "{params:?}");
    let last = stack.upstream.requests().await.pop().expect("request");
    assert_eq!(last["connection_id"], "conn_globex2");

    // A login_hint whose domain has no route (fallback pass): Scalekit's error table names
    // `domain`, not `login_hint`, as a selector, so the domain goes as one too.
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "bob@Globex.test")]).await;
    assert!(params.contains_key("code"), "{params:?}");
    let last = stack.upstream.requests().await.pop().expect("request");
    assert_eq!(
        (&last["domain_hint"], &last["domain"], &last["login_hint"]),
        (&json!("globex.test"), &json!("globex.test"), &json!("bob@Globex.test"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_started_on_one_instance_finishes_on_another_sharing_redis() {
    let redis = crate::common::Redis::start().await;
    let socket_a = crate::common::BrokerSocket::bind().await;
    let socket_b = crate::common::BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket_a.callback()]).await;
    let public_url = socket_a.url.clone();
    let b_url = socket_b.url.clone();
    let pem = ssobridge::tokens::generate_rsa_pem().expect("pem");
    let toml = crate::common::broker_toml(&public_url, &redis.url(), "two:", &upstream.issuer);
    let key = |pem: &str| ssobridge::tokens::SigningKey::from_pem(pem).expect("key");
    let a = socket_a.serve(&toml, key(&pem)).await;
    let b = socket_b.serve(&toml, key(&pem)).await;

    // Authorize on A; the upstream sends the browser back to the public callback; deliver it to B.
    let browser = Browser::default();
    let start =
        crate::common::authorize_url(&a.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    let callback = browser.follow_until(&start, &format!("{public_url}/callback")).await.expect("to callback");
    let on_b = callback.as_str().replacen(&public_url, &b_url, 1);
    let landed = browser.follow_until(&on_b, AUTH0_CLIENT.redirect_uri).await.expect("B completes the flow A started");
    let params = query(&landed);
    let code = params.get("code").expect("code");

    // Redeem on A, read userinfo on B.
    let (status, tokens) = redeem(&a.url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = crate::common::verify_id_token(
        &public_url,
        tokens["id_token"].as_str().expect("id_token"),
        AUTH0_CLIENT.client_id,
    )
    .await;
    assert_eq!(claims["email"], "alice@acme.test");
    let userinfo: Value = crate::common::http()
        .get(format!("{}/userinfo", b.url))
        .bearer_auth(tokens["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(userinfo["email"], "alice@acme.test");

    // Nothing secret is stored in the clear: no key or value holds the code or the token.
    let client = redis::Client::open(redis.url()).expect("client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS").arg("two:*").query_async(&mut connection).await.expect("keys");
    assert!(!keys.is_empty(), "the login left state in Redis");
    let access_token = tokens["access_token"].as_str().expect("at");
    for key in &keys {
        assert!(!key.contains(code.as_str()) && !key.contains(access_token), "{key} holds a secret");
        let value: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut connection).await.unwrap_or(None);
        let value = String::from_utf8_lossy(&value.unwrap_or_default()).into_owned();
        assert!(!value.contains(code.as_str()) && !value.contains(access_token), "{key} value holds a secret");
    }
    assert!(keys.iter().all(|k| k.starts_with("two:")), "every key is under the deployment prefix");
}

/// Scalekit's error codes, as the upstream redirects them, reach the client as OIDC errors with
/// its state and the broker's iss, never a code: the user's or their organization's condition
/// as access_denied, a sign-in the IdP wants redone as login_required, the operator's own
/// misconfiguration as server_error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalekit_errors_from_the_upstream_reach_the_client() {
    let stack = Stack::start().await;
    let expected = |code: &str| match code {
        "user_login_required" => "login_required",
        "invalid_connection_id" | "invalid_organization_id" => "invalid_request",
        "application_not_active" => "server_error",
        _ => "access_denied",
    };
    for code in [
        "user_not_active",
        "invalid_user_domain",
        "connection_not_active",
        "no_active_connections",
        "no_configured_connections",
        "authentication_not_completed",
        "user_login_required",
        "signature_validation_failed",
        "application_not_active",
    ] {
        stack.upstream.fail(code).await;
        let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
        assert_eq!(params.get("error").map(String::as_str), Some(expected(code)), "{code}: {params:?}");
        assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"), "{code}");
        assert_eq!(params.get("iss"), Some(&stack.broker.url), "{code}");
        assert!(!params.contains_key("code"), "{code}");
    }
    for (params, code) in [
        (&[("connection_id", "conn_nope")], "invalid_connection_id"),
        (&[("organization_id", "org_nope")], "invalid_organization_id"),
    ] {
        let got = crate::common::login_to_client(&stack, AUTH0_CLIENT, params).await;
        assert_eq!(got.get("error").map(String::as_str), Some(expected(code)), "{code}: {got:?}");
    }
    // The failure was for one request only.
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    assert!(params.contains_key("code"), "{params:?}");
}

/// carol@acme.test's IdP sends no name and no email_verified (both optional at Scalekit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_name_or_email_verified_signs_in() {
    let stack = Stack::start().await;
    let result = rp(&rp_input(&stack, COGNITO_CLIENT, "cognito", json!({"login_hint": "carol@acme.test"}))).await;
    assert_eq!(result["ok"], true, "{result}");
    let claims = &result["id_token_claims"];
    assert_eq!(claims["sub"], crate::common::upstream_subject("conn_acme1", "carol@acme.test"));
    assert_eq!((&claims["given_name"], &claims["family_name"]), (&json!("Carol"), &json!("Chen")));
    // Downstreams show `name`: the broker makes it of the two the IdP sent.
    assert_eq!(
        (&claims["name"], &result["userinfo"]["name"]),
        (&json!("Carol Chen"), &json!("Carol Chen")),
        "{result}"
    );
    assert_eq!(claims["email_verified"], false, "no verified route of org_acme in this stack: {claims}");
}
