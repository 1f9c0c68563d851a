//! The behaviour every adapter must have, as one suite each adapter's tests run against its
//! real peer (moto, the Firebase Auth emulator, a Management API server).
//!
//! A failing check panics with what went wrong: this module is test support.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Adapter, AdapterError, BoxFuture, Identity, LinkOutcome};

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
