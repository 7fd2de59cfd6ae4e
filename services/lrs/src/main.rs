//! `lrs`: the Learning Hub learning-record store.
//!
//! Thin on purpose: parses the command line, sets up logging, and hands over
//! to the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use lrs_server::credentials::{self, Scope};
use lrs_server::{Embedded, EmbeddedOptions, ServerConfig};

/// The Learning Hub learning-record store: an event-sourced xAPI 1.0.3 and
/// 2.0 LRS.
#[derive(Parser)]
#[command(name = "lrs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs ingest, projection and query in one process over the embedded log.
    Serve(ServeArgs),
    /// Manages the HTTP Basic credentials clients use.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory holding the log, the views and the credentials.
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Largest request body accepted, in bytes (larger requests get 413).
    #[arg(long, env = "LRS_MAX_BODY_BYTES", default_value_t = 20 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest number of statements returned by one GET.
    #[arg(long, env = "LRS_MAX_PAGE_SIZE", default_value_t = 500)]
    max_page_size: usize,
    /// The homePage of the account recorded as each statement's authority.
    #[arg(long, env = "LRS_AUTHORITY_HOME_PAGE", default_value = "https://learninghub.nhs.uk/lrs/credentials")]
    authority_home_page: String,
    /// Page cache of the embedded log and of the views, in MiB each.
    #[arg(long, env = "LRS_CACHE_MIB", default_value_t = 128)]
    cache_mib: u64,
    /// Log format: "text" or "json".
    #[arg(long, env = "LRS_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Creates a credential; prints the generated key and secret.
    Add {
        /// Data directory of the store.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// Who the credential is for (recorded as the authority's name).
        #[arg(long)]
        name: String,
        /// The key (user name); generated when omitted.
        #[arg(long)]
        key: Option<String>,
        /// The secret (password); generated when omitted.
        #[arg(long)]
        secret: Option<String>,
        /// Comma-separated xAPI scopes: statements/write, statements/read,
        /// statements/read/mine, all/read, all, state, define, profile.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// Lists credentials (never their secrets).
    List {
        /// Data directory of the store.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Revokes a credential by key or name; takes effect without restart.
    Revoke {
        /// Data directory of the store.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The credential's key or name.
        key_or_name: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logging(&args.log_format);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(serve(args))
        }
        Command::Credentials(command) => credentials_command(command),
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn parse_scopes(names: &[String]) -> anyhow::Result<Vec<Scope>> {
    names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| Scope::parse(n).with_context(|| format!("unknown scope {n:?}")))
        .collect()
}

fn credentials_command(command: CredentialsCommand) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Add { data_dir, name, key, secret, scopes } => {
            let scopes = parse_scopes(&scopes)?;
            let (credential, secret) = credentials::add(&data_dir, &name, key, secret, scopes)?;
            println!("created credential {:?}", credential.name);
            println!("key:    {}", credential.key);
            println!("secret: {secret}");
        }
        CredentialsCommand::List { data_dir } => {
            for credential in credentials::load(&data_dir)? {
                let scopes: Vec<&str> = credential.scopes.iter().map(|s| s.name()).collect();
                let status = if credential.revoked { "revoked" } else { "active" };
                println!("{}\t{}\t{}\t{}", credential.key, credential.name, scopes.join(","), status);
            }
        }
        CredentialsCommand::Revoke { data_dir, key_or_name } => {
            let credential = credentials::revoke(&data_dir, &key_or_name)?;
            println!("revoked credential {:?} (key {})", credential.name, credential.key);
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    if credentials::load(&args.data_dir)?.is_empty() {
        let (credential, secret) = credentials::add(&args.data_dir, "admin", None, None, vec![Scope::All])?;
        println!("created a first credential with scope \"all\" (shown once; keep it safe):");
        println!("  key:    {}", credential.key);
        println!("  secret: {secret}");
    }
    let mut options = EmbeddedOptions::new(&args.data_dir);
    options.cache_bytes = args.cache_mib * 1024 * 1024;
    options.server = ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_page_size: args.max_page_size,
        authority_home_page: args.authority_home_page,
        ..ServerConfig::default()
    };
    let store = Embedded::open(options).context("starting the store")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("xAPI endpoint: http://{address}/xapi/");
    tracing::info!(%address, data_dir = %args.data_dir.display(), "lrs serving");
    axum::serve(listener, store.router()).with_graceful_shutdown(shutdown).await?;
    tracing::info!("shutting down");
    store.stop().await?;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now, so a signal that arrives
/// at any moment after start-up is a graceful shutdown, and returns the
/// future that completes on the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
