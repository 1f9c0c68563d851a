//! A real `redis-server` for the tests, in each form they need: plain, durable, a cluster node,
//! or TLS only. It runs on a free loopback port, is ready once it answers PING, and is killed
//! by its PID when dropped (`kill_on_drop`; a frozen server dies of SIGKILL too).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::tempdir::TempDir;
use super::{free_port, wait_for_line, wait_until, STARTUP_DEADLINE};

/// How a server differs from the default: plain TCP, nothing kept on disk.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// Keep the data across a kill: an append-only file, fsync on every write.
    pub durable: bool,
    /// A cluster node with this node timeout (its cluster bus on a second free port).
    pub cluster_node_timeout: Option<Duration>,
    /// TLS only (no plain port), with these certificates.
    pub tls: Option<RedisTls>,
}

/// The certificates of a TLS-only server.
#[derive(Clone, Debug)]
pub struct RedisTls {
    pub ca: PathBuf,
    pub server_certificate: PathBuf,
    pub server_key: PathBuf,
    /// When set, clients must present a certificate the CA issued; PING presents this one.
    pub client: Option<ClientCertificate>,
}

#[derive(Clone, Debug)]
pub struct ClientCertificate {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

pub struct Redis {
    child: Child,
    pub port: u16,
    /// The cluster bus port of a cluster node, kept for a restart.
    cluster_port: Option<u16>,
    options: RedisOptions,
    dir: TempDir,
}

impl Redis {
    /// A plain server with no persistence.
    pub async fn start() -> Redis {
        Self::start_with(RedisOptions::default()).await
    }

    pub async fn start_with(options: RedisOptions) -> Redis {
        let dir = TempDir::new("redis");
        let mut last_error = String::new();
        // A free port can be taken by another test between the probe and the bind: try another.
        for _ in 0..5 {
            let port = free_port();
            let cluster_port = options.cluster_node_timeout.map(|_| free_port());
            match spawn(&options, port, cluster_port, &dir).await {
                Ok(child) => return Redis { child, port, cluster_port, options, dir },
                Err(error) => {
                    eprintln!("redis-server on {port}: {error}; retrying");
                    last_error = error;
                }
            }
        }
        panic!("redis-server did not start: {last_error} (scripts/install-test-deps.sh installs it)");
    }

    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to be gone; `restart` brings it back.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts the server again on the same port, with the same options and directory (a
    /// durable server finds its data there).
    pub async fn restart(&mut self) {
        self.child = spawn(&self.options, self.port, self.cluster_port, &self.dir).await.expect("redis restart");
    }

    /// Stops the process (SIGSTOP): connections stay open and nothing is answered.
    pub async fn freeze(&self) {
        self.signal("STOP").await;
    }

    /// Continues a frozen process (SIGCONT).
    pub async fn thaw(&self) {
        self.signal("CONT").await;
    }

    async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("redis-server is running");
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().await.expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

/// Starts `redis-server` on `port` and returns once it answers PING there.
async fn spawn(options: &RedisOptions, port: u16, cluster_port: Option<u16>, dir: &TempDir) -> Result<Child, String> {
    let mut command = Command::new("redis-server");
    command.args(["--bind", "127.0.0.1", "--save", ""]).arg("--dir").arg(dir.path());
    if options.durable {
        command.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        command.args(["--appendonly", "no"]);
    }
    match &options.tls {
        None => command.args(["--port", &port.to_string()]),
        Some(tls) => command
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&tls.server_certificate)
            .arg("--tls-key-file")
            .arg(&tls.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&tls.ca)
            .args(["--tls-auth-clients", if tls.client.is_some() { "yes" } else { "no" }]),
    };
    if let (Some(timeout), Some(cluster_port)) = (options.cluster_node_timeout, cluster_port) {
        command
            .args(["--cluster-enabled", "yes", "--cluster-port", &cluster_port.to_string()])
            .args(["--cluster-node-timeout", &timeout.as_millis().to_string()])
            .arg("--cluster-config-file")
            .arg(dir.path().join("nodes.conf"))
            // Replicas sync at once (the default waits 5 s for more replicas to come).
            .args(["--repl-diskless-sync-delay", "0"]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    // The line says this process holds the port (it exits instead when another has it);
    // PING then says that it serves there, TLS included.
    wait_for_line(&mut child, "redis-server", |l| l.contains("Ready to accept connections")).await?;
    wait_until(&format!("redis-server on {port} to answer PING"), STARTUP_DEADLINE, || ping(options, port)).await;
    Ok(child)
}

/// Whether the server on `port` answers `PING` with `PONG` (through `redis-cli`, which speaks
/// TLS as well).
async fn ping(options: &RedisOptions, port: u16) -> bool {
    let mut cli = Command::new("redis-cli");
    cli.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(tls) = &options.tls {
        cli.arg("--tls").arg("--cacert").arg(&tls.ca);
        if let Some(client) = &tls.client {
            cli.arg("--cert").arg(&client.certificate).arg("--key").arg(&client.key);
        }
    }
    let output = cli.arg("PING").stdin(Stdio::null()).stderr(Stdio::null()).output().await;
    output.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
}
