//! The single writer of the embedded store.
//!
//! Every write passes through one task that decides it against the current
//! state (is this statement id taken? does the document's ETag match?) and
//! appends the resulting events. Requests that arrive while an append is
//! being flushed are decided and appended together in the next cycle, so
//! the log's flush is shared (group commit) and decisions never race.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use lrs_eventlog::{EventLog, Offset};
use lrs_projection::{EventHandoff, Views};
use lrs_xapi::document;
use lrs_xapi::events::{self, AttachmentContent, DocumentKey, Event};
use lrs_xapi::statement::{format_time, statement_id};

use crate::error::ApiError;
use lrs_projection::id_filter::KnownIds;

/// log2 of the bits of the writer's filter of stored ids: 2^28 bits are 32
/// MiB, so up to about 10 million ids fewer than one check in 10,000 reads
/// the views; at 30 million about one in a hundred does.
const FILTER_BITS_LOG2: u32 = 28;

/// Statements of one request, validated and completed except for `stored`.
#[derive(Clone)]
pub struct StatementBatch {
    pub statements: Vec<Value>,
    /// Fingerprint of each statement as the client sent it.
    pub fingerprints: Vec<[u8; 32]>,
    pub attachments: Vec<AttachmentContent>,
}

pub use lrs_xapi::document::{DocumentOp, PutPrecondition};

pub struct DocumentCommand {
    pub key: DocumentKey,
    pub op: DocumentOp,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

/// The log offset a reader must have applied to see a write.
pub type VisibleAt = Offset;

/// Statements the writer did not store, and why. A batch refused before
/// any of it was stored (the views too far behind, the queue full, an id
/// taken by other content) comes back whole, so a caller that offers it
/// again (`lrs import`) keeps no copy of its own.
pub struct Refused {
    pub error: ApiError,
    pub batch: Option<StatementBatch>,
}

impl Refused {
    fn without_batch(error: ApiError) -> Self {
        Self { error, batch: None }
    }
}

/// Where the writer answers a batch of statements.
type StatementsReply = oneshot::Sender<Result<VisibleAt, Refused>>;

enum Command {
    /// Events that need no decision (directory imports), appended in order.
    Append(Vec<Event>, oneshot::Sender<Result<VisibleAt, ApiError>>),
    Statements(StatementBatch, StatementsReply),
    Document(DocumentCommand, oneshot::Sender<Result<VisibleAt, ApiError>>),
}

/// What readers need to know to be honest about consistency.
#[derive(Default)]
pub struct WriteProgress {
    in_cycle: AtomicBool,
    appended_end: AtomicU64,
    /// Statements newly stored (repeats not counted), for the metrics.
    statements_stored: AtomicU64,
    /// How the writer learned whether a statement id was taken, for the
    /// metrics: by [`IdCheck`], in the order of `IdCheck::ALL`.
    id_checks: [AtomicU64; IdCheck::ALL.len()],
    /// Whether the id filter has been built: the writer uses it from its
    /// next statement write.
    id_filter_ready: AtomicBool,
    /// Appends the views may not have applied yet, oldest first.
    unprojected: Mutex<Unprojected>,
    /// The end of the last directory load appended (or of the log when
    /// the writer started, which may hold some): a statement appended from
    /// then on meets every directory load before this in the Learning Hub
    /// views. `u64::MAX` until the writer has started, and after an append
    /// that failed (it may have reached the log).
    directory_end: AtomicU64,
    /// The log's end when the writer started: any write before it may have
    /// been acknowledged before a restart. `u64::MAX` until the writer has
    /// read it.
    started_end: AtomicU64,
}

/// Where the writer found the answer to "is this statement id taken?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdCheck {
    /// Certainly new: the id filter has never been given it.
    Filter,
    /// Taken by a statement appended but perhaps not yet in the views, or
    /// earlier in the same cycle.
    Recent,
    /// Read from the views: the filter was not built yet, or could not rule
    /// the id out.
    Views,
}

impl IdCheck {
    pub const ALL: [IdCheck; 3] = [IdCheck::Filter, IdCheck::Recent, IdCheck::Views];

    pub fn label(self) -> &'static str {
        match self {
            IdCheck::Filter => "filter",
            IdCheck::Recent => "recent",
            IdCheck::Views => "views",
        }
    }
}

/// Each append's end offset with the running count of statements appended
/// up to it (an event without statements counts as one), from which an
/// acknowledgement learns how far the views must have come first.
#[derive(Default)]
struct Unprojected {
    appends: VecDeque<(Offset, u64)>,
    total: u64,
    /// The running count at the last append known to be projected.
    projected: u64,
}

impl Unprojected {
    fn forget_projected(&mut self, applied: Offset) {
        while let Some(&(_, total)) = self.appends.front().filter(|(end, _)| *end <= applied) {
            self.projected = total;
            self.appends.pop_front();
        }
    }
}

impl WriteProgress {
    /// The log's end when the writer started (see the field); none known
    /// while it starts.
    pub fn started_end(&self) -> Option<Offset> {
        Some(self.started_end.load(Ordering::SeqCst)).filter(|end| *end != u64::MAX)
    }

    /// Where the directory loads appended so far end (see the field); none
    /// known while the writer starts.
    pub fn directory_loads_end(&self) -> Option<Offset> {
        Some(self.directory_end.load(Ordering::SeqCst)).filter(|end| *end != u64::MAX)
    }

    /// Notes an append that ends at `end` and holds `statements`, while
    /// the views have applied everything before `applied`.
    fn appended(&self, end: Offset, statements: u64, applied: Offset) {
        self.appended_end.store(end, Ordering::SeqCst);
        let mut unprojected = self.unprojected.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        unprojected.forget_projected(applied);
        unprojected.total += statements.max(1);
        let total = unprojected.total;
        unprojected.appends.push_back((end, total));
    }

    /// The offset the views must have applied before a write visible at
    /// `visible` is acknowledged, when at most `ahead` statements may be
    /// acknowledged ahead of the views (`applied` is where they are now).
    /// With `ahead` 0 that is `visible` itself; otherwise the write need not
    /// wait for the views unless more than `ahead` statements appended up
    /// to it are still unprojected, and then only until they are not.
    pub fn acknowledge_after(&self, visible: Offset, applied: Offset, ahead: u64) -> Offset {
        if ahead == 0 {
            return visible;
        }
        if visible <= applied {
            return applied;
        }
        let mut unprojected = self.unprojected.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        unprojected.forget_projected(applied);
        let appends = &unprojected.appends;
        // The running count up to the write; a projected write waits for nothing.
        let Some(&(_, upto)) = appends.get(appends.partition_point(|(end, _)| *end < visible)) else {
            return applied;
        };
        // The views must have applied every append up to the first one after
        // which no more than `ahead` statements up to the write remain.
        let needed = upto.saturating_sub(ahead);
        if unprojected.projected >= needed {
            return applied;
        }
        appends[appends.partition_point(|(_, total)| *total < needed)].0
    }

    /// True when no write is being decided or appended and everything
    /// appended has been projected into `views`.
    pub fn is_quiet(&self, views: &Views) -> bool {
        !self.in_cycle.load(Ordering::SeqCst) && self.appended_end.load(Ordering::SeqCst) <= views.applied_offset()
    }

    /// Statements this writer has stored since it started (repeats of
    /// stored statements are not counted).
    pub fn statements_stored(&self) -> u64 {
        self.statements_stored.load(Ordering::Relaxed)
    }

    /// Statement ids checked since start, by where the answer came from.
    pub fn id_checks(&self, check: IdCheck) -> u64 {
        self.id_checks[check as usize].load(Ordering::Relaxed)
    }

    /// True once the id filter is built; the writer answers id checks from
    /// it from its next statement write on.
    pub fn id_filter_ready(&self) -> bool {
        self.id_filter_ready.load(Ordering::SeqCst)
    }

    fn count_id_check(&self, check: IdCheck) {
        self.id_checks[check as usize].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Sequencer {
    queue: mpsc::Sender<Command>,
    pub progress: Arc<WriteProgress>,
}

const MAX_STATEMENTS_PER_CYCLE: usize = 20_000;
/// Statements appended but not yet in the views before writes get 503
/// (about 100 bytes each in memory).
const MAX_UNPROJECTED_STATEMENTS: usize = 200_000;

impl Sequencer {
    /// Starts the writer task. Writes are refused with 503 while the views
    /// are more than `max_lag` events behind what was appended, so a stalled
    /// projection slows clients down instead of growing memory.
    pub fn start(log: Arc<dyn EventLog>, views: Arc<Views>, queue_depth: usize, max_lag: u64) -> Self {
        Self::start_handing_off(log, views, queue_depth, max_lag, None)
    }

    /// As [`Sequencer::start`], offering every event of statements it
    /// appends, as it holds it before encoding, to `handoff`, so that the
    /// projections of this process need not decode it again.
    pub fn start_handing_off(
        log: Arc<dyn EventLog>,
        views: Arc<Views>,
        queue_depth: usize,
        max_lag: u64,
        handoff: Option<Arc<EventHandoff>>,
    ) -> Self {
        let (queue, receiver) = mpsc::channel(queue_depth.max(1));
        let progress = Arc::new(WriteProgress {
            directory_end: AtomicU64::new(u64::MAX),
            started_end: AtomicU64::new(u64::MAX),
            ..Default::default()
        });
        let writer = Writer {
            log,
            views,
            receiver,
            progress: progress.clone(),
            recent: HashMap::new(),
            ids: KnownIds::Unused,
            last_stored: DateTime::<Utc>::MIN_UTC,
            carried: None,
            max_lag: max_lag.max(1),
            refusing: Refusals::default(),
            handoff,
        };
        tokio::spawn(writer.run());
        Self { queue, progress }
    }

    /// A place in the writer's queue, waited for at most 5 s.
    async fn reserve(&self) -> Result<mpsc::Permit<'_, Command>, ApiError> {
        match tokio::time::timeout(Duration::from_secs(5), self.queue.reserve()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ApiError::Unavailable("the store is shutting down".to_owned())),
            Err(_) => Err(ApiError::Unavailable("the store is overloaded; slow down".to_owned())),
        }
    }

    async fn submit(&self, command: Command) -> Result<(), ApiError> {
        self.reserve().await?.send(command);
        Ok(())
    }

    pub async fn store_statements(&self, batch: StatementBatch) -> Result<VisibleAt, ApiError> {
        self.store_statements_or_back(batch).await.map_err(|refused| refused.error)
    }

    /// As [`Sequencer::store_statements`], handing the batch back when it
    /// is refused before any of it is stored (see [`Refused`]).
    pub async fn store_statements_or_back(&self, batch: StatementBatch) -> Result<VisibleAt, Refused> {
        let permit = match self.reserve().await {
            Ok(permit) => permit,
            Err(error) => return Err(Refused { error, batch: Some(batch) }),
        };
        let (reply, answer) = oneshot::channel();
        permit.send(Command::Statements(batch, reply));
        answer.await.map_err(|_| Refused::without_batch(ApiError::Unavailable("the writer stopped".to_owned())))?
    }

    pub async fn append_events(&self, events: Vec<Event>) -> Result<VisibleAt, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Command::Append(events, reply)).await?;
        answer.await.map_err(|_| ApiError::Unavailable("the writer stopped".to_owned()))?
    }

    pub async fn change_document(&self, command: DocumentCommand) -> Result<VisibleAt, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Command::Document(command, reply)).await?;
        answer.await.map_err(|_| ApiError::Unavailable("the writer stopped".to_owned()))?
    }
}

struct Writer {
    log: Arc<dyn EventLog>,
    views: Arc<Views>,
    receiver: mpsc::Receiver<Command>,
    progress: Arc<WriteProgress>,
    /// Statements appended but perhaps not yet projected: id → (fingerprint,
    /// offset of their event).
    recent: HashMap<Uuid, ([u8; 32], Offset)>,
    /// The ids the store holds, built from the views at start-up while the
    /// writer already works (checking every id in the views until it is
    /// ready), then kept by the writer alone.
    ids: KnownIds,
    last_stored: DateTime<Utc>,
    carried: Option<Command>,
    max_lag: u64,
    /// Writes refused because the views were too far behind.
    refusing: Refusals,
    /// Where the events of statements appended are offered, decoded, to
    /// the projections of this process.
    handoff: Option<Arc<EventHandoff>>,
}

/// Writes refused while the views are too far behind the log. A bulk load
/// keeps them there for minutes, each of its batches refused a few times,
/// so the refusals are logged at most once a [`REFUSALS_LOGGED_EVERY`],
/// with how many there were.
#[derive(Debug, Default)]
struct Refusals {
    last_logged: Option<std::time::Instant>,
    unlogged: u64,
}

const REFUSALS_LOGGED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl Refusals {
    /// Counts a refusal at `now`; the refusals to log now, if it is time.
    fn refused(&mut self, now: std::time::Instant) -> Option<u64> {
        self.unlogged += 1;
        if self.last_logged.is_some_and(|last| now.duration_since(last) < REFUSALS_LOGGED_EVERY) {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

impl Writer {
    /// Before deciding anything, the views must reflect the whole log:
    /// otherwise an id stored before a restart could look free.
    async fn catch_up_at_start(&mut self) -> bool {
        let end = loop {
            match self.log.end_offset().await {
                Ok(end) => break end,
                Err(error) => {
                    tracing::warn!(%error, "writer cannot read the log end; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        self.progress.appended_end.store(end, Ordering::SeqCst);
        self.progress.directory_end.store(end, Ordering::SeqCst);
        self.progress.started_end.store(end, Ordering::SeqCst);
        let mut watch = self.views.subscribe();
        if watch.wait_for(|applied| *applied >= end).await.is_err() {
            return false;
        }
        if let Ok(Some(micros)) = self.views.last_stored_micros()
            && let Some(last) = DateTime::from_timestamp_micros(micros)
        {
            self.last_stored = last;
        }
        true
    }

    async fn run(mut self) {
        self.progress.in_cycle.store(true, Ordering::SeqCst);
        if !self.catch_up_at_start().await {
            tracing::error!("writer stopped before the views caught up with the log");
            return;
        }
        // The views now hold every statement stored before this writer, and
        // every id it stores from here on is given to the filter as well.
        let progress = self.progress.clone();
        self.ids = KnownIds::build("statement id", FILTER_BITS_LOG2, self.views.statement_ids(), move || {
            progress.id_filter_ready.store(true, Ordering::SeqCst);
        });
        self.progress.in_cycle.store(false, Ordering::SeqCst);
        loop {
            let first = match self.carried.take() {
                Some(command) => command,
                None => match self.receiver.recv().await {
                    Some(command) => command,
                    None => break,
                },
            };
            self.progress.in_cycle.store(true, Ordering::SeqCst);
            if let Some(refusal) = self.behind() {
                match first {
                    Command::Document(_, reply) | Command::Append(_, reply) => {
                        let _ = reply.send(Err(refusal));
                    }
                    Command::Statements(batch, reply) => {
                        let _ = reply.send(Err(Refused { error: refusal, batch: Some(batch) }));
                    }
                }
                self.progress.in_cycle.store(false, Ordering::SeqCst);
                continue;
            }
            match first {
                Command::Document(command, reply) => {
                    let result = self.decide_document(command).await;
                    let _ = reply.send(result);
                }
                Command::Append(events_to_append, reply) => {
                    let encoded: Vec<Vec<u8>> = events_to_append.iter().map(events::encode).collect();
                    let count = encoded.len() as u64;
                    // Appends of events that need no decision are directory loads.
                    let result = match self.log.append(encoded).await {
                        Ok(first) => {
                            self.progress.appended(first + count, count, self.views.applied_offset());
                            self.progress.directory_end.fetch_max(first + count, Ordering::SeqCst);
                            Ok(first + count)
                        }
                        Err(error) => {
                            self.progress.directory_end.store(u64::MAX, Ordering::SeqCst);
                            Err(ApiError::from(error))
                        }
                    };
                    let _ = reply.send(result);
                }
                Command::Statements(batch, reply) => {
                    let mut group = vec![(batch, reply)];
                    let mut count = group[0].0.statements.len();
                    while count < MAX_STATEMENTS_PER_CYCLE {
                        match self.receiver.try_recv() {
                            Ok(Command::Statements(batch, reply)) => {
                                count += batch.statements.len();
                                group.push((batch, reply));
                            }
                            Ok(other) => {
                                self.carried = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.store_group(group).await;
                }
            }
            self.progress.in_cycle.store(false, Ordering::SeqCst);
        }
    }

    /// A refusal when the views lag too far behind the log: by events, or
    /// by statements appended but not yet projected (an event can carry
    /// thousands, and each is remembered here until the views have it).
    fn behind(&mut self) -> Option<ApiError> {
        let appended = self.progress.appended_end.load(Ordering::SeqCst);
        let applied = self.views.applied_offset();
        let lag = appended.saturating_sub(applied);
        if self.recent.len() > MAX_UNPROJECTED_STATEMENTS {
            self.recent.retain(|_, (_, offset)| *offset >= applied);
        }
        let unprojected = self.recent.len();
        let behind = lag > self.max_lag || unprojected > MAX_UNPROJECTED_STATEMENTS;
        if behind && let Some(refused) = self.refusing.refused(std::time::Instant::now()) {
            tracing::warn!(
                lag,
                unprojected,
                refused,
                "the views are behind the log; refusing writes until they catch up (logged at most once a minute)"
            );
        }
        behind.then(|| {
            ApiError::Unavailable("the store is catching up with earlier writes; slow down and retry".to_owned())
        })
    }

    fn next_stored(&mut self) -> DateTime<Utc> {
        let now = Utc::now();
        let stored = if now > self.last_stored { now } else { self.last_stored + chrono::Duration::microseconds(1) };
        // Keep to whole microseconds so the stored text round-trips exactly.
        let stored = DateTime::from_timestamp_micros(stored.timestamp_micros()).unwrap_or(stored);
        self.last_stored = stored;
        stored
    }

    /// The fingerprint of the statement stored (or being stored earlier in
    /// this cycle, `in_cycle`) under `id`, with the offset a repeat of it is
    /// visible at, and where the answer came from counted.
    fn known_fingerprint(
        &self,
        id: Uuid,
        in_cycle: &HashMap<Uuid, [u8; 32]>,
    ) -> Result<Option<([u8; 32], Offset)>, ApiError> {
        if let Some(fingerprint) = in_cycle.get(&id) {
            self.progress.count_id_check(IdCheck::Recent);
            return Ok(Some((*fingerprint, 0)));
        }
        if let Some(known) = self.recent.get(&id) {
            self.progress.count_id_check(IdCheck::Recent);
            return Ok(Some(*known));
        }
        if !self.ids.may_contain(id) {
            self.progress.count_id_check(IdCheck::Filter);
            return Ok(None);
        }
        self.progress.count_id_check(IdCheck::Views);
        Ok(self.views.fingerprint(id)?.map(|fingerprint| (fingerprint, 0)))
    }

    async fn store_group(&mut self, mut group: Vec<(StatementBatch, StatementsReply)>) {
        self.ids.poll_built();
        let applied = self.views.applied_offset();
        self.recent.retain(|_, (_, offset)| *offset >= applied);
        let mut in_cycle: HashMap<Uuid, [u8; 32]> = HashMap::new();
        let mut events_to_append = Vec::new();
        // For each request: Ok(Some(index of its event)) / Ok(None) when it
        // was entirely a repeat (visible at the given offset) / Err.
        let mut plans: Vec<Result<Option<usize>, ApiError>> = Vec::new();
        let mut repeat_visible: Vec<Offset> = Vec::new();
        let mut new_ids_per_event: Vec<Vec<(Uuid, [u8; 32])>> = Vec::new();
        // The events appended, as values, when they are handed off.
        let mut handed = Vec::new();
        for (batch, _) in &mut group {
            let mut keep = Vec::new();
            let mut visible = 0;
            let mut conflict = None;
            for (index, (statement, fingerprint)) in batch.statements.iter().zip(&batch.fingerprints).enumerate() {
                let Some(id) = statement_id(statement) else {
                    conflict = Some(ApiError::internal("statement reached the writer without an id"));
                    break;
                };
                let known = match self.known_fingerprint(id, &in_cycle) {
                    Ok(known) => known,
                    Err(error) => {
                        conflict = Some(error);
                        break;
                    }
                };
                match known {
                    Some((existing, offset)) if existing == *fingerprint => {
                        visible = visible.max(offset + 1);
                    }
                    Some(_) => {
                        conflict = Some(ApiError::Conflict(format!(
                            "a different statement with id {id} is already stored; statements are immutable"
                        )));
                        break;
                    }
                    None => keep.push((index, id, *fingerprint)),
                }
            }
            if let Some(error) = conflict {
                plans.push(Err(error));
                repeat_visible.push(0);
                continue;
            }
            if keep.is_empty() {
                plans.push(Ok(None));
                repeat_visible.push(visible);
                continue;
            }
            // Each request's statements share one `stored`, later than any before.
            let stored_text = Value::String(format_time(self.next_stored()));
            let mut statements = Vec::with_capacity(keep.len());
            let mut ids = Vec::with_capacity(keep.len());
            // Accepted: its statements are moved into the event, not copied
            // (a refused request's stay in its batch, handed back).
            for (index, id, fingerprint) in keep {
                in_cycle.insert(id, fingerprint);
                ids.push((id, fingerprint));
                let mut statement = std::mem::take(&mut batch.statements[index]);
                if let Some(object) = statement.as_object_mut() {
                    object.insert("stored".to_owned(), stored_text.clone());
                }
                statements.push(statement);
            }
            plans.push(Ok(Some(events_to_append.len())));
            repeat_visible.push(visible);
            new_ids_per_event.push(ids);
            let event = Event::StatementsStored { statements, attachments: std::mem::take(&mut batch.attachments) };
            events_to_append.push(events::encode(&event));
            if self.handoff.is_some() {
                handed.push(Arc::new(event));
            }
        }
        let appended = if events_to_append.is_empty() {
            Ok(self.progress.appended_end.load(Ordering::SeqCst))
        } else {
            self.hand_off(&events_to_append, handed).await;
            self.log.append(events_to_append).await
        };
        // Even when the append failed: a failure can come after the events
        // reached the log (a failed flush, say), and the views would then
        // project them. An id the filter holds without need costs one read.
        for (id, _) in new_ids_per_event.iter().flatten() {
            self.ids.insert(*id);
        }
        match appended {
            Ok(first) => {
                for (index, ids) in new_ids_per_event.iter().enumerate() {
                    for (id, fingerprint) in ids {
                        self.recent.insert(*id, (*fingerprint, first + index as u64));
                    }
                }
                if !new_ids_per_event.is_empty() {
                    let stored: usize = new_ids_per_event.iter().map(Vec::len).sum();
                    self.progress.appended(first + new_ids_per_event.len() as u64, stored as u64, applied);
                    self.progress.statements_stored.fetch_add(stored as u64, Ordering::Relaxed);
                }
                for (((batch, reply), plan), visible) in group.into_iter().zip(plans).zip(repeat_visible) {
                    let answer = match plan {
                        Ok(Some(index)) => Ok(first + index as u64 + 1),
                        Ok(None) => Ok(visible),
                        Err(error) => Err(Refused { error, batch: Some(batch) }),
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(error = %message, "statement append failed");
                for ((batch, reply), plan) in group.into_iter().zip(plans) {
                    let answer = match plan {
                        Err(error) => Err(Refused { error, batch: Some(batch) }),
                        Ok(_) => Err(Refused::without_batch(ApiError::from(lrs_eventlog::LogError::Storage(
                            message.clone(),
                        )))),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    }

    /// Offers `events` (encoded as `encoded`) at the offsets they will take
    /// if the append that follows goes where the log ends now, as it does
    /// with this writer the only one appending. A wrong guess costs
    /// nothing but the decoding the handoff would have saved: an event is
    /// taken only by a record of the same bytes.
    async fn hand_off(&self, encoded: &[Vec<u8>], events: Vec<Arc<Event>>) {
        let Some(handoff) = &self.handoff else {
            return;
        };
        let Ok(end) = self.log.end_offset().await else {
            return;
        };
        for ((offset, bytes), event) in (end..).zip(encoded).zip(events) {
            handoff.offer(offset, bytes, event);
        }
    }

    /// Waits until the views reflect everything appended, so a document
    /// decision sees the latest state.
    async fn catch_up(&self) -> Result<(), ApiError> {
        let target = self.progress.appended_end.load(Ordering::SeqCst);
        let mut watch = self.views.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), watch.wait_for(|applied| *applied >= target)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::Unavailable("the store is catching up; try again".to_owned())),
        }
    }

    async fn decide_document(&mut self, command: DocumentCommand) -> Result<VisibleAt, ApiError> {
        self.catch_up().await?;
        let stored = self.views.document(&command.key)?;
        let current = stored.as_ref().map(|d| document::Current {
            content_type: &d.content_type,
            content: &d.content,
            etag: &d.etag,
        });
        let decision =
            document::decide(&command.op, command.if_match.as_deref(), command.if_none_match.as_deref(), current)
                .map_err(ApiError::from)?;
        let updated = format_time(self.next_stored());
        let event = match decision {
            document::Decision::Set { content_type, content, etag } => {
                Event::DocumentSet { etag, key: command.key, content_type, content, updated }
            }
            document::Decision::Delete => Event::DocumentDeleted { key: command.key, updated },
            document::Decision::ClearState => Event::StateCleared {
                activity_id: command.key.activity_id.unwrap_or_default(),
                agent: command.key.agent.unwrap_or_default(),
                registration: command.key.registration,
                updated,
            },
            document::Decision::Unchanged => return Ok(self.progress.appended_end.load(Ordering::SeqCst)),
        };
        let offset = self.log.append(vec![events::encode(&event)]).await?;
        self.progress.appended(offset + 1, 1, self.views.applied_offset());
        Ok(offset + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::{Refusals, WriteProgress};

    #[test]
    fn refusals_are_logged_at_most_once_a_minute_with_how_many_there_were() {
        let mut refusals = Refusals::default();
        let start = std::time::Instant::now();
        let at = |seconds| start + std::time::Duration::from_secs(seconds);
        assert_eq!(refusals.refused(at(0)), Some(1), "the first refusal is logged");
        assert_eq!(refusals.refused(at(1)), None);
        assert_eq!(refusals.refused(at(59)), None, "not again within the minute");
        assert_eq!(refusals.refused(at(60)), Some(3), "then with the count since");
        assert_eq!(refusals.refused(at(61)), None);
        assert_eq!(refusals.refused(at(300)), Some(2));
    }

    /// Three appends of 100 statements each, ending at offsets 1, 2 and 3.
    fn three_appends() -> WriteProgress {
        let progress = WriteProgress::default();
        for end in 1..=3 {
            progress.appended(end, 100, 0);
        }
        progress
    }

    #[test]
    fn without_acknowledging_ahead_a_write_waits_for_the_views_to_show_it() {
        assert_eq!(three_appends().acknowledge_after(3, 0, 0), 3);
        assert_eq!(three_appends().acknowledge_after(1, 0, 0), 1);
    }

    #[test]
    fn a_write_waits_only_until_at_most_ahead_statements_up_to_it_are_unprojected() {
        let progress = three_appends();
        // 300 statements up to the last write, 150 allowed ahead: the views
        // must have applied the first two appends (200), not one (100).
        assert_eq!(progress.acknowledge_after(3, 0, 150), 2);
        assert_eq!(progress.acknowledge_after(3, 0, 200), 1);
        // The first write has no more than 150 unprojected: no wait.
        assert_eq!(progress.acknowledge_after(1, 0, 150), 0);
        assert_eq!(progress.acknowledge_after(2, 0, 100), 1);
        assert_eq!(progress.acknowledge_after(3, 0, 300), 0);
    }

    #[test]
    fn what_the_views_applied_counts_and_is_forgotten() {
        let progress = three_appends();
        // The views are at offset 2: only the last 100 are unprojected.
        assert_eq!(progress.acknowledge_after(3, 2, 150), 2);
        assert_eq!(progress.acknowledge_after(3, 2, 50), 3);
        // A projected write waits for nothing.
        assert_eq!(progress.acknowledge_after(1, 2, 50), 2);
        progress.appended(4, 100, 3);
        let remembered = progress.unprojected.lock().unwrap().appends.len();
        assert_eq!(remembered, 1, "appends the views applied are forgotten");
        assert_eq!(progress.acknowledge_after(4, 3, 150), 3);
        assert_eq!(progress.acknowledge_after(4, 3, 99), 4);
    }

    /// Directory loads may be in the log before the writer starts (loaded
    /// into a stopped store): until the writer has read the log's end, no
    /// end is known, and then it is the log's end; each directory load
    /// appended moves it.
    #[tokio::test]
    async fn the_directory_loads_end_at_the_logs_end_when_the_writer_starts_and_move_with_each_load() {
        use lrs_eventlog::EventLog;
        let dir = tempfile::tempdir().unwrap();
        let log: std::sync::Arc<dyn EventLog> =
            std::sync::Arc::new(lrs_eventlog::FileEventLog::open(&dir.path().join("log"), Default::default()).unwrap());
        let load = || lrs_xapi::events::Event::LearnersImported {
            learners: vec![lrs_xapi::events::LearnerEntry {
                learner: "mbox:mailto:ada@example.org".to_owned(),
                organisation: "RJ1".to_owned(),
                staff_group: None,
            }],
        };
        log.append(vec![lrs_xapi::events::encode(&load()), lrs_xapi::events::encode(&load())]).await.unwrap();
        let views = std::sync::Arc::new(lrs_projection::Views::temporary().unwrap());
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(lrs_projection::run_projector(log.clone(), views.clone(), stopped));
        let sequencer = super::Sequencer::start(log, views, 8, 1_000);
        // On this thread the writer's task has not run yet.
        assert_eq!(sequencer.progress.directory_loads_end(), None, "not known before the writer starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while sequencer.progress.directory_loads_end().is_none() {
            assert!(std::time::Instant::now() < deadline, "the writer did not start");
            tokio::task::yield_now().await;
        }
        assert_eq!(sequencer.progress.directory_loads_end(), Some(2), "the log's end when the writer started");
        assert_eq!(sequencer.append_events(vec![load()]).await.unwrap(), 3);
        assert_eq!(sequencer.progress.directory_loads_end(), Some(3));
    }

    #[test]
    fn an_append_without_statements_counts_as_one() {
        let progress = WriteProgress::default();
        progress.appended(1, 0, 0);
        progress.appended(2, 0, 0);
        assert_eq!(progress.acknowledge_after(2, 0, 1), 1);
        assert_eq!(progress.acknowledge_after(2, 0, 2), 0);
    }
}
