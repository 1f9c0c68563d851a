//! The broker's browser cookies: the home-realm form's and the IdP-initiated hand-off's. On
//! https they carry the `__Host-` prefix (RFC 6265bis §4.1.3.2: Secure, no Domain, Path=/), so
//! that no sibling subdomain can plant or overwrite them.

use poem::http::header;
use poem::{Request, Response};

/// One cookie of the broker, named `base` (with `__Host-` on https).
pub struct Cookie {
    pub base: &'static str,
}

impl Cookie {
    fn name(&self, https: bool) -> String {
        if https {
            format!("__Host-{}", self.base)
        } else {
            self.base.to_owned()
        }
    }

    /// Sets the cookie to `value` for `max_age` seconds.
    pub fn set(&self, response: &mut Response, https: bool, value: &str, max_age: u64) {
        let secure = if https { "; Secure" } else { "" };
        let cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", self.name(https));
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }

    /// The cookie's value in `req`, if the browser sent it.
    pub fn get<'r>(&self, req: &'r Request, https: bool) -> Option<&'r str> {
        let name = self.name(https);
        req.headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}
