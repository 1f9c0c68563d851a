//! A model of one Auth0 tenant's users behind the Management API endpoints the adapter calls,
//! served by poem on a loopback port. There is no Auth0 emulator; this model follows Auth0's
//! documented behaviour (and tests/fixtures/auth0-management.yaml, which Prism checks it
//! against in tests/spec.rs):
//!
//! - users are `{user_id, email, email_verified, identities[], app_metadata}`; the user an OIDC
//!   login makes is `oidc|CONNECTION|SUB` with identity `{provider: oidc, connection,
//!   user_id: "CONNECTION|SUB"}`, created by [`FakeTenant::login`] the way Auth0 does when it
//!   redeems the broker's code (the Management API cannot create such users);
//! - `users-by-email` matches the root email exactly (case-sensitive); search (`q`, v3) is a
//!   small Lucene subset (`field:"phrase"`, AND, OR, parentheses) and can be frozen to model
//!   its eventual consistency;
//! - linking (`POST /users/{primary}/identities`) finds the secondary as `provider|user_id`,
//!   moves its identities into the primary (with `profileData`), removes it, and answers 409
//!   when the primary already holds the identity, 400 when the secondary is gone;
//! - PATCH merges `app_metadata` at its first level (null removes a key) and sets `blocked`; a
//!   blocked user's login is refused ("user is blocked"), as Auth0 does;
//! - a login opens a session and issues a refresh token; `DELETE /users/{id}/sessions` and
//!   `/refresh-tokens` end them (202: Auth0 does it asynchronously, the model at once);
//!   `DELETE /users/{id}` answers 204 whether or not the user exists (Auth0 documents no 404);
//! - roles (RBAC) are tenant objects `{id, name}` assigned to users by id; `GET /roles`'s
//!   `name_filter` matches case-insensitively and as a substring (Auth0 does not document
//!   whether it is exact, so the model takes the loosest reading);
//! - tokens come from the client-credentials grant, expire, and carry scopes the endpoints
//!   check (401 / 403 with Auth0's error shape); faults (429 + headers, 5xx) can be queued.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::http::{Method, StatusCode};
use poem::listener::TcpAcceptor;
use poem::{handler, web::Data, Body, EndpointExt, Request, Response, Route, Server};
use serde_json::{json, Map, Value};
use ssobridge_adapter_core::Identity;
use tokio::time::Instant;

pub const DOMAIN: &str = "tenant.example.auth0.com";
pub const CLIENT_ID: &str = "m2m-client";
pub const CLIENT_SECRET: &str = "m2m-secret-value-never-logged";
pub const CONNECTION: &str = "ssobridge";
pub const ALL_SCOPES: &[&str] = &[
    "read:users",
    "update:users",
    "update:users_app_metadata",
    "delete:users",
    "delete:sessions",
    "delete:refresh_tokens",
    "read:roles",
    "read:role_members",
    "create:role_members",
    "delete:role_members",
];

/// Which endpoint a request hit, for counting and for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Token,
    Search,
    ByEmail,
    GetUser,
    PatchUser,
    Link,
    DeleteUser,
    DeleteSessions,
    DeleteRefreshTokens,
    UserRoles,
    AssignRoles,
    RemoveRoles,
    ListRoles,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Fault {
    pub fn rate_limited(headers: &[(&str, &str)]) -> Fault {
        Fault {
            status: 429,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: json!({"statusCode": 429, "error": "Too Many Requests", "message": "Global limit has been reached", "errorCode": "too_many_requests"}),
        }
    }

    pub fn server_error(status: u16) -> Fault {
        Fault {
            status,
            headers: Vec::new(),
            body: json!({"statusCode": status, "error": "Service Unavailable", "message": "Please try again", "errorCode": "unavailable"}),
        }
    }
}

#[derive(Debug, Clone)]
struct StoredUser {
    user_id: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    identities: Vec<Value>,
    app_metadata: Map<String, Value>,
    /// `None` until an administrator blocked or unblocked the user.
    blocked: Option<bool>,
    sessions: usize,
    refresh_tokens: usize,
    /// Ids of the Auth0 roles assigned to the user.
    roles: Vec<String>,
}

impl StoredUser {
    fn new(user_id: String, email: Option<String>, email_verified: bool, identity: Value) -> StoredUser {
        StoredUser {
            user_id,
            email,
            email_verified,
            name: None,
            identities: vec![identity],
            app_metadata: Map::new(),
            blocked: None,
            sessions: 0,
            refresh_tokens: 0,
            roles: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut user = json!({
            "user_id": self.user_id,
            "email_verified": self.email_verified,
            "identities": self.identities,
            "app_metadata": self.app_metadata,
        });
        if let Some(blocked) = self.blocked {
            user["blocked"] = json!(blocked);
        }
        if let Some(email) = &self.email {
            user["email"] = json!(email);
        }
        if let Some(name) = &self.name {
            user["name"] = json!(name);
        }
        user
    }

    fn holds(&self, provider: &str, connection: &str, identity_user_id: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i["provider"] == provider && i["connection"] == connection && i["user_id"] == identity_user_id)
    }

    /// The value of a searchable field (arrays for identities.*).
    fn field(&self, name: &str) -> Vec<String> {
        let from_identities =
            |key: &str| self.identities.iter().filter_map(|i| i[key].as_str().map(str::to_owned)).collect();
        match name {
            "user_id" => vec![self.user_id.clone()],
            "email" => self.email.iter().map(|e| e.to_lowercase()).collect(),
            "identities.user_id" => from_identities("user_id"),
            "identities.connection" => from_identities("connection"),
            "identities.provider" => from_identities("provider"),
            _ => Vec::new(),
        }
    }
}

struct State {
    users: Vec<StoredUser>,
    /// When set, search answers from this snapshot (Auth0's index lagging behind writes).
    frozen_search: Option<Vec<StoredUser>>,
    tokens: HashMap<String, (Instant, Vec<String>)>,
    token_lifetime: u64,
    token_delay: Duration,
    scopes: Vec<String>,
    faults: HashMap<Op, VecDeque<Fault>>,
    /// The next requests to an operation wait for each other (to line up a race).
    gates: HashMap<Op, (usize, Arc<tokio::sync::Barrier>)>,
    counts: HashMap<Op, usize>,
    /// `METHOD path?query` of every request, oldest first.
    log: Vec<String>,
    next: u64,
    /// Faults for whichever request comes next (but the token), after the per-operation ones.
    faults_any: VecDeque<Fault>,
    /// The tenant's Auth0 roles: (id, name).
    roles: Vec<(String, String)>,
}

/// The fake tenant; the server stops when this is dropped.
pub struct FakeTenant {
    pub base: String,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTenant {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn api_error(status: u16, error: &str, message: &str, code: &str) -> Response {
    reply(status, json!({"statusCode": status, "error": error, "message": message, "errorCode": code}))
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .content_type("application/json")
        .body(body.to_string())
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&raw[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

impl FakeTenant {
    pub async fn start() -> FakeTenant {
        let state = Arc::new(Mutex::new(State {
            users: Vec::new(),
            frozen_search: None,
            tokens: HashMap::new(),
            token_lifetime: 86_400,
            token_delay: Duration::ZERO,
            scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
            faults: HashMap::new(),
            gates: HashMap::new(),
            counts: HashMap::new(),
            log: Vec::new(),
            next: 0,
            faults_any: VecDeque::new(),
            roles: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake tenant");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
        let app = Route::new().at("/*path", handle).data(state.clone());
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        FakeTenant { base, state, server }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("tenant state")
    }

    pub fn set_token_lifetime(&self, seconds: u64) {
        self.state().token_lifetime = seconds;
    }

    pub fn set_token_delay(&self, delay: Duration) {
        self.state().token_delay = delay;
    }

    pub fn set_scopes(&self, scopes: &[&str]) {
        self.state().scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Makes every issued token invalid (as after a revocation or a key rotation).
    pub fn revoke_tokens(&self) {
        self.state().tokens.clear();
    }

    /// The next `n` requests to `op` get `fault` instead of an answer.
    pub fn fail_next(&self, op: Op, n: usize, fault: Fault) {
        let mut state = self.state();
        let queue = state.faults.entry(op).or_default();
        for _ in 0..n {
            queue.push_back(fault.clone());
        }
    }

    /// The next `n` Management API requests, whatever the operation, get `fault` (an outage).
    pub fn fail_any_next(&self, n: usize, fault: Fault) {
        let mut state = self.state();
        for _ in 0..n {
            state.faults_any.push_back(fault.clone());
        }
    }

    /// Ends every queued fault: the tenant answers normally again.
    pub fn clear_faults(&self) {
        let mut state = self.state();
        state.faults_any.clear();
        state.faults.clear();
    }

    /// The next `n` requests to `op` are answered only once all `n` have arrived: two racing
    /// sign-ins then both read the state before either writes.
    pub fn line_up(&self, op: Op, n: usize) {
        self.state().gates.insert(op, (n, Arc::new(tokio::sync::Barrier::new(n))));
    }

    pub fn count(&self, op: Op) -> usize {
        self.state().counts.get(&op).copied().unwrap_or(0)
    }

    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    /// Search keeps answering from the users as they are now, until [`FakeTenant::thaw_search`].
    pub fn freeze_search(&self) {
        let mut state = self.state();
        state.frozen_search = Some(state.users.clone());
    }

    pub fn thaw_search(&self) {
        self.state().frozen_search = None;
    }

    fn next_hex(state: &mut State) -> String {
        state.next += 1;
        format!("{:024x}", 0x5f7c_8ec7_c33c_6c00_0000_0000u128 + state.next as u128)
    }

    /// A database user (signed up with a password before SSO), email stored in lower case.
    pub fn create_database_user(&self, email: &str, verified: bool) -> String {
        let mut state = self.state();
        let id = Self::next_hex(&mut state);
        let user = StoredUser::new(
            format!("auth0|{id}"),
            Some(email.to_lowercase()),
            verified,
            json!({"connection": "Username-Password-Authentication", "user_id": id, "provider": "auth0", "isSocial": false}),
        );
        let user_id = user.user_id.clone();
        state.users.push(user);
        user_id
    }

    /// A social user; Auth0 keeps the email as the provider sent it.
    pub fn create_social_user(&self, email: &str, verified: bool) -> String {
        let mut state = self.state();
        let id = Self::next_hex(&mut state);
        let user = StoredUser::new(
            format!("google-oauth2|{id}"),
            Some(email.to_owned()),
            verified,
            json!({"connection": "google-oauth2", "user_id": id, "provider": "google-oauth2", "isSocial": true}),
        );
        let user_id = user.user_id.clone();
        state.users.push(user);
        user_id
    }

    /// The user holding `identity` (its own OIDC user, or the one it was linked into), if Auth0
    /// has met the identity at all.
    pub fn holder(&self, identity: &Identity) -> Option<String> {
        let identity_user_id = format!("{CONNECTION}|{}", identity.subject);
        self.state().users.iter().find(|u| u.holds("oidc", CONNECTION, &identity_user_id)).map(|u| u.user_id.clone())
    }

    /// What Auth0 does when it redeems the broker's code for `identity`: the user holding the
    /// identity signs in, or Auth0 creates `oidc|CONNECTION|SUB` from the ID token's claims.
    /// Returns the user id the application gets.
    pub fn login(&self, identity: &Identity) -> String {
        self.try_login(identity).expect("Auth0 signs the user in")
    }

    /// [`FakeTenant::login`], refused for a blocked user as Auth0 refuses it (`unauthorized`,
    /// "user is blocked"). A login opens a session with a refresh token.
    pub fn try_login(&self, identity: &Identity) -> Result<String, String> {
        let mut state = self.state();
        let identity_user_id = format!("{CONNECTION}|{}", identity.subject);
        let index = match state.users.iter().position(|u| u.holds("oidc", CONNECTION, &identity_user_id)) {
            Some(index) => index,
            None => {
                let mut user = StoredUser::new(
                    format!("oidc|{identity_user_id}"),
                    identity.email.clone(),
                    identity.email_verified,
                    json!({"connection": CONNECTION, "user_id": identity_user_id, "provider": "oidc", "isSocial": false}),
                );
                user.name = identity.name.clone();
                state.users.push(user);
                state.users.len() - 1
            }
        };
        let user = &mut state.users[index];
        if user.blocked == Some(true) {
            return Err("user is blocked".to_owned());
        }
        user.sessions += 1;
        user.refresh_tokens += 1;
        Ok(user.user_id.clone())
    }

    /// The user's open sessions and live refresh tokens.
    pub fn sessions_of(&self, user_id: &str) -> (usize, usize) {
        let state = self.state();
        let user = state.users.iter().find(|u| u.user_id == user_id).expect("user");
        (user.sessions, user.refresh_tokens)
    }

    /// An Auth0 role (RBAC) of the tenant; returns its id.
    pub fn create_role(&self, name: &str) -> String {
        let mut state = self.state();
        let id = format!("rol_{}", &Self::next_hex(&mut state)[8..]);
        state.roles.push((id.clone(), name.to_owned()));
        id
    }

    /// Assigns a role the way an administrator does in the dashboard.
    pub fn assign_role_directly(&self, user_id: &str, name: &str) {
        let mut state = self.state();
        let id = state.roles.iter().find(|(_, n)| n == name).expect("role").0.clone();
        let user = state.users.iter_mut().find(|u| u.user_id == user_id).expect("user");
        if !user.roles.contains(&id) {
            user.roles.push(id);
        }
    }

    /// The names of the Auth0 roles assigned to the user, sorted.
    pub fn role_names_of(&self, user_id: &str) -> Vec<String> {
        let state = self.state();
        let user = state.users.iter().find(|u| u.user_id == user_id).expect("user");
        let mut names: Vec<String> =
            state.roles.iter().filter(|(id, _)| user.roles.contains(id)).map(|(_, n)| n.clone()).collect();
        names.sort();
        names
    }

    /// Ids of every user whose root email equals `email`, ignoring case.
    pub fn users_with_email(&self, email: &str) -> Vec<String> {
        self.users_holding(email, false)
    }

    /// Ids of every user whose root email equals `email`, ignoring case, marked verified.
    pub fn users_with_verified_email(&self, email: &str) -> Vec<String> {
        self.users_holding(email, true)
    }

    fn users_holding(&self, email: &str, verified_only: bool) -> Vec<String> {
        let email = email.to_lowercase();
        self.state()
            .users
            .iter()
            .filter(|u| u.email.as_deref().map(str::to_lowercase).as_deref() == Some(email.as_str()))
            .filter(|u| u.email_verified || !verified_only)
            .map(|u| u.user_id.clone())
            .collect()
    }

    pub fn user(&self, user_id: &str) -> Option<Value> {
        self.state().users.iter().find(|u| u.user_id == user_id).map(StoredUser::to_json)
    }

    pub fn set_app_metadata(&self, user_id: &str, metadata: Value) {
        let mut state = self.state();
        let user = state.users.iter_mut().find(|u| u.user_id == user_id).expect("user");
        user.app_metadata = metadata.as_object().cloned().unwrap_or_default();
    }

    /// Links `secondary` into `primary` the way the Management API does (an administrator's
    /// or another tool's link).
    pub fn link_directly(&self, primary: &str, secondary: &str) {
        let mut state = self.state();
        let user = state.users.iter().find(|u| u.user_id == secondary).expect("secondary");
        let own = user.identities[0].clone();
        let body = json!({"provider": own["provider"], "user_id": own["user_id"]}).to_string();
        let response = link(&mut state, primary, body.as_bytes());
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    pub fn user_count(&self) -> usize {
        self.state().users.len()
    }
}

/// `field:"phrase"` terms with AND / OR and parentheses, as the adapter writes them.
mod lucene {
    #[derive(Debug, PartialEq)]
    pub enum Query {
        Term(String, String),
        And(Box<Query>, Box<Query>),
        Or(Box<Query>, Box<Query>),
    }

    #[derive(Debug, PartialEq)]
    enum Token {
        Term(String, String),
        And,
        Or,
        Open,
        Close,
    }

    fn tokens(q: &str) -> Result<Vec<Token>, String> {
        let chars: Vec<char> = q.chars().collect();
        let mut i = 0;
        let mut out = Vec::new();
        while i < chars.len() {
            match chars[i] {
                ' ' => i += 1,
                '(' => {
                    out.push(Token::Open);
                    i += 1
                }
                ')' => {
                    out.push(Token::Close);
                    i += 1
                }
                _ => {
                    let start = i;
                    while i < chars.len() && !matches!(chars[i], ' ' | ':' | '(' | ')') {
                        i += 1;
                    }
                    let word: String = chars[start..i].iter().collect();
                    if i < chars.len() && chars[i] == ':' {
                        i += 1;
                        if chars.get(i) != Some(&'"') {
                            return Err(format!("only quoted values are modelled: {q}"));
                        }
                        i += 1;
                        let mut value = String::new();
                        loop {
                            match chars.get(i) {
                                None => return Err("unterminated phrase".into()),
                                Some('\\') => {
                                    value.push(*chars.get(i + 1).ok_or("dangling escape")?);
                                    i += 2;
                                }
                                Some('"') => {
                                    i += 1;
                                    break;
                                }
                                Some(c) => {
                                    value.push(*c);
                                    i += 1;
                                }
                            }
                        }
                        out.push(Token::Term(word, value));
                    } else if word == "AND" {
                        out.push(Token::And);
                    } else if word == "OR" {
                        out.push(Token::Or);
                    } else {
                        return Err(format!("unexpected word {word}"));
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn parse(q: &str) -> Result<Query, String> {
        let tokens = tokens(q)?;
        let mut pos = 0;
        let query = or(&tokens, &mut pos)?;
        if pos != tokens.len() {
            return Err("trailing tokens".into());
        }
        Ok(query)
    }

    fn or(t: &[Token], pos: &mut usize) -> Result<Query, String> {
        let mut left = and(t, pos)?;
        while t.get(*pos) == Some(&Token::Or) {
            *pos += 1;
            left = Query::Or(Box::new(left), Box::new(and(t, pos)?));
        }
        Ok(left)
    }

    fn and(t: &[Token], pos: &mut usize) -> Result<Query, String> {
        let mut left = atom(t, pos)?;
        while t.get(*pos) == Some(&Token::And) {
            *pos += 1;
            left = Query::And(Box::new(left), Box::new(atom(t, pos)?));
        }
        Ok(left)
    }

    fn atom(t: &[Token], pos: &mut usize) -> Result<Query, String> {
        match t.get(*pos) {
            Some(Token::Term(f, v)) => {
                *pos += 1;
                Ok(Query::Term(f.clone(), v.clone()))
            }
            Some(Token::Open) => {
                *pos += 1;
                let inner = or(t, pos)?;
                if t.get(*pos) != Some(&Token::Close) {
                    return Err("missing )".into());
                }
                *pos += 1;
                Ok(inner)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

fn matches(user: &StoredUser, query: &lucene::Query) -> bool {
    match query {
        lucene::Query::Term(field, value) => {
            let value = if field == "email" { value.to_lowercase() } else { value.clone() };
            user.field(field).contains(&value)
        }
        lucene::Query::And(a, b) => matches(user, a) && matches(user, b),
        lucene::Query::Or(a, b) => matches(user, a) || matches(user, b),
    }
}

#[handler]
async fn handle(req: &Request, body: Body, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().clone();
    let user_path = path.strip_prefix("/api/v2/users/").map(|rest| rest.split('/').collect::<Vec<_>>());
    let op = match (&method, path.as_str(), user_path.as_deref()) {
        (&Method::POST, "/oauth/token", _) => Op::Token,
        (&Method::GET, "/api/v2/users", _) => Op::Search,
        (&Method::GET, "/api/v2/users-by-email", _) => Op::ByEmail,
        (&Method::GET, "/api/v2/roles", _) => Op::ListRoles,
        (&Method::POST, _, Some([_, "identities"])) => Op::Link,
        (&Method::GET, _, Some([_])) => Op::GetUser,
        (&Method::PATCH, _, Some([_])) => Op::PatchUser,
        (&Method::DELETE, _, Some([_])) => Op::DeleteUser,
        (&Method::DELETE, _, Some([_, "sessions"])) => Op::DeleteSessions,
        (&Method::DELETE, _, Some([_, "refresh-tokens"])) => Op::DeleteRefreshTokens,
        (&Method::GET, _, Some([_, "roles"])) => Op::UserRoles,
        (&Method::POST, _, Some([_, "roles"])) => Op::AssignRoles,
        (&Method::DELETE, _, Some([_, "roles"])) => Op::RemoveRoles,
        _ => return api_error(404, "Not Found", "no such endpoint in the fake tenant", "not_found"),
    };
    // The user id, percent-decoded: the first segment after /api/v2/users/.
    let user_id =
        user_path.as_ref().and_then(|segments| segments.first()).map(|raw| percent_decode(raw)).unwrap_or_default();
    let body = body.into_vec().await.unwrap_or_default();
    let (fault, delay, gate) = {
        let mut s = state.lock().expect("state");
        *s.counts.entry(op).or_default() += 1;
        s.log.push(format!("{method} {path}{}", query.as_deref().map(|q| format!("?{q}")).unwrap_or_default()));
        let fault = match s.faults.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(fault) => Some(fault),
            None if op != Op::Token => s.faults_any.pop_front(),
            None => None,
        };
        let gate = match s.gates.get_mut(&op) {
            Some((left, barrier)) if *left > 0 => {
                *left -= 1;
                Some(barrier.clone())
            }
            _ => None,
        };
        (fault, if op == Op::Token { s.token_delay } else { Duration::ZERO }, gate)
    };
    if let Some(gate) = gate {
        gate.wait().await;
    }
    if let Some(fault) = fault {
        let mut response = reply(fault.status, fault.body);
        for (name, value) in fault.headers {
            response.headers_mut().insert(
                poem::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                poem::http::HeaderValue::from_str(&value).expect("header value"),
            );
        }
        return response;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().expect("state");
    if op == Op::Token {
        return token(&mut s, &body);
    }
    // Bearer token, then the scope the operation needs (Auth0's 401 / 403 answers).
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let scopes = match bearer.and_then(|t| s.tokens.get(&t).cloned()) {
        Some((expires, scopes)) if Instant::now() < expires => scopes,
        _ => return api_error(401, "Unauthorized", "Invalid token.", "invalid_token"),
    };
    // (scopes, whether all of them are needed) as Auth0's 403 answers state them.
    let (needed, all): (&[&str], bool) = match op {
        Op::Search | Op::ByEmail | Op::GetUser => (&["read:users"], false),
        Op::PatchUser => (&["update:users", "update:users_app_metadata"], false),
        Op::Link => (&["update:users"], false),
        Op::DeleteUser => (&["delete:users"], false),
        Op::DeleteSessions => (&["delete:sessions"], false),
        Op::DeleteRefreshTokens => (&["delete:refresh_tokens"], false),
        Op::UserRoles => (&["read:users", "read:roles", "read:role_members"], true),
        Op::ListRoles => (&["read:roles"], false),
        Op::AssignRoles => (&["update:users", "create:role_members"], false),
        Op::RemoveRoles => (&["update:users", "delete:role_members"], false),
        Op::Token => (&[], false),
    };
    let granted = |n: &&str| scopes.iter().any(|s| s == n);
    if !(if all { needed.iter().all(granted) } else { needed.iter().any(granted) }) {
        return api_error(
            403,
            "Forbidden",
            &format!("Insufficient scope, expected {} of: {}", if all { "all" } else { "any" }, needed.join(",")),
            "insufficient_scope",
        );
    }
    let params = query_map(query.as_deref());
    match op {
        Op::Search => search(&s, &params),
        Op::ByEmail => {
            let Some(email) = params.get("email") else {
                return api_error(
                    400,
                    "Bad Request",
                    "Query validation error: email is required",
                    "invalid_query_string",
                );
            };
            let users: Vec<Value> = s
                .users
                .iter()
                .filter(|u| u.email.as_deref() == Some(email.as_str()))
                .map(StoredUser::to_json)
                .collect();
            reply(200, Value::Array(users))
        }
        Op::GetUser => {
            let id = user_id;
            match s.users.iter().find(|u| u.user_id == id) {
                Some(user) => reply(200, user.to_json()),
                None => api_error(404, "Not Found", "The user does not exist.", "inexistent_user"),
            }
        }
        Op::PatchUser => {
            let id = user_id;
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return api_error(400, "Bad Request", "Invalid request payload JSON format", "invalid_body");
            };
            let blocked = match patch.get("blocked") {
                None => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return api_error(400, "Bad Request", "Payload validation error: blocked", "invalid_body"),
            };
            let Some(user) = s.users.iter_mut().find(|u| u.user_id == id) else {
                return api_error(404, "Not Found", "The user does not exist.", "inexistent_user");
            };
            if blocked.is_some() {
                user.blocked = blocked;
            }
            if let Some(changes) = patch.get("app_metadata").and_then(Value::as_object) {
                for (key, value) in changes {
                    if value.is_null() {
                        user.app_metadata.remove(key);
                    } else {
                        user.app_metadata.insert(key.clone(), value.clone());
                    }
                }
            }
            reply(200, user.to_json())
        }
        Op::Link => link(&mut s, &user_id, &body),
        Op::DeleteUser => {
            s.users.retain(|u| u.user_id != user_id);
            empty(204)
        }
        Op::DeleteSessions | Op::DeleteRefreshTokens => {
            let Some(user) = s.users.iter_mut().find(|u| u.user_id == user_id) else {
                return api_error(404, "Not Found", "User not found", "inexistent_user");
            };
            if op == Op::DeleteSessions {
                user.sessions = 0;
            } else {
                user.refresh_tokens = 0;
            }
            empty(202)
        }
        Op::UserRoles => {
            let Some(user) = s.users.iter().find(|u| u.user_id == user_id) else {
                return api_error(404, "Not Found", "User not found.", "inexistent_user");
            };
            let held: Vec<Value> = s
                .roles
                .iter()
                .filter(|(id, _)| user.roles.contains(id))
                .map(|(id, name)| json!({"id": id, "name": name, "description": ""}))
                .collect();
            reply(200, Value::Array(page(held, &params)))
        }
        Op::ListRoles => {
            let filter = params.get("name_filter").map(|f| f.to_lowercase()).unwrap_or_default();
            let roles: Vec<Value> = s
                .roles
                .iter()
                .filter(|(_, name)| name.to_lowercase().contains(&filter))
                .map(|(id, name)| json!({"id": id, "name": name, "description": ""}))
                .collect();
            reply(200, Value::Array(page(roles, &params)))
        }
        Op::AssignRoles | Op::RemoveRoles => {
            let ids = match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(body)) if body.len() == 1 => match body.get("roles") {
                    Some(Value::Array(ids)) if !ids.is_empty() => {
                        ids.iter().filter_map(Value::as_str).map(str::to_owned).collect::<Vec<_>>()
                    }
                    _ => return api_error(400, "Bad Request", "Payload validation error: roles", "invalid_body"),
                },
                _ => return api_error(400, "Bad Request", "Payload validation error: roles", "invalid_body"),
            };
            if ids.iter().any(|id| !s.roles.iter().any(|(known, _)| known == id)) {
                return api_error(400, "Bad Request", "One or more of the roles do not exist.", "invalid_body");
            }
            let Some(user) = s.users.iter_mut().find(|u| u.user_id == user_id) else {
                return api_error(404, "Not Found", "The user does not exist.", "inexistent_user");
            };
            if op == Op::AssignRoles {
                for id in ids {
                    if !user.roles.contains(&id) {
                        user.roles.push(id);
                    }
                }
            } else {
                user.roles.retain(|id| !ids.contains(id));
            }
            empty(204)
        }
        Op::Token => unreachable!(),
    }
}

/// An answer without a body (202, 204).
fn empty(status: u16) -> Response {
    Response::builder().status(StatusCode::from_u16(status).expect("status")).finish()
}

/// `page` / `per_page` (default 50, at most 100) of a list, as Auth0 pages.
fn page(items: Vec<Value>, params: &HashMap<String, String>) -> Vec<Value> {
    let per_page = params.get("per_page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(50).clamp(1, 100);
    let page = params.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
    items.into_iter().skip(page * per_page).take(per_page).collect()
}

fn token(s: &mut State, body: &[u8]) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return reply(400, json!({"error": "invalid_request", "error_description": "Unsupported grant type"}));
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return reply(401, json!({"error": "access_denied", "error_description": "Unauthorized"}));
    }
    let audience = format!("https://{DOMAIN}/api/v2/");
    if field("audience") != Some(audience.as_str()) {
        return reply(
            403,
            json!({"error": "access_denied", "error_description": format!("Service not enabled within domain: {}", field("audience").unwrap_or(""))}),
        );
    }
    s.next += 1;
    let token = format!("mgmt-token-{}", s.next);
    let lifetime = s.token_lifetime;
    s.tokens.insert(token.clone(), (Instant::now() + Duration::from_secs(lifetime), s.scopes.clone()));
    reply(
        200,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": s.scopes.join(" ")}),
    )
}

fn search(s: &State, params: &HashMap<String, String>) -> Response {
    if params.get("search_engine").map(String::as_str) != Some("v3") {
        return api_error(400, "Bad Request", "You are not allowed to use search_engine=v1.", "invalid_query_string");
    }
    let Some(q) = params.get("q") else {
        return api_error(400, "Bad Request", "q is required", "invalid_query_string");
    };
    let query = match lucene::parse(q) {
        Ok(query) => query,
        Err(e) => return api_error(400, "Bad Request", &format!("Invalid query: {e}"), "invalid_query_string"),
    };
    let users = s.frozen_search.as_ref().unwrap_or(&s.users);
    reply(200, Value::Array(users.iter().filter(|u| matches(u, &query)).map(StoredUser::to_json).collect()))
}

fn link(s: &mut State, primary_id: &str, body: &[u8]) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return api_error(400, "Bad Request", "Invalid request payload JSON format", "invalid_body");
    };
    if body.keys().any(|k| !matches!(k.as_str(), "provider" | "user_id" | "connection_id")) {
        return api_error(
            400,
            "Bad Request",
            "Payload validation error: 'Additional properties not allowed'",
            "invalid_body",
        );
    }
    let (Some(provider), Some(user_id)) = (body.get("provider").and_then(Value::as_str), body.get("user_id")) else {
        return api_error(
            400,
            "Bad Request",
            "Payload validation error: provider and user_id are required",
            "invalid_body",
        );
    };
    let user_id = match user_id {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return api_error(400, "Bad Request", "Payload validation error: user_id", "invalid_body"),
    };
    let Some(primary_index) = s.users.iter().position(|u| u.user_id == primary_id) else {
        return api_error(400, "Bad Request", "Linking to an inexistent identity is not allowed.", "invalid_uri");
    };
    let secondary_id = format!("{provider}|{user_id}");
    if secondary_id == primary_id {
        return api_error(400, "Bad Request", "Main identity and the new one are the same.", "invalid_body");
    }
    if s.users[primary_index].identities.iter().any(|i| i["provider"] == provider && i["user_id"] == user_id) {
        return api_error(409, "Conflict", "Specified identity already exists.", "identity_conflict");
    }
    let Some(secondary_index) = s.users.iter().position(|u| u.user_id == secondary_id) else {
        return api_error(400, "Bad Request", "Provided secondary account not found.", "invalid_body");
    };
    let secondary = s.users.remove(secondary_index);
    let primary = s.users.iter_mut().find(|u| u.user_id == primary_id).expect("primary still there");
    for (n, mut identity) in secondary.identities.into_iter().enumerate() {
        if n == 0 {
            // The secondary's own profile travels with its identity (Auth0: profileData).
            let mut profile = Map::new();
            if let Some(email) = &secondary.email {
                profile.insert("email".into(), json!(email));
            }
            profile.insert("email_verified".into(), json!(secondary.email_verified));
            if let Some(name) = &secondary.name {
                profile.insert("name".into(), json!(name));
            }
            identity["profileData"] = Value::Object(profile);
        }
        primary.identities.push(identity);
    }
    reply(201, Value::Array(primary.identities.clone()))
}
