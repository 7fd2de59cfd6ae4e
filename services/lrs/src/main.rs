//! `lrs`: the Learning Hub learning-record store.
//!
//! Thin on purpose: parses the command line, sets up logging, and hands over
//! to the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use lrs_hub::frameworks::Frameworks;
use lrs_server::credentials::{self, Scope};
use lrs_server::jwt::JwtVerifier;
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
    /// Loads the learner directory (learner → organisation, staff group).
    #[command(subcommand)]
    Learners(DirectoryCommand),
    /// Loads the organisation directory (code, name, parent code).
    #[command(subcommand)]
    Organisations(DirectoryCommand),
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Appends the rows of a CSV file (or JSON array) to the log while the
    /// server is stopped; with the server running, POST the same file to
    /// /admin/learners or /admin/organisations instead.
    Import {
        /// Data directory of the store.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// CSV with a header (`learner,organisation,staff_group` or
        /// `code,name,parent`), or a JSON array when the name ends in .json.
        file: PathBuf,
    },
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
    /// Competency-framework file (JSON, see schemas/competency-frameworks.schema.json);
    /// a changed file rebuilds the competency views from the log.
    #[arg(long, env = "LRS_COMPETENCIES")]
    competencies: Option<PathBuf>,
    /// Issuer (`iss`) of learners' sign-in tokens; enables learner sign-in
    /// together with --jwt-audience and --jwt-key.
    #[arg(long, env = "LRS_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Audience (`aud`) learners' tokens must be issued for.
    #[arg(long, env = "LRS_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// PEM file of a public key (RSA or EC) that signs learners' tokens;
    /// repeat (or comma-separate in the variable) for several keys.
    #[arg(long, env = "LRS_JWT_KEYS", value_delimiter = ',')]
    jwt_key: Vec<PathBuf>,
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
        /// Comma-separated ODS codes whose analytics this credential may
        /// read (and those below them), or * for all: an analyst.
        #[arg(long, value_delimiter = ',')]
        organisations: Vec<String>,
    },
    /// Grants (or replaces) a credential's analytics organisations.
    Grant {
        /// Data directory of the store.
        #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The credential's key or name.
        key_or_name: String,
        /// Comma-separated ODS codes, or * for all; empty removes access.
        #[arg(long, value_delimiter = ',', required = true)]
        organisations: Vec<String>,
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
        Command::Learners(DirectoryCommand::Import { data_dir, file }) => import_directory(&data_dir, &file, true),
        Command::Organisations(DirectoryCommand::Import { data_dir, file }) => {
            import_directory(&data_dir, &file, false)
        }
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
        CredentialsCommand::Add { data_dir, name, key, secret, scopes, organisations } => {
            let scopes = parse_scopes(&scopes)?;
            let (credential, secret) = credentials::add(&data_dir, &name, key, secret, scopes)?;
            if !organisations.is_empty() {
                credentials::grant_organisations(&data_dir, &credential.key, organisations.clone())?;
            }
            println!("created credential {:?}", credential.name);
            if !organisations.is_empty() {
                println!("analytics for: {}", organisations.join(","));
            }
            println!("key:    {}", credential.key);
            println!("secret: {secret}");
        }
        CredentialsCommand::List { data_dir } => {
            for credential in credentials::load(&data_dir)? {
                let scopes: Vec<&str> = credential.scopes.iter().map(|s| s.name()).collect();
                let status = if credential.revoked { "revoked" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    credential.key,
                    credential.name,
                    scopes.join(","),
                    status,
                    credential.organisations.join(",")
                );
            }
        }
        CredentialsCommand::Grant { data_dir, key_or_name, organisations } => {
            let organisations: Vec<String> = organisations.into_iter().filter(|o| !o.trim().is_empty()).collect();
            let credential = credentials::grant_organisations(&data_dir, &key_or_name, organisations)?;
            println!("credential {:?} may read analytics for: {}", credential.name, credential.organisations.join(","));
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
        credentials::grant_organisations(&args.data_dir, &credential.key, vec!["*".to_owned()])?;
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
    if let Some(path) = &args.competencies {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        options.frameworks = Frameworks::parse(&text).with_context(|| format!("loading {}", path.display()))?;
    }
    if args.jwt_issuer.is_some() || args.jwt_audience.is_some() || !args.jwt_key.is_empty() {
        let verifier = JwtVerifier::from_pem_files(
            &args.jwt_key,
            args.jwt_issuer.as_deref().unwrap_or_default(),
            args.jwt_audience.as_deref().unwrap_or_default(),
        )
        .context("setting up learner sign-in")?;
        options.jwt = Some(verifier);
    }
    let store = Embedded::open(options).context("starting the store")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("xAPI endpoint: http://{address}/xapi/");
    tracing::info!(%address, data_dir = %args.data_dir.display(), "lrs serving");
    axum::serve(listener, store.router()).with_graceful_shutdown(shutdown).await?;
    tracing::info!("shutting down");
    store.stop().await?;
    Ok(())
}

/// Appends a directory file to the log of a stopped store.
fn import_directory(data_dir: &std::path::Path, file: &std::path::Path, learners: bool) -> anyhow::Result<()> {
    use lrs_eventlog::{EventLog, SledEventLog, SledEventLogConfig};
    use lrs_xapi::events::{Event, encode};
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let content_type = if file.extension().is_some_and(|e| e == "json") { "application/json" } else { "text/csv" };
    let (event, count) = if learners {
        let rows = lrs_server::analytics::parse_learners(Some(content_type), &body)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let count = rows.len();
        (Event::LearnersImported { learners: rows }, count)
    } else {
        let rows = lrs_server::analytics::parse_organisations(Some(content_type), &body)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let count = rows.len();
        (Event::OrganisationsImported { organisations: rows }, count)
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let log = SledEventLog::open(&data_dir.join("log"), SledEventLogConfig::default()).with_context(|| {
            format!(
                "opening the log in {} (is `lrs serve` running? then POST the file to /admin/{} instead)",
                data_dir.display(),
                if learners { "learners" } else { "organisations" }
            )
        })?;
        log.append(vec![encode(&event)]).await.context("appending to the log")?;
        anyhow::Ok(())
    })?;
    println!("imported {count} {}", if learners { "learners" } else { "organisations" });
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
