//! A projection's sled tree, whose batches its readers see whole, without
//! holding up any other tree of the process.
//!
//! sled writes a batch atomically (`Tree::apply_batch`) under one lock for
//! the whole process: while any tree applies a batch, every read and write
//! of every other tree waits, sled's own flushers included. The xAPI views
//! and the Learning Hub views each commit a batch per chunk of events, so
//! each stalled the other's reads for as long as the other's commits took:
//! in a replay, the xAPI views' thread slept about a tenth of its time in
//! that lock, waiting for the Learning Hub views' commits.
//!
//! A [`Tree`] gets what `apply_batch` gave without that lock:
//!
//! - **Atomic on a crash.** [`Tree::commit`] first writes the whole batch
//!   as one value (its intent) in a tree of its own beside the projection's,
//!   then each write, then removes the intent. sled recovers a prefix of a
//!   store's writes, every tree's, in the order they were made (its log is
//!   stable only up to its first gap), so
//!   after a crash either the intent is there, with some of the writes or
//!   all, or the batch is whole, or none of it was made. [`Tree::open`]
//!   makes the writes of an intent it finds again (each sets or removes a
//!   key, so making it twice is making it once) and removes it.
//! - **Whole to readers.** The tree's own lock: a commit holds it to write,
//!   and each read (a `get`, each step of an iterator) to read, as sled's
//!   lock did, but only for this tree. A reader sees a batch entirely or
//!   not at all, and readers of other trees do not wait for it.
//!
//! A commit that fails or panics midway (sled refuses every write after an
//! I/O error) leaves its intent and part of its writes: the tree then
//! refuses every read and commit, so that nothing is read or built on half
//! a batch, until it is opened again, which finishes the batch.
//!
//! The intent has a tree to itself because it is large (a batch of a
//! replay writes megabytes): in the projection's tree, the leaf that held
//! it was written out whole, intent and all, at each of its splits, which
//! made a replay slower than sled's lock had.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use sled::IVec;

use crate::codec::{Reader, put_varint};

/// The key of a commit's intent, in its tree.
const INTENT: &[u8] = b"intent";

/// A batch of writes: each key set to a value, or removed (`None`).
pub type Writes = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A projection's tree: see the module's documentation. Clones share the
/// tree and its lock.
#[derive(Clone, Debug)]
pub struct Tree {
    tree: sled::Tree,
    /// Where a commit's intent is written, in the same store.
    intents: sled::Tree,
    lock: Arc<RwLock<()>>,
    /// Set when a commit stopped midway: nothing is read or written until
    /// the tree is opened again.
    broken: Arc<AtomicBool>,
}

impl Tree {
    /// The projection tree `name` of `db`, after finishing a commit a
    /// crash interrupted.
    pub fn open(db: &sled::Db, name: &str) -> sled::Result<Self> {
        let intents = db.open_tree(format!("{name} commit intent"))?;
        let tree = Self { tree: db.open_tree(name)?, intents, lock: Arc::default(), broken: Arc::default() };
        if let Some(intent) = tree.intents.get(INTENT)? {
            let writes = decode_intent(&intent)
                .ok_or_else(|| sled::Error::Unsupported("a projection's commit intent is unreadable".to_owned()))?;
            tree.write_each(writes, || {})?;
            tree.intents.remove(INTENT)?;
        }
        Ok(tree)
    }

    fn reading(&self) -> sled::Result<RwLockReadGuard<'_, ()>> {
        read_lock(&self.lock, &self.broken)
    }

    /// Makes every write of `writes` at once, for readers and on a crash.
    pub fn commit(&self, writes: Writes) -> sled::Result<()> {
        self.commit_with(writes, || {})
    }

    /// [`Tree::commit`], calling `midway` once the intent is written and
    /// about half the writes made (for tests: a crash, a read elsewhere).
    fn commit_with(&self, writes: Writes, midway: impl FnOnce()) -> sled::Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let _writing = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        if self.broken.load(Ordering::Acquire) {
            return Err(broken_error());
        }
        // A single write is atomic by itself.
        let several = writes.len() > 1;
        if several {
            self.intents.insert(INTENT, encode_intent(&writes))?;
        }
        // Until the intent is removed, a stop (an error, a panic) leaves
        // the tree broken.
        let stopped = Breaks(&self.broken);
        self.write_each(writes, midway)?;
        if several {
            self.intents.remove(INTENT)?;
        }
        std::mem::forget(stopped);
        Ok(())
    }

    /// Makes each write in turn, calling `midway` after about half.
    fn write_each(&self, writes: Writes, midway: impl FnOnce()) -> sled::Result<()> {
        let half = writes.len() / 2;
        let mut midway = Some(midway);
        for (done, (key, value)) in writes.into_iter().enumerate() {
            if done == half
                && let Some(midway) = midway.take()
            {
                midway();
            }
            match value {
                Some(value) => self.tree.insert(key, value)?,
                None => self.tree.remove(key)?,
            };
        }
        Ok(())
    }

    pub fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let _reading = self.reading()?;
        self.tree.get(key)
    }

    pub fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<bool> {
        let _reading = self.reading()?;
        self.tree.contains_key(key)
    }

    /// Whether the tree holds no key.
    pub fn is_empty(&self) -> bool {
        let _reading = self.lock.read().unwrap_or_else(PoisonError::into_inner);
        self.tree.is_empty()
    }

    pub fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Iter {
        self.over(self.tree.scan_prefix(prefix))
    }

    pub fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> Iter {
        self.over(self.tree.range(range))
    }

    /// Every key, in order.
    pub fn iter(&self) -> Iter {
        self.over(self.tree.iter())
    }

    fn over(&self, inner: sled::Iter) -> Iter {
        Iter { inner, lock: self.lock.clone(), broken: self.broken.clone() }
    }

    /// Sets one key (atomic by itself), outside any batch.
    pub fn insert<K: AsRef<[u8]>, V: Into<IVec>>(&self, key: K, value: V) -> sled::Result<Option<IVec>> {
        let _writing = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        self.tree.insert(key, value)
    }

    /// Removes one key (atomic by itself), outside any batch.
    pub fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let _writing = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        self.tree.remove(key)
    }

    /// Removes every key.
    pub fn clear(&self) -> sled::Result<()> {
        let _writing = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        self.tree.clear()
    }
}

/// Keys and values of a [`Tree`], each step taken under its lock (so a
/// step never lands inside a commit).
pub struct Iter {
    inner: sled::Iter,
    lock: Arc<RwLock<()>>,
    broken: Arc<AtomicBool>,
}

impl Iter {
    /// One step of the inner iterator, under the tree's lock.
    fn step(
        &mut self,
        step: impl FnOnce(&mut sled::Iter) -> Option<sled::Result<(IVec, IVec)>>,
    ) -> Option<sled::Result<(IVec, IVec)>> {
        match read_lock(&self.lock, &self.broken) {
            Ok(_reading) => step(&mut self.inner),
            Err(error) => Some(Err(error)),
        }
    }

    /// The keys alone.
    pub fn keys(self) -> impl DoubleEndedIterator<Item = sled::Result<IVec>> + Send {
        self.map(|entry| entry.map(|(key, _)| key))
    }
}

impl Iterator for Iter {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(sled::Iter::next)
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(sled::Iter::next_back)
    }
}

/// The tree's lock, to read, unless a commit stopped midway.
fn read_lock<'a>(lock: &'a RwLock<()>, broken: &AtomicBool) -> sled::Result<RwLockReadGuard<'a, ()>> {
    let reading = lock.read().unwrap_or_else(PoisonError::into_inner);
    if broken.load(Ordering::Acquire) { Err(broken_error()) } else { Ok(reading) }
}

/// What a broken tree answers.
fn broken_error() -> sled::Error {
    sled::Error::Io(std::io::Error::other(
        "a commit of this projection stopped midway; it is finished when the store is opened again",
    ))
}

/// Marks a tree broken when dropped (a commit stopping early), unless
/// forgotten.
struct Breaks<'a>(&'a AtomicBool);

impl Drop for Breaks<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A batch as one value, in the projections' binary forms
/// ([`crate::codec`]): for each write, the key's length and the key, then
/// 0 for a removal, or 1, the value's length and the value.
fn encode_intent(writes: &Writes) -> Vec<u8> {
    let size = writes.iter().map(|(key, value)| 21 + key.len() + value.as_ref().map_or(0, Vec::len)).sum();
    let mut out = Vec::with_capacity(size);
    for (key, value) in writes {
        put_varint(&mut out, key.len() as u128);
        out.extend_from_slice(key);
        match value {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                put_varint(&mut out, value.len() as u128);
                out.extend_from_slice(value);
            }
        }
    }
    out
}

/// The writes [`encode_intent`] wrote, or `None` if `bytes` are not such.
fn decode_intent(bytes: &[u8]) -> Option<Writes> {
    fn bytes_of(reader: &mut Reader<'_>) -> Option<Vec<u8>> {
        let len = usize::try_from(reader.varint().ok()?).ok()?;
        Some(reader.bytes(len).ok()?.to_vec())
    }
    let mut reader = Reader::new(bytes);
    let mut writes = Writes::new();
    while !reader.is_done() {
        let key = bytes_of(&mut reader)?;
        let value = match reader.byte().ok()? {
            0 => None,
            1 => Some(bytes_of(&mut reader)?),
            _ => return None,
        };
        writes.insert(key, value);
    }
    Some(writes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::{Duration, Instant};

    fn writes(pairs: &[(&str, Option<&str>)]) -> Writes {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))).collect()
    }

    fn value(tree: &Tree, key: &str) -> Option<String> {
        tree.get(key).unwrap().map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn an_intent_reads_back_as_its_writes_and_a_damaged_one_is_refused() {
        let batch = writes(&[("a", Some("1")), ("b", None), ("c", Some(""))]);
        let encoded = encode_intent(&batch);
        assert_eq!(decode_intent(&encoded), Some(batch));
        assert_eq!(decode_intent(&encoded[..encoded.len() - 1]), None);
        assert_eq!(decode_intent(&[1, b'a', 7]), None, "neither a removal nor a value");
    }

    #[test]
    fn a_commit_a_crash_interrupted_is_finished_when_the_tree_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = Tree::open(&db, "t").unwrap();
        tree.commit(writes(&[("gone", Some("x")), ("kept", Some("old"))])).unwrap();
        let batch =
            writes(&[("a", Some("1")), ("b", Some("2")), ("gone", None), ("kept", Some("new")), ("z", Some("26"))]);
        // The process dies midway through the commit: the intent and about
        // half the writes reached the disk, not the rest.
        tree.commit_with(batch, || {
            db.flush().unwrap();
            // What a crash here leaves: the store as flushed, reopened.
            let copy = tempfile::tempdir().unwrap();
            for file in walk(dir.path()) {
                let to = copy.path().join(file.strip_prefix(dir.path()).unwrap());
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                std::fs::copy(&file, &to).unwrap();
            }
            std::fs::remove_file(copy.path().join("db.lock")).ok();
            let crashed = sled::Config::new().path(copy.path()).open().unwrap();
            let raw = crashed.open_tree("t").unwrap();
            let intents = crashed.open_tree("t commit intent").unwrap();
            assert!(intents.get(INTENT).unwrap().is_some(), "the intent is written before the writes");
            assert_eq!(raw.get("z").unwrap(), None, "the writes after midway are not made yet");
            let reopened = Tree::open(&crashed, "t").unwrap();
            for (key, expected) in
                [("a", Some("1")), ("b", Some("2")), ("gone", None), ("kept", Some("new")), ("z", Some("26"))]
            {
                assert_eq!(value(&reopened, key).as_deref(), expected, "{key} after the reopen");
            }
            assert_eq!(intents.get(INTENT).unwrap(), None, "the intent is removed once its writes are made");
            assert_eq!(reopened.iter().count(), 4);
        })
        .unwrap();
        assert_eq!(tree.intents.get(INTENT).unwrap(), None);
        assert_eq!(tree.iter().count(), 4);
    }

    #[test]
    fn a_commit_stopped_midway_leaves_the_tree_refusing_until_it_is_opened_again() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = Tree::open(&db, "t").unwrap();
        tree.commit(writes(&[("a", Some("old")), ("b", Some("old"))])).unwrap();
        let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tree.commit_with(writes(&[("a", Some("new")), ("b", Some("new"))]), || panic!("stopped midway"))
        }));
        assert!(stopped.is_err());
        // "a" is written, "b" is not: nothing may read either, or commit.
        assert!(tree.get("b").is_err());
        assert!(tree.contains_key("a").is_err());
        assert!(tree.iter().next().unwrap().is_err());
        assert!(tree.scan_prefix("b").next_back().unwrap().is_err());
        assert!(tree.commit(writes(&[("c", Some("1"))])).is_err());
        let reopened = Tree::open(&db, "t").unwrap();
        assert_eq!((value(&reopened, "a").as_deref(), value(&reopened, "b").as_deref()), (Some("new"), Some("new")));
        assert_eq!(reopened.get("c").unwrap(), None);
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
        }
        files
    }

    #[test]
    fn a_commit_holds_up_readers_of_its_own_tree_only() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (mine, other) = (Tree::open(&db, "mine").unwrap(), Tree::open(&db, "other").unwrap());
        other.commit(writes(&[("o", Some("1"))])).unwrap();
        mine.commit(writes(&[("a", Some("old")), ("b", Some("old"))])).unwrap();
        std::thread::scope(|scope| {
            mine.commit_with(writes(&[("a", Some("new")), ("b", Some("new"))]), || {
                // "a" is written, "b" not yet. A reader of the other tree
                // goes on; one of this tree waits for the whole batch.
                let other_read = scope.spawn(|| value(&other, "o"));
                let deadline = Instant::now() + Duration::from_secs(30);
                while !other_read.is_finished() {
                    assert!(Instant::now() < deadline, "a read of another tree waited for this commit");
                    std::thread::yield_now();
                }
                assert_eq!(other_read.join().unwrap().as_deref(), Some("1"));
                let (started, started_rx) = std::sync::mpsc::channel();
                let mine = &mine;
                let mine_read = scope.spawn(move || {
                    started.send(()).unwrap();
                    (value(mine, "b"), value(mine, "a"))
                });
                started_rx.recv().unwrap();
                let until = Instant::now() + Duration::from_millis(200);
                while Instant::now() < until {
                    assert!(!mine_read.is_finished(), "a read of this tree saw a batch half made");
                    std::thread::yield_now();
                }
            })
            .unwrap();
        });
        assert_eq!(value(&mine, "b").as_deref(), Some("new"));
    }

    #[test]
    fn readers_see_every_batch_whole() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = Tree::open(&db, "t").unwrap();
        let keys: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
        let batch = |n: u32| keys.iter().map(|k| (k.as_bytes().to_vec(), Some(n.to_be_bytes().to_vec()))).collect();
        tree.commit(batch(0)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut scans = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    // A scan sees each key once; a later key never holds
                    // an older batch's value than an earlier one.
                    let seen: Vec<u32> =
                        tree.iter().map(|e| u32::from_be_bytes(e.unwrap().1.as_ref().try_into().unwrap())).collect();
                    assert_eq!(seen.len(), 50);
                    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
                    let (first, last) = (value_of(&tree, "k00"), value_of(&tree, "k49"));
                    assert!(first <= last, "k49 read after k00 holds an older batch");
                    scans += 1;
                }
                scans
            });
            for n in 1..=300 {
                tree.commit(batch(n)).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            assert!(reader.join().unwrap() > 0);
        });
    }

    fn value_of(tree: &Tree, key: &str) -> u32 {
        u32::from_be_bytes(tree.get(key).unwrap().unwrap().as_ref().try_into().unwrap())
    }
}
