//! The user's life after sign-in, end to end (issue 16 §1 and §3): Scalekit's signed directory
//! events posted to `/webhooks/scalekit` as Scalekit sends them, and what the user, the
//! application and the downstream then see, against the real peers: moto's Cognito, the
//! Firebase Auth emulator, the fake Auth0 tenant (behind Prism where the Management API's shape
//! matters), the `oidc-provider` upstream and the broker's job worker.
//!
//! - A deactivated user is disabled downstream, refused at their next login (access_denied
//!   naming the directory) and their broker access token stops working; reactivation lifts all
//!   of it, and a directory group mapped to a role reaches the downstream and the ID token.
//! - `deprovision = "delete"` removes the downstream user, `"none"` leaves it alone; the broker
//!   refuses the login either way.
//! - Attacks: a forged signature, a stale timestamp, a body changed after signing change
//!   nothing; a replayed delivery is applied once; an older event arriving late does not undo a
//!   newer one.
//! - A downstream outage is retried until it ends; a job that failed is retried by an operator.
//! - The demo: the simulator's portal deprovisions, reactivates and regroups alice.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use ssobridge::tokens::SigningKey;
use ssobridge::webhooks::signature;
use ssobridge_adapter_core::BoxFuture;

use crate::auth0::tenant::{FakeTenant, Fault, Op, CLIENT_ID, CLIENT_SECRET, CONNECTION, DOMAIN};
use crate::common::{
    authorize_url, http, query, redeem, verify_id_token, wait_until, Broker, BrokerSocket, Browser, TestClient,
    Upstream, ADMIN_READ_TOKEN, ADMIN_WRITE_TOKEN, VERIFIER,
};

const ORG: &str = "org_acme";
const EMAIL: &str = "alice@acme.test";
const USER_CREATED: &str = "organization.directory.user_created";
const USER_UPDATED: &str = "organization.directory.user_updated";
const USER_DELETED: &str = "organization.directory.user_deleted";
/// How long the job worker may take to bring a downstream along (it is woken at once; an
/// adapter call on this shared machine can take seconds).
const JOB_DEADLINE: Duration = Duration::from_secs(30);

/// The broker's configuration beyond its clients: acme.test is org_acme's verified domain,
/// and Scalekit's webhooks are signed with `secret` (no route sync: directory events need no
/// Scalekit API).
fn scalekit_toml(secret: &str) -> String {
    format!(
        r#"
[[routes]]
domain = "acme.test"
organization_id = "{ORG}"
connection_id = "conn_acme1"
verified = true
[scalekit]
sync_interval_seconds = 0
webhook_secret = "{secret}"
"#
    )
}

/// The client's roles table: the directory group Engineering grants the role `editor`.
const GROUP_ROLES: &str = r#"
[clients.claims.group_roles]
Engineering = ["editor"]
"#;

/// A broker with the admin API for `clients` (TOML of `[[clients]]` tables), and Scalekit's
/// directory as the test plays it.
async fn broker_with(clients: impl FnOnce(&str) -> String) -> (Upstream, Broker, Directory) {
    let socket = BrokerSocket::bind().await;
    let upstream = Upstream::start(&[socket.callback()]).await;
    let secret = signature::generate_secret().expect("secret");
    let toml = crate::common::broker_toml(&socket.url, "memory", "lc:", &upstream.issuer)
        + &scalekit_toml(&secret)
        + &clients(&socket.url);
    let broker = socket.serve_with_admin(&toml, SigningKey::generate_rsa().expect("key")).await;
    let directory = Directory::new(&broker.url, &secret);
    (upstream, broker, directory)
}

/// Scalekit's directory sync, as the test plays it: alice's directory user, and deliveries of
/// its events signed as Scalekit (Svix) signs them.
struct Directory {
    webhook: String,
    key: Vec<u8>,
    user_id: String,
    /// The organization and the email address the directory events name.
    organization_id: String,
    email: String,
}

/// The `webhook-*` headers of a delivery.
type Headers = Vec<(&'static str, String)>;

/// What `/webhooks/scalekit` answered: status and `status` field.
type Answer = (u16, String);

impl Directory {
    fn new(broker: &str, secret: &str) -> Directory {
        Directory {
            webhook: format!("{broker}/webhooks/scalekit"),
            key: signature::decode_secret(secret).expect("key"),
            user_id: format!("diruser_{}", &uuid::Uuid::new_v4().simple().to_string()[..17]),
            organization_id: ORG.to_owned(),
            email: EMAIL.to_owned(),
        }
    }

    /// The same directory speaking of `email` in `organization_id`.
    fn about(&self, organization_id: &str, email: &str) -> Directory {
        Directory {
            webhook: self.webhook.clone(),
            key: self.key.clone(),
            user_id: format!("diruser_{}", &uuid::Uuid::new_v4().simple().to_string()[..17]),
            organization_id: organization_id.to_owned(),
            email: email.to_owned(),
        }
    }

    /// An event about alice, shaped as research/lifecycle.md §1 shows Scalekit's:
    /// `user_deleted` carries only the ids and the email.
    fn event(&self, kind: &str, active: bool, groups: &[&str], occurred_at_ms: u64) -> String {
        let (organization_id, email) = (&self.organization_id, &self.email);
        let data = if kind == USER_DELETED {
            json!({"id": self.user_id, "organization_id": organization_id, "dp_id": "00u-alice", "email": email})
        } else {
            json!({
                "id": self.user_id,
                "organization_id": organization_id,
                "dp_id": "00u-alice",
                "email": email,
                "preferred_username": email,
                "given_name": "Alice",
                "family_name": "Anders",
                "name": "Alice Anders",
                "active": active,
                "groups": groups.iter().map(|g| json!({"id": format!("dirgroup_{}", g.to_lowercase()), "name": g}))
                    .collect::<Vec<_>>(),
                "roles": [],
                "custom_attributes": {},
                "raw_attributes": {},
            })
        };
        json!({
            "spec_version": "1",
            "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
            "type": kind,
            "occurred_at": ssobridge::events::rfc3339_millis(occurred_at_ms),
            "environment_id": "env_test",
            "organization_id": organization_id,
            "object": "DirectoryUser",
            "data": data,
        })
        .to_string()
    }

    /// A delivery with these exact headers.
    async fn deliver(&self, headers: &[(&str, String)], body: &str) -> Answer {
        let mut request = http().post(&self.webhook).header("content-type", "application/json").body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("webhook");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body["status"].as_str().unwrap_or_default().to_owned())
    }

    /// The three Standard Webhooks headers of a delivery signed with `key`.
    fn headers(key: &[u8], id: &str, timestamp: u64, body: &str) -> Headers {
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature::sign(key, id, timestamp, body.as_bytes())),
        ]
    }

    /// A delivery as Scalekit makes it: a new message id, now, signed.
    async fn send(&self, body: &str) -> Answer {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        self.deliver(&Self::headers(&self.key, &id, now_secs(), body), body).await
    }

    async fn deactivate(&self, at_ms: u64) -> Answer {
        self.send(&self.event(USER_UPDATED, false, &[], at_ms)).await
    }

    async fn reactivate(&self, at_ms: u64, groups: &[&str]) -> Answer {
        self.send(&self.event(USER_UPDATED, true, groups, at_ms)).await
    }
}

fn now_secs() -> u64 {
    ssobridge::clock::now_secs()
}

fn now_ms() -> u64 {
    ssobridge::events::now_ms()
}

fn applied() -> Answer {
    (200, "applied".to_owned())
}

/// A completed sign-in: the verified ID token's claims and the token response.
struct Login {
    claims: Value,
    tokens: Value,
}

impl Login {
    fn access_token(&self) -> &str {
        self.tokens["access_token"].as_str().expect("access_token")
    }
}

/// alice signs in to `app` through the broker; the parameters the broker sends the app back with.
async fn sign_in_answer(broker: &str, app: TestClient<'_>) -> HashMap<String, String> {
    let start = authorize_url(broker, app, Some(VERIFIER), &[("login_hint", EMAIL)]);
    let landed = Browser::default().follow_until(&start, app.redirect_uri).await.expect("back at the app");
    let params = query(&landed);
    assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"), "{landed}");
    params
}

/// alice signs in to `app` and the app redeems the code.
async fn sign_in(broker: &str, app: TestClient<'_>) -> Login {
    let params = sign_in_answer(broker, app).await;
    let code = params.get("code").unwrap_or_else(|| panic!("a code for {}: {params:?}", app.client_id));
    let (status, tokens) = redeem(broker, app, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = verify_id_token(broker, tokens["id_token"].as_str().expect("id_token"), app.client_id).await;
    assert_eq!(claims["email"], EMAIL);
    Login { claims, tokens }
}

/// alice's sign-in to `app` is refused as a deactivated user's: access_denied naming her
/// directory, and no code.
async fn assert_refused(broker: &str, app: TestClient<'_>) {
    let params = sign_in_answer(broker, app).await;
    assert_eq!(params.get("error").map(String::as_str), Some("access_denied"), "{params:?}");
    let description = params.get("error_description").map(String::as_str).unwrap_or_default();
    assert!(description.contains("deactivated") && description.contains("directory"), "{description}");
    assert!(!params.contains_key("code"), "{params:?}");
}

async fn userinfo_status(broker: &str, access_token: &str) -> u16 {
    http().get(format!("{broker}/userinfo")).bearer_auth(access_token).send().await.expect("userinfo").status().as_u16()
}

/// `GET /admin/jobs`: every job not yet done.
async fn jobs(broker: &str) -> Vec<Value> {
    let response =
        http().get(format!("{broker}/admin/jobs")).bearer_auth(ADMIN_READ_TOKEN).send().await.expect("admin jobs");
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.expect("json");
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The one job listed, once `ready` holds of it.
async fn the_job(broker: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let listed = jobs(broker).await;
        if let [job] = listed.as_slice() {
            if ready(job) {
                return job.clone();
            }
        }
        assert!(started.elapsed() < JOB_DEADLINE, "{what}: not within {JOB_DEADLINE:?}: {listed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_no_jobs(broker: &str) {
    wait_until("every job done", JOB_DEADLINE, || async { jobs(broker).await.is_empty() }).await;
}

/// A downstream as the test looks behind the adapter.
trait Downstream: Sync {
    /// What the app does with the broker's tokens (Auth0 and Firebase sign the user in
    /// there); the user's id downstream.
    fn signed_in<'a>(&'a self, login: &'a Login) -> BoxFuture<'a, String>;
    /// `Some(disabled)`, or `None` when the downstream has no such user.
    fn disabled<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Option<bool>>;
    /// The user's roles there, sorted.
    fn roles<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Vec<String>>;
    /// What else the downstream refuses a disabled user (an earlier session, a sign-in).
    fn refuses_disabled<'a>(&'a self, _user: &'a str, _earlier: &'a Login) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// The whole of §1 and §3 at one downstream: alice signs in; her directory deactivates her and
/// she is disabled there, refused by the broker, her broker access token dead; it reactivates
/// her in Engineering and she is enabled, signs in, and holds `editor` there and in the ID token.
async fn deactivated_then_reactivated_in_a_group(
    broker: &Broker,
    directory: &Directory,
    app: TestClient<'_>,
    downstream: &dyn Downstream,
) {
    let url = broker.url.as_str();
    let first = sign_in(url, app).await;
    assert_eq!(first.claims["roles"], json!([]), "no directory word yet: no roles");
    let user = downstream.signed_in(&first).await;
    assert_eq!(downstream.disabled(&user).await, Some(false));
    assert_eq!(userinfo_status(url, first.access_token()).await, 200);
    wait_for_no_jobs(url).await;

    // Her directory deactivates her.
    let deactivated_at = now_ms() - 60_000;
    assert_eq!(directory.deactivate(deactivated_at).await, applied());
    // The login is refused at once (the record is written before the answer) …
    assert_refused(url, app).await;
    // … and the queued job disables her downstream and ends her broker sessions.
    let user = user.as_str();
    wait_until("the downstream user disabled", JOB_DEADLINE, || async move {
        downstream.disabled(user).await == Some(true)
    })
    .await;
    wait_until("the earlier access token revoked", JOB_DEADLINE, || async {
        userinfo_status(url, first.access_token()).await == 401
    })
    .await;
    downstream.refuses_disabled(user, &first).await;
    wait_for_no_jobs(url).await;
    assert_refused(url, app).await;

    // Reactivated, in Engineering: enabled and given `editor` downstream without a login.
    assert_eq!(directory.reactivate(deactivated_at + 1_000, &["Engineering"]).await, applied());
    wait_until("the downstream user enabled with the role", JOB_DEADLINE, || async move {
        downstream.disabled(user).await == Some(false) && downstream.roles(user).await == ["editor"]
    })
    .await;
    wait_for_no_jobs(url).await;
    let again = sign_in(url, app).await;
    assert_eq!(again.claims["roles"], json!(["editor"]), "{}", again.claims);
    assert_eq!(again.claims["sub"], first.claims["sub"], "the same user");
    assert_eq!(downstream.signed_in(&again).await, user, "the same downstream user, signed in again");
    assert_eq!(userinfo_status(url, again.access_token()).await, 200);
    assert_eq!(userinfo_status(url, first.access_token()).await, 401, "the old token stays dead");
    wait_for_no_jobs(url).await;
    assert_eq!(downstream.roles(user).await, ["editor"]);
}

// ----- Cognito (moto) -----

struct CognitoPool<'w> {
    world: &'w crate::cognito::World,
    pool: String,
}

impl Downstream for CognitoPool<'_> {
    fn signed_in<'a>(&'a self, _login: &'a Login) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let users = self.world.usernames_with_email(&self.pool, EMAIL).await;
            let [user] = users.as_slice() else { panic!("one Cognito user for {EMAIL}: {users:?}") };
            user.clone()
        })
    }

    fn disabled<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move { self.world.find_user(&self.pool, user).await.map(|u| u["Enabled"] == false) })
    }

    fn roles<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move { self.world.groups_of(&self.pool, user).await })
    }
}

const COGNITO_APP: TestClient = TestClient {
    client_id: "cognito-app",
    secret: "cognito-app-secret",
    redirect_uri: "https://acme.auth.eu-west-1.amazoncognito.com/oauth2/idpresponse",
};

fn cognito_client(world: &crate::cognito::World, pool: &str, extra: &str) -> String {
    format!(
        r#"
[[clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = ["{redirect}"]
adapter = "cognito"
{extra}
[clients.cognito]
region = "{region}"
user_pool_id = "{pool}"
identity_provider_name = "{provider}"
access_key_id = "{key}"
secret_access_key = "{secret_key}"
endpoint = "{endpoint}"
timeout_seconds = 5
create_groups = true
{GROUP_ROLES}"#,
        id = COGNITO_APP.client_id,
        secret = COGNITO_APP.secret,
        redirect = COGNITO_APP.redirect_uri,
        region = crate::cognito::REGION,
        provider = crate::cognito::PROVIDER,
        key = world.adapter_creds.key,
        secret_key = world.adapter_creds.secret,
        endpoint = world.proxy.url,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivated_user_is_disabled_in_cognito_refused_and_revoked_and_reactivation_brings_them_back_with_their_group_role(
) {
    let world = crate::cognito::World::start().await;
    let pool = world.create_pool(false, true).await;
    let (_upstream, broker, directory) = broker_with(|_| cognito_client(&world, &pool, "")).await;
    let cognito = CognitoPool { world: &world, pool: pool.clone() };
    deactivated_then_reactivated_in_a_group(&broker, &directory, COGNITO_APP, &cognito).await;
    // Cognito's own record of it: signed out everywhere, then disabled; enabled again.
    let actions: Vec<String> = world
        .proxy
        .records()
        .into_iter()
        .filter(|r| r.action.starts_with("AdminUserGlobalSignOut") || r.action.contains("ableUser"))
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, ["AdminUserGlobalSignOut", "AdminDisableUser", "AdminEnableUser"]);
    assert_eq!(world.pool_groups(&pool).await, ["editor"], "the role's group was created");
    for record in world.proxy.records() {
        assert_ne!(record.status, 403, "{} was denied: the IAM policy lacks it", record.action);
    }
}

// ----- Firebase (emulator) -----

struct FirebaseProject {
    api: crate::firebase::EmulatorApi,
    /// The refresh token of the app's Firebase session from the first sign-in.
    refresh_token: Mutex<Option<String>>,
}

impl Downstream for FirebaseProject {
    fn signed_in<'a>(&'a self, login: &'a Login) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let uid = login.claims["firebase_uid"].as_str().expect("firebase_uid").to_owned();
            let token = login.tokens["firebase_token"].as_str().expect("firebase_token");
            let (claims, refresh) = self.api.start_session(token).await.expect("signInWithCustomToken");
            assert_eq!(claims["user_id"], uid.as_str());
            self.refresh_token.lock().expect("lock").get_or_insert(refresh);
            uid
        })
    }

    fn disabled<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move { self.api.user(user).await.map(|u| u["disabled"] == true) })
    }

    fn roles<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            let account = self.api.user(user).await.expect("the account");
            let claims: Value =
                serde_json::from_str(account["customAttributes"].as_str().unwrap_or("{}")).expect("json");
            let mut roles: Vec<String> = claims["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            roles.sort();
            roles
        })
    }

    fn refuses_disabled<'a>(&'a self, _user: &'a str, earlier: &'a Login) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let refresh = self.refresh_token.lock().expect("lock").clone().expect("a session");
            let refused = self.api.refresh_session(&refresh).await.expect_err("a disabled user's session ends");
            assert!(refused.contains("USER_DISABLED") || refused.contains("TOKEN_EXPIRED"), "{refused}");
            let token = earlier.tokens["firebase_token"].as_str().expect("firebase_token");
            let refused = self.api.start_session(token).await.expect_err("a disabled user does not sign in");
            assert!(refused.contains("USER_DISABLED"), "{refused}");
        })
    }
}

const FIREBASE_APP: TestClient = TestClient {
    client_id: "firebase-app",
    secret: "firebase-app-secret",
    redirect_uri: "https://app.example.com/auth/callback",
};

fn firebase_client(emulator_host: &str, extra: &str) -> String {
    let (pem, _) = crate::firebase::service_account_key();
    format!(
        r#"
[[clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = ["{redirect}"]
adapter = "firebase"
{extra}
[clients.firebase]
project_id = "{project}"
service_account_email = "ssobridge@{project}.iam.gserviceaccount.com"
private_key = """{pem}"""
emulator_host = "{emulator_host}"
{GROUP_ROLES}"#,
        id = FIREBASE_APP.client_id,
        secret = FIREBASE_APP.secret,
        redirect = FIREBASE_APP.redirect_uri,
        project = crate::firebase::PROJECT_ID,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivated_user_is_disabled_in_firebase_refused_and_revoked_and_reactivation_brings_them_back_with_their_group_role(
) {
    let emulator = crate::firebase::Emulator::start().await;
    let (_upstream, broker, directory) = broker_with(|_| firebase_client(&emulator.host, "")).await;
    let firebase = FirebaseProject { api: emulator.api(), refresh_token: Mutex::new(None) };
    deactivated_then_reactivated_in_a_group(&broker, &directory, FIREBASE_APP, &firebase).await;
    // The role reaches the app's Firebase ID token too, at its next sign-in.
    let login = sign_in(&broker.url, FIREBASE_APP).await;
    let token = login.tokens["firebase_token"].as_str().expect("firebase_token");
    let (claims, _) = firebase.api.start_session(token).await.expect("signInWithCustomToken");
    assert_eq!(claims["roles"], json!(["editor"]), "{claims}");
}

// ----- Auth0 (fake tenant) -----

struct Auth0Tenant<'t> {
    tenant: &'t FakeTenant,
}

impl Downstream for Auth0Tenant<'_> {
    fn signed_in<'a>(&'a self, login: &'a Login) -> BoxFuture<'a, String> {
        Box::pin(async move {
            let identity = crate::adapter_auth0::identity_in(&login.claims);
            self.tenant.try_login(&identity).expect("Auth0 signs the user in")
        })
    }

    fn disabled<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Option<bool>> {
        Box::pin(async move { self.tenant.user(user).map(|u| u["blocked"] == true) })
    }

    fn roles<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            let user = self.tenant.user(user).expect("the user");
            let mut roles: Vec<String> = user["app_metadata"]["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect();
            roles.sort();
            roles
        })
    }

    fn refuses_disabled<'a>(&'a self, user: &'a str, earlier: &'a Login) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let identity = crate::adapter_auth0::identity_in(&earlier.claims);
            assert_eq!(self.tenant.try_login(&identity), Err("user is blocked".to_owned()));
            assert_eq!(self.tenant.sessions_of(user), (0, 0), "the user's Auth0 sessions and refresh tokens ended");
        })
    }
}

const AUTH0_APP: TestClient = TestClient {
    client_id: "auth0-app",
    secret: "auth0-app-secret",
    redirect_uri: "https://tenant.example.auth0.com/login/callback",
};

/// An Auth0 client `app` whose Management API is at `api_base`.
fn auth0_client(app: TestClient<'_>, api_base: &str, extra: &str) -> String {
    format!(
        r#"
[[clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = ["{redirect}"]
adapter = "auth0"
{extra}
[clients.auth0]
domain = "{DOMAIN}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
connection = "{CONNECTION}"
api_base = "{api_base}"
timeout_seconds = 5
{GROUP_ROLES}"#,
        id = app.client_id,
        secret = app.secret,
        redirect = app.redirect_uri,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivated_user_is_blocked_in_auth0_refused_and_revoked_and_reactivation_brings_them_back_with_their_group_role(
) {
    let tenant = FakeTenant::start().await;
    let mut prism = crate::auth0::prism::Prism::proxy(&tenant.base).await;
    let (_upstream, broker, directory) = broker_with(|_| auth0_client(AUTH0_APP, &prism.base, "")).await;
    deactivated_then_reactivated_in_a_group(&broker, &directory, AUTH0_APP, &Auth0Tenant { tenant: &tenant }).await;
    // Every Management API exchange matched Auth0's spec, both ways.
    prism.settle().await;
    let requests = prism.requests();
    for operation in ["patch /api/v2/users/oidc", "delete /api/v2/users/oidc"] {
        assert!(requests.iter().any(|l| l.contains(operation)), "no {operation} through Prism:\n{}", prism.log());
    }
    let violations = prism.violations();
    assert!(violations.is_empty(), "spec violations:\n{}\n\nfull log:\n{}", violations.join("\n"), prism.log());
    prism.stop().await;
}

const KEEP_APP: TestClient = TestClient {
    client_id: "auth0-keep",
    secret: "auth0-keep-secret",
    redirect_uri: "https://keep.example.auth0.com/login/callback",
};
const GONE_APP: TestClient = TestClient {
    client_id: "auth0-gone",
    secret: "auth0-gone-secret",
    redirect_uri: "https://gone.example.auth0.com/login/callback",
};

/// Two applications of alice's, each on its own Auth0 tenant: one says `deprovision = "none"`
/// (the app handles leavers itself), the other `"delete"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deprovision_delete_removes_the_downstream_user_and_none_leaves_it_while_the_broker_refuses_both() {
    let (keep_tenant, gone_tenant) = (FakeTenant::start().await, FakeTenant::start().await);
    let (_upstream, broker, directory) = broker_with(|_| {
        auth0_client(KEEP_APP, &keep_tenant.base, r#"deprovision = "none""#)
            + &auth0_client(GONE_APP, &gone_tenant.base, r#"deprovision = "delete""#)
    })
    .await;
    let url = broker.url.as_str();
    let (keep, gone) = (Auth0Tenant { tenant: &keep_tenant }, Auth0Tenant { tenant: &gone_tenant });
    let keep_login = sign_in(url, KEEP_APP).await;
    let keep_user = keep.signed_in(&keep_login).await;
    let gone_login = sign_in(url, GONE_APP).await;
    let gone_user = gone.signed_in(&gone_login).await;
    wait_for_no_jobs(url).await;
    let keep_writes = keep_tenant.log().iter().filter(|l| !l.starts_with("GET") && !l.contains("/oauth/token")).count();

    assert_eq!(directory.deactivate(now_ms() - 60_000).await, applied());
    let (gone_ref, gone_user_ref) = (&gone, gone_user.as_str());
    wait_until("the user deleted from the delete client's tenant", JOB_DEADLINE, || async move {
        gone_ref.disabled(gone_user_ref).await.is_none()
    })
    .await;
    wait_for_no_jobs(url).await;
    assert_eq!(gone_tenant.count(Op::DeleteUser), 1);
    // deprovision = "none": the app's Auth0 user is as it was, not blocked, nothing written …
    assert_eq!(keep.disabled(&keep_user).await, Some(false));
    assert_eq!(
        keep_tenant.log().iter().filter(|l| !l.starts_with("GET") && !l.contains("/oauth/token")).count(),
        keep_writes,
        "nothing written to the none client's tenant: {:?}",
        keep_tenant.log()
    );
    // … but the broker refuses her at both and her broker tokens are dead at both.
    assert_refused(url, KEEP_APP).await;
    assert_refused(url, GONE_APP).await;
    for login in [&keep_login, &gone_login] {
        assert_eq!(userinfo_status(url, login.access_token()).await, 401);
    }

    // Reactivated: the deleted user is made anew at her next login; the other was never gone.
    assert_eq!(directory.reactivate(now_ms() - 30_000, &[]).await, applied());
    wait_for_no_jobs(url).await;
    let again = sign_in(url, GONE_APP).await;
    assert_eq!(gone_tenant.user_count(), 0, "nothing recreated before Auth0 meets her again");
    let recreated = gone.signed_in(&again).await;
    assert_eq!(gone.disabled(&recreated).await, Some(false));
    let again = sign_in(url, KEEP_APP).await;
    assert_eq!(keep.signed_in(&again).await, keep_user, "the same user as ever");
    wait_for_no_jobs(url).await;
    assert_eq!((gone_tenant.count(Op::DeleteUser), keep_tenant.count(Op::DeleteUser)), (1, 0));
}

// ----- Attacks (the fake Auth0 tenant as the downstream) -----

/// Waits until alice's Auth0 user is `blocked` (or not).
async fn wait_blocked(tenant: &FakeTenant, user: &str, blocked: bool, what: &str, deadline: Duration) {
    wait_until(what, deadline, || std::future::ready(tenant.user(user).expect("alice")["blocked"] == blocked)).await;
}

/// A broker with one Auth0 client on `tenant`'s Management API, alice signed in there.
async fn auth0_broker_with_alice(tenant: &FakeTenant) -> (Upstream, Broker, Directory, Login, String) {
    let (upstream, broker, directory) = broker_with(|_| auth0_client(AUTH0_APP, &tenant.base, "")).await;
    let login = sign_in(&broker.url, AUTH0_APP).await;
    let user = Auth0Tenant { tenant }.signed_in(&login).await;
    wait_for_no_jobs(&broker.url).await;
    (upstream, broker, directory, login, user)
}

/// An attacker who can reach `/webhooks/scalekit` but does not hold the secret tries to
/// deprovision alice: with another secret, with a captured delivery too old to be fresh, with
/// a captured benign delivery whose body they changed, and with no signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_stale_and_altered_directory_events_change_nothing() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    let deactivation = directory.event(USER_UPDATED, false, &[], now_ms());
    let other_key = signature::decode_secret(&signature::generate_secret().expect("secret")).expect("key");
    let now = now_secs();
    let benign = directory.event(USER_UPDATED, true, &["Engineering"], now_ms());
    let benign_headers = Directory::headers(&directory.key, "msg_benign", now, &benign);
    let cases: Vec<(&str, Headers, &str, u16)> = vec![
        (
            "signed with another secret",
            Directory::headers(&other_key, "msg_forged", now, &deactivation),
            &deactivation,
            401,
        ),
        (
            "signed six minutes ago",
            Directory::headers(&directory.key, "msg_stale", now - 6 * 60, &deactivation),
            &deactivation,
            401,
        ),
        (
            "signed six minutes ahead",
            Directory::headers(&directory.key, "msg_ahead", now + 6 * 60, &deactivation),
            &deactivation,
            401,
        ),
        ("a benign delivery's signature on a changed body", benign_headers.clone(), &deactivation, 401),
        ("no signature", benign_headers[..2].to_vec(), &deactivation, 400),
    ];
    for (attack, headers, body, status) in cases {
        assert_eq!(directory.deliver(&headers, body).await, (status, "refused".to_owned()), "{attack}");
        assert!(jobs(url).await.is_empty(), "{attack}: no job queued");
        assert_eq!(tenant.user(&user).expect("alice")["blocked"], Value::Null, "{attack}: never blocked");
        assert_eq!(userinfo_status(url, login.access_token()).await, 200, "{attack}: her session goes on");
        let again = sign_in(url, AUTH0_APP).await;
        assert_eq!(again.claims["roles"], json!([]), "{attack}: the directory said nothing");
    }
    let ended = (tenant.count(Op::DeleteSessions), tenant.count(Op::DeleteRefreshTokens));
    assert_eq!(ended, (0, 0), "no session of hers ended at Auth0: {:?}", tenant.log());
    // The genuine delivery of the benign event is still accepted afterwards: the refused
    // attempts on its webhook-id did not burn it.
    assert_eq!(directory.deliver(&benign_headers, &benign).await, applied());
}

/// Scalekit (or someone who captured a delivery) sends the same deactivation again and again,
/// and the same event once more under a new message id: it is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_directory_event_is_applied_once() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, _login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    let patches = tenant.count(Op::PatchUser);
    let body = directory.event(USER_UPDATED, false, &[], now_ms());
    let headers = Directory::headers(&directory.key, "msg_once", now_secs(), &body);
    assert_eq!(directory.deliver(&headers, &body).await, applied());
    for _ in 0..3 {
        assert_eq!(directory.deliver(&headers, &body).await, (200, "duplicate".to_owned()));
    }
    wait_blocked(&tenant, &user, true, "alice blocked", JOB_DEADLINE).await;
    wait_for_no_jobs(url).await;
    // Scalekit's retry of the same event is a new delivery of it (a fresh signature, the same
    // webhook-id); another message with the same content finds it already applied.
    let resent = Directory::headers(&directory.key, "msg_once", now_secs(), &body);
    assert_eq!(directory.deliver(&resent, &body).await, (200, "duplicate".to_owned()));
    assert_eq!(directory.send(&body).await, (200, "ignored".to_owned()));
    assert!(jobs(url).await.is_empty(), "no second job");
    assert_eq!(tenant.count(Op::PatchUser), patches + 1, "one block written: {:?}", tenant.log());
    assert_eq!(tenant.count(Op::DeleteSessions), 1);
}

/// Deliveries are not ordered: a `user_created` that happened before her deletion arrives
/// after it. She stays deprovisioned; only a later word of the directory brings her back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_user_created_arriving_after_a_newer_user_deleted_does_not_reactivate() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, _login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    let created_at = now_ms() - 120_000;
    let deleted_at = created_at + 60_000;
    assert_eq!(directory.send(&directory.event(USER_DELETED, false, &[], deleted_at)).await, applied());
    wait_blocked(&tenant, &user, true, "alice blocked", JOB_DEADLINE).await;
    wait_for_no_jobs(url).await;
    let late = directory.event(USER_CREATED, true, &["Engineering"], created_at);
    assert_eq!(directory.send(&late).await, (200, "ignored".to_owned()));
    assert!(jobs(url).await.is_empty(), "nothing queued");
    assert_eq!(tenant.user(&user).expect("alice")["blocked"], true, "still blocked");
    assert_refused(url, AUTH0_APP).await;
    // The directory's newer word does bring her back.
    assert_eq!(directory.send(&directory.event(USER_CREATED, true, &[], deleted_at + 1)).await, applied());
    wait_blocked(&tenant, &user, false, "alice unblocked", JOB_DEADLINE).await;
    sign_in(url, AUTH0_APP).await;
}

/// A customer's directory speaks of its own users only: an organization whose directory lists
/// an address at another organization's domain (a SCIM feed anyone can fill) deactivates no one
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_organizations_directory_cannot_deprovision_the_user() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    let globex = directory.about("org_globex", EMAIL);
    assert_eq!(globex.deactivate(now_ms()).await, applied(), "recorded, for org_globex");
    assert_eq!(globex.send(&globex.event(USER_DELETED, false, &[], now_ms())).await.0, 200);
    wait_for_no_jobs(url).await;
    assert_eq!(tenant.user(&user).expect("alice")["blocked"], Value::Null, "never blocked");
    assert_eq!(userinfo_status(url, login.access_token()).await, 200, "her session goes on");
    let again = sign_in(url, AUTH0_APP).await;
    assert_eq!(again.claims["org_id"], ORG);
}

/// §3 without a deactivation: her directory puts her in Engineering before she ever signed in,
/// under an address written in another case. Her first login carries `editor` in the ID token
/// and, once Auth0 has created her, in her Auth0 user; the directory then takes her out of the
/// group and the role leaves Auth0 without a login, and her next ID token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_groups_reach_auth0_at_the_first_login_and_a_group_change_without_one() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory) = broker_with(|_| auth0_client(AUTH0_APP, &tenant.base, "")).await;
    let url = broker.url.as_str();
    let directory = directory.about(ORG, "Alice@ACME.test");
    let at = now_ms() - 60_000;
    assert_eq!(directory.send(&directory.event(USER_CREATED, true, &["Engineering", "Sales"], at)).await, applied());
    wait_for_no_jobs(url).await;

    let login = sign_in(url, AUTH0_APP).await;
    assert_eq!(login.claims["roles"], json!(["editor"]), "{}", login.claims);
    let auth0 = Auth0Tenant { tenant: &tenant };
    let user = auth0.signed_in(&login).await;
    let user = user.as_str();
    let auth0 = &auth0;
    wait_until("editor in her Auth0 user", JOB_DEADLINE, || async move { auth0.roles(user).await == ["editor"] }).await;
    wait_for_no_jobs(url).await;

    assert_eq!(directory.send(&directory.event(USER_UPDATED, true, &["Sales"], at + 1_000)).await, applied());
    wait_until("editor gone from her Auth0 user", JOB_DEADLINE, || async move { auth0.roles(user).await.is_empty() })
        .await;
    let again = sign_in(url, AUTH0_APP).await;
    assert_eq!(again.claims["roles"], json!([]), "{}", again.claims);
    assert_eq!(tenant.user(user).expect("alice")["blocked"], Value::Null, "a group change blocks no one");
}

// ----- Resilience -----

/// Auth0 is down when alice's directory deactivates her: the broker refuses her at once, the
/// job waits with its error in the admin API, and once Auth0 answers again she is blocked there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_downstream_outage_while_deprovisioning_is_retried_until_the_user_is_disabled() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    tenant.fail_any_next(10_000, Fault::server_error(503));
    assert_eq!(directory.deactivate(now_ms()).await, applied());
    assert_refused(url, AUTH0_APP).await;
    let pending = the_job(url, "the job waiting with its error", |job| job["attempts"].as_u64() >= Some(1)).await;
    assert_eq!((&pending["kind"], &pending["state"]), (&json!("deprovision"), &json!("pending")), "{pending}");
    let error = pending["last_error"].as_str().unwrap_or_default();
    assert!(error.contains(AUTH0_APP.client_id) && error.contains("auth0"), "{pending}");
    assert_eq!(tenant.user(&user).expect("alice")["blocked"], Value::Null, "not blocked during the outage");
    // The broker's own part did not wait for Auth0: her access token is already dead.
    assert_eq!(userinfo_status(url, login.access_token()).await, 401);

    tenant.clear_faults();
    wait_blocked(&tenant, &user, true, "alice blocked once Auth0 is back", Duration::from_secs(60)).await;
    wait_for_no_jobs(url).await;
}

/// The Auth0 application lacks a scope when alice is deactivated: the job fails at once (no
/// retry can help), stays listed as failed, and runs again when the operator, having fixed the
/// grant, retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_deprovisioning_job_is_listed_and_runs_again_when_an_operator_retries_it() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, _login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    let insufficient_scope = Fault {
        status: 403,
        headers: Vec::new(),
        body: json!({"statusCode": 403, "error": "Forbidden", "message": "Insufficient scope, expected any of: update:users", "errorCode": "insufficient_scope"}),
    };
    tenant.fail_next(Op::PatchUser, 1, insufficient_scope);
    assert_eq!(directory.deactivate(now_ms()).await, applied());
    let failed = the_job(url, "the job failed", |job| job["state"] == "failed").await;
    assert_eq!(failed["attempts"], 1, "a misconfiguration is not retried: {failed}");
    assert!(failed["last_error"].as_str().is_some_and(|e| e.contains("update:users")), "{failed}");
    let id = failed["id"].as_str().expect("id").to_owned();
    // It stays failed: nothing runs it again on its own.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = jobs(url).await;
    assert_eq!((still.len(), &still[0]["state"]), (1, &json!("failed")), "{still:?}");
    assert_eq!(tenant.user(&user).expect("alice")["blocked"], Value::Null);

    // A read-only token may not retry it; the write token does.
    let retry = |token: &'static str| {
        let id = id.clone();
        async move { http().post(format!("{url}/admin/jobs/{id}/retry")).bearer_auth(token).send().await.expect("retry") }
    };
    assert_eq!(retry(ADMIN_READ_TOKEN).await.status(), 403);
    let answer = retry(ADMIN_WRITE_TOKEN).await.status();
    assert!(answer == 200 || answer == 204, "{answer}");
    wait_blocked(&tenant, &user, true, "alice blocked after the retry", JOB_DEADLINE).await;
    wait_for_no_jobs(url).await;
    let gone = http().get(format!("{url}/admin/jobs/{id}")).bearer_auth(ADMIN_READ_TOKEN).send().await.expect("get");
    assert_eq!(gone.status(), 404, "done jobs are not kept");
}

/// alice's directory deactivates her while Auth0 half answers: she is blocked, but ending her
/// Auth0 sessions fails, so the job waits for a retry. Before it comes, her directory
/// reactivates her. Whatever the order, the end is what the directory said last: she is not
/// blocked, and Auth0 signs her in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reactivation_while_a_half_done_deprovisioning_waits_for_its_retry_leaves_the_user_enabled() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    // Her directory knew her, active, before: that word is brought about and settled.
    let known_at = now_ms() - 120_000;
    assert_eq!(directory.send(&directory.event(USER_CREATED, true, &[], known_at)).await, applied());
    wait_for_no_jobs(url).await;

    tenant.fail_next(Op::DeleteSessions, 1_000, Fault::server_error(503));
    assert_eq!(directory.deactivate(known_at + 1_000).await, applied());
    the_job(url, "the deprovisioning waiting for its retry", |job| job["attempts"].as_u64() >= Some(1)).await;
    assert_eq!(tenant.user(&user).expect("alice")["blocked"], true, "the block went through");

    assert_eq!(directory.reactivate(known_at + 2_000, &[]).await, applied());
    tenant.clear_faults();
    wait_for_no_jobs(url).await;
    wait_blocked(&tenant, &user, false, "alice unblocked", JOB_DEADLINE).await;
    let identity = crate::adapter_auth0::identity_in(&login.claims);
    assert_eq!(tenant.try_login(&identity), Ok(user.clone()), "Auth0 signs her in");
    sign_in(url, AUTH0_APP).await;
}

/// A Management API call of the application's own (any PATCH of a user), made with the tenant's
/// client credentials.
async fn patch_user_directly(tenant: &FakeTenant, user: &str, body: Value) {
    let token: Value = http()
        .post(format!("{}/oauth/token", tenant.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("audience", &format!("https://{DOMAIN}/api/v2/")),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let id: String = url::form_urlencoded::byte_serialize(user.as_bytes()).collect();
    let response = http()
        .patch(format!("{}/api/v2/users/{id}", tenant.base))
        .bearer_auth(token["access_token"].as_str().expect("access_token"))
        .json(&body)
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
}

/// alice is reactivated, and while the broker is lifting her Auth0 block (the request is on its
/// way) her directory deactivates her again (Okta drops a deactivated user's groups, so the
/// event says exactly what the broker last applied). The end is what the directory said last:
/// she is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivation_while_a_reactivation_is_being_applied_leaves_the_user_blocked() {
    let tenant = FakeTenant::start().await;
    let (_upstream, broker, directory, _login, user) = auth0_broker_with_alice(&tenant).await;
    let url = broker.url.as_str();
    let at = now_ms() - 120_000;
    assert_eq!(directory.deactivate(at).await, applied());
    wait_blocked(&tenant, &user, true, "alice blocked", JOB_DEADLINE).await;
    wait_for_no_jobs(url).await;

    // The next PATCH of a user waits until a second one arrives.
    tenant.line_up(Op::PatchUser, 2);
    let patches = tenant.count(Op::PatchUser);
    assert_eq!(directory.reactivate(at + 1_000, &["Engineering"]).await, applied());
    wait_until("the unblocking on its way", JOB_DEADLINE, || std::future::ready(tenant.count(Op::PatchUser) > patches))
        .await;
    assert_eq!(directory.deactivate(at + 2_000).await, applied());
    // The application's own PATCH lets the broker's go on.
    patch_user_directly(&tenant, &user, json!({"app_metadata": {"plan": "gold"}})).await;

    wait_for_no_jobs(url).await;
    wait_blocked(&tenant, &user, true, "alice blocked again", JOB_DEADLINE).await;
    assert_refused(url, AUTH0_APP).await;
}

// ----- The demo -----

/// What alice sees at the demo's sample app after signing in: its page.
async fn demo_sign_in(browser: &Browser, demo: &crate::demo::Demo) -> String {
    let mut url = format!("{}/demo/start?login_hint=alice%40example.com", demo.url);
    for _ in 0..20 {
        let response = browser.get(&url).await;
        match response.headers().get("location").and_then(|v| v.to_str().ok()) {
            Some(location) => url = url::Url::parse(&url).expect("url").join(location).expect("join").to_string(),
            None => return response.text().await.expect("page"),
        }
    }
    panic!("too many redirects");
}

/// The IT admin's action in the simulator's portal; the page it answers with.
async fn portal(demo: &crate::demo::Demo, form: &[(&str, &str)]) -> String {
    let response = Browser::default().post_form(&format!("{}/simulator/portal/directory", demo.url), form).await;
    assert_eq!(response.status(), 200);
    response.text().await.expect("page")
}

/// The ID token alice's login to the demo client gets.
async fn demo_id_token(demo: &crate::demo::Demo) -> Value {
    let landed = Browser::default()
        .follow_until(&crate::demo::authorize(demo, "alice@example.com"), crate::demo::CLIENT_REDIRECT)
        .await
        .expect("login");
    let params = query(&landed);
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    let tokens: Value = http()
        .post(format!("{}/token", demo.url))
        .basic_auth("demo", Some("demo-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", crate::demo::CLIENT_REDIRECT)])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    verify_id_token(&demo.url, tokens["id_token"].as_str().expect("id_token"), "demo").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_portal_deprovisions_reactivates_and_regroups_alice() {
    let demo = crate::demo::start_demo().await;
    let browser = Browser::default();
    let page = demo_sign_in(&browser, &demo).await;
    assert!(page.contains("<h1>Signed in</h1>"), "{page}");

    let done = portal(&demo, &[("email", "alice@example.com"), ("action", "deactivate")]).await;
    assert!(done.contains("alice@example.com is now deactivated"), "{done}");
    let page = demo_sign_in(&browser, &demo).await;
    assert!(!page.contains("<h1>Signed in</h1>"), "{page}");
    assert!(page.contains("access_denied") && page.contains("directory"), "{page}");

    let done = portal(&demo, &[("email", "alice@example.com"), ("action", "reactivate")]).await;
    assert!(done.contains("alice@example.com is now active"), "{done}");
    let page = demo_sign_in(&browser, &demo).await;
    assert!(page.contains("<h1>Signed in</h1>"), "{page}");

    portal(&demo, &[("email", "alice@example.com"), ("action", "groups"), ("groups", "Engineering")]).await;
    let claims = demo_id_token(&demo).await;
    assert_eq!(claims["roles"], json!(["editor"]), "{claims}");
    assert_eq!(claims["groups"], json!(["Engineering"]), "{claims}");
}
