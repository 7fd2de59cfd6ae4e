//! The embedded log of a data directory, moved off sled when a store made
//! before the segment files is opened.
//!
//! Stores created before the segment files kept their log in a sled tree
//! (`events`, key = offset as big-endian u64, value = the event). Opening
//! such a directory copies every event, in order and at the same offset,
//! into segment files beside the sled files, then removes the sled files.
//! The copy is safe to interrupt: until a marker file says the segments are
//! complete, the sled files are the log and a new open copies again from
//! the start; once the marker exists, the segments are the log and a new
//! open only finishes removing the sled files.

use std::path::Path;

use crate::{FileEventLog, FileEventLogConfig, LogError, Offset};

const COPIED_MARKER: &str = "COPIED-FROM-SLED";

fn storage(error: impl std::fmt::Display) -> LogError {
    LogError::Storage(error.to_string())
}

/// Whether `dir` holds a log written by sled.
fn holds_sled(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// Opens (or creates) the embedded log in `dir`, first moving a sled log
/// there into segment files. Must be called inside a tokio runtime.
pub fn open_embedded(dir: &Path) -> Result<FileEventLog, LogError> {
    open_embedded_with(dir, FileEventLogConfig::default())
}

/// As [`open_embedded`], with the segment files' settings.
pub fn open_embedded_with(dir: &Path, config: FileEventLogConfig) -> Result<FileEventLog, LogError> {
    // Nobody else may open the log while its files move; the lock is let go
    // just before the log takes it again (whoever comes in between finds
    // the move finished).
    let lock = crate::file_log::lock_dir(dir)?;
    if dir.join(COPIED_MARKER).is_file() {
        remove_sled_files(dir)?;
    } else if holds_sled(dir) {
        // An earlier copy may have stopped half-way: start again.
        crate::file_log::remove_segments(dir)?;
        let copied = copy_from_sled(dir, &config)?;
        std::fs::File::create(dir.join(COPIED_MARKER)).and_then(|f| f.sync_all()).map_err(storage)?;
        crate::file_log::sync_dir(dir)?;
        remove_sled_files(dir)?;
        tracing::info!(events = copied, log = %dir.display(), "moved the event log from sled to segment files");
    }
    drop(lock);
    FileEventLog::open(dir, config)
}

/// Writes the sled log's events into segment files; returns how many.
fn copy_from_sled(dir: &Path, config: &FileEventLogConfig) -> Result<Offset, LogError> {
    let db = sled::Config::new().path(dir).cache_capacity(64 * 1024 * 1024).open().map_err(storage)?;
    let tree = db.open_tree("events").map_err(storage)?;
    let mut expected: Offset = 0;
    let events = tree.iter().map(|entry| {
        let (key, value) = entry.map_err(storage)?;
        let offset = <[u8; 8]>::try_from(key.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| LogError::Storage("the sled log has a key that is not an offset".to_owned()))?;
        if offset != expected {
            return Err(LogError::Storage(format!("the sled log skips from offset {expected} to {offset}")));
        }
        expected += 1;
        Ok(value.to_vec())
    });
    crate::file_log::write_segments(dir, config, events)
}

/// Removes what sled keeps in `dir` (its files and its blob directory),
/// then the marker, so a finished copy leaves segment files only.
fn remove_sled_files(dir: &Path) -> Result<(), LogError> {
    for entry in std::fs::read_dir(dir).map_err(storage)? {
        let path = entry.map_err(storage)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name == "blobs" {
            std::fs::remove_dir_all(&path).map_err(storage)?;
        } else if name == "conf" || name == "db" || name.starts_with("snap.") {
            std::fs::remove_file(&path).map_err(storage)?;
        }
    }
    match std::fs::remove_file(dir.join(COPIED_MARKER)) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(storage(error)),
    }
    crate::file_log::sync_dir(dir)
}
