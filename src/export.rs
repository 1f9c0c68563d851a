//! `ssobridge export-config`: the running configuration (the file's settings, plus the
//! clients and routes as the store holds them now) as a config file. Secrets are never
//! written: client secrets appear as their SHA-256, other secrets are left to the environment.

use toml::{Table, Value};

use crate::clients::{ClientRecord, ClientRegistry};
use crate::config::Config;
use crate::routing::{Route, RouteTable};
use crate::store::{AnyStore, StoreError};

pub async fn export(config: &Config) -> Result<String, StoreError> {
    let store = AnyStore::connect(&config.store).await?;
    let clients = ClientRegistry::new(store.clone(), &config.clients).list().await?;
    let routes = RouteTable::new(&store).list().await?;
    Ok(render(config, &clients, &routes))
}

fn strings(values: &[String]) -> Value {
    Value::Array(values.iter().cloned().map(Value::String).collect())
}

fn render(config: &Config, clients: &[ClientRecord], routes: &[Route]) -> String {
    let mut root = Table::new();
    root.insert("public_url".into(), Value::String(config.public_url.clone()));
    root.insert("listen".into(), Value::String(config.listen.to_string()));
    let mut store = Table::new();
    // A password in the URL is a secret like the others: redacted as check-config shows it,
    // the real URL left to the environment (SSOBRIDGE_STORE__URL).
    store.insert("url".into(), Value::String(config.store.redacted_url()));
    store.insert("key_prefix".into(), Value::String(config.store.key_prefix.clone()));
    if config.store.mode == crate::config::StoreMode::Cluster {
        store.insert("mode".into(), Value::String("cluster".into()));
    }
    for (key, path) in [
        ("tls_ca_file", &config.store.tls_ca_file),
        ("tls_cert_file", &config.store.tls_cert_file),
        ("tls_key_file", &config.store.tls_key_file),
    ] {
        if let Some(path) = path {
            store.insert(key.into(), Value::String(path.display().to_string()));
        }
    }
    root.insert("store".into(), Value::Table(store));
    if let Some(path) = &config.signing.key_file {
        let mut signing = Table::new();
        signing.insert("key_file".into(), Value::String(path.display().to_string()));
        root.insert("signing".into(), Value::Table(signing));
    }
    let mut upstream = Table::new();
    upstream.insert("issuer".into(), Value::String(config.upstream.issuer.clone()));
    upstream.insert("client_id".into(), Value::String(config.upstream.client_id.clone()));
    upstream.insert("client_secret".into(), Value::String("set SSOBRIDGE_UPSTREAM__CLIENT_SECRET".into()));
    upstream.insert("scopes".into(), strings(&config.upstream.scopes));
    upstream.insert("allowed_algorithms".into(), strings(&config.upstream.allowed_algorithms));
    if !config.upstream.idp_initiated_issuers.is_empty() {
        upstream.insert("idp_initiated_issuers".into(), strings(&config.upstream.idp_initiated_issuers));
    }
    root.insert("upstream".into(), Value::Table(upstream));
    let mut admin = Table::new();
    admin.insert("listen".into(), Value::String(config.admin.listen.clone()));
    admin.insert("read_tokens_sha256".into(), strings(&config.admin.read_tokens_sha256));
    admin.insert("write_tokens_sha256".into(), strings(&config.admin.write_tokens_sha256));
    root.insert("admin".into(), Value::Table(admin));

    let clients: Vec<Value> = clients
        .iter()
        .map(|c| {
            let mut t = Table::new();
            t.insert("client_id".into(), Value::String(c.client_id.clone()));
            if c.token_endpoint_auth_method.uses_secret() {
                t.insert("client_secret_hash".into(), Value::String(c.secret_hash.clone()));
            }
            t.insert("redirect_uris".into(), strings(&c.redirect_uris));
            if let Some(name) = &c.name {
                t.insert("name".into(), Value::String(name.clone()));
            }
            if let Ok(Value::Table(rest)) = Value::try_from(serde_json::json!({
                "adapter": c.adapter, "subject": c.subject, "require_pkce": c.require_pkce,
                "fallback": c.fallback.as_config_str(),
                "id_token_signed_response_alg": c.id_token_signed_response_alg,
                "token_endpoint_auth_method": c.token_endpoint_auth_method,
            })) {
                t.extend(rest);
            }
            for (key, value) in [
                ("default_organization_id", &c.default_organization_id),
                ("default_connection_id", &c.default_connection_id),
                ("initiate_login_uri", &c.initiate_login_uri),
                ("jwks_uri", &c.jwks_uri),
                ("jwks", &c.jwks.as_ref().map(|jwks| jwks.to_string())),
            ] {
                if let Some(value) = value {
                    t.insert(key.into(), Value::String(value.clone()));
                }
            }
            if !c.allowed_organizations.is_empty() {
                t.insert("allowed_organizations".into(), strings(&c.allowed_organizations));
            }
            if c.claims != Default::default() {
                if let Ok(claims) = Value::try_from(&c.claims) {
                    t.insert("claims".into(), claims);
                }
            }
            Value::Table(t)
        })
        .collect();
    root.insert("clients".into(), Value::Array(clients));
    // Synced routes come from Scalekit at every sync: exported, they would become config routes
    // that no sync could remove. The file has no `source` key: its routes are all `config`.
    let routes: Vec<Value> = routes
        .iter()
        .filter(|r| r.source != crate::routing::RouteSource::Synced)
        .filter_map(|r| match Value::try_from(r) {
            Ok(Value::Table(mut table)) => {
                table.remove("source");
                Some(Value::Table(table))
            }
            _ => None,
        })
        .collect();
    root.insert("routes".into(), Value::Array(routes));
    let body = toml::to_string_pretty(&root).unwrap_or_default();
    format!("# Exported by ssobridge export-config. Client secrets are their hashes; other secrets\n# (the store URL's password among them) are redacted: set them through the environment\n# (SSOBRIDGE_<SECTION>__<KEY>).\n{body}")
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
            source: crate::routing::RouteSource::Api,
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
            source: crate::routing::RouteSource::Synced,
        });
        let exported = render(&config, &clients, &routes);
        assert!(!exported.contains("0123456789"), "no clear secret: {exported}");
        let with_password = Config {
            store: crate::config::StoreConfig { url: "redis://:hunter2@redis:6379/0".into(), ..config.store.clone() },
            ..config.clone()
        };
        let exported_with_password = render(&with_password, &clients, &routes);
        assert!(!exported_with_password.contains("hunter2"), "{exported_with_password}");
        let reloaded =
            Config::from_toml(&exported, Vec::<(String, String)>::new(), Path::new("e.toml")).expect(&exported);
        assert_eq!(ClientRecord::from_config(&reloaded.clients[0]).expect("record"), clients[0], "{exported}");
        assert_eq!(reloaded.routes[0].domain, "acme.com");
        assert_eq!(reloaded.routes.len(), 1, "no synced route: {exported}");
        assert_eq!(reloaded.routes[0].connection_id.as_deref(), Some("conn_1"));
    }
}
