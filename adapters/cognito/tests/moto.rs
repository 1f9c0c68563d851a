//! The Cognito adapter against moto's Cognito user pools, with IAM authentication on (every
//! signature checked by moto, every action authorized against `iam-policy.json`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ssobridge_adapter_cognito::CognitoAdapter;
use ssobridge_adapter_core::conformance::{self, identity, Harness, Outage};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, LinkOutcome, UserChange};
use support::{attribute, silent_listener, unique, Canned, Creds, LogRecorder, World, PROVIDER, REGION};

struct MotoHarness<'w> {
    world: &'w World,
    pool_id: String,
    email_is_username: bool,
    adapter: CognitoAdapter,
    unreachable: CognitoAdapter,
    misconfigured: CognitoAdapter,
}

/// Credentials moto does not know (a key id of no IAM user, with some secret).
const UNKNOWN_KEY: &str = "AKIAUNKNOWNKEY000001";
const WRONG_SECRET: &str = "not-the-secret-key";

impl<'w> MotoHarness<'w> {
    fn new(world: &'w World, pool_id: &str, email_is_username: bool) -> MotoHarness<'w> {
        LogRecorder::global();
        let unreachable =
            CognitoAdapter::new(world.settings(pool_id, &world.adapter_creds, &silent_listener(), 1)).unwrap();
        // The groups of the suite's roles do not exist: the adapter creates them.
        let mut settings = world.settings(pool_id, &world.adapter_creds, &world.proxy.url, 5);
        settings.create_groups = Some(true);
        let wrong = Creds { key: UNKNOWN_KEY.into(), secret: WRONG_SECRET.into(), token: None };
        MotoHarness {
            world,
            pool_id: pool_id.to_owned(),
            email_is_username,
            adapter: CognitoAdapter::new(settings).unwrap(),
            unreachable,
            misconfigured: world.adapter(pool_id, &wrong),
        }
    }
}

impl Harness for MotoHarness<'_> {
    type Adapter = CognitoAdapter;

    fn adapter(&self) -> &CognitoAdapter {
        &self.adapter
    }

    fn unreachable_adapter(&self) -> &CognitoAdapter {
        &self.unreachable
    }

    fn create_existing_user<'a>(&'a self, email: &'a str, verified: bool) -> BoxFuture<'a, String> {
        Box::pin(async move {
            // A password user made by the application before SSO; unverified, it is a sign-up
            // whose confirmation code was never entered.
            let username = if self.email_is_username { email.to_owned() } else { format!("app-user-{}", unique()) };
            let answer = self
                .world
                .aws
                .cognito_ok(
                    &self.world.admin,
                    "AdminCreateUser",
                    json!({"UserPoolId": self.pool_id, "Username": username, "MessageAction": "SUPPRESS",
                        "UserAttributes": [{"Name": "email", "Value": email},
                                           {"Name": "email_verified", "Value": verified.to_string()}]}),
                )
                .await;
            answer["User"]["Username"].as_str().unwrap().to_owned()
        })
    }

    fn users_with_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.world.usernames_with_email(&self.pool_id, email))
    }

    fn users_with_verified_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.world.usernames_with_verified_email(&self.pool_id, email))
    }

    fn user_record<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Value>> {
        Box::pin(self.world.find_user(&self.pool_id, id))
    }

    fn misconfigured_adapter(&self) -> &CognitoAdapter {
        &self.misconfigured
    }

    fn user_disabled<'a>(&'a self, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.world.get_user(&self.pool_id, id).await["Enabled"] == false })
    }

    fn user_roles<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(self.world.groups_of(&self.pool_id, id))
    }

    fn user_groups<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Option<Vec<String>>> {
        // Directory groups are not written to Cognito (see the adapter's lifecycle docs).
        Box::pin(async { None })
    }

    fn grant_role_directly<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if !self.world.pool_groups(&self.pool_id).await.iter().any(|g| g == role) {
                self.world.create_group(&self.pool_id, role).await;
            }
            self.world.add_to_group(&self.pool_id, id, role).await;
        })
    }

    fn fail_next(&self, requests: usize, outage: Outage) {
        for _ in 0..requests {
            self.world.proxy.inject(match outage {
                Outage::RateLimited => {
                    Canned { status: 429, kind: "ThrottlingException".into(), retry_after: Some("1".into()) }
                }
                Outage::Unavailable => Canned { status: 503, kind: "ServiceUnavailable".into(), retry_after: None },
            });
        }
    }

    fn end_outage(&self) {
        self.world.proxy.clear_faults();
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.world.adapter_creds.secret.clone(), self.world.admin.secret.clone(), WRONG_SECRET.to_owned()]
    }

    fn log_lines(&self) -> Vec<String> {
        LogRecorder::global().lines()
    }
}

fn downstream_id(outcome: &LinkOutcome) -> String {
    match outcome {
        LinkOutcome::Linked { downstream_user_id, .. } | LinkOutcome::Created { downstream_user_id, .. } => {
            downstream_user_id.clone()
        }
        LinkOutcome::Unchanged => panic!("no user"),
    }
}

fn linked_subjects(user: &Value) -> Vec<(String, String)> {
    let Some(raw) = attribute(user, "identities") else { return Vec::new() };
    let identities: Vec<Value> = serde_json::from_str(&raw).unwrap();
    identities
        .iter()
        .map(|i| (i["providerName"].as_str().unwrap().to_owned(), i["userId"].as_str().unwrap().to_owned()))
        .collect()
}

/// What the conformance run left in the pool, beyond what the suite itself checks.
async fn check_the_pool_after_conformance(harness: &MotoHarness<'_>, run_id: &str) {
    let (world, pool) = (harness.world, harness.pool_id.as_str());

    // A created user: profile, organization, connection, verified email, and the link.
    let first = identity(&format!("first-{run_id}"), &format!("first-{run_id}@conformance.example"), true);
    let username = downstream_id(&harness.adapter.link(&first).await.unwrap());
    if harness.email_is_username {
        assert!(!username.contains('@'), "Cognito names users of email pools itself, got {username}");
    } else {
        assert!(username.starts_with("ssobridge-"), "deterministic username, got {username}");
    }
    let user = world.get_user(pool, &username).await;
    assert_eq!(attribute(&user, "email").as_deref(), first.email.as_deref());
    assert_eq!(attribute(&user, "email_verified").as_deref(), Some("true"));
    assert_eq!(attribute(&user, "given_name").as_deref(), Some("Test"));
    assert_eq!(attribute(&user, "custom:org_id").as_deref(), Some("org_test"));
    assert_eq!(attribute(&user, "custom:connection_id").as_deref(), Some("conn_test"));
    assert_eq!(linked_subjects(&user), vec![(PROVIDER.to_owned(), first.subject.clone())]);

    // The password user taken over by a verified email: organization and connection added, the
    // federated identity linked, its own profile untouched.
    let existing = identity(&format!("existing-{run_id}"), &format!("existing-{run_id}@conformance.example"), true);
    let username = downstream_id(&harness.adapter.link(&existing).await.unwrap());
    let user = world.get_user(pool, &username).await;
    assert_eq!(attribute(&user, "custom:org_id").as_deref(), Some("org_test"));
    assert_eq!(attribute(&user, "given_name"), None, "an existing user's profile is the application's");
    assert_eq!(linked_subjects(&user), vec![(PROVIDER.to_owned(), existing.subject.clone())]);

    // The password user an unverified identity shared an email with: untouched.
    let email = format!("unverified-{run_id}@conformance.example");
    let unverified_subject = format!("sub-unverified-{run_id}");
    for username in world.usernames_with_email(pool, &email).await {
        let user = world.get_user(pool, &username).await;
        assert!(linked_subjects(&user).iter().all(|(_, s)| *s != unverified_subject), "taken over: {user}");
    }

    // Pre-account takeover: the victim's identity was never even offered to the attacker's
    // account, and no user was created for it.
    let victim_subject = format!("sub-victim-{run_id}");
    for link in harness.world.proxy.records_of("AdminLinkProviderForUser") {
        assert_ne!(link.json()["SourceUser"]["ProviderAttributeValue"], victim_subject.as_str(), "{link:?}");
    }
    let victim_email = format!("victim-{run_id}@conformance.example");
    for create in harness.world.proxy.records_of("AdminCreateUser") {
        assert!(!String::from_utf8_lossy(&create.body).contains(&victim_email), "{create:?}");
    }

    // Every link the adapter asked for has the documented shape, and no identity went to two users.
    let mut destinations: Vec<(String, String)> = Vec::new();
    for link in harness.world.proxy.records_of("AdminLinkProviderForUser") {
        let body = link.json();
        if body["UserPoolId"] != pool {
            continue;
        }
        assert_eq!(body["DestinationUser"]["ProviderName"], "Cognito");
        assert_eq!(body["SourceUser"]["ProviderName"], PROVIDER);
        assert_eq!(body["SourceUser"]["ProviderAttributeName"], "Cognito_Subject");
        let subject = body["SourceUser"]["ProviderAttributeValue"].as_str().unwrap().to_owned();
        let destination = body["DestinationUser"]["ProviderAttributeValue"].as_str().unwrap().to_owned();
        match destinations.iter().find(|(s, _)| *s == subject) {
            Some((_, earlier)) => assert_eq!(*earlier, destination, "{subject} linked to two users"),
            None => destinations.push((subject, destination)),
        }
    }
    assert!(!destinations.is_empty());
    // moto authorized every call of the adapter's principal against the recipe's policy (the
    // suite's adapter with unknown credentials is refused, as it should be).
    let principal = format!("Credential={}/", harness.world.adapter_creds.key);
    for record in harness.world.proxy.records() {
        if record.header("authorization").is_some_and(|a| a.contains(&principal)) {
            assert_ne!(record.status, 403, "{} was denied: the IAM policy lacks it", record.action);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_a_pool_with_usernames() {
    let world = World::start().await;
    let pool = world.create_pool(false, true).await;
    let harness = MotoHarness::new(&world, &pool, false);
    let run_id = unique();
    conformance::run(&harness, &run_id).await;
    check_the_pool_after_conformance(&harness, &run_id).await;

    // An unverified identity nobody else's email collides with gets its own user, without the
    // address: not even as an unverified email.
    let email = format!("lone-{run_id}@conformance.example");
    let lone = identity(&format!("lone-{run_id}"), &email, false);
    let outcome = harness.adapter.link(&lone).await.unwrap();
    assert!(matches!(outcome, LinkOutcome::Created { .. }), "{outcome:?}");
    let user = world.get_user(&pool, &downstream_id(&outcome)).await;
    assert_eq!(attribute(&user, "email"), None, "{user}");
    assert_eq!(attribute(&user, "email_verified"), None, "{user}");
    assert_eq!(attribute(&user, "given_name").as_deref(), Some("Test"));
    assert_eq!(linked_subjects(&user), vec![(PROVIDER.to_owned(), lone.subject.clone())]);
    let created = world.proxy.records_of("AdminCreateUser");
    let request = created.last().unwrap().json();
    let written: Vec<&str> =
        request["UserAttributes"].as_array().unwrap().iter().map(|a| a["Name"].as_str().unwrap()).collect();
    assert!(!written.contains(&"email") && !written.contains(&"email_verified"), "{written:?}");
    // The returning sign-in finds it by its username.
    let again = harness.adapter.link(&lone).await.unwrap();
    assert_eq!(downstream_id(&again), downstream_id(&outcome));

    // A disabled account is not signed in to, whichever way it is found.
    let email = format!("disabled-{run_id}@conformance.example");
    let disabled = harness.create_existing_user(&email, true).await;
    world.aws.cognito_ok(&world.admin, "AdminDisableUser", json!({"UserPoolId": pool, "Username": disabled})).await;
    let who = identity(&format!("disabled-{run_id}"), &email, true);
    match harness.adapter.link(&who).await {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("a disabled account is refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_a_pool_that_signs_in_by_email() {
    let world = World::start().await;
    let pool = world.create_pool(true, true).await;
    let harness = MotoHarness::new(&world, &pool, true);
    let run_id = unique();
    conformance::run(&harness, &run_id).await;
    check_the_pool_after_conformance(&harness, &run_id).await;

    // Such a pool cannot hold a user without an email.
    let mut who = identity(&format!("no-email-{run_id}"), "x@conformance.example", true);
    who.email = None;
    assert!(matches!(harness.adapter.link(&who).await, Err(AdapterError::Refused { .. })));

    // Nor one for an unverified identity: its email would be its username, its address.
    let email = format!("unverified-username-{run_id}@conformance.example");
    let who = identity(&format!("unverified-username-{run_id}"), &email, false);
    match harness.adapter.link(&who).await {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("verified email address"), "{reason}"),
        other => panic!("an unverified identity in an email-username pool is refused, got {other:?}"),
    }
    assert!(world.usernames_with_email(&pool, &email).await.is_empty(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_call_is_signed_and_shaped_as_documented_and_throttling_is_retried() {
    let world = World::start().await;
    let pool = world.create_pool(false, true).await;
    // Temporary credentials, so that the session token's header is covered too.
    let creds = world.assume_adapter_role().await;
    let adapter = world.adapter(&pool, &creds);
    let who = identity(&format!("shape-{}", unique()), "shape@example.com", true);

    let outcome = adapter.link(&who).await.unwrap();
    let LinkOutcome::Created { downstream_user_id, extra_claims, token_fields } = &outcome else {
        panic!("a new identity is Created, got {outcome:?}")
    };
    assert!(extra_claims.is_empty() && token_fields.is_empty());
    let actions: Vec<String> = world.proxy.records().into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        ["DescribeUserPool", "AdminGetUser", "ListUsers", "AdminCreateUser", "AdminLinkProviderForUser"],
        "a first sign-in: read the pool, look the user up, create it, link it"
    );

    let links = world.proxy.records_of("AdminLinkProviderForUser");
    let link = &links[0];
    let expected = format!(
        concat!(
            r#"{{"UserPoolId":"{pool}","#,
            r#""DestinationUser":{{"ProviderName":"Cognito","ProviderAttributeValue":"{user}"}},"#,
            r#""SourceUser":{{"ProviderName":"ssobridge","ProviderAttributeName":"Cognito_Subject","#,
            r#""ProviderAttributeValue":"{sub}"}}}}"#
        ),
        pool = pool,
        user = downstream_user_id,
        sub = who.subject
    );
    assert_eq!(String::from_utf8(link.body.clone()).unwrap(), expected);
    assert_eq!(link.header("content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(link.header("x-amz-target"), Some("AWSCognitoIdentityProviderService.AdminLinkProviderForUser"));
    assert_eq!(link.header("x-amz-security-token"), creds.token.as_deref());
    let date = link.header("x-amz-date").unwrap();
    assert!(date.len() == 16 && &date[8..9] == "T" && date.ends_with('Z'), "x-amz-date {date}");
    let authorization = link.header("authorization").unwrap();
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}/{REGION}/cognito-idp/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=",
        creds.key,
        &date[..8]
    );
    assert!(authorization.starts_with(&prefix), "{authorization}");
    let signature = &authorization[prefix.len()..];
    assert!(signature.len() == 64 && signature.chars().all(|c| c.is_ascii_hexdigit()), "{signature}");
    // moto checked that signature and the role's permission before finding no implementation;
    // only then did the proxy answer.
    assert!(link.by_proxy && link.status == 200, "{link:?}");

    // Throttled twice, each time with Retry-After: 1 — waited out, then the sign-in goes through.
    let before = world.proxy.records().len();
    world.proxy.inject(Canned { status: 429, kind: "ThrottlingException".into(), retry_after: Some("1".into()) });
    world.proxy.inject(Canned { status: 400, kind: "TooManyRequestsException".into(), retry_after: Some("1".into()) });
    let started = Instant::now();
    let again = adapter.link(&who).await.unwrap();
    assert!(matches!(again, LinkOutcome::Linked { .. }), "{again:?}");
    assert_eq!(downstream_id(&again), *downstream_user_id);
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After honoured: {:?}", started.elapsed());
    let retried: Vec<(String, u16, bool)> =
        world.proxy.records()[before..].iter().map(|r| (r.action.clone(), r.status, r.by_proxy)).collect();
    assert_eq!(
        retried[..3],
        [
            ("AdminGetUser".to_owned(), 429, true),
            ("AdminGetUser".to_owned(), 400, true),
            ("AdminGetUser".to_owned(), 200, false)
        ]
    );
    assert!(retried.iter().all(|(action, ..)| action != "AdminLinkProviderForUser"), "already linked: {retried:?}");

    // A Retry-After longer than a sign-in can wait is not waited out: Transient, with the hint.
    world.proxy.inject(Canned { status: 429, kind: "ThrottlingException".into(), retry_after: Some("30".into()) });
    let started = Instant::now();
    match adapter.link(&who).await {
        Err(AdapterError::Transient { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(30))),
        other => panic!("long throttling is Transient, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2), "did not wait: {:?}", started.elapsed());

    // Server faults are retried a bounded number of times, then reported as Transient.
    let before = world.proxy.records().len();
    for _ in 0..4 {
        world.proxy.inject(Canned { status: 503, kind: "ServiceUnavailable".into(), retry_after: None });
    }
    assert!(matches!(adapter.link(&who).await, Err(AdapterError::Transient { .. })));
    assert_eq!(world.proxy.records().len() - before, 3, "three attempts, no more");
    world.proxy.clear_faults();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_missing_permissions_and_wrong_pools_are_misconfigured() {
    let world = World::start().await;
    let pool = world.create_pool(false, true).await;
    let email = format!("misconfigured-{}@example.com", unique());
    let who = identity(&format!("misconfigured-{}", unique()), &email, true);
    let secrets = [world.adapter_creds.secret.clone(), "not-the-secret-key".to_owned()];
    let expect_misconfigured = |what: &str, result: Result<LinkOutcome, AdapterError>| match result {
        Err(AdapterError::Misconfigured { detail }) => {
            assert!(secrets.iter().all(|s| !detail.contains(s.as_str())), "{what}: a secret leaked into {detail}");
            detail
        }
        other => panic!("{what}: expected Misconfigured, got {other:?}"),
    };

    let wrong_secret = Creds { secret: "not-the-secret-key".into(), ..world.adapter_creds.clone() };
    let detail = expect_misconfigured("wrong secret", world.adapter(&pool, &wrong_secret).link(&who).await);
    assert!(detail.contains("SignatureDoesNotMatch"), "{detail}");

    let unknown_key = Creds { key: "AKIAUNKNOWNKEY000000".into(), ..world.adapter_creds.clone() };
    let detail = expect_misconfigured("unknown key", world.adapter(&pool, &unknown_key).link(&who).await);
    assert!(detail.contains("InvalidClientTokenId"), "{detail}");

    // A principal that may read but not create.
    let read_only = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
        "Action": ["cognito-idp:DescribeUserPool", "cognito-idp:AdminGetUser", "cognito-idp:ListUsers"]}]});
    let reader =
        support::iam_user(&world.aws, &world.admin, &format!("reader-{}", unique()), &read_only.to_string()).await;
    let detail = expect_misconfigured("missing permission", world.adapter(&pool, &reader).link(&who).await);
    assert!(detail.contains("AccessDenied") && detail.contains("AdminCreateUser"), "{detail}");

    let missing_pool = format!("{REGION}_doesnotexist");
    let detail =
        expect_misconfigured("pool not found", world.adapter(&missing_pool, &world.adapter_creds).link(&who).await);
    assert!(detail.contains("ResourceNotFoundException"), "{detail}");

    let bare_pool = world.create_pool(false, false).await;
    let detail = expect_misconfigured(
        "pool without custom attributes",
        world.adapter(&bare_pool, &world.adapter_creds).link(&who).await,
    );
    assert!(detail.contains("custom:org_id"), "{detail}");

    for pool in [&pool, &bare_pool] {
        assert!(world.usernames_with_email(pool, &email).await.is_empty(), "nothing was created");
    }

    // A principal with the sign-in statement only: it signs users in, but disabling, deleting
    // and writing roles are refused, naming the action that is missing.
    let mut policy: Value = serde_json::from_str(&support::adapter_policy()).unwrap();
    policy["Statement"] = json!([policy["Statement"][0].clone()]);
    let signer =
        support::iam_user(&world.aws, &world.admin, &format!("signer-{}", unique()), &policy.to_string()).await;
    let adapter = world.adapter(&pool, &signer);
    let username = downstream_id(&adapter.link(&who).await.expect("signs in"));
    let roles = Entitlements { groups: Vec::new(), roles: vec!["viewer".to_owned()] };
    let managed = vec!["viewer".to_owned()];
    for (what, result, action) in [
        ("disable", adapter.disable(&username).await, "AdminUserGlobalSignOut"),
        ("enable", adapter.enable(&username).await, "AdminEnableUser"),
        ("delete", adapter.delete(&username).await, "AdminDeleteUser"),
        ("set_roles", adapter.set_roles(&username, &roles, &managed).await, "AdminListGroupsForUser"),
    ] {
        match result {
            Err(AdapterError::Misconfigured { detail }) => {
                assert!(detail.contains("AccessDenied") && detail.contains(action), "{what}: {detail}")
            }
            other => panic!("{what} without the permission is Misconfigured, got {other:?}"),
        }
    }
    assert_eq!(world.get_user(&pool, &username).await["Enabled"], true, "nothing was changed");
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_signs_the_user_out_and_enabling_does_not_bring_its_sessions_back() {
    let world = World::start().await;
    let pool = world.create_pool(false, true).await;
    let app = world.create_app_client(&pool).await;
    let adapter = world.adapter(&pool, &world.adapter_creds);
    let who = identity(&format!("disable-{}", unique()), &format!("disable-{}@example.com", unique()), true);
    let username = downstream_id(&adapter.link(&who).await.unwrap());
    let session = world.sign_in_with_password(&pool, &app, &username).await;
    let refresh_token = session["RefreshToken"].as_str().unwrap().to_owned();
    world.refresh(&pool, &app, &refresh_token).await.expect("the session works before");

    assert_eq!(adapter.disable(&username).await.unwrap(), UserChange::Applied);
    assert_eq!(world.get_user(&pool, &username).await["Enabled"], false);
    let actions: Vec<String> = world.proxy.records().into_iter().map(|r| r.action).collect();
    assert_eq!(actions[actions.len() - 2..], ["AdminUserGlobalSignOut", "AdminDisableUser"], "{actions:?}");
    let refused = world.refresh(&pool, &app, &refresh_token).await.expect_err("the session ended");
    assert!(refused.contains("NotAuthorizedException"), "{refused}");
    // The same job again (a retried webhook): the same result.
    assert_eq!(adapter.disable(&username).await.unwrap(), UserChange::Applied);
    match adapter.link(&who).await {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("a disabled user is not signed in to, got {other:?}"),
    }

    assert_eq!(adapter.enable(&username).await.unwrap(), UserChange::Applied);
    assert_eq!(world.get_user(&pool, &username).await["Enabled"], true);
    // Enabled again, yet the refresh token from before stays refused: it was signed out.
    let refused = world.refresh(&pool, &app, &refresh_token).await.expect_err("the old session stays ended");
    assert!(refused.contains("NotAuthorizedException"), "{refused}");
    world.sign_in_with_password(&pool, &app, &username).await;
    assert_eq!(downstream_id(&adapter.link(&who).await.unwrap()), username, "signs in again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_become_pool_groups_in_the_users_tokens_and_other_groups_stay() {
    let world = World::start().await;
    let pool = world.create_pool(false, true).await;
    let app = world.create_app_client(&pool).await;
    for group in ["viewer", "editor", "app-admins"] {
        world.create_group(&pool, group).await;
    }
    let adapter = world.adapter(&pool, &world.adapter_creds);
    let who = identity(&format!("roles-{}", unique()), &format!("roles-{}@example.com", unique()), true);
    let username = downstream_id(&adapter.link(&who).await.unwrap());
    world.add_to_group(&pool, &username, "app-admins").await;
    let managed = strings(&["viewer", "editor", "admin"]);

    let wanted = Entitlements { groups: strings(&["eng"]), roles: strings(&["viewer", "editor"]) };
    assert_eq!(adapter.set_roles(&username, &wanted, &managed).await.unwrap(), UserChange::Applied);
    assert_eq!(world.groups_of(&pool, &username).await, ["app-admins", "editor", "viewer"]);
    let tokens = world.sign_in_with_password(&pool, &app, &username).await;
    let mut groups: Vec<String> =
        serde_json::from_value(support::jwt_claims(tokens["IdToken"].as_str().unwrap())["cognito:groups"].clone())
            .unwrap();
    groups.sort();
    assert_eq!(groups, ["app-admins", "editor", "viewer"], "the application sees the roles in its tokens");

    // A role whose group the pool lacks: reported, naming the group, and nothing half-done.
    let wanted = Entitlements { groups: Vec::new(), roles: strings(&["admin"]) };
    match adapter.set_roles(&username, &wanted, &managed).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("\"admin\""), "{detail}"),
        other => panic!("a missing group is Misconfigured, got {other:?}"),
    }
    assert_eq!(world.groups_of(&pool, &username).await, ["app-admins", "editor", "viewer"]);

    // With create_groups the adapter makes it (CreateGroup is in the policy's last statement).
    let mut settings = world.settings(&pool, &world.adapter_creds, &world.proxy.url, 5);
    settings.create_groups = Some(true);
    let creating = CognitoAdapter::new(settings).unwrap();
    assert_eq!(creating.set_roles(&username, &wanted, &managed).await.unwrap(), UserChange::Applied);
    assert_eq!(world.groups_of(&pool, &username).await, ["admin", "app-admins"]);
    assert_eq!(world.pool_groups(&pool).await, ["admin", "app-admins", "editor", "viewer"]);
    assert_eq!(creating.set_roles(&username, &wanted, &managed).await.unwrap(), UserChange::Applied);
    assert_eq!(world.groups_of(&pool, &username).await, ["admin", "app-admins"], "twice, the same");
}
