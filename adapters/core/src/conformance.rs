//! The behaviour every adapter must have, as one suite each adapter's tests run against its
//! real peer (moto, the Firebase Auth emulator, a Management API server).
//!
//! The lifecycle checks read the result back from the peer, as a user of the downstream would
//! see it: after `disable` the peer says the user is disabled, after `delete` it has no such
//! user, after `set_roles` it lists exactly the roles (and the application's own role is
//! still there); an outage or throttling in between is waited out or reported `Transient`.
//!
//! A failing check panics with what went wrong: this module is test support.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Adapter, AdapterError, BoxFuture, Entitlements, Identity, LinkOutcome, UserChange};

/// The role names the suite's broker manages; a harness whose downstream needs roles to exist
/// beforehand (Auth0 roles) creates these and [`UNMANAGED_ROLE`].
pub const MANAGED_ROLES: [&str; 3] = ["conformance-viewer", "conformance-editor", "conformance-admin"];
/// A role the application gave the user itself: the broker must never take it away.
pub const UNMANAGED_ROLE: &str = "conformance-app-owned";

/// How the downstream fails for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// HTTP 429 (or the downstream's throttling error) with `Retry-After: 1`.
    RateLimited,
    /// HTTP 503, no `Retry-After`.
    Unavailable,
}

/// What the suite needs from a test harness around one adapter and its downstream.
pub trait Harness: Sync {
    type Adapter: Adapter;

    /// The adapter under test, pointed at the harness's downstream.
    fn adapter(&self) -> &Self::Adapter;

    /// An adapter pointed at a downstream that accepts connections but never answers.
    fn unreachable_adapter(&self) -> &Self::Adapter;

    /// Creates a user directly in the downstream (a password or social user that existed
    /// before SSO) and returns its downstream id. With `verified` false the user is what a
    /// sign-up form leaves behind before its owner follows the confirmation link: the email is
    /// stored but marked unverified (anyone can sign up with anyone's address).
    fn create_existing_user<'a>(&'a self, email: &'a str, verified: bool) -> BoxFuture<'a, String>;

    /// The downstream ids of every user with this email (case-insensitive).
    fn users_with_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>>;

    /// The downstream ids of the users with this email (case-insensitive) whose record marks it
    /// verified.
    fn users_with_verified_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>>;

    /// The downstream's whole record of one user as its admin API returns it, `None` when there
    /// is no such user: two reads compare equal only if nothing (attributes, links, identities)
    /// was written to the user in between.
    fn user_record<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Value>>;

    /// An adapter whose credentials the downstream refuses (a wrong secret or key).
    fn misconfigured_adapter(&self) -> &Self::Adapter;

    /// Whether the downstream shows the user as disabled (Cognito `AdminGetUser` `Enabled:
    /// false`, Firebase `disabled`, Auth0 `blocked`). Panics when there is no such user.
    fn user_disabled<'a>(&'a self, id: &'a str) -> BoxFuture<'a, bool>;

    /// The role names the downstream shows for the user, sorted (Cognito groups, Firebase's
    /// `roles` claim, Auth0's `app_metadata.roles` and Auth0 roles).
    fn user_roles<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Vec<String>>;

    /// The directory groups the downstream shows for the user, sorted; `None` for a
    /// downstream the adapter writes no groups to (Cognito).
    fn user_groups<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Vec<String>>>;

    /// Gives the user `role` the way the application or an administrator would, directly in
    /// the downstream, outside the broker's management.
    fn grant_role_directly<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, ()>;

    /// The next `requests` requests the adapter (not the harness) sends are answered with
    /// `outage` instead of reaching the downstream.
    fn fail_next(&self, requests: usize, outage: Outage);

    /// Ends what [`Harness::fail_next`] started: the downstream answers again.
    fn end_outage(&self);

    /// The secrets the adapters hold (client secrets, keys, the tokens they obtain, or
    /// markers of them): none may appear in an error or a log line.
    fn secrets(&self) -> Vec<String>;

    /// Every log line written in this process so far (the harness records them), span
    /// fields included.
    fn log_lines(&self) -> Vec<String>;

    /// The longest an adapter call may take against the unreachable downstream.
    fn timeout_bound(&self) -> Duration {
        Duration::from_secs(15)
    }
}

/// A verified identity of a user new to the downstream; `tag` keeps runs apart.
pub fn identity(tag: &str, email: &str, verified: bool) -> Identity {
    Identity {
        upstream_subject: format!("conn_test;{email}"),
        subject: format!("sub-{tag}"),
        connection_id: Some("conn_test".to_owned()),
        organization_id: Some("org_test".to_owned()),
        email: Some(email.to_owned()),
        email_verified: verified,
        name: Some("Test User".to_owned()),
        given_name: Some("Test".to_owned()),
        family_name: Some("User".to_owned()),
    }
}

fn downstream_id(outcome: &LinkOutcome) -> &str {
    match outcome {
        LinkOutcome::Linked { downstream_user_id, .. } | LinkOutcome::Created { downstream_user_id, .. } => {
            downstream_user_id
        }
        LinkOutcome::Unchanged => panic!("a real adapter must say which downstream user it used"),
    }
}

/// Runs every check. `run_id` must be unique per run (it goes into emails and subjects).
pub async fn run<H: Harness>(harness: &H, run_id: &str) {
    idempotent_first_and_returning_login(harness, run_id).await;
    racing_first_logins_make_one_user(harness, run_id).await;
    verified_email_links_to_the_existing_user(harness, run_id).await;
    unverified_email_never_links(harness, run_id).await;
    pre_registered_unverified_account_is_never_taken_over(harness, run_id).await;
    unverified_identity_never_gets_its_email_as_an_address(harness, run_id).await;
    an_unreachable_downstream_is_transient_and_bounded(harness, run_id).await;
    disable_blocks_the_user_and_enable_lifts_it(harness, run_id).await;
    delete_removes_the_user_and_a_gone_user_is_an_outcome(harness, run_id).await;
    roles_reach_the_user_and_the_applications_own_role_stays(harness, run_id).await;
    a_role_the_broker_does_not_manage_is_refused_and_nothing_is_written(harness, run_id).await;
    lifecycle_calls_to_an_unreachable_downstream_are_transient_and_bounded(harness, run_id).await;
    throttling_is_waited_out_and_an_outage_is_transient_until_it_ends(harness, run_id).await;
    refused_credentials_are_misconfigured(harness, run_id).await;
    no_secret_is_logged_or_reported(harness).await;
}

pub async fn idempotent_first_and_returning_login<H: Harness>(harness: &H, run_id: &str) {
    let email = format!("first-{run_id}@conformance.example");
    let who = identity(&format!("first-{run_id}"), &email, true);
    let first = harness.adapter().link(&who).await.expect("first login links or creates");
    let second = harness.adapter().link(&who).await.expect("returning login links");
    assert!(matches!(second, LinkOutcome::Linked { .. }), "a returning login is Linked, got {second:?}");
    assert_eq!(downstream_id(&first), downstream_id(&second), "the same identity maps to the same user");
    assert_eq!(harness.users_with_email(&email).await.len(), 1, "exactly one downstream user");
}

pub async fn racing_first_logins_make_one_user<H: Harness>(harness: &H, run_id: &str) {
    let email = format!("race-{run_id}@conformance.example");
    let who = identity(&format!("race-{run_id}"), &email, true);
    let (a, b) = join(harness.adapter().link(&who), harness.adapter().link(&who)).await;
    let (a, b) = (a.expect("racing login a"), b.expect("racing login b"));
    assert_eq!(downstream_id(&a), downstream_id(&b), "racing first logins agree on the user");
    assert_eq!(harness.users_with_email(&email).await.len(), 1, "racing first logins make one user");
}

pub async fn verified_email_links_to_the_existing_user<H: Harness>(harness: &H, run_id: &str) {
    let email = format!("existing-{run_id}@conformance.example");
    let existing = harness.create_existing_user(&email, true).await;
    let who = identity(&format!("existing-{run_id}"), &email, true);
    let outcome = harness.adapter().link(&who).await.expect("links");
    assert!(matches!(outcome, LinkOutcome::Linked { .. }), "verified email links, got {outcome:?}");
    assert_eq!(downstream_id(&outcome), existing, "linked to the user that already had the email");
    assert_eq!(harness.users_with_email(&email).await, vec![existing], "no duplicate was made");
}

pub async fn unverified_email_never_links<H: Harness>(harness: &H, run_id: &str) {
    let email = format!("unverified-{run_id}@conformance.example");
    let existing = harness.create_existing_user(&email, true).await;
    let who = identity(&format!("unverified-{run_id}"), &email, false);
    match harness.adapter().link(&who).await {
        Ok(outcome) => {
            assert_ne!(downstream_id(&outcome), existing, "an unverified email must not take over an account")
        }
        Err(AdapterError::Refused { reason }) => assert!(!reason.is_empty(), "a refusal says why"),
        Err(other) => panic!("an unverified collision is refused or kept apart, not {other:?}"),
    }
}

/// Pre-account takeover: an attacker signs up with the victim's address, never verifies it, and
/// waits for the victim's first SSO login. Linking by the (verified) SSO email would hand the
/// victim's SSO identity to the attacker's account, whose password the attacker knows. The login
/// must be refused, the attacker's account left exactly as it was, and nothing made with the
/// address.
pub async fn pre_registered_unverified_account_is_never_taken_over<H: Harness>(harness: &H, run_id: &str) {
    let email = format!("victim-{run_id}@conformance.example");
    let squatter = harness.create_existing_user(&email, false).await;
    let before = harness.user_record(&squatter).await.expect("the attacker's account exists");
    let victim = identity(&format!("victim-{run_id}"), &email, true);
    for attempt in ["first", "repeated"] {
        match harness.adapter().link(&victim).await {
            Err(AdapterError::Refused { reason }) => assert!(!reason.is_empty(), "a refusal says why"),
            other => panic!("{attempt} login into an account with an unverified email must be refused, got {other:?}"),
        }
        assert_eq!(
            harness.users_with_email(&email).await,
            vec![squatter.clone()],
            "{attempt} login: still only the attacker's account has the address, nothing new was made"
        );
        assert_eq!(
            harness.user_record(&squatter).await.as_ref(),
            Some(&before),
            "{attempt} login: the attacker's account is untouched (no link, no identity, no attribute)"
        );
    }
    assert!(harness.users_with_verified_email(&email).await.is_empty(), "nobody holds the address as verified");
}

/// An identity whose email the broker does not vouch for gets no account that holds that email
/// as its address: never marked verified, and never one that a later verified login of the
/// address's real owner would be linked into (the same takeover, one step removed).
pub async fn unverified_identity_never_gets_its_email_as_an_address<H: Harness>(harness: &H, run_id: &str) {
    let email = format!("unclaimed-{run_id}@conformance.example");
    let who = identity(&format!("unclaimed-{run_id}"), &email, false);
    let account = match harness.adapter().link(&who).await {
        Ok(outcome) => Some(downstream_id(&outcome).to_owned()),
        // A downstream that cannot hold a user without an email address may refuse instead.
        Err(AdapterError::Refused { reason }) => {
            assert!(!reason.is_empty(), "a refusal says why");
            None
        }
        Err(other) => panic!("an unverified first login signs in or is refused, not {other:?}"),
    };
    if let Some(account) = &account {
        let again = harness.adapter().link(&who).await.expect("the returning login of an unverified identity");
        assert_eq!(downstream_id(&again), account, "an unverified identity keeps its own account");
    }
    assert!(harness.users_with_verified_email(&email).await.is_empty(), "an unverified email was stored as verified");
    let owner = identity(&format!("owner-{run_id}"), &email, true);
    match harness.adapter().link(&owner).await {
        Ok(outcome) => assert_ne!(
            Some(downstream_id(&outcome)),
            account.as_deref(),
            "the address's owner was signed in to the account of an identity that never proved it"
        ),
        Err(AdapterError::Refused { reason }) => assert!(!reason.is_empty(), "a refusal says why"),
        Err(other) => panic!("the owner's login signs in or is refused, not {other:?}"),
    }
}

pub async fn an_unreachable_downstream_is_transient_and_bounded<H: Harness>(harness: &H, run_id: &str) {
    let who = identity(&format!("down-{run_id}"), &format!("down-{run_id}@conformance.example"), true);
    let started = Instant::now();
    let result = harness.unreachable_adapter().link(&who).await;
    assert!(matches!(result, Err(AdapterError::Transient { .. })), "an outage is Transient, got {result:?}");
    assert!(started.elapsed() <= harness.timeout_bound(), "no hang: took {:?}", started.elapsed());
}

/// Polls two futures together (no runtime dependency in this crate).
async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = Box::pin(a);
    let mut b = Box::pin(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().expect("ready"), rb.take().expect("ready")))
        } else {
            Poll::Pending
        }
    })
    .await
}

fn managed() -> Vec<String> {
    MANAGED_ROLES.iter().map(|r| r.to_string()).collect()
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// A user as the broker knows one: linked at a login, its downstream id kept.
async fn signed_in_user<H: Harness>(harness: &H, tag: &str, run_id: &str) -> String {
    let email = format!("{tag}-{run_id}@conformance.example");
    let outcome = harness.adapter().link(&identity(&format!("{tag}-{run_id}"), &email, true)).await;
    downstream_id(&outcome.expect("the login links or creates the user")).to_owned()
}

pub async fn disable_blocks_the_user_and_enable_lifts_it<H: Harness>(harness: &H, run_id: &str) {
    let user = signed_in_user(harness, "disable", run_id).await;
    assert!(!harness.user_disabled(&user).await, "a new user is enabled");
    for attempt in ["first", "repeated"] {
        let result = harness.adapter().disable(&user).await;
        assert_eq!(result, Ok(UserChange::Applied), "{attempt} disable");
        assert!(harness.user_disabled(&user).await, "{attempt} disable: the downstream shows the user disabled");
    }
    for attempt in ["first", "repeated"] {
        let result = harness.adapter().enable(&user).await;
        assert_eq!(result, Ok(UserChange::Applied), "{attempt} enable");
        assert!(!harness.user_disabled(&user).await, "{attempt} enable: the downstream shows the user enabled");
    }
    assert!(harness.user_record(&user).await.is_some(), "disabling keeps the user");
}

pub async fn delete_removes_the_user_and_a_gone_user_is_an_outcome<H: Harness>(harness: &H, run_id: &str) {
    let user = signed_in_user(harness, "delete", run_id).await;
    assert_eq!(harness.adapter().delete(&user).await, Ok(UserChange::Applied), "delete");
    assert!(harness.user_record(&user).await.is_none(), "the downstream has no such user any more");
    match harness.adapter().delete(&user).await {
        Ok(UserChange::NotFound | UserChange::Applied) => {}
        other => panic!("deleting a user already gone succeeds, got {other:?}"),
    }
    let roles = Entitlements { groups: strings(&["g"]), roles: strings(&[MANAGED_ROLES[0]]) };
    assert_eq!(harness.adapter().disable(&user).await, Ok(UserChange::NotFound), "disable of a gone user");
    assert_eq!(harness.adapter().enable(&user).await, Ok(UserChange::NotFound), "enable of a gone user");
    assert_eq!(harness.adapter().set_roles(&user, &roles, &managed()).await, Ok(UserChange::NotFound), "set_roles");
    assert!(harness.user_record(&user).await.is_none(), "nothing brought the user back");
}

pub async fn roles_reach_the_user_and_the_applications_own_role_stays<H: Harness>(harness: &H, run_id: &str) {
    let user = signed_in_user(harness, "roles", run_id).await;
    harness.grant_role_directly(&user, UNMANAGED_ROLE).await;
    let [viewer, editor, admin] = MANAGED_ROLES;
    let steps: [(&[&str], &[&str]); 3] =
        [(&[viewer, editor], &["eng", "eng-leads"]), (&[admin], &["eng-leads"]), (&[], &[])];
    for (roles, groups) in steps {
        let wanted = Entitlements { groups: strings(groups), roles: strings(roles) };
        for attempt in ["first", "repeated"] {
            let result = harness.adapter().set_roles(&user, &wanted, &managed()).await;
            assert_eq!(result, Ok(UserChange::Applied), "{attempt} set_roles {roles:?}");
            let mut expected = strings(roles);
            expected.push(UNMANAGED_ROLE.to_owned());
            assert_eq!(
                harness.user_roles(&user).await,
                sorted(expected),
                "{attempt} set_roles {roles:?}: exactly these managed roles, and the application's own"
            );
            if let Some(shown) = harness.user_groups(&user).await {
                assert_eq!(shown, sorted(strings(groups)), "{attempt} set_roles: the groups");
            }
        }
    }
}

pub async fn a_role_the_broker_does_not_manage_is_refused_and_nothing_is_written<H: Harness>(
    harness: &H,
    run_id: &str,
) {
    let user = signed_in_user(harness, "unmanaged", run_id).await;
    let before = harness.user_roles(&user).await;
    let wanted = Entitlements { groups: strings(&["g"]), roles: strings(&[MANAGED_ROLES[0], "not-managed"]) };
    match harness.adapter().set_roles(&user, &wanted, &managed()).await {
        Err(AdapterError::Misconfigured { detail }) => assert!(detail.contains("not-managed"), "{detail}"),
        other => panic!("a role outside the managed ones is Misconfigured, got {other:?}"),
    }
    assert_eq!(harness.user_roles(&user).await, before, "nothing was written");
}

pub async fn lifecycle_calls_to_an_unreachable_downstream_are_transient_and_bounded<H: Harness>(
    harness: &H,
    run_id: &str,
) {
    let user = format!("down-{run_id}");
    let roles = Entitlements { groups: Vec::new(), roles: strings(&[MANAGED_ROLES[0]]) };
    let managed = managed();
    let down = harness.unreachable_adapter();
    let calls: [(&str, BoxFuture<'_, Result<UserChange, AdapterError>>); 4] = [
        ("disable", down.disable(&user)),
        ("enable", down.enable(&user)),
        ("delete", down.delete(&user)),
        ("set_roles", down.set_roles(&user, &roles, &managed)),
    ];
    for (what, call) in calls {
        let started = Instant::now();
        let result = call.await;
        assert!(
            matches!(result, Err(AdapterError::Transient { .. })),
            "{what}: an outage is Transient, got {result:?}"
        );
        assert!(started.elapsed() <= harness.timeout_bound(), "{what}: no hang, took {:?}", started.elapsed());
    }
}

pub async fn throttling_is_waited_out_and_an_outage_is_transient_until_it_ends<H: Harness>(harness: &H, run_id: &str) {
    let user = signed_in_user(harness, "throttled", run_id).await;
    // One throttled answer (Retry-After: 1): the adapter waits it out within the call.
    harness.fail_next(1, Outage::RateLimited);
    let started = Instant::now();
    let result = harness.adapter().disable(&user).await;
    harness.end_outage();
    assert_eq!(result, Ok(UserChange::Applied), "disable after a 429");
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After honoured: {:?}", started.elapsed());
    assert!(harness.user_disabled(&user).await, "the retried disable reached the downstream");

    harness.fail_next(1, Outage::Unavailable);
    let result = harness.adapter().enable(&user).await;
    harness.end_outage();
    assert_eq!(result, Ok(UserChange::Applied), "enable after a 503");
    assert!(!harness.user_disabled(&user).await, "the retried enable reached the downstream");

    // A longer outage: Transient, and the same call succeeds once the downstream is back
    // (what the broker's queue does with a Transient job).
    let wanted = Entitlements { groups: strings(&["eng"]), roles: strings(&[MANAGED_ROLES[1]]) };
    harness.fail_next(1000, Outage::Unavailable);
    let result = harness.adapter().set_roles(&user, &wanted, &managed()).await;
    harness.end_outage();
    assert!(matches!(result, Err(AdapterError::Transient { .. })), "a lasting outage is Transient, got {result:?}");
    assert_eq!(harness.adapter().set_roles(&user, &wanted, &managed()).await, Ok(UserChange::Applied), "retried");
    assert_eq!(harness.user_roles(&user).await, strings(&[MANAGED_ROLES[1]]), "the retried roles arrived");
    harness.fail_next(1000, Outage::Unavailable);
    let result = harness.adapter().disable(&user).await;
    harness.end_outage();
    assert!(matches!(result, Err(AdapterError::Transient { .. })), "a lasting outage is Transient, got {result:?}");
    assert_eq!(harness.adapter().disable(&user).await, Ok(UserChange::Applied), "the retried disable");
    assert!(harness.user_disabled(&user).await, "disabled once the downstream is back");
}

pub async fn refused_credentials_are_misconfigured<H: Harness>(harness: &H, run_id: &str) {
    let user = signed_in_user(harness, "credentials", run_id).await;
    let roles = Entitlements { groups: Vec::new(), roles: strings(&[MANAGED_ROLES[0]]) };
    let managed = managed();
    let wrong = harness.misconfigured_adapter();
    let calls: [(&str, BoxFuture<'_, Result<UserChange, AdapterError>>); 4] = [
        ("disable", wrong.disable(&user)),
        ("enable", wrong.enable(&user)),
        ("delete", wrong.delete(&user)),
        ("set_roles", wrong.set_roles(&user, &roles, &managed)),
    ];
    for (what, call) in calls {
        match call.await {
            Err(AdapterError::Misconfigured { detail }) => {
                for secret in harness.secrets() {
                    assert!(!detail.contains(&secret), "{what}: a secret in the error: {detail}");
                }
            }
            other => panic!("{what} with refused credentials is Misconfigured, got {other:?}"),
        }
    }
    assert!(harness.user_record(&user).await.is_some(), "nothing was deleted");
    assert!(!harness.user_disabled(&user).await, "nothing was disabled");
}

pub async fn no_secret_is_logged_or_reported<H: Harness>(harness: &H) {
    let secrets = harness.secrets();
    assert!(!secrets.is_empty(), "the harness names the secrets to look for");
    let lines = harness.log_lines();
    assert!(!lines.is_empty(), "the harness records the log");
    for line in lines {
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "a secret was logged: {line}");
        }
    }
}

/// Every event and span of the process as `LEVEL field=value …` (spans as `SPAN name …`),
/// so that a test can check what was logged (the conformance suite looks for secrets). One
/// recorder for every adapter's test harness.
#[derive(Clone, Default)]
pub struct LogRecorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

struct FieldLine(String);

impl tracing::field::Visit for FieldLine {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for LogRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = FieldLine(format!("SPAN {}", span.metadata().name()));
        span.record(&mut line);
        let mut lines = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.push(line.0);
        tracing::span::Id::from_u64(lines.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = FieldLine("SPAN record".to_owned());
        values.record(&mut line);
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line.0);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = FieldLine(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl LogRecorder {
    /// The process-wide recorder, installed as the global subscriber on first use.
    pub fn global() -> &'static LogRecorder {
        static RECORDER: std::sync::OnceLock<LogRecorder> = std::sync::OnceLock::new();
        RECORDER.get_or_init(|| {
            let recorder = LogRecorder::default();
            // Fails only if another global subscriber is set already; then this one stays
            // empty and the suite's "the harness records the log" check says so.
            let _ = tracing::subscriber::set_global_default(recorder.clone());
            recorder
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}
