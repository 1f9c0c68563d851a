//! Attacks on what the broker vouches for, each written as the attack: what the attacker sends,
//! and what must not happen. `SECURITY.md` maps each defence to its test here.

use serde_json::{json, Value};

use crate::common::{
    login_to_client, query, redeem, verify_id_token, Browser, Stack, TestClient, AUTH0_CLIENT, COGNITO_CLIENT, VERIFIER,
};

/// Routes of both simulated organizations, their domains verified.
const VERIFIED_ROUTES: &str = r#"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
[[routes]]
domain = "globex.test"
organization_id = "org_globex"
connection_id = "conn_globex1"
"#;

/// One login of `login_hint` whose upstream ID token carries `claims` instead of the user's
/// own: the ID token's and userinfo's claims as the client receives them.
async fn login_asserting(stack: &Stack, login_hint: &str, claims: Value) -> (Value, Value) {
    stack.upstream.tamper_claims(&claims).await;
    let params = login_to_client(stack, AUTH0_CLIENT, &[("login_hint", login_hint)]).await;
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token =
        verify_id_token(&stack.broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id)
            .await;
    let userinfo: Value = crate::common::http()
        .get(format!("{}/userinfo", stack.broker.url))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("userinfo json");
    (id_token, userinfo)
}

/// Acme's IdP admin asserts the address of Globex's CEO, "verified". A downstream that links by
/// verified email (Auth0's Action, Cognito's mapping) would merge the login into the CEO's
/// account: the broker must not say the address is verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_cannot_vouch_for_another_organizations_email() {
    let stack = Stack::start_with("memory", "t:", VERIFIED_ROUTES).await;
    let (id_token, userinfo) =
        login_asserting(&stack, "alice@acme.test", json!({"email": "ceo@globex.test", "email_verified": true})).await;
    assert_eq!(id_token["org_id"], "org_acme");
    assert_eq!(id_token["email"], "ceo@globex.test");
    assert_eq!(id_token["email_verified"], false, "ID token: {id_token}");
    assert_eq!(userinfo["email_verified"], false, "userinfo: {userinfo}");

    // An address read from the right would pass for one at a verified domain of the IdP's own
    // organization; it is no address at all.
    for forged in ["ceo@globex.test@acme.test", "@acme.test", "ceo @acme.test"] {
        let (id_token, userinfo) =
            login_asserting(&stack, "alice@acme.test", json!({"email": forged, "email_verified": true})).await;
        assert_eq!(
            (&id_token["email_verified"], &userinfo["email_verified"]),
            (&json!(false), &json!(false)),
            "{forged}"
        );
    }
}

/// What `email_verified` means in the broker's tokens: the upstream did not deny it, and the
/// domain (normalized like the route table's) is a verified route of the token's organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_verified_is_the_brokers_statement() {
    let routes = format!("{VERIFIED_ROUTES}\n[[routes]]\ndomain = \"unverified.test\"\norganization_id = \"org_acme\"\nverified = false\n");
    let stack = Stack::start_with("memory", "t:", &routes).await;
    let verified = |email: &str, upstream: Value| {
        let claims = json!({"email": email, "email_verified": upstream});
        let stack = &stack;
        async move {
            let (id_token, userinfo) = login_asserting(stack, "alice@acme.test", claims).await;
            assert_eq!(id_token["email_verified"], userinfo["email_verified"], "ID token and userinfo agree");
            id_token["email_verified"].as_bool().expect("email_verified is a boolean")
        }
    };
    assert!(verified("alice@acme.test", json!(true)).await, "IdP and route agree");
    assert!(verified("Alice@ACME.Test", json!(true)).await, "case is normalized as the route table's");
    assert!(verified("alice@acme.test", Value::Null).await, "absent (a SAML connection) + verified route");
    assert!(!verified("alice@acme.test", json!(false)).await, "the IdP said no");
    assert!(!verified("carol@unverified.test", json!(true)).await, "the route is not verified");
    assert!(!verified("carol@nowhere.test", Value::Null).await, "absent and no route");
}

/// The user edits the upstream authorize URL in the address bar: the login for
/// alice@example.com was routed to Example Corp's connection; they send it to the other
/// simulated organization's. Scalekit signs them in there, validly, but the broker was not
/// sending them there: no code reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_upstream_url_cannot_land_the_login_in_another_organization() {
    let demo = crate::demo::start_demo().await;
    let browser = Browser::default();
    let to_upstream = browser.get(&crate::demo::authorize(&demo, "alice@example.com")).await;
    let location = to_upstream.headers()["location"].to_str().expect("location").to_owned();
    let mut upstream = url::Url::parse(&location).expect("upstream URL");
    let edited: Vec<(String, String)> = upstream
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "connection_id" { "conn_example_org".into() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    assert!(edited.iter().any(|(k, _)| k == "connection_id"), "routed to a connection: {location}");
    upstream.query_pairs_mut().clear().extend_pairs(&edited);
    let landed =
        browser.follow_until(upstream.as_str(), crate::demo::CLIENT_REDIRECT).await.expect("back at the client");
    let params = query(&landed);
    assert!(!params.contains_key("code"), "no code: {landed}");
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{landed}");
}

/// A broker whose extra clients are limited: `limited` to org_acme, `strict` with
/// `fallback = "deny"`; acme.test routes to org_acme for every client, globex.test only for
/// `auth0-test`.
async fn limited_stack() -> Stack {
    let extra = r#"
[[clients]]
client_id = "limited"
client_secret = "limited-secret"
redirect_uris = ["https://limited.example/cb"]
allowed_organizations = ["org_acme"]
[[clients]]
client_id = "strict"
client_secret = "strict-secret"
redirect_uris = ["https://strict.example/cb"]
fallback = "deny"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
[[routes]]
domain = "globex.test"
organization_id = "org_globex"
clients = ["auth0-test"]
"#;
    Stack::start_with("memory", "t:", extra).await
}

const LIMITED: TestClient =
    TestClient { client_id: "limited", secret: "limited-secret", redirect_uri: "https://limited.example/cb" };
const STRICT: TestClient =
    TestClient { client_id: "strict", secret: "strict-secret", redirect_uri: "https://strict.example/cb" };

/// The attacker names, in the request to the broker, an organization or connection the client
/// may not reach. Refused at /authorize: the upstream is never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_selectors_cannot_reach_past_what_the_client_may_reach() {
    let stack = limited_stack().await;
    for (client, params) in [
        (LIMITED, [("organization_id", "org_globex")]),
        // strict: deny, and no route open to it names org_globex or conn_globex2
        (STRICT, [("organization_id", "org_globex")]),
        (STRICT, [("connection_id", "conn_globex2")]),
        // org_globex's only route belongs to auth0-test
        (COGNITO_CLIENT, [("organization_id", "org_globex")]),
    ] {
        stack.upstream.reset().await;
        let landed = login_to_client(&stack, client, &params).await;
        assert_eq!(landed.get("error").map(String::as_str), Some("access_denied"), "{} {params:?}", client.client_id);
        assert!(!landed.contains_key("code"));
        assert!(
            stack.upstream.requests().await.is_empty(),
            "the upstream was not asked: {} {params:?}",
            client.client_id
        );
    }
    // What they may reach still works.
    for (client, params) in
        [(STRICT, [("organization_id", "org_acme")]), (LIMITED, [("login_hint", "alice@acme.test")])]
    {
        let landed = login_to_client(&stack, client, &params).await;
        assert!(landed.contains_key("code"), "{} {params:?}: {landed:?}", client.client_id);
    }
}

/// The request carries nothing the broker refuses, but the upstream signs the user in where
/// the client may not go: a connection no route names (resolved by the upstream), a domain the
/// upstream routes itself while the broker's route for it belongs to another client, or an
/// upstream token naming another organization than the route's. No code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_ends_outside_the_clients_reach_gets_no_code() {
    let stack = limited_stack().await;
    let refused = |client, params: Vec<(&'static str, &'static str)>| {
        let stack = &stack;
        async move {
            let landed = login_to_client(stack, client, &params).await;
            assert!(!landed.contains_key("code"), "{params:?}: {landed:?}");
            assert_eq!(landed.get("error").map(String::as_str), Some("access_denied"), "{params:?}");
        }
    };
    refused(LIMITED, vec![("connection_id", "conn_globex2")]).await;
    refused(COGNITO_CLIENT, vec![("login_hint", "bob@globex.test")]).await;
    stack.upstream.tamper_claims(&json!({"oid": "org_globex"})).await;
    refused(LIMITED, vec![("login_hint", "alice@acme.test")]).await;
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A relying party steps the user up with `max_age` / `prompt=login`. The broker forwards them,
/// takes `auth_time` from the upstream, and never passes an old sign-in off as a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_is_honoured_not_faked() {
    let stack = Stack::start().await;
    // openid-client checks auth_time against its maxAge.
    let result = crate::common::rp(&json!({
        "issuer": stack.broker.url, "client_id": AUTH0_CLIENT.client_id, "client_secret": AUTH0_CLIENT.secret,
        "redirect_uri": AUTH0_CLIENT.redirect_uri, "mode": "auth0", "max_age": 300,
        "params": {"login_hint": "alice@acme.test", "prompt": "login", "acr_values": "urn:example:mfa"},
    }))
    .await;
    assert_eq!(result["ok"], true, "{result}");
    let sent = stack.upstream.requests().await;
    let sent = sent.last().expect("the upstream was asked");
    assert_eq!((&sent["max_age"], &sent["prompt"]), (&json!("300"), &json!("login")), "forwarded: {sent}");
    assert_eq!(sent["acr_values"], "urn:example:mfa", "acr_values forwarded: {sent}");

    // The upstream answers with a sign-in an hour old (a remembered IdP session).
    let an_hour_ago = now() - 3600;
    for params in [vec![("max_age", "60")], vec![("prompt", "login")], vec![("max_age", "0")]] {
        stack.upstream.tamper_claims(&json!({"auth_time": an_hour_ago})).await;
        let mut all = params.clone();
        all.push(("login_hint", "alice@acme.test"));
        let landed = login_to_client(&stack, AUTH0_CLIENT, &all).await;
        assert!(!landed.contains_key("code"), "{params:?}: {landed:?}");
        assert_eq!(landed.get("error").map(String::as_str), Some("login_required"), "{params:?}");
    }
    // Without a step-up the old sign-in is fine, and its time is what the ID token says; the
    // upstream's acr passes through.
    stack.upstream.tamper_claims(&json!({"auth_time": an_hour_ago, "acr": "urn:example:mfa"})).await;
    let (id_token, _) = login_asserting_nothing_more(&stack).await;
    assert_eq!(id_token["auth_time"], an_hour_ago, "{id_token}");
    assert_eq!(id_token["acr"], "urn:example:mfa", "{id_token}");
}

/// A login of alice whose upstream token was prepared by the caller (`tamper_claims`).
async fn login_asserting_nothing_more(stack: &Stack) -> (Value, Value) {
    let params = login_to_client(stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token =
        verify_id_token(&stack.broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id)
            .await;
    (id_token, tokens)
}

/// A customer's IdP puts a phishing page in the IdP-initiated login's relay state; the client
/// would send the user on to it right after signing them in. Only the client's own origins
/// pass as `target_link_uri`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_state_cannot_send_the_user_off_the_clients_site() {
    use crate::routing::{initiate_url, initiation, INITIATE_URI};
    let stack = crate::routing::stack().await;
    for (relay_state, passed) in [
        ("https://evil.example/collect", false),
        ("https://acme.us.auth0.com.evil.example/x", false),
        ("javascript:alert(1)", false),
        ("https://acme.us.auth0.com/dashboard?tab=2", true),
    ] {
        let token = initiation(&stack, json!({"relay_state": relay_state})).await;
        let response = Browser::default().get(&initiate_url(&stack, &token)).await;
        let location = url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("url");
        assert!(location.as_str().starts_with(INITIATE_URI), "{location}");
        let target = query(&location).get("target_link_uri").cloned();
        assert_eq!(target.is_some(), passed, "{relay_state}: {location}");
    }
}

/// An IdP-initiated hand-off left a remembered connection in the browser; the user then signs
/// in as someone else (another login_hint). The remembered connection routes only the hand-off
/// it was made for: the new login goes where its own email routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_idp_initiated_login_routes_only_its_own_hand_off() {
    use crate::routing::{initiate_url, initiation};
    let stack = crate::routing::stack().await;
    let browser = Browser::default();
    let token = initiation(&stack, json!({})).await; // org_globex / conn_globex2, bob@globex.test
    assert_eq!(browser.get(&initiate_url(&stack, &token)).await.status(), 302);
    let start =
        crate::common::authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[("login_hint", "alice@acme.test")]);
    let landed = browser.follow_until(&start, AUTH0_CLIENT.redirect_uri).await.expect("login");
    assert!(query(&landed).contains_key("code"), "{landed}");
    let sent = stack.upstream.requests().await;
    let sent = sent.last().expect("the upstream was asked");
    assert_eq!(sent["connection_id"], "conn_acme1", "alice's own route, not the remembered one: {sent}");
}

/// On https the broker's cookies carry `__Host-` (Secure, Path=/, no Domain): a sibling
/// subdomain cannot plant one. A planted plain-named cookie does not pass the home-realm form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_host_prefixed_on_https_so_a_sibling_cannot_plant_them() {
    let socket = crate::common::BrokerSocket::bind().await;
    let https = socket.url.replace("http://", "https://");
    let upstream = crate::common::Upstream::start(&[format!("{https}/callback")]).await;
    let toml = crate::common::broker_toml(&https, "memory", "c:", &upstream.issuer);
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let page = http
        .get(crate::common::authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[]))
        .send()
        .await
        .expect("authorize");
    let cookie = page.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    assert!(cookie.starts_with("__Host-ssobridge_hrd="), "{cookie}");
    assert!(cookie.contains("Path=/;") && cookie.contains("Secure") && !cookie.contains("Domain"), "{cookie}");
    let value = cookie.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v.to_owned()).expect("value");
    let flow = crate::common::hidden_input(&page.text().await.expect("page"), "flow").expect("flow field");
    let submit = |cookie: String| {
        let http = http.clone();
        let url = format!("{}/login/email", broker.url);
        let form = [("flow", flow.clone()), ("email", "alice@acme.test".to_owned())];
        async move { http.post(url).header("cookie", cookie).form(&form).send().await.expect("submit") }
    };
    let planted = submit(format!("ssobridge_hrd={value}")).await;
    assert_eq!(planted.status(), 400, "a cookie without the prefix is not the broker's");
    assert!(planted.headers().get("location").is_none());
    let own = submit(format!("__Host-ssobridge_hrd={value}")).await;
    assert_eq!(own.status(), 302, "the broker's own cookie passes");
}

/// Whatever text the upstream puts in `error_description` (here, one carrying the attacker's
/// chosen domain), the client's error page shows the broker's own fixed text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_error_text_never_reaches_the_client() {
    let stack = Stack::start().await;
    let landed =
        login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "x@call-555-0100-to-unlock-your-account.test")]).await;
    assert_eq!(landed.get("error").map(String::as_str), Some("access_denied"), "{landed:?}");
    let description = landed.get("error_description").cloned().unwrap_or_default();
    assert!(!description.contains("555") && !description.contains("unlock"), "{description}");
    assert_eq!(description, "single sign-on is not set up for this email domain");
}

/// A copy of the store (a Redis dump) holds no unsalted hash of a client secret: equal secrets
/// do not hash alike, and no precomputed table fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_store_holds_no_unsalted_client_secret_hash() {
    let stack = Stack::start().await;
    let (record, _) = stack.broker.state.clients.read(AUTH0_CLIENT.client_id).await.expect("store").expect("client");
    assert!(record.secret_hash.starts_with("s256$"), "{}", record.secret_hash);
    assert!(!record.secret_hash.contains(&ssobridge::tokens::sha256_hex(AUTH0_CLIENT.secret)));
    // And the secret still authenticates.
    let code = login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, &code["code"], Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
}

/// A client's `jwks_uri`, served on loopback: counts its fetches, serves `body`.
async fn counting_jwks(body: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://127.0.0.1:{}/jwks.json", listener.local_addr().expect("addr").port());
    let counter = fetches.clone();
    let app = poem::Route::new().at(
        "/jwks.json",
        poem::get(poem::endpoint::make_sync(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            poem::Response::builder().content_type("application/json").body(body.clone())
        })),
    );
    tokio::spawn(async move {
        let _ = ssobridge::app::serve(listener, app, std::future::pending::<()>()).await;
    });
    (url, fetches)
}

/// A JWT with `header` and `claims` and a signature of junk: what anyone can send.
fn unsigned_jwt(header: Value, claims: Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.AAAAAAAA", b64(&header), b64(&claims))
}

async fn present_assertion(broker: &str, assertion: &str) -> (u16, Value) {
    let response = crate::common::http()
        .post(format!("{broker}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "not-a-code"),
            ("redirect_uri", "https://pk.example/cb"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .expect("token");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn key_fetching_stack(jwks_uri: &str) -> Stack {
    let extra = format!(
        "\n[[clients]]\nclient_id = \"pk\"\nredirect_uris = [\"https://pk.example/cb\"]\n\
         token_endpoint_auth_method = \"private_key_jwt\"\njwks_uri = \"{jwks_uri}\"\n\
         [outbound]\nallow_private_networks = true\n"
    );
    Stack::start_with("memory", "pk:", &extra).await
}

/// Anyone may send `/token` a client assertion naming a `private_key_jwt` client. Junk that no
/// key could make valid makes the broker fetch nothing; a stream of well-shaped assertions
/// with unknown key ids makes it fetch the client's keys once, not once per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_client_assertions_cannot_make_the_broker_fetch() {
    use std::sync::atomic::Ordering;
    let (jwks_uri, fetches) = counting_jwks(json!({"keys": []}).to_string()).await;
    let stack = key_fetching_stack(&jwks_uri).await;
    let broker = stack.broker.url.clone();
    let token_endpoint = format!("{broker}/token");
    let now = now();
    let valid = json!({"iss": "pk", "sub": "pk", "aud": token_endpoint, "exp": now + 60, "jti": "j-1"});
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (k, v) in changes.as_object().expect("object") {
            if v.is_null() {
                claims.as_object_mut().expect("object").remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let rs256 = json!({"alg": "RS256", "kid": "k"});
    let junk = [
        "not-a-jwt".to_owned(),
        unsigned_jwt(json!({"alg": "none"}), valid.clone()),
        unsigned_jwt(json!({"alg": "HS256"}), valid.clone()),
        unsigned_jwt(rs256.clone(), with(json!({"iss": "someone-else"}))),
        unsigned_jwt(rs256.clone(), with(json!({"aud": "https://elsewhere.example/token"}))),
        unsigned_jwt(rs256.clone(), with(json!({"exp": now - 3600}))),
        unsigned_jwt(rs256.clone(), with(json!({"exp": now + 86_400}))),
        unsigned_jwt(rs256.clone(), with(json!({"exp": null}))),
        unsigned_jwt(rs256.clone(), with(json!({"jti": null}))),
    ];
    for assertion in &junk {
        let (status, body) = present_assertion(&broker, assertion).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{assertion}: {body}");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 0, "nothing fetched for junk");

    let mut tasks = Vec::new();
    for i in 0..30 {
        let assertion =
            unsigned_jwt(json!({"alg": "RS256", "kid": format!("kid-{i}")}), with(json!({"jti": format!("j{i}")})));
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move { present_assertion(&broker, &assertion).await }));
    }
    for task in tasks {
        let (status, _) = task.await.expect("task");
        assert_eq!(status, 401);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch for 30 unknown key ids at once");
}

/// The client's `jwks_uri` answers with megabytes (its real key among them): the broker reads
/// at most 64 KB and authenticates no one with it; the same key in a small document works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_key_document_is_refused() {
    let key = ssobridge::tokens::SigningKey::generate_rsa().expect("key");
    for (padding, authenticated) in [(200 * 1024, false), (0, true)] {
        let document = json!({"keys": [key.public_jwk()], "padding": "x".repeat(padding)});
        let (jwks_uri, _) = counting_jwks(document.to_string()).await;
        let stack = key_fetching_stack(&jwks_uri).await;
        let token_endpoint = format!("{}/token", stack.broker.url);
        let claims = json!({"iss": "pk", "sub": "pk", "aud": token_endpoint, "exp": now() + 60, "jti": "j"});
        let (status, body) = present_assertion(&stack.broker.url, &key.sign_jwt(&claims).expect("sign")).await;
        // Authenticated, the unknown code is the only problem left.
        let expected = if authenticated { (400, Some("invalid_grant")) } else { (401, Some("invalid_client")) };
        assert_eq!((status, body["error"].as_str()), expected, "padding {padding}: {body}");
    }
}

/// An admin token holder (or whoever stole one) registers a client whose `jwks_uri` points
/// into the broker's own network, to make the broker fetch from there: 422, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_key_urls_into_the_brokers_network() {
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "a:", &upstream.issuer);
    let broker = socket.serve_with_admin(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    for jwks_uri in [
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://127.0.0.1:6379/",
        "https://[::1]/jwks",
        "https://10.0.0.8/jwks",
        "https://localhost/jwks",
        "http://keys.example.com/jwks",
    ] {
        let response = crate::common::http()
            .post(format!("{}/admin/clients", broker.url))
            .bearer_auth(crate::common::ADMIN_WRITE_TOKEN)
            .json(&json!({
                "client_id": "ssrf", "redirect_uris": ["https://app.example.com/cb"],
                "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri,
            }))
            .send()
            .await
            .expect("admin");
        assert_eq!(response.status(), 422, "{jwks_uri}");
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["errors"][0]["pointer"], "/jwks_uri", "{jwks_uri}: {problem}");
    }
    assert!(broker.state.clients.read("ssrf").await.expect("store").is_none());
}

/// The upstream (or whoever answers in its place) sends a discovery document of megabytes:
/// the broker reads no more than 64 KB, and the login fails with an error, not an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_upstream_response_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    // A valid discovery document, padded: read whole, the broker would send the user on.
    let document = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"], "padding": "x".repeat(1024 * 1024),
    })
    .to_string();
    let app = poem::Route::new()
        .at(
            "/.well-known/openid-configuration",
            poem::get(poem::endpoint::make_sync(move |_| {
                poem::Response::builder().content_type("application/json").body(document.clone())
            })),
        )
        .at("/jwks", poem::get(poem::endpoint::make_sync(|_| poem::Response::builder().body("{\"keys\":[]}"))));
    tokio::spawn(async move {
        let _ = ssobridge::app::serve(listener, app, std::future::pending::<()>()).await;
    });
    let socket = crate::common::BrokerSocket::bind().await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "o:", &issuer);
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let url = crate::common::authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "a@acme.test")]);
    let landed = Browser::default().follow_until(&url, AUTH0_CLIENT.redirect_uri).await.expect("back at the client");
    let params = query(&landed);
    assert_eq!(params.get("error").map(String::as_str), Some("server_error"), "{landed}");
    assert!(!params.contains_key("code"));
}

/// Every flow key and its stored size in `redis` under `prefix`.
async fn stored_flows(redis: &crate::common::Redis, prefix: &str) -> Vec<(String, usize)> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}flow:*")).query_async(&mut connection).await.expect("keys");
    let mut sizes = Vec::new();
    for key in keys {
        let size: usize = redis::cmd("STRLEN").arg(&key).query_async(&mut connection).await.expect("strlen");
        sizes.push((key, size));
    }
    sizes
}

/// The attacker sends `/authorize` with every parameter at its largest, over and over, to fill
/// the store: no parameter past its limit is accepted, a request whose flow would pass 2 KB is
/// refused, and no stored flow is larger than 2 KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_flow_keeps_at_most_2_kb_whatever_the_request_carries() {
    let redis = crate::common::Redis::start().await;
    let stack = Stack::start_with_store(&redis.url(), "pf:").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    // The longest address (RFC 5321: 254): a 64-character local part under acme.test.
    let label = "b".repeat(59);
    let hint = format!("{}@{label}.{label}.{label}.acme.test", "a".repeat(64));
    let send = |params: Vec<(&'static str, String)>| {
        let http = http.clone();
        let broker = stack.broker.url.clone();
        async move {
            let mut url = url::Url::parse(&format!("{broker}/authorize")).expect("url");
            url.query_pairs_mut()
                .append_pair("client_id", AUTH0_CLIENT.client_id)
                .append_pair("redirect_uri", AUTH0_CLIENT.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", "openid profile email")
                .append_pair("code_challenge", &ssobridge::tokens::pkce_s256(VERIFIER))
                .append_pair("code_challenge_method", "S256")
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            let response = http.get(url.as_str()).send().await.expect("authorize");
            let location = response.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("").to_owned();
            (response.status().as_u16(), location)
        }
    };
    let error_of = |location: &str| {
        url::Url::parse(location).ok().and_then(|u| query(&u).get("error").cloned()).unwrap_or_default()
    };
    // One parameter past its limit.
    assert_eq!(hint.len(), 254);
    for (name, value) in [
        ("state", "s".repeat(1537)),
        ("nonce", "n".repeat(513)),
        ("login_hint", format!("{}@acme.test", "a".repeat(311))),
        ("acr_values", "x".repeat(257)),
        ("organization_id", "o".repeat(129)),
    ] {
        let (status, location) = send(vec![(name, value)]).await;
        assert_eq!((status, error_of(&location).as_str()), (302, "invalid_request"), "{name}");
    }
    // Each at its limit, together: more than a flow may keep.
    let all = vec![
        ("state", "s".repeat(1536)),
        ("nonce", "n".repeat(512)),
        ("login_hint", hint.clone()),
        ("acr_values", "x".repeat(256)),
        ("prompt", "login consent select_account".to_owned()),
        ("max_age", "315360000".to_owned()),
    ];
    let (status, location) = send(all.clone()).await;
    assert_eq!((status, error_of(&location).as_str()), (302, "invalid_request"), "too large together: {location}");
    // The largest that is accepted, many times: each stored flow is at most 2 KB.
    let mut accepted = all;
    accepted[0].1 = "s".repeat(600);
    for _ in 0..20 {
        let (status, location) = send(accepted.clone()).await;
        assert!(status == 302 && location.starts_with(&stack.upstream.issuer), "{status} {location}");
    }
    let flows = stored_flows(&redis, "pf:").await;
    assert_eq!(flows.len(), 20);
    assert!(flows.iter().all(|(_, size)| *size <= 2048), "{flows:?}");
}

/// One source starts sign-ins and never finishes them (a script, an IPv6 /64 rotating its
/// addresses, many sources together): past the caps the broker answers a readable 429 and
/// stores nothing more; a finished sign-in frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_flows_are_capped_per_source_and_in_all() {
    let extra = "\n[rate_limits]\ntrust_forwarded_for = true\npending_flows_per_ip = 5\npending_flows_total = 8\n";
    let stack = Stack::start_with("memory", "cap:", extra).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let url = crate::common::authorize_url(
        &stack.broker.url,
        AUTH0_CLIENT,
        Some(VERIFIER),
        &[("login_hint", "alice@acme.test")],
    );
    let start = |from: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(url).header("x-forwarded-for", from).send().await.expect("authorize") }
    };
    // An IPv6 subscriber's /64 is one source, whichever address of it sends.
    for i in 0..5 {
        let from =
            ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa::9", "2001:db8:1:2::4", "2001:db8:1:2::5"][i];
        assert_eq!(start(from).await.status(), 302, "flow {i}");
    }
    let refused = start("2001:db8:1:2:ffff::1").await;
    assert_eq!(refused.status(), 429, "the sixth from the same /64");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.expect("page").contains("Too many sign-ins"), "a readable page");
    let mut upstream_urls = Vec::new();
    for from in ["192.0.2.10", "192.0.2.10", "192.0.2.11"] {
        let response = start(from).await;
        assert_eq!(response.status(), 302);
        upstream_urls.push(response.headers()["location"].to_str().expect("location").to_owned());
    }
    assert_eq!(start("192.0.2.12").await.status(), 429, "the ninth in all");
    // A sign-in that completes leaves the count.
    let landed =
        Browser::default().follow_until(&upstream_urls[0], AUTH0_CLIENT.redirect_uri).await.expect("completes");
    assert!(query(&landed).contains_key("code"), "{landed}");
    assert_eq!(start("192.0.2.12").await.status(), 302, "its place is free");
}

/// Anyone can name a client: an outsider sends `/authorize` and `/token` with its client_id,
/// or with random ones, to exhaust its budget or to escape counting. The client's budget is
/// spent only per source at `/authorize` and by authenticated requests at `/token`; unknown
/// and unauthenticated requests count against their source address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_cannot_spend_a_clients_rate_limit() {
    let extra = "\n[rate_limits]\ntrust_forwarded_for = true\nper_client_per_minute = 5\nper_ip_per_minute = 12\n";
    let stack = Stack::start_with("memory", "rlc:", extra).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let authorize =
        crate::common::authorize_url(&stack.broker.url, AUTH0_CLIENT, None, &[("login_hint", "alice@acme.test")]);
    crate::operate::away_from_a_window_edge().await;
    let from = |source: &'static str, request: reqwest::RequestBuilder| async move {
        request.header("x-forwarded-for", source).send().await.expect("request").status().as_u16()
    };
    // The attacker's address spends its share of the client's /authorize budget ...
    for _ in 0..5 {
        assert_eq!(from("203.0.113.66", http.get(&authorize)).await, 302);
    }
    assert_eq!(from("203.0.113.66", http.get(&authorize)).await, 429, "the attacker's own share is spent");
    // ... and a user elsewhere signs in as before.
    assert_eq!(from("198.51.100.1", http.get(&authorize)).await, 302, "another source is not affected");
    // Unauthenticated /token requests naming the client do not touch its budget ...
    let token = format!("{}/token", stack.broker.url);
    for _ in 0..5 {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", AUTH0_CLIENT.client_id),
            ("client_secret", "wrong"),
        ];
        assert_eq!(from("203.0.113.77", http.post(&token).form(&form)).await, 401);
    }
    let login = login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    let (status, body) = redeem(&stack.broker.url, AUTH0_CLIENT, &login["code"], Some(VERIFIER)).await;
    assert_eq!(status, 200, "the client's own token request passes: {body}");
    // ... and random client ids count against the source: past 12 a minute, 429.
    let mut statuses = Vec::new();
    for i in 0..13 {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", &*format!("random-{i}")),
            ("client_secret", "x"),
        ];
        statuses.push(from("203.0.113.88", http.post(&token).form(&form)).await);
    }
    assert_eq!(statuses[..12], [401; 12], "{statuses:?}");
    assert_eq!(statuses[12], 429, "{statuses:?}");
}

/// Anyone can call `/readyz` (and a public one used to fetch the upstream's discovery and keys
/// each time): hammering it makes the broker ask the upstream nothing more; the answer comes
/// from the background check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_readiness_costs_the_upstream_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let document = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
    .to_string();
    let counter = fetches.clone();
    let app = poem::Route::new()
        .at(
            "/.well-known/openid-configuration",
            poem::get(poem::endpoint::make_sync(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                poem::Response::builder().content_type("application/json").body(document.clone())
            })),
        )
        .at("/jwks", poem::get(poem::endpoint::make_sync(|_| poem::Response::builder().body("{\"keys\":[]}"))));
    tokio::spawn(async move {
        let _ = ssobridge::app::serve(listener, app, std::future::pending::<()>()).await;
    });
    let socket = crate::common::BrokerSocket::bind().await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "rz:", &issuer);
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let readyz = format!("{}/readyz", broker.url);
    crate::common::wait_until("ready once the background check ran", std::time::Duration::from_secs(5), || async {
        crate::common::http().get(&readyz).send().await.expect("readyz").status() == 200
    })
    .await;
    let before = fetches.load(Ordering::SeqCst);
    for _ in 0..200 {
        assert_eq!(crate::common::http().get(&readyz).send().await.expect("readyz").status(), 200);
    }
    let during = fetches.load(Ordering::SeqCst) - before;
    assert!(during <= 1, "200 probes, {during} discovery fetches (the background check's own, at most)");
}

/// An upstream that signs with P-256 (ES256 is on the default allow-list): discovery and its
/// keys on loopback; returns its issuer.
async fn es256_upstream(key: &ssobridge::tokens::SigningKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let discovery = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
    .to_string();
    let keys = json!({"keys": [key.public_jwk()]}).to_string();
    let json = |body: String| move |_| poem::Response::builder().content_type("application/json").body(body.clone());
    let app = poem::Route::new()
        .at("/.well-known/openid-configuration", poem::get(poem::endpoint::make_sync(json(discovery))))
        .at("/keys", poem::get(poem::endpoint::make_sync(json(keys))));
    tokio::spawn(async move {
        let _ = ssobridge::app::serve(listener, app, std::future::pending::<()>()).await;
    });
    issuer
}

/// `s` of a P-256 signature `r || s` turned into `n - s`: the same signature to a verifier that
/// does not insist on a low `s`, in other bytes.
fn malleated(jwt: &str) -> String {
    use base64::Engine;
    const N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6,
        0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ];
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, signature) = jwt.rsplit_once('.').expect("a JWS");
    let mut signature = b64.decode(signature).expect("base64url");
    let (mut borrow, s) = (0i16, &mut signature[32..]);
    for i in (0..32).rev() {
        let difference = N[i] as i16 - s[i] as i16 - borrow;
        borrow = i16::from(difference < 0);
        s[i] = difference.rem_euclid(256) as u8;
    }
    format!("{signed}.{}", b64.encode(signature))
}

/// The attacker holds an IdP-initiated login link that was used, and replays it with its ECDSA
/// signature re-made as `(r, n - s)`: another string that verifies as well. Single use is by the
/// signed content, so the replay starts no second hand-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_signed_idp_initiated_link_is_still_the_used_one() {
    let key = ssobridge::tokens::SigningKey::generate_es256().expect("key");
    let issuer = es256_upstream(&key).await;
    let socket = crate::common::BrokerSocket::bind().await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "mall:", &issuer);
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let token = key
        .sign_jwt(&json!({
            "organization_id": "org_acme", "connection_id": "conn_acme1", "login_hint": "alice@acme.test",
            "iss": issuer, "iat": now, "nbf": now, "exp": now + 300,
        }))
        .expect("sign");
    let link = |token: &str| {
        let mut url =
            url::Url::parse(&format!("{}/initiate-login/{}", broker.url, AUTH0_CLIENT.client_id)).expect("url");
        url.query_pairs_mut().append_pair("idp_initiated_login", token);
        url.to_string()
    };
    assert_eq!(Browser::default().get(&link(&token)).await.status(), 302, "the link works once");
    let replay = Browser::default().get(&link(&malleated(&token))).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.headers().get("location").is_none());
    assert!(replay.text().await.expect("page").contains("already used"), "it verified, and was the used token");
}
