//! The `ssobridge` command: parses the command line and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ssobridge::admin::{self, AdminTokens};
use ssobridge::app;
use ssobridge::config::{Config, ConfigError};
use ssobridge::state::{self, AppState, StartError};
use ssobridge::{demo, telemetry, tokens};

/// jemalloc instead of the system allocator: a login makes hundreds of small allocations
/// (headers, JSON, URLs), and glibc's malloc was 14% of the server's CPU under load;
/// loginbench measured 7% more logins per core with a faster allocator (benches/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "\
usage:
  ssobridge serve --config FILE          run the broker
  ssobridge demo [--port N | --listen ADDR] [--public-url URL]
                                         run offline: memory store, upstream simulator, sample app, on
                                         127.0.0.1:8080 (--port N: 127.0.0.1:N; --listen 0.0.0.0:8080 in a
                                         container); its issuer is http://localhost:PORT unless --public-url
                                         names the address browsers use (https://, or http:// on loopback)
  ssobridge simulator --client-secret S --redirect-uri URI [--port N] [--client-id ID]
                      [--issuer-url URL] [--initiate-login-uri URI] [--organization-metadata KEY=VALUE]
                      [--iss-on-redirect] [--webhook-url URL --webhook-secret whsec_…]
                                         run the demo's Scalekit simulator alone on 127.0.0.1:N (default 8090),
                                         for testing a stack against it; --redirect-uri repeats or takes a comma list;
                                         {{KEY}} in --initiate-login-uri is each organization's metadata (repeatable);
                                         its portal's domain changes go to --webhook-url as signed webhooks
  ssobridge check-config --config FILE   validate a configuration and list every problem
  ssobridge keys generate --out FILE [--alg RS256|ES256]
                                         write a new signing key (PKCS#8 PEM): RSA-2048 (default;
                                         signs RS256 and PS256) or P-256 (ES256, for signing.ec_key_file)
  ssobridge export-config --config FILE  print the running clients and routes (from the store) as a config file
  ssobridge admin-token                  print a new admin API token and the SHA-256 to configure
  ssobridge openapi                      print the admin API's OpenAPI document

Every config key can be overridden as SSOBRIDGE_<SECTION>__<KEY> (e.g. SSOBRIDGE_UPSTREAM__CLIENT_SECRET).";

/// `ssobridge simulator`'s flags.
struct SimulatorOptions {
    port: u16,
    issuer_url: Option<String>,
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    initiate_login_uri: Option<String>,
    organization_metadata: Vec<(String, String)>,
    iss_on_redirect: bool,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
}

enum Command {
    Serve { config: PathBuf },
    Demo { listen: SocketAddr, public_url: Option<String> },
    Simulator(SimulatorOptions),
    CheckConfig { config: PathBuf },
    KeysGenerate { out: PathBuf, force: bool, key_type: tokens::KeyType },
    AdminToken,
    OpenApi,
    ExportConfig { config: PathBuf },
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
            let listen = match (flag("--listen"), flag("--port")) {
                (Some(_), Some(_)) => return Err("demo takes --listen ADDR or --port N, not both".to_owned()),
                (Some(a), None) => {
                    a.parse().map_err(|_| format!("--listen {a} is not an address (e.g. 0.0.0.0:8080)"))?
                }
                (None, Some(p)) => SocketAddr::from((
                    [127, 0, 0, 1],
                    p.parse::<u16>().map_err(|_| format!("--port {p} is not a port number"))?,
                )),
                (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
            };
            let public_url = flag("--public-url").map(|u| u.trim_end_matches('/').to_owned());
            Ok(Command::Demo { listen, public_url })
        }
        ["simulator", ..] => {
            let port = match flag("--port") {
                Some(p) => p.parse().map_err(|_| format!("--port {p} is not a port number"))?,
                None => 8090,
            };
            // Every --redirect-uri, each possibly a comma list.
            let redirect_uris: Vec<String> = args
                .windows(2)
                .filter(|pair| pair[0] == "--redirect-uri")
                .flat_map(|pair| pair[1].split(','))
                .map(str::trim)
                .filter(|uri| !uri.is_empty())
                .map(str::to_owned)
                .collect();
            if redirect_uris.is_empty() {
                return Err("simulator needs --redirect-uri URI (the broker's callback)".to_owned());
            }
            // The broker's initiate-login endpoint sits next to its callback.
            let initiate_login_uri = flag("--initiate-login-uri").cloned().or_else(|| {
                redirect_uris.first()?.strip_suffix("/callback").map(|base| format!("{base}/initiate-login"))
            });
            // Every --organization-metadata KEY=VALUE: what each organization carries.
            let organization_metadata = args
                .windows(2)
                .filter(|pair| pair[0] == "--organization-metadata")
                .map(|pair| match pair[1].split_once('=') {
                    Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                    _ => Err(format!("--organization-metadata {}: write KEY=VALUE", pair[1])),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Command::Simulator(SimulatorOptions {
                port,
                issuer_url: flag("--issuer-url").map(|u| u.trim_end_matches('/').to_owned()),
                client_id: flag("--client-id").cloned().unwrap_or_else(|| "ssobridge".to_owned()),
                client_secret: flag("--client-secret").ok_or("simulator needs --client-secret SECRET")?.clone(),
                redirect_uris,
                initiate_login_uri,
                organization_metadata,
                iss_on_redirect: words.contains(&"--iss-on-redirect"),
                webhook_url: flag("--webhook-url").cloned(),
                webhook_secret: flag("--webhook-secret").cloned(),
            }))
        }
        ["keys", "generate", ..] => Ok(Command::KeysGenerate {
            out: flag("--out").ok_or("keys generate needs --out FILE")?.into(),
            force: words.contains(&"--force"),
            key_type: match flag("--alg").map(String::as_str) {
                None | Some("RS256" | "PS256" | "RSA") => tokens::KeyType::Rsa,
                Some("ES256" | "EC") => tokens::KeyType::Ec,
                Some(other) => return Err(format!("--alg {other}: use RS256 (RSA-2048) or ES256 (P-256)")),
            },
        }),
        ["admin-token", ..] => Ok(Command::AdminToken),
        ["export-config", ..] => {
            Ok(Command::ExportConfig { config: flag("--config").ok_or("export-config needs --config FILE")?.into() })
        }
        ["openapi", ..] => Ok(Command::OpenApi),
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
        Command::KeysGenerate { out, force, key_type } => keys_generate(&out, force, key_type),
        Command::AdminToken => admin_token(),
        Command::ExportConfig { config } => run_async(async move {
            let config = Config::load(&config)?;
            print!("{}", ssobridge::export::export(&config).await?);
            Ok(())
        }),
        Command::OpenApi => match admin::spec_json() {
            Ok(spec) => {
                println!("{spec}");
                Ok(())
            }
            Err(error) => Err(StartError::Io(std::io::Error::other(error))),
        },
        Command::Serve { config } => run_async(serve(config)),
        Command::Demo { listen, public_url } => run_async(run_demo(listen, public_url)),
        Command::Simulator(options) => run_async(run_simulator(options)),
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
        Ok(config) if !config.serve_problems().is_empty() => {
            for problem in config.serve_problems() {
                println!("{problem}");
            }
            ExitCode::FAILURE
        }
        Ok(config) => match state::load_signing_key(&config) {
            Ok(key) => {
                // No log subscriber here: check-config's reader is the terminal.
                for name in &config.ignored_env {
                    println!("warning: {name} ignored: a Kubernetes service link variable, not a config key");
                }
                if let Err(error) = ssobridge::store::tls_certificates(&config.store) {
                    println!("{error}");
                    return ExitCode::FAILURE;
                }
                let mode = match config.store.mode {
                    ssobridge::config::StoreMode::Standalone => "",
                    ssobridge::config::StoreMode::Cluster => " (cluster)",
                };
                // The URL may carry a password.
                let store = config.store.redacted_url();
                println!("{}: ok ({} client(s), store {store}{mode})", path.display(), config.clients.len());
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

fn keys_generate(out: &std::path::Path, force: bool, key_type: tokens::KeyType) -> Result<(), StartError> {
    if out.exists() && !force {
        return Err(StartError::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists; pass --force to replace it", out.display()),
        )));
    }
    let pem = tokens::generate_pem(key_type)?;
    write_private(out, pem.as_bytes())?;
    match key_type {
        tokens::KeyType::Rsa => println!("wrote a new RSA-2048 signing key to {}", out.display()),
        tokens::KeyType::Ec => {
            println!("wrote a new EC P-256 signing key to {} (for signing.ec_key_file)", out.display())
        }
    }
    Ok(())
}

fn admin_token() -> Result<(), StartError> {
    let token = tokens::random_token(32)?;
    println!("token:   {token}");
    println!("sha256:  {}", tokens::sha256_hex(&token));
    println!("Give the token to the operator; put the sha256 in [admin] write_tokens_sha256 or read_tokens_sha256.");
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
    let problems = config.serve_problems();
    if !problems.is_empty() {
        return Err(StartError::Config(ConfigError::Invalid(problems)));
    }
    let key = state::load_signing_key(&config)?.ok_or_else(|| {
        StartError::Config(ConfigError::Invalid(vec![ssobridge::config::Problem {
            key: "signing.key_file".to_owned(),
            message: "a signing key is required in serve mode (ssobridge keys generate --out signing.pem)".to_owned(),
        }]))
    })?;
    let listen = config.listen;
    // The upstream is checked in the background from now on; /readyz says how it went.
    let state = AppState::new(config, key).await?;
    let _sync = state::spawn_route_sync(state.clone());
    let admin_config = state.config.admin.clone();
    let admin = admin_config.enabled().then(|| {
        let tokens = AdminTokens {
            read: admin_config.read_tokens_sha256.clone(),
            write: admin_config.write_tokens_sha256.clone(),
        };
        admin::endpoint(state.clone(), tokens)
    });
    // `admin.listen = "public"`: everything on the public listener. Otherwise the operations
    // listener (admin API, /readyz, /metrics) runs on its own address, not for the internet.
    let all_public = admin_config.listen == "public";
    let (public_extra, operations) = match admin {
        Some(admin) if all_public => (Some(poem::EndpointExt::boxed(poem::Route::new().nest("/admin", admin))), None),
        None if all_public => (None, None),
        admin => (None, Some(app::operations_endpoint(state.clone(), admin))),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let admin_listener = match &operations {
        Some(_) => Some(tokio::net::TcpListener::bind(admin_config.listen.as_str()).await?),
        None => None,
    };
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    if let (Some(operations), Some(admin_listener)) = (operations, admin_listener) {
        tracing::info!(
            listen = %admin_listener.local_addr()?,
            admin_api = admin_config.enabled(),
            "operations listener serving (/readyz, /metrics, /healthz, /admin)"
        );
        let stopped = stopped.clone();
        tokio::spawn(async move {
            if let Err(error) = app::serve(admin_listener, operations, until_stopped(stopped)).await {
                tracing::error!(error = %error, "admin API listener failed");
            }
        });
    }
    tracing::info!(listen = %listener.local_addr()?, issuer = %state.issuer, store = state.store.backend_name(), "ssobridge serving");
    let ops_public = all_public || admin_config.ops_on_public_listener;
    app::serve(listener, app::endpoint(state, public_extra, ops_public), until_stopped(stopped)).await
}

async fn run_demo(listen: SocketAddr, public_url: Option<String>) -> Result<(), StartError> {
    telemetry::init();
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    // The issuer is the address a browser uses, not the bound one: with --listen 0.0.0.0:8080
    // in a container published as -p 8080:8080, that is still http://localhost:8080. The demo
    // also calls itself at this URL (its simulator is the upstream), so it must reach it too.
    let public_url = public_url.unwrap_or_else(|| format!("http://localhost:{}", bound.port()));
    let demo = demo::build(&public_url, bound).await?;
    let _sync = state::spawn_route_sync(demo.state.clone());
    // Scripts and tests read the URL off this first line.
    println!("ssobridge demo listening on {public_url}");
    println!("  bound to:                    {bound}");
    println!("  sample app (click through):  {public_url}/");
    println!("  issuer / discovery:          {public_url}/.well-known/openid-configuration");
    println!("  client_id / client_secret:   {} / {}", demo::DEMO_CLIENT_ID, demo::DEMO_CLIENT_SECRET);
    println!("  redirect URIs:               {} , {public_url}/demo/callback", demo::DEMO_EXTERNAL_REDIRECT);
    println!("  simulated domains:           example.com, example.org (others answer domain_not_found)");
    println!(
        "  try: curl -sI '{public_url}/authorize?client_id=demo&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcallback&response_type=code&scope=openid%20email%20profile&login_hint=alice%40example.com'"
    );
    println!("  admin API (Swagger UI):      {public_url}/admin/docs   bearer token: {}", demo::DEMO_ADMIN_TOKEN);
    println!("  add an organization:         {public_url}/simulator/portal (its webhook reaches {public_url}/webhooks/scalekit)");
    // The demo is one listener for everything, operations included.
    app::serve(
        listener,
        app::endpoint(demo.state, Some(poem::EndpointExt::boxed(demo.routes)), true),
        shutdown_signal(),
    )
    .await
}

async fn run_simulator(options: SimulatorOptions) -> Result<(), StartError> {
    use ssobridge::demo::simulator::{self, DemoOnly, Simulator, SimulatorSettings};
    let proof = DemoOnly::claim().map_err(|e| StartError::Io(std::io::Error::other(e)))?;
    telemetry::init();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
    let port = listener.local_addr()?.port();
    let issuer = options.issuer_url.unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
    let settings = SimulatorSettings {
        issuer: issuer.clone(),
        client_id: options.client_id,
        client_secret: ssobridge::secret::Secret::new(options.client_secret),
        redirect_uris: options.redirect_uris,
        initiate_login_uri: options.initiate_login_uri,
        organization_metadata: options.organization_metadata,
        iss_on_redirect: options.iss_on_redirect,
        webhook_url: options.webhook_url,
        webhook_secret: options.webhook_secret.map(ssobridge::secret::Secret::new),
    };
    let simulator =
        Simulator::new(proof, settings).map_err(|e| StartError::Io(std::io::Error::other(e.to_string())))?;
    let settings = simulator.settings();
    println!("ssobridge simulator (a Scalekit stand-in for development) on 127.0.0.1:{port}");
    println!("  issuer / discovery:     {issuer}/.well-known/openid-configuration");
    println!("  client_id:              {} (client_secret as given; client_secret_post)", settings.client_id);
    println!("  redirect URIs:          {}", settings.redirect_uris.join(" , "));
    println!("  initiate-login URI:     {}", settings.initiate_login_uri.as_deref().unwrap_or("(none)"));
    let metadata: Vec<String> = settings.organization_metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "  organization metadata:  {}",
        if metadata.is_empty() { "(none)".to_owned() } else { metadata.join(" ") }
    );
    println!(
        "  RFC 9207 iss:           {}",
        if settings.iss_on_redirect { "on redirects" } else { "off (as Scalekit)" }
    );
    println!("  organizations:          example.com -> org_example_com / conn_example_com, example.org -> org_example_org / conn_example_org");
    println!("  management API:         {issuer}/api/v1/… (client_credentials at {issuer}/oauth/token)");
    println!("  webhooks:               {}", settings.webhook_url.as_deref().unwrap_or("(none)"));
    println!("  IdP portal:             {issuer}/portal (also adds and removes organizations' domains)");
    println!("READY {}", serde_json::json!({"issuer": issuer, "port": port, "kid": simulator.kid()}));
    simulator::serve(std::sync::Arc::new(simulator), listener, shutdown_signal()).await
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
