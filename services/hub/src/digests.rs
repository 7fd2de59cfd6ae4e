//! Uptake digests: for each organisation and period (a day, an ISO week, a
//! month), what its uptake row counts, kept as it changes.
//!
//! An uptake row counts distinct learners and distinct (learner, activity)
//! pairs, which cannot be summed from smaller periods or from the
//! organisations below. So a digest keeps the sets themselves, as
//! compressed bitmaps of numbers (learners and activities are numbered by
//! the projection as it first meets them): the learners with any statement,
//! the pairs started, completed and passed, and the number of statements.
//! An unfiltered uptake question then reads one digest per organisation
//! and period and takes the union, instead of reading every fact row.
//!
//! A batch reads each digest it changes once, changes it in memory and
//! writes it with the rest of the batch ([`DigestChanges`]). A counting
//! statement only adds to the sets; a retracted one (voided) is taken out of
//! a set only when none of the learner's remaining fact rows in the period
//! still puts it there.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use roaring::{RoaringBitmap, RoaringTreemap};

use crate::views::{Granularity, UptakeRow};

/// A (learner, activity) pair as one number: activity-major, so the pairs
/// of one activity share a bitmap.
pub(crate) fn pair(learner: u32, activity: u32) -> u64 {
    (u64::from(activity) << 32) | u64::from(learner)
}

/// What an uptake row counts, for one organisation and period (or a union
/// of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Digest {
    pub(crate) statements: u64,
    pub(crate) learners: RoaringBitmap,
    pub(crate) started: RoaringTreemap,
    pub(crate) completed: RoaringTreemap,
    pub(crate) passed: RoaringTreemap,
}

impl Digest {
    /// The stored form: the number of statements, then each set with its
    /// length (the bitmaps in the portable roaring format).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            24 + self.learners.serialized_size()
                + self.started.serialized_size()
                + self.completed.serialized_size()
                + self.passed.serialized_size(),
        );
        out.extend_from_slice(&self.statements.to_be_bytes());
        let mut section = |write: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
            let start = out.len();
            out.extend_from_slice(&[0; 4]);
            // Writing to a Vec cannot fail.
            let _ = write(&mut out);
            let length = (out.len() - start - 4) as u32;
            out[start..start + 4].copy_from_slice(&length.to_be_bytes());
        };
        section(&|out| self.learners.serialize_into(out));
        section(&|out| self.started.serialize_into(out));
        section(&|out| self.completed.serialize_into(out));
        section(&|out| self.passed.serialize_into(out));
        out
    }

    /// The digest of a stored value; `None` if it is malformed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let statements = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let mut rest = bytes.get(8..)?;
        let mut section = || -> Option<&[u8]> {
            let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let part = rest.get(4..4 + length)?;
            rest = rest.get(4 + length..)?;
            Some(part)
        };
        let learners = RoaringBitmap::deserialize_from(section()?).ok()?;
        let started = RoaringTreemap::deserialize_from(section()?).ok()?;
        let completed = RoaringTreemap::deserialize_from(section()?).ok()?;
        let passed = RoaringTreemap::deserialize_from(section()?).ok()?;
        rest.is_empty().then_some(Self { statements, learners, started, completed, passed })
    }

    /// Adds what `other` counts (a union of the sets).
    pub(crate) fn merge(&mut self, other: &Self) {
        self.statements = self.statements.saturating_add(other.statements);
        self.learners |= &other.learners;
        self.started |= &other.started;
        self.completed |= &other.completed;
        self.passed |= &other.passed;
    }

    pub(crate) fn row(&self, period: String) -> UptakeRow {
        UptakeRow {
            period,
            active_learners: self.learners.len(),
            started: self.started.len(),
            completed: self.completed.len(),
            passed: self.passed.len(),
            statements: self.statements,
        }
    }
}

/// The first and last day of the period (of `granularity`) holding `day`.
pub(crate) fn bounds(granularity: Granularity, day: NaiveDate) -> (NaiveDate, NaiveDate) {
    match granularity {
        Granularity::Day => (day, day),
        Granularity::Week => {
            let monday = day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()));
            (monday, monday + chrono::Days::new(6))
        }
        Granularity::Month => {
            let first = day.with_day(1).unwrap_or(day);
            let next = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
            (first, next.pred_opt().unwrap_or(first))
        }
    }
}

/// The periods (of `granularity`) from `from` to `to`: each one's label and
/// its first and last day, cut to the range.
pub(crate) fn periods(granularity: Granularity, from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut day = from;
    while day <= to {
        let (_, end) = bounds(granularity, day);
        let last = end.min(to);
        out.push((granularity.period(day), day, last));
        match last.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// The digests one batch changes, each read from the store once and written
/// when the batch finishes.
#[derive(Default)]
pub(crate) struct DigestChanges {
    digests: HashMap<Vec<u8>, Digest>,
}

impl DigestChanges {
    /// The digest under `key`, read with `load` the first time the batch
    /// asks for it (a new one if there is none).
    pub(crate) fn get<E>(
        &mut self,
        key: Vec<u8>,
        load: impl FnOnce(&[u8]) -> Result<Option<Digest>, E>,
    ) -> Result<&mut Digest, E> {
        use std::collections::hash_map::Entry;
        match self.digests.entry(key) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let digest = load(entry.key())?.unwrap_or_default();
                Ok(entry.insert(digest))
            }
        }
    }

    /// Each changed digest's key and its stored form (`None`: it counts no
    /// statement any more, so it goes).
    pub(crate) fn into_writes(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.digests.into_iter().map(|(key, digest)| {
            let value = (digest.statements > 0).then(|| digest.encode());
            (key, value)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_digest_round_trips_and_a_damaged_one_is_refused() {
        let mut digest = Digest { statements: 7, ..Digest::default() };
        digest.learners.insert(3);
        digest.learners.insert(70_000);
        digest.started.insert(pair(3, 1));
        digest.started.insert(pair(70_000, 2));
        digest.completed.insert(pair(3, 1));
        let bytes = digest.encode();
        assert_eq!(Digest::decode(&bytes), Some(digest.clone()));
        assert_eq!(Digest::decode(&Digest::default().encode()), Some(Digest::default()));
        assert_eq!(Digest::decode(&bytes[..bytes.len() - 1]), None, "cut short");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Digest::decode(&longer), None, "something left over");
    }

    #[test]
    fn a_union_counts_a_learner_or_pair_once() {
        let mut a = Digest { statements: 2, ..Digest::default() };
        a.learners.insert(1);
        a.started.insert(pair(1, 9));
        let mut b = Digest { statements: 3, ..Digest::default() };
        b.learners.extend([1, 2]);
        b.started.extend([pair(1, 9), pair(2, 9)]);
        b.passed.insert(pair(2, 9));
        a.merge(&b);
        let row = a.row("2026-03".to_owned());
        assert_eq!((row.active_learners, row.started, row.completed, row.passed, row.statements), (2, 2, 0, 1, 5));
    }

    #[test]
    fn periods_are_cut_to_the_range_and_weeks_are_iso_weeks() {
        assert_eq!(bounds(Granularity::Week, day(2026, 1, 1)), (day(2025, 12, 29), day(2026, 1, 4)));
        assert_eq!(bounds(Granularity::Month, day(2024, 2, 10)), (day(2024, 2, 1), day(2024, 2, 29)));
        assert_eq!(bounds(Granularity::Month, day(2026, 12, 31)), (day(2026, 12, 1), day(2026, 12, 31)));
        assert_eq!(
            periods(Granularity::Week, day(2026, 3, 4), day(2026, 3, 17)),
            [
                ("2026-W10".to_owned(), day(2026, 3, 4), day(2026, 3, 8)),
                ("2026-W11".to_owned(), day(2026, 3, 9), day(2026, 3, 15)),
                ("2026-W12".to_owned(), day(2026, 3, 16), day(2026, 3, 17)),
            ]
        );
        assert_eq!(periods(Granularity::Month, day(2026, 3, 4), day(2026, 3, 4)).len(), 1);
        assert_eq!(periods(Granularity::Day, day(2026, 3, 4), day(2026, 3, 3)), []);
    }
}
