//! A full login through ssobridge with an adapter configured, through the real upstream test
//! provider: the Firebase adapter against the Firebase Auth emulator, ending with the app
//! signing in to Firebase with the custom token from the broker's token response.

use crate::common::{authorize_url, query, redeem, BrokerSocket, Browser, Stack, TestClient};
use serde_json::Value;
use ssobridge::tokens::SigningKey;

const APP: TestClient = TestClient {
    client_id: "firebase-app",
    secret: "firebase-app-secret",
    redirect_uri: "https://app.example.com/auth/callback",
};

/// The upstream and a broker whose client `APP` uses the Firebase adapter against `emulator`,
/// with a route for acme.test (`verified` as given).
async fn broker_for(emulator: &crate::firebase::Emulator, verified: bool) -> Stack {
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let (pem, _) = crate::firebase::service_account_key();
    let toml = crate::common::broker_toml(&socket.url, "memory", "fb:", &upstream.issuer)
        + &format!(
            r#"
[[clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = ["{redirect}"]
adapter = "firebase"
[clients.firebase]
project_id = "{project}"
service_account_email = "ssobridge@{project}.iam.gserviceaccount.com"
private_key = """{pem}"""
emulator_host = "{host}"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
verified = {verified}
"#,
            id = APP.client_id,
            secret = APP.secret,
            redirect = APP.redirect_uri,
            project = crate::firebase::PROJECT_ID,
            host = emulator.host,
        );
    let broker = socket.serve(&toml, SigningKey::generate_rsa().expect("key")).await;
    Stack { upstream, broker }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_through_the_broker_lands_in_firebase_and_the_app_signs_in_with_the_custom_token() {
    let emulator = crate::firebase::Emulator::start().await;
    let stack = broker_for(&emulator, true).await;
    let broker = &stack.broker;

    let login = || async {
        let browser = Browser::default();
        let start =
            authorize_url(&broker.url, APP, Some(crate::common::VERIFIER), &[("login_hint", "alice@acme.test")]);
        let landed = browser.follow_until(&start, APP.redirect_uri).await.expect("login");
        let code = query(&landed).remove("code").unwrap_or_else(|| panic!("code: {landed}"));
        let (status, tokens) = redeem(&broker.url, APP, &code, Some(crate::common::VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    };
    let first = login().await;
    let custom_token = first["firebase_token"].as_str().expect("the token response carries firebase_token");
    let claims =
        crate::common::verify_id_token(&broker.url, first["id_token"].as_str().expect("id_token"), APP.client_id).await;
    let uid = claims["firebase_uid"].as_str().expect("firebase_uid claim").to_owned();
    assert!(claims.get("firebase_token").is_none(), "the custom token is not in the ID token");

    // The app signs in to Firebase with it, as signInWithCustomToken does.
    let api = emulator.api();
    let firebase_user = api.sign_in_with_custom_token(custom_token).await.expect("sign in with the custom token");
    assert_eq!(firebase_user["user_id"], uid.as_str());
    assert_eq!(firebase_user["org_id"], "org_acme", "developer claims: {firebase_user}");
    assert_eq!(firebase_user["connection_id"], "conn_acme1");
    let account: Value = api.user(&uid).await.expect("the account exists in Firebase");
    assert_eq!(account["email"], "alice@acme.test");

    // A returning login: the same Firebase user, no duplicate.
    let second = login().await;
    let claims =
        crate::common::verify_id_token(&broker.url, second["id_token"].as_str().expect("id_token"), APP.client_id)
            .await;
    assert_eq!(claims["firebase_uid"], uid.as_str());
    let users = api.all_users().await;
    assert_eq!(users.iter().filter(|u| u["email"] == "alice@acme.test").count(), 1, "{users:?}");
}

/// A route whose domain the organization has not proved (`verified = false`) must never let an
/// SSO login take over an existing account with the same email, whatever the IdP asserts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unverified_domain_never_links_to_an_existing_account() {
    let emulator = crate::firebase::Emulator::start().await;
    let api = emulator.api();
    let existing = api.sign_up_with_password("alice@acme.test").await;
    let stack = broker_for(&emulator, false).await;
    let broker = &stack.broker;
    let browser = Browser::default();
    let start = authorize_url(&broker.url, APP, Some(crate::common::VERIFIER), &[("login_hint", "alice@acme.test")]);
    let landed = browser.follow_until(&start, APP.redirect_uri).await.expect("login");
    let code = query(&landed).remove("code").unwrap_or_else(|| panic!("code: {landed}"));
    let (status, tokens) = redeem(&broker.url, APP, &code, Some(crate::common::VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let claims =
        crate::common::verify_id_token(&broker.url, tokens["id_token"].as_str().expect("id_token"), APP.client_id)
            .await;
    assert_eq!(claims["email_verified"], false, "the route is not verified: the broker does not vouch");
    assert_ne!(claims["firebase_uid"], existing.as_str(), "the existing account was not taken over");
    let account: Value = api.user(&existing).await.expect("the existing account");
    assert_eq!(account["email"], "alice@acme.test", "and it is unchanged");
}
