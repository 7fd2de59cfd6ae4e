//! The loop that keeps the views up to date with the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use lrs_eventlog::EventLog;

use lrs_eventlog::{LogRecord, Offset};

use crate::Views;

/// A view of the log that can be kept up to date by [`run_projector`]:
/// it knows the next offset it needs and applies consecutive records
/// atomically together with that offset.
pub trait Projection: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// The next log offset to apply.
    fn applied_offset(&self) -> Offset;
    /// Applies consecutive records (already-applied ones are skipped).
    fn apply(&self, records: &[LogRecord]) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
    /// Another projection's applied offset this one must stay behind (it
    /// reads that projection's decisions).
    fn depends_on(&self) -> Option<watch::Receiver<Offset>> {
        None
    }
    /// Whether this projection gathers small batches into larger ones (see
    /// [`Gather`]); only one no write waits for should.
    fn gather(&self) -> Option<Gather> {
        None
    }
    /// Where the projector counts what it applies, if anywhere.
    fn stats(&self) -> Option<&ProjectorStats> {
        None
    }
}

/// What a projector has applied since the process started: batches,
/// events, and the time spent applying them (read and gathering waits
/// excluded), so that an operator can tell a projection that is busy all
/// the time (the bound of every write rate) from one that waits.
#[derive(Debug, Default)]
pub struct ProjectorStats {
    batches: AtomicU64,
    events: AtomicU64,
    apply_nanos: AtomicU64,
}

impl ProjectorStats {
    fn applied(&self, events: usize, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        self.apply_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Batches applied (each one atomic write).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Events applied.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Time spent applying batches, failed ones included.
    pub fn apply_time(&self) -> Duration {
        Duration::from_nanos(self.apply_nanos.load(Ordering::Relaxed))
    }
}

/// How a projection that no write waits for gathers events into larger
/// batches, which cost it less per event than batches of one: a batch of
/// fewer than `min_events` is held for up to `max_wait` from when it was
/// read, and then applied with whatever the log has gained meanwhile. A
/// reader that needs the projection to show the latest writes calls
/// [`Gather::hurry`], and what is held is applied at once.
#[derive(Clone, Debug)]
pub struct Gather {
    pub min_events: usize,
    pub max_wait: Duration,
    hurry: Arc<Notify>,
    waits: Arc<AtomicU64>,
}

impl Gather {
    pub fn new(min_events: usize, max_wait: Duration) -> Self {
        Self { min_events, max_wait, hurry: Arc::default(), waits: Arc::default() }
    }

    /// Ends the current wait, or the next one if none is under way.
    pub fn hurry(&self) {
        self.hurry.notify_one();
    }

    /// How often the projector has held a small batch back.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

impl Projection for Views {
    fn name(&self) -> &'static str {
        "xapi"
    }

    fn applied_offset(&self) -> Offset {
        Views::applied_offset(self)
    }

    fn apply(&self, records: &[LogRecord]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Views::apply(self, records).map_err(Into::into)
    }

    fn stats(&self) -> Option<&ProjectorStats> {
        Some(self.projector_stats())
    }
}

/// Events applied per atomic batch, at most.
const CHUNK: usize = 2_000;
/// Bytes of events read at once, and applied per atomic batch, at most (but
/// at least one event): what is read is held in memory until it is applied,
/// the batch's writes until it commits, and one event can carry thousands
/// of statements. Without the bound, a projection far behind (a replay, a
/// rebuild) read up to `CHUNK` events at once: the rest of the log.
///
/// Each projection decodes and holds its batch, and both apply at once, so
/// the bound is most of the memory a replay or a bulk load peaks at: 4 MiB
/// instead of 8 took 170 MB off `lrs verify`'s peak and 50–65 MB off an
/// import's, for 3–4 % of the import's speed.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// A gathering projection (see [`Gather`]) holds a batch only while its
/// events add up to less than this: gathering spreads a batch's fixed cost
/// over more statements, and a batch of a megabyte (about 800 statements)
/// already spreads it thin. An import's events (1,000 statements or more)
/// were held 10 ms each for nothing.
const GATHER_BYTES: usize = 1024 * 1024;

/// Tails `log` into `views` until `shutdown` turns true. Errors reading the
/// log, and events the views fail to apply, are retried with a back-off and
/// logged; an event is never skipped (the views would diverge).
///
/// Records read but not applied yet (past the byte bound of a batch, past
/// the leader's offset, or of a batch whose apply failed) are kept for the
/// next round rather than read again: every record is read from the log
/// once, so a log reader only ever moves forward (a Kafka reader asked for
/// an earlier offset would need a new consumer).
pub async fn run_projector<P: Projection + ?Sized>(
    log: Arc<dyn EventLog>,
    views: Arc<P>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = views.name();
    let gather = views.gather().filter(|gather| gather.min_events > 1 && !gather.max_wait.is_zero());
    // While a small batch is held: when it must be applied.
    let mut gathering: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(50);
    let mut apply_backoff = Duration::from_millis(50);
    // Records that follow on directly from the offset in the pair.
    let mut carried: Option<(Offset, Vec<LogRecord>)> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let from = views.applied_offset();
        let mut records = match carried.take() {
            Some((after, mut records)) if after == from && !records.is_empty() => {
                if gathering.is_some() {
                    read_more(&*log, &mut records, name).await;
                }
                records
            }
            _ => match log.read_bounded(from, CHUNK, CHUNK_BYTES).await {
                Ok(records) => {
                    backoff = Duration::from_millis(50);
                    records
                }
                Err(error) => {
                    tracing::warn!(%error, projection = name, "projector cannot read the log; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        let mut bytes = 0;
        let mut rest = match records.iter().position(|record| {
            bytes += record.payload.len();
            bytes > CHUNK_BYTES
        }) {
            Some(over) => records.split_off(over.max(1)),
            None => Vec::new(),
        };
        if let Some(mut leader) = views.depends_on() {
            let limit = *leader.borrow_and_update();
            let mut beyond = records.split_off(records.partition_point(|record| record.offset < limit));
            beyond.append(&mut rest);
            rest = beyond;
            // Wait for the leader only when it holds back records read
            // already. With nothing read, wait for the log (below): the
            // leader may have applied the next record before this read, and
            // then would not move again until a later write.
            if records.is_empty() && !rest.is_empty() {
                carried = Some((from, rest));
                tokio::select! {
                    _ = leader.changed() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        if records.is_empty() {
            gathering = None;
            tokio::select! {
                _ = log.wait_beyond(from, Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // A batch of large events (a bulk load's, a replay's), or one that
        // cannot take the next record read, gains nothing by waiting.
        let held: usize = records.iter().map(|record| record.payload.len()).sum();
        let full = rest.first().is_some_and(|next| held + next.payload.len() > CHUNK_BYTES);
        if let Some(gather) = &gather
            && records.len() < gather.min_events
            && held < GATHER_BYTES
            && !full
        {
            let now = tokio::time::Instant::now();
            let deadline = *gathering.get_or_insert(now + gather.max_wait);
            if now < deadline {
                records.append(&mut rest);
                carried = Some((from, records));
                gather.waits.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    // The held batch is applied on the next round.
                    _ = gather.hurry.notified() => gathering = Some(now),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        gathering = None;
        let views_for_apply = views.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let began = std::time::Instant::now();
            let applied = views_for_apply.apply(&records);
            if let Some(stats) = views_for_apply.stats() {
                stats.applied(if applied.is_ok() { records.len() } else { 0 }, began.elapsed());
            }
            (applied, records)
        })
        .await;
        // A failed apply changed nothing (the batch is atomic): retry the
        // same events after a back-off, never skip them. A transient fault
        // (a full disk, an I/O error) heals by itself; one that does not
        // keeps this projection where it is, saying so, and readiness
        // reports the lag.
        let failure = match applied {
            Ok((Ok(()), records)) => {
                let after = records.last().map_or(from, |record| record.offset + 1);
                carried = Some((after, rest));
                None
            }
            Ok((Err(error), mut records)) => {
                records.append(&mut rest);
                carried = Some((from, records));
                Some(error.to_string())
            }
            Err(error) => Some(error.to_string()),
        };
        match failure {
            None => apply_backoff = Duration::from_millis(50),
            Some(error) => {
                tracing::error!(%error, projection = name, offset = from, "projector cannot apply an event; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(apply_backoff) => {}
                    _ = shutdown.changed() => {}
                }
                apply_backoff = (apply_backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Adds to `records` (held while gathering) what the log has after them,
/// within the bounds of one batch. A failed read leaves them as they are:
/// they are applied, and the rest is read on the next round.
async fn read_more(log: &dyn EventLog, records: &mut Vec<LogRecord>, name: &str) {
    let held: usize = records.iter().map(|record| record.payload.len()).sum();
    let Some(last) = records.last() else {
        return;
    };
    if records.len() >= CHUNK || held >= CHUNK_BYTES {
        return;
    }
    match log.read_bounded(last.offset + 1, CHUNK - records.len(), CHUNK_BYTES - held).await {
        Ok(more) => records.extend(more),
        Err(error) => {
            tracing::warn!(%error, projection = name, "projector cannot read the log; applying what it holds")
        }
    }
}
