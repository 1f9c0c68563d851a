//! `/admin/routes`: the home-realm route table. Each handler turns its request into the model
//! ([`crate::model::Route`]) and hands it to the resource service.

mod view;

use std::sync::Arc;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use poem_openapi::OpenApi;

pub use self::view::*;
use super::resource::{self, Collection, Failure, IfMatch};
use super::{AdminToken, FieldError, Tag};
use crate::model::{normalize_domain, Route as RouteSpec, RouteSource};
use crate::routing::RouteTable;
use crate::state::AppState;
use crate::store::{AnyStore, StoreError};

pub struct RoutesApi {
    pub state: Arc<AppState>,
}

impl Collection for RouteTable<'_, AnyStore> {
    type Item = RouteSpec;
    const KIND: &'static str = "route";

    fn id(item: &RouteSpec) -> &str {
        &item.domain
    }
    async fn read(&self, id: &str) -> Result<Option<(RouteSpec, Vec<u8>)>, StoreError> {
        RouteTable::read(self, id).await
    }
    async fn list(&self) -> Result<Vec<RouteSpec>, StoreError> {
        RouteTable::list(self).await
    }
    async fn replace(&self, item: &RouteSpec, expected: Option<&[u8]>) -> Result<bool, StoreError> {
        RouteTable::replace(self, item, expected).await
    }
    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        RouteTable::delete(self, id).await
    }
}

/// The API's view of a route: its JSON form read as the schema type.
fn view(route: &RouteSpec) -> Result<Route, Failure> {
    let document = serde_json::to_value(route).map_err(|_| Failure::Internal)?;
    Route::parse_from_json(Some(document)).map_err(|e| {
        tracing::error!(error = %e.message(), "a stored route does not fit the API schema");
        Failure::Internal
    })
}

/// The route's rules; a valid route's domain comes out normalized.
fn check(route: &mut RouteSpec) -> Result<(), Failure> {
    let errors: Vec<FieldError> = route
        .problems()
        .into_iter()
        .map(|(field, index, detail)| FieldError {
            pointer: match index {
                Some(i) => format!("/{field}/{i}"),
                None => format!("/{field}"),
            },
            detail,
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::Invalid(errors))
    }
}

/// The stored key of a domain in a path; a domain that cannot be one has no route.
fn key(domain: &str) -> Result<String, Failure> {
    normalize_domain(domain).map_err(|_| Failure::NotFound(format!("no route {domain}")))
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
        // A filter that is no valid domain matches nothing (rather than failing the request).
        let domain = domain.0.filter(|d| !d.is_empty()).map(|d| normalize_domain(&d).unwrap_or_else(|_| "\0".into()));
        let client = client.0.filter(|c| !c.is_empty());
        let keep = |r: &RouteSpec| {
            domain.as_deref().is_none_or(|d| r.domain == d || r.domain.ends_with(&format!(".{d}")))
                && client.as_deref().is_none_or(|c| r.allows(c))
        };
        let answer = async {
            let (routes, next_cursor) =
                resource::page(&self.state.routes(), limit.0, cursor.0.as_deref(), keep).await?;
            let items = routes.iter().map(view).collect::<Result<_, _>>()?;
            Ok::<_, Failure>(ListResponse::Ok(Json(RoutePage { items, next_cursor })))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Add a route
    #[oai(path = "/routes", method = "post")]
    async fn create(&self, auth: AdminToken, body: Json<RouteCreate>) -> CreateResponse {
        let answer = async {
            resource::writable(&auth.0)?;
            let mut route: RouteSpec = resource::from_json(resource::without_nulls(body.0.to_json()))?;
            route.source = RouteSource::Api;
            check(&mut route)?;
            let (route, tag) = resource::create(&self.state.routes(), &auth.0, route).await?;
            let location = format!("/admin/routes/{}", route.domain);
            Ok::<_, Failure>(CreateResponse::Created(Json(view(&route)?), location, tag))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Get a route
    #[oai(path = "/routes/:domain", method = "get")]
    async fn get(&self, _auth: AdminToken, domain: Path<String>) -> GetResponse {
        let answer = async {
            let (route, tag) = resource::get(&self.state.routes(), &key(&domain.0)?).await?;
            Ok::<_, Failure>(GetResponse::Ok(Json(view(&route)?), tag))
        };
        answer.await.unwrap_or_else(Into::into)
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
        let answer = async {
            let if_match = IfMatch::Required(if_match.0.as_deref());
            let table = self.state.routes();
            let (route, tag, ()) = resource::modify(&table, &auth.0, &key(&domain.0)?, if_match, "update", |route| {
                *route = resource::merge_patch(&*route, body.0.to_json().unwrap_or_default())?;
                // An operator's change takes a synced route over: sync leaves it alone from now on.
                if route.source == RouteSource::Synced {
                    route.source = RouteSource::Api;
                }
                check(route)
            })
            .await?;
            Ok::<_, Failure>(UpdateResponse::Ok(Json(view(&route)?), tag))
        };
        answer.await.unwrap_or_else(Into::into)
    }

    /// Delete a route
    #[oai(path = "/routes/:domain", method = "delete")]
    async fn delete(
        &self,
        auth: AdminToken,
        domain: Path<String>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
    ) -> DeleteResponse {
        let answer = async {
            resource::delete(&self.state.routes(), &auth.0, &key(&domain.0)?, if_match.0.as_deref()).await?;
            Ok::<_, Failure>(DeleteResponse::Deleted)
        };
        answer.await.unwrap_or_else(Into::into)
    }
}
