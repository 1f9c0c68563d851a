//! `ssobridge export-config`: the running configuration (the file's settings, plus the
//! clients and routes as the store holds them now) as a config file. Secrets are never
//! written: client secrets appear as their SHA-256, other secrets are left to the environment.

use toml::{Table, Value};

use crate::clients::{ClientRecord, ClientRegistry};
use crate::config::Config;
use crate::model::{Route, RouteSource};
use crate::routing::RouteTable;
use crate::store::{AnyStore, StoreError};

pub async fn export(config: &Config) -> Result<String, StoreError> {
    let store = AnyStore::connect(&config.store).await?;
    let clients = ClientRegistry::new(store.clone(), &config.clients).list().await?;
    let routes = RouteTable::new(&store).list().await?;
    render(config, &clients, &routes).map_err(|e| StoreError::Config(format!("export: {e}")))
}

/// Configured secrets, which the export leaves to the environment: (key, variable, whether set).
fn secrets(config: &Config) -> Vec<(&'static str, bool)> {
    let scalekit_secret = config.scalekit.as_ref().is_some_and(|s| s.webhook_secret.is_some());
    vec![
        ("SSOBRIDGE_UPSTREAM__CLIENT_SECRET", true),
        ("SSOBRIDGE_TOKENS__PAIRWISE_SALT", config.tokens.pairwise_salt.is_some()),
        ("SSOBRIDGE_SIGNING__KEY_PEM", config.signing.key_pem.is_some()),
        ("SSOBRIDGE_SIGNING__EC_KEY_PEM", config.signing.ec_key_pem.is_some()),
        ("SSOBRIDGE_SIGNING__KEY_ENCRYPTION_KEY", config.signing.key_encryption_key.is_some()),
        ("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", scalekit_secret),
    ]
}

/// The file: every section as the config serializes it (secrets skipped there), the store URL
/// redacted, the clients and routes from the store.
fn render(config: &Config, clients: &[ClientRecord], routes: &[Route]) -> Result<String, toml::ser::Error> {
    let mut root = Table::try_from(config)?;
    if let Some(Value::Table(store)) = root.get_mut("store") {
        // A password in the URL is a secret like the others: redacted as check-config shows it.
        store.insert("url".into(), Value::String(config.store.redacted_url()));
    }
    if let Some(Value::Table(upstream)) = root.get_mut("upstream") {
        // Required, so the key stays, with a value that fails the credential check loudly.
        upstream.insert("client_secret".into(), Value::String("set SSOBRIDGE_UPSTREAM__CLIENT_SECRET".into()));
    }
    let mut exported = Vec::new();
    for client in clients {
        let mut table = Table::try_from(&client.spec)?;
        if client.token_endpoint_auth_method.uses_secret() {
            table.insert("client_secret_hash".into(), Value::String(client.secret_hash.clone()));
        }
        if let Some(jwks) = &client.jwks {
            // JSON in a string: a JWK Set may hold what TOML cannot (null).
            table.insert("jwks".into(), Value::String(jwks.to_string()));
        }
        if client.claims.is_empty() {
            table.remove("claims");
        }
        exported.push(Value::Table(table));
    }
    root.insert("clients".into(), Value::Array(exported));
    // Synced routes come from Scalekit at every sync: exported, they would become config routes
    // that no sync could remove. The file has no `source` key: its routes are all `config`.
    let mut exported = Vec::new();
    for route in routes.iter().filter(|r| r.source != RouteSource::Synced) {
        let mut table = Table::try_from(route)?;
        table.remove("source");
        exported.push(Value::Table(table));
    }
    root.insert("routes".into(), Value::Array(exported));
    let body = toml::to_string_pretty(&root)?;
    let variables: Vec<&str> = secrets(config).into_iter().filter(|(_, set)| *set).map(|(name, _)| name).collect();
    Ok(format!(
        "# Exported by ssobridge export-config. Client secrets are their hashes; the store URL's\n\
         # password is redacted; other secrets are left out: set them through the environment\n\
         # ({}). Adapter settings ([clients.auth0] ...) hold credentials and stay in your file.\n{body}",
        variables.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[tokio::test]
    async fn an_export_loads_back_as_the_same_clients_and_routes() {
        let text = r#"
public_url = "https://sso.example.com"
[upstream]
issuer = "https://acme.scalekit.dev"
client_id = "skc"
client_secret = "secret"
[[clients]]
client_id = "auth0-prod"
client_secret = "0123456789"
redirect_uris = ["https://acme.us.auth0.com/login/callback"]
fallback = "deny"
[clients.claims]
rename = { org_id = "organization" }
[tokens]
id_token_ttl_seconds = 900
pairwise_salt = "pairwise-salt-not-to-export"
[rate_limits]
per_ip_per_minute = 100
[signing]
ec_key_file = "/keys/ec.pem"
key_encryption_key = "kek-not-to-export"
[outbound]
allow_private_networks = true
[scalekit]
lookup_on_miss = true
webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
[[routes]]
domain = "Acme.COM"
organization_id = "org_1"
connection_id = "conn_1"
"#;
        let config = Config::from_toml(text, Vec::<(String, String)>::new(), Path::new("t.toml")).expect("config");
        let clients = vec![ClientRecord::from_config(&config.clients[0]).expect("record")];
        let routes = vec![Route {
            domain: "acme.com".into(),
            organization_id: "org_1".into(),
            connection_id: Some("conn_1".into()),
            clients: vec![],
            include_subdomains: false,
            verified: true,
            source: RouteSource::Api,
        }];
        // A synced route is Scalekit's, not the file's: exported, no sync could remove it.
        let mut routes = routes;
        routes.push(Route {
            domain: "synced.example".into(),
            organization_id: "org_2".into(),
            connection_id: None,
            clients: vec![],
            include_subdomains: false,
            verified: true,
            source: RouteSource::Synced,
        });
        let exported = render(&config, &clients, &routes).expect("render");
        for secret in ["0123456789", "pairwise-salt-not-to-export", "kek-not-to-export", "MfKQ9r8GKYqrTwjUPD8"] {
            assert!(!exported.contains(secret), "no clear secret: {exported}");
        }
        let with_password = Config {
            store: crate::config::StoreConfig { url: "redis://:hunter2@redis:6379/0".into(), ..config.store.clone() },
            ..config.clone()
        };
        let exported_with_password = render(&with_password, &clients, &routes).expect("render");
        assert!(!exported_with_password.contains("hunter2"), "{exported_with_password}");
        let reloaded =
            Config::from_toml(&exported, Vec::<(String, String)>::new(), Path::new("e.toml")).expect(&exported);
        assert_eq!(ClientRecord::from_config(&reloaded.clients[0]).expect("record"), clients[0], "{exported}");
        assert_eq!(reloaded.routes[0].domain, "acme.com");
        assert_eq!(reloaded.routes.len(), 1, "no synced route: {exported}");
        assert_eq!(reloaded.routes[0].connection_id.as_deref(), Some("conn_1"));
        // Every section of the file, not only clients and routes.
        assert_eq!(reloaded.tokens.id_token_ttl_seconds, 900, "{exported}");
        assert_eq!(reloaded.rate_limits.per_ip_per_minute, 100, "{exported}");
        assert_eq!(reloaded.signing.ec_key_file.as_deref(), Some(Path::new("/keys/ec.pem")), "{exported}");
        assert!(reloaded.outbound.allow_private_networks, "{exported}");
        assert!(reloaded.scalekit.as_ref().is_some_and(|s| s.lookup_on_miss), "{exported}");
        assert!(exported.contains("SSOBRIDGE_TOKENS__PAIRWISE_SALT"), "says which secrets to set: {exported}");
    }
}
