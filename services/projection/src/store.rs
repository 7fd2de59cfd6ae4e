//! How a projection's sled store is opened.

use std::path::Path;

/// zstd level of the pages of a new projection store: the fastest, since
/// pages are compressed on every write.
const COMPRESSION_LEVEL: i32 = 1;

/// sled's configuration for the store in `dir`. A new store compresses its
/// pages with zstd; an existing one keeps the setting it was created with
/// (sled refuses to open a store with another one), as recorded in its
/// `conf` file.
pub fn sled_config(dir: &Path, cache_bytes: u64) -> sled::Config {
    // The file is text lines followed by a binary checksum.
    let compress = match std::fs::read(dir.join("conf")) {
        Ok(conf) => conf.split(|b| *b == b'\n').any(|line| line == b"use_compression: true"),
        Err(_) => true,
    };
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .use_compression(compress)
        .compression_factor(COMPRESSION_LEVEL)
}
