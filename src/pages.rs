//! Server-rendered HTML: plain, accessible, no JavaScript, strict headers.

use poem::http::{header, StatusCode};
use poem::Response;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.5}\
h1{font-size:1.4rem}label{display:block;font-weight:600;margin:.75rem 0 .25rem}\
input[type=email],input[type=text]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1rem;padding:.5rem 1.25rem;font-size:1rem;cursor:pointer}\
.error{color:#a00000;border-left:4px solid #a00000;padding-left:.75rem}\
pre{background:#f4f4f4;padding:1rem;overflow-x:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
.tiles{display:flex;gap:1rem;flex-wrap:wrap}.tiles a{display:block;border:1px solid #888;border-radius:.5rem;padding:1rem;text-decoration:none}";

/// A complete page. `body` must already be escaped HTML.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head><body><main>\n{body}\n</main></body></html>\n",
        title = escape(title),
    );
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        )
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(html)
}

/// An error page: what happened, in words the user can act on.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n<p>Return to the application and start the sign-in again. If this keeps happening, contact your administrator.</p>",
        escape(title),
        escape(message)
    );
    page(status, title, &body)
}
