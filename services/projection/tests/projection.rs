//! Projections: exactly-once application, replay from zero, and the
//! statement rules the views implement (voiding, StatementRef matching).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use lrs_eventlog::LogRecord;
use lrs_projection::{StatementQuery, Views};
use lrs_xapi::events::{DocumentKey, DocumentKind, Event, encode};

fn open(dir: &Path) -> Views {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Views::open(dir, 8 * 1024 * 1024) {
            Ok(views) => return views,
            Err(error) if Instant::now() > deadline => panic!("views did not open: {error}"),
            Err(_) => std::thread::yield_now(),
        }
    }
}

/// A tiny deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn stored_statement(id: Uuid, actor: u64, verb: &str, object: Value, second: u64) -> Value {
    json!({
        "id": id.to_string(),
        "actor": { "mbox": format!("mailto:learner{actor}@example.nhs.uk"), "name": format!("Learner {actor}") },
        "verb": { "id": verb },
        "object": object,
        "stored": format!("2026-01-01T00:{:02}:{:02}.000000Z", second / 60 % 60, second % 60),
        "authority": { "objectType": "Agent", "account": { "homePage": "https://lrs.example", "name": "client" } },
        "version": "2.0.0"
    })
}

/// Events of a realistic mix: statements (some referencing or voiding
/// earlier ones, some before their target), documents set, deleted, cleared.
fn events(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut random = XorShift(seed);
    let mut ids: Vec<Uuid> = Vec::new();
    let mut out = Vec::new();
    for n in 0..count {
        let event = match random.below(10) {
            0..=5 => {
                let batch = 1 + random.below(4) as usize;
                let statements = (0..batch)
                    .map(|_| {
                        let id = Uuid::from_u64_pair(seed, random.next());
                        let object = match random.below(6) {
                            0 if !ids.is_empty() => {
                                json!({ "objectType": "StatementRef", "id": ids[random.below(ids.len() as u64) as usize].to_string() })
                            }
                            1 => json!({ "objectType": "StatementRef", "id": Uuid::from_u64_pair(seed, random.next()).to_string() }),
                            _ => json!({ "id": format!("https://learninghub.nhs.uk/activities/{}", random.below(5)),
                                         "definition": { "name": { "en-GB": format!("Activity {n}") } } }),
                        };
                        let verb = if object["objectType"] == "StatementRef" && random.below(2) == 0 {
                            "http://adlnet.gov/expapi/verbs/voided"
                        } else {
                            "http://adlnet.gov/expapi/verbs/completed"
                        };
                        ids.push(id);
                        stored_statement(id, random.below(4), verb, object, n as u64)
                    })
                    .collect();
                Event::StatementsStored { statements, attachments: Vec::new() }
            }
            6 | 7 => Event::DocumentSet {
                key: document_key(random.below(3)),
                content_type: "application/json".into(),
                content: format!("{{\"n\":{n}}}").into_bytes(),
                etag: format!("\"{n}\""),
                updated: "2026-01-01T00:00:00Z".into(),
            },
            8 => Event::DocumentDeleted { key: document_key(random.below(3)), updated: "2026-01-01T00:00:00Z".into() },
            _ => Event::StateCleared {
                activity_id: "https://learninghub.nhs.uk/activities/1".into(),
                agent: "mbox:mailto:learner1@example.nhs.uk".into(),
                registration: None,
                updated: "2026-01-01T00:00:00Z".into(),
            },
        };
        out.push(encode(&event));
    }
    out
}

fn document_key(n: u64) -> DocumentKey {
    DocumentKey {
        kind: DocumentKind::State,
        activity_id: Some("https://learninghub.nhs.uk/activities/1".into()),
        agent: Some("mbox:mailto:learner1@example.nhs.uk".into()),
        registration: None,
        document_id: format!("doc-{n}"),
    }
}

fn records(events: &[Vec<u8>], from: usize, to: usize) -> Vec<LogRecord> {
    (from..to).map(|offset| LogRecord { offset: offset as u64, payload: events[offset].clone() }).collect()
}

#[test]
fn a_projection_stopped_and_restarted_anywhere_equals_one_replayed_from_zero() {
    for seed in [7_u64, 42, 2026] {
        let log = events(seed, 300);
        let root = tempfile::tempdir().unwrap();

        let replayed = open(&root.path().join("replayed"));
        replayed.apply(&records(&log, 0, log.len())).unwrap();

        let dir = root.path().join("restarted");
        let mut random = XorShift(seed ^ 0x5eed);
        let mut views = open(&dir);
        while (views.applied_offset() as usize) < log.len() {
            let from = views.applied_offset() as usize;
            // Sometimes re-deliver events already applied, as a restarted
            // consumer would.
            let start = from.saturating_sub(random.below(5) as usize);
            let end = (from + 1 + random.below(40) as usize).min(log.len());
            views.apply(&records(&log, start, end)).unwrap();
            if random.below(3) == 0 {
                drop(views);
                views = open(&dir);
            }
        }
        assert_eq!(
            views.state_digest().unwrap(),
            replayed.state_digest().unwrap(),
            "seed {seed}: restarted projection differs from replay"
        );
    }
}

#[test]
fn applying_the_same_events_twice_changes_nothing() {
    let log = events(9, 80);
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    views.apply(&records(&log, 0, 80)).unwrap();
    let before = views.state_digest().unwrap();
    views.apply(&records(&log, 0, 80)).unwrap();
    views.apply(&records(&log, 40, 80)).unwrap();
    assert_eq!(views.state_digest().unwrap(), before);
    assert_eq!(views.applied_offset(), 80);
}

#[test]
fn a_gap_in_offsets_is_refused_rather_than_skipped() {
    let log = events(3, 10);
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    assert!(views.apply(&records(&log, 2, 5)).is_err());
    assert_eq!(views.applied_offset(), 0);
}

fn statements_event(statements: Vec<Value>) -> Vec<u8> {
    encode(&Event::StatementsStored { statements, attachments: Vec::new() })
}

fn ids_of(views: &Views, query: &StatementQuery) -> Vec<String> {
    views
        .query(query, 100)
        .unwrap()
        .statements
        .into_iter()
        .map(|r| r.statement["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn given_a_voided_statement_when_querying_then_only_the_voiding_statement_is_listed() {
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    let target = Uuid::new_v4();
    let voiding = Uuid::new_v4();
    let activity = json!({ "id": "https://learninghub.nhs.uk/activities/1" });
    let log = vec![
        statements_event(vec![stored_statement(target, 1, "http://adlnet.gov/expapi/verbs/completed", activity, 1)]),
        statements_event(vec![stored_statement(
            voiding,
            1,
            "http://adlnet.gov/expapi/verbs/voided",
            json!({ "objectType": "StatementRef", "id": target.to_string() }),
            2,
        )]),
    ];
    views.apply(&records(&log, 0, 2)).unwrap();
    let record = views.statement(target).unwrap().unwrap();
    assert!(views.is_voided(&record).unwrap());
    let all = ids_of(&views, &StatementQuery::default());
    assert_eq!(all, vec![voiding.to_string()]);
    // The voiding statement matches the voided statement's verb filter.
    let by_verb =
        StatementQuery { verb: Some("http://adlnet.gov/expapi/verbs/completed".into()), ..Default::default() };
    assert_eq!(ids_of(&views, &by_verb), vec![voiding.to_string()]);
}

#[test]
fn given_a_reference_stored_before_its_target_when_the_target_arrives_then_the_reference_matches_its_filters() {
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    let target = Uuid::new_v4();
    let referrer = Uuid::new_v4();
    let log = vec![
        statements_event(vec![stored_statement(
            referrer,
            2,
            "http://adlnet.gov/expapi/verbs/experienced",
            json!({ "objectType": "StatementRef", "id": target.to_string() }),
            1,
        )]),
        statements_event(vec![stored_statement(
            target,
            1,
            "http://adlnet.gov/expapi/verbs/passed",
            json!({ "id": "https://learninghub.nhs.uk/activities/9" }),
            2,
        )]),
    ];
    views.apply(&records(&log, 0, 2)).unwrap();
    let by_activity =
        StatementQuery { activity: Some("https://learninghub.nhs.uk/activities/9".into()), ..Default::default() };
    let mut found = ids_of(&views, &by_activity);
    found.sort();
    let mut expected = vec![target.to_string(), referrer.to_string()];
    expected.sort();
    assert_eq!(found, expected);
}
