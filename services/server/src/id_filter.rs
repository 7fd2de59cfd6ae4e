//! A Bloom filter of the statement ids the store holds, kept by the writer
//! so that it can tell an id is new without reading the views.
//!
//! Nearly every statement a client posts has a new id, and without the
//! filter each of them costs the writer a read of the views' sled tree. That
//! read waits for sled's process-wide lock whenever a projection commits, and
//! for the disk when the id's page is not cached. The filter answers "new"
//! for certain for almost all of them; "maybe stored" still reads the views,
//! which have the last word. It never answers "new" for an id it was given,
//! so a wrong answer costs a read, never a duplicate.
//!
//! Its size is fixed ([`FILTER_BITS`], 32 MiB), so memory does not grow with
//! the data: up to about 10 million ids fewer than one check in 10,000 reads
//! the views; at 30 million about one in a hundred does, and beyond that the
//! share grows until every check reads the views, as without a filter.

use uuid::Uuid;

/// log2 of the number of bits: 2^28 bits are 32 MiB.
pub const FILTER_BITS_LOG2: u32 = 28;
pub const FILTER_BITS: u64 = 1 << FILTER_BITS_LOG2;
/// Bits set per id: optimal at about 10 bits an id (26 million ids); fewer
/// hashes would touch fewer cache lines but let more new ids look stored.
const HASHES: u64 = 7;

pub struct IdFilter {
    words: Vec<u64>,
    mask: u64,
    ids: u64,
}

impl IdFilter {
    /// An empty filter of `2^bits_log2` bits (at least 64).
    pub fn new(bits_log2: u32) -> Self {
        let bits = 1u64 << bits_log2.max(6);
        // A zeroed allocation: the pages are only made resident as bits are set.
        Self { words: vec![0; (bits / 64) as usize], mask: bits - 1, ids: 0 }
    }

    pub fn insert(&mut self, id: Uuid) {
        let (mut position, step) = hashes(id);
        for _ in 0..HASHES {
            let bit = position & self.mask;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
            position = position.wrapping_add(step);
        }
        self.ids += 1;
    }

    /// False only if `id` was never inserted.
    pub fn may_contain(&self, id: Uuid) -> bool {
        let (mut position, step) = hashes(id);
        for _ in 0..HASHES {
            let bit = position & self.mask;
            if self.words[(bit / 64) as usize] & (1 << (bit % 64)) == 0 {
                return false;
            }
            position = position.wrapping_add(step);
        }
        true
    }

    /// Ids inserted (an id inserted twice counts twice).
    pub fn len(&self) -> u64 {
        self.ids
    }

    pub fn is_empty(&self) -> bool {
        self.ids == 0
    }
}

/// Two independent 64-bit hashes of the id, for double hashing: the bits of
/// an id are `first + i * step`. Ids need not be random (version 1 and 7
/// ids share most of their bits), so both halves are mixed into each hash.
fn hashes(id: Uuid) -> (u64, u64) {
    let (high, low) = id.as_u64_pair();
    let first = mix(high ^ mix(low));
    // An odd step visits distinct bits for any power-of-two size.
    let step = mix(low ^ first.rotate_left(29)) | 1;
    (first, step)
}

/// The finalizer of SplitMix64: every input bit affects every output bit.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_inserted_id_may_be_contained() {
        let mut filter = IdFilter::new(16);
        let ids: Vec<Uuid> = (0..5_000).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            filter.insert(*id);
        }
        assert!(ids.iter().all(|id| filter.may_contain(*id)));
        assert_eq!(filter.len(), 5_000);
    }

    #[test]
    fn an_empty_filter_contains_nothing() {
        let filter = IdFilter::new(10);
        assert!(filter.is_empty());
        assert!(!filter.may_contain(Uuid::nil()));
        assert!(!filter.may_contain(Uuid::new_v4()));
    }

    /// 2^20 bits for 50,000 ids is 21 bits an id: with 7 hashes about 15
    /// in 100,000 ids not inserted should look inserted. Sequential ids, as a
    /// client numbering its statements might send, must do as well as
    /// random ones.
    #[test]
    fn ids_never_inserted_are_rarely_taken_for_inserted_ones() {
        for sequential in [false, true] {
            let mut filter = IdFilter::new(20);
            let id = |n: u128| if sequential { Uuid::from_u128(n) } else { Uuid::new_v4() };
            for n in 0..50_000 {
                filter.insert(id(n));
            }
            let wrong = (1_000_000..1_100_000).filter(|n| filter.may_contain(id(*n))).count();
            assert!(wrong < 100, "{wrong} of 100,000 new ids looked stored (sequential: {sequential})");
        }
    }
}
