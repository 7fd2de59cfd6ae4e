//! Projections: exactly-once application, replay from zero, and the
//! statement rules the views implement (voiding, StatementRef matching).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use lrs_eventlog::LogRecord;
use lrs_projection::{StatementQuery, StoreOptions, Views, ViewsError};
use lrs_xapi::events::{DocumentKey, DocumentKind, Event, encode};

fn open(dir: &Path) -> Views {
    open_with(dir, false)
}

fn open_with(dir: &Path, compress_new: bool) -> Views {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Views::open(dir, StoreOptions { cache_bytes: 8 * 1024 * 1024, compress_new }) {
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

/// Views opened in `dir` with the whole of `log` applied in one batch.
fn applied_whole(dir: &Path, log: &[Vec<u8>]) -> Views {
    let views = open(dir);
    views.apply(&records(log, 0, log.len())).unwrap();
    views
}

#[test]
fn a_projection_stopped_and_restarted_anywhere_equals_one_replayed_from_zero() {
    for seed in [7_u64, 42, 2026] {
        let log = events(seed, 300);
        let root = tempfile::tempdir().unwrap();

        let replayed = applied_whole(&root.path().join("replayed"), &log);

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

/// A batch refused part way (here by an event that cannot be read) leaves
/// nothing behind, stored or in memory: the events before the bad one are
/// applied again from the same sequence and `stored`, and the views then
/// equal views that never saw the bad batch, reopened or not.
#[test]
fn a_refused_batch_changes_nothing_stored_or_remembered() {
    let log = events(5, 60);
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);

    let dir = root.path().join("refused");
    let views = open(&dir);
    views.apply(&records(&log, 0, 20)).unwrap();
    let mut refused = records(&log, 20, 40);
    refused.push(LogRecord { offset: 40, payload: b"not an event".to_vec() });
    let error = views.apply(&refused).unwrap_err();
    assert!(matches!(error, ViewsError::BadEvent { offset: 40, .. }), "{error}");
    assert_eq!(views.applied_offset(), 20);
    views.apply(&records(&log, 20, log.len())).unwrap();
    assert_eq!(views.state_digest().unwrap(), clean.state_digest().unwrap());
    assert_eq!(views.last_stored_micros().unwrap(), clean.last_stored_micros().unwrap());
    assert!(clean.last_stored_micros().unwrap().is_some());
    drop(views);
    let reopened = open(&dir);
    assert_eq!(reopened.applied_offset(), log.len() as u64);
    assert_eq!(reopened.last_stored_micros().unwrap(), clean.last_stored_micros().unwrap());
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
    let gapless = applied_whole(&root.path().join("gapless"), &log);
    let gapped = open(&root.path().join("gapped"));
    let spread: Vec<LogRecord> = records(&log, 0, log.len())
        .into_iter()
        .map(|r| LogRecord { offset: (r.offset << 16) | 0xFFFF, payload: r.payload })
        .collect();
    gapped.apply(&spread[..4]).unwrap();
    gapped.apply(&spread).unwrap();
    assert_eq!(gapped.applied_offset(), (((log.len() - 1) as u64) << 16) + 0x1_0000);
    let everything = |views: &Views| -> Vec<Value> {
        views
            .query(&StatementQuery::default(), 10_000)
            .unwrap()
            .statements
            .into_iter()
            .map(|r| r.statement().unwrap())
            .collect()
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
        .map(|r| r.statement().unwrap()["id"].as_str().unwrap().to_owned())
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

/// The writer checks a new statement's id against the fingerprint alone
/// (the id table), which must agree with the record it points to, also
/// after the views are reopened; and the ids are listed.
#[test]
fn a_stored_statement_is_found_by_id_with_its_fingerprint_after_reopening() {
    let root = tempfile::tempdir().unwrap();
    let log = events(5, 40);
    let ids = statement_ids(&log);
    {
        let views = open(root.path());
        views.apply(&records(&log, 0, log.len())).unwrap();
    }
    let views = open(root.path());
    assert!(!ids.is_empty());
    for id in &ids {
        let record = views.statement(*id).unwrap().unwrap_or_else(|| panic!("statement {id} not found by id"));
        assert_eq!(record.statement["id"], json!(id.to_string()));
        assert_eq!(
            views.fingerprint(*id).unwrap(),
            Some(lrs_xapi::statement::content_fingerprint(&record.statement)),
            "the id table's fingerprint of {id} is not its record's"
        );
    }
    let unknown = Uuid::new_v4();
    assert!(views.statement(unknown).unwrap().is_none());
    assert_eq!(views.fingerprint(unknown).unwrap(), None);
    // The writer's id filter is built from this list at start-up.
    let mut listed: Vec<Uuid> = views.statement_ids().map(Result::unwrap).collect();
    let mut expected = ids.clone();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "statement_ids lists every stored id once, and nothing else");
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

/// A statement about `activity` with this definition (none if null).
fn defining(activity: &str, definition: Value, second: u64) -> Vec<u8> {
    let mut object = json!({ "id": activity });
    if !definition.is_null() {
        object["definition"] = definition;
    }
    statements_event(vec![stored_statement(Uuid::new_v4(), 1, "http://example.org/v", object, second)])
}

/// An activity's definition is the statements' definitions merged in log
/// order, however the events are batched, refused part way or replayed
/// after a restart: a definition merged again after another one takes the
/// place of the other's values again, and a bare mention changes nothing.
#[test]
fn activity_definitions_merge_in_log_order_whatever_the_batches() {
    let activity = "http://example.org/course/1";
    let one = json!({ "name": { "en-GB": "One" }, "type": "http://example.org/type/a" });
    let two = json!({ "name": { "en-GB": "Two", "cy-GB": "Dau" } });
    let log = vec![
        defining(activity, one.clone(), 1),
        defining(activity, two.clone(), 2),
        defining(activity, one.clone(), 3),
        defining(activity, Value::Null, 4),
        defining(activity, two.clone(), 5),
        defining(activity, one.clone(), 6),
    ];
    let expected = |upto: usize| {
        let mut merged = json!({ "objectType": "Activity", "id": activity });
        for event in &log[..upto] {
            let Event::StatementsStored { statements, .. } = lrs_xapi::events::decode(event).unwrap() else {
                unreachable!()
            };
            if let Some(definition) = statements[0]["object"].get("definition").and_then(Value::as_object) {
                let target = merged.as_object_mut().unwrap().entry("definition").or_insert_with(|| json!({}));
                for (property, value) in definition {
                    match (target.get_mut(property), value) {
                        (Some(Value::Object(existing)), Value::Object(incoming)) => {
                            existing.extend(incoming.clone());
                        }
                        _ => {
                            target[property] = value.clone();
                        }
                    }
                }
            }
        }
        merged
    };
    let root = tempfile::tempdir().unwrap();

    // One event a batch, each checked.
    let single = open(&root.path().join("single"));
    for upto in 1..=log.len() {
        single.apply(&records(&log, upto - 1, upto)).unwrap();
        assert_eq!(single.activity(activity).unwrap().unwrap(), expected(upto), "after {upto} events");
    }
    assert_eq!(expected(log.len())["definition"]["name"], json!({ "en-GB": "One", "cy-GB": "Dau" }));

    // A batch refused after the second definition, then that definition
    // delivered again on its own: it is merged, not taken as merged already.
    let refused = open(&root.path().join("refused"));
    refused.apply(&records(&log, 0, 1)).unwrap();
    let mut batch = records(&log, 1, 2);
    batch.push(LogRecord { offset: 2, payload: b"not an event".to_vec() });
    refused.apply(&batch).unwrap_err();
    refused.apply(&records(&log, 1, 2)).unwrap();
    assert_eq!(refused.activity(activity).unwrap().unwrap(), expected(2));

    // Restarted between events, and all at once: the same views.
    let dir = root.path().join("restarted");
    for upto in 1..=log.len() {
        let views = open(&dir);
        views.apply(&records(&log, upto - 1, upto)).unwrap();
    }
    let whole = applied_whole(&root.path().join("whole"), &log);
    let restarted = open(&dir);
    for views in [&restarted, &whole, &refused] {
        views.apply(&records(&log, 0, log.len())).unwrap();
        assert_eq!(views.activity(activity).unwrap().unwrap(), expected(log.len()));
    }
    assert_eq!(restarted.state_digest().unwrap(), whole.state_digest().unwrap());
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

// ------------------------------------------------------ index postings --

/// Statements only: many target statements stored later (or earlier) by
/// StatementRef, some in chains, so older statements keep gaining facets.
fn referring_events(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut random = XorShift(seed);
    let id = |n: u64| Uuid::from_u64_pair(seed, n);
    let mut next = 0_u64;
    let mut out = Vec::new();
    for n in 0..count {
        let statements = (0..1 + random.below(3))
            .map(|_| {
                let this = next;
                next += 1;
                let object = match random.below(5) {
                    0 | 1 => json!({ "objectType": "StatementRef", "id": id(this + 1 + random.below(30)).to_string() }),
                    2 if this > 0 => json!({ "objectType": "StatementRef", "id": id(random.below(this)).to_string() }),
                    _ => json!({ "id": format!("https://learninghub.nhs.uk/activities/{}", random.below(5)) }),
                };
                let verb = if object["objectType"] == "StatementRef" && random.below(4) == 0 {
                    "http://adlnet.gov/expapi/verbs/voided"
                } else {
                    "http://adlnet.gov/expapi/verbs/completed"
                };
                stored_statement(id(this), random.below(4), verb, object, n as u64)
            })
            .collect();
        out.push(encode(&Event::StatementsStored { statements, attachments: Vec::new() }));
    }
    out
}

fn statement_ids(log: &[Vec<u8>]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for payload in log {
        if let Event::StatementsStored { statements, .. } = lrs_xapi::events::decode(payload).unwrap() {
            ids.extend(statements.iter().map(|s| s["id"].as_str().unwrap().parse::<Uuid>().unwrap()));
        }
    }
    ids
}

/// Every page of `query` (limit 3, following `next`), as ids.
fn paged(views: &Views, query: &StatementQuery) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut query = StatementQuery { limit: 3, ..query.clone() };
    loop {
        let page = views.query(&query, 100).unwrap();
        out.extend(
            page.statements.iter().map(|r| r.statement().unwrap()["id"].as_str().unwrap().parse::<Uuid>().unwrap()),
        );
        match page.next {
            Some(next) => query.after = Some(next),
            None => return out,
        }
    }
}

/// What `query` must return, worked out from the statement records alone
/// (never from the index): matching, not voided, in stored order.
fn expected(views: &Views, ids: &[Uuid], query: &StatementQuery) -> Vec<Uuid> {
    let mut found = Vec::new();
    for id in ids {
        let record = views.statement(*id).unwrap().unwrap();
        let facets = record.facets();
        let agents = if query.related_agents { &facets.related_agents } else { &facets.agents };
        let activities = if query.related_activities { &facets.related_activities } else { &facets.activities };
        let has = |list: &[String], wanted: &Option<String>| wanted.as_ref().is_none_or(|w| list.contains(w));
        if has(agents, &query.agent)
            && has(activities, &query.activity)
            && has(&facets.verbs, &query.verb)
            && query.since_micros.is_none_or(|since| record.stored_micros > since)
            && query.until_micros.is_none_or(|until| record.stored_micros <= until)
            && !views.is_voided(&record).unwrap()
        {
            found.push((record.stored_key(), *id));
        }
    }
    found.sort();
    if !query.ascending {
        found.reverse();
    }
    found.into_iter().map(|(_, id)| id).collect()
}

/// Index entries are grouped into one sled key per list and projection
/// batch, and entries for older statements (a StatementRef whose target
/// arrives later) go apart: whatever the batches, every query returns
/// exactly the matching statements, each once, in order, across pages.
#[test]
fn queries_find_every_matching_statement_once_in_order_whatever_the_batches() {
    for seed in [5_u64, 77, 1234] {
        let log = if seed == 5 { events(seed, 400) } else { referring_events(seed, 400) };
        let ids = statement_ids(&log);
        let root = tempfile::tempdir().unwrap();
        let whole = applied_whole(&root.path().join("whole"), &log);
        let pieces = open(&root.path().join("pieces"));
        let mut random = XorShift(seed ^ 0xba7c4);
        let mut from = 0;
        while from < log.len() {
            let to = (from + 1 + random.below(6) as usize).min(log.len());
            pieces.apply(&records(&log, from, to)).unwrap();
            from = to;
        }
        assert_eq!(whole.state_digest().unwrap(), pieces.state_digest().unwrap());
        // Stopped now and then without a flush: the postings held in memory
        // are read again from the records when the views are opened.
        let restarted_dir = root.path().join("restarted");
        let mut restarted = open(&restarted_dir);
        let mut from = 0;
        while from < log.len() {
            let to = (from + 1 + random.below(6) as usize).min(log.len());
            restarted.apply(&records(&log, from, to)).unwrap();
            from = to;
            if random.below(8) == 0 {
                drop(restarted);
                restarted = open(&restarted_dir);
            }
        }
        assert!(restarted.held_postings() > 0, "seed {seed}: small batches should leave postings held");
        assert_eq!(whole.state_digest().unwrap(), restarted.state_digest().unwrap());

        let agent = |n: u64| Some(format!("mbox:mailto:learner{n}@example.nhs.uk"));
        let activity = |n: u64| Some(format!("https://learninghub.nhs.uk/activities/{n}"));
        let micros = |second: i64| 1_767_225_600_000_000 + second * 1_000_000;
        let mut queries = vec![StatementQuery::default()];
        for n in 0..4 {
            queries.push(StatementQuery { agent: agent(n), ..Default::default() });
            queries.push(StatementQuery { agent: agent(n), related_agents: true, ..Default::default() });
            queries.push(StatementQuery { activity: activity(n), ..Default::default() });
            queries.push(StatementQuery { activity: activity(n), related_activities: true, ..Default::default() });
        }
        queries.push(StatementQuery {
            verb: Some("http://adlnet.gov/expapi/verbs/completed".into()),
            ..Default::default()
        });
        queries.push(StatementQuery {
            activity: activity(2),
            related_activities: true,
            since_micros: Some(micros(100)),
            until_micros: Some(micros(250)),
            ..Default::default()
        });
        queries.push(StatementQuery { agent: agent(1), since_micros: Some(micros(300)), ..Default::default() });
        queries.push(StatementQuery { until_micros: Some(micros(50)), ..Default::default() });
        queries.push(StatementQuery {
            since_micros: Some(micros(120)),
            until_micros: Some(micros(320)),
            ..Default::default()
        });
        // Two facet filters: the list walked is one's, the other is checked
        // on the statement.
        let completed = Some("http://adlnet.gov/expapi/verbs/completed".to_owned());
        for n in 0..4 {
            queries.push(StatementQuery { agent: agent(n), verb: completed.clone(), ..Default::default() });
            queries.push(StatementQuery { agent: agent(n), activity: activity(n + 1), ..Default::default() });
            queries.push(StatementQuery {
                agent: agent(n),
                related_agents: true,
                activity: activity(n),
                related_activities: true,
                ..Default::default()
            });
            queries.push(StatementQuery { activity: activity(n), verb: completed.clone(), ..Default::default() });
        }
        let mut nonempty = 0;
        for query in queries {
            for ascending in [false, true] {
                let query = StatementQuery { ascending, ..query.clone() };
                let want = expected(&whole, &ids, &query);
                nonempty += usize::from(!want.is_empty());
                assert_eq!(paged(&whole, &query), want, "seed {seed}, one batch: {query:?}");
                assert_eq!(paged(&pieces, &query), want, "seed {seed}, many batches: {query:?}");
                assert_eq!(paged(&restarted, &query), want, "seed {seed}, many batches and stops: {query:?}");
            }
        }
        assert!(nonempty > 20, "seed {seed}: the queries should find statements");

        // A query hands out each statement as the text of the stored one.
        let page = whole.query(&StatementQuery::default(), 10_000).unwrap();
        assert!(!page.statements.is_empty());
        for found in &page.statements {
            let id = found.statement().unwrap()["id"].as_str().unwrap().parse::<Uuid>().unwrap();
            let record = whole.statement(id).unwrap().unwrap();
            assert_eq!(found.json.get(), serde_json::to_string(&record.statement).unwrap());
        }
    }
}

/// Views written with the first layout (one key per index entry) are
/// cleared when opened, so the projector rebuilds them from the log.
#[test]
fn views_of_an_older_layout_are_rebuilt_from_the_log() {
    // Layout 1 had no layout mark; layout 3 kept statement records by id;
    // layout 6 kept its bookkeeping in four keys; layout 7 had a posting
    // list of all statements; layout 8 kept records in the tree; layout 11
    // compressed every record without a dictionary.
    for (mark, old_key) in [
        (None, b"Itold-style-entry".to_vec()),
        (Some(3_u64), [&b"S"[..], Uuid::new_v4().as_bytes()].concat()),
        (Some(6), b"M:sequence".to_vec()),
        (Some(7), [&b"It"[..], &[0; 16]].concat()),
        (Some(8), [&b"S"[..], &[0; 16]].concat()),
        (Some(10), [&b"S"[..], &[0; 16]].concat()),
        (Some(11), [&b"U"[..], &[0; 16]].concat()),
    ] {
        let root = tempfile::tempdir().unwrap();
        {
            let db = reopen_store(root.path());
            let tree = db.open_tree("views").unwrap();
            tree.insert(b"M:offset", &7_u64.to_be_bytes()).unwrap();
            if let Some(mark) = mark {
                tree.insert(b"M:layout", &mark.to_be_bytes()).unwrap();
            }
            tree.insert(old_key, &b"{}"[..]).unwrap();
            db.flush().unwrap();
        }
        let views = open(root.path());
        assert_eq!(views.applied_offset(), 0, "an old layout ({mark:?}) must be replayed from the start");
        assert!(views.query(&StatementQuery::default(), 10).unwrap().statements.is_empty());
        let log = events(11, 30);
        views.apply(&records(&log, 0, log.len())).unwrap();
        drop(views);
        let reopened = open(root.path());
        assert_eq!(reopened.applied_offset(), 30, "views of the current layout are kept");
    }
}

fn conf_says_compressed(dir: &Path) -> bool {
    std::fs::read(dir.join("conf")).unwrap().split(|b| *b == b'\n').any(|line| line == b"use_compression: true")
}

/// A store is created with compressed pages or without, as asked; once it
/// exists it keeps that setting whatever later opens ask for (sled refuses
/// to open a store with the other one), and both hold the same projection.
#[test]
fn a_store_keeps_the_compression_it_was_created_with() {
    let log = events(11, 120);
    let root = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for compressed in [true, false] {
        let dir = root.path().join(format!("compressed-{compressed}"));
        let views = open_with(&dir, compressed);
        views.apply(&records(&log, 0, log.len())).unwrap();
        digests.push(views.state_digest().unwrap());
        drop(views);
        assert_eq!(conf_says_compressed(&dir), compressed);
        let reopened = open_with(&dir, !compressed);
        assert_eq!(reopened.state_digest().unwrap(), digests[0]);
        drop(reopened);
        assert_eq!(conf_says_compressed(&dir), compressed);
    }
    assert_eq!(digests[0], digests[1]);
}

/// The file of statement records in views opened at `dir`.
fn record_file(dir: &Path) -> std::path::PathBuf {
    dir.join("statement-records")
}

/// The file of where each statement's record is, by sequence.
fn slot_file(dir: &Path) -> std::path::PathBuf {
    dir.join("statement-record-slots")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Records written past the committed length (by a batch whose sled
/// write then failed, or that was cut short by a stop) are cut off when the
/// views are opened, and the batches that follow write where they were.
#[test]
fn records_past_the_committed_length_are_cut_off_when_the_views_are_opened() {
    let log = events(12, 60);
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);

    let dir = root.path().join("stopped");
    let views = open(&dir);
    views.apply(&records(&log, 0, 20)).unwrap();
    drop(views);
    let committed = file_len(&record_file(&dir));
    let slots = file_len(&slot_file(&dir));
    assert!(slots > 0 && slots.is_multiple_of(12), "{slots}");
    for path in [record_file(&dir), slot_file(&dir)] {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::io::Write::write_all(&mut file, &[0xA5; 1000]).unwrap();
    }

    let views = open(&dir);
    assert_eq!(file_len(&record_file(&dir)), committed);
    assert_eq!(file_len(&slot_file(&dir)), slots);
    assert_eq!(views.applied_offset(), 20);
    views.apply(&records(&log, 20, log.len())).unwrap();
    assert_eq!(views.state_digest().unwrap(), clean.state_digest().unwrap());
    assert_eq!(file_len(&record_file(&dir)), file_len(&record_file(&root.path().join("clean"))));
    assert_eq!(file_len(&slot_file(&dir)), file_len(&slot_file(&root.path().join("clean"))));
}

/// Views whose file of records, or of their slots, is shorter than their
/// tree says (the machine stopped before the file reached the disk) are
/// rebuilt from the log, and end as views that never lost anything.
#[test]
fn views_whose_record_or_slot_file_lost_its_end_are_rebuilt_from_the_log() {
    let log = events(13, 50);
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);

    for (n, cut) in [record_file as fn(&Path) -> std::path::PathBuf, slot_file].into_iter().enumerate() {
        let dir = root.path().join(format!("cut-{n}"));
        drop(applied_whole(&dir, &log));
        let file = std::fs::OpenOptions::new().write(true).open(cut(&dir)).unwrap();
        file.set_len(file_len(&cut(&dir)) - 1).unwrap();
        drop(file);

        let views = open(&dir);
        assert_eq!(views.applied_offset(), 0, "views pointing past their records must be replayed from the start");
        assert!(views.query(&StatementQuery::default(), 10).unwrap().statements.is_empty());
        assert_eq!(file_len(&record_file(&dir)), 0);
        assert_eq!(file_len(&slot_file(&dir)), 0);
        views.apply(&records(&log, 0, log.len())).unwrap();
        assert_eq!(views.state_digest().unwrap(), clean.state_digest().unwrap());
    }
}

/// A record written again for a statement of an earlier batch (its target,
/// stored later, gave it facets) has its slot pointed at the new copy once
/// the batch is written. A stop in between leaves the slot at the older
/// copy; opening the views points it at the new one, from the tree.
#[test]
fn a_record_written_again_is_found_after_a_stop_before_its_slot_was_written() {
    let referrer = Uuid::from_u64_pair(21, 1);
    let target = Uuid::from_u64_pair(21, 2);
    let activity = "https://learninghub.nhs.uk/activities/referred";
    let log = vec![
        statements_event(vec![stored_statement(
            referrer,
            1,
            "http://adlnet.gov/expapi/verbs/completed",
            json!({ "objectType": "StatementRef", "id": target.to_string() }),
            1,
        )]),
        statements_event(vec![stored_statement(
            target,
            2,
            "http://adlnet.gov/expapi/verbs/completed",
            json!({ "id": activity }),
            2,
        )]),
    ];
    let root = tempfile::tempdir().unwrap();
    let whole = applied_whole(&root.path().join("whole"), &log);
    let inherits =
        |views: &Views| views.statement(referrer).unwrap().unwrap().facets().activities.contains(&activity.to_owned());
    assert!(inherits(&whole));

    let dir = root.path().join("stopped");
    let views = open(&dir);
    views.apply(&records(&log, 0, 1)).unwrap();
    let first_slot = std::fs::read(slot_file(&dir)).unwrap();
    assert_eq!(first_slot.len(), 12);
    views.apply(&records(&log, 1, 2)).unwrap();
    assert!(inherits(&views));
    assert_eq!(views.state_digest().unwrap(), whole.state_digest().unwrap());
    drop(views);
    // As if the process had stopped after the batch and before the slot.
    let file = std::fs::OpenOptions::new().write(true).open(slot_file(&dir)).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &first_slot, 0).unwrap();
    drop(file);

    let views = open(&dir);
    assert!(inherits(&views), "the slot should point at the record written again");
    let by_activity = StatementQuery { activity: Some(activity.to_owned()), ..Default::default() };
    let mut found = ids_of(&views, &by_activity);
    found.sort();
    let mut want = vec![referrer.to_string(), target.to_string()];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(views.state_digest().unwrap(), whole.state_digest().unwrap());
}

/// Keys among the records written again that the views did not write (a
/// malformed one; one pointing where its slot does not) leave the views
/// opening, and make their digest differ from a replay's.
#[test]
fn foreign_keys_among_records_written_again_open_and_make_the_digest_differ() {
    let log = events(15, 20);
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);
    let foreign: [(Vec<u8>, Vec<u8>); 2] =
        [(b"S-tampered".to_vec(), b"x".to_vec()), ([&b"S"[..], &3_u64.to_be_bytes()].concat(), [0_u8; 12].to_vec())];
    for (n, (key, value)) in foreign.into_iter().enumerate() {
        let dir = root.path().join(format!("tampered-{n}"));
        drop(applied_whole(&dir, &log));
        {
            let db = reopen_store(&dir);
            db.open_tree("views").unwrap().insert(key, value).unwrap();
            db.flush().unwrap();
        }
        let views = open(&dir);
        assert_eq!(views.applied_offset(), log.len() as u64);
        assert_ne!(views.state_digest().unwrap(), clean.state_digest().unwrap(), "key {n}");
    }
}

/// A record damaged on disk is reported as corrupt, never returned.
#[test]
fn a_damaged_record_is_reported_as_corrupt() {
    let log = events(14, 20);
    let root = tempfile::tempdir().unwrap();
    drop(applied_whole(root.path(), &log));
    let path = record_file(root.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();

    let views = open(root.path());
    let error = views.query(&StatementQuery { limit: 1000, ..StatementQuery::default() }, 1000).unwrap_err();
    assert!(matches!(error, ViewsError::Corrupt(_)), "{error}");
    // Verification compares digests: the damage makes this one differ from
    // a clean replay instead of stopping it.
    let clean_root = tempfile::tempdir().unwrap();
    let clean = applied_whole(clean_root.path(), &log);
    assert_ne!(views.state_digest().unwrap(), clean.state_digest().unwrap());
}

/// Applied in batches of one statement, each learner's postings are held in
/// memory (one sled key a list and batch would otherwise be written), found
/// by queries all the same, read again after a stop, and all written by a
/// flush, after which nothing is held, before or after a reopen.
#[test]
fn postings_of_small_batches_are_held_found_recovered_and_written_by_a_flush() {
    let learners = 50_u64;
    let log: Vec<Vec<u8>> = (0..learners)
        .map(|n| {
            let activity = json!({ "id": format!("https://learninghub.nhs.uk/activities/{}", n % 3) });
            let statement =
                stored_statement(Uuid::from_u64_pair(9, n), n, "http://adlnet.gov/expapi/verbs/completed", activity, n);
            statements_event(vec![statement])
        })
        .collect();
    let root = tempfile::tempdir().unwrap();
    let whole = applied_whole(&root.path().join("whole"), &log);
    let dir = root.path().join("one-by-one");
    let views = open(&dir);
    for offset in 0..log.len() {
        views.apply(&records(&log, offset, offset + 1)).unwrap();
    }
    // Actor, authority (a related agent), verb and activity: four postings
    // a statement, none written (the list of all statements is never held).
    assert_eq!(views.held_postings(), 4 * learners as usize);
    let by_agent = |views: &Views, n: u64| {
        ids_of(
            views,
            &StatementQuery { agent: Some(format!("mbox:mailto:learner{n}@example.nhs.uk")), ..Default::default() },
        )
    };
    let completed =
        StatementQuery { verb: Some("http://adlnet.gov/expapi/verbs/completed".into()), ..Default::default() };
    for n in 0..learners {
        assert_eq!(by_agent(&views, n), vec![Uuid::from_u64_pair(9, n).to_string()]);
    }
    assert_eq!(ids_of(&views, &completed).len(), learners as usize);
    assert_eq!(views.state_digest().unwrap(), whole.state_digest().unwrap());

    // A stop without a flush loses what was held; opening reads it again.
    drop(views);
    let views = open(&dir);
    assert_eq!(views.held_postings(), 4 * learners as usize);
    for n in 0..learners {
        assert_eq!(by_agent(&views, n), vec![Uuid::from_u64_pair(9, n).to_string()]);
    }
    assert_eq!(views.state_digest().unwrap(), whole.state_digest().unwrap());

    views.flush().unwrap();
    assert_eq!(views.held_postings(), 0);
    assert_eq!(ids_of(&views, &completed).len(), learners as usize);
    drop(views);
    let views = open(&dir);
    assert_eq!(views.held_postings(), 0);
    for n in 0..learners {
        assert_eq!(by_agent(&views, n), vec![Uuid::from_u64_pair(9, n).to_string()]);
    }
    assert_eq!(views.state_digest().unwrap(), whole.state_digest().unwrap());
}

/// The views remember the names of the agents they saw lately, so that a
/// statement repeating one reads nothing; a name in a refused batch is not
/// remembered, so it is stored when it comes again.
#[test]
fn agent_names_are_kept_whatever_the_batches_and_a_refused_batch_teaches_none() {
    let named = |n: u64, name: &str| {
        let mut statement = stored_statement(
            Uuid::from_u64_pair(11, n),
            1,
            "http://adlnet.gov/expapi/verbs/completed",
            json!({ "id": "https://learninghub.nhs.uk/activities/1" }),
            n,
        );
        statement["actor"]["name"] = json!(name);
        statements_event(vec![statement])
    };
    let log = vec![named(0, "Ann"), named(1, "Ann B"), named(2, "Ann"), named(3, "Ann C"), named(4, "Ann B")];
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);
    let ifi = "mbox:mailto:learner1@example.nhs.uk";
    assert_eq!(clean.agent_names(ifi).unwrap(), ["Ann", "Ann B", "Ann C"]);

    let views = open(&root.path().join("refused"));
    views.apply(&records(&log, 0, 1)).unwrap();
    let mut refused = records(&log, 1, 2);
    refused.push(LogRecord { offset: 2, payload: b"not an event".to_vec() });
    views.apply(&refused).unwrap_err();
    assert_eq!(views.agent_names(ifi).unwrap(), ["Ann"]);
    for offset in 1..log.len() {
        views.apply(&records(&log, offset, offset + 1)).unwrap();
    }
    assert_eq!(views.agent_names(ifi).unwrap(), ["Ann", "Ann B", "Ann C"]);
    assert_eq!(views.state_digest().unwrap(), clean.state_digest().unwrap());
}

/// The sled store in `dir` opened as it is, once the views that had it
/// let it go (sled's threads can hold its lock a moment after a drop).
fn reopen_store(dir: &Path) -> sled::Db {
    lrs_projection::open_store(dir, StoreOptions::cache(1 << 20)).unwrap()
}

/// Statements alike in their structure, as the Learning Hub's traffic is:
/// `count` of them, `per_event` to an event, `stored` increasing.
fn alike_statements(count: usize, per_event: usize) -> (Vec<Vec<u8>>, Vec<Value>) {
    let mut random = XorShift(2026);
    let statements: Vec<Value> = (0..count)
        .map(|n| {
            let learner = random.below(500);
            let activity = random.below(40);
            let (verb, display) = [("completed", "completed"), ("passed", "passed"), ("experienced", "experienced")]
                [random.below(3) as usize];
            json!({
                "id": Uuid::from_u64_pair(77, n as u64).to_string(),
                "actor": { "objectType": "Agent", "name": format!("Learner {learner}"),
                           "mbox": format!("mailto:learner{learner}@nhs.net") },
                "verb": { "id": format!("http://adlnet.gov/expapi/verbs/{verb}"), "display": { "en-GB": display } },
                "object": { "objectType": "Activity", "id": format!("https://learninghub.nhs.uk/activities/{activity}"),
                            "definition": { "name": { "en-GB": format!("Course {activity}") },
                                            "type": "http://adlnet.gov/expapi/activities/course" } },
                "result": { "score": { "scaled": random.below(100) as f64 / 100.0 }, "completion": true,
                            "duration": format!("PT{}M", random.below(90)) },
                "context": {
                    "registration": Uuid::from_u64_pair(78, random.next()).to_string(),
                    "platform": "e-Learning for Healthcare",
                    "language": "en-GB",
                    "extensions": {
                        "https://learninghub.nhs.uk/extensions/ods-code": format!("R{:02}", random.below(30)),
                        "https://learninghub.nhs.uk/extensions/staff-group": "Nursing and Midwifery"
                    }
                },
                "timestamp": format!("2026-01-01T{:02}:{:02}:00Z", n / 60 % 24, n % 60),
                "stored": format!("2026-02-01T00:00:00.{:06}Z", n),
                "authority": { "objectType": "Agent", "account": { "homePage": "https://lrs.example", "name": "client" } },
                "version": "1.0.3"
            })
        })
        .collect();
    let events = statements.chunks(per_event).map(|chunk| statements_event(chunk.to_vec())).collect();
    (events, statements)
}

/// Applies `log` from offset `from` to `to` in batches of `events` events.
fn apply_in_batches(views: &Views, log: &[Vec<u8>], (from, to): (usize, usize), events: usize) {
    for start in (from..to).step_by(events) {
        views.apply(&records(log, start, (start + events).min(to))).unwrap();
    }
}

/// Every statement of `statements` reads back from `views` as it was.
fn assert_all_read_back(views: &Views, statements: &[Value]) {
    for statement in statements {
        let id = Uuid::parse_str(statement["id"].as_str().unwrap()).unwrap();
        let record = views.statement(id).unwrap().unwrap_or_else(|| panic!("statement {id} not found"));
        assert_eq!(&record.statement, statement);
    }
}

/// Waits (bounded) until `views` have trained their dictionary of records.
fn until_dictionary_trained(views: &Views) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !views.record_dictionary_trained() {
        assert!(std::time::Instant::now() < deadline, "the dictionary of records was never trained");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Once the views hold 4,096 statements they train a dictionary on those
/// statements' records, beside the batches (which do not wait for it), and
/// compress every later record with it: a record of statements alike
/// takes a fraction of what it took alone. It is written with the first
/// batch that uses it, so reopened views read every record; and since
/// records count by what they hold, views that trained it at another
/// batch's start, or while other batches were applied, digest the same.
#[test]
fn records_after_the_first_4096_statements_are_compressed_with_a_dictionary_trained_on_them() {
    let (log, statements) = alike_statements(6000, 50);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("in-400s");
    let views = open(&dir);
    // Batches of 400 statements: the dictionary's training starts with the
    // batch after 4,400 (here, one of nothing).
    apply_in_batches(&views, &log, (0, 88), 8);
    assert!(!views.record_dictionary_trained());
    views.apply(&[]).unwrap();
    until_dictionary_trained(&views);
    let before = file_len(&record_file(&dir)) as f64 / 4400.0;
    apply_in_batches(&views, &log, (88, log.len()), 8);
    let after = (file_len(&record_file(&dir)) as f64 - before * 4400.0) / 1600.0;
    assert!(after < before * 0.5, "{after:.0} bytes a record with the dictionary, {before:.0} without");
    let digest = views.state_digest().unwrap();
    drop(views);

    let reopened = open(&dir);
    assert_all_read_back(&reopened, &statements);
    assert_eq!(reopened.state_digest().unwrap(), digest);

    // Batches of 350 statements train it at 4,200; one batch of them all,
    // never (until the next).
    for (name, events) in [("in-350s", 7), ("whole", log.len())] {
        let other = open(&root.path().join(name));
        apply_in_batches(&other, &log, (0, log.len()), events);
        assert_eq!(other.state_digest().unwrap(), digest, "{name}");
    }
}

/// A batch refused after the dictionary was trained for it leaves it to be
/// written by the next batch, whose records use it.
#[test]
fn a_dictionary_trained_for_a_refused_batch_is_written_by_the_next() {
    let (log, statements) = alike_statements(6000, 50);
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);

    let dir = root.path().join("refused");
    let views = open(&dir);
    views.apply(&records(&log, 0, 82)).unwrap();
    let mut refused = records(&log, 82, 90);
    refused.push(LogRecord { offset: 90, payload: b"not an event".to_vec() });
    assert!(matches!(views.apply(&refused).unwrap_err(), ViewsError::BadEvent { offset: 90, .. }));
    until_dictionary_trained(&views);
    views.apply(&records(&log, 82, log.len())).unwrap();
    drop(views);

    let reopened = open(&dir);
    assert_all_read_back(&reopened, &statements);
    assert_eq!(reopened.state_digest().unwrap(), clean.state_digest().unwrap());
}

/// Views whose dictionary of records cannot be read cannot read the
/// records compressed with it: they are rebuilt from the log.
#[test]
fn views_whose_dictionary_is_damaged_are_rebuilt_from_the_log() {
    let (log, statements) = alike_statements(5000, 50);
    let root = tempfile::tempdir().unwrap();
    let clean = applied_whole(&root.path().join("clean"), &log);

    let dir = root.path().join("damaged");
    let views = open(&dir);
    apply_in_batches(&views, &log, (0, 90), 10);
    views.apply(&[]).unwrap();
    until_dictionary_trained(&views);
    apply_in_batches(&views, &log, (90, log.len()), 10);
    drop(views);
    {
        let db = reopen_store(&dir);
        let tree = db.open_tree("views").unwrap();
        let mut dictionary = tree.get(b"M:record-dictionary").unwrap().expect("a dictionary was written").to_vec();
        dictionary.truncate(4);
        tree.insert(b"M:record-dictionary", dictionary).unwrap();
        db.flush().unwrap();
    }
    let views = open(&dir);
    assert_eq!(views.applied_offset(), 0, "views that cannot read their records must be replayed from the start");
    assert_eq!(file_len(&record_file(&dir)), 0);
    apply_in_batches(&views, &log, (0, log.len()), 10);
    assert_all_read_back(&views, &statements);
    assert_eq!(views.state_digest().unwrap(), clean.state_digest().unwrap());
}
