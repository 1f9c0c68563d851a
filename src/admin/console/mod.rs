//! `/admin/console`: the operator's web console, three static files compiled into the binary
//! (a page, one JavaScript module, a style sheet). It is a client of the admin API like any
//! other: it signs in with an admin token kept in the tab's `sessionStorage`, sends it as
//! `Authorization: Bearer`, and calls the documented operations only, so it adds no route
//! to the OpenAPI document and no power an API caller does not have.
//!
//! Every answer carries a policy that allows the page's own script, style sheet and calls to
//! this origin, and nothing else: no inline script or style, no plug-ins, no framing (click-
//! jacking a console that rotates secrets), no form posting anywhere (a form whose script did
//! not load cannot send the token in a URL), and `no-referrer` so that no URL leaves the page.

use poem::http::{header, StatusCode};
use poem::{get, handler, Request, Response, Route};

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The page's Content Security Policy: its own files and its own origin's API only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console, to be nested at `/admin/console`: the page there, its files under it.
pub fn endpoint() -> Route {
    Route::new().at("/", get(page)).at("/console.js", get(script)).at("/console.css", get(style))
}

#[handler]
fn page(request: &Request) -> Response {
    // The page names its files relative to `/admin/console` (so that it works under any
    // prefix a proxy adds); from `/admin/console/` they would resolve one level too deep.
    if request.original_uri().path().ends_with('/') {
        return Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header(header::LOCATION, "../console")
            .header(header::CACHE_CONTROL, "no-store")
            .finish();
    }
    file(PAGE, "text/html; charset=utf-8", "no-store")
}

#[handler]
fn script() -> Response {
    file(SCRIPT, "text/javascript; charset=utf-8", "no-cache")
}

#[handler]
fn style() -> Response {
    file(STYLE, "text/css; charset=utf-8", "no-cache")
}

fn file(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY")
        // No other site's window keeps a handle on the console (`window.opener`).
        .header("cross-origin-opener-policy", "same-origin")
        .body(body)
}
