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
//! writes it with the rest of the batch, or, for a digest held in memory
//! since an earlier batch, keeps what it adds apart and adds it to the
//! held one once it commits ([`DigestChanges`]). A counting
//! statement only adds to the sets; a retracted one (voided) is taken out of
//! a set only when none of the learner's remaining fact rows in the period
//! still puts it there.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use roaring::{MultiOps, RoaringBitmap};

use crate::views::{Granularity, UptakeRow};

/// How far a (learner, activity) pair went in a period: each level implies
/// the ones below it (a pass is also a completion).
pub(crate) const STARTED: u8 = 0;
pub(crate) const COMPLETED: u8 = 1;
pub(crate) const PASSED: u8 = 2;

/// A (learner, activity) pair as one number.
pub(crate) fn pair(learner: u32, activity: u32) -> u64 {
    (u64::from(learner) << 32) | u64::from(activity)
}

/// What an uptake row counts, for one organisation and period (or a union
/// of them).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Digest {
    pub(crate) statements: u64,
    pub(crate) learners: RoaringBitmap,
    /// The pairs with a statement, in order, each with its level.
    pairs: Vec<(u64, u8)>,
}

/// The start of a stored digest: its counts and learners, without its
/// pairs (an organisation's only part of a period needs no more).
struct Head {
    statements: u64,
    /// Pairs started, completed, passed.
    pairs: [u64; 3],
    learners: RoaringBitmap,
    /// Where the pairs start in the stored value.
    pairs_at: usize,
}

impl Digest {
    /// Counts `statements` statements of `learner` (on the pair `pair`,
    /// with the level they reach).
    pub(crate) fn add(&mut self, statements: u64, learner: u32, pair: Option<(u64, u8)>) {
        self.statements = self.statements.saturating_add(statements);
        self.learners.insert(learner);
        if let Some((pair, level)) = pair {
            self.reach(pair, level);
        }
    }

    /// Counts `pair` as having reached `level`, or the level it had if
    /// higher.
    fn reach(&mut self, pair: u64, level: u8) {
        match self.pairs.binary_search_by_key(&pair, |(p, _)| *p) {
            Ok(at) => self.pairs[at].1 = self.pairs[at].1.max(level),
            Err(at) => self.pairs.insert(at, (pair, level)),
        }
    }

    /// The level `pair` reached (`None`: it has no statement).
    pub(crate) fn level(&self, pair: u64) -> Option<u8> {
        let at = self.pairs.binary_search_by_key(&pair, |(p, _)| *p).ok()?;
        Some(self.pairs[at].1)
    }

    /// Sets what a pair reached (`None`: it has no statement left).
    pub(crate) fn set_pair(&mut self, pair: u64, level: Option<u8>) {
        crate::sorted::set(&mut self.pairs, pair, level);
    }

    /// Pairs started, completed and passed.
    fn pair_counts(&self) -> [u64; 3] {
        let mut out = [0u64; 3];
        for (_, level) in &self.pairs {
            for reached in out.iter_mut().take(usize::from(*level) + 1) {
                *reached += 1;
            }
        }
        out
    }

    /// The stored form: the number of statements and of pairs at each
    /// level, the learners (a roaring bitmap in its portable format, after
    /// its length), then the pairs in order, each as the difference from
    /// the one before (LEB128) and its level.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(36 + self.learners.serialized_size() + self.pairs.len() * 4);
        out.extend_from_slice(&self.statements.to_be_bytes());
        for count in self.pair_counts() {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&(self.learners.serialized_size() as u32).to_be_bytes());
        // Writing to a Vec cannot fail.
        let _ = self.learners.serialize_into(&mut out);
        let mut previous = 0u64;
        for (pair, level) in &self.pairs {
            write_varint(&mut out, pair - previous);
            out.push(*level);
            previous = *pair;
        }
        out
    }

    /// The digest of a stored value; `None` if it is malformed.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let head = Head::decode(bytes)?;
        let pairs = decode_pairs(bytes.get(head.pairs_at..)?)?;
        let digest = Self { statements: head.statements, learners: head.learners, pairs };
        (digest.pair_counts() == head.pairs).then_some(digest)
    }

    /// The union of `digests`: statements added up, a learner or pair
    /// counted once, at the highest level it reached in any.
    fn union(digests: Vec<Self>) -> Self {
        let statements = digests.iter().map(|d| d.statements).fold(0u64, u64::saturating_add);
        let learners = digests.iter().map(|d| &d.learners).union();
        let mut pairs: Vec<(u64, u8)> = digests.into_iter().flat_map(|d| d.pairs).collect();
        // Highest level first within a pair, so the first one kept is it.
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        pairs.dedup_by_key(|(pair, _)| *pair);
        Self { statements, learners, pairs }
    }

    fn row(&self, period: String) -> UptakeRow {
        let [started, completed, passed] = self.pair_counts();
        UptakeRow {
            period,
            active_learners: self.learners.len(),
            started,
            completed,
            passed,
            statements: self.statements,
        }
    }
}

impl Head {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let number = |at: usize| -> Option<u64> { Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?)) };
        let statements = number(0)?;
        let pairs = [number(8)?, number(16)?, number(24)?];
        let length = u32::from_be_bytes(bytes.get(32..36)?.try_into().ok()?) as usize;
        let learners = RoaringBitmap::deserialize_from(bytes.get(36..36 + length)?).ok()?;
        Some(Self { statements, pairs, learners, pairs_at: 36 + length })
    }
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7F).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn decode_pairs(bytes: &[u8]) -> Option<Vec<(u64, u8)>> {
    let mut pairs = Vec::new();
    let mut at = 0;
    let mut previous = 0u64;
    while at < bytes.len() {
        let delta = read_varint(bytes, &mut at)?;
        let level = *bytes.get(at)?;
        at += 1;
        if (delta == 0 && !pairs.is_empty()) || level > PASSED {
            return None;
        }
        previous = previous.checked_add(delta)?;
        pairs.push((previous, level));
    }
    Some(pairs)
}

/// The uptake row of one period from the stored digests of its parts, per
/// organisation (an organisation's whole-period digest, or its digests of
/// the days of a period the range cuts); `None` if no part has any.
///
/// Within an organisation with several parts the digests are joined. Across
/// organisations, when no learner is in two of them (their learners' union
/// is as large as their counts added up), neither is any pair, so the
/// pairs' counts add up and an organisation's only part is read no further
/// than its learners; otherwise the pairs are joined too.
pub(crate) fn period_row(label: String, organisations: &[Vec<Vec<u8>>]) -> Option<Result<UptakeRow, String>> {
    enum Part<'a> {
        Whole(Digest),
        Head(Head, &'a [u8]),
    }
    let corrupt = || "an uptake digest".to_owned();
    let mut parts: Vec<Part<'_>> = Vec::new();
    for stored in organisations {
        match stored.as_slice() {
            [] => {}
            [only] => match Head::decode(only) {
                Some(head) => parts.push(Part::Head(head, only)),
                None => return Some(Err(corrupt())),
            },
            several => {
                let mut digests = Vec::with_capacity(several.len());
                for bytes in several {
                    match Digest::decode(bytes) {
                        Some(digest) => digests.push(digest),
                        None => return Some(Err(corrupt())),
                    }
                }
                parts.push(Part::Whole(Digest::union(digests)));
            }
        }
    }
    let counts = |part: &Part<'_>| -> (u64, [u64; 3], u64) {
        match part {
            Part::Whole(digest) => (digest.statements, digest.pair_counts(), digest.learners.len()),
            Part::Head(head, _) => (head.statements, head.pairs, head.learners.len()),
        }
    };
    let learners = |part: &Part<'_>| -> RoaringBitmap {
        match part {
            Part::Whole(digest) => digest.learners.clone(),
            Part::Head(head, _) => head.learners.clone(),
        }
    };
    match parts.as_slice() {
        [] => return None,
        [only] => {
            let (statements, [started, completed, passed], active_learners) = counts(only);
            return Some(Ok(UptakeRow { period: label, active_learners, started, completed, passed, statements }));
        }
        _ => {}
    }
    let union = parts
        .iter()
        .map(|part| match part {
            Part::Whole(digest) => &digest.learners,
            Part::Head(head, _) => &head.learners,
        })
        .union();
    let mut total = (0u64, [0u64; 3], 0u64);
    for part in &parts {
        let (statements, pairs, learners) = counts(part);
        total.0 = total.0.saturating_add(statements);
        for (sum, count) in total.1.iter_mut().zip(pairs) {
            *sum += count;
        }
        total.2 += learners;
    }
    if union.len() == total.2 {
        let (statements, [started, completed, passed], _) = total;
        return Some(Ok(UptakeRow {
            period: label,
            active_learners: union.len(),
            started,
            completed,
            passed,
            statements,
        }));
    }
    let mut digests = Vec::with_capacity(parts.len());
    for part in &parts {
        match part {
            Part::Whole(digest) => digests.push(digest.clone()),
            Part::Head(head, bytes) => match bytes.get(head.pairs_at..).and_then(decode_pairs) {
                Some(pairs) => digests.push(Digest { statements: head.statements, learners: learners(part), pairs }),
                None => return Some(Err(corrupt())),
            },
        }
    }
    Some(Ok(Digest::union(digests).row(label)))
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

/// The first and last day of the period labelled `label` (as
/// [`Granularity::period`] writes it); `None` if it is no such label.
pub(crate) fn label_bounds(granularity: Granularity, label: &str) -> Option<(NaiveDate, NaiveDate)> {
    let day = match granularity {
        Granularity::Day => NaiveDate::parse_from_str(label, "%Y-%m-%d").ok()?,
        Granularity::Week => {
            let (year, week) = label.split_once("-W")?;
            NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, chrono::Weekday::Mon)?
        }
        Granularity::Month => NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?,
    };
    (granularity.period(day) == label).then(|| bounds(granularity, day))
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

/// Learner or activity numbers by their keys in the tree.
pub(crate) type Numbers = Vec<(Vec<u8>, u32)>;

/// The digests one batch changes, and how.
///
/// A digest already held in memory (changed by an earlier batch and not
/// written yet) is not copied: a batch that only counts statements in it
/// keeps what it adds apart ([`DigestChange::Added`]) and adds that to the
/// held digest once it commits. A busy organisation's month digest holds
/// thousands of pairs, and nearly every batch counts a statement or two in
/// it: copying it for each batch cost more than the rest of counting them.
/// A digest not held is read from the store once, and so is a held one a
/// batch takes a statement out of (a retraction needs the whole).
#[derive(Default)]
pub(crate) struct DigestChanges {
    digests: HashMap<Vec<u8>, DigestChange>,
    /// Learner and activity numbers the batch read or gave (number key →
    /// number), to keep in memory once it commits.
    pub(crate) numbers: Numbers,
}

/// How a batch changes one digest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DigestChange {
    /// The whole digest as the batch leaves it.
    Whole(Digest),
    /// What the batch adds to the digest held in memory under its key.
    Added(Digest),
}

impl DigestChange {
    /// The whole digest the batch leaves, given the one `held` in memory
    /// under its key (which an [`DigestChange::Added`] change adds to).
    pub(crate) fn whole(&self, held: Option<&Digest>) -> std::borrow::Cow<'_, Digest> {
        match self {
            Self::Whole(digest) => std::borrow::Cow::Borrowed(digest),
            Self::Added(added) => std::borrow::Cow::Owned(Self::sum(held, added)),
        }
    }

    /// [`DigestChange::whole`], taking the change.
    pub(crate) fn into_whole(self, held: Option<&Digest>) -> Digest {
        match self {
            Self::Whole(digest) => digest,
            Self::Added(added) => Self::sum(held, &added),
        }
    }

    /// The digest the change holds: the whole, or what is added.
    fn digest_mut(&mut self) -> &mut Digest {
        match self {
            Self::Whole(digest) | Self::Added(digest) => digest,
        }
    }

    fn sum(held: Option<&Digest>, added: &Digest) -> Digest {
        let mut digest = held.cloned().unwrap_or_default();
        digest.absorb(added);
        digest
    }
}

impl Digest {
    /// Adds what `added` counts: its statements, its learners, and its
    /// pairs at the highest level either reached.
    pub(crate) fn absorb(&mut self, added: &Digest) {
        self.statements = self.statements.saturating_add(added.statements);
        self.learners |= &added.learners;
        for &(pair, level) in &added.pairs {
            self.reach(pair, level);
        }
    }
}

impl DigestChanges {
    /// Counts `statements` statements of `learner` (on `pair`) in the digest
    /// under `key`: apart from it if `held` holds it, else in the digest
    /// read with `load` the first time the batch changes it (a new one if
    /// there is none).
    pub(crate) fn add<E>(
        &mut self,
        key: Vec<u8>,
        held: &HashMap<Vec<u8>, Digest>,
        load: impl FnOnce(&[u8]) -> Result<Option<Digest>, E>,
        (statements, learner, pair): (u64, u32, Option<(u64, u8)>),
    ) -> Result<(), E> {
        use std::collections::hash_map::Entry;
        let change = match self.digests.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) if held.contains_key(entry.key()) => {
                entry.insert(DigestChange::Added(Digest::default()))
            }
            Entry::Vacant(entry) => {
                let digest = load(entry.key())?.unwrap_or_default();
                entry.insert(DigestChange::Whole(digest))
            }
        };
        change.digest_mut().add(statements, learner, pair);
        Ok(())
    }

    /// The whole digest under `key` as the batch leaves it, to change: the
    /// one `held` in memory or read with `load`, with what the batch added
    /// to it so far.
    pub(crate) fn whole<E>(
        &mut self,
        key: Vec<u8>,
        held: &HashMap<Vec<u8>, Digest>,
        load: impl FnOnce(&[u8]) -> Result<Option<Digest>, E>,
    ) -> Result<&mut Digest, E> {
        let held = held.get(&key);
        let change = match self.digests.remove(&key) {
            Some(change) => change.into_whole(held),
            None => match held {
                Some(digest) => digest.clone(),
                None => load(&key)?.unwrap_or_default(),
            },
        };
        Ok(self.digests.entry(key).insert_entry(DigestChange::Whole(change)).into_mut().digest_mut())
    }

    /// The changed digests, by key, and the numbers read or given.
    pub(crate) fn into_parts(self) -> (HashMap<Vec<u8>, DigestChange>, Numbers) {
        (self.digests, self.numbers)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn digest(learners: &[u32], pairs: &[(u32, u32, u8)]) -> Digest {
        let mut out = Digest::default();
        for learner in learners {
            out.add(1, *learner, None);
        }
        for (learner, activity, level) in pairs {
            out.add(1, *learner, Some((pair(*learner, *activity), *level)));
        }
        out
    }

    fn counts(row: &UptakeRow) -> (u64, u64, u64, u64, u64) {
        (row.active_learners, row.started, row.completed, row.passed, row.statements)
    }

    /// A batch copies no digest held in memory to count in it: it keeps
    /// what it adds apart, which then adds up to what counting in the
    /// whole would have made; a retraction takes the whole, with what the
    /// batch added so far.
    #[test]
    fn a_batch_counts_apart_from_a_held_digest_and_takes_the_whole_only_to_retract() {
        let held_digest = digest(&[1, 2], &[(1, 1, STARTED), (2, 5, PASSED)]);
        let held = HashMap::from([(b"held".to_vec(), held_digest.clone())]);
        let no_read = |_: &[u8]| -> Result<Option<Digest>, ()> { panic!("a held digest is not read") };
        let mut changes = DigestChanges::default();
        changes.add(b"held".to_vec(), &held, no_read, (1, 3, Some((pair(3, 1), COMPLETED)))).unwrap();
        changes.add(b"held".to_vec(), &held, no_read, (2, 1, Some((pair(1, 1), PASSED)))).unwrap();
        let mut reads = 0;
        let stored = digest(&[9], &[]);
        let read = |_: &[u8]| -> Result<Option<Digest>, ()> {
            reads += 1;
            Ok(Some(stored.clone()))
        };
        changes.add(b"stored".to_vec(), &held, read, (1, 4, None)).unwrap();

        let mut whole = held_digest.clone();
        whole.add(1, 3, Some((pair(3, 1), COMPLETED)));
        whole.add(2, 1, Some((pair(1, 1), PASSED)));
        let (changed, _) = std::mem::take(&mut changes).into_parts();
        let DigestChange::Added(added) = &changed[b"held".as_slice()] else {
            panic!("a held digest is changed apart: {:?}", changed[b"held".as_slice()]);
        };
        assert_eq!(added.statements, 3);
        assert_eq!(added.learners.iter().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(added.pairs, [(pair(1, 1), PASSED), (pair(3, 1), COMPLETED)]);
        assert_eq!(*changed[b"held".as_slice()].whole(held.get(b"held".as_slice())), whole);
        let mut absorbed = held_digest.clone();
        absorbed.absorb(added);
        assert_eq!(absorbed, whole);
        let mut from_store = stored.clone();
        from_store.add(1, 4, None);
        assert_eq!(changed[b"stored".as_slice()], DigestChange::Whole(from_store));
        assert_eq!(reads, 1);

        // Counted in, then one taken out: the whole, with what was added.
        changes.add(b"held".to_vec(), &held, no_read, (1, 3, Some((pair(3, 1), COMPLETED)))).unwrap();
        let taken = changes.whole(b"held".to_vec(), &held, no_read).unwrap();
        let mut want = held_digest.clone();
        want.add(1, 3, Some((pair(3, 1), COMPLETED)));
        assert_eq!(*taken, want);
        taken.set_pair(pair(2, 5), None);
        let (changed, _) = changes.into_parts();
        want.set_pair(pair(2, 5), None);
        assert_eq!(changed[b"held".as_slice()], DigestChange::Whole(want));
    }

    #[test]
    fn a_digest_round_trips_and_a_damaged_one_is_refused() {
        let d = digest(&[3], &[(3, 1, PASSED), (70_000, 2, STARTED), (3, 1, STARTED), (3, 7, COMPLETED)]);
        assert_eq!(d.pair_counts(), [3, 2, 1], "a pair keeps the highest level it reached");
        let bytes = d.encode();
        assert_eq!(Digest::decode(&bytes), Some(d.clone()));
        assert_eq!(Digest::decode(&Digest::default().encode()), Some(Digest::default()));
        assert_eq!(Digest::decode(&bytes[..bytes.len() - 1]), None, "cut short");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Digest::decode(&longer), None, "something left over");
        let mut counted = bytes.clone();
        counted[15] ^= 1;
        assert_eq!(Digest::decode(&counted), None, "counts that are not the pairs'");
        let mut d = d;
        d.set_pair(pair(3, 1), Some(COMPLETED));
        d.set_pair(pair(3, 7), None);
        assert_eq!(d.pair_counts(), [2, 1, 0]);
    }

    #[test]
    fn a_union_counts_a_learner_or_pair_once_at_its_highest_level() {
        let a = digest(&[], &[(1, 9, STARTED), (1, 8, PASSED)]);
        let b = digest(&[2], &[(1, 9, COMPLETED), (2, 9, PASSED)]);
        let row = |orgs: &[Vec<Vec<u8>>]| counts(&period_row("p".to_owned(), orgs).unwrap().unwrap());
        // One organisation, two days.
        assert_eq!(row(&[vec![a.encode(), b.encode()]]), (2, 3, 3, 2, 5));
        // Two organisations sharing learner 1: the pairs are joined.
        assert_eq!(row(&[vec![a.encode()], vec![b.encode()]]), (2, 3, 3, 2, 5));
        // Two organisations with no learner in common: the counts add up.
        let c = digest(&[], &[(5, 9, STARTED)]);
        assert_eq!(row(&[vec![a.encode()], vec![c.encode()], vec![]]), (2, 3, 1, 1, 3));
        assert!(period_row("p".to_owned(), &[vec![], vec![]]).is_none());
        assert!(period_row("p".to_owned(), &[vec![vec![1, 2, 3]]]).unwrap().is_err());
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
        for granularity in [Granularity::Day, Granularity::Week, Granularity::Month] {
            for d in [day(2026, 1, 1), day(2024, 2, 29), day(2026, 12, 31), day(2027, 1, 3)] {
                assert_eq!(label_bounds(granularity, &granularity.period(d)), Some(bounds(granularity, d)));
            }
        }
        assert_eq!(label_bounds(Granularity::Week, "2026-W60"), None);
        assert_eq!(label_bounds(Granularity::Month, "2026-3"), None);
        assert_eq!(periods(Granularity::Day, day(2026, 3, 4), day(2026, 3, 3)), []);
    }
}
