//! Security properties, each a test against the real upstream: replay, code reuse, redirect
//! URI and PKCE checks, client authentication, and every way an upstream ID token can be bad.

use crate::common::{authorize_url, query, redeem, Browser, Stack, TestClient, AUTH0_CLIENT, COGNITO_CLIENT, VERIFIER};
use serde_json::Value;

/// Runs a login to the broker's callback and returns the callback URL (not yet delivered).
async fn to_callback(stack: &Stack, browser: &Browser) -> String {
    let start = authorize_url(&stack.broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@acme.test")]);
    browser.follow_until(&start, &format!("{}/callback", stack.broker.url)).await.expect("callback").to_string()
}

async fn code_for(stack: &Stack) -> String {
    let params = crate::common::login_to_client(stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    params.get("code").cloned().unwrap_or_else(|| panic!("a code: {params:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_state_is_a_page_not_a_second_login() {
    let stack = Stack::start().await;
    let browser = Browser::default();
    let callback = to_callback(&stack, &browser).await;
    let first = browser.get(&callback).await;
    assert_eq!(first.status(), 302);
    assert!(first.headers()["location"].to_str().expect("location").contains("code="));
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status(), 400, "the flow was taken by the first use");
    assert!(replay.headers().get("location").is_none(), "never a redirect");
    let page = replay.text().await.expect("page");
    assert!(page.contains("no longer valid"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_state_is_a_page() {
    let stack = Stack::start().await;
    let response = Browser::default().get(&format!("{}/callback?state=forged&code=x", stack.broker.url)).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_is_invalid_grant_and_revokes_the_first_access_token() {
    let stack = Stack::start().await;
    let code = code_for(&stack).await;
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let access_token = tokens["access_token"].as_str().expect("at").to_owned();
    let userinfo = |token: String| {
        let url = format!("{}/userinfo", stack.broker.url);
        async move { crate::common::http().get(url).bearer_auth(token).send().await.expect("userinfo").status().as_u16() }
    };
    assert_eq!(userinfo(access_token.clone()).await, 200);

    let (status, error) = redeem(&stack.broker.url, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(userinfo(access_token).await, 401, "the first use's access token is revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_request_must_repeat_the_redirect_uri_exactly() {
    let stack = Stack::start().await;
    let code = code_for(&stack).await;
    let other = TestClient { redirect_uri: "https://acme.us.auth0.com/login/callback/", ..AUTH0_CLIENT };
    let (status, error) = redeem(&stack.broker.url, other, &code, Some(VERIFIER)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_verifier_missing_or_wrong_is_invalid_grant() {
    let stack = Stack::start().await;
    let code = code_for(&stack).await;
    let (status, error) = redeem(&stack.broker.url, AUTH0_CLIENT, &code, None).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "missing: {error}");

    let code = code_for(&stack).await;
    let wrong = "wrong-verifier-0123456789-0123456789-012345678";
    let (status, error) = redeem(&stack.broker.url, AUTH0_CLIENT, &code, Some(wrong)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "wrong: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_for_a_code_issued_without_pkce_is_refused() {
    let stack = Stack::start().await;
    let browser = Browser::default();
    let start = authorize_url(&stack.broker.url, COGNITO_CLIENT, None, &[("login_hint", "alice@acme.test")]);
    let landed = browser.follow_until(&start, COGNITO_CLIENT.redirect_uri).await.expect("login");
    let code = query(&landed).remove("code").expect("code");
    let (status, error) = redeem(&stack.broker.url, COGNITO_CLIENT, &code, Some(VERIFIER)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")), "RFC 9700 §2.1.1: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_401_invalid_client() {
    let stack = Stack::start().await;
    let code = code_for(&stack).await;
    let wrong = TestClient { secret: "not-the-secret", ..AUTH0_CLIENT };
    let (status, error) = redeem(&stack.broker.url, wrong, &code, Some(VERIFIER)).await;
    assert_eq!((status, error["error"].as_str()), (401, Some("invalid_client")));

    // With HTTP Basic the 401 carries a challenge.
    let response = crate::common::http()
        .post(format!("{}/token", stack.broker.url))
        .basic_auth(AUTH0_CLIENT.client_id, Some("not-the-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", AUTH0_CLIENT.redirect_uri)])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().expect("header").starts_with("Basic"));

    // The code survived the failed authentications: the right secret still redeems it.
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, &code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_of_one_client_cannot_be_redeemed_by_another() {
    let stack = Stack::start().await;
    let code = code_for(&stack).await;
    let thief = TestClient { redirect_uri: AUTH0_CLIENT.redirect_uri, ..COGNITO_CLIENT };
    let (status, error) = redeem(&stack.broker.url, thief, &code, Some(VERIFIER)).await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_grant")));
}

/// Each bad upstream ID token ends the login with `access_denied` at the client, no code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upstream_id_tokens_are_refused() {
    let stack = Stack::start().await;
    for mode in
        ["bad_signature", "alg_none", "hs256", "expired", "future_iat", "wrong_audience", "wrong_issuer", "wrong_nonce"]
    {
        stack.upstream.tamper(mode).await;
        let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
        assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{mode}: {params:?}");
        assert!(!params.contains_key("code"), "{mode} must not produce a code");
        assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"), "{mode}");
        assert_eq!(params.get("iss"), Some(&stack.broker.url), "{mode}");
    }
    // And a normal login still works afterwards.
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    assert!(params.contains_key("code"), "{params:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_key_rotation_is_followed_by_refetching_the_jwks() {
    let stack = Stack::start().await;
    // Warm the JWKS cache with a normal login first.
    assert!(crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")])
        .await
        .contains_key("code"));
    stack.upstream.tamper("unknown_kid").await;
    let params = crate::common::login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    assert!(params.contains_key("code"), "a token signed by a newly published key verifies: {params:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_errors_before_the_client_is_trusted_are_pages() {
    let stack = Stack::start().await;
    let browser = Browser::default();
    let unknown = authorize_url(
        &stack.broker.url,
        TestClient { client_id: "nobody", secret: "", redirect_uri: AUTH0_CLIENT.redirect_uri },
        None,
        &[],
    );
    let wrong_redirect = authorize_url(
        &stack.broker.url,
        TestClient { secret: "", redirect_uri: "https://evil.example/cb", ..AUTH0_CLIENT },
        None,
        &[],
    );
    let prefix_redirect = authorize_url(
        &stack.broker.url,
        TestClient { secret: "", redirect_uri: "https://acme.us.auth0.com/login/callback?x=1", ..AUTH0_CLIENT },
        None,
        &[],
    );
    for url in [unknown, wrong_redirect, prefix_redirect] {
        let response = browser.get(&url).await;
        assert_eq!(response.status(), 400, "{url}");
        assert!(response.headers().get("location").is_none(), "never a redirect: {url}");
        assert!(response.headers()["content-type"].to_str().expect("ct").starts_with("text/html"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_errors_after_the_client_is_trusted_redirect_with_state_and_iss() {
    let stack = Stack::start().await;
    let browser = Browser::default();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("request", "eyJhbGciOiJub25lIn0.e30.")], "request_not_supported"),
        (&[("request_uri", "https://x.example/r")], "request_uri_not_supported"),
        (
            &[("code_challenge", "abcdefghijabcdefghijabcdefghijabcdefghij123"), ("code_challenge_method", "plain")],
            "invalid_request",
        ),
        (&[("scope", "profile email")], "invalid_scope"),
        (&[("prompt", "none")], "login_required"),
    ];
    for (overrides, expected) in cases {
        let mut url = url::Url::parse(&authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[])).expect("url");
        let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        for (k, v) in overrides.iter() {
            pairs.retain(|(name, _)| name != k);
            pairs.push((k.to_string(), v.to_string()));
        }
        url.query_pairs_mut().clear().extend_pairs(pairs);
        let response = browser.get(url.as_str()).await;
        assert_eq!(response.status(), 302, "{expected}");
        let location = url::Url::parse(response.headers()["location"].to_str().expect("loc")).expect("url");
        assert!(location.as_str().starts_with(AUTH0_CLIENT.redirect_uri));
        let params = query(&location);
        assert_eq!(params.get("error").map(String::as_str), Some(*expected), "{overrides:?}");
        assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"));
        assert_eq!(params.get("iss"), Some(&stack.broker.url));
        assert!(params.contains_key("error_description"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_userinfo_responses_are_not_cacheable_and_userinfo_needs_a_valid_token() {
    let stack = Stack::start().await;
    let code = code_for(&stack).await;
    let response = crate::common::http()
        .post(format!("{}/token", stack.broker.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", AUTH0_CLIENT.redirect_uri),
            ("client_id", AUTH0_CLIENT.client_id),
            ("client_secret", AUTH0_CLIENT.secret),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.expect("json");
    let claims = crate::common::verify_id_token(
        &stack.broker.url,
        tokens["id_token"].as_str().expect("id"),
        AUTH0_CLIENT.client_id,
    )
    .await;
    assert_eq!(claims["at_hash"], ssobridge::tokens::at_hash(tokens["access_token"].as_str().expect("at")));
    assert_eq!(claims["azp"], AUTH0_CLIENT.client_id);
    assert!(claims["auth_time"].is_u64());

    let url = format!("{}/userinfo", stack.broker.url);
    let ok = crate::common::http()
        .get(&url)
        .bearer_auth(tokens["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("ui");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    for request in [crate::common::http().get(&url), crate::common::http().get(&url).bearer_auth("not-a-token")] {
        let response = request.send().await.expect("userinfo");
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().expect("header").to_owned();
        assert!(challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
}
