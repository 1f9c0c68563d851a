//! The URL rules, each in one place: https everywhere, plain http only on loopback (RFC 9700
//! §2.1), and never, for a URL an admin registers, an address inside the broker's own network.

use std::net::{IpAddr, Ipv4Addr};

use url::Url;

/// Whether `url` names a loopback host (`localhost`, 127.0.0.0/8, ::1).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The one transport rule: https, or plain http on a loopback host.
fn secure_transport(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("http:// is accepted only for loopback hosts; use https://".to_owned()),
        other => Err(format!("scheme {other} is not supported")),
    }
}

/// An issuer or service base URL (`public_url`, `upstream.issuer`): absolute, secure
/// transport, no query or fragment.
pub fn check_base_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    secure_transport(&url)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

/// A redirect URI (RFC 6749 §3.1.2): absolute, no fragment, secure transport. Also the rule
/// of `initiate_login_uri` and of an IdP-initiated login's `target_link_uri`.
pub fn check_redirect_uri(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not an absolute URL ({e})"))?;
    if url.fragment().is_some() {
        return Err("must not contain a fragment".to_owned());
    }
    secure_transport(&url)?;
    Ok(url)
}

/// A URL an admin registers for the broker to fetch (a client's `jwks_uri`): https, and a host
/// that is not, on its face, a loopback, private, link-local or metadata address (names are
/// checked again when resolved, see `crate::http::guarded_client`). With
/// `allow_private_networks` such addresses pass, and so does http on loopback.
pub fn check_registered_url(value: &str, allow_private_networks: bool) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if url.host().is_none() {
        return Err("has no host".to_owned());
    }
    let loopback = is_loopback(&url);
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
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_http_only_on_loopback() {
        assert!(check_base_url("https://sso.example.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080").is_ok());
        assert!(check_base_url("http://localhost:8080").is_ok());
        assert!(check_base_url("http://sso.example.com").is_err());
        assert!(check_base_url("https://sso.example.com/?x=1").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb?keep=1").is_ok(), "a query is kept");
        assert!(check_redirect_uri("https://app.example.com/cb#frag").is_err());
        assert!(check_redirect_uri("http://[::1]:3000/cb").is_ok());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

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
