//! A full login through ssobridge with the Auth0 adapter, through the real upstream test
//! provider. The adapter's Management API calls go through Prism, which checks every request and
//! every answer against the Management API spec, to the fake tenant of the adapter's own tests
//! (adapters/auth0/tests/common), which plays the Auth0 tenant. After each login the test plays
//! Auth0's part too: it redeems the broker's code and signs the identity in at the tenant, which
//! creates `oidc|CONNECTION|SUB` the first time, as Auth0 does (the broker's adapter call comes
//! before that, so linking an existing account happens at the returning login).

use crate::auth0::prism::Prism;
use crate::auth0::tenant::{FakeTenant, Op, CLIENT_ID, CLIENT_SECRET, CONNECTION, DOMAIN};
use crate::common::{authorize_url, query, redeem, BrokerSocket, Browser, TestClient};
use serde_json::{json, Value};
use ssobridge::tokens::SigningKey;
use ssobridge_adapter_core::Identity;

const APP: TestClient = TestClient {
    client_id: "auth0-app",
    secret: "auth0-app-secret",
    redirect_uri: "https://tenant.example.auth0.com/login/callback",
};
const EMAIL: &str = "alice@acme.test";

/// The identity Auth0 takes from the broker's ID token when it redeems the code.
pub(crate) fn identity_in(claims: &Value) -> Identity {
    let text = |name: &str| claims[name].as_str().map(str::to_owned);
    let sub = text("sub").expect("sub");
    Identity {
        upstream_subject: sub.clone(),
        subject: sub,
        connection_id: text("connection_id"),
        organization_id: text("org_id"),
        email: text("email"),
        email_verified: claims["email_verified"] == true,
        name: text("name"),
        given_name: text("given_name"),
        family_name: text("family_name"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_through_the_broker_reaches_auth0_and_the_returning_login_links_the_existing_account() {
    let tenant = FakeTenant::start().await;
    let mut prism = Prism::proxy(&tenant.base).await;
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    assert_eq!(APP.redirect_uri, format!("https://{DOMAIN}/login/callback"));
    // The route marks acme.test as the organization's own domain: only then may the adapter
    // link by email (README, Home realm discovery).
    let toml = crate::common::broker_toml(&socket.url, "memory", "a0:", &upstream.issuer)
        + &format!(
            r#"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
verified = true
[[clients]]
client_id = "{id}"
client_secret = "{secret}"
redirect_uris = ["{redirect}"]
adapter = "auth0"
[clients.auth0]
domain = "{DOMAIN}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
connection = "{CONNECTION}"
api_base = "{api_base}"
timeout_seconds = 5
"#,
            id = APP.client_id,
            secret = APP.secret,
            redirect = APP.redirect_uri,
            api_base = prism.base,
        );
    let broker = socket.serve(&toml, SigningKey::generate_rsa().expect("key")).await;

    // A password account made before SSO was set up, with the email the IdP asserts.
    let primary = tenant.create_database_user(EMAIL, true);

    // One sign-in as the user goes through it: the broker (which calls the adapter), then
    // Auth0 redeeming the broker's code and signing the identity in. Returns the ID token's
    // claims and the Auth0 user the application gets.
    let login = || async {
        let browser = Browser::default();
        let start = authorize_url(&broker.url, APP, Some(crate::common::VERIFIER), &[("login_hint", EMAIL)]);
        let landed = browser.follow_until(&start, APP.redirect_uri).await.expect("login");
        let mut params = query(&landed);
        assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"), "{landed}");
        assert_eq!(params.get("iss"), Some(&broker.url), "{landed}");
        let code = params.remove("code").unwrap_or_else(|| panic!("code: {landed}"));
        let (status, tokens) = redeem(&broker.url, APP, &code, Some(crate::common::VERIFIER)).await;
        assert_eq!(status, 200, "{tokens}");
        let claims =
            crate::common::verify_id_token(&broker.url, tokens["id_token"].as_str().expect("id_token"), APP.client_id)
                .await;
        let user_id = tenant.login(&identity_in(&claims));
        (claims, user_id)
    };

    // First login: the adapter finds nothing to link yet and writes nothing; Auth0 then makes
    // the OIDC user from the ID token, next to the password account.
    let (claims, first_user) = login().await;
    assert_eq!(claims["email"], EMAIL);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["org_id"], "org_acme");
    assert_eq!(claims["connection_id"], "conn_acme1");
    let sub = claims["sub"].as_str().expect("sub").to_owned();
    let oidc_user = format!("oidc|{CONNECTION}|{sub}");
    assert_eq!(first_user, oidc_user, "Auth0 signs the new identity in as the user it creates");
    assert_eq!(tenant.count(Op::Token), 1, "the adapter got a Management API token");
    assert!(tenant.count(Op::Search) >= 1, "it searched for the identity: {:?}", tenant.log());
    assert!(tenant.count(Op::ByEmail) >= 1, "it looked up the email: {:?}", tenant.log());
    let looked_up = format!("GET /api/v2/users/oidc%7C{CONNECTION}%7C{sub}");
    assert!(tenant.log().iter().any(|l| l.starts_with(&looked_up)), "it read {oidc_user} by id: {:?}", tenant.log());
    assert_eq!((tenant.count(Op::Link), tenant.count(Op::PatchUser)), (0, 0), "nothing written at a first login");
    let mut both = tenant.users_with_email(EMAIL);
    both.sort();
    assert_eq!(both, vec![primary.clone(), oidc_user.clone()], "until the next login Auth0 has both");

    // Returning login: the adapter links the OIDC user into the password account, which Auth0
    // signs in from now on.
    let (claims, second_user) = login().await;
    assert_eq!(claims["sub"], sub.as_str(), "the same subject at every login");
    assert_eq!(second_user, primary, "the existing account is the one the application gets");
    assert_eq!(tenant.count(Op::Link), 1);
    assert_eq!(tenant.users_with_email(EMAIL), vec![primary.clone()], "no duplicate left");
    let account = tenant.user(&primary).expect("the password account");
    let identities = account["identities"].as_array().expect("identities");
    assert_eq!(identities.len(), 2, "{account}");
    assert_eq!(identities[0]["provider"], "auth0");
    assert_eq!(
        (&identities[1]["provider"], &identities[1]["connection"], &identities[1]["user_id"]),
        (&json!("oidc"), &json!(CONNECTION), &json!(format!("{CONNECTION}|{sub}"))),
        "the broker's identity is linked into the account: {account}"
    );
    assert_eq!(account["app_metadata"], json!({"org_id": "org_acme", "connection_id": "conn_acme1"}));
    assert!(tenant.user(&oidc_user).is_none(), "the OIDC user was merged away");

    // A third login: the same account, no second link call, no needless update.
    let (claims, third_user) = login().await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(third_user, primary);
    assert_eq!((tenant.count(Op::Link), tenant.count(Op::PatchUser)), (1, 1));
    assert_eq!(tenant.count(Op::Token), 1, "one token served every login");

    // Every exchange went through Prism and matched the Management API spec both ways.
    prism.settle().await;
    let requests = prism.requests();
    for operation in ["post /oauth/token", "get /api/v2/users-by-email", "post /api/v2/users/auth0%7C"] {
        assert!(requests.iter().any(|l| l.contains(operation)), "no {operation} through Prism:\n{}", prism.log());
    }
    let violations = prism.violations();
    assert!(violations.is_empty(), "spec violations:\n{}\n\nfull log:\n{}", violations.join("\n"), prism.log());
    prism.stop().await;
}
