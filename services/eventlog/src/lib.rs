//! The append-only event log: the source of truth of the store.
//!
//! Everything the LRS knows is an event appended here; every view a reader sees
//! is a projection of this log. The [`EventLog`] trait is what ingest appends to
//! and what projections read from. [`FileEventLog`] (segment files) is the
//! embedded backend used by `lrs serve`, opened with [`open_embedded`], which
//! first moves the log of a store made before the segment files out of sled;
//! [`contract`] is the test suite every backend must pass.

mod dictionary;
mod embedded;
mod file_log;
mod group;

pub mod compression;
pub mod contract;

use std::time::Duration;

use async_trait::async_trait;

pub use embedded::{open_embedded, open_embedded_with};
pub use file_log::{FileEventLog, FileEventLogConfig};

/// Position of an event in the log; the first event is at offset 0.
pub type Offset = u64;

/// One event as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: Offset,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the event log storage failed: {0}")]
    Storage(String),
    #[error("the event log is shutting down")]
    Closed,
    #[error("the event log is overloaded; try again later")]
    Overloaded,
    #[error("an event of {size} bytes exceeds the limit of {limit} bytes")]
    EventTooLarge { size: usize, limit: usize },
}

/// An append-only, durable, totally ordered log of opaque events.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `events` atomically (all or none) and returns the offset of the
    /// first one. Returns only once the events are durable.
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError>;

    /// Reads durable events starting at `from`, in order: at most `max` of
    /// them, and no more once their payloads add up to `max_bytes` or more
    /// (so at least one, however large, when there is one). Returns an
    /// empty vector when `from` is at or past the end.
    ///
    /// The byte bound is what keeps a reader far behind the end (a replay,
    /// a projection rebuilding) from holding the rest of the log in memory:
    /// one event can carry thousands of statements.
    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError>;

    /// Reads at most `max` durable events starting at `from`, in order,
    /// whatever their size (see [`EventLog::read_bounded`]).
    async fn read(&self, from: Offset, max: usize) -> Result<Vec<LogRecord>, LogError> {
        self.read_bounded(from, max, usize::MAX).await
    }

    /// The offset one past the last durable event.
    async fn end_offset(&self) -> Result<Offset, LogError>;

    /// Waits until the end offset is greater than `offset` or `timeout`
    /// elapses; returns the end offset seen.
    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError>;
}
