//! The admin REST API: clients, routes, keys and status, described by an OpenAPI document
//! generated from this code (served at `/admin/openapi.json`, committed in `openapi/`).

mod clients;
mod console;
mod events;
mod jobs;
mod keys;
mod resource;
mod routes;
mod status;
mod text;

use std::sync::Arc;

use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use poem_openapi::auth::Bearer;
use poem_openapi::{Object, OpenApiService, SecurityScheme, Tags};

use crate::events::{Event, EventLog, Kind as EventKind, Outcome};
use crate::state::AppState;
use crate::tokens::{secrets_equal, sha256_hex};

/// Largest admin request body.
const MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

#[derive(Tags)]
enum Tag {
    /// Downstream applications (Auth0, Cognito, Firebase apps) that sign in through ssobridge.
    Clients,
    /// Home-realm routes: which organization and connection an email domain signs in with.
    Routes,
    /// The keys that sign the broker's ID tokens.
    Keys,
    /// Health of the service as the admin API sees it.
    Status,
    /// The event log: every login attempt, IdP-initiated hand-off, admin change and
    /// deprovisioning, newest first.
    Events,
    /// Work owed to downstreams and clients (deprovisioning, roles, back-channel logouts),
    /// retried until done; what keeps failing waits here for an operator.
    Jobs,
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Read,
    Write,
}

/// The authenticated caller: role and a short, non-secret label for the audit log, and the
/// event log its changes are recorded in.
pub struct Caller {
    pub role: Role,
    pub label: String,
    events: Option<Arc<EventLog>>,
}

/// A bearer admin token. Tokens are configured as their SHA-256 (`[admin]`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_token")]
pub struct AdminToken(Caller);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let tokens = req.data::<Arc<AdminTokens>>().ok_or_else(|| poem::Error::from_status(StatusCode::UNAUTHORIZED))?;
    let presented = sha256_hex(&bearer.token);
    // Every configured hash is compared, so the time taken does not say which one matched.
    let mut role = None;
    for (hash, r) in tokens.write.iter().map(|h| (h, Role::Write)).chain(tokens.read.iter().map(|h| (h, Role::Read))) {
        if secrets_equal(&presented, hash) && role.is_none() {
            role = Some(r);
        }
    }
    match role {
        Some(role) => Ok(Caller {
            role,
            label: format!("token:{}", &presented[..8]),
            events: req.data::<Arc<EventLog>>().cloned(),
        }),
        None => Err(poem::Error::from_string("a valid admin bearer token is required", StatusCode::UNAUTHORIZED)),
    }
}

/// The admin token hashes, lower-case hex SHA-256.
#[derive(Debug, Clone, Default)]
pub struct AdminTokens {
    pub read: Vec<String>,
    pub write: Vec<String>,
}

/// RFC 9457 problem details.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct Problem {
    /// A URI reference naming the problem type (`about:blank` when the status says it all).
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
    /// Validation failures, each with a JSON Pointer (RFC 6901) into the request body.
    #[oai(skip_serializing_if_is_empty, default)]
    pub errors: Vec<FieldError>,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        problem_example()
    }
}

fn problem_example() -> Problem {
    Problem {
        kind: "about:blank".into(),
        title: "Not Found".into(),
        status: 404,
        detail: Some("no client auth0-prod".into()),
        errors: vec![],
    }
}

#[derive(Debug, Clone, Object)]
pub struct FieldError {
    /// JSON Pointer into the request body, e.g. `/redirect_uris/0`.
    pub pointer: String,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            errors: vec![],
        }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: "Unprocessable Content".into(),
            status: 422,
            detail: Some("the request body has invalid fields".into()),
            errors,
        }
    }
}

/// A problem document body for an operation's documented error response.
fn problem(status: u16, detail: impl Into<String>) -> poem_openapi::payload::Json<Problem> {
    poem_openapi::payload::Json(Problem::new(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), detail))
}

/// The store failed: logged here with its detail, a generic 503 for the caller.
fn unavailable(error: crate::store::StoreError) -> poem_openapi::payload::Json<Problem> {
    tracing::error!(error = %error, "store failure in the admin API");
    problem(503, "the store is unavailable; try again")
}

/// Any error poem or poem-openapi raises (bad JSON, missing token, oversize body) as
/// problem+json, with the library's message only for client errors.
fn problem_response(error: poem::Error) -> Response {
    let status = error.status();
    let detail = if status.is_client_error() { error.to_string() } else { "internal error".to_owned() };
    let problem = Problem::new(status, detail);
    let body = serde_json::json!({
        "type": problem.kind, "title": problem.title, "status": problem.status, "detail": problem.detail,
    });
    let mut response =
        Response::builder().status(status).content_type("application/problem+json").body(body.to_string());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer realm=\"ssobridge-admin\""),
        );
    }
    response
}

/// The methods of each admin resource, for `Allow` on 405 answers.
fn allowed_methods(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches("/admin").trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["clients"] | ["routes"] => Some("GET, POST"),
        ["clients", _] | ["routes", _] => Some("GET, PATCH, DELETE"),
        ["clients", _, "secret"] | ["keys", "rotate"] => Some("POST"),
        ["keys"] | ["status"] | ["openapi.json"] | ["events"] | ["events", _] | ["jobs"] => Some("GET"),
        ["jobs", _] => Some("GET, DELETE"),
        ["jobs", _, "retry"] => Some("POST"),
        _ => None,
    }
}

/// Refuses bodies over [`MAX_BODY_BYTES`] with 413, whether they announce their length or not.
async fn limit_body(mut request: Request) -> poem::Result<Request> {
    let too_large = || poem::Error::from_string("the request body is too large", StatusCode::PAYLOAD_TOO_LARGE);
    let announced =
        request.headers().get(poem::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    match announced {
        Some(length) if length > MAX_BODY_BYTES => Err(too_large()),
        Some(_) => Ok(request),
        None => {
            let body = request.take_body().into_bytes_limit(MAX_BODY_BYTES).await.map_err(|_| too_large())?;
            request.set_body(body);
            Ok(request)
        }
    }
}

/// Writes one audit line, who changed what, before and after (secrets never included), and
/// records the change in the event log.
pub fn audit(
    caller: &Caller,
    action: &str,
    resource: &str,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) {
    tracing::info!(
        target: "audit",
        audit = true,
        actor = %caller.label,
        action,
        resource,
        before = %before.map(|v| v.to_string()).unwrap_or_else(|| "null".into()),
        after = %after.map(|v| v.to_string()).unwrap_or_else(|| "null".into()),
        "admin change"
    );
    if let Some(events) = &caller.events {
        let mut event = Event::new(EventKind::Admin, Outcome::Success);
        event.actor = Some(caller.label.clone());
        event.action = Some(action.to_owned());
        event.resource = Some(resource.to_owned());
        events.record(event);
    }
}

type Api = (clients::ClientsApi, routes::RoutesApi, keys::KeysApi, status::StatusApi, events::EventsApi, jobs::JobsApi);

fn service(state: Arc<AppState>) -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            clients::ClientsApi { state: state.clone() },
            routes::RoutesApi { state: state.clone() },
            keys::KeysApi { state: state.clone() },
            status::StatusApi { state: state.clone() },
            events::EventsApi { state: state.clone() },
            jobs::JobsApi { state },
        ),
        "ssobridge admin API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Configure ssobridge at run time: downstream clients, home-realm routes, signing keys, and service status. \
Authenticate with `Authorization: Bearer <admin token>`; read-only tokens may only GET. \
Errors are RFC 9457 problem details. Updates need `If-Match` with the resource's ETag.",
    )
    .server("/admin")
}

/// The smallest valid configuration: the document is built from types, not settings.
const SPEC_CONFIG: &str = r#"
public_url = "http://localhost:8080"
[upstream]
issuer = "http://localhost:8080/upstream"
client_id = "spec"
client_secret = "spec"
[[clients]]
client_id = "spec"
client_secret = "spec-secret"
redirect_uris = ["http://localhost:8080/callback"]
"#;

/// The OpenAPI document, as `ssobridge openapi` prints it and `openapi/` commits it.
pub fn spec_json() -> Result<String, String> {
    let config = crate::config::Config::from_toml(SPEC_CONFIG, Vec::new(), std::path::Path::new("spec"))
        .map_err(|e| e.to_string())?;
    // The document depends on types only; a throwaway state satisfies the constructor.
    let state = AppState::for_spec(config).map_err(|e| e.to_string())?;
    Ok(service(state).spec())
}

/// The admin application, to be nested at `/admin`: the API, `/openapi.json`, `/docs`, `/console`.
pub fn endpoint(state: Arc<AppState>, tokens: AdminTokens) -> BoxEndpoint<'static> {
    let api = service(state.clone());
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let admin = Route::new()
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/console", console::endpoint())
        .nest("/", api)
        .around(|endpoint, request| async move {
            let allow = allowed_methods(request.uri().path());
            let mut response = endpoint.call(limit_body(request).await?).await;
            if let (Err(error), Some(allow)) = (&mut response, allow) {
                // RFC 9110 §15.5.6: a 405 names the methods the resource has.
                if error.status() == StatusCode::METHOD_NOT_ALLOWED {
                    let mut answer = problem_response(poem::Error::from_status(StatusCode::METHOD_NOT_ALLOWED));
                    answer.headers_mut().insert(poem::http::header::ALLOW, poem::http::HeaderValue::from_static(allow));
                    return Ok(answer);
                }
            }
            response.map(IntoResponse::into_response)
        })
        .data(Arc::new(tokens))
        .data(state.events.clone())
        .catch_all_error(|error| async move { problem_response(error) });
    admin.map_to_response().boxed()
}
