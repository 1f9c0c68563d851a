//! Prism (npm `@stoplight/prism-cli`, installed by scripts/deps/auth0.sh into
//! adapters/auth0/mock) serving tests/fixtures/auth0-management.yaml: as a mock answering
//! from the spec's examples, or as a validating proxy in front of the fake tenant. With
//! `--errors`, a request or response that breaks the spec gets an error answer, and Prism's
//! log says why; [`Prism::violations`] reads that log.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
const FENCE: &str = "/__ssobridge_log_fence";

fn crate_dir() -> PathBuf {
    // This harness also serves the broker's end-to-end tests, whose manifest is the workspace root.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.join("mock").is_dir() {
        here
    } else {
        here.join("adapters/auth0")
    }
}

pub fn spec_path() -> PathBuf {
    crate_dir().join("tests/fixtures/auth0-management.yaml")
}

fn prism_cli() -> PathBuf {
    crate_dir().join("mock/node_modules/@stoplight/prism-cli/dist/index.js")
}

pub struct Prism {
    child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
    lines: watch::Receiver<usize>,
}

impl Prism {
    pub async fn mock() -> Prism {
        Prism::start(&["mock"], None).await
    }

    pub async fn proxy(upstream: &str) -> Prism {
        Prism::start(&["proxy"], Some(upstream)).await
    }

    async fn start(mode: &[&str], upstream: Option<&str>) -> Prism {
        let cli = prism_cli();
        assert!(cli.exists(), "Prism is not installed at {} (scripts/install-test-deps.sh installs it)", cli.display());
        let mut command = Command::new("node");
        command.arg(&cli).args(mode).args(["--errors", "-h", "127.0.0.1", "-p", "0"]).arg(spec_path());
        if let Some(upstream) = upstream {
            command.arg(upstream);
        }
        let mut child = command
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed (scripts/install-test-deps.sh)");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut lines) = watch::channel(0usize);
        let tx = Arc::new(tx);
        collect(child.stdout.take().expect("stdout"), log.clone(), tx.clone());
        collect(child.stderr.take().expect("stderr"), log.clone(), tx);
        let base = tokio::time::timeout(STARTUP_DEADLINE, async {
            loop {
                if let Some(base) = log.lock().expect("log").iter().find_map(|l| listening_on(l)) {
                    return Some(base);
                }
                if lines.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match base {
            Ok(Some(base)) => Prism { child, base, log, lines },
            other => panic!(
                "Prism did not start ({}): {}",
                if other.is_err() { "deadline" } else { "exited" },
                log.lock().expect("log").join("\n")
            ),
        }
    }

    /// Waits until Prism logged everything about the requests made so far: it handles and
    /// logs requests in order, so a fence request's log line comes after theirs.
    pub async fn settle(&mut self) {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let _ = reqwest::get(format!("{}{FENCE}", self.base)).await;
        let fenced = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if self.log.lock().expect("log").iter().any(|l| l.contains(FENCE)) {
                    return;
                }
                if self.lines.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(fenced.is_ok(), "Prism never logged the fence request");
        // The fence is the last request; give its remaining lines the same chance.
        self.log.lock().expect("log").push(String::new());
    }

    /// Every log line that reports a spec violation or an error, except about the fence.
    pub fn violations(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| !l.contains(FENCE) && !l.contains("NO_PATH_MATCHED"))
            .filter(|l| l.contains("Violation") || l.contains("did not pass") || l.contains('✖'))
            .cloned()
            .collect()
    }

    /// Lines that record a request Prism received (`[HTTP SERVER] get /api/v2/users …`).
    pub fn requests(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains("Request received") && !l.contains(FENCE))
            .cloned()
            .collect()
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn listening_on(line: &str) -> Option<String> {
    let at = line.find("listening on http://")?;
    Some(line[at + "listening on ".len()..].trim().to_owned())
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    tx: Arc<watch::Sender<usize>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let count = {
                let mut log = log.lock().expect("log");
                log.push(line);
                log.len()
            };
            let _ = tx.send(count);
        }
    });
}
