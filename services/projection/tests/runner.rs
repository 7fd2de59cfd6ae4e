//! The projector loop: every record is read from the log once, even when a
//! projection must wait for the one it follows or a batch is cut short.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use lrs_eventlog::{EventLog, FileEventLog, FileEventLogConfig, LogError, LogRecord, Offset};
use lrs_projection::{Gather, Projection, run_projector};

/// A log that counts how often it hands out each record.
struct CountingLog {
    inner: FileEventLog,
    delivered: Mutex<BTreeMap<Offset, usize>>,
    /// The most payload bytes one read handed out.
    largest_read: Mutex<usize>,
}

#[async_trait::async_trait]
impl EventLog for CountingLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        self.inner.append(events).await
    }

    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        let records = self.inner.read_bounded(from, max, max_bytes).await?;
        let bytes = records.iter().map(|record| record.payload.len()).sum::<usize>();
        let mut largest = self.largest_read.lock().unwrap();
        *largest = (*largest).max(bytes);
        let mut delivered = self.delivered.lock().unwrap();
        for record in &records {
            *delivered.entry(record.offset).or_default() += 1;
        }
        Ok(records)
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        self.inner.end_offset().await
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        self.inner.wait_beyond(offset, timeout).await
    }
}

/// A projection that follows a leader the test moves by hand, and whose
/// applies fail while `failing` is set.
struct Follower {
    applied: Mutex<Vec<Offset>>,
    next: Mutex<Offset>,
    leader: watch::Receiver<Offset>,
    failing: std::sync::atomic::AtomicBool,
}

impl Projection for Follower {
    fn name(&self) -> &'static str {
        "follower"
    }

    fn applied_offset(&self) -> Offset {
        *self.next.lock().unwrap()
    }

    fn apply(&self, records: &[LogRecord]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("refused for the test".into());
        }
        let mut next = self.next.lock().unwrap();
        let mut applied = self.applied.lock().unwrap();
        let start = *next;
        for record in records.iter().filter(|record| record.offset >= start) {
            applied.push(record.offset);
            *next = record.offset + 1;
        }
        Ok(())
    }

    fn depends_on(&self) -> Option<watch::Receiver<Offset>> {
        Some(self.leader.clone())
    }
}

fn counting_log(dir: &std::path::Path) -> Arc<CountingLog> {
    let inner = FileEventLog::open(dir, FileEventLogConfig::default()).unwrap();
    Arc::new(CountingLog { inner, delivered: Mutex::new(BTreeMap::new()), largest_read: Mutex::new(0) })
}

/// A follower of `leader` at the log's start.
fn follower(leader: watch::Receiver<Offset>, failing: bool) -> Arc<Follower> {
    Arc::new(Follower {
        applied: Mutex::new(Vec::new()),
        next: Mutex::new(0),
        leader,
        failing: std::sync::atomic::AtomicBool::new(failing),
    })
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_each_record_once_however_its_leader_and_its_applies_hold_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    for n in 0..40u8 {
        log.append(vec![vec![n]]).await.unwrap();
    }
    // Three events of 3 MiB: a read stops once it holds 4 MiB and a batch
    // holds at most that, so the first read's two are applied as two
    // batches.
    for n in 0..3u8 {
        log.append(vec![vec![n; 3 * 1024 * 1024]]).await.unwrap();
    }
    let (leader, following) = watch::channel(0);
    let follower = follower(following, true);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, follower.clone(), stopped));

    // The leader is at 10 and applies fail: nothing is applied, and the
    // failed batch is retried from what was read, not read again.
    leader.send_replace(10);
    wait_until("the log was read", || !log.delivered.lock().unwrap().is_empty()).await;
    assert!(follower.applied.lock().unwrap().is_empty());
    follower.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until("the follower reached its leader", || follower.applied_offset() == 10).await;
    for limit in [25, 41, 43] {
        leader.send_replace(limit);
        wait_until("the follower reached its leader", || follower.applied_offset() == limit).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();

    assert_eq!(*follower.applied.lock().unwrap(), (0..43).collect::<Vec<_>>(), "every event once, in order");
    let delivered = log.delivered.lock().unwrap();
    let twice: Vec<_> = delivered.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "records read from the log more than once (offset, times): {twice:?}");
    assert_eq!(delivered.len(), 43);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_at_the_end_of_the_log_takes_a_new_record_its_leader_has_already_applied() {
    // The leader applies a new record before the follower has read it, then
    // stays put (no write follows): the follower must not wait for the
    // leader to move again.
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    let (_leader, following) = watch::channel(Offset::MAX);
    let follower = follower(following, false);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, follower.clone(), stopped));
    for n in 0..3u8 {
        log.append(vec![vec![n]]).await.unwrap();
        wait_until("the follower applied the new record", || follower.applied_offset() == u64::from(n) + 1).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(*follower.applied.lock().unwrap(), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_far_behind_reads_the_log_in_pieces_not_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    // 24 events of 1 MiB, far fewer than the events a read may return.
    for n in 0..24u8 {
        log.append(vec![vec![n; 1024 * 1024]]).await.unwrap();
    }
    let (_leader, following) = watch::channel(Offset::MAX);
    let follower = follower(following, false);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, follower.clone(), stopped));
    wait_until("the follower applied the log", || follower.applied_offset() == 24).await;
    let _ = stop.send(true);
    task.await.unwrap();

    assert_eq!(*follower.applied.lock().unwrap(), (0..24).collect::<Vec<_>>(), "every event once, in order");
    // A read stops once it holds 4 MiB: with 1 MiB events, at 4 of them.
    let largest = *log.largest_read.lock().unwrap();
    assert!(largest <= 4 * 1024 * 1024, "one read handed out {largest} bytes: the log is not read in pieces");
}

/// A projection no write waits for: it records the size of each batch and
/// gathers small batches as `gather` says.
struct Gatherer {
    batches: Mutex<Vec<usize>>,
    next: Mutex<Offset>,
    gather: Gather,
}

impl Projection for Gatherer {
    fn name(&self) -> &'static str {
        "gatherer"
    }

    fn applied_offset(&self) -> Offset {
        *self.next.lock().unwrap()
    }

    fn apply(&self, records: &[LogRecord]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut next = self.next.lock().unwrap();
        let start = *next;
        let new: Vec<_> = records.iter().filter(|record| record.offset >= start).collect();
        assert_eq!(new.first().map(|record| record.offset), Some(start), "records applied in order, none skipped");
        if let Some(last) = new.last() {
            *next = last.offset + 1;
        }
        self.batches.lock().unwrap().push(new.len());
        Ok(())
    }

    fn gather(&self) -> Option<Gather> {
        Some(self.gather.clone())
    }
}

fn gatherer(min_events: usize, max_wait: Duration) -> Arc<Gatherer> {
    Arc::new(Gatherer {
        batches: Mutex::new(Vec::new()),
        next: Mutex::new(0),
        gather: Gather::new(min_events, max_wait),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathering_projection_holds_a_small_batch_and_applies_it_with_what_follows_when_hurried() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    // A wait far beyond the test's deadlines: only the hurry ends it.
    let projection = gatherer(4, Duration::from_secs(3600));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, projection.clone(), stopped));
    log.append(vec![vec![0]]).await.unwrap();
    wait_until("the projector holds the first event", || projection.gather.waits() >= 1).await;
    assert_eq!(projection.applied_offset(), 0);
    log.append(vec![vec![1], vec![2]]).await.unwrap();
    projection.gather.hurry();
    wait_until("the held events are applied", || projection.applied_offset() == 3).await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(*projection.batches.lock().unwrap(), [3], "the held event and those after it, in one batch");
    let delivered = log.delivered.lock().unwrap();
    assert!(delivered.values().all(|count| *count == 1), "each record read once: {delivered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathering_projection_applies_a_small_batch_once_its_wait_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    let projection = gatherer(4, Duration::from_millis(20));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, projection.clone(), stopped));
    log.append(vec![vec![0]]).await.unwrap();
    wait_until("the lone event is applied", || projection.applied_offset() == 1).await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert!(projection.gather.waits() >= 1, "it was held first");
    assert_eq!(*projection.batches.lock().unwrap(), [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathering_projection_applies_a_large_enough_batch_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    for n in 0..4u8 {
        log.append(vec![vec![n]]).await.unwrap();
    }
    let projection = gatherer(4, Duration::from_secs(3600));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, projection.clone(), stopped));
    wait_until("the four events are applied", || projection.applied_offset() == 4).await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(projection.gather.waits(), 0);
    assert_eq!(*projection.batches.lock().unwrap(), [4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathering_projection_applies_batches_of_large_events_or_full_by_bytes_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let log = counting_log(dir.path());
    const MIB: usize = 1024 * 1024;
    // Each a batch of its own (a batch holds 4 MiB at most), far fewer
    // events than the projection gathers: the first is small but cannot
    // take the next; the second is the whole bound; the third is large,
    // and the last.
    for (n, size) in [MIB / 2, 4 * MIB, 2 * MIB].into_iter().enumerate() {
        log.append(vec![vec![n as u8; size]]).await.unwrap();
    }
    let projection = gatherer(4, Duration::from_secs(3600));
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_projector(log.clone() as Arc<dyn EventLog>, projection.clone(), stopped));
    // Only a hurry would end a wait, and none comes.
    wait_until("the events are applied", || projection.applied_offset() == 3).await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(projection.gather.waits(), 0);
    assert_eq!(*projection.batches.lock().unwrap(), [1, 1, 1]);
    let delivered = log.delivered.lock().unwrap();
    assert!(delivered.values().all(|count| *count == 1), "each record read once: {delivered:?}");
}
