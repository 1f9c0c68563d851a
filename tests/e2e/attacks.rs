//! Attacks on what the broker vouches for, each written as the attack: what the attacker sends,
//! and what must not happen. `SECURITY.md` maps each defence to its test here.

use serde_json::{json, Value};

use crate::common::{login_to_client, redeem, verify_id_token, Stack, AUTH0_CLIENT, VERIFIER};

/// Routes of both simulated organizations, their domains verified.
const VERIFIED_ROUTES: &str = r#"
[[routes]]
domain = "acme.test"
organization_id = "org_acme"
connection_id = "conn_acme1"
[[routes]]
domain = "globex.test"
organization_id = "org_globex"
connection_id = "conn_globex1"
"#;

/// One login of `login_hint` whose upstream ID token carries `claims` instead of the user's
/// own: the ID token's and userinfo's claims as the client receives them.
async fn login_asserting(stack: &Stack, login_hint: &str, claims: Value) -> (Value, Value) {
    stack.upstream.tamper_claims(&claims).await;
    let params = login_to_client(stack, AUTH0_CLIENT, &[("login_hint", login_hint)]).await;
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    let (status, tokens) = redeem(&stack.broker.url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let id_token =
        verify_id_token(&stack.broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.0).await;
    let userinfo: Value = crate::common::http()
        .get(format!("{}/userinfo", stack.broker.url))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("userinfo json");
    (id_token, userinfo)
}

/// Acme's IdP admin asserts the address of Globex's CEO, "verified". A downstream that links by
/// verified email (Auth0's Action, Cognito's mapping) would merge the login into the CEO's
/// account: the broker must not say the address is verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_cannot_vouch_for_another_organizations_email() {
    let stack = Stack::start_with("memory", "t:", VERIFIED_ROUTES).await;
    let (id_token, userinfo) =
        login_asserting(&stack, "alice@acme.test", json!({"email": "ceo@globex.test", "email_verified": true})).await;
    assert_eq!(id_token["org_id"], "org_acme");
    assert_eq!(id_token["email"], "ceo@globex.test");
    assert_eq!(id_token["email_verified"], false, "ID token: {id_token}");
    assert_eq!(userinfo["email_verified"], false, "userinfo: {userinfo}");

    // An address read from the right would pass for one at a verified domain of the IdP's own
    // organization; it is no address at all.
    for forged in ["ceo@globex.test@acme.test", "@acme.test", "ceo @acme.test"] {
        let (id_token, userinfo) =
            login_asserting(&stack, "alice@acme.test", json!({"email": forged, "email_verified": true})).await;
        assert_eq!(
            (&id_token["email_verified"], &userinfo["email_verified"]),
            (&json!(false), &json!(false)),
            "{forged}"
        );
    }
}

/// What `email_verified` means in the broker's tokens: the upstream did not deny it, and the
/// domain (normalized like the route table's) is a verified route of the token's organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_verified_is_the_brokers_statement() {
    let routes = format!("{VERIFIED_ROUTES}\n[[routes]]\ndomain = \"unverified.test\"\norganization_id = \"org_acme\"\nverified = false\n");
    let stack = Stack::start_with("memory", "t:", &routes).await;
    let verified = |email: &str, upstream: Value| {
        let claims = json!({"email": email, "email_verified": upstream});
        let stack = &stack;
        async move {
            let (id_token, userinfo) = login_asserting(stack, "alice@acme.test", claims).await;
            assert_eq!(id_token["email_verified"], userinfo["email_verified"], "ID token and userinfo agree");
            id_token["email_verified"].as_bool().expect("email_verified is a boolean")
        }
    };
    assert!(verified("alice@acme.test", json!(true)).await, "IdP and route agree");
    assert!(verified("Alice@ACME.Test", json!(true)).await, "case is normalized as the route table's");
    assert!(verified("alice@acme.test", Value::Null).await, "absent (a SAML connection) + verified route");
    assert!(!verified("alice@acme.test", json!(false)).await, "the IdP said no");
    assert!(!verified("carol@unverified.test", json!(true)).await, "the route is not verified");
    assert!(!verified("carol@nowhere.test", Value::Null).await, "absent and no route");
}
