//! `/admin/routes`: the home-realm route table.

use std::sync::Arc;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::clients::{apply, etag};
use super::text::{plain, plain_all, plain_patch, Text};
use super::{
    audit, encode_cursor, problem, unavailable, AdminToken, FieldError, Problem, Role, Tag, DEFAULT_PAGE, MAX_PAGE,
};
use crate::model::normalize_domain;
use crate::routing::{Route as StoredRoute, RouteSource};
use crate::state::AppState;

pub struct RoutesApi {
    pub state: Arc<AppState>,
}

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

impl From<RouteSource> for Source {
    fn from(source: RouteSource) -> Source {
        match source {
            RouteSource::Config => Source::Config,
            RouteSource::Api => Source::Api,
            RouteSource::Synced => Source::Synced,
        }
    }
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
            organization_id: None,
            connection_id: MaybeUndefined::Null,
            clients: Some(vec!["auth0-prod".into()]),
            include_subdomains: Some(true),
            verified: None,
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
    pub organization_id: Option<Text>,
    #[oai(nullable, validator(min_length = 1, max_length = 128))]
    pub connection_id: MaybeUndefined<Text>,
    #[oai(nullable)]
    pub clients: Option<Vec<Text>>,
    #[oai(nullable)]
    pub include_subdomains: Option<bool>,
    #[oai(nullable)]
    pub verified: Option<bool>,
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

impl From<&StoredRoute> for Route {
    fn from(r: &StoredRoute) -> Route {
        Route {
            domain: r.domain.clone(),
            organization_id: r.organization_id.clone(),
            connection_id: r.connection_id.clone(),
            clients: r.clients.clone(),
            include_subdomains: r.include_subdomains,
            verified: r.verified,
            source: r.source.into(),
        }
    }
}

fn validate(route: &StoredRoute) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let id_ok = |id: &str| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok(&route.organization_id) {
        errors.push(FieldError { pointer: "/organization_id".into(), detail: "1 to 128 printable characters".into() });
    }
    if route.connection_id.as_deref().is_some_and(|c| !id_ok(c)) {
        errors.push(FieldError { pointer: "/connection_id".into(), detail: "1 to 128 printable characters".into() });
    }
    for (i, client) in route.clients.iter().enumerate() {
        if !id_ok(client) {
            errors.push(FieldError { pointer: format!("/clients/{i}"), detail: "not a client id".into() });
        }
    }
    errors
}

fn route_json(route: &StoredRoute) -> serde_json::Value {
    serde_json::to_value(route).unwrap_or_default()
}

#[OpenApi(tag = "Tag::Routes")]
impl RoutesApi {
    /// List routes
    ///
    /// Sorted by domain. `domain` keeps routes for that domain or its subdomains; `client`
    /// keeps routes the client may use.
    #[oai(path = "/routes", method = "get")]
    async fn list(
        &self,
        _auth: AdminToken,
        /// Page size, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
        domain: Query<Option<String>>,
        client: Query<Option<String>>,
    ) -> ListResponse {
        let limit = limit.0.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return ListResponse::BadRequest(problem(400, "limit must be between 1 and 200"));
        }
        let after = cursor.0.as_deref().filter(|c| !c.is_empty()).map(str::to_owned);
        // A filter that is no valid domain matches nothing (rather than failing the request).
        let domain = domain
            .0
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| normalize_domain(d).unwrap_or_else(|_| "\u{0}".to_owned()));
        let routes = match self.state.routes().list().await {
            Ok(routes) => routes,
            Err(e) => return ListResponse::Unavailable(unavailable(e)),
        };
        let mut matching = routes
            .iter()
            .filter(|r| domain.as_deref().is_none_or(|d| r.domain == d || r.domain.ends_with(&format!(".{d}"))))
            .filter(|r| {
                client
                    .0
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .is_none_or(|c| r.clients.is_empty() || r.clients.iter().any(|x| x == c))
            })
            .filter(|r| after.as_deref().is_none_or(|after| r.domain.as_str() > after));
        let items: Vec<Route> = matching.by_ref().take(limit as usize).map(Route::from).collect();
        let next_cursor = if matching.next().is_some() { items.last().map(|r| encode_cursor(&r.domain)) } else { None };
        ListResponse::Ok(Json(RoutePage { items, next_cursor }))
    }

    /// Add a route
    #[oai(path = "/routes", method = "post")]
    async fn create(&self, auth: AdminToken, body: Json<RouteCreate>) -> CreateResponse {
        if auth.0.role != Role::Write {
            return CreateResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let body = body.0;
        let domain = match normalize_domain(&body.domain) {
            Ok(domain) => domain,
            Err(e) => {
                return CreateResponse::Invalid(Json(Problem::invalid(vec![FieldError {
                    pointer: "/domain".into(),
                    detail: e.to_string(),
                }])))
            }
        };
        let route = StoredRoute {
            domain: domain.clone(),
            organization_id: body.organization_id.0,
            connection_id: plain(body.connection_id),
            clients: plain_all(body.clients.unwrap_or_default()),
            include_subdomains: body.include_subdomains.unwrap_or(false),
            verified: body.verified.unwrap_or(true),
            source: RouteSource::Api,
        };
        let errors = validate(&route);
        if !errors.is_empty() {
            return CreateResponse::Invalid(Json(Problem::invalid(errors)));
        }
        let table = self.state.routes();
        match table.replace(&route, None).await {
            Ok(true) => {}
            Ok(false) => return CreateResponse::Conflict(problem(409, format!("a route for {domain} exists"))),
            Err(e) => return CreateResponse::Unavailable(unavailable(e)),
        }
        audit(&auth.0, "route.create", &domain, None, Some(&route_json(&route)));
        let tag = match table.read(&domain).await {
            Ok(Some((_, bytes))) => etag(&bytes),
            _ => String::new(),
        };
        CreateResponse::Created(Json(Route::from(&route)), format!("/admin/routes/{domain}"), tag)
    }

    /// Get a route
    #[oai(path = "/routes/:domain", method = "get")]
    async fn get(&self, _auth: AdminToken, domain: Path<String>) -> GetResponse {
        let Ok(normalized) = normalize_domain(&domain.0) else {
            return GetResponse::NotFound(problem(404, format!("no route for {}", domain.0)));
        };
        match self.state.routes().read(&normalized).await {
            Ok(Some((route, bytes))) => GetResponse::Ok(Json(Route::from(&route)), etag(&bytes)),
            Ok(None) => GetResponse::NotFound(problem(404, format!("no route for {normalized}"))),
            Err(e) => GetResponse::Unavailable(unavailable(e)),
        }
    }

    /// Update a route
    ///
    /// Send the ETag from a previous GET in `If-Match`.
    #[oai(path = "/routes/:domain", method = "patch")]
    async fn update(
        &self,
        auth: AdminToken,
        domain: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        body: Json<RoutePatch>,
    ) -> UpdateResponse {
        if auth.0.role != Role::Write {
            return UpdateResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let Ok(normalized) = normalize_domain(&domain.0) else {
            return UpdateResponse::NotFound(problem(404, format!("no route for {}", domain.0)));
        };
        let table = self.state.routes();
        let (current, bytes) = match table.read(&normalized).await {
            Ok(Some(found)) => found,
            Ok(None) => return UpdateResponse::NotFound(problem(404, format!("no route for {normalized}"))),
            Err(e) => return UpdateResponse::Unavailable(unavailable(e)),
        };
        let Some(if_match) = if_match.0 else {
            return UpdateResponse::PreconditionRequired(problem(428, "send If-Match with the ETag of the route"));
        };
        if !super::clients::etag_matches(&if_match, &etag(&bytes)) {
            return UpdateResponse::PreconditionFailed(problem(
                412,
                "the route changed since it was read; GET it again",
            ));
        }
        let patch = body.0;
        let mut route = current.clone();
        if let Some(organization) = patch.organization_id {
            route.organization_id = organization.0;
        }
        apply(&mut route.connection_id, plain_patch(patch.connection_id));
        if let Some(clients) = patch.clients {
            route.clients = plain_all(clients);
        }
        if let Some(include) = patch.include_subdomains {
            route.include_subdomains = include;
        }
        if let Some(verified) = patch.verified {
            route.verified = verified;
        }
        // An operator's change takes a synced route over: sync leaves it alone from now on.
        if route.source == RouteSource::Synced {
            route.source = RouteSource::Api;
        }
        let errors = validate(&route);
        if !errors.is_empty() {
            return UpdateResponse::Invalid(Json(Problem::invalid(errors)));
        }
        match table.replace(&route, Some(&bytes)).await {
            Ok(true) => {}
            Ok(false) => {
                return UpdateResponse::PreconditionFailed(problem(412, "the route changed meanwhile; GET it again"))
            }
            Err(e) => return UpdateResponse::Unavailable(unavailable(e)),
        }
        audit(&auth.0, "route.update", &normalized, Some(&route_json(&current)), Some(&route_json(&route)));
        let tag = match table.read(&normalized).await {
            Ok(Some((_, bytes))) => etag(&bytes),
            _ => String::new(),
        };
        UpdateResponse::Ok(Json(Route::from(&route)), tag)
    }

    /// Delete a route
    #[oai(path = "/routes/:domain", method = "delete")]
    async fn delete(
        &self,
        auth: AdminToken,
        domain: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> DeleteResponse {
        if auth.0.role != Role::Write {
            return DeleteResponse::Forbidden(problem(403, "this token is read-only"));
        }
        let Ok(normalized) = normalize_domain(&domain.0) else {
            return DeleteResponse::NotFound(problem(404, format!("no route for {}", domain.0)));
        };
        let table = self.state.routes();
        let (current, bytes) = match table.read(&normalized).await {
            Ok(Some(found)) => found,
            Ok(None) => return DeleteResponse::NotFound(problem(404, format!("no route for {normalized}"))),
            Err(e) => return DeleteResponse::Unavailable(unavailable(e)),
        };
        if if_match.0.as_deref().is_some_and(|tag| !super::clients::etag_matches(tag, &etag(&bytes))) {
            return DeleteResponse::PreconditionFailed(problem(412, "the route changed since it was read"));
        }
        if let Err(e) = table.delete(&normalized).await {
            return DeleteResponse::Unavailable(unavailable(e));
        }
        audit(&auth.0, "route.delete", &normalized, Some(&route_json(&current)), None);
        DeleteResponse::Deleted
    }
}
