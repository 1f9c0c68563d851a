//! The broker's outbound HTTP: one client builder, bodies read with a size cap, and a guard for
//! URLs that someone other than the operator's config file chose (a client's `jwks_uri`
//! registered through the admin API), so that the broker cannot be turned into a way to reach
//! its own network (SSRF: cloud metadata at 169.254.169.254, Redis on 127.0.0.1:6379).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::Url;

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
    // reqwest is built without a bundled crypto provider; install aws-lc-rs, which the
    // signing code already uses. A second install attempt is a harmless no-op.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("ssobridge/", env!("CARGO_PKG_VERSION")))
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

/// Whether `url` may be fetched for an admin-registered setting: https (http only on loopback,
/// and only when private networks are allowed), and a host that is not, on its face, a
/// loopback, private, link-local or metadata address (names are checked when resolved).
pub fn check_registered_url(value: &str, allow_private_networks: bool) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("has no host".to_owned()),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback && allow_private_networks => {}
        _ => return Err("must be https".to_owned()),
    }
    if !allow_private_networks {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if loopback || literal.is_some_and(|ip| !is_public(ip)) {
            return Err("must not point at a loopback, private, link-local or metadata address".to_owned());
        }
    }
    Ok(url)
}

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, unique
/// local), link-local (where cloud metadata services live), shared (CGNAT, Alibaba's
/// metadata), unspecified, broadcast, documentation or multicast; IPv4 inside IPv6 (mapped,
/// NAT64) is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = ip.segments();
            // 64:ff9b::/96, the NAT64 prefix: the last 32 bits are an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let o = ip.octets();
                return is_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (AWS IMDS fd00:ec2::254)
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] == 0x2001 && segments[1] == 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn registered_urls_must_be_https_to_a_public_host() {
        for bad in [
            "https://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:6379/",
            "https://127.0.0.1/jwks",
            "https://[::1]/jwks",
            "https://localhost/jwks",
            "https://10.0.0.5/jwks",
            "http://keys.example.com/jwks",
            "file:///etc/passwd",
        ] {
            assert!(check_registered_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_registered_url("https://keys.example.com/jwks", false).is_ok());
        assert!(check_registered_url("http://127.0.0.1:8080/jwks", true).is_ok(), "allowed explicitly");
        assert!(check_registered_url("http://10.0.0.5/jwks", true).is_err(), "http only on loopback");
    }
}
