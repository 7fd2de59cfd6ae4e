//! The hub projection: directories, transcripts, competencies and uptake,
//! kept in one sled tree with the log offset they reflect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use lrs_eventlog::{LogRecord, Offset};
use lrs_projection::batch::{Entry, PendingBatch, apply_records_then};
use lrs_projection::id_filter::KnownIds;
use lrs_xapi::events::{Event, LearnerEntry, OrganisationEntry};

use crate::digest_queue::{self, DigestQueue};
use crate::digests::{self, Digest, DigestChange, DigestChanges};
use crate::fact_chunks::{self, FactChunk, FactCounts, RowId};
use crate::facts::{COMPLETED, FAILED, PASSED, Reading, StatementFacts, read_statement};
use crate::frameworks::{Evidence, EvidenceInput, Frameworks};
use crate::keys::{self, key};
use crate::summaries::{self, Credited, Summaries, Summary};
use crate::summary_chunks::{self, SummaryChunk};
use crate::uptake_cache::{MAX_CACHED_DAYS, PeriodKey, UptakeCache};

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("the hub views failed: {0}")]
    Storage(#[from] sled::Error),
    #[error("the hub views hold a corrupt record: {0}")]
    Corrupt(String),
    #[error("event at offset {offset} cannot be read: {reason}")]
    BadEvent { offset: Offset, reason: String },
    #[error("the xAPI views the hub follows cannot be read: {0}")]
    Decisions(String),
}

fn corrupt(error: impl std::fmt::Display) -> HubError {
    HubError::Corrupt(error.to_string())
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, HubError> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// What one counting statement contributed: what retracting it reads if it
/// is voided. Views that follow the xAPI views keep it under the statement's
/// id only for a statement on no activity; for one on an activity it is made
/// again from the statement those views store and the summary the statement
/// left (see [`HubViews::contribution_from_summary`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Contribution {
    learner: String,
    time: DateTime<Utc>,
    verb: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activity: Option<String>,
    platform: String,
    /// The organisation and staff group credited (the statement's own, else
    /// the learner directory's when it arrived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organisation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    staff_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptStatus {
    Passed,
    Completed,
    Failed,
    InProgress,
}

/// A learner's record of one activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    pub activity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: TranscriptStatus,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_scaled: Option<f64>,
    pub total_duration_ms: u64,
    pub platform: String,
    pub statements: usize,
}

fn transcript_entry(activity: &str, summaries: &[Summary]) -> Option<TranscriptEntry> {
    let first = summaries.iter().map(|s| s.time).min()?;
    let last = summaries.iter().map(|s| s.time).max()?;
    let has = |verb: &str| summaries.iter().any(|s| s.verb == verb);
    let status = if has(PASSED) {
        TranscriptStatus::Passed
    } else if has(COMPLETED) {
        TranscriptStatus::Completed
    } else if has(FAILED) {
        TranscriptStatus::Failed
    } else {
        TranscriptStatus::InProgress
    };
    let best_scaled = summaries.iter().filter_map(|s| s.scaled).reduce(f64::max);
    // Durations are the learner's claims: a huge one must not overflow.
    let total_duration_ms = summaries.iter().filter_map(|s| s.duration_ms).fold(0u64, u64::saturating_add);
    let name = summaries.iter().filter(|s| s.name.is_some()).max_by_key(|s| s.sequence).and_then(|s| s.name.clone());
    let latest = summaries.iter().max_by(|a, b| a.time.cmp(&b.time).then(a.sequence.cmp(&b.sequence)))?;
    Some(TranscriptEntry {
        activity: activity.to_owned(),
        name,
        status,
        first,
        last,
        best_scaled,
        total_duration_ms,
        platform: latest.platform.clone(),
        statements: summaries.len(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EvidenceRecord {
    time: DateTime<Utc>,
    achieves: bool,
    #[serde(default)]
    organisation: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompetencyStatus {
    Achieved,
    InProgress,
    NotStarted,
}

/// A learner's standing on one competency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetencyView {
    pub competency: String,
    pub name: String,
    pub domain: String,
    pub framework: String,
    pub status: CompetencyStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_at: Option<DateTime<Utc>>,
    /// Ids of the statements that achieved it, earliest first.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CompetencyRecord {
    status: CompetencyStatus,
    #[serde(default)]
    achieved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    evidence: Vec<String>,
    /// Organisation credited in coverage (that of the first achievement).
    #[serde(default)]
    coverage_organisation: Option<String>,
}

/// Periods uptake is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Day,
    Week,
    Month,
}

impl Granularity {
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Day, Self::Week, Self::Month].into_iter().find(|g| g.name() == text)
    }

    /// The name [`Granularity::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The period label of a day: `2026-03-01`, ISO week `2026-W09`, `2026-03`.
    pub fn period(self, day: NaiveDate) -> String {
        match self {
            Self::Day => day.format("%Y-%m-%d").to_string(),
            Self::Week => {
                let week = day.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Self::Month => day.format("%Y-%m").to_string(),
        }
    }
}

/// An uptake question.
#[derive(Debug, Clone, PartialEq)]
pub struct UptakeQuery {
    pub organisation: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: Granularity,
    pub activity: Option<String>,
    pub platform: Option<String>,
    pub staff_group: Option<String>,
}

/// Uptake of one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UptakeRow {
    pub period: String,
    /// Distinct learners with any statement.
    pub active_learners: u64,
    /// Distinct (learner, activity) pairs with any statement on the activity.
    pub started: u64,
    /// Distinct (learner, activity) pairs completed or passed.
    pub completed: u64,
    /// Distinct (learner, activity) pairs passed.
    pub passed: u64,
    pub statements: u64,
}

/// Learners who achieved each competency in an organisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub competency: String,
    pub name: String,
    pub domain: String,
    pub framework: String,
    pub learners_achieved: u64,
}

/// The projection.
pub struct HubViews {
    tree: lrs_projection::Tree,
    db: sled::Db,
    frameworks: Frameworks,
    /// The next log offset to apply, for those who read it and those who
    /// wait for it to move.
    applied: tokio::sync::watch::Sender<Offset>,
    /// The xAPI views whose decisions this projection follows (which
    /// statement events were refused or partly repeats); see
    /// [`HubViews::follow_decisions_of`].
    decisions: std::sync::OnceLock<std::sync::Arc<lrs_projection::Views>>,
    /// Uptake rows of periods whose facts have not changed since read.
    uptake_cache: UptakeCache,
    /// What the batch being applied changes for the uptake cache: the days
    /// of the facts it counts or retracts, and whether it changes the
    /// organisation tree.
    touched: std::sync::Mutex<(Vec<NaiveDate>, bool)>,
    /// Uptake digests changed by committed batches and not yet written to
    /// the tree, where each is marked by a `DIGEST_PENDING` key (see
    /// [`HubViews::apply`]).
    unwritten: std::sync::RwLock<HashMap<Vec<u8>, Digest>>,
    /// Held while a batch is applied or the unwritten digests are written:
    /// the unwritten digests' keys, oldest first, which batches write a few
    /// at a time as they fall due.
    writing: std::sync::Mutex<DigestQueue>,
    /// Learner and activity numbers committed (number key → number), so a
    /// statement seldom reads them from the tree; past
    /// [`MAX_KEPT_NUMBERS`] it starts again empty.
    numbers: std::sync::Mutex<HashMap<Vec<u8>, u32>>,
    /// When the unwritten digests are written (with a batch).
    digest_limits: digest_queue::Limits,
    /// The ids of voided statements (`VOIDED` keys), so that a statement
    /// not voided (nearly every one) is known to be so without a read;
    /// started when a process that writes opens the views
    /// ([`HubViews::start_filters`]), or else by the first batch applied
    /// (views that only answer queries never scan them).
    voided: std::sync::Mutex<Option<KnownIds>>,
    /// What the projector applied.
    stats: lrs_projection::ProjectorStats,
    /// Where the events applied come from (decoded, or handed over).
    source: lrs_projection::EventSource,
    /// No write waits for these views, so their projector gathers events
    /// into batches of [`GATHER_EVENTS`] (cheaper per statement than
    /// batches of one) for up to a moment; readers call [`HubViews::hurry`].
    gather: lrs_projection::Gather,
}

/// How long an uptake digest a batch changes may wait to be written to the
/// tree, by default: a busy organisation's digests change in every batch,
/// and are written once in this time rather than each time.
pub const DEFAULT_DIGEST_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Unwritten digests a batch writes for their age, at most: enough for
/// thousands a second, few enough that no batch holds sled's write lock
/// long (see `digest_queue`).
const DIGESTS_WRITTEN_PER_BATCH: usize = 64;
/// Learner and activity numbers kept in memory at most (about 100 bytes
/// each).
const MAX_KEPT_NUMBERS: usize = 250_000;
/// Unwritten digests past which the oldest are written with the next batch,
/// whatever their age (those of a day, its week and month for 600
/// organisations fit; a month's digest of a busy organisation holds tens of
/// kilobytes).
const MAX_UNWRITTEN_DIGESTS: usize = 2_000;

/// log2 of the bits of the filter of voided ids (2 MiB): voids are a few
/// percent of the statements.
const VOIDED_FILTER_BITS_LOG2: u32 = 24;

/// The filter of the voided ids in `tree` (see [`KnownIds::build`]).
fn voided_filter(tree: &lrs_projection::Tree) -> KnownIds {
    let scan = tree.scan_prefix([keys::VOIDED]).filter_map(|entry| match entry {
        // A voided id that is not a UUID has no bits in the filter; no
        // statement id is checked against it there.
        Ok((key, _)) => Some(Ok(keys::parts(&key)?.first().and_then(|id| uuid::Uuid::parse_str(id).ok())?)),
        Err(error) => Some(Err(error)),
    });
    KnownIds::build("voided statement id", VOIDED_FILTER_BITS_LOG2, scan, || {})
}

/// Events the Learning Hub projector gathers before applying, when it may.
pub const GATHER_EVENTS: usize = 64;
/// How long the Learning Hub projector may hold a smaller batch, by default.
pub const DEFAULT_GATHER_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

fn day_key(time: DateTime<Utc>) -> String {
    day_text(time.date_naive())
}

/// A day as the fact rows' keys write it.
fn day_text(day: NaiveDate) -> String {
    day.format("%Y%m%d").to_string()
}

/// The keys of an organisation's fact rows from the day `from` to `to`.
fn fact_range(organisation: &str, from: NaiveDate, to: NaiveDate) -> std::ops::Range<Vec<u8>> {
    let start = key(keys::FACT, &[organisation, &day_text(from)]);
    let mut end = key(keys::FACT, &[organisation, &day_text(to)]);
    // Past every key of that last day, whatever its other parts.
    end.extend_from_slice(&[0xFF; 5]);
    start..end
}

impl HubViews {
    /// Opens the views in `dir`. When `frameworks` differ from those the
    /// views were built with, the views are cleared and rebuilt from the log.
    pub fn open(dir: &Path, store: lrs_projection::StoreOptions, frameworks: Frameworks) -> Result<Self, HubError> {
        Self::from_db(lrs_projection::open_store(dir, store)?, frameworks)
    }

    /// Empty views in memory, gone when dropped (for a process that serves
    /// no reads of its own, such as Kafka ingest).
    pub fn temporary(frameworks: Frameworks) -> Result<Self, HubError> {
        Self::from_db(sled::Config::new().temporary(true).open()?, frameworks)
    }

    fn from_db(db: sled::Db, frameworks: Frameworks) -> Result<Self, HubError> {
        let tree = lrs_projection::Tree::open(&db, "hub")?;
        let built_with = tree.get(keys::META_FRAMEWORKS)?;
        let layout = tree.get(keys::META_LAYOUT)?;
        if built_with.as_deref() != Some(frameworks.digest().as_bytes())
            || layout.as_deref() != Some(&keys::LAYOUT.to_be_bytes()[..])
        {
            tree.clear()?;
            tree.insert(keys::META_FRAMEWORKS, frameworks.digest().as_bytes())?;
            tree.insert(keys::META_LAYOUT, &keys::LAYOUT.to_be_bytes())?;
        }
        let applied = match tree.get(keys::META_OFFSET)? {
            Some(bytes) => u64::from_be_bytes(bytes.as_ref().try_into().map_err(corrupt)?),
            None => 0,
        };
        let views = Self {
            tree,
            db,
            frameworks,
            applied: tokio::sync::watch::Sender::new(applied),
            decisions: std::sync::OnceLock::new(),
            uptake_cache: UptakeCache::default(),
            touched: std::sync::Mutex::new((Vec::new(), false)),
            unwritten: std::sync::RwLock::new(HashMap::new()),
            writing: std::sync::Mutex::new(DigestQueue::default()),
            numbers: std::sync::Mutex::new(HashMap::new()),
            digest_limits: digest_queue::Limits {
                interval: DEFAULT_DIGEST_WRITE_INTERVAL,
                per_batch: DIGESTS_WRITTEN_PER_BATCH,
                max_waiting: MAX_UNWRITTEN_DIGESTS,
            },
            gather: lrs_projection::Gather::new(GATHER_EVENTS, DEFAULT_GATHER_WAIT),
            voided: std::sync::Mutex::new(None),
            stats: lrs_projection::ProjectorStats::default(),
            source: lrs_projection::EventSource::default(),
        };
        views.rebuild_unwritten_digests()?;
        Ok(views)
    }

    /// Rebuilds from the fact rows each digest marked as changed but not
    /// written when the views were last closed (or the process stopped).
    fn rebuild_unwritten_digests(&self) -> Result<(), HubError> {
        let mut batch = PendingBatch::new(&self.tree);
        let mut any = false;
        for entry in self.tree.scan_prefix([keys::DIGEST_PENDING]) {
            let (marker, _) = entry?;
            let digest_key = marker.get(1..).unwrap_or_default().to_vec();
            let Some([organisation, granularity, label]) =
                keys::parts(&digest_key).and_then(|p| <[String; 3]>::try_from(p).ok())
            else {
                return Err(corrupt("a pending digest's key"));
            };
            let granularity =
                Granularity::parse(&granularity).ok_or_else(|| corrupt("a pending digest's granularity"))?;
            let (first, last) =
                digests::label_bounds(granularity, &label).ok_or_else(|| corrupt("a pending digest's period"))?;
            let digest = digest_from_facts(&self.tree, &organisation, first, last)?;
            write_digest(&mut batch, &digest_key, &digest);
            any = true;
        }
        if any {
            lrs_projection::batch::commit(&self.tree, batch)?;
        }
        Ok(())
    }

    /// How long an uptake digest a batch changes may wait to be written to
    /// the tree (zero: it is written with that batch).
    pub fn set_digest_write_interval(&mut self, interval: std::time::Duration) {
        self.digest_limits.interval = interval;
    }

    /// Writes every unwritten digest to the tree now.
    fn write_unwritten_digests(&self) -> Result<(), HubError> {
        let mut queue = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut unwritten = self.unwritten.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !unwritten.is_empty() {
            let mut batch = PendingBatch::new(&self.tree);
            for (digest_key, digest) in unwritten.iter() {
                write_digest(&mut batch, digest_key, digest);
            }
            lrs_projection::batch::commit(&self.tree, batch)?;
            unwritten.clear();
        }
        queue.clear();
        Ok(())
    }

    /// How long the projector may hold a batch of fewer than
    /// [`GATHER_EVENTS`] events to gather more (zero: never). Takes effect
    /// when the projector starts.
    pub fn set_gather_wait(&mut self, wait: std::time::Duration) {
        self.gather = lrs_projection::Gather::new(GATHER_EVENTS, wait);
    }

    /// Asks the projector to apply what it holds at once: a reader is
    /// waiting for these views to show the latest writes.
    pub fn hurry(&self) {
        self.gather.hurry();
    }

    /// Makes this projection follow the xAPI views' decisions: a statement
    /// event they refused (a conflict between ingest replicas) counts
    /// nowhere, and repeated statements count once. The projector then
    /// never runs ahead of those views. A void then reads the statement it
    /// voids from them, so views that follow once must always follow (as
    /// every process that keeps them does): a statement on an activity
    /// keeps no contribution record.
    pub fn follow_decisions_of(&self, views: std::sync::Arc<lrs_projection::Views>) {
        let _ = self.decisions.set(views);
    }

    pub fn frameworks(&self) -> &Frameworks {
        &self.frameworks
    }

    /// A digest of every key and value: two hub views with the same digest
    /// hold the same state.
    pub fn state_digest(&self) -> Result<String, HubError> {
        self.write_unwritten_digests()?;
        Ok(lrs_projection::batch::tree_digest(&self.tree)?)
    }

    /// Uptake digests changed by committed batches and not yet written to
    /// the tree (see [`HubViews::apply`]).
    pub fn unwritten_digests(&self) -> usize {
        self.unwritten.read().map_or(0, |unwritten| unwritten.len())
    }

    /// What the projector applied to these views since they opened.
    pub fn projector_stats(&self) -> &lrs_projection::ProjectorStats {
        &self.stats
    }

    /// Where the events the views apply come from: call
    /// [`lrs_projection::EventSource::attach`] to take them from a
    /// handoff.
    pub fn event_source(&self) -> &lrs_projection::EventSource {
        &self.source
    }

    pub fn applied_offset(&self) -> Offset {
        *self.applied.borrow()
    }

    /// Sees [`HubViews::applied_offset`] move.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Offset> {
        self.applied.subscribe()
    }

    pub fn flush(&self) -> Result<(), HubError> {
        self.write_unwritten_digests()?;
        self.db.flush()?;
        Ok(())
    }

    /// Applies consecutive records atomically with the new offset.
    ///
    /// The uptake digests the batch changes are kept in memory once it
    /// commits, and marked in the tree (in the same batch) as changed. Each
    /// batch writes those that are due, dropping their marks: the oldest,
    /// once they have waited [`DEFAULT_DIGEST_WRITE_INTERVAL`] (a few with
    /// each batch), or past [`MAX_UNWRITTEN_DIGESTS`] waiting. Views opened
    /// with marks left rebuild those digests from the fact rows, which are
    /// written with every batch.
    pub fn apply(&self, records: &[LogRecord]) -> Result<(), HubError> {
        let mut queue = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        let write_changed = self.digest_limits.interval.is_zero();
        let due = queue.due(now, self.digest_limits);
        let due_keys: HashSet<Vec<u8>> = queue.oldest(due).map(<[u8]>::to_vec).collect();
        let changes = std::cell::RefCell::new(DigestChanges::default());
        // The ids of the statements this batch counts.
        let counted = std::cell::RefCell::new(HashSet::new());
        let committed = std::cell::RefCell::new((HashMap::new(), Vec::new()));
        self.voided_ids().get_or_insert_with(|| voided_filter(&self.tree)).poll_built();
        let applied = apply_records_then(
            &self.tree,
            self.applied_offset(),
            records,
            &self.source,
            |offset, reason| HubError::BadEvent { offset, reason },
            |batch, offset, event| {
                self.apply_event(batch, &mut changes.borrow_mut(), &mut counted.borrow_mut(), offset, event)
            },
            |batch, next| {
                let (changed, numbers) = changes.take().into_parts();
                let unwritten = self.unwritten.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                for digest_key in due_keys.iter().filter(|k| !changed.contains_key(*k)) {
                    if let Some(digest) = unwritten.get(digest_key) {
                        write_digest(batch, digest_key, digest);
                    }
                }
                for (digest_key, change) in &changed {
                    if write_changed || due_keys.contains(digest_key) {
                        write_digest(batch, digest_key, &change.whole(unwritten.get(digest_key)));
                    } else if !unwritten.contains_key(digest_key) {
                        batch.put(pending_key(digest_key), Vec::new());
                    }
                }
                *committed.borrow_mut() = (changed, numbers);
                batch.put(keys::META_OFFSET.to_vec(), next.to_be_bytes().to_vec());
                Ok(())
            },
        );
        if let Ok(Some(_)) = applied {
            let (changed, numbers) = committed.take();
            let mut unwritten = self.unwritten.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for digest_key in &due_keys {
                unwritten.remove(digest_key);
            }
            queue.written(due);
            for (digest_key, change) in changed {
                if write_changed || due_keys.contains(&digest_key) {
                    continue;
                }
                match (change, unwritten.get_mut(&digest_key)) {
                    (DigestChange::Added(added), Some(held)) => held.absorb(&added),
                    (change, held) => {
                        // Only a digest held when the batch counted in it
                        // is added to, and none leaves while a batch applies.
                        debug_assert!(matches!(change, DigestChange::Whole(_)) || held.is_some());
                        let digest = change.into_whole(held.as_deref());
                        if unwritten.insert(digest_key.clone(), digest).is_none() {
                            queue.push(now, digest_key);
                        }
                    }
                }
            }
            drop(unwritten);
            let mut kept = self.numbers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if kept.len() + numbers.len() > MAX_KEPT_NUMBERS {
                kept.clear();
            }
            kept.extend(numbers);
        }
        // Committed or not (a failed batch is retried), the days it touched
        // are marked: a kept uptake row of theirs is never used again.
        if let Ok(mut touched) = self.touched.lock()
            && (!touched.0.is_empty() || touched.1)
        {
            let (days, tree) = std::mem::take(&mut *touched);
            self.uptake_cache.changed(days, tree);
        }
        if let Some(next) = applied? {
            self.applied.send_replace(next);
        }
        Ok(())
    }

    fn apply_event(
        &self,
        batch: &mut PendingBatch<'_>,
        changes: &mut DigestChanges,
        counted: &mut HashSet<String>,
        offset: Offset,
        event: &Event,
    ) -> Result<(), HubError> {
        match event {
            Event::StatementsStored { statements, .. } => {
                let outcome = match self.decisions.get() {
                    Some(views) => views.outcome(offset).map_err(|e| HubError::BadEvent {
                        offset,
                        reason: format!("the xAPI views cannot tell its outcome: {e}"),
                    })?,
                    None => lrs_projection::Outcome::applied(),
                };
                if outcome.status != 200 {
                    return Ok(());
                }
                for (index, statement) in statements.iter().enumerate() {
                    if !outcome.repeats.contains(&index) {
                        let sequence = (u128::from(offset) << 20) | index as u128;
                        self.apply_statement(batch, changes, counted, sequence, statement)?;
                    }
                }
            }
            Event::LearnersImported { learners } => {
                for learner in learners {
                    batch.put(key(keys::LEARNER, &[&learner.learner]), to_json(&learner));
                }
            }
            Event::OrganisationsImported { organisations } => {
                self.touch(None, true);
                for organisation in organisations {
                    let code_key = key(keys::ORGANISATION, &[&organisation.code]);
                    if let Some(bytes) = batch.get(&code_key)? {
                        let old: OrganisationEntry = from_json(&bytes)?;
                        if let Some(parent) = old.parent {
                            batch.delete(key(keys::CHILD, &[&parent, &organisation.code]));
                        }
                    }
                    if let Some(parent) = &organisation.parent {
                        batch.put(key(keys::CHILD, &[parent, &organisation.code]), Vec::new());
                    }
                    batch.put(code_key, to_json(&organisation));
                }
            }
            Event::DocumentSet { .. }
            | Event::DocumentDeleted { .. }
            | Event::StateCleared { .. }
            | Event::DocumentRequested { .. } => {}
        }
        Ok(())
    }

    fn apply_statement(
        &self,
        batch: &mut PendingBatch<'_>,
        changes: &mut DigestChanges,
        counted: &mut HashSet<String>,
        sequence: u128,
        statement: &Value,
    ) -> Result<(), HubError> {
        match read_statement(statement) {
            Reading::Ignored => Ok(()),
            Reading::Voids(target) => {
                batch.put(key(keys::VOIDED, &[&target]), Vec::new());
                if let (Ok(id), Some(voided)) = (uuid::Uuid::parse_str(&target), self.voided_ids().as_mut()) {
                    voided.insert(id);
                }
                let contribution_key = key(keys::CONTRIBUTION, &[&target]);
                if let Some(bytes) = batch.get(&contribution_key)? {
                    let contribution: Contribution = from_json(&bytes)?;
                    self.retract(batch, changes, &target, &contribution)?;
                    batch.delete(contribution_key);
                } else if let Some((id, contribution)) = self.contribution_from_summary(batch, &target)? {
                    self.retract(batch, changes, &id, &contribution)?;
                }
                Ok(())
            }
            Reading::Counts(facts) => {
                let maybe_voided = match (uuid::Uuid::parse_str(&facts.id), self.voided_ids().as_ref()) {
                    (Ok(id), Some(voided)) => voided.may_contain(id),
                    _ => true,
                };
                if maybe_voided && batch.contains(&key(keys::VOIDED, &[&facts.id]))? {
                    return Ok(());
                }
                // Following the xAPI views' decisions, a statement they did
                // not take as a repeat was never counted here by an earlier
                // event, only perhaps by this batch.
                let following = self.decisions.get().is_some();
                let repeat = if following {
                    counted.contains(&facts.id)
                } else {
                    batch.contains(&key(keys::CONTRIBUTION, &[&facts.id]))?
                };
                if repeat {
                    return Ok(());
                }
                counted.insert(facts.id.clone());
                // The directory is read only for what the statement does not
                // name itself.
                let named = facts.organisation.is_some() && facts.staff_group.is_some();
                let directory: Option<LearnerEntry> = if named {
                    None
                } else {
                    batch.get(&key(keys::LEARNER, &[&facts.learner]))?.map(|bytes| from_json(&bytes)).transpose()?
                };
                let organisation =
                    facts.organisation.clone().or_else(|| directory.as_ref().map(|d| d.organisation.clone()));
                let staff_group =
                    facts.staff_group.clone().or_else(|| directory.as_ref().and_then(|d| d.staff_group.clone()));
                let credited = (organisation != facts.organisation || staff_group != facts.staff_group)
                    .then(|| Credited { organisation: organisation.clone(), staff_group: staff_group.clone() });
                let contribution = self.contribution(&facts, organisation, staff_group);
                let StatementFacts { id, time, verb, scaled, duration_ms, platform, activity_name, .. } = *facts;
                let summary =
                    Summary { time, sequence, verb, scaled, duration_ms, platform, name: activity_name, credited };
                self.contribute(batch, changes, &id, &contribution, summary)?;
                // A statement on an activity leaves a summary, from which
                // (with the statement the xAPI views keep) a void retracts it.
                if !following || contribution.activity.is_none() {
                    batch.put(key(keys::CONTRIBUTION, &[&id]), to_json(&contribution));
                }
                Ok(())
            }
        }
    }

    /// What a statement contributes, crediting `organisation` and
    /// `staff_group`.
    fn contribution(
        &self,
        facts: &StatementFacts,
        organisation: Option<String>,
        staff_group: Option<String>,
    ) -> Contribution {
        let evidence = self.frameworks.evidence(&EvidenceInput {
            verb: &facts.verb,
            activity_id: facts.activity.as_deref(),
            activity_type: facts.activity_type.as_deref(),
            scaled: facts.scaled,
            context_activity_ids: &facts.context_activities,
        });
        Contribution {
            learner: facts.learner.clone(),
            time: facts.time,
            verb: facts.verb.clone(),
            activity: facts.activity.clone(),
            platform: facts.platform.clone(),
            organisation,
            staff_group,
            evidence,
        }
    }

    /// Following the xAPI views, what the statement `target` contributed,
    /// if it was counted and is on an activity (its id as counted, and the
    /// contribution): made from the statement those views store and the
    /// summary it left, whose presence says it is counted (it is removed
    /// when the statement is voided) and which keeps what the directory
    /// credited. Evidence is the same again: frameworks that change rebuild
    /// the views.
    fn contribution_from_summary(
        &self,
        batch: &PendingBatch<'_>,
        target: &str,
    ) -> Result<Option<(String, Contribution)>, HubError> {
        let (Some(views), Ok(target)) = (self.decisions.get(), uuid::Uuid::parse_str(target)) else {
            return Ok(None);
        };
        let Some(record) = views.statement(target).map_err(|e| HubError::Decisions(e.to_string()))? else {
            return Ok(None);
        };
        let Reading::Counts(facts) = read_statement(&record.statement) else {
            return Ok(None);
        };
        let Some(activity) = facts.activity.as_deref() else {
            return Ok(None);
        };
        let Some(numbers) = self.known_numbers(batch, &facts.learner, activity)? else {
            return Ok(None);
        };
        let (_, chunk) = summary_chunk(batch, numbers)?;
        let Some(bytes) = chunk.get(numbers.1) else {
            return Ok(None);
        };
        let mut summaries = summaries::decode(bytes).map_err(HubError::Corrupt)?;
        let Some(summary) = summaries.remove(&facts.id) else {
            return Ok(None);
        };
        let (organisation, staff_group) = match summary.credited {
            Some(credited) => (credited.organisation, credited.staff_group),
            None => (facts.organisation.clone(), facts.staff_group.clone()),
        };
        let mut contribution = self.contribution(&facts, organisation, staff_group);
        // The time counted: the xAPI views may have moved a statement's
        // `stored` on (to keep it increasing), and that is its time when it
        // has no `timestamp`.
        contribution.time = summary.time;
        Ok(Some((facts.id, contribution)))
    }

    /// Starts building the filter of voided ids from the tree, as the first
    /// batch applied otherwise does: a process that will write calls it
    /// when it opens the views, so that its first writes do not share the
    /// CPU with the scan (and views that only answer queries never scan).
    pub fn start_filters(&self) {
        self.voided_ids().get_or_insert_with(|| voided_filter(&self.tree));
    }

    /// Whether the filter of voided ids was started (see
    /// [`HubViews::start_filters`]).
    pub fn filters_started(&self) -> bool {
        self.voided_ids().is_some()
    }

    /// The filter of voided ids (see `voided`).
    fn voided_ids(&self) -> std::sync::MutexGuard<'_, Option<KnownIds>> {
        // Ids are only ever added, so it is whole even after a panic.
        self.voided.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The numbers of `learner` and `activity` (see [`number`]), numbering
    /// either that has none.
    fn numbers_of(
        &self,
        batch: &mut PendingBatch<'_>,
        changes: &mut DigestChanges,
        learner: &str,
        activity: &str,
    ) -> Result<(u32, u32), HubError> {
        let numbers = self.numbers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok((
            number(batch, &numbers, &mut changes.numbers, LEARNERS, learner)?,
            number(batch, &numbers, &mut changes.numbers, ACTIVITIES, activity)?,
        ))
    }

    /// The numbers of `learner` and `activity`, if both have one.
    fn known_numbers(
        &self,
        batch: &PendingBatch<'_>,
        learner: &str,
        activity: &str,
    ) -> Result<Option<(u32, u32)>, HubError> {
        let numbers = self.numbers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = |tag: u8, text: &str| -> Result<Option<u32>, HubError> {
            let number_key = key(tag, &[text]);
            match numbers.get(&number_key) {
                Some(number) => Ok(Some(*number)),
                None => batch.get(&number_key)?.map(|bytes| read_number(&bytes)).transpose(),
            }
        };
        Ok(known(keys::LEARNER_NUMBER, learner)?.zip(known(keys::ACTIVITY_NUMBER, activity)?))
    }

    /// Adds the statement `id` to the views: `summary` to its learner's
    /// transcript, its evidence, its uptake.
    fn contribute(
        &self,
        batch: &mut PendingBatch<'_>,
        changes: &mut DigestChanges,
        id: &str,
        c: &Contribution,
        summary: Summary,
    ) -> Result<(), HubError> {
        if let Some(activity) = &c.activity {
            let numbers = self.numbers_of(batch, changes, &c.learner, activity)?;
            update_summaries(batch, numbers, |summaries| {
                summaries.insert(id.to_owned(), summary);
            })?;
        }
        for evidence in &c.evidence {
            let record =
                EvidenceRecord { time: c.time, achieves: evidence.achieves, organisation: c.organisation.clone() };
            batch.put(key(keys::EVIDENCE, &[&c.learner, &evidence.competency, id]), to_json(&record));
            refresh_competency(batch, &c.learner, &evidence.competency)?;
        }
        self.count(batch, changes, c, 1)
    }

    /// Takes the voided statement `id` out of everything it contributed to.
    fn retract(
        &self,
        batch: &mut PendingBatch<'_>,
        changes: &mut DigestChanges,
        id: &str,
        c: &Contribution,
    ) -> Result<(), HubError> {
        if let Some(activity) = &c.activity {
            let numbers = self.numbers_of(batch, changes, &c.learner, activity)?;
            update_summaries(batch, numbers, |summaries| {
                summaries.remove(id);
            })?;
        }
        for evidence in &c.evidence {
            batch.delete(key(keys::EVIDENCE, &[&c.learner, &evidence.competency, id]));
            refresh_competency(batch, &c.learner, &evidence.competency)?;
        }
        self.count(batch, changes, c, -1)
    }

    /// Notes what the batch being applied changes for the uptake cache.
    fn touch(&self, day: Option<NaiveDate>, tree: bool) {
        if let Ok(mut touched) = self.touched.lock() {
            // A batch's statements mostly share their day: note it once.
            if let Some(day) = day
                && touched.0.last() != Some(&day)
            {
                touched.0.push(day);
            }
            touched.1 |= tree;
        }
    }

    /// Adds (`sign` 1) or removes (`sign` -1) a statement from uptake: its
    /// fact row and the digests of its day, week and month.
    fn count(
        &self,
        batch: &mut PendingBatch<'_>,
        changes: &mut DigestChanges,
        c: &Contribution,
        sign: i64,
    ) -> Result<(), HubError> {
        let Some(organisation) = &c.organisation else {
            return Ok(());
        };
        self.touch(Some(c.time.date_naive()), false);
        let unwritten = self.unwritten.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let numbers = self.numbers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let learner = number(batch, &numbers, &mut changes.numbers, LEARNERS, &c.learner)?;
        // A statement on no activity has no pair.
        let activity = match c.activity.as_deref().filter(|a| !a.is_empty()) {
            Some(activity) => Some(number(batch, &numbers, &mut changes.numbers, ACTIVITIES, activity)?),
            None => None,
        };
        let row = RowId {
            learner,
            activity,
            platform: c.platform.clone(),
            staff_group: c.staff_group.clone().unwrap_or_default(),
        };
        change_fact_row(batch, organisation, &day_key(c.time), row, |counts| {
            let step = |value: &mut u64, applies: bool| {
                if applies {
                    *value = value.saturating_add_signed(sign);
                }
            };
            step(&mut counts.statements, true);
            step(&mut counts.completed, c.verb == COMPLETED || c.verb == PASSED);
            step(&mut counts.passed, c.verb == PASSED);
        })?;
        count_in_digests(batch, changes, &unwritten, organisation, c, (learner, activity), sign)
    }

    // ----- queries -----

    /// The learner's directory entry, if any.
    pub fn learner(&self, learner: &str) -> Result<Option<LearnerEntry>, HubError> {
        match self.tree.get(key(keys::LEARNER, &[learner]))? {
            Some(bytes) => Ok(Some(from_json(&bytes)?)),
            None => Ok(None),
        }
    }

    pub fn organisation(&self, code: &str) -> Result<Option<OrganisationEntry>, HubError> {
        match self.tree.get(key(keys::ORGANISATION, &[code]))? {
            Some(bytes) => Ok(Some(from_json(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The organisation and every organisation below it.
    pub fn organisation_and_descendants(&self, code: &str) -> Result<Vec<String>, HubError> {
        let mut out = vec![code.to_owned()];
        let mut seen: HashSet<String> = out.iter().cloned().collect();
        let mut index = 0;
        while index < out.len() {
            let prefix = key(keys::CHILD, &[&out[index]]);
            for entry in self.tree.scan_prefix(&prefix) {
                let (child_key, _) = entry?;
                let parts = keys::parts(&child_key).ok_or_else(|| corrupt("child key"))?;
                if let Some(child) = parts.get(1)
                    && seen.insert(child.clone())
                {
                    out.push(child.clone());
                }
            }
            index += 1;
        }
        Ok(out)
    }

    /// Whether `code` is one of `granted` or below one of them.
    pub fn is_within(&self, code: &str, granted: &[String]) -> Result<bool, HubError> {
        let mut current = Some(code.to_owned());
        let mut steps = 0;
        while let Some(code) = current {
            if granted.contains(&code) {
                return Ok(true);
            }
            steps += 1;
            if steps > 64 {
                return Ok(false);
            }
            current = self.organisation(&code)?.and_then(|o| o.parent);
        }
        Ok(false)
    }

    /// The learner's transcript, most recent activity first: an entry per
    /// activity, made from the summaries of the learner's statements on it.
    pub fn transcript(&self, learner: &str) -> Result<Vec<TranscriptEntry>, HubError> {
        let mut entries: Vec<TranscriptEntry> = Vec::new();
        // A learner with no number has no summary.
        let Some(learner) = self.tree.get(key(keys::LEARNER_NUMBER, &[learner]))? else {
            return Ok(entries);
        };
        for entry in self.tree.scan_prefix(summary_chunks::learner_prefix(read_number(&learner)?)) {
            let (_, chunk) = entry?;
            for (activity, bytes) in SummaryChunk::decode(&chunk).map_err(HubError::Corrupt)?.activities() {
                let activity = self.tree.get(activity_of_number_key(*activity))?;
                let activity = activity.ok_or_else(|| corrupt("a summary of an activity with no number"))?;
                let activity = std::str::from_utf8(&activity).map_err(corrupt)?;
                let summaries = summaries::decode(bytes).map_err(HubError::Corrupt)?;
                let summaries: Vec<Summary> = summaries.into_values().collect();
                entries.extend(transcript_entry(activity, &summaries));
            }
        }
        entries.sort_by(|a, b| b.last.cmp(&a.last).then(a.activity.cmp(&b.activity)));
        Ok(entries)
    }

    /// The learner's standing on every competency of every framework.
    pub fn competencies(&self, learner: &str) -> Result<Vec<CompetencyView>, HubError> {
        let Some(file) = self.frameworks.file() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for framework in &file.frameworks {
            for competency in &framework.competencies {
                let record: Option<CompetencyRecord> =
                    match self.tree.get(key(keys::COMPETENCY, &[learner, &competency.id]))? {
                        Some(bytes) => Some(from_json(&bytes)?),
                        None => None,
                    };
                out.push(CompetencyView {
                    competency: competency.id.clone(),
                    name: competency.name.clone(),
                    domain: competency.domain.clone(),
                    framework: framework.id.clone(),
                    status: record.as_ref().map_or(CompetencyStatus::NotStarted, |r| r.status),
                    achieved_at: record.as_ref().and_then(|r| r.achieved_at),
                    evidence: record.map(|r| r.evidence).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Learners who achieved each competency in the organisation (and those
    /// below it).
    pub fn coverage(&self, organisation: &str) -> Result<Vec<Coverage>, HubError> {
        let Some(file) = self.frameworks.file() else {
            return Ok(Vec::new());
        };
        let organisations = self.organisation_and_descendants(organisation)?;
        let mut out = Vec::new();
        for framework in &file.frameworks {
            for competency in &framework.competencies {
                let mut learners: HashSet<String> = HashSet::new();
                for code in &organisations {
                    for entry in self.tree.scan_prefix(key(keys::COVERAGE, &[code, &competency.id])) {
                        let (coverage_key, _) = entry?;
                        if let Some(learner) = keys::parts(&coverage_key).and_then(|p| p.get(2).cloned()) {
                            learners.insert(learner);
                        }
                    }
                }
                out.push(Coverage {
                    competency: competency.id.clone(),
                    name: competency.name.clone(),
                    domain: competency.domain.clone(),
                    framework: framework.id.clone(),
                    learners_achieved: learners.len() as u64,
                });
            }
        }
        Ok(out)
    }

    /// Uptake per period for an organisation and those below it, in period
    /// order; periods without facts are left out.
    ///
    /// The row of a period whose days have not changed since it was last
    /// asked for is taken from the uptake cache (see `uptake_cache`); the
    /// others are read from the store, in one pass over the days from the
    /// first to the last of them.
    pub fn uptake(&self, query: &UptakeQuery) -> Result<Vec<UptakeRow>, HubError> {
        if (query.to - query.from).num_days() > MAX_CACHED_DAYS {
            return Ok(self.read_uptake(query, query.from, query.to, &|_| true)?.into_values().collect());
        }
        // The periods of the range, their days cut to it.
        let periods = digests::periods(query.granularity, query.from, query.to);
        let version = self.uptake_cache.version();
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        for (label, first, last) in periods {
            let period_key = PeriodKey::new(query, first, last);
            match self.uptake_cache.get(&period_key) {
                Some(row) => rows.extend(row),
                None => missing.push((label, first, last, period_key)),
            }
        }
        if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
            let wanted: HashSet<&str> = missing.iter().map(|(label, ..)| label.as_str()).collect();
            let mut read = self.read_uptake(query, first.1, last.2, &|label| wanted.contains(label))?;
            for (label, _, _, period_key) in missing {
                let row = read.remove(&label);
                self.uptake_cache.put(period_key, version, row.clone());
                rows.extend(row);
            }
        }
        rows.sort_by(|a, b| a.period.cmp(&b.period));
        Ok(rows)
    }

    /// Drops every kept uptake row, so the next questions are read from the
    /// store (to measure that path; the rows are right without it).
    pub fn forget_kept_uptake(&self) {
        self.uptake_cache.changed([], true);
    }

    /// Uptake of the periods `wanted` (by label) from the days `from` to
    /// `to`, read from the store: from the digests when the question has no
    /// filter, else from the fact rows.
    fn read_uptake(
        &self,
        query: &UptakeQuery,
        from: NaiveDate,
        to: NaiveDate,
        wanted_period: &dyn Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, UptakeRow>, HubError> {
        if query.activity.is_none() && query.platform.is_none() && query.staff_group.is_none() {
            self.digest_uptake(query, from, to, wanted_period)
        } else {
            self.scan_uptake(query, from, to, wanted_period)
        }
    }

    /// Uptake of the periods `wanted` (by label) from the days `from` to
    /// `to`, from the digests: for each organisation, the digest of each
    /// whole period, or of each day of a period the range cuts; their union
    /// is the row. A period no digest counts a statement in is left out.
    fn digest_uptake(
        &self,
        query: &UptakeQuery,
        from: NaiveDate,
        to: NaiveDate,
        wanted_period: &dyn Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, UptakeRow>, HubError> {
        let organisations = self.organisation_and_descendants(&query.organisation)?;
        let mut out = BTreeMap::new();
        for (label, first, last) in digests::periods(query.granularity, from, to) {
            if !wanted_period(&label) {
                continue;
            }
            let mut parts: Vec<(Granularity, String)> = Vec::new();
            if digests::bounds(query.granularity, first) == (first, last) {
                parts.push((query.granularity, label.clone()));
            } else {
                for day in first.iter_days().take_while(|d| *d <= last) {
                    parts.push((Granularity::Day, Granularity::Day.period(day)));
                }
            }
            let mut stored: Vec<Vec<Vec<u8>>> = Vec::with_capacity(organisations.len());
            for organisation in &organisations {
                let mut found = Vec::new();
                for (granularity, part) in &parts {
                    let part_key = digest_key(organisation, *granularity, part);
                    // Unwritten first: a digest leaves them only once
                    // written; one that counts nothing now has no row.
                    let unwritten = self
                        .unwritten
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&part_key)
                        .map(|digest| (digest.statements > 0).then(|| digest.encode()));
                    match unwritten {
                        Some(bytes) => found.extend(bytes),
                        None => found.extend(self.tree.get(&part_key)?.map(|bytes| bytes.to_vec())),
                    }
                }
                stored.push(found);
            }
            if let Some(row) = digests::period_row(label.clone(), &stored) {
                out.insert(label, row.map_err(HubError::Corrupt)?);
            }
        }
        Ok(out)
    }

    /// Uptake of the periods `wanted` (by label) from the days `from` to
    /// `to`, from the fact rows (for a question with a filter).
    ///
    /// One pass over the fact rows of each organisation in the range. A
    /// row's key is read in place (its learner and activity are numbers,
    /// which the distinct sets hold), and a day's period is worked out once
    /// per day, not once per row.
    fn scan_uptake(
        &self,
        query: &UptakeQuery,
        from: NaiveDate,
        to: NaiveDate,
        wanted_period: &dyn Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, UptakeRow>, HubError> {
        #[derive(Default)]
        struct Period {
            learners: HashSet<u32>,
            started: HashSet<(u32, u32)>,
            completed: HashSet<(u32, u32)>,
            passed: HashSet<(u32, u32)>,
            statements: u64,
        }
        // Each period's label, in order, and its place in `periods`.
        let mut labels: BTreeMap<String, usize> = BTreeMap::new();
        let mut periods: Vec<Period> = Vec::new();
        // Fact rows name the activity by its number: one with none is in no
        // row.
        let activity_filter = match &query.activity {
            Some(activity) => match self.tree.get(key(keys::ACTIVITY_NUMBER, &[activity]))? {
                Some(number) => Some(read_number(&number)?),
                None => return Ok(BTreeMap::new()),
            },
            None => None,
        };
        // The day of the chunk before, its period's label (`None`: not
        // wanted) and the period's place in `periods`, once a row of the
        // period counts (a period no row counts in has no row): chunks come
        // in day order within each organisation.
        let mut current: Option<(Vec<u8>, Option<String>, Option<usize>)> = None;
        let wanted = |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        for organisation in self.organisation_and_descendants(&query.organisation)? {
            for entry in self.tree.range(fact_range(&organisation, from, to)) {
                let (chunk_key, value) = entry?;
                let day = fact_chunks::day_of(&chunk_key).ok_or_else(|| corrupt("fact key parts"))?;
                if current.as_ref().is_none_or(|(previous, ..)| previous.as_slice() != day) {
                    let date = std::str::from_utf8(day)
                        .ok()
                        .and_then(|text| NaiveDate::parse_from_str(text, "%Y%m%d").ok())
                        .ok_or_else(|| corrupt("fact day"))?;
                    let label = query.granularity.period(date);
                    let index = labels.get(&label).copied();
                    current = Some((day.to_vec(), (index.is_some() || wanted_period(&label)).then_some(label), index));
                }
                let Some((_, Some(label), index)) = &mut current else { continue };
                for (row, counts) in FactChunk::decode(&value).map_err(corrupt)?.rows() {
                    if activity_filter.is_some_and(|wanted| row.activity != Some(wanted))
                        || !wanted(&query.platform, &row.platform)
                        || !wanted(&query.staff_group, &row.staff_group)
                    {
                        continue;
                    }
                    let at = *index.get_or_insert_with(|| {
                        periods.push(Period::default());
                        labels.insert(label.clone(), periods.len() - 1);
                        periods.len() - 1
                    });
                    let period = &mut periods[at];
                    period.learners.insert(row.learner);
                    period.statements += counts.statements;
                    if let Some(activity) = row.activity {
                        let pair = (row.learner, activity);
                        if counts.completed > 0 {
                            period.completed.insert(pair);
                        }
                        if counts.passed > 0 {
                            period.passed.insert(pair);
                        }
                        period.started.insert(pair);
                    }
                }
            }
        }
        Ok(labels
            .into_iter()
            .map(|(period, index)| {
                let p = &periods[index];
                let row = UptakeRow {
                    period: period.clone(),
                    active_learners: p.learners.len() as u64,
                    started: p.started.len() as u64,
                    completed: p.completed.len() as u64,
                    passed: p.passed.len() as u64,
                    statements: p.statements,
                };
                (period, row)
            })
            .collect())
    }
}

/// The granularities uptake digests are kept in.
const DIGEST_GRANULARITIES: [Granularity; 3] = [Granularity::Day, Granularity::Week, Granularity::Month];

fn digest_key(organisation: &str, granularity: Granularity, label: &str) -> Vec<u8> {
    key(keys::DIGEST, &[organisation, granularity.name(), label])
}

/// The number of `text` in the table `tag` (learners or activities),
/// numbering it next (by the counter under `counter`) if it has none: from
/// the numbers `kept` in memory, else the batch. A number read from the
/// batch or given is added to `learned`.
fn number(
    batch: &mut PendingBatch<'_>,
    kept: &HashMap<Vec<u8>, u32>,
    learned: &mut Vec<(Vec<u8>, u32)>,
    (tag, counter): (u8, &[u8]),
    text: &str,
) -> Result<u32, HubError> {
    let number_key = key(tag, &[text]);
    if let Some(number) = kept.get(&number_key) {
        return Ok(*number);
    }
    let number = match batch.get(&number_key)? {
        Some(bytes) => read_number(&bytes)?,
        None => {
            let next = match batch.get(counter)? {
                Some(bytes) => read_number(&bytes)?,
                None => 0,
            };
            let after = next.checked_add(1).ok_or_else(|| corrupt("more than 2^32 learners or activities"))?;
            batch.put(counter.to_vec(), after.to_be_bytes().to_vec());
            batch.put(number_key.clone(), next.to_be_bytes().to_vec());
            if tag == keys::ACTIVITY_NUMBER {
                batch.put(activity_of_number_key(next), text.as_bytes().to_vec());
            }
            next
        }
    };
    learned.push((number_key, number));
    Ok(number)
}

/// A number as stored (four bytes, big-endian).
fn read_number(bytes: &[u8]) -> Result<u32, HubError> {
    Ok(u32::from_be_bytes(bytes.try_into().map_err(|_| corrupt("a number of a learner or activity"))?))
}

/// Where the activity numbered `number` is named.
fn activity_of_number_key(number: u32) -> Vec<u8> {
    let mut out = vec![keys::ACTIVITY_OF_NUMBER];
    out.extend_from_slice(&number.to_be_bytes());
    out
}

const LEARNERS: (u8, &[u8]) = (keys::LEARNER_NUMBER, keys::META_LEARNER_NUMBERS);
const ACTIVITIES: (u8, &[u8]) = (keys::ACTIVITY_NUMBER, keys::META_ACTIVITY_NUMBERS);

/// What a learner's fact rows in an organisation still put in a digest:
/// the learner, and how far the pair went (`None`: no row of the pair).
#[derive(Clone, Copy, Default)]
struct Remaining {
    learner: bool,
    level: Option<u8>,
}

/// How far the statements of a fact row took its pair.
fn fact_level(counts: &FactCounts) -> u8 {
    if counts.passed > 0 {
        digests::PASSED
    } else if counts.completed > 0 {
        digests::COMPLETED
    } else {
        digests::STARTED
    }
}

/// Counts a statement's contribution (`sign` 1) in the digests of its
/// organisation, day, week and month, or takes it out (`sign` -1), after
/// its fact row has been changed. A retracted learner or pair leaves a
/// digest only if none of the learner's remaining fact rows in the
/// organisation and period puts it there.
fn count_in_digests(
    batch: &mut PendingBatch<'_>,
    changes: &mut DigestChanges,
    unwritten: &HashMap<Vec<u8>, Digest>,
    organisation: &str,
    c: &Contribution,
    (learner, activity): (u32, Option<u32>),
    sign: i64,
) -> Result<(), HubError> {
    let day = c.time.date_naive();
    let pair = activity.map(|a| digests::pair(learner, a));
    let level = match c.verb.as_str() {
        PASSED => digests::PASSED,
        COMPLETED => digests::COMPLETED,
        _ => digests::STARTED,
    };
    // For a retraction: what remains, day by day, read once per day.
    let mut remaining_by_day: BTreeMap<NaiveDate, Remaining> = BTreeMap::new();
    for granularity in DIGEST_GRANULARITIES {
        let label = granularity.period(day);
        if sign > 0 {
            let counted = (1, learner, pair.map(|pair| (pair, level)));
            changes.add(
                digest_key(organisation, granularity, &label),
                unwritten,
                |k| load_digest(batch, k),
                counted,
            )?;
            continue;
        }
        let digest =
            changes.whole(digest_key(organisation, granularity, &label), unwritten, |k| load_digest(batch, k))?;
        // The digest holds the highest level the pair's rows reached in the
        // period before this retraction: no remaining row reaches higher.
        // Once the days read keep the learner and reach that level (or the
        // highest there is), the other days cannot change what the digest
        // keeps, and are not read. The statement's own day comes first: the
        // learner's other statements of a session are on it.
        let had = pair.and_then(|pair| digest.level(pair));
        let settled = |still: &Remaining| {
            still.learner && (pair.is_none() || still.level >= had || still.level == Some(digests::PASSED))
        };
        let (first, last) = digests::bounds(granularity, day);
        let others = first.iter_days().take_while(|d| *d <= last).filter(|d| *d != day);
        let mut still = Remaining::default();
        for day in std::iter::once(day).chain(others) {
            let on_day = match remaining_by_day.get(&day) {
                Some(on_day) => *on_day,
                None => {
                    let on_day = remaining_on(batch, organisation, day, learner, activity)?;
                    remaining_by_day.insert(day, on_day);
                    on_day
                }
            };
            still.learner |= on_day.learner;
            still.level = still.level.max(on_day.level);
            if settled(&still) {
                break;
            }
        }
        digest.statements = digest.statements.saturating_sub(1);
        if !still.learner {
            digest.learners.remove(learner);
        }
        if let Some(pair) = pair {
            digest.set_pair(pair, still.level);
        }
    }
    Ok(())
}

/// The key marking the digest under `digest_key` as changed and not written.
fn pending_key(digest_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(digest_key.len() + 1);
    out.push(keys::DIGEST_PENDING);
    out.extend_from_slice(digest_key);
    out
}

/// Writes a digest (or deletes it, if it counts no statement) and drops its
/// mark.
fn write_digest(batch: &mut PendingBatch<'_>, digest_key: &[u8], digest: &Digest) {
    if digest.statements > 0 {
        batch.put(digest_key.to_vec(), digest.encode());
    } else {
        batch.delete(digest_key.to_vec());
    }
    batch.delete(pending_key(digest_key));
}

/// The digest of an organisation's fact rows from `first` to `last`.
fn digest_from_facts(
    tree: &lrs_projection::Tree,
    organisation: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Digest, HubError> {
    let rows: Vec<(sled::IVec, sled::IVec)> =
        tree.range(fact_range(organisation, first, last)).collect::<Result<_, _>>()?;
    let mut digest = Digest::default();
    for (_, value) in rows {
        for (row, counts) in FactChunk::decode(&value).map_err(corrupt)?.rows() {
            let pair = row.activity.map(|activity| (digests::pair(row.learner, activity), fact_level(counts)));
            digest.add(counts.statements, row.learner, pair);
        }
    }
    Ok(digest)
}

/// The stored digest under `digest_key`, if any.
fn load_digest(batch: &PendingBatch<'_>, digest_key: &[u8]) -> Result<Option<Digest>, HubError> {
    match batch.get(digest_key)? {
        Some(bytes) => Digest::decode(&bytes).map(Some).ok_or_else(|| corrupt("an uptake digest")),
        None => Ok(None),
    }
}

/// What the learner's fact rows of one organisation and day put in a
/// digest, for `activity`.
fn remaining_on(
    batch: &PendingBatch<'_>,
    organisation: &str,
    day: NaiveDate,
    learner: u32,
    activity: Option<u32>,
) -> Result<Remaining, HubError> {
    let mut out = Remaining::default();
    // The learner's rows are in the chunks from the one at or before their
    // first possible row to the one before their next learner's.
    let day = day_text(day);
    let prefix = fact_chunks::day_prefix(organisation, &day);
    let first = RowId { learner, activity: None, platform: String::new(), staff_group: String::new() };
    let mut chunks: Vec<Entry> =
        batch.last_at_or_before(&prefix, &first.key(organisation, &day))?.into_iter().collect();
    let next = learner.checked_add(1).map(|next| RowId { learner: next, ..first }.key(organisation, &day));
    let mut after = chunks.last().map_or_else(|| prefix.clone(), |(key, _)| key.clone());
    while let Some(entry) = batch.first_after(&prefix, &after)? {
        if next.as_ref().is_some_and(|next| entry.0 >= *next) {
            break;
        }
        after = entry.0.clone();
        chunks.push(entry);
    }
    for (_, value) in chunks {
        for (row, counts) in FactChunk::decode(&value).map_err(corrupt)?.rows() {
            if row.learner != learner {
                continue;
            }
            out.learner = true;
            if activity.is_some_and(|a| row.activity == Some(a)) {
                out.level = out.level.max(Some(fact_level(counts)));
            }
        }
    }
    Ok(out)
}

/// Changes one fact row of an organisation's day (see [`fact_chunks`]): in
/// the chunk that holds it, or would, which is written again under the key
/// of its first row (split, if it grew too big; gone, if it is empty).
fn change_fact_row(
    batch: &mut PendingBatch<'_>,
    organisation: &str,
    day: &str,
    row: RowId,
    change: impl FnOnce(&mut FactCounts),
) -> Result<(), HubError> {
    let prefix = fact_chunks::day_prefix(organisation, day);
    let (old_key, mut chunk) = match chunk_holding(batch, &prefix, &row.key(organisation, day))? {
        Some((chunk_key, value)) => (Some(chunk_key), FactChunk::decode(&value).map_err(corrupt)?),
        None => (None, FactChunk::default()),
    };
    let mut counts = chunk.get(&row).unwrap_or_default();
    change(&mut counts);
    chunk.set(row, counts);
    store_chunk(batch, old_key, chunk.into_stored(organisation, day));
    Ok(())
}

/// Changes the summaries of a learner's statements on one activity, in the
/// chunk that holds them or would (see [`summary_chunks`]).
fn update_summaries(
    batch: &mut PendingBatch<'_>,
    numbers: (u32, u32),
    change: impl FnOnce(&mut Summaries),
) -> Result<(), HubError> {
    let (old_key, mut chunk) = summary_chunk(batch, numbers)?;
    let mut summaries = match chunk.get(numbers.1) {
        Some(bytes) => summaries::decode(bytes).map_err(HubError::Corrupt)?,
        None => Summaries::new(),
    };
    change(&mut summaries);
    chunk.set(numbers.1, (!summaries.is_empty()).then(|| summaries::encode(&summaries)));
    store_chunk(batch, old_key, chunk.into_stored(numbers.0));
    Ok(())
}

/// The chunk of summaries that holds the learner's on the activity, or
/// would, and its key (`None`: the learner has none).
fn summary_chunk(
    batch: &PendingBatch<'_>,
    (learner, activity): (u32, u32),
) -> Result<(Option<Vec<u8>>, SummaryChunk), HubError> {
    let prefix = summary_chunks::learner_prefix(learner);
    match chunk_holding(batch, &prefix, &summary_chunks::chunk_key(learner, activity))? {
        Some((chunk_key, value)) => Ok((Some(chunk_key), SummaryChunk::decode(&value).map_err(HubError::Corrupt)?)),
        None => Ok((None, SummaryChunk::default())),
    }
}

/// Of a table packed in chunks under their first row's key, the chunk
/// under `prefix` that holds the row whose key on its own is `row_key`, or
/// would: the one with the greatest key at or before it, else (a row
/// before them all) the first.
fn chunk_holding(batch: &PendingBatch<'_>, prefix: &[u8], row_key: &[u8]) -> Result<Option<Entry>, sled::Error> {
    match batch.last_at_or_before(prefix, row_key)? {
        Some(chunk) => Ok(Some(chunk)),
        None => batch.first_after(prefix, row_key),
    }
}

/// Writes a chunk that was under `old_key` back as `stored` (its pieces'
/// keys and values), deleting `old_key` if no piece is under it now.
fn store_chunk(batch: &mut PendingBatch<'_>, old_key: Option<Vec<u8>>, stored: Vec<(Vec<u8>, Vec<u8>)>) {
    if let Some(old_key) = old_key
        && !stored.iter().any(|(chunk_key, _)| *chunk_key == old_key)
    {
        batch.delete(old_key);
    }
    for (chunk_key, value) in stored {
        batch.put(chunk_key, value);
    }
}

fn refresh_competency(batch: &mut PendingBatch<'_>, learner: &str, competency: &str) -> Result<(), HubError> {
    let prefix = key(keys::EVIDENCE, &[learner, competency]);
    let mut achieving: Vec<(DateTime<Utc>, String, Option<String>)> = Vec::new();
    let mut any = false;
    for (evidence_key, bytes) in batch.scan_prefix(&prefix)? {
        let record: EvidenceRecord = from_json(&bytes)?;
        any = true;
        if record.achieves {
            let id = keys::parts(&evidence_key).and_then(|p| p.get(2).cloned()).unwrap_or_default();
            achieving.push((record.time, id, record.organisation));
        }
    }
    achieving.sort();
    let record_key = key(keys::COMPETENCY, &[learner, competency]);
    let previous: Option<CompetencyRecord> = match batch.get(&record_key)? {
        Some(bytes) => Some(from_json(&bytes)?),
        None => None,
    };
    if let Some(organisation) = previous.and_then(|p| p.coverage_organisation) {
        batch.delete(key(keys::COVERAGE, &[&organisation, competency, learner]));
    }
    if !any {
        batch.delete(record_key);
        return Ok(());
    }
    let record = match achieving.first() {
        Some((time, _, organisation)) => CompetencyRecord {
            status: CompetencyStatus::Achieved,
            achieved_at: Some(*time),
            evidence: achieving.iter().map(|(_, id, _)| id.clone()).collect(),
            coverage_organisation: organisation.clone(),
        },
        None => CompetencyRecord {
            status: CompetencyStatus::InProgress,
            achieved_at: None,
            evidence: Vec::new(),
            coverage_organisation: None,
        },
    };
    if let Some(organisation) = &record.coverage_organisation {
        batch.put(key(keys::COVERAGE, &[organisation, competency, learner]), Vec::new());
    }
    batch.put(record_key, to_json(&record));
    Ok(())
}

impl lrs_projection::Projection for HubViews {
    fn name(&self) -> &'static str {
        "learning-hub"
    }

    fn applied_offset(&self) -> Offset {
        HubViews::applied_offset(self)
    }

    fn apply(&self, records: &[LogRecord]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        HubViews::apply(self, records).map_err(Into::into)
    }

    fn depends_on(&self) -> Option<tokio::sync::watch::Receiver<Offset>> {
        self.decisions.get().map(|views| views.subscribe())
    }

    fn gather(&self) -> Option<lrs_projection::Gather> {
        Some(self.gather.clone())
    }

    fn stats(&self) -> Option<&lrs_projection::ProjectorStats> {
        Some(self.projector_stats())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::facts::{ORGANISATION_EXTENSION, STAFF_GROUP_EXTENSION};
    use serde_json::json;

    const ID: &str = "0d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    fn apply(views: &HubViews, offset: Offset, statements: Vec<Value>) {
        let event = Event::StatementsStored { statements, attachments: Vec::new() };
        views.apply(&[LogRecord { offset, payload: lrs_xapi::events::encode(&event) }]).unwrap();
    }

    #[test]
    fn a_statement_writes_one_key_per_table_and_its_contribution_only_what_retracting_reads() {
        let views = HubViews::temporary(Frameworks::empty()).unwrap();
        apply(
            &views,
            0,
            vec![json!({
                "id": ID,
                "actor": { "mbox": "mailto:learner@example.nhs.uk" },
                "verb": { "id": PASSED },
                "object": {
                    "id": "https://courses.example.com/infection-control",
                    "definition": { "name": { "en-GB": "Infection control" }, "type": "http://adlnet.gov/expapi/activities/course" }
                },
                "result": { "score": { "scaled": 0.9 }, "duration": "PT10M" },
                "context": {
                    "platform": "e-LfH",
                    "contextActivities": { "parent": [{ "id": "https://courses.example.com/safety" }] },
                    "extensions": { ORGANISATION_EXTENSION: "RJ1", STAFF_GROUP_EXTENSION: "Nursing" }
                },
                "timestamp": "2026-03-01T10:00:00Z",
                "stored": "2026-03-01T10:00:01Z"
            })],
        );
        // One key per table the statement counts in (the transcript entry
        // is made from the summaries when read), besides the offset: the
        // numbers of its new learner and activity, and marks for the uptake
        // digests of its day, week and month, which are kept in memory
        // until written.
        let tables = |views: &HubViews| -> Vec<u8> {
            views.tree.iter().keys().map(|k| k.unwrap()[0]).filter(|tag| *tag != b'M').collect()
        };
        let pending = keys::DIGEST_PENDING;
        assert_eq!(
            tables(&views),
            [
                keys::ACTIVITY_NUMBER,
                keys::ACTIVITY_OF_NUMBER,
                pending,
                pending,
                pending,
                keys::FACT,
                keys::LEARNER_NUMBER,
                keys::SUMMARY,
                keys::CONTRIBUTION
            ]
        );
        views.flush().unwrap();
        let digest = keys::DIGEST;
        assert_eq!(
            tables(&views),
            [
                keys::ACTIVITY_NUMBER,
                keys::ACTIVITY_OF_NUMBER,
                keys::FACT,
                keys::LEARNER_NUMBER,
                digest,
                digest,
                digest,
                keys::SUMMARY,
                keys::CONTRIBUTION
            ],
            "written, the digests replace their marks"
        );
        let stored = views.tree.get(key(keys::CONTRIBUTION, &[ID])).unwrap().unwrap();
        let stored: Value = serde_json::from_slice(&stored).unwrap();
        let mut fields: Vec<&str> = stored.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["activity", "learner", "organisation", "platform", "staff_group", "time", "verb"]);

        // The summaries are kept in their binary form, not as JSON, in a
        // chunk under the learner's and the activity's numbers.
        let (summaries_key, chunk) = views.tree.scan_prefix([keys::SUMMARY]).next().unwrap().unwrap();
        assert_eq!(summaries_key.len(), 9);
        let chunk = SummaryChunk::decode(&chunk).unwrap();
        let [(activity, summaries)] = chunk.activities() else { panic!("one activity") };
        assert_eq!(summaries_key.to_vec(), summary_chunks::chunk_key(0, *activity));
        assert!(serde_json::from_slice::<Value>(summaries).is_err());
        let summaries = summaries::decode(summaries).unwrap();
        let summary = &summaries[ID];
        assert_eq!((summary.verb.as_str(), summary.scaled, summary.duration_ms), (PASSED, Some(0.9), Some(600_000)));
        assert_eq!(summary.name.as_deref(), Some("Infection control"));
        // Its fact row, in a chunk under the row's own key, names the
        // learner and activity by their numbers, and counts one statement,
        // completed and passed.
        let (fact, chunk) = views.tree.scan_prefix([keys::FACT]).next().unwrap().unwrap();
        let [_, _, learner, activity, _, _] = keys::split(&fact).unwrap();
        assert_eq!((learner.len(), activity.len()), (4, 4));
        let chunk = FactChunk::decode(&chunk).unwrap();
        let [(row, counts)] = chunk.rows() else { panic!("one row") };
        assert_eq!(row.key("RJ1", "20260301"), fact.to_vec());
        assert_eq!((counts.statements, counts.completed, counts.passed), (1, 1, 1));

        // What it keeps is enough to take the statement out again.
        let uptake = UptakeQuery {
            organisation: "RJ1".to_owned(),
            from: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            granularity: Granularity::Day,
            activity: None,
            platform: None,
            staff_group: None,
        };
        assert_eq!(views.transcript("mbox:mailto:learner@example.nhs.uk").unwrap().len(), 1);
        assert_eq!(views.uptake(&uptake).unwrap().len(), 1);
        apply(
            &views,
            1,
            vec![json!({
                "id": "9a8b7c6d-5e4f-4321-8765-43210fedcba9",
                "actor": { "mbox": "mailto:learner@example.nhs.uk" },
                "verb": { "id": "http://adlnet.gov/expapi/verbs/voided" },
                "object": { "objectType": "StatementRef", "id": ID },
                "stored": "2026-03-01T10:00:02Z"
            })],
        );
        assert!(views.tree.get(key(keys::CONTRIBUTION, &[ID])).unwrap().is_none());
        assert_eq!(views.transcript("mbox:mailto:learner@example.nhs.uk").unwrap(), []);
        assert_eq!(views.uptake(&uptake).unwrap(), []);
        views.flush().unwrap();
        assert_eq!(
            tables(&views),
            [keys::ACTIVITY_NUMBER, keys::ACTIVITY_OF_NUMBER, keys::LEARNER_NUMBER, keys::VOIDED],
            "digests counting nothing go"
        );
    }

    /// A statement id of the tests below.
    fn id(n: u8) -> String {
        format!("{n}d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    }

    fn statement(id: &str, learner: &str, verb: &str, activity: &str, timestamp: &str) -> Value {
        json!({
            "id": id,
            "actor": { "mbox": format!("mailto:{learner}@example.nhs.uk") },
            "verb": { "id": verb },
            "object": { "id": activity },
            "context": { "platform": "e-LfH", "extensions": { ORGANISATION_EXTENSION: "RJ1" } },
            "timestamp": timestamp,
            "stored": timestamp
        })
    }

    fn void(id: &str, target: &str) -> Value {
        json!({
            "id": id,
            "actor": { "mbox": "mailto:admin@example.nhs.uk" },
            "verb": { "id": "http://adlnet.gov/expapi/verbs/voided" },
            "object": { "objectType": "StatementRef", "id": target },
            "stored": "2026-03-09T10:00:00Z"
        })
    }

    fn uptake_of(views: &HubViews, granularity: Granularity, from: (u32, u32), to: (u32, u32)) -> Vec<UptakeRow> {
        uptake_in(views, "RJ1", granularity, from, to)
    }

    fn uptake_in(
        views: &HubViews,
        organisation: &str,
        granularity: Granularity,
        from: (u32, u32),
        to: (u32, u32),
    ) -> Vec<UptakeRow> {
        views
            .uptake(&UptakeQuery {
                organisation: organisation.to_owned(),
                from: NaiveDate::from_ymd_opt(2026, from.0, from.1).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, to.0, to.1).unwrap(),
                granularity,
                activity: None,
                platform: None,
                staff_group: None,
            })
            .unwrap()
    }

    fn counts(rows: &[UptakeRow]) -> Vec<(&str, u64, u64, u64, u64, u64)> {
        rows.iter()
            .map(|r| (r.period.as_str(), r.active_learners, r.started, r.completed, r.passed, r.statements))
            .collect()
    }

    #[test]
    fn an_unfiltered_uptake_question_reads_the_digests_not_the_fact_rows() {
        let views = HubViews::temporary(Frameworks::empty()).unwrap();
        apply(
            &views,
            0,
            vec![
                statement(ID, "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z"),
                statement(&id(1), "b", COMPLETED, "https://c/1", "2026-03-03T10:00:00Z"),
                statement(&id(2), "a", COMPLETED, "https://c/1", "2026-03-04T10:00:00Z"),
            ],
        );
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 1), (3, 31))), [("2026-W10", 2, 2, 2, 1, 3)]);
        // Without the fact rows, an unfiltered question still has its
        // answer (from the digests, written); a filtered one has none.
        views.flush().unwrap();
        for fact_key in views.tree.scan_prefix([keys::FACT]).keys() {
            views.tree.remove(fact_key.unwrap()).unwrap();
        }
        views.forget_kept_uptake();
        assert_eq!(counts(&uptake_of(&views, Granularity::Month, (3, 1), (3, 31))), [("2026-03", 2, 2, 2, 1, 3)]);
        assert_eq!(
            counts(&uptake_of(&views, Granularity::Day, (3, 2), (3, 3))),
            [("2026-03-02", 1, 1, 1, 1, 1), ("2026-03-03", 1, 1, 1, 0, 1)]
        );
        let filtered = UptakeQuery {
            platform: Some("e-LfH".to_owned()),
            ..UptakeQuery {
                organisation: "RJ1".to_owned(),
                from: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
                granularity: Granularity::Month,
                activity: None,
                platform: None,
                staff_group: None,
            }
        };
        assert_eq!(views.uptake(&filtered).unwrap(), []);
    }

    #[test]
    fn digests_not_written_when_the_views_closed_are_rebuilt_from_the_fact_rows_when_they_open() {
        let dir = tempfile::tempdir().unwrap();
        let open = || HubViews::open(dir.path(), lrs_projection::StoreOptions::cache(1 << 20), Frameworks::empty());
        let views = open().unwrap();
        apply(
            &views,
            0,
            vec![
                statement(ID, "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z"),
                statement(&id(1), "b", COMPLETED, "https://c/1", "2026-03-03T10:00:00Z"),
            ],
        );
        // Written once, then changed by a void and a new statement, and
        // not written again before the views close.
        views.flush().unwrap();
        apply(
            &views,
            1,
            vec![
                void(&id(4), ID),
                statement(
                    &id(2),
                    "c",
                    "http://adlnet.gov/expapi/verbs/launched",
                    "https://c/2",
                    "2026-03-04T10:00:00Z",
                ),
            ],
        );
        let want = [("2026-W10", 2, 2, 1, 0, 2)];
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 1), (3, 31))), want);
        assert!(views.tree.scan_prefix([keys::DIGEST_PENDING]).next().is_some(), "marked, not written");
        drop(views);
        let views = open().unwrap();
        assert!(views.unwritten.read().unwrap().is_empty());
        assert!(views.tree.scan_prefix([keys::DIGEST_PENDING]).next().is_none(), "rebuilt and written");
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 1), (3, 31))), want);
        assert_eq!(counts(&uptake_of(&views, Granularity::Month, (3, 1), (3, 31))), [("2026-03", 2, 2, 1, 0, 2)]);
        assert_eq!(
            counts(&uptake_of(&views, Granularity::Day, (3, 1), (3, 31))),
            [("2026-03-03", 1, 1, 1, 0, 1), ("2026-03-04", 1, 1, 0, 0, 1)]
        );
    }

    /// The labels of the digests written to the tree, sorted.
    fn written_digests(views: &HubViews) -> Vec<String> {
        let mut labels: Vec<String> = views
            .tree
            .scan_prefix([keys::DIGEST])
            .keys()
            .map(|k| keys::parts(&k.unwrap()).unwrap()[2].clone())
            .collect();
        labels.sort();
        labels
    }

    fn marked_digests(views: &HubViews) -> usize {
        views.tree.scan_prefix([keys::DIGEST_PENDING]).count()
    }

    /// Views that hold their digests for an hour (writing `per_batch` a
    /// batch past `max_waiting`), and views that write them with every
    /// batch, to compare with.
    fn holding_and_writing_every_batch(per_batch: usize, max_waiting: usize) -> (HubViews, HubViews) {
        let mut views = HubViews::temporary(Frameworks::empty()).unwrap();
        views.digest_limits =
            digest_queue::Limits { interval: std::time::Duration::from_secs(3600), per_batch, max_waiting };
        let mut reference = HubViews::temporary(Frameworks::empty()).unwrap();
        reference.set_digest_write_interval(std::time::Duration::ZERO);
        (views, reference)
    }

    #[test]
    fn unwritten_digests_are_written_a_few_with_each_batch_oldest_first_never_all_at_once() {
        let (mut views, reference) = holding_and_writing_every_batch(2, 4);
        // Each statement falls in a day, a week and a month of its own:
        // three digests changed.
        let days = ["2026-01-05", "2026-02-09", "2026-03-09", "2026-04-06", "2026-04-06"];
        let batch = |views: &HubViews, n: usize| {
            let at = format!("{}T10:00:00Z", days[n]);
            apply(views, n as Offset, vec![statement(&id(n as u8), "a", COMPLETED, "https://c/1", &at)]);
        };
        for n in 0..5 {
            batch(&reference, n);
        }
        let month = |views: &HubViews| uptake_of(views, Granularity::Month, (1, 1), (4, 30));
        let want = month(&reference);
        assert_eq!(want.len(), 4);

        batch(&views, 0);
        batch(&views, 1);
        assert!(written_digests(&views).is_empty(), "six wait, none for an hour");
        assert_eq!((views.unwritten_digests(), marked_digests(&views)), (6, 6));
        assert_eq!(month(&views), want[..2]);

        // Past four waiting, the oldest are written, as many as keep four
        // waiting before the batch: two of January's.
        batch(&views, 2);
        let written = written_digests(&views);
        assert_eq!(written.len(), 2, "{written:?}");
        assert!(written.iter().all(|label| label.starts_with("2026-01") || label == "2026-W02"), "{written:?}");
        assert_eq!((views.unwritten_digests(), marked_digests(&views)), (7, 7));
        assert_eq!(month(&views), want[..3]);

        // Those that have waited the interval are written, at most two a
        // batch, oldest first: January's last, then February's.
        views.digest_limits.interval = std::time::Duration::from_nanos(1);
        views.digest_limits.max_waiting = 100;
        batch(&views, 3);
        let written = written_digests(&views);
        assert_eq!(written.len(), 4, "{written:?}");
        assert_eq!(written.iter().filter(|label| label.starts_with("2026-01") || *label == "2026-W02").count(), 3);
        assert_eq!((views.unwritten_digests(), marked_digests(&views)), (8, 8));
        batch(&views, 4);
        assert_eq!(written_digests(&views).len(), 6);
        assert_eq!(month(&views), want);

        // However long they waited, uptake and the tree end the same as
        // digests written with every batch.
        assert_eq!(views.state_digest().unwrap(), reference.state_digest().unwrap());
        assert_eq!(marked_digests(&views), 0);
    }

    /// Batches that count in digests held in memory (changed by an earlier
    /// batch, not written yet) keep apart what they add; counting and
    /// taking statements out of them, in one batch and across batches,
    /// ends as digests written with every batch do.
    #[test]
    fn counting_in_and_taking_out_of_held_digests_ends_as_digests_written_with_every_batch() {
        let (views, reference) = holding_and_writing_every_batch(64, 1000);
        let uid = |n: u32| format!("{n:08}-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
        // Days of one week and month: 2, 3 and 4 March.
        let batches = [
            vec![
                statement(&uid(1), "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z"),
                statement(&uid(2), "b", COMPLETED, "https://c/1", "2026-03-02T11:00:00Z"),
            ],
            // Counted in the held digests: a new learner, a pair that goes
            // further, a new pair.
            vec![
                statement(
                    &uid(3),
                    "c",
                    "http://adlnet.gov/expapi/verbs/attempted",
                    "https://c/1",
                    "2026-03-03T10:00:00Z",
                ),
                statement(&uid(4), "b", PASSED, "https://c/1", "2026-03-02T12:00:00Z"),
                statement(&uid(5), "a", COMPLETED, "https://c/2", "2026-03-04T10:00:00Z"),
            ],
            // Counted in, then a statement of an earlier batch taken out.
            vec![statement(&uid(6), "d", COMPLETED, "https://c/2", "2026-03-02T13:00:00Z"), void(&uid(7), &uid(1))],
            // Taken out, then counted in.
            vec![void(&uid(8), &uid(5)), statement(&uid(9), "a", PASSED, "https://c/2", "2026-03-04T11:00:00Z")],
            // Counted in and taken out in the same batch.
            vec![
                statement(&uid(10), "e", PASSED, "https://c/3", "2026-03-03T12:00:00Z"),
                void(&uid(11), &uid(10)),
                statement(&uid(12), "b", COMPLETED, "https://c/3", "2026-03-03T13:00:00Z"),
            ],
        ];
        let rows = |views: &HubViews| {
            [Granularity::Day, Granularity::Week, Granularity::Month]
                .map(|granularity| uptake_of(views, granularity, (3, 1), (3, 31)))
        };
        // Held: the days counted in, their week and month.
        let held = [3, 5, 5, 5, 5];
        for ((offset, batch), held) in (0..).zip(batches).zip(held) {
            apply(&views, offset, batch.clone());
            apply(&reference, offset, batch);
            assert_eq!(rows(&views), rows(&reference), "after batch {offset}");
            assert!(written_digests(&views).is_empty(), "the digests wait, none is written");
            assert_eq!(views.unwritten_digests(), held, "after batch {offset}");
        }
        assert_eq!(
            counts(&rows(&views)[1]),
            [("2026-W10", 4, 5, 4, 2, 6)],
            "learners a, b, c, d (e voided); pairs b-1, c-1, a-2, d-2, b-3 (a-1 voided), b-1 and a-2 passed"
        );
        assert_eq!(views.state_digest().unwrap(), reference.state_digest().unwrap());
    }

    #[test]
    fn a_voided_statement_leaves_a_digest_only_where_nothing_else_counts_its_learner_and_pair() {
        let views = HubViews::temporary(Frameworks::empty()).unwrap();
        // Learner a: passed on Monday 2 March, completed on Wednesday 4
        // March (week 10); the pass is voided.
        apply(
            &views,
            0,
            vec![
                statement(ID, "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z"),
                statement(&id(2), "a", COMPLETED, "https://c/1", "2026-03-04T10:00:00Z"),
                statement(&id(3), "a", COMPLETED, "https://c/2", "2026-03-02T11:00:00Z"),
            ],
        );
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 1), (3, 31))), [("2026-W10", 1, 2, 2, 1, 3)]);
        apply(&views, 1, vec![void(&id(4), ID)]);
        // The week and the month still count the learner, the pair started
        // and completed (on 4 March), but no pass; Monday keeps the learner
        // (the other activity) but not the pair.
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 1), (3, 31))), [("2026-W10", 1, 2, 2, 0, 2)]);
        assert_eq!(counts(&uptake_of(&views, Granularity::Month, (3, 1), (3, 31))), [("2026-03", 1, 2, 2, 0, 2)]);
        assert_eq!(
            counts(&uptake_of(&views, Granularity::Day, (3, 2), (3, 4))),
            [("2026-03-02", 1, 1, 1, 0, 1), ("2026-03-04", 1, 1, 1, 0, 1)]
        );
        // A range that cuts the week reads its days.
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 3), (3, 31))), [("2026-W10", 1, 1, 1, 0, 1)]);
    }

    /// A void reads the learner's other days of the week or month only
    /// until what is left is settled: until the rows read keep the learner
    /// and reach the level the pair had. A lower level on the statement's
    /// own day settles nothing, and the rest of the period is read.
    #[test]
    fn a_void_reads_the_rest_of_the_period_until_the_level_the_pair_had_is_reached() {
        const EXPERIENCED: &str = "http://adlnet.gov/expapi/verbs/experienced";
        let views = HubViews::temporary(Frameworks::empty()).unwrap();
        // Learner a on one course: experienced and passed on Monday 2 March,
        // completed on Thursday 5 March (week 10), passed again on Monday 16
        // March (week 12).
        apply(
            &views,
            0,
            vec![
                statement(&id(5), "a", EXPERIENCED, "https://c/1", "2026-03-02T09:00:00Z"),
                statement(&id(6), "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z"),
                statement(&id(7), "a", COMPLETED, "https://c/1", "2026-03-05T10:00:00Z"),
                statement(&id(8), "a", PASSED, "https://c/1", "2026-03-16T10:00:00Z"),
            ],
        );
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 2), (3, 8))), [("2026-W10", 1, 1, 1, 1, 3)]);
        apply(&views, 1, vec![void(&id(9), &id(6))]);
        // Monday keeps the pair, started; its week reaches Thursday's
        // completion; its month keeps the pass of the 16th.
        assert_eq!(counts(&uptake_of(&views, Granularity::Day, (3, 2), (3, 2))), [("2026-03-02", 1, 1, 0, 0, 1)]);
        assert_eq!(counts(&uptake_of(&views, Granularity::Week, (3, 2), (3, 8))), [("2026-W10", 1, 1, 1, 0, 2)]);
        assert_eq!(counts(&uptake_of(&views, Granularity::Month, (3, 1), (3, 31))), [("2026-03", 1, 1, 1, 1, 3)]);
    }

    /// Following the xAPI views' decisions, the hub reads no contribution
    /// to learn a statement is new: a repeat in a later event is skipped by
    /// the decision, one twice in an event by the batch's own writes.
    #[test]
    fn following_the_xapi_views_decisions_a_statement_is_counted_once_however_it_is_repeated() {
        let xapi = std::sync::Arc::new(lrs_projection::Views::temporary().unwrap());
        let views = HubViews::temporary(Frameworks::empty()).unwrap();
        views.follow_decisions_of(xapi.clone());
        let first = statement(ID, "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z");
        let second = statement(&id(1), "b", COMPLETED, "https://c/1", "2026-03-02T11:00:00Z");
        let events = [vec![first.clone()], vec![first], vec![second.clone(), second]];
        for (offset, statements) in (0..).zip(events) {
            let event = Event::StatementsStored { statements, attachments: Vec::new() };
            let record = LogRecord { offset, payload: lrs_xapi::events::encode(&event) };
            xapi.apply(std::slice::from_ref(&record)).unwrap();
            views.apply(&[record]).unwrap();
        }
        assert_eq!(counts(&uptake_of(&views, Granularity::Day, (3, 2), (3, 2))), [("2026-03-02", 2, 2, 2, 1, 2)]);
    }

    /// Following the xAPI views, a statement on an activity keeps no
    /// contribution record: a void retracts it as made again from the
    /// statement those views store and the summary it left, which keeps
    /// what the directory credited (the learner has moved since). One on no
    /// activity leaves no summary, so it keeps its record.
    #[test]
    fn following_the_xapi_views_only_a_statement_on_no_activity_keeps_a_contribution_record() {
        let xapi = std::sync::Arc::new(lrs_projection::Views::temporary().unwrap());
        let views = HubViews::temporary(Frameworks::empty()).unwrap();
        views.follow_decisions_of(xapi.clone());
        let both = |offset, event: &Event| {
            let record = LogRecord { offset, payload: lrs_xapi::events::encode(event) };
            xapi.apply(std::slice::from_ref(&record)).unwrap();
            views.apply(&[record]).unwrap();
        };
        let directory = |organisation: &str| Event::LearnersImported {
            learners: vec![LearnerEntry {
                learner: "mbox:mailto:b@example.nhs.uk".to_owned(),
                organisation: organisation.to_owned(),
                staff_group: Some("Nursing".to_owned()),
            }],
        };
        let uptake = |organisation: &str| uptake_in(&views, organisation, Granularity::Day, (3, 2), (3, 2));
        let contributions = || views.tree.scan_prefix([keys::CONTRIBUTION]).keys().count();
        both(0, &directory("RJ2"));
        let on_activity = statement(ID, "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z");
        // Names no organisation: the directory credits RJ2.
        let mut credited = statement(&id(1), "b", COMPLETED, "https://c/1", "2026-03-02T11:00:00Z");
        credited["context"]["extensions"] = json!({});
        let mut on_no_activity = statement(&id(2), "a", COMPLETED, "https://c/1", "2026-03-02T12:00:00Z");
        on_no_activity["object"] = json!({ "objectType": "StatementRef", "id": id(9) });
        let statements = vec![on_activity, credited, on_no_activity];
        both(1, &Event::StatementsStored { statements, attachments: Vec::new() });
        assert_eq!(contributions(), 1, "only the statement on no activity keeps a record");
        assert_eq!(counts(&uptake("RJ1")), [("2026-03-02", 1, 1, 1, 1, 2)]);
        assert_eq!(counts(&uptake("RJ2")), [("2026-03-02", 1, 1, 1, 0, 1)]);
        assert_eq!(views.transcript("mbox:mailto:b@example.nhs.uk").unwrap().len(), 1);

        both(2, &directory("RJ3"));
        let voids = vec![void(&id(3), ID), void(&id(4), &id(1)), void(&id(5), &id(2))];
        both(3, &Event::StatementsStored { statements: voids, attachments: Vec::new() });
        assert_eq!(contributions(), 0);
        assert_eq!(uptake("RJ1"), []);
        assert_eq!(uptake("RJ2"), [], "retracted where the directory credited it");
        assert_eq!(views.transcript("mbox:mailto:a@example.nhs.uk").unwrap(), []);
        assert_eq!(views.transcript("mbox:mailto:b@example.nhs.uk").unwrap(), []);
    }

    /// Whether a statement was voided before it arrived is answered from a
    /// filter built when the views open: a void stored before is known
    /// while it is built and after.
    #[test]
    fn a_statement_voided_before_it_arrived_is_not_counted_after_a_reopen_while_and_after_the_filter_is_built() {
        for wait_for_filter in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let open = || HubViews::open(dir.path(), lrs_projection::StoreOptions::cache(1 << 20), Frameworks::empty());
            let views = open().unwrap();
            apply(&views, 0, vec![void(&id(4), ID)]);
            drop(views);
            let views = open().unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            assert!(views.voided_ids().is_none(), "views that apply nothing scan nothing");
            if wait_for_filter {
                // Started when a process that writes opens the views (else
                // by the first batch applied).
                views.start_filters();
                assert!(views.filters_started());
                loop {
                    let mut guard = views.voided_ids();
                    let voided = guard.as_mut().unwrap();
                    voided.poll_built();
                    if voided.is_ready() {
                        assert!(voided.may_contain(uuid::Uuid::parse_str(ID).unwrap()));
                        break;
                    }
                    drop(guard);
                    assert!(std::time::Instant::now() < deadline, "the filter was built");
                    std::thread::yield_now();
                }
            }
            apply(
                &views,
                1,
                vec![
                    statement(ID, "a", PASSED, "https://c/1", "2026-03-02T10:00:00Z"),
                    statement(&id(1), "b", COMPLETED, "https://c/1", "2026-03-02T11:00:00Z"),
                ],
            );
            let want = [("2026-03-02", 1, 1, 1, 0, 1)];
            assert_eq!(counts(&uptake_of(&views, Granularity::Day, (3, 2), (3, 2))), want, "waited: {wait_for_filter}");
        }
    }

    /// A deterministic stream of numbers (xorshift) for the tests below.
    struct Random(u64);

    impl Random {
        fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }

        /// A number from 0 to `n` - 1.
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Hands `apply` `total` statements, in batches of 1 to `largest`, each
    /// one in `void_one_in` a void of an earlier statement not voided yet,
    /// the others made by `make` from the random stream and their id.
    /// Returns what `make` said of each statement not voided, with its id.
    fn random_batches<T>(
        random: &mut Random,
        (total, largest, void_one_in): (u32, usize, usize),
        mut make: impl FnMut(&mut Random, &str) -> (Value, T),
        mut apply: impl FnMut(Offset, Vec<Value>),
    ) -> Vec<(String, T)> {
        let mut kept: Vec<(String, T)> = Vec::new();
        let (mut offset, mut n) = (0, 0u32);
        while n < total {
            let mut batch = Vec::new();
            for _ in 0..1 + random.below(largest) {
                if !kept.is_empty() && random.below(void_one_in) == 0 {
                    let (target, _) = kept.swap_remove(random.below(kept.len()));
                    batch.push(void(&format!("{n:08x}-0000-4000-8000-00000000000a"), &target));
                } else {
                    let id = format!("{n:08x}-0000-4000-8000-000000000000");
                    let (statement, said) = make(random, &id);
                    batch.push(statement);
                    kept.push((id, said));
                }
                n += 1;
            }
            apply(offset, batch);
            offset += 1;
        }
        kept
    }

    /// Fact rows as the model counts them: (day, learner, activity,
    /// platform) → (statements, completed, passed).
    type FactModel = BTreeMap<(String, String, String, String), (u64, u64, u64)>;

    /// The fact rows the views hold, in the model's terms, after checking
    /// every chunk: under its first row's key, in order after the chunk
    /// before it, and no bigger than a chunk may be.
    fn stored_fact_rows(views: &HubViews) -> (FactModel, usize) {
        let names = |tag: u8| -> HashMap<u32, String> {
            views
                .tree
                .scan_prefix([tag])
                .map(|entry| {
                    let (name_key, number) = entry.unwrap();
                    (read_number(&number).unwrap(), keys::parts(&name_key).unwrap().remove(0))
                })
                .collect()
        };
        let (learners, activities) = (names(keys::LEARNER_NUMBER), names(keys::ACTIVITY_NUMBER));
        let mut rows = FactModel::new();
        let mut chunks = 0;
        let mut last: Option<(Vec<u8>, RowId)> = None;
        for entry in views.tree.scan_prefix([keys::FACT]) {
            let (chunk_key, value) = entry.unwrap();
            chunks += 1;
            let [organisation, day, ..] = keys::split::<6>(&chunk_key).unwrap();
            let (organisation, day) = (std::str::from_utf8(organisation).unwrap(), std::str::from_utf8(day).unwrap());
            let chunk = FactChunk::decode(&value).unwrap();
            assert!(chunk.rows().len() <= fact_chunks::CHUNK_ROWS);
            assert_eq!(chunk.rows()[0].0.key(organisation, day), chunk_key.to_vec(), "under its first row's key");
            if let Some((last_day, last_row)) = &last
                && last_day.as_slice() == day.as_bytes()
            {
                assert!(*last_row < chunk.rows()[0].0, "chunks of a day in order");
            }
            for (row, counts) in chunk.rows() {
                let activity = activities[&row.activity.unwrap()].clone();
                let at = (day.to_owned(), learners[&row.learner].clone(), activity, row.platform.clone());
                rows.insert(at, (counts.statements, counts.completed, counts.passed));
            }
            last = Some((day.as_bytes().to_vec(), chunk.rows().last().unwrap().0.clone()));
        }
        (rows, chunks)
    }

    #[test]
    fn fact_rows_packed_many_to_a_key_count_as_rows_of_their_own_would_through_batches_and_voids() {
        const PLATFORMS: [&str; 3] = ["e-LfH", "MOOC", "Magpie"];
        const VERBS: [&str; 3] = [PASSED, COMPLETED, "http://adlnet.gov/expapi/verbs/experienced"];
        for seed in [1_u64, 2, 3] {
            let views = HubViews::temporary(Frameworks::empty()).unwrap();
            // Each statement kept (not voided): its day, learner, activity,
            // platform and verb.
            let kept = random_batches(
                &mut Random::new(seed),
                (1_500, 60, 10),
                |random, id| {
                    let day = 2 + random.below(2);
                    let (learner, activity) =
                        (format!("l{}", random.below(80)), format!("https://c/{}", random.below(4)));
                    let (platform, verb) = (PLATFORMS[random.below(3)], VERBS[random.below(3)]);
                    let mut s = statement(id, &learner, verb, &activity, &format!("2026-03-0{day}T10:00:00Z"));
                    s["context"]["platform"] = json!(platform);
                    let learner = format!("mbox:mailto:{learner}@example.nhs.uk");
                    (s, (format!("2026030{day}"), learner, activity, platform.to_owned(), verb))
                },
                |offset, batch| apply(&views, offset, batch),
            );
            let mut model = FactModel::new();
            for (_, (day, learner, activity, platform, verb)) in &kept {
                let counts =
                    model.entry((day.clone(), learner.clone(), activity.clone(), platform.clone())).or_default();
                counts.0 += 1;
                counts.1 += u64::from(*verb == PASSED || *verb == COMPLETED);
                counts.2 += u64::from(*verb == PASSED);
            }
            let (stored, chunks) = stored_fact_rows(&views);
            assert_eq!(stored, model, "seed {seed}");
            assert!(model.len() > 500, "{} rows", model.len());
            assert!(chunks * 8 < model.len(), "{chunks} chunks for {} rows", model.len());

            // Uptake, from the digests (which retractions keep by reading
            // the fact rows) and from the fact rows (with a filter), is the
            // model's.
            for day in [2, 3] {
                let on_day = |platform: Option<&str>| {
                    let rows: Vec<_> = model
                        .iter()
                        .filter(|((d, _, _, p), _)| *d == format!("2026030{day}") && platform.is_none_or(|w| w == p))
                        .collect();
                    let learners: HashSet<_> = rows.iter().map(|((_, l, ..), _)| l).collect();
                    let pairs = |least: fn(&(u64, u64, u64)) -> bool| {
                        rows.iter()
                            .filter(|(_, c)| least(c))
                            .map(|((_, l, a, _), _)| (l, a))
                            .collect::<HashSet<_>>()
                            .len()
                    };
                    let statements: u64 = rows.iter().map(|(_, c)| c.0).sum();
                    let (started, completed, passed) = (pairs(|_| true), pairs(|c| c.1 > 0), pairs(|c| c.2 > 0));
                    (learners.len() as u64, started as u64, completed as u64, passed as u64, statements)
                };
                let label = format!("2026-03-0{day}");
                let row = |rows: Vec<UptakeRow>| {
                    let [row] = &rows[..] else { panic!("one row: {rows:?}") };
                    assert_eq!(row.period, label);
                    (row.active_learners, row.started, row.completed, row.passed, row.statements)
                };
                assert_eq!(row(uptake_of(&views, Granularity::Day, (3, day), (3, day))), on_day(None), "seed {seed}");
                let on_platform = |platform: &str| {
                    let query = UptakeQuery {
                        organisation: "RJ1".to_owned(),
                        from: NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
                        to: NaiveDate::from_ymd_opt(2026, 3, day).unwrap(),
                        granularity: Granularity::Day,
                        activity: None,
                        platform: Some(platform.to_owned()),
                        staff_group: None,
                    };
                    views.uptake(&query).unwrap()
                };
                for platform in PLATFORMS {
                    assert_eq!(row(on_platform(platform)), on_day(Some(platform)), "seed {seed}, {platform}");
                }
                // A day whose chunks hold no row the filter takes has no row.
                assert_eq!(on_platform("elsewhere"), [], "seed {seed}");
            }
        }
    }

    #[test]
    fn a_learners_summaries_packed_many_activities_to_a_key_make_the_transcript_through_batches_and_voids() {
        const VERBS: [&str; 4] = [PASSED, COMPLETED, FAILED, "http://adlnet.gov/expapi/verbs/experienced"];
        for (seed, follow) in [(1_u64, false), (2, false), (3, true), (4, true)] {
            let xapi = std::sync::Arc::new(lrs_projection::Views::temporary().unwrap());
            let views = HubViews::temporary(Frameworks::empty()).unwrap();
            if follow {
                views.follow_decisions_of(xapi.clone());
            }
            // Each statement kept (not voided): its learner, activity and verb.
            let kept = random_batches(
                &mut Random::new(seed),
                (1_200, 40, 8),
                |random, id| {
                    let (learner, activity) = (random.below(3), format!("https://c/{}", random.below(150)));
                    let verb = VERBS[random.below(4)];
                    let time = format!("2026-03-02T10:{:02}:{:02}Z", random.below(60), random.below(60));
                    let s = statement(id, &format!("l{learner}"), verb, &activity, &time);
                    (s, (format!("mbox:mailto:l{learner}@example.nhs.uk"), activity, verb))
                },
                |offset, statements| {
                    let event = Event::StatementsStored { statements, attachments: Vec::new() };
                    let record = LogRecord { offset, payload: lrs_xapi::events::encode(&event) };
                    xapi.apply(std::slice::from_ref(&record)).unwrap();
                    views.apply(&[record]).unwrap();
                },
            );
            let mut pairs = 0;
            for learner in 0..3 {
                let learner = format!("mbox:mailto:l{learner}@example.nhs.uk");
                // Statements, and the best status a verb gave: `VERBS` lists
                // them best first.
                let mut model: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
                for (_, (who, activity, verb)) in &kept {
                    if *who == learner {
                        let best = VERBS.iter().position(|v| v == verb).unwrap();
                        let entry = model.entry(activity).or_insert((0, best));
                        *entry = (entry.0 + 1, entry.1.min(best));
                    }
                }
                let mut transcript: Vec<(String, usize, TranscriptStatus)> = views
                    .transcript(&learner)
                    .unwrap()
                    .into_iter()
                    .map(|entry| (entry.activity, entry.statements, entry.status))
                    .collect();
                transcript.sort_by(|a, b| a.0.cmp(&b.0));
                use TranscriptStatus::{Completed, Failed, InProgress, Passed};
                let model: Vec<(String, usize, TranscriptStatus)> = model
                    .into_iter()
                    .map(|(activity, (n, best))| {
                        (activity.to_owned(), n, [Passed, Completed, Failed, InProgress][best])
                    })
                    .collect();
                assert_eq!(transcript, model, "seed {seed}, {learner}");
                pairs += model.len();
            }
            // Every chunk is under its first activity's key, after the
            // learner's chunk before it, and no bigger than a chunk may be.
            let mut chunks = 0;
            let mut last: Option<(Vec<u8>, u32)> = None;
            for entry in views.tree.scan_prefix([keys::SUMMARY]) {
                let (chunk_key, value) = entry.unwrap();
                chunks += 1;
                let chunk = SummaryChunk::decode(&value).unwrap();
                let learner = u32::from_be_bytes(chunk_key[1..5].try_into().unwrap());
                let (first, _) = chunk.activities()[0];
                assert_eq!(chunk_key.to_vec(), summary_chunks::chunk_key(learner, first));
                assert!(value.len() <= summary_chunks::CHUNK_BYTES + 8 || chunk.activities().len() == 1);
                if let Some((last_prefix, last_activity)) = &last
                    && last_prefix[..] == chunk_key[..5]
                {
                    assert!(*last_activity < first, "a learner's chunks in order");
                }
                last = Some((chunk_key[..5].to_vec(), chunk.activities().last().unwrap().0));
            }
            assert!(pairs > 300, "{pairs} learners' activities");
            assert!(chunks * 3 < pairs, "{chunks} chunks for {pairs} learners' activities");
        }
    }
}
