//! Home realm discovery end to end through the real `oidc-provider` upstream: the precedence
//! table row by row (asserting which selector reached the upstream), domain edge cases, and
//! IdP-initiated login.

use crate::common::{authorize_url, query, Browser, Stack, TestClient, AUTH0_CLIENT};
use serde_json::{json, Value};

const DENY_CLIENT: TestClient =
    TestClient { client_id: "deny-test", secret: "deny-test-secret", redirect_uri: "https://deny.example/cb" };
const DEFAULT_CLIENT: TestClient =
    TestClient { client_id: "default-test", secret: "default-test-secret", redirect_uri: "https://default.example/cb" };
pub(crate) const INITIATE_URI: &str = "https://acme.us.auth0.com/login/initiate";

const ROUTES: &str = r#"
[[clients]]
client_id = "deny-test"
client_secret = "deny-test-secret"
redirect_uris = ["https://deny.example/cb"]
fallback = "deny"
[[clients]]
client_id = "default-test"
client_secret = "default-test-secret"
redirect_uris = ["https://default.example/cb"]
default_organization_id = "org_globex"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
[[routes]]
domain = "globex.test"
organization_id = "org_globex"
include_subdomains = true
[[routes]]
domain = "Bücher.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
[[routes]]
domain = "restricted.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
clients = ["deny-test"]
[[routes]]
domain = "stale.test"
organization_id = "org_deleted_at_scalekit"
"#;

pub(crate) async fn stack() -> Stack {
    let extra = ROUTES.to_owned();
    let stack = Stack::start_with("memory", "r:", &extra).await;
    // The auth0 client accepts IdP-initiated logins.
    let client = stack.broker.state.clients.get(AUTH0_CLIENT.client_id).await.expect("store").expect("client");
    assert_eq!(client.record.initiate_login_uri.as_deref(), Some(INITIATE_URI));
    stack
}

/// Logs in with `params` and returns what the client got and what reached the upstream.
async fn login(
    stack: &Stack,
    client: TestClient<'_>,
    params: &[(&str, &str)],
) -> (std::collections::HashMap<String, String>, Value) {
    let before = stack.upstream.requests().await.len();
    let landed = Browser::default()
        .follow_until(&authorize_url(&stack.broker.url, client, None, params), client.redirect_uri)
        .await
        .expect("login");
    let requests = stack.upstream.requests().await;
    let upstream = if requests.len() > before { requests.last().cloned().unwrap_or(Value::Null) } else { Value::Null };
    (query(&landed), upstream)
}

fn selectors(upstream: &Value) -> Value {
    json!({
        "connection_id": upstream["connection_id"],
        "organization_id": upstream["organization_id"],
        "domain_hint": upstream["domain_hint"],
        "login_hint": upstream["login_hint"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_precedence_table_row_by_row() {
    let stack = stack().await;
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], Value);
    let rows: &[Row] = &[
        (
            "connection_id beats everything",
            &[
                ("connection_id", "conn_globex2"),
                ("organization_id", "org_acme"),
                ("domain_hint", "acme.test"),
                ("login_hint", "alice@acme.test"),
            ],
            json!({"connection_id": "conn_globex2", "organization_id": null, "domain_hint": null, "login_hint": "alice@acme.test"}),
        ),
        (
            "organization_id beats domain_hint and login_hint",
            &[("organization_id", "org_globex"), ("domain_hint", "acme.test"), ("login_hint", "alice@acme.test")],
            json!({"connection_id": null, "organization_id": "org_globex", "domain_hint": null, "login_hint": "alice@acme.test"}),
        ),
        (
            "domain_hint beats the login_hint domain (route without connection: its organization)",
            &[("domain_hint", "globex.test"), ("login_hint", "alice@acme.test")],
            json!({"connection_id": null, "organization_id": "org_globex", "domain_hint": null, "login_hint": "alice@acme.test"}),
        ),
        (
            "the login_hint domain (route with connection: its connection)",
            &[("login_hint", "alice@acme.test")],
            json!({"connection_id": "conn_acme1", "organization_id": null, "domain_hint": null, "login_hint": "alice@acme.test"}),
        ),
        (
            "Auth0 upstream_params names: organization",
            &[("organization", "org_acme")],
            json!({"connection_id": null, "organization_id": "org_acme", "domain_hint": null, "login_hint": null}),
        ),
    ];
    for (row, params, expected) in rows {
        let (client_got, upstream) = login(&stack, AUTH0_CLIENT, params).await;
        assert!(client_got.contains_key("code"), "{row}: {client_got:?}");
        assert_eq!(&selectors(&upstream), expected, "{row}");
    }
    // The client's default, when nothing else is given.
    let (client_got, upstream) = login(&stack, DEFAULT_CLIENT, &[]).await;
    assert!(client_got.contains_key("code"), "client default: {client_got:?}");
    assert_eq!(
        selectors(&upstream),
        json!({"connection_id": null, "organization_id": "org_globex", "domain_hint": null, "login_hint": null})
    );
    // Nothing at all: the home-realm page, and the upstream is not contacted.
    let before = stack.upstream.requests().await.len();
    let page = Browser::default().get(&authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[])).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Work email"));
    assert_eq!(stack.upstream.requests().await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_edge_cases() {
    let stack = stack().await;
    let connection = |upstream: &Value| upstream["connection_id"].as_str().map(str::to_owned);

    let (got, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "Alice@ACME.Test")]).await;
    assert!(got.contains_key("code"), "upper case: {got:?}");
    assert_eq!(connection(&upstream).as_deref(), Some("conn_acme1"), "upper case domain routes");

    let (_, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "anna@BÜCHER.test")]).await;
    assert_eq!(connection(&upstream).as_deref(), Some("conn_acme1"), "IDN domain routes after normalization");

    let (got, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "x@eu.acme.test")]).await;
    assert_eq!(selectors(&upstream)["connection_id"], Value::Null, "a subdomain does not match its parent");
    assert_eq!(got.get("error").map(String::as_str), Some("access_denied"), "the upstream did not know it: {got:?}");

    let (got, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "carol@eu.globex.test")]).await;
    assert_eq!(upstream["organization_id"], "org_globex", "unless the route includes subdomains");
    assert!(got.contains_key("code"), "{got:?}");

    let (_, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "x@restricted.test")]).await;
    assert_eq!(
        selectors(&upstream),
        json!({"connection_id": null, "organization_id": null, "domain_hint": "restricted.test", "login_hint": "x@restricted.test"}),
        "a route for another client is not used: pass, with the domain as Scalekit's selector"
    );
    assert_eq!(upstream["domain"], "restricted.test");

    let (got, upstream) = login(&stack, DENY_CLIENT, &[("login_hint", "x@nowhere.test")]).await;
    assert_eq!(upstream, Value::Null, "deny refuses without asking the upstream");
    assert_eq!(got.get("error").map(String::as_str), Some("access_denied"));
    assert!(got.get("error_description").is_some_and(|d| d.contains("nowhere.test")), "{got:?}");
    assert_eq!(got.get("state").map(String::as_str), Some("client-state-123"));
    assert_eq!(got.get("iss"), Some(&stack.broker.url));

    let (got, _) = login(&stack, DENY_CLIENT, &[("login_hint", "x@restricted.test")]).await;
    assert!(got.contains_key("code"), "the route restricted to deny-test serves it: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_shared_through_redis_by_every_instance() {
    let redis = crate::common::Redis::start().await;
    let stack = Stack::start_with(&redis.url(), "shared:", ROUTES).await;
    // A route added at run time by one instance (as the admin API will) ...
    let store = ssobridge::store::RedisStore::connect(&redis.url(), "shared:").await.expect("connect");
    ssobridge::routing::RouteTable::new(&store)
        .put(&ssobridge::routing::Route {
            domain: "initech.test".into(),
            organization_id: "org_acme".into(),
            connection_id: Some("conn_acme1".into()),
            clients: vec![],
            include_subdomains: false,
            verified: true,
            source: ssobridge::routing::RouteSource::Api,
        })
        .await
        .expect("put");
    // ... is used by another.
    let (got, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "peter@initech.test")]).await;
    assert_eq!(upstream["connection_id"], "conn_acme1");
    assert!(got.contains_key("code"), "{got:?}");
}

/// An IdP-initiated token as Scalekit's docs show it (no `aud`, no `jti`), with the real
/// upstream key.
pub(crate) async fn initiation(stack: &Stack, overrides: Value) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
    let mut claims = json!({
        "iss": stack.upstream.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "organization_id": "org_globex",
        "connection_id": "conn_globex2",
        "login_hint": "bob@globex.test",
    });
    for (k, v) in overrides.as_object().expect("object") {
        claims[k] = v.clone();
    }
    stack.upstream.sign(&claims).await
}

pub(crate) fn initiate_url(stack: &Stack, token: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/initiate-login", stack.broker.url)).expect("url");
    url.query_pairs_mut().append_pair("idp_initiated_login", token).append_pair("client_id", AUTH0_CLIENT.client_id);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_login_hands_off_to_the_client_and_routes_its_authorize() {
    let stack = stack().await;
    let browser = Browser::default();
    let token = stack.upstream.idp_initiated("org_globex", "conn_globex2", "bob@globex.test").await;
    let response = browser.get(&initiate_url(&stack, &token)).await;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().expect("loc")).expect("url");
    assert!(location.as_str().starts_with(INITIATE_URI), "{location}");
    let handoff = query(&location);
    assert_eq!(handoff.get("iss"), Some(&stack.broker.url), "OIDC Core §4 iss");
    assert_eq!(handoff.get("login_hint").map(String::as_str), Some("bob@globex.test"));

    // The client (Auth0) then starts an ordinary authorize, carrying only the login_hint.
    let (got, upstream) = {
        let before = stack.upstream.requests().await.len();
        let start = authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[("login_hint", "bob@globex.test")]);
        let landed = browser.follow_until(&start, AUTH0_CLIENT.redirect_uri).await.expect("login");
        let requests = stack.upstream.requests().await;
        assert_eq!(requests.len(), before + 1);
        (query(&landed), requests.last().cloned().expect("request"))
    };
    assert_eq!(upstream["connection_id"], "conn_globex2", "routed to the connection the IdP named, without asking");
    assert!(got.contains_key("code"), "{got:?}");

    // The remembered connection was single use: the next authorize routes normally again.
    let (_, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "bob@globex.test")]).await;
    assert_eq!(upstream["organization_id"], "org_globex");
    assert_eq!(upstream["connection_id"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_idp_initiated_tokens_are_refused_with_a_page() {
    let stack = stack().await;
    let browser = Browser::default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
    let expired = initiation(&stack, json!({"exp": now - 600, "iat": now - 900, "nbf": now - 900})).await;
    let wrong_issuer = initiation(&stack, json!({"iss": "http://evil.example"})).await;
    let not_yet = initiation(&stack, json!({"nbf": now + 600})).await;
    let good = initiation(&stack, json!({})).await;
    let (head, _) = good.rsplit_once('.').expect("jws");
    let bad_signature = format!("{head}.{}", "A".repeat(342));
    for (what, token) in [
        ("expired", expired),
        ("wrong issuer", wrong_issuer),
        ("not yet valid", not_yet),
        ("bad signature", bad_signature),
    ] {
        let response = browser.get(&initiate_url(&stack, &token)).await;
        assert_eq!(response.status(), 400, "{what}");
        assert!(response.headers().get("location").is_none(), "{what}: nothing logged in");
        assert!(response.headers().get("set-cookie").is_none(), "{what}: nothing remembered");
    }
    // Replay: the first use hands off, the second is refused.
    let token = initiation(&stack, json!({})).await;
    assert_eq!(browser.get(&initiate_url(&stack, &token)).await.status(), 302);
    let replay = browser.get(&initiate_url(&stack, &token)).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.expect("page").contains("already used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_initiate_login_uri_gets_a_readable_page() {
    let stack = stack().await;
    let token = initiation(&stack, json!({})).await;
    let mut url = url::Url::parse(&format!("{}/initiate-login", stack.broker.url)).expect("url");
    url.query_pairs_mut().append_pair("idp_initiated_login", &token).append_pair("client_id", DENY_CLIENT.client_id);
    let response = Browser::default().get(url.as_str()).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.expect("page").contains("IdP-initiated login is not enabled for deny-test"));
}

/// A route the operator left pointing at an organization Scalekit no longer has: the client is
/// told the service is misconfigured (server_error), not that its request was invalid, and a
/// request that itself names an unknown organization is told so (invalid_request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_organization_is_the_operators_fault_only_when_a_route_chose_it() {
    let stack = stack().await;
    let (got, upstream) = login(&stack, AUTH0_CLIENT, &[("login_hint", "x@stale.test")]).await;
    assert_eq!(upstream["organization_id"], "org_deleted_at_scalekit");
    assert_eq!(got.get("error").map(String::as_str), Some("server_error"), "{got:?}");
    assert!(!got.contains_key("code"));
    let (got, _) = login(&stack, AUTH0_CLIENT, &[("organization_id", "org_nope")]).await;
    assert_eq!(got.get("error").map(String::as_str), Some("invalid_request"), "{got:?}");
}

/// The `/initiate-login/{client_id}` URL of the given client.
fn initiate_path_url(stack: &Stack, client_id: &str, token: &str, query_client: Option<&str>) -> String {
    let mut url = url::Url::parse(&format!("{}/initiate-login/{client_id}", stack.broker.url)).expect("url");
    url.query_pairs_mut().append_pair("idp_initiated_login", token);
    if let Some(client) = query_client {
        url.query_pairs_mut().append_pair("client_id", client);
    }
    url.to_string()
}

/// Scalekit allows no query string in a registered URL, but a path template: the client named
/// in the path receives the hand-off. A `client_id` parameter that names another client is a
/// link that opens neither, and does not spend the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initiate_login_path_names_the_client() {
    let stack = stack().await;
    let browser = Browser::default();
    // Tokens with the same claims in the same second are one token: `n` tells these apart.
    let token = initiation(&stack, json!({"n": 1})).await;

    let mixed =
        browser.get(&initiate_path_url(&stack, AUTH0_CLIENT.client_id, &token, Some(DENY_CLIENT.client_id))).await;
    assert_eq!(mixed.status(), 400);
    assert!(mixed.text().await.expect("page").contains("names two different applications"));
    let unknown = browser.get(&initiate_path_url(&stack, "nobody", &token, None)).await;
    assert_eq!(unknown.status(), 400);
    assert!(unknown.text().await.expect("page").contains("not registered"));

    let token = initiation(&stack, json!({"n": 2})).await;
    let agreeing =
        browser.get(&initiate_path_url(&stack, AUTH0_CLIENT.client_id, &token, Some(AUTH0_CLIENT.client_id))).await;
    assert_eq!(agreeing.status(), 302, "the path and the parameter may agree");
    let token = initiation(&stack, json!({"n": 3})).await;
    let response = browser.get(&initiate_path_url(&stack, AUTH0_CLIENT.client_id, &token, None)).await;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url");
    assert!(location.as_str().starts_with(INITIATE_URI), "{location}");
    assert_eq!(query(&location).get("login_hint").map(String::as_str), Some("bob@globex.test"));

    // The hand-off routes the client's own authorize to the connection the IdP named.
    let start = authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[("login_hint", "bob@globex.test")]);
    let landed = browser.follow_until(&start, AUTH0_CLIENT.redirect_uri).await.expect("login");
    assert!(query(&landed).contains_key("code"));
    assert_eq!(stack.upstream.requests().await.pop().expect("request")["connection_id"], "conn_globex2");
}

/// Scalekit's test guide says its simulator delivers IdP-initiated logins to the default
/// redirect URL: at `/callback`, a token with no `state` is handed off as at `/initiate-login`
/// (single use too), never shown as an expired link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_initiated_login_at_the_callback_is_handed_off() {
    let stack = stack().await;
    let browser = Browser::default();
    let token = stack.upstream.idp_initiated("org_globex", "conn_globex2", "bob@globex.test").await;
    let mut url = url::Url::parse(&format!("{}/callback", stack.broker.url)).expect("url");
    url.query_pairs_mut().append_pair("idp_initiated_login", &token);
    let response = browser.get(url.as_str()).await;
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url");
    assert!(location.as_str().starts_with(INITIATE_URI), "the one client that accepts them: {location}");
    assert_eq!(query(&location).get("iss"), Some(&stack.broker.url));
    let replay = browser.get(url.as_str()).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await.expect("page").contains("already used"));
    // The same token at /initiate-login is the same token.
    assert_eq!(browser.get(&initiate_url(&stack, &token)).await.status(), 400);
}

/// An upstream error with no sign-in in progress (no `state`, or one the broker does not know)
/// is a page naming the condition in the broker's words, never an "expired link" and never a
/// redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_without_a_sign_in_in_progress_is_shown() {
    let stack = stack().await;
    for query in [
        "error=authentication_not_completed&error_description=User%20closed%20the%20tab",
        "state=forged&error=authentication_not_completed&error_description=User%20closed%20the%20tab",
    ] {
        let response = Browser::default().get(&format!("{}/callback?{query}", stack.broker.url)).await;
        assert_eq!(response.status(), 400, "{query}");
        assert!(response.headers().get("location").is_none(), "{query}");
        let page = response.text().await.expect("page");
        assert!(page.contains("Sign-in did not complete"), "{page}");
        assert!(page.contains("The sign-in at the identity provider was not completed."), "{page}");
        assert!(!page.contains("no longer valid") && !page.contains("closed the tab"), "{page}");
    }
    let response = Browser::default()
        .get(&format!("{}/initiate-login?error=user_not_active&error_description=x", stack.broker.url))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.expect("page").contains("The user is not active at their identity provider."));
}

/// `iss` of an IdP-initiated token: the upstream issuer, or by default the broker's own URL
/// (Scalekit's docs show the application's URL there); anything else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_issuers_default_to_the_upstream_and_the_brokers_url() {
    let stack = stack().await;
    let browser = Browser::default();
    let ours = initiation(&stack, json!({"iss": stack.broker.url})).await;
    assert_eq!(browser.get(&initiate_url(&stack, &ours)).await.status(), 302);
    let other = initiation(&stack, json!({"iss": "https://b2b-app.com"})).await;
    assert_eq!(browser.get(&initiate_url(&stack, &other)).await.status(), 400);
    let none = initiation(&stack, json!({"iss": null})).await;
    assert_eq!(browser.get(&initiate_url(&stack, &none)).await.status(), 400, "iss is required");
}

/// With `upstream.idp_initiated_issuers` set, those (and the upstream issuer) are accepted,
/// and the broker's own URL no longer is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_initiated_issuers_can_be_configured() {
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "iss:", &upstream.issuer)
        .replace("[upstream]\n", "[upstream]\nidp_initiated_issuers = [\"https://b2b-app.com/\"]\n")
        + ROUTES;
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let stack = Stack { upstream, broker };
    let browser = Browser::default();
    for (iss, status) in
        [("https://b2b-app.com", 302), (stack.upstream.issuer.as_str(), 302), (stack.broker.url.as_str(), 400)]
    {
        let token = initiation(&stack, json!({"iss": iss})).await;
        assert_eq!(browser.get(&initiate_url(&stack, &token)).await.status(), status, "{iss}");
    }
}
