//! The admin API end to end: against running brokers sharing a real Redis, with the full OIDC
//! flow using what the API created; the negative cases; and the committed spec matching the code.

use crate::common::{authorize_url, query, rp, BrokerSocket, Browser, TestClient, ADMIN_READ_TOKEN, ADMIN_WRITE_TOKEN};
use serde_json::{json, Value};
use ssobridge::tokens::{generate_rsa_pem, SigningKey};

#[test]
fn the_committed_spec_matches_the_code() {
    let committed = std::fs::read_to_string(crate::common::repo_root().join("openapi/ssobridge-admin.json"))
        .expect("openapi/ssobridge-admin.json");
    let generated = ssobridge::admin::spec_json().expect("spec");
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/ssobridge-admin.json is stale: run `cargo run -- openapi > openapi/ssobridge-admin.json`"
    );
    let spec: Value = serde_json::from_str(&generated).expect("json");
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            assert!(operation["summary"].is_string(), "{method} {path} has a summary");
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.contains_key("401"), "{method} {path} documents 401");
        }
    }
}

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    fn new(broker: &str) -> Admin {
        Admin { http: crate::common::http(), base: format!("{broker}/admin") }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }
}

const W: Option<&str> = Some(ADMIN_WRITE_TOKEN);
const R: Option<&str> = Some(ADMIN_READ_TOKEN);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_and_a_route_made_through_the_api_work_for_logins_on_every_instance() {
    let redis = crate::common::Redis::start().await;
    let a_socket = BrokerSocket::bind().await;
    let b_socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[a_socket.callback(), b_socket.callback()]).await;
    let pem = generate_rsa_pem().expect("pem");
    let key = || SigningKey::from_pem(&pem).expect("key");
    let a_toml = crate::common::broker_toml(&a_socket.url, &redis.url(), "adm:", &upstream.issuer);
    let b_toml = crate::common::broker_toml(&b_socket.url, &redis.url(), "adm:", &upstream.issuer);
    let a = a_socket.serve_with_admin(&a_toml, key()).await;
    let b = b_socket.serve_with_admin(&b_toml, key()).await;
    let admin_a = Admin::new(&a.url);

    // Create a client through the API on A.
    let redirect = "https://app.example.com/callback";
    let (status, headers, created) = admin_a
        .send(
            reqwest::Method::POST,
            "/clients",
            W,
            Some(json!({"client_id": "api-made", "name": "API Made", "redirect_uris": [redirect]})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["location"], "/admin/clients/api-made");
    let secret = created["client_secret"].as_str().expect("secret shown once").to_owned();
    let (_, _, fetched) = admin_a.send(reqwest::Method::GET, "/clients/api-made", R, None, None).await;
    assert!(fetched.get("client_secret").is_none() && !fetched.to_string().contains(&secret), "never returned again");

    // Log in with it through the full flow (openid-client as Auth0), on B.
    let result = rp(&json!({
        "issuer": b.url, "client_id": "api-made", "client_secret": secret, "redirect_uri": redirect,
        "mode": "auth0", "params": {"login_hint": "alice@acme.test"},
    }))
    .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["id_token_claims"]["aud"], "api-made");

    // Add a route on A; B's hosted page and login_hint use it.
    let (status, _, _) = admin_a
        .send(
            reqwest::Method::POST,
            "/routes",
            W,
            Some(json!({"domain": "Initech.TEST", "organization_id": "org_acme", "connection_id": "conn_acme1"})),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let client = TestClient { client_id: "api-made", secret: &secret, redirect_uri: redirect };
    let browser = Browser::default();
    let landed = browser
        .follow_until(&authorize_url(&b.url, client, None, &[("login_hint", "peter@initech.test")]), redirect)
        .await
        .expect("login");
    assert!(query(&landed).contains_key("code"));
    assert_eq!(
        upstream.requests().await.pop().expect("request")["connection_id"],
        "conn_acme1",
        "B routed by the API-made route"
    );
    let page = browser.get(&authorize_url(&b.url, client, None, &[])).await.text().await.expect("page");
    let flow = crate::common::hidden_input(&page, "flow").expect("the hosted page on B");
    assert!(page.contains("Sign in to API Made"));
    let response = browser
        .post_form(&format!("{}/login/email", b.url), &[("flow", &flow), ("email", "milton@initech.test")])
        .await;
    assert_eq!(response.status(), 302);
    let landed =
        browser.follow_until(response.headers()["location"].to_str().expect("loc"), redirect).await.expect("login");
    assert!(query(&landed).contains_key("code"));
    assert_eq!(upstream.requests().await.pop().expect("request")["connection_id"], "conn_acme1");

    // Rotating the secret: the old one stops working, the new one works.
    let (status, _, rotated) = admin_a.send(reqwest::Method::POST, "/clients/api-made/secret", W, None, None).await;
    assert_eq!(status, 200);
    let new_secret = rotated["client_secret"].as_str().expect("new secret").to_owned();
    let landed = browser
        .follow_until(&authorize_url(&a.url, client, None, &[("login_hint", "alice@acme.test")]), redirect)
        .await
        .expect("login");
    let code = query(&landed).remove("code").expect("code");
    let (status, _) = crate::common::redeem(&a.url, client, &code, None).await;
    assert_eq!(status, 401, "the old secret is refused");
    let landed = browser
        .follow_until(&authorize_url(&a.url, client, None, &[("login_hint", "alice@acme.test")]), redirect)
        .await
        .expect("login");
    let code = query(&landed).remove("code").expect("code");
    let (status, tokens) = crate::common::redeem(
        &a.url,
        TestClient { client_id: "api-made", secret: &new_secret, redirect_uri: redirect },
        &code,
        None,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");

    // Deleted: its logins stop.
    let (status, _, _) = admin_a.send(reqwest::Method::DELETE, "/clients/api-made", W, None, None).await;
    assert_eq!(status, 204);
    let (status, _, _) = admin_a.send(reqwest::Method::GET, "/clients/api-made", R, None, None).await;
    assert_eq!(status, 404);
    let response = browser.get(&authorize_url(&a.url, client, None, &[("login_hint", "alice@acme.test")])).await;
    assert_eq!(response.status(), 400, "an unknown client gets a page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_cases() {
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "neg:", &upstream.issuer);
    let broker = socket.serve_with_admin(&toml, SigningKey::generate_rsa().expect("key")).await;
    let admin = Admin::new(&broker.url);
    let valid = json!({"client_id": "neg-client", "redirect_uris": ["https://app.example.com/cb"]});

    let (status, headers, body) = admin.send(reqwest::Method::GET, "/clients", None, None, None).await;
    assert_eq!(status, 401, "no token");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], 401);
    let (status, _, _) = admin.send(reqwest::Method::GET, "/clients", Some("wrong-token"), None, None).await;
    assert_eq!(status, 401, "wrong token");

    let (status, _, body) = admin.send(reqwest::Method::POST, "/clients", R, Some(valid.clone()), None).await;
    assert_eq!(status, 403, "read-only token on a write: {body}");
    let (status, _, _) = admin.send(reqwest::Method::GET, "/clients", R, None, None).await;
    assert_eq!(status, 200, "read-only token reads");

    let (status, _, body) = admin
        .send(
            reqwest::Method::POST,
            "/clients",
            W,
            Some(json!({"client_id": "bad", "redirect_uris": ["https://app.example.com/cb#fragment", "http://app.example.com/cb", "/relative"]})),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let pointers: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["pointer"].as_str().unwrap_or("")).collect();
    assert_eq!(pointers, ["/redirect_uris/0", "/redirect_uris/1", "/redirect_uris/2"]);

    let (status, _, _) = admin.send(reqwest::Method::POST, "/clients", W, Some(valid.clone()), None).await;
    assert_eq!(status, 201);
    let (status, _, body) = admin.send(reqwest::Method::POST, "/clients", W, Some(valid.clone()), None).await;
    assert_eq!(status, 409, "duplicate client_id: {body}");
    let (status, _, _) = admin.send(reqwest::Method::GET, "/clients/no-such", R, None, None).await;
    assert_eq!(status, 404);

    // ETags: a stale one is refused, a missing one is required, the current one works.
    let (_, headers, _) = admin.send(reqwest::Method::GET, "/clients/neg-client", R, None, None).await;
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    let patch = json!({"name": "First"});
    let (status, _, _) = admin.send(reqwest::Method::PATCH, "/clients/neg-client", W, Some(patch.clone()), None).await;
    assert_eq!(status, 428, "If-Match is required");
    let (status, headers, body) =
        admin.send(reqwest::Method::PATCH, "/clients/neg-client", W, Some(patch), Some(&etag)).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("First")));
    assert_ne!(headers["etag"].to_str().expect("etag"), etag, "the ETag changes with the resource");
    let (status, _, _) = admin
        .send(reqwest::Method::PATCH, "/clients/neg-client", W, Some(json!({"name": "Second"})), Some(&etag))
        .await;
    assert_eq!(status, 412, "a stale ETag loses no update");
    let (_, _, body) = admin.send(reqwest::Method::GET, "/clients/neg-client", R, None, None).await;
    assert_eq!(body["name"], "First");

    // Oversize body.
    let huge =
        json!({"client_id": "huge", "redirect_uris": ["https://app.example.com/cb"], "name": "x".repeat(100_000)});
    let (status, _, _) = admin.send(reqwest::Method::POST, "/clients", W, Some(huge), None).await;
    assert_eq!(status, 413);

    // Malformed JSON is a problem document, not a 500.
    let response = crate::common::http()
        .post(format!("{}/admin/routes", broker.url))
        .bearer_auth(ADMIN_WRITE_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    // Routes: invalid domain, duplicates, pagination.
    let (status, _, body) = admin
        .send(
            reqwest::Method::POST,
            "/routes",
            W,
            Some(json!({"domain": "under_score!.example", "organization_id": "org"})),
            None,
        )
        .await;
    assert_eq!((status, body["errors"][0]["pointer"].as_str()), (422, Some("/domain")), "{body}");
    let (status, _, body) = admin
        .send(reqwest::Method::POST, "/routes", W, Some(json!({"domain": "not a domain", "organization_id": 7})), None)
        .await;
    assert_eq!((status, body["status"].as_u64()), (400, Some(400)), "schema violations are problem documents: {body}");
    for i in 0..5 {
        let (status, _, _) = admin
            .send(
                reqwest::Method::POST,
                "/routes",
                W,
                Some(json!({"domain": format!("d{i}.example"), "organization_id": "org"})),
                None,
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, _, _) = admin
        .send(
            reqwest::Method::POST,
            "/routes",
            W,
            Some(json!({"domain": "D0.example", "organization_id": "org"})),
            None,
        )
        .await;
    assert_eq!(status, 409, "the same domain after normalization");
    let (_, _, page1) = admin.send(reqwest::Method::GET, "/routes?limit=2", R, None, None).await;
    let cursor = page1["next_cursor"].as_str().expect("next page").to_owned();
    let (_, _, page2) =
        admin.send(reqwest::Method::GET, &format!("/routes?limit=2&cursor={cursor}"), R, None, None).await;
    let domains: Vec<&str> = page1["items"]
        .as_array()
        .into_iter()
        .chain(page2["items"].as_array())
        .flatten()
        .map(|r| r["domain"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(domains, ["d0.example", "d1.example", "d2.example", "d3.example"]);
    let (status, _, _) = admin.send(reqwest::Method::GET, "/routes?limit=0", R, None, None).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_during_a_login_and_both_tokens_verify() {
    let redis = crate::common::Redis::start().await;
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, &redis.url(), "keys:", &upstream.issuer)
        + "\n[signing]\nkey_encryption_key = \"a-test-key-encryption-key-of-some-length\"\n";
    let broker = socket.serve_with_admin(&toml, SigningKey::generate_rsa().expect("key")).await;
    let admin = Admin::new(&broker.url);
    let client = crate::common::AUTH0_CLIENT;
    let browser = Browser::default();
    let start = authorize_url(&broker.url, client, Some(crate::common::VERIFIER), &[("login_hint", "alice@acme.test")]);
    let code = || async {
        query(&browser.follow_until(&start, client.redirect_uri).await.expect("login")).remove("code").expect("code")
    };

    let first_code = code().await;
    let (_, first) = crate::common::redeem(&broker.url, client, &first_code, Some(crate::common::VERIFIER)).await;
    // A login is under way (code issued, not redeemed) when the key rotates.
    let second_code = code().await;
    let (status, _, rotated) = admin.send(reqwest::Method::POST, "/keys/rotate", W, None, None).await;
    assert_eq!(status, 201, "{rotated}");
    let (_, second) = crate::common::redeem(&broker.url, client, &second_code, Some(crate::common::VERIFIER)).await;

    let kid = |token: &Value| {
        jsonwebtoken::decode_header(token["id_token"].as_str().expect("id_token")).expect("header").kid.expect("kid")
    };
    assert_ne!(kid(&first), kid(&second), "the new key signs after rotation");
    assert_eq!(kid(&second), rotated["kid"].as_str().expect("kid"));
    for token in [&first, &second] {
        let claims =
            crate::common::verify_id_token(&broker.url, token["id_token"].as_str().expect("id"), client.client_id)
                .await;
        assert_eq!(claims["email"], "alice@acme.test");
    }
    let (_, _, keys) = admin.send(reqwest::Method::GET, "/keys", R, None, None).await;
    let items = keys["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{keys}");
    assert_eq!(items.iter().filter(|k| k["active"] == true).count(), 1);
    assert!(
        items.iter().any(|k| k["source"] == "config" && k["retired_at"].is_u64()),
        "the old key is retired, still listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_without_a_key_encryption_key_is_refused() {
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "nokek:", &upstream.issuer);
    let broker = socket.serve_with_admin(&toml, SigningKey::generate_rsa().expect("key")).await;
    let (status, _, body) = Admin::new(&broker.url).send(reqwest::Method::POST, "/keys/rotate", W, None, None).await;
    assert_eq!(status, 409);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("key_encryption_key")), "{body}");
}
