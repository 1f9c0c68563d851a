//! From a verified identity to the claims a downstream client receives: the user's, and the
//! ID token's protocol claims around them.

use serde_json::{Map, Value};
use ssobridge_adapter_core::Identity;

use crate::model::ClaimMapping;

/// Which claim groups the client's `scope` asked for (OIDC Core §5.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimScopes {
    pub profile: bool,
    pub email: bool,
}

impl ClaimScopes {
    pub fn from_scope(scope: &str) -> ClaimScopes {
        let mut scopes = ClaimScopes::default();
        for s in scope.split(' ') {
            match s {
                "profile" => scopes.profile = true,
                "email" => scopes.email = true,
                _ => {}
            }
        }
        scopes
    }
}

/// OIDC Core §8.1 pairwise subject: opaque, stable per (client, upstream subject), URL-safe.
pub fn pairwise_subject(client_id: &str, upstream_subject: &str, salt: &str) -> String {
    let input = format!("{}\u{0}{}\u{0}{}", client_id, upstream_subject, salt);
    super::sha256_hex(&input)
}

/// The protocol claims of an ID token (OIDC Core §2, §3.1.3.6), about a user whose claims are
/// assembled by [`user_claims`].
pub struct ProtocolClaims<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    /// The audience, and the authorized party.
    pub client_id: &'a str,
    pub issued_at: u64,
    /// Seconds the ID token is valid for.
    pub lifetime: u64,
    pub auth_time: u64,
    /// The upstream's `acr`, as it said it.
    pub acr: Option<&'a str>,
    /// The access token issued with the ID token, bound to it by `at_hash`.
    pub access_token: &'a str,
    /// The client's nonce, echoed only when it sent one: Auth0 rejects an unexpected nonce.
    pub nonce: Option<&'a str>,
    /// The broker session (Back-Channel Logout 1.0 §2.1: `backchannel_logout_session_supported`).
    pub sid: Option<&'a str>,
}

/// An ID token's claims: `user_claims` and the protocol claims, which win.
pub fn id_token_claims(user_claims: Map<String, Value>, protocol: &ProtocolClaims<'_>) -> Map<String, Value> {
    let mut claims = user_claims;
    let mut set = |name: &str, value: Value| {
        claims.insert(name.to_owned(), value);
    };
    set("iss", protocol.issuer.into());
    set("sub", protocol.subject.into());
    set("aud", protocol.client_id.into());
    set("azp", protocol.client_id.into());
    set("iat", protocol.issued_at.into());
    set("exp", (protocol.issued_at + protocol.lifetime).into());
    set("auth_time", protocol.auth_time.into());
    if let Some(acr) = protocol.acr {
        set("acr", acr.into());
    }
    set("at_hash", super::at_hash(protocol.access_token).into());
    if let Some(nonce) = protocol.nonce {
        set("nonce", nonce.into());
    }
    if let Some(sid) = protocol.sid {
        set("sid", sid.into());
    }
    claims
}

/// The user claims (everything but the protocol claims): standard claims allowed by `scopes`,
/// the organization and connection, what the adapter added, then the client's mapping.
pub fn user_claims(
    identity: &Identity,
    scopes: ClaimScopes,
    adapter_claims: Option<&Map<String, Value>>,
    mapping: &ClaimMapping,
) -> Map<String, Value> {
    let mut claims = Map::new();
    let mut set = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            claims.insert(name.to_owned(), Value::String(value.clone()));
        }
    };
    if scopes.email {
        set("email", &identity.email);
    }
    if scopes.profile {
        set("name", &identity.name);
        set("given_name", &identity.given_name);
        set("family_name", &identity.family_name);
    }
    set("org_id", &identity.organization_id);
    set("connection_id", &identity.connection_id);
    if scopes.email && identity.email.is_some() {
        claims.insert("email_verified".to_owned(), Value::Bool(identity.email_verified));
    }
    if let Some(extra) = adapter_claims {
        for (name, value) in extra {
            claims.insert(name.clone(), value.clone());
        }
    }
    for name in &mapping.drop {
        claims.remove(name);
    }
    for (from, to) in &mapping.rename {
        if let Some(value) = claims.remove(from) {
            claims.insert(to.clone(), value);
        }
    }
    for (name, value) in &mapping.add {
        claims.insert(name.clone(), value.clone());
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            upstream_subject: "conn_1;alice@acme.test".into(),
            subject: "abc".into(),
            connection_id: Some("conn_1".into()),
            organization_id: Some("org_1".into()),
            email: Some("alice@acme.test".into()),
            email_verified: true,
            name: Some("Alice A".into()),
            given_name: Some("Alice".into()),
            family_name: None,
        }
    }

    #[test]
    fn scopes_gate_standard_claims() {
        let all = user_claims(&identity(), ClaimScopes { profile: true, email: true }, None, &ClaimMapping::default());
        assert_eq!(all["email"], "alice@acme.test");
        assert_eq!(all["email_verified"], true);
        assert_eq!(all["name"], "Alice A");
        assert!(!all.contains_key("family_name"));
        let bare = user_claims(&identity(), ClaimScopes::default(), None, &ClaimMapping::default());
        assert!(!bare.contains_key("email") && !bare.contains_key("name"));
        assert_eq!(bare["org_id"], "org_1");
    }

    #[test]
    fn mapping_renames_drops_and_adds() {
        let mut mapping = ClaimMapping::default();
        mapping.rename.insert("org_id".into(), "organization".into());
        mapping.drop.push("connection_id".into());
        mapping.add.insert("tenant".into(), Value::String("acme".into()));
        let claims = user_claims(&identity(), ClaimScopes::default(), None, &mapping);
        assert_eq!(claims["organization"], "org_1");
        assert!(!claims.contains_key("org_id") && !claims.contains_key("connection_id"));
        assert_eq!(claims["tenant"], "acme");
    }

    #[test]
    fn pairwise_subjects_are_stable_and_per_client() {
        let a = pairwise_subject("c1", "conn_1;alice", "salt");
        assert_eq!(a, pairwise_subject("c1", "conn_1;alice", "salt"));
        assert_ne!(a, pairwise_subject("c2", "conn_1;alice", "salt"));
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
