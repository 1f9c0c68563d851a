//! The `ssobridge` command: parses the command line and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ssobridge::app::{self, AppState, StartError};
use ssobridge::config::{Config, ConfigError};
use ssobridge::{demo, telemetry, tokens};

const USAGE: &str = "\
usage:
  ssobridge serve --config FILE          run the broker
  ssobridge demo [--port N]              run offline: memory store, upstream simulator, sample app (default port 8080)
  ssobridge check-config --config FILE   validate a configuration and list every problem
  ssobridge keys generate --out FILE     write a new RSA-2048 signing key (PKCS#8 PEM)

Every config key can be overridden as SSOBRIDGE_<SECTION>__<KEY> (e.g. SSOBRIDGE_UPSTREAM__CLIENT_SECRET).";

enum Command {
    Serve { config: PathBuf },
    Demo { port: u16 },
    CheckConfig { config: PathBuf },
    KeysGenerate { out: PathBuf, force: bool },
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let flag = |name: &str| -> Option<&String> { args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) };
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["help" | "--help" | "-h", ..] => Ok(Command::Help),
        ["serve", ..] => Ok(Command::Serve { config: flag("--config").ok_or("serve needs --config FILE")?.into() }),
        ["check-config", ..] => {
            Ok(Command::CheckConfig { config: flag("--config").ok_or("check-config needs --config FILE")?.into() })
        }
        ["demo", ..] => {
            let port = match flag("--port") {
                Some(p) => p.parse().map_err(|_| format!("--port {p} is not a port number"))?,
                None => 8080,
            };
            Ok(Command::Demo { port })
        }
        ["keys", "generate", ..] => Ok(Command::KeysGenerate {
            out: flag("--out").ok_or("keys generate needs --out FILE")?.into(),
            force: words.contains(&"--force"),
        }),
        [other, ..] => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("ssobridge: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::CheckConfig { config } => return check_config(&config),
        Command::KeysGenerate { out, force } => keys_generate(&out, force),
        Command::Serve { config } => run_async(serve(config)),
        Command::Demo { port } => run_async(run_demo(port)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ssobridge: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(future: impl std::future::Future<Output = Result<(), StartError>>) -> Result<(), StartError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(future)
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => match app::load_signing_key(&config) {
            Ok(key) => {
                println!("{}: ok ({} client(s), store {})", path.display(), config.clients.len(), config.store.url);
                if key.is_none() {
                    println!("note: no signing key configured (signing.key_file); serve will refuse to start");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                println!("signing: {error}");
                ExitCode::FAILURE
            }
        },
        Err(ConfigError::Invalid(problems)) => {
            for problem in problems {
                println!("{problem}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            println!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn keys_generate(out: &std::path::Path, force: bool) -> Result<(), StartError> {
    if out.exists() && !force {
        return Err(StartError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists; pass --force to replace it", out.display()),
        )));
    }
    let pem = tokens::generate_rsa_pem()?;
    write_private(out, pem.as_bytes())?;
    println!("wrote a new RSA-2048 signing key to {}", out.display());
    Ok(())
}

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

async fn serve(path: PathBuf) -> Result<(), StartError> {
    telemetry::init();
    let config = Config::load(&path)?;
    let key = app::load_signing_key(&config)?.ok_or_else(|| {
        StartError::Config(ConfigError::Invalid(vec![ssobridge::config::Problem {
            key: "signing.key_file".to_owned(),
            message: "a signing key is required in serve mode (ssobridge keys generate --out signing.pem)".to_owned(),
        }]))
    })?;
    let listen = config.listen;
    let state = AppState::new(config, key).await?;
    if let Err(error) = state.upstream.discover().await {
        // Not fatal: the upstream may come up later; /readyz reports it meanwhile.
        tracing::warn!(error = %error, "upstream discovery failed at start");
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(listen = %listener.local_addr()?, issuer = %state.issuer, store = state.store.backend_name(), "ssobridge serving");
    app::serve(listener, app::endpoint(state, None), shutdown_signal()).await
}

async fn run_demo(port: u16) -> Result<(), StartError> {
    telemetry::init();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let port = listener.local_addr()?.port();
    let public_url = format!("http://localhost:{port}");
    let demo = demo::build(&public_url, listener.local_addr()?).await?;
    println!("ssobridge demo listening on {public_url}");
    println!("  sample app (click through):  {public_url}/");
    println!("  issuer / discovery:          {public_url}/.well-known/openid-configuration");
    println!("  client_id / client_secret:   {} / {}", demo::DEMO_CLIENT_ID, demo::DEMO_CLIENT_SECRET);
    println!("  redirect URIs:               {} , {public_url}/demo/callback", demo::DEMO_EXTERNAL_REDIRECT);
    println!("  simulated domains:           example.com, example.org (others answer domain_not_found)");
    println!(
        "  try: curl -sI '{public_url}/authorize?client_id=demo&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcallback&response_type=code&scope=openid%20email%20profile&login_hint=alice%40example.com'"
    );
    app::serve(listener, app::endpoint(demo.state, Some(demo.routes)), shutdown_signal()).await
}

/// SIGTERM or Ctrl-C: stop accepting, let in-flight requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
