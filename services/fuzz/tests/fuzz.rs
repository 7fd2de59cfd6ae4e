#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Each target fuzzed for a bounded time (3 s by default, `LRS_FUZZ_SECONDS`
//! to change) from a fixed seed (`LRS_FUZZ_SEED` to change); no crash
//! allowed. And the harness itself: it must catch a panicking target.

use std::time::Duration;

use lrs_fuzz::{Options, TARGETS};

const SEED: u64 = 20_240_301;

fn seed() -> u64 {
    std::env::var("LRS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED)
}

fn seconds() -> u64 {
    std::env::var("LRS_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

fn campaign(name: &str) {
    let target = lrs_fuzz::target(name).unwrap();
    let corpus = lrs_fuzz::seed_corpus(name);
    assert!(!corpus.is_empty(), "no seed corpus for {name}");
    let seed = seed();
    println!("fuzzing {name} for {} s with seed {seed} (LRS_FUZZ_SEED={seed} to repeat)", seconds());
    let report = lrs_fuzz::run(target, &corpus, seed, Duration::from_secs(seconds()));
    println!("{report}");
    assert!(report.executions >= corpus.len() as u64, "{report}");
    assert!(report.crashes.is_empty(), "seed {seed}: {report}");
}

#[test]
fn statement() {
    campaign("statement");
}

#[test]
fn multipart() {
    campaign("multipart");
}

#[test]
fn query_params() {
    campaign("query_params");
}

#[test]
fn events() {
    campaign("events");
}

#[test]
fn every_target_is_named() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["statement", "multipart", "query_params", "events"]);
    assert!(lrs_fuzz::target("nope").is_none());
}

/// Panics on one input of the seed corpus.
fn panics_on_seed(data: &[u8]) {
    assert!(data != b"boom", "deliberate crash");
}

/// Panics only on inputs the seeds do not contain: mutation must find one.
fn panics_on_mutation(data: &[u8]) {
    if data.contains(&b'!') {
        panic!("deliberate crash on a mutated input");
    }
}

#[test]
fn the_runner_catches_a_panicking_target() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new("deliberate", 7, Duration::from_secs(2));
    options.crash_dir = dir.path().to_path_buf();

    let report = lrs_fuzz::run_with(&options, panics_on_seed, &[b"fine".to_vec(), b"boom".to_vec()]);
    println!("{report}");
    assert_eq!(report.crashes.len(), 1, "{report}");
    let crash = &report.crashes[0];
    assert_eq!(crash.input, b"boom");
    assert!(crash.message.contains("deliberate crash"), "{}", crash.message);
    assert!(crash.message.contains("fuzz.rs"), "the location is reported: {}", crash.message);
    let path = crash.path.as_ref().expect("the crash input is saved");
    assert!(path.file_name().unwrap().to_str().unwrap().starts_with("deliberate-"));
    assert!(path.extension().is_some_and(|e| e == "bin"));
    assert_eq!(std::fs::read(path).unwrap(), b"boom");

    options.max_executions = Some(1_000_000);
    let report = lrs_fuzz::run_with(&options, panics_on_mutation, &[b"{\"a\": 1}".to_vec()]);
    println!("{report}");
    assert_eq!(report.crashes.len(), 1, "mutation reaches a '!' byte: {report}");
    assert!(report.crashes[0].input.contains(&b'!'));
    assert!(report.crashes[0].path.as_ref().is_some_and(|p| p.exists()));
}

#[test]
fn run_names_crash_files_after_known_targets() {
    // `run` takes only the function; a function that is not a known target
    // is named "custom" (crash files go to the default directory, so this
    // uses a target that does not crash).
    fn quiet(_: &[u8]) {}
    let report = lrs_fuzz::run(quiet, &[b"x".to_vec()], 1, Duration::from_millis(50));
    assert_eq!(report.target, "custom");
    assert!(report.crashes.is_empty());
    let report = lrs_fuzz::run(lrs_fuzz::events, &[b"{}".to_vec()], 1, Duration::from_millis(50));
    assert_eq!(report.target, "events");
}

#[test]
fn a_mutated_input_is_deterministic_for_a_seed() {
    let mut options = Options::new("deterministic", 99, Duration::from_secs(60));
    options.max_executions = Some(500);
    options.crash_dir = tempfile::tempdir().unwrap().path().to_path_buf();
    fn count_bytes(data: &[u8]) {
        lrs_fuzz::feature(&format!("{}", data.len() % 7));
    }
    let a = lrs_fuzz::run_with(&options, count_bytes, &[b"[1,2,3]".to_vec()]);
    let b = lrs_fuzz::run_with(&options, count_bytes, &[b"[1,2,3]".to_vec()]);
    assert_eq!((a.executions, a.pool, a.features), (b.executions, b.pool, b.features));
}
