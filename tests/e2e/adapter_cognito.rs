//! A full login through ssobridge with the Cognito adapter, through the real upstream test
//! provider, against moto's Cognito user pools with IAM authentication on (every signature and
//! permission checked), behind the recording proxy of the adapter's own tests
//! (adapters/cognito/tests/support), which also stands in for `AdminLinkProviderForUser`.

use crate::cognito::{attribute, World, PROVIDER, REGION};
use crate::common::{authorize_url, query, redeem, BrokerSocket, Browser, TestClient};
use serde_json::Value;
use ssobridge::tokens::SigningKey;

const APP: TestClient = TestClient {
    client_id: "cognito-app",
    secret: "cognito-app-secret",
    redirect_uri: "https://acme.auth.eu-west-1.amazoncognito.com/oauth2/idpresponse",
};

/// The (provider, subject) pairs a Cognito user's `identities` attribute lists.
fn linked_subjects(user: &Value) -> Vec<(String, String)> {
    let Some(raw) = attribute(user, "identities") else { return Vec::new() };
    let identities: Vec<Value> = serde_json::from_str(&raw).expect("identities JSON");
    identities
        .iter()
        .map(|i| (i["providerName"].as_str().unwrap_or("").to_owned(), i["userId"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_through_the_broker_lands_in_the_cognito_pool_once_and_links_an_existing_account() {
    let world = World::start().await;
    let pool = world.create_pool(false, true).await;
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    // The route marks acme.test as the organization's own domain: only then may the adapter
    // link by email (README, Home realm discovery).
    let toml = crate::common::broker_toml(&socket.url, "memory", "cg:", &upstream.issuer)
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
adapter = "cognito"
[clients.cognito]
region = "{REGION}"
user_pool_id = "{pool}"
identity_provider_name = "{PROVIDER}"
access_key_id = "{key}"
secret_access_key = "{secret_key}"
endpoint = "{endpoint}"
timeout_seconds = 5
"#,
            id = APP.client_id,
            secret = APP.secret,
            redirect = APP.redirect_uri,
            key = world.adapter_creds.key,
            secret_key = world.adapter_creds.secret,
            endpoint = world.proxy.url,
        );
    let broker = socket.serve(&toml, SigningKey::generate_rsa().expect("key")).await;

    // One sign-in by redirects; returns the verified ID token's claims.
    let login = |email: &'static str| {
        let broker_url = broker.url.clone();
        async move {
            let browser = Browser::default();
            let start = authorize_url(&broker_url, APP, Some(crate::common::VERIFIER), &[("login_hint", email)]);
            let landed = browser.follow_until(&start, APP.redirect_uri).await.expect("login");
            let mut params = query(&landed);
            assert_eq!(params.get("state").map(String::as_str), Some("client-state-123"), "{landed}");
            let code = params.remove("code").unwrap_or_else(|| panic!("code: {landed}"));
            let (status, tokens) = redeem(&broker_url, APP, &code, Some(crate::common::VERIFIER)).await;
            assert_eq!(status, 200, "{tokens}");
            let claims = crate::common::verify_id_token(
                &broker_url,
                tokens["id_token"].as_str().expect("id_token"),
                APP.client_id,
            )
            .await;
            assert_eq!(claims["email"], email);
            claims
        }
    };
    let count = |action: &str| world.proxy.records_of(action).len();
    // The link requests the adapter made, as (destination username, source subject).
    let links = || {
        world
            .proxy
            .records_of("AdminLinkProviderForUser")
            .iter()
            .map(|record| {
                let body = record.json();
                assert_eq!(body["UserPoolId"], pool.as_str());
                assert_eq!(body["DestinationUser"]["ProviderName"], "Cognito");
                assert_eq!(body["SourceUser"]["ProviderName"], PROVIDER);
                assert_eq!(body["SourceUser"]["ProviderAttributeName"], "Cognito_Subject");
                // moto checked the signature and the IAM permission before the proxy answered.
                assert!(record.by_proxy && record.status == 200, "{record:?}");
                let value = |v: &Value| v.as_str().unwrap_or("").to_owned();
                (
                    value(&body["DestinationUser"]["ProviderAttributeValue"]),
                    value(&body["SourceUser"]["ProviderAttributeValue"]),
                )
            })
            .collect::<Vec<_>>()
    };

    // A first login creates the user, with the organization and connection, and links the
    // federated identity under the subject the broker issues.
    let alice = "alice@acme.test";
    let claims = login(alice).await;
    let sub = claims["sub"].as_str().expect("sub").to_owned();
    let usernames = world.usernames_with_email(&pool, alice).await;
    let [username] = usernames.as_slice() else { panic!("one user for {alice}: {usernames:?}") };
    let user = world.get_user(&pool, username).await;
    assert_eq!(attribute(&user, "email").as_deref(), Some(alice));
    assert_eq!(attribute(&user, "email_verified").as_deref(), Some("true"));
    assert_eq!(attribute(&user, "given_name").as_deref(), Some("Alice"));
    assert_eq!(attribute(&user, "family_name").as_deref(), Some("Anders"));
    assert_eq!(attribute(&user, "custom:org_id").as_deref(), Some("org_acme"));
    assert_eq!(attribute(&user, "custom:connection_id").as_deref(), Some("conn_acme1"));
    assert_eq!(links(), vec![(username.clone(), sub.clone())], "linked under the ID token's sub");
    assert_eq!(linked_subjects(&user), vec![(PROVIDER.to_owned(), sub.clone())]);
    assert_eq!(count("AdminCreateUser"), 1);

    // A returning login is the same user: nothing created, nothing linked again.
    let claims = login(alice).await;
    assert_eq!(claims["sub"], sub.as_str(), "the same subject at every login");
    assert_eq!(world.usernames_with_email(&pool, alice).await, vec![username.clone()], "no duplicate");
    assert_eq!((count("AdminCreateUser"), links().len()), (1, 1));

    // An account the application made before SSO, with a verified email: taken over, not
    // duplicated; its own profile is left alone.
    let carol = "carol@acme.test";
    let existing = format!("app-user-{}", crate::cognito::unique());
    world
        .aws
        .cognito_ok(
            &world.admin,
            "AdminCreateUser",
            serde_json::json!({"UserPoolId": pool, "Username": existing, "MessageAction": "SUPPRESS",
                "UserAttributes": [{"Name": "email", "Value": carol}, {"Name": "email_verified", "Value": "true"}]}),
        )
        .await;
    let claims = login(carol).await;
    let carol_sub = claims["sub"].as_str().expect("sub").to_owned();
    assert_ne!(carol_sub, sub);
    assert_eq!(world.usernames_with_email(&pool, carol).await, vec![existing.clone()], "no duplicate");
    let user = world.get_user(&pool, &existing).await;
    assert_eq!(attribute(&user, "custom:org_id").as_deref(), Some("org_acme"));
    assert_eq!(attribute(&user, "custom:connection_id").as_deref(), Some("conn_acme1"));
    assert_eq!(attribute(&user, "given_name"), None, "an existing user's profile is the application's");
    assert_eq!(linked_subjects(&user), vec![(PROVIDER.to_owned(), carol_sub.clone())]);
    assert_eq!(links(), vec![(username.clone(), sub.clone()), (existing.clone(), carol_sub.clone())]);
    assert_eq!(count("AdminCreateUser"), 1, "the adapter created no user for carol");

    // moto authorized every call against the recipe's IAM policy.
    for record in world.proxy.records() {
        assert_ne!(record.status, 403, "{} was denied: the IAM policy lacks it", record.action);
    }
}
