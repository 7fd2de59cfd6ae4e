//! The embedded log of a data directory, whichever format it was made in.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    EventLog, FileEventLog, FileEventLogConfig, LogError, LogRecord, Offset, SledEventLog, SledEventLogConfig,
};

/// The embedded log: segment files for a new store; a store whose log was
/// written by the sled log keeps it.
#[derive(Clone)]
pub enum EmbeddedLog {
    Files(FileEventLog),
    Sled(SledEventLog),
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`. `cache_bytes` is sled's page
    /// cache when the log is a sled one. Must be called inside a tokio
    /// runtime.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, LogError> {
        if Self::is_sled(dir) {
            let config = SledEventLogConfig { cache_capacity_bytes: cache_bytes, ..Default::default() };
            Ok(Self::Sled(SledEventLog::open(dir, config)?))
        } else {
            Ok(Self::Files(FileEventLog::open(dir, FileEventLogConfig::default())?))
        }
    }

    /// Whether `dir` holds a log written by the sled log (and no segments).
    pub fn is_sled(dir: &Path) -> bool {
        dir.join("conf").is_file() && dir.join("db").is_file() && !crate::file_log::holds_segments(dir)
    }

    /// Has `observer` called with the duration of every flush (group
    /// commit) from now on.
    pub fn observe_flushes(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        match self {
            Self::Files(log) => log.observe_flushes(observer),
            Self::Sled(log) => log.observe_flushes(observer),
        }
    }

    /// The log's size on disk in bytes.
    pub fn size_on_disk(&self) -> Option<u64> {
        match self {
            Self::Files(log) => log.size_on_disk(),
            Self::Sled(log) => log.size_on_disk(),
        }
    }

    fn log(&self) -> &dyn EventLog {
        match self {
            Self::Files(log) => log,
            Self::Sled(log) => log,
        }
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        self.log().append(events).await
    }

    async fn read(&self, from: Offset, max: usize) -> Result<Vec<LogRecord>, LogError> {
        self.log().read(from, max).await
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        self.log().end_offset().await
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        self.log().wait_beyond(offset, timeout).await
    }
}
