//! Bloom filters of statement ids, so that asking "is this id known?" of an
//! id never seen costs no read of a sled tree.
//!
//! Nearly every statement stored has a new id, and without a filter each
//! one costs a read of the tree to learn so: a walk from the root that
//! finds nothing, and waits for sled's process-wide lock whenever a
//! projection commits. A filter answers "new" for certain for almost all
//! of them; "maybe" still reads the tree, which has the last word. It never
//! answers "new" for an id it was given, so a wrong answer costs a read,
//! never a wrong decision. The single writer keeps one of the ids the store
//! holds; the xAPI views one of the ids they hold and one of the targets of
//! StatementRefs; the Learning Hub views one of the voided ids.
//!
//! A filter's size is fixed, so memory does not grow with the data: past
//! about a tenth as many ids as it has bits, more and more of its answers
//! are "maybe", and reads come back.

use std::collections::BTreeMap;
use std::sync::Mutex;

use uuid::Uuid;

/// Bits set per id: optimal at about 10 bits an id; fewer hashes would
/// touch fewer cache lines but let more new ids look known.
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
    let (_, low) = id.as_u64_pair();
    let first = hash(id);
    // An odd step visits distinct bits for any power-of-two size.
    let step = mix(low ^ first.rotate_left(29)) | 1;
    (first, step)
}

/// A 64-bit hash of the id in which every bit of the id counts (the first
/// of the filter's hashes; the views' buckets of ids use it too).
pub(crate) fn hash(id: Uuid) -> u64 {
    let (high, low) = id.as_u64_pair();
    mix(high ^ mix(low))
}

/// The finalizer of SplitMix64: every input bit affects every output bit.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Ids given while a filter is built from a scan beyond this many leave it
/// unused (every check reads the tree): memory stays bounded however long
/// the scan takes.
const MAX_GIVEN_WHILE_BUILDING: usize = 1 << 20;

/// A filter of the ids held somewhere, built from a scan of them while its
/// owner goes on: until the scan is done every check answers "maybe", and
/// ids the owner stores meanwhile (which the scan may miss) are kept aside
/// and added when it takes the built filter.
pub enum KnownIds {
    /// No filter: the scan failed or too much was stored while it ran.
    Unused,
    Building {
        /// Ids stored since the scan began.
        stored_since: Vec<Uuid>,
        built: tokio::sync::oneshot::Receiver<IdFilter>,
    },
    Ready(IdFilter),
}

impl KnownIds {
    /// Starts a thread that puts every id `scan` lists into a filter of
    /// `2^bits_log2` bits, and calls `ready` once the filter is handed
    /// over. The scan must see every id stored before this call. It stops
    /// early when the returned value is dropped, so a closed store is not
    /// held open by its scan for long. A scan that lists nothing (a new
    /// store) gives an empty filter at once, without a thread.
    pub fn build<E: std::fmt::Display + Send + 'static>(
        what: &'static str,
        bits_log2: u32,
        scan: impl Iterator<Item = Result<Uuid, E>> + Send + 'static,
        ready: impl FnOnce() + Send + 'static,
    ) -> Self {
        let mut scan = scan.peekable();
        if scan.peek().is_none() {
            ready();
            return Self::Ready(IdFilter::new(bits_log2));
        }
        let (done, built) = tokio::sync::oneshot::channel();
        let running = Running::start(what);
        let spawned = std::thread::Builder::new().name(format!("{what} filter")).spawn(move || {
            let _running = running;
            let began = std::time::Instant::now();
            let mut filter = IdFilter::new(bits_log2);
            for id in scan {
                if filter.len().is_multiple_of(4_096) && done.is_closed() {
                    return;
                }
                match id {
                    Ok(id) => filter.insert(id),
                    Err(error) => {
                        // Dropping `done` leaves every check to the tree.
                        tracing::warn!(%error, what, "cannot list the ids for a filter; checking each in the store");
                        return;
                    }
                }
            }
            let millis = began.elapsed().as_millis();
            tracing::info!(ids = filter.len(), millis, "{what} filter built");
            if done.send(filter).is_ok() {
                ready();
            }
        });
        match spawned {
            Ok(_) => Self::Building { stored_since: Vec::new(), built },
            Err(error) => {
                tracing::warn!(%error, what, "cannot start building a filter; checking each id in the store");
                Self::Unused
            }
        }
    }

    /// Takes the built filter if it is ready.
    pub fn poll_built(&mut self) {
        let Self::Building { stored_since, built } = self else {
            return;
        };
        match built.try_recv() {
            Ok(mut filter) => {
                for id in stored_since.drain(..) {
                    filter.insert(id);
                }
                *self = Self::Ready(filter);
            }
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => *self = Self::Unused,
        }
    }

    /// Notes that `id` is held (or may be: an id given in vain costs a read
    /// later, never a wrong answer).
    pub fn insert(&mut self, id: Uuid) {
        match self {
            Self::Unused => {}
            Self::Building { stored_since, .. } => {
                stored_since.push(id);
                if stored_since.len() > MAX_GIVEN_WHILE_BUILDING {
                    tracing::warn!("too many ids stored while a filter was built; checking each in the store");
                    *self = Self::Unused;
                }
            }
            Self::Ready(filter) => filter.insert(id),
        }
    }

    /// False only if `id` is certainly not held: the filter is built (and
    /// taken over by [`Self::poll_built`]) and was never given it.
    pub fn may_contain(&self, id: Uuid) -> bool {
        match self {
            Self::Ready(filter) => filter.may_contain(id),
            Self::Unused | Self::Building { .. } => true,
        }
    }

    /// Whether checks are answered from the filter.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready(_))
    }
}

/// `n` ids of which [`hash`] gives the same top `bits` bits, and the rest
/// apart, made by undoing [`mix`]: ids that share a bucket of the views'
/// table of ids, for tests.
#[cfg(test)]
pub(crate) fn ids_sharing_top_bits(bits: u32, n: u64) -> Vec<Uuid> {
    fn unshift(y: u64, shift: u32) -> u64 {
        (0..64 / shift).fold(y, |x, _| y ^ (x >> shift))
    }
    fn inverse(odd: u64) -> u64 {
        (0..6).fold(odd, |inverse, _| inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse))))
    }
    fn unmix(y: u64) -> u64 {
        let x = unshift(y, 31).wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
        let x = unshift(x, 27).wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
        unshift(x, 30).wrapping_sub(0x9e37_79b9_7f4a_7c15)
    }
    let top = 0x5a5a_5a5a_5a5a_5a5a_u64 >> (64 - bits) << (64 - bits);
    (0..n).map(|i| Uuid::from_u64_pair(unmix(top | i) ^ mix(0), 0)).collect()
}

/// The builds of filters running in this process, by what they filter:
/// each scans a store on a thread of its own, using a core until done, and
/// until then its owner reads the store for every check.
static RUNNING: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());

/// Filters being built in this process, by what they filter (see
/// [`KnownIds::build`]), as `/metrics` reports them: every kind of filter
/// this process has built, with how many of it are being built now (0 once
/// done or given up).
pub fn builds_running() -> Vec<(&'static str, usize)> {
    RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().map(|(k, v)| (*k, *v)).collect()
}

/// One build counted in [`RUNNING`] until dropped, however its thread ends
/// (or if it never starts).
struct Running(&'static str);

impl Running {
    fn start(what: &'static str) -> Self {
        *RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(what).or_default() += 1;
        Self(what)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(count) = RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(self.0) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ids_made_to_share_their_hashs_top_bits_do() {
        let ids = ids_sharing_top_bits(20, 1_000);
        let tops: std::collections::HashSet<u64> = ids.iter().map(|id| hash(*id) >> 44).collect();
        assert_eq!(tops.len(), 1);
        assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 1_000);
    }

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

    /// The scan that builds the filter may miss ids stored while it runs:
    /// they are added when the built filter is taken over.
    #[test]
    fn ids_stored_while_the_filter_is_built_are_in_it_once_it_is_ready() {
        let (done, built) = tokio::sync::oneshot::channel();
        let mut known = KnownIds::Building { stored_since: Vec::new(), built };
        let scanned = Uuid::new_v4();
        let stored_meanwhile = Uuid::new_v4();
        known.insert(stored_meanwhile);
        assert!(known.may_contain(Uuid::new_v4()), "every id may be held before the scan is done");
        assert!(!known.is_ready());
        let mut filter = IdFilter::new(16);
        filter.insert(scanned);
        done.send(filter).ok();
        known.poll_built();
        assert!(known.may_contain(scanned) && known.may_contain(stored_meanwhile));
        assert!(known.is_ready());
        let stored_after = Uuid::new_v4();
        known.insert(stored_after);
        assert!(known.may_contain(stored_after));
        assert!(!known.may_contain(Uuid::new_v4()));
    }

    #[test]
    fn a_build_that_failed_leaves_every_check_to_the_store() {
        let (done, built) = tokio::sync::oneshot::channel::<IdFilter>();
        let mut known = KnownIds::Building { stored_since: vec![Uuid::new_v4()], built };
        drop(done);
        known.poll_built();
        assert!(known.may_contain(Uuid::new_v4()));
        assert!(matches!(known, KnownIds::Unused));
    }

    #[test]
    fn a_scan_is_built_into_a_filter_and_reports_it_ready() {
        let held: Vec<Uuid> = (0..10_000).map(|_| Uuid::new_v4()).collect();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let scan = held.clone().into_iter().map(Ok::<_, String>);
        let mut known = KnownIds::build("test", 20, scan, move || ready.send(()).unwrap());
        is_ready.recv_timeout(std::time::Duration::from_secs(30)).expect("the filter is built");
        known.poll_built();
        assert!(held.iter().all(|id| known.may_contain(*id)));
        let wrong = (0..10_000).filter(|_| known.may_contain(Uuid::new_v4())).count();
        assert!(wrong < 10, "{wrong} of 10,000 new ids looked held");
    }

    #[test]
    fn a_scan_that_lists_nothing_gives_an_empty_filter_at_once() {
        let (ready, is_ready) = std::sync::mpsc::channel();
        let known =
            KnownIds::build("test", 16, std::iter::empty::<Result<Uuid, String>>(), move || ready.send(()).unwrap());
        assert!(is_ready.try_recv().is_ok(), "reported ready at once");
        assert!(known.is_ready() && !known.may_contain(Uuid::new_v4()));
    }

    #[test]
    fn a_scan_that_fails_leaves_every_check_to_the_store() {
        let scan = vec![Ok(Uuid::new_v4()), Err("unreadable".to_owned())].into_iter();
        let mut known = KnownIds::build("test", 16, scan, || {});
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !matches!(known, KnownIds::Unused) {
            known.poll_built();
            assert!(std::time::Instant::now() < deadline, "the failed build was noticed");
            std::thread::yield_now();
        }
        assert!(matches!(known, KnownIds::Unused));
    }

    /// A build is counted as running from its start until its thread
    /// ends, whether it built the filter or its scan failed.
    #[test]
    fn a_build_is_counted_as_running_until_its_thread_ends() {
        const WHAT: &str = "counted test";
        let running = || builds_running().into_iter().find(|(what, _)| *what == WHAT).map_or(0, |(_, n)| n);
        let until_none_running = || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while running() != 0 {
                assert!(std::time::Instant::now() < deadline, "a build that ended is still counted");
                std::thread::yield_now();
            }
        };
        for outcome in [Err("the scan broke".to_owned()), Ok(Uuid::from_u128(3))] {
            let (send, scan) = std::sync::mpsc::channel::<Result<Uuid, String>>();
            send.send(Ok(Uuid::from_u128(1))).unwrap();
            let _known = KnownIds::build(WHAT, 16, scan.into_iter(), || {});
            // The scan waits for its next id: the build is running.
            assert_eq!(running(), 1);
            send.send(outcome).unwrap();
            drop(send);
            until_none_running();
        }
    }
}
