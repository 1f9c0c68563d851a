//! Sign-out, as relying parties drive it: RP-Initiated Logout with the end-session URL that
//! `openid-client` builds (GET and POST), Auth0's federated logout (which may send no
//! `id_token_hint`), Back-Channel Logout to a receiver that checks the logout token as the
//! spec tells a relying party to, and ending every session of a deprovisioned user. The
//! attacks: an open redirect through `post_logout_redirect_uri`, a forged or foreign
//! `id_token_hint`, and a `backchannel_logout_uri` into the broker's own network (SSRF).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{http, rp, upstream_subject, wait_until, Stack};

const APP: &str = "app-logout";
const APP_SECRET: &str = "app-logout-secret";
const APP_REDIRECT: &str = "https://app.example/cb";
const SIGNED_OUT: &str = "https://app.example/signed-out";
const TWO: &str = "app-two";
const TWO_SECRET: &str = "app-two-secret";
const TWO_REDIRECT: &str = "https://two.example/cb";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// What a back-channel receiver was sent: (the client's path name, content type, form body).
type Received = Arc<Mutex<Vec<(String, String, HashMap<String, String>)>>>;

/// A relying party's back-channel logout endpoint on loopback: `/bc/<name>` records each POST
/// and answers the statuses queued for `<name>` (then 200).
struct Receiver {
    url: String,
    received: Received,
    answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let received: Received = Arc::default();
        let answers: Arc<Mutex<HashMap<String, VecDeque<u16>>>> = Arc::default();
        let (r, a) = (received.clone(), answers.clone());
        let endpoint = poem::endpoint::make(move |req: poem::Request| {
            let (received, answers) = (r.clone(), a.clone());
            async move {
                let name = req.uri().path().trim_start_matches("/bc/").to_owned();
                let content_type = req.content_type().unwrap_or("").to_owned();
                let body = req.into_body().into_bytes().await.unwrap_or_default();
                let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
                received.lock().expect("lock").push((name.clone(), content_type, form));
                let status = answers.lock().expect("lock").get_mut(&name).and_then(VecDeque::pop_front).unwrap_or(200);
                poem::Response::builder()
                    .status(poem::http::StatusCode::from_u16(status).expect("status"))
                    .header("cache-control", "no-store")
                    .finish()
            }
        });
        let app = poem::Route::new().at("/bc/*", endpoint);
        let task = tokio::spawn(async move {
            let _ = ssobridge::app::serve(listener, app, std::future::pending::<()>()).await;
        });
        Receiver { url, received, answers, _task: task }
    }

    fn answer_first(&self, name: &str, statuses: &[u16]) {
        self.answers.lock().expect("lock").insert(name.to_owned(), statuses.iter().copied().collect());
    }

    fn received(&self, name: &str) -> Vec<(String, HashMap<String, String>)> {
        let all = self.received.lock().expect("lock");
        all.iter().filter(|(n, _, _)| n == name).map(|(_, ct, form)| (ct.clone(), form.clone())).collect()
    }
}

/// Two clients that take sign-outs; the broker may post to loopback (the receiver).
fn clients_toml(receiver: &str) -> String {
    format!(
        r#"
[outbound]
allow_private_networks = true
[[clients]]
client_id = "{APP}"
client_secret = "{APP_SECRET}"
redirect_uris = ["{APP_REDIRECT}"]
post_logout_redirect_uris = ["{SIGNED_OUT}"]
backchannel_logout_uri = "{receiver}/bc/{APP}"
[[clients]]
client_id = "{TWO}"
client_secret = "{TWO_SECRET}"
redirect_uris = ["{TWO_REDIRECT}"]
backchannel_logout_uri = "{receiver}/bc/{TWO}"
"#
    )
}

async fn stack(receiver: &Receiver) -> Stack {
    Stack::start_with("memory", "lo:", &clients_toml(&receiver.url)).await
}

/// A login at `client` by openid-client as Auth0 drives it, with the end-session URL it builds.
async fn login(stack: &Stack, client: (&str, &str, &str), email: &str, end_session: Value) -> Value {
    let (client_id, secret, redirect_uri) = client;
    let result = rp(&json!({
        "issuer": stack.broker.url,
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uri": redirect_uri,
        "mode": "auth0",
        "params": {"login_hint": email},
        "end_session": end_session,
        "reveal_access_token": true,
    }))
    .await;
    assert_eq!(result["ok"], true, "{result}");
    result
}

async fn userinfo_status(broker: &str, login: &Value) -> u16 {
    let token = login["access_token"].as_str().expect("access_token");
    http().get(format!("{broker}/userinfo")).bearer_auth(token).send().await.expect("userinfo").status().as_u16()
}

fn no_redirect() -> reqwest::Client {
    let _ = http();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// The end-session URL's parameters, for the POST form of the same request.
fn form_of(url: &str) -> (String, Vec<(String, String)>) {
    let url = url::Url::parse(url).expect("url");
    let form = url.query_pairs().into_owned().collect();
    (format!("{}{}", url.origin().ascii_serialization(), url.path()), form)
}

const APP_CLIENT: (&str, &str, &str) = (APP, APP_SECRET, APP_REDIRECT);
const TWO_CLIENT: (&str, &str, &str) = (TWO, TWO_SECRET, TWO_REDIRECT);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rp_initiated_logout_returns_to_the_registered_uri_with_state_and_ends_that_session() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    let broker = &stack.broker.url;
    let discovery: Value = http()
        .get(format!("{broker}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["end_session_endpoint"], format!("{broker}/logout"));
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    assert_eq!(discovery["frontchannel_logout_supported"], false);

    let end = json!({"post_logout_redirect_uri": SIGNED_OUT, "state": "bye-123"});
    let bob = login(&stack, APP_CLIENT, "bob@globex.test", end.clone()).await;
    for method in ["GET", "POST"] {
        let alice = login(&stack, APP_CLIENT, "alice@acme.test", end.clone()).await;
        let sid = alice["id_token_claims"]["sid"].as_str().expect("the ID token carries a sid");
        assert!(sid.len() >= 16, "{sid}");
        assert_eq!(userinfo_status(broker, &alice).await, 200);
        let url = alice["end_session_url"].as_str().expect("openid-client built the end-session URL");
        assert!(url.starts_with(&format!("{broker}/logout?")), "{url}");
        let response = match method {
            "GET" => no_redirect().get(url).send().await.expect("logout"),
            _ => {
                let (endpoint, form) = form_of(url);
                no_redirect().post(endpoint).form(&form).send().await.expect("logout")
            }
        };
        assert_eq!(response.status().as_u16(), 302, "{method}");
        let location = response.headers()["location"].to_str().expect("location");
        assert_eq!(location, format!("{SIGNED_OUT}?state=bye-123"), "{method}: back with state");
        assert_eq!(userinfo_status(broker, &alice).await, 401, "{method}: the session's access token is revoked");
        assert_eq!(userinfo_status(broker, &bob).await, 200, "{method}: another user's session goes on");
        // Logout is idempotent (RP-Initiated Logout §4): the same request again changes nothing.
        let again = no_redirect().get(url).send().await.expect("logout");
        assert_eq!(again.status().as_u16(), 302);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_an_unregistered_or_near_miss_post_logout_redirect_uri_gets_a_page_and_no_redirect() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    let broker = &stack.broker.url;
    let alice = login(&stack, APP_CLIENT, "alice@acme.test", json!({})).await;
    let hint = alice["id_token"].as_str().expect("id_token");
    for target in [
        "https://evil.example/",
        "https://app.example/signed-out/",
        "https://APP.example/signed-out",
        "https://app.example/signed-out?next=https://evil.example",
        "https://app.example/signed-outx",
        "http://app.example/signed-out",
        "https://app.example.evil.example/signed-out",
    ] {
        for params in [
            vec![("id_token_hint", hint), ("post_logout_redirect_uri", target), ("state", "s")],
            vec![("client_id", APP), ("post_logout_redirect_uri", target), ("state", "s")],
        ] {
            let response = no_redirect().get(format!("{broker}/logout")).query(&params).send().await.expect("logout");
            assert_eq!(response.status().as_u16(), 400, "{target}");
            assert!(response.headers().get("location").is_none(), "{target}: never redirected");
            let page = response.text().await.expect("page");
            assert!(page.contains("not registered for this application"), "{target}: {page}");
        }
    }
    // The registered URI without any client named (no hint, no client_id): not redirected either.
    let response =
        no_redirect().get(format!("{broker}/logout")).query(&[("post_logout_redirect_uri", SIGNED_OUT)]).send().await;
    let response = response.expect("logout");
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.headers().get("location").is_none());
    assert_eq!(userinfo_status(broker, &alice).await, 200, "a refused sign-out ends nothing");
    assert!(receiver.received(APP).is_empty(), "and tells no client anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_forged_or_foreign_id_token_hint_ends_nothing() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    let broker = &stack.broker.url;
    let alice = login(&stack, APP_CLIENT, "alice@acme.test", json!({})).await;
    let claims = alice["id_token_claims"].clone();
    let kid = alice["id_token_header"]["kid"].as_str().expect("kid").to_owned();

    // Forged: the real claims and kid, signed with the attacker's own key.
    let forger = ssobridge::tokens::SigningKey::generate_rsa().expect("key").with_kid(&kid).expect("kid");
    let forged = forger.sign_jwt(&claims).expect("sign");
    // Foreign: the upstream's own signature, with iss the upstream.
    let mut foreign_claims = claims.clone();
    foreign_claims["iss"] = json!(stack.upstream.issuer);
    let foreign = stack.upstream.sign(&foreign_claims).await;
    // The broker's own key, but another issuer's name in it.
    let key = stack.broker.state.keys.active(ssobridge::tokens::SigningAlgorithm::Rs256).await.expect("key");
    let mut other_issuer = claims.clone();
    other_issuer["iss"] = json!("https://other-broker.example");
    let misissued = key.sign_jwt(&other_issuer).expect("sign");
    // Tampered: the real token with its payload swapped.
    let real = alice["id_token"].as_str().expect("id_token");
    let parts: Vec<&str> = real.split('.').collect();
    let mut tampered_claims = claims.clone();
    tampered_claims["sid"] = json!("another-sid");
    let payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&tampered_claims).expect("json"),
    );
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);

    for (what, hint) in [("forged", &forged), ("foreign", &foreign), ("misissued", &misissued), ("tampered", &tampered)]
    {
        let response = no_redirect()
            .get(format!("{broker}/logout"))
            .query(&[("id_token_hint", hint.as_str()), ("post_logout_redirect_uri", SIGNED_OUT)])
            .send()
            .await
            .expect("logout");
        assert_eq!(response.status().as_u16(), 400, "{what}");
        assert!(response.headers().get("location").is_none(), "{what}");
        assert_eq!(userinfo_status(broker, &alice).await, 200, "{what}: the session goes on");
    }
    // A real hint for another client than the client_id named: refused too.
    let response = no_redirect()
        .get(format!("{broker}/logout"))
        .query(&[("id_token_hint", real), ("client_id", TWO)])
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(userinfo_status(broker, &alice).await, 200);
    assert!(receiver.received(APP).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_federated_logout_without_an_id_token_hint_is_answered() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    let broker = &stack.broker.url;
    let alice = login(&stack, APP_CLIENT, "alice@acme.test", json!({})).await;
    // Auth0's `/oidc/logout?federated` sends the browser to the connection's
    // end_session_endpoint; what it adds is undocumented. Bare: a page, no redirect.
    let bare = no_redirect().get(format!("{broker}/logout")).send().await.expect("logout");
    assert_eq!(bare.status().as_u16(), 200);
    assert!(bare.headers().get("location").is_none());
    assert!(bare.text().await.expect("page").contains("You are signed out"));
    // With client_id and a registered return URL: back there with state.
    let named = no_redirect()
        .get(format!("{broker}/logout"))
        .query(&[("client_id", APP), ("post_logout_redirect_uri", SIGNED_OUT), ("state", "a0-state")])
        .send()
        .await
        .expect("logout");
    assert_eq!(named.status().as_u16(), 302);
    assert_eq!(named.headers()["location"].to_str().expect("location"), format!("{SIGNED_OUT}?state=a0-state"));
    // By POST as well, with parameters the broker does not define (ignored).
    let posted = no_redirect()
        .post(format!("{broker}/logout"))
        .form(&[("client_id", APP), ("post_logout_redirect_uri", SIGNED_OUT), ("ui_locales", "de"), ("federated", "")])
        .send()
        .await
        .expect("logout");
    assert_eq!(posted.status().as_u16(), 302);
    assert_eq!(posted.headers()["location"].to_str().expect("location"), SIGNED_OUT);
    // Without a hint there is no user to sign out: nothing ended.
    assert_eq!(userinfo_status(broker, &alice).await, 200);
}

/// Checks a logout token as Back-Channel Logout 1.0 §2.6 tells a relying party to: signature
/// by a key of the broker's JWKS in the client's algorithm, `typ`, `iss`, `aud`, `iat`/`exp`,
/// `jti`, the event, `sid` and `sub`, and no `nonce`. Returns the claims.
async fn verify_logout_token(broker: &str, token: &str, client_id: &str, sid: &str, sub: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        http().get(format!("{broker}/jwks")).send().await.expect("jwks").json().await.expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256, "the client's id_token_signed_response_alg");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("kid published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[broker]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp", "jti"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the logout token verifies").claims;
    let now = ssobridge::clock::now_secs();
    let (iat, exp) = (claims["iat"].as_u64().expect("iat"), claims["exp"].as_u64().expect("exp"));
    assert!(iat <= now + 5 && iat + 60 >= now, "iat is now: {iat} vs {now}");
    assert!(exp > now && exp <= iat + 120, "at most two minutes: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16), "{claims}");
    assert_eq!(claims["events"], json!({EVENT: {}}));
    assert_eq!(claims["sid"], sid, "the sid of the ID token of that session");
    assert_eq!(claims["sub"], sub);
    assert!(claims.get("nonce").is_none(), "a logout token must not pass for an ID token");
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backchannel_logout_tokens_verify_as_a_relying_party_checks_them_and_a_503_is_retried() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    let broker = &stack.broker.url;
    receiver.answer_first(APP, &[503]);
    let end = json!({"post_logout_redirect_uri": SIGNED_OUT, "state": "s"});
    let at_app = login(&stack, APP_CLIENT, "alice@acme.test", end).await;
    let at_two = login(&stack, TWO_CLIENT, "alice@acme.test", json!({})).await;
    let bob_at_two = login(&stack, TWO_CLIENT, "bob@globex.test", json!({})).await;

    let url = at_app["end_session_url"].as_str().expect("url");
    let response = no_redirect().get(url).send().await.expect("logout");
    assert_eq!(response.status().as_u16(), 302);

    // The initiating client answered 503 first: the queue tries again (first backoff 2 s).
    wait_until("two deliveries to the initiating client", Duration::from_secs(20), || async {
        receiver.received(APP).len() >= 2
    })
    .await;
    wait_until("a delivery to the user's other client", Duration::from_secs(20), || async {
        !receiver.received(TWO).is_empty()
    })
    .await;
    let mut jtis = Vec::new();
    for (name, index, login) in [(APP, 0, &at_app), (APP, 1, &at_app), (TWO, 0, &at_two)] {
        let (content_type, form) = receiver.received(name)[index].clone();
        assert_eq!(content_type, "application/x-www-form-urlencoded");
        let claims = &login["id_token_claims"];
        let token = form.get("logout_token").expect("logout_token");
        let verified = verify_logout_token(
            broker,
            token,
            name,
            claims["sid"].as_str().expect("sid"),
            claims["sub"].as_str().expect("sub"),
        )
        .await;
        jtis.push(verified["jti"].as_str().expect("jti").to_owned());
    }
    assert_ne!(jtis[0], jtis[1], "each attempt mints a fresh token");
    assert_eq!(receiver.received(TWO).len(), 1, "bob's session at the same client is not signed out");
    assert_eq!(userinfo_status(broker, &at_two).await, 401, "the user's session at the other client ended too");
    assert_eq!(userinfo_status(broker, &bob_at_two).await, 200);
    wait_until("the queue is empty", Duration::from_secs(10), || async {
        stack.broker.state.jobs.list().await.expect("jobs").is_empty()
    })
    .await;
}

/// Back-Channel Logout 1.0 §2.8: a 400 is the relying party refusing the token, not an outage:
/// it is not sent again and again, but kept as a failed job with the reason for an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_token_a_client_refuses_with_400_is_not_retried_but_listed_as_failed() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    receiver.answer_first(APP, &[400]);
    let end = json!({"post_logout_redirect_uri": SIGNED_OUT, "state": "s"});
    let at_app = login(&stack, APP_CLIENT, "alice@acme.test", end).await;
    let url = at_app["end_session_url"].as_str().expect("url");
    assert_eq!(no_redirect().get(url).send().await.expect("logout").status().as_u16(), 302);
    let jobs = &stack.broker.state.jobs;
    wait_until("the refused delivery failed", Duration::from_secs(10), || async {
        jobs.list().await.expect("jobs").iter().any(|job| job.state == ssobridge::jobs::JobState::Failed)
    })
    .await;
    let failed = jobs.list().await.expect("jobs");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].kind.as_str(), failed[0].attempts), ("backchannel_logout", 1));
    assert!(failed[0].last_error.as_deref().is_some_and(|e| e.contains("refused (400)")), "{failed:?}");
    assert_eq!(receiver.received(APP).len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_sessions_revokes_every_session_of_a_deprovisioned_user_and_tells_their_clients() {
    let receiver = Receiver::start().await;
    let stack = stack(&receiver).await;
    let broker = &stack.broker.url;
    let first = login(&stack, APP_CLIENT, "alice@acme.test", json!({})).await;
    let second = login(&stack, TWO_CLIENT, "alice@acme.test", json!({})).await;
    let bob = login(&stack, APP_CLIENT, "bob@globex.test", json!({})).await;

    let alice = upstream_subject("conn_acme1", "alice@acme.test");
    let ended = ssobridge::login::logout::end_user_sessions(&stack.broker.state, &alice).await.expect("ended");
    assert_eq!(ended, 2);
    for login in [&first, &second] {
        assert_eq!(userinfo_status(broker, login).await, 401);
    }
    assert_eq!(userinfo_status(broker, &bob).await, 200, "another user is untouched");
    wait_until("both clients told", Duration::from_secs(20), || async {
        !receiver.received(APP).is_empty() && !receiver.received(TWO).is_empty()
    })
    .await;
    let (_, form) = receiver.received(TWO)[0].clone();
    let claims = &second["id_token_claims"];
    verify_logout_token(
        broker,
        form.get("logout_token").expect("token"),
        TWO,
        claims["sid"].as_str().expect("sid"),
        claims["sub"].as_str().expect("sub"),
    )
    .await;
    let again = ssobridge::login::logout::end_user_sessions(&stack.broker.state, &alice).await.expect("again");
    assert_eq!(again, 0, "nothing left to end");
    // A later login (after reactivation) opens a session that works.
    let later = login(&stack, APP_CLIENT, "alice@acme.test", json!({})).await;
    assert_eq!(userinfo_status(broker, &later).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_backchannel_logout_uri_in_a_private_network_is_refused_at_registration() {
    let socket = crate::common::BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "ssrf:", &upstream.issuer);
    let broker = socket.serve_with_admin(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let admin = http();
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:6379/",
        "https://10.0.0.7/backchannel",
        "https://[fd00:ec2::254]/",
        "https://localhost/backchannel",
        "http://rp.example/backchannel",
    ] {
        let response = admin
            .post(format!("{}/admin/clients", broker.url))
            .bearer_auth(crate::common::ADMIN_WRITE_TOKEN)
            .json(&json!({"redirect_uris": ["https://rp.example/cb"], "backchannel_logout_uri": target}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status().as_u16(), 422, "{target}");
        let problem: Value = response.json().await.expect("problem");
        assert!(problem.to_string().contains("/backchannel_logout_uri"), "{target}: {problem}");
    }
    let accepted = admin
        .post(format!("{}/admin/clients", broker.url))
        .bearer_auth(crate::common::ADMIN_WRITE_TOKEN)
        .json(&json!({
            "redirect_uris": ["https://rp.example/cb"],
            "post_logout_redirect_uris": ["https://rp.example/bye"],
            "backchannel_logout_uri": "https://rp.example/backchannel",
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(accepted.status().as_u16(), 201);
    let created: Value = accepted.json().await.expect("json");
    assert_eq!(created["client"]["post_logout_redirect_uris"], json!(["https://rp.example/bye"]));
    assert_eq!(created["client"]["backchannel_logout_uri"], "https://rp.example/backchannel");
}
