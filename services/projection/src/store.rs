//! How a projection's sled store is opened.

use std::path::Path;
use std::time::{Duration, Instant};

/// zstd level of compressed pages: the fastest, since sled compresses a
/// page on every write of it.
const COMPRESSION_LEVEL: i32 = 1;

/// How to open a projection's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of sled's page cache.
    pub cache_bytes: u64,
    /// Whether a store created now compresses its pages with zstd: about a
    /// third of the disk, for about a third less write throughput. A store
    /// that exists keeps the setting it was created with.
    pub compress_new: bool,
}

impl StoreOptions {
    /// The page cache of each projection's store unless configured, in MiB.
    /// sled counts a cached page by its bytes on disk and holds it in
    /// about 1.6 times that; at 32 MiB each the server stays under 1 GB at
    /// 10 million statements while it is written, and 128 writes about a
    /// tenth faster for about 300 MB more (`loadtests/RESULTS.md`).
    pub const DEFAULT_CACHE_MIB: u64 = 32;

    /// Uncompressed pages (for a new store) and a page cache of `cache_bytes`.
    pub fn cache(cache_bytes: u64) -> Self {
        Self { cache_bytes, compress_new: false }
    }
}

/// sled's configuration for the store in `dir`. An existing store keeps
/// the compression setting recorded in its `conf` file (sled refuses to
/// open a store with another one); a new one takes `options.compress_new`.
fn sled_config(dir: &Path, options: StoreOptions, flush_every_ms: Option<u64>) -> sled::Config {
    // The file is text lines followed by a binary checksum.
    let compress = match std::fs::read(dir.join("conf")) {
        Ok(conf) => conf.split(|b| *b == b'\n').any(|line| line == b"use_compression: true"),
        Err(_) => options.compress_new,
    };
    sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_bytes)
        .use_compression(compress)
        .compression_factor(COMPRESSION_LEVEL)
        .flush_every_ms(flush_every_ms)
}

/// How often sled flushes a store by itself (its default).
const SLED_FLUSH_EVERY_MS: u64 = 500;

/// How long opening a store waits for a lock held by this process's
/// previous handle on it.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens the store in `dir` (see [`sled_config`]).
///
/// sled unlocks a store's directory when the last reference to a closed
/// store goes, and its background threads can keep one for a moment after
/// the handle is dropped (longer when the disk is busy). So a reopen in the
/// same process right after a close, as a restart or a rebuild does, waits
/// up to [`LOCK_WAIT`] for the lock instead of failing; a store another
/// process holds is still refused, after that wait.
pub fn open_store(dir: &Path, options: StoreOptions) -> sled::Result<sled::Db> {
    open_waiting(dir, options, Some(SLED_FLUSH_EVERY_MS), LOCK_WAIT, || {})
}

/// [`open_store`] without sled's periodic flush: the caller flushes (the
/// xAPI views, which must sync their file of records first).
pub(crate) fn open_store_flushed_by_caller(dir: &Path, options: StoreOptions) -> sled::Result<sled::Db> {
    open_waiting(dir, options, None, LOCK_WAIT, || {})
}

/// [`open_store`], calling `waiting` each time the lock is found taken.
fn open_waiting(
    dir: &Path,
    options: StoreOptions,
    flush_every_ms: Option<u64>,
    bound: Duration,
    mut waiting: impl FnMut(),
) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + bound;
    let mut pause = Duration::from_millis(1);
    loop {
        match sled_config(dir, options, flush_every_ms).open() {
            Err(sled::Error::Io(error)) if is_lock_taken(&error) && Instant::now() < deadline => {
                waiting();
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            opened => return opened,
        }
    }
}

/// Whether sled refused to open because the directory's lock is taken.
fn is_lock_taken(error: &std::io::Error) -> bool {
    error.to_string().contains("could not acquire lock")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_reopen_waits_for_the_lock_a_closing_handle_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::cache(1 << 20);
        let first = open_store(dir.path(), options).unwrap();
        first.insert(b"kept", b"yes").unwrap();
        let (found_taken, taken) = std::sync::mpsc::channel();
        let path = dir.path().to_owned();
        let reopen = std::thread::spawn(move || {
            open_waiting(&path, options, None, Duration::from_secs(60), || {
                let _ = found_taken.send(());
            })
        });
        // The reopen has found the lock taken; now the first handle goes.
        taken.recv().unwrap();
        drop(first);
        let second = reopen.join().unwrap().unwrap();
        assert_eq!(second.get(b"kept").unwrap().as_deref(), Some(&b"yes"[..]));
    }

    #[test]
    fn a_store_held_throughout_is_refused_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::cache(1 << 20);
        let _held = open_store(dir.path(), options).unwrap();
        let mut waits = 0;
        let refused = open_waiting(dir.path(), options, None, Duration::from_millis(20), || waits += 1).unwrap_err();
        assert!(refused.to_string().contains("could not acquire lock"), "{refused}");
        assert!(waits > 0);
    }
}
