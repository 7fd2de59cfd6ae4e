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

/// The Kafka log's offsets have gaps between frames: a projection applies
/// what it reads and resumes after the last record, with the same state as
/// over gapless offsets.
#[test]
fn offsets_with_gaps_apply_like_consecutive_ones() {
    let log = events(3, 10);
    let root = tempfile::tempdir().unwrap();
    let gapless = open(&root.path().join("gapless"));
    gapless.apply(&records(&log, 0, log.len())).unwrap();
    let gapped = open(&root.path().join("gapped"));
    let spread: Vec<LogRecord> = records(&log, 0, log.len())
        .into_iter()
        .map(|r| LogRecord { offset: (r.offset << 16) | 0xFFFF, payload: r.payload })
        .collect();
    gapped.apply(&spread[..4]).unwrap();
    gapped.apply(&spread).unwrap();
    assert_eq!(gapped.applied_offset(), (((log.len() - 1) as u64) << 16) + 0x1_0000);
    let everything = |views: &Views| -> Vec<Value> {
        views.query(&StatementQuery::default(), 10_000).unwrap().statements.into_iter().map(|r| r.statement).collect()
    };
    assert!(!everything(&gapless).is_empty());
    assert_eq!(everything(&gapped), everything(&gapless));
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

// ------------------------------------------------- decisions in log order --

fn apply_all(views: &Views, events: &[Vec<u8>]) {
    let records: Vec<LogRecord> = events
        .iter()
        .enumerate()
        .map(|(n, payload)| LogRecord { offset: n as u64, payload: payload.clone() })
        .collect();
    views.apply(&records).unwrap();
}

/// Ingest replicas on Kafka append without seeing each other: the first
/// event in the log with an id wins; a later event with a different
/// statement under that id is refused whole, and identical statements are
/// repeats.
#[test]
fn a_later_event_reusing_an_id_with_other_content_is_refused_whole_and_repeats_are_skipped() {
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    let taken = Uuid::new_v4();
    let fresh = Uuid::new_v4();
    let first = stored_statement(taken, 1, "http://example.org/verbs/a", json!({"id": "http://example.org/a"}), 1);
    let other = stored_statement(taken, 2, "http://example.org/verbs/b", json!({"id": "http://example.org/b"}), 2);
    let newcomer = stored_statement(fresh, 3, "http://example.org/verbs/c", json!({"id": "http://example.org/c"}), 3);
    let mut repeat = first.clone();
    repeat["stored"] = json!("2026-01-01T00:00:04.000000Z");
    apply_all(
        &views,
        &[
            statements_event(vec![first.clone()]),
            statements_event(vec![newcomer.clone(), other]),
            statements_event(vec![repeat, newcomer]),
        ],
    );
    let refused = views.outcome(1).unwrap();
    assert_eq!(refused.status, 409);
    assert!(refused.message.contains(&taken.to_string()));
    assert_eq!(views.statement(taken).unwrap().unwrap().statement["verb"]["id"], "http://example.org/verbs/a");
    assert_eq!(views.outcome(2).unwrap().repeats, vec![0], "the identical statement is a repeat");
    assert_eq!(views.outcome(0).unwrap(), lrs_projection::Outcome::applied());
    let all = ids_of(&views, &StatementQuery::default());
    assert_eq!(all.len(), 2, "the refused event stored nothing, the repeat nothing twice: {all:?}");
}

/// `stored` only moves forward in log order, whatever the clocks of the
/// replicas that appended.
#[test]
fn stored_never_goes_back_in_log_order() {
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    let late = Uuid::new_v4();
    let early = Uuid::new_v4();
    apply_all(
        &views,
        &[
            statements_event(vec![stored_statement(
                late,
                1,
                "http://example.org/v",
                json!({"id": "http://x.org/1"}),
                30,
            )]),
            statements_event(vec![stored_statement(
                early,
                1,
                "http://example.org/v",
                json!({"id": "http://x.org/2"}),
                10,
            )]),
        ],
    );
    let late_stored = views.statement(late).unwrap().unwrap().stored_micros;
    let early_record = views.statement(early).unwrap().unwrap();
    assert_eq!(early_record.stored_micros, late_stored + 1);
    assert_eq!(early_record.statement["stored"], "2026-01-01T00:00:30.000001Z");
}

/// A document request is decided where it lies in the log: two requests
/// made against the same ETag, only the first applies.
#[test]
fn document_requests_are_decided_against_the_document_at_their_place_in_the_log() {
    use lrs_xapi::document::{DocumentOp, PutPrecondition, etag};
    let root = tempfile::tempdir().unwrap();
    let views = open(root.path());
    let key = DocumentKey {
        kind: DocumentKind::ActivityProfile,
        activity_id: Some("http://example.org/a".to_owned()),
        agent: None,
        registration: None,
        document_id: "p".to_owned(),
    };
    let put = |content: &str, if_match: Option<String>| {
        encode(&Event::DocumentRequested {
            key: key.clone(),
            op: DocumentOp::Put {
                content_type: "application/json".to_owned(),
                content: content.as_bytes().to_vec(),
                precondition: PutPrecondition::WhenExisting,
            },
            if_match,
            if_none_match: None,
            updated: "2026-01-01T00:00:00Z".to_owned(),
        })
    };
    let merge = encode(&Event::DocumentRequested {
        key: key.clone(),
        op: DocumentOp::Post { content_type: "application/json".to_owned(), content: br#"{"b":2}"#.to_vec() },
        if_match: None,
        if_none_match: None,
        updated: "2026-01-01T00:00:01Z".to_owned(),
    });
    let original = etag(br#"{"a":1}"#);
    apply_all(
        &views,
        &[
            put(r#"{"a":1}"#, None),
            put(r#"{"a":2}"#, Some(original.clone())),
            put(r#"{"a":3}"#, Some(original)),
            put(r#"{"a":4}"#, None),
            merge,
        ],
    );
    assert_eq!(views.outcome(1).unwrap().status, 200);
    assert_eq!(views.outcome(2).unwrap().status, 412, "the second writer's ETag is stale");
    assert_eq!(views.outcome(3).unwrap().status, 409, "an unconditional PUT over an existing profile");
    let document = views.document(&key).unwrap().unwrap();
    assert_eq!(document.content, br#"{"a":2,"b":2}"#.to_vec(), "the merge applied to the winner");
}
