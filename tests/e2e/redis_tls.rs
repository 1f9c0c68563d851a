//! The store over TLS (`rediss://`) to a real `redis-server` serving TLS only, with a private
//! CA made by the `openssl` CLI: the conformance suite, a full login, client certificates, and
//! a server whose certificate the configured CA did not issue refused at start, clearly.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use crate::common::tempdir::TempDir;
use crate::common::{rp, BrokerSocket, ClientCertificate, Redis, RedisOptions, RedisTls, AUTH0_CLIENT};
use serde_json::json;
use ssobridge::config::StoreConfig;
use ssobridge::store::{conformance, RedisStore, Store, StoreError};
use tokio::process::Command;

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e} (scripts/install-test-deps.sh installs it)"));
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA, and certificates it issued: a server's for 127.0.0.1 and localhost, a client's.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki { dir: TempDir::new("pki") };
        let dir = pki.dir.path();
        pki.make_ca("ca");
        pki.make_ca("other-ca");
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n\
             subjectAltName = IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n",
        )
        .expect("write");
        for (name, cn) in [("server", "localhost"), ("client", "ssobridge")] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &key]);
            openssl(dir, &["req", "-new", "-key", &key, "-subj", &format!("/CN={cn}"), "-out", &csr]);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    "2",
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        pki
    }

    fn make_ca(&self, name: &str) {
        let dir = self.dir.path();
        let config = format!("{name}.cnf");
        std::fs::write(
            dir.join(&config),
            format!(
                "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\nCN = ssobridge test {name}\n\
                 [ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
                 subjectKeyIdentifier = hash\n"
            ),
        )
        .expect("write");
        openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &format!("{name}.key")]);
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-config",
                &config,
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// `redis-server` serving TLS only, with the PKI's server certificate; with
/// `client_certificates`, it requires a client certificate the CA issued.
async fn tls_redis(pki: &Pki, client_certificates: bool) -> Redis {
    let tls = RedisTls {
        ca: pki.path("ca.pem"),
        server_certificate: pki.path("server.pem"),
        server_key: pki.path("server.key"),
        client: client_certificates
            .then(|| ClientCertificate { certificate: pki.path("client.pem"), key: pki.path("client.key") }),
    };
    Redis::start_with(RedisOptions { tls: Some(tls), ..RedisOptions::default() }).await
}

fn tls_config(url: &str, prefix: &str, ca: Option<PathBuf>) -> StoreConfig {
    StoreConfig { url: url.to_owned(), key_prefix: prefix.to_owned(), tls_ca_file: ca, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_redis_store_conforms() {
    let pki = Pki::new();
    let redis = tls_redis(&pki, false).await;
    let store = RedisStore::from_config(&tls_config(&redis.url(), "conformance:", Some(pki.path("ca.pem"))))
        .await
        .expect("connect over TLS, trusting the private CA");
    conformance::run(Arc::new(store), "suite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_over_rediss_with_a_private_ca() {
    let pki = Pki::new();
    let redis = tls_redis(&pki, false).await;
    let socket = BrokerSocket::bind().await;
    let upstream = crate::common::Upstream::start(&[socket.callback()]).await;
    let ca = pki.path("ca.pem");
    let toml = crate::common::broker_toml(&socket.url, &redis.url(), "tls:", &upstream.issuer)
        .replace("[store]\n", &format!("[store]\ntls_ca_file = {:?}\n", ca.display().to_string()));
    let broker = socket.serve(&toml, ssobridge::tokens::SigningKey::generate_rsa().expect("key")).await;
    let result = rp(&json!({
        "issuer": broker.url, "client_id": AUTH0_CLIENT.client_id, "client_secret": AUTH0_CLIENT.secret,
        "redirect_uri": AUTH0_CLIENT.redirect_uri, "mode": "auth0", "params": {"login_hint": "alice@acme.test"},
    }))
    .await;
    assert_eq!(result["ok"], true, "{result}");
    // The login's state went through the TLS Redis (the server has no plain port).
    let store = RedisStore::from_config(&tls_config(&redis.url(), "tls:", Some(ca))).await.expect("connect");
    assert!(store.get("seeded").await.expect("get").is_some(), "the broker seeded the TLS Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused_at_start() {
    let pki = Pki::new();
    let redis = tls_redis(&pki, false).await;

    // The library: a clear store error, naming the address (never a password) and the setting.
    let url = format!("rediss://:not-this-password@127.0.0.1:{}/0", redis.port);
    for ca in [Some(pki.path("other-ca.pem")), None] {
        let refused = RedisStore::from_config(&tls_config(&url, "x:", ca.clone())).await.err();
        let Some(StoreError::Unavailable(message)) = refused else {
            panic!("a certificate the CA did not issue must be refused (ca {ca:?}): {refused:?}")
        };
        eprintln!("refused: {message}");
        assert!(message.contains("127.0.0.1") && !message.contains("not-this-password"), "{message}");
        assert!(message.contains("certificate") && message.contains("store.tls_ca_file"), "{message}");
    }

    // The binary: serve refuses to start (as for an unreachable store); check-config refuses a
    // file that holds no certificate, by its key.
    let dir = TempDir::new("wrong-ca");
    let config = dir.path().join("c.toml");
    let write = |ca: &Path| {
        let toml = crate::common::broker_toml("http://127.0.0.1:9", &url, "x:", "http://127.0.0.1:9")
            .replace("[store]\n", &format!("[store]\ntls_ca_file = {:?}\n", ca.display().to_string()));
        std::fs::write(&config, toml).expect("write");
    };
    write(&pki.path("other-ca.pem"));
    let pem = ssobridge::tokens::generate_rsa_pem().expect("pem");
    let serve = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value)
        .env(crate::common::OPS_LISTEN.name, crate::common::OPS_LISTEN.value)
        .args(["serve", "--config"])
        .arg(&config)
        .env("SSOBRIDGE_SIGNING__KEY_PEM", &pem)
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), serve).await.expect("serve exits").expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve must not start: {stderr}");
    assert!(stderr.contains("cannot connect to rediss://") && stderr.contains("store.tls_ca_file"), "{stderr}");
    assert!(!stderr.contains("not-this-password"), "{stderr}");

    write(&pki.path("server.ext"));
    let out = Command::new(env!("CARGO_BIN_EXE_ssobridge"))
        .env(crate::common::PAIRWISE_SALT.name, crate::common::PAIRWISE_SALT.value)
        .env(crate::common::OPS_LISTEN.name, crate::common::OPS_LISTEN.value)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && stdout.contains("store.tls_ca_file"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_when_the_server_requires_them() {
    let pki = Pki::new();
    let redis = tls_redis(&pki, true).await;
    let mut config = tls_config(&redis.url(), "mtls:", Some(pki.path("ca.pem")));
    assert!(RedisStore::from_config(&config).await.is_err(), "no client certificate: refused by the server");
    config.tls_cert_file = Some(pki.path("client.pem"));
    config.tls_key_file = Some(pki.path("client.key"));
    let store = RedisStore::from_config(&config).await.expect("connect with a client certificate");
    store.put("k", b"v", std::time::Duration::from_secs(60)).await.expect("put");
    assert_eq!(store.get("k").await.expect("get").as_deref(), Some(&b"v"[..]));
}
