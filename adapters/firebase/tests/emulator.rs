//! The Firebase adapter against the real Firebase Auth emulator.
//!
//! One emulator serves every check (it takes ~15 s of CPU to start), so the checks run in
//! sequence inside one test; each is a function named for what it shows, and a failure names it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{json, Value};
use ssobridge_adapter_core::conformance::{self, Harness, Outage};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, LinkOutcome, UserChange};
use ssobridge_adapter_firebase::{firebase_uid, FirebaseAdapter};

struct EmulatorHarness {
    /// Reaches the emulator through `proxy`, which can answer as an outage instead.
    adapter: FirebaseAdapter,
    unreachable: FirebaseAdapter,
    /// In production mode, with a service account key Google's token endpoint refuses.
    misconfigured: FirebaseAdapter,
    api: EmulatorApi,
    proxy: FaultProxy,
    _tokens: TokenServer,
    _blackhole: Blackhole,
}

fn sorted_strings(value: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    names.sort();
    names
}

impl Harness for EmulatorHarness {
    type Adapter = FirebaseAdapter;

    fn adapter(&self) -> &FirebaseAdapter {
        &self.adapter
    }

    fn unreachable_adapter(&self) -> &FirebaseAdapter {
        &self.unreachable
    }

    fn create_existing_user<'a>(&'a self, email: &'a str, verified: bool) -> BoxFuture<'a, String> {
        // A sign-up through the app's form; unverified until the confirmation link is followed.
        Box::pin(async move {
            if verified {
                self.api.sign_up_verified(email).await
            } else {
                self.api.sign_up_with_password(email).await
            }
        })
    }

    fn users_with_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.uids_with_email(email, false))
    }

    fn users_with_verified_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.uids_with_email(email, true))
    }

    fn user_record<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Value>> {
        Box::pin(self.api.user(id))
    }

    fn timeout_bound(&self) -> Duration {
        // timeout_seconds = 2 for the unreachable adapter, plus scheduling slack.
        Duration::from_secs(4)
    }

    fn misconfigured_adapter(&self) -> &FirebaseAdapter {
        &self.misconfigured
    }

    fn user_disabled<'a>(&'a self, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.api.user(id).await.expect("the account exists")["disabled"] == true })
    }

    fn user_roles<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move { sorted_strings(&self.claims(id).await["roles"]) })
    }

    fn user_groups<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move { Some(sorted_strings(&self.claims(id).await["groups"])) })
    }

    fn grant_role_directly<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, ()> {
        // What the application's back end does with the Admin SDK's setCustomUserClaims.
        Box::pin(async move {
            let mut claims = self.claims(id).await;
            let mut roles = claims["roles"].as_array().cloned().unwrap_or_default();
            roles.push(json!(role));
            claims["roles"] = Value::Array(roles);
            self.api.update(json!({"localId": id, "customAttributes": claims.to_string()})).await;
        })
    }

    fn fail_next(&self, requests: usize, outage: Outage) {
        let fault = match outage {
            Outage::RateLimited => Fault { status: 429, retry_after: Some("1") },
            Outage::Unavailable => Fault { status: 503, retry_after: None },
        };
        self.proxy.fail_next(&vec![fault; requests]);
    }

    fn end_outage(&self) {
        self.proxy.clear_faults();
    }

    fn secrets(&self) -> Vec<String> {
        // A line from the middle of the service account's private key.
        let (pem, _) = service_account_key();
        pem.lines().skip(5).take(3).map(str::to_owned).collect()
    }

    fn log_lines(&self) -> Vec<String> {
        LogRecorder::global().lines()
    }
}

impl EmulatorHarness {
    /// The account's custom claims, as the Admin SDK's getUser shows them.
    async fn claims(&self, uid: &str) -> Value {
        let account = self.api.user(uid).await.expect("the account exists");
        serde_json::from_str(account["customAttributes"].as_str().unwrap_or("{}")).unwrap()
    }

    async fn uids_with_email(&self, email: &str, verified_only: bool) -> Vec<String> {
        let users = self.api.all_users().await;
        users
            .iter()
            .filter(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
            .filter(|u| !verified_only || u["emailVerified"] == true)
            .map(|u| u["localId"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{nanos}", std::process::id())
}

fn uid_of(outcome: &LinkOutcome) -> String {
    match outcome {
        LinkOutcome::Linked { downstream_user_id, .. } | LinkOutcome::Created { downstream_user_id, .. } => {
            downstream_user_id.clone()
        }
        LinkOutcome::Unchanged => panic!("the firebase adapter always names the user"),
    }
}

fn custom_token_of(outcome: &LinkOutcome) -> String {
    outcome.token_fields().expect("token fields")["firebase_token"].as_str().expect("firebase_token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_against_the_auth_emulator() {
    let emulator = Emulator::start().await;
    let run = run_id();

    conformance_suite(&emulator, &run).await;
    custom_token_signs_in_with_the_uid_and_claims(&emulator, &run).await;
    existing_custom_attributes_are_kept(&emulator, &run).await;
    unverified_identity_gets_an_account_without_email(&emulator, &run).await;
    disabled_account_is_refused(&emulator, &run).await;
    tenant_users_live_in_the_tenant(&emulator, &run).await;
    unsigned_tokens_without_a_key_work_on_the_emulator(&emulator, &run).await;
    racing_first_logins_collide_on_the_uid(&emulator, &run).await;
    rate_limits_are_retried_after_retry_after(&emulator, &run).await;
    production_mode_fetches_and_caches_an_access_token(&emulator, &run).await;
    disable_ends_the_session_and_enable_lets_the_user_back(&emulator, &run).await;
    roles_reach_the_id_token_at_the_next_refresh(&emulator, &run).await;
    claims_past_firebases_limit_are_refused_and_nothing_is_written(&emulator, &run).await;
}

async fn conformance_suite(emulator: &Emulator, run: &str) {
    LogRecorder::global();
    let blackhole = Blackhole::start().await;
    let proxy = FaultProxy::start(&emulator.host).await;
    let tokens = TokenServer::start("key-id-refused").await;
    tokens.reply_with(TokenReply::Refuse);
    let (pem, _) = service_account_key();
    let misconfigured = FirebaseAdapter::new(settings(json!({
        "project_id": PROJECT_ID,
        "service_account_email": SERVICE_ACCOUNT,
        "private_key": pem,
        "token_uri": tokens.uri(),
        "api_base": format!("{}/identitytoolkit.googleapis.com", proxy.server.base),
        "timeout_seconds": 5,
    })))
    .expect("production adapter");
    let harness = EmulatorHarness {
        adapter: emulator_adapter(&proxy.host(), None, 10),
        unreachable: emulator_adapter(&format!("127.0.0.1:{}", blackhole.port), None, 2),
        misconfigured,
        api: emulator.api(),
        proxy,
        _tokens: tokens,
        _blackhole: blackhole,
    };
    conformance::run(&harness, run).await;
}

async fn custom_token_signs_in_with_the_uid_and_claims(emulator: &Emulator, run: &str) {
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let email = format!("Token-{run}@Claims.Example");
    let who = conformance::identity(&format!("token-{run}"), &email, true);
    let outcome = adapter.link(&who).await.expect("link");
    assert!(matches!(outcome, LinkOutcome::Created { .. }), "{outcome:?}");
    let uid = uid_of(&outcome);
    assert_eq!(uid, firebase_uid(&who.subject), "a new account gets the uid derived from the subject");
    assert_eq!(outcome.extra_claims().unwrap()["firebase_uid"], json!(uid));
    assert_eq!(outcome.extra_claims().unwrap().len(), 1, "the custom token stays out of the ID token");

    // The custom token as Firebase checks it in production.
    let token = custom_token_of(&outcome);
    let (_, public) = service_account_key();
    let mut validation = Validation::new(Algorithm::RS256);
    validation
        .set_audience(&["https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"]);
    validation.set_issuer(&[SERVICE_ACCOUNT]);
    let claims = jsonwebtoken::decode::<Value>(&token, &public, &validation).expect("RS256 custom token").claims;
    assert_eq!(claims["sub"], SERVICE_ACCOUNT);
    assert_eq!(claims["uid"], json!(uid));
    assert!(uid.len() <= 128);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 3600, "lifetime {lifetime}");
    assert!(claims.get("tenant_id").is_none());
    assert_eq!(claims["claims"], json!({"org_id": "org_test", "connection_id": "conn_test"}));

    // And as a Firebase client uses it.
    let id_token = emulator.api().sign_in_with_custom_token(&token).await.expect("signInWithCustomToken");
    assert_eq!(id_token["user_id"], json!(uid));
    assert_eq!(id_token["sub"], json!(uid));
    assert_eq!(id_token["org_id"], "org_test");
    assert_eq!(id_token["connection_id"], "conn_test");
    assert_eq!(id_token["email"], email.to_lowercase(), "the verified email is on the account");
    assert_eq!(id_token["email_verified"], true);
    assert_eq!(id_token["name"], "Test User");
    assert_eq!(id_token["firebase"]["sign_in_provider"], "custom");

    // The claims also live on the account, for sessions that did not start with this token.
    let account = emulator.api().user(&uid).await.expect("account");
    let attributes: Value = serde_json::from_str(account["customAttributes"].as_str().unwrap()).unwrap();
    assert_eq!(attributes, json!({"org_id": "org_test", "connection_id": "conn_test"}));

    // The returning login gets a fresh token for the same account.
    let again = adapter.link(&who).await.expect("returning login");
    assert!(matches!(again, LinkOutcome::Linked { .. }));
    assert_eq!(uid_of(&again), uid);
    let id_token = emulator.api().sign_in_with_custom_token(&custom_token_of(&again)).await.expect("sign in again");
    assert_eq!(id_token["user_id"], json!(uid));
}

async fn existing_custom_attributes_are_kept(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let email = format!("attrs-{run}@claims.example");
    let existing = api.sign_up_verified(&email).await;
    api.update(json!({"localId": existing, "customAttributes": r#"{"role":"admin","org_id":"stale"}"#})).await;
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let who = conformance::identity(&format!("attrs-{run}"), &email, true);
    let outcome = adapter.link(&who).await.expect("link");
    assert!(matches!(outcome, LinkOutcome::Linked { .. }), "{outcome:?}");
    assert_eq!(uid_of(&outcome), existing, "a verified email links the password user");
    let account = api.user(&existing).await.unwrap();
    let attributes: Value = serde_json::from_str(account["customAttributes"].as_str().unwrap()).unwrap();
    assert_eq!(attributes, json!({"role": "admin", "org_id": "org_test", "connection_id": "conn_test"}));
    let id_token = api.sign_in_with_custom_token(&custom_token_of(&outcome)).await.expect("sign in");
    assert_eq!(id_token["user_id"], json!(existing));
    assert_eq!(id_token["role"], "admin", "the application's own claims survive");
}

async fn unverified_identity_gets_an_account_without_email(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let email = format!("unverified-alone-{run}@claims.example");
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let who = conformance::identity(&format!("unverified-alone-{run}"), &email, false);
    let outcome = adapter.link(&who).await.expect("an unverified identity still signs in");
    assert!(matches!(outcome, LinkOutcome::Created { .. }));
    let account = api.user(&uid_of(&outcome)).await.unwrap();
    assert!(account.get("email").is_none(), "an unverified email is not stored: {account}");
    // So a verified login with that email later makes its own account, not this one.
    let verified = conformance::identity(&format!("verified-later-{run}"), &email, true);
    let later = adapter.link(&verified).await.expect("link");
    assert!(matches!(later, LinkOutcome::Created { .. }));
    assert_ne!(uid_of(&later), uid_of(&outcome));
}

async fn disabled_account_is_refused(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let email = format!("disabled-{run}@claims.example");
    let existing = api.sign_up_verified(&email).await;
    api.update(json!({"localId": existing, "disableUser": true})).await;
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let who = conformance::identity(&format!("disabled-{run}"), &email, true);
    match adapter.link(&who).await {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("a disabled account is refused, got {other:?}"),
    }
}

async fn tenant_users_live_in_the_tenant(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let tenant = api.create_tenant().await;
    let tenant_api = api.for_tenant(&tenant);
    let adapter = emulator_adapter(&emulator.host, Some(&tenant), 10);
    let email = format!("tenant-{run}@claims.example");
    let who = conformance::identity(&format!("tenant-{run}"), &email, true);
    let outcome = adapter.link(&who).await.expect("link in tenant");
    let uid = uid_of(&outcome);
    assert!(tenant_api.user(&uid).await.is_some(), "the account is in the tenant");
    assert!(api.user(&uid).await.is_none(), "and not in the project's default users");

    let token = custom_token_of(&outcome);
    assert_eq!(jwt_payload(&token)["tenant_id"], json!(tenant));
    let id_token = tenant_api.sign_in_with_custom_token(&token).await.expect("tenant sign-in");
    assert_eq!(id_token["user_id"], json!(uid));
    assert_eq!(id_token["firebase"]["tenant"], json!(tenant));
    // Without `tenant_id` in the token, the tenant refuses it: the claim is what makes it work.
    let untenanted = emulator_adapter(&emulator.host, None, 10).link(&who).await.expect("link");
    let refused = tenant_api.sign_in_with_custom_token(&custom_token_of(&untenanted)).await;
    assert_eq!(refused.expect_err("refused"), "TENANT_ID_MISMATCH");

    // A verified email links within the tenant only.
    let existing = tenant_api.sign_up_verified(&format!("tenant-existing-{run}@claims.example")).await;
    let who = conformance::identity(
        &format!("tenant-existing-{run}"),
        &format!("tenant-existing-{run}@claims.example"),
        true,
    );
    assert_eq!(uid_of(&adapter.link(&who).await.expect("link")), existing);
}

async fn unsigned_tokens_without_a_key_work_on_the_emulator(emulator: &Emulator, run: &str) {
    let adapter = FirebaseAdapter::new(settings(json!({
        "project_id": PROJECT_ID,
        "service_account_email": SERVICE_ACCOUNT,
        "emulator_host": emulator.host,
    })))
    .expect("an emulator adapter needs no key");
    let who = conformance::identity(&format!("unsigned-{run}"), &format!("unsigned-{run}@claims.example"), true);
    let outcome = adapter.link(&who).await.expect("link");
    let token = custom_token_of(&outcome);
    assert!(token.ends_with('.'), "unsigned");
    let id_token = emulator.api().sign_in_with_custom_token(&token).await.expect("sign in");
    assert_eq!(id_token["user_id"], json!(uid_of(&outcome)));
}

async fn racing_first_logins_collide_on_the_uid(emulator: &Emulator, run: &str) {
    let proxy = FaultProxy::start(&emulator.host).await;
    let adapter = emulator_adapter(&proxy.host(), None, 10);
    let email = format!("collide-{run}@claims.example");
    let who = conformance::identity(&format!("collide-{run}"), &email, true);
    proxy.race_next_lookups(2);
    let (a, b) = tokio::join!(adapter.link(&who), adapter.link(&who));
    let (a, b) = (a.expect("login a"), b.expect("login b"));
    assert_eq!(uid_of(&a), uid_of(&b));
    let created = [&a, &b].iter().filter(|o| matches!(o, LinkOutcome::Created { .. })).count();
    assert_eq!(created, 1, "one login created the account, the other found it: {a:?} {b:?}");
    let creates: Vec<u16> = proxy.seen().iter().filter(|s| s.0.ends_with("/accounts")).map(|s| s.2).collect();
    assert_eq!(creates.len(), 2, "both logins tried to create");
    assert!(creates.contains(&200) && creates.contains(&400), "the second create collided: {creates:?}");
    assert_eq!(emulator.api().all_users().await.iter().filter(|u| u["email"] == json!(email)).count(), 1);
}

async fn rate_limits_are_retried_after_retry_after(emulator: &Emulator, run: &str) {
    let proxy = FaultProxy::start(&emulator.host).await;
    let adapter = emulator_adapter(&proxy.host(), None, 10);
    let who = conformance::identity(&format!("retry-{run}"), &format!("retry-{run}@claims.example"), true);

    // A 429 naming a wait: the adapter waits that long, then succeeds.
    proxy.fail_next(&[Fault { status: 429, retry_after: Some("1") }]);
    let started = Instant::now();
    let outcome = adapter.link(&who).await.expect("succeeds after the 429");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "Retry-After honoured: took {took:?}");
    assert!(took < Duration::from_secs(5), "no more than asked: took {took:?}");
    let seen = proxy.seen();
    assert_eq!(seen[0].2, 429);
    assert_eq!(seen[1].0, seen[0].0, "the same call was retried");
    assert!(seen[1..].iter().all(|s| s.2 == 200), "{seen:?}");

    // 503s without Retry-After: bounded backoff, then success.
    proxy.clear();
    proxy.fail_next(&[Fault { status: 503, retry_after: None }, Fault { status: 502, retry_after: None }]);
    let again = adapter.link(&who).await.expect("succeeds after two 5xx");
    assert_eq!(uid_of(&again), uid_of(&outcome));
    assert_eq!(proxy.seen().iter().filter(|s| s.2 >= 500).count(), 2);

    // A wait past the login's budget is not waited out: Transient at once, with the wait.
    proxy.clear();
    proxy.fail_always(Some(Fault { status: 429, retry_after: Some("3600") }));
    let started = Instant::now();
    match adapter.link(&who).await {
        Err(AdapterError::Transient { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3600)))
        }
        other => panic!("a long rate limit is Transient, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "returned promptly: {:?}", started.elapsed());
    assert_eq!(proxy.seen().len(), 1, "no retry into a long Retry-After");

    // A downstream that keeps failing: a bounded number of attempts, then Transient.
    proxy.clear();
    proxy.fail_always(Some(Fault { status: 500, retry_after: None }));
    assert!(matches!(adapter.link(&who).await, Err(AdapterError::Transient { .. })));
    assert_eq!(proxy.seen().len(), 3, "three attempts per call");
    proxy.fail_always(None);
}

async fn production_mode_fetches_and_caches_an_access_token(emulator: &Emulator, run: &str) {
    // The whole production path: a Google key file, the JWT-bearer grant against a stand-in for
    // oauth2.googleapis.com, and the admin API at its production path shape (the emulator
    // serves it, taking any `ya29.` token as the owner's), seen through the proxy.
    let tokens = TokenServer::start("key-id-1").await;
    let proxy = FaultProxy::start(&emulator.host).await;
    let (pem, _) = service_account_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("service-account.json");
    let key_json = json!({
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": "key-id-1",
        "private_key": pem,
        "client_email": SERVICE_ACCOUNT,
        "client_id": "1234567890",
        "token_uri": tokens.uri(),
    });
    std::fs::write(&key_file, key_json.to_string()).unwrap();
    let adapter = FirebaseAdapter::new(settings(json!({
        "project_id": PROJECT_ID,
        "service_account_email": SERVICE_ACCOUNT,
        "service_account_file": key_file,
        "api_base": format!("{}/identitytoolkit.googleapis.com", proxy.server.base),
    })))
    .expect("production adapter");

    for n in 0..3 {
        let who = conformance::identity(&format!("prod-{n}-{run}"), &format!("prod-{n}-{run}@claims.example"), true);
        let outcome = adapter.link(&who).await.expect("production-mode link");
        assert!(matches!(outcome, LinkOutcome::Created { .. }));
    }
    assert_eq!(tokens.problems(), Vec::<String>::new(), "every assertion was valid");
    assert_eq!(tokens.issued(), vec!["ya29.test-1".to_owned()], "one access token for all logins");
    let seen = proxy.seen();
    assert!(seen.len() >= 9, "lookup, create and update per login: {seen:?}");
    assert!(seen.iter().all(|s| s.1 == "Bearer ya29.test-1"), "{seen:?}");
    assert!(seen
        .iter()
        .all(|s| s.0.starts_with(&format!("/identitytoolkit.googleapis.com/v1/projects/{PROJECT_ID}/"))));

    // The API refusing the token (revoked): dropped, a new one fetched, the call made again.
    proxy.clear();
    proxy.fail_next(&[Fault { status: 401, retry_after: None }]);
    let who = conformance::identity(&format!("prod-0-{run}"), &format!("prod-0-{run}@claims.example"), true);
    assert!(matches!(adapter.link(&who).await, Ok(LinkOutcome::Linked { .. })));
    assert_eq!(tokens.issued().len(), 2, "a refused token is replaced");
    assert_eq!(proxy.seen().last().unwrap().1, "Bearer ya29.test-2");

    // A token close to expiry is not reused.
    tokens.reply_with(TokenReply::Grant { expires_in: 120 });
    let short = FirebaseAdapter::new(settings(json!({
        "project_id": PROJECT_ID,
        "service_account_email": SERVICE_ACCOUNT,
        "service_account_file": key_file,
        "api_base": format!("{}/identitytoolkit.googleapis.com", proxy.server.base),
    })))
    .unwrap();
    let before = tokens.issued().len();
    let fresh = conformance::identity(&format!("prod-short-{run}"), &format!("prod-short-{run}@claims.example"), true);
    short.link(&fresh).await.expect("link");
    assert!(tokens.issued().len() - before >= 2, "each call fetched afresh: {:?}", tokens.issued());

    // A refused key is the operator's problem, not the user's.
    tokens.reply_with(TokenReply::Refuse);
    match short.link(&who).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("invalid_grant"), "{detail}"),
        other => panic!("a refused service account is Misconfigured, got {other:?}"),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn disable_ends_the_session_and_enable_lets_the_user_back(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let who = conformance::identity(&format!("session-{run}"), &format!("session-{run}@claims.example"), true);
    let outcome = adapter.link(&who).await.expect("link");
    let uid = uid_of(&outcome);
    let (_, refresh_token) = api.start_session(&custom_token_of(&outcome)).await.expect("signed in");
    let before = unix_now();

    assert_eq!(adapter.disable(&uid).await.expect("disable"), UserChange::Applied);
    let account = api.user(&uid).await.expect("account");
    assert_eq!(account["disabled"], true, "{account}");
    let valid_since: u64 = account["validSince"].as_str().expect("validSince").parse().unwrap();
    assert!(valid_since >= before, "refresh tokens revoked from now on: {valid_since} < {before}");
    assert_eq!(api.refresh_session(&refresh_token).await.expect_err("session ended"), "USER_DISABLED");
    let unused_token = custom_token_of(&outcome);
    assert_eq!(api.sign_in_with_custom_token(&unused_token).await.expect_err("no new session"), "USER_DISABLED");
    match adapter.link(&who).await {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("a disabled account is not signed in to, got {other:?}"),
    }

    assert_eq!(adapter.enable(&uid).await.expect("enable"), UserChange::Applied);
    assert_eq!(api.user(&uid).await.expect("account")["disabled"], json!(false));
    let again = adapter.link(&who).await.expect("signs in again");
    assert_eq!(uid_of(&again), uid);
    api.sign_in_with_custom_token(&custom_token_of(&again)).await.expect("a new session");
}

async fn roles_reach_the_id_token_at_the_next_refresh(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let email = format!("token-roles-{run}@claims.example");
    let existing = api.sign_up_verified(&email).await;
    api.update(json!({"localId": existing, "customAttributes": r#"{"plan":"gold","roles":["owner"]}"#})).await;
    let who = conformance::identity(&format!("token-roles-{run}"), &email, true);
    let outcome = adapter.link(&who).await.expect("link");
    let (claims, refresh_token) = api.start_session(&custom_token_of(&outcome)).await.expect("signed in");
    assert_eq!(claims["roles"], json!(["owner"]));

    // A group change arriving by webhook: the signed-in user's next token carries it.
    let managed = strings(&["viewer", "editor"]);
    let wanted = Entitlements { groups: strings(&["eng", "eng-leads"]), roles: strings(&["editor"]) };
    assert_eq!(adapter.set_roles(&existing, &wanted, &managed).await.expect("set roles"), UserChange::Applied);
    let claims = api.refresh_session(&refresh_token).await.expect("refreshed");
    assert_eq!(claims["roles"], json!(["owner", "editor"]), "the application's own role is kept");
    assert_eq!(claims["groups"], json!(["eng", "eng-leads"]));
    assert_eq!(claims["plan"], "gold");
    assert_eq!(claims["org_id"], "org_test");

    let wanted = Entitlements { groups: Vec::new(), roles: Vec::new() };
    adapter.set_roles(&existing, &wanted, &managed).await.expect("set roles");
    let claims = api.refresh_session(&refresh_token).await.expect("refreshed");
    assert_eq!((claims["roles"].clone(), claims["groups"].clone()), (json!(["owner"]), json!([])));
}

async fn claims_past_firebases_limit_are_refused_and_nothing_is_written(emulator: &Emulator, run: &str) {
    let api = emulator.api();
    let adapter = emulator_adapter(&emulator.host, None, 10);
    let who = conformance::identity(&format!("big-{run}"), &format!("big-{run}@claims.example"), true);
    let uid = uid_of(&adapter.link(&who).await.expect("link"));
    let before = api.user(&uid).await.expect("account");
    let groups: Vec<String> = (0..80).map(|n| format!("directory-group-{n:03}")).collect();
    let wanted = Entitlements { groups, roles: Vec::new() };
    match adapter.set_roles(&uid, &wanted, &[]).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("1000"), "{detail}"),
        other => panic!("claims over 1000 characters are refused, got {other:?}"),
    }
    assert_eq!(api.user(&uid).await.expect("account")["customAttributes"], before["customAttributes"]);
}
