//! Statement queries: pick the narrowest index, walk it in stored order,
//! check the remaining filters, skip voided statements.

use std::ops::Bound;

use serde_json::Value;

use crate::keys::{self, IndexKind, StoredKey};
use crate::postings::Posting;
use crate::views::{Facets, FoundStatement, Views, ViewsError, decode_found};

/// A GET /statements query, already parsed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementQuery {
    /// Agent IFI key.
    pub agent: Option<String>,
    pub verb: Option<String>,
    pub activity: Option<String>,
    pub registration: Option<String>,
    pub related_activities: bool,
    pub related_agents: bool,
    /// Exclusive lower bound on stored, µs since the epoch.
    pub since_micros: Option<i64>,
    /// Inclusive upper bound on stored, µs since the epoch.
    pub until_micros: Option<i64>,
    pub ascending: bool,
    /// Page size; 0 means the server's maximum.
    pub limit: usize,
    /// Continue after this position (exclusive), in the query's direction.
    pub after: Option<StoredKey>,
    /// Never return statements positioned after this (the first page's
    /// horizon), so later pages do not shift as statements arrive.
    pub horizon: Option<StoredKey>,
    /// Only statements whose actor has this IFI key (a learner reading
    /// their own records).
    pub actor: Option<String>,
    /// Only statements whose authority has this IFI key
    /// (`statements/read/mine`).
    pub authority: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct QueryPage {
    pub statements: Vec<FoundStatement>,
    /// Where the next page starts, when there is one.
    pub next: Option<StoredKey>,
}

impl StatementQuery {
    /// One key of [`query_keys_of`](crate::query_keys_of) for each facet
    /// filter (agent, verb, activity, registration): a statement this query
    /// finds has every one of them, or inherits the facets by StatementRef
    /// (which `query_keys_of` counts as changing any query). Empty when the
    /// query has no facet filter: any statement may change it.
    pub fn facet_keys(&self) -> Vec<String> {
        [
            (IndexKind::Agent, &self.agent),
            (IndexKind::Verb, &self.verb),
            (IndexKind::Activity, &self.activity),
            (IndexKind::Registration, &self.registration),
        ]
        .into_iter()
        .filter_map(|(kind, value)| value.as_deref().map(|value| keys::query_key(kind, value)))
        .collect()
    }
}

impl Views {
    /// Runs a statement query. `max_limit` caps the page size.
    pub fn query(&self, query: &StatementQuery, max_limit: usize) -> Result<QueryPage, ViewsError> {
        let limit = if query.limit == 0 { max_limit } else { query.limit.min(max_limit) };
        // The narrowest index; a "related" query reads the primary list and
        // the list of related-only entries. With no facet filter, the list
        // of all statements.
        let lists: Vec<Vec<u8>> = if let Some(agent) = &query.agent {
            let mut lists = vec![keys::posting_list(IndexKind::Agent, agent)];
            if query.related_agents {
                lists.push(keys::posting_list(IndexKind::RelatedAgent, agent));
            }
            lists
        } else if let Some(activity) = &query.activity {
            let mut lists = vec![keys::posting_list(IndexKind::Activity, activity)];
            if query.related_activities {
                lists.push(keys::posting_list(IndexKind::RelatedActivity, activity));
            }
            lists
        } else if let Some(registration) = &query.registration {
            vec![keys::posting_list(IndexKind::Registration, registration)]
        } else if let Some(verb) = &query.verb {
            vec![keys::posting_list(IndexKind::Verb, verb)]
        } else {
            vec![keys::all_statements()]
        };
        let mut low = StoredKey { stored_micros: i64::MIN, sequence: 0 };
        let mut high = StoredKey { stored_micros: i64::MAX, sequence: u64::MAX };
        if let Some(since) = query.since_micros {
            low = low.max(StoredKey { stored_micros: since.saturating_add(1), sequence: 0 });
        }
        if let Some(until) = query.until_micros {
            high = high.min(StoredKey { stored_micros: until, sequence: u64::MAX });
        }
        if let Some(horizon) = query.horizon {
            high = high.min(horizon);
        }
        if let Some(after) = query.after {
            if query.ascending {
                low = low
                    .max(StoredKey { stored_micros: after.stored_micros, sequence: after.sequence.saturating_add(1) });
                if after.sequence == u64::MAX {
                    low = StoredKey { stored_micros: after.stored_micros.saturating_add(1), sequence: 0 };
                }
            } else if after.sequence == 0 {
                high = high.min(StoredKey { stored_micros: after.stored_micros.saturating_sub(1), sequence: u64::MAX });
            } else {
                high = high.min(StoredKey { stored_micros: after.stored_micros, sequence: after.sequence - 1 });
            }
        }
        if low > high {
            return Ok(QueryPage { statements: Vec::new(), next: None });
        }
        // Positions in the query's order.
        let mut positions: Box<dyn Iterator<Item = Result<(StoredKey, ()), ViewsError>>> = Box::new(std::iter::empty());
        for list in &lists {
            // What is held in memory is taken before the tree is read: a
            // list written meanwhile is then in the tree, and an entry
            // both held and written is yielded once.
            let held = self.held_postings_of(list, low, high);
            let more = list_postings(&self.tree, list, held, low, high, query.ascending);
            positions = Box::new(MergeSorted::new(positions, more, query.ascending));
        }

        let mut statements = Vec::new();
        for position in positions {
            let (stored, ()) = position?;
            let found = decode_found(&self.record(stored)?, self.record_dictionary())?;
            if needs_statement(query) && !matches(query, &found.statement()?, &found.inherited) {
                continue;
            }
            if !found.peeked.voiding
                && let Some(id) = found.peeked.id
                && self.tree.contains_key(keys::voided(id))?
            {
                continue;
            }
            if statements.len() == limit {
                let next = statements.last().map(FoundStatement::stored_key);
                return Ok(QueryPage { statements, next });
            }
            statements.push(found);
        }
        Ok(QueryPage { statements, next: None })
    }
}

/// The facet filters of a query (agent, activity, verb, registration).
fn facet_filters(query: &StatementQuery) -> usize {
    [query.agent.is_some(), query.activity.is_some(), query.verb.is_some(), query.registration.is_some()]
        .into_iter()
        .filter(|given| *given)
        .count()
}

/// Whether a statement found in the query's posting list must be read to
/// know if it matches. With one facet filter, the list walked is that
/// filter's: a statement is in a list only if the facet was (and so still
/// is: facets only grow) one of its own or inherited ones, so it matches.
fn needs_statement(query: &StatementQuery) -> bool {
    facet_filters(query) > 1 || query.authority.is_some() || query.actor.is_some()
}

type Range = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;

/// The positions in one posting list within `low..=high`, in ascending or
/// descending order: its chunks, its late entries and the entries `held`
/// in memory (ascending, within range) merged.
fn list_postings(
    tree: &crate::Tree,
    list: &[u8],
    held: Vec<Posting>,
    low: StoredKey,
    high: StoredKey,
    ascending: bool,
) -> impl Iterator<Item = Result<(StoredKey, ()), ViewsError>> + use<> {
    let late_range = tree.range(keys::late_entry(list, low)..=keys::late_entry(list, high));
    let late: Range = if ascending { Box::new(late_range) } else { Box::new(late_range.rev()) };
    let late = late.map(|entry| Ok((position_at_end(&entry?.0)?, ())));
    let mut held: Vec<(StoredKey, ())> = held.into_iter().map(|(stored, _)| (stored, ())).collect();
    let top = StoredKey { stored_micros: i64::MAX, sequence: u64::MAX };
    let chunks = if ascending {
        // Chunks are keyed by their highest entry: the first to read is the
        // first whose highest is at or above `low`.
        ChunkScan {
            straddling: None,
            chunks: Box::new(tree.range(keys::index_chunk(list, low)..=keys::index_chunk(list, top))),
            pending: Vec::new().into_iter(),
            low,
            high,
            done: false,
            ascending,
        }
    } else {
        // At most one chunk holds entries on both sides of `high`: the first
        // keyed above it. Read it first, then the chunks keyed within range,
        // backwards.
        let straddling = if high == top {
            None
        } else {
            tree.range((Bound::Excluded(keys::index_chunk(list, high)), Bound::Included(keys::index_chunk(list, top))))
                .next()
        };
        ChunkScan {
            straddling,
            chunks: Box::new(tree.range(keys::index_chunk(list, low)..=keys::index_chunk(list, high)).rev()),
            pending: Vec::new().into_iter(),
            low,
            high,
            done: false,
            ascending,
        }
    };
    if !ascending {
        held.reverse();
    }
    MergeSorted::new(MergeSorted::new(chunks, late, ascending), held.into_iter().map(Ok), ascending)
}

/// Every index entry, chunked, late or `held` in memory (by list, then
/// position), as `list ‖ position`, in that key order (for the state
/// digest).
pub(crate) fn all_index_entries(
    tree: &crate::Tree,
    held: Vec<(Vec<u8>, Posting)>,
) -> impl Iterator<Item = Result<(Vec<u8>, ()), ViewsError>> + '_ {
    let chunked = tree.scan_prefix([keys::INDEX]).flat_map(|entry| {
        let expanded: Vec<Result<(Vec<u8>, ()), ViewsError>> = match entry {
            Err(error) => vec![Err(error.into())],
            Ok((key, value)) => match (key.len().checked_sub(StoredKey::LEN), keys::decode_chunk(&value)) {
                (Some(end), Some(positions)) if end >= 1 => {
                    let list = &key[1..end];
                    positions
                        .into_iter()
                        .map(|stored| {
                            let mut logical = list.to_vec();
                            logical.extend_from_slice(&stored.to_bytes());
                            Ok((logical, ()))
                        })
                        .collect()
                }
                _ => vec![Err(ViewsError::Corrupt("posting chunk".to_owned()))],
            },
        };
        expanded
    });
    let late = tree.scan_prefix([keys::LATE_INDEX]).map(|entry| Ok((entry?.0[1..].to_vec(), ())));
    let held = held.into_iter().map(|(mut list, (stored, _))| {
        list.extend_from_slice(&stored.to_bytes());
        Ok((list, ()))
    });
    MergeSorted::new(MergeSorted::new(chunked, late, true), held, true)
}

/// The position a key ends with (a record's, a chunk's highest, a late
/// entry's).
pub(crate) fn position_at_end(key: &[u8]) -> Result<StoredKey, ViewsError> {
    key.len()
        .checked_sub(StoredKey::LEN)
        .and_then(|start| StoredKey::from_bytes(&key[start..]))
        .ok_or_else(|| ViewsError::Corrupt("index key".to_owned()))
}

/// Reads the chunks of one list in order, yielding the entries within
/// `low..=high` in the scan's direction.
struct ChunkScan {
    straddling: Option<sled::Result<(sled::IVec, sled::IVec)>>,
    chunks: Range,
    pending: std::vec::IntoIter<StoredKey>,
    low: StoredKey,
    high: StoredKey,
    done: bool,
    ascending: bool,
}

impl Iterator for ChunkScan {
    type Item = Result<(StoredKey, ()), ViewsError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(stored) = self.pending.next() {
                return Some(Ok((stored, ())));
            }
            if self.done {
                return None;
            }
            let chunk = match self.straddling.take().or_else(|| self.chunks.next()) {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(error)) => return Some(Err(error.into())),
                Some(Ok((_, chunk))) => chunk,
            };
            let Some(positions) = keys::decode_chunk(&chunk) else {
                return Some(Err(ViewsError::Corrupt("posting chunk".to_owned())));
            };
            let mut entries = Vec::with_capacity(positions.len());
            for stored in positions {
                if stored > self.high && self.ascending {
                    self.done = true;
                }
                if stored >= self.low && stored <= self.high {
                    entries.push(stored);
                }
            }
            if !self.ascending {
                entries.reverse();
            }
            self.pending = entries.into_iter();
        }
    }
}

/// Merges two streams each sorted by key (ascending or descending) into one,
/// yielding an item present in both once.
struct MergeSorted<K, V, A, B> {
    a: A,
    b: B,
    head_a: Option<(K, V)>,
    head_b: Option<(K, V)>,
    ascending: bool,
}

impl<K, V, A, B> MergeSorted<K, V, A, B> {
    fn new(a: A, b: B, ascending: bool) -> Self {
        Self { a, b, head_a: None, head_b: None, ascending }
    }
}

impl<K: Ord, V, A, B> Iterator for MergeSorted<K, V, A, B>
where
    A: Iterator<Item = Result<(K, V), ViewsError>>,
    B: Iterator<Item = Result<(K, V), ViewsError>>,
{
    type Item = Result<(K, V), ViewsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.head_a.is_none() {
            match self.a.next() {
                Some(Ok(item)) => self.head_a = Some(item),
                Some(Err(error)) => return Some(Err(error)),
                None => {}
            }
        }
        if self.head_b.is_none() {
            match self.b.next() {
                Some(Ok(item)) => self.head_b = Some(item),
                Some(Err(error)) => return Some(Err(error)),
                None => {}
            }
        }
        let take_a = match (&self.head_a, &self.head_b) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                if a == b {
                    self.head_b = None;
                    true
                } else {
                    (a < b) == self.ascending
                }
            }
        };
        if take_a { self.head_a.take().map(Ok) } else { self.head_b.take().map(Ok) }
    }
}

/// Whether a statement matches the query's filters beyond its posting
/// list: the other facet filters (when more than one is given), the actor
/// and the authority.
fn matches(query: &StatementQuery, statement: &Value, inherited: &Facets) -> bool {
    let has = |list: &[String], wanted: &Option<String>| wanted.as_ref().is_none_or(|w| list.iter().any(|v| v == w));
    // The facets are worked out from the statement: only when asked about.
    let facets_match = facet_filters(query) <= 1 || {
        let facets = Facets::of_with(statement, inherited);
        let agents = if query.related_agents { &facets.related_agents } else { &facets.agents };
        let activities = if query.related_activities { &facets.related_activities } else { &facets.activities };
        has(agents, &query.agent)
            && has(activities, &query.activity)
            && has(&facets.verbs, &query.verb)
            && has(&facets.registrations, &query.registration)
    };
    facets_match
        && query
            .authority
            .as_ref()
            .is_none_or(|wanted| lrs_xapi::agent::ifi_key(&statement["authority"]).as_ref() == Some(wanted))
        && query
            .actor
            .as_ref()
            .is_none_or(|wanted| lrs_xapi::agent::ifi_key(&statement["actor"]).as_ref() == Some(wanted))
}
