//! Per-client ID token algorithms (`id_token_signed_response_alg`: RS256, PS256, ES256) and
//! `private_key_jwt` client authentication, driven by a real relying party (openid-client, as
//! Auth0 drives an OIDC connection) against a real upstream (oidc-provider), plus every way a
//! client assertion must be refused.

use std::sync::{Arc, Mutex};

use crate::common::{
    authorize_url, query, rp, BrokerSocket, Browser, Stack, TestClient, ADMIN_WRITE_TOKEN, AUTH0_CLIENT, VERIFIER,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use ssobridge::tokens::{generate_pem, KeyType, SigningKey};

const REDIRECT: &str = "https://acme.us.auth0.com/login/callback";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A key pair made by jose (tests/peers/keygen.mjs): private JWK, public JWK, private PEM.
struct ClientKey {
    private_jwk: Value,
    public_jwk: Value,
    private_pem: String,
}

async fn client_key(alg: &str, kid: &str) -> ClientKey {
    let output = tokio::process::Command::new("node")
        .arg(crate::common::peers_dir().join("keygen.mjs"))
        .args([alg, kid])
        .output()
        .await
        .expect("run keygen.mjs");
    assert!(output.status.success(), "keygen.mjs: {}", String::from_utf8_lossy(&output.stderr));
    let keys: Value = serde_json::from_slice(&output.stdout).expect("keygen json");
    ClientKey {
        private_jwk: keys["private_jwk"].clone(),
        public_jwk: keys["public_jwk"].clone(),
        private_pem: keys["private_pem"].as_str().expect("pem").to_owned(),
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("string")
}

fn ec_signing_toml() -> String {
    format!("\n[signing]\nec_key_pem = {}\n", toml_string(&generate_pem(KeyType::Ec).expect("EC key")))
}

fn client_toml(client_id: &str, extra: &str) -> String {
    format!(
        "\n[[clients]]\nclient_id = \"{client_id}\"\nredirect_uris = [\"{REDIRECT}\"]\n{extra}\n",
        client_id = client_id
    )
}

fn rp_input(stack_url: &str, client_id: &str) -> Value {
    json!({
        "issuer": stack_url,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "mode": "auth0",
        "params": {"login_hint": "alice@acme.test"},
    })
}

async fn jwks_kids(broker: &str) -> Vec<String> {
    let jwks: Value =
        crate::common::http().get(format!("{broker}/jwks")).send().await.expect("jwks").json().await.expect("j");
    jwks["keys"].as_array().expect("keys").iter().map(|k| k["kid"].as_str().expect("kid").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_id_tokens_in_its_algorithm_and_openid_client_verifies_them() {
    let extra =
        client_toml("ps-client", "client_secret = \"ps-client-secret\"\nid_token_signed_response_alg = \"PS256\"")
            + &client_toml(
                "es-client",
                "client_secret = \"es-client-secret\"\nid_token_signed_response_alg = \"ES256\"",
            )
            + &ec_signing_toml();
    let stack = Stack::start_with("memory", "alg:", &extra).await;
    let discovery: Value = crate::common::http()
        .get(format!("{}/.well-known/openid-configuration", stack.broker.url))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["RS256", "PS256", "ES256"]));
    let kids = jwks_kids(&stack.broker.url).await;

    for (client_id, secret, alg) in [
        (AUTH0_CLIENT.client_id, AUTH0_CLIENT.secret, "RS256"),
        ("ps-client", "ps-client-secret", "PS256"),
        ("es-client", "es-client-secret", "ES256"),
    ] {
        let mut input = rp_input(&stack.broker.url, client_id);
        input["client_secret"] = json!(secret);
        input["redirect_uri"] =
            json!(if client_id == AUTH0_CLIENT.client_id { AUTH0_CLIENT.redirect_uri } else { REDIRECT });
        input["id_token_signed_response_alg"] = json!(alg);
        let result = rp(&input).await;
        assert_eq!(result["ok"], true, "{client_id}: {result}");
        assert_eq!(result["id_token_header"]["alg"], alg, "{result}");
        let kid = result["id_token_header"]["kid"].as_str().expect("kid");
        assert!(kids.iter().any(|k| k == kid), "{alg} token's kid {kid} is published");
        assert_eq!(result["id_token_claims"]["email"], "alice@acme.test");

        // A relying party expecting another algorithm refuses the token: the client really
        // gets its own algorithm, not whatever the broker prefers.
        let other = if alg == "RS256" { "ES256" } else { "RS256" };
        input["id_token_signed_response_alg"] = json!(other);
        let refused = rp(&input).await;
        assert_eq!(refused["ok"], false, "{client_id} with {other}: {refused}");
        assert_eq!(refused["stage"], "token", "{refused}");
    }
}

struct Admin {
    base: String,
}

impl Admin {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            crate::common::http().request(method, format!("{}/admin{path}", self.base)).bearer_auth(ADMIN_WRITE_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_needs_an_ec_key_and_rotating_one_in_enables_it() {
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let toml = crate::common::broker_toml(&socket.url, "memory", "ec:", &upstream.issuer)
        + "\n[signing]\nkey_encryption_key = \"a-test-key-encryption-key-of-some-length\"\n";
    let broker = socket.serve_with_admin(&toml, SigningKey::generate_rsa().expect("key")).await;
    let admin = Admin { base: broker.url.clone() };
    let body = json!({"client_id": "es-api", "redirect_uris": [REDIRECT], "id_token_signed_response_alg": "ES256"});

    let (status, problem) = admin.send(reqwest::Method::POST, "/clients", Some(body.clone())).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/id_token_signed_response_alg", "{problem}");
    let discovery: Value = crate::common::http()
        .get(format!("{}/.well-known/openid-configuration", broker.url))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["RS256", "PS256"]));

    let (status, rotated) = admin.send(reqwest::Method::POST, "/keys/rotate?kty=EC", None).await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["kty"], "EC");
    assert_eq!(rotated["algorithms"], json!(["ES256"]));
    let (status, created) = admin.send(reqwest::Method::POST, "/clients", Some(body)).await;
    assert_eq!(status, 201, "{created}");

    let mut input = rp_input(&broker.url, "es-api");
    input["client_secret"] = created["client_secret"].clone();
    input["id_token_signed_response_alg"] = json!("ES256");
    let result = rp(&input).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["id_token_header"]["kid"], rotated["kid"]);
    // The RSA key was not touched by the EC rotation.
    let (_, keys) = admin.send(reqwest::Method::GET, "/keys", None).await;
    let rsa_active = keys["items"].as_array().expect("items").iter().any(|k| k["kty"] == "RSA" && k["active"] == true);
    assert!(rsa_active, "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_clients_log_in_with_openid_client() {
    let rsa = client_key("RS256", "rsa-1").await;
    let ec = client_key("ES256", "ec-1").await;
    let jwks = |key: &ClientKey| toml_string(&json!({"keys": [key.public_jwk]}).to_string());
    let extra =
        client_toml("pk-rsa", &format!("token_endpoint_auth_method = \"private_key_jwt\"\njwks = {}", jwks(&rsa)))
            + &client_toml("pk-ec", &format!("token_endpoint_auth_method = \"private_key_jwt\"\njwks = {}", jwks(&ec)));
    let stack = Stack::start_with("memory", "pk:", &extra).await;
    for (client_id, key) in [("pk-rsa", &rsa), ("pk-ec", &ec)] {
        let mut input = rp_input(&stack.broker.url, client_id);
        input["token_endpoint_auth"] = json!("private_key_jwt");
        input["private_jwk"] = key.private_jwk.clone();
        let result = rp(&input).await;
        assert_eq!(result["ok"], true, "{client_id}: {result}");
        assert_eq!(result["id_token_claims"]["aud"], client_id);
    }
    // The other client's key does not authenticate this one.
    let mut input = rp_input(&stack.broker.url, "pk-rsa");
    input["token_endpoint_auth"] = json!("private_key_jwt");
    input["private_jwk"] = ec.private_jwk.clone();
    let refused = rp(&input).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"], "invalid_client", "{refused}");
}

/// Serves a JWK Set that the test can change, as a client's `jwks_uri`.
pub(crate) async fn serve_jwks(document: Arc<Mutex<Value>>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://127.0.0.1:{}/jwks.json", listener.local_addr().expect("addr").port());
    let app = poem::Route::new().at(
        "/jwks.json",
        poem::get(poem::endpoint::make_sync(move |_| {
            let body = document.lock().expect("lock").to_string();
            poem::Response::builder().content_type("application/json").body(body)
        })),
    );
    let task = tokio::spawn(async move {
        let _ = ssobridge::app::serve(listener, app, std::future::pending::<()>()).await;
    });
    (url, task)
}

/// A client assertion signed with `pem` (or `key` given), with `claims` merged over valid ones.
pub(crate) fn assertion(
    alg: Algorithm,
    kid: &str,
    key: &EncodingKey,
    client_id: &str,
    aud: &str,
    claims: Value,
) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut body = json!({
        "iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
        "jti": format!("jti-{}", ssobridge::tokens::random_token(12).expect("random")),
    });
    for (name, value) in claims.as_object().expect("object") {
        if value.is_null() {
            body.as_object_mut().expect("object").remove(name);
        } else {
            body[name] = value.clone();
        }
    }
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &body, key).expect("sign")
}

async fn token_request(broker: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut request = crate::common::http().post(format!("{broker}/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("token");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A token request with an unknown code: `invalid_grant` proves the client authenticated,
/// `invalid_client` that it did not.
async fn authenticate(broker: &str, assertion: &str) -> (u16, Value) {
    token_request(
        broker,
        &[
            ("grant_type", "authorization_code"),
            ("code", "not-a-code"),
            ("redirect_uri", REDIRECT),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

/// The `error` code of [`authenticate`]'s answer.
async fn authentication_error(broker: &str, assertion: &str) -> Value {
    let (_, body) = authenticate(broker, assertion).await;
    body["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_assertions_are_checked_like_a_careful_authorization_server_would() {
    let first = client_key("RS256", "k1").await;
    let second = client_key("ES256", "k2").await;
    let impostor = client_key("RS256", "k1").await;
    let document = Arc::new(Mutex::new(json!({"keys": [first.public_jwk]})));
    let (jwks_uri, _server) = serve_jwks(document.clone()).await;
    // The test serves the client's keys on loopback, which a deployment must allow explicitly.
    let extra =
        client_toml("pk-uri", &format!("token_endpoint_auth_method = \"private_key_jwt\"\njwks_uri = \"{jwks_uri}\""))
            + "\n[outbound]\nallow_private_networks = true\n";
    let stack = Stack::start_with("memory", "pka:", &extra).await;
    let broker = stack.broker.url.as_str();
    let token_endpoint = format!("{broker}/token");
    let rsa = EncodingKey::from_rsa_pem(first.private_pem.as_bytes()).expect("rsa key");
    let fake = EncodingKey::from_rsa_pem(impostor.private_pem.as_bytes()).expect("rsa key");
    let ec = EncodingKey::from_ec_pem(second.private_pem.as_bytes()).expect("ec key");
    let signed = |claims: Value| assertion(Algorithm::RS256, "k1", &rsa, "pk-uri", &token_endpoint, claims);

    // A good assertion authenticates (the unknown code is then the only problem) ...
    let good = signed(json!({}));
    let (status, body) = authenticate(broker, &good).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // ... once: its jti is remembered.
    let (status, body) = authenticate(broker, &good).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "replayed: {body}");
    // The issuer is an accepted audience too (RFC 7523 allows either).
    let to_issuer = assertion(Algorithm::RS256, "k1", &rsa, "pk-uri", broker, json!({}));
    assert_eq!(authentication_error(broker, &to_issuer).await, "invalid_grant");

    let now = jsonwebtoken::get_current_timestamp();
    let refused = [
        ("another audience", signed(json!({"aud": "https://elsewhere.example/token"}))),
        ("expired", signed(json!({"iat": now - 600, "exp": now - 120}))),
        ("valid for an hour", signed(json!({"exp": now + 3600}))),
        ("no jti", signed(json!({"jti": null}))),
        ("no exp", signed(json!({"exp": null}))),
        ("iss is not the client", signed(json!({"iss": "someone-else"}))),
        ("issued in the future", signed(json!({"iat": now + 600, "exp": now + 660}))),
        ("signed by another key with the same kid", {
            assertion(Algorithm::RS256, "k1", &fake, "pk-uri", &token_endpoint, json!({}))
        }),
        ("a kid the client never registered", {
            assertion(Algorithm::ES256, "k2", &ec, "pk-uri", &token_endpoint, json!({}))
        }),
        ("HS256 with a guessable secret", {
            assertion(
                Algorithm::HS256,
                "k1",
                &EncodingKey::from_secret(b"pk-uri"),
                "pk-uri",
                &token_endpoint,
                json!({}),
            )
        }),
        ("alg none", {
            let good = signed(json!({}));
            let payload = good.split('.').nth(1).expect("payload").to_owned();
            format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
        }),
        ("not a JWT", "garbage".to_owned()),
    ];
    for (case, jwt) in &refused {
        let (status, body) = authenticate(broker, jwt).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{case}: {body}");
    }

    // Mixed or half-sent methods are malformed requests.
    let (status, body) = token_request(
        broker,
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &signed(json!({}))),
            ("client_secret", "also-a-secret"),
        ],
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) =
        token_request(broker, &[("grant_type", "authorization_code"), ("client_assertion", &signed(json!({})))], None)
            .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    let (status, body) = token_request(
        broker,
        &[
            ("grant_type", "authorization_code"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
            ("client_assertion", &signed(json!({}))),
        ],
        None,
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    // A private_key_jwt client has no secret that works; a secret client no assertion.
    let (status, _) = token_request(broker, &[("grant_type", "authorization_code")], Some(("pk-uri", ""))).await;
    assert_eq!(status, 401);
    let secret_client = assertion(Algorithm::RS256, "k1", &rsa, AUTH0_CLIENT.client_id, &token_endpoint, json!({}));
    assert_eq!(authentication_error(broker, &secret_client).await, "invalid_client");

    // The client rotates: its jwks_uri now holds only k2. The unknown kid refetches it (the
    // broker refetches at most every 2 s, so that unknown kids cannot make it hammer the URI:
    // the wait lets that interval pass, it is the behaviour under test).
    *document.lock().expect("lock") = json!({"keys": [second.public_jwk]});
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let rotated = assertion(Algorithm::ES256, "k2", &ec, "pk-uri", &token_endpoint, json!({}));
    assert_eq!(authentication_error(broker, &rotated).await, "invalid_grant", "the new key works at once");
    assert_eq!(authentication_error(broker, &signed(json!({}))).await, "invalid_client", "the old key is gone");

    // And a whole login with the rotated key, codes and all.
    let browser = Browser::default();
    let url = authorize_url(
        broker,
        TestClient { client_id: "pk-uri", secret: "", redirect_uri: REDIRECT },
        Some(VERIFIER),
        &[("login_hint", "alice@acme.test")],
    );
    let code = query(&browser.follow_until(&url, REDIRECT).await.expect("login")).remove("code").expect("code");
    let login = assertion(Algorithm::ES256, "k2", &ec, "pk-uri", &token_endpoint, json!({}));
    let (status, tokens) = token_request(
        broker,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &login),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let claims = crate::common::verify_id_token(broker, tokens["id_token"].as_str().expect("id_token"), "pk-uri").await;
    assert_eq!(claims["email"], "alice@acme.test");
}
