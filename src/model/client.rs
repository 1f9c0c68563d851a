//! A downstream client, defined once: [`ClientSpec`] is what a client *is* (everything but its
//! secret and its adapter's credentials), [`ClientSpec::problems`] the one set of rules it
//! must meet. The config file's `[[clients]]`, the store's record and the admin API's shapes
//! are views of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// The secret in the Authorization header (the form is accepted too).
    #[default]
    ClientSecretBasic,
    /// The secret in the form body (the header is accepted too).
    ClientSecretPost,
    /// A JWT signed with a key from `jwks` or `jwks_uri` (RFC 7523); no secret.
    PrivateKeyJwt,
}

impl TokenAuthMethod {
    pub fn uses_secret(self) -> bool {
        self != TokenAuthMethod::PrivateKeyJwt
    }
}

/// Which downstream system keeps the client's users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    #[default]
    None,
    Auth0,
    Cognito,
    Firebase,
}

impl AdapterKind {
    pub fn name(self) -> &'static str {
        match self {
            AdapterKind::None => "none",
            AdapterKind::Auth0 => "auth0",
            AdapterKind::Cognito => "cognito",
            AdapterKind::Firebase => "firebase",
        }
    }
}

/// How the broker derives the `sub` it issues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectMode {
    /// An opaque hash of client and upstream subject (OIDC Core §8.1): stable per user and client,
    /// URL-safe, reveals nothing. The default, because upstream subjects such as
    /// `conn_123;user@idp` contain characters some downstreams reject.
    #[default]
    Pairwise,
    /// The upstream subject unchanged.
    Upstream,
}

/// Per-client claim rewriting, applied after the standard claims are built.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    /// `from = "to"`: the claim `from` is issued as `to`.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Claims removed from what the client receives.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Static claims added to every token of this client.
    #[serde(default)]
    pub add: BTreeMap<String, Value>,
    /// `upstream = "claim"`: a claim of the upstream ID token beyond the fixed ones (a custom
    /// attribute of the connection) passed to the client under the name `claim`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Emit the user's directory groups as `groups` and their roles as `roles`.
    #[serde(default)]
    pub groups: bool,
    /// A directory group (or a role Scalekit's directory mapping gives) to the application
    /// roles it grants. These roles are the ones the broker manages downstream; emitted as
    /// `roles`.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
}

impl ClaimMapping {
    pub fn is_empty(&self) -> bool {
        *self == ClaimMapping::default()
    }

    /// Whether the client takes groups or roles: then the broker keeps them in its tokens and
    /// downstream.
    pub fn wants_entitlements(&self) -> bool {
        self.groups || !self.group_roles.is_empty()
    }

    /// Every role the broker manages for this client (the values of `group_roles`), sorted,
    /// once each.
    pub fn managed_roles(&self) -> Vec<String> {
        let roles: std::collections::BTreeSet<&String> = self.group_roles.values().flatten().collect();
        roles.into_iter().cloned().collect()
    }

    /// The roles `groups` and the directory's own `roles` grant through `group_roles`, sorted.
    pub fn roles_for<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut roles = std::collections::BTreeSet::new();
        for name in names {
            if let Some(granted) = self.group_roles.get(name) {
                roles.extend(granted.iter().cloned());
            }
        }
        roles.into_iter().collect()
    }
}

/// What happens downstream when a user's directory deactivates or deletes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deprovision {
    /// The downstream user is disabled (and their sessions ended where the downstream can);
    /// reactivation enables them again.
    #[default]
    Disable,
    /// The downstream user is deleted; a later login creates them again.
    Delete,
    /// The downstream is left alone (the broker still refuses the user's logins).
    None,
}

impl Deprovision {
    pub fn as_str(self) -> &'static str {
        match self {
            Deprovision::Disable => "disable",
            Deprovision::Delete => "delete",
            Deprovision::None => "none",
        }
    }
}

/// Claims the broker always sets itself; a client mapping may not add or rename onto them.
pub const PROTECTED_CLAIMS: &[&str] =
    &["iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "at_hash", "auth_time", "acr", "jti", "sid"];

/// What happens to a login whose email domain has no route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Send `login_hint` to the upstream and let it decide (Scalekit answers
    /// `domain_not_found` when it has nothing).
    #[default]
    Pass,
    /// Refuse at once with `access_denied`.
    Deny,
    /// Use the route of this domain.
    Route(String),
}

impl Fallback {
    pub fn as_str(&self) -> &str {
        match self {
            Fallback::Pass => "pass",
            Fallback::Deny => "deny",
            Fallback::Route(domain) => domain,
        }
    }

    /// `pass`, `deny`, or a route's domain (normalized).
    pub fn parse(value: &str) -> Result<Fallback, String> {
        Ok(match value {
            "pass" => Fallback::Pass,
            "deny" => Fallback::Deny,
            domain => Fallback::Route(
                super::email::normalize_domain(domain)
                    .map_err(|_| format!("fallback must be pass, deny or a route's domain, not {domain}"))?,
            ),
        })
    }
}

impl Serialize for Fallback {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Fallback {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Fallback::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// The two kinds of signing key: one RSA key signs RS256 and PS256, one P-256 key ES256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KeyType {
    #[default]
    #[serde(rename = "RSA")]
    Rsa,
    #[serde(rename = "EC")]
    Ec,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa => "RSA",
            KeyType::Ec => "EC",
        }
    }
}

/// JWS algorithms the broker signs ID tokens with (a client's `id_token_signed_response_alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    #[default]
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "PS256")]
    Ps256,
    #[serde(rename = "ES256")]
    Es256,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 3] = [SigningAlgorithm::Rs256, SigningAlgorithm::Ps256, SigningAlgorithm::Es256];

    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Ps256 => "PS256",
            SigningAlgorithm::Es256 => "ES256",
        }
    }

    pub fn from_name(name: &str) -> Option<SigningAlgorithm> {
        SigningAlgorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// The kind of key that makes this signature.
    pub fn key_type(self) -> KeyType {
        match self {
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => KeyType::Rsa,
            SigningAlgorithm::Es256 => KeyType::Ec,
        }
    }
}

/// A registered downstream client: what it is, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub client_id: String,
    /// Exact URIs (https, or http on loopback), no fragment.
    pub redirect_uris: Vec<String>,
    /// Shown on hosted pages so the user knows where they are signing in.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub adapter: AdapterKind,
    #[serde(default)]
    pub subject: SubjectMode,
    /// Refuse authorization requests without PKCE (S256).
    #[serde(default)]
    pub require_pkce: bool,
    #[serde(default)]
    pub claims: ClaimMapping,
    /// Where logins with no domain to go on are routed (instead of the home-realm page).
    #[serde(default)]
    pub default_organization_id: Option<String>,
    #[serde(default)]
    pub default_connection_id: Option<String>,
    /// `pass` (default), `deny`, or the domain of a route.
    #[serde(default)]
    pub fallback: Fallback,
    /// The upstream organizations the client's users may come from; empty: any the routes
    /// allow. A login that ends in another organization is refused, whatever the request named.
    #[serde(default)]
    pub allowed_organizations: Vec<String>,
    /// Where IdP-initiated logins are handed to the client (OIDC Core §4); none disables them.
    #[serde(default)]
    pub initiate_login_uri: Option<String>,
    /// The ID token's JWS algorithm: `RS256` (default), `PS256` or `ES256` (needs an EC key).
    #[serde(default)]
    pub id_token_signed_response_alg: SigningAlgorithm,
    #[serde(default)]
    pub token_endpoint_auth_method: TokenAuthMethod,
    /// Where the client publishes its public keys (`private_key_jwt`).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The client's public keys inline, a JWK Set (`private_key_jwt`); in a config file it may
    /// also be written as a JSON string.
    #[serde(default, deserialize_with = "json_or_string")]
    pub jwks: Option<Value>,
    /// What a user's deactivation in their directory does downstream.
    #[serde(default)]
    pub deprovision: Deprovision,
    /// Where the client may ask to be sent after signing out (RP-Initiated Logout 1.0 §3.1):
    /// exact URIs under the rules of `redirect_uris`.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where the broker posts a logout token when one of the client's users signs out or is
    /// deprovisioned (Back-Channel Logout 1.0 §2.2): https to a public address, like `jwks_uri`.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
}

/// A JSON value, or a string holding one (TOML has no nested JSON).
fn json_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        Some(Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("jwks must be a JWK Set in JSON: {e}"))),
        other => Ok(other),
    }
}

/// One rule a client breaks: the field (`redirect_uris`, `claims/rename`), the position in a
/// list when it is about one entry, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub index: Option<usize>,
    pub message: String,
}

/// What the rules depend on besides the client itself.
pub struct Rules<'a> {
    /// The algorithms the broker has keys for.
    pub signing_algorithms: &'a [SigningAlgorithm],
    /// `outbound.allow_private_networks`.
    pub allow_private_networks: bool,
    /// Whether this client's adapter has settings to work with (they live in the config file).
    pub adapter_settings: bool,
}

/// The longest group or role name (downstreams' limits: Cognito group names are 128).
pub const MAX_ENTITLEMENT_CHARS: usize = 128;

/// At most this many redirect URIs, of at most this many characters.
pub const MAX_REDIRECT_URIS: usize = 20;
pub const MAX_URI_LEN: usize = 2000;

impl ClientSpec {
    /// A client with `client_id` and `redirect_uris` and every other field at its default.
    pub fn new(client_id: impl Into<String>, redirect_uris: Vec<String>) -> ClientSpec {
        ClientSpec {
            client_id: client_id.into(),
            redirect_uris,
            name: None,
            adapter: AdapterKind::None,
            subject: SubjectMode::default(),
            require_pkce: false,
            claims: ClaimMapping::default(),
            default_organization_id: None,
            default_connection_id: None,
            fallback: Fallback::default(),
            allowed_organizations: Vec::new(),
            initiate_login_uri: None,
            id_token_signed_response_alg: SigningAlgorithm::default(),
            token_endpoint_auth_method: TokenAuthMethod::default(),
            jwks_uri: None,
            jwks: None,
            deprovision: Deprovision::default(),
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
        }
    }

    /// What hosted pages call the application.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.client_id)
    }

    /// Whether the client's users may come from `organization` (its own limit only; routes
    /// restricted to other clients are the route table's to say).
    pub fn allows_organization(&self, organization: &str) -> bool {
        self.allowed_organizations.is_empty() || self.allowed_organizations.iter().any(|o| o == organization)
    }

    /// Every rule the client breaks, in field order.
    pub fn problems(&self, rules: &Rules<'_>) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        let mut problem = |field: &'static str, index: Option<usize>, message: String| {
            problems.push(FieldProblem { field, index, message })
        };
        if !is_client_id(&self.client_id) {
            problem("client_id", None, "1 to 128 characters of letters, digits, '-', '_' and '.'".into());
        }
        if self.redirect_uris.is_empty() {
            problem("redirect_uris", None, "at least one redirect URI is needed".into());
        }
        if self.redirect_uris.len() > MAX_REDIRECT_URIS {
            problem("redirect_uris", None, format!("at most {MAX_REDIRECT_URIS} redirect URIs"));
        }
        for (i, uri) in self.redirect_uris.iter().enumerate() {
            if uri.len() > MAX_URI_LEN {
                problem("redirect_uris", Some(i), "too long".into());
            } else if let Err(message) = super::url::check_redirect_uri(uri) {
                problem("redirect_uris", Some(i), format!("{uri}: {message}"));
            }
        }
        if self.post_logout_redirect_uris.len() > MAX_REDIRECT_URIS {
            problem("post_logout_redirect_uris", None, format!("at most {MAX_REDIRECT_URIS} URIs"));
        }
        for (i, uri) in self.post_logout_redirect_uris.iter().enumerate() {
            if uri.len() > MAX_URI_LEN {
                problem("post_logout_redirect_uris", Some(i), "too long".into());
            } else if let Err(message) = super::url::check_redirect_uri(uri) {
                problem("post_logout_redirect_uris", Some(i), format!("{uri}: {message}"));
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            // The broker posts to it: the rules of a URL it fetches (no loopback, private or
            // metadata address unless outbound.allow_private_networks), and no fragment (§2.2).
            let checked = if uri.len() > MAX_URI_LEN {
                Err(format!("at most {MAX_URI_LEN} characters"))
            } else {
                super::url::check_redirect_uri(uri)
                    .and_then(|_| super::url::check_registered_url(uri, rules.allow_private_networks))
                    .map_err(|message| format!("{uri}: {message}"))
            };
            if let Err(message) = checked {
                problem("backchannel_logout_uri", None, message);
            }
        }
        if let Some(uri) = &self.initiate_login_uri {
            if let Err(message) = super::url::check_redirect_uri(uri) {
                problem("initiate_login_uri", None, format!("{uri}: {message}"));
            }
        }
        if self.name.as_ref().is_some_and(|n| n.len() > 200) {
            problem("name", None, "at most 200 characters".into());
        }
        if self.adapter != AdapterKind::None && !rules.adapter_settings {
            problem(
                "adapter",
                None,
                format!(
                    "adapter {} needs its settings, which live in the config file ([clients.{}]); clients made \
                     through the admin API use \"none\"",
                    self.adapter.name(),
                    self.adapter.name()
                ),
            );
        }
        for (i, organization) in self.allowed_organizations.iter().enumerate() {
            if !is_upstream_id(organization) {
                problem("allowed_organizations", Some(i), "1 to 128 printable characters".into());
            }
        }
        for (field, id) in [
            ("default_organization_id", &self.default_organization_id),
            ("default_connection_id", &self.default_connection_id),
        ] {
            if id.as_deref().is_some_and(|id| !is_upstream_id(id)) {
                problem(field, None, "1 to 128 printable characters".into());
            }
        }
        if !rules.signing_algorithms.contains(&self.id_token_signed_response_alg) {
            problem(
                "id_token_signed_response_alg",
                None,
                format!(
                    "no signing key for {}: configure signing.ec_key_file (ssobridge keys generate --alg ES256), or \
                     rotate in an EC key",
                    self.id_token_signed_response_alg.name()
                ),
            );
        }
        if let Err((field, message)) = self.key_problems(rules.allow_private_networks) {
            problem(field, None, message);
        }
        for (from, to) in &self.claims.rename {
            if PROTECTED_CLAIMS.contains(&from.as_str()) || PROTECTED_CLAIMS.contains(&to.as_str()) {
                problem("claims/rename", None, format!("{from} -> {to} touches a protocol claim"));
            }
        }
        for name in &self.claims.drop {
            if PROTECTED_CLAIMS.contains(&name.as_str()) {
                problem("claims/drop", None, format!("{name} is a protocol claim"));
            }
        }
        for name in self.claims.add.keys() {
            if PROTECTED_CLAIMS.contains(&name.as_str()) {
                problem("claims/add", None, format!("{name} is a protocol claim"));
            }
        }
        for (from, to) in &self.claims.attributes {
            if PROTECTED_CLAIMS.contains(&from.as_str()) || PROTECTED_CLAIMS.contains(&to.as_str()) {
                problem("claims/attributes", None, format!("{from} -> {to} touches a protocol claim"));
            } else if from.is_empty() || to.is_empty() || from.len() > 100 || to.len() > 100 {
                problem("claims/attributes", None, format!("{from} -> {to}: names of 1 to 100 characters"));
            }
        }
        for (group, roles) in &self.claims.group_roles {
            let bad = |name: &str| name.trim().is_empty() || name.chars().count() > MAX_ENTITLEMENT_CHARS;
            if bad(group) || roles.is_empty() || roles.iter().any(|role| bad(role)) {
                problem(
                    "claims/group_roles",
                    None,
                    format!("{group}: a group and at least one role, each 1 to {MAX_ENTITLEMENT_CHARS} characters"),
                );
            }
        }
        problems
    }

    /// The keys a `private_key_jwt` client registers: exactly one of `jwks_uri` (https to a
    /// public address, see [`super::url::check_registered_url`]) and `jwks` (a JWK Set of
    /// public signing keys). Other clients register none.
    fn key_problems(&self, allow_private_networks: bool) -> Result<(), (&'static str, String)> {
        let (jwks_uri, jwks) = (self.jwks_uri.as_deref(), self.jwks.as_ref());
        if self.token_endpoint_auth_method != TokenAuthMethod::PrivateKeyJwt {
            return match (jwks_uri, jwks) {
                (None, None) => Ok(()),
                (Some(_), _) => {
                    Err(("jwks_uri", "is only used with token_endpoint_auth_method private_key_jwt".into()))
                }
                (None, Some(_)) => Err(("jwks", "is only used with token_endpoint_auth_method private_key_jwt".into())),
            };
        }
        match (jwks_uri, jwks) {
            (Some(uri), None) => {
                if uri.len() > MAX_URI_LEN {
                    return Err(("jwks_uri", format!("at most {MAX_URI_LEN} characters")));
                }
                super::url::check_registered_url(uri, allow_private_networks).map(|_| ()).map_err(|e| ("jwks_uri", e))
            }
            (None, Some(jwks)) => {
                let keys = jwks
                    .get("keys")
                    .and_then(|k| k.as_array())
                    .filter(|k| !k.is_empty())
                    .ok_or(("jwks", "must be a JWK Set: {\"keys\": [ ... ]} with at least one key".to_owned()))?;
                for (i, key) in keys.iter().enumerate() {
                    // A private member here means the client's private key was pasted by mistake.
                    if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| key.get(m).is_some()) {
                        return Err((
                            "jwks",
                            format!("key {i} holds private key material; register the public key only"),
                        ));
                    }
                    let jwk: jsonwebtoken::jwk::Jwk =
                        serde_json::from_value(key.clone()).map_err(|e| ("jwks", format!("key {i}: {e}")))?;
                    jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| ("jwks", format!("key {i}: {e}")))?;
                }
                Ok(())
            }
            (None, None) => Err(("jwks_uri", "private_key_jwt needs the client's keys: jwks_uri or jwks".into())),
            (Some(_), Some(_)) => Err(("jwks", "set jwks_uri or jwks, not both".into())),
        }
    }
}

/// A client id: 1 to 128 characters of letters, digits, `-`, `_` and `.` (safe in URLs, keys
/// and environment variable names).
pub fn is_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Whether `value` has a form a stored client secret takes: `s256$<salt>$<hex SHA-256 of salt
/// and secret>`, or a bare hex SHA-256 (from a config file).
pub fn is_secret_hash(value: &str) -> bool {
    let hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    match value.split('$').collect::<Vec<_>>().as_slice() {
        ["s256", salt, hash] => !salt.is_empty() && hex(hash),
        [hash] => hex(hash),
        _ => false,
    }
}

/// An upstream organization or connection id: 1 to 128 printable characters.
pub fn is_upstream_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules<'static> = Rules {
        signing_algorithms: &[SigningAlgorithm::Rs256, SigningAlgorithm::Ps256],
        allow_private_networks: false,
        adapter_settings: false,
    };

    fn fields(spec: &ClientSpec) -> Vec<(&'static str, Option<usize>)> {
        spec.problems(&RULES).into_iter().map(|p| (p.field, p.index)).collect()
    }

    #[test]
    fn a_plain_client_is_valid() {
        assert!(
            fields(&ClientSpec::new("auth0-prod", vec!["https://acme.us.auth0.com/login/callback".into()])).is_empty()
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut spec = ClientSpec::new("bad id", vec!["https://a.example/cb".into(), "http://b.example/cb".into()]);
        spec.id_token_signed_response_alg = SigningAlgorithm::Es256;
        spec.claims.rename.insert("sub".into(), "user".into());
        spec.adapter = AdapterKind::Cognito;
        spec.jwks_uri = Some("https://keys.example/jwks".into());
        assert_eq!(
            fields(&spec),
            [
                ("client_id", None),
                ("redirect_uris", Some(1)),
                ("adapter", None),
                ("id_token_signed_response_alg", None),
                ("jwks_uri", None),
                ("claims/rename", None),
            ]
        );
    }

    #[test]
    fn sign_out_uris_follow_the_redirect_and_fetch_rules() {
        let mut spec = ClientSpec::new("rp", vec!["https://a.example/cb".into()]);
        spec.post_logout_redirect_uris = vec!["https://a.example/bye".into(), "https://a.example/bye#x".into()];
        spec.backchannel_logout_uri = Some("https://a.example/backchannel".into());
        assert_eq!(fields(&spec), [("post_logout_redirect_uris", Some(1))]);
        for refused in [
            "https://169.254.169.254/latest",
            "http://127.0.0.1:6379/",
            "https://10.0.0.5/bc",
            "https://a.example/bc#f",
        ] {
            spec.post_logout_redirect_uris.clear();
            spec.backchannel_logout_uri = Some(refused.into());
            assert_eq!(fields(&spec), [("backchannel_logout_uri", None)], "{refused}");
        }
        spec.backchannel_logout_uri = Some("http://127.0.0.1:8080/bc".into());
        let allowed = Rules { allow_private_networks: true, ..RULES };
        assert!(spec.problems(&allowed).is_empty(), "loopback with outbound.allow_private_networks");
    }

    #[test]
    fn config_files_may_write_jwks_as_a_string() {
        let spec: ClientSpec = serde_json::from_value(serde_json::json!({
            "client_id": "pk", "redirect_uris": ["https://a.example/cb"], "jwks": "{\"keys\": []}",
        }))
        .expect("spec");
        assert_eq!(spec.jwks, Some(serde_json::json!({"keys": []})));
    }
}
