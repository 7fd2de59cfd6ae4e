//! `lrs-fuzz TARGET [--seconds N] [--seed S] [--corpus DIR]... [--max-len BYTES]`
//!
//! Fuzzes one target (or `all`, one after the other) and exits with status 1
//! if anything crashed. Crash inputs are written to `target/fuzz-crashes/`
//! (or `$LRS_FUZZ_CRASH_DIR`); replay one with `lrs-fuzz TARGET --replay FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lrs_fuzz::{Options, TARGETS};

const USAGE: &str = "usage: lrs-fuzz TARGET [--seconds N] [--seed S] [--corpus DIR]... [--max-len BYTES]
       lrs-fuzz TARGET --replay FILE
targets: statement, multipart, query_params, events, all";

struct Args {
    target: String,
    seconds: u64,
    seed: Option<u64>,
    corpus: Vec<PathBuf>,
    max_len: Option<usize>,
    replay: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed =
        Args { target: String::new(), seconds: 60, seed: None, corpus: Vec::new(), max_len: None, replay: None };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => parsed.seconds = value("--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--seed" => parsed.seed = Some(value("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--corpus" => parsed.corpus.push(PathBuf::from(value("--corpus")?)),
            "--max-len" => parsed.max_len = Some(value("--max-len")?.parse().map_err(|e| format!("--max-len: {e}"))?),
            "--replay" => parsed.replay = Some(PathBuf::from(value("--replay")?)),
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            other if parsed.target.is_empty() => parsed.target = other.to_owned(),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    if parsed.target.is_empty() {
        return Err("which target?".to_owned());
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("lrs-fuzz: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let names: Vec<&str> = if args.target == "all" {
        TARGETS.iter().map(|(name, _)| *name).collect()
    } else if lrs_fuzz::target(&args.target).is_some() {
        vec![args.target.as_str()]
    } else {
        eprintln!("lrs-fuzz: unknown target {:?}\n{USAGE}", args.target);
        return ExitCode::from(2);
    };

    if let Some(file) = &args.replay {
        let input = match std::fs::read(file) {
            Ok(input) => input,
            Err(e) => {
                eprintln!("lrs-fuzz: cannot read {}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        let mut failed = false;
        for name in names {
            let Some(target) = lrs_fuzz::target(name) else { continue };
            match lrs_fuzz::execute(target, &input) {
                Ok(_) => println!("{name}: no crash on {}", file.display()),
                Err(message) => {
                    println!("{name}: crash on {}: {message}", file.display());
                    failed = true;
                }
            }
        }
        return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }

    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
    });
    let mut failed = false;
    for name in names {
        let Some(target) = lrs_fuzz::target(name) else { continue };
        let mut corpus = lrs_fuzz::seed_corpus(name);
        for dir in &args.corpus {
            corpus.extend(lrs_fuzz::corpus::read_tree(dir, &[]));
        }
        let mut options = Options::new(name, seed, Duration::from_secs(args.seconds));
        if let Some(max_len) = args.max_len {
            options.max_len = max_len;
        }
        println!("lrs-fuzz: {name} for {} s with seed {seed} from {} seed inputs", args.seconds, corpus.len());
        let report = lrs_fuzz::run_with(&options, target, &corpus);
        println!("{report}");
        failed |= !report.crashes.is_empty();
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
