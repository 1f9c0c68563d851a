//! `/admin/clients`: register, inspect, change and remove downstream clients.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::text::{plain, plain_all, plain_patch, Text};
use super::{
    audit, encode_cursor, problem, unavailable, AdminToken, FieldError, Problem, Role, Tag, DEFAULT_PAGE, MAX_PAGE,
};
use crate::clients::ClientRecord;
use crate::model::{
    AdapterKind, ClaimMapping, ClientSpec, Fallback, FieldProblem, Rules, SubjectMode, TokenAuthMethod,
};
use crate::state::AppState;
use crate::tokens::{hash_secret, random_token, sha256_hex, SigningAlgorithm};

pub struct ClientsApi {
    pub state: Arc<AppState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Adapter {
    None,
    Auth0,
    Cognito,
    Firebase,
}

/// The JWS algorithm of the client's ID tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum IdTokenAlg {
    #[oai(rename = "RS256")]
    Rs256,
    #[oai(rename = "PS256")]
    Ps256,
    /// Needs an EC P-256 signing key (`signing.ec_key_file`, or one rotated in).
    #[oai(rename = "ES256")]
    Es256,
}

impl From<SigningAlgorithm> for IdTokenAlg {
    fn from(alg: SigningAlgorithm) -> IdTokenAlg {
        match alg {
            SigningAlgorithm::Rs256 => IdTokenAlg::Rs256,
            SigningAlgorithm::Ps256 => IdTokenAlg::Ps256,
            SigningAlgorithm::Es256 => IdTokenAlg::Es256,
        }
    }
}

impl From<IdTokenAlg> for SigningAlgorithm {
    fn from(alg: IdTokenAlg) -> SigningAlgorithm {
        match alg {
            IdTokenAlg::Rs256 => SigningAlgorithm::Rs256,
            IdTokenAlg::Ps256 => SigningAlgorithm::Ps256,
            IdTokenAlg::Es256 => SigningAlgorithm::Es256,
        }
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AuthMethod {
    /// The generated secret, in the Authorization header (the form is accepted too).
    ClientSecretBasic,
    /// The generated secret, in the form body (the Authorization header is accepted too).
    ClientSecretPost,
    /// A JWT signed with a key from `jwks` or `jwks_uri` (RFC 7523); no secret.
    PrivateKeyJwt,
}

impl From<TokenAuthMethod> for AuthMethod {
    fn from(method: TokenAuthMethod) -> AuthMethod {
        match method {
            TokenAuthMethod::ClientSecretBasic => AuthMethod::ClientSecretBasic,
            TokenAuthMethod::ClientSecretPost => AuthMethod::ClientSecretPost,
            TokenAuthMethod::PrivateKeyJwt => AuthMethod::PrivateKeyJwt,
        }
    }
}

impl From<AuthMethod> for TokenAuthMethod {
    fn from(method: AuthMethod) -> TokenAuthMethod {
        match method {
            AuthMethod::ClientSecretBasic => TokenAuthMethod::ClientSecretBasic,
            AuthMethod::ClientSecretPost => TokenAuthMethod::ClientSecretPost,
            AuthMethod::PrivateKeyJwt => TokenAuthMethod::PrivateKeyJwt,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Subject {
    /// An opaque per-client hash of the upstream subject (the default).
    Pairwise,
    /// The upstream subject unchanged.
    Upstream,
}

/// Per-client claim rewriting.
#[derive(Debug, Clone, Default, Object)]
pub struct Claims {
    /// `from: to`: the claim `from` is issued as `to`.
    #[oai(default)]
    pub rename: BTreeMap<String, String>,
    /// Claims removed.
    #[oai(default)]
    pub drop: Vec<String>,
    /// Static claims added to every token.
    #[oai(default)]
    pub add: BTreeMap<String, serde_json::Value>,
}

/// A registered client. The secret is never returned after creation or rotation.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Client {
    pub client_id: String,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub adapter: Adapter,
    pub subject: Subject,
    pub require_pkce: bool,
    pub claims: Claims,
    #[oai(skip_serializing_if_is_none)]
    pub default_organization_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub default_connection_id: Option<String>,
    /// `pass`, `deny`, or the domain of a route.
    pub fallback: String,
    /// The upstream organizations the client's users may come from; empty: any the routes
    /// allow. A login that ends in another organization is refused.
    pub allowed_organizations: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    pub initiate_login_uri: Option<String>,
    pub id_token_signed_response_alg: IdTokenAlg,
    pub token_endpoint_auth_method: AuthMethod,
    #[oai(skip_serializing_if_is_none)]
    pub jwks_uri: Option<String>,
    /// The client's public keys (a JWK Set), for `private_key_jwt`.
    #[oai(skip_serializing_if_is_none)]
    pub jwks: Option<serde_json::Value>,
    /// `config` (seeded from the file at every start: the file wins) or `api`.
    pub source: String,
}

impl poem_openapi::types::Example for Client {
    fn example() -> Self {
        client_example()
    }
}

fn client_example() -> Client {
    Client {
        client_id: "auth0-prod".into(),
        name: Some("Acme (Auth0)".into()),
        redirect_uris: vec!["https://acme.us.auth0.com/login/callback".into()],
        adapter: Adapter::None,
        subject: Subject::Pairwise,
        require_pkce: false,
        claims: Claims::default(),
        default_organization_id: None,
        default_connection_id: None,
        fallback: "pass".into(),
        allowed_organizations: vec![],
        initiate_login_uri: None,
        id_token_signed_response_alg: IdTokenAlg::Rs256,
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        jwks_uri: None,
        jwks: None,
        source: "api".into(),
    }
}

/// A new client. The server generates the secret and returns it once.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ClientCreate {
    /// Generated when absent.
    #[oai(nullable, validator(pattern = "^[A-Za-z0-9._-]{1,128}$"))]
    pub client_id: Option<Text>,
    #[oai(nullable, validator(max_length = 200))]
    pub name: Option<Text>,
    /// Exact URIs (https, or http on loopback), no fragment.
    #[oai(validator(min_items = 1, max_items = 20, max_length = 2000))]
    pub redirect_uris: Vec<Text>,
    #[oai(nullable)]
    pub adapter: Option<Adapter>,
    #[oai(nullable)]
    pub subject: Option<Subject>,
    #[oai(nullable)]
    pub require_pkce: Option<bool>,
    #[oai(nullable)]
    pub claims: Option<Claims>,
    #[oai(nullable)]
    pub default_organization_id: Option<Text>,
    #[oai(nullable)]
    pub default_connection_id: Option<Text>,
    #[oai(nullable)]
    pub fallback: Option<Text>,
    /// Empty or absent: any organization the routes allow.
    #[oai(nullable, validator(max_items = 100, max_length = 128))]
    pub allowed_organizations: Option<Vec<Text>>,
    #[oai(nullable)]
    pub initiate_login_uri: Option<Text>,
    /// `RS256` when absent.
    #[oai(nullable)]
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    /// `client_secret_basic` when absent. A `private_key_jwt` client gets no secret.
    #[oai(nullable)]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// https (http only on loopback); `private_key_jwt` only, or `jwks`.
    #[oai(nullable, validator(max_length = 2000))]
    pub jwks_uri: Option<Text>,
    /// A JWK Set of public keys; `private_key_jwt` only, or `jwks_uri`.
    #[oai(nullable)]
    pub jwks: Option<serde_json::Value>,
}

impl poem_openapi::types::Example for ClientCreate {
    fn example() -> Self {
        create_example()
    }
}

fn create_example() -> ClientCreate {
    ClientCreate {
        client_id: Some("auth0-prod".into()),
        name: Some("Acme (Auth0)".into()),
        redirect_uris: vec!["https://acme.us.auth0.com/login/callback".into()],
        adapter: None,
        subject: None,
        require_pkce: None,
        claims: None,
        default_organization_id: None,
        default_connection_id: None,
        fallback: None,
        allowed_organizations: None,
        initiate_login_uri: None,
        id_token_signed_response_alg: None,
        token_endpoint_auth_method: None,
        jwks_uri: None,
        jwks: None,
    }
}

/// A partial update (JSON merge patch semantics: `null` clears an optional field).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ClientPatch {
    #[oai(nullable, validator(max_length = 200))]
    pub name: MaybeUndefined<Text>,
    #[oai(nullable, validator(min_items = 1, max_items = 20, max_length = 2000))]
    pub redirect_uris: Option<Vec<Text>>,
    #[oai(nullable)]
    pub adapter: Option<Adapter>,
    #[oai(nullable)]
    pub subject: Option<Subject>,
    #[oai(nullable)]
    pub require_pkce: Option<bool>,
    #[oai(nullable)]
    pub claims: Option<Claims>,
    #[oai(nullable)]
    pub default_organization_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub default_connection_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub fallback: Option<Text>,
    #[oai(nullable, validator(max_items = 100, max_length = 128))]
    pub allowed_organizations: Option<Vec<Text>>,
    #[oai(nullable)]
    pub initiate_login_uri: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub id_token_signed_response_alg: Option<IdTokenAlg>,
    #[oai(nullable)]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    #[oai(nullable, validator(max_length = 2000))]
    pub jwks_uri: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub jwks: MaybeUndefined<serde_json::Value>,
}

impl poem_openapi::types::Example for ClientPatch {
    fn example() -> Self {
        patch_example()
    }
}

fn patch_example() -> ClientPatch {
    ClientPatch {
        name: MaybeUndefined::Value("Acme".into()),
        redirect_uris: None,
        adapter: None,
        subject: None,
        require_pkce: Some(true),
        claims: None,
        default_organization_id: MaybeUndefined::Undefined,
        default_connection_id: MaybeUndefined::Undefined,
        fallback: None,
        allowed_organizations: None,
        initiate_login_uri: MaybeUndefined::Undefined,
        id_token_signed_response_alg: None,
        token_endpoint_auth_method: None,
        jwks_uri: MaybeUndefined::Undefined,
        jwks: MaybeUndefined::Undefined,
    }
}

/// A client with its secret, shown this once.
#[derive(Debug, Clone, Object)]
pub struct ClientWithSecret {
    pub client: Client,
    /// Store it now: it cannot be read again, only rotated. Absent for `private_key_jwt`
    /// clients, which have none.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct ClientPage {
    pub items: Vec<Client>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ListResponse {
    #[oai(status = 200)]
    Ok(Json<ClientPage>),
    /// Bad query parameters.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// No or invalid admin token.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The store is unreachable.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request and returned at once
pub enum CreateResponse {
    /// Created; the secret is in the body, the resource at `Location`.
    #[oai(status = 201)]
    Created(Json<ClientWithSecret>, #[oai(header = "Location")] String, #[oai(header = "ETag")] String),
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// The token is read-only.
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// A client with this id exists.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    /// The request body is too large.
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    /// Invalid fields; `errors` points at each.
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request and returned at once
pub enum GetResponse {
    #[oai(status = 200)]
    Ok(Json<Client>, #[oai(header = "ETag")] String),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request and returned at once
pub enum UpdateResponse {
    #[oai(status = 200)]
    Ok(Json<Client>, #[oai(header = "ETag")] String),
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The `If-Match` ETag is stale: someone changed the client since you read it.
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    /// `If-Match` is required.
    #[oai(status = 428, content_type = "application/problem+json")]
    PreconditionRequired(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per request and returned at once
pub enum SecretResponse {
    /// The new secret, shown this once; the old one stops working at once.
    #[oai(status = 200)]
    Ok(Json<ClientWithSecret>, #[oai(header = "ETag")] String),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The client authenticates with `private_key_jwt` and has no secret.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    #[oai(status = 204)]
    Deleted,
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

pub fn etag(bytes: &[u8]) -> String {
    format!("\"{}\"", &sha256_hex(&String::from_utf8_lossy(bytes))[..16])
}

pub fn etag_matches(if_match: &str, current: &str) -> bool {
    if_match.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == current)
}

impl From<&ClientRecord> for Client {
    fn from(r: &ClientRecord) -> Client {
        Client {
            client_id: r.client_id.clone(),
            name: r.name.clone(),
            redirect_uris: r.redirect_uris.clone(),
            adapter: match r.adapter {
                AdapterKind::None => Adapter::None,
                AdapterKind::Auth0 => Adapter::Auth0,
                AdapterKind::Cognito => Adapter::Cognito,
                AdapterKind::Firebase => Adapter::Firebase,
            },
            subject: match r.subject {
                SubjectMode::Pairwise => Subject::Pairwise,
                SubjectMode::Upstream => Subject::Upstream,
            },
            require_pkce: r.require_pkce,
            claims: Claims { rename: r.claims.rename.clone(), drop: r.claims.drop.clone(), add: r.claims.add.clone() },
            default_organization_id: r.default_organization_id.clone(),
            default_connection_id: r.default_connection_id.clone(),
            fallback: r.fallback.as_str().to_owned(),
            allowed_organizations: r.allowed_organizations.clone(),
            initiate_login_uri: r.initiate_login_uri.clone(),
            id_token_signed_response_alg: r.id_token_signed_response_alg.into(),
            token_endpoint_auth_method: r.token_endpoint_auth_method.into(),
            jwks_uri: r.jwks_uri.clone(),
            jwks: r.jwks.clone(),
            source: r.source.clone(),
        }
    }
}

fn adapter_kind(a: Adapter) -> AdapterKind {
    match a {
        Adapter::None => AdapterKind::None,
        Adapter::Auth0 => AdapterKind::Auth0,
        Adapter::Cognito => AdapterKind::Cognito,
        Adapter::Firebase => AdapterKind::Firebase,
    }
}

fn subject_mode(s: Subject) -> SubjectMode {
    match s {
        Subject::Pairwise => SubjectMode::Pairwise,
        Subject::Upstream => SubjectMode::Upstream,
    }
}

/// Every invalid field of a record, as JSON Pointers. `algorithms`: what the key ring signs;
/// `allow_private_networks`: `outbound.allow_private_networks`.
fn validate(record: &ClientRecord, algorithms: &[SigningAlgorithm], allow_private_networks: bool) -> Vec<FieldError> {
    // Adapter credentials live in the config file, so only config clients can have one.
    let rules =
        Rules { signing_algorithms: algorithms, allow_private_networks, adapter_settings: record.source == "config" };
    record
        .problems(&rules)
        .into_iter()
        .map(|FieldProblem { field, index, message }| FieldError {
            pointer: match index {
                Some(i) => format!("/{field}/{i}"),
                None => format!("/{field}"),
            },
            detail: message,
        })
        .collect()
}

fn parse_fallback(value: &str) -> Result<Fallback, FieldError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|e| FieldError { pointer: "/fallback".into(), detail: e.to_string() })
}

fn record_json(record: &ClientRecord) -> serde_json::Value {
    // The secret hash is not a secret to reverse, but it is a credential check value: keep
    // it out of audit lines all the same.
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("secret_hash");
    }
    value
}

#[OpenApi(tag = "Tag::Clients")]
impl ClientsApi {
    /// List clients
    ///
    /// Sorted by `client_id`; `q` filters by a `client_id` prefix.
    #[oai(path = "/clients", method = "get")]
    async fn list(
        &self,
        _auth: AdminToken,
        /// Page size, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// From a previous page's `next_cursor`.
        cursor: Query<Option<String>>,
        /// Only clients whose `client_id` starts with this.
        q: Query<Option<String>>,
    ) -> ListResponse {
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return ListResponse::BadRequest(problem(400, "limit must be between 1 and 200"));
        }
        let after = cursor.0.as_deref().filter(|c| !c.is_empty()).map(str::to_owned);
        let records = match self.state.clients.list().await {
            Ok(records) => records,
            Err(e) => return ListResponse::Unavailable(unavailable(e)),
        };
        let mut matching = records
            .iter()
            .filter(|r| q.0.as_deref().is_none_or(|prefix| r.client_id.starts_with(prefix)))
            .filter(|r| after.as_deref().is_none_or(|after| r.client_id.as_str() > after));
        let items: Vec<Client> = matching.by_ref().take(limit as usize).map(Client::from).collect();
        let next_cursor =
            if matching.next().is_some() { items.last().map(|c| encode_cursor(&c.client_id)) } else { None };
        ListResponse::Ok(Json(ClientPage { items, next_cursor }))
    }

    /// Register a client
    ///
    /// The secret is generated by the server and returned only in this response.
    #[oai(path = "/clients", method = "post")]
    async fn create(&self, auth: AdminToken, body: Json<ClientCreate>) -> CreateResponse {
        if auth.0.role != Role::Write {
            return CreateResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let body = body.0;
        let client_id = match body.client_id {
            Some(id) => id.0,
            None => match random_token(12) {
                Ok(id) => format!("client-{id}"),
                Err(_) => return CreateResponse::Unavailable(problem(503, "no randomness")),
            },
        };
        let fallback = match body.fallback.as_deref().map(|f| parse_fallback(f)).transpose() {
            Ok(fallback) => fallback.unwrap_or_default(),
            Err(e) => return CreateResponse::Invalid(Json(Problem::invalid(vec![e]))),
        };
        let method: TokenAuthMethod = body.token_endpoint_auth_method.map(Into::into).unwrap_or_default();
        let secret = if method.uses_secret() {
            let Ok(secret) = random_token(32) else {
                return CreateResponse::Unavailable(problem(503, "no randomness"));
            };
            Some(secret)
        } else {
            None
        };
        let claims = body.claims.unwrap_or_default();
        let secret_hash = match secret.as_deref().map(hash_secret).transpose() {
            Ok(hash) => hash.unwrap_or_default(),
            Err(_) => return CreateResponse::Unavailable(problem(503, "no randomness")),
        };
        let spec = ClientSpec {
            name: plain(body.name),
            adapter: body.adapter.map(adapter_kind).unwrap_or_default(),
            subject: body.subject.map(subject_mode).unwrap_or_default(),
            require_pkce: body.require_pkce.unwrap_or(false),
            claims: ClaimMapping { rename: claims.rename, drop: claims.drop, add: claims.add },
            default_organization_id: plain(body.default_organization_id),
            default_connection_id: plain(body.default_connection_id),
            fallback,
            allowed_organizations: body.allowed_organizations.map(plain_all).unwrap_or_default(),
            initiate_login_uri: plain(body.initiate_login_uri),
            id_token_signed_response_alg: body.id_token_signed_response_alg.map(Into::into).unwrap_or_default(),
            token_endpoint_auth_method: method,
            jwks_uri: plain(body.jwks_uri),
            jwks: body.jwks,
            ..ClientSpec::new(client_id.clone(), plain_all(body.redirect_uris))
        };
        let record = ClientRecord { spec, secret_hash, source: "api".into() };
        let errors =
            validate(&record, &self.state.keys.algorithms().await, self.state.config.outbound.allow_private_networks);
        if !errors.is_empty() {
            return CreateResponse::Invalid(Json(Problem::invalid(errors)));
        }
        match self.state.clients.replace(&record, None).await {
            Ok(true) => {}
            Ok(false) => return CreateResponse::Conflict(problem(409, format!("a client {client_id} exists"))),
            Err(e) => return CreateResponse::Unavailable(unavailable(e)),
        }
        audit(&auth.0, "client.create", &client_id, None, Some(&record_json(&record)));
        let tag = match self.state.clients.read(&client_id).await {
            Ok(Some((_, bytes))) => etag(&bytes),
            _ => String::new(),
        };
        CreateResponse::Created(
            Json(ClientWithSecret { client: Client::from(&record), client_secret: secret }),
            format!(
                "/admin/clients/{}",
                url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>()
            ),
            tag,
        )
    }

    /// Get a client
    #[oai(path = "/clients/:client_id", method = "get")]
    async fn get(&self, _auth: AdminToken, client_id: Path<String>) -> GetResponse {
        match self.state.clients.read(&client_id.0).await {
            Ok(Some((record, bytes))) => GetResponse::Ok(Json(Client::from(&record)), etag(&bytes)),
            Ok(None) => GetResponse::NotFound(problem(404, format!("no client {}", client_id.0))),
            Err(e) => GetResponse::Unavailable(unavailable(e)),
        }
    }

    /// Update a client
    ///
    /// A partial update. Send the ETag from a previous GET in `If-Match`; a stale one is
    /// refused with 412, so that two admins do not overwrite each other.
    #[oai(path = "/clients/:client_id", method = "patch")]
    async fn update(
        &self,
        auth: AdminToken,
        client_id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<ClientPatch>,
    ) -> UpdateResponse {
        if auth.0.role != Role::Write {
            return UpdateResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let (current, bytes) = match self.state.clients.read(&client_id.0).await {
            Ok(Some(found)) => found,
            Ok(None) => return UpdateResponse::NotFound(problem(404, format!("no client {}", client_id.0))),
            Err(e) => return UpdateResponse::Unavailable(unavailable(e)),
        };
        let Some(if_match) = if_match.0 else {
            return UpdateResponse::PreconditionRequired(problem(428, "send If-Match with the ETag of the client"));
        };
        if !etag_matches(&if_match, &etag(&bytes)) {
            return UpdateResponse::PreconditionFailed(problem(
                412,
                "the client changed since it was read; GET it again",
            ));
        }
        let patch = body.0;
        let mut record = current.clone();
        apply(&mut record.spec.name, plain_patch(patch.name));
        if let Some(uris) = patch.redirect_uris {
            record.spec.redirect_uris = plain_all(uris);
        }
        if let Some(adapter) = patch.adapter {
            record.spec.adapter = adapter_kind(adapter);
        }
        if let Some(subject) = patch.subject {
            record.spec.subject = subject_mode(subject);
        }
        if let Some(require) = patch.require_pkce {
            record.spec.require_pkce = require;
        }
        if let Some(claims) = patch.claims {
            record.spec.claims = ClaimMapping { rename: claims.rename, drop: claims.drop, add: claims.add };
        }
        apply(&mut record.spec.default_organization_id, plain_patch(patch.default_organization_id));
        apply(&mut record.spec.default_connection_id, plain_patch(patch.default_connection_id));
        apply(&mut record.spec.initiate_login_uri, plain_patch(patch.initiate_login_uri));
        if let Some(alg) = patch.id_token_signed_response_alg {
            record.spec.id_token_signed_response_alg = alg.into();
        }
        if let Some(method) = patch.token_endpoint_auth_method {
            record.spec.token_endpoint_auth_method = method.into();
        }
        apply(&mut record.spec.jwks_uri, plain_patch(patch.jwks_uri));
        apply(&mut record.spec.jwks, patch.jwks);
        if let Some(organizations) = patch.allowed_organizations {
            record.spec.allowed_organizations = plain_all(organizations);
        }
        if let Some(fallback) = patch.fallback {
            match parse_fallback(&fallback) {
                Ok(fallback) => record.spec.fallback = fallback,
                Err(e) => return UpdateResponse::Invalid(Json(Problem::invalid(vec![e]))),
            }
        }
        let errors =
            validate(&record, &self.state.keys.algorithms().await, self.state.config.outbound.allow_private_networks);
        if !errors.is_empty() {
            return UpdateResponse::Invalid(Json(Problem::invalid(errors)));
        }
        match self.state.clients.replace(&record, Some(&bytes)).await {
            Ok(true) => {}
            Ok(false) => {
                return UpdateResponse::PreconditionFailed(problem(412, "the client changed meanwhile; GET it again"))
            }
            Err(e) => return UpdateResponse::Unavailable(unavailable(e)),
        }
        audit(&auth.0, "client.update", &record.client_id, Some(&record_json(&current)), Some(&record_json(&record)));
        let tag = match self.state.clients.read(&record.client_id).await {
            Ok(Some((_, bytes))) => etag(&bytes),
            _ => String::new(),
        };
        UpdateResponse::Ok(Json(Client::from(&record)), tag)
    }

    /// Rotate a client's secret
    ///
    /// A new secret replaces the old one at once; it is returned only in this response.
    #[oai(path = "/clients/:client_id/secret", method = "post")]
    async fn rotate_secret(&self, auth: AdminToken, client_id: Path<String>) -> SecretResponse {
        if auth.0.role != Role::Write {
            return SecretResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let (current, bytes) = match self.state.clients.read(&client_id.0).await {
            Ok(Some(found)) => found,
            Ok(None) => return SecretResponse::NotFound(problem(404, format!("no client {}", client_id.0))),
            Err(e) => return SecretResponse::Unavailable(unavailable(e)),
        };
        if !current.token_endpoint_auth_method.uses_secret() {
            return SecretResponse::Conflict(problem(
                409,
                "this client authenticates with private_key_jwt; change its keys (jwks, jwks_uri) instead",
            ));
        }
        let Ok(secret) = random_token(32) else { return SecretResponse::Unavailable(problem(503, "no randomness")) };
        let mut record = current;
        let Ok(hash) = hash_secret(&secret) else { return SecretResponse::Unavailable(problem(503, "no randomness")) };
        record.secret_hash = hash;
        match self.state.clients.replace(&record, Some(&bytes)).await {
            Ok(true) => {}
            Ok(false) => {
                return SecretResponse::PreconditionFailed(problem(412, "the client changed meanwhile; try again"))
            }
            Err(e) => return SecretResponse::Unavailable(unavailable(e)),
        }
        audit(
            &auth.0,
            "client.rotate_secret",
            &record.client_id,
            None,
            Some(&serde_json::json!({"client_secret": "[redacted]"})),
        );
        let tag = match self.state.clients.read(&record.client_id).await {
            Ok(Some((_, bytes))) => etag(&bytes),
            _ => String::new(),
        };
        SecretResponse::Ok(Json(ClientWithSecret { client: Client::from(&record), client_secret: Some(secret) }), tag)
    }

    /// Delete a client
    ///
    /// Logins in progress for it fail; tokens already issued stay valid until they expire.
    /// `If-Match` is honoured when sent.
    #[oai(path = "/clients/:client_id", method = "delete")]
    async fn delete(
        &self,
        auth: AdminToken,
        client_id: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> DeleteResponse {
        if auth.0.role != Role::Write {
            return DeleteResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let (current, bytes) = match self.state.clients.read(&client_id.0).await {
            Ok(Some(found)) => found,
            Ok(None) => return DeleteResponse::NotFound(problem(404, format!("no client {}", client_id.0))),
            Err(e) => return DeleteResponse::Unavailable(unavailable(e)),
        };
        if if_match.0.as_deref().is_some_and(|tag| !etag_matches(tag, &etag(&bytes))) {
            return DeleteResponse::PreconditionFailed(problem(412, "the client changed since it was read"));
        }
        if let Err(e) = self.state.clients.delete(&client_id.0).await {
            return DeleteResponse::Unavailable(unavailable(e));
        }
        audit(&auth.0, "client.delete", &client_id.0, Some(&record_json(&current)), None);
        DeleteResponse::Deleted
    }
}

/// JSON merge patch for an optional field.
pub fn apply<T>(field: &mut Option<T>, patch: MaybeUndefined<T>) {
    match patch {
        MaybeUndefined::Undefined => {}
        MaybeUndefined::Null => *field = None,
        MaybeUndefined::Value(value) => *field = Some(value),
    }
}
