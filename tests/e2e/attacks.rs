//! Attacks on what the broker vouches for, each written as the attack: what the attacker sends,
//! and what must not happen. `SECURITY.md` maps each defence to its test here.

use serde_json::{json, Value};

use crate::common::{
    login_to_client, query, redeem, verify_id_token, Browser, Stack, AUTH0_CLIENT, COGNITO_CLIENT, VERIFIER,
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
        verify_id_token(&stack.broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.0).await;
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

const LIMITED: (&str, &str, &str) = ("limited", "limited-secret", "https://limited.example/cb");
const STRICT: (&str, &str, &str) = ("strict", "strict-secret", "https://strict.example/cb");

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
        assert_eq!(landed.get("error").map(String::as_str), Some("access_denied"), "{} {params:?}", client.0);
        assert!(!landed.contains_key("code"));
        assert!(stack.upstream.requests().await.is_empty(), "the upstream was not asked: {} {params:?}", client.0);
    }
    // What they may reach still works.
    for (client, params) in
        [(STRICT, [("organization_id", "org_acme")]), (LIMITED, [("login_hint", "alice@acme.test")])]
    {
        let landed = login_to_client(&stack, client, &params).await;
        assert!(landed.contains_key("code"), "{} {params:?}: {landed:?}", client.0);
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
        "issuer": stack.broker.url, "client_id": AUTH0_CLIENT.0, "client_secret": AUTH0_CLIENT.1,
        "redirect_uri": AUTH0_CLIENT.2, "mode": "auth0", "max_age": 300,
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
        verify_id_token(&stack.broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.0).await;
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
    let landed = browser.follow_until(&start, AUTH0_CLIENT.2).await.expect("login");
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
    let (record, _) = stack.broker.state.clients.read(AUTH0_CLIENT.0).await.expect("store").expect("client");
    assert!(record.secret_hash.starts_with("s256$"), "{}", record.secret_hash);
    assert!(!record.secret_hash.contains(&ssobridge::tokens::sha256_hex(AUTH0_CLIENT.1)));
    // And the secret still authenticates.
    let code = login_to_client(&stack, AUTH0_CLIENT, &[("login_hint", "alice@acme.test")]).await;
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, &code["code"], Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
}
