//! Deterministic generator of Learning Hub traffic: an NHS organisation
//! hierarchy, learners, and the xAPI statements of e-LfH course sessions,
//! MOOC sessions (xAPI Video profile) and Magpie resource views.
//!
//! The same [`GeneratorConfig`] (seed included) gives byte-identical output
//! on every machine: all randomness comes from [`crate::rng::Rng`], numbers
//! that end up as JSON floats are computed from integers, and timestamps are
//! formatted here rather than by a locale-aware library.
//!
//! Statements come out in time order (`timestamp` advances by a random
//! interval per statement) from a pool of interleaved learner sessions.
//! About 2.5 % are voiding statements whose target is an earlier generated
//! statement (at least [`VOID_MIN_DISTANCE`] statements earlier, so a driver
//! that sends them in order has normally stored the target first).

use std::collections::VecDeque;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use crate::names::*;
use crate::rng::Rng;

/// The JSON text of a verb with an en-GB display.
macro_rules! verb {
    ($id:literal, $display:literal) => {
        concat!(r#"{"id":""#, $id, r#"","display":{"en-GB":""#, $display, r#""}}"#)
    };
}

/// The home page of Learning Hub accounts.
pub const LEARNING_HUB: &str = "https://learninghub.nhs.uk";
/// Context extension: the learner's organisation (ODS code).
pub const ORGANISATION_EXTENSION: &str = "https://learninghub.nhs.uk/xapi/ext/organisation";
/// Context extension: the learner's staff group.
pub const STAFF_GROUP_EXTENSION: &str = "https://learninghub.nhs.uk/xapi/ext/staff-group";
/// A voiding statement targets a statement at least this many statements older.
pub const VOID_MIN_DISTANCE: usize = 200;

const VIDEO_TYPE: &str = "https://w3id.org/xapi/video/activity-type/video";
const ACTIVITIES: &str = "https://learninghub.nhs.uk/activities";
const MAX_PROVIDERS: usize = 4000;
const MAX_LEARNERS: usize = 9_000_000;
const VOID_CANDIDATES: usize = 4096;
const RECENT_REGISTRATIONS: usize = 1024;

/// What to generate. Counts are clamped to what the code schemes allow
/// (1..=4000 provider organisations, 1..=9,000,000 learners).
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    /// Learning Hub accounts.
    pub learners: usize,
    /// Provider organisations (trusts and GP practices) under the ICBs.
    pub organisations: usize,
    /// Simulated time of the first statement.
    pub start_time: DateTime<Utc>,
    /// Mean simulated time between two statements.
    pub mean_interval_ms: u64,
    /// Learner sessions in progress at once (their statements interleave).
    pub active_sessions: usize,
    /// Share of voiding statements, per mille.
    pub void_per_mille: u64,
    /// Share of sessions, per mille, whose statements name neither the
    /// learner's organisation nor staff group: the Learning Hub views take
    /// both from the learner directory. 0 keeps a seed's stream as it was.
    pub unplaced_per_mille: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            learners: 10_000,
            organisations: 60,
            start_time: Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).single().unwrap_or_default(),
            mean_interval_ms: 3_000,
            active_sessions: 64,
            void_per_mille: 25,
            unplaced_per_mille: 0,
        }
    }
}

/// Kind of an organisation in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganisationKind {
    Region,
    Icb,
    Trust,
    GpPractice,
}

#[derive(Debug, Clone)]
pub struct Organisation {
    /// ODS code.
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub kind: OrganisationKind,
}

#[derive(Debug, Clone)]
pub struct Learner {
    /// Learning Hub account name (7 digits).
    pub account: String,
    pub name: String,
    /// Index into [`Generator::organisations`].
    pub organisation: usize,
    pub staff_group: &'static str,
}

/// The three content platforms, as sent in `context.platform`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Elfh,
    Mooc,
    Magpie,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Self::Elfh => "e-LfH",
            Self::Mooc => "MOOC",
            Self::Magpie => "Magpie",
        }
    }
}

/// An activity with its definition, as JSON text ready to be written into
/// statements (an object or a context activity).
#[derive(Debug, Clone)]
struct Activity {
    id: String,
    /// `{"objectType":"Activity","id":…,"definition":{name, description, type}}`.
    full: String,
    /// The same with only name and type, for parent context activities.
    brief: String,
    /// Only the id, for grouping context activities.
    reference: String,
}

fn activity(id: String, name: &str, description: &str, kind: &str) -> Activity {
    let full = json!({
        "objectType": "Activity",
        "id": id,
        "definition": {
            "name": { "en-GB": name },
            "description": { "en-GB": description },
            "type": kind,
        }
    });
    let brief = json!({
        "objectType": "Activity",
        "id": id,
        "definition": { "name": { "en-GB": name }, "type": kind }
    });
    let reference = json!({ "objectType": "Activity", "id": id });
    Activity { id, full: full.to_string(), brief: brief.to_string(), reference: reference.to_string() }
}

#[derive(Debug, Clone)]
struct Question {
    id: String,
    name: String,
    description: String,
    interaction: &'static str,
    choices: Vec<(String, String)>,
    correct: String,
    /// The object with name, type and interaction type only.
    brief_object: String,
    /// The object with description, correct responses and choices too.
    full_object: String,
}

impl Question {
    fn render(&mut self) {
        let mut definition = Map::new();
        definition.insert("name".into(), json!({ "en-GB": self.name }));
        definition.insert("type".into(), json!("http://adlnet.gov/expapi/activities/cmi.interaction"));
        definition.insert("interactionType".into(), json!(self.interaction));
        self.brief_object = json!({ "objectType": "Activity", "id": self.id, "definition": definition }).to_string();
        let mut definition = Map::new();
        definition.insert("name".into(), json!({ "en-GB": self.name }));
        definition.insert("description".into(), json!({ "en-GB": self.description }));
        definition.insert("type".into(), json!("http://adlnet.gov/expapi/activities/cmi.interaction"));
        definition.insert("interactionType".into(), json!(self.interaction));
        definition.insert("correctResponsesPattern".into(), json!([self.correct]));
        if !self.choices.is_empty() {
            let choices =
                self.choices.iter().map(|(id, text)| json!({ "id": id, "description": { "en-GB": text } })).collect();
            definition.insert("choices".into(), Value::Array(choices));
        }
        self.full_object = json!({ "objectType": "Activity", "id": self.id, "definition": definition }).to_string();
    }
}

#[derive(Debug, Clone)]
struct ElfhModule {
    activity: Activity,
    questions: Vec<Question>,
}

#[derive(Debug, Clone)]
struct ElfhCourse {
    programme: Activity,
    course: Activity,
    modules: Vec<ElfhModule>,
}

#[derive(Debug, Clone)]
struct MoocStep {
    step: Activity,
    video: Activity,
    /// Video length in centiseconds.
    length_cs: u64,
}

#[derive(Debug, Clone)]
struct MoocCourse {
    course: Activity,
    steps: Vec<MoocStep>,
}

#[derive(Debug, Clone)]
struct Catalogue {
    elfh: Vec<ElfhCourse>,
    mooc: Vec<MoocCourse>,
    magpie: Vec<Activity>,
    /// Every activity id, for read queries.
    ids: Vec<String>,
}

fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn long_text(rng: &mut Rng, sentences: usize) -> String {
    (0..sentences).map(|_| *rng.pick(LONG_TEXT)).collect::<Vec<_>>().join(" ")
}

fn build_catalogue(rng: &mut Rng) -> Catalogue {
    let mut ids = Vec::new();
    let mut elfh = Vec::new();
    for (programme_slug, programme_name, topics) in ELFH_PROGRAMMES {
        let programme = activity(
            format!("{ACTIVITIES}/elfh/{programme_slug}"),
            programme_name,
            &format!("The e-Learning for Healthcare {programme_name} programme."),
            "http://adlnet.gov/expapi/activities/course",
        );
        ids.push(programme.id.clone());
        for topic in *topics {
            let course_slug = slug(topic);
            let course = activity(
                format!("{ACTIVITIES}/elfh/{programme_slug}/{course_slug}"),
                topic,
                &format!("{topic}: an e-learning course in the {programme_name} programme for all NHS staff."),
                "http://adlnet.gov/expapi/activities/course",
            );
            ids.push(course.id.clone());
            let module_count = rng.range(2, 4) as usize;
            let mut modules = Vec::new();
            for m in 1..=module_count {
                let name = format!("{topic} - session {m}");
                let module = activity(
                    format!("{}/session-{m}", course.id),
                    &name,
                    &format!("Session {m} of {topic}: key principles, a case study and a short assessment."),
                    "http://adlnet.gov/expapi/activities/lesson",
                );
                ids.push(module.id.clone());
                let mut questions = Vec::new();
                for q in 1..=rng.range(3, 6) {
                    let interaction = *rng.pick(&["choice", "choice", "true-false", "fill-in", "numeric"]);
                    let choices: Vec<(String, String)> = if interaction == "choice" {
                        (0..4)
                            .map(|c| {
                                let text = format!("{}: {}", ["A", "B", "C", "D"][c], rng.pick(LONG_TEXT));
                                (format!("option-{}", ["a", "b", "c", "d"][c]), text)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let correct = match interaction {
                        "choice" => choices[rng.index(choices.len())].0.clone(),
                        "true-false" => ["true", "false"][rng.index(2)].to_owned(),
                        "numeric" => rng.range(1, 20).to_string(),
                        _ => "escalate".to_owned(),
                    };
                    let id = format!("{}/question-{q}", module.id);
                    ids.push(id.clone());
                    let mut question = Question {
                        id,
                        name: format!("{topic} session {m}, question {q}"),
                        description: {
                            let sentences = 3 + rng.index(3);
                            format!("Question {q}: {} What should you do next?", long_text(rng, sentences))
                        },
                        interaction,
                        choices,
                        correct,
                        brief_object: String::new(),
                        full_object: String::new(),
                    };
                    question.render();
                    questions.push(question);
                }
                modules.push(ElfhModule { activity: module, questions });
            }
            elfh.push(ElfhCourse { programme: programme.clone(), course, modules });
        }
    }
    let mut mooc = Vec::new();
    for (course_slug, title, steps) in MOOC_COURSES {
        let course = activity(
            format!("{ACTIVITIES}/mooc/{course_slug}"),
            title,
            &format!("{title}: a free online course for health and care staff, with videos, articles and discussion."),
            "http://adlnet.gov/expapi/activities/course",
        );
        ids.push(course.id.clone());
        let mut mooc_steps = Vec::new();
        for (n, step_title) in steps.iter().enumerate() {
            let step = activity(
                format!("{}/step-{}", course.id, n + 1),
                step_title,
                &format!("Step {} of {title}: {step_title}", n + 1),
                "http://adlnet.gov/expapi/activities/module",
            );
            let video = activity(
                format!("{}/video", step.id),
                &format!("{step_title} (video)"),
                &format!("A short video for step {} of {title}.", n + 1),
                VIDEO_TYPE,
            );
            ids.push(step.id.clone());
            ids.push(video.id.clone());
            mooc_steps.push(MoocStep { step, video, length_cs: rng.range(90, 900) * 100 + rng.below(100) });
        }
        mooc.push(MoocCourse { course, steps: mooc_steps });
    }
    let mut magpie = Vec::new();
    for (n, topic) in MAGPIE_TOPICS.iter().enumerate() {
        for (kind_slug, kind) in MAGPIE_KINDS {
            if rng.chance(400) {
                continue;
            }
            let resource = activity(
                format!("{ACTIVITIES}/magpie/{kind_slug}/{}-{n}", slug(topic)),
                &format!("{topic} ({kind_slug})"),
                &format!("A {kind_slug} recommended by Magpie on {}.", topic.to_lowercase()),
                kind,
            );
            ids.push(resource.id.clone());
            magpie.push(resource);
        }
    }
    Catalogue { elfh, mooc, magpie, ids }
}

const ALNUM: &[u8; 32] = b"ABCDEFGHJKLMNPRSTUVWXY0123456789";

fn two_chars(n: usize, multiplier: usize, offset: usize) -> String {
    let j = (n * multiplier + offset) % 1024;
    let mut text = String::with_capacity(2);
    text.push(ALNUM[j / 32] as char);
    text.push(ALNUM[j % 32] as char);
    text
}

fn build_organisations(rng: &mut Rng, providers: usize) -> (Vec<Organisation>, Vec<usize>, Vec<usize>) {
    let providers = providers.clamp(1, MAX_PROVIDERS);
    let mut organisations = vec![Organisation {
        code: "Y56".to_owned(),
        name: "London Commissioning Region".to_owned(),
        parent: None,
        kind: OrganisationKind::Region,
    }];
    let icbs = providers.div_ceil(10).min(1000);
    for i in 0..icbs {
        let area = ICB_AREAS.get(i).map_or_else(|| format!("{} and District", rng.pick(PLACES)), |a| (*a).to_owned());
        organisations.push(Organisation {
            code: format!("Q{}", two_chars(i, 37, 301)),
            name: format!("NHS {area} Integrated Care Board"),
            parent: Some("Y56".to_owned()),
            kind: OrganisationKind::Icb,
        });
    }
    let mut trusts = Vec::new();
    let mut practices = Vec::new();
    let (mut trust_n, mut practice_n) = (0, 0);
    for p in 0..providers {
        let parent = organisations[1 + p % icbs].code.clone();
        let index = organisations.len();
        if p % 3 == 2 {
            let letter = ALNUM[practice_n % 15] as char;
            let number = 10_000 + (practice_n / 15) * 37 % 90_000;
            let name = if rng.chance(500) {
                format!("{} {}", rng.pick(STREETS), rng.pick(PRACTICE_KINDS))
            } else {
                format!("{} {}", rng.pick(PLACES), rng.pick(PRACTICE_KINDS))
            };
            organisations.push(Organisation {
                code: format!("{letter}{number:05}"),
                name,
                parent: Some(parent),
                kind: OrganisationKind::GpPractice,
            });
            practices.push(index);
            practice_n += 1;
        } else {
            let prefix = ['R', 'T', 'N'][(trust_n / 1024).min(2)];
            organisations.push(Organisation {
                code: format!("{prefix}{}", two_chars(trust_n, 53, 97)),
                name: format!("{} {}", rng.pick(PLACES), rng.pick(TRUST_KINDS)),
                parent: Some(parent),
                kind: OrganisationKind::Trust,
            });
            trusts.push(index);
            trust_n += 1;
        }
    }
    (organisations, trusts, practices)
}

#[derive(Debug, Clone, Copy)]
enum Step {
    ElfhLaunched,
    ElfhInitialized,
    ElfhProgressed(u64),
    ElfhAnswered(usize),
    ElfhAssessed,
    ElfhCompleted,
    ElfhTerminated,
    VideoPlayed { step: usize, at_cs: u64 },
    VideoPaused { step: usize, at_cs: u64 },
    VideoSeeked { step: usize, from_cs: u64, to_cs: u64 },
    VideoCompleted { step: usize },
    ModuleCompleted { step: usize },
    Commented { step: usize },
    MagpieViewed { experienced: bool },
    MagpieBookmarked,
    MagpieRated(u64),
}

#[derive(Debug, Clone)]
struct Session {
    platform: Platform,
    learner: usize,
    registration: String,
    started_ms: i64,
    /// Course (e-LfH, MOOC) or resource (Magpie) index.
    item: usize,
    /// e-LfH module index.
    module: usize,
    answered: u64,
    correct: u64,
    steps: VecDeque<Step>,
    /// Its statements leave the organisation and staff group to the
    /// learner directory.
    unplaced: bool,
}

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DDThh:mm:ss.mmmZ`.
pub fn format_timestamp(ms: i64) -> String {
    let (date, rest) = split_day(ms);
    let (h, m, s, milli) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{date}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The UTC date (`YYYY-MM-DD`) of milliseconds since the Unix epoch.
pub fn format_date(ms: i64) -> String {
    split_day(ms).0
}

fn split_day(ms: i64) -> (String, i64) {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), rest)
}

/// An ISO 8601 duration such as `PT14M3S` or `PT1H2M3.45S` (centisecond precision).
pub fn format_duration(ms: i64) -> String {
    let cs = ms.max(0) / 10;
    let (h, m, s, frac) = (cs / 360_000, cs / 6000 % 60, cs / 100 % 60, cs % 100);
    let mut text = String::from("PT");
    if h > 0 {
        text.push_str(&format!("{h}H"));
    }
    if h > 0 || m > 0 {
        text.push_str(&format!("{m}M"));
    }
    if frac > 0 {
        text.push_str(&format!("{s}.{frac:02}S"));
    } else {
        text.push_str(&format!("{s}S"));
    }
    text
}

/// The generator. Iterate it (or call [`Generator::next_statement`]) for
/// statements; the directories and the helpers for read queries are
/// available at any time.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    rng: Rng,
    /// Randomness for the helpers, so that read queries never change the
    /// statement stream.
    aux: Rng,
    organisations: Vec<Organisation>,
    learners: Vec<Learner>,
    catalogue: Catalogue,
    sessions: Vec<Session>,
    now_ms: i64,
    start_ms: i64,
    emitted: usize,
    /// (sequence number, statement id) of statements that may be voided.
    void_candidates: VecDeque<(usize, String)>,
    registrations: VecDeque<(usize, String)>,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let aux = Rng::new(config.seed.rotate_left(17) ^ 0xA5A5_5A5A_1234_8765);
        let (organisations, trusts, practices) = build_organisations(&mut rng, config.organisations);
        let learner_count = config.learners.clamp(1, MAX_LEARNERS);
        let weights: Vec<u32> = STAFF_GROUPS.iter().map(|(_, w)| *w).collect();
        let learners = (0..learner_count)
            .map(|i| {
                let number = 1_000_000 + (i as u64 * 7_777_777) % 9_000_000;
                let organisation =
                    if practices.is_empty() || rng.chance(850) { *rng.pick(&trusts) } else { *rng.pick(&practices) };
                Learner {
                    account: number.to_string(),
                    name: format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(SURNAMES)),
                    organisation,
                    staff_group: STAFF_GROUPS[rng.weighted(&weights)].0,
                }
            })
            .collect();
        let catalogue = build_catalogue(&mut rng);
        let start_ms = config.start_time.timestamp_millis();
        let mut generator = Self {
            rng,
            aux,
            organisations,
            learners,
            catalogue,
            sessions: Vec::new(),
            now_ms: start_ms,
            start_ms,
            emitted: 0,
            void_candidates: VecDeque::new(),
            registrations: VecDeque::new(),
            config,
        };
        for _ in 0..generator.config.active_sessions.max(1) {
            let session = generator.new_session();
            generator.sessions.push(session);
        }
        generator
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    pub fn organisations(&self) -> &[Organisation] {
        &self.organisations
    }

    pub fn learners(&self) -> &[Learner] {
        &self.learners
    }

    /// Statements generated so far.
    pub fn emitted(&self) -> usize {
        self.emitted
    }

    /// `organisations.csv`: `code,name,parent`, header first.
    pub fn organisations_csv(&self) -> String {
        let mut text = String::from("code,name,parent\n");
        for o in &self.organisations {
            text.push_str(&format!("{},{},{}\n", o.code, csv_cell(&o.name), o.parent.as_deref().unwrap_or("")));
        }
        text
    }

    /// `learners.csv`: `learner,organisation,staff_group` (learner = account name).
    pub fn learners_csv(&self) -> String {
        let mut text = String::with_capacity(self.learners.len() * 48 + 40);
        text.push_str("learner,organisation,staff_group\n");
        for l in &self.learners {
            text.push_str(&l.account);
            text.push(',');
            text.push_str(&self.organisations[l.organisation].code);
            text.push(',');
            text.push_str(&csv_cell(l.staff_group));
            text.push('\n');
        }
        text
    }

    /// The `actor` of a learner's statements.
    pub fn learner_agent(&self, learner: &Learner) -> Value {
        json!({
            "objectType": "Agent",
            "name": learner.name,
            "account": { "homePage": LEARNING_HUB, "name": learner.account }
        })
    }

    /// The agent as a query needs it (identifier only).
    pub fn learner_agent_ifi(&self, learner: &Learner) -> Value {
        json!({ "objectType": "Agent", "account": { "homePage": LEARNING_HUB, "name": learner.account } })
    }

    /// A learner chosen at random (helper randomness, not the statement stream's).
    pub fn random_learner(&mut self) -> &Learner {
        let index = self.aux.index(self.learners.len());
        &self.learners[index]
    }

    /// The learner of a recently generated session (likely to have statements).
    pub fn active_learner(&mut self) -> &Learner {
        let index = self.aux.index(self.sessions.len());
        &self.learners[self.sessions[index].learner]
    }

    /// Any activity id of the catalogue.
    pub fn random_activity_id(&mut self) -> String {
        let index = self.aux.index(self.catalogue.ids.len());
        self.catalogue.ids[index].clone()
    }

    /// The registration of a recently started session, if any.
    pub fn recent_registration(&mut self) -> Option<String> {
        let len = self.registrations.len();
        (len > 0).then(|| self.registrations[self.aux.index(len)].1.clone())
    }

    /// A verb the statements use.
    pub fn random_verb_id(&mut self) -> String {
        const VERBS: &[&str] = &[
            "http://adlnet.gov/expapi/verbs/completed",
            "http://adlnet.gov/expapi/verbs/passed",
            "http://adlnet.gov/expapi/verbs/launched",
            "http://adlnet.gov/expapi/verbs/answered",
            "https://w3id.org/xapi/video/verbs/played",
            "http://id.tincanapi.com/verb/viewed",
            "http://id.tincanapi.com/verb/rated",
        ];
        (*self.aux.pick(VERBS)).to_owned()
    }

    /// An organisation for uptake queries: mostly trusts, sometimes an ICB or the region.
    pub fn random_organisation(&mut self) -> &Organisation {
        let roll = self.aux.below(100);
        let wanted = match roll {
            0..=4 => OrganisationKind::Region,
            5..=24 => OrganisationKind::Icb,
            _ => OrganisationKind::Trust,
        };
        let candidates: Vec<usize> =
            (0..self.organisations.len()).filter(|&i| self.organisations[i].kind == wanted).collect();
        let index = if candidates.is_empty() { 0 } else { candidates[self.aux.index(candidates.len())] };
        &self.organisations[index]
    }

    /// A number from the helper randomness, in `0..n`.
    pub fn aux_below(&mut self, n: u64) -> u64 {
        self.aux.below(n)
    }

    /// Simulated time of the first statement, ms since the epoch.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// Simulated time of the latest statement, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    fn new_session(&mut self) -> Session {
        let platform = [Platform::Elfh, Platform::Mooc, Platform::Magpie][self.rng.weighted(&[35, 20, 45])];
        let learner = self.rng.index(self.learners.len());
        let registration = self.rng.uuid();
        self.registrations.push_back((self.emitted, registration.clone()));
        if self.registrations.len() > RECENT_REGISTRATIONS {
            self.registrations.pop_front();
        }
        let mut steps = VecDeque::new();
        let mut module = 0;
        let item = match platform {
            Platform::Elfh => {
                let course = self.rng.index(self.catalogue.elfh.len());
                module = self.rng.index(self.catalogue.elfh[course].modules.len());
                steps.push_back(Step::ElfhLaunched);
                steps.push_back(Step::ElfhInitialized);
                let questions = self.catalogue.elfh[course].modules[module].questions.len();
                let abandons = self.rng.chance(150);
                for (n, percent) in [25, 50, 75].into_iter().enumerate() {
                    if n < 1 || self.rng.chance(600) {
                        steps.push_back(Step::ElfhProgressed(percent));
                    }
                }
                if !abandons {
                    for q in 0..questions {
                        steps.push_back(Step::ElfhAnswered(q));
                    }
                    steps.push_back(Step::ElfhAssessed);
                    steps.push_back(Step::ElfhCompleted);
                }
                steps.push_back(Step::ElfhTerminated);
                course
            }
            Platform::Mooc => {
                let course = self.rng.index(self.catalogue.mooc.len());
                let count = self.catalogue.mooc[course].steps.len();
                let first = self.rng.index(count);
                let last = (first + self.rng.range(1, 3) as usize).min(count);
                for step in first..last {
                    let length = self.catalogue.mooc[course].steps[step].length_cs;
                    steps.push_back(Step::VideoPlayed { step, at_cs: 0 });
                    if self.rng.chance(450) {
                        let at_cs = self.rng.range(100, length - 100);
                        steps.push_back(Step::VideoPaused { step, at_cs });
                        steps.push_back(Step::VideoPlayed { step, at_cs });
                    }
                    if self.rng.chance(250) {
                        let from_cs = self.rng.range(100, length - 100);
                        let to_cs = self.rng.range(0, length - 100);
                        steps.push_back(Step::VideoSeeked { step, from_cs, to_cs });
                    }
                    if self.rng.chance(200) {
                        steps.push_back(Step::VideoPaused { step, at_cs: self.rng.range(100, length - 100) });
                        break;
                    }
                    steps.push_back(Step::VideoCompleted { step });
                    steps.push_back(Step::ModuleCompleted { step });
                    if self.rng.chance(150) {
                        steps.push_back(Step::Commented { step });
                    }
                }
                course
            }
            Platform::Magpie => {
                steps.push_back(Step::MagpieViewed { experienced: self.rng.chance(400) });
                if self.rng.chance(250) {
                    steps.push_back(Step::MagpieBookmarked);
                }
                if self.rng.chance(350) {
                    steps.push_back(Step::MagpieRated(self.rng.range(1, 5)));
                }
                self.rng.index(self.catalogue.magpie.len())
            }
        };
        // Drawn only when asked for, so that a seed's stream is otherwise unchanged.
        let unplaced = self.config.unplaced_per_mille > 0 && self.rng.chance(self.config.unplaced_per_mille);
        Session {
            platform,
            learner,
            registration,
            started_ms: self.now_ms,
            item,
            module,
            answered: 0,
            correct: 0,
            steps,
            unplaced,
        }
    }

    /// The next statement.
    pub fn next_statement(&mut self) -> Value {
        let mut text = Vec::with_capacity(2048);
        self.write_next_statement(&mut text);
        serde_json::from_slice(&text).unwrap_or(Value::Null)
    }

    /// Appends the next statement's JSON text to `out` (the fast path: the
    /// same bytes as serialising [`Generator::next_statement`]).
    pub fn write_next_statement(&mut self, out: &mut Vec<u8>) {
        self.now_ms += self.rng.range(0, 2 * self.config.mean_interval_ms) as i64;
        let id = self.rng.uuid();
        if self.rng.chance(self.config.void_per_mille)
            && self.void_candidates.len() > VOID_MIN_DISTANCE
            && self.void_candidates.front().is_some_and(|(seq, _)| seq + VOID_MIN_DISTANCE <= self.emitted)
        {
            self.write_voiding_statement(out, &id);
        } else {
            let slot = self.rng.index(self.sessions.len());
            self.write_session_statement(out, slot, &id);
            self.void_candidates.push_back((self.emitted, id));
            if self.void_candidates.len() > VOID_CANDIDATES {
                self.void_candidates.pop_front();
            }
        }
        self.emitted += 1;
    }

    fn write_actor(&self, out: &mut Vec<u8>, learner: &Learner) {
        out.extend_from_slice(br#""actor":{"objectType":"Agent","name":"#);
        push_string(out, &learner.name);
        out.extend_from_slice(br#","account":{"homePage":"https://learninghub.nhs.uk","name":"#);
        push_string(out, &learner.account);
        out.extend_from_slice(b"}}");
    }

    fn write_voiding_statement(&mut self, out: &mut Vec<u8>, id: &str) {
        // Only targets old enough: those before the last VOID_MIN_DISTANCE.
        let eligible =
            self.void_candidates.iter().take_while(|(seq, _)| seq + VOID_MIN_DISTANCE <= self.emitted).count();
        let index = self.rng.index(eligible.max(1));
        let (_, target) = self.void_candidates.remove(index).unwrap_or_default();
        let learner = self.rng.index(self.learners.len());
        out.extend_from_slice(br#"{"id":"#);
        push_string(out, id);
        out.push(b',');
        self.write_actor(out, &self.learners[learner]);
        out.extend_from_slice(br#","verb":"#);
        out.extend_from_slice(verb!("http://adlnet.gov/expapi/verbs/voided", "voided").as_bytes());
        out.extend_from_slice(br#","object":{"objectType":"StatementRef","id":"#);
        push_string(out, &target);
        out.extend_from_slice(br#"},"timestamp":"#);
        push_string(out, &format_timestamp(self.now_ms));
        out.push(b'}');
    }

    /// Writes `"context":{…}`.
    fn write_context(&self, out: &mut Vec<u8>, session: &Session, activities: ContextActivities<'_>) {
        let learner = &self.learners[session.learner];
        out.extend_from_slice(br#""context":{"registration":"#);
        push_string(out, &session.registration);
        out.extend_from_slice(br#","contextActivities":{"#);
        let mut first = true;
        for (name, list) in [("parent", activities.parent), ("grouping", activities.grouping)] {
            if list.is_empty() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":[");
            for (n, activity) in list.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(activity.as_bytes());
            }
            out.push(b']');
        }
        if let Some(length_cs) = activities.video_length_cs {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(br#""category":[{"objectType":"Activity","id":"https://w3id.org/xapi/video"}]"#);
            out.extend_from_slice(br#"},"platform":"#);
            push_string(out, session.platform.name());
            out.extend_from_slice(
                br#","language":"en-GB","extensions":{"https://w3id.org/xapi/video/extensions/session-id":"#,
            );
            push_string(out, &session.registration);
            out.extend_from_slice(br#","https://w3id.org/xapi/video/extensions/length":"#);
            push_seconds(out, length_cs);
            if !session.unplaced {
                out.push(b',');
            }
        } else {
            out.extend_from_slice(br#"},"platform":"#);
            push_string(out, session.platform.name());
            out.extend_from_slice(br#","language":"en-GB","extensions":{"#);
        }
        if !session.unplaced {
            out.extend_from_slice(br#""https://learninghub.nhs.uk/xapi/ext/organisation":"#);
            push_string(out, &self.organisations[learner.organisation].code);
            out.extend_from_slice(br#","https://learninghub.nhs.uk/xapi/ext/staff-group":"#);
            push_string(out, learner.staff_group);
        }
        out.extend_from_slice(b"}}");
    }

    fn write_session_statement(&mut self, out: &mut Vec<u8>, slot: usize, id: &str) {
        let step = loop {
            match self.sessions[slot].steps.pop_front() {
                Some(step) => break step,
                None => self.sessions[slot] = self.new_session(),
            }
        };
        out.extend_from_slice(br#"{"id":"#);
        push_string(out, id);
        out.push(b',');
        self.write_actor(out, &self.learners[self.sessions[slot].learner]);
        out.extend_from_slice(br#","verb":"#);
        match self.sessions[slot].platform {
            Platform::Elfh => self.write_elfh(out, slot, step),
            Platform::Mooc => self.write_mooc(out, slot, step),
            Platform::Magpie => self.write_magpie(out, slot, step),
        }
        out.extend_from_slice(br#","timestamp":"#);
        push_string(out, &format_timestamp(self.now_ms));
        out.push(b'}');
    }

    /// Writes the verb, then `,"object":…`, `,"result":…` (when there is one) and `,"context":…`.
    fn write_rest(
        &self,
        out: &mut Vec<u8>,
        slot: usize,
        verb: &str,
        object: &str,
        result: &[u8],
        activities: ContextActivities<'_>,
    ) {
        out.extend_from_slice(verb.as_bytes());
        out.extend_from_slice(br#","object":"#);
        out.extend_from_slice(object.as_bytes());
        if !result.is_empty() {
            out.extend_from_slice(br#","result":"#);
            out.extend_from_slice(result);
        }
        out.push(b',');
        self.write_context(out, &self.sessions[slot], activities);
    }

    fn write_elfh(&mut self, out: &mut Vec<u8>, slot: usize, step: Step) {
        let session = &self.sessions[slot];
        let elapsed = self.now_ms - session.started_ms;
        let (item, module_index) = (session.item, session.module);
        let mut result = Vec::with_capacity(128);
        if let Step::ElfhAnswered(q) = step {
            let question = &self.catalogue.elfh[item].modules[module_index].questions[q];
            let correct = self.rng.chance(820);
            let response = if correct {
                question.correct.clone()
            } else {
                match question.interaction {
                    "choice" => question
                        .choices
                        .iter()
                        .map(|(id, _)| id.clone())
                        .find(|id| *id != question.correct)
                        .unwrap_or_default(),
                    "true-false" => if question.correct == "true" { "false" } else { "true" }.to_owned(),
                    "numeric" => self.rng.range(21, 40).to_string(),
                    _ => "wait and see".to_owned(),
                }
            };
            let full_definition = question.interaction == "choice" && self.rng.chance(250);
            let took = self.rng.range(4_000, 90_000) as i64;
            result.extend_from_slice(br#"{"success":"#);
            result.extend_from_slice(if correct { b"true" } else { b"false" });
            result.extend_from_slice(br#","response":"#);
            push_string(&mut result, &response);
            result.extend_from_slice(br#","duration":"#);
            push_string(&mut result, &format_duration(took));
            result.push(b'}');
            let course = &self.catalogue.elfh[item];
            let module = &course.modules[module_index];
            let question = &module.questions[q];
            let object = if full_definition { &question.full_object } else { &question.brief_object };
            let activities = ContextActivities {
                parent: &[&module.activity.brief],
                grouping: &[&course.course.reference, &course.programme.reference],
                video_length_cs: None,
            };
            self.write_rest(
                out,
                slot,
                verb!("http://adlnet.gov/expapi/verbs/answered", "answered"),
                object,
                &result,
                activities,
            );
            let session = &mut self.sessions[slot];
            session.answered += 1;
            session.correct += u64::from(correct);
            return;
        }
        let verb = match step {
            Step::ElfhLaunched => verb!("http://adlnet.gov/expapi/verbs/launched", "launched"),
            Step::ElfhInitialized => verb!("http://adlnet.gov/expapi/verbs/initialized", "initialised"),
            Step::ElfhProgressed(percent) => {
                result.extend_from_slice(br#"{"extensions":{"https://learninghub.nhs.uk/xapi/ext/progress":"#);
                push_f64(&mut result, percent as f64 / 100.0);
                result.extend_from_slice(b"}}");
                verb!("http://adlnet.gov/expapi/verbs/progressed", "progressed")
            }
            Step::ElfhAssessed => {
                let raw = (session.correct * 100 / session.answered.max(1)).min(100);
                let passed = raw >= 80;
                result.extend_from_slice(br#"{"score":{"scaled":"#);
                push_f64(&mut result, raw as f64 / 100.0);
                result
                    .extend_from_slice(format!(r#","raw":{raw},"min":0,"max":100}},"success":{passed}}}"#).as_bytes());
                if passed {
                    verb!("http://adlnet.gov/expapi/verbs/passed", "passed")
                } else {
                    verb!("http://adlnet.gov/expapi/verbs/failed", "failed")
                }
            }
            Step::ElfhCompleted => {
                result.extend_from_slice(br#"{"completion":true,"duration":"#);
                push_string(&mut result, &format_duration(elapsed));
                result.push(b'}');
                verb!("http://adlnet.gov/expapi/verbs/completed", "completed")
            }
            _ => {
                result.extend_from_slice(br#"{"duration":"#);
                push_string(&mut result, &format_duration(elapsed));
                result.push(b'}');
                verb!("http://adlnet.gov/expapi/verbs/terminated", "terminated")
            }
        };
        let course = &self.catalogue.elfh[item];
        let module = &course.modules[module_index];
        let activities = ContextActivities {
            parent: &[&course.course.brief],
            grouping: &[&course.programme.reference],
            video_length_cs: None,
        };
        self.write_rest(out, slot, verb, &module.activity.full, &result, activities);
    }

    fn write_mooc(&mut self, out: &mut Vec<u8>, slot: usize, step: Step) {
        let session = &self.sessions[slot];
        let elapsed = self.now_ms - session.started_ms;
        let item = session.item;
        let index = match step {
            Step::VideoPlayed { step, .. }
            | Step::VideoPaused { step, .. }
            | Step::VideoSeeked { step, .. }
            | Step::VideoCompleted { step }
            | Step::ModuleCompleted { step }
            | Step::Commented { step } => step,
            _ => 0,
        };
        let length = self.catalogue.mooc[item].steps[index].length_cs;
        let mut result = Vec::with_capacity(256);
        let ext = |result: &mut Vec<u8>, name: &str| {
            result.extend_from_slice(b"\"https://w3id.org/xapi/video/extensions/");
            result.extend_from_slice(name.as_bytes());
            result.extend_from_slice(b"\":");
        };
        let video_verb = match step {
            Step::VideoPlayed { at_cs, .. } => {
                result.extend_from_slice(br#"{"extensions":{"#);
                ext(&mut result, "time");
                push_seconds(&mut result, at_cs);
                result.extend_from_slice(b"}}");
                Some(verb!("https://w3id.org/xapi/video/verbs/played", "played"))
            }
            Step::VideoPaused { at_cs, .. } => {
                result.extend_from_slice(br#"{"extensions":{"#);
                ext(&mut result, "time");
                push_seconds(&mut result, at_cs);
                result.push(b',');
                ext(&mut result, "progress");
                push_f64(&mut result, (at_cs * 100 / length) as f64 / 100.0);
                result.push(b',');
                ext(&mut result, "played-segments");
                push_string(&mut result, &format!("0[.]{}", at_cs as f64 / 100.0));
                result.extend_from_slice(b"}}");
                Some(verb!("https://w3id.org/xapi/video/verbs/paused", "paused"))
            }
            Step::VideoSeeked { from_cs, to_cs, .. } => {
                result.extend_from_slice(br#"{"extensions":{"#);
                ext(&mut result, "time-from");
                push_seconds(&mut result, from_cs);
                result.push(b',');
                ext(&mut result, "time-to");
                push_seconds(&mut result, to_cs);
                result.extend_from_slice(b"}}");
                Some(verb!("https://w3id.org/xapi/video/verbs/seeked", "seeked"))
            }
            Step::VideoCompleted { .. } => {
                result.extend_from_slice(br#"{"completion":true,"duration":"#);
                push_string(&mut result, &format_duration(elapsed.min(length as i64 * 10 + 60_000)));
                result.extend_from_slice(br#","extensions":{"#);
                ext(&mut result, "time");
                push_seconds(&mut result, length);
                result.push(b',');
                ext(&mut result, "progress");
                result.extend_from_slice(b"1.0,");
                ext(&mut result, "played-segments");
                push_string(&mut result, &format!("0[.]{}", length as f64 / 100.0));
                result.extend_from_slice(b"}}");
                Some(verb!("https://w3id.org/xapi/video/verbs/completed", "completed"))
            }
            _ => None,
        };
        if let Some(verb) = video_verb {
            let course = &self.catalogue.mooc[item];
            let mooc_step = &course.steps[index];
            let activities = ContextActivities {
                parent: &[&mooc_step.step.brief],
                grouping: &[&course.course.reference],
                video_length_cs: Some(length),
            };
            self.write_rest(out, slot, verb, &mooc_step.video.full, &result, activities);
            return;
        }
        let verb = if let Step::Commented { .. } = step {
            let text = if self.rng.chance(300) {
                let sentences = 12 + self.rng.index(6);
                long_text(&mut self.rng, sentences)
            } else {
                (*self.rng.pick(COMMENTS)).to_owned()
            };
            result.extend_from_slice(br#"{"response":"#);
            push_string(&mut result, &text);
            result.push(b'}');
            verb!("http://adlnet.gov/expapi/verbs/commented", "commented")
        } else {
            result.extend_from_slice(br#"{"completion":true,"duration":"#);
            push_string(&mut result, &format_duration(elapsed));
            result.push(b'}');
            verb!("http://adlnet.gov/expapi/verbs/completed", "completed")
        };
        let course = &self.catalogue.mooc[item];
        let activities = ContextActivities { parent: &[&course.course.brief], grouping: &[], video_length_cs: None };
        self.write_rest(out, slot, verb, &course.steps[index].step.full, &result, activities);
    }

    fn write_magpie(&mut self, out: &mut Vec<u8>, slot: usize, step: Step) {
        let mut result = Vec::new();
        let verb = match step {
            Step::MagpieViewed { experienced: true } => {
                verb!("http://adlnet.gov/expapi/verbs/experienced", "experienced")
            }
            Step::MagpieBookmarked => verb!("http://id.tincanapi.com/verb/bookmarked", "bookmarked"),
            Step::MagpieRated(stars) => {
                result.extend_from_slice(br#"{"score":{"scaled":"#);
                push_f64(&mut result, stars as f64 / 5.0);
                result.extend_from_slice(format!(r#","raw":{stars},"min":1,"max":5}}}}"#).as_bytes());
                verb!("http://id.tincanapi.com/verb/rated", "rated")
            }
            _ => verb!("http://id.tincanapi.com/verb/viewed", "viewed"),
        };
        let resource = &self.catalogue.magpie[self.sessions[slot].item];
        let activities = ContextActivities { parent: &[], grouping: &[], video_length_cs: None };
        self.write_rest(out, slot, verb, &resource.full, &result, activities);
    }
}

/// Context activities of a statement (JSON texts), and the video length
/// when the statement follows the xAPI Video profile.
#[derive(Clone, Copy)]
struct ContextActivities<'a> {
    parent: &'a [&'a String],
    grouping: &'a [&'a String],
    video_length_cs: Option<u64>,
}

/// Writes a JSON string (quoted, escaped).
fn push_string(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// Writes a number as serde_json does.
fn push_f64(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

fn push_seconds(out: &mut Vec<u8>, cs: u64) {
    push_f64(out, cs as f64 / 100.0);
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

impl Iterator for Generator {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        Some(self.next_statement())
    }
}
