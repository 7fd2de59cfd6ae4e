//! Uptake answers kept period by period, until a fact of one of the
//! period's days changes.
//!
//! An uptake row counts distinct learners and (learner, activity) pairs, so
//! it cannot be summed from smaller periods; it is worked out from the fact
//! rows of its days. Live traffic changes the facts of today (a void, or a
//! statement sent late, an older day), so the rows of every other period of
//! a question asked again are still right: they are kept here, and only the
//! periods with a changed day are read from the store again.
//!
//! Versions make that safe without holding a lock while the store is read.
//! After the projection commits a batch, it takes a new version and marks
//! the days whose facts the batch changed with it (or everything, when the
//! organisation tree changed). A query takes the current version before it
//! reads the store and keeps its answers under it. An answer is used again
//! only while none of its days (and not the tree) has a version above its
//! own: a batch committed before the query read its version is in the
//! answer, and one committed later gives the days a newer version.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::NaiveDate;

use crate::views::{Granularity, UptakeQuery, UptakeRow};

/// Answers kept at most; past it the cache starts again empty.
const MAX_ANSWERS: usize = 100_000;
/// Questions over more days than this (about ten years) are not cached.
pub(crate) const MAX_CACHED_DAYS: i64 = 3_700;

/// One period of one question, its days cut to the question's range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PeriodKey {
    organisation: String,
    activity: Option<String>,
    platform: Option<String>,
    staff_group: Option<String>,
    granularity: Granularity,
    first: NaiveDate,
    last: NaiveDate,
}

impl PeriodKey {
    pub(crate) fn new(query: &UptakeQuery, first: NaiveDate, last: NaiveDate) -> Self {
        Self {
            organisation: query.organisation.clone(),
            activity: query.activity.clone(),
            platform: query.platform.clone(),
            staff_group: query.staff_group.clone(),
            granularity: query.granularity,
            first,
            last,
        }
    }
}

#[derive(Default)]
struct Inner {
    version: u64,
    /// The version of the last batch that changed each day's facts.
    changed: HashMap<NaiveDate, u64>,
    /// The version of the last batch that changed the organisation tree.
    tree_changed: u64,
    /// The row of each period (`None`: no facts) and the version it was
    /// read at.
    answers: HashMap<PeriodKey, (u64, Option<UptakeRow>)>,
}

#[derive(Default)]
pub(crate) struct UptakeCache {
    inner: Mutex<Inner>,
}

impl UptakeCache {
    /// The version to read the store at: take it before reading.
    pub(crate) fn version(&self) -> u64 {
        self.inner.lock().map_or(0, |inner| inner.version)
    }

    /// The kept row of a period, if none of its days changed since.
    pub(crate) fn get(&self, key: &PeriodKey) -> Option<Option<UptakeRow>> {
        let inner = self.inner.lock().ok()?;
        let (version, row) = inner.answers.get(key)?;
        if inner.tree_changed > *version {
            return None;
        }
        let stale = key
            .first
            .iter_days()
            .take_while(|day| *day <= key.last)
            .any(|day| inner.changed.get(&day).is_some_and(|changed| changed > version));
        if stale { None } else { Some(row.clone()) }
    }

    /// Keeps the row of a period read at `version`.
    pub(crate) fn put(&self, key: PeriodKey, version: u64, row: Option<UptakeRow>) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.answers.len() >= MAX_ANSWERS {
                inner.answers.clear();
            }
            inner.answers.insert(key, (version, row));
        }
    }

    /// Called after a batch that changed the facts of `days` (and the
    /// organisation tree, if `tree`) is committed, or failed.
    pub(crate) fn changed(&self, days: impl IntoIterator<Item = NaiveDate>, tree: bool) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.version += 1;
            let version = inner.version;
            for day in days {
                inner.changed.insert(day, version);
            }
            if tree {
                inner.tree_changed = version;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn row(statements: u64) -> UptakeRow {
        UptakeRow { period: "p".to_owned(), active_learners: 1, started: 1, completed: 0, passed: 0, statements }
    }

    fn key(first: u32, last: u32) -> PeriodKey {
        let query = UptakeQuery {
            organisation: "RJ1".to_owned(),
            from: day(1),
            to: day(31),
            granularity: Granularity::Week,
            activity: None,
            platform: None,
            staff_group: None,
        };
        PeriodKey::new(&query, day(first), day(last))
    }

    #[test]
    fn a_row_is_kept_until_one_of_its_days_or_the_tree_changes() {
        let cache = UptakeCache::default();
        let read_at = cache.version();
        cache.put(key(2, 8), read_at, Some(row(3)));
        cache.put(key(9, 15), read_at, None);
        assert_eq!(cache.get(&key(2, 8)), Some(Some(row(3))));
        assert_eq!(cache.get(&key(9, 15)), Some(None), "a period without facts is kept too");

        cache.changed([day(20)], false);
        assert!(cache.get(&key(2, 8)).is_some(), "a change to another day keeps it");
        cache.changed([day(8)], false);
        assert_eq!(cache.get(&key(2, 8)), None, "a change to one of its days drops it");
        assert!(cache.get(&key(9, 15)).is_some());
        cache.changed([], true);
        assert_eq!(cache.get(&key(9, 15)), None, "a change to the organisation tree drops everything");
    }

    #[test]
    fn a_row_read_before_a_change_was_marked_is_not_used_after() {
        let cache = UptakeCache::default();
        // A query takes its version, a batch on one of its days commits and
        // is marked, then the query keeps what it read (which may or may not
        // include the batch): it must not be used again.
        let read_at = cache.version();
        cache.changed([day(3)], false);
        cache.put(key(2, 8), read_at, Some(row(1)));
        assert_eq!(cache.get(&key(2, 8)), None);
        // Read after the mark: kept.
        let read_at = cache.version();
        cache.put(key(2, 8), read_at, Some(row(2)));
        assert_eq!(cache.get(&key(2, 8)), Some(Some(row(2))));
    }
}
