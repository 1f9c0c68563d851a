//! The routes resource as the admin API shows it: the schema of the OpenAPI document, a view
//! of [`crate::model::Route`] (converted through its JSON form).

use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object};

use crate::admin::resource::answers;
use crate::admin::text::Text;
use crate::admin::Problem;

/// An email domain and where its users sign in.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Route {
    /// Lower case, IDNA ASCII form (`bücher.example` is stored as `xn--bcher-kva.example`).
    pub domain: String,
    pub organization_id: String,
    /// When set, logins go to this connection; else to the organization.
    #[oai(skip_serializing_if_is_none)]
    pub connection_id: Option<String>,
    /// Clients allowed to use the route; empty means all.
    pub clients: Vec<String>,
    /// Whether subdomains of `domain` match too.
    pub include_subdomains: bool,
    /// Whether the organization proved it owns the domain (adapters link by email only then).
    pub verified: bool,
    /// Where the route comes from: `config` (the config file, rewritten at every start), `api`
    /// (this API), or `synced` (Scalekit's verified organization domains, kept up to date by
    /// route sync). Sync never changes a `config` or `api` route; changing a `synced` route
    /// here makes it `api`, and a deleted `synced` route comes back at the next sync while its
    /// domain is verified at Scalekit.
    pub source: Source,
}

/// Where a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Source {
    Config,
    Api,
    Synced,
}

impl poem_openapi::types::Example for Route {
    fn example() -> Self {
        route_example()
    }
}

impl poem_openapi::types::Example for RouteCreate {
    fn example() -> Self {
        RouteCreate {
            domain: "acme.com".into(),
            organization_id: "org_59615193906282635".into(),
            connection_id: Some("conn_59615204466213323".into()),
            clients: None,
            include_subdomains: None,
            verified: None,
        }
    }
}

impl poem_openapi::types::Example for RoutePatch {
    fn example() -> Self {
        RoutePatch {
            organization_id: MaybeUndefined::Undefined,
            connection_id: MaybeUndefined::Null,
            clients: MaybeUndefined::Value(vec!["auth0-prod".into()]),
            include_subdomains: MaybeUndefined::Value(true),
            verified: MaybeUndefined::Undefined,
        }
    }
}

fn route_example() -> Route {
    Route {
        domain: "acme.com".into(),
        organization_id: "org_59615193906282635".into(),
        connection_id: Some("conn_59615204466213323".into()),
        clients: vec![],
        include_subdomains: false,
        verified: true,
        source: Source::Api,
    }
}

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct RouteCreate {
    /// An email domain; stored lower case in IDNA ASCII form.
    #[oai(validator(min_length = 3, max_length = 253, pattern = "^[^ @/:]+\\.[^ @/:]+$"))]
    pub domain: Text,
    #[oai(validator(min_length = 1, max_length = 128))]
    pub organization_id: Text,
    #[oai(nullable, validator(min_length = 1, max_length = 128))]
    pub connection_id: Option<Text>,
    #[oai(nullable)]
    pub clients: Option<Vec<Text>>,
    #[oai(nullable)]
    pub include_subdomains: Option<bool>,
    #[oai(nullable)]
    pub verified: Option<bool>,
}

/// A partial update (JSON merge patch semantics: `null` clears `connection_id`).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct RoutePatch {
    #[oai(nullable, validator(min_length = 1, max_length = 128))]
    pub organization_id: MaybeUndefined<Text>,
    #[oai(nullable, validator(min_length = 1, max_length = 128))]
    pub connection_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub clients: MaybeUndefined<Vec<Text>>,
    #[oai(nullable)]
    pub include_subdomains: MaybeUndefined<bool>,
    #[oai(nullable)]
    pub verified: MaybeUndefined<bool>,
}

#[derive(Debug, Clone, Object)]
pub struct RoutePage {
    pub items: Vec<Route>,
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ListResponse {
    #[oai(status = 200)]
    Ok(Json<RoutePage>),
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    #[oai(status = 201)]
    Created(Json<Route>, #[oai(header = "Location")] String, #[oai(header = "ETag")] String),
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    /// A route for this domain exists.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum GetResponse {
    #[oai(status = 200)]
    Ok(Json<Route>, #[oai(header = "ETag")] String),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum UpdateResponse {
    #[oai(status = 200)]
    Ok(Json<Route>, #[oai(header = "ETag")] String),
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    #[oai(status = 412, content_type = "application/problem+json")]
    PreconditionFailed(Json<Problem>),
    #[oai(status = 413, content_type = "application/problem+json")]
    TooLarge(Json<Problem>),
    /// The body is not `application/json`.
    #[oai(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Json<Problem>),
    #[oai(status = 422, content_type = "application/problem+json")]
    Invalid(Json<Problem>),
    #[oai(status = 428, content_type = "application/problem+json")]
    PreconditionRequired(Json<Problem>),
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
answers!(DeleteResponse { 403 => Forbidden, 404 => NotFound, 412 => PreconditionFailed, 503 => Unavailable });
