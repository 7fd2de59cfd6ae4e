//! Statement queries: pick the narrowest index, walk it in stored order,
//! check the remaining filters, skip voided statements.

use uuid::Uuid;

use crate::keys::{self, IndexKind, StoredKey};
use crate::views::{StatementRecord, Views, ViewsError, decode_record};

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
    pub statements: Vec<StatementRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<StoredKey>,
}

impl Views {
    /// Runs a statement query. `max_limit` caps the page size.
    pub fn query(&self, query: &StatementQuery, max_limit: usize) -> Result<QueryPage, ViewsError> {
        let limit = if query.limit == 0 { max_limit } else { query.limit.min(max_limit) };
        let (kind, value) = if let Some(agent) = &query.agent {
            (if query.related_agents { IndexKind::RelatedAgent } else { IndexKind::Agent }, agent.as_str())
        } else if let Some(activity) = &query.activity {
            (if query.related_activities { IndexKind::RelatedActivity } else { IndexKind::Activity }, activity.as_str())
        } else if let Some(registration) = &query.registration {
            (IndexKind::Registration, registration.as_str())
        } else if let Some(verb) = &query.verb {
            (IndexKind::Verb, verb.as_str())
        } else {
            (IndexKind::All, "")
        };
        let prefix = keys::index_prefix(kind, value);
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
        let mut start = prefix.clone();
        start.extend_from_slice(&low.to_bytes());
        let mut end = prefix;
        end.extend_from_slice(&high.to_bytes());
        let range = self.tree.range(start..=end);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            if query.ascending { Box::new(range) } else { Box::new(range.rev()) };

        let mut statements = Vec::new();
        for entry in iter {
            let (_, id_bytes) = entry?;
            let id = Uuid::from_slice(&id_bytes).map_err(|e| ViewsError::Corrupt(e.to_string()))?;
            let Some(bytes) = self.tree.get(keys::statement(id))? else {
                continue;
            };
            let record = decode_record(&bytes)?;
            if !matches(query, &record) || self.is_voided(&record)? {
                continue;
            }
            if statements.len() == limit {
                let next = statements.last().map(StatementRecord::stored_key);
                return Ok(QueryPage { statements, next });
            }
            statements.push(record);
        }
        Ok(QueryPage { statements, next: None })
    }
}

fn matches(query: &StatementQuery, record: &StatementRecord) -> bool {
    let facets = &record.facets;
    let has = |list: &[String], wanted: &Option<String>| wanted.as_ref().is_none_or(|w| list.iter().any(|v| v == w));
    let agents = if query.related_agents { &facets.related_agents } else { &facets.agents };
    let activities = if query.related_activities { &facets.related_activities } else { &facets.activities };
    has(agents, &query.agent)
        && has(activities, &query.activity)
        && has(&facets.verbs, &query.verb)
        && has(&facets.registrations, &query.registration)
        && query
            .authority
            .as_ref()
            .is_none_or(|wanted| lrs_xapi::agent::ifi_key(&record.statement["authority"]).as_ref() == Some(wanted))
        && query
            .actor
            .as_ref()
            .is_none_or(|wanted| lrs_xapi::agent::ifi_key(&record.statement["actor"]).as_ref() == Some(wanted))
}
