//! Shape checks against tests/fixtures/auth0-management.yaml, with Prism:
//! - as a mock answering from the spec's examples: every request the adapter makes on its way
//!   through token, search, get user, users-by-email, link and update, and then disable,
//!   enable, roles and delete, must validate;
//! - as a validating proxy in front of the fake tenant: the conformance suite and the races,
//!   rate limits and conflicts of behaviour.rs, with every request *and* every answer of the
//!   fake tenant checked against the spec.
//!
//! Prism is a required peer: when it is missing these tests fail, they never skip.

mod common;

use std::sync::Arc;

use common::prism::Prism;
use common::tenant::{FakeTenant, Fault, Op};
use common::{downstream_id, identity, run_id, settings, TenantHarness};
use serde_json::json;
use ssobridge_adapter_auth0::Auth0Adapter;
use ssobridge_adapter_core::{Adapter, Entitlements, LinkOutcome, UserChange};

fn assert_no_violations(prism: &Prism) {
    let violations = prism.violations();
    assert!(
        violations.is_empty(),
        "Prism found spec violations:\n{}\n\nfull log:\n{}",
        violations.join("\n"),
        prism.log()
    );
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}

fn saw(prism: &Prism, what: &str) -> bool {
    prism.requests().iter().any(|l| l.contains(what))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_validate_against_the_spec_examples() {
    let mut prism = Prism::mock().await;
    // The spec's examples describe tenant acme with connection acme-sso: the OIDC user
    // oidc|acme-sso|prism-sub not yet linked, and a database user with the same email.
    let mut config = settings(&prism.base);
    config.connection = "acme-sso".into();
    let adapter = Auth0Adapter::new(config).expect("settings");

    let who = identity("prism-sub", "Prism.User@Example.com", true);
    let outcome = adapter.link(&who).await.expect("link through the mock");
    assert!(matches!(outcome, LinkOutcome::Linked { .. }), "{outcome:?}");
    assert_eq!(downstream_id(&outcome), "auth0|5f7c8ec7c33c6c004bbafe82", "linked into the database user");

    // Another subject: not in the search result, so the adapter reads the user by id too.
    let other = identity("other-sub", "prism.user@example.com", false);
    let _ = adapter.link(&other).await;

    // The user's later life, on the OIDC user of the examples: block (and end its sessions),
    // unblock, roles in app_metadata and as Auth0 roles (the examples hold viewer, the tenant
    // has editor), delete.
    let mut config = settings(&prism.base);
    config.connection = "acme-sso".into();
    config.assign_roles = Some(true);
    let lifecycle = Auth0Adapter::new(config).expect("settings");
    let user = "oidc|acme-sso|prism-sub";
    let (viewer, editor) = ("viewer".to_owned(), "editor".to_owned());
    let roles = Entitlements { groups: vec!["eng".into()], roles: vec![editor.clone()] };
    assert_eq!(lifecycle.disable(user).await, Ok(UserChange::Applied));
    assert_eq!(lifecycle.enable(user).await, Ok(UserChange::Applied));
    assert_eq!(lifecycle.set_roles(user, &roles, &[viewer, editor]).await, Ok(UserChange::Applied));
    assert_eq!(lifecycle.delete(user).await, Ok(UserChange::Applied));

    prism.settle().await;
    assert_no_violations(&prism);
    for operation in ["post /oauth/token", "get /api/v2/users ", "get /api/v2/users-by-email", "get /api/v2/users/oidc"]
    {
        assert!(saw(&prism, operation), "no {operation} request reached Prism:\n{}", prism.log());
    }
    assert!(saw(&prism, "post /api/v2/users/auth0%7C5f7c8ec7c33c6c004bbafe82/identities"), "{}", prism.log());
    assert!(saw(&prism, "patch /api/v2/users/auth0%7C5f7c8ec7c33c6c004bbafe82"), "{}", prism.log());
    for operation in [
        "patch /api/v2/users/oidc%7Cacme-sso%7Cprism-sub ",
        "delete /api/v2/users/oidc%7Cacme-sso%7Cprism-sub/sessions",
        "delete /api/v2/users/oidc%7Cacme-sso%7Cprism-sub/refresh-tokens",
        "get /api/v2/users/oidc%7Cacme-sso%7Cprism-sub/roles",
        "get /api/v2/roles",
        "post /api/v2/users/oidc%7Cacme-sso%7Cprism-sub/roles",
        "delete /api/v2/users/oidc%7Cacme-sso%7Cprism-sub/roles",
        "delete /api/v2/users/oidc%7Cacme-sso%7Cprism-sub ",
    ] {
        assert!(saw(&prism, operation), "no {operation} request reached Prism:\n{}", prism.log());
    }

    // The check itself: a link request with a field Auth0 does not accept is reported.
    let response = http()
        .post(format!("{}/api/v2/users/auth0%7Cx/identities", prism.base))
        .bearer_auth("t")
        .json(&json!({"provider": "oidc", "user_id": "acme-sso|x", "connection": "acme-sso"}))
        .send()
        .await
        .expect("send");
    assert!(response.status().is_client_error());
    prism.settle().await;
    assert!(!prism.violations().is_empty(), "Prism must report the bad request:\n{}", prism.log());
    prism.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_tenant_and_the_adapter_agree_with_the_spec() {
    let tenant = Arc::new(FakeTenant::start().await);
    let mut prism = Prism::proxy(&tenant.base).await;

    // The shared suite, every exchange through the validating proxy.
    let harness = TenantHarness::new(tenant.clone(), &prism.base).await;
    ssobridge_adapter_core::conformance::run(&harness, &run_id()).await;

    let adapter = common::adapter(&prism.base);
    let tag = run_id();
    let email = format!("spec-{tag}@acme.example");
    let primary = tenant.create_database_user(&email, true);
    let who = identity(&format!("spec-{tag}"), &email, true);

    // First login (get user answers 404), then two racing returning logins (201 and 409).
    let first = adapter.link(&who).await.expect("first login");
    assert!(matches!(first, LinkOutcome::Created { .. }), "{first:?}");
    tenant.login(&who);
    tenant.line_up(Op::ByEmail, 2);
    let links_before = tenant.count(Op::Link);
    let (a, b) = tokio::join!(adapter.link(&who), adapter.link(&who));
    assert_eq!(downstream_id(&a.expect("a")), primary);
    assert_eq!(downstream_id(&b.expect("b")), primary);
    assert_eq!(tenant.count(Op::Link) - links_before, 2, "both racers tried to link");

    // A rate limit and a server error, with Auth0's headers, are retried.
    tenant.fail_next(Op::Search, 1, Fault::rate_limited(&[("retry-after", "1"), ("x-ratelimit-remaining", "0")]));
    tenant.fail_next(Op::ByEmail, 1, Fault::server_error(503));
    tenant.fail_next(
        Op::Link,
        1,
        Fault { status: 400, headers: Vec::new(), body: json!({"statusCode": 400, "message": "Unable to link."}) },
    );
    let other = tenant.create_database_user(&format!("spec2-{tag}@acme.example"), true);
    let who2 = identity(&format!("spec2-{tag}"), &format!("spec2-{tag}@acme.example"), true);
    tenant.login(&who2);
    let kept = adapter.link(&who2).await.expect("kept apart after a refused link");
    assert_eq!(downstream_id(&kept), format!("oidc|ssobridge|spec2-{tag}"));
    let linked = adapter.link(&who2).await.expect("linked at the next login");
    assert_eq!(downstream_id(&linked), other);

    // A revoked token: 401, then a new token.
    tenant.revoke_tokens();
    adapter.link(&who).await.expect("after revocation");

    prism.settle().await;
    assert_no_violations(&prism);

    // The check itself: an answer the spec does not define is reported.
    tenant.fail_next(Op::GetUser, 1, Fault { status: 418, headers: Vec::new(), body: json!({"teapot": true}) });
    let _ = http().get(format!("{}/api/v2/users/auth0%7Cx", prism.base)).bearer_auth("t").send().await.expect("send");
    prism.settle().await;
    assert!(!prism.violations().is_empty(), "Prism must report the bad answer:\n{}", prism.log());
    prism.stop().await;
}
