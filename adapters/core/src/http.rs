//! The one way the broker and its adapters build an HTTP client.

use std::time::Duration;

/// A client builder with what every outbound call of ssobridge needs: TLS through rustls with
/// aws-lc-rs (reqwest is built without a bundled provider; installing it twice is a no-op),
/// redirects never followed (a redirect would carry a bearer token or a signed request
/// elsewhere; none of the peers redirects), connecting bounded by `timeout` (at most 5 s), and
/// `user_agent`. Callers add a whole-request timeout where theirs differs.
pub fn client_builder(user_agent: &'static str, timeout: Duration) -> reqwest::ClientBuilder {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(user_agent)
}
