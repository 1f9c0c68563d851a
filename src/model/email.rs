//! Email addresses and their domains, read one way everywhere: as the route table keys its
//! domains (lower case, IDNA), and never an address that reads as another from the right.

/// A string that is not a host name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} is not a valid domain")]
pub struct InvalidDomain(pub String);

/// Lower case and IDNA (UTS #46) ASCII form: `Bücher.Example` → `xn--bcher-kva.example`.
pub fn normalize_domain(raw: &str) -> Result<String, InvalidDomain> {
    let trimmed = raw.trim().trim_end_matches('.');
    if trimmed.is_empty() || trimmed.len() > 253 || trimmed.contains(['@', '/', ':', ' ']) {
        return Err(InvalidDomain(raw.to_owned()));
    }
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| InvalidDomain(raw.to_owned()))?;
    // Host names only (RFC 1123 labels): IDNA alone lets control characters and symbols through.
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !ascii.contains('.') || !ascii.split('.').all(label_ok) {
        return Err(InvalidDomain(raw.to_owned()));
    }
    Ok(ascii)
}

/// The local part and domain of an address with exactly one `@`, neither part empty, and no
/// space, control or delimiter character in the local part. `a@b.example@evil.example` is not
/// an address: read from the right, it would pass for one at `evil.example`.
pub fn split_email(email: &str) -> Option<(&str, &str)> {
    let (local, domain) = email.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c));
    (local_ok && !domain.is_empty() && !domain.contains('@') && email.len() <= 254).then_some((local, domain))
}

/// The domain of a valid email address, normalized as the route table keys its domains: what
/// routing and email verification compare.
pub fn email_domain(email: &str) -> Option<String> {
    split_email(email).and_then(|(_, domain)| normalize_domain(domain).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_case_folded_and_idna_encoded() {
        assert_eq!(normalize_domain("ACME.Example").as_deref(), Ok("acme.example"));
        assert_eq!(normalize_domain("Bücher.example").as_deref(), Ok("xn--bcher-kva.example"));
        assert_eq!(normalize_domain("xn--bcher-kva.example").as_deref(), Ok("xn--bcher-kva.example"));
        assert_eq!(normalize_domain("acme.example.").as_deref(), Ok("acme.example"));
        for bad in ["", "localhost", "a..b", "a b.example", "x@y.example", "ex/ample.com"] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_email_is_exactly_one_address() {
        assert_eq!(email_domain("Alice@ACME.Example").as_deref(), Some("acme.example"));
        assert_eq!(email_domain("bob@Bücher.example").as_deref(), Some("xn--bcher-kva.example"));
        for bad in
            ["a@b.example@evil.example", "@acme.example", "alice@", "alice", "a b@acme.example", "a\u{0}@x.example"]
        {
            assert_eq!(email_domain(bad), None, "{bad}");
        }
    }
}
