//! The peer the adapter's tests run against: moto's server (Cognito user pools, IAM, STS), with
//! IAM authentication switched on so that every request's SigV4 signature is checked and every
//! action is authorized against the policy in `iam-policy.json`, behind a small recording proxy.
//!
//! The proxy is the harness's only stand-in, for one thing: moto does not implement
//! `AdminLinkProviderForUser`. The proxy forwards that call to moto like every other (so the
//! signature and the IAM permission are still checked by moto), and only when moto answers with its
//! "not implemented" 500 does it answer `{}` itself, recording the link where Cognito does: in the
//! destination user's `identities` attribute.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde_json::{json, Value};
use ssobridge_adapter_cognito::{CognitoAdapter, CognitoSettings};

pub const REGION: &str = "eu-west-1";
pub const PROVIDER: &str = "ssobridge";
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

fn crate_dir() -> PathBuf {
    // This harness also serves the broker's end-to-end tests, whose manifest is the workspace root.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.join("iam-policy.json").is_file() {
        here
    } else {
        here.join("adapters/cognito")
    }
}

fn repo_root() -> PathBuf {
    crate_dir().join("../..")
}

/// A unique suffix for names in one test run.
pub fn unique() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{nanos:x}")
}

/// `moto_server` on a port the kernel picked; killed (by its pid) when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Moto {
    pub fn start() -> Moto {
        let bin = repo_root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/install-test-deps.sh (moto is a required peer)",
            bin.display()
        );
        // Port 0: werkzeug binds a free port and prints it, which is also the readiness signal
        // (it prints after the socket listens). No port is guessed, no fixed sleep.
        let mut child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let thread_log = Arc::clone(&log);
        // Keeps draining stderr (werkzeug logs every request there) so moto never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(port) = digits.parse::<u16>() {
                        let _ = port_tx.send(port);
                    }
                }
                let mut log = thread_log.lock().unwrap();
                if log.len() == 200 {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        match port_rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(port) => Moto { child, url: format!("http://127.0.0.1:{port}"), log },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto did not listen within {STARTUP_DEADLINE:?}; its log:\n{}", log_text(&log));
            }
        }
    }

    pub fn log(&self) -> String {
        log_text(&self.log)
    }
}

fn log_text(log: &Mutex<VecDeque<String>>) -> String {
    log.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Debug)]
pub struct Creds {
    pub key: String,
    pub secret: String,
    pub token: Option<String>,
}

impl Creds {
    fn boot() -> Creds {
        // Before authentication is switched on moto accepts any key; it only routes on the scope.
        Creds { key: "AKIABOOTSTRAP".into(), secret: "bootstrap".into(), token: None }
    }
}

/// A signed client of the harness's own, for setting moto up and for looking behind the adapter.
#[derive(Clone)]
pub struct Aws {
    http: reqwest::Client,
    pub endpoint: String,
}

fn signed_headers(
    creds: &Creds,
    service: &str,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    let identity = Credentials::new(&creds.key, &creds.secret, creds.token.clone(), None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect()
}

impl Aws {
    pub fn new(endpoint: &str) -> Aws {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Aws { http, endpoint: endpoint.to_owned() }
    }

    /// A Cognito JSON 1.1 call; returns the status and the parsed body.
    pub async fn cognito(&self, creds: &Creds, action: &str, body: Value) -> (u16, Value) {
        let body = serde_json::to_vec(&body).unwrap();
        let target = format!("AWSCognitoIdentityProviderService.{action}");
        let url = format!("{}/", self.endpoint);
        let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
        let mut request = self.http.post(&url).body(body.clone());
        for (n, v) in headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).chain(signed_headers(
            creds,
            "cognito-idp",
            REGION,
            &url,
            &headers,
            &body,
        )) {
            request = request.header(n, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A Cognito call that must succeed.
    pub async fn cognito_ok(&self, creds: &Creds, action: &str, body: Value) -> Value {
        let (status, answer) = self.cognito(creds, action, body).await;
        assert_eq!(status, 200, "{action} failed: {answer}");
        answer
    }

    /// A query-protocol call (IAM, STS); returns the XML answer.
    pub async fn query(&self, creds: &Creds, service: &str, region: &str, params: &[(&str, &str)]) -> String {
        let body = params.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>();
        let body = body.join("&").into_bytes();
        let url = format!("{}/", self.endpoint);
        let headers = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
        let mut request = self.http.post(&url).header(headers[0].0, headers[0].1).body(body.clone());
        for (n, v) in signed_headers(creds, service, region, &url, &headers, &body) {
            request = request.header(n, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{service} {params:?} failed: {status} {text}");
        text
    }
}

/// Form encoding as botocore (and so moto, which re-encodes the form to check the signature)
/// does it: Python's `quote_plus`, which also escapes `*`.
fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

pub fn xml_value(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{name}> in {xml}")) + open.len();
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    xml[start..end].to_owned()
}

/// The adapter's least-privilege policy, as the recipe documents it. moto does not evaluate
/// resource ARNs for cognito-idp (every request is checked against resource `*`), so the tests
/// grant the same actions on `*`: what is verified is that the actions suffice.
pub fn adapter_policy() -> String {
    let raw = std::fs::read_to_string(crate_dir().join("iam-policy.json")).unwrap();
    let mut policy: Value = serde_json::from_str(&raw).unwrap();
    for statement in policy["Statement"].as_array_mut().unwrap() {
        statement["Resource"] = json!("*");
    }
    policy.to_string()
}

/// One request that went through the proxy, and what it was answered.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub action: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// Answered by the proxy: a canned fault, or the `AdminLinkProviderForUser` stand-in.
    pub by_proxy: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A fault the proxy serves instead of forwarding the next request.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub kind: String,
    pub retry_after: Option<String>,
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    aws: Aws,
    admin: Creds,
    records: Mutex<Vec<Recorded>>,
    faults: Mutex<VecDeque<Canned>>,
    link_lock: tokio::sync::Mutex<()>,
}

/// The recording proxy in front of moto (see the module docs).
pub struct Proxy {
    pub url: String,
    state: Arc<ProxyState>,
}

impl Proxy {
    pub async fn start(moto: &Moto, admin: &Creds) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: moto.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            aws: Aws::new(&moto.url),
            admin: admin.clone(),
            records: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
            link_lock: tokio::sync::Mutex::new(()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let handler_state = Arc::clone(&state);
        let endpoint = poem::endpoint::make(move |request: poem::Request| {
            let state = Arc::clone(&handler_state);
            async move { handle(state, request).await }
        });
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(endpoint).await;
        });
        Proxy { url, state }
    }

    pub fn inject(&self, fault: Canned) {
        self.state.faults.lock().unwrap().push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.state.records.lock().unwrap().clone()
    }

    pub fn records_of(&self, action: &str) -> Vec<Recorded> {
        self.records().into_iter().filter(|r| r.action == action).collect()
    }
}

fn respond(status: u16, headers: &[(String, String)], body: Vec<u8>) -> poem::Response {
    let mut builder = poem::Response::builder().status(poem::http::StatusCode::from_u16(status).unwrap());
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(body)
}

async fn handle(state: Arc<ProxyState>, request: poem::Request) -> poem::Response {
    let path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let method = request.method().clone();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = request.into_body().into_vec().await.unwrap_or_default();
    let action = headers
        .iter()
        .find(|(n, _)| n == "x-amz-target")
        .map(|(_, v)| v.rsplit('.').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let record = |status: u16, by_proxy: bool| {
        state.records.lock().unwrap().push(Recorded {
            action: action.clone(),
            headers: headers.clone(),
            body: body.clone(),
            status,
            by_proxy,
        })
    };

    let fault = state.faults.lock().unwrap().pop_front();
    if let Some(fault) = fault {
        record(fault.status, true);
        let mut answer_headers = vec![
            ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
            ("x-amzn-errortype".to_owned(), fault.kind.clone()),
        ];
        if let Some(retry_after) = &fault.retry_after {
            answer_headers.push(("retry-after".to_owned(), retry_after.clone()));
        }
        let body = json!({"__type": fault.kind, "message": "Rate exceeded"}).to_string().into_bytes();
        return respond(fault.status, &answer_headers, body);
    }

    // Forwarded untouched, Host included: moto checks the signature over the headers it receives.
    let mut forward = state.http.request(method, format!("{}{path}", state.upstream)).body(body.clone());
    for (name, value) in &headers {
        if !matches!(name.as_str(), "content-length" | "connection" | "transfer-encoding") {
            forward = forward.header(name.as_str(), value.as_str());
        }
    }
    let answer = forward.send().await.unwrap();
    let status = answer.status().as_u16();
    let answer_headers: Vec<(String, String)> = answer
        .headers()
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "content-length" | "connection" | "transfer-encoding"))
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let answer_body = answer.bytes().await.unwrap().to_vec();

    // moto authenticated and authorized the call (a 403 otherwise), then found no implementation.
    if action == "AdminLinkProviderForUser" && status == 500 {
        let (status, body) = stand_in_link(&state, &body).await;
        record(status, true);
        let headers = [("content-type".to_owned(), "application/x-amz-json-1.1".to_owned())];
        return respond(status, &headers, body);
    }
    record(status, false);
    respond(status, &answer_headers, answer_body)
}

/// What Cognito does on `AdminLinkProviderForUser` that the adapter relies on: the destination
/// must exist, and afterwards its `identities` lists the linked (provider, subject).
async fn stand_in_link(state: &ProxyState, body: &[u8]) -> (u16, Vec<u8>) {
    let request: Value = serde_json::from_slice(body).unwrap();
    let pool = request["UserPoolId"].as_str().unwrap();
    let username = request["DestinationUser"]["ProviderAttributeValue"].as_str().unwrap();
    let provider = request["SourceUser"]["ProviderName"].as_str().unwrap();
    let subject = request["SourceUser"]["ProviderAttributeValue"].as_str().unwrap();
    // Read-modify-write of one attribute: racing links must not lose each other's entries.
    let _guard = state.link_lock.lock().await;
    let (status, user) =
        state.aws.cognito(&state.admin, "AdminGetUser", json!({"UserPoolId": pool, "Username": username})).await;
    if status != 200 {
        return (status, user.to_string().into_bytes());
    }
    let mut identities: Vec<Value> = user["UserAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Name"] == "identities")
        .and_then(|a| serde_json::from_str(a["Value"].as_str().unwrap()).ok())
        .unwrap_or_default();
    if !identities.iter().any(|i| i["providerName"] == provider && i["userId"] == subject) {
        let created = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        identities.push(json!({"userId": subject, "providerName": provider, "providerType": "OIDC",
            "issuer": null, "primary": false, "dateCreated": created}));
        let attributes = json!([{"Name": "identities", "Value": Value::Array(identities).to_string()}]);
        state
            .aws
            .cognito_ok(
                &state.admin,
                "AdminUpdateUserAttributes",
                json!({"UserPoolId": pool, "Username": username, "UserAttributes": attributes}),
            )
            .await;
    }
    (200, b"{}".to_vec())
}

/// A TCP listener that accepts connections and never answers: a downstream that hangs.
pub fn silent_listener() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    url
}

/// moto with IAM authentication on, the adapter's principals, and the proxy.
pub struct World {
    pub moto: Moto,
    pub aws: Aws,
    pub proxy: Proxy,
    /// May do anything: the harness's own view.
    pub admin: Creds,
    /// An IAM user with exactly `iam-policy.json`.
    pub adapter_creds: Creds,
    /// A role with exactly `iam-policy.json`, for temporary credentials.
    pub adapter_role_arn: String,
}

/// An IAM user with one inline policy, and an access key for it.
pub async fn iam_user(aws: &Aws, creds: &Creds, name: &str, policy: &str) -> Creds {
    let iam = |params: Vec<(&'static str, String)>| {
        let aws = aws.clone();
        let creds = creds.clone();
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            aws.query(&creds, "iam", "us-east-1", &params).await
        }
    };
    iam(vec![("Action", "CreateUser".into()), ("Version", "2010-05-08".into()), ("UserName", name.into())]).await;
    iam(vec![
        ("Action", "PutUserPolicy".into()),
        ("Version", "2010-05-08".into()),
        ("UserName", name.into()),
        ("PolicyName", "policy".into()),
        ("PolicyDocument", policy.into()),
    ])
    .await;
    let key =
        iam(vec![("Action", "CreateAccessKey".into()), ("Version", "2010-05-08".into()), ("UserName", name.into())])
            .await;
    Creds { key: xml_value(&key, "AccessKeyId"), secret: xml_value(&key, "SecretAccessKey"), token: None }
}

impl World {
    pub async fn start() -> World {
        let moto = Moto::start();
        let aws = Aws::new(&moto.url);
        let boot = Creds::boot();
        let everything = json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
        .to_string();
        let admin = iam_user(&aws, &boot, "harness-admin", &everything).await;
        let adapter_creds = iam_user(&aws, &boot, "ssobridge-adapter", &adapter_policy()).await;
        // moto matches trust principals literally (an account root would not admit the user).
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:user/harness-admin"}, "Action": "sts:AssumeRole"}]})
        .to_string();
        let role = aws
            .query(
                &boot,
                "iam",
                "us-east-1",
                &[
                    ("Action", "CreateRole"),
                    ("Version", "2010-05-08"),
                    ("RoleName", "ssobridge-adapter"),
                    ("AssumeRolePolicyDocument", &trust),
                ],
            )
            .await;
        let adapter_role_arn = xml_value(&role, "Arn");
        aws.query(
            &boot,
            "iam",
            "us-east-1",
            &[
                ("Action", "PutRolePolicy"),
                ("Version", "2010-05-08"),
                ("RoleName", "ssobridge-adapter"),
                ("PolicyName", "policy"),
                ("PolicyDocument", &adapter_policy()),
            ],
        )
        .await;
        // From here on moto checks every request's signature and IAM permissions.
        let reset =
            reqwest::Client::new().post(format!("{}/moto-api/reset-auth", moto.url)).body("0").send().await.unwrap();
        assert!(reset.status().is_success(), "moto reset-auth: {}", reset.status());
        let proxy = Proxy::start(&moto, &admin).await;
        World { moto, aws, proxy, admin, adapter_creds, adapter_role_arn }
    }

    /// A user pool with `custom:org_id` and `custom:connection_id` (mutable), as the recipe says.
    pub async fn create_pool(&self, email_is_username: bool, custom_attributes: bool) -> String {
        let custom = |name: &str| {
            json!({"Name": name, "AttributeDataType": "String", "Mutable": true,
                "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "256"}})
        };
        let mut request = json!({"PoolName": format!("pool-{}", unique())});
        if custom_attributes {
            request["Schema"] = json!([custom("org_id"), custom("connection_id")]);
        }
        if email_is_username {
            request["UsernameAttributes"] = json!(["email"]);
        }
        let answer = self.aws.cognito_ok(&self.admin, "CreateUserPool", request).await;
        answer["UserPool"]["Id"].as_str().unwrap().to_owned()
    }

    /// Temporary credentials (with a session token) for the adapter's role.
    pub async fn assume_adapter_role(&self) -> Creds {
        let answer = self
            .aws
            .query(
                &self.admin,
                "sts",
                REGION,
                &[
                    ("Action", "AssumeRole"),
                    ("Version", "2011-06-15"),
                    ("RoleArn", &self.adapter_role_arn),
                    ("RoleSessionName", "ssobridge"),
                ],
            )
            .await;
        Creds {
            key: xml_value(&answer, "AccessKeyId"),
            secret: xml_value(&answer, "SecretAccessKey"),
            token: Some(xml_value(&answer, "SessionToken")),
        }
    }

    pub fn settings(&self, pool_id: &str, creds: &Creds, endpoint: &str, timeout_seconds: u64) -> CognitoSettings {
        CognitoSettings {
            region: REGION.into(),
            user_pool_id: pool_id.into(),
            identity_provider_name: PROVIDER.into(),
            access_key_id: creds.key.clone(),
            secret_access_key: creds.secret.clone(),
            session_token: creds.token.clone(),
            endpoint: Some(endpoint.into()),
            timeout_seconds: Some(timeout_seconds),
            create_groups: None,
        }
    }

    /// The adapter as the broker would run it, reaching moto through the proxy.
    pub fn adapter(&self, pool_id: &str, creds: &Creds) -> CognitoAdapter {
        CognitoAdapter::new(self.settings(pool_id, creds, &self.proxy.url, 5)).unwrap()
    }

    pub async fn get_user(&self, pool_id: &str, username: &str) -> Value {
        self.aws.cognito_ok(&self.admin, "AdminGetUser", json!({"UserPoolId": pool_id, "Username": username})).await
    }

    /// `AdminGetUser`'s answer, or `None` when the pool has no such user.
    pub async fn find_user(&self, pool_id: &str, username: &str) -> Option<Value> {
        let (status, answer) =
            self.aws.cognito(&self.admin, "AdminGetUser", json!({"UserPoolId": pool_id, "Username": username})).await;
        match status {
            200 => Some(answer),
            _ if answer["__type"].as_str().is_some_and(|t| t.ends_with("UserNotFoundException")) => None,
            _ => panic!("AdminGetUser {username}: {status} {answer}"),
        }
    }

    /// Every user of the pool whose email matches, case-insensitively (listing all, no filter).
    pub async fn usernames_with_email(&self, pool_id: &str, email: &str) -> Vec<String> {
        self.usernames_holding(pool_id, email, false).await
    }

    /// Every user of the pool whose email matches, case-insensitively, and is marked verified.
    pub async fn usernames_with_verified_email(&self, pool_id: &str, email: &str) -> Vec<String> {
        self.usernames_holding(pool_id, email, true).await
    }

    async fn usernames_holding(&self, pool_id: &str, email: &str, verified_only: bool) -> Vec<String> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = json!({"UserPoolId": pool_id, "Limit": 60});
            if let Some(token) = &token {
                request["PaginationToken"] = json!(token);
            }
            let answer = self.aws.cognito_ok(&self.admin, "ListUsers", request).await;
            for user in answer["Users"].as_array().unwrap() {
                let attributes = user["Attributes"].as_array().unwrap();
                let has_email = attributes.iter().any(|a| {
                    a["Name"] == "email" && a["Value"].as_str().is_some_and(|v| v.eq_ignore_ascii_case(email))
                });
                let verified = attributes.iter().any(|a| a["Name"] == "email_verified" && a["Value"] == "true");
                if has_email && (verified || !verified_only) {
                    found.push(user["Username"].as_str().unwrap().to_owned());
                }
            }
            match answer["PaginationToken"].as_str() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        found
    }
}

impl World {
    /// An app client that signs users in with their password through the Admin API, as an
    /// application's back end does.
    pub async fn create_app_client(&self, pool_id: &str) -> String {
        let answer = self
            .aws
            .cognito_ok(
                &self.admin,
                "CreateUserPoolClient",
                json!({"UserPoolId": pool_id, "ClientName": format!("app-{}", unique()),
                    "ExplicitAuthFlows": ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
            )
            .await;
        answer["UserPoolClient"]["ClientId"].as_str().unwrap().to_owned()
    }

    /// Gives the user a permanent password and signs it in; returns `AuthenticationResult`
    /// (`IdToken`, `AccessToken`, `RefreshToken`).
    pub async fn sign_in_with_password(&self, pool_id: &str, client_id: &str, username: &str) -> Value {
        let password = "Correct-horse-battery-9";
        self.aws
            .cognito_ok(
                &self.admin,
                "AdminSetUserPassword",
                json!({"UserPoolId": pool_id, "Username": username, "Password": password, "Permanent": true}),
            )
            .await;
        let answer = self
            .aws
            .cognito_ok(
                &self.admin,
                "AdminInitiateAuth",
                json!({"UserPoolId": pool_id, "ClientId": client_id, "AuthFlow": "ADMIN_USER_PASSWORD_AUTH",
                    "AuthParameters": {"USERNAME": username, "PASSWORD": password}}),
            )
            .await;
        answer["AuthenticationResult"].clone()
    }

    /// Trades a refresh token for new tokens; the error's `__type` when Cognito refuses.
    pub async fn refresh(&self, pool_id: &str, client_id: &str, refresh_token: &str) -> Result<Value, String> {
        let (status, answer) = self
            .aws
            .cognito(
                &self.admin,
                "AdminInitiateAuth",
                json!({"UserPoolId": pool_id, "ClientId": client_id, "AuthFlow": "REFRESH_TOKEN_AUTH",
                    "AuthParameters": {"REFRESH_TOKEN": refresh_token}}),
            )
            .await;
        match status {
            200 => Ok(answer["AuthenticationResult"].clone()),
            _ => Err(format!("{} {}", answer["__type"].as_str().unwrap_or("?"), answer["message"])),
        }
    }

    pub async fn create_group(&self, pool_id: &str, group: &str) {
        self.aws.cognito_ok(&self.admin, "CreateGroup", json!({"UserPoolId": pool_id, "GroupName": group})).await;
    }

    pub async fn add_to_group(&self, pool_id: &str, username: &str, group: &str) {
        self.aws
            .cognito_ok(
                &self.admin,
                "AdminAddUserToGroup",
                json!({"UserPoolId": pool_id, "Username": username, "GroupName": group}),
            )
            .await;
    }

    /// The user's groups as the pool lists them, sorted.
    pub async fn groups_of(&self, pool_id: &str, username: &str) -> Vec<String> {
        let answer = self
            .aws
            .cognito_ok(&self.admin, "AdminListGroupsForUser", json!({"UserPoolId": pool_id, "Username": username}))
            .await;
        let mut groups: Vec<String> =
            answer["Groups"].as_array().unwrap().iter().map(|g| g["GroupName"].as_str().unwrap().to_owned()).collect();
        groups.sort();
        groups
    }

    /// The pool's groups, sorted.
    pub async fn pool_groups(&self, pool_id: &str) -> Vec<String> {
        let answer = self.aws.cognito_ok(&self.admin, "ListGroups", json!({"UserPoolId": pool_id})).await;
        let mut groups: Vec<String> =
            answer["Groups"].as_array().unwrap().iter().map(|g| g["GroupName"].as_str().unwrap().to_owned()).collect();
        groups.sort();
        groups
    }
}

/// The claims of a JWT Cognito issued (read, not verified: the harness only looks).
pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    let mut bytes = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in payload.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => continue,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
        }
    }
    serde_json::from_slice(&bytes).unwrap()
}

/// The value of one attribute in an `AdminGetUser` answer.
pub fn attribute(user: &Value, name: &str) -> Option<String> {
    user["UserAttributes"].as_array()?.iter().find(|a| a["Name"] == name)?["Value"].as_str().map(str::to_owned)
}

#[allow(unused_imports)] // the e2e crate includes this harness without recording logs
pub use ssobridge_adapter_core::conformance::LogRecorder;
