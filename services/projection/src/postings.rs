//! The newest entries of the posting lists, held in memory until a list
//! has enough of them for a chunk.
//!
//! Applied in small batches (single POSTs), nearly every statement adds to
//! lists no other statement of its batch adds to (its learner's, its
//! registration's), and every list a batch added to was a sled key
//! written. Held here instead, a list's entries are written as one chunk
//! (see [`crate::keys::index_chunk`]) when it holds [`Limits::chunk_entries`]
//! of them, or when it holds the oldest entry held and the buffer is past
//! [`Limits::max_entries`], or that entry is more than [`Limits::window`]
//! statements old.
//!
//! What is held is lost if the process stops. The views' bookkeeping keeps
//! the lowest sequence of a statement with a posting held (`postings_from`),
//! written with every batch, and views opened with one read the postings of
//! every statement from there on again from its record (`recover_postings`
//! in `views.rs`). A sequence, not a position: statements are numbered in
//! the order they are stored, which their `stored` times need not follow.
//!
//! Invariants: a list's held entries are ascending and above every entry of
//! its chunks, and every posting of a statement numbered below
//! `postings_from` is in the tree.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use crate::keys::StoredKey;

/// One posting: a statement's position and id.
pub(crate) type Posting = (StoredKey, Uuid);

/// When held entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// A list holding this many entries is written as one chunk.
    pub chunk_entries: usize,
    /// Past this many entries held, the lists holding the oldest are
    /// written until it is not.
    pub max_entries: usize,
    /// A list whose oldest entry is this many statements older than the
    /// newest is written: a view opened after a stop reads at most about
    /// this many statement records again.
    pub window: u64,
}

/// The limits the views use: 256 entries are a chunk of 8 KiB; 65,536
/// entries held take about 10 MiB (most lists held have one entry).
pub(crate) const LIMITS: Limits = Limits { chunk_entries: 256, max_entries: 1 << 16, window: 50_000 };

/// The entries held, by list.
#[derive(Debug, Default)]
pub(crate) struct PostingBuffer {
    lists: HashMap<Vec<u8>, Vec<Posting>>,
    /// Each list held, by its oldest entry's position.
    by_oldest: BTreeSet<(StoredKey, Vec<u8>)>,
    /// Each list held, by the lowest sequence among its entries.
    by_lowest_sequence: BTreeSet<(u64, Vec<u8>)>,
    entries: usize,
}

/// What a batch does with the lists it adds to, decided before it is
/// written and kept in the buffer ([`PostingBuffer::commit`]) once it is.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Per list: the entries the batch adds (ascending, above every entry
    /// the list has), and whether the list is written now, with what the
    /// buffer holds of it, or its new entries are held.
    lists: BTreeMap<Vec<u8>, (Vec<Posting>, bool)>,
    /// The lowest sequence held once the batch is written.
    pub held_from: Option<u64>,
}

impl PostingBuffer {
    /// Entries held.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The entries held of `list` with positions in `low..=high`, ascending.
    pub fn entries_in(&self, list: &[u8], low: StoredKey, high: StoredKey) -> Vec<Posting> {
        self.lists
            .get(list)
            .map(|held| held.iter().filter(|(stored, _)| *stored >= low && *stored <= high).copied().collect())
            .unwrap_or_default()
    }

    /// Every entry held, as `(list, posting)`, by list then position.
    pub fn all_sorted(&self) -> Vec<(Vec<u8>, Posting)> {
        let mut lists: Vec<_> = self.lists.iter().collect();
        lists.sort_unstable_by(|a, b| a.0.cmp(b.0));
        lists.into_iter().flat_map(|(list, held)| held.iter().map(move |posting| (list.clone(), *posting))).collect()
    }

    /// Holds `posting` in `list`, above every entry it holds (for the views
    /// reading their postings again when opened).
    pub fn hold(&mut self, list: Vec<u8>, posting: Posting) {
        let held = self.lists.entry(list.clone()).or_default();
        let sequence = posting.0.sequence;
        match held.iter().map(|(stored, _)| stored.sequence).min() {
            None => {
                self.by_oldest.insert((posting.0, list.clone()));
                self.by_lowest_sequence.insert((sequence, list));
            }
            Some(lowest) if sequence < lowest => {
                self.by_lowest_sequence.remove(&(lowest, list.clone()));
                self.by_lowest_sequence.insert((sequence, list));
            }
            Some(_) => {}
        }
        held.push(posting);
        self.entries += 1;
    }

    /// Plans a batch that adds `added` (per list, ascending and above
    /// every entry the list has), the next statement's sequence being
    /// `next_sequence`.
    pub fn plan(&self, added: Vec<(Vec<u8>, Vec<Posting>)>, next_sequence: u64, limits: Limits) -> Plan {
        let mut plan = Plan::default();
        let mut total = self.entries;
        for (list, new) in added {
            if new.is_empty() {
                continue;
            }
            let held = self.lists.get(&list).map_or(0, Vec::len);
            let write = held + new.len() >= limits.chunk_entries;
            total += new.len();
            if write {
                total -= held + new.len();
            }
            plan.lists.insert(list, (new, write));
        }
        // The lists holding the oldest entries go first, while too much is
        // held or held for too long; so does a new list this batch would
        // hold, if the buffer is past its bound with no older list left.
        let too_old = |oldest: StoredKey| oldest.sequence.saturating_add(limits.window) < next_sequence;
        let mut oldest_held = None;
        for (oldest, list) in &self.by_oldest {
            if total <= limits.max_entries && !too_old(*oldest) {
                break;
            }
            match plan.lists.get_mut(list) {
                Some((_, true)) => continue,
                Some((new, write)) => {
                    total -= self.lists.get(list).map_or(0, Vec::len) + new.len();
                    *write = true;
                }
                None => {
                    total -= self.lists.get(list).map_or(0, Vec::len);
                    plan.lists.insert(list.clone(), (Vec::new(), true));
                }
            }
        }
        if total > limits.max_entries {
            let mut fresh: Vec<_> = plan
                .lists
                .iter_mut()
                .filter(|(list, (_, write))| !*write && !self.lists.contains_key(*list))
                .map(|(_, (new, write))| (new.first().map(|(stored, _)| *stored), new.len(), write))
                .collect();
            fresh.sort_unstable_by_key(|(oldest, _, _)| *oldest);
            for (_, len, write) in fresh {
                if total <= limits.max_entries {
                    break;
                }
                total -= len;
                *write = true;
            }
        }
        for (lowest, list) in &self.by_lowest_sequence {
            if !matches!(plan.lists.get(list), Some((_, true))) {
                oldest_held = Some(*lowest);
                break;
            }
        }
        let new_lists_oldest = plan
            .lists
            .iter()
            .filter(|(_, (_, write))| !*write)
            .flat_map(|(_, (new, _))| new.iter().map(|(stored, _)| stored.sequence))
            .min();
        plan.held_from = match (oldest_held, new_lists_oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        plan
    }

    /// A plan that writes every list held (and adds nothing).
    pub fn plan_all(&self) -> Plan {
        Plan { lists: self.lists.keys().map(|list| (list.clone(), (Vec::new(), true))).collect(), held_from: None }
    }

    /// The chunks `plan` writes: each list written, with every entry it
    /// holds and the plan adds, ascending.
    pub fn chunks<'p>(&'p self, plan: &'p Plan) -> impl Iterator<Item = (&'p [u8], Vec<Posting>)> + 'p {
        plan.lists.iter().filter(|(_, (_, write))| *write).filter_map(|(list, (new, _))| {
            let mut entries = self.lists.get(list).cloned().unwrap_or_default();
            entries.extend_from_slice(new);
            (!entries.is_empty()).then_some((list.as_slice(), entries))
        })
    }

    /// Keeps what a written batch planned: the lists it wrote are no longer
    /// held, the entries it held are.
    pub fn commit(&mut self, plan: Plan) {
        for (list, (new, write)) in plan.lists {
            if write {
                if let Some(held) = self.lists.remove(&list) {
                    self.entries -= held.len();
                    if let Some(lowest) = held.iter().map(|(stored, _)| stored.sequence).min() {
                        self.by_lowest_sequence.remove(&(lowest, list.clone()));
                    }
                    if let Some((oldest, _)) = held.first() {
                        self.by_oldest.remove(&(*oldest, list));
                    }
                }
            } else {
                for posting in new {
                    self.hold(list.clone(), posting);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(sequence: u64) -> Posting {
        (StoredKey { stored_micros: 1_000 + sequence as i64, sequence }, Uuid::from_u128(u128::from(sequence)))
    }

    fn list(n: u8) -> Vec<u8> {
        vec![b'a', n]
    }

    const SMALL: Limits = Limits { chunk_entries: 4, max_entries: 6, window: 100 };

    /// Applies a plan as the views do: returns the lists written, each with
    /// its entries.
    fn apply(buffer: &mut PostingBuffer, added: Vec<(Vec<u8>, Vec<Posting>)>, next: u64) -> Vec<(Vec<u8>, Vec<u64>)> {
        let plan = buffer.plan(added, next, SMALL);
        let written = buffer
            .chunks(&plan)
            .map(|(list, entries)| (list.to_vec(), entries.iter().map(|(stored, _)| stored.sequence).collect()))
            .collect();
        let held_from = plan.held_from;
        buffer.commit(plan);
        let lowest = buffer.lists.values().flatten().map(|(stored, _)| stored.sequence).min();
        assert_eq!(held_from, lowest, "held_from is the lowest sequence held");
        assert_eq!(buffer.by_lowest_sequence.first().map(|(lowest, _)| *lowest), lowest);
        assert_eq!(buffer.by_lowest_sequence.len(), buffer.lists.len());
        assert_eq!(buffer.entries, buffer.lists.values().map(Vec::len).sum::<usize>());
        written
    }

    #[test]
    fn entries_are_held_until_a_list_has_a_chunk_of_them() {
        let mut buffer = PostingBuffer::default();
        assert!(apply(&mut buffer, vec![(list(1), vec![at(0), at(1)])], 2).is_empty());
        assert!(apply(&mut buffer, vec![(list(1), vec![at(2)]), (list(2), vec![at(2)])], 3).is_empty());
        assert_eq!(buffer.entries_in(&list(1), at(1).0, at(9).0), vec![at(1), at(2)]);
        let written = apply(&mut buffer, vec![(list(1), vec![at(3)])], 4);
        assert_eq!(written, vec![(list(1), vec![0, 1, 2, 3])]);
        assert!(buffer.entries_in(&list(1), at(0).0, at(9).0).is_empty());
        assert_eq!(buffer.entries(), 1);
    }

    #[test]
    fn past_the_bound_the_lists_holding_the_oldest_entries_are_written() {
        let mut buffer = PostingBuffer::default();
        for n in 0..6u8 {
            let sequence = u64::from(n);
            assert!(apply(&mut buffer, vec![(list(n), vec![at(sequence)])], sequence + 1).is_empty());
        }
        assert_eq!(buffer.entries(), 6);
        // Two more: the two oldest lists go.
        let written = apply(&mut buffer, vec![(list(6), vec![at(6)]), (list(7), vec![at(7)])], 8);
        assert_eq!(written, vec![(list(0), vec![0]), (list(1), vec![1])]);
        assert_eq!(buffer.entries(), 6);
        // An old list that gains an entry is written with it.
        let written = apply(&mut buffer, vec![(list(2), vec![at(8)]), (list(8), vec![at(9)])], 10);
        assert_eq!(written, vec![(list(2), vec![2, 8])]);
        assert_eq!(buffer.entries(), 6);
    }

    #[test]
    fn a_batch_larger_than_the_bound_writes_its_own_oldest_new_lists() {
        let mut buffer = PostingBuffer::default();
        let added = (0..9u8).map(|n| (list(n), vec![at(u64::from(n))])).collect();
        let written = apply(&mut buffer, added, 9);
        assert_eq!(written.len(), 3);
        assert_eq!(written[0], (list(0), vec![0]));
        assert_eq!(buffer.entries(), 6);
    }

    #[test]
    fn an_entry_held_longer_than_the_window_is_written() {
        let mut buffer = PostingBuffer::default();
        apply(&mut buffer, vec![(list(1), vec![at(0)])], 1);
        assert!(apply(&mut buffer, vec![(list(2), vec![at(99)])], 100).is_empty());
        let written = apply(&mut buffer, vec![(list(2), vec![at(100)])], 101);
        assert_eq!(written, vec![(list(1), vec![0])]);
        assert_eq!(buffer.entries_in(&list(2), at(0).0, at(999).0), vec![at(99), at(100)]);
    }

    #[test]
    fn statements_are_read_again_from_the_lowest_sequence_held_not_the_lowest_position() {
        let mut buffer = PostingBuffer::default();
        // Statement 5 was stored with an earlier time than statement 3.
        let earlier = (StoredKey { stored_micros: 10, sequence: 5 }, Uuid::from_u128(5));
        let later = (StoredKey { stored_micros: 20, sequence: 3 }, Uuid::from_u128(3));
        apply(&mut buffer, vec![(list(1), vec![earlier]), (list(2), vec![later])], 6);
        assert_eq!(buffer.plan(Vec::new(), 6, SMALL).held_from, Some(3));
        // A list given an older statement's entry (it gained a facet).
        let gained = (StoredKey { stored_micros: 30, sequence: 1 }, Uuid::from_u128(1));
        assert_eq!(buffer.plan(vec![(list(1), vec![gained])], 6, SMALL).held_from, Some(1));
        apply(&mut buffer, vec![(list(1), vec![gained])], 6);
        // Once list 1 is written, list 2's statement is the lowest held.
        let plan = buffer.plan_all();
        let mut only_1 = buffer.plan(Vec::new(), 6, SMALL);
        only_1.lists = plan.lists.into_iter().filter(|(list_, _)| *list_ == list(1)).collect();
        buffer.commit(only_1);
        assert_eq!(buffer.plan(Vec::new(), 6, SMALL).held_from, Some(3));
    }

    #[test]
    fn writing_everything_leaves_nothing_held() {
        let mut buffer = PostingBuffer::default();
        apply(&mut buffer, vec![(list(1), vec![at(0)]), (list(2), vec![at(1), at(2)])], 3);
        let plan = buffer.plan_all();
        assert_eq!(plan.held_from, None);
        let mut written: Vec<_> = buffer.chunks(&plan).map(|(list, entries)| (list.to_vec(), entries.len())).collect();
        written.sort();
        assert_eq!(written, vec![(list(1), 1), (list(2), 2)]);
        buffer.commit(plan);
        assert_eq!(buffer.entries(), 0);
        assert!(buffer.by_oldest.is_empty());
        assert!(buffer.by_lowest_sequence.is_empty());
        assert!(buffer.all_sorted().is_empty());
    }
}
