//! `lrs-load`: generate Learning Hub xAPI traffic, drive load against the
//! LRS, or serve a trivial endpoint to measure the tool's own ceiling.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use lrs_load::driver::{Overflow, RunConfig, Scenario, Stop};
use lrs_load::{Generator, GeneratorConfig, parse_duration};

#[derive(Parser)]
#[command(name = "lrs-load", version, about = "Load tool for the Learning Hub LRS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Population {
    /// Learning Hub accounts to draw learners from.
    #[arg(long, default_value_t = 10_000)]
    learners: usize,
    /// Provider organisations (trusts and GP practices) under the ICBs.
    #[arg(long, default_value_t = 60)]
    organisations: usize,
    /// Simulated time of the first statement (RFC 3339).
    #[arg(long, default_value = "2026-01-05T08:00:00Z")]
    start_time: DateTime<Utc>,
    /// Share of learner sessions, per mille, whose statements name neither
    /// organisation nor staff group (the Learning Hub views take them from
    /// the learner directory). Any other value than 0 changes the seed's stream.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    unplaced_per_mille: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Write generated statements as NDJSON, and optionally the directories.
    Generate {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Statements to write.
        #[arg(long, default_value_t = 0)]
        statements: u64,
        #[command(flatten)]
        population: Population,
        /// NDJSON output file (`-` = stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Directory to write organisations.csv and learners.csv into.
        #[arg(long)]
        directories: Option<PathBuf>,
    },
    /// Drive load against a server and report throughput and latency.
    Run(Box<RunArgs>),
    /// Serve a trivial endpoint (200/204 to everything) to measure the tool itself.
    TrivialServer {
        /// Address to listen on (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ScenarioArg {
    Single,
    Batch,
    Mixed,
    Reads,
}

#[derive(Clone, Copy, ValueEnum)]
enum OverflowArg {
    Drop,
    Queue,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Credential key (HTTP Basic user).
    #[arg(long, env = "LRS_LOAD_KEY", hide_env_values = true, allow_hyphen_values = true)]
    key: String,
    /// Credential secret (HTTP Basic password).
    #[arg(long, env = "LRS_LOAD_SECRET", hide_env_values = true, allow_hyphen_values = true)]
    secret: String,
    #[arg(long, value_enum)]
    scenario: ScenarioArg,
    /// Statements per POST in `batch` and in the batch writes of `mixed`.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Requests in flight at most (closed-loop: workers).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Measured phase length, e.g. 60s (default 10s unless --count).
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    duration: Option<Duration>,
    /// Measured requests.
    #[arg(long)]
    count: Option<u64>,
    /// Requests per second, open-loop (latency from the scheduled time); closed-loop without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Open-loop, when `concurrency` requests are in flight: drop the request or queue it.
    #[arg(long, value_enum, default_value = "drop")]
    overflow: OverflowArg,
    /// Unmeasured load before the measured phase.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
    /// Give up on a request after this long.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// X-Experience-API-Version header.
    #[arg(long, default_value = "1.0.3", value_parser = ["1.0.3", "2.0.0"])]
    xapi_version: String,
    #[command(flatten)]
    population: Population,
    /// Pass over the first N statements of the seed's stream before planning:
    /// against a store loaded with `generate --statements N` of the same seed and
    /// population, reads then ask about the learners, registrations and days
    /// it holds (uptake from the first day to the last).
    #[arg(long, default_value_t = 0)]
    skip: u64,
    /// Sample this process's CPU and RSS (Linux /proc) every 500 ms.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Count what the disk holding this path (the server's data directory)
    /// writes over the measured phase, by every process (/proc/diskstats):
    /// what reaches the disk, unlike the page cache a process dirties.
    #[arg(long, value_name = "PATH")]
    disk_of: Option<std::path::PathBuf>,
    /// Before the run, POST the population's organisations.csv and learners.csv
    /// to /admin/organisations and /admin/learners (needs scope `all`).
    #[arg(long)]
    load_directories: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn generator_config(seed: u64, population: &Population) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        learners: population.learners,
        organisations: population.organisations,
        start_time: population.start_time,
        unplaced_per_mille: population.unplaced_per_mille,
        ..GeneratorConfig::default()
    }
}

fn generate(
    seed: u64,
    statements: u64,
    population: &Population,
    out: Option<PathBuf>,
    directories: Option<PathBuf>,
) -> anyhow::Result<()> {
    if out.is_none() && directories.is_none() {
        bail!("nothing to do: give --out FILE (or -) and/or --directories DIR");
    }
    let started = Instant::now();
    let mut generator = Generator::new(generator_config(seed, population));
    if let Some(dir) = directories {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("organisations.csv"), generator.organisations_csv())?;
        std::fs::write(dir.join("learners.csv"), generator.learners_csv())?;
        eprintln!(
            "wrote {} organisations and {} learners to {}",
            generator.organisations().len(),
            generator.learners().len(),
            dir.display()
        );
    }
    if let Some(out) = out {
        let sink: Box<dyn Write> = if out.as_os_str() == "-" {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?)
        };
        let mut writer = BufWriter::with_capacity(1 << 20, sink);
        let mut line = Vec::with_capacity(4096);
        let mut bytes = 0u64;
        for _ in 0..statements {
            line.clear();
            generator.write_next_statement(&mut line);
            line.push(b'\n');
            bytes += line.len() as u64;
            writer.write_all(&line)?;
        }
        writer.flush()?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "wrote {statements} statements ({:.1} MiB) in {seconds:.2} s ({:.0} statements/s)",
            bytes as f64 / 1048576.0,
            statements as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let stop = match (args.duration, args.count) {
        (_, Some(n)) => Stop::Count(n),
        (Some(d), None) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    let config = RunConfig {
        url: args.url.clone(),
        key: args.key.clone(),
        secret: args.secret.clone(),
        scenario: match args.scenario {
            ScenarioArg::Single => Scenario::Single,
            ScenarioArg::Batch => Scenario::Batch,
            ScenarioArg::Mixed => Scenario::Mixed,
            ScenarioArg::Reads => Scenario::Reads,
        },
        batch_size: args.batch_size.max(1),
        concurrency: args.concurrency,
        stop,
        rate: args.rate,
        overflow: match args.overflow {
            OverflowArg::Drop => Overflow::Drop,
            OverflowArg::Queue => Overflow::Queue,
        },
        warmup: args.warmup,
        timeout: args.timeout,
        xapi_version: args.xapi_version.clone(),
        generator: generator_config(args.seed, &args.population),
        skip: args.skip,
        server_pid: args.server_pid,
        disk_of: args.disk_of.clone(),
        load_directories: args.load_directories,
    };
    let report = lrs_load::driver::run(config).await?;
    print!("{}", report.table());
    if let Some(path) = args.json {
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn trivial_server(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    lrs_load::trivial::serve(listener).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate { seed, statements, population, out, directories } => {
            generate(seed, statements, &population, out, directories)
        }
        Command::Run(args) => tokio::runtime::Runtime::new()?.block_on(run(*args)),
        Command::TrivialServer { listen } => tokio::runtime::Runtime::new()?.block_on(trivial_server(&listen)),
    }
}
