//! The incremental Learning Hub views against a deliberately simple reference
//! implementation that recomputes everything from the whole event list.
//!
//! The reference reads the statements itself (it does not use
//! `lrs_hub::facts`), decides voiding up front (a voiding statement voids its
//! target unless the target is itself a voiding statement), then computes
//! transcripts, competency profiles, coverage and uptake with plain loops.
//! A property test feeds random streams (voids before and after their
//! targets, voids of voids, directory imports interleaved, learners moving
//! organisation, organisations re-parented) to `HubViews` in random chunks
//! and compares every query with the reference; another asks uptake after
//! every chunk, so kept uptake answers meet later changes; plain tests pin
//! the trickiest cases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use lrs_eventlog::LogRecord;
use lrs_hub::frameworks::Frameworks;
use lrs_hub::{
    CompetencyStatus, CompetencyView, Coverage, Granularity, HubViews, TranscriptEntry, TranscriptStatus, UptakeQuery,
    UptakeRow,
};
use lrs_xapi::events::{self, Event, LearnerEntry, OrganisationEntry};

// ---------------------------------------------------------------------------
// Fixed vocabulary
// ---------------------------------------------------------------------------

const HOME: &str = "https://learninghub.nhs.uk";
const ORG_EXT: &str = "https://learninghub.nhs.uk/xapi/ext/organisation";
const STAFF_EXT: &str = "https://learninghub.nhs.uk/xapi/ext/staff-group";

const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
const EXPERIENCED: &str = "http://adlnet.gov/expapi/verbs/experienced";
const LAUNCHED: &str = "http://adlnet.gov/expapi/verbs/launched";
const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";
const VERBS: [&str; 5] = [COMPLETED, PASSED, FAILED, EXPERIENCED, LAUNCHED];

const GEN_101: &str = "https://learninghub.nhs.uk/activities/gen-101";
const GEN_202: &str = "https://learninghub.nhs.uk/activities/gen-202";
const RESUS: &str = "https://elfh.example/course/resus";
const IG: &str = "https://elfh.example/course/ig";
const OTHER: &str = "https://other.example/x";
const ACTIVITIES: [&str; 5] = [GEN_101, GEN_202, RESUS, IG, OTHER];

const ASSESSMENT: &str = "http://adlnet.gov/expapi/activities/assessment";
const COURSE: &str = "http://adlnet.gov/expapi/activities/course";
const TYPES: [&str; 2] = [ASSESSMENT, COURSE];

const C_IG: &str = "https://frameworks.example/core/information-governance";
const C_RESUS: &str = "https://frameworks.example/core/resuscitation";
const C_GEN: &str = "https://frameworks.example/core/genomics";
const C_LEAD: &str = "https://frameworks.example/leadership/leading-teams";
const C_SAFE: &str = "https://frameworks.example/leadership/safeguarding";
const CONTEXT_OTHER: &str = "https://other.example/ctx";

const PLATFORMS: [&str; 3] = ["e-LfH", "moodle-hub", "Learning Hub"];
const AUTHORITIES: [&str; 2] = ["lh-connector", "moodle"];
const EXT_ORGS: [&str; 5] = ["RJ1", "RJ2", "RJ3", "QWE", "XYZ"];
const DIRECTORY_ORGS: [&str; 4] = ["RJ1", "RJ2", "RJ3", "QKK"];
const STAFF_GROUPS: [&str; 2] = ["Nursing", "Medical"];
const QUERY_ORGS: [&str; 8] = ["Y56", "QWE", "QKK", "RJ1", "RJ2", "RJ3", "XYZ", "NOPE"];

/// Organisation directory entries the stream may import (RJ2 and RJ3 move
/// between the two ICBs).
const ORG_VARIANTS: [(&str, &str, Option<&str>); 8] = [
    ("Y56", "North East and Yorkshire", None),
    ("QWE", "ICB West", Some("Y56")),
    ("QKK", "ICB East", Some("Y56")),
    ("RJ1", "Trust One", Some("QWE")),
    ("RJ2", "Trust Two", Some("QWE")),
    ("RJ2", "Trust Two", Some("QKK")),
    ("RJ3", "Trust Three", Some("QKK")),
    ("RJ3", "Trust Three", Some("QWE")),
];

const FRAMEWORKS: &str = r#"{
  "frameworks": [
    {
      "id": "https://frameworks.example/core",
      "name": "Core skills",
      "competencies": [
        {"id": "https://frameworks.example/core/information-governance", "name": "Information governance", "domain": "Governance"},
        {"id": "https://frameworks.example/core/resuscitation", "name": "Resuscitation", "domain": "Clinical"},
        {"id": "https://frameworks.example/core/genomics", "name": "Genomics", "domain": "Clinical"}
      ],
      "rules": [
        {"activityIdPrefix": "https://learninghub.nhs.uk/activities/gen-", "competencies": ["https://frameworks.example/core/genomics"]},
        {"activityId": "https://elfh.example/course/resus", "minScaled": 0.8, "competencies": ["https://frameworks.example/core/resuscitation"]},
        {"activityType": "http://adlnet.gov/expapi/activities/assessment", "verbs": ["http://adlnet.gov/expapi/verbs/passed"], "competencies": ["https://frameworks.example/core/information-governance"]}
      ]
    },
    {
      "id": "https://frameworks.example/leadership",
      "name": "Leadership",
      "competencies": [
        {"id": "https://frameworks.example/leadership/leading-teams", "name": "Leading teams", "domain": "Leadership"},
        {"id": "https://frameworks.example/leadership/safeguarding", "name": "Safeguarding", "domain": "Leadership"}
      ],
      "rules": [
        {"activityId": "https://learninghub.nhs.uk/activities/gen-202", "competencies": ["https://frameworks.example/leadership/safeguarding", "https://frameworks.example/core/genomics"]},
        {"activityType": "http://adlnet.gov/expapi/activities/assessment", "minScaled": 0.5, "competencies": ["https://frameworks.example/leadership/safeguarding"]}
      ]
    }
  ]
}"#;

/// The same frameworks, by hand: (framework, competency, name, domain).
const COMPETENCIES: [(&str, &str, &str, &str); 5] = [
    ("https://frameworks.example/core", C_IG, "Information governance", "Governance"),
    ("https://frameworks.example/core", C_RESUS, "Resuscitation", "Clinical"),
    ("https://frameworks.example/core", C_GEN, "Genomics", "Clinical"),
    ("https://frameworks.example/leadership", C_LEAD, "Leading teams", "Leadership"),
    ("https://frameworks.example/leadership", C_SAFE, "Safeguarding", "Leadership"),
];

/// The same rules, by hand: what they match, the verbs that achieve (`None`:
/// completed and passed), the minimum score, the competencies.
struct RefRule {
    activity_id: Option<&'static str>,
    prefix: Option<&'static str>,
    activity_type: Option<&'static str>,
    verbs: Option<&'static [&'static str]>,
    min_scaled: Option<f64>,
    competencies: &'static [&'static str],
}

const RULES: [RefRule; 5] = [
    RefRule {
        activity_id: None,
        prefix: Some("https://learninghub.nhs.uk/activities/gen-"),
        activity_type: None,
        verbs: None,
        min_scaled: None,
        competencies: &[C_GEN],
    },
    RefRule {
        activity_id: Some(RESUS),
        prefix: None,
        activity_type: None,
        verbs: None,
        min_scaled: Some(0.8),
        competencies: &[C_RESUS],
    },
    RefRule {
        activity_id: None,
        prefix: None,
        activity_type: Some(ASSESSMENT),
        verbs: Some(&[PASSED]),
        min_scaled: None,
        competencies: &[C_IG],
    },
    RefRule {
        activity_id: Some(GEN_202),
        prefix: None,
        activity_type: None,
        verbs: None,
        min_scaled: None,
        competencies: &[C_SAFE, C_GEN],
    },
    RefRule {
        activity_id: None,
        prefix: None,
        activity_type: Some(ASSESSMENT),
        verbs: None,
        min_scaled: Some(0.5),
        competencies: &[C_SAFE],
    },
];

fn learner_key(index: usize) -> String {
    if index == 3 { "mbox:mailto:pat@example.org".to_owned() } else { format!("account:{HOME}|{}", 1000 + index) }
}

fn actor(index: usize) -> Value {
    if index == 3 {
        json!({ "objectType": "Agent", "mbox": "mailto:Pat@Example.org" })
    } else {
        json!({ "account": { "homePage": HOME, "name": format!("{}", 1000 + index) } })
    }
}

const LEARNERS: usize = 4;

fn statement_uuid(index: usize) -> String {
    format!("00000000-0000-4000-8000-{index:012x}")
}

/// The streams span 20 December 2025 to 18 February 2026: two month
/// changes, a year change, and ISO week 2026-W01 starting in 2025.
fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 12, 20, 0, 0, 0).unwrap()
}

const SIXTY_DAYS_MS: u64 = 60 * 86_400_000;

fn authority(name: &str) -> Value {
    json!({ "objectType": "Agent", "name": name, "account": { "homePage": "https://lrs.example", "name": "k" } })
}

fn stored_text(ms: u64) -> String {
    (base_time() + Duration::milliseconds(ms as i64)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------
// The reference implementation
// ---------------------------------------------------------------------------

/// The learner directory: learner → (organisation, staff group).
type Directory = HashMap<String, (String, Option<String>)>;

/// What the reference reads from one counting statement.
#[derive(Debug, Clone)]
struct RefStatement {
    /// Position among all statements, in log order.
    position: usize,
    id: String,
    learner: String,
    time: DateTime<Utc>,
    verb: String,
    activity: Option<String>,
    activity_type: Option<String>,
    name: Option<String>,
    scaled: Option<f64>,
    duration_ms: Option<u64>,
    platform: String,
    organisation: Option<String>,
    staff_group: Option<String>,
    context_activities: Vec<String>,
}

fn ref_time(text: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = text?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// `PT[nM]n[.nnn]S` only, which is all these tests write.
fn ref_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.strip_prefix("PT")?.strip_suffix('S')?;
    let mut ms = 0;
    if let Some((minutes, seconds)) = rest.split_once('M') {
        ms += minutes.parse::<u64>().ok()? * 60_000;
        rest = seconds;
    }
    match rest.split_once('.') {
        Some((whole, fraction)) => {
            assert!(fraction.len() <= 3, "the tests write at most milliseconds");
            let padded = format!("{fraction:0<3}");
            ms += whole.parse::<u64>().ok()? * 1000 + padded.parse::<u64>().ok()?;
        }
        None => ms += rest.parse::<u64>().ok()? * 1000,
    }
    Some(ms)
}

fn ref_learner(actor: &Value) -> String {
    if let Some(account) = actor.get("account") {
        format!("account:{}|{}", account["homePage"].as_str().unwrap(), account["name"].as_str().unwrap())
    } else {
        format!("mbox:{}", actor["mbox"].as_str().unwrap().to_lowercase())
    }
}

fn is_voiding(statement: &Value) -> bool {
    statement["verb"]["id"] == VOIDED && statement["object"]["objectType"] == "StatementRef"
}

/// Reads a statement; `directory` is the learner directory as it stood when
/// the statement reached the log.
fn ref_read(position: usize, statement: &Value, directory: &Directory) -> RefStatement {
    let learner = ref_learner(&statement["actor"]);
    let time = ref_time(statement.get("timestamp")).or_else(|| ref_time(statement.get("stored"))).unwrap();
    let object = &statement["object"];
    let object_type = object.get("objectType").and_then(Value::as_str).unwrap_or("Activity");
    let (activity, activity_type, name) = if object_type == "Activity" {
        let definition = object.get("definition");
        let name_map = definition.and_then(|d| d.get("name")).and_then(Value::as_object);
        let name = name_map.and_then(|m| {
            let mut picked = None;
            for language in ["en-GB", "en-US"] {
                if picked.is_none() {
                    picked = m.get(language).and_then(Value::as_str).map(str::to_owned);
                }
            }
            picked.or_else(|| m.values().next().and_then(Value::as_str).map(str::to_owned))
        });
        (
            Some(object["id"].as_str().unwrap().to_owned()),
            definition.and_then(|d| d.get("type")).and_then(Value::as_str).map(str::to_owned),
            name,
        )
    } else {
        (None, None, None)
    };
    let context = statement.get("context");
    let platform = match context.and_then(|c| c.get("platform")).and_then(Value::as_str) {
        Some(platform) => platform.to_owned(),
        None => statement["authority"]["name"].as_str().unwrap().to_owned(),
    };
    let extension = |iri: &str| {
        context.and_then(|c| c.get("extensions")).and_then(|e| e.get(iri)).and_then(Value::as_str).map(str::to_owned)
    };
    let entry = directory.get(&learner);
    let organisation = extension(ORG_EXT).or_else(|| entry.map(|e| e.0.clone()));
    let staff_group = extension(STAFF_EXT).or_else(|| entry.and_then(|e| e.1.clone()));
    let mut context_activities = Vec::new();
    if let Some(lists) = context.and_then(|c| c.get("contextActivities")).and_then(Value::as_object) {
        for list in lists.values() {
            if let Some(items) = list.as_array() {
                for item in items {
                    context_activities.push(item["id"].as_str().unwrap().to_owned());
                }
            } else {
                context_activities.push(list["id"].as_str().unwrap().to_owned());
            }
        }
    }
    RefStatement {
        position,
        id: statement["id"].as_str().unwrap().to_owned(),
        learner,
        time,
        verb: statement["verb"]["id"].as_str().unwrap().to_owned(),
        activity,
        activity_type,
        name,
        scaled: statement.pointer("/result/score/scaled").and_then(Value::as_f64),
        duration_ms: statement.pointer("/result/duration").and_then(Value::as_str).and_then(ref_duration_ms),
        platform,
        organisation,
        staff_group,
        context_activities,
    }
}

/// Whether the statement is evidence for the competency, and if so whether it
/// achieves it.
fn ref_evidence(s: &RefStatement, competency: &str) -> Option<bool> {
    let mut evidence = false;
    let mut achieves = false;
    for rule in &RULES {
        if !rule.competencies.contains(&competency) {
            continue;
        }
        let by_id = rule.activity_id.is_some() && rule.activity_id == s.activity.as_deref();
        let by_prefix = match (rule.prefix, &s.activity) {
            (Some(prefix), Some(activity)) => activity.starts_with(prefix),
            _ => false,
        };
        let by_type = rule.activity_type.is_some() && rule.activity_type == s.activity_type.as_deref();
        if !(by_id || by_prefix || by_type) {
            continue;
        }
        evidence = true;
        let verb_ok = match rule.verbs {
            Some(verbs) => verbs.contains(&s.verb.as_str()),
            None => s.verb == COMPLETED || s.verb == PASSED,
        };
        let score_ok = match rule.min_scaled {
            Some(min) => matches!(s.scaled, Some(scaled) if scaled >= min),
            None => true,
        };
        if verb_ok && score_ok {
            achieves = true;
        }
    }
    if s.context_activities.iter().any(|c| c == competency) {
        evidence = true;
        if s.verb == COMPLETED || s.verb == PASSED {
            achieves = true;
        }
    }
    evidence.then_some(achieves)
}

/// Everything the reference needs, computed once from the events.
struct Reference {
    counting: Vec<RefStatement>,
    /// Final organisation directory: code → parent.
    parents: HashMap<String, Option<String>>,
}

impl Reference {
    fn new(events: &[Event]) -> Self {
        // Every statement, with the learner directory as it stood then.
        let mut directory: Directory = HashMap::new();
        let mut parents: HashMap<String, Option<String>> = HashMap::new();
        let mut all: Vec<(Value, Directory)> = Vec::new();
        for event in events {
            match event {
                Event::StatementsStored { statements, .. } => {
                    for statement in statements {
                        all.push((statement.clone(), directory.clone()));
                    }
                }
                Event::LearnersImported { learners } => {
                    for entry in learners {
                        directory
                            .insert(entry.learner.clone(), (entry.organisation.clone(), entry.staff_group.clone()));
                    }
                }
                Event::OrganisationsImported { organisations } => {
                    for entry in organisations {
                        parents.insert(entry.code.clone(), entry.parent.clone());
                    }
                }
                _ => {}
            }
        }
        let voiding_ids: HashSet<String> =
            all.iter().filter(|(s, _)| is_voiding(s)).map(|(s, _)| s["id"].as_str().unwrap().to_owned()).collect();
        let mut voided: HashSet<String> = HashSet::new();
        for (statement, _) in &all {
            if is_voiding(statement) {
                let target = statement["object"]["id"].as_str().unwrap().to_owned();
                if !voiding_ids.contains(&target) {
                    voided.insert(target);
                }
            }
        }
        let mut counting = Vec::new();
        for (position, (statement, directory)) in all.iter().enumerate() {
            let id = statement["id"].as_str().unwrap();
            if is_voiding(statement) || voided.contains(id) {
                continue;
            }
            counting.push(ref_read(position, statement, directory));
        }
        Self { counting, parents }
    }

    fn transcript(&self, learner: &str) -> Vec<TranscriptEntry> {
        let mut activities: Vec<String> = Vec::new();
        for s in &self.counting {
            if let Some(activity) = &s.activity
                && s.learner == learner
                && !activities.contains(activity)
            {
                activities.push(activity.clone());
            }
        }
        let mut out = Vec::new();
        for activity in activities {
            let mine: Vec<&RefStatement> = self
                .counting
                .iter()
                .filter(|s| s.learner == learner && s.activity.as_ref() == Some(&activity))
                .collect();
            let mut first = mine[0].time;
            let mut last = mine[0].time;
            let mut best: Option<f64> = None;
            let mut total = 0;
            let mut name = None;
            let mut latest = mine[0];
            for s in &mine {
                if s.time < first {
                    first = s.time;
                }
                if s.time > last {
                    last = s.time;
                }
                if let Some(scaled) = s.scaled
                    && best.is_none_or(|b| scaled > b)
                {
                    best = Some(scaled);
                }
                total += s.duration_ms.unwrap_or(0);
                // Log order: a later statement's definition wins.
                if s.name.is_some() {
                    name = s.name.clone();
                }
                if s.time >= latest.time {
                    latest = s;
                }
            }
            let has = |verb: &str| mine.iter().any(|s| s.verb == verb);
            let status = if has(PASSED) {
                TranscriptStatus::Passed
            } else if has(COMPLETED) {
                TranscriptStatus::Completed
            } else if has(FAILED) {
                TranscriptStatus::Failed
            } else {
                TranscriptStatus::InProgress
            };
            out.push(TranscriptEntry {
                activity,
                name,
                status,
                first,
                last,
                best_scaled: best,
                total_duration_ms: total,
                platform: latest.platform.clone(),
                statements: mine.len(),
            });
        }
        out.sort_by(|a, b| b.last.cmp(&a.last).then(a.activity.cmp(&b.activity)));
        out
    }

    /// The learner's achieving statements for a competency, earliest first
    /// (ties in log order), and whether anything is evidence at all.
    fn achieving(&self, learner: &str, competency: &str) -> (Vec<&RefStatement>, bool) {
        let mut any = false;
        let mut achieving = Vec::new();
        for s in &self.counting {
            if s.learner != learner {
                continue;
            }
            if let Some(achieves) = ref_evidence(s, competency) {
                any = true;
                if achieves {
                    achieving.push(s);
                }
            }
        }
        achieving.sort_by(|a, b| a.time.cmp(&b.time).then(a.position.cmp(&b.position)));
        (achieving, any)
    }

    fn competencies(&self, learner: &str) -> Vec<CompetencyView> {
        let mut out = Vec::new();
        for (framework, competency, name, domain) in COMPETENCIES {
            let (achieving, any) = self.achieving(learner, competency);
            let status = if !achieving.is_empty() {
                CompetencyStatus::Achieved
            } else if any {
                CompetencyStatus::InProgress
            } else {
                CompetencyStatus::NotStarted
            };
            out.push(CompetencyView {
                competency: competency.to_owned(),
                name: name.to_owned(),
                domain: domain.to_owned(),
                framework: framework.to_owned(),
                status,
                achieved_at: achieving.first().map(|s| s.time),
                evidence: achieving.iter().map(|s| s.id.clone()).collect(),
            });
        }
        out
    }

    /// Whether `code` is `organisation` or below it in the final directory.
    fn within(&self, code: &str, organisation: &str) -> bool {
        let mut current = code.to_owned();
        for _ in 0..32 {
            if current == organisation {
                return true;
            }
            match self.parents.get(&current) {
                Some(Some(parent)) => current = parent.clone(),
                _ => return false,
            }
        }
        false
    }

    fn learners(&self) -> Vec<String> {
        let mut learners: Vec<String> = Vec::new();
        for s in &self.counting {
            if !learners.contains(&s.learner) {
                learners.push(s.learner.clone());
            }
        }
        learners
    }

    fn coverage(&self, organisation: &str) -> Vec<Coverage> {
        let mut out = Vec::new();
        for (framework, competency, name, domain) in COMPETENCIES {
            let mut count = 0;
            for learner in self.learners() {
                let (achieving, _) = self.achieving(&learner, competency);
                if let Some(first) = achieving.first()
                    && first.organisation.as_deref().is_some_and(|o| self.within(o, organisation))
                {
                    count += 1;
                }
            }
            out.push(Coverage {
                competency: competency.to_owned(),
                name: name.to_owned(),
                domain: domain.to_owned(),
                framework: framework.to_owned(),
                learners_achieved: count,
            });
        }
        out
    }

    fn uptake(&self, query: &UptakeQuery) -> Vec<UptakeRow> {
        let period_of = |time: DateTime<Utc>| {
            let day = time.date_naive();
            match query.granularity {
                Granularity::Day => format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day()),
                Granularity::Week => format!("{}-W{:02}", day.iso_week().year(), day.iso_week().week()),
                Granularity::Month => format!("{:04}-{:02}", day.year(), day.month()),
            }
        };
        let mut periods: Vec<String> = Vec::new();
        let mut selected: Vec<&RefStatement> = Vec::new();
        for s in &self.counting {
            let Some(organisation) = &s.organisation else { continue };
            let day = s.time.date_naive();
            if !self.within(organisation, &query.organisation) || day < query.from || day > query.to {
                continue;
            }
            if query.activity.is_some() && s.activity != query.activity {
                continue;
            }
            if query.platform.as_ref().is_some_and(|p| *p != s.platform) {
                continue;
            }
            if query.staff_group.is_some() && s.staff_group != query.staff_group {
                continue;
            }
            selected.push(s);
            if !periods.contains(&period_of(s.time)) {
                periods.push(period_of(s.time));
            }
        }
        periods.sort();
        let mut out = Vec::new();
        for period in periods {
            let in_period: Vec<&&RefStatement> = selected.iter().filter(|s| period_of(s.time) == period).collect();
            let mut learners: Vec<&str> = Vec::new();
            let mut started: Vec<(&str, &str)> = Vec::new();
            let mut completed: Vec<(&str, &str)> = Vec::new();
            let mut passed: Vec<(&str, &str)> = Vec::new();
            for s in &in_period {
                if !learners.contains(&s.learner.as_str()) {
                    learners.push(&s.learner);
                }
                if let Some(activity) = &s.activity {
                    let pair = (s.learner.as_str(), activity.as_str());
                    if !started.contains(&pair) {
                        started.push(pair);
                    }
                    if (s.verb == COMPLETED || s.verb == PASSED) && !completed.contains(&pair) {
                        completed.push(pair);
                    }
                    if s.verb == PASSED && !passed.contains(&pair) {
                        passed.push(pair);
                    }
                }
            }
            out.push(UptakeRow {
                period,
                active_learners: learners.len() as u64,
                started: started.len() as u64,
                completed: completed.len() as u64,
                passed: passed.len() as u64,
                statements: in_period.len() as u64,
            });
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Feeding HubViews and comparing
// ---------------------------------------------------------------------------

fn frameworks() -> Frameworks {
    Frameworks::parse(FRAMEWORKS).unwrap()
}

/// Applies the events in chunks of the given sizes (cycled).
fn project(dir: &std::path::Path, events: &[Event], chunks: &[usize]) -> HubViews {
    project_watching(dir, events, chunks, |_, _| Ok(())).unwrap()
}

/// Applies the events in chunks of the given sizes (cycled), calling
/// `after_chunk` with the views and the number of events applied after each.
fn project_watching(
    dir: &std::path::Path,
    events: &[Event],
    chunks: &[usize],
    mut after_chunk: impl FnMut(&HubViews, usize) -> Result<(), String>,
) -> Result<HubViews, String> {
    // Some streams write the uptake digests with every batch, the others
    // keep them in memory between writes, and some of those reopen the
    // views after every third chunk without writing them (so they are
    // rebuilt from the fact rows).
    let write_every_batch = chunks.len().is_multiple_of(2);
    let reopen = chunks.len().is_multiple_of(3) && !write_every_batch;
    // Streams whose first chunk is even follow the decisions of xAPI views
    // fed the same events first, as a server's views do: those keep no
    // contribution record for a statement on an activity, and retract it
    // from the statement the xAPI views store and its summary.
    let xapi = following(chunks).then(|| std::sync::Arc::new(lrs_projection::Views::temporary().unwrap()));
    let open = || {
        let mut views = HubViews::open(dir, lrs_projection::StoreOptions::cache(8 << 20), frameworks()).unwrap();
        if write_every_batch {
            views.set_digest_write_interval(std::time::Duration::ZERO);
        }
        if let Some(xapi) = &xapi {
            views.follow_decisions_of(xapi.clone());
        }
        views
    };
    let mut views = open();
    let records: Vec<LogRecord> = events
        .iter()
        .enumerate()
        .map(|(offset, event)| LogRecord { offset: offset as u64, payload: events::encode(event) })
        .collect();
    let mut at = 0;
    let mut chunk = 0;
    while at < records.len() {
        let size = chunks.get(chunk % chunks.len().max(1)).copied().unwrap_or(1).max(1);
        let end = (at + size).min(records.len());
        if let Some(xapi) = &xapi {
            xapi.apply(&records[at..end]).unwrap();
        }
        views.apply(&records[at..end]).unwrap();
        at = end;
        chunk += 1;
        if reopen && chunk.is_multiple_of(3) {
            drop(views);
            views = open();
        }
        after_chunk(&views, at)?;
    }
    assert_eq!(views.applied_offset(), records.len() as u64);
    Ok(views)
}

/// Whether views fed in `chunks` follow the decisions of xAPI views.
fn following(chunks: &[usize]) -> bool {
    chunks.first().is_some_and(|size| size.is_multiple_of(2))
}

/// Every uptake query of the views against the reference; the first
/// difference.
fn compare_uptake(views: &HubViews, reference: &Reference) -> Result<(), String> {
    for query in queries() {
        let got = views.uptake(&query).unwrap();
        let want = reference.uptake(&query);
        if got != want {
            return Err(format!("uptake {query:?}:\n  views:     {got:?}\n  reference: {want:?}"));
        }
    }
    Ok(())
}

fn queries() -> Vec<UptakeQuery> {
    let wide = (NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(), NaiveDate::from_ymd_opt(2026, 4, 30).unwrap());
    let narrow = (NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(), NaiveDate::from_ymd_opt(2026, 2, 10).unwrap());
    let filters: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
        (None, None, None),
        (Some(GEN_101), None, None),
        (None, Some("e-LfH"), None),
        (None, None, Some("Nursing")),
        (Some(RESUS), Some("moodle"), Some("Medical")),
        // An activity no statement is on (the views have no number for it).
        (Some("https://courses.example.com/never-taken"), None, None),
    ];
    let mut out = Vec::new();
    for organisation in QUERY_ORGS {
        for granularity in [Granularity::Day, Granularity::Week, Granularity::Month] {
            for (index, (activity, platform, staff_group)) in filters.iter().enumerate() {
                for (from, to) in [wide, narrow] {
                    // The narrow range with every filter would be mostly empty.
                    if index > 2 && from == narrow.0 {
                        continue;
                    }
                    out.push(UptakeQuery {
                        organisation: organisation.to_owned(),
                        from,
                        to,
                        granularity,
                        activity: activity.map(str::to_owned),
                        platform: platform.map(str::to_owned),
                        staff_group: staff_group.map(str::to_owned),
                    });
                }
            }
        }
    }
    out
}

/// Every query of the views against the reference; the first difference.
fn compare(views: &HubViews, reference: &Reference) -> Result<(), String> {
    for learner in (0..LEARNERS).map(learner_key) {
        let got = views.transcript(&learner).unwrap();
        let want = reference.transcript(&learner);
        if got != want {
            return Err(format!("transcript of {learner}:\n  views:     {got:?}\n  reference: {want:?}"));
        }
        let got = views.competencies(&learner).unwrap();
        let want = reference.competencies(&learner);
        if got != want {
            return Err(format!("competencies of {learner}:\n  views:     {got:?}\n  reference: {want:?}"));
        }
    }
    for organisation in QUERY_ORGS {
        let got = views.coverage(organisation).unwrap();
        let want = reference.coverage(organisation);
        if got != want {
            return Err(format!("coverage of {organisation}:\n  views:     {got:?}\n  reference: {want:?}"));
        }
    }
    compare_uptake(views, reference)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Random streams
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum TimeSpec {
    /// No timestamp: `stored` is the time.
    Stored,
    /// Milliseconds after the base, written with one of three UTC offsets.
    At(u64, usize),
    /// The same instant as other `Hot` statements, in one of two spellings.
    Hot(usize),
}

#[derive(Debug, Clone)]
struct StatementSpec {
    learner: usize,
    /// Index into ACTIVITIES; 5 means a (non-voiding) StatementRef object.
    object: usize,
    explicit_object_type: bool,
    verb: usize,
    name: Option<(usize, u8)>,
    activity_type: Option<usize>,
    scaled: Option<f64>,
    duration: Option<(u32, Option<u8>, bool)>,
    platform: Option<usize>,
    authority: usize,
    organisation: Option<usize>,
    staff_group: Option<usize>,
    context: Option<usize>,
    time: TimeSpec,
}

#[derive(Debug, Clone)]
enum VoidTarget {
    /// The statement generated at this item index (mod the stream length);
    /// earlier, later, itself, a voiding statement, or a directory event
    /// (which has no statement: an unknown id).
    Item(usize),
    Unknown(u16),
}

#[derive(Debug, Clone)]
enum Item {
    Statement { spec: Box<StatementSpec>, stored_ms: u64, join: bool },
    Void { target: VoidTarget, stored_ms: u64, join: bool },
    Learners(Vec<(usize, usize, Option<usize>)>),
    Organisations(Vec<usize>),
}

fn time_strategy() -> impl Strategy<Value = TimeSpec> {
    prop_oneof![
        2 => Just(TimeSpec::Stored),
        6 => (0..SIXTY_DAYS_MS, 0..3usize).prop_map(|(ms, offset)| TimeSpec::At(ms, offset)),
        1 => (0..2usize).prop_map(TimeSpec::Hot),
    ]
}

fn scaled_strategy() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        3 => Just(None),
        2 => prop::sample::select(vec![-0.5, 0.0, 0.49, 0.5, 0.79, 0.8, 0.95, 1.0]).prop_map(Some),
        1 => (-1.0..=1.0f64).prop_map(Some),
    ]
}

fn statement_strategy() -> impl Strategy<Value = StatementSpec> {
    (
        (0..LEARNERS, 0..6usize, any::<bool>(), 0..VERBS.len()),
        (prop::option::of((0..5usize, 0..4u8)), prop::option::weighted(0.4, 0..TYPES.len()), scaled_strategy()),
        (
            prop::option::of((0..600u32, prop::option::of(0..100u8), prop::bool::weighted(0.2))),
            prop::option::weighted(0.6, 0..PLATFORMS.len()),
            0..AUTHORITIES.len(),
        ),
        (
            prop::option::weighted(0.3, 0..EXT_ORGS.len()),
            prop::option::weighted(0.3, 0..STAFF_GROUPS.len()),
            prop::option::weighted(0.3, 0..4usize),
            time_strategy(),
        ),
    )
        .prop_map(
            |(
                (learner, object, explicit_object_type, verb),
                (name, activity_type, scaled),
                (duration, platform, authority),
                (organisation, staff_group, context, time),
            )| StatementSpec {
                learner,
                object,
                explicit_object_type,
                verb,
                name,
                activity_type,
                scaled,
                duration,
                platform,
                authority,
                organisation,
                staff_group,
                context,
                time,
            },
        )
}

fn item_strategy() -> impl Strategy<Value = Item> {
    prop_oneof![
        10 => (statement_strategy(), 0..SIXTY_DAYS_MS, prop::bool::weighted(0.3))
            .prop_map(|(spec, stored_ms, join)| Item::Statement { spec: Box::new(spec), stored_ms, join }),
        3 => (
            prop_oneof![6 => any::<usize>().prop_map(VoidTarget::Item), 1 => any::<u16>().prop_map(VoidTarget::Unknown)],
            0..SIXTY_DAYS_MS,
            prop::bool::weighted(0.3),
        )
            .prop_map(|(target, stored_ms, join)| Item::Void { target, stored_ms, join }),
        1 => prop::collection::vec((0..LEARNERS, 0..DIRECTORY_ORGS.len(), prop::option::of(0..STAFF_GROUPS.len())), 1..4)
            .prop_map(Item::Learners),
        1 => prop::collection::vec(0..ORG_VARIANTS.len(), 1..5).prop_map(Item::Organisations),
    ]
}

fn activity_definition(object: usize, spec: &StatementSpec) -> Option<Value> {
    let mut definition = serde_json::Map::new();
    if let Some((variant, version)) = spec.name {
        let text = |language: &str| json!(format!("{language} {object} v{version}"));
        let name = match variant {
            0 => json!({ "en-GB": text("en-GB") }),
            1 => json!({ "en-US": text("en-US") }),
            2 => json!({ "fr": text("fr") }),
            3 => json!({ "fr": text("fr"), "en-US": text("en-US"), "en-GB": text("en-GB") }),
            _ => json!({ "de": text("de"), "fr": text("fr") }),
        };
        definition.insert("name".to_owned(), name);
    }
    if let Some(activity_type) = spec.activity_type {
        definition.insert("type".to_owned(), json!(TYPES[activity_type]));
    }
    (!definition.is_empty()).then_some(Value::Object(definition))
}

fn statement_json(index: usize, spec: &StatementSpec, stored_ms: u64) -> Value {
    let mut statement = json!({
        "id": statement_uuid(index),
        "actor": actor(spec.learner),
        "verb": { "id": VERBS[spec.verb] },
        "stored": stored_text(stored_ms),
        "authority": authority(AUTHORITIES[spec.authority]),
        "version": "1.0.3",
    });
    let object = if spec.object < ACTIVITIES.len() {
        let mut object = json!({ "id": ACTIVITIES[spec.object] });
        if spec.explicit_object_type {
            object["objectType"] = json!("Activity");
        }
        if let Some(definition) = activity_definition(spec.object, spec) {
            object["definition"] = definition;
        }
        object
    } else {
        json!({ "objectType": "StatementRef", "id": statement_uuid(9999) })
    };
    statement["object"] = object;
    let mut result = serde_json::Map::new();
    if let Some(scaled) = spec.scaled {
        result.insert("score".to_owned(), json!({ "scaled": scaled }));
    }
    if let Some((seconds, hundredths, minutes)) = spec.duration {
        let fraction = hundredths.map(|h| format!(".{h:02}")).unwrap_or_default();
        let text = if minutes {
            format!("PT{}M{}{fraction}S", seconds / 60, seconds % 60)
        } else {
            format!("PT{seconds}{fraction}S")
        };
        result.insert("duration".to_owned(), json!(text));
    }
    if !result.is_empty() {
        statement["result"] = Value::Object(result);
    }
    let mut context = serde_json::Map::new();
    if let Some(platform) = spec.platform {
        context.insert("platform".to_owned(), json!(PLATFORMS[platform]));
    }
    let mut extensions = serde_json::Map::new();
    if let Some(organisation) = spec.organisation {
        extensions.insert(ORG_EXT.to_owned(), json!(EXT_ORGS[organisation]));
    }
    if let Some(staff_group) = spec.staff_group {
        extensions.insert(STAFF_EXT.to_owned(), json!(STAFF_GROUPS[staff_group]));
    }
    if !extensions.is_empty() {
        context.insert("extensions".to_owned(), Value::Object(extensions));
    }
    if let Some(variant) = spec.context {
        let lists = match variant {
            0 => json!({ "category": [{ "id": C_LEAD }] }),
            1 => json!({ "grouping": { "id": C_RESUS } }),
            2 => json!({ "parent": [{ "id": CONTEXT_OTHER }], "other": [{ "id": C_LEAD }, { "id": C_SAFE }] }),
            _ => json!({ "parent": [{ "id": CONTEXT_OTHER }] }),
        };
        context.insert("contextActivities".to_owned(), lists);
    }
    if !context.is_empty() {
        statement["context"] = Value::Object(context);
    }
    let achieving_verb = spec.verb < 2;
    match spec.time {
        TimeSpec::Stored => {}
        TimeSpec::At(ms, offset) => {
            let instant = base_time() + Duration::milliseconds(ms as i64);
            let text = match offset {
                0 => instant.to_rfc3339_opts(SecondsFormat::Millis, true),
                1 => instant
                    .with_timezone(&FixedOffset::east_opt(3600).unwrap())
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                _ => instant
                    .with_timezone(&FixedOffset::west_opt(5 * 3600).unwrap())
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            };
            statement["timestamp"] = json!(text);
        }
        // Exact ties only among statements that achieve nothing, so the
        // earliest achievement is never a tie (the definitions do not say how
        // to break one); ties do exercise "latest platform, ties: later in log".
        TimeSpec::Hot(_) if achieving_verb => {}
        TimeSpec::Hot(spelling) => {
            let text = if spelling == 0 { "2026-01-20T23:30:00Z" } else { "2026-01-21T00:30:00+01:00" };
            statement["timestamp"] = json!(text);
        }
    }
    statement
}

fn void_json(index: usize, target: &str, stored_ms: u64) -> Value {
    json!({
        "id": statement_uuid(index),
        "actor": actor(0),
        "verb": { "id": VOIDED, "display": { "en-GB": "voided" } },
        "object": { "objectType": "StatementRef", "id": target },
        "stored": stored_text(stored_ms),
        "authority": authority("lh-connector"),
        "version": "1.0.3",
    })
}

/// The events of a generated stream, in log order.
fn build_events(items: &[Item]) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let push_statement = |events: &mut Vec<Event>, statement: Value, join: bool| {
        if join && let Some(Event::StatementsStored { statements, .. }) = events.last_mut() {
            statements.push(statement);
            return;
        }
        events.push(Event::StatementsStored { statements: vec![statement], attachments: Vec::new() });
    };
    for (index, item) in items.iter().enumerate() {
        match item {
            Item::Statement { spec, stored_ms, join } => {
                push_statement(&mut events, statement_json(index, spec, *stored_ms), *join);
            }
            Item::Void { target, stored_ms, join } => {
                let target = match target {
                    VoidTarget::Item(i) => statement_uuid(i % items.len()),
                    VoidTarget::Unknown(n) => format!("11111111-0000-4000-8000-{n:012x}"),
                };
                push_statement(&mut events, void_json(index, &target, *stored_ms), *join);
            }
            Item::Learners(entries) => events.push(Event::LearnersImported {
                learners: entries
                    .iter()
                    .map(|(learner, organisation, staff_group)| LearnerEntry {
                        learner: learner_key(*learner),
                        organisation: DIRECTORY_ORGS[*organisation].to_owned(),
                        staff_group: staff_group.map(|g| STAFF_GROUPS[g].to_owned()),
                    })
                    .collect(),
            }),
            Item::Organisations(variants) => events.push(Event::OrganisationsImported {
                organisations: variants
                    .iter()
                    .map(|v| {
                        let (code, name, parent) = ORG_VARIANTS[*v];
                        OrganisationEntry {
                            code: code.to_owned(),
                            name: name.to_owned(),
                            parent: parent.map(str::to_owned),
                        }
                    })
                    .collect(),
            }),
        }
    }
    events
}

fn stream_strategy() -> impl Strategy<Value = (Vec<Item>, Vec<usize>)> {
    // Most streams start with the base hierarchy and a directory, so that
    // roll-ups and directory look-ups have something to do.
    let head = prop_oneof![
        3 => Just(vec![
            Item::Organisations(vec![0, 1, 2, 3, 4, 6]),
            Item::Learners(vec![(0, 0, Some(0)), (1, 1, None), (2, 3, Some(1)), (3, 2, None)]),
        ]),
        1 => Just(Vec::new()),
    ];
    (head, prop::collection::vec(item_strategy(), 1..70), prop::collection::vec(1..6usize, 1..12)).prop_map(
        |(mut head, tail, chunks)| {
            head.extend(tail);
            (head, chunks)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_views_equal_the_reference((items, chunks) in stream_strategy()) {
        let events = build_events(&items);
        let dir = tempfile::tempdir().unwrap();
        let views = project(dir.path(), &events, &chunks);
        let reference = Reference::new(&events);
        if let Err(difference) = compare(&views, &reference) {
            return Err(TestCaseError::fail(difference));
        }
    }

    /// Uptake asked after every chunk (so answers are kept, and facts then
    /// change under them: later statements, voids of earlier ones, and
    /// directory changes) equals the reference of the events applied so far.
    #[test]
    fn uptake_asked_while_events_arrive_equals_the_reference((items, chunks) in stream_strategy()) {
        let events = build_events(&items);
        let dir = tempfile::tempdir().unwrap();
        let watched = project_watching(dir.path(), &events, &chunks, |views, applied| {
            compare_uptake(views, &Reference::new(&events[..applied]))
                .map_err(|difference| format!("after {applied} of {} events: {difference}", events.len()))
        });
        if let Err(difference) = watched {
            return Err(TestCaseError::fail(difference));
        }
    }
}

/// Guards against a vacuous property: the streams the strategy makes (with a
/// fixed seed) do reach the cases the property is about.
#[test]
fn the_generated_streams_reach_the_interesting_cases() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut note = |what: &'static str, yes: bool| *seen.entry(what).or_default() += usize::from(yes);
    for _ in 0..64 {
        let (items, chunks) = stream_strategy().new_tree(&mut runner).unwrap().current();
        let events = build_events(&items);
        let reference = Reference::new(&events);
        let mut ids_so_far: HashSet<String> = HashSet::new();
        let mut voiding: HashSet<String> = HashSet::new();
        let mut organisation_of: HashMap<String, String> = HashMap::new();
        let (mut void_first, mut void_of_void, mut moved, mut multi) = (false, false, false, false);
        for event in &events {
            match event {
                Event::StatementsStored { statements, .. } => {
                    multi |= statements.len() > 1;
                    for statement in statements {
                        if is_voiding(statement) {
                            let target = statement["object"]["id"].as_str().unwrap().to_owned();
                            void_first |= !ids_so_far.contains(&target)
                                && events.iter().any(|e| {
                                    matches!(e, Event::StatementsStored { statements, .. }
                                    if statements.iter().any(|s| s["id"] == target.as_str() && !is_voiding(s)))
                                });
                            void_of_void |= voiding.contains(&target);
                            voiding.insert(statement["id"].as_str().unwrap().to_owned());
                        }
                        ids_so_far.insert(statement["id"].as_str().unwrap().to_owned());
                    }
                }
                Event::LearnersImported { learners } => {
                    for entry in learners {
                        let old = organisation_of.insert(entry.learner.clone(), entry.organisation.clone());
                        moved |= old.is_some_and(|o| o != entry.organisation);
                    }
                }
                _ => {}
            }
        }
        let total = events.iter().map(|e| match e {
            Event::StatementsStored { statements, .. } => statements.len(),
            _ => 0,
        });
        let some_voided = reference.counting.len() + voiding.len() < total.sum();
        note("some statement voided", some_voided);
        note("some statement voided, following xAPI views", some_voided && following(&chunks));
        note("a learner moved, following xAPI views", moved && following(&chunks));
        note("some statement voided, following none", some_voided && !following(&chunks));
        note("a void before its target", void_first);
        note("a void of a void", void_of_void);
        note("a learner moved", moved);
        note("several statements in one event", multi);
        let views: Vec<CompetencyView> = (0..LEARNERS).flat_map(|l| reference.competencies(&learner_key(l))).collect();
        note("a competency achieved", views.iter().any(|v| v.status == CompetencyStatus::Achieved));
        note("a competency in progress", views.iter().any(|v| v.status == CompetencyStatus::InProgress));
        note(
            "coverage in a trust",
            ["RJ1", "RJ2", "RJ3"].iter().any(|o| reference.coverage(o).iter().any(|c| c.learners_achieved > 0)),
        );
        let rows = reference.uptake(&queries()[0]);
        note("uptake at the region", rows.iter().any(|r| r.passed > 0));
        note(
            "an ext-only organisation",
            !reference.uptake(&UptakeQuery { organisation: "XYZ".into(), ..queries()[0].clone() }).is_empty(),
        );
        let transcripts: Vec<TranscriptEntry> =
            (0..LEARNERS).flat_map(|l| reference.transcript(&learner_key(l))).collect();
        note("a transcript name", transcripts.iter().any(|t| t.name.is_some()));
        note("a transcript with several statements", transcripts.iter().any(|t| t.statements > 2));
    }
    for (what, count) in &seen {
        assert!(*count >= 3, "only {count} of 64 streams had {what}: {seen:?}");
    }
}

// ---------------------------------------------------------------------------
// Pinned cases
// ---------------------------------------------------------------------------

fn base_directory() -> Vec<Event> {
    vec![
        Event::OrganisationsImported {
            organisations: [0, 1, 2, 3, 4, 6]
                .iter()
                .map(|v| {
                    let (code, name, parent) = ORG_VARIANTS[*v];
                    OrganisationEntry {
                        code: code.to_owned(),
                        name: name.to_owned(),
                        parent: parent.map(str::to_owned),
                    }
                })
                .collect(),
        },
        Event::LearnersImported {
            learners: vec![LearnerEntry {
                learner: learner_key(0),
                organisation: "RJ1".to_owned(),
                staff_group: Some("Nursing".to_owned()),
            }],
        },
    ]
}

fn simple_statement(index: usize, verb: &str, activity: &str, timestamp: &str) -> Value {
    json!({
        "id": statement_uuid(index),
        "actor": actor(0),
        "verb": { "id": verb },
        "object": { "id": activity },
        "timestamp": timestamp,
        "stored": "2026-03-31T00:00:00.000Z",
        "authority": authority("lh-connector"),
        "version": "1.0.3",
    })
}

fn stored(statements: Vec<Value>) -> Event {
    Event::StatementsStored { statements, attachments: Vec::new() }
}

fn month_query(organisation: &str) -> UptakeQuery {
    UptakeQuery {
        organisation: organisation.to_owned(),
        from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        granularity: Granularity::Month,
        activity: None,
        platform: None,
        staff_group: None,
    }
}

/// Projects in one chunk and in chunks of one, compares both with the
/// reference, and returns the one-chunk views.
fn check_pinned(dir: &tempfile::TempDir, events: &[Event]) -> (HubViews, Reference) {
    let reference = Reference::new(events);
    let one_by_one = project(&dir.path().join("one-by-one"), events, &[1]);
    compare(&one_by_one, &reference).unwrap();
    let whole = project(&dir.path().join("whole"), events, &[events.len()]);
    compare(&whole, &reference).unwrap();
    (whole, reference)
}

#[test]
fn a_void_before_its_target_keeps_the_target_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = base_directory();
    events.push(stored(vec![void_json(10, &statement_uuid(11), 0)]));
    events.push(stored(vec![simple_statement(11, PASSED, GEN_101, "2026-01-05T10:00:00Z")]));
    events.push(stored(vec![simple_statement(12, LAUNCHED, GEN_101, "2026-01-06T10:00:00Z")]));
    let (views, _) = check_pinned(&dir, &events);
    let transcript = views.transcript(&learner_key(0)).unwrap();
    assert_eq!(transcript.len(), 1);
    assert_eq!(transcript[0].status, TranscriptStatus::InProgress);
    assert_eq!(transcript[0].statements, 1);
    let genomics = views.competencies(&learner_key(0)).unwrap().into_iter().find(|c| c.competency == C_GEN).unwrap();
    assert_eq!(genomics.status, CompetencyStatus::InProgress);
    let rows = views.uptake(&month_query("Y56")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].statements, rows[0].completed, rows[0].passed), (1, 0, 0));
}

#[test]
fn a_learner_moving_organisation_counts_where_they_were_at_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = base_directory();
    events.push(stored(vec![simple_statement(20, COMPLETED, GEN_101, "2026-01-05T10:00:00Z")]));
    events.push(Event::LearnersImported {
        learners: vec![LearnerEntry { learner: learner_key(0), organisation: "RJ2".to_owned(), staff_group: None }],
    });
    events.push(stored(vec![simple_statement(21, PASSED, GEN_202, "2026-01-07T10:00:00Z")]));
    let (views, _) = check_pinned(&dir, &events);
    let count = |organisation: &str| {
        let rows = views.uptake(&month_query(organisation)).unwrap();
        rows.iter().map(|r| (r.active_learners, r.started, r.statements)).collect::<Vec<_>>()
    };
    assert_eq!(count("RJ1"), vec![(1, 1, 1)]);
    assert_eq!(count("RJ2"), vec![(1, 1, 1)]);
    // The parent counts the learner once, and both activities.
    assert_eq!(count("QWE"), vec![(1, 2, 2)]);
    let genomics = |organisation: &str| {
        views.coverage(organisation).unwrap().into_iter().find(|c| c.competency == C_GEN).unwrap().learners_achieved
    };
    assert_eq!((genomics("RJ1"), genomics("RJ2"), genomics("QWE")), (1, 0, 1));

    // Voiding the first achievement moves the credit to the second one's
    // organisation (RJ2, as it was when that statement was projected).
    events.push(stored(vec![void_json(22, &statement_uuid(20), 0)]));
    let dir = tempfile::tempdir().unwrap();
    let (views, _) = check_pinned(&dir, &events);
    let genomics = |organisation: &str| {
        views.coverage(organisation).unwrap().into_iter().find(|c| c.competency == C_GEN).unwrap().learners_achieved
    };
    assert_eq!((genomics("RJ1"), genomics("RJ2"), genomics("QWE")), (0, 1, 1));
    // Moving RJ2 under QKK re-parents its figures at query time.
    events.push(Event::OrganisationsImported {
        organisations: vec![OrganisationEntry {
            code: "RJ2".into(),
            name: "Trust Two".into(),
            parent: Some("QKK".into()),
        }],
    });
    let dir = tempfile::tempdir().unwrap();
    let (views, _) = check_pinned(&dir, &events);
    let genomics = |organisation: &str| {
        views.coverage(organisation).unwrap().into_iter().find(|c| c.competency == C_GEN).unwrap().learners_achieved
    };
    assert_eq!((genomics("QWE"), genomics("QKK"), genomics("Y56")), (0, 1, 1));
}

#[test]
fn voiding_a_voiding_statement_does_not_restore_its_target() {
    for order in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let target = simple_statement(30, PASSED, RESUS, "2026-01-05T10:00:00Z");
        let void = void_json(31, &statement_uuid(30), 0);
        let void_of_void = void_json(32, &statement_uuid(31), 0);
        let mut events = base_directory();
        match order {
            0 => events.extend([stored(vec![target]), stored(vec![void]), stored(vec![void_of_void])]),
            // The void of the void first, then the target and its void.
            1 => events.extend([stored(vec![void_of_void]), stored(vec![target]), stored(vec![void])]),
            // All in one request, the void of the void between the others.
            _ => events.push(stored(vec![void, void_of_void, target])),
        }
        let (views, _) = check_pinned(&dir, &events);
        assert!(views.transcript(&learner_key(0)).unwrap().is_empty(), "order {order}");
        assert!(views.uptake(&month_query("Y56")).unwrap().is_empty(), "order {order}");
        let resus = views.competencies(&learner_key(0)).unwrap().into_iter().find(|c| c.competency == C_RESUS).unwrap();
        assert_eq!(resus.status, CompetencyStatus::NotStarted, "order {order}");
    }
}

#[test]
fn the_latest_platform_breaks_time_ties_by_log_order_and_names_follow_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = simple_statement(40, LAUNCHED, IG, "2026-01-20T23:30:00Z");
    first["context"] = json!({ "platform": "e-LfH" });
    first["object"]["definition"] = json!({ "name": { "en-US": "IG (US)", "en-GB": "IG" } });
    // Same instant, other spelling; later in the log.
    let mut second = simple_statement(41, EXPERIENCED, IG, "2026-01-21T00:30:00+01:00");
    second["context"] = json!({ "platform": "moodle-hub" });
    second["object"]["definition"] = json!({ "name": { "fr": "GI" } });
    // Earlier in time, later in the log: its name wins, not its platform.
    let mut third = simple_statement(42, FAILED, IG, "2026-01-02T08:00:00Z");
    third["object"]["definition"] = json!({ "name": { "en-US": "Information governance" } });
    third["result"] = json!({ "score": { "scaled": 0.3 }, "duration": "PT1M2.5S" });
    let events = vec![stored(vec![first]), stored(vec![second, third])];
    let (views, _) = check_pinned(&dir, &events);
    let transcript = views.transcript(&learner_key(0)).unwrap();
    assert_eq!(transcript.len(), 1);
    let entry = &transcript[0];
    assert_eq!(entry.platform, "moodle-hub");
    assert_eq!(entry.name.as_deref(), Some("Information governance"));
    assert_eq!(entry.status, TranscriptStatus::Failed);
    assert_eq!(entry.total_duration_ms, 62_500);
    assert_eq!(entry.best_scaled, Some(0.3));
    assert_eq!(entry.first.to_rfc3339(), "2026-01-02T08:00:00+00:00");
    assert_eq!(entry.last.to_rfc3339(), "2026-01-20T23:30:00+00:00");
}

#[test]
fn days_are_utc_days() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = base_directory();
    // 00:30 on 1 Feb in +01:00 is 23:30 on 31 Jan UTC.
    events.push(stored(vec![simple_statement(50, COMPLETED, OTHER, "2026-02-01T00:30:00+01:00")]));
    let (views, _) = check_pinned(&dir, &events);
    let rows = views.uptake(&month_query("RJ1")).unwrap();
    assert_eq!(rows.iter().map(|r| r.period.as_str()).collect::<Vec<_>>(), vec!["2026-01"]);
}
