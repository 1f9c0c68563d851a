//! Routes from Scalekit (issue 14, part 3), against the Scalekit simulator's management API and
//! its portal, the same path the demo takes: full sync (pagination, precedence of the
//! operator's routes, removal, status and metrics), signed webhooks (applied at once on every
//! instance; forged, unsigned, stale and replayed deliveries), and the miss lookup.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use ssobridge::demo::simulator::{self, DemoOnly, Simulator, SimulatorSettings};
use ssobridge::secret::Secret;
use ssobridge::tokens::SigningKey;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{
    authorize_url, query, redeem, verify_id_token, Broker, BrokerSocket, Browser, TestClient, ADMIN_READ_TOKEN,
    ADMIN_WRITE_TOKEN, AUTH0_CLIENT, UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET, VERIFIER,
};

/// The webhook secret of these tests ("test-webhook-secret-0123456789" in base64).
const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// The simulator in this process (its counters are what the tests count), on its own port.
struct Sim {
    sim: Arc<Simulator>,
    issuer: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sim {
    /// `port` 0 picks one. Logins come back to `callbacks`; portal changes go to `webhook` as
    /// signed webhooks, if given.
    async fn start(port: u16, callbacks: &[String], webhook: Option<String>) -> Sim {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        let settings = SimulatorSettings {
            issuer: issuer.clone(),
            client_id: UPSTREAM_CLIENT_ID.to_owned(),
            client_secret: Secret::new(UPSTREAM_CLIENT_SECRET),
            redirect_uris: callbacks.to_vec(),
            initiate_login_uri: None,
            organization_metadata: Vec::new(),
            iss_on_redirect: false,
            webhook_secret: webhook.as_ref().map(|_| Secret::new(WEBHOOK_SECRET)),
            webhook_url: webhook,
        };
        let sim = Arc::new(Simulator::new(DemoOnly::claim().expect("not production"), settings).expect("simulator"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = sim.clone();
        let task = tokio::spawn(async move {
            let _ = simulator::serve(serving, listener, async move {
                let _ = stopped.await;
            })
            .await;
        });
        Sim { sim, issuer, stop: Some(stop), task }
    }

    fn port(&self) -> u16 {
        url::Url::parse(&self.issuer).expect("issuer").port().expect("port")
    }

    fn requests(&self, endpoint: &str) -> u64 {
        self.sim.requests(endpoint)
    }

    /// The portal's "Add a domain": `organization` "" makes a new one named after the domain.
    async fn add(&self, domain: &str, organization: &str, verification: &str) -> String {
        let form = [("domain", domain), ("organization_id", organization), ("verification", verification)];
        let response = crate::common::http()
            .post(format!("{}/portal/domains", self.issuer))
            .form(&form)
            .send()
            .await
            .expect("add");
        assert_eq!(response.status(), 200, "add {domain}");
        response.text().await.expect("page")
    }

    /// The portal's "Remove a domain".
    async fn remove(&self, domain: &str) -> String {
        let response = crate::common::http()
            .post(format!("{}/portal/domains/delete", self.issuer))
            .form(&[("domain", domain)])
            .send()
            .await
            .expect("remove");
        assert_eq!(response.status(), 200, "remove {domain}");
        response.text().await.expect("page")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A broker against `issuer` with `[scalekit]` set to `scalekit` (and the webhook secret), the
/// admin API under /admin, `extra` before it (routes).
async fn broker(socket: BrokerSocket, store: &str, prefix: &str, issuer: &str, scalekit: &str, extra: &str) -> Broker {
    let toml = crate::common::broker_toml(&socket.url, store, prefix, issuer)
        + extra
        + &format!("\n[scalekit]\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n{scalekit}\n");
    socket.serve_with_admin(&toml, SigningKey::generate_rsa().expect("key")).await
}

/// Where the broker's `/authorize` for `email` sends the browser first.
async fn first_hop(broker: &Broker, email: &str) -> url::Url {
    let url = authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", email)]);
    let response = Browser::default().get(&url).await;
    assert_eq!(response.status(), 302, "{email}");
    url::Url::parse(response.headers()["location"].to_str().expect("location")).expect("location url")
}

/// A whole login of `email` through `broker`: the client's callback parameters.
async fn login(broker: &Broker, email: &str) -> HashMap<String, String> {
    let url = authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", email)]);
    query(&Browser::default().follow_until(&url, AUTH0_CLIENT.redirect_uri).await.expect("reach the client"))
}

/// A login that must succeed: the verified ID token's claims.
async fn signed_in(broker: &Broker, email: &str) -> Value {
    let params = login(broker, email).await;
    let code = params.get("code").unwrap_or_else(|| panic!("{email} signs in: {params:?}"));
    let (status, tokens) = redeem(&broker.url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    verify_id_token(&broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id).await
}

/// The route table through the admin API, by domain.
async fn routes(broker: &Broker) -> HashMap<String, Value> {
    let page: Value = crate::common::http()
        .get(format!("{}/admin/routes?limit=200", broker.url))
        .bearer_auth(ADMIN_READ_TOKEN)
        .send()
        .await
        .expect("routes")
        .json()
        .await
        .expect("json");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| (r["domain"].as_str().expect("domain").to_owned(), r.clone()))
        .collect()
}

async fn admin_json(broker_url: &str, path: &str) -> Value {
    crate::common::http()
        .get(format!("{broker_url}/admin{path}"))
        .bearer_auth(ADMIN_READ_TOKEN)
        .send()
        .await
        .expect(path)
        .json()
        .await
        .expect(path)
}

/// The operator's own routes: a config route and an admin-API route for domains Scalekit also has.
const CONFIG_ROUTE: &str = r#"
[[routes]]
domain = "example.com"
organization_id = "org_example_com"
connection_id = "conn_example_com"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_routes_verified_domains_and_never_touches_the_operators_routes() {
    let socket = BrokerSocket::bind().await;
    let sim = Sim::start(0, &[socket.callback()], None).await;
    let broker = broker(socket, "memory", "sync:", &sim.issuer, "sync_interval_seconds = 0", CONFIG_ROUTE).await;
    // The operator routes example.org elsewhere through the admin API.
    let created = crate::common::http()
        .post(format!("{}/admin/routes", broker.url))
        .bearer_auth(ADMIN_WRITE_TOKEN)
        .json(&json!({"domain": "example.org", "organization_id": "org_chosen_by_the_operator"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    for (domain, verification) in [
        ("dns.example", "dns"),
        ("admin.example", "admin"),
        ("pending.example", "pending"),
        ("failed.example", "failed"),
    ] {
        sim.add(domain, "", verification).await;
    }

    let report = broker.state.sync_routes(true).await.expect("a report");
    assert_eq!(report.error, None);
    let changes = report.changes;
    // The four fixtures and the four new organizations, one domain each.
    assert_eq!((changes.organizations, changes.domains, changes.unverified), (8, 8, 2), "{changes:?}");
    // no-sso, sso-off, dns and admin added; example.com and example.org are the operator's.
    assert_eq!((changes.added, changes.kept, changes.removed), (4, 2, 0), "{changes:?}");
    let table = routes(&broker).await;
    let synced = |domain: &str, organization: &str| {
        json!({"domain": domain, "organization_id": organization, "clients": [], "include_subdomains": false,
               "verified": true, "source": "synced"})
    };
    assert_eq!(table["dns.example"], synced("dns.example", "org_dns_example"), "verified by DNS");
    assert_eq!(table["admin.example"], synced("admin.example", "org_admin_example"), "verified by an admin");
    assert!(!table.contains_key("pending.example") && !table.contains_key("failed.example"), "{table:?}");
    assert_eq!(
        (&table["example.com"]["source"], &table["example.com"]["connection_id"]),
        (&json!("config"), &json!("conn_example_com")),
        "the config route stays as written"
    );
    assert_eq!(
        (&table["example.org"]["source"], &table["example.org"]["organization_id"]),
        (&json!("api"), &json!("org_chosen_by_the_operator")),
        "the admin route stays as written"
    );

    // A synced route works for logins, to the organization, and vouches for the email.
    let claims = signed_in(&broker, "someone@dns.example").await;
    assert_eq!((&claims["org_id"], &claims["connection_id"]), (&json!("org_dns_example"), &json!("conn_dns_example")));
    assert_eq!(claims["email_verified"], true, "a verified synced route");
    let hop = first_hop(&broker, "someone@admin.example").await;
    assert_eq!(query(&hop).get("organization_id").map(String::as_str), Some("org_admin_example"));

    // Removed at Scalekit: admin.example, and example.com too (the operator still routes it).
    sim.remove("admin.example").await;
    sim.remove("example.com").await;
    let changes = broker.state.sync_routes(true).await.expect("a report").changes;
    assert_eq!((changes.removed, changes.added, changes.updated), (1, 0, 0), "{changes:?}");
    let table = routes(&broker).await;
    assert!(!table.contains_key("admin.example"), "its synced route is gone");
    assert_eq!(table["example.com"]["source"], "config", "the operator's route is not Scalekit's to remove");
    assert_eq!(table["example.org"]["organization_id"], "org_chosen_by_the_operator");
    assert!(table.contains_key("dns.example"));
    let hop = first_hop(&broker, "someone@admin.example").await;
    assert!(!query(&hop).contains_key("organization_id"), "no route any more: {hop}");

    // An admin change takes a synced route over: the next sync leaves it alone.
    let etag = crate::common::http()
        .get(format!("{}/admin/routes/dns.example", broker.url))
        .bearer_auth(ADMIN_READ_TOKEN)
        .send()
        .await
        .expect("get")
        .headers()["etag"]
        .to_str()
        .expect("etag")
        .to_owned();
    let patched: Value = crate::common::http()
        .patch(format!("{}/admin/routes/dns.example", broker.url))
        .bearer_auth(ADMIN_WRITE_TOKEN)
        .header("if-match", etag)
        .json(&json!({"include_subdomains": true}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(patched["source"], "api");
    sim.remove("dns.example").await;
    broker.state.sync_routes(true).await.expect("a report");
    assert_eq!(routes(&broker).await["dns.example"]["source"], "api", "taken over, kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_reads_every_page_of_organizations_and_of_domains() {
    let socket = BrokerSocket::bind().await;
    let sim = Sim::start(0, &[socket.callback()], None).await;
    let broker = broker(socket, "memory", "pages:", &sim.issuer, "sync_interval_seconds = 0", "").await;
    // The readiness check's own client_credentials grant at start (its token is not the API's).
    crate::common::wait_until("the credentials checked at start", Duration::from_secs(10), || async {
        broker.state.readiness.report().credentials != "starting"
    })
    .await;
    let checks = sim.requests("token");
    assert_eq!(checks, 1, "one grant to check the credentials");
    // 105 more organizations (two pages of 100), and one with 101 more domains (two pages).
    for i in 0..105 {
        sim.add(&format!("bulk-{i}.example"), "", "admin").await;
    }
    for i in 0..101 {
        sim.add(&format!("extra-{i}.example"), "org_bulk_0_example", "admin").await;
    }
    let report = broker.state.sync_routes(true).await.expect("a report");
    assert_eq!(report.error, None);
    assert_eq!((report.changes.organizations, report.changes.domains), (109, 4 + 105 + 101), "{report:?}");
    assert_eq!(report.routes.synced, 4 + 105 + 101);
    assert_eq!(sim.requests("organizations"), 2, "page_token until next_page_token is empty");
    assert_eq!(sim.requests("domains"), 109 + 1, "page_number until a short page");
    assert_eq!(sim.requests("token") - checks, 1, "one client_credentials token for the API, cached");
    let last = first_hop(&broker, "someone@bulk-104.example").await;
    assert_eq!(query(&last).get("organization_id").map(String::as_str), Some("org_bulk_104_example"));
    let deepest = first_hop(&broker, "someone@extra-100.example").await;
    assert_eq!(query(&deepest).get("organization_id").map(String::as_str), Some("org_bulk_0_example"));

    // A token Scalekit no longer accepts: a 401 fetches a new one, and the sync goes on.
    sim.sim.expire_api_tokens();
    let report = broker.state.sync_routes(true).await.expect("a report");
    assert_eq!((report.error, report.changes.added, report.changes.removed), (None, 0, 0));
    assert_eq!(sim.requests("token") - checks, 2);
}

/// A delivery as Scalekit sends it: the envelope of research/scalekit.md §8.2.
fn domain_event(kind: &str, organization_id: &str, domain: &str) -> String {
    json!({
        "spec_version": "1", "id": "evt_12345678901234567", "type": kind, "object": "Organization",
        "occurred_at": "2026-01-01T00:00:00Z", "environment_id": "env_1", "organization_id": organization_id,
        "data": {"id": "dom_1", "domain": domain, "domain_type": "ORGANIZATION_DOMAIN",
                 "organization_id": organization_id, "verification_status": "VERIFIED"},
        "display_name": "Organization Domain Created",
    })
    .to_string()
}

fn sign(id: &str, timestamp: u64, body: &str) -> String {
    let key = ssobridge::webhooks::signature::decode_secret(WEBHOOK_SECRET).expect("secret");
    ssobridge::webhooks::signature::sign(&key, id, timestamp, body.as_bytes())
}

/// The broker's answer to a webhook delivery.
struct Delivery {
    status: u16,
    /// The JSON body (null when there is none).
    answer: Value,
}

/// POSTs `body` to the broker's webhook endpoint with the given headers.
async fn deliver(broker: &str, headers: &[(&str, String)], body: &str) -> Delivery {
    let mut request = crate::common::http()
        .post(format!("{broker}/webhooks/scalekit"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("deliver");
    let status = response.status().as_u16();
    Delivery { status, answer: response.json().await.unwrap_or(Value::Null) }
}

/// A correctly signed delivery of `body` as `id`, signed now.
async fn deliver_signed(broker: &str, id: &str, body: &str) -> Delivery {
    let timestamp = now();
    let headers = [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", sign(id, timestamp, body)),
    ];
    deliver(broker, &headers, body).await
}

/// Polls `check` until it holds, for at most `within`; says how long it took.
async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, check: impl FnMut() -> F) -> Duration {
    let started = Instant::now();
    crate::common::wait_until("the change", within, check).await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_from_the_portal_applies_at_once_on_every_instance() {
    let redis = crate::common::Redis::start().await;
    let (socket_a, socket_b) = (BrokerSocket::bind().await, BrokerSocket::bind().await);
    let webhook = format!("{}/webhooks/scalekit", socket_a.url);
    let sim = Sim::start(0, &[socket_a.callback(), socket_b.callback()], Some(webhook)).await;
    let scalekit = "sync_interval_seconds = 0";
    let a = broker(socket_a, &redis.url(), "hook:", &sim.issuer, scalekit, "").await;
    let b = broker(socket_b, &redis.url(), "hook:", &sim.issuer, scalekit, "").await;
    // Instance B has looked newco.example up and found no route (cached for 5 s).
    let before = first_hop(&b, "someone@newco.example").await;
    assert!(!query(&before).contains_key("organization_id"), "no route yet: {before}");
    let (domains_before, b_before) = (sim.requests("domains"), routes(&b).await.len());

    let page = sim.add("newco.example", "", "dns").await;
    // organization.created, organization.sso_enabled, organization.domain_created (PENDING),
    // organization.domain_dns_verification_success: each delivered and applied.
    assert_eq!(page.matches("200 OK").count(), 4, "{page}");
    assert_eq!(sim.requests("domains"), domains_before + 4, "each event re-read the organization's domains");
    // At once on the instance that received it ...
    let claims = signed_in(&a, "someone@newco.example").await;
    assert_eq!((&claims["org_id"], &claims["email_verified"]), (&json!("org_newco_example"), &json!(true)));
    // ... and on the other well within its cache time (the routes' generation moved).
    let took = eventually(Duration::from_secs(2), || async {
        query(&first_hop(&b, "someone@newco.example").await).get("organization_id").map(String::as_str)
            == Some("org_newco_example")
    })
    .await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(routes(&b).await.len(), b_before + 1);
    let claims = signed_in(&b, "someone@newco.example").await;
    assert_eq!(claims["org_id"], "org_newco_example");

    // Removed in the portal: the route goes everywhere, as fast.
    sim.remove("newco.example").await;
    eventually(Duration::from_secs(2), || async {
        !query(&first_hop(&b, "someone@newco.example").await).contains_key("organization_id")
    })
    .await;

    // /admin/status on either instance shows the last webhook; metrics count it.
    let status = admin_json(&b.url, "/status").await;
    let last = &status["route_sync"]["last_webhook"];
    assert_eq!(
        (&last["event_type"], &last["organization_id"]),
        (&json!("organization.domain_deleted"), &json!("org_newco_example"))
    );
    assert_eq!(last["changes"]["routes_removed"], 1, "{status}");
    assert_eq!(status["route_sync"]["webhooks_enabled"], true);
    let metrics =
        crate::common::http().get(format!("{}/metrics", a.url)).send().await.expect("m").text().await.expect("t");
    assert!(
        metrics.contains(
            "ssobridge_webhooks_total{event=\"organization.domain_dns_verification_success\",outcome=\"applied\"}"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_unsigned_and_stale_webhooks_change_nothing() {
    let socket = BrokerSocket::bind().await;
    // No webhook from the simulator: only what the attacker (and last, Scalekit) sends arrives.
    let sim = Sim::start(0, &[socket.callback()], None).await;
    let broker = broker(socket, "memory", "attack:", &sim.issuer, "sync_interval_seconds = 0", "").await;
    sim.add("sneaky.example", "", "admin").await;
    let body = domain_event("organization.domain_created", "org_sneaky_example", "sneaky.example");
    let calls = sim.requests("domains");
    let unchanged = || async {
        assert_eq!(sim.requests("domains"), calls, "no call to Scalekit was made for the attacker");
        assert!(!routes(&broker).await.contains_key("sneaky.example"), "no route was written");
    };

    // The attacker signs with a secret of their own.
    let timestamp = now();
    let forged = {
        let key =
            ssobridge::webhooks::signature::decode_secret("whsec_YXR0YWNrZXJzLW93bi1zZWNyZXQtMDEyMzQ1").expect("k");
        ssobridge::webhooks::signature::sign(&key, "msg_forged", timestamp, body.as_bytes())
    };
    let headers = [
        ("webhook-id", "msg_forged".to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", forged),
    ];
    assert_eq!(deliver(&broker.url, &headers, &body).await.status, 401, "a forged signature");
    unchanged().await;

    // A genuine delivery whose body the attacker changed on the way.
    let genuine = sign("msg_tampered", timestamp, &body);
    let tampered = body.replace("sneaky.example", "victim.example");
    let headers = [
        ("webhook-id", "msg_tampered".to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", genuine),
    ];
    assert_eq!(deliver(&broker.url, &headers, &tampered).await.status, 401, "a body that is not the one signed");
    unchanged().await;

    // No signature at all, or no headers.
    let headers = [("webhook-id", "msg_unsigned".to_owned()), ("webhook-timestamp", timestamp.to_string())];
    assert_eq!(deliver(&broker.url, &headers, &body).await.status, 400, "no webhook-signature");
    assert_eq!(deliver(&broker.url, &[], &body).await.status, 400, "no headers");
    unchanged().await;

    // A delivery captured 6 minutes ago, correctly signed then, replayed now.
    let old = now() - 6 * 60;
    let headers = [
        ("webhook-id", "msg_captured".to_owned()),
        ("webhook-timestamp", old.to_string()),
        ("webhook-signature", sign("msg_captured", old, &body)),
    ];
    assert_eq!(deliver(&broker.url, &headers, &body).await.status, 401, "older than 5 minutes");
    unchanged().await;

    // The same event, signed by Scalekit now, is applied.
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_genuine", &body).await;
    assert_eq!((status, &answer["status"]), (200, &json!("applied")));
    assert_eq!(sim.requests("domains"), calls + 1);
    assert_eq!(routes(&broker).await["sneaky.example"]["source"], "synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_webhook_is_applied_once() {
    let socket = BrokerSocket::bind().await;
    let sim = Sim::start(0, &[socket.callback()], None).await;
    let broker = broker(socket, "memory", "replay:", &sim.issuer, "sync_interval_seconds = 0", "").await;
    sim.add("once.example", "", "admin").await;
    let body = domain_event("organization.domain_dns_verification_success", "org_once_example", "once.example");
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_once", &body).await;
    assert_eq!((status, &answer["status"]), (200, &json!("applied")));
    assert!(routes(&broker).await.contains_key("once.example"));
    let calls = sim.requests("domains");

    // The domain goes away at Scalekit; then the first message comes again (as Svix retries:
    // the same webhook-id, a fresh timestamp and signature). Applied again, it would remove
    // the route; it is acknowledged and changes nothing.
    sim.remove("once.example").await;
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_once", &body).await;
    assert_eq!((status, &answer["status"]), (200, &json!("duplicate")));
    assert_eq!(sim.requests("domains"), calls, "not applied again");
    assert!(routes(&broker).await.contains_key("once.example"));

    // Scalekit's own event for the removal is a new message, and is applied.
    let deleted = domain_event("organization.domain_deleted", "org_once_example", "once.example");
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_deleted", &deleted).await;
    assert_eq!((status, &answer["status"]), (200, &json!("applied")));
    assert!(!routes(&broker).await.contains_key("once.example"));

    // Types ssobridge does not act on are acknowledged and ignored.
    let login = json!({"type": "user.login", "organization_id": "org_once_example", "data": {}}).to_string();
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_login", &login).await;
    assert_eq!((status, &answer["status"]), (200, &json!("ignored")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_cannot_be_applied_is_left_for_scalekits_retry() {
    let socket = BrokerSocket::bind().await;
    let callback = socket.callback();
    let sim = Sim::start(0, std::slice::from_ref(&callback), None).await;
    let port = sim.port();
    let broker = broker(socket, "memory", "retry:", &sim.issuer, "sync_interval_seconds = 0", "").await;
    let body = domain_event("organization.domain_created", "org_later_example", "later.example");
    let synced = broker.state.sync_routes(true).await.expect("a report");
    // Scalekit's API is down: the change cannot be read, so the delivery fails and is not
    // remembered as done.
    sim.stop().await;
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_retry", &body).await;
    assert_eq!((status, &answer["status"]), (503, &json!("retry")));
    // A full sync fails too, changes nothing, and says so in /admin/status and the metrics.
    let failed = broker.state.sync_routes(true).await.expect("a report");
    assert!(failed.error.as_deref().is_some_and(|e| e.contains("unreachable")), "{failed:?}");
    assert_eq!(failed.routes, synced.routes, "routes unchanged");
    let last = admin_json(&broker.url, "/status").await["route_sync"]["last_sync"].clone();
    assert_eq!((&last["ok"], &last["last_success_at"]), (&json!(false), &json!(synced.finished_at)), "{last}");
    assert!(last["error"].as_str().is_some_and(|e| e.contains("unreachable")), "{last}");
    let metrics =
        crate::common::http().get(format!("{}/metrics", broker.url)).send().await.expect("m").text().await.expect("t");
    assert!(metrics.contains("ssobridge_route_sync_total{outcome=\"error\"}"), "{metrics}");
    // It comes back; Scalekit retries the same message, which is applied then.
    let sim = Sim::start(port, &[callback], None).await;
    sim.add("later.example", "", "admin").await;
    let Delivery { status, answer } = deliver_signed(&broker.url, "msg_retry", &body).await;
    assert_eq!((status, &answer["status"]), (200, &json!("applied")));
    assert!(routes(&broker).await.contains_key("later.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_webhook_secret_the_endpoint_does_not_exist() {
    let socket = BrokerSocket::bind().await;
    let sim = Sim::start(0, &[socket.callback()], None).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "off:", &sim.issuer)
        + "\n[scalekit]\nsync_interval_seconds = 0\n";
    let broker = socket.serve(&toml, SigningKey::generate_rsa().expect("key")).await;
    let body = domain_event("organization.domain_created", "org_example_com", "example.com");
    assert_eq!(deliver_signed(&broker.url, "msg_1", &body).await.status, 404);
}

/// A client limited to one organization, to show a lookup cannot route past that.
const LIMITED_CLIENT: &str = r#"
[[clients]]
client_id = "limited"
client_secret = "limited-client-secret"
redirect_uris = ["https://limited.example/callback"]
allowed_organizations = ["org_example_com"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_asked_of_scalekit_once_and_a_domain_it_does_not_know_stays_here() {
    let socket = BrokerSocket::bind().await;
    let sim = Sim::start(0, &[socket.callback()], None).await;
    let scalekit = "sync_interval_seconds = 0\nlookup_on_miss = true\nlookup_cache_seconds = 300";
    let broker = broker(socket, "memory", "miss:", &sim.issuer, scalekit, LIMITED_CLIENT).await;
    // Added at Scalekit, not synced, no webhook: the route table misses it.
    sim.add("lookedup.example", "", "admin").await;

    let hop = first_hop(&broker, "someone@lookedup.example").await;
    assert_eq!(
        query(&hop).get("connection_id").map(String::as_str),
        Some("conn_lookedup_example"),
        "routed by Scalekit's answer: {hop}"
    );
    assert_eq!(sim.requests("connections"), 1);
    let claims = signed_in(&broker, "someone@lookedup.example").await;
    assert_eq!(claims["org_id"], "org_lookedup_example");
    assert_eq!(claims["email_verified"], false, "a lookup is no verified route of the organization");
    assert_eq!(sim.requests("connections"), 1, "the positive answer is cached");

    // A domain Scalekit does not know: denied here, never sent to Scalekit's error page.
    let authorizations = sim.requests("authorize");
    for _ in 0..3 {
        let params = login(&broker, "eve@nowhere.example").await;
        assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{params:?}");
        assert!(params.get("error_description").is_some_and(|d| d.contains("nowhere.example")), "{params:?}");
    }
    assert_eq!(sim.requests("authorize"), authorizations, "the user was not sent upstream");
    assert_eq!(sim.requests("connections"), 2, "the negative answer is cached");

    // Typed at the hosted page, it is asked for again with a reason.
    let browser = Browser::default();
    let url = authorize_url(&broker.url, AUTH0_CLIENT, None, &[]);
    let html = browser.get(&url).await.text().await.expect("page");
    let flow = crate::common::hidden_input(&html, "flow").expect("flow");
    let again = browser
        .post_form(&format!("{}/login/email", broker.url), &[("flow", &flow), ("email", "eve@nowhere.example")])
        .await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.expect("page").contains("Single sign-on is not set up for nowhere.example"));
    assert_eq!(sim.requests("authorize"), authorizations);

    // A lookup routes no further than the client may go.
    let limited = TestClient {
        client_id: "limited",
        secret: "limited-client-secret",
        redirect_uri: "https://limited.example/callback",
    };
    let url = authorize_url(&broker.url, limited, None, &[("login_hint", "someone@lookedup.example")]);
    let landed = Browser::default().follow_until(&url, limited.redirect_uri).await.expect("back to the client");
    assert_eq!(query(&landed).get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(sim.requests("authorize"), authorizations);

    // A route change anywhere (here a webhook) drops the cached answers.
    let body = domain_event("organization.updated", "org_lookedup_example", "lookedup.example");
    assert_eq!(deliver_signed(&broker.url, "msg_update", &body).await.status, 200);
    first_hop(&broker, "someone@nowhere.example").await;
    assert_eq!(sim.requests("connections"), 3);
}

/// `ssobridge serve` and `ssobridge simulator`, both the binaries, as an operator runs them: the
/// sync at start and on its interval, `/admin/status` and `/metrics`, and the portal's webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_periodically_and_takes_the_standalone_simulators_webhooks() {
    let dir = crate::common::tempdir::TempDir::new("route-sync");
    let port = crate::common::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .args([
            "simulator",
            "--port",
            "0",
            "--client-id",
            UPSTREAM_CLIENT_ID,
            "--client-secret",
            UPSTREAM_CLIENT_SECRET,
        ])
        .args(["--redirect-uri", &format!("{public_url}/callback")])
        .args(["--webhook-url", &format!("{public_url}/webhooks/scalekit"), "--webhook-secret", WEBHOOK_SECRET])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("simulator");
    let ready = crate::common::wait_for_line(&mut sim, "simulator", |l| l.starts_with("READY ")).await.expect("ready");
    let issuer = serde_json::from_str::<Value>(&ready["READY ".len()..]).expect("json")["issuer"]
        .as_str()
        .expect("issuer")
        .to_owned();
    let key = dir.path().join("signing.pem");
    std::fs::write(&key, ssobridge::tokens::generate_rsa_pem().expect("pem")).expect("write");
    let toml = crate::common::broker_toml(&public_url, "memory", "serve:", &issuer).replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[signing]\nkey_file = \"{}\"\n[admin]\nlisten = \"public\"\nread_tokens_sha256 = [\"{}\"]",
            key.display(),
            ssobridge::tokens::sha256_hex(ADMIN_READ_TOKEN)
        ),
    ) + &format!("\n[scalekit]\nsync_interval_seconds = 1\nwebhook_secret = \"{WEBHOOK_SECRET}\"\n");
    let config = dir.path().join("ssobridge.toml");
    std::fs::write(&config, toml).expect("write");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .args(["serve", "--config"])
        .arg(&config)
        .env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let logs = Arc::new(Mutex::new(Vec::<String>::new()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (mut stdout, mut stderr) = (
        BufReader::new(serve.stdout.take().expect("stdout")).lines(),
        BufReader::new(serve.stderr.take().expect("stderr")).lines(),
    );
    let sink = logs.clone();
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        while let Ok(Some(line)) = stdout.next_line().await {
            if line.contains("ssobridge serving") {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            sink.lock().expect("logs").push(line);
        }
    });
    let sink = logs.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            sink.lock().expect("logs").push(line);
        }
    });
    tokio::time::timeout(crate::common::STARTUP_DEADLINE, ready_rx).await.expect("ready in time").expect("ready");

    // The sync at start: the simulator's four fixture organizations, each domain a synced route.
    let status = || admin_json(&public_url, "/status");
    eventually(Duration::from_secs(10), || async { !status().await["route_sync"]["last_sync"].is_null() }).await;
    let first = status().await["route_sync"]["last_sync"].clone();
    assert_eq!((&first["ok"], &first["changes"]["organizations"]), (&json!(true), &json!(4)), "{first}");
    assert_eq!(first["routes"], json!({"config": 0, "api": 0, "synced": 4}));
    // On its interval after that.
    eventually(Duration::from_secs(10), || async {
        status().await["route_sync"]["last_sync"]["started_at"].as_u64() > first["started_at"].as_u64()
    })
    .await;
    let metrics =
        crate::common::http().get(format!("{public_url}/metrics")).send().await.expect("m").text().await.expect("t");
    assert!(metrics.contains("ssobridge_routes{source=\"synced\"} 4"), "{metrics}");
    assert!(metrics.contains("ssobridge_route_sync_total{outcome=\"ok\"}"), "{metrics}");
    assert!(metrics.contains("ssobridge_route_sync_last_success_timestamp_seconds "), "{metrics}");

    // A new organization's domain, added in the portal, signs in at once.
    let page = crate::common::http()
        .post(format!("{issuer}/portal/domains"))
        .form(&[("domain", "newco.example"), ("organization_id", ""), ("verification", "dns")])
        .send()
        .await
        .expect("portal")
        .text()
        .await
        .expect("page");
    assert_eq!(page.matches("200 OK").count(), 4, "{page}");
    let browser = Browser::default();
    let url = authorize_url(&public_url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "someone@newco.example")]);
    let landed = query(&browser.follow_until(&url, AUTH0_CLIENT.redirect_uri).await.expect("login"));
    let code = landed.get("code").unwrap_or_else(|| panic!("signed in: {landed:?}"));
    let (status_code, tokens) = redeem(&public_url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status_code, 200, "{tokens}");
    let claims =
        verify_id_token(&public_url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id).await;
    assert_eq!(claims["org_id"], "org_newco_example");

    let _ = serve.start_kill();
    let _ = serve.wait().await;
    let logs = logs.lock().expect("logs").join("\n");
    assert!(
        logs.lines()
            .any(|l| l.contains("webhook applied") && l.contains("organization.domain_dns_verification_success")),
        "the webhook's arrival is logged: {logs}"
    );
    let webhook_key = WEBHOOK_SECRET.trim_start_matches("whsec_");
    assert!(!logs.contains(webhook_key), "the webhook secret is never logged");
    assert!(!logs.contains(UPSTREAM_CLIENT_SECRET), "the client secret is never logged");
}
