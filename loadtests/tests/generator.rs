//! The generator: valid statements for both xAPI versions, deterministic,
//! realistic sizes and mix, directories in the server's CSV formats.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use lrs_load::generator::{ORGANISATION_EXTENSION, STAFF_GROUP_EXTENSION};
use lrs_load::{Generator, GeneratorConfig};
use lrs_xapi::{StatementValidator, XapiVersion};
use serde_json::Value;

fn config(seed: u64) -> GeneratorConfig {
    GeneratorConfig { seed, learners: 2_000, organisations: 40, ..GeneratorConfig::default() }
}

fn statements(seed: u64, n: usize) -> Vec<Value> {
    Generator::new(config(seed)).take(n).collect()
}

#[test]
fn every_statement_is_valid_for_both_versions() {
    let validator = StatementValidator::new().unwrap();
    for (n, statement) in statements(11, 5_000).iter().enumerate() {
        for version in [XapiVersion::V1_0_3, XapiVersion::V2_0_0] {
            if let Err(error) = validator.validate(version, statement) {
                panic!("statement {n} is not valid for xAPI {version}: {error}\n{statement:#}");
            }
        }
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let text = |seed| {
        let generator = Generator::new(config(seed));
        let mut out = generator.organisations_csv() + &generator.learners_csv();
        for statement in generator.take(2_000) {
            out.push_str(&serde_json::to_string(&statement).unwrap());
            out.push('\n');
        }
        out
    };
    assert_eq!(text(5), text(5));
    assert_ne!(text(5), text(6));
}

#[test]
fn sizes_voids_platforms_and_verbs_are_realistic() {
    let all = statements(3, 12_000);
    let mut sizes: Vec<usize> = all.iter().map(|s| serde_json::to_vec(s).unwrap().len()).collect();
    let large = sizes.iter().filter(|&&s| s >= 2_500).count();
    sizes.sort_unstable();
    let median = sizes[sizes.len() / 2];
    assert!((700..=1_500).contains(&median), "median size {median}");
    let large_share = large as f64 / all.len() as f64;
    assert!((0.005..=0.05).contains(&large_share), "share of statements of 2.5 KB or more: {large_share}");

    let verbs: Vec<&str> = all.iter().map(|s| s["verb"]["id"].as_str().unwrap()).collect();
    let voids = verbs.iter().filter(|v| v.ends_with("/voided")).count();
    let void_share = voids as f64 / all.len() as f64;
    assert!((0.015..=0.035).contains(&void_share), "void share {void_share}");

    let ids: HashSet<&str> = all.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "statement ids are unique");
    let mut positions = HashMap::new();
    for (n, statement) in all.iter().enumerate() {
        positions.insert(statement["id"].as_str().unwrap(), n);
        assert!(statement.get("version").is_none());
        if statement["object"]["objectType"] == "StatementRef" {
            let target = statement["object"]["id"].as_str().unwrap();
            let at = positions.get(target).copied().expect("a void targets an earlier statement");
            assert!(at < n);
            assert_ne!(all[at]["verb"]["id"], "http://adlnet.gov/expapi/verbs/voided");
        } else {
            let context = &statement["context"];
            assert!(context["registration"].is_string());
            assert!(context["extensions"][ORGANISATION_EXTENSION].is_string());
            assert!(context["extensions"][STAFF_GROUP_EXTENSION].is_string());
        }
    }
    let platforms: HashSet<&str> = all.iter().filter_map(|s| s["context"]["platform"].as_str()).collect();
    assert_eq!(platforms, HashSet::from(["e-LfH", "MOOC", "Magpie"]));
    let verb_set: HashSet<&str> = verbs.iter().copied().collect();
    for wanted in [
        "http://adlnet.gov/expapi/verbs/launched",
        "http://adlnet.gov/expapi/verbs/initialized",
        "http://adlnet.gov/expapi/verbs/progressed",
        "http://adlnet.gov/expapi/verbs/answered",
        "http://adlnet.gov/expapi/verbs/passed",
        "http://adlnet.gov/expapi/verbs/failed",
        "http://adlnet.gov/expapi/verbs/completed",
        "http://adlnet.gov/expapi/verbs/terminated",
        "https://w3id.org/xapi/video/verbs/played",
        "https://w3id.org/xapi/video/verbs/paused",
        "https://w3id.org/xapi/video/verbs/seeked",
        "https://w3id.org/xapi/video/verbs/completed",
        "http://adlnet.gov/expapi/verbs/commented",
        "http://id.tincanapi.com/verb/viewed",
        "http://adlnet.gov/expapi/verbs/experienced",
        "http://id.tincanapi.com/verb/bookmarked",
        "http://id.tincanapi.com/verb/rated",
        "http://adlnet.gov/expapi/verbs/voided",
    ] {
        assert!(verb_set.contains(wanted), "no statement with verb {wanted}");
    }
    let types: HashSet<&str> = all.iter().filter_map(|s| s["object"]["definition"]["type"].as_str()).collect();
    for wanted in [
        "http://adlnet.gov/expapi/activities/cmi.interaction",
        "https://w3id.org/xapi/video/activity-type/video",
        "http://adlnet.gov/expapi/activities/module",
        "http://adlnet.gov/expapi/activities/lesson",
    ] {
        assert!(types.contains(wanted), "no object of type {wanted}");
    }
    // Timestamps advance.
    let times: Vec<&str> = all.iter().map(|s| s["timestamp"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

/// The header and cell rules of `parse_organisations` / `parse_learners`
/// in services/server/src/analytics.rs: exact header, three cells a row,
/// ODS codes of 1 to 9 letters and digits, parents known.
#[test]
fn directories_have_the_server_formats() {
    let generator = Generator::new(config(9));
    let is_ods = |c: &str| (1..=9).contains(&c.len()) && c.chars().all(|c| c.is_ascii_alphanumeric());
    let organisations = generator.organisations_csv();
    let mut lines = organisations.lines();
    assert_eq!(lines.next(), Some("code,name,parent"));
    let mut codes = HashSet::new();
    let mut kinds = HashMap::new();
    for line in lines {
        let cells = split(line);
        assert_eq!(cells.len(), 3, "{line}");
        assert!(is_ods(&cells[0]), "{line}");
        assert!(cells[2].is_empty() || codes.contains(&cells[2]), "parent listed first: {line}");
        *kinds.entry(cells[0].len()).or_insert(0) += 1;
        assert!(codes.insert(cells[0].clone()), "codes are unique");
    }
    assert_eq!(codes.len(), generator.organisations().len());
    assert!(kinds[&3] > 10 && kinds[&6] > 5, "trusts and ICBs (3 characters) and GP practices (6): {kinds:?}");

    let learners = generator.learners_csv();
    let mut lines = learners.lines();
    assert_eq!(lines.next(), Some("learner,organisation,staff_group"));
    let mut accounts = HashSet::new();
    let mut groups = HashSet::new();
    for line in lines {
        let cells = split(line);
        assert_eq!(cells.len(), 3, "{line}");
        assert!(codes.contains(&cells[1]), "{line}");
        assert!(accounts.insert(cells[0].clone()));
        groups.insert(cells[2].clone());
    }
    assert_eq!(accounts.len(), 2_000);
    assert!(groups.len() >= 6, "{groups:?}");
    // Statements name the learners' organisations and staff groups.
    let mut generator = generator;
    let statement = generator.find(|s| s["context"]["extensions"].is_object()).unwrap();
    let account = statement["actor"]["account"]["name"].as_str().unwrap();
    let row = learners.lines().find(|l| l.starts_with(&format!("{account},"))).unwrap();
    let cells = split(row);
    assert_eq!(statement["context"]["extensions"][ORGANISATION_EXTENSION], cells[1].as_str());
    assert_eq!(statement["context"]["extensions"][STAFF_GROUP_EXTENSION], cells[2].as_str());
}

fn split(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

#[test]
fn helpers_for_read_queries() {
    let mut generator = Generator::new(config(4));
    let _ = generator.by_ref().take(500).count();
    let before: Vec<Value> = Generator::new(config(4)).skip(500).take(50).collect();
    // Helpers never change the statement stream.
    for _ in 0..100 {
        let learner = generator.random_learner().account.clone();
        assert_eq!(learner.len(), 7);
        assert!(generator.random_activity_id().starts_with("https://learninghub.nhs.uk/activities/"));
        assert!(generator.recent_registration().is_some());
        assert!(!generator.random_organisation().code.is_empty());
    }
    let after: Vec<Value> = generator.take(50).collect();
    assert_eq!(before, after);
}

/// The fast text path writes exactly what serialising the `Value` gives.
#[test]
fn text_path_matches_values() {
    let mut text = Generator::new(config(8));
    let values = Generator::new(config(8));
    for value in values.take(3_000) {
        let mut line = Vec::new();
        text.write_next_statement(&mut line);
        assert_eq!(String::from_utf8(line).unwrap(), serde_json::to_string(&value).unwrap());
    }
}

/// Sessions left to the learner directory name neither organisation nor
/// staff group, in about the share asked for, and stay valid; asking for
/// none leaves every statement naming both.
#[test]
fn unplaced_sessions_leave_organisation_and_staff_group_to_the_directory() {
    let unplaced = GeneratorConfig { unplaced_per_mille: 400, ..config(12) };
    let validator = StatementValidator::new().unwrap();
    let mut text = Generator::new(GeneratorConfig { unplaced_per_mille: 400, ..config(12) });
    let (mut counted, mut without) = (0, 0);
    for statement in Generator::new(unplaced).take(6_000) {
        for version in [XapiVersion::V1_0_3, XapiVersion::V2_0_0] {
            validator.validate(version, &statement).unwrap_or_else(|e| panic!("{e}\n{statement:#}"));
        }
        let mut line = Vec::new();
        text.write_next_statement(&mut line);
        assert_eq!(String::from_utf8(line).unwrap(), serde_json::to_string(&statement).unwrap());
        if statement["object"]["objectType"] == "StatementRef" {
            continue;
        }
        counted += 1;
        let extensions = &statement["context"]["extensions"];
        let (organisation, staff_group) =
            (extensions.get(ORGANISATION_EXTENSION).is_some(), extensions.get(STAFF_GROUP_EXTENSION).is_some());
        assert_eq!(organisation, staff_group, "both or neither: {statement:#}");
        if !organisation {
            without += 1;
        }
    }
    let share = f64::from(without) / f64::from(counted);
    assert!((0.3..=0.5).contains(&share), "share of statements left to the directory: {share}");
    assert!(statements(12, 2_000).iter().all(|s| s["object"]["objectType"] == "StatementRef"
        || s["context"]["extensions"][ORGANISATION_EXTENSION].is_string()));
}
