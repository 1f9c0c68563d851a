//! The broker's outbound HTTP: one client builder, bodies read with a size cap, and a guard for
//! URLs that someone other than the operator's config file chose (a client's `jwks_uri`
//! registered through the admin API), so that the broker cannot be turned into a way to reach
//! its own network (SSRF: cloud metadata at 169.254.169.254, Redis on 127.0.0.1:6379).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The largest body the broker reads from any other server: discovery, JWKS, token responses.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Transport(String),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("building the HTTP client: {0}")]
    Build(String),
}

/// An HTTP client: rustls, no redirects followed (a redirect from a token or JWKS endpoint is
/// an error, not something to chase), bounded time.
pub fn client(timeout: Duration) -> Result<reqwest::Client, HttpError> {
    builder(timeout).build().map_err(|e| HttpError::Build(e.to_string()))
}

/// A client for URLs an admin registered: as [`client`], and unless `allow_private_networks`,
/// connecting only to public addresses (names are resolved, and connections made, through
/// [`PublicOnly`], so a name that resolves to a private address later is refused too), and
/// never through a proxy, which would resolve names where the guard cannot see.
pub fn guarded_client(timeout: Duration, allow_private_networks: bool) -> Result<reqwest::Client, HttpError> {
    let mut builder = builder(timeout).no_proxy();
    if !allow_private_networks {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    builder.build().map_err(|e| HttpError::Build(e.to_string()))
}

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    ssobridge_adapter_core::http::client_builder(concat!("ssobridge/", env!("CARGO_PKG_VERSION")), timeout)
        .timeout(timeout)
}

/// The body of `response`, refused beyond [`MAX_RESPONSE_BYTES`] whatever its headers say.
pub async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    read_capped_to(response, MAX_RESPONSE_BYTES).await
}

/// The body of `response`, refused beyond `max` bytes: for the few documents that are larger
/// by nature (a page of 100 organizations from Scalekit's management API).
pub async fn read_capped_to(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, HttpError> {
    if response.content_length().is_some_and(|length| length > max as u64) {
        return Err(HttpError::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| HttpError::Transport(e.without_url().to_string()))? {
        if body.len() + chunk.len() > max {
            return Err(HttpError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub use crate::model::url::{check_registered_url, is_public};

/// Resolves names and keeps only public addresses: a name that resolves to nothing else is an
/// error, and the connection goes to the addresses checked here (no second lookup to rebind).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves only to addresses the broker does not fetch from").into();
                return Err(refused);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
