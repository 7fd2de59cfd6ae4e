//! How a projection's sled store is opened.

use std::path::Path;

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
    /// Uncompressed pages (for a new store) and a page cache of `cache_bytes`.
    pub fn cache(cache_bytes: u64) -> Self {
        Self { cache_bytes, compress_new: false }
    }
}

/// sled's configuration for the store in `dir`. An existing store keeps
/// the compression setting recorded in its `conf` file (sled refuses to
/// open a store with another one); a new one takes `options.compress_new`.
pub fn sled_config(dir: &Path, options: StoreOptions) -> sled::Config {
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
}
