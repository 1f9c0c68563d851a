//! `ssobridge simulator`, the demo's Scalekit stand-in run as its own process: what it sends
//! (the documented claims, errors and IdP-initiated tokens, research/scalekit.md), and a whole
//! login through a broker configured against it.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::common::{
    authorize_url, query, redeem, verify_id_token, BrokerSocket, Browser, AUTH0_CLIENT, COGNITO_CLIENT,
    UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET, VERIFIER,
};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const INITIATE: &str = "http://127.0.0.1:9/initiate-login";

/// A running `ssobridge simulator`, killed on drop.
pub struct Simulator {
    _child: Child,
    pub issuer: String,
    pub kid: String,
}

impl Simulator {
    /// Starts the built binary on a port the OS picks (`--port 0`), the broker being the client
    /// `ssobridge` with `redirect_uri`; waits for its READY line.
    pub async fn start(redirect_uri: &str, extra: &[&str]) -> Simulator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
            .args(["simulator", "--port", "0", "--client-id", UPSTREAM_CLIENT_ID])
            .args(["--client-secret", UPSTREAM_CLIENT_SECRET, "--redirect-uri", redirect_uri])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("run ssobridge simulator");
        let line = crate::common::wait_for_line(&mut child, "ssobridge simulator", |l| l.starts_with("READY "))
            .await
            .expect("simulator ready");
        let ready: Value = serde_json::from_str(&line["READY ".len()..]).expect("READY json");
        Simulator {
            _child: child,
            issuer: ready["issuer"].as_str().expect("issuer").to_owned(),
            kid: ready["kid"].as_str().expect("kid").to_owned(),
        }
    }

    fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/oauth/authorize", self.issuer)).expect("url");
        url.query_pairs_mut()
            .append_pair("client_id", UPSTREAM_CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid profile email")
            .extend_pairs(params);
        url.to_string()
    }

    async fn get_json(&self, path: &str) -> Value {
        crate::common::http().get(format!("{}{path}", self.issuer)).send().await.expect(path).json().await.expect(path)
    }
}

/// The query of the `Location` a GET of `url` answers with (no redirect followed).
async fn location(url: &str) -> (String, HashMap<String, String>) {
    let response = Browser::default().get(url).await;
    assert_eq!(response.status(), 302, "{url}: {}", response.text().await.unwrap_or_default());
    let location = response.headers()["location"].to_str().expect("location").to_owned();
    let params = query(&url::Url::parse(&location).expect("location url"));
    (location, params)
}

/// OIDC Core §3.3.2.11: base64url of the left half of SHA-256, computed here independently.
fn half_sha256(value: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// Verifies a simulator-signed JWT against its `/keys`: RS256, the `kid` published there.
async fn verify(sim: &Simulator, jwt: &str, audience: Option<&str>) -> Value {
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("kid");
    assert!(kid.strip_prefix("snk_").is_some_and(|d| d.len() == 17 && d.bytes().all(|b| b.is_ascii_digit())), "{kid}");
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_value(sim.get_json("/keys").await).expect("jwks");
    let jwk = keys.find(&kid).expect("the kid is published at /keys");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&sim.issuer]);
    match audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => {
            validation.validate_aud = false;
            validation.required_spec_claims = ["exp".to_owned()].into();
            validation.validate_nbf = true;
        }
    }
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    jsonwebtoken::decode::<Value>(jwt, &key, &validation).expect("signature and claims verify").claims
}

fn names(claims: &Value) -> BTreeSet<&str> {
    claims.as_object().expect("object").keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_keys_are_scalekits() {
    let sim = Simulator::start(REDIRECT, &[]).await;
    let discovery = sim.get_json("/.well-known/openid-configuration").await;
    let issuer = sim.issuer.as_str();
    assert_eq!(discovery["issuer"], issuer);
    assert_eq!(discovery["authorization_endpoint"], format!("{issuer}/oauth/authorize"));
    assert_eq!(discovery["token_endpoint"], format!("{issuer}/oauth/token"));
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/keys"));
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(discovery["token_endpoint_auth_methods_supported"], json!(["client_secret_post"]));
    assert!(discovery.get("authorization_response_iss_parameter_supported").is_none(), "{discovery}");
    assert!(discovery.get("userinfo_endpoint").is_none(), "Scalekit documents no userinfo for Modular SSO");
    let keys = sim.get_json("/keys").await;
    let [key] = keys["keys"].as_array().expect("keys").as_slice() else { panic!("one key: {keys}") };
    assert_eq!(
        (&key["kty"], &key["alg"], &key["use"], &key["kid"]),
        (&json!("RSA"), &json!("RS256"), &json!("sig"), &json!(sim.kid))
    );
}

/// One login at the simulator by hand (PKCE, nonce): the code, then the token response.
async fn login(sim: &Simulator, login_hint: &str) -> (String, Value) {
    let challenge = ssobridge::tokens::pkce_s256(VERIFIER);
    let (_, params) = location(&sim.authorize_url(&[
        ("state", "st-9"),
        ("nonce", "n-9"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("login_hint", login_hint),
    ]))
    .await;
    assert_eq!(params.get("state").map(String::as_str), Some("st-9"), "{params:?}");
    assert!(!params.contains_key("iss"), "no RFC 9207 iss: Scalekit does not document it: {params:?}");
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}")).clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", UPSTREAM_CLIENT_ID),
        ("client_secret", UPSTREAM_CLIENT_SECRET),
        ("code_verifier", VERIFIER),
    ];
    let response =
        crate::common::http().post(format!("{}/oauth/token", sim.issuer)).form(&form).send().await.expect("token");
    assert_eq!(response.status(), 200);
    (code, response.json().await.expect("token json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_token_has_exactly_the_documented_claims() {
    let sim = Simulator::start(REDIRECT, &[]).await;
    let (code, tokens) = login(&sim, "alice@example.com").await;
    assert_eq!((&tokens["token_type"], &tokens["expires_in"]), (&json!("Bearer"), &json!(899)));
    let access_token = tokens["access_token"].as_str().expect("access_token");
    let claims = verify(&sim, tokens["id_token"].as_str().expect("id_token"), Some(UPSTREAM_CLIENT_ID)).await;
    // docs:guides/idtoken-claims and the decoded token of docs:sso/quickstart; nonce because
    // one was sent; no auth_time.
    let expected: BTreeSet<&str> = [
        "iss",
        "aud",
        "azp",
        "client_id",
        "sub",
        "oid",
        "amr",
        "sid",
        "at_hash",
        "c_hash",
        "iat",
        "exp",
        "email",
        "email_verified",
        "name",
        "given_name",
        "family_name",
        "nonce",
    ]
    .into();
    assert_eq!(names(&claims), expected, "{claims}");
    assert_eq!(claims["aud"], json!([UPSTREAM_CLIENT_ID]), "aud is an array");
    assert_eq!(claims["azp"], UPSTREAM_CLIENT_ID);
    assert_eq!(claims["client_id"], UPSTREAM_CLIENT_ID);
    assert_eq!(claims["amr"], json!(["conn_example_com"]));
    assert_eq!(claims["oid"], "org_example_com");
    let sub = claims["sub"].as_str().expect("sub");
    let (connection, idp_user) = sub.split_once(';').expect("conn_…;<IdP user id>");
    assert_eq!(connection, "conn_example_com");
    assert!(!idp_user.is_empty() && !idp_user.contains('@') && !idp_user.contains("alice"), "opaque: {sub}");
    let sid = claims["sid"].as_str().expect("sid");
    assert!(sid.strip_prefix("ses_").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())), "{sid}");
    assert_eq!(claims["at_hash"], half_sha256(access_token));
    assert_eq!(claims["c_hash"], half_sha256(&code));
    assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
    assert_eq!(claims["nonce"], "n-9");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");

    // The same user again: the same sub, another session.
    let (_, again) = login(&sim, "Alice@Example.com").await;
    let again = verify(&sim, again["id_token"].as_str().expect("id_token"), Some(UPSTREAM_CLIENT_ID)).await;
    assert_eq!(again["sub"], claims["sub"], "stable");
    assert_ne!(again["sid"], claims["sid"]);

    // A SAML-style user: email_verified and name are optional at Scalekit.
    let (_, carol) = login(&sim, "carol@example.org").await;
    let carol = verify(&sim, carol["id_token"].as_str().expect("id_token"), Some(UPSTREAM_CLIENT_ID)).await;
    assert!(carol.get("email_verified").is_none() && carol.get("name").is_none(), "{carol}");
    assert_eq!((&carol["given_name"], &carol["family_name"]), (&json!("Carol"), &json!("Jones")));
    assert_eq!((&carol["amr"], &carol["oid"]), (&json!(["conn_example_org"]), &json!("org_example_org")));
    assert!(carol["sub"].as_str().is_some_and(|s| s.starts_with("conn_example_org;") && !s.contains('@')), "{carol}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_takes_body_credentials_and_each_code_once() {
    let sim = Simulator::start(REDIRECT, &[]).await;
    let (_, params) = location(&sim.authorize_url(&[("login_hint", "bob@example.org")])).await;
    let code = params.get("code").expect("code").clone();
    let token = |form: Vec<(&'static str, String)>, basic: bool| {
        let mut request = crate::common::http().post(format!("{}/oauth/token", sim.issuer)).form(&form);
        if basic {
            request = request.basic_auth(UPSTREAM_CLIENT_ID, Some(UPSTREAM_CLIENT_SECRET));
        }
        async move {
            let response = request.send().await.expect("token");
            (response.status().as_u16(), response.json::<Value>().await.expect("json")["error"].clone())
        }
    };
    let grant = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.clone()),
        ("redirect_uri", REDIRECT.to_owned()),
    ];
    assert_eq!(token(grant.clone(), true).await, (401, json!("invalid_client")), "HTTP Basic is not documented");
    let mut posted = grant.clone();
    posted.extend([("client_id", UPSTREAM_CLIENT_ID.to_owned()), ("client_secret", "wrong".to_owned())]);
    assert_eq!(token(posted, false).await, (401, json!("invalid_client")));
    let mut posted = grant.clone();
    posted.extend([("client_id", UPSTREAM_CLIENT_ID.to_owned()), ("client_secret", UPSTREAM_CLIENT_SECRET.to_owned())]);
    let (status, _) = token(posted.clone(), false).await;
    assert_eq!(status, 200);
    assert_eq!(token(posted, false).await, (400, json!("invalid_grant")), "a code redeems once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_documented_error_comes_back_on_the_redirect_uri() {
    let sim = Simulator::start(REDIRECT, &[]).await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "invalid_connection_selector"),
        (&[("connection_id", "conn_nope")], "invalid_connection_id"),
        (&[("organization_id", "org_nope")], "invalid_organization_id"),
        (&[("domain", "unknown.test")], "domain_not_found"),
        (&[("domain_hint", "unknown.test")], "domain_not_found"),
        (&[("login_hint", "eve@unknown.test")], "domain_not_found"),
        (&[("login_hint", "guest@example.com")], "invalid_user_domain"),
        (&[("organization_id", "org_sso_off")], "no_active_connections"),
        (&[("connection_id", "conn_sso_off")], "connection_not_active"),
        (&[("organization_id", "org_no_sso")], "no_configured_connections"),
        (&[("login_hint", "dave@example.org")], "user_not_active"),
        (&[("login_hint", "alice@example.com"), ("response_type", "token")], "invalid_request"),
    ];
    for (params, expected) in cases {
        let mut all = vec![("state", "st-e")];
        all.extend_from_slice(params);
        let mut url = url::Url::parse(&sim.authorize_url(&all)).expect("url");
        // A repeated response_type replaces the default one.
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let mut kept: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs.into_iter().rev() {
            if !kept.iter().any(|(name, _)| name == &k) {
                kept.push((k, v));
            }
        }
        url.query_pairs_mut().clear().extend_pairs(kept);
        let (location, got) = location(url.as_str()).await;
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(got.get("error").map(String::as_str), Some(*expected), "{params:?}: {got:?}");
        assert!(got.get("error_description").is_some_and(|d| !d.is_empty()), "{got:?}");
        assert_eq!(got.get("state").map(String::as_str), Some("st-e"), "{got:?}");
        assert!(!got.contains_key("iss") && !got.contains_key("code"), "{got:?}");
    }
    // An unknown client or redirect URI cannot be redirected to: a page.
    for url in [
        sim.authorize_url(&[("login_hint", "alice@example.com")]).replace("client_id=ssobridge", "client_id=other"),
        sim.authorize_url(&[("login_hint", "alice@example.com")]).replace("%2Fcallback", "%2Fother"),
    ] {
        let response = Browser::default().get(&url).await;
        assert_eq!(response.status(), 400, "{url}");
        assert!(response.headers().get("location").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_9207_iss_is_a_setting() {
    let sim = Simulator::start(REDIRECT, &["--iss-on-redirect"]).await;
    let discovery = sim.get_json("/.well-known/openid-configuration").await;
    assert_eq!(discovery["authorization_response_iss_parameter_supported"], true);
    let (_, ok) = location(&sim.authorize_url(&[("login_hint", "alice@example.com")])).await;
    assert_eq!((ok.get("iss"), ok.contains_key("code")), (Some(&sim.issuer), true), "{ok:?}");
    let (_, error) = location(&sim.authorize_url(&[("organization_id", "org_nope")])).await;
    assert_eq!(error.get("iss"), Some(&sim.issuer), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_sends_docs_shaped_idp_initiated_tokens_and_errors() {
    let sim = Simulator::start(REDIRECT, &[]).await;
    let page = Browser::default().get(&format!("{}/portal", sim.issuer)).await.text().await.expect("portal");
    for choice in [
        "portal/start?organization_id=org_example_org\"",
        "portal/start?organization_id=org_example_org&amp;deliver=redirect",
        "action=\"portal/error\"",
    ] {
        assert!(page.contains(choice), "{choice}: {page}");
    }
    // To the initiate-login URL (by default the broker's, next to its callback) and to the
    // default redirect URL.
    for (deliver, target) in [("", INITIATE), ("&deliver=redirect", REDIRECT)] {
        let url = format!("{}/portal/start?organization_id=org_example_org{deliver}", sim.issuer);
        let (location, params) = location(&url).await;
        assert!(location.starts_with(&format!("{target}?")), "{location}");
        let token = params.get("idp_initiated_login").expect("idp_initiated_login");
        let claims = verify(&sim, token, None).await;
        let expected: BTreeSet<&str> =
            ["organization_id", "connection_id", "login_hint", "exp", "nbf", "iat", "iss"].into();
        assert_eq!(names(&claims), expected, "docs:sso/guides/idp-init-sso: no aud, no jti: {claims}");
        assert_eq!(
            (&claims["organization_id"], &claims["connection_id"], &claims["login_hint"]),
            (&json!("org_example_org"), &json!("conn_example_org"), &json!("bob@example.org"))
        );
        assert_eq!(claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"), 300);
        assert_eq!(claims["nbf"], claims["iat"]);
    }
    // The "Error" choice, as Scalekit's simulator has: to the default redirect URL, no state.
    let (location, params) =
        location(&format!("{}/portal/error?organization_id=org_example_com&error=user_not_active", sim.issuer)).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(params.get("error").map(String::as_str), Some("user_not_active"));
    assert!(params.get("error_description").is_some_and(|d| !d.is_empty()));
    assert!(!params.contains_key("state") && !params.contains_key("iss"), "{params:?}");
}

#[tokio::test]
async fn the_simulator_refuses_to_run_in_production_and_refuses_bad_settings() {
    let run = |args: &'static [&'static str], production: bool| async move {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ssobridge"));
        command.args(["simulator", "--port", "0"]).args(args);
        if production {
            command.env("SSOBRIDGE_ENV", "production");
        }
        let output = command.output().await.expect("run");
        assert!(!output.status.success(), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let good: &[&str] = &["--client-secret", "s", "--redirect-uri", REDIRECT];
    assert!(run(good, true).await.contains("refuses to run"));
    assert!(run(&["--redirect-uri", REDIRECT], false).await.contains("--client-secret"));
    assert!(run(&["--client-secret", "s"], false).await.contains("--redirect-uri"));
    let with_query = run(&["--client-secret", "s", "--redirect-uri", "http://127.0.0.1:9/callback?client_id=x"], false);
    assert!(with_query.await.contains("no query string"), "Scalekit's redirect URL rules");
}

/// The broker's routes for the simulator's organizations, as the demo has them.
const ROUTES: &str = r#"
[[routes]]
domain = "example.com"
organization_id = "org_example_com"
connection_id = "conn_example_com"
[[routes]]
domain = "example.org"
organization_id = "org_example_org"
connection_id = "conn_example_org"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_against_the_standalone_simulator_completes_logins() {
    let socket = BrokerSocket::bind().await;
    let callback = socket.callback();
    let sim = Simulator::start(&callback, &[]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "sim:", &sim.issuer) + ROUTES;
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;

    let browser = Browser::default();
    let start = authorize_url(&broker.url, AUTH0_CLIENT, Some(VERIFIER), &[("login_hint", "alice@example.com")]);
    let landed = browser.follow_until(&start, AUTH0_CLIENT.redirect_uri).await.expect("login");
    let params = query(&landed);
    let code = params.get("code").unwrap_or_else(|| panic!("a code: {params:?}"));
    let (status, tokens) = redeem(&broker.url, AUTH0_CLIENT, code, Some(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let claims =
        verify_id_token(&broker.url, tokens["id_token"].as_str().expect("id_token"), AUTH0_CLIENT.client_id).await;
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!((&claims["org_id"], &claims["connection_id"]), (&json!("org_example_com"), &json!("conn_example_com")));
    assert_eq!(claims["email_verified"], true, "example.com is a verified route of org_example_com");

    // A client given the upstream subject sees Scalekit's conn_…;<IdP user id>.
    let landed = browser
        .follow_until(
            &authorize_url(&broker.url, COGNITO_CLIENT, None, &[("login_hint", "carol@example.org")]),
            COGNITO_CLIENT.redirect_uri,
        )
        .await
        .expect("login");
    let code = query(&landed).remove("code").expect("code");
    let (status, tokens) = redeem(&broker.url, COGNITO_CLIENT, &code, None).await;
    assert_eq!(status, 200, "{tokens}");
    let claims =
        verify_id_token(&broker.url, tokens["id_token"].as_str().expect("id_token"), COGNITO_CLIENT.client_id).await;
    assert!(claims["sub"].as_str().is_some_and(|s| s.starts_with("conn_example_org;") && !s.contains('@')), "{claims}");
    assert_eq!(claims["name"], "Carol Jones", "carol's IdP sends no name: the broker makes it of hers: {claims}");

    // An IdP-initiated login from the portal reaches the client's initiate_login_uri.
    let start = format!("{}/portal/start?organization_id=org_example_com", sim.issuer);
    let handoff = browser.follow_until(&start, "https://acme.us.auth0.com/login/initiate").await.expect("handoff");
    assert_eq!(query(&handoff).get("login_hint").map(String::as_str), Some("alice@example.com"));

    // Delivered to the default redirect URL (the broker's /callback), as Scalekit's test guide
    // says its simulator does: the broker hands it to the client as at its initiate-login URL.
    // (Another organization: the same user's token minted in the same second is the same token.)
    let (location, params) =
        location(&format!("{}/portal/start?organization_id=org_example_org&deliver=redirect", sim.issuer)).await;
    assert!(location.starts_with(&format!("{callback}?")), "{location}");
    assert!(params.contains_key("idp_initiated_login"), "{params:?}");
    let handoff = browser.follow_until(&location, "https://acme.us.auth0.com/login/initiate").await.expect("handoff");
    let handoff = query(&handoff);
    assert_eq!(handoff.get("login_hint").map(String::as_str), Some("bob@example.org"));
    assert_eq!(handoff.get("iss"), Some(&broker.url), "OIDC Core §4");
}

/// The initiate-login URL registered as the README says, a path template over each
/// organization's metadata (Scalekit allows no query string in registered URLs): the portal's
/// sign-in reaches the client the organization's `ssobridge_client` names, and its "Error"
/// choice, delivered there, is a page that names the condition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initiate_login_path_template_names_the_client() {
    let socket = BrokerSocket::bind().await;
    let template = format!("{}/initiate-login/{{{{ssobridge_client}}}}", socket.url);
    let metadata = format!("ssobridge_client={}", COGNITO_CLIENT.client_id);
    let sim = Simulator::start(
        &socket.callback(),
        &["--initiate-login-uri", &template, "--organization-metadata", &metadata],
    )
    .await;
    // Both clients accept IdP-initiated logins: only the path says which one the link is for.
    let toml = crate::common::broker_toml(&socket.url, "memory", "tpl:", &sim.issuer).replace(
        "subject = \"upstream\"",
        "subject = \"upstream\"\ninitiate_login_uri = \"https://cognito.example/initiate\"",
    ) + ROUTES;
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;

    let start = format!("{}/portal/start?organization_id=org_example_org", sim.issuer);
    let (to, _) = location(&start).await;
    assert!(to.starts_with(&format!("{}/initiate-login/cognito-test?", broker.url)), "{to}");
    let browser = Browser::default();
    let handoff = browser.follow_until(&start, "https://cognito.example/initiate").await.expect("handoff");
    assert_eq!(query(&handoff).get("login_hint").map(String::as_str), Some("bob@example.org"));

    let error =
        format!("{}/portal/error?organization_id=org_example_org&error=assertion_expired&deliver=initiate", sim.issuer);
    let (to, params) = location(&error).await;
    assert!(to.starts_with(&format!("{}/initiate-login/cognito-test?", broker.url)), "{to}");
    assert_eq!(params.get("error").map(String::as_str), Some("assertion_expired"));
    let shown = browser.get(&to).await;
    assert_eq!(shown.status(), 400);
    let page = shown.text().await.expect("page");
    assert!(page.contains("The identity provider&#39;s SAML assertion had expired (a clock may be wrong)."), "{page}");
}
