//! Test support: the fake tenant, Prism, a downstream that never answers, and the conformance
//! harness.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod prism;
pub mod tenant;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use ssobridge_adapter_auth0::{Auth0Adapter, Auth0Settings};
use ssobridge_adapter_core::conformance::{self, Harness, Outage};
use ssobridge_adapter_core::{Adapter, AdapterError, BoxFuture, Entitlements, Identity, LinkOutcome, UserChange};
use tenant::{FakeTenant, Fault};

pub use tenant::{CLIENT_ID, CLIENT_SECRET, CONNECTION, DOMAIN};

/// Settings for an adapter that talks to `base` (the fake tenant, or Prism in front of it).
pub fn settings(base: &str) -> Auth0Settings {
    Auth0Settings {
        domain: DOMAIN.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        connection: CONNECTION.to_owned(),
        api_base: Some(base.to_owned()),
        timeout_seconds: Some(5),
        assign_roles: None,
    }
}

pub fn adapter(base: &str) -> Auth0Adapter {
    Auth0Adapter::new(settings(base)).expect("valid settings")
}

/// A unique tag per test run, so that emails and subjects never collide between runs.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    format!("{}-{nanos:x}", std::process::id())
}

/// A verified identity the broker would pass for `email`, with subject `sub`.
pub fn identity(sub: &str, email: &str, verified: bool) -> Identity {
    let mut who = conformance::identity(sub, email, verified);
    who.subject = sub.to_owned();
    who
}

pub fn downstream_id(outcome: &LinkOutcome) -> &str {
    match outcome {
        LinkOutcome::Linked { downstream_user_id, .. } | LinkOutcome::Created { downstream_user_id, .. } => {
            downstream_user_id
        }
        LinkOutcome::Unchanged => panic!("the Auth0 adapter always names a user"),
    }
}

/// A TCP listener that accepts connections and never answers: a hung Auth0.
pub struct BlackHole {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> BlackHole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        BlackHole { base, task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One sign-in as it reaches the adapter once Auth0 knows the identity.
///
/// The broker calls the adapter *before* Auth0 redeems the broker's code, and only then does
/// Auth0 create the OIDC user `oidc|CONNECTION|SUB`; the Management API cannot create it
/// earlier, nor link a user that does not exist. So on a true first login nothing can be
/// linked yet (the adapter answers `Created`, tested in behaviour.rs), and linking happens at
/// the next login. The conformance suite expects its very first call to link to an existing
/// user with no duplicate left over; that is the state of a login at which Auth0 has met the
/// identity.
///
/// This wrapper therefore plays a first login through: when no user holds the identity yet,
/// it calls the adapter as the broker's callback does; a refusal ends the login there (no code
/// is issued, so Auth0 never meets the identity and creates nothing). Otherwise the fake tenant
/// signs the identity in, exactly as Auth0 does when it redeems the code (creating
/// `oidc|CONNECTION|SUB` from the claims), and the adapter is called again: the login the suite
/// sees is the one at which Auth0 knows the identity. Without a tenant (the unreachable
/// downstream) it only calls the adapter.
pub struct LoginThroughAuth0 {
    pub adapter: Auth0Adapter,
    pub tenant: Option<Arc<FakeTenant>>,
}

impl Adapter for LoginThroughAuth0 {
    fn name(&self) -> &'static str {
        self.adapter.name()
    }

    fn link<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, Result<LinkOutcome, AdapterError>> {
        Box::pin(async move {
            if let Some(tenant) = &self.tenant {
                if tenant.holder(identity).is_none() {
                    self.adapter.link(identity).await?;
                    tenant.login(identity);
                }
            }
            self.adapter.link(identity).await
        })
    }

    fn disable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        self.adapter.disable(user_id)
    }

    fn enable<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        self.adapter.enable(user_id)
    }

    fn delete<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        self.adapter.delete(user_id)
    }

    fn set_roles<'a>(
        &'a self,
        user_id: &'a str,
        entitlements: &'a Entitlements,
        managed: &'a [String],
    ) -> BoxFuture<'a, Result<UserChange, AdapterError>> {
        self.adapter.set_roles(user_id, entitlements, managed)
    }
}

/// A client secret the fake tenant does not accept.
pub const WRONG_SECRET: &str = "not-the-m2m-secret";

fn sorted_strings(value: &Value) -> Vec<String> {
    let mut names: Vec<String> =
        value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    names.sort();
    names
}

/// The shared conformance suite's view of the fake tenant.
pub struct TenantHarness {
    pub tenant: Arc<FakeTenant>,
    adapter: LoginThroughAuth0,
    unreachable: LoginThroughAuth0,
    misconfigured: LoginThroughAuth0,
    _hole: BlackHole,
}

impl TenantHarness {
    /// `api_base` is where the adapter sends its requests: the tenant itself, or Prism. The
    /// adapter assigns Auth0 roles too (`assign_roles`): the tenant gets the suite's roles.
    pub async fn new(tenant: Arc<FakeTenant>, api_base: &str) -> TenantHarness {
        LogRecorder::global();
        let hole = BlackHole::start().await;
        let mut unreachable = settings(&hole.base);
        unreachable.timeout_seconds = Some(1);
        let mut roles = settings(api_base);
        roles.assign_roles = Some(true);
        for role in conformance::MANAGED_ROLES.into_iter().chain([conformance::UNMANAGED_ROLE]) {
            tenant.create_role(role);
        }
        let mut wrong = settings(api_base);
        wrong.client_secret = WRONG_SECRET.to_owned();
        TenantHarness {
            adapter: LoginThroughAuth0 {
                adapter: Auth0Adapter::new(roles).expect("valid settings"),
                tenant: Some(tenant.clone()),
            },
            unreachable: LoginThroughAuth0 {
                adapter: Auth0Adapter::new(unreachable).expect("valid settings"),
                tenant: None,
            },
            misconfigured: LoginThroughAuth0 {
                adapter: Auth0Adapter::new(wrong).expect("valid settings"),
                tenant: None,
            },
            tenant,
            _hole: hole,
        }
    }

    fn metadata(&self, id: &str) -> Value {
        self.tenant.user(id).expect("the user exists")["app_metadata"].clone()
    }
}

impl Harness for TenantHarness {
    type Adapter = LoginThroughAuth0;

    fn adapter(&self) -> &LoginThroughAuth0 {
        &self.adapter
    }

    fn unreachable_adapter(&self) -> &LoginThroughAuth0 {
        &self.unreachable
    }

    fn create_existing_user<'a>(&'a self, email: &'a str, verified: bool) -> BoxFuture<'a, String> {
        // A database (password) user; unverified, its sign-up's verification email was ignored.
        Box::pin(async move { self.tenant.create_database_user(email, verified) })
    }

    fn users_with_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move { self.tenant.users_with_email(email) })
    }

    fn users_with_verified_email<'a>(&'a self, email: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move { self.tenant.users_with_verified_email(email) })
    }

    fn user_record<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Value>> {
        Box::pin(async move { self.tenant.user(id) })
    }

    fn timeout_bound(&self) -> Duration {
        // Budget of the unreachable adapter: three exchange timeouts of 1 s, plus slack.
        Duration::from_secs(5)
    }

    fn misconfigured_adapter(&self) -> &LoginThroughAuth0 {
        &self.misconfigured
    }

    fn user_disabled<'a>(&'a self, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.tenant.user(id).expect("the user exists")["blocked"] == true })
    }

    fn user_roles<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Vec<String>> {
        // Both places the adapter writes roles to must agree.
        Box::pin(async move {
            let in_metadata = sorted_strings(&self.metadata(id)["roles"]);
            assert_eq!(self.tenant.role_names_of(id), in_metadata, "Auth0 roles and app_metadata.roles differ");
            in_metadata
        })
    }

    fn user_groups<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move { Some(sorted_strings(&self.metadata(id)["groups"])) })
    }

    fn grant_role_directly<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, ()> {
        // An administrator assigns the role, and an Action of the application notes it.
        Box::pin(async move {
            let mut metadata = self.metadata(id);
            let mut roles = metadata["roles"].as_array().cloned().unwrap_or_default();
            roles.push(json!(role));
            metadata["roles"] = Value::Array(roles);
            self.tenant.set_app_metadata(id, metadata);
            self.tenant.assign_role_directly(id, role);
        })
    }

    fn fail_next(&self, requests: usize, outage: Outage) {
        let fault = match outage {
            Outage::RateLimited => Fault::rate_limited(&[("retry-after", "1"), ("x-ratelimit-remaining", "0")]),
            Outage::Unavailable => Fault::server_error(503),
        };
        self.tenant.fail_any_next(requests, fault);
    }

    fn end_outage(&self) {
        self.tenant.clear_faults();
    }

    fn secrets(&self) -> Vec<String> {
        // The fake tenant's Management API tokens all start so.
        vec![CLIENT_SECRET.to_owned(), WRONG_SECRET.to_owned(), "mgmt-token-".to_owned()]
    }

    fn log_lines(&self) -> Vec<String> {
        LogRecorder::global().lines()
    }
}

/// Collects every event as `LEVEL field=value …`, to read what an audit line says.
#[derive(Clone, Default)]
pub struct Recorder(Arc<std::sync::Mutex<Vec<String>>>);

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().expect("lines").push(line.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl Recorder {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }
}

#[allow(unused_imports)] // not every test crate that includes this harness records the log
pub use ssobridge_adapter_core::conformance::LogRecorder;
