use super::*;

const MINIMAL: &str = r#"
public_url = "https://sso.example.com/"
[upstream]
issuer = "https://acme.scalekit.dev"
client_id = "skc_1"
client_secret = "from-file"
[[clients]]
client_id = "auth0-prod"
client_secret = "0123456789"
redirect_uris = ["https://acme.us.auth0.com/login/callback"]
"#;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string())), Path::new("test.toml"))
}

#[test]
fn environment_overrides_file_values() {
    let config = load(
        MINIMAL,
        &[
            ("SSOBRIDGE_UPSTREAM__CLIENT_SECRET", "from-env"),
            ("SSOBRIDGE_CLIENTS__AUTH0_PROD__CLIENT_SECRET", "env-secret-1"),
            ("SSOBRIDGE_TOKENS__CODE_TTL_SECONDS", "30"),
        ],
    )
    .expect("valid");
    assert_eq!(config.upstream.client_secret.expose(), "from-env");
    assert_eq!(config.clients[0].client_secret.as_ref().map(|s| s.expose()), Some("env-secret-1"));
    assert_eq!(config.tokens.code_ttl_seconds, 30);
    assert_eq!(config.public_url, "https://sso.example.com");
}

#[test]
fn problems_name_their_keys() {
    let text = MINIMAL
        .replace("https://acme.us.auth0.com/login/callback", "http://acme.example/cb#frag")
        .replace("https://acme.scalekit.dev", "http://acme.scalekit.dev");
    let Err(ConfigError::Invalid(problems)) = load(&text, &[]) else { panic!("must be invalid") };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["upstream.issuer", "clients[0].redirect_uris"], "{problems:?}");
}

#[test]
fn unknown_and_missing_keys_are_named() {
    let Err(ConfigError::Invalid(problems)) = load(&format!("{MINIMAL}\nlisten_addr = \"x\""), &[]) else {
        panic!("must be invalid")
    };
    assert_eq!(problems[0].key, "listen_addr");
    let Err(ConfigError::Invalid(problems)) = load(&MINIMAL.replace("client_id = \"skc_1\"", ""), &[]) else {
        panic!("must be invalid")
    };
    assert_eq!(problems[0].key, "client_id");
}

#[test]
fn loopback_http_is_accepted() {
    let text = MINIMAL
        .replace("https://sso.example.com/", "http://127.0.0.1:8080")
        .replace("https://acme.us.auth0.com/login/callback", "http://localhost:3000/callback");
    load(&text, &[]).expect("loopback http is fine");
}

#[test]
fn unknown_env_key_is_refused() {
    let Err(ConfigError::Invalid(problems)) = load(MINIMAL, &[("SSOBRIDGE_UPSTREAM__CLIENT_SECRT", "x")]) else {
        panic!("must be invalid")
    };
    assert_eq!(problems[0].key, "client_secrt");
}

/// Kubernetes injects these for Services named `ssobridge` and `ssobridge-redis-master`:
/// they are left out (by name), while a misspelt key beside them is still refused.
#[test]
fn kubernetes_service_links_are_ignored_and_typos_are_not() {
    let links = [
        ("SSOBRIDGE_SERVICE_HOST", "10.96.0.10"),
        ("SSOBRIDGE_SERVICE_PORT", "80"),
        ("SSOBRIDGE_SERVICE_PORT_HTTP", "80"),
        ("SSOBRIDGE_PORT", "tcp://10.96.0.10:80"),
        ("SSOBRIDGE_PORT_80_TCP", "tcp://10.96.0.10:80"),
        ("SSOBRIDGE_PORT_80_TCP_PROTO", "tcp"),
        ("SSOBRIDGE_PORT_80_TCP_PORT", "80"),
        ("SSOBRIDGE_PORT_80_TCP_ADDR", "10.96.0.10"),
        ("SSOBRIDGE_REDIS_MASTER_SERVICE_HOST", "fd00::11"),
        ("SSOBRIDGE_REDIS_MASTER_SERVICE_PORT_TCP_REDIS", "6379"),
        ("SSOBRIDGE_REDIS_MASTER_PORT", "tcp://fd00::11:6379"),
        ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP", "tcp://fd00::11:6379"),
        ("SSOBRIDGE_REDIS_MASTER_PORT_6379_TCP_ADDR", "fd00::11"),
        ("SSOBRIDGE_METRICS_PORT_9090_UDP_PROTO", "udp"),
        ("SSOBRIDGE_ADMIN_PORT_9090_SCTP_PORT", "9090"),
    ];
    let config = load(MINIMAL, &links).expect("service links are not config keys");
    let mut expected: Vec<&str> = links.iter().map(|(k, _)| *k).collect();
    expected.sort_unstable();
    assert_eq!(config.ignored_env, expected);
    // Beside them, a real override still applies and a typo is still refused.
    let mut env = links.to_vec();
    env.push(("SSOBRIDGE_TOKENS__CODE_TTL_SECONDS", "30"));
    assert_eq!(load(MINIMAL, &env).expect("valid").tokens.code_ttl_seconds, 30);
    env.push(("SSOBRIDGE_UPSTREAM__CLIENT_SECRT", "x"));
    assert!(matches!(load(MINIMAL, &env), Err(ConfigError::Invalid(p)) if p[0].key == "client_secrt"));
    // Shapes that are not the kubelet's are keys like any other: refused as unknown.
    for (name, value) in [
        ("SSOBRIDGE_REDIS_SERVICE_HOST", "redis.internal"),
        ("SSOBRIDGE_ADMIN_PORT", "9090"),
        ("SSOBRIDGE_PORT_80_TCP_ADDR", "not-an-ip"),
        ("SSOBRIDGE_PORT_80_HTTP", "tcp://10.0.0.1:80"),
        ("SSOBRIDGE_STORE__SERVICE_HOST", "10.0.0.1"),
        ("SSOBRIDGE_LISTEN_PORT", "tcp://10.0.0.1:80x"),
    ] {
        assert!(load(MINIMAL, &[(name, value)]).is_err(), "{name}={value} is not a service link");
    }
    // Top-level keys are single-part names too, and stay keys.
    let config = load(MINIMAL, &[("SSOBRIDGE_LISTEN", "0.0.0.0:8081")]).expect("listen");
    assert_eq!(config.listen.port(), 8081);
}

/// The `[store]` keys of `env` over MINIMAL: the problems' keys, or the store config.
fn store(env: &[(&str, &str)]) -> Result<StoreConfig, Vec<String>> {
    match load(MINIMAL, env) {
        Ok(config) => Ok(config.store),
        Err(ConfigError::Invalid(problems)) => Err(problems.iter().map(|p| p.key.clone()).collect()),
        Err(other) => Err(vec![other.to_string()]),
    }
}

#[test]
fn store_modes_and_their_problems() {
    let cluster =
        store(&[("SSOBRIDGE_STORE__MODE", "cluster"), ("SSOBRIDGE_STORE__URL", "redis://a:7000, redis://b:7001")])
            .expect("cluster seeds");
    assert_eq!((cluster.mode, cluster.urls()), (StoreMode::Cluster, vec!["redis://a:7000", "redis://b:7001"]));
    assert_eq!(store(&[]).expect("default").mode, StoreMode::Standalone);

    let problems = |env: &[(&str, &str)]| store(env).expect_err("must be invalid");
    assert_eq!(problems(&[("SSOBRIDGE_STORE__MODE", "cluster")]), ["store.mode"], "cluster on memory");
    assert_eq!(problems(&[("SSOBRIDGE_STORE__URL", "redis://a:1,redis://b:2")]), ["store.url"], "seeds need cluster");
    assert_eq!(
        problems(&[("SSOBRIDGE_STORE__MODE", "cluster"), ("SSOBRIDGE_STORE__URL", "redis://a:1,rediss://b:2")]),
        ["store.url"],
        "one scheme for all seeds"
    );
    assert_eq!(
        problems(&[
            ("SSOBRIDGE_STORE__MODE", "cluster"),
            ("SSOBRIDGE_STORE__URL", "redis://a:1"),
            ("SSOBRIDGE_STORE__KEY_PREFIX", "{sso}:")
        ]),
        ["store.key_prefix"],
        "a hash tag in the prefix would put everything in one slot"
    );
    assert_eq!(
        problems(&[("SSOBRIDGE_STORE__URL", "redis://a:1"), ("SSOBRIDGE_STORE__TLS_CA_FILE", "/ca.pem")]),
        ["store.tls_ca_file"],
        "TLS files without rediss://"
    );
    assert_eq!(
        problems(&[("SSOBRIDGE_STORE__URL", "rediss://a:1"), ("SSOBRIDGE_STORE__TLS_CERT_FILE", "/c.pem")]),
        ["store.tls_cert_file"],
        "a client certificate without its key"
    );
    let Err(ConfigError::Invalid(bad)) = load(MINIMAL, &[("SSOBRIDGE_STORE__MODE", "sentinel")]) else {
        panic!("an unknown mode is refused")
    };
    assert_eq!(bad[0].key, "store.mode", "{bad:?}");
    assert!(bad[0].message.starts_with("must be \"standalone\" or \"cluster\""), "{bad:?}");
    let Err(ConfigError::Invalid(bad)) = load(MINIMAL, &[("SSOBRIDGE_UPSTREAM__ALLOWED_ALGORITHMS", "[\"HS256\"]")])
    else {
        panic!("HMAC is refused on upstream tokens")
    };
    assert_eq!(bad[0].key, "upstream.allowed_algorithms", "{bad:?}");
}

#[test]
fn scalekit_settings_and_their_problems() {
    assert!(load(MINIMAL, &[]).expect("valid").scalekit.is_none(), "absent: no management API calls");
    let config = load(
        MINIMAL,
        &[
            ("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("SSOBRIDGE_SCALEKIT__LOOKUP_ON_MISS", "true"),
            ("SSOBRIDGE_SCALEKIT__API_URL", "https://acme.scalekit.dev/"),
        ],
    )
    .expect("valid");
    let scalekit = config.scalekit.expect("the section, from the environment");
    assert_eq!(
        (scalekit.sync_interval_seconds, scalekit.lookup_on_miss, scalekit.lookup_cache_seconds),
        (300, true, 300)
    );
    assert_eq!(scalekit.api_url.as_deref(), Some("https://acme.scalekit.dev"));
    let problems = |env: &[(&str, &str)]| match load(MINIMAL, env) {
        Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect::<Vec<_>>(),
        other => panic!("must be invalid: {other:?}"),
    };
    assert_eq!(
        problems(&[("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]),
        ["scalekit.webhook_secret"]
    );
    assert_eq!(problems(&[("SSOBRIDGE_SCALEKIT__WEBHOOK_SECRET", "whsec_c2hvcnQ=")]), ["scalekit.webhook_secret"]);
    assert_eq!(problems(&[("SSOBRIDGE_SCALEKIT__API_URL", "http://acme.scalekit.dev")]), ["scalekit.api_url"]);
    assert_eq!(problems(&[("SSOBRIDGE_SCALEKIT__LOOKUP_CACHE_SECONDS", "0")]), ["scalekit.lookup_cache_seconds"]);
    let Err(ConfigError::Invalid(unknown)) = load(&format!("{MINIMAL}\n[scalekit]\nsync_every = 5\n"), &[]) else {
        panic!("an unknown key is refused")
    };
    assert_eq!(unknown[0].key, "sync_every");
}

#[test]
fn idp_initiated_issuers_are_urls_and_come_from_the_environment() {
    assert!(load(MINIMAL, &[]).expect("valid").upstream.idp_initiated_issuers.is_empty(), "default: public_url");
    let config = load(
        MINIMAL,
        &[("SSOBRIDGE_UPSTREAM__IDP_INITIATED_ISSUERS", "https://b2b-app.com/, http://airdev.localhost:8888")],
    )
    .expect("valid");
    assert_eq!(config.upstream.idp_initiated_issuers, ["https://b2b-app.com", "http://airdev.localhost:8888"]);
    for bad in ["b2b-app.com", "https://b2b-app.com/?x=1", "ftp://b2b-app.com"] {
        let Err(ConfigError::Invalid(problems)) = load(MINIMAL, &[("SSOBRIDGE_UPSTREAM__IDP_INITIATED_ISSUERS", bad)])
        else {
            panic!("{bad} must be refused")
        };
        assert_eq!(problems[0].key, "upstream.idp_initiated_issuers", "{bad}");
    }
}

#[test]
fn store_urls_print_without_passwords() {
    let config = |url: &str| StoreConfig { url: url.to_owned(), ..StoreConfig::default() };
    assert_eq!(config("redis://redis:6379/0").redacted_url(), "redis://redis:6379/0");
    assert_eq!(config("memory").redacted_url(), "memory");
    let redacted = config("rediss://user:hunter2@a:1,redis://:pw2@b:2/0").redacted_url();
    assert!(!redacted.contains("hunter2") && !redacted.contains("pw2"), "{redacted}");
    assert!(redacted.contains("rediss://user:redacted@a:1") && redacted.contains("@b:2/0"), "{redacted}");
}
