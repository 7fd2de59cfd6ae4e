//! What large batches leave behind in memory: `batch::commit` must let
//! the epoch collector free the page versions each batch replaces (its
//! writes pin, each apart), even when nothing else in the process pins
//! (its own test binary, so no other test's threads pin meanwhile).

#![allow(clippy::unwrap_used)]

use lrs_projection::batch::{PendingBatch, commit};

/// This process's anonymous resident memory, in bytes.
fn resident_anonymous() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("RssAnon:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn batches_of_thousands_of_writes_leave_no_growing_heap_of_replaced_pages() {
    // Without sled's periodic flusher: it pins while it flushes, and on a
    // busy machine (a CI run beside other work) a flusher held off the CPU
    // mid-flush kept the collector from freeing anything for a while, and
    // the process grew by 21–32 MiB in a batch or two.
    let db = sled::Config::new().temporary(true).cache_capacity(4 << 20).flush_every_ms(None).open().unwrap();
    let tree = lrs_projection::Tree::open(&db, "views").unwrap();
    let mut key_source: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut live_after = Vec::new();
    for _ in 0..24 {
        let mut batch = PendingBatch::new(&tree);
        for _ in 0..4_000 {
            // Random keys, as statement ids are: each write lands on some
            // leaf and replaces its page version.
            key_source ^= key_source << 13;
            key_source ^= key_source >> 7;
            key_source ^= key_source << 17;
            batch.put(key_source.to_be_bytes().to_vec(), vec![7; 48]);
        }
        commit(&tree, batch).unwrap();
        live_after.push(resident_anonymous() >> 20);
    }
    // The tree grows (96,000 keys of 56 bytes, and sled's entry for each
    // page), but what the batches replaced is freed and its memory used
    // again: the process grows by far less over the last twelve batches
    // than the page versions they replaced (each write replaces a leaf of
    // up to 16 entries). In MiB.
    let growth = live_after[23].saturating_sub(live_after[11]);
    assert!(growth < 24, "the process grew by {growth} MiB over twelve batches: {live_after:?}");
}
