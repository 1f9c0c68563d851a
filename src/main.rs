//! The `ssobridge` command: parses the command line and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
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

/// The environment's part, shown under the help of every command that reads a config file.
const ENVIRONMENT_HELP: &str =
    "Every config key can be overridden as SSOBRIDGE_<SECTION>__<KEY> (e.g. SSOBRIDGE_UPSTREAM__CLIENT_SECRET).";

/// An OpenID Connect identity broker: enterprise SSO through Scalekit for Auth0, Cognito and Firebase.
#[derive(Parser)]
#[command(name = "ssobridge", version, after_help = ENVIRONMENT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker
    #[command(after_help = ENVIRONMENT_HELP)]
    Serve(ConfigFile),
    /// Run offline: memory store, upstream simulator and sample app, on 127.0.0.1:8080
    Demo(DemoArgs),
    /// Run the demo's Scalekit simulator alone, on 127.0.0.1, for testing a stack against it
    Simulator(SimulatorArgs),
    /// Validate a configuration and list every problem
    #[command(after_help = ENVIRONMENT_HELP)]
    CheckConfig(ConfigFile),
    /// Signing keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the running clients and routes (from the store) as a config file
    #[command(after_help = ENVIRONMENT_HELP)]
    ExportConfig(ConfigFile),
    /// Print a new admin API token and the SHA-256 to configure
    AdminToken,
    /// Print the admin API's OpenAPI document
    #[command(name = "openapi")]
    OpenApi,
}

#[derive(Args)]
struct ConfigFile {
    /// The configuration file (TOML)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    /// Listen on 127.0.0.1:N instead of port 8080 (0 picks a free port)
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Listen on ADDR, e.g. 0.0.0.0:8080 in a container
    // Parsed by `listen_address` with --port, so that each mistake has its own message.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The address browsers use, the issuer (https://, or http:// on loopback) [default: http://localhost:PORT]
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

impl DemoArgs {
    /// The address to bind: --listen, or 127.0.0.1 on --port, or 127.0.0.1:8080.
    fn listen_address(&self) -> Result<SocketAddr, clap::Error> {
        match (&self.listen, self.port) {
            (Some(_), Some(_)) => {
                Err(usage_error("demo", ErrorKind::ArgumentConflict, "demo takes --listen ADDR or --port N, not both"))
            }
            (Some(address), None) => address.parse().map_err(|_| {
                let message = format!("--listen {address} is not an address (e.g. 0.0.0.0:8080)");
                usage_error("demo", ErrorKind::ValueValidation, &message)
            }),
            (None, port) => Ok(SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(8080)))),
        }
    }
}

#[derive(Args)]
struct SimulatorArgs {
    /// Listen on 127.0.0.1:N (0 picks a free port)
    #[arg(long, value_name = "N", default_value_t = 8090)]
    port: u16,
    /// The broker's client_id at the simulator
    #[arg(long, value_name = "ID", default_value = "ssobridge")]
    client_id: String,
    /// The broker's client_secret (client_secret_post)
    // A secret may well start with '-'.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    client_secret: String,
    /// The broker's callback; repeat it or give a comma list (the first is the default redirect URL)
    #[arg(long = "redirect-uri", value_name = "URI", required = true, value_delimiter = ',')]
    redirect_uris: Vec<String>,
    /// Where portal logins go; {{KEY}} is each organization's metadata [default: the first redirect URI with /callback replaced by /initiate-login]
    #[arg(long, value_name = "URI")]
    initiate_login_uri: Option<String>,
    /// Metadata every organization carries (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = metadata_entry)]
    organization_metadata: Vec<(String, String)>,
    /// The issuer; a path in it prefixes every endpoint [default: http://127.0.0.1:N]
    #[arg(long, value_name = "URL")]
    issuer_url: Option<String>,
    /// Add RFC 9207 iss to authorization responses (Scalekit does not)
    #[arg(long)]
    iss_on_redirect: bool,
    /// Where the portal's domain changes go as signed webhooks (the broker's /webhooks/scalekit)
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// The webhooks' signing secret
    #[arg(long, value_name = "whsec_…")]
    webhook_secret: Option<String>,
}

impl SimulatorArgs {
    /// What clap cannot check: a redirect URI left once "a, b," is read as two (list items are
    /// trimmed, blanks dropped).
    fn checked(mut self) -> Result<SimulatorArgs, clap::Error> {
        self.redirect_uris =
            self.redirect_uris.iter().map(|uri| uri.trim()).filter(|uri| !uri.is_empty()).map(str::to_owned).collect();
        if self.redirect_uris.is_empty() {
            let message = "simulator needs --redirect-uri URI (the broker's callback)";
            return Err(usage_error("simulator", ErrorKind::MissingRequiredArgument, message));
        }
        Ok(self)
    }
}

/// One `--organization-metadata KEY=VALUE`.
fn metadata_entry(entry: &str) -> Result<(String, String), String> {
    match entry.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("write KEY=VALUE".to_owned()),
    }
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new signing key (PKCS#8 PEM, readable by its owner only)
    Generate {
        /// The file to write
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace the file if it exists
        #[arg(long)]
        force: bool,
        /// The key's algorithm
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rs256)]
        alg: KeyAlgorithm,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyAlgorithm {
    /// RSA-2048, which signs RS256 and PS256 (signing.key_file)
    #[value(name = "RS256", alias = "PS256", alias = "RSA")]
    Rs256,
    /// EC P-256 (signing.ec_key_file)
    #[value(name = "ES256", alias = "EC")]
    Es256,
}

/// A usage mistake only seen after parsing (flags that exclude each other, a list left empty),
/// reported as clap reports its own: with the subcommand's usage, exit code 2.
fn usage_error(subcommand: &str, kind: ErrorKind, message: &str) -> clap::Error {
    let mut cli = Cli::command();
    // Building names the subcommand in full for its usage line ("ssobridge demo").
    cli.build();
    let mut command = cli.find_subcommand(subcommand).cloned().unwrap_or(cli);
    command.error(kind, message)
}

fn main() -> ExitCode {
    // Usage mistakes exit with 2, --help and --version with 0.
    let Cli { command } = Cli::parse();
    let result = match command {
        None => Cli::command().print_help().map_err(StartError::Io),
        Some(Command::CheckConfig(ConfigFile { config })) => return check_config(&config),
        Some(Command::Keys(KeysCommand::Generate { out, force, alg })) => {
            let key_type = match alg {
                KeyAlgorithm::Rs256 => tokens::KeyType::Rsa,
                KeyAlgorithm::Es256 => tokens::KeyType::Ec,
            };
            keys_generate(&out, force, key_type)
        }
        Some(Command::AdminToken) => admin_token(),
        Some(Command::ExportConfig(ConfigFile { config })) => run_async(async move {
            let config = Config::load(&config)?;
            print!("{}", ssobridge::export::export(&config).await?);
            Ok(())
        }),
        Some(Command::OpenApi) => match admin::spec_json() {
            Ok(spec) => {
                println!("{spec}");
                Ok(())
            }
            Err(error) => Err(StartError::Io(std::io::Error::other(error))),
        },
        Some(Command::Serve(ConfigFile { config })) => run_async(serve(config)),
        Some(Command::Demo(args)) => {
            let listen = args.listen_address().unwrap_or_else(|error| error.exit());
            let public_url = args.public_url.map(|url| url.trim_end_matches('/').to_owned());
            run_async(run_demo(listen, public_url))
        }
        Some(Command::Simulator(args)) => {
            let args = args.checked().unwrap_or_else(|error| error.exit());
            run_async(run_simulator(args))
        }
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
    ssobridge::lifecycle::spawn_worker(&state);
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

async fn run_simulator(args: SimulatorArgs) -> Result<(), StartError> {
    use ssobridge::demo::simulator::{self, DemoOnly, Simulator, SimulatorSettings};
    let proof = DemoOnly::claim().map_err(|e| StartError::Io(std::io::Error::other(e)))?;
    telemetry::init();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    let port = listener.local_addr()?.port();
    let issuer = match args.issuer_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://127.0.0.1:{port}"),
    };
    // The broker's initiate-login endpoint sits next to its callback.
    let initiate_login_uri = args
        .initiate_login_uri
        .or_else(|| args.redirect_uris.first()?.strip_suffix("/callback").map(|base| format!("{base}/initiate-login")));
    let settings = SimulatorSettings {
        issuer: issuer.clone(),
        client_id: args.client_id,
        client_secret: ssobridge::secret::Secret::new(args.client_secret),
        redirect_uris: args.redirect_uris,
        initiate_login_uri,
        organization_metadata: args.organization_metadata,
        iss_on_redirect: args.iss_on_redirect,
        webhook_url: args.webhook_url,
        webhook_secret: args.webhook_secret.map(ssobridge::secret::Secret::new),
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
