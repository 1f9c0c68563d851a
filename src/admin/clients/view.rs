//! The clients resource as the admin API shows it: the schema of the OpenAPI document. These
//! are views of [`crate::model::ClientSpec`] (converted through its JSON form), not another
//! definition of a client: the fields, defaults and rules are the model's.

use std::collections::BTreeMap;

use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object};

use crate::admin::resource::answers;
use crate::admin::text::Text;
use crate::admin::Problem;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Subject {
    /// An opaque per-client hash of the upstream subject (the default).
    Pairwise,
    /// The upstream subject unchanged.
    Upstream,
}

/// What a user's deactivation in their directory does to the client's downstream user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Deprovision {
    /// Disabled (sessions ended where the downstream can); reactivation enables them.
    Disable,
    /// Deleted; a later login creates them again.
    Delete,
    /// Left alone downstream (the broker still refuses their logins).
    None,
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
    /// `upstream: claim`: a claim of the upstream ID token beyond the fixed ones (a custom
    /// attribute) passed on as `claim`.
    #[oai(default)]
    pub attributes: BTreeMap<String, String>,
    /// Emit the user's directory groups as `groups` and their roles as `roles`.
    #[oai(default)]
    pub groups: bool,
    /// A directory group (or a Scalekit directory role) to the application roles it grants:
    /// emitted as `roles` and written downstream (the roles the broker manages).
    #[oai(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
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
    pub deprovision: Deprovision,
    /// Where the client may send users after sign-out (`post_logout_redirect_uri`, exact match).
    #[oai(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where the broker posts logout tokens (OpenID Connect Back-Channel Logout).
    #[oai(skip_serializing_if_is_none)]
    pub backchannel_logout_uri: Option<String>,
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
        deprovision: Deprovision::Disable,
        post_logout_redirect_uris: vec!["https://acme.us.auth0.com/v2/logout".into()],
        backchannel_logout_uri: None,
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
    /// `disable` when absent.
    #[oai(nullable)]
    pub deprovision: Option<Deprovision>,
    /// Exact URIs (https, or http on loopback), no fragment: where users may go after sign-out.
    #[oai(nullable, validator(max_items = 20, max_length = 2000))]
    pub post_logout_redirect_uris: Option<Vec<Text>>,
    /// https to a public address (loopback and private networks only with
    /// `outbound.allow_private_networks`), no fragment: where logout tokens are posted.
    #[oai(nullable, validator(max_length = 2000))]
    pub backchannel_logout_uri: Option<Text>,
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
        deprovision: None,
        post_logout_redirect_uris: None,
        backchannel_logout_uri: None,
    }
}

/// A partial update (JSON merge patch semantics: `null` clears an optional field).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ClientPatch {
    #[oai(nullable, validator(max_length = 200))]
    pub name: MaybeUndefined<Text>,
    #[oai(nullable, validator(min_items = 1, max_items = 20, max_length = 2000))]
    pub redirect_uris: MaybeUndefined<Vec<Text>>,
    #[oai(nullable)]
    pub adapter: MaybeUndefined<Adapter>,
    #[oai(nullable)]
    pub subject: MaybeUndefined<Subject>,
    #[oai(nullable)]
    pub require_pkce: MaybeUndefined<bool>,
    #[oai(nullable)]
    pub claims: MaybeUndefined<Claims>,
    #[oai(nullable)]
    pub default_organization_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub default_connection_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub fallback: MaybeUndefined<Text>,
    #[oai(nullable, validator(max_items = 100, max_length = 128))]
    pub allowed_organizations: MaybeUndefined<Vec<Text>>,
    #[oai(nullable)]
    pub initiate_login_uri: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub id_token_signed_response_alg: MaybeUndefined<IdTokenAlg>,
    #[oai(nullable)]
    pub token_endpoint_auth_method: MaybeUndefined<AuthMethod>,
    #[oai(nullable, validator(max_length = 2000))]
    pub jwks_uri: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub jwks: MaybeUndefined<serde_json::Value>,
    #[oai(nullable)]
    pub deprovision: MaybeUndefined<Deprovision>,
    #[oai(nullable, validator(max_items = 20, max_length = 2000))]
    pub post_logout_redirect_uris: MaybeUndefined<Vec<Text>>,
    #[oai(nullable, validator(max_length = 2000))]
    pub backchannel_logout_uri: MaybeUndefined<Text>,
}

impl poem_openapi::types::Example for ClientPatch {
    fn example() -> Self {
        patch_example()
    }
}

fn patch_example() -> ClientPatch {
    ClientPatch {
        name: MaybeUndefined::Value("Acme".into()),
        redirect_uris: MaybeUndefined::Undefined,
        adapter: MaybeUndefined::Undefined,
        subject: MaybeUndefined::Undefined,
        require_pkce: MaybeUndefined::Value(true),
        claims: MaybeUndefined::Undefined,
        default_organization_id: MaybeUndefined::Undefined,
        default_connection_id: MaybeUndefined::Undefined,
        fallback: MaybeUndefined::Undefined,
        allowed_organizations: MaybeUndefined::Undefined,
        initiate_login_uri: MaybeUndefined::Undefined,
        id_token_signed_response_alg: MaybeUndefined::Undefined,
        token_endpoint_auth_method: MaybeUndefined::Undefined,
        jwks_uri: MaybeUndefined::Undefined,
        jwks: MaybeUndefined::Undefined,
        deprovision: MaybeUndefined::Undefined,
        post_logout_redirect_uris: MaybeUndefined::Undefined,
        backchannel_logout_uri: MaybeUndefined::Undefined,
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

answers!(ListResponse { 400 => BadRequest, 503 => Unavailable });
answers!(CreateResponse { 403 => Forbidden, 409 => Conflict, 422 => Invalid, 503 => Unavailable });
answers!(GetResponse { 404 => NotFound, 503 => Unavailable });
answers!(UpdateResponse {
    403 => Forbidden, 404 => NotFound, 412 => PreconditionFailed, 422 => Invalid, 428 => PreconditionRequired,
    503 => Unavailable,
});
answers!(SecretResponse { 403 => Forbidden, 404 => NotFound, 409 => Conflict, 412 => PreconditionFailed, 503 => Unavailable });
answers!(DeleteResponse { 403 => Forbidden, 404 => NotFound, 412 => PreconditionFailed, 503 => Unavailable });
