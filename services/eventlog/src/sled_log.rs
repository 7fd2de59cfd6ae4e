//! The embedded event log on sled, with group commit.
//!
//! Appends go through one writer task. It takes every request waiting in its
//! queue, writes them in one sled batch, flushes once, and only then answers
//! all of them, so durability costs one flush per group rather than one per
//! request. Readers only ever see offsets below the durable end.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::group::{self, AppendRequest};
use crate::{EventLog, LogError, LogRecord, Offset};

/// Tuning of the embedded log.
#[derive(Debug, Clone)]
pub struct SledEventLogConfig {
    /// Bytes of sled page cache.
    pub cache_capacity_bytes: u64,
    /// Appends waiting for the writer before callers are told to slow down.
    pub queue_depth: usize,
    /// Upper bound of events written in one group commit.
    pub max_group_events: usize,
    /// Largest single event accepted.
    pub max_event_bytes: usize,
}

impl Default for SledEventLogConfig {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: 128 * 1024 * 1024,
            queue_depth: 4096,
            max_group_events: 20_000,
            max_event_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The embedded, sled-backed [`EventLog`].
#[derive(Clone)]
pub struct SledEventLog {
    inner: Arc<Inner>,
}

/// Called with the duration of each flush of the embedded log.
type FlushObserver = Box<dyn Fn(Duration) + Send + Sync>;

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    flush_observer: std::sync::OnceLock<FlushObserver>,
    durable_end: AtomicU64,
    end_watch: watch::Receiver<Offset>,
    queue: mpsc::Sender<AppendRequest>,
    max_event_bytes: usize,
}

fn storage(error: impl std::fmt::Display) -> LogError {
    LogError::Storage(error.to_string())
}

impl SledEventLog {
    /// Opens (or creates) the log in `dir`. Must be called inside a tokio runtime.
    pub fn open(dir: &Path, config: SledEventLogConfig) -> Result<Self, LogError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_capacity_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(storage)?;
        let tree = db.open_tree("events").map_err(storage)?;
        let end = match tree.last().map_err(storage)? {
            Some((key, _)) => decode_offset(&key)? + 1,
            None => 0,
        };
        let (end_sender, end_watch) = watch::channel(end);
        let (queue, receiver) = mpsc::channel(config.queue_depth.max(1));
        let inner = Arc::new(Inner {
            db: db.clone(),
            tree: tree.clone(),
            flush_observer: std::sync::OnceLock::new(),
            durable_end: AtomicU64::new(end),
            end_watch,
            queue,
            max_event_bytes: config.max_event_bytes,
        });
        let writer = Writer {
            db,
            tree,
            next: end,
            receiver,
            end_sender,
            max_group_events: config.max_group_events.max(1),
            inner: Arc::downgrade(&inner),
        };
        tokio::spawn(writer.run());
        Ok(Self { inner })
    }

    /// Has `observer` called with the duration of every flush (group
    /// commit) from now on; only the first observer set is kept.
    pub fn observe_flushes(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        let _ = self.inner.flush_observer.set(Box::new(observer));
    }

    /// The log's size on disk in bytes, as sled reports it.
    pub fn size_on_disk(&self) -> Option<u64> {
        self.inner.db.size_on_disk().ok()
    }
}

fn encode_offset(offset: Offset) -> [u8; 8] {
    offset.to_be_bytes()
}

fn decode_offset(key: &[u8]) -> Result<Offset, LogError> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| LogError::Storage("corrupt log key".to_owned()))?;
    Ok(u64::from_be_bytes(bytes))
}

struct Writer {
    db: sled::Db,
    tree: sled::Tree,
    next: Offset,
    receiver: mpsc::Receiver<AppendRequest>,
    end_sender: watch::Sender<Offset>,
    max_group_events: usize,
    inner: std::sync::Weak<Inner>,
}

impl Writer {
    async fn run(mut self) {
        while let Some(group) = group::next_group(&mut self.receiver, self.max_group_events).await {
            self.commit(group).await;
        }
    }

    async fn commit(&mut self, group: Vec<AppendRequest>) {
        let mut batch = sled::Batch::default();
        let mut firsts = Vec::with_capacity(group.len());
        let mut next = self.next;
        for request in &group {
            firsts.push(next);
            for event in &request.events {
                batch.insert(&encode_offset(next), event.as_slice());
                next += 1;
            }
        }
        let tree = self.tree.clone();
        let db = self.db.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<Duration, LogError> {
            tree.apply_batch(batch).map_err(storage)?;
            let flush_started = std::time::Instant::now();
            db.flush().map_err(storage)?;
            Ok(flush_started.elapsed())
        })
        .await
        .map_err(storage)
        .and_then(|inner| inner);
        match result {
            Ok(flushed_in) => {
                self.next = next;
                if let Some(inner) = self.inner.upgrade() {
                    inner.durable_end.store(next, Ordering::Release);
                    if let Some(observe) = inner.flush_observer.get() {
                        observe(flushed_in);
                    }
                }
                self.end_sender.send_replace(next);
                for (request, first) in group.into_iter().zip(firsts) {
                    let _ = request.reply.send(Ok(first));
                }
            }
            Err(error) => {
                tracing::error!(%error, "event log append failed");
                // A failed batch may have been partly applied in memory; remove
                // whatever it wrote so the offsets can be reused.
                for offset in self.next..next {
                    let _ = self.tree.remove(encode_offset(offset));
                }
                for request in group {
                    let _ = request.reply.send(Err(LogError::Storage(error.to_string())));
                }
            }
        }
    }
}

#[async_trait]
impl EventLog for SledEventLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        group::submit(&self.inner.queue, &self.inner.durable_end, self.inner.max_event_bytes, events).await
    }

    async fn read(&self, from: Offset, max: usize) -> Result<Vec<LogRecord>, LogError> {
        let end = self.inner.durable_end.load(Ordering::Acquire);
        if from >= end || max == 0 {
            return Ok(Vec::new());
        }
        let tree = self.inner.tree.clone();
        tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            for entry in tree.range(encode_offset(from)..encode_offset(end)).take(max) {
                let (key, value) = entry.map_err(storage)?;
                records.push(LogRecord { offset: decode_offset(&key)?, payload: value.to_vec() });
            }
            Ok(records)
        })
        .await
        .map_err(storage)?
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        Ok(self.inner.durable_end.load(Ordering::Acquire))
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        group::wait_beyond(&self.inner.end_watch, &self.inner.durable_end, offset, timeout).await
    }
}
