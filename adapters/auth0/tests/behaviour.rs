//! The adapter against the fake tenant: token handling, retries, and the first-login /
//! returning-login / collision rules of the crate docs.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::tenant::{FakeTenant, Fault, Op};
use common::{adapter, downstream_id, identity, run_id, settings};
use serde_json::json;
use ssobridge_adapter_auth0::Auth0Adapter;
use ssobridge_adapter_core::{Adapter, AdapterError, Entitlements, LinkOutcome, UserChange};

fn fresh_email(tag: &str) -> String {
    format!("{tag}-{}@acme.example", run_id())
}

fn is_linked_to(outcome: &LinkOutcome, id: &str) -> bool {
    matches!(outcome, LinkOutcome::Linked { .. }) && downstream_id(outcome) == id
}

// --- the token ---------------------------------------------------------------------------

#[tokio::test]
async fn one_token_serves_many_calls() {
    let tenant = FakeTenant::start().await;
    let adapter = adapter(&tenant.base);
    for n in 0..8 {
        adapter.link(&identity(&format!("many-{n}"), &fresh_email("many"), true)).await.expect("link");
    }
    assert_eq!(tenant.count(Op::Token), 1, "the token is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_do_not_stampede_the_token_endpoint() {
    let tenant = FakeTenant::start().await;
    tenant.set_token_delay(Duration::from_millis(300));
    let adapter = Arc::new(adapter(&tenant.base));
    let mut tasks = Vec::new();
    for n in 0..16 {
        let adapter = adapter.clone();
        tasks.push(tokio::spawn(async move {
            adapter.link(&identity(&format!("herd-{n}"), &format!("herd-{n}@acme.example"), true)).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("link");
    }
    assert_eq!(tenant.count(Op::Token), 1, "sixteen concurrent callers, one token request");
}

#[tokio::test]
async fn adapters_of_one_application_share_the_token() {
    let tenant = FakeTenant::start().await;
    let (a, b) = (adapter(&tenant.base), adapter(&tenant.base));
    a.link(&identity("share-a", &fresh_email("share"), true)).await.expect("a");
    b.link(&identity("share-b", &fresh_email("share"), true)).await.expect("b");
    assert_eq!(tenant.count(Op::Token), 1, "one token per process, tenant and application");
}

#[tokio::test]
async fn the_token_is_refreshed_shortly_before_it_expires() {
    let tenant = FakeTenant::start().await;
    // A 6 s token is refreshed after half its life (60 s before expiry for real tokens).
    tenant.set_token_lifetime(6);
    let adapter = adapter(&tenant.base);
    adapter.link(&identity("refresh-1", &fresh_email("refresh"), true)).await.expect("first");
    adapter.link(&identity("refresh-2", &fresh_email("refresh"), true)).await.expect("second");
    assert_eq!(tenant.count(Op::Token), 1);
    // Real time has to pass here: the expiry is the Auth0 tenant's clock, not the test's.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    adapter.link(&identity("refresh-3", &fresh_email("refresh"), true)).await.expect("third");
    assert_eq!(tenant.count(Op::Token), 2, "a token near expiry is replaced before use");
}

#[tokio::test]
async fn a_rejected_token_is_replaced_once() {
    let tenant = FakeTenant::start().await;
    let adapter = adapter(&tenant.base);
    adapter.link(&identity("revoked-1", &fresh_email("revoked"), true)).await.expect("first");
    tenant.revoke_tokens();
    adapter.link(&identity("revoked-2", &fresh_email("revoked"), true)).await.expect("after revocation");
    assert_eq!(tenant.count(Op::Token), 2);
}

#[tokio::test]
async fn wrong_client_credentials_are_misconfigured_and_never_echo_the_secret() {
    let tenant = FakeTenant::start().await;
    let mut wrong = settings(&tenant.base);
    wrong.client_secret = "the-wrong-secret-0123".into();
    let adapter = Auth0Adapter::new(wrong).expect("settings");
    match adapter.link(&identity("wrong", &fresh_email("wrong"), true)).await {
        Err(AdapterError::Misconfigured { detail }) => {
            assert!(detail.contains("401"), "{detail}");
            assert!(!detail.contains("the-wrong-secret-0123"), "{detail}");
        }
        other => panic!("expected Misconfigured, got {other:?}"),
    }
    assert!(!format!("{adapter:?}").contains("the-wrong-secret-0123"));
}

#[tokio::test]
async fn a_missing_scope_is_misconfigured() {
    let tenant = FakeTenant::start().await;
    tenant.set_scopes(&["read:users"]);
    let email = fresh_email("scope");
    tenant.create_database_user(&email, true);
    let who = identity("scope", &email, true);
    tenant.login(&who);
    match adapter(&tenant.base).link(&who).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("update:users"), "{detail}"),
        other => panic!("linking without update:users is Misconfigured, got {other:?}"),
    }
}

// --- retries -----------------------------------------------------------------------------

#[tokio::test]
async fn a_rate_limited_call_waits_for_retry_after_and_retries() {
    let tenant = FakeTenant::start().await;
    tenant.fail_next(Op::Search, 1, Fault::rate_limited(&[("retry-after", "1")]));
    let started = Instant::now();
    adapter(&tenant.base).link(&identity("retry-after", &fresh_email("retry-after"), true)).await.expect("link");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited as asked: {:?}", started.elapsed());
    assert_eq!(tenant.count(Op::Search), 2, "one 429, one retry");
}

#[tokio::test]
async fn a_rate_limited_call_honours_the_reset_time() {
    let tenant = FakeTenant::start().await;
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 1;
    let reset = reset.to_string();
    tenant.fail_next(
        Op::ByEmail,
        1,
        Fault::rate_limited(&[
            ("x-ratelimit-limit", "10"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]),
    );
    adapter(&tenant.base).link(&identity("reset", &fresh_email("reset"), true)).await.expect("link");
    assert_eq!(tenant.count(Op::ByEmail), 2, "one 429, one retry after the reset");
}

#[tokio::test]
async fn a_rate_limit_longer_than_the_budget_is_transient_with_retry_after() {
    let tenant = FakeTenant::start().await;
    tenant.fail_next(Op::Search, 1, Fault::rate_limited(&[("retry-after", "120")]));
    let started = Instant::now();
    match adapter(&tenant.base).link(&identity("long-wait", &fresh_email("long-wait"), true)).await {
        Err(AdapterError::Transient { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)))
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "gave up at once instead of waiting");
    assert_eq!(tenant.count(Op::Search), 1);
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let tenant = FakeTenant::start().await;
    tenant.fail_next(Op::ByEmail, 2, Fault::server_error(503));
    adapter(&tenant.base).link(&identity("blip", &fresh_email("blip"), true)).await.expect("third attempt succeeds");
    assert_eq!(tenant.count(Op::ByEmail), 3);

    tenant.fail_next(Op::Search, 10, Fault::server_error(502));
    let result = adapter(&tenant.base).link(&identity("outage", &fresh_email("outage"), true)).await;
    assert!(matches!(result, Err(AdapterError::Transient { .. })), "{result:?}");
    assert_eq!(tenant.count(Op::Search), 1 + 3, "three attempts, then Transient");
}

// --- first and returning logins ----------------------------------------------------------

#[tokio::test]
async fn a_first_login_is_created_by_auth0_with_the_expected_id() {
    let tenant = FakeTenant::start().await;
    let outcome = adapter(&tenant.base).link(&identity("first", &fresh_email("first"), true)).await.expect("link");
    assert!(matches!(outcome, LinkOutcome::Created { .. }), "{outcome:?}");
    assert_eq!(downstream_id(&outcome), "oidc|ssobridge|first");
    assert_eq!(outcome.extra_claims().map(|c| c.len()), Some(0));
    assert_eq!(outcome.token_fields().map(|c| c.len()), Some(0));
    assert_eq!(tenant.user_count(), 0, "the adapter creates nothing: Auth0 does, at this login");
    assert_eq!((tenant.count(Op::Link), tenant.count(Op::PatchUser)), (0, 0));
}

#[tokio::test]
async fn the_returning_login_links_to_the_existing_user_by_verified_email() {
    let tenant = FakeTenant::start().await;
    let adapter = adapter(&tenant.base);
    let email = fresh_email("existing");
    let primary = tenant.create_database_user(&email, true);
    let who = identity("existing", &email, true);

    // First login: nothing to link yet; Auth0 then creates the OIDC user.
    let first = adapter.link(&who).await.expect("first login");
    assert!(matches!(first, LinkOutcome::Created { .. }), "{first:?}");
    assert_eq!(tenant.login(&who), "oidc|ssobridge|existing");
    assert_eq!(tenant.users_with_email(&email).len(), 2, "until the next login, Auth0 has both");

    // Returning login: linked into the existing user, which Auth0 signs in from now on.
    let second = adapter.link(&who).await.expect("returning login");
    assert!(is_linked_to(&second, &primary), "{second:?}");
    assert_eq!(tenant.users_with_email(&email), vec![primary.clone()]);
    assert_eq!(tenant.login(&who), primary, "Auth0 now signs the identity in as the existing user");
    let user = tenant.user(&primary).expect("primary");
    assert_eq!(user["app_metadata"], json!({"org_id": "org_test", "connection_id": "conn_test"}));
    let oidc = &user["identities"][1];
    assert_eq!((&oidc["provider"], &oidc["user_id"]), (&json!("oidc"), &json!("ssobridge|existing")));

    // And after that: idempotent, no second link call, no needless update.
    let third = adapter.link(&who).await.expect("later login");
    assert!(is_linked_to(&third, &primary), "{third:?}");
    assert_eq!((tenant.count(Op::Link), tenant.count(Op::PatchUser)), (1, 1));
}

#[tokio::test]
async fn a_subject_with_pipes_links_from_the_identities_entry() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("pipes");
    let primary = tenant.create_database_user(&email, true);
    // `subject = "upstream"` passes Scalekit subjects through; splitting ids on `|` would break.
    let who = identity("conn_9;odd|user@acme.example", &email, true);
    assert_eq!(tenant.login(&who), "oidc|ssobridge|conn_9;odd|user@acme.example");
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, &primary), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_logins_link_once() {
    let tenant = FakeTenant::start().await;
    let adapter = adapter(&tenant.base);
    let email = fresh_email("race");
    let primary = tenant.create_database_user(&email, true);
    let who = identity("race", &email, true);

    // Two first logins at once: both are told Auth0 creates the same user; nothing is written.
    let (a, b) = tokio::join!(adapter.link(&who), adapter.link(&who));
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert!(matches!(a, LinkOutcome::Created { .. }) && a == b, "{a:?} {b:?}");
    tenant.login(&who);
    tenant.login(&who);

    // Two returning logins at once, both reading before either links: one link call wins,
    // the other's 409 is re-read.
    tenant.line_up(Op::ByEmail, 2);
    let (a, b) = tokio::join!(adapter.link(&who), adapter.link(&who));
    assert!(is_linked_to(&a.expect("a"), &primary));
    assert!(is_linked_to(&b.expect("b"), &primary));
    assert_eq!(tenant.users_with_email(&email), vec![primary.clone()]);
    let identities = tenant.user(&primary).expect("primary")["identities"].as_array().expect("array").len();
    assert_eq!(identities, 2, "linked exactly once");
    assert_eq!(tenant.count(Op::Link), 2, "both tried; the loser's conflict was not an error");
}

#[tokio::test]
async fn a_link_conflict_is_read_again_not_reported() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("conflict");
    let primary = tenant.create_database_user(&email, true);
    let who = identity("conflict", &email, true);
    tenant.login(&who);
    // Another sign-in (or the post-login Action) links between our reads and our link call.
    tenant.fail_next(
        Op::Link,
        1,
        Fault {
            status: 409,
            headers: Vec::new(),
            body: json!({"statusCode": 409, "error": "Conflict", "message": "Specified identity already exists."}),
        },
    );
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    // The identity was not in fact linked (the fault stood in for the race), so the re-read
    // finds the OIDC user still apart and keeps it so until the next login.
    assert!(is_linked_to(&outcome, "oidc|ssobridge|conflict"), "{outcome:?}");
    let again = adapter(&tenant.base).link(&who).await.expect("next login");
    assert!(is_linked_to(&again, &primary), "{again:?}");
}

#[tokio::test]
async fn search_lag_neither_hides_a_user_nor_links_twice() {
    let tenant = FakeTenant::start().await;
    let adapter = adapter(&tenant.base);
    let email = fresh_email("lag");
    let primary = tenant.create_database_user(&email, true);
    let who = identity("lag", &email, true);

    // The OIDC user was created seconds ago and is not in the search index yet.
    tenant.freeze_search();
    tenant.login(&who);
    let linked = adapter.link(&who).await.expect("link");
    assert!(is_linked_to(&linked, &primary), "found through the consistent read: {linked:?}");

    // The index still shows the OIDC user on its own, though it is linked now.
    let again = adapter.link(&who).await.expect("again");
    assert!(is_linked_to(&again, &primary), "{again:?}");
    assert_eq!(tenant.count(Op::Link), 1, "users-by-email shows the link; no second link call");
    tenant.thaw_search();
}

// --- collisions and unverified emails ----------------------------------------------------

#[tokio::test]
async fn an_unverified_first_login_that_collides_is_refused() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("unverified");
    tenant.create_database_user(&email, true);
    match adapter(&tenant.base).link(&identity("unverified", &email, false)).await {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("verify"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    let alone = adapter(&tenant.base).link(&identity("unverified-alone", &fresh_email("alone"), false)).await;
    assert!(matches!(alone, Ok(LinkOutcome::Created { .. })), "no collision, no refusal: {alone:?}");
}

#[tokio::test]
async fn an_unverified_returning_login_is_kept_apart() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("apart");
    let primary = tenant.create_database_user(&email, true);
    let who = identity("apart", &email, false);
    tenant.login(&who);
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, "oidc|ssobridge|apart"), "{outcome:?}");
    assert_eq!(tenant.count(Op::Link), 0);
    assert_eq!(tenant.user(&primary).expect("primary")["identities"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_account_with_an_unverified_email_is_never_linked_into() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("squatter");
    tenant.create_database_user(&email, false);
    let who = identity("squatter", &email, true);
    tenant.login(&who);
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, "oidc|ssobridge|squatter"), "{outcome:?}");
    assert_eq!(tenant.count(Op::Link), 0);
}

#[tokio::test]
async fn a_first_login_whose_address_only_an_unverified_account_holds_is_refused() {
    // Pre-account takeover: the attacker signed up with the victim's address and never
    // verified it; the victim's first SSO login must not go on to sit next to (and be joined
    // with) the attacker's account.
    let tenant = FakeTenant::start().await;
    let email = fresh_email("squatted");
    let squatter = tenant.create_database_user(&email, false);
    let before = tenant.user(&squatter);
    let victim = identity("squatted", &email, true);
    let recorder = common::Recorder::default();
    let refused = {
        // A current-thread test: the adapter's events all reach this subscriber.
        let _guard = tracing::subscriber::set_default(recorder.clone());
        adapter(&tenant.base).link(&victim).await
    };
    match refused {
        Err(AdapterError::Refused { reason }) => assert!(reason.contains("never verified"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    let audit: Vec<String> = recorder.lines().into_iter().filter(|l| l.contains("audit=true")).collect();
    assert_eq!(audit.len(), 1, "one audit line: {:?}", recorder.lines());
    for part in [
        "WARN",
        r#"action="link_refused""#,
        r#"reason="existing_account_email_unverified""#,
        &format!("downstream_user_id={squatter}"),
    ] {
        assert!(audit[0].contains(part), "{part} missing from {audit:?}");
    }
    assert!(!audit[0].contains(&email), "no email in the audit line: {audit:?}");
    assert_eq!(tenant.user(&squatter), before, "the attacker's account is untouched");
    assert_eq!(tenant.users_with_email(&email), vec![squatter]);
    assert_eq!((tenant.count(Op::Link), tenant.count(Op::PatchUser)), (0, 0));

    // With a verified account holding the address too, that one is the person's: no refusal,
    // and the next login links there, never into the unverified one.
    let email = fresh_email("squatted-and-owned");
    let squatter = tenant.create_database_user(&email, false);
    let owner = tenant.create_social_user(&email, true);
    let who = identity("squatted-and-owned", &email, true);
    let first = adapter(&tenant.base).link(&who).await.expect("first login");
    assert!(matches!(first, LinkOutcome::Created { .. }), "{first:?}");
    tenant.login(&who);
    let second = adapter(&tenant.base).link(&who).await.expect("returning login");
    assert!(is_linked_to(&second, &owner), "{second:?}");
    assert_eq!(tenant.user(&squatter).expect("squatter")["identities"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn several_verified_accounts_are_not_linked_automatically() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("several");
    tenant.create_database_user(&email, true);
    tenant.create_social_user(&email, true);
    let who = identity("several", &email, true);
    tenant.login(&who);
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, "oidc|ssobridge|several"), "{outcome:?}");
    assert_eq!(tenant.count(Op::Link), 0);
}

#[tokio::test]
async fn an_oidc_user_that_is_a_primary_itself_is_not_moved() {
    let tenant = FakeTenant::start().await;
    let email = fresh_email("holder");
    tenant.create_database_user(&email, true);
    let who = identity("holder", &email, true);
    let own = tenant.login(&who);
    // Someone linked another account into the OIDC user.
    let other = tenant.create_social_user(&fresh_email("holder-other"), true);
    tenant.link_directly(&own, &other);
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, &own), "{outcome:?}");
    assert_eq!(tenant.count(Op::Link), 0);
}

#[tokio::test]
async fn emails_are_matched_in_lower_case() {
    let tenant = FakeTenant::start().await;
    let lower = fresh_email("mixed");
    let primary = tenant.create_database_user(&lower, true);
    let mixed = lower.to_uppercase();
    // Auth0 keeps the OIDC user's email as ssobridge sent it: upper case here.
    let who = identity("mixed", &mixed, true);
    tenant.login(&who);
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, &primary), "{outcome:?}");
    let asked = tenant.log().into_iter().filter(|l| l.contains("/users-by-email")).collect::<Vec<_>>();
    assert!(asked[0].contains(&format!("email={}", lower.replace('@', "%40"))), "lower case first: {asked:?}");
}

#[tokio::test]
async fn a_social_account_keeps_its_case_and_is_still_found() {
    let tenant = FakeTenant::start().await;
    let lower = fresh_email("social");
    let mixed = format!("Mixed{lower}");
    let primary = tenant.create_social_user(&mixed, true);
    let who = identity("social", &mixed, true);
    tenant.login(&who);
    let outcome = adapter(&tenant.base).link(&who).await.expect("link");
    assert!(is_linked_to(&outcome, &primary), "{outcome:?}");
}

// --- app_metadata ------------------------------------------------------------------------

#[tokio::test]
async fn app_metadata_is_merged_and_written_only_when_it_changes() {
    let tenant = FakeTenant::start().await;
    let adapter = adapter(&tenant.base);
    let email = fresh_email("metadata");
    let who = identity("metadata", &email, true);
    let user = tenant.login(&who);
    tenant.set_app_metadata(&user, json!({"plan": "gold", "org_id": "org_old"}));

    adapter.link(&who).await.expect("link");
    let metadata = &tenant.user(&user).expect("user")["app_metadata"];
    assert_eq!(metadata, &json!({"plan": "gold", "org_id": "org_test", "connection_id": "conn_test"}));
    adapter.link(&who).await.expect("again");
    assert_eq!(tenant.count(Op::PatchUser), 1, "nothing changed, nothing written");

    let mut moved = who.clone();
    moved.organization_id = Some("org_new".into());
    adapter.link(&moved).await.expect("moved");
    assert_eq!(tenant.user(&user).expect("user")["app_metadata"]["org_id"], "org_new");
    assert_eq!(tenant.count(Op::PatchUser), 2);
}

// --- the user's later life --------------------------------------------------------------

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A user as the broker knows one after a completed first login: Auth0 created it.
async fn signed_in(tenant: &FakeTenant, tag: &str) -> (ssobridge_adapter_core::Identity, String) {
    let who = identity(tag, &fresh_email(tag), true);
    adapter(&tenant.base).link(&who).await.expect("first login");
    let user_id = tenant.login(&who);
    (who, user_id)
}

#[tokio::test]
async fn disabling_blocks_the_user_ends_its_sessions_and_auth0_refuses_the_next_login() {
    let tenant = FakeTenant::start().await;
    let (who, user_id) = signed_in(&tenant, "blocked").await;
    assert_eq!(tenant.sessions_of(&user_id), (1, 1));
    let adapter = adapter(&tenant.base);

    assert_eq!(adapter.disable(&user_id).await, Ok(UserChange::Applied));
    assert_eq!(tenant.user(&user_id).expect("user")["blocked"], true);
    assert_eq!(tenant.sessions_of(&user_id), (0, 0), "sessions and refresh tokens deleted");
    assert_eq!(tenant.try_login(&who), Err("user is blocked".to_owned()));
    let log = tenant.log();
    let calls: Vec<&str> = log.iter().rev().take(3).map(|l| l.split('?').next().unwrap_or("")).collect();
    let encoded = user_id.replace('|', "%7C");
    assert_eq!(
        calls,
        [
            format!("DELETE /api/v2/users/{encoded}/refresh-tokens"),
            format!("DELETE /api/v2/users/{encoded}/sessions"),
            format!("PATCH /api/v2/users/{encoded}"),
        ]
    );

    assert_eq!(adapter.enable(&user_id).await, Ok(UserChange::Applied));
    assert_eq!(tenant.user(&user_id).expect("user")["blocked"], false);
    assert_eq!(tenant.try_login(&who), Ok(user_id));
}

#[tokio::test]
async fn a_tenant_that_refuses_the_session_endpoints_still_blocks_and_says_so() {
    // Session and refresh-token deletion are Enterprise features with their own scopes.
    let tenant = FakeTenant::start().await;
    tenant.set_scopes(&["read:users", "update:users", "update:users_app_metadata", "delete:users"]);
    let (who, user_id) = signed_in(&tenant, "no-sessions-api").await;
    let recorder = common::Recorder::default();
    let result = {
        // A current-thread test: the adapter's events all reach this subscriber.
        let _guard = tracing::subscriber::set_default(recorder.clone());
        adapter(&tenant.base).disable(&user_id).await
    };
    assert_eq!(result, Ok(UserChange::Applied), "the block is what counts");
    assert_eq!(tenant.user(&user_id).expect("user")["blocked"], true);
    assert_eq!(tenant.try_login(&who), Err("user is blocked".to_owned()));
    assert_eq!(tenant.sessions_of(&user_id), (1, 1), "Auth0 kept them");
    let warnings: Vec<String> = recorder.lines().into_iter().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 2, "one warning per refused endpoint: {:?}", recorder.lines());
    assert!(warnings[0].contains("Sessions") && warnings[0].contains("delete:sessions"), "{warnings:?}");
    assert!(warnings[1].contains("RefreshTokens") && warnings[1].contains("status=403"), "{warnings:?}");
}

#[tokio::test]
async fn a_missing_scope_for_deleting_is_misconfigured_and_names_it() {
    let tenant = FakeTenant::start().await;
    tenant.set_scopes(&["read:users", "update:users"]);
    let (_, user_id) = signed_in(&tenant, "no-delete-scope").await;
    match adapter(&tenant.base).delete(&user_id).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("delete:users"), "{detail}"),
        other => panic!("expected Misconfigured, got {other:?}"),
    }
    assert!(tenant.user(&user_id).is_some());
}

#[tokio::test]
async fn the_id_of_an_sso_user_linked_into_an_older_account_reaches_that_account() {
    // The first login reported oidc|ssobridge|SUB (Auth0 created it); the next one linked it
    // into the password account, and that id no longer exists. The broker may still hold it.
    let tenant = FakeTenant::start().await;
    let email = fresh_email("stale");
    let primary = tenant.create_database_user(&email, true);
    let who = identity("stale", &email, true);
    let adapter = adapter(&tenant.base);
    let first = adapter.link(&who).await.expect("first login");
    let stale = downstream_id(&first).to_owned();
    tenant.login(&who);
    assert!(is_linked_to(&adapter.link(&who).await.expect("returning login"), &primary));
    assert!(tenant.user(&stale).is_none(), "merged away");

    assert_eq!(adapter.disable(&stale).await, Ok(UserChange::Applied));
    assert_eq!(tenant.user(&primary).expect("primary")["blocked"], true, "the account itself is blocked");
    assert_eq!(tenant.try_login(&who), Err("user is blocked".to_owned()));
    let roles = Entitlements { groups: strings(&["eng"]), roles: strings(&["editor"]) };
    assert_eq!(adapter.set_roles(&stale, &roles, &strings(&["editor"])).await, Ok(UserChange::Applied));
    assert_eq!(tenant.user(&primary).expect("primary")["app_metadata"]["roles"], json!(["editor"]));
    assert_eq!(adapter.delete(&stale).await, Ok(UserChange::Applied));
    assert!(tenant.user(&primary).is_none(), "the account holding the identity is deleted");
    assert_eq!(adapter.delete(&stale).await, Ok(UserChange::NotFound));
}

#[tokio::test]
async fn a_first_logins_user_is_not_found_until_auth0_has_created_it() {
    let tenant = FakeTenant::start().await;
    let who = identity("not-yet", &fresh_email("not-yet"), true);
    let adapter = adapter(&tenant.base);
    let created = adapter.link(&who).await.expect("first login");
    assert!(matches!(created, LinkOutcome::Created { .. }));
    let user_id = downstream_id(&created).to_owned();
    let roles = Entitlements { groups: Vec::new(), roles: strings(&["viewer"]) };
    let managed = strings(&["viewer"]);
    assert_eq!(adapter.set_roles(&user_id, &roles, &managed).await, Ok(UserChange::NotFound), "retry later");
    tenant.login(&who);
    assert_eq!(adapter.set_roles(&user_id, &roles, &managed).await, Ok(UserChange::Applied));
    assert_eq!(tenant.user(&user_id).expect("user")["app_metadata"]["roles"], json!(["viewer"]));
}

#[tokio::test]
async fn roles_go_into_app_metadata_beside_the_applications_keys_and_only_when_they_change() {
    let tenant = FakeTenant::start().await;
    let (_, user_id) = signed_in(&tenant, "metadata-roles").await;
    tenant.set_app_metadata(&user_id, json!({"plan": "gold", "roles": ["owner"], "org_id": "org_test"}));
    let adapter = adapter(&tenant.base);
    let managed = strings(&["viewer", "editor"]);
    let roles = Entitlements { groups: strings(&["eng"]), roles: strings(&["editor"]) };
    assert_eq!(adapter.set_roles(&user_id, &roles, &managed).await, Ok(UserChange::Applied));
    assert_eq!(
        tenant.user(&user_id).expect("user")["app_metadata"],
        json!({"plan": "gold", "roles": ["owner", "editor"], "groups": ["eng"], "org_id": "org_test"})
    );
    let patches = tenant.count(Op::PatchUser);
    assert_eq!(adapter.set_roles(&user_id, &roles, &managed).await, Ok(UserChange::Applied));
    assert_eq!(tenant.count(Op::PatchUser), patches, "unchanged roles are not written again");
    assert_eq!(
        (tenant.count(Op::UserRoles), tenant.count(Op::ListRoles)),
        (0, 0),
        "no Auth0 roles without assign_roles"
    );
}

#[tokio::test]
async fn a_role_auth0_does_not_have_is_misconfigured_and_nothing_is_written() {
    let tenant = FakeTenant::start().await;
    tenant.create_role("viewer");
    // A role named like it, so that only the exact name counts (name_filter matches loosely).
    tenant.create_role("editor-in-chief");
    let (_, user_id) = signed_in(&tenant, "missing-role").await;
    let mut config = settings(&tenant.base);
    config.assign_roles = Some(true);
    let adapter = Auth0Adapter::new(config).expect("settings");
    let managed = strings(&["viewer", "editor"]);
    let before = tenant.user(&user_id);
    let roles = Entitlements { groups: Vec::new(), roles: strings(&["viewer", "editor"]) };
    match adapter.set_roles(&user_id, &roles, &managed).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("\"editor\""), "{detail}"),
        other => panic!("expected Misconfigured, got {other:?}"),
    }
    assert_eq!(tenant.user(&user_id), before, "nothing was written");
    assert!(tenant.role_names_of(&user_id).is_empty());

    let roles = Entitlements { groups: Vec::new(), roles: strings(&["viewer"]) };
    assert_eq!(adapter.set_roles(&user_id, &roles, &managed).await, Ok(UserChange::Applied));
    assert_eq!(tenant.role_names_of(&user_id), ["viewer"]);
}
