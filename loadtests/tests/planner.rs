//! The planner's `reads` scenario and `--skip`: reads only, asking about
//! what a store loaded with the first statements of the same stream holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use lrs_load::driver::{Kind, MIX, Planner, Scenario};
use lrs_load::{Generator, GeneratorConfig};
use serde_json::Value;

fn config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 7,
        learners: 2_000,
        organisations: 40,
        mean_interval_ms: 60_000,
        ..GeneratorConfig::default()
    }
}

/// The query parameters of a planned path.
fn parameters(path: &str) -> HashMap<String, String> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

#[test]
fn reads_plans_only_reads_of_stored_statements_in_the_mix_proportions() {
    let mut planner = Planner::new(Generator::new(config()), Scenario::Reads, 100);
    let mut counts: HashMap<Kind, u64> = HashMap::new();
    let draws = 20_000;
    for _ in 0..draws {
        let planned = planner.next_request();
        assert_eq!(planned.method, reqwest::Method::GET, "{:?} is not a read", planned.kind);
        assert!(planned.body.is_none() && planned.statements == 0);
        *counts.entry(planned.kind).or_default() += 1;
    }
    let admitted: Vec<(Kind, u32)> = MIX.iter().copied().filter(|(kind, _)| kind.reads_stored()).collect();
    assert!(counts.keys().all(|kind| kind.reads_stored()), "{counts:?}");
    let total: u32 = admitted.iter().map(|(_, weight)| weight).sum();
    for (kind, weight) in admitted {
        let expected = f64::from(draws) * f64::from(weight) / f64::from(total);
        let got = counts.get(&kind).copied().unwrap_or(0) as f64;
        assert!((got - expected).abs() < 0.15 * expected, "{kind:?}: {got} planned, about {expected} expected");
    }
    for kind in [Kind::WriteSingle, Kind::WriteBatch, Kind::StatePut, Kind::StatePost, Kind::StateGet] {
        assert!(!kind.reads_stored());
    }
}

#[test]
fn skip_makes_reads_ask_about_the_statements_passed_over() {
    let stored = 5_000;
    let statements: Vec<Value> = Generator::new(config()).take(stored).collect();
    let day = |statement: &Value| statement["timestamp"].as_str().unwrap()[..10].to_owned();
    let (first_day, last_day) = (day(&statements[0]), day(&statements[stored - 1]));
    assert_ne!(first_day, last_day, "the stream should span several days");
    let registrations: HashSet<&str> =
        statements.iter().filter_map(|s| s["context"]["registration"].as_str()).collect();

    let mut planner = Planner::new(Generator::new(config()), Scenario::Reads, 100);
    planner.skip(stored as u64);
    let (mut uptakes, mut by_registration) = (0, 0);
    for _ in 0..2_000 {
        let planned = planner.next_request();
        let asked = parameters(&planned.path);
        match planned.kind {
            Kind::Uptake => {
                uptakes += 1;
                assert_eq!((asked["from"].as_str(), asked["to"].as_str()), (first_day.as_str(), last_day.as_str()));
            }
            Kind::ReadRegistration => {
                by_registration += 1;
                assert!(registrations.contains(asked["registration"].as_str()), "{asked:?}");
            }
            _ => {}
        }
    }
    assert!(uptakes > 0 && by_registration > 0);

    // Without it, uptake asks about the first day only.
    let mut planner = Planner::new(Generator::new(config()), Scenario::Reads, 100);
    let planned = (0..2_000).map(|_| planner.next_request()).find(|p| p.kind == Kind::Uptake).unwrap();
    assert_eq!(parameters(&planned.path)["to"], first_day);
}
