//! The event log as an operator reads it: through the admin API, shared by every instance on
//! one Redis, filtered and paged newest first, exported as NDJSON, never holding a secret.

use crate::common::{broker_toml, BrokerSocket, Redis, Upstream, ADMIN_READ_TOKEN, ADMIN_WRITE_TOKEN};
use serde_json::{json, Value};
use ssobridge::tokens::SigningKey;

async fn get(broker: &str, path: &str) -> (u16, Value) {
    let response = crate::common::http()
        .get(format!("{broker}/admin{path}"))
        .bearer_auth(ADMIN_READ_TOKEN)
        .send()
        .await
        .expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_route(broker: &str, domain: &str) -> Value {
    let response = crate::common::http()
        .post(format!("{broker}/admin/routes"))
        .bearer_auth(ADMIN_WRITE_TOKEN)
        .json(&json!({"domain": domain, "organization_id": "org_events"}))
        .send()
        .await
        .expect("create route");
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.expect("route")
}

/// Polls the log until `wanted` events of `query` are there (events are written in the
/// background, within milliseconds).
async fn events(broker: &str, query: &str, wanted: usize) -> Value {
    let started = std::time::Instant::now();
    loop {
        let page = get(broker, &format!("/events?{query}")).await.1;
        if page["items"].as_array().is_some_and(|items| items.len() >= wanted) {
            return page;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{wanted} events of {query}: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_changes_on_one_instance_are_events_every_instance_reads_newest_first() {
    let redis = Redis::start().await;
    let (a_socket, b_socket) = (BrokerSocket::bind().await, BrokerSocket::bind().await);
    let upstream = Upstream::start(&[a_socket.callback(), b_socket.callback()]).await;
    let a_toml = broker_toml(&a_socket.url, &redis.url(), "ev:", &upstream.issuer);
    let b_toml = broker_toml(&b_socket.url, &redis.url(), "ev:", &upstream.issuer);
    let a = a_socket.serve_with_admin(&a_toml, SigningKey::generate_rsa().expect("key")).await;
    let b = b_socket.serve_with_admin(&b_toml, SigningKey::generate_rsa().expect("key")).await;

    for domain in ["one.example", "two.example", "three.example", "four.example", "five.example"] {
        create_route(&a.url, domain).await;
    }
    let page = events(&b.url, "type=admin&limit=200", 5).await;
    let resources: Vec<&str> =
        page["items"].as_array().expect("items").iter().filter_map(|e| e["resource"].as_str()).collect();
    assert_eq!(resources, ["five.example", "four.example", "three.example", "two.example", "one.example"], "{page}");
    let newest = &page["items"][0];
    assert_eq!(newest["action"], "route.create");
    assert_eq!(newest["outcome"], "success");
    assert!(newest["actor"].as_str().is_some_and(|a| a.starts_with("token:") && !a.contains(ADMIN_WRITE_TOKEN)));

    // One by id, on either instance.
    let id = newest["id"].as_str().expect("id");
    let (status, one) = get(&a.url, &format!("/events/{id}")).await;
    assert_eq!((status, &one), (200, newest));
    assert_eq!(get(&a.url, "/events/1-0").await.0, 404, "an id the log does not hold");
    assert_eq!(get(&a.url, "/events/not-an-id").await.0, 404);

    // Paging: two at a time, newest first, nothing twice, nothing left out.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(&b.url, &format!("/events?type=admin&limit=2&cursor={cursor}")).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|e| e["resource"].as_str().unwrap_or_default().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, resources, "pages of two add up to the log");

    // After an event (a live view's poll): only the newer ones, not it again, even in its
    // millisecond; after the newest, nothing; an id that is not one is a 400.
    let third = page["items"][2]["id"].as_str().expect("id");
    let (status, newer) = get(&b.url, &format!("/events?type=admin&after={third}")).await;
    assert_eq!(status, 200, "{newer}");
    let newer: Vec<&str> =
        newer["items"].as_array().expect("items").iter().filter_map(|e| e["resource"].as_str()).collect();
    assert_eq!(newer, ["five.example", "four.example"]);
    let (_, nothing) = get(&a.url, &format!("/events?after={id}")).await;
    assert_eq!(nothing["items"].as_array().map(Vec::len), Some(0), "{nothing}");
    let (status, page) = get(&a.url, "/events?after=yesterday").await;
    assert_eq!(status, 400, "{page}");
    assert!(page["detail"].as_str().is_some_and(|d| d.contains("after")), "{page}");

    // Filters: a time window in the future holds nothing; a bad time is a 400 naming it.
    let (status, page) = get(&a.url, "/events?since=2999-01-01T00:00:00Z").await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    let (status, page) = get(&a.url, "/events?until=yesterday").await;
    assert_eq!(status, 400, "{page}");
    assert!(page["detail"].as_str().is_some_and(|d| d.contains("until")), "{page}");
    let (_, page) = get(&a.url, "/events?type=login").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "no logins happened: {page}");

    // The export: one JSON event per line, the same events.
    let response = crate::common::http()
        .get(format!("{}/admin/events/export?type=admin", a.url))
        .bearer_auth(ADMIN_READ_TOKEN)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("application/x-ndjson"), "{content_type}");
    let body = response.text().await.expect("body");
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 5, "{body}");
    assert_eq!(lines[0]["resource"], "five.example");
    assert!(!body.contains(ADMIN_WRITE_TOKEN) && !body.contains(ADMIN_READ_TOKEN), "no token in events");

    // Reading needs a token.
    let anonymous = crate::common::http().get(format!("{}/admin/events", a.url)).send().await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
}

/// Issue 17's measure: a login failure in the demo is in the event log within a second, found
/// by its organization, with its reason; the success beside it carries what an operator reads
/// (the subject, the adapter's outcome, the time upstream) and neither holds the email in
/// clear, the code, or a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_login_failure_is_an_event_within_a_second_by_organization_with_its_reason() {
    use crate::common::{query, Browser};
    use crate::demo::{authorize, start_demo, CLIENT_REDIRECT};
    let demo = start_demo().await;
    let admin = |path: String| {
        let url = format!("{}/admin{path}", demo.url);
        async move {
            let response = crate::common::http()
                .get(url)
                .bearer_auth(ssobridge::demo::DEMO_ADMIN_TOKEN)
                .send()
                .await
                .expect("admin request");
            assert_eq!(response.status().as_u16(), 200);
            response.text().await.expect("body")
        }
    };

    // dave@example.org is deactivated at org_example_org's IdP: the client gets access_denied.
    let landed =
        Browser::default().follow_until(&authorize(&demo, "dave@example.org"), CLIENT_REDIRECT).await.expect("login");
    let failed_at = std::time::Instant::now();
    assert_eq!(query(&landed).get("error").map(String::as_str), Some("access_denied"), "{landed}");
    let failure = loop {
        let page: Value =
            serde_json::from_str(&admin("/events?organization=org_example_org&outcome=failure".to_owned()).await)
                .expect("JSON");
        if let Some(event) = page["items"].as_array().and_then(|items| items.first()) {
            break event.clone();
        }
        assert!(failed_at.elapsed() < std::time::Duration::from_secs(1), "no failure event within a second");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    eprintln!("the failure was in the log {} ms after the client had it", failed_at.elapsed().as_millis());
    assert_eq!(failure["type"], "login");
    assert_eq!(failure["outcome"], "failure");
    assert_eq!(failure["reason"], "user_not_active", "the upstream's own code: {failure}");
    assert_eq!(failure["client"], "demo");
    assert_eq!(failure["organization"], "org_example_org");
    assert_eq!(failure["connection"], "conn_example_org");
    assert_eq!(failure["routed_by"], "login_hint");
    assert!(failure["request_id"].as_str().is_some_and(|id| id.len() == 36), "{failure}");
    // From the client's /authorize to the failure: the whole round trip, not the callback alone.
    assert!(failure["duration_ms"].as_u64().is_some_and(|ms| ms > 0), "{failure}");
    assert!(failure.get("email").is_none(), "{failure}");
    // The same reason filters it.
    let by_reason: Value =
        serde_json::from_str(&admin("/events?reason=user_not_active".to_owned()).await).expect("JSON");
    assert_eq!(by_reason["items"][0]["id"], failure["id"]);

    // A success: its code redeemed, the tokens used.
    let landed =
        Browser::default().follow_until(&authorize(&demo, "alice@example.com"), CLIENT_REDIRECT).await.expect("login");
    let code = query(&landed).get("code").cloned().expect("a code");
    let tokens: Value = crate::common::http()
        .post(format!("{}/token", demo.url))
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", CLIENT_REDIRECT)])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let success = events_of(&demo.url, "type=login&outcome=success&organization=org_example_com", 1).await;
    assert_eq!(success["client"], "demo");
    assert_eq!(success["adapter"], "unchanged", "the demo client's adapter is none: {success}");
    assert!(success["upstream_ms"].is_u64() && success["adapter_ms"].is_u64(), "{success}");
    assert!(success["subject"].as_str().is_some_and(|s| !s.is_empty()), "{success}");
    assert!(success.get("reason").is_none(), "{success}");
    // The same address, the same hash: one user followed without their address.
    let again =
        Browser::default().follow_until(&authorize(&demo, "alice@example.com"), CLIENT_REDIRECT).await.expect("login");
    assert!(query(&again).contains_key("code"));
    events_of(&demo.url, "type=login&outcome=success&organization=org_example_com", 2).await;

    // What the SIEM export holds: no address in clear, no code, no token.
    let export = admin("/events/export".to_owned()).await;
    let events: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let hashes: Vec<&str> = events
        .iter()
        .filter(|e| e["organization"] == "org_example_com" && e["outcome"] == "success")
        .filter_map(|e| e["email_hash"].as_str())
        .collect();
    assert_eq!(hashes.len(), 2, "{export}");
    assert_eq!(hashes[0], hashes[1], "one user, one hash");
    for secret in [
        "alice@example.com",
        "dave@example.org",
        code.as_str(),
        tokens["access_token"].as_str().expect("access_token"),
        tokens["id_token"].as_str().expect("id_token"),
        "demo-secret",
        ssobridge::demo::DEMO_ADMIN_TOKEN,
    ] {
        assert!(!export.contains(secret), "the event log holds {secret}:\n{export}");
    }
}

/// The newest event of `query` in the demo's log, once there are `wanted` of them.
async fn events_of(demo: &str, query: &str, wanted: usize) -> Value {
    let started = std::time::Instant::now();
    loop {
        let page: Value = crate::common::http()
            .get(format!("{demo}/admin/events?{query}"))
            .bearer_auth(ssobridge::demo::DEMO_ADMIN_TOKEN)
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("JSON");
        if let Some(items) = page["items"].as_array().filter(|items| items.len() >= wanted) {
            return items[0].clone();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "not {wanted} events of {query}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
