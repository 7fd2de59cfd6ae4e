//! Writes of one chunk of events, read back while the chunk is applied and
//! written atomically (with the projection's offset) at the end.

use std::collections::BTreeMap;
use std::sync::Arc;

use lrs_xapi::events::{Event, EventError};

use crate::handoff::EventSource;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Posting-list entries added by a batch: list → (position, statement id),
/// in the order they were added.
pub type Postings = BTreeMap<Vec<u8>, Vec<(crate::keys::StoredKey, uuid::Uuid)>>;

/// Pending writes over a sled tree: reads see the pending writes first.
/// Posting-list entries are collected apart, to be written as a few wide
/// keys when the batch is finished.
pub struct PendingBatch<'a> {
    tree: &'a crate::Tree,
    writes: crate::tree::Writes,
    postings: Postings,
}

impl<'a> PendingBatch<'a> {
    pub fn new(tree: &'a crate::Tree) -> Self {
        Self { tree, writes: BTreeMap::new(), postings: BTreeMap::new() }
    }

    /// Adds the statement at `stored` with `id` to the posting list `list`.
    pub fn post(&mut self, list: Vec<u8>, stored: crate::keys::StoredKey, id: uuid::Uuid) {
        self.postings.entry(list).or_default().push((stored, id));
    }

    /// The posting-list entries added so far, leaving none.
    pub fn take_postings(&mut self) -> Postings {
        std::mem::take(&mut self.postings)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, sled::Error> {
        Ok(self.get(key)?.is_some())
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Keys and values under `prefix`, stored and pending, with deletions
    /// applied, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, sled::Error> {
        let mut found: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for entry in self.tree.scan_prefix(prefix) {
            let (key, value) = entry?;
            found.insert(key.to_vec(), Some(value.to_vec()));
        }
        for (key, value) in self.writes.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            found.insert(key.clone(), value.clone());
        }
        Ok(found.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// The entry with the greatest key under `prefix` that is at most
    /// `key`, stored or pending, with deletions applied: for tables whose
    /// keys are the lowest of what their values hold (such as packed rows).
    pub fn last_at_or_before(&self, prefix: &[u8], key: &[u8]) -> Result<Option<Entry>, sled::Error> {
        let stored = self.first_not_deleted(self.tree.range(prefix..=key).rev())?;
        let pending = self.writes.range(prefix.to_vec()..=key.to_vec()).rev().find(|(_, value)| value.is_some());
        Ok(nearer(stored, pending, |stored, pending| stored > pending))
    }

    /// The entry with the least key under `prefix` that is above `key`,
    /// stored or pending, with deletions applied.
    pub fn first_after(&self, prefix: &[u8], key: &[u8]) -> Result<Option<Entry>, sled::Error> {
        use std::ops::Bound::{Excluded, Unbounded};
        let within = |k: &[u8]| k.starts_with(prefix);
        let stored = self.first_not_deleted(
            self.tree
                .range::<&[u8], _>((Excluded(key), Unbounded))
                .take_while(|entry| entry.as_ref().map_or(true, |(k, _)| within(k))),
        )?;
        let pending = self
            .writes
            .range::<[u8], _>((Excluded(key), Unbounded))
            .take_while(|(k, _)| within(k))
            .find(|(_, value)| value.is_some());
        Ok(nearer(stored, pending, |stored, pending| stored < pending))
    }

    /// The first of `entries` (stored ones) this batch does not delete.
    fn first_not_deleted(
        &self,
        mut entries: impl Iterator<Item = Result<(sled::IVec, sled::IVec), sled::Error>>,
    ) -> Result<Option<(sled::IVec, sled::IVec)>, sled::Error> {
        entries
            .find(|entry| entry.as_ref().map_or(true, |(k, _)| !matches!(self.writes.get(k.as_ref()), Some(None))))
            .transpose()
    }

    /// Keys under `prefix`, stored and pending, with deletions applied.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, sled::Error> {
        Ok(self.scan_prefix(prefix)?.into_iter().map(|(k, _)| k).collect())
    }
}

/// Of the nearest stored entry the batch does not delete and the nearest
/// pending write (never a deletion), the one `stored_nearer` says is
/// nearer; the pending one where both have the same key. A stored entry
/// that wins has no pending write: that write would be at least as near.
fn nearer(
    stored: Option<(sled::IVec, sled::IVec)>,
    pending: Option<(&Vec<u8>, &Option<Vec<u8>>)>,
    stored_nearer: impl Fn(&[u8], &[u8]) -> bool,
) -> Option<Entry> {
    let pending = pending.and_then(|(k, v)| Some((k.clone(), v.clone()?)));
    match (stored, pending) {
        (Some((k, v)), pending) if pending.as_ref().is_none_or(|(p, _)| stored_nearer(&k, p)) => {
            Some((k.to_vec(), v.to_vec()))
        }
        (_, pending) => pending,
    }
}

/// Applies log records to a projection kept in `tree` whose next offset is
/// `next`: skips records already applied (re-delivery is harmless; offsets
/// may have gaps, see the log contract), decodes each event and hands it to `apply` with its offset, then
/// writes every change together with the new offset under `offset_key` in
/// one atomic batch ([`crate::Tree::commit`]). Returns the new next offset, or `None` when
/// nothing new was applied.
pub fn apply_records<'t, E: From<sled::Error>>(
    tree: &'t crate::Tree,
    offset_key: &[u8],
    next: lrs_eventlog::Offset,
    records: &[lrs_eventlog::LogRecord],
    source: &EventSource,
    bad_event: impl Fn(lrs_eventlog::Offset, String) -> E,
    apply: impl FnMut(&mut PendingBatch<'t>, lrs_eventlog::Offset, &lrs_xapi::events::Event) -> Result<(), E>,
) -> Result<Option<lrs_eventlog::Offset>, E> {
    apply_records_then(tree, next, records, source, bad_event, apply, |batch, next| {
        batch.put(offset_key.to_vec(), next.to_be_bytes().to_vec());
        Ok(())
    })
}

/// [`apply_records`] for a projection that keeps its offset its own way:
/// `finish` runs on the batch after its last event, with the new next
/// offset, and must write that offset (with whatever else the batch still
/// needs, such as collected postings turned into keys) before the batch is
/// written. Each record's event comes from `source`: decoded, or handed
/// over already decoded.
pub fn apply_records_then<'t, E: From<sled::Error>>(
    tree: &'t crate::Tree,
    next: lrs_eventlog::Offset,
    records: &[lrs_eventlog::LogRecord],
    source: &EventSource,
    bad_event: impl Fn(lrs_eventlog::Offset, String) -> E,
    mut apply: impl FnMut(&mut PendingBatch<'t>, lrs_eventlog::Offset, &lrs_xapi::events::Event) -> Result<(), E>,
    finish: impl FnOnce(&mut PendingBatch<'t>, lrs_eventlog::Offset) -> Result<(), E>,
) -> Result<Option<lrs_eventlog::Offset>, E> {
    let start = next;
    let mut next = next;
    let mut batch = PendingBatch::new(tree);
    let mut step =
        |batch: &mut PendingBatch<'t>, offset: lrs_eventlog::Offset, event: Result<Arc<Event>, EventError>| {
            let event = event.map_err(|e| bad_event(offset, e.to_string()))?;
            apply(batch, offset, &event)?;
            next = offset + 1;
            Ok::<(), E>(())
        };
    if decode_ahead_pays(records, start, source) {
        std::thread::scope(|scope| {
            // One event waits decoded while one is applied: the decoder
            // stays at most two events ahead, and stops when the apply
            // does (an error drops the receiver).
            let (decoded, events) = std::sync::mpsc::sync_channel(1);
            scope.spawn(move || {
                for record in unapplied(records, start) {
                    let event = source.event(record);
                    let failed = event.is_err();
                    if decoded.send((record.offset, event)).is_err() || failed {
                        break;
                    }
                }
            });
            events.into_iter().try_for_each(|(offset, event)| step(&mut batch, offset, event))
        })?;
    } else {
        for record in unapplied(records, start) {
            step(&mut batch, record.offset, source.event(record))?;
        }
    }
    if next == start {
        return Ok(None);
    }
    finish(&mut batch, next)?;
    commit(tree, batch)?;
    Ok(Some(next))
}

/// The records from `next` on, each once (re-delivery is harmless; see
/// [`apply_records`]).
fn unapplied(
    records: &[lrs_eventlog::LogRecord],
    next: lrs_eventlog::Offset,
) -> impl Iterator<Item = &lrs_eventlog::LogRecord> {
    let mut next = next;
    records.iter().filter(move |record| {
        let new = record.offset >= next;
        if new {
            next = record.offset + 1;
        }
        new
    })
}

/// Events a batch decodes beside its apply, at least (in bytes of their
/// encoding): below it, a thread for the decoding costs about what it
/// saves.
const DECODE_AHEAD_BYTES: usize = 64 * 1024;

/// Whether the events of `records` from `next` on are better decoded on a
/// thread of their own, each while the one before it is applied: when
/// there is more than one, they add up to [`DECODE_AHEAD_BYTES`] or more,
/// and the first is not handed over already decoded (a replay, a
/// projection catching up or fed by Kafka; in one process the writer's
/// events are usually handed over, and then there is nothing to decode).
///
/// Decoding took about a quarter of the xAPI views' thread in a replay,
/// the thread that bounds it; the Learning Hub views take what the xAPI
/// views decoded.
fn decode_ahead_pays(records: &[lrs_eventlog::LogRecord], next: lrs_eventlog::Offset, source: &EventSource) -> bool {
    let mut pending = unapplied(records, next);
    let Some(first) = pending.next() else {
        return false;
    };
    let mut bytes = first.payload.len();
    // Reached among the records after the first: there are several.
    pending.any(|record| {
        bytes += record.payload.len();
        bytes >= DECODE_AHEAD_BYTES
    }) && !source.holds(first.offset)
}

/// Writes `batch` to `tree` at once ([`crate::Tree::commit`]).
///
/// sled hands every page version a write replaces to crossbeam-epoch, to
/// be freed once no thread can still read it; the collector frees them a
/// little at a time as threads pin (at most eight bags of 64 objects every
/// 128 pins of a thread). `Tree::commit` makes each write as a sled
/// operation of its own, each pinning, so the collector keeps up with
/// what a batch replaces (`tests/garbage.rs`). sled's `apply_batch`, which
/// wrote the batches until 7 December, pinned once for a whole batch: a
/// projection applying batches of thousands of writes with little else
/// pinning (a rebuild from the log) left far more behind than was freed,
/// 40 MB a second until the server ran out of memory, unless each batch
/// was followed by pins of its own.
pub fn commit(tree: &crate::Tree, batch: PendingBatch<'_>) -> Result<(), sled::Error> {
    tree.commit(batch.writes)
}

/// A digest of every key and value of a tree: two trees with the same
/// digest hold the same state (used to compare projections).
pub fn tree_digest(tree: &crate::Tree) -> Result<String, sled::Error> {
    use sha1::Digest;
    let mut hasher = sha1::Sha1::new();
    for entry in tree.iter() {
        let (key, value) = entry?;
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(&key);
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(&value);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> crate::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        crate::Tree::open(&db, "t").unwrap()
    }

    fn entry(key: &str, value: &str) -> Option<Entry> {
        Some((key.as_bytes().to_vec(), value.as_bytes().to_vec()))
    }

    #[test]
    fn neighbours_of_a_key_see_pending_writes_and_deletions_and_stay_under_the_prefix() {
        let tree = tree();
        for (key, value) in
            [("a9", "outside"), ("b2", "stored 2"), ("b4", "stored 4"), ("b6", "stored 6"), ("c1", "outside")]
        {
            tree.insert(key, value).unwrap();
        }
        let mut batch = PendingBatch::new(&tree);
        let before = |batch: &PendingBatch<'_>, key: &str| batch.last_at_or_before(b"b", key.as_bytes()).unwrap();
        let after = |batch: &PendingBatch<'_>, key: &str| batch.first_after(b"b", key.as_bytes()).unwrap();
        assert_eq!(before(&batch, "b1"), None, "a9 is under another prefix");
        assert_eq!(before(&batch, "b4"), entry("b4", "stored 4"), "the key itself");
        assert_eq!(before(&batch, "b5"), entry("b4", "stored 4"));
        assert_eq!(after(&batch, "b4"), entry("b6", "stored 6"), "above the key, not at it");
        assert_eq!(after(&batch, "b6"), None, "c1 is under another prefix");

        batch.put(b"b5".to_vec(), b"pending 5".to_vec());
        batch.delete(b"b4".to_vec());
        batch.put(b"b6".to_vec(), b"pending 6".to_vec());
        assert_eq!(before(&batch, "b4"), entry("b2", "stored 2"), "a deleted key is passed over");
        assert_eq!(before(&batch, "b5"), entry("b5", "pending 5"));
        assert_eq!(before(&batch, "b9"), entry("b6", "pending 6"), "a stored key's pending value");
        assert_eq!(after(&batch, "b2"), entry("b5", "pending 5"));
        assert_eq!(after(&batch, "b5"), entry("b6", "pending 6"));

        batch.delete(b"b2".to_vec());
        batch.delete(b"b5".to_vec());
        assert_eq!(before(&batch, "b5"), None, "every key up to it deleted");
        assert_eq!(after(&batch, "b"), entry("b6", "pending 6"));
        batch.put(b"b0".to_vec(), b"pending 0".to_vec());
        assert_eq!(before(&batch, "b5"), entry("b0", "pending 0"), "pending only");
        assert_eq!(after(&batch, "b"), entry("b0", "pending 0"));
    }

    /// A step of [`neighbours_of_keys_are_those_of_the_tree_and_the_batch_together_at_each_lookup`].
    #[derive(Debug, Clone)]
    enum Step {
        Put(u8, u8),
        Delete(u8),
        Before(u8),
        After(u8),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        // Few keys, so that writes land on what lookups find.
        prop_oneof![
            (0u8..12, any::<u8>()).prop_map(|(k, v)| Step::Put(k, v)),
            (0u8..12).prop_map(Step::Delete),
            (0u8..12).prop_map(Step::Before),
            (0u8..12).prop_map(Step::After),
        ]
    }

    proptest::proptest! {
        /// Through any writes and deletions, a batch finds the neighbours of
        /// a key that the tree and its writes together hold at the time:
        /// a stored key it deletes is passed over, one it writes again is
        /// read as written, and keys under other prefixes are never found.
        #[test]
        fn neighbours_of_keys_are_those_of_the_tree_and_the_batch_together_at_each_lookup(
            stored in proptest::collection::btree_map(0u8..12, proptest::prelude::any::<u8>(), 0..10),
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let tree = tree();
            let key = |k: u8| vec![b'b', k];
            // Keys under other prefixes, at both ends.
            tree.insert(b"a\xff", b"outside".as_slice()).unwrap();
            tree.insert(b"c\x00", b"outside".as_slice()).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for (k, v) in &stored {
                tree.insert(key(*k), vec![*v]).unwrap();
                model.insert(key(*k), vec![*v]);
            }
            let mut batch = PendingBatch::new(&tree);
            for step in steps {
                match step {
                    Step::Put(k, v) => {
                        batch.put(key(k), vec![v]);
                        model.insert(key(k), vec![v]);
                    }
                    Step::Delete(k) => {
                        batch.delete(key(k));
                        model.remove(&key(k));
                    }
                    Step::Before(k) => {
                        let want = model.range(b"b".to_vec()..=key(k)).next_back().map(|(k, v)| (k.clone(), v.clone()));
                        proptest::prop_assert_eq!(batch.last_at_or_before(b"b", &key(k)).unwrap(), want, "at or before {}", k);
                    }
                    Step::After(k) => {
                        let want = model.range(key(k)..).find(|(found, _)| **found != key(k)).map(|(k, v)| (k.clone(), v.clone()));
                        proptest::prop_assert_eq!(batch.first_after(b"b", &key(k)).unwrap(), want, "after {}", k);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod decode_ahead_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use lrs_eventlog::LogRecord;
    use std::time::{Duration, Instant};

    /// Events of 40 statements each, about 40 KB encoded.
    fn records(offsets: std::ops::Range<u64>) -> Vec<LogRecord> {
        offsets
            .map(|offset| {
                let statements = (0..40)
                    .map(|i| serde_json::json!({ "id": format!("{offset}-{i}"), "padding": "x".repeat(1000) }))
                    .collect();
                let event = Event::StatementsStored { statements, attachments: Vec::new() };
                LogRecord { offset, payload: lrs_xapi::events::encode(&event) }
            })
            .collect()
    }

    fn apply_all(
        tree: &crate::Tree,
        records: &[LogRecord],
        source: &EventSource,
        mut each: impl FnMut(lrs_eventlog::Offset),
    ) -> Result<Option<lrs_eventlog::Offset>, sled::Error> {
        apply_records(
            tree,
            b"offset",
            0,
            records,
            source,
            |_, reason| sled::Error::Unsupported(reason),
            |batch, offset, _| {
                each(offset);
                batch.put(offset.to_be_bytes().to_vec(), Vec::new());
                Ok(())
            },
        )
    }

    #[test]
    fn the_next_event_is_decoded_while_one_is_applied() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = crate::Tree::open(&db, "t").unwrap();
        let source = EventSource::default();
        let mut applied = Vec::new();
        let next = apply_all(&tree, &records(0..4), &source, |offset| {
            if offset == 0 {
                // Applying the first event: the second is decoded meanwhile.
                let deadline = Instant::now() + Duration::from_secs(30);
                while source.decoded() < 2 {
                    assert!(Instant::now() < deadline, "the next event was not decoded while this one applied");
                    std::thread::yield_now();
                }
            }
            applied.push(offset);
        })
        .unwrap();
        assert_eq!((next, applied), (Some(4), vec![0, 1, 2, 3]));
        assert_eq!(source.decoded(), 4, "each decoded once");
    }

    #[test]
    fn records_applied_already_are_skipped_and_a_bad_event_stops_the_batch_unwritten() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = crate::Tree::open(&db, "t").unwrap();
        let source = EventSource::default();
        // Re-delivered records among them: each offset is applied once.
        let mut delivered = records(0..3);
        delivered.insert(2, delivered[1].clone());
        let mut applied = Vec::new();
        assert_eq!(apply_all(&tree, &delivered, &source, |offset| applied.push(offset)).unwrap(), Some(3));
        assert_eq!(applied, vec![0, 1, 2]);

        let mut bad = records(3..6);
        bad[1].payload = b"not an event".to_vec();
        let error = apply_all(&tree, &bad, &source, |_| {}).unwrap_err();
        assert!(error.to_string().contains("not valid JSON"), "{error}");
        assert_eq!(tree.get(3u64.to_be_bytes()).unwrap(), None, "nothing of the failed batch is written");
        assert_eq!(tree.get(b"offset").unwrap().as_deref(), Some(&3u64.to_be_bytes()[..]));
    }
}
