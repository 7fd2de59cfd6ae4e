//! Which unwritten uptake digests a batch writes.
//!
//! A batch changes the digests of its statements' organisations in memory
//! (see `HubViews::apply`); they are written later, so that a busy
//! organisation's digests, changed by nearly every batch, are written once
//! in a while rather than each time. Writing them all at once, though,
//! makes one batch of thousands of keys, and sled holds its process-wide
//! write lock while it applies a batch: every other projection's batch and
//! every read waits for it. So each batch writes only the digests that are
//! due, oldest first, a few at a time: those that have waited the interval
//! (at most [`Limits::per_batch`] of them), and, past that, as many of the
//! oldest as keep no more than [`Limits::max_waiting`] waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When unwritten digests are written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a digest may wait after it was first changed (zero: it is
    /// written with the batch that changes it).
    pub(crate) interval: Duration,
    /// Digests written for their age with one batch, at most.
    pub(crate) per_batch: usize,
    /// Digests left waiting after a batch, at most (whatever their age).
    pub(crate) max_waiting: usize,
}

/// The keys of the unwritten digests, in the order they were first changed
/// after last being written, each with when.
#[derive(Debug, Default)]
pub(crate) struct DigestQueue {
    waiting: VecDeque<(Instant, Vec<u8>)>,
}

impl DigestQueue {
    /// How many of the oldest digests waiting the next batch writes, at
    /// `now`.
    pub(crate) fn due(&self, now: Instant, limits: Limits) -> usize {
        let by_age = self
            .waiting
            .iter()
            .take(limits.per_batch)
            .take_while(|(since, _)| now.saturating_duration_since(*since) >= limits.interval)
            .count();
        by_age.max(self.waiting.len().saturating_sub(limits.max_waiting))
    }

    /// The keys of the `n` oldest digests waiting.
    pub(crate) fn oldest(&self, n: usize) -> impl Iterator<Item = &[u8]> {
        self.waiting.iter().take(n).map(|(_, key)| key.as_slice())
    }

    /// Drops the `n` oldest, written.
    pub(crate) fn written(&mut self, n: usize) {
        self.waiting.drain(..n.min(self.waiting.len()));
    }

    /// Adds a digest changed at `now` that was not waiting.
    pub(crate) fn push(&mut self, now: Instant, key: Vec<u8>) {
        self.waiting.push_back((now, key));
    }

    /// Drops them all, written.
    pub(crate) fn clear(&mut self) {
        self.waiting.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIMITS: Limits = Limits { interval: Duration::from_secs(1), per_batch: 3, max_waiting: 10 };

    /// A queue of `n` keys, the `i`-th first changed `ages[i]` ms before `now`.
    fn queue(now: Instant, ages_ms: &[u64]) -> DigestQueue {
        let mut queue = DigestQueue::default();
        for (i, age) in ages_ms.iter().enumerate() {
            queue.push(now.checked_sub(Duration::from_millis(*age)).unwrap(), vec![i as u8]);
        }
        queue
    }

    #[test]
    fn nothing_is_due_before_the_interval() {
        let now = Instant::now();
        assert_eq!(queue(now, &[999, 500, 0]).due(now, LIMITS), 0);
        assert_eq!(DigestQueue::default().due(now, LIMITS), 0);
    }

    #[test]
    fn those_past_the_interval_are_due_oldest_first_a_few_at_a_time() {
        let now = Instant::now();
        let mut q = queue(now, &[5000, 4000, 3000, 2000, 1000, 10]);
        assert_eq!(q.due(now, LIMITS), 3, "at most per_batch for their age");
        assert_eq!(q.oldest(3).collect::<Vec<_>>(), vec![&[0u8][..], &[1], &[2]]);
        q.written(3);
        assert_eq!(q.due(now, LIMITS), 2, "the next batch writes the rest that are due");
        assert_eq!(q.oldest(2).collect::<Vec<_>>(), vec![&[3u8][..], &[4]]);
        q.written(2);
        assert_eq!(q.due(now, LIMITS), 0);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn past_the_bound_the_oldest_are_due_whatever_their_age_and_however_many() {
        let now = Instant::now();
        let q = queue(now, &[0; 25]);
        assert_eq!(q.due(now, LIMITS), 15, "all but max_waiting, beyond per_batch");
        let q = queue(now, &[5000, 5000, 5000, 5000, 5000, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(q.due(now, LIMITS), 3, "the larger of the two counts");
    }

    #[test]
    fn with_no_interval_every_waiting_digest_is_due_up_to_per_batch() {
        let now = Instant::now();
        let limits = Limits { interval: Duration::ZERO, ..LIMITS };
        assert_eq!(queue(now, &[0, 0]).due(now, limits), 2);
    }
}
