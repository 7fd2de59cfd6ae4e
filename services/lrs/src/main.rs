//! `lrs`: the Learning Hub learning-record store.
//!
//! Thin on purpose: parses the command line, sets up logging, and hands over
//! to the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use lrs_hub::frameworks::Frameworks;
use lrs_server::cluster::{Forwarder, IngestService, KafkaOptions, ProjectionOptions, ProjectionService};
use lrs_server::credentials::{self, Scope};
use lrs_server::jwt::JwtVerifier;
use lrs_server::{Embedded, EmbeddedOptions, ServerConfig, StoreOptions};

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
    /// Checks a stopped store: replays its whole log into fresh projections
    /// and compares them with the live ones (exit status 1 if they differ).
    /// The replay is written under the data directory, in `verify-scratch`
    /// (removed afterwards): it needs about as much free disk as the
    /// store's `views` and `hub` take, or about half with
    /// `--compress-scratch`. It says how much it took.
    Verify(VerifyArgs),
    /// Bulk-loads statements (NDJSON, or one JSON array) into a stopped
    /// store, validated as the API does; resumes after an interruption.
    Import(ImportArgs),
    /// Kafka mode: the write service (stateless; any number of replicas).
    Ingest(IngestArgs),
    /// Kafka mode: consumes the log into local views and serves reads.
    Project(ProjectArgs),
    /// Kafka mode: the stateless front (reads to projections, writes to ingest).
    Query(QueryArgs),
    /// Kafka mode: rebuilds a projection's state from the start of the log.
    Replay(ReplayArgs),
    /// Kafka mode: manages the log topic.
    #[command(subcommand)]
    Topics(TopicsCommand),
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
struct ImportArgs {
    /// NDJSON (one statement per line) or a JSON array of statements.
    file: PathBuf,
    /// Data directory of the store (stop `lrs serve` first).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// xAPI version the statements are validated against: 1.0.3 or 2.0.0.
    #[arg(long = "xapi-version", default_value = "2.0.0")]
    xapi_version: String,
    /// Statements per append to the log. The projections take each event,
    /// already decoded, from the writer; of 1,000 statements, a few of them
    /// fit the handoff between the two (4 MiB).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Account name recorded in the imported statements' authority.
    #[arg(long, default_value = "import")]
    authority_name: String,
    /// The homePage of that authority account.
    #[arg(long, env = "LRS_AUTHORITY_HOME_PAGE", default_value = "https://learninghub.nhs.uk/lrs/credentials")]
    authority_home_page: String,
    /// Start from the beginning of the file, ignoring an earlier checkpoint
    /// (statements already stored are found again and not duplicated).
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// Competency-framework file, as for `serve`.
    #[arg(long, env = "LRS_COMPETENCIES")]
    competencies: Option<PathBuf>,
    /// No progress bar (also off when standard error is not a terminal).
    #[arg(long)]
    quiet: bool,
}

/// How the projections' stores are opened (`serve`, `import`, `project`,
/// `replay`).
#[derive(Args)]
struct StoreArgs {
    /// Page cache of each projection's store, in MiB each.
    ///
    /// sled holds about 1.6 MB for each MiB it counts. 128 writes about a
    /// tenth faster than the default for about 300 MB more.
    #[arg(long, env = "LRS_CACHE_MIB", default_value_t = StoreOptions::DEFAULT_CACHE_MIB)]
    cache_mib: u64,
    /// Compress the pages of projection stores created now (zstd): about a
    /// third of the disk, for about a third less write throughput. A store
    /// that exists keeps the setting it was created with.
    #[arg(long, env = "LRS_COMPRESS_VIEWS")]
    compress_views: bool,
}

impl StoreArgs {
    fn options(&self) -> StoreOptions {
        StoreOptions { cache_bytes: self.cache_mib * 1024 * 1024, compress_new: self.compress_views }
    }
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
    /// Statements a write may be acknowledged ahead of the views, once
    /// durable in the log (reads then wait until the views show every
    /// acknowledged write); 0 makes every acknowledgement wait for the views.
    #[arg(long, env = "LRS_ACK_AHEAD", default_value_t = lrs_server::app::DEFAULT_ACKNOWLEDGE_AHEAD)]
    ack_ahead: u64,
    /// Milliseconds the Learning Hub projection may hold a batch of fewer
    /// than 64 events to gather more (no write waits for it, and a read
    /// that needs it has it apply at once); 0 applies each batch as it comes.
    #[arg(long, env = "LRS_HUB_GATHER_MS", default_value_t = 10)]
    hub_gather_ms: u64,
    #[command(flatten)]
    store: StoreArgs,
    /// Log format: "text" or "json".
    #[arg(long, env = "LRS_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Competency-framework file (JSON, see schemas/competency-frameworks.schema.json);
    /// a changed file rebuilds the competency views from the log.
    #[arg(long, env = "LRS_COMPETENCIES")]
    competencies: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key) when there is
    /// no proxy in front to terminate TLS.
    #[arg(long, env = "LRS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LRS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    access: AccessArgs,
}

/// Who may come in: the sign-in throttle and learner sign-in, the same on
/// every service that authenticates.
#[derive(Args)]
struct AccessArgs {
    /// Failed sign-ins one client address may make per minute before its
    /// requests get 429.
    #[arg(long, env = "LRS_AUTH_FAILURE_LIMIT", default_value_t = 20)]
    auth_failure_limit: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry (set
    /// when a trusted front, such as `lrs query`, is the only way in).
    #[arg(long, env = "LRS_TRUST_FORWARDED_FOR")]
    trust_forwarded_for: bool,
    /// Events a projection may lag behind the log while `/ready` still
    /// answers 200.
    #[arg(long, env = "LRS_READY_MAX_LAG", default_value_t = 1_000)]
    ready_max_lag: u64,
    /// Require a credential (any valid one) to read `/metrics`, which is
    /// otherwise open (it names no one; scrapers usually have none).
    #[arg(long, env = "LRS_METRICS_REQUIRE_CREDENTIAL")]
    metrics_require_credential: bool,
    #[command(flatten)]
    jwt: JwtArgs,
}

impl AccessArgs {
    /// `config` with this throttle.
    fn apply(&self, config: ServerConfig) -> ServerConfig {
        ServerConfig {
            auth_failure_limit: self.auth_failure_limit,
            trust_forwarded_for: self.trust_forwarded_for,
            ready_max_lag_events: self.ready_max_lag,
            metrics_require_credential: self.metrics_require_credential,
            ..config
        }
    }
}

/// Learner sign-in with bearer JWTs.
#[derive(Args)]
struct JwtArgs {
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

impl JwtArgs {
    fn verifier(&self) -> anyhow::Result<Option<JwtVerifier>> {
        if self.jwt_issuer.is_none() && self.jwt_audience.is_none() && self.jwt_key.is_empty() {
            return Ok(None);
        }
        let verifier = JwtVerifier::from_pem_files(
            &self.jwt_key,
            self.jwt_issuer.as_deref().unwrap_or_default(),
            self.jwt_audience.as_deref().unwrap_or_default(),
        )
        .context("setting up learner sign-in")?;
        Ok(Some(verifier))
    }
}

/// Where the Kafka cluster and the log topic are.
#[derive(Args)]
struct KafkaArgs {
    /// Bootstrap servers of the Kafka cluster, host:port[,host:port…].
    #[arg(long, env = "LRS_KAFKA")]
    kafka: String,
    /// The log topic (one partition; see `lrs topics create`).
    #[arg(long, env = "LRS_TOPIC", default_value = "lrs.log")]
    topic: String,
    /// How long to wait for the cluster before a write answers 503, in ms.
    #[arg(long, env = "LRS_KAFKA_TIMEOUT_MS", default_value_t = 10_000)]
    kafka_timeout_ms: u64,
}

impl KafkaArgs {
    fn options(&self, role: &str) -> KafkaOptions {
        KafkaOptions {
            bootstrap: self.kafka.clone(),
            topic: self.topic.clone(),
            timeout: Duration::from_millis(self.kafka_timeout_ms.max(1)),
            client_id: format!("lrs-{role}"),
        }
    }
}

#[derive(Args)]
struct IngestArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address to listen on.
    #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory holding credentials.json (the same file on every service).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Base URLs of the projections, comma-separated: ingest asks one what
    /// became of each write, and passes reads to them.
    #[arg(long, env = "LRS_PROJECTION", value_delimiter = ',', required = true)]
    projection: Vec<String>,
    /// Largest request body accepted, in bytes (larger requests get 413).
    #[arg(long, env = "LRS_MAX_BODY_BYTES", default_value_t = 20 * 1024 * 1024)]
    max_body_bytes: usize,
    /// The homePage of the account recorded as each statement's authority.
    #[arg(long, env = "LRS_AUTHORITY_HOME_PAGE", default_value = "https://learninghub.nhs.uk/lrs/credentials")]
    authority_home_page: String,
    /// Log format: "text" or "json".
    #[arg(long, env = "LRS_LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(flatten)]
    access: AccessArgs,
}

#[derive(Args)]
struct ProjectArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Address to listen on (reads, and /internal for ingest: keep it inside
    /// the cluster's network).
    #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Directory holding the views (a persistent volume) and credentials.json.
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Largest number of statements returned by one GET.
    #[arg(long, env = "LRS_MAX_PAGE_SIZE", default_value_t = 500)]
    max_page_size: usize,
    #[command(flatten)]
    store: StoreArgs,
    /// Competency-framework file (JSON); a changed file rebuilds the
    /// competency views from the log.
    #[arg(long, env = "LRS_COMPETENCIES")]
    competencies: Option<PathBuf>,
    /// Log format: "text" or "json".
    #[arg(long, env = "LRS_LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(flatten)]
    access: AccessArgs,
}

#[derive(Args)]
struct QueryArgs {
    /// Address to listen on.
    #[arg(long, env = "LRS_LISTEN", default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Base URLs of the projections that serve reads, comma-separated.
    #[arg(long, env = "LRS_PROJECTION", value_delimiter = ',', required = true)]
    projection: Vec<String>,
    /// Base URLs of the ingest replicas that take writes, comma-separated
    /// (without them, writes answer 405).
    #[arg(long, env = "LRS_INGEST", value_delimiter = ',')]
    ingest: Vec<String>,
    /// Largest request body passed on, in bytes.
    #[arg(long, env = "LRS_MAX_BODY_BYTES", default_value_t = 20 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Log format: "text" or "json".
    #[arg(long, env = "LRS_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    kafka: KafkaArgs,
    /// The projection's data directory (its views are replaced).
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Competency-framework file (JSON), as the projection uses.
    #[arg(long, env = "LRS_COMPETENCIES")]
    competencies: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// Data directory of the (stopped) store.
    #[arg(long, env = "LRS_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Competency-framework file the store runs with.
    #[arg(long, env = "LRS_COMPETENCIES")]
    competencies: Option<PathBuf>,
    /// Compress the replay's scratch store (zstd): about half the free
    /// disk it otherwise needs, for a replay about half as fast. The live
    /// store keeps its own setting.
    #[arg(long, env = "LRS_VERIFY_COMPRESS_SCRATCH")]
    compress_scratch: bool,
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Creates the log topic if it does not exist: one partition, kept
    /// forever (retention never deletes statements), records up to 64 MiB.
    Create {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Replicas of the partition (3 in production; 1 on a single broker).
        #[arg(long, env = "LRS_REPLICATION_FACTOR", default_value_t = 3)]
        replication_factor: i32,
    },
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
        /// The key (user name); generated when omitted. May begin with '-'.
        #[arg(long, allow_hyphen_values = true)]
        key: Option<String>,
        /// The secret (password); generated when omitted. May begin with
        /// '-' (as a random base64url secret does one time in 64).
        #[arg(long, allow_hyphen_values = true)]
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
        /// The credential's key or name (it may begin with '-').
        #[arg(allow_hyphen_values = true)]
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
        /// The credential's key or name (it may begin with '-').
        #[arg(allow_hyphen_values = true)]
        key_or_name: String,
    },
}

/// sled allocates and frees many small node copies per write; glibc's
/// allocator spent a third of the projections' time on them (and grew the
/// heap through fragmentation), mimalloc a fraction of that. The feature
/// `system-allocator` leaves it out, for heap profilers that hook malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if std::env::var("LRS_CHECK_ARGS").is_ok_and(|v| v == "1") {
        // Used by the test that keeps deploy/ in step with this command line.
        println!("ok");
        return Ok(());
    }
    let runtime = || tokio::runtime::Runtime::new().context("starting the async runtime");
    match cli.command {
        Command::Serve(args) => {
            init_logging(&args.log_format);
            runtime()?.block_on(serve(args))
        }
        Command::Verify(args) => {
            init_logging("text");
            let mut options = EmbeddedOptions::new(&args.data_dir);
            options.frameworks = load_frameworks(args.competencies.as_deref())?;
            let report = runtime()?
                .block_on(lrs_server::verify(options, args.compress_scratch))
                .context("verifying the store")?;
            let replay = report.replay.as_secs_f64();
            println!(
                "replayed {} events ({} statements stored) in {:.1} s ({:.0} statements/s); the digests took {:.1} s",
                report.end,
                report.statements,
                replay,
                report.statements as f64 / replay.max(1e-9),
                report.digesting.as_secs_f64()
            );
            println!(
                "the replay took {:.1} MiB of scratch disk{} (removed)",
                report.scratch_bytes as f64 / (1024.0 * 1024.0),
                if args.compress_scratch { ", compressed" } else { "" }
            );
            if report.matches() {
                println!("the projections match a replay of the log ({} events)", report.end);
                Ok(())
            } else {
                println!("the projections DIFFER from a replay of the log: {report:?}");
                std::process::exit(1);
            }
        }
        Command::Import(args) => {
            init_logging("text");
            runtime()?.block_on(import_statements(args))
        }
        Command::Ingest(args) => {
            init_logging(&args.log_format);
            runtime()?.block_on(ingest(args))
        }
        Command::Project(args) => {
            init_logging(&args.log_format);
            runtime()?.block_on(project(args))
        }
        Command::Query(args) => {
            init_logging(&args.log_format);
            runtime()?.block_on(query(args))
        }
        Command::Replay(args) => {
            init_logging("text");
            runtime()?.block_on(replay(args))
        }
        Command::Topics(TopicsCommand::Create { kafka, replication_factor }) => {
            init_logging("text");
            runtime()?.block_on(async {
                let mut config = lrs_kafkalog::KafkaConfig::new(kafka.kafka.clone(), kafka.topic.clone());
                config.timeout = Duration::from_millis(kafka.kafka_timeout_ms.max(1));
                let created = lrs_kafkalog::create_topic(&config, replication_factor).await?;
                println!("topic {} {}", kafka.topic, if created { "created" } else { "already exists" });
                anyhow::Ok(())
            })
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
    // Colours only for a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
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
    options.store = args.store.options();
    options.server = args.access.apply(ServerConfig {
        max_body_bytes: args.max_body_bytes,
        max_page_size: args.max_page_size,
        authority_home_page: args.authority_home_page,
        acknowledge_ahead: args.ack_ahead,
        learning_hub_gather_wait: Duration::from_millis(args.hub_gather_ms),
        ..ServerConfig::default()
    });
    options.frameworks = load_frameworks(args.competencies.as_deref())?;
    options.jwt = args.access.jwt.verifier()?;
    let store = Embedded::open(options).context("starting the store")?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let address = listener.local_addr()?;
    let service = store.router().into_make_service_with_connect_info::<SocketAddr>();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .with_context(|| format!("loading the TLS certificate {} and key {}", cert.display(), key.display()))?;
        println!("xAPI endpoint: https://{address}/xapi/");
        tracing::info!(%address, data_dir = %args.data_dir.display(), "lrs serving over TLS");
        let handle = axum_server::Handle::new();
        let stopping = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopping.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        axum_server::from_tcp_rustls(listener.into_std()?, config).handle(handle).serve(service).await?;
    } else {
        println!("xAPI endpoint: http://{address}/xapi/");
        tracing::info!(%address, data_dir = %args.data_dir.display(), "lrs serving");
        axum::serve(listener, service).with_graceful_shutdown(shutdown).await?;
    }
    tracing::info!("shutting down");
    store.stop().await?;
    Ok(())
}

fn load_frameworks(path: Option<&std::path::Path>) -> anyhow::Result<Frameworks> {
    let Some(path) = path else {
        return Ok(Frameworks::empty());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Frameworks::parse(&text).with_context(|| format!("loading {}", path.display()))
}

async fn listen(address: SocketAddr, role: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(address).await.with_context(|| format!("listening on {address}"))?;
    let bound = listener.local_addr()?;
    println!("{role} listening on http://{bound}/");
    tracing::info!(address = %bound, role, "lrs serving");
    Ok(listener)
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let server = args.access.apply(ServerConfig {
        max_body_bytes: args.max_body_bytes,
        authority_home_page: args.authority_home_page.clone(),
        ..ServerConfig::default()
    });
    let service = IngestService::open(
        args.kafka.options("ingest"),
        args.data_dir.clone(),
        args.projection.clone(),
        server,
        args.access.jwt.verifier()?,
    )
    .await
    .context("starting ingest")?;
    let listener = listen(args.listen, "ingest").await?;
    axum::serve(listener, service.router().into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn project(args: ProjectArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let options = ProjectionOptions {
        data_dir: args.data_dir.clone(),
        store: args.store.options(),
        frameworks: load_frameworks(args.competencies.as_deref())?,
        server: args.access.apply(ServerConfig { max_page_size: args.max_page_size, ..ServerConfig::default() }),
    };
    let service = ProjectionService::open(args.kafka.options("projection"), options, args.access.jwt.verifier()?)
        .await
        .context("starting the projection")?;
    let listener = listen(args.listen, "projection").await?;
    axum::serve(listener, service.router().into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("shutting down");
    service.stop().await?;
    Ok(())
}

async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let forwarder = std::sync::Arc::new(Forwarder::new(args.projection, args.ingest, args.max_body_bytes));
    let listener = listen(args.listen, "query").await?;
    axum::serve(listener, forwarder.router().into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let options = ProjectionOptions {
        data_dir: args.data_dir.clone(),
        store: args.store.options(),
        frameworks: load_frameworks(args.competencies.as_deref())?,
        server: ServerConfig::default(),
    };
    let started = std::time::Instant::now();
    let applied = lrs_server::cluster::replay(args.kafka.options("replay"), options).await?;
    println!("replayed the log through offset {applied} in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `lrs import`: opens the stopped store, loads the file through its writer
/// with a progress bar, and prints what was rejected and why.
async fn import_statements(args: ImportArgs) -> anyhow::Result<()> {
    use lrs_server::import::{ImportEvent, ImportOptions, import};
    let version = lrs_xapi::XapiVersion::from_header(&args.xapi_version)
        .ok_or_else(|| anyhow::anyhow!("--xapi-version must be 1.0.3 or 2.0.0, not {}", args.xapi_version))?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let mut options = EmbeddedOptions::new(&args.data_dir);
    options.store = args.store.options();
    options.frameworks = load_frameworks(args.competencies.as_deref())?;
    let store = Embedded::open(options)
        .with_context(|| format!("opening the store in {} (is `lrs serve` running on it?)", args.data_dir.display()))?;
    let import_options = ImportOptions {
        file: args.file.clone(),
        version,
        batch_size: args.batch_size,
        authority: serde_json::json!({
            "objectType": "Agent",
            "account": { "homePage": args.authority_home_page, "name": args.authority_name },
        }),
        restart: args.restart,
    };
    let visible = !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        if visible { indicatif::ProgressDrawTarget::stderr() } else { indicatif::ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} [{elapsed_precise}, ETA {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut first = true;
    let mut statements_at_start = 0;
    let result = import(&store.state, &args.data_dir, &import_options, |event| match event {
        ImportEvent::Stored(progress) => {
            if first {
                first = false;
                statements_at_start = progress.accepted + progress.rejected;
                if progress.resumed_at > 0 {
                    bar.println(format!("resuming at byte {} of {}", progress.resumed_at, progress.file_bytes));
                }
                bar.set_length(progress.file_bytes);
            }
            bar.set_position(progress.offset);
            let rate = (progress.accepted + progress.rejected - statements_at_start) as f64
                / started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{} stored, {} rejected, {rate:.0}/s", progress.accepted, progress.rejected));
        }
        ImportEvent::Projecting { behind } => {
            bar.set_message(format!("projecting: {behind} events to go"));
        }
    })
    .await;
    bar.finish_and_clear();
    store.stop().await.context("stopping the store")?;
    let progress = result?;
    let elapsed = started.elapsed().as_secs_f64();
    let done = progress.accepted + progress.rejected;
    println!(
        "imported {}: {} statements stored (or already there), {} rejected, in {elapsed:.1} s ({:.0} statements/s{})",
        args.file.display(),
        progress.accepted,
        progress.rejected,
        done as f64 / elapsed.max(0.001),
        if progress.resumed_at > 0 { ", counts include the earlier, interrupted run" } else { "" },
    );
    if progress.rejected > 0 {
        println!("rejected, by reason:");
        let mut reasons: Vec<_> = progress.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        for (reason, count) in reasons.iter().take(20) {
            println!("  {count:>8}  {reason}");
        }
        println!("first rejected lines (line or element number: reason):");
        for (number, reason) in &progress.examples {
            println!("  {number}: {reason}");
        }
    }
    Ok(())
}

/// Appends a directory file to the log of a stopped store.
fn import_directory(data_dir: &std::path::Path, file: &std::path::Path, learners: bool) -> anyhow::Result<()> {
    use lrs_eventlog::{EventLog, open_embedded};
    use lrs_xapi::events::encode;
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let content_type = if file.extension().is_some_and(|e| e == "json") { "application/json" } else { "text/csv" };
    let (events, count) = lrs_server::analytics::directory_events(Some(content_type), &body, learners)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let log = open_embedded(&data_dir.join("log")).with_context(|| {
            format!(
                "opening the log in {} (is `lrs serve` running? then POST the file to /admin/{} instead)",
                data_dir.display(),
                if learners { "learners" } else { "organisations" }
            )
        })?;
        log.append(events.iter().map(encode).collect()).await.context("appending to the log")?;
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
