//! Which acknowledged writes a Learning Hub read waits for.
//!
//! A read waits until the views show every write acknowledged before it
//! (read-your-writes). Under steady traffic that keeps a Learning Hub read
//! waiting for the views to apply everyone's latest writes, though most of
//! them cannot change what it reads:
//!
//! - a learner's transcript and competencies change only with that
//!   learner's statements and voids of them;
//! - an organisation's uptake and competency coverage change only with the
//!   statements that name it (or a body below it) in the organisation
//!   context extension, and voids of them;
//! - a directory load may change any of them.
//!
//! So the embedded writer remembers, per learner and per organisation, the
//! end of the last acknowledged write that may change their views, in fixed
//! tables of slots by a hash of the agent key or ODS code; and the end of
//! the last one that may change anyone's. Sharing a slot only makes a read
//! wait longer than it must, never shorter. A void the views cannot name
//! the statement of may change any organisation's figures.
//!
//! Statement queries (`GET /xapi/statements`) wait the same way, for the
//! writes answered ahead of the xAPI views (`--ack-ahead`) that may change
//! what they find: a statement found by id changes only with a statement of
//! that id; a query with facet filters (agent, verb, activity,
//! registration) only with statements posted under every one of them, so
//! it waits for the earliest of the filters' ends. A void, or a statement
//! whose object is a StatementRef (it takes its target's facets), may
//! change any query. A write the views already showed when it was answered
//! is not remembered: every later read finds it.
//!
//! Document reads (state, activity and agent profiles) wait only for
//! document writes: nothing else changes a document.
//!
//! A statement that names no organisation counts for the one the learner
//! directory gives its learner when the Learning Hub views project it. Once
//! those views have applied every directory load the writer appended before
//! the statement, the directory they hold is the one the statement will
//! meet, and the learner's organisation is read from it; until then the
//! statement may change any organisation's figures. A void of such a
//! statement still touches every organisation: the views retract it from
//! the organisation it was credited to then, which the directory may no
//! longer say.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use uuid::Uuid;

use lrs_eventlog::Offset;
use lrs_hub::HubViews;
use lrs_hub::facts::statement_organisation;
use lrs_projection::Views;
use lrs_xapi::agent::ifi_key;
use lrs_xapi::statement::voided_target;

/// Slots of each table (8 bytes each, 512 KiB): at thousands of statements
/// a second, a learner's slot is seldom moved by someone else's write
/// within the moment the Learning Hub views lag.
const SLOTS: usize = 1 << 16;

/// Whose views of one kind (learners' or organisations') a write may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// Those of these keys (none: nobody's).
    Some(Vec<String>),
    Everyone,
}

/// What an acknowledged write may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touches {
    /// Learners' own views, by agent key.
    pub learners: Touched,
    /// Organisations' figures, by ODS code.
    pub organisations: Touched,
}

/// Whose views a write may change, as known before it is stored: for
/// statements, their actors and organisations, and the statements their
/// voids void (looked up once the write is visible, see [`WriteScope::resolve`]).
#[derive(Debug, Default)]
pub struct WriteScope {
    learners: Vec<String>,
    organisations: Vec<String>,
    /// Learners of statements that name no organisation: theirs comes from
    /// the learner directory.
    directory_learners: Vec<String>,
    voided: Vec<Uuid>,
    every_learner: bool,
    every_organisation: bool,
    /// The statement queries it may change (see
    /// [`lrs_projection::query_keys_of`]); `None`: any.
    queries: Option<Vec<String>>,
    /// A write of a document (state, activity or agent profile), which
    /// changes nothing else.
    document: bool,
}

impl WriteScope {
    /// A write that changes no Learning Hub view (a document).
    pub fn nobody() -> Self {
        Self { queries: Some(Vec::new()), ..Self::default() }
    }

    /// A write of a document: it changes no Learning Hub view and no
    /// statement query, only what document reads find.
    pub fn document() -> Self {
        Self { document: true, ..Self::nobody() }
    }

    /// Whether it writes a document (see [`AcknowledgedFor::documents`]).
    pub fn writes_document(&self) -> bool {
        self.document
    }

    /// A write that may change any Learning Hub view (a directory load).
    pub fn everyone() -> Self {
        Self { every_learner: true, every_organisation: true, ..Self::default() }
    }

    /// The scope of a write of `statements`; with `queries`, also the
    /// statement queries they may change (worth working out only for a
    /// write that may be answered before the views show it), else any.
    pub fn of_statements(statements: &[Value], queries: bool) -> Self {
        let mut scope = Self::default();
        if queries {
            let mut keys = Vec::new();
            let any = statements.iter().any(|statement| match lrs_projection::query_keys_of(statement) {
                Some(more) => {
                    keys.extend(more);
                    false
                }
                None => true,
            });
            scope.queries = (!any).then_some(keys);
        }
        for statement in statements {
            if let Some(target) = voided_target(statement) {
                scope.voided.push(target);
                continue;
            }
            let learner = ifi_key(&statement["actor"]);
            match (statement_organisation(statement), &learner) {
                (Some(organisation), _) => scope.organisations.push(organisation),
                (None, Some(learner)) => scope.directory_learners.push(learner.clone()),
                (None, None) => scope.every_organisation = true,
            }
            match learner {
                Some(learner) => scope.learners.push(learner),
                None => scope.every_learner = true,
            }
        }
        scope
    }

    /// The statement queries the write may change: `None`, any (see
    /// [`AcknowledgedFor::acknowledged_ahead`]).
    pub fn take_queries(&mut self) -> Option<Vec<String>> {
        self.queries.take()
    }

    /// Once the write is visible: what it touches, with each voided
    /// statement read from the views (everyone's views when one cannot be
    /// read: not stored yet, or not yet shown by views acknowledged ahead),
    /// and the organisation of each learner whose statement names none
    /// read from `directory`: the Learning Hub views, given only once they
    /// have applied every directory load appended before this write
    /// (without them, such a statement touches every organisation).
    pub fn resolve(self, views: &Views, directory: Option<&HubViews>) -> Touches {
        let Self {
            mut learners,
            mut organisations,
            mut directory_learners,
            voided,
            mut every_learner,
            mut every_organisation,
            queries: _,
            document: _,
        } = self;
        match directory {
            _ if directory_learners.is_empty() || every_organisation => {}
            None => every_organisation = true,
            Some(hub) => {
                // A batch often holds several statements of one learner: one read each.
                directory_learners.sort_unstable();
                directory_learners.dedup();
                for learner in &directory_learners {
                    match hub.learner(learner) {
                        Ok(Some(entry)) => organisations.push(entry.organisation),
                        // The views credit the statement to no organisation.
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, "cannot read the learner directory");
                            every_organisation = true;
                            break;
                        }
                    }
                }
            }
        }
        for id in voided {
            if every_learner && every_organisation {
                break;
            }
            let statement = match views.statement(id) {
                Ok(record) => record.map(|record| record.statement),
                Err(error) => {
                    tracing::warn!(%error, "cannot read a voided statement");
                    None
                }
            };
            match statement.as_ref().and_then(|statement| ifi_key(&statement["actor"])) {
                Some(learner) => learners.push(learner),
                None => every_learner = true,
            }
            match statement.as_ref().and_then(statement_organisation) {
                Some(organisation) => organisations.push(organisation),
                None => every_organisation = true,
            }
        }
        let touched =
            |everyone: bool, keys: Vec<String>| if everyone { Touched::Everyone } else { Touched::Some(keys) };
        Touches {
            learners: touched(every_learner, learners),
            organisations: touched(every_organisation, organisations),
        }
    }
}

/// One table: per slot, and for everyone, the end of the last acknowledged
/// write that touched it.
struct Ends {
    slots: Box<[AtomicU64]>,
    everyone: AtomicU64,
}

impl Default for Ends {
    fn default() -> Self {
        Self { slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(), everyone: AtomicU64::new(0) }
    }
}

impl Ends {
    fn slot(&self, key: &str) -> &AtomicU64 {
        // SipHash with fixed keys: the same slot for a key in every
        // process, and not steerable by whoever names learners.
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        &self.slots[(hasher.finish() as usize) % SLOTS]
    }

    fn acknowledged(&self, touched: &Touched, end: Offset) {
        match touched {
            Touched::Some(keys) => {
                for key in keys {
                    self.slot(key).fetch_max(end, Ordering::SeqCst);
                }
            }
            Touched::Everyone => {
                self.everyone.fetch_max(end, Ordering::SeqCst);
            }
        }
    }

    fn everyone(&self) -> Offset {
        self.everyone.load(Ordering::SeqCst)
    }

    fn end_for(&self, key: &str) -> Offset {
        self.slot(key).load(Ordering::SeqCst)
    }
}

/// Where the acknowledged writes that may change each learner's and each
/// organisation's views end.
#[derive(Default)]
pub struct AcknowledgedFor {
    learners: Ends,
    organisations: Ends,
    /// Statement queries, by the keys of [`lrs_projection::query_keys_of`]:
    /// only writes answered before the xAPI views showed them.
    queries: Ends,
    /// The end of the last acknowledged document write.
    documents: AtomicU64,
}

impl AcknowledgedFor {
    /// A write ending at `end` that `touches` these views was acknowledged.
    pub fn acknowledged(&self, touches: &Touches, end: Offset) {
        self.learners.acknowledged(&touches.learners, end);
        self.organisations.acknowledged(&touches.organisations, end);
    }

    /// A write ending at `end` that may change the statement queries with
    /// these keys (`None`: any) was answered before the xAPI views showed it.
    pub fn acknowledged_ahead(&self, queries: Option<Vec<String>>, end: Offset) {
        let touched = match queries {
            Some(keys) => Touched::Some(keys),
            None => Touched::Everyone,
        };
        self.queries.acknowledged(&touched, end);
    }

    /// A document write ending at `end` was acknowledged.
    pub fn acknowledged_document(&self, end: Offset) {
        self.documents.fetch_max(end, Ordering::SeqCst);
    }

    /// The log offset every acknowledged document write is below: statements
    /// and directory loads change no document, so a document read waits
    /// for no more.
    pub fn documents(&self) -> Offset {
        self.documents.load(Ordering::SeqCst)
    }

    /// The log offset every write answered ahead of the xAPI views that may
    /// change a statement query with the keys `keys` (one per filter, see
    /// [`lrs_projection::StatementQuery::facet_keys`]) is below: a statement
    /// the query finds has every key, so the earliest of their ends. `None`
    /// when the query cannot be narrowed (no keys).
    pub fn statement_query(&self, keys: &[String]) -> Option<Offset> {
        let narrowest = keys.iter().map(|key| self.queries.end_for(key)).min()?;
        Some(narrowest.max(self.queries.everyone()))
    }

    /// The log offset every acknowledged write that may change `learner`'s
    /// own views is below.
    pub fn learner(&self, learner: &str) -> Offset {
        self.learners.end_for(learner).max(self.learners.everyone())
    }

    /// The log offset every acknowledged write that may change any
    /// organisation's figures, or the organisation tree, is below.
    pub fn every_organisation(&self) -> Offset {
        self.organisations.everyone()
    }

    /// The log offset every acknowledged write that may change the figures
    /// of these organisations is below.
    pub fn organisations<'a>(&self, codes: impl IntoIterator<Item = &'a str>) -> Offset {
        codes.into_iter().map(|code| self.organisations.end_for(code)).fold(self.every_organisation(), Offset::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statement(actor: Value, organisation: Option<&str>) -> Value {
        let mut statement = json!({ "actor": actor, "verb": { "id": "http://adlnet.gov/expapi/verbs/completed" },
                                    "object": { "id": "https://example.org/a" } });
        if let Some(code) = organisation {
            statement["context"] =
                json!({ "extensions": { "https://learninghub.nhs.uk/xapi/ext/organisation": code } });
        }
        statement
    }

    fn some(keys: &[&str]) -> Touched {
        Touched::Some(keys.iter().map(|k| (*k).to_owned()).collect())
    }

    #[test]
    fn ends_move_with_the_writes_that_touch_them_and_with_everyones() {
        let acknowledged = AcknowledgedFor::default();
        let (ada, bea) = ("mbox:mailto:ada@example.org", "mbox:mailto:bea@example.org");
        let ends = &acknowledged.learners;
        assert!(!std::ptr::eq(ends.slot(ada), ends.slot(bea)), "two learners chosen apart");
        let ada_in_rj1 = Touches { learners: some(&[ada]), organisations: some(&["RJ1"]) };
        acknowledged.acknowledged(&ada_in_rj1, 7);
        assert_eq!((acknowledged.learner(ada), acknowledged.learner(bea)), (7, 0));
        assert_eq!((acknowledged.organisations(["RJ1"]), acknowledged.organisations(["RJ2"])), (7, 0));
        assert_eq!(acknowledged.organisations(["RJ2", "RJ1"]), 7, "the latest of several");
        acknowledged.acknowledged(&ada_in_rj1, 5);
        assert_eq!(acknowledged.learner(ada), 7, "an end never moves back");
        acknowledged.acknowledged(&WriteScope::nobody().resolve(&Views::temporary().unwrap(), None), 9);
        assert_eq!((acknowledged.learner(ada), acknowledged.learner(bea)), (7, 0));
        acknowledged.acknowledged(&Touches { learners: some(&[]), organisations: Touched::Everyone }, 8);
        assert_eq!((acknowledged.learner(bea), acknowledged.organisations(["RJ2"])), (0, 8));
        acknowledged.acknowledged(&WriteScope::everyone().resolve(&Views::temporary().unwrap(), None), 10);
        assert_eq!((acknowledged.learner(bea), acknowledged.organisations(["RJ2"])), (10, 10));
    }

    #[test]
    fn a_statement_touches_its_actor_and_the_organisation_it_names() {
        let views = Views::temporary().unwrap();
        let ada = json!({ "mbox": "mailto:ada@example.org" });
        let scope =
            WriteScope::of_statements(&[statement(ada.clone(), Some("RJ1")), statement(ada.clone(), None)], false);
        assert_eq!(
            scope.resolve(&views, None),
            Touches {
                learners: some(&["mbox:mailto:ada@example.org"; 2]),
                organisations: Touched::Everyone, // the views take the second's from the directory
            }
        );
        let anonymous = json!({ "objectType": "Group", "member": [{ "mbox": "mailto:ada@example.org" }] });
        let scope = WriteScope::of_statements(&[statement(anonymous, Some("RJ1"))], false);
        assert_eq!(scope.resolve(&views, None), Touches { learners: Touched::Everyone, organisations: some(&["RJ1"]) });
    }

    #[test]
    fn statement_queries_are_narrowed_by_id_and_facets_except_after_a_void_or_a_statement_reference() {
        let mut ada = statement(json!({ "mbox": "mailto:ada@example.org" }), None);
        ada["id"] = json!("6690e6c9-3ef0-4ed3-8b37-7f3964730bee");
        ada["context"] = json!({ "registration": "A6A9A2B8-1D5E-4C3B-9D4B-4D1C2A0E9F11",
                                 "instructor": { "mbox": "mailto:bea@example.org" } });
        let keys = WriteScope::of_statements(std::slice::from_ref(&ada), true).take_queries().unwrap();
        for key in [
            "i:6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
            "a:mbox:mailto:ada@example.org",
            "a:mbox:mailto:bea@example.org",
            "v:http://adlnet.gov/expapi/verbs/completed",
            "o:https://example.org/a",
            "r:a6a9a2b8-1d5e-4c3b-9d4b-4d1c2a0e9f11",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
        assert_eq!(keys.iter().filter(|k| k.starts_with("o:")).count(), 1, "the activity once: {keys:?}");
        assert_eq!(WriteScope::of_statements(std::slice::from_ref(&ada), false).take_queries(), None, "not worked out");
        assert_eq!(WriteScope::nobody().take_queries(), Some(Vec::new()));
        let reference = json!({ "objectType": "StatementRef", "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee" });
        for verb in ["http://adlnet.gov/expapi/verbs/voided", "http://adlnet.gov/expapi/verbs/commented"] {
            let referrer =
                json!({ "actor": { "mbox": "mailto:cat@example.org" }, "verb": { "id": verb }, "object": reference });
            assert_eq!(WriteScope::of_statements(&[ada.clone(), referrer], true).take_queries(), None, "{verb}");
        }

        let acknowledged = AcknowledgedFor::default();
        let (by_ada, by_verb) =
            ("a:mbox:mailto:ada@example.org".to_owned(), "v:http://adlnet.gov/expapi/verbs/completed".to_owned());
        assert_eq!(acknowledged.statement_query(&[]), None, "a query with no filter cannot be narrowed");
        acknowledged.acknowledged_ahead(Some(vec![by_ada.clone(), by_verb.clone()]), 4);
        acknowledged.acknowledged_ahead(Some(vec![by_verb.clone()]), 6);
        assert_eq!(acknowledged.statement_query(std::slice::from_ref(&by_ada)), Some(4));
        assert_eq!(
            acknowledged.statement_query(&[by_ada.clone(), by_verb.clone()]),
            Some(4),
            "found with every filter"
        );
        assert_eq!(acknowledged.statement_query(&["a:mbox:mailto:cat@example.org".to_owned()]), Some(0));
        acknowledged.acknowledged_ahead(None, 5);
        assert_eq!(acknowledged.statement_query(&["a:mbox:mailto:cat@example.org".to_owned()]), Some(5), "any");
        assert_eq!(acknowledged.statement_query(std::slice::from_ref(&by_verb)), Some(6));
    }

    #[test]
    fn a_statement_naming_no_organisation_touches_the_one_the_directory_gives_once_the_hub_holds_it() {
        let views = Views::temporary().unwrap();
        let hub = HubViews::temporary(lrs_hub::frameworks::Frameworks::empty()).unwrap();
        let (ada, cat) = (json!({ "mbox": "mailto:ada@example.org" }), json!({ "mbox": "mailto:cat@example.org" }));
        let directory = lrs_xapi::events::Event::LearnersImported {
            learners: vec![lrs_xapi::events::LearnerEntry {
                learner: "mbox:mailto:ada@example.org".to_owned(),
                organisation: "RJ1".to_owned(),
                staff_group: None,
            }],
        };
        hub.apply(&[lrs_eventlog::LogRecord { offset: 0, payload: lrs_xapi::events::encode(&directory) }]).unwrap();
        let statements = [statement(ada.clone(), None), statement(ada, Some("RJ2"))];
        assert_eq!(
            WriteScope::of_statements(&statements, false).resolve(&views, Some(&hub)),
            Touches {
                learners: some(&["mbox:mailto:ada@example.org"; 2]),
                organisations: some(&["RJ2", "RJ1"]), // named, then from the directory
            }
        );
        let unplaced = WriteScope::of_statements(&[statement(cat, None)], false).resolve(&views, Some(&hub));
        assert_eq!(unplaced.organisations, some(&[]), "a learner the directory does not place counts nowhere");
        assert_eq!(
            WriteScope::of_statements(&statements, false).resolve(&views, None).organisations,
            Touched::Everyone,
            "without a directory the views are known to hold"
        );
    }

    #[test]
    fn a_void_touches_the_voided_statements_actor_and_organisation_or_everyone_when_the_views_cannot_name_it() {
        let views = Views::temporary().unwrap();
        let target = Uuid::new_v4();
        let void = json!({ "actor": { "mbox": "mailto:admin@example.org" },
                           "verb": { "id": "http://adlnet.gov/expapi/verbs/voided" },
                           "object": { "objectType": "StatementRef", "id": target.to_string() },
                           "context": { "extensions": { "https://learninghub.nhs.uk/xapi/ext/organisation": "X26" } } });
        let everyone = Touches { learners: Touched::Everyone, organisations: Touched::Everyone };
        assert_eq!(
            WriteScope::of_statements(std::slice::from_ref(&void), false).resolve(&views, None),
            everyone,
            "a statement the views do not hold"
        );

        let mut stored = statement(json!({ "mbox": "mailto:Ada@example.org" }), Some("RJ1"));
        stored["id"] = json!(target.to_string());
        stored["object"]["objectType"] = json!("Activity");
        stored["timestamp"] = json!("2026-03-01T10:00:00.000Z");
        stored["stored"] = json!("2026-03-01T10:00:00.000Z");
        stored["authority"] = json!({ "objectType": "Agent", "mbox": "mailto:platform@example.org" });
        stored["version"] = json!("1.0.0");
        let event = lrs_xapi::events::Event::StatementsStored { statements: vec![stored], attachments: Vec::new() };
        views.apply(&[lrs_eventlog::LogRecord { offset: 0, payload: lrs_xapi::events::encode(&event) }]).unwrap();
        assert_eq!(
            WriteScope::of_statements(std::slice::from_ref(&void), false).resolve(&views, None),
            Touches { learners: some(&["mbox:mailto:ada@example.org"]), organisations: some(&["RJ1"]) },
            "the voided statement's actor and organisation, not the void's"
        );
    }
}
