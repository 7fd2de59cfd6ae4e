//! The tails of the posting lists: each list's newest entries written to
//! the tree but not yet a chunk of their own, many lists to a key.
//!
//! Most lists stay short: a registration's has the few statements of one
//! session, a learner's a few dozen. Written as a chunk each time the
//! buffer lets go of them ([`crate::postings`]), they were most of the
//! views' keys (4.1 million at 10 million statements), and sled holds
//! memory for every key of an open tree. Written here instead, a list's
//! entries join its tail in a bucket shared with the other lists whose ids
//! begin with the same [`BUCKET_PREFIX`] bytes ([`keys::tail_bucket`]); a
//! tail that reaches [`SEAL_AT`] entries becomes a chunk keyed by its
//! highest position ([`keys::index_chunk`]) and leaves the bucket, in the
//! same batch.
//!
//! Invariants: a list's tail holds entries above every entry of its
//! chunks, ascending, and fewer than [`SEAL_AT`]; a bucket holds only the
//! lists whose ids begin with its prefix, in order, none with an empty
//! tail; an empty bucket is no key.

use std::collections::BTreeMap;

use crate::batch::PendingBatch;
use crate::codec::{Reader, put_varint};
use crate::keys::{self, StoredKey};
use crate::views::ViewsError;

/// Bytes of a list's id that name its bucket: the index kind and two bytes
/// of the value's hash, so up to 65,536 buckets an index.
pub(crate) const BUCKET_PREFIX: usize = 3;

/// A tail this long is written as a chunk of its own.
pub(crate) const SEAL_AT: usize = 256;

/// Lists' tails in one bucket, by list id.
type Bucket = BTreeMap<Vec<u8>, Vec<StoredKey>>;

/// A list's id and entries.
type ListEntries = (Vec<u8>, Vec<StoredKey>);

/// The first byte of a bucket's value.
const BUCKET_FORMAT: u8 = 1;

/// A bucket's value: a format byte, then for each list in order, the rest
/// of its id after the bucket's prefix (its length as a varint, then the
/// bytes), the length of its entries as a varint, and its entries as a
/// chunk holds them ([`keys::put_positions`]).
fn encode(bucket: &Bucket) -> Vec<u8> {
    let mut out = vec![BUCKET_FORMAT];
    let mut entries = Vec::new();
    for (list, tail) in bucket {
        let rest = &list[BUCKET_PREFIX..];
        put_varint(&mut out, rest.len() as u128);
        out.extend_from_slice(rest);
        entries.clear();
        keys::put_positions(&mut entries, tail.iter().copied());
        put_varint(&mut out, entries.len() as u128);
        out.extend_from_slice(&entries);
    }
    out
}

/// Each list of the bucket at `key` with its entries' bytes, in order;
/// `None` for a value [`encode`] did not write.
fn lists_of<'v>(key: &[u8], value: &'v [u8]) -> Option<Vec<(Vec<u8>, &'v [u8])>> {
    let prefix = key.get(1..)?;
    let (&format, rest) = value.split_first()?;
    if format != BUCKET_FORMAT || prefix.len() != BUCKET_PREFIX {
        return None;
    }
    let mut input = Reader::new(rest);
    let mut lists = Vec::new();
    while !input.is_done() {
        let len = usize::try_from(input.varint().ok()?).ok()?;
        let mut list = prefix.to_vec();
        list.extend_from_slice(input.bytes(len).ok()?);
        let len = usize::try_from(input.varint().ok()?).ok()?;
        lists.push((list, input.bytes(len).ok()?));
    }
    Some(lists)
}

fn decode(key: &[u8], value: &[u8]) -> Result<Bucket, ViewsError> {
    let corrupt = || ViewsError::Corrupt("posting-list tails".to_owned());
    let mut bucket = Bucket::new();
    for (list, entries) in lists_of(key, value).ok_or_else(corrupt)? {
        bucket.insert(list, keys::read_positions(entries).ok_or_else(corrupt)?);
    }
    Ok(bucket)
}

/// The tail of `list`, ascending (empty if it has none).
pub(crate) fn tail(tree: &sled::Tree, list: &[u8]) -> Result<Vec<StoredKey>, ViewsError> {
    let key = keys::tail_bucket(list);
    let Some(value) = tree.get(&key)? else {
        return Ok(Vec::new());
    };
    let corrupt = || ViewsError::Corrupt("posting-list tails".to_owned());
    match lists_of(&key, &value).ok_or_else(corrupt)?.into_iter().find(|(id, _)| id == list) {
        Some((_, entries)) => keys::read_positions(entries).ok_or_else(corrupt),
        None => Ok(Vec::new()),
    }
}

/// Writes `lists` (each a list with entries ascending and above every
/// entry it has) after their tails, in `batch`: a tail that reaches
/// [`SEAL_AT`] entries becomes a chunk.
pub(crate) fn append(
    batch: &mut PendingBatch<'_>,
    lists: impl IntoIterator<Item = ListEntries>,
) -> Result<(), ViewsError> {
    let mut by_bucket: BTreeMap<Vec<u8>, Vec<ListEntries>> = BTreeMap::new();
    for (list, entries) in lists {
        if !entries.is_empty() {
            by_bucket.entry(keys::tail_bucket(&list)).or_default().push((list, entries));
        }
    }
    for (key, lists) in by_bucket {
        let mut bucket = match batch.get(&key)? {
            Some(value) => decode(&key, &value)?,
            None => Bucket::new(),
        };
        for (list, entries) in lists {
            let mut tail = bucket.remove(&list).unwrap_or_default();
            tail.extend(entries);
            if tail.len() >= SEAL_AT {
                if let Some(highest) = tail.last() {
                    batch.put(keys::index_chunk(&list, *highest), keys::encode_chunk(tail.iter().copied()));
                }
            } else {
                bucket.insert(list, tail);
            }
        }
        if bucket.is_empty() {
            batch.delete(key);
        } else {
            batch.put(key, encode(&bucket));
        }
    }
    Ok(())
}

/// Every tail's entries, as `list ‖ position` in that order (for the state
/// digest).
pub(crate) fn all_entries(tree: &sled::Tree) -> impl Iterator<Item = Result<(Vec<u8>, ()), ViewsError>> + '_ {
    tree.scan_prefix([keys::TAILS]).flat_map(|entry| {
        let expanded: Vec<Result<(Vec<u8>, ()), ViewsError>> = match entry {
            Err(error) => vec![Err(error.into())],
            Ok((key, value)) => match decode(&key, &value) {
                Err(error) => vec![Err(error)],
                Ok(bucket) => bucket
                    .into_iter()
                    .flat_map(|(list, tail)| {
                        tail.into_iter().map(move |stored| {
                            let mut logical = list.clone();
                            logical.extend_from_slice(&stored.to_bytes());
                            Ok((logical, ()))
                        })
                    })
                    .collect(),
            },
        };
        expanded
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keys::IndexKind;

    fn at(sequence: u64) -> StoredKey {
        StoredKey { stored_micros: 1_000 + sequence as i64, sequence }
    }

    /// `count` values of index `kind`, from `value(0)`, `value(1)`, …, whose
    /// lists share a bucket.
    pub(crate) fn values_sharing_a_bucket(kind: IndexKind, count: usize, value: impl Fn(u64) -> String) -> Vec<String> {
        let mut buckets: std::collections::HashMap<Vec<u8>, Vec<String>> = std::collections::HashMap::new();
        for n in 0.. {
            let value = value(n);
            let sharing = buckets.entry(keys::tail_bucket(&keys::posting_list(kind, &value))).or_default();
            sharing.push(value);
            if sharing.len() == count {
                return std::mem::take(sharing);
            }
        }
        unreachable!("the values run out")
    }

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("views").unwrap()
    }

    fn write(tree: &sled::Tree, lists: Vec<ListEntries>) {
        let mut batch = PendingBatch::new(tree);
        append(&mut batch, lists).unwrap();
        crate::batch::commit(tree, batch).unwrap();
    }

    fn chunks(tree: &sled::Tree, list: &[u8]) -> Vec<Vec<StoredKey>> {
        let mut prefix = vec![keys::INDEX];
        prefix.extend_from_slice(list);
        tree.scan_prefix(prefix).map(|entry| keys::decode_chunk(&entry.unwrap().1).unwrap()).collect()
    }

    #[test]
    fn short_lists_share_a_key_and_keep_their_own_entries() {
        let tree = temporary_tree();
        let sharing = values_sharing_a_bucket(IndexKind::Registration, 8, |n| format!("registration {n}"));
        let mut lists: Vec<Vec<u8>> =
            sharing.iter().map(|value| keys::posting_list(IndexKind::Registration, value)).collect();
        lists.extend((0..100).map(|n| keys::posting_list(IndexKind::Agent, &format!("mbox:mailto:{n}@example.org"))));
        write(&tree, lists.iter().enumerate().map(|(n, list)| (list.clone(), vec![at(n as u64)])).collect());
        write(&tree, lists.iter().enumerate().map(|(n, list)| (list.clone(), vec![at(1_000 + n as u64)])).collect());
        for (n, list) in lists.iter().enumerate() {
            assert_eq!(tail(&tree, list).unwrap(), vec![at(n as u64), at(1_000 + n as u64)]);
            assert!(chunks(&tree, list).is_empty());
        }
        assert_eq!(tree.scan_prefix(keys::tail_bucket(&lists[0])).count(), 1, "eight lists, one key");
        let buckets: std::collections::BTreeSet<_> = lists.iter().map(|list| keys::tail_bucket(list)).collect();
        assert_eq!(tree.len(), buckets.len(), "no key of a list's own");
        assert!(tail(&tree, &keys::posting_list(IndexKind::Registration, "another")).unwrap().is_empty());
    }

    #[test]
    fn a_tail_that_reaches_the_bound_becomes_a_chunk_and_leaves_its_bucket() {
        let tree = temporary_tree();
        let list = keys::posting_list(IndexKind::Agent, "mbox:mailto:a@example.org");
        write(&tree, vec![(list.clone(), (0..SEAL_AT as u64 - 1).map(at).collect())]);
        assert!(chunks(&tree, &list).is_empty());
        assert_eq!(tail(&tree, &list).unwrap().len(), SEAL_AT - 1);
        write(&tree, vec![(list.clone(), vec![at(300), at(301)])]);
        let mut expected: Vec<_> = (0..SEAL_AT as u64 - 1).map(at).collect();
        expected.extend([at(300), at(301)]);
        assert_eq!(chunks(&tree, &list), vec![expected]);
        let key = keys::index_chunk(&list, at(301));
        assert!(tree.contains_key(key).unwrap(), "the chunk is keyed by its highest position");
        assert!(tail(&tree, &list).unwrap().is_empty());
        assert_eq!(tree.scan_prefix([keys::TAILS]).count(), 0, "an empty bucket is no key");
        // The next entries start a tail again.
        write(&tree, vec![(list.clone(), vec![at(400)])]);
        assert_eq!(tail(&tree, &list).unwrap(), vec![at(400)]);
    }

    #[test]
    fn every_tail_entry_is_listed_in_key_order() {
        let tree = temporary_tree();
        let lists: Vec<Vec<u8>> =
            (0..50).map(|n| keys::posting_list(IndexKind::Activity, &format!("activity {n}"))).collect();
        write(&tree, lists.iter().enumerate().map(|(n, list)| (list.clone(), vec![at(n as u64), at(99)])).collect());
        let listed: Vec<Vec<u8>> = all_entries(&tree).map(|entry| entry.unwrap().0).collect();
        let mut expected: Vec<Vec<u8>> = lists
            .iter()
            .enumerate()
            .flat_map(|(n, list)| [at(n as u64), at(99)].map(|stored| [list.as_slice(), &stored.to_bytes()].concat()))
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn a_bucket_that_is_not_one_is_corrupt_not_a_panic() {
        let tree = temporary_tree();
        let list = keys::posting_list(IndexKind::Verb, "http://adlnet.gov/expapi/verbs/completed");
        for value in [&b""[..], &[9, 1, 2], &[BUCKET_FORMAT, 14, 1], &[BUCKET_FORMAT, 200]] {
            tree.insert(keys::tail_bucket(&list), value).unwrap();
            assert!(matches!(tail(&tree, &list), Err(ViewsError::Corrupt(_))), "{value:?}");
            assert!(all_entries(&tree).any(|entry| entry.is_err()));
        }
    }
}
