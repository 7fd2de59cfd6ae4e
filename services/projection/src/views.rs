//! The projected state and how each event changes it.

use std::borrow::Cow;
use std::path::Path;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::watch;
use uuid::Uuid;

use lrs_eventlog::compression::{self, Dictionary};
use lrs_eventlog::{LogRecord, Offset};
use lrs_xapi::agent::{ifi_key, primary_agent_keys, related_agent_keys};
use lrs_xapi::document;
use lrs_xapi::events::{DocumentKey, DocumentKind, Event};
use lrs_xapi::statement::{
    VOIDED_VERB, activities_with_definitions, activity_ids, field, statement_ref_target, voided_target,
};

use crate::batch::{PendingBatch, apply_records_then};
use crate::id_filter::KnownIds;
use crate::keys::{self, IdEntry, IndexKind, StoredKey};
use crate::postings::{LIMITS, Plan, Posting, PostingBuffer};
use crate::records::{Appending, RecordFile, RecordPointer};

#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    #[error("the view store failed: {0}")]
    Storage(#[from] sled::Error),
    #[error("the file of statement records failed: {0}")]
    Records(#[from] std::io::Error),
    #[error("the view store holds a corrupt record: {0}")]
    Corrupt(String),
    #[error("event at offset {offset} cannot be read: {reason}")]
    BadEvent { offset: Offset, reason: String },
}

/// The attributes a statement can be found by.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facets {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_activities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registrations: Vec<String>,
}

impl Facets {
    /// The facets a statement gives itself. Stored records do not keep
    /// these (they are worked out again when read), so a change here
    /// changes what stored statements match: bump `keys::LAYOUT` with it,
    /// and the views are rebuilt.
    fn of(statement: &Value) -> Self {
        let mut facets = Facets::default();
        primary_agent_keys(statement, &mut facets.agents);
        related_agent_keys(statement, &mut facets.related_agents);
        facets.related_agents.extend(facets.agents.iter().cloned());
        if let Some(verb) = field(statement, &["verb", "id"]).and_then(Value::as_str) {
            facets.verbs.push(verb.to_owned());
        }
        activity_ids(statement, false, &mut facets.activities);
        activity_ids(statement, true, &mut facets.related_activities);
        if let Some(registration) = field(statement, &["context", "registration"]).and_then(Value::as_str) {
            facets.registrations.push(registration.to_ascii_lowercase());
        }
        facets.dedup();
        facets
    }

    /// Every facet of a statement: its own and those it `inherited`.
    pub(crate) fn of_with(statement: &Value, inherited: &Facets) -> Self {
        let mut facets = Facets::of(statement);
        if !inherited.is_empty() {
            facets.merge(inherited);
        }
        facets
    }

    fn merge(&mut self, other: &Facets) {
        self.agents.extend(other.agents.iter().cloned());
        self.related_agents.extend(other.related_agents.iter().cloned());
        self.verbs.extend(other.verbs.iter().cloned());
        self.activities.extend(other.activities.iter().cloned());
        self.related_activities.extend(other.related_activities.iter().cloned());
        self.registrations.extend(other.registrations.iter().cloned());
        self.dedup();
    }

    /// What `self` holds beyond `own` (both sorted and free of repeats).
    fn beyond(&self, own: &Facets) -> Facets {
        let minus = |all: &[String], own: &[String]| -> Vec<String> {
            all.iter().filter(|v| own.binary_search(v).is_err()).cloned().collect()
        };
        Facets {
            agents: minus(&self.agents, &own.agents),
            related_agents: minus(&self.related_agents, &own.related_agents),
            verbs: minus(&self.verbs, &own.verbs),
            activities: minus(&self.activities, &own.activities),
            related_activities: minus(&self.related_activities, &own.related_activities),
            registrations: minus(&self.registrations, &own.registrations),
        }
    }

    fn is_empty(&self) -> bool {
        self.agents.is_empty()
            && self.related_agents.is_empty()
            && self.verbs.is_empty()
            && self.activities.is_empty()
            && self.related_activities.is_empty()
            && self.registrations.is_empty()
    }

    fn dedup(&mut self) {
        for list in [
            &mut self.agents,
            &mut self.related_agents,
            &mut self.verbs,
            &mut self.activities,
            &mut self.related_activities,
            &mut self.registrations,
        ] {
            list.sort();
            list.dedup();
        }
    }

    fn entries(&self) -> Vec<(IndexKind, &String)> {
        let mut out = Vec::new();
        out.extend(self.agents.iter().map(|v| (IndexKind::Agent, v)));
        // Related lists hold only what the primary lists do not (the
        // lists are sorted).
        out.extend(
            self.related_agents
                .iter()
                .filter(|v| self.agents.binary_search(v).is_err())
                .map(|v| (IndexKind::RelatedAgent, v)),
        );
        out.extend(self.verbs.iter().map(|v| (IndexKind::Verb, v)));
        out.extend(self.activities.iter().map(|v| (IndexKind::Activity, v)));
        out.extend(
            self.related_activities
                .iter()
                .filter(|v| self.activities.binary_search(v).is_err())
                .map(|v| (IndexKind::RelatedActivity, v)),
        );
        out.extend(self.registrations.iter().map(|v| (IndexKind::Registration, v)));
        out
    }
}

/// The keys of the statement queries a statement may change, for a read
/// that waits only for the writes that may change what it finds (see
/// [`StatementQuery::facet_keys`](crate::StatementQuery::facet_keys)):
/// its id ([`statement_id_key`]), and each facet it is posted under
/// (`keys::query_key`), its related agents and activities counted with
/// its own, so one key covers a query of either kind. `None` when it may
/// change any query: a void hides its target from every query, and a
/// statement whose object is a StatementRef takes its target's facets when
/// it is applied.
pub fn query_keys_of(statement: &Value) -> Option<Vec<String>> {
    if lrs_xapi::statement::statement_ref_target(statement).is_some() {
        return None;
    }
    let facets = Facets::of(statement);
    // The related lists already hold the primary ones.
    let kinds = [
        (IndexKind::Agent, &facets.related_agents),
        (IndexKind::Verb, &facets.verbs),
        (IndexKind::Activity, &facets.related_activities),
        (IndexKind::Registration, &facets.registrations),
    ];
    let mut keys = Vec::with_capacity(1 + kinds.iter().map(|(_, values)| values.len()).sum::<usize>());
    keys.extend(lrs_xapi::statement::statement_id(statement).map(statement_id_key));
    for (kind, values) in kinds {
        keys.extend(values.iter().map(|value| keys::query_key(kind, value)));
    }
    Some(keys)
}

/// The key of [`query_keys_of`] that a statement's id gives it.
pub fn statement_id_key(id: Uuid) -> String {
    format!("i:{id}")
}

/// A stored statement as the views keep it.
#[derive(Debug, Clone)]
pub struct StatementRecord {
    pub stored_micros: i64,
    pub sequence: u64,
    /// The statement with the LRS's properties, as returned by `format=exact`.
    pub statement: Value,
    /// Facets inherited from the statements it targets by StatementRef,
    /// beyond its own (empty for most statements).
    pub inherited: Facets,
}

/// A statement record as written: the facets a statement gives itself are
/// worked out again from it when read, so only the inherited ones are kept.
#[derive(Serialize)]
struct RecordOut<'a> {
    stored_micros: i64,
    sequence: u64,
    statement: &'a Value,
    #[serde(skip_serializing_if = "Facets::is_empty")]
    inherited: &'a Facets,
}

impl<'a> From<&'a StatementRecord> for RecordOut<'a> {
    fn from(record: &'a StatementRecord) -> Self {
        let StatementRecord { stored_micros, sequence, statement, inherited } = record;
        Self { stored_micros: *stored_micros, sequence: *sequence, statement, inherited }
    }
}

#[derive(Deserialize)]
struct RecordIn {
    stored_micros: i64,
    sequence: u64,
    statement: Value,
    #[serde(default)]
    inherited: Facets,
}

impl StatementRecord {
    pub fn stored_key(&self) -> StoredKey {
        StoredKey { stored_micros: self.stored_micros, sequence: self.sequence }
    }

    /// Every facet of the statement: its own and those it inherited.
    pub fn facets(&self) -> Facets {
        Facets::of_with(&self.statement, &self.inherited)
    }

    pub fn is_voiding(&self) -> bool {
        voided_target(&self.statement).is_some()
    }
}

/// What became of an event that was not simply applied: refused as a
/// whole (`status` 4xx, nothing of it applied), or statements applied except
/// the `repeats` (indexes of statements already stored, identical).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<usize>,
}

impl Outcome {
    /// The outcome of an event applied in full.
    pub fn applied() -> Self {
        Self { status: 200, message: String::new(), repeats: Vec::new() }
    }
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub content_type: String,
    pub content: Vec<u8>,
    pub etag: String,
    /// RFC 3339 time of the last change.
    pub updated: String,
}

fn encode_document(content_type: &str, etag: &str, updated: &str, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 128);
    for part in [content_type.as_bytes(), etag.as_bytes(), updated.as_bytes()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(content);
    out
}

fn decode_document(id: String, bytes: &[u8]) -> Result<Document, ViewsError> {
    let corrupt = || ViewsError::Corrupt("document record".to_owned());
    let mut rest = bytes;
    let mut parts = Vec::with_capacity(3);
    for _ in 0..3 {
        if rest.len() < 4 {
            return Err(corrupt());
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return Err(corrupt());
        }
        parts.push(String::from_utf8(rest[..len].to_vec()).map_err(|_| corrupt())?);
        rest = &rest[len..];
    }
    let updated = parts.pop().ok_or_else(corrupt)?;
    let etag = parts.pop().ok_or_else(corrupt)?;
    let content_type = parts.pop().ok_or_else(corrupt)?;
    Ok(Document { id, content_type, content: rest.to_vec(), etag, updated })
}

/// All projected state: one sled tree, and the statement records in a file
/// beside it (see [`crate::records`]) that the tree points into.
pub struct Views {
    db: sled::Db,
    pub(crate) tree: crate::Tree,
    records: std::sync::Arc<RecordFile>,
    applied: watch::Sender<Offset>,
    /// What the views remember as of the last batch written: only `apply`
    /// changes it, holding the lock while it applies, and only once its
    /// batch is written.
    kept: std::sync::Mutex<Kept>,
    /// The kept bookkeeping's `last_stored` ([`NONE_STORED`] if none), for
    /// readers that must not wait for a batch being applied.
    last_stored: std::sync::atomic::AtomicI64,
    /// The newest posting-list entries, not yet in the tree (see
    /// [`crate::postings`]): only `apply` and `flush` change them, holding
    /// the `kept` lock, and only once what they planned is written.
    postings: std::sync::RwLock<PostingBuffer>,
    /// The dictionary records are compressed with, once trained (see
    /// [`DICTIONARY_SAMPLES`]); set once, by the thread that trains it,
    /// before the first batch that uses it is written.
    dictionary: std::sync::Arc<std::sync::OnceLock<Dictionary>>,
    /// Flushes views kept on disk (see [`Flusher`]).
    _flusher: Option<Flusher>,
    /// What the projector applied.
    stats: crate::ProjectorStats,
    /// Where the events applied come from (decoded, or handed over).
    source: crate::EventSource,
}

/// `Views::last_stored` when no statement is stored.
const NONE_STORED: i64 = i64::MIN;

/// What the views remember of their own state, besides the tree.
struct Kept {
    book: Bookkeeping,
    definitions: LastDefinitions,
    names: KnownNames,
    /// Started when a process that writes opens the views
    /// ([`Views::start_filters`]), or else by the first batch applied:
    /// views that only answer queries (those `lrs verify` compares, say)
    /// never scan their ids.
    filters: Option<Filters>,
    /// Whether the dictionary of records is in the tree (a batch that
    /// failed after it was trained leaves it to the next).
    dictionary_written: bool,
    /// Whether its training was started (a failed training is tried again
    /// when the views next open).
    dictionary_training: bool,
}

/// Filters of what the tree holds, so that applying a statement reads
/// nothing to learn what nearly every statement is.
struct Filters {
    /// The ids of the statements stored: a new one is known to be new.
    ids: KnownIds,
    /// The targets of the StatementRefs stored: a statement no other
    /// refers to gives its facets to no referrer, without a scan.
    referenced: KnownIds,
}

impl Filters {
    /// Built from the tree (see [`KnownIds::build`]).
    fn of(tree: &crate::Tree) -> Self {
        let referenced = tree.scan_prefix([keys::REFERENCES]).map(|entry| {
            let (key, _) = entry?;
            key.get(1..17)
                .and_then(|bytes| Uuid::from_slice(bytes).ok())
                .ok_or_else(|| ViewsError::Corrupt("StatementRef key".to_owned()))
        });
        Self {
            ids: KnownIds::build("views' statement id", ID_FILTER_BITS_LOG2, id_scan(tree), || {}),
            referenced: KnownIds::build("StatementRef target", REFERENCED_FILTER_BITS_LOG2, referenced, || {}),
        }
    }
}

/// log2 of the bits of the views' filter of statement ids: 2^27 bits are
/// 16 MiB, about 13 bits an id at 10 million statements (about 3 in 1,000
/// new ids then read the tree).
const ID_FILTER_BITS_LOG2: u32 = 27;

/// log2 of the bits of the filter of StatementRef targets (1 MiB): they
/// are a few percent of the statements.
const REFERENCED_FILTER_BITS_LOG2: u32 = 23;

/// The activity definition merged last into each activity the views know,
/// by a keyed hash of its JSON (or `None`: the activity is known, and no
/// definition was merged into it since it was remembered here). Merging the
/// same definition twice in a row is merging it once, so a statement that
/// repeats an activity's last definition (as most do) neither reads nor
/// writes the activity. At most [`LAST_DEFINITIONS`] activities: when full
/// it starts again empty, and a forgotten activity only costs a read and a
/// merge.
struct LastDefinitions {
    hasher: std::hash::RandomState,
    by_activity: std::collections::HashMap<String, Option<u64>>,
}

/// How many activities [`LastDefinitions`] remembers: a few MB.
const LAST_DEFINITIONS: usize = 1 << 16;

impl LastDefinitions {
    fn new() -> Self {
        Self { hasher: std::hash::RandomState::new(), by_activity: std::collections::HashMap::new() }
    }

    fn hash(&self, definition: &Map<String, Value>) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(serde_json::to_vec(definition).unwrap_or_default())
    }

    /// Takes in what a written batch merged.
    fn remember(&mut self, merged: std::collections::HashMap<String, Option<u64>>) {
        if self.by_activity.len() + merged.len() > LAST_DEFINITIONS {
            self.by_activity.clear();
        }
        self.by_activity.extend(merged);
    }
}

/// The names stored for the agents seen lately (`P` keys), so that a
/// statement whose actor's name is known (most: a learner's statements come
/// in sessions) neither reads nor writes them. Names are only ever added,
/// so a name remembered here is in the tree. At most [`KNOWN_NAMES`]
/// agents: when full it starts again empty.
#[derive(Default)]
struct KnownNames {
    by_agent: std::collections::HashMap<String, Vec<String>>,
}

/// How many agents [`KnownNames`] remembers: a few MB.
const KNOWN_NAMES: usize = 1 << 15;

impl KnownNames {
    /// Takes in what a written batch read or wrote.
    fn remember(&mut self, named: std::collections::HashMap<String, Vec<String>>) {
        if self.by_agent.len() + named.len() > KNOWN_NAMES {
            self.by_agent.clear();
        }
        self.by_agent.extend(named);
    }
}

/// What applying one batch works on besides the tree: its bookkeeping, and
/// the definitions it merged (see [`LastDefinitions`]); both are kept only
/// once the batch is written.
struct Applying<'k> {
    book: Bookkeeping,
    definitions: &'k LastDefinitions,
    names: &'k KnownNames,
    /// Given the ids the batch stores and refers to as it applies them (an
    /// id given for a batch that then fails only costs a read later).
    ids: &'k mut KnownIds,
    referenced: &'k mut KnownIds,
    merged: std::collections::HashMap<String, Option<u64>>,
    /// The names the batch read or wrote, by agent (see [`KnownNames`]).
    named: std::collections::HashMap<String, Vec<String>>,
    /// The statement records the batch appends.
    appending: Appending,
    records: &'k RecordFile,
    /// The dictionary its records are compressed with, if trained.
    dictionary: Option<&'k Dictionary>,
}

impl Applying<'_> {
    /// The definition merged last into activity `id`, as far as this batch
    /// and the written ones tell: `None` if the activity is not known to
    /// exist, `Some(None)` if it exists with no definition remembered.
    fn last_definition(&self, id: &str) -> Option<Option<u64>> {
        self.merged.get(id).or_else(|| self.definitions.by_activity.get(id)).copied()
    }

    /// The statement `id` and where it is, through the batch's pending
    /// writes and the records it appends.
    fn find_record(
        &self,
        batch: &PendingBatch<'_>,
        id: Uuid,
    ) -> Result<Option<(StoredKey, StatementRecord)>, ViewsError> {
        find_record(id, |key| batch.get(key), |sequence| self.appending.record(self.records, sequence), self.dictionary)
    }

    /// Appends `record` and points its statement's slot at it (see
    /// `records.rs`).
    fn put_record(&mut self, batch: &mut PendingBatch<'_>, record: &RecordOut<'_>) -> Result<(), ViewsError> {
        let (pointer, earlier) = self.appending.put(record.sequence, &encode_record(record, self.dictionary))?;
        if earlier {
            batch.put(keys::rewritten(record.sequence), pointer.to_bytes().to_vec());
        }
        Ok(())
    }
}

/// What the views keep about themselves, in one key ([`keys::META_STATE`])
/// written with every batch, and in memory, so applying a batch reads none
/// of it from the tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bookkeeping {
    /// The next log offset to apply.
    offset: Offset,
    /// The sequence of the next statement stored (its position's tie-break).
    sequence: u64,
    /// The `stored` time (µs since the epoch) of the latest statement.
    last_stored: Option<i64>,
    /// The highest position posted to a list, written to a chunk or held
    /// (see [`keys::index_chunk`]): an entry at or below it is a late one.
    index_high: Option<StoredKey>,
    /// The committed length of the file of statement records.
    records_end: u64,
    /// The lowest sequence of a statement whose postings may be held in
    /// memory only (see [`crate::postings`]): every posting of a statement
    /// numbered below it is in the tree.
    postings_from: Option<u64>,
}

impl Bookkeeping {
    /// Its length with no postings held: all that views written before
    /// postings were held wrote, and what they can read.
    const LEN: usize = 8 + 8 + 1 + 8 + 1 + StoredKey::LEN + 8;

    fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN + 8);
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.push(u8::from(self.last_stored.is_some()));
        out.extend_from_slice(&(self.last_stored.unwrap_or(0) as u64).to_be_bytes());
        out.push(u8::from(self.index_high.is_some()));
        out.extend_from_slice(&self.index_high.unwrap_or(StoredKey { stored_micros: 0, sequence: 0 }).to_bytes());
        out.extend_from_slice(&self.records_end.to_be_bytes());
        if let Some(from) = self.postings_from {
            out.extend_from_slice(&from.to_be_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, ViewsError> {
        let corrupt = || ViewsError::Corrupt("the views' bookkeeping".to_owned());
        let postings_from = match bytes.len() {
            Self::LEN => None,
            len if len == Self::LEN + 8 => Some(decode_u64(&bytes[Self::LEN..])?),
            _ => return Err(corrupt()),
        };
        let present = |flag: u8| match flag {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt()),
        };
        let last_stored = decode_u64(&bytes[17..25])? as i64;
        let index_high = StoredKey::from_bytes(&bytes[26..42]).ok_or_else(corrupt)?;
        Ok(Self {
            offset: decode_u64(&bytes[..8])?,
            sequence: decode_u64(&bytes[8..16])?,
            last_stored: present(bytes[16])?.then_some(last_stored),
            index_high: present(bytes[25])?.then_some(index_high),
            records_end: decode_u64(&bytes[42..Self::LEN])?,
            postings_from,
        })
    }
}

impl Views {
    /// Opens (or creates) the views in `dir`.
    pub fn open(dir: &Path, store: crate::StoreOptions) -> Result<Self, ViewsError> {
        let db = crate::store::open_store_flushed_by_caller(dir, store)?;
        let records = RecordFile::open(&dir.join(RECORD_FILE), &dir.join(SLOT_FILE))?;
        let views = Self::from_db(db, records)?;
        Ok(Self { _flusher: Some(Flusher::start(views.db.clone(), views.records.clone())), ..views })
    }

    /// Empty views in memory, gone when dropped (for a process that serves
    /// no reads of its own, such as Kafka ingest).
    pub fn temporary() -> Result<Self, ViewsError> {
        Self::from_db(sled::Config::new().temporary(true).open()?, RecordFile::temporary()?)
    }

    fn from_db(db: sled::Db, records: RecordFile) -> Result<Self, ViewsError> {
        let tree = crate::Tree::open(&db, "views")?;
        let layout = match tree.get(keys::META_LAYOUT)? {
            Some(bytes) => Some(decode_u64(&bytes)?),
            None => None,
        };
        if layout != Some(keys::LAYOUT) {
            if !tree.is_empty() {
                tracing::warn!(
                    found = layout.unwrap_or(1),
                    current = keys::LAYOUT,
                    "the views were built with another layout; rebuilding them from the log"
                );
            }
            clear(&tree, &records)?;
        }
        let mut book = match tree.get(keys::META_STATE)? {
            Some(bytes) => Bookkeeping::from_bytes(&bytes)?,
            None => Bookkeeping::default(),
        };
        if !records.recover(book.records_end, book.sequence)? {
            tracing::warn!(
                committed = book.records_end,
                statements = book.sequence,
                "the file of statement records or of their slots is shorter than the views say (the machine \
                 stopped before it reached the disk?); rebuilding the views from the log"
            );
            clear(&tree, &records)?;
            book = Bookkeeping::default();
        }
        let dictionary = std::sync::Arc::new(std::sync::OnceLock::new());
        if let Some(bytes) = tree.get(keys::META_RECORD_DICTIONARY)? {
            match Dictionary::from_bytes(bytes.to_vec(), RECORD_COMPRESSION_LEVEL) {
                Ok(trained) => {
                    let _ = dictionary.set(trained);
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "the dictionary of the statement records cannot be read; rebuilding the views from the log"
                    );
                    clear(&tree, &records)?;
                    book = Bookkeeping::default();
                }
            }
        }
        // Records written again: their slots were written after their batch,
        // which a stop can come between.
        for entry in tree.scan_prefix([keys::REWRITTEN]) {
            let (key, pointer) = entry?;
            match (keys::rewritten_sequence(&key), RecordPointer::from_bytes(&pointer)) {
                (Some(sequence), Ok(pointer)) if sequence < book.sequence => records.write_slot(sequence, pointer)?,
                // Not one the views wrote: the state digest counts it, so
                // `lrs verify` reports it; the views open all the same.
                _ => tracing::warn!("a key among the statement records written again is malformed; left alone"),
            }
        }
        let postings = match book.postings_from {
            Some(from) => recover_postings(&tree, &records, dictionary.get(), from, book.sequence)?,
            None => PostingBuffer::default(),
        };
        let (sender, _) = watch::channel(book.offset);
        let last_stored = std::sync::atomic::AtomicI64::new(book.last_stored.unwrap_or(NONE_STORED));
        let kept = Kept {
            book,
            definitions: LastDefinitions::new(),
            names: KnownNames::default(),
            filters: None,
            dictionary_written: dictionary.get().is_some(),
            dictionary_training: false,
        };
        Ok(Self {
            db,
            tree,
            records: std::sync::Arc::new(records),
            applied: sender,
            kept: std::sync::Mutex::new(kept),
            last_stored,
            postings: std::sync::RwLock::new(postings),
            dictionary,
            _flusher: None,
            stats: crate::ProjectorStats::default(),
            source: crate::EventSource::default(),
        })
    }

    /// What the views remember as of the last batch written (see `kept`).
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Only a written batch changes its bookkeeping, and its filters
        // only gain ids (one given in vain costs a read), so it is whole
        // even if an apply panicked while holding the lock.
        self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the projector applied to these views since they opened.
    pub fn projector_stats(&self) -> &crate::ProjectorStats {
        &self.stats
    }

    /// Where the events the views apply come from: call
    /// [`crate::EventSource::attach`] to take them from a handoff.
    pub fn event_source(&self) -> &crate::EventSource {
        &self.source
    }

    /// The next log offset to apply: every event before it is reflected.
    pub fn applied_offset(&self) -> Offset {
        *self.applied.borrow()
    }

    /// Watches the applied offset.
    pub fn subscribe(&self) -> watch::Receiver<Offset> {
        self.applied.subscribe()
    }

    /// Statements the views hold (each stored once, however often it was
    /// sent): the number their records are numbered up to.
    pub fn statements_stored(&self) -> u64 {
        self.kept().book.sequence
    }

    /// Stored time (µs since the epoch) of the latest projected statement.
    pub fn last_stored_micros(&self) -> Result<Option<i64>, ViewsError> {
        let micros = self.last_stored.load(std::sync::atomic::Ordering::Acquire);
        Ok((micros != NONE_STORED).then_some(micros))
    }

    /// Writes the postings held and flushes projected state to disk (not
    /// needed for correctness: the log is replayed from the stored offset
    /// after a crash, and held postings are read again from the records).
    pub fn flush(&self) -> Result<(), ViewsError> {
        self.write_held_postings()?;
        flush(&self.db, &self.records)
    }

    /// The postings held (see [`crate::postings`]).
    fn held(&self) -> std::sync::RwLockReadGuard<'_, PostingBuffer> {
        // Only a written plan changes them, all at once.
        self.postings.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes every posting held to the tree, so none is held.
    fn write_held_postings(&self) -> Result<(), ViewsError> {
        let mut kept = self.kept();
        let (plan, mut batch) = {
            let held = self.held();
            if held.entries() == 0 {
                return Ok(());
            }
            let plan = held.plan_all();
            let mut batch = PendingBatch::new(&self.tree);
            for (list, entries) in held.chunks(&plan) {
                put_chunk(&mut batch, list, &entries);
            }
            (plan, batch)
        };
        let mut book = kept.book;
        book.postings_from = None;
        batch.put(keys::META_STATE.to_vec(), book.to_bytes());
        crate::batch::commit(&self.tree, batch)?;
        self.postings.write().unwrap_or_else(std::sync::PoisonError::into_inner).commit(plan);
        kept.book = book;
        Ok(())
    }

    /// Postings held in memory, not yet in the tree.
    pub fn held_postings(&self) -> usize {
        self.held().entries()
    }

    /// The postings held of `list` with positions in `low..=high`, ascending.
    pub(crate) fn held_postings_of(&self, list: &[u8], low: StoredKey, high: StoredKey) -> Vec<Posting> {
        self.held().entries_in(list, low, high)
    }

    /// Starts building the filters of ids from the tree, as the first batch
    /// applied otherwise does: a process that will write calls it when it
    /// opens the views, so that its first writes do not share the CPU with
    /// the scans (and the views that only answer queries never scan).
    pub fn start_filters(&self) {
        self.kept().filters.get_or_insert_with(|| Filters::of(&self.tree));
    }

    /// Whether the filters of ids were started (see [`Views::start_filters`]).
    pub fn filters_started(&self) -> bool {
        self.kept().filters.is_some()
    }

    /// Applies consecutive log records atomically. Records below the applied
    /// offset are skipped, so re-delivery is harmless.
    pub fn apply(&self, records: &[LogRecord]) -> Result<(), ViewsError> {
        let mut kept = self.kept();
        let Kept { book, definitions, names, filters, dictionary_written, dictionary_training } = &mut *kept;
        let Filters { ids, referenced } = filters.get_or_insert_with(|| Filters::of(&self.tree));
        ids.poll_built();
        referenced.poll_built();
        if self.dictionary.get().is_none() && !*dictionary_training && book.sequence >= DICTIONARY_SAMPLES {
            *dictionary_training = self.start_training_dictionary();
        }
        // Read once: every record of this batch is compressed alike.
        let dictionary = self.dictionary.get();
        let write_dictionary = dictionary.filter(|_| !*dictionary_written);
        let applying = std::cell::RefCell::new(Applying {
            book: *book,
            definitions,
            names,
            ids,
            referenced,
            merged: std::collections::HashMap::new(),
            named: std::collections::HashMap::new(),
            appending: Appending::new(book.records_end, book.sequence),
            records: &self.records,
            dictionary,
        });
        let planned = std::cell::RefCell::new(Plan::default());
        let applied = apply_records_then(
            &self.tree,
            book.offset,
            records,
            &self.source,
            |offset, reason| ViewsError::BadEvent { offset, reason },
            |batch, offset, event| apply_event(batch, &mut applying.borrow_mut(), offset, event),
            |batch, next| {
                let Applying { book, appending, .. } = &mut *applying.borrow_mut();
                *planned.borrow_mut() = write_postings(batch, book, &self.held())?;
                // The records before the tree that points at them.
                self.records.write(appending)?;
                book.records_end = appending.end();
                book.offset = next;
                batch.put(keys::META_STATE.to_vec(), book.to_bytes());
                if let Some(dictionary) = &write_dictionary {
                    batch.put(keys::META_RECORD_DICTIONARY.to_vec(), dictionary.bytes().to_vec());
                }
                Ok(())
            },
        )?;
        if let Some(next) = applied {
            *dictionary_written |= write_dictionary.is_some();
            self.postings.write().unwrap_or_else(std::sync::PoisonError::into_inner).commit(planned.into_inner());
            let Applying { book: written, merged, named, appending, .. } = applying.into_inner();
            // The batch is written: what is kept follows it first, whatever
            // happens to the slots. Should writing them fail, the error is
            // reported, readers find the older copies meanwhile, and the
            // views' next open writes the slots from the tree.
            let slots = self.records.write_rewritten(&appending);
            *book = written;
            definitions.remember(merged);
            names.remember(named);
            self.last_stored.store(written.last_stored.unwrap_or(NONE_STORED), std::sync::atomic::Ordering::Release);
            drop(kept);
            self.applied.send_replace(next);
            slots?;
        }
        Ok(())
    }

    /// A digest of the projected state: two views with the same digest
    /// hold the same state. Index entries count by what they say (list,
    /// position, id), not by how batches happened to group them into
    /// chunks or whether they are held in memory, so a replay in other
    /// batches digests the same.
    pub fn state_digest(&self) -> Result<String, ViewsError> {
        use sha1::Digest;
        let mut hasher = sha1::Sha1::new();
        let mut hash = |key: &[u8], value: &[u8]| {
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key);
            hasher.update((value.len() as u64).to_be_bytes());
            hasher.update(value);
        };
        for entry in self.tree.iter() {
            let (key, value) = entry?;
            match key.first() {
                Some(&keys::INDEX | &keys::LATE_INDEX) => {}
                // Where records written again are is in their slots, hashed
                // below with the rest: whether a record was written again
                // in its own batch or a later one is not state. A pointer
                // its slot does not hold is not one the views wrote, and
                // counts.
                Some(&keys::REWRITTEN)
                    if keys::rewritten_sequence(&key)
                        .zip(RecordPointer::from_bytes(&value).ok())
                        .is_some_and(|(sequence, pointer)| self.records.pointer(sequence).ok() == Some(pointer)) => {}
                // Nor is how records are compressed: they are hashed by
                // what they hold, below.
                _ if &key[..] == keys::META_RECORD_DICTIONARY => {}
                // Which postings are held in memory is not state either,
                // nor how long the file of records is (records before and
                // after the dictionary compress differently).
                _ if &key[..] == keys::META_STATE => {
                    let book = Bookkeeping { postings_from: None, records_end: 0, ..Bookkeeping::from_bytes(&value)? };
                    hash(&key, &book.to_bytes());
                }
                _ => hash(&key, &value),
            }
        }
        // Records by what they hold, not where in the file they are or how
        // they are compressed. One that cannot be read makes the digest
        // differ from any store whose records can, rather than stop the
        // comparison.
        let statements = self.statements_stored();
        for sequence in 0..statements {
            let key = keys::rewritten(sequence);
            match record_json_of(&self.records, sequence, self.record_dictionary()) {
                Ok(record) => hash(&key, &record),
                Err(ViewsError::Corrupt(error)) => hash(&key, format!("unreadable: {error}").as_bytes()),
                Err(other) => return Err(other),
            }
        }
        let held = self.held().all_sorted();
        for entry in crate::query::all_index_entries(&self.tree, held) {
            let (key, ()) = entry?;
            hash(&key, &[]);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    pub fn statement(&self, id: Uuid) -> Result<Option<StatementRecord>, ViewsError> {
        Ok(find_record(
            id,
            |key| self.tree.get(key),
            |sequence| self.records.record(sequence),
            self.record_dictionary(),
        )?
        .map(|(_, record)| record))
    }

    /// The dictionary records are compressed with, if trained.
    pub(crate) fn record_dictionary(&self) -> Option<&Dictionary> {
        self.dictionary.get()
    }

    /// Whether the dictionary of records is trained (it is, in a thread of
    /// its own, once the views hold [`DICTIONARY_SAMPLES`] statements;
    /// batches applied meanwhile compress their records without it).
    pub fn record_dictionary_trained(&self) -> bool {
        self.dictionary.get().is_some()
    }

    /// Starts training the dictionary of records beside the batches (a
    /// few hundred milliseconds of a core, during which a batch that
    /// waited for it would hold every write); whether it started.
    fn start_training_dictionary(&self) -> bool {
        let (records, dictionary) = (self.records.clone(), self.dictionary.clone());
        let train = move || match train_dictionary(&records) {
            Ok(trained) => {
                let _ = dictionary.set(trained);
            }
            Err(error) => {
                tracing::warn!(%error, "no dictionary could be trained for the statement records; they are compressed without one");
            }
        };
        match std::thread::Builder::new().name("record dictionary".to_owned()).spawn(train) {
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(%error, "cannot start training a dictionary for the statement records");
                false
            }
        }
    }

    /// The record of the statement at `stored`, as stored.
    pub(crate) fn record(&self, stored: StoredKey) -> Result<Vec<u8>, ViewsError> {
        self.records.record(stored.sequence)
    }

    /// The SHA-256 content fingerprint (see `content_fingerprint`) of the
    /// statement stored with `id`, taken from its record.
    pub fn fingerprint(&self, id: Uuid) -> Result<Option<[u8; 32]>, ViewsError> {
        Ok(self.statement(id)?.map(|record| lrs_xapi::statement::content_fingerprint(&record.statement)))
    }

    /// The ids of every statement stored, bucket by bucket (see
    /// [`keys::id_bucket`]); an entry that is not an id is reported as
    /// corrupt. The iterator owns what it
    /// reads, so it may go to a thread of its own.
    pub fn statement_ids(&self) -> impl Iterator<Item = Result<Uuid, ViewsError>> + Send + 'static {
        id_scan(&self.tree)
    }

    /// Whether the statement has been voided by a voiding statement.
    pub fn is_voided(&self, record: &StatementRecord) -> Result<bool, ViewsError> {
        if record.is_voiding() {
            return Ok(false);
        }
        let Some(id) = lrs_xapi::statement::statement_id(&record.statement) else {
            return Ok(false);
        };
        Ok(self.tree.contains_key(keys::voided(id))?)
    }

    pub fn document(&self, key: &DocumentKey) -> Result<Option<Document>, ViewsError> {
        match self.tree.get(keys::document(key))? {
            Some(bytes) => Ok(Some(decode_document(key.document_id.clone(), &bytes)?)),
            None => Ok(None),
        }
    }

    /// What became of the event at `offset` (once applied): see [`Outcome`].
    pub fn outcome(&self, offset: Offset) -> Result<Outcome, ViewsError> {
        match self.tree.get(keys::outcome(offset))? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| ViewsError::Corrupt(e.to_string())),
            None => Ok(Outcome::applied()),
        }
    }

    /// Documents of one scope, optionally only those updated after `since`.
    pub fn documents(
        &self,
        kind: &DocumentKind,
        activity_id: Option<&str>,
        agent: Option<&str>,
        registration: Option<&str>,
    ) -> Result<Vec<Document>, ViewsError> {
        let prefix = keys::document_scope(kind, activity_id, agent, registration);
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            out.push(decode_document(id, &value)?);
        }
        Ok(out)
    }

    /// The activity as the LRS knows it (merged definitions).
    pub fn activity(&self, id: &str) -> Result<Option<Value>, ViewsError> {
        match self.tree.get(keys::activity(id))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| ViewsError::Corrupt(e.to_string()))?)),
            None => Ok(None),
        }
    }

    /// Names seen for an agent IFI key.
    pub fn agent_names(&self, ifi: &str) -> Result<Vec<String>, ViewsError> {
        match self.tree.get(keys::agent(ifi))? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| ViewsError::Corrupt(e.to_string())),
            None => Ok(Vec::new()),
        }
    }

    /// An attachment's content type and bytes by SHA-2 hash.
    pub fn attachment(&self, sha2: &str) -> Result<Option<(String, Vec<u8>)>, ViewsError> {
        match self.tree.get(keys::attachment(sha2))? {
            Some(bytes) => {
                let document = decode_document(String::new(), &bytes)?;
                Ok(Some((document.content_type, document.content)))
            }
            None => Ok(None),
        }
    }
}

fn decode_u64(bytes: &[u8]) -> Result<u64, ViewsError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| ViewsError::Corrupt("a number of 8 bytes".to_owned()))?;
    Ok(u64::from_be_bytes(array))
}

/// The ids of every statement in `tree` (see [`Views::statement_ids`]).
fn id_scan(tree: &crate::Tree) -> impl Iterator<Item = Result<Uuid, ViewsError>> + Send + 'static {
    tree.scan_prefix([keys::STATEMENT_ID]).flat_map(|entry| {
        let ids = entry
            .map_err(ViewsError::from)
            .and_then(|(key, value)| keys::ids_under(&key, &value).ok_or_else(corrupt_id_entry));
        match ids {
            Ok(ids) => ids.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        }
    })
}

/// The id entry of the statement `id`, read with `get` (from the tree, or
/// through a batch's pending writes): in its bucket, or, if that is full,
/// under a key of its own.
fn find_id_entry<B: AsRef<[u8]>>(
    id: Uuid,
    get: impl Fn(&[u8]) -> Result<Option<B>, sled::Error>,
) -> Result<Option<IdEntry>, ViewsError> {
    let Some(bytes) = get(&keys::id_bucket(id))? else {
        return Ok(None);
    };
    let bucket = keys::IdBucket::parse(bytes.as_ref()).ok_or_else(corrupt_id_entry)?;
    if let Some(entry) = bucket.find(id) {
        return entry.map(Some).ok_or_else(corrupt_id_entry);
    }
    if !bucket.is_full() {
        return Ok(None);
    }
    match get(&keys::statement_id(id))? {
        Some(bytes) => IdEntry::from_bytes(bytes.as_ref()).map(Some).ok_or_else(corrupt_id_entry),
        None => Ok(None),
    }
}

/// What an id entry or bucket that cannot be read is reported as.
fn corrupt_id_entry() -> ViewsError {
    ViewsError::Corrupt("statement id entry".to_owned())
}

/// Writes the id entry of the statement `id` into the batch: into its
/// bucket, or, if that is full, under a key of its own.
fn put_id_entry(batch: &mut PendingBatch<'_>, id: Uuid, entry: IdEntry) -> Result<(), ViewsError> {
    let key = keys::id_bucket(id);
    let mut bucket = batch.get(&key)?.unwrap_or_default();
    if keys::IdBucket::parse(&bucket).ok_or_else(corrupt_id_entry)?.is_full() {
        batch.put(keys::statement_id(id), entry.to_bytes().to_vec());
    } else {
        keys::push_id_entry(&mut bucket, id, entry);
        batch.put(key, bucket);
    }
    Ok(())
}

/// The record of the statement `id` and where it is: its id entry read
/// with `get`, the record of its sequence with `read`.
fn find_record<B: AsRef<[u8]>>(
    id: Uuid,
    get: impl Fn(&[u8]) -> Result<Option<B>, sled::Error>,
    read: impl Fn(u64) -> Result<Vec<u8>, ViewsError>,
    dictionary: Option<&Dictionary>,
) -> Result<Option<(StoredKey, StatementRecord)>, ViewsError> {
    let Some(entry) = find_id_entry(id, &get)? else {
        return Ok(None);
    };
    let record = decode_record(&read(entry.sequence)?, dictionary)?;
    if lrs_xapi::statement::statement_id(&record.statement) != Some(id) || record.sequence != entry.sequence {
        return Err(ViewsError::Corrupt(format!("the id entry of {id} names another statement's record")));
    }
    Ok(Some((StoredKey { stored_micros: record.stored_micros, sequence: record.sequence }, record)))
}

/// The postings held in memory when the views were last written (see
/// [`crate::postings`]), read again from the records of the statements
/// numbered `from` up to `end`: each of their postings that is neither in a
/// chunk of its list (whose entries are all up to its last chunk's highest)
/// nor a late entry.
fn recover_postings(
    tree: &crate::Tree,
    records: &RecordFile,
    dictionary: Option<&Dictionary>,
    from: u64,
    end: u64,
) -> Result<PostingBuffer, ViewsError> {
    let mut buffer = PostingBuffer::default();
    let mut chunked_to: std::collections::HashMap<Vec<u8>, Option<StoredKey>> = std::collections::HashMap::new();
    let top = StoredKey { stored_micros: i64::MAX, sequence: u64::MAX };
    let mut held = Vec::new();
    for sequence in from..end {
        // A record that cannot be read is reported by the queries that
        // reach it (and makes the state digest differ); it does not keep
        // the views from opening.
        let record = match records.record(sequence).and_then(|bytes| decode_record(&bytes, dictionary)) {
            Ok(record) => record,
            Err(ViewsError::Corrupt(error)) => {
                tracing::warn!(%error, "a statement record cannot be read; its postings held are lost");
                continue;
            }
            Err(other) => return Err(other),
        };
        let Some(id) = lrs_xapi::statement::statement_id(&record.statement) else {
            tracing::warn!("a statement record has no id; its postings held are lost");
            continue;
        };
        let stored = record.stored_key();
        let facets = Facets::of_with(&record.statement, &record.inherited);
        // The list of all statements is never held.
        for list in facets.entries().into_iter().map(|(kind, value)| keys::posting_list(kind, value)) {
            let chunked = match chunked_to.get(&list) {
                Some(chunked) => *chunked,
                None => {
                    let bottom = StoredKey { stored_micros: i64::MIN, sequence: 0 };
                    let last = tree.range(keys::index_chunk(&list, bottom)..=keys::index_chunk(&list, top)).next_back();
                    let chunked = match last {
                        Some(chunk) => Some(crate::query::position_at_end(&chunk?.0)?),
                        None => None,
                    };
                    chunked_to.insert(list.clone(), chunked);
                    chunked
                }
            };
            if chunked.is_some_and(|chunked| stored <= chunked) || tree.contains_key(keys::late_entry(&list, stored))? {
                continue;
            }
            held.push((stored, list, id));
        }
    }
    // Each list's entries held in ascending order, as they were held: by
    // position, which the order of sequences need not be.
    held.sort_unstable();
    for (stored, list, id) in held {
        buffer.hold(list, (stored, id));
    }
    Ok(buffer)
}

/// The name of the file of statement records in the views' directory.
const RECORD_FILE: &str = "statement-records";
/// The name of the file of their slots (see `records.rs`).
const SLOT_FILE: &str = "statement-record-slots";

/// Empties the views: the tree (keeping only its layout) and the records.
/// The tree goes first, so a stop in between leaves an empty tree and a
/// file it cuts off when opened.
fn clear(tree: &crate::Tree, records: &RecordFile) -> Result<(), ViewsError> {
    tree.clear()?;
    records.clear()?;
    tree.insert(keys::META_LAYOUT, &keys::LAYOUT.to_be_bytes())?;
    Ok(())
}

/// Makes the views durable: the records first, then the tree that points
/// into them, so the tree on disk does not point past the file on disk.
fn flush(db: &sled::Db, records: &RecordFile) -> Result<(), ViewsError> {
    records.sync()?;
    db.flush()?;
    Ok(())
}

/// How often [`Flusher`] flushes the views (sled's own default).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Flushes the views every [`FLUSH_EVERY`], in the order [`flush`] keeps.
/// sled's own periodic flush is off for the views' store, since it would
/// not sync the records first. Dropping it stops the thread at once.
struct Flusher {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flusher {
    fn start(db: sled::Db, records: std::sync::Arc<RecordFile>) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("views-flush".to_owned())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(FLUSH_EVERY) {
                    if let Err(error) = flush(&db, &records) {
                        tracing::warn!(%error, "cannot flush the views (they are replayed from the log if lost)");
                    }
                }
            })
            .ok();
        if thread.is_none() {
            tracing::warn!("cannot start the thread that flushes the views; they are flushed when closed");
        }
        Self { stop: Some(stop), thread }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// First byte of a compressed statement record, followed by the length of
/// its JSON (u32, big-endian) and the JSON compressed as one zstd block. A
/// record left as JSON starts with `{`.
const COMPRESSED_RECORD: u8 = b'Z';

/// First byte of a record compressed with the views' dictionary of records,
/// then the length of its JSON (u32, big-endian) and the JSON compressed as
/// one zstd block with the dictionary.
const DICTIONARY_RECORD: u8 = b'D';

/// Statements stored before the views train a dictionary of records, from
/// the records of these first statements; every record written after that
/// is compressed with it. A record of generated Learning Hub traffic then
/// takes about 16 % of its statement's JSON instead of 54 %: a statement alone holds
/// little that repeats, while statements share their field names, verb,
/// profile and extension IRIs. zstd trains one from 4,096 records of 1.3 KB
/// in about 0.3 s, once.
pub(crate) const DICTIONARY_SAMPLES: u64 = 4096;

/// The largest dictionary trained.
const MAX_DICTIONARY: usize = 64 * 1024;

/// zstd level of statement records: each is compressed once, when stored,
/// to about 45 % of its JSON in 8 µs here (the negative levels take 3-5 µs
/// but leave records a quarter to a half longer).
const RECORD_COMPRESSION_LEVEL: i32 = 1;

/// Records shorter than this are left as JSON (too small to gain much).
const COMPRESS_RECORDS_FROM: usize = 128;

/// The longest JSON a compressed record may claim (a guard against a
/// corrupt length, far above any statement the API accepts).
const MAX_RECORD_JSON: usize = 64 << 20;

/// The JSON of a stored record, decompressed if it was compressed (with
/// `dictionary`, the views' own, if it says so).
fn record_json<'b>(bytes: &'b [u8], dictionary: Option<&Dictionary>) -> Result<std::borrow::Cow<'b, [u8]>, ViewsError> {
    let corrupt = |reason: String| ViewsError::Corrupt(format!("statement record: {reason}"));
    let (tag, rest) = match bytes.split_first() {
        Some((&tag @ (COMPRESSED_RECORD | DICTIONARY_RECORD), rest)) => (tag, rest),
        _ => return Ok(std::borrow::Cow::Borrowed(bytes)),
    };
    let (length, block) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt("cut short".to_owned()))?;
    let length = u32::from_be_bytes(*length) as usize;
    if length > MAX_RECORD_JSON {
        return Err(corrupt(format!("claims {length} bytes")));
    }
    let json = match (tag, dictionary) {
        (COMPRESSED_RECORD, _) => compression::decompress(block, length),
        (_, Some(dictionary)) => dictionary.decompress(block, length),
        (_, None) => return Err(corrupt("compressed with a dictionary the views do not have".to_owned())),
    };
    Ok(std::borrow::Cow::Owned(json.map_err(|e| corrupt(e.to_string()))?))
}

/// The JSON of the record of statement `sequence` in `records`.
fn record_json_of(records: &RecordFile, sequence: u64, dictionary: Option<&Dictionary>) -> Result<Vec<u8>, ViewsError> {
    Ok(record_json(&records.record(sequence)?, dictionary)?.into_owned())
}

/// Trains the dictionary of records on the records of the first
/// [`DICTIONARY_SAMPLES`] statements (compressed without one): the same
/// records, so the same dictionary, however the log was cut into batches.
fn train_dictionary(records: &RecordFile) -> Result<Dictionary, ViewsError> {
    let mut samples = Vec::new();
    for sequence in 0..DICTIONARY_SAMPLES {
        match record_json_of(records, sequence, None) {
            Ok(json) => samples.push(json),
            // A record that cannot be read is not a sample; the queries
            // that reach it report it.
            Err(ViewsError::Corrupt(_)) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(Dictionary::train(&samples, MAX_DICTIONARY, RECORD_COMPRESSION_LEVEL)?)
}

pub(crate) fn decode_record(bytes: &[u8], dictionary: Option<&Dictionary>) -> Result<StatementRecord, ViewsError> {
    let RecordIn { stored_micros, sequence, statement, inherited } =
        serde_json::from_slice(&record_json(bytes, dictionary)?)
            .map_err(|e| ViewsError::Corrupt(format!("statement record: {e}")))?;
    Ok(StatementRecord { stored_micros, sequence, statement, inherited })
}

/// A statement record as a query reads it: the statement left as JSON text.
#[derive(Deserialize)]
struct RawRecordIn<'a> {
    stored_micros: i64,
    sequence: u64,
    #[serde(borrow)]
    statement: &'a RawValue,
    #[serde(default)]
    inherited: Facets,
}

/// A statement a query found, as JSON text: most pages go out as stored, so
/// the statement is parsed only when a filter or a format needs it.
#[derive(Debug, Clone)]
pub struct FoundStatement {
    pub stored_micros: i64,
    pub sequence: u64,
    /// The statement as [`StatementRecord::statement`] holds it, as the
    /// compact JSON text serde_json writes for it.
    pub json: Box<RawValue>,
    /// Facets inherited by StatementRef (see [`StatementRecord`]).
    pub(crate) inherited: Facets,
    /// What the query and the server read of the statement, from its text.
    pub(crate) peeked: Peeked,
}

/// What is read of a found statement without building it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peeked {
    pub(crate) id: Option<Uuid>,
    /// It voids another statement.
    pub(crate) voiding: bool,
    /// It has a `timestamp`.
    pub(crate) timestamp: bool,
}

impl FoundStatement {
    pub fn stored_key(&self) -> StoredKey {
        StoredKey { stored_micros: self.stored_micros, sequence: self.sequence }
    }

    /// The statement, parsed.
    pub fn statement(&self) -> Result<Value, ViewsError> {
        serde_json::from_str(self.json.get()).map_err(|e| ViewsError::Corrupt(format!("statement record: {e}")))
    }

    /// Whether the statement has a `timestamp` (one without is returned
    /// with `stored` as its timestamp).
    pub fn has_timestamp(&self) -> bool {
        self.peeked.timestamp
    }
}

/// The id, voiding and timestamp of a statement, read from its text in one
/// pass that skips everything else.
fn peek(json: &str) -> Result<Peeked, ViewsError> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        verb: Option<PeekId<'a>>,
        #[serde(borrow, default)]
        object: Option<PeekObject<'a>>,
        #[serde(default)]
        timestamp: Option<serde::de::IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct PeekId<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct PeekObject<'a> {
        #[serde(borrow, default, rename = "objectType")]
        object_type: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
    }
    let Ok(peek) = serde_json::from_str::<Peek<'_>>(json) else {
        // Not the shape a validated statement has: read it in full.
        let statement: Value =
            serde_json::from_str(json).map_err(|e| ViewsError::Corrupt(format!("statement record: {e}")))?;
        return Ok(Peeked {
            id: lrs_xapi::statement::statement_id(&statement),
            voiding: voided_target(&statement).is_some(),
            timestamp: statement.get("timestamp").is_some_and(|t| !t.is_null()),
        });
    };
    let voiding = peek.verb.and_then(|verb| verb.id).is_some_and(|verb| verb == VOIDED_VERB)
        && peek.object.is_some_and(|object| {
            object.object_type.as_deref() == Some("StatementRef")
                && object.id.is_some_and(|target| Uuid::parse_str(&target).is_ok())
        });
    Ok(Peeked { id: peek.id.and_then(|id| Uuid::parse_str(&id).ok()), voiding, timestamp: peek.timestamp.is_some() })
}

pub(crate) fn decode_found(bytes: &[u8], dictionary: Option<&Dictionary>) -> Result<FoundStatement, ViewsError> {
    let json = record_json(bytes, dictionary)?;
    let RawRecordIn { stored_micros, sequence, statement, inherited } =
        serde_json::from_slice(&json).map_err(|e| ViewsError::Corrupt(format!("statement record: {e}")))?;
    let peeked = peek(statement.get())?;
    Ok(FoundStatement { stored_micros, sequence, json: statement.to_owned(), inherited, peeked })
}

/// The record as JSON, compressed when that makes it shorter: with
/// `dictionary` if the views have trained theirs.
fn encode_record(record: &RecordOut<'_>, dictionary: Option<&Dictionary>) -> Vec<u8> {
    let json = serde_json::to_vec(record).unwrap_or_default();
    if json.len() < COMPRESS_RECORDS_FROM || json.len() > MAX_RECORD_JSON {
        return json;
    }
    let (tag, compressed) = match dictionary {
        Some(dictionary) => (DICTIONARY_RECORD, dictionary.compress(&json)),
        None => (COMPRESSED_RECORD, compression::compress(&json, RECORD_COMPRESSION_LEVEL)),
    };
    match compressed {
        Ok(block) if block.len() + 5 < json.len() => {
            let mut out = Vec::with_capacity(block.len() + 5);
            out.push(tag);
            out.extend_from_slice(&(json.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
            out
        }
        _ => json,
    }
}

fn apply_event(
    batch: &mut PendingBatch<'_>,
    applying: &mut Applying<'_>,
    offset: Offset,
    event: &Event,
) -> Result<(), ViewsError> {
    match event {
        Event::StatementsStored { statements, attachments } => {
            apply_statements(batch, applying, offset, statements, attachments)?;
        }
        Event::DocumentSet { key, content_type, content, etag, updated } => {
            batch.put(keys::document(key), encode_document(content_type, etag, updated, content));
        }
        Event::DocumentDeleted { key, .. } => batch.delete(keys::document(key)),
        Event::StateCleared { activity_id, agent, registration, .. } => {
            clear_state(batch, activity_id, agent, registration.as_deref())?;
        }
        Event::DocumentRequested { key, op, if_match, if_none_match, updated } => {
            let stored = match batch.get(&keys::document(key))? {
                Some(bytes) => Some(decode_document(String::new(), &bytes)?),
                None => None,
            };
            let current = stored.as_ref().map(|d| document::Current {
                content_type: &d.content_type,
                content: &d.content,
                etag: &d.etag,
            });
            match document::decide(op, if_match.as_deref(), if_none_match.as_deref(), current) {
                Ok(document::Decision::Set { content_type, content, etag }) => {
                    batch.put(keys::document(key), encode_document(&content_type, &etag, updated, &content));
                }
                Ok(document::Decision::Delete) => batch.delete(keys::document(key)),
                Ok(document::Decision::ClearState) => clear_state(
                    batch,
                    key.activity_id.as_deref().unwrap_or_default(),
                    key.agent.as_deref().unwrap_or_default(),
                    key.registration.as_deref(),
                )?,
                Ok(document::Decision::Unchanged) => {}
                Err(refusal) => record_outcome(
                    batch,
                    offset,
                    &Outcome { status: refusal.status, message: refusal.message, repeats: Vec::new() },
                ),
            }
        }
        // Directories feed the Learning Hub views, not the xAPI ones.
        Event::LearnersImported { .. } | Event::OrganisationsImported { .. } => {}
    }
    Ok(())
}

fn record_outcome(batch: &mut PendingBatch<'_>, offset: Offset, outcome: &Outcome) {
    batch.put(keys::outcome(offset), serde_json::to_vec(outcome).unwrap_or_default());
}

fn clear_state(
    batch: &mut PendingBatch<'_>,
    activity_id: &str,
    agent: &str,
    registration: Option<&str>,
) -> Result<(), ViewsError> {
    let prefix = match registration {
        Some(registration) => {
            keys::document_scope(&DocumentKind::State, Some(activity_id), Some(agent), Some(registration))
        }
        None => keys::document_scope_any_registration(&DocumentKind::State, Some(activity_id), Some(agent)),
    };
    for key in batch.keys_with_prefix(&prefix)? {
        batch.delete(key);
    }
    Ok(())
}

/// Applies the statements of one event, all or nothing: the log decides
/// conflicts. The embedded writer never appends a conflict, but ingest
/// replicas on Kafka append without knowing what the others append, so
/// every projection applies the same rule at the same point of the log: an
/// event with a statement whose id is already stored with other content is
/// refused whole (409), and statements already stored identically are
/// repeats, skipped. `stored` only moves forward: a statement whose
/// `stored` is not after the last one projected takes the last one plus a
/// microsecond, so `Consistent-Through` can be the last `stored` seen.
fn apply_statements(
    batch: &mut PendingBatch<'_>,
    applying: &mut Applying<'_>,
    offset: Offset,
    statements: &[Value],
    attachments: &[lrs_xapi::events::AttachmentContent],
) -> Result<(), ViewsError> {
    let mut repeats = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        let Some(id) = lrs_xapi::statement::statement_id(statement) else {
            return Err(ViewsError::Corrupt("stored statement without an id".to_owned()));
        };
        if !applying.ids.may_contain(id) {
            continue;
        }
        if let Some((_, existing)) = applying.find_record(batch, id)? {
            let fingerprint = lrs_xapi::statement::content_fingerprint;
            if fingerprint(&existing.statement) != fingerprint(statement) {
                let message = format!("a different statement with id {id} is already stored; statements are immutable");
                record_outcome(batch, offset, &Outcome { status: 409, message, repeats: Vec::new() });
                return Ok(());
            }
            repeats.push(index);
        }
    }
    if !repeats.is_empty() {
        record_outcome(batch, offset, &Outcome { status: 200, message: String::new(), repeats: repeats.clone() });
    }
    for attachment in attachments {
        let value = encode_document(&attachment.content_type, "", "", &attachment.content);
        batch.put(keys::attachment(&attachment.sha2), value);
    }
    let mut stored_override = None;
    if let Some(first) = statements.first() {
        let last = applying.book.last_stored.unwrap_or(i64::MIN);
        if stored_micros(first) <= last {
            stored_override = DateTime::from_timestamp_micros(last + 1).map(lrs_xapi::statement::format_time);
        }
    }
    for (index, statement) in statements.iter().enumerate() {
        if repeats.contains(&index) {
            continue;
        }
        match &stored_override {
            // Rare (ingest replicas' clocks disagree): the event may be
            // shared, so the statement changed is a copy.
            Some(stored) if statement.is_object() => {
                let mut statement = statement.clone();
                if let Some(object) = statement.as_object_mut() {
                    object.insert("stored".to_owned(), Value::String(stored.clone()));
                }
                apply_statement(batch, applying, &statement)?;
            }
            _ => apply_statement(batch, applying, statement)?,
        }
    }
    Ok(())
}

/// Writes the postings a batch collected: per list, the entries above every
/// position already posted join what the list holds in memory, written as
/// one chunk (one sled key) when the plan says so (see
/// [`crate::postings`]), except the list of all statements, whose new
/// entries are a chunk every batch; any at or below it (older statements
/// that gained facets) are a late entry each. Returns the plan, for the
/// held postings to take in once the batch is written.
fn write_postings(
    batch: &mut PendingBatch<'_>,
    book: &mut Bookkeeping,
    held: &PostingBuffer,
) -> Result<Plan, ViewsError> {
    let postings = batch.take_postings();
    let high = book.index_high;
    let mut new_high = high;
    let mut added = Vec::with_capacity(postings.len());
    let all = keys::all_statements();
    for (list, mut entries) in postings {
        entries.sort_unstable_by_key(|(stored, _)| *stored);
        entries.dedup_by_key(|(stored, _)| *stored);
        let late = high.map_or(0, |high| entries.partition_point(|(stored, _)| *stored <= high));
        for (stored, id) in &entries[..late] {
            batch.put(keys::late_entry(&list, *stored), id.as_bytes().to_vec());
        }
        let new = entries.split_off(late);
        if let Some((highest, _)) = new.last() {
            new_high = new_high.max(Some(*highest));
            if list == all {
                // Never held: a statement whose record cannot be read
                // after a stop is still walked by the queries with no
                // filter, which report it.
                put_chunk(batch, &list, &new);
            } else {
                added.push((list, new));
            }
        }
    }
    book.index_high = new_high;
    let plan = held.plan(added, book.sequence, LIMITS);
    for (list, entries) in held.chunks(&plan) {
        put_chunk(batch, list, &entries);
    }
    book.postings_from = plan.held_from;
    Ok(plan)
}

/// Writes `entries` (ascending) as one chunk of `list`.
fn put_chunk(batch: &mut PendingBatch<'_>, list: &[u8], entries: &[Posting]) {
    let Some((highest, _)) = entries.last() else {
        return;
    };
    batch.put(keys::index_chunk(list, *highest), keys::encode_chunk(entries.iter().map(|(stored, _)| *stored)));
}

fn stored_micros(statement: &Value) -> i64 {
    statement
        .get("stored")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

/// Stores one new statement at the next sequence.
fn apply_statement(
    batch: &mut PendingBatch<'_>,
    applying: &mut Applying<'_>,
    statement: &Value,
) -> Result<(), ViewsError> {
    let Some(id) = lrs_xapi::statement::statement_id(statement) else {
        return Err(ViewsError::Corrupt("stored statement without an id".to_owned()));
    };
    let micros = stored_micros(statement);
    let mut facets = Facets::of(statement);
    let mut inherited = Facets::default();
    let sequence = applying.book.sequence;
    applying.book.sequence += 1;
    let stored_key = StoredKey { stored_micros: micros, sequence };

    if let Some(target) = statement_ref_target(statement) {
        batch.put(keys::reference(target, id), Vec::new());
        applying.referenced.insert(target);
        if let Some((_, target)) = applying.find_record(batch, target)? {
            inherited = target.facets().beyond(&facets);
            facets.merge(&inherited);
        }
    }
    if let Some(target) = voided_target(statement) {
        batch.put(keys::voided(target), id.as_bytes().to_vec());
    }
    for (kind, value) in facets.entries() {
        batch.post(keys::posting_list(kind, value), stored_key, id);
    }
    batch.post(keys::all_statements(), stored_key, id);
    if applying.book.last_stored.is_none_or(|last| micros > last) {
        applying.book.last_stored = Some(micros);
    }
    remember_activities(batch, applying, statement)?;
    remember_agent_names(batch, applying, statement)?;
    applying.put_record(batch, &RecordOut { stored_micros: micros, sequence, statement, inherited: &inherited })?;
    put_id_entry(batch, id, IdEntry { sequence })?;
    applying.ids.insert(id);
    propagate_to_referrers(batch, applying, id, &facets, 0)
}

/// Statements that target `target` by StatementRef match the filters the
/// target matches; give them the target's facets (recursively).
fn propagate_to_referrers(
    batch: &mut PendingBatch<'_>,
    applying: &mut Applying<'_>,
    target: Uuid,
    facets: &Facets,
    depth: usize,
) -> Result<(), ViewsError> {
    if depth > 16 || !applying.referenced.may_contain(target) {
        return Ok(());
    }
    let prefix = keys::references_prefix(target);
    for key in batch.keys_with_prefix(&prefix)? {
        let Ok(referrer) = Uuid::from_slice(&key[prefix.len()..]) else {
            continue;
        };
        let Some((stored_key, mut record)) = applying.find_record(batch, referrer)? else {
            continue;
        };
        let own = Facets::of(&record.statement);
        let mut before = own.clone();
        before.merge(&record.inherited);
        let mut merged = before.clone();
        merged.merge(facets);
        if merged == before {
            continue;
        }
        let already = before.entries();
        for (kind, value) in merged.entries() {
            if !already.contains(&(kind, value)) {
                batch.post(keys::posting_list(kind, value), stored_key, referrer);
            }
        }
        record.inherited = merged.beyond(&own);
        applying.put_record(batch, &RecordOut::from(&record))?;
        propagate_to_referrers(batch, applying, referrer, &merged, depth + 1)?;
    }
    Ok(())
}

fn remember_activities(
    batch: &mut PendingBatch<'_>,
    applying: &mut Applying<'_>,
    statement: &Value,
) -> Result<(), ViewsError> {
    for activity in activities_with_definitions(statement) {
        let Some(id) = activity.get("id").and_then(Value::as_str) else {
            continue;
        };
        let definition = activity.get("definition").and_then(Value::as_object);
        let hash = definition.map(|definition| applying.definitions.hash(definition));
        match (applying.last_definition(id), hash) {
            // Known, and nothing to merge, or the definition merged last.
            (Some(_), None) => continue,
            (Some(last), Some(_)) if last == hash => continue,
            (last, _) => {
                // A definition takes the place of the last one; a bare
                // mention leaves what is remembered.
                applying.merged.insert(id.to_owned(), hash.or(last.flatten()));
            }
        }
        let key = keys::activity(id);
        let existing = batch.get(&key)?;
        let mut known: Value = match &existing {
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| ViewsError::Corrupt(e.to_string()))?,
            None => serde_json::json!({ "objectType": "Activity", "id": id }),
        };
        let Some(definition) = definition else {
            if existing.is_none() {
                batch.put(key, serde_json::to_vec(&known).unwrap_or_default());
            }
            continue;
        };
        let merged = known
            .as_object_mut()
            .and_then(|k| {
                k.entry("definition").or_insert_with(|| Value::Object(Map::new()));
                k.get_mut("definition")
            })
            .and_then(Value::as_object_mut);
        if let Some(merged) = merged {
            for (property, value) in definition {
                match (merged.get_mut(property), value) {
                    (Some(Value::Object(existing)), Value::Object(incoming)) if property != "extensions" => {
                        for (k, v) in incoming {
                            existing.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        merged.insert(property.clone(), value.clone());
                    }
                }
            }
        }
        // Most statements repeat a definition already known: write only a
        // change (each write costs a sled insert).
        let merged = serde_json::to_vec(&known).unwrap_or_default();
        if existing.as_deref() != Some(merged.as_slice()) {
            batch.put(key, merged);
        }
    }
    Ok(())
}

fn remember_agent_names(
    batch: &mut PendingBatch<'_>,
    applying: &mut Applying<'_>,
    statement: &Value,
) -> Result<(), ViewsError> {
    let actor = &statement["actor"];
    let (Some(ifi), Some(name)) = (ifi_key(actor), actor.get("name").and_then(Value::as_str)) else {
        return Ok(());
    };
    let known = applying.named.get(&ifi).or_else(|| applying.names.by_agent.get(&ifi));
    if known.is_some_and(|names| names.iter().any(|n| n == name)) {
        return Ok(());
    }
    let key = keys::agent(&ifi);
    let mut names: Vec<String> = match batch.get(&key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| ViewsError::Corrupt(e.to_string()))?,
        None => Vec::new(),
    };
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
        batch.put(key, serde_json::to_vec(&names).unwrap_or_default());
    }
    applying.named.insert(ifi, names);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn bookkeeping_with_nothing_held_keeps_the_length_older_views_read() {
        let position = |sequence| StoredKey { stored_micros: 1_767_225_600_000_000, sequence };
        let book = Bookkeeping {
            offset: 12,
            sequence: 40,
            last_stored: Some(1_767_225_600_000_000),
            index_high: Some(position(39)),
            records_end: 9_000,
            postings_from: None,
        };
        assert_eq!(book.to_bytes().len(), Bookkeeping::LEN);
        assert_eq!(Bookkeeping::from_bytes(&book.to_bytes()).unwrap(), book);
        let holding = Bookkeeping { postings_from: Some(30), ..book };
        assert_eq!(holding.to_bytes().len(), Bookkeeping::LEN + 8);
        assert_eq!(Bookkeeping::from_bytes(&holding.to_bytes()).unwrap(), holding);
        assert!(Bookkeeping::from_bytes(&holding.to_bytes()[..Bookkeeping::LEN + 3]).is_err());
    }

    fn statement() -> Value {
        json!({
            "id": "0d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "actor": { "mbox": "mailto:learner@example.nhs.uk" },
            "verb": { "id": "http://adlnet.gov/expapi/verbs/completed" },
            "object": { "id": "https://courses.example.com/infection-control" },
            "context": {
                "registration": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
                "instructor": { "mbox": "mailto:tutor@example.nhs.uk" },
                "contextActivities": { "parent": [{ "id": "https://courses.example.com/safety" }] }
            },
            "stored": "2026-03-01T10:00:00Z"
        })
    }

    /// The fields of an encoded record's JSON.
    fn fields(bytes: &[u8]) -> Vec<String> {
        let value: Value = serde_json::from_slice(&record_json(bytes, None).unwrap()).unwrap();
        let mut fields: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        fields
    }

    #[test]
    fn a_record_keeps_the_statement_but_not_the_facets_it_gives_itself() {
        let record =
            StatementRecord { stored_micros: 7, sequence: 3, statement: statement(), inherited: Facets::default() };
        let bytes = encode_record(&RecordOut::from(&record), None);
        assert_eq!(fields(&bytes), ["sequence", "statement", "stored_micros"]);
        let read = decode_record(&bytes, None).unwrap();
        assert_eq!(read.facets(), Facets::of(&statement()));
        assert_eq!(read.facets().agents, ["mbox:mailto:learner@example.nhs.uk"]);
        assert_eq!(read.facets().registrations, ["6690e6c9-3ef0-4ed3-8b37-7f3964730bee"]);
        assert!(read.facets().related_activities.contains(&"https://courses.example.com/safety".to_owned()));
    }

    #[test]
    fn a_record_is_stored_compressed_and_reads_back_the_same() {
        let record =
            StatementRecord { stored_micros: 7, sequence: 3, statement: statement(), inherited: Facets::default() };
        let json = serde_json::to_vec(&RecordOut {
            stored_micros: 7,
            sequence: 3,
            statement: &record.statement,
            inherited: &record.inherited,
        })
        .unwrap();
        let bytes = encode_record(&RecordOut::from(&record), None);
        assert_eq!(bytes[0], COMPRESSED_RECORD);
        assert!(bytes.len() < json.len(), "{} bytes stored for {} of JSON", bytes.len(), json.len());
        let read = decode_record(&bytes, None).unwrap();
        assert_eq!((read.stored_micros, read.sequence, &read.statement), (7, 3, &record.statement));

        // A small record stays JSON; damage is an error, not a panic.
        let small = StatementRecord { statement: json!({}), ..record };
        assert_eq!(encode_record(&RecordOut::from(&small), None)[0], b'{');
        assert!(decode_record(&bytes[..bytes.len() - 3], None).is_err());
        assert!(decode_record(&[COMPRESSED_RECORD, 0xFF, 0xFF, 0xFF, 0xFF, 0], None).is_err());
        assert!(decode_record(&[COMPRESSED_RECORD, 0], None).is_err());
    }

    #[test]
    fn a_record_keeps_only_the_facets_it_inherits_beyond_its_own() {
        let own = Facets::of(&statement());
        let target = Facets {
            agents: vec!["mbox:mailto:other@example.nhs.uk".to_owned()],
            verbs: own.verbs.clone(),
            activities: vec!["https://courses.example.com/genomics".to_owned()],
            ..Facets::default()
        };
        let inherited = target.beyond(&own);
        assert!(inherited.verbs.is_empty(), "a verb the statement has itself is not kept twice");
        let record = StatementRecord { stored_micros: 7, sequence: 3, statement: statement(), inherited };
        let bytes = encode_record(&RecordOut::from(&record), None);
        let stored: Value = serde_json::from_slice(&record_json(&bytes, None).unwrap()).unwrap();
        assert_eq!(
            stored["inherited"],
            json!({
                "agents": ["mbox:mailto:other@example.nhs.uk"],
                "activities": ["https://courses.example.com/genomics"]
            })
        );
        let mut expected = own;
        expected.merge(&target);
        assert_eq!(decode_record(&bytes, None).unwrap().facets(), expected);
    }

    fn stored(id: Uuid, verb: &str, object: Value, second: u32) -> Value {
        json!({
            "id": id.to_string(),
            "actor": { "mbox": "mailto:learner@example.nhs.uk" },
            "verb": { "id": verb },
            "object": object,
            "stored": format!("2026-03-01T10:00:{second:02}.000000Z")
        })
    }

    fn at(offset: Offset, statements: Vec<Value>) -> LogRecord {
        let event = Event::StatementsStored { statements, attachments: Vec::new() };
        LogRecord { offset, payload: lrs_xapi::events::encode(&event) }
    }

    /// Statements' id entries are packed into buckets; the ids of a bucket
    /// that is full have keys of their own, and are found, listed and
    /// checked for conflicts as the others are, after a reopen too.
    #[test]
    fn ids_whose_bucket_is_full_are_stored_under_keys_of_their_own_and_found_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let crowded =
            crate::id_filter::ids_sharing_top_bits(keys::ID_BUCKET_BITS, keys::ID_BUCKET_CAPACITY as u64 + 40);
        let spread: Vec<Uuid> = (0..500).map(|_| Uuid::new_v4()).collect();
        let statement =
            |id: Uuid| stored(id, "https://example.org/verbs/a", json!({ "id": "https://example.org/a" }), 1);
        let views = Views::open(dir.path(), crate::StoreOptions::cache(1 << 20)).unwrap();
        let (first, second) = crowded.split_at(100);
        views.apply(&[at(0, first.iter().map(|id| statement(*id)).collect())]).unwrap();
        views.apply(&[at(1, second.iter().chain(&spread).map(|id| statement(*id)).collect())]).unwrap();
        drop(views);
        let views = Views::open(dir.path(), crate::StoreOptions::cache(1 << 20)).unwrap();

        let own_keys =
            views.tree.scan_prefix([keys::STATEMENT_ID]).keys().filter(|key| key.as_ref().unwrap().len() == 17);
        assert_eq!(own_keys.count(), 40, "only the ids past a full bucket have keys of their own");
        let buckets = views.tree.scan_prefix([keys::STATEMENT_ID]).count() - 40;
        assert!(buckets <= 501, "{buckets} buckets for 501 of them at most");
        for id in crowded.iter().chain(&spread) {
            let record = views.statement(*id).unwrap().unwrap_or_else(|| panic!("{id} is found"));
            assert_eq!(
                views.fingerprint(*id).unwrap(),
                Some(lrs_xapi::statement::content_fingerprint(&record.statement))
            );
        }
        let mut listed: Vec<Uuid> = views.statement_ids().map(Result::unwrap).collect();
        let mut expected: Vec<Uuid> = crowded.iter().chain(&spread).copied().collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected, "every id listed once");
        let unknown =
            crate::id_filter::ids_sharing_top_bits(keys::ID_BUCKET_BITS, keys::ID_BUCKET_CAPACITY as u64 + 41).pop();
        assert_eq!(views.fingerprint(unknown.unwrap()).unwrap(), None, "an id of the full bucket not stored");

        // In the bucket, and past it: a repeat is skipped, other content refused.
        let (inside, outside) = (crowded[3], crowded[keys::ID_BUCKET_CAPACITY + 2]);
        let other = |id: Uuid| stored(id, "https://example.org/verbs/b", json!({ "id": "https://example.org/b" }), 2);
        views.apply(&[at(2, vec![other(inside)]), at(3, vec![other(outside)])]).unwrap();
        views.apply(&[at(4, vec![statement(inside), statement(outside)])]).unwrap();
        assert_eq!((views.outcome(2).unwrap().status, views.outcome(3).unwrap().status), (409, 409));
        assert_eq!(views.outcome(4).unwrap().repeats, vec![0, 1]);

        // An entry is checked against the record it names.
        let stray = Uuid::new_v4();
        let mut bucket = views.tree.get(keys::id_bucket(stray)).unwrap().map(|b| b.to_vec()).unwrap_or_default();
        keys::push_id_entry(&mut bucket, stray, IdEntry { sequence: 7 });
        views.tree.insert(keys::id_bucket(stray), bucket).unwrap();
        assert!(matches!(views.statement(stray), Err(ViewsError::Corrupt(_))), "the record is another id's");
    }

    /// The views answer "is this id stored?" and "does any statement refer
    /// to this one?" from filters built from the tree when they open: what
    /// was stored before is known while the filters are built and after.
    #[test]
    fn ids_and_statement_ref_targets_stored_before_the_views_reopened_are_known_while_and_after_their_filters_are_built()
     {
        for wait_for_filters in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (taken, referrer, target) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
            let first = stored(taken, "https://example.org/verbs/a", json!({ "id": "https://example.org/a" }), 1);
            let reference = json!({ "objectType": "StatementRef", "id": target.to_string() });
            let referring = stored(referrer, "https://example.org/verbs/b", reference, 2);
            let views = Views::open(dir.path(), crate::StoreOptions::cache(1 << 20)).unwrap();
            views.apply(&[at(0, vec![first.clone(), referring])]).unwrap();
            drop(views);
            // A reopen waits, bounded, for the lock sled releases after a close.
            let views = Views::open(dir.path(), crate::StoreOptions::cache(1 << 20)).unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            assert!(views.kept().filters.is_none(), "views that apply nothing scan nothing");
            if wait_for_filters {
                // Started when a process that writes opens the views (else
                // by the first batch applied).
                views.start_filters();
                assert!(views.filters_started());
                loop {
                    let mut kept = views.kept();
                    let filters = kept.filters.as_mut().unwrap();
                    filters.ids.poll_built();
                    filters.referenced.poll_built();
                    if filters.ids.is_ready() && filters.referenced.is_ready() {
                        assert!(filters.ids.may_contain(taken) && filters.referenced.may_contain(target));
                        break;
                    }
                    drop(kept);
                    assert!(std::time::Instant::now() < deadline, "the filters were built");
                    std::thread::yield_now();
                }
            }
            let other = stored(taken, "https://example.org/verbs/c", json!({ "id": "https://example.org/c" }), 3);
            let mut repeat = first.clone();
            repeat["stored"] = json!("2026-03-01T10:00:04.000000Z");
            let arriving = stored(target, "https://example.org/verbs/d", json!({ "id": "https://example.org/d" }), 5);
            views.apply(&[at(1, vec![other]), at(2, vec![repeat]), at(3, vec![arriving])]).unwrap();
            assert_eq!(views.outcome(1).unwrap().status, 409, "the id was known (waited: {wait_for_filters})");
            assert_eq!(views.outcome(2).unwrap().repeats, vec![0], "a repeat (waited: {wait_for_filters})");
            let by_activity =
                crate::StatementQuery { activity: Some("https://example.org/d".into()), ..Default::default() };
            let mut found: Vec<String> = views
                .query(&by_activity, 10)
                .unwrap()
                .statements
                .into_iter()
                .map(|found| found.statement().unwrap()["id"].as_str().unwrap().to_owned())
                .collect();
            found.sort();
            let mut expected = vec![target.to_string(), referrer.to_string()];
            expected.sort();
            assert_eq!(found, expected, "the referrer inherits its target's facets (waited: {wait_for_filters})");
        }
    }
}
