//! Example-based tests of every Learning Hub view: events go through
//! `HubViews::apply` as log records, exactly as the projector feeds them, and
//! the queries are checked against hand-worked answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use lrs_eventlog::LogRecord;
use lrs_hub::facts::{LEARNING_HUB_HOME_PAGE, ORGANISATION_EXTENSION, STAFF_GROUP_EXTENSION, learning_hub_learner};
use lrs_hub::frameworks::Frameworks;
use lrs_hub::{
    CompetencyStatus, CompetencyView, Granularity, HubViews, TranscriptEntry, TranscriptStatus, UptakeQuery, UptakeRow,
};
use lrs_xapi::events::{self, Event, LearnerEntry, OrganisationEntry};

// ------------------------------------------------------------- vocabulary --

const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
const ATTEMPTED: &str = "http://adlnet.gov/expapi/verbs/attempted";
const EXPERIENCED: &str = "http://adlnet.gov/expapi/verbs/experienced";
const ATTENDED: &str = "http://adlnet.gov/expapi/verbs/attended";
const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

const INFECTION: &str = "https://courses.example.com/infection-control";
const GENOMICS_1: &str = "https://courses.example.com/genomics/intro";
const GENOMICS_2: &str = "https://courses.example.com/genomics/advanced";
const RESUS: &str = "https://courses.example.com/resuscitation";
const SIMULATION: &str = "https://courses.example.com/simulation-day";
const QUIZ: &str = "https://courses.example.com/quiz-7";
const OTHER: &str = "https://courses.example.com/unmapped";
const ASSESSMENT_TYPE: &str = "http://adlnet.gov/expapi/activities/assessment";

const C_ID: &str = "https://frameworks.example.com/f/infection-prevention";
const C_PREFIX: &str = "https://frameworks.example.com/f/genomics";
const C_TYPE: &str = "https://frameworks.example.com/f/assessed";
const C_SCORE: &str = "https://frameworks.example.com/f/resuscitation";
const C_VERB: &str = "https://frameworks.example.com/f/simulation";
const C_CONTEXT: &str = "https://frameworks.example.com/f/leadership";

const FRAMEWORKS_A: &str = r#"{"frameworks": [{
    "id": "https://frameworks.example.com/f", "name": "Framework F",
    "competencies": [
        {"id": "https://frameworks.example.com/f/infection-prevention", "name": "Infection prevention", "domain": "Safety"},
        {"id": "https://frameworks.example.com/f/genomics", "name": "Genomics", "domain": "Science"},
        {"id": "https://frameworks.example.com/f/assessed", "name": "Assessed", "domain": "Practice"},
        {"id": "https://frameworks.example.com/f/resuscitation", "name": "Resuscitation", "domain": "Safety"},
        {"id": "https://frameworks.example.com/f/simulation", "name": "Simulation", "domain": "Practice"},
        {"id": "https://frameworks.example.com/f/leadership", "name": "Leadership", "domain": "People"}
    ],
    "rules": [
        {"activityId": "https://courses.example.com/infection-control", "competencies": ["https://frameworks.example.com/f/infection-prevention"]},
        {"activityIdPrefix": "https://courses.example.com/genomics/", "competencies": ["https://frameworks.example.com/f/genomics"]},
        {"activityType": "http://adlnet.gov/expapi/activities/assessment", "competencies": ["https://frameworks.example.com/f/assessed"]},
        {"activityId": "https://courses.example.com/resuscitation", "minScaled": 0.8, "competencies": ["https://frameworks.example.com/f/resuscitation"]},
        {"activityId": "https://courses.example.com/simulation-day", "verbs": ["http://adlnet.gov/expapi/verbs/attended"], "competencies": ["https://frameworks.example.com/f/simulation"]}
    ]
}]}"#;

const C_HYGIENE: &str = "https://frameworks.example.com/g/hand-hygiene";

/// Another file: the infection-control course now evidences a different competency.
const FRAMEWORKS_B: &str = r#"{"frameworks": [{
    "id": "https://frameworks.example.com/g", "name": "Framework G",
    "competencies": [{"id": "https://frameworks.example.com/g/hand-hygiene", "name": "Hand hygiene", "domain": "Safety"}],
    "rules": [{"activityId": "https://courses.example.com/infection-control", "competencies": ["https://frameworks.example.com/g/hand-hygiene"]}]
}]}"#;

fn frameworks_a() -> Frameworks {
    Frameworks::parse(FRAMEWORKS_A).unwrap()
}

fn frameworks_b() -> Frameworks {
    Frameworks::parse(FRAMEWORKS_B).unwrap()
}

// ------------------------------------------------------------- statements --

fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The agent key of Learning Hub account `name`.
fn learner(name: &str) -> String {
    learning_hub_learner(name)
}

/// A stored statement: learner `name` did `verb` on `activity` at `timestamp`.
fn statement(id: u32, name: &str, verb: &str, activity: &str, timestamp: &str) -> Value {
    json!({
        "id": uuid(id),
        "actor": {"objectType": "Agent", "account": {"homePage": LEARNING_HUB_HOME_PAGE, "name": name}},
        "verb": {"id": verb, "display": {"en-GB": "did"}},
        "object": {"objectType": "Activity", "id": activity},
        "timestamp": timestamp,
        "stored": "2026-06-30T23:00:00Z",
        "authority": {
            "objectType": "Agent",
            "name": "moodle",
            "account": {"homePage": "https://lrs.example.com", "name": "moodle-client"}
        },
        "version": "1.0.3"
    })
}

/// Sets `value` at `path`, creating objects on the way.
fn set(mut statement: Value, path: &[&str], value: Value) -> Value {
    let mut current = &mut statement;
    for part in &path[..path.len() - 1] {
        if current.get(*part).is_none() {
            current[*part] = json!({});
        }
        current = &mut current[*part];
    }
    current[path[path.len() - 1]] = value;
    statement
}

fn scored(statement: Value, scaled: f64) -> Value {
    set(statement, &["result", "score", "scaled"], json!(scaled))
}

fn lasting(statement: Value, duration: &str) -> Value {
    set(statement, &["result", "duration"], json!(duration))
}

fn named(statement: Value, name: Value) -> Value {
    set(statement, &["object", "definition", "name"], name)
}

fn typed(statement: Value, activity_type: &str) -> Value {
    set(statement, &["object", "definition", "type"], json!(activity_type))
}

fn on_platform(statement: Value, platform: &str) -> Value {
    set(statement, &["context", "platform"], json!(platform))
}

fn in_organisation(statement: Value, code: &str) -> Value {
    set(statement, &["context", "extensions", ORGANISATION_EXTENSION], json!(code))
}

fn in_staff_group(statement: Value, group: &str) -> Value {
    set(statement, &["context", "extensions", STAFF_GROUP_EXTENSION], json!(group))
}

fn with_category(statement: Value, activity: &str) -> Value {
    set(statement, &["context", "contextActivities", "category"], json!([{"id": activity}]))
}

fn stored_only(mut statement: Value, stored: &str) -> Value {
    if let Some(object) = statement.as_object_mut() {
        object.remove("timestamp");
    }
    set(statement, &["stored"], json!(stored))
}

/// A voiding statement by an administrator.
fn void(id: u32, target: u32) -> Value {
    json!({
        "id": uuid(id),
        "actor": {"objectType": "Agent", "mbox": "mailto:admin@example.com"},
        "verb": {"id": VOIDED, "display": {"en-GB": "voided"}},
        "object": {"objectType": "StatementRef", "id": uuid(target)},
        "timestamp": "2026-06-01T12:00:00Z",
        "stored": "2026-06-01T12:00:00Z",
        "authority": {"objectType": "Agent", "name": "admin", "mbox": "mailto:admin@example.com"},
        "version": "1.0.3"
    })
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

// ---------------------------------------------------------------- harness --

fn open(dir: &Path, frameworks: Frameworks) -> HubViews {
    HubViews::open(dir, lrs_projection::StoreOptions::cache(4 << 20), frameworks).unwrap()
}

fn record(offset: u64, event: &Event) -> LogRecord {
    LogRecord { offset, payload: events::encode(event) }
}

fn stored(statements: Vec<Value>) -> Event {
    Event::StatementsStored { statements, attachments: Vec::new() }
}

fn learners(entries: &[(&str, &str, Option<&str>)]) -> Event {
    Event::LearnersImported {
        learners: entries
            .iter()
            .map(|(name, organisation, staff_group)| LearnerEntry {
                learner: learner(name),
                organisation: (*organisation).to_owned(),
                staff_group: staff_group.map(str::to_owned),
            })
            .collect(),
    }
}

fn organisations(entries: &[(&str, Option<&str>)]) -> Event {
    Event::OrganisationsImported {
        organisations: entries
            .iter()
            .map(|(code, parent)| OrganisationEntry {
                code: (*code).to_owned(),
                name: format!("Organisation {code}"),
                parent: parent.map(str::to_owned),
            })
            .collect(),
    }
}

/// The usual hierarchy: region Y56 > ICBs QKK, QKE > trusts RJ1, RJ2 (QKK) and RAL (QKE).
fn hierarchy() -> Event {
    organisations(&[
        ("Y56", None),
        ("QKK", Some("Y56")),
        ("QKE", Some("Y56")),
        ("RJ1", Some("QKK")),
        ("RJ2", Some("QKK")),
        ("RAL", Some("QKE")),
    ])
}

/// Views in a fresh directory, and the log fed to them so far.
struct Hub {
    views: HubViews,
    log: Vec<Event>,
    _dir: tempfile::TempDir,
}

impl Hub {
    fn new() -> Self {
        Self::with(frameworks_a())
    }

    fn with(frameworks: Frameworks) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { views: open(dir.path(), frameworks), log: Vec::new(), _dir: dir }
    }

    /// Appends one event at the next offset and applies it.
    fn apply(&mut self, event: Event) -> &mut Self {
        let offset = self.log.len() as u64;
        self.views.apply(&[record(offset, &event)]).unwrap();
        self.log.push(event);
        assert_eq!(self.views.applied_offset(), offset + 1);
        self
    }

    fn store(&mut self, statements: Vec<Value>) -> &mut Self {
        self.apply(stored(statements))
    }

    fn transcript(&self, name: &str) -> Vec<TranscriptEntry> {
        self.views.transcript(&learner(name)).unwrap()
    }

    fn entry(&self, name: &str, activity: &str) -> TranscriptEntry {
        self.transcript(name)
            .into_iter()
            .find(|e| e.activity == activity)
            .unwrap_or_else(|| panic!("no transcript entry for {activity}"))
    }

    fn competency(&self, name: &str, competency: &str) -> CompetencyView {
        self.views
            .competencies(&learner(name))
            .unwrap()
            .into_iter()
            .find(|c| c.competency == competency)
            .unwrap_or_else(|| panic!("no competency {competency}"))
    }

    fn coverage(&self, organisation: &str, competency: &str) -> u64 {
        self.views
            .coverage(organisation)
            .unwrap()
            .into_iter()
            .find(|c| c.competency == competency)
            .unwrap_or_else(|| panic!("no coverage row for {competency}"))
            .learners_achieved
    }

    fn uptake(&self, query: &UptakeQuery) -> Vec<UptakeRow> {
        self.views.uptake(query).unwrap()
    }
}

fn query(organisation: &str, from: &str, to: &str, granularity: Granularity) -> UptakeQuery {
    UptakeQuery {
        organisation: organisation.to_owned(),
        from: date(from),
        to: date(to),
        granularity,
        activity: None,
        platform: None,
        staff_group: None,
    }
}

/// Uptake of March 2026, by day.
fn march(organisation: &str) -> UptakeQuery {
    query(organisation, "2026-03-01", "2026-03-31", Granularity::Day)
}

fn row(period: &str, active_learners: u64, started: u64, completed: u64, passed: u64, statements: u64) -> UptakeRow {
    UptakeRow { period: period.to_owned(), active_learners, started, completed, passed, statements }
}

// ------------------------------------------------------------- transcript --

#[test]
fn given_mixed_outcomes_when_reading_the_transcript_then_passed_beats_completed_beats_failed_beats_in_progress() {
    let mut hub = Hub::new();
    hub.store(vec![
        // Passed first, then failed and completed later: passed still wins.
        statement(1, "1", PASSED, "https://c/a1", "2026-03-01T09:00:00Z"),
        statement(2, "1", FAILED, "https://c/a1", "2026-03-02T09:00:00Z"),
        statement(3, "1", COMPLETED, "https://c/a1", "2026-03-03T09:00:00Z"),
        statement(4, "1", ATTEMPTED, "https://c/a1", "2026-03-04T09:00:00Z"),
        // Completed beats failed, whichever comes last.
        statement(5, "1", COMPLETED, "https://c/a2", "2026-03-01T09:00:00Z"),
        statement(6, "1", FAILED, "https://c/a2", "2026-03-02T09:00:00Z"),
        // Failed beats mere progress.
        statement(7, "1", FAILED, "https://c/a3", "2026-03-01T09:00:00Z"),
        statement(8, "1", ATTEMPTED, "https://c/a3", "2026-03-02T09:00:00Z"),
        // Only progress verbs.
        statement(9, "1", ATTEMPTED, "https://c/a4", "2026-03-01T09:00:00Z"),
        statement(10, "1", EXPERIENCED, "https://c/a4", "2026-03-02T09:00:00Z"),
    ]);
    assert_eq!(hub.entry("1", "https://c/a1").status, TranscriptStatus::Passed);
    assert_eq!(hub.entry("1", "https://c/a2").status, TranscriptStatus::Completed);
    assert_eq!(hub.entry("1", "https://c/a3").status, TranscriptStatus::Failed);
    assert_eq!(hub.entry("1", "https://c/a4").status, TranscriptStatus::InProgress);
    assert_eq!(hub.entry("1", "https://c/a1").statements, 4);
}

#[test]
fn given_statements_out_of_order_when_reading_the_transcript_then_first_and_last_are_min_and_max_time() {
    let mut hub = Hub::new();
    hub.store(vec![statement(1, "1", ATTEMPTED, INFECTION, "2026-03-05T10:00:00Z")]);
    hub.store(vec![
        // Back-dated, with an offset: 2026-03-02T23:30:00Z.
        statement(2, "1", ATTEMPTED, INFECTION, "2026-03-03T01:30:00+02:00"),
        // No timestamp: stored is the time.
        stored_only(statement(3, "1", COMPLETED, INFECTION, "unused"), "2026-03-09T08:00:00Z"),
    ]);
    let entry = hub.entry("1", INFECTION);
    assert_eq!(entry.first, time("2026-03-02T23:30:00Z"));
    assert_eq!(entry.last, time("2026-03-09T08:00:00Z"));
    assert_eq!(entry.statements, 3);
}

#[test]
fn given_scores_and_durations_when_reading_the_transcript_then_best_scaled_and_total_duration() {
    let mut hub = Hub::new();
    hub.store(vec![
        lasting(scored(statement(1, "1", FAILED, QUIZ, "2026-03-01T10:00:00Z"), 0.5), "PT10M"),
        lasting(scored(statement(2, "1", PASSED, QUIZ, "2026-03-02T10:00:00Z"), 0.9), "PT1H"),
        scored(statement(3, "1", ATTEMPTED, QUIZ, "2026-03-03T10:00:00Z"), 0.7),
        lasting(statement(4, "1", EXPERIENCED, QUIZ, "2026-03-04T10:00:00Z"), "PT30.5S"),
        statement(5, "1", ATTEMPTED, OTHER, "2026-03-04T10:00:00Z"),
    ]);
    let quiz = hub.entry("1", QUIZ);
    assert_eq!(quiz.best_scaled, Some(0.9));
    assert_eq!(quiz.total_duration_ms, 600_000 + 3_600_000 + 30_500);
    let other = hub.entry("1", OTHER);
    assert_eq!(other.best_scaled, None, "no score, no best score");
    assert_eq!(other.total_duration_ms, 0);
}

#[test]
fn given_negative_scores_only_when_reading_the_transcript_then_best_scaled_is_the_highest_negative() {
    let mut hub = Hub::new();
    hub.store(vec![
        scored(statement(1, "1", FAILED, QUIZ, "2026-03-01T10:00:00Z"), -0.5),
        scored(statement(2, "1", FAILED, QUIZ, "2026-03-02T10:00:00Z"), -0.25),
    ]);
    assert_eq!(hub.entry("1", QUIZ).best_scaled, Some(-0.25));
}

#[test]
fn given_language_maps_when_reading_the_transcript_then_the_name_prefers_en_gb_then_en_us_then_any() {
    let mut hub = Hub::new();
    hub.store(vec![
        named(
            statement(1, "1", ATTEMPTED, "https://c/gb", "2026-03-01T10:00:00Z"),
            json!({"fr": "Cours", "en-US": "Color", "en-GB": "Colour"}),
        ),
        named(
            statement(2, "1", ATTEMPTED, "https://c/us", "2026-03-01T10:00:00Z"),
            json!({"fr": "Cours", "en-US": "Color"}),
        ),
        named(statement(3, "1", ATTEMPTED, "https://c/any", "2026-03-01T10:00:00Z"), json!({"de": "Kurs"})),
        statement(4, "1", ATTEMPTED, "https://c/none", "2026-03-01T10:00:00Z"),
    ]);
    assert_eq!(hub.entry("1", "https://c/gb").name.as_deref(), Some("Colour"));
    assert_eq!(hub.entry("1", "https://c/us").name.as_deref(), Some("Color"));
    assert_eq!(hub.entry("1", "https://c/any").name.as_deref(), Some("Kurs"));
    assert_eq!(hub.entry("1", "https://c/none").name, None);
}

#[test]
fn given_several_definitions_when_reading_the_transcript_then_the_name_is_from_the_latest_definition_seen() {
    let mut hub = Hub::new();
    hub.store(vec![named(statement(1, "1", ATTEMPTED, QUIZ, "2026-03-05T10:00:00Z"), json!({"en-GB": "Quiz (old)"}))]);
    assert_eq!(hub.entry("1", QUIZ).name.as_deref(), Some("Quiz (old)"));
    // Seen later, although back-dated: its definition is the latest seen.
    hub.store(vec![named(statement(2, "1", ATTEMPTED, QUIZ, "2026-03-01T10:00:00Z"), json!({"en-US": "Quiz (new)"}))]);
    assert_eq!(hub.entry("1", QUIZ).name.as_deref(), Some("Quiz (new)"));
    // A statement with no definition does not erase the name.
    hub.store(vec![statement(3, "1", COMPLETED, QUIZ, "2026-03-06T10:00:00Z")]);
    assert_eq!(hub.entry("1", QUIZ).name.as_deref(), Some("Quiz (new)"));
}

#[test]
fn given_statements_from_several_platforms_when_reading_the_transcript_then_the_platform_is_that_of_the_latest_statement()
 {
    let mut hub = Hub::new();
    hub.store(vec![on_platform(statement(1, "1", ATTEMPTED, QUIZ, "2026-03-01T10:00:00Z"), "e-LfH")]);
    assert_eq!(hub.entry("1", QUIZ).platform, "e-LfH");
    // Later, no context.platform: the authority's name.
    hub.store(vec![statement(2, "1", COMPLETED, QUIZ, "2026-03-02T10:00:00Z")]);
    assert_eq!(hub.entry("1", QUIZ).platform, "moodle");
    // Seen later but back-dated: not the latest statement.
    hub.store(vec![on_platform(statement(3, "1", ATTEMPTED, QUIZ, "2026-02-01T10:00:00Z"), "totara")]);
    assert_eq!(hub.entry("1", QUIZ).platform, "moodle");
}

#[test]
fn given_several_activities_when_reading_the_transcript_then_the_most_recent_comes_first() {
    let mut hub = Hub::new();
    hub.store(vec![
        statement(1, "1", ATTEMPTED, "https://c/b", "2026-03-02T10:00:00Z"),
        statement(2, "1", ATTEMPTED, "https://c/a", "2026-03-01T10:00:00Z"),
        statement(3, "1", ATTEMPTED, "https://c/a", "2026-03-04T10:00:00Z"),
        statement(4, "1", ATTEMPTED, "https://c/c", "2026-03-03T10:00:00Z"),
        statement(5, "1", ATTEMPTED, "https://c/d", "2026-03-02T10:00:00Z"),
        statement(6, "2", ATTEMPTED, "https://c/z", "2026-03-09T10:00:00Z"),
    ]);
    let order: Vec<String> = hub.transcript("1").into_iter().map(|e| e.activity).collect();
    assert_eq!(order, ["https://c/a", "https://c/c", "https://c/b", "https://c/d"]);
    assert!(hub.transcript("3").is_empty(), "a learner with no statements has an empty transcript");
}

#[test]
fn given_a_statement_whose_object_is_not_an_activity_when_reading_the_transcript_then_it_has_no_entry() {
    let mut hub = Hub::new();
    let about_agent = set(
        statement(1, "1", EXPERIENCED, "unused", "2026-03-01T10:00:00Z"),
        &["object"],
        json!({"objectType": "Agent", "mbox": "mailto:mentor@example.com"}),
    );
    hub.store(vec![about_agent]);
    assert!(hub.transcript("1").is_empty());
}

// ----------------------------------------------------------------- voiding --

#[test]
fn given_a_counted_statement_when_it_is_voided_then_it_is_removed_from_every_view() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![
        scored(statement(1, "1", ATTEMPTED, INFECTION, "2026-03-02T09:00:00Z"), 0.4),
        scored(statement(2, "1", PASSED, INFECTION, "2026-03-02T10:00:00Z"), 0.9),
    ]);
    let before = hub.entry("1", INFECTION);
    assert_eq!((before.status, before.best_scaled, before.statements), (TranscriptStatus::Passed, Some(0.9), 2));
    assert_eq!(hub.competency("1", C_ID).status, CompetencyStatus::Achieved);
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 1, 1, 1, 1, 2)]);
    assert_eq!(hub.coverage("RJ1", C_ID), 1);
    assert_eq!(hub.coverage("QKK", C_ID), 1);

    hub.store(vec![void(3, 2)]);
    let after = hub.entry("1", INFECTION);
    assert_eq!(after.status, TranscriptStatus::InProgress);
    assert_eq!(after.best_scaled, Some(0.4));
    assert_eq!(after.statements, 1);
    assert_eq!(after.last, time("2026-03-02T09:00:00Z"));
    let competency = hub.competency("1", C_ID);
    assert_eq!(competency.status, CompetencyStatus::InProgress);
    assert_eq!(competency.achieved_at, None);
    assert!(competency.evidence.is_empty());
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 1, 1, 0, 0, 1)]);
    assert_eq!(hub.coverage("RJ1", C_ID), 0);
    assert_eq!(hub.coverage("QKK", C_ID), 0);

    hub.store(vec![void(4, 1)]);
    assert!(hub.transcript("1").is_empty(), "the last statement of an activity voided removes the entry");
    assert_eq!(hub.competency("1", C_ID).status, CompetencyStatus::NotStarted);
    assert!(hub.uptake(&march("RJ1")).is_empty());
}

#[test]
fn given_two_achievements_when_the_earliest_is_voided_then_the_next_one_achieves() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![
        statement(1, "1", PASSED, INFECTION, "2026-03-02T10:00:00Z"),
        statement(2, "1", COMPLETED, INFECTION, "2026-03-04T10:00:00Z"),
    ]);
    hub.store(vec![void(3, 1)]);
    let competency = hub.competency("1", C_ID);
    assert_eq!(competency.status, CompetencyStatus::Achieved);
    assert_eq!(competency.achieved_at, Some(time("2026-03-04T10:00:00Z")));
    assert_eq!(competency.evidence, [uuid(2)]);
    assert_eq!(hub.coverage("RJ1", C_ID), 1);
    assert_eq!(hub.entry("1", INFECTION).status, TranscriptStatus::Completed);
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-04", 1, 1, 1, 0, 1)]);
}

#[test]
fn given_a_void_before_its_target_when_the_target_arrives_then_it_never_counts() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![void(3, 1)]);
    hub.store(vec![scored(statement(1, "1", PASSED, INFECTION, "2026-03-02T10:00:00Z"), 1.0)]);
    assert!(hub.transcript("1").is_empty());
    assert_eq!(hub.competency("1", C_ID).status, CompetencyStatus::NotStarted);
    assert!(hub.uptake(&march("RJ1")).is_empty());
    assert_eq!(hub.coverage("RJ1", C_ID), 0);
}

#[test]
fn given_a_target_and_its_void_in_one_request_when_applied_then_the_target_does_not_count() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![statement(1, "1", PASSED, INFECTION, "2026-03-02T10:00:00Z"), void(2, 1)]);
    assert!(hub.transcript("1").is_empty());
    assert_eq!(hub.competency("1", C_ID).status, CompetencyStatus::NotStarted);
    assert!(hub.uptake(&march("RJ1")).is_empty());
}

#[test]
fn given_a_target_id_in_upper_case_when_voided_in_lower_case_then_it_stops_counting() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    let upper = set(
        statement(1, "1", PASSED, INFECTION, "2026-03-02T10:00:00Z"),
        &["id"],
        json!("6690E6C9-3EF0-4ED3-8B37-7F3964730BEE"),
    );
    hub.store(vec![upper]);
    assert_eq!(hub.competency("1", C_ID).evidence, ["6690e6c9-3ef0-4ed3-8b37-7f3964730bee"]);
    let voider = set(void(2, 0), &["object", "id"], json!("6690e6c9-3ef0-4ed3-8b37-7f3964730bee"));
    hub.store(vec![voider]);
    assert!(hub.transcript("1").is_empty());
    assert!(hub.uptake(&march("RJ1")).is_empty());
}

#[test]
fn given_voiding_statements_when_applied_then_they_never_count() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    // A voiding statement by the learner, with every context the views read.
    let voider = in_organisation(
        with_category(
            set(void(2, 99), &["actor"], json!({"account": {"homePage": LEARNING_HUB_HOME_PAGE, "name": "1"}})),
            C_CONTEXT,
        ),
        "RJ1",
    );
    hub.store(vec![voider]);
    assert!(hub.transcript("1").is_empty());
    assert_eq!(hub.competency("1", C_CONTEXT).status, CompetencyStatus::NotStarted);
    assert!(hub.uptake(&query("RJ1", "2026-01-01", "2026-12-31", Granularity::Month)).is_empty());
}

#[test]
fn given_the_same_statement_twice_when_applied_then_it_counts_once() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    let passed = statement(1, "1", PASSED, INFECTION, "2026-03-02T10:00:00Z");
    hub.store(vec![passed.clone()]);
    hub.store(vec![passed]);
    assert_eq!(hub.entry("1", INFECTION).statements, 1);
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 1, 1, 1, 1, 1)]);
}

// ------------------------------------------------------------ competencies --

#[test]
fn given_a_rule_by_activity_id_when_the_activity_is_completed_then_the_competency_is_achieved() {
    let mut hub = Hub::new();
    hub.store(vec![statement(1, "1", COMPLETED, INFECTION, "2026-03-02T10:00:00Z")]);
    let competency = hub.competency("1", C_ID);
    assert_eq!(competency.status, CompetencyStatus::Achieved);
    assert_eq!(competency.achieved_at, Some(time("2026-03-02T10:00:00Z")));
    assert_eq!(competency.evidence, [uuid(1)]);
    assert_eq!(competency.name, "Infection prevention");
    assert_eq!(competency.domain, "Safety");
    assert_eq!(competency.framework, "https://frameworks.example.com/f");
    assert_eq!(hub.competency("1", C_PREFIX).status, CompetencyStatus::NotStarted, "other competencies are untouched");
}

#[test]
fn given_a_rule_by_id_prefix_when_an_activity_under_it_is_passed_then_the_competency_is_achieved() {
    let mut hub = Hub::new();
    hub.store(vec![
        statement(1, "1", PASSED, GENOMICS_1, "2026-03-02T10:00:00Z"),
        statement(2, "2", ATTEMPTED, GENOMICS_2, "2026-03-02T10:00:00Z"),
        // Not under the prefix (no trailing slash).
        statement(3, "3", PASSED, "https://courses.example.com/genomics", "2026-03-02T10:00:00Z"),
    ]);
    assert_eq!(hub.competency("1", C_PREFIX).status, CompetencyStatus::Achieved);
    assert_eq!(hub.competency("2", C_PREFIX).status, CompetencyStatus::InProgress);
    assert_eq!(hub.competency("3", C_PREFIX).status, CompetencyStatus::NotStarted);
}

#[test]
fn given_a_rule_by_activity_type_when_an_activity_of_that_type_is_completed_then_the_competency_is_achieved() {
    let mut hub = Hub::new();
    hub.store(vec![
        typed(
            statement(1, "1", COMPLETED, "https://elsewhere.example.com/exam-3", "2026-03-02T10:00:00Z"),
            ASSESSMENT_TYPE,
        ),
        typed(
            statement(2, "2", COMPLETED, "https://elsewhere.example.com/video-3", "2026-03-02T10:00:00Z"),
            "http://adlnet.gov/expapi/activities/media",
        ),
    ]);
    assert_eq!(hub.competency("1", C_TYPE).status, CompetencyStatus::Achieved);
    assert_eq!(hub.competency("2", C_TYPE).status, CompetencyStatus::NotStarted);
}

#[test]
fn given_a_minimum_score_when_it_is_not_met_then_the_competency_is_only_in_progress() {
    let mut hub = Hub::new();
    hub.store(vec![
        scored(statement(1, "1", PASSED, RESUS, "2026-03-02T10:00:00Z"), 0.79),
        statement(2, "2", PASSED, RESUS, "2026-03-02T10:00:00Z"),
        scored(statement(3, "3", PASSED, RESUS, "2026-03-02T10:00:00Z"), 0.8),
    ]);
    let low = hub.competency("1", C_SCORE);
    assert_eq!((low.status, low.achieved_at), (CompetencyStatus::InProgress, None));
    assert!(low.evidence.is_empty());
    assert_eq!(hub.competency("2", C_SCORE).status, CompetencyStatus::InProgress, "no score does not meet a minimum");
    assert_eq!(hub.competency("3", C_SCORE).status, CompetencyStatus::Achieved, "the minimum itself is enough");
    // The transcript still says passed: the minimum is the framework's, not the activity's.
    assert_eq!(hub.entry("1", RESUS).status, TranscriptStatus::Passed);
}

#[test]
fn given_a_verb_that_does_not_count_when_applied_then_the_competency_is_only_in_progress() {
    let mut hub = Hub::new();
    hub.store(vec![
        statement(1, "1", ATTEMPTED, INFECTION, "2026-03-02T10:00:00Z"),
        statement(2, "1", FAILED, GENOMICS_1, "2026-03-02T10:00:00Z"),
        // The simulation rule counts only "attended": completed is progress there.
        statement(3, "1", COMPLETED, SIMULATION, "2026-03-02T10:00:00Z"),
        statement(4, "2", ATTENDED, SIMULATION, "2026-03-02T10:00:00Z"),
    ]);
    assert_eq!(hub.competency("1", C_ID).status, CompetencyStatus::InProgress);
    assert_eq!(hub.competency("1", C_PREFIX).status, CompetencyStatus::InProgress);
    assert_eq!(hub.competency("1", C_VERB).status, CompetencyStatus::InProgress);
    assert_eq!(hub.competency("2", C_VERB).status, CompetencyStatus::Achieved);
}

#[test]
fn given_the_competency_iri_as_a_context_activity_when_completed_then_it_is_evidence() {
    let mut hub = Hub::new();
    hub.store(vec![
        with_category(statement(1, "1", COMPLETED, OTHER, "2026-03-02T10:00:00Z"), C_CONTEXT),
        with_category(statement(2, "2", ATTEMPTED, OTHER, "2026-03-02T10:00:00Z"), C_CONTEXT),
        set(
            statement(3, "3", PASSED, OTHER, "2026-03-02T10:00:00Z"),
            &["context", "contextActivities", "parent"],
            json!({"id": C_CONTEXT}),
        ),
    ]);
    assert_eq!(hub.competency("1", C_CONTEXT).status, CompetencyStatus::Achieved);
    assert_eq!(hub.competency("2", C_CONTEXT).status, CompetencyStatus::InProgress);
    assert_eq!(
        hub.competency("3", C_CONTEXT).status,
        CompetencyStatus::Achieved,
        "a single context activity, not in an array"
    );
}

#[test]
fn given_several_achieving_statements_when_read_then_achieved_at_is_the_earliest_and_evidence_is_in_time_order() {
    let mut hub = Hub::new();
    hub.store(vec![
        statement(3, "1", COMPLETED, INFECTION, "2026-03-09T10:00:00Z"),
        statement(0, "1", ATTEMPTED, INFECTION, "2026-03-01T10:00:00Z"),
    ]);
    hub.store(vec![
        statement(1, "1", PASSED, INFECTION, "2026-03-03T10:00:00Z"),
        statement(2, "1", COMPLETED, INFECTION, "2026-03-05T10:00:00Z"),
    ]);
    let competency = hub.competency("1", C_ID);
    assert_eq!(competency.status, CompetencyStatus::Achieved);
    assert_eq!(competency.achieved_at, Some(time("2026-03-03T10:00:00Z")));
    assert_eq!(competency.evidence, [uuid(1), uuid(2), uuid(3)], "achieving statements only, earliest first");
}

#[test]
fn given_no_evidence_when_reading_competencies_then_every_competency_is_listed_not_started() {
    let mut hub = Hub::new();
    hub.store(vec![statement(1, "1", COMPLETED, OTHER, "2026-03-02T10:00:00Z")]);
    let all = hub.views.competencies(&learner("1")).unwrap();
    let ids: Vec<&str> = all.iter().map(|c| c.competency.as_str()).collect();
    assert_eq!(ids, [C_ID, C_PREFIX, C_TYPE, C_SCORE, C_VERB, C_CONTEXT]);
    for competency in &all {
        assert_eq!(competency.status, CompetencyStatus::NotStarted, "{}", competency.competency);
        assert_eq!(competency.achieved_at, None);
        assert!(competency.evidence.is_empty());
        assert_eq!(competency.framework, "https://frameworks.example.com/f");
    }
}

#[test]
fn given_no_frameworks_when_reading_competencies_and_coverage_then_both_are_empty() {
    let mut hub = Hub::with(Frameworks::empty());
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![statement(1, "1", COMPLETED, INFECTION, "2026-03-02T10:00:00Z")]);
    assert!(hub.views.competencies(&learner("1")).unwrap().is_empty());
    assert!(hub.views.coverage("RJ1").unwrap().is_empty());
    assert_eq!(hub.entry("1", INFECTION).status, TranscriptStatus::Completed);
}

// --------------------------------------------------------- framework files --

fn log_for_rebuild() -> Vec<Event> {
    vec![
        hierarchy(),
        learners(&[("1", "RJ1", None)]),
        stored(vec![statement(1, "1", COMPLETED, INFECTION, "2026-03-02T10:00:00Z")]),
    ]
}

fn apply_all(views: &HubViews, log: &[Event]) {
    let records: Vec<LogRecord> = log.iter().enumerate().map(|(offset, event)| record(offset as u64, event)).collect();
    views.apply(&records).unwrap();
}

#[test]
fn given_views_built_with_one_frameworks_file_when_reopened_with_another_then_they_are_cleared_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_for_rebuild();
    {
        let views = open(dir.path(), frameworks_a());
        apply_all(&views, &log);
        assert_eq!(views.applied_offset(), 3);
        let achieved = views.competencies(&learner("1")).unwrap();
        assert_eq!(achieved.iter().find(|c| c.competency == C_ID).unwrap().status, CompetencyStatus::Achieved);
    }
    let views = open(dir.path(), frameworks_b());
    assert_eq!(views.applied_offset(), 0, "a new frameworks file means a rebuild from the start of the log");
    assert!(views.transcript(&learner("1")).unwrap().is_empty(), "the views were cleared");
    assert!(views.learner(&learner("1")).unwrap().is_none(), "the directories too: the log rebuilds them");
    apply_all(&views, &log);
    assert_eq!(views.applied_offset(), 3);
    let competencies = views.competencies(&learner("1")).unwrap();
    assert_eq!(competencies.len(), 1);
    assert_eq!(competencies[0].competency, C_HYGIENE);
    assert_eq!(competencies[0].status, CompetencyStatus::Achieved);
    assert_eq!(competencies[0].evidence, [uuid(1)]);
    let coverage = views.coverage("QKK").unwrap();
    assert_eq!((coverage.len(), coverage[0].competency.as_str(), coverage[0].learners_achieved), (1, C_HYGIENE, 1));
    assert_eq!(views.transcript(&learner("1")).unwrap().len(), 1);
    let uptake = views.uptake(&march("RJ1")).unwrap();
    assert_eq!(uptake, [row("2026-03-02", 1, 1, 1, 0, 1)], "uptake rebuilt once, not doubled");
}

#[test]
fn given_views_of_an_older_layout_when_reopened_then_they_are_cleared_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_for_rebuild();
    {
        let views = open(dir.path(), frameworks_a());
        apply_all(&views, &log);
    }
    {
        // The first layout had no layout mark (and one summary per statement).
        // As the views open it: waiting for the lock the closed views' sled
        // threads may hold a moment longer.
        let db = lrs_projection::open_store(dir.path(), lrs_projection::StoreOptions::cache(1 << 20)).unwrap();
        db.open_tree("hub").unwrap().remove(b"M:layout").unwrap();
        db.flush().unwrap();
    }
    let views = open(dir.path(), frameworks_a());
    assert_eq!(views.applied_offset(), 0, "an older layout means a rebuild from the start of the log");
    assert!(views.transcript(&learner("1")).unwrap().is_empty(), "the views were cleared");
    apply_all(&views, &log);
    assert_eq!(views.transcript(&learner("1")).unwrap().len(), 1);
    assert_eq!(views.uptake(&march("RJ1")).unwrap(), [row("2026-03-02", 1, 1, 1, 0, 1)]);
}

#[test]
fn given_views_built_with_a_frameworks_file_when_reopened_with_the_same_file_then_the_offset_and_views_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_for_rebuild();
    {
        let views = open(dir.path(), frameworks_a());
        apply_all(&views, &log);
    }
    let views = open(dir.path(), Frameworks::parse(FRAMEWORKS_A).unwrap());
    assert_eq!(views.applied_offset(), 3);
    assert_eq!(views.transcript(&learner("1")).unwrap().len(), 1);
    assert_eq!(views.coverage("RJ1").unwrap().iter().find(|c| c.competency == C_ID).unwrap().learners_achieved, 1);
    // Re-feeding records already applied changes nothing.
    apply_all(&views, &log);
    assert_eq!(views.applied_offset(), 3);
    assert_eq!(views.uptake(&march("RJ1")).unwrap(), [row("2026-03-02", 1, 1, 1, 0, 1)]);
}

#[test]
fn given_the_shipped_example_frameworks_when_parsed_then_they_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/examples/competency-frameworks.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let frameworks = Frameworks::parse(&text).unwrap();
    let file = frameworks.file().unwrap();
    assert!(file.frameworks.len() >= 2);
    for framework in &file.frameworks {
        assert!(!framework.competencies.is_empty(), "{} has competencies", framework.id);
        for competency in &framework.competencies {
            assert_eq!(frameworks.competency(&competency.id).map(|(f, _)| f.as_str()), Some(framework.id.as_str()));
        }
    }
    assert_ne!(frameworks.digest(), frameworks_a().digest());
}

// ------------------------------------------------------------------ uptake --

#[test]
fn given_statements_around_a_year_end_when_counting_uptake_then_days_iso_weeks_and_months_are_the_periods() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None), ("2", "RJ1", None)]));
    hub.store(vec![
        statement(1, "1", ATTEMPTED, QUIZ, "2025-12-28T10:00:00Z"), // Sunday of 2025-W52
        statement(2, "1", ATTEMPTED, QUIZ, "2025-12-29T10:00:00Z"), // Monday of 2026-W01
        statement(3, "2", COMPLETED, QUIZ, "2026-01-01T10:00:00Z"),
        statement(4, "1", PASSED, QUIZ, "2026-01-04T23:59:59Z"), // Sunday of 2026-W01
        statement(5, "2", ATTEMPTED, QUIZ, "2026-01-05T00:30:00+01:00"), // 2026-01-04T23:30Z
        statement(6, "2", ATTEMPTED, QUIZ, "2026-01-05T00:00:00Z"), // Monday of 2026-W02
    ]);
    let days = hub.uptake(&query("RJ1", "2025-12-01", "2026-01-31", Granularity::Day));
    assert_eq!(
        days,
        [
            row("2025-12-28", 1, 1, 0, 0, 1),
            row("2025-12-29", 1, 1, 0, 0, 1),
            row("2026-01-01", 1, 1, 1, 0, 1),
            row("2026-01-04", 2, 2, 1, 1, 2),
            row("2026-01-05", 1, 1, 0, 0, 1),
        ]
    );
    let weeks = hub.uptake(&query("RJ1", "2025-12-01", "2026-01-31", Granularity::Week));
    assert_eq!(weeks, [row("2025-W52", 1, 1, 0, 0, 1), row("2026-W01", 2, 2, 2, 1, 4), row("2026-W02", 1, 1, 0, 0, 1)]);
    let months = hub.uptake(&query("RJ1", "2025-12-01", "2026-01-31", Granularity::Month));
    assert_eq!(months, [row("2025-12", 1, 1, 0, 0, 2), row("2026-01", 2, 2, 2, 1, 4)]);
    // from and to are inclusive days.
    let bounded = hub.uptake(&query("RJ1", "2025-12-29", "2026-01-04", Granularity::Week));
    assert_eq!(bounded, [row("2026-W01", 2, 2, 2, 1, 4)]);
}

#[test]
fn given_repeated_statements_when_counting_uptake_then_learners_and_learner_activity_pairs_are_distinct() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None), ("2", "RJ1", None)]));
    hub.store(vec![
        statement(1, "1", ATTEMPTED, QUIZ, "2026-03-02T09:00:00Z"),
        statement(2, "1", COMPLETED, QUIZ, "2026-03-02T10:00:00Z"),
        statement(3, "1", PASSED, QUIZ, "2026-03-02T11:00:00Z"),
        statement(4, "1", ATTEMPTED, OTHER, "2026-03-02T12:00:00Z"),
        statement(5, "2", COMPLETED, QUIZ, "2026-03-02T09:00:00Z"),
        statement(6, "2", COMPLETED, QUIZ, "2026-03-02T10:00:00Z"),
        // Not about an activity: an active learner and a statement, nothing started.
        set(
            statement(7, "2", EXPERIENCED, "unused", "2026-03-02T11:00:00Z"),
            &["object"],
            json!({"objectType": "Agent", "mbox": "mailto:mentor@example.com"}),
        ),
    ]);
    // Learners {1, 2}; started {(1, quiz), (1, other), (2, quiz)}; completed {(1, quiz), (2, quiz)}; passed {(1, quiz)}.
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 2, 3, 2, 1, 7)]);
    // Across days in one period the pairs stay distinct.
    hub.store(vec![statement(8, "1", PASSED, QUIZ, "2026-03-03T09:00:00Z")]);
    let month = hub.uptake(&query("RJ1", "2026-03-01", "2026-03-31", Granularity::Month));
    assert_eq!(month, [row("2026-03", 2, 3, 2, 1, 8)]);
}

#[test]
fn given_filters_when_counting_uptake_then_only_matching_statements_count() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", Some("Nursing")), ("2", "RJ1", Some("Medical"))]));
    hub.store(vec![
        on_platform(statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z"), "e-LfH"),
        statement(2, "1", ATTEMPTED, OTHER, "2026-03-02T10:00:00Z"),
        on_platform(statement(3, "2", PASSED, QUIZ, "2026-03-02T11:00:00Z"), "e-LfH"),
        // The extension beats the directory's staff group.
        in_staff_group(statement(4, "2", ATTEMPTED, OTHER, "2026-03-02T12:00:00Z"), "Nursing"),
    ]);
    let mut by_activity = march("RJ1");
    by_activity.activity = Some(QUIZ.to_owned());
    assert_eq!(hub.uptake(&by_activity), [row("2026-03-02", 2, 2, 2, 1, 2)]);
    let mut by_platform = march("RJ1");
    by_platform.platform = Some("moodle".to_owned());
    assert_eq!(hub.uptake(&by_platform), [row("2026-03-02", 2, 2, 0, 0, 2)]);
    let mut by_staff_group = march("RJ1");
    by_staff_group.staff_group = Some("Nursing".to_owned());
    assert_eq!(hub.uptake(&by_staff_group), [row("2026-03-02", 2, 3, 1, 0, 3)]);
    let mut all = march("RJ1");
    all.activity = Some(QUIZ.to_owned());
    all.platform = Some("e-LfH".to_owned());
    all.staff_group = Some("Medical".to_owned());
    assert_eq!(hub.uptake(&all), [row("2026-03-02", 1, 1, 1, 1, 1)]);
    all.staff_group = Some("Estates".to_owned());
    assert!(hub.uptake(&all).is_empty());
}

#[test]
fn given_an_organisation_extension_when_counting_uptake_then_it_beats_the_directory() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![in_organisation(statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z"), "RAL")]);
    assert!(hub.uptake(&march("RJ1")).is_empty());
    assert_eq!(hub.uptake(&march("RAL")), [row("2026-03-02", 1, 1, 1, 0, 1)]);
}

#[test]
fn given_no_organisation_extension_when_counting_uptake_then_the_learner_directory_decides() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None), ("2", "RJ2", None)]));
    hub.store(vec![
        statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z"),
        statement(2, "2", ATTEMPTED, QUIZ, "2026-03-02T09:00:00Z"),
    ]);
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 1, 1, 1, 0, 1)]);
    assert_eq!(hub.uptake(&march("RJ2")), [row("2026-03-02", 1, 1, 0, 0, 1)]);
}

#[test]
fn given_a_learner_who_moves_organisation_when_counting_uptake_then_earlier_statements_stay_with_the_old_one() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z")]);
    hub.apply(learners(&[("1", "RAL", None)]));
    hub.store(vec![statement(2, "1", PASSED, QUIZ, "2026-03-03T09:00:00Z")]);
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 1, 1, 1, 0, 1)]);
    assert_eq!(hub.uptake(&march("RAL")), [row("2026-03-03", 1, 1, 1, 1, 1)]);
    assert_eq!(hub.views.learner(&learner("1")).unwrap().map(|l| l.organisation).as_deref(), Some("RAL"));
    // Region-wide, both.
    let region = hub.uptake(&query("Y56", "2026-03-01", "2026-03-31", Granularity::Month));
    assert_eq!(region, [row("2026-03", 1, 1, 1, 1, 2)]);
}

#[test]
fn given_an_icb_when_counting_uptake_then_it_sees_the_distinct_union_of_its_trusts() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None), ("2", "RJ2", None), ("3", "RAL", None)]));
    hub.store(vec![
        statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z"),
        // Learner 1 also works a shift at RJ2, on the same activity.
        in_organisation(statement(2, "1", PASSED, QUIZ, "2026-03-02T15:00:00Z"), "RJ2"),
        statement(3, "2", ATTEMPTED, QUIZ, "2026-03-02T09:00:00Z"),
        statement(4, "3", ATTEMPTED, QUIZ, "2026-03-02T09:00:00Z"),
        // Counted at the ICB itself too.
        in_organisation(statement(5, "4", ATTEMPTED, OTHER, "2026-03-02T09:00:00Z"), "QKK"),
    ]);
    assert_eq!(hub.uptake(&march("RJ1")), [row("2026-03-02", 1, 1, 1, 0, 1)]);
    assert_eq!(hub.uptake(&march("RJ2")), [row("2026-03-02", 2, 2, 1, 1, 2)]);
    // {1, 2, 4}; started {(1, quiz), (2, quiz), (4, other)}; completed and passed {(1, quiz)}.
    assert_eq!(hub.uptake(&march("QKK")), [row("2026-03-02", 3, 3, 1, 1, 4)]);
    assert_eq!(hub.uptake(&march("QKE")), [row("2026-03-02", 1, 1, 0, 0, 1)]);
    assert_eq!(hub.uptake(&march("Y56")), [row("2026-03-02", 4, 4, 1, 1, 5)]);
    assert!(hub.views.is_within("RJ1", &["Y56".to_owned()]).unwrap());
    assert!(!hub.views.is_within("RJ1", &["QKE".to_owned()]).unwrap());
}

#[test]
fn given_a_trust_moved_to_another_icb_when_counting_uptake_then_it_rolls_up_to_the_new_one_only() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z")]);
    assert_eq!(hub.uptake(&march("QKK")).len(), 1);
    hub.apply(organisations(&[("RJ1", Some("QKE"))]));
    assert!(hub.uptake(&march("QKK")).is_empty());
    assert_eq!(hub.uptake(&march("QKE")), [row("2026-03-02", 1, 1, 1, 0, 1)]);
    assert_eq!(hub.views.organisation_and_descendants("QKE").unwrap(), ["QKE", "RAL", "RJ1"]);
}

#[test]
fn given_a_statement_with_no_organisation_when_counting_then_it_is_in_the_transcript_but_not_in_uptake() {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![statement(1, "9", COMPLETED, INFECTION, "2026-03-02T09:00:00Z")]);
    assert_eq!(hub.entry("9", INFECTION).status, TranscriptStatus::Completed);
    assert_eq!(hub.competency("9", C_ID).status, CompetencyStatus::Achieved);
    for organisation in ["RJ1", "RJ2", "RAL", "QKK", "QKE", "Y56"] {
        assert!(hub.uptake(&march(organisation)).is_empty(), "{organisation}");
        assert_eq!(hub.coverage(organisation, C_ID), 0, "{organisation}");
    }
}

// ---------------------------------------------------------------- coverage --

#[test]
fn given_achievements_in_several_trusts_when_reading_coverage_then_each_organisation_counts_its_learners_with_roll_up()
{
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[
        ("1", "RJ1", None),
        ("2", "RJ2", None),
        ("3", "RJ2", None),
        ("4", "RAL", None),
    ]));
    hub.store(vec![
        statement(1, "1", COMPLETED, INFECTION, "2026-03-02T09:00:00Z"),
        statement(2, "1", PASSED, INFECTION, "2026-03-03T09:00:00Z"),
        statement(3, "2", PASSED, INFECTION, "2026-03-02T09:00:00Z"),
        statement(4, "3", PASSED, GENOMICS_1, "2026-03-02T09:00:00Z"),
        // In progress only: not covered.
        statement(5, "3", ATTEMPTED, INFECTION, "2026-03-02T09:00:00Z"),
        statement(6, "4", COMPLETED, INFECTION, "2026-03-02T09:00:00Z"),
    ]);
    assert_eq!(hub.coverage("RJ1", C_ID), 1);
    assert_eq!(hub.coverage("RJ1", C_PREFIX), 0);
    assert_eq!(hub.coverage("RJ2", C_ID), 1);
    assert_eq!(hub.coverage("RJ2", C_PREFIX), 1);
    assert_eq!(hub.coverage("QKK", C_ID), 2);
    assert_eq!(hub.coverage("QKK", C_PREFIX), 1);
    assert_eq!(hub.coverage("QKE", C_ID), 1);
    assert_eq!(hub.coverage("Y56", C_ID), 3);
    assert_eq!(hub.coverage("Y56", C_CONTEXT), 0);
    let rows = hub.views.coverage("QKK").unwrap();
    let ids: Vec<&str> = rows.iter().map(|c| c.competency.as_str()).collect();
    assert_eq!(ids, [C_ID, C_PREFIX, C_TYPE, C_SCORE, C_VERB, C_CONTEXT], "every competency has a row");
    assert_eq!((rows[0].name.as_str(), rows[0].domain.as_str()), ("Infection prevention", "Safety"));
}

#[test]
fn given_a_learner_who_moves_after_achieving_when_reading_coverage_then_the_organisation_of_the_first_achievement_keeps_it()
 {
    let mut hub = Hub::new();
    hub.apply(hierarchy()).apply(learners(&[("1", "RJ1", None)]));
    hub.store(vec![statement(1, "1", COMPLETED, INFECTION, "2026-03-02T09:00:00Z")]);
    hub.apply(learners(&[("1", "RAL", None)]));
    hub.store(vec![statement(2, "1", PASSED, INFECTION, "2026-03-05T09:00:00Z")]);
    assert_eq!(hub.coverage("RJ1", C_ID), 1);
    assert_eq!(hub.coverage("RAL", C_ID), 0);
    assert_eq!(hub.coverage("Y56", C_ID), 1, "one learner, counted once");
    // When the first achievement is voided, the next one's organisation is credited.
    hub.store(vec![void(3, 1)]);
    assert_eq!(hub.coverage("RJ1", C_ID), 0);
    assert_eq!(hub.coverage("RAL", C_ID), 1);
}

// ------------------------------------------------------------------- apply --

#[test]
fn given_offsets_with_gaps_when_applying_then_every_record_applies_and_the_next_offset_follows_the_last() {
    let hub = Hub::new();
    let event = stored(vec![statement(1, "1", COMPLETED, QUIZ, "2026-03-02T09:00:00Z")]);
    hub.views.apply(&[record(0, &hierarchy()), record(70_000, &event)]).unwrap();
    assert_eq!(hub.views.applied_offset(), 70_001);
    assert!(hub.views.organisation("RJ1").unwrap().is_some());
}
