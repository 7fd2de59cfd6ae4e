//! Projections of the event log: the read models every query is served from.
//!
//! [`Views`] keeps all projected state in one sled tree under key prefixes,
//! together with the log offset it has applied, except the statement
//! records, which are appended to a file beside it that the tree points
//! into. Each chunk of events is
//! applied as one atomic batch (see [`Tree`]) that also moves the offset, so a
//! projection stopped at any point resumes exactly where it was, and one
//! rebuilt from offset 0 ends in the same state.

pub mod batch;
pub mod codec;
pub mod handoff;
pub mod id_filter;
mod keys;
mod postings;
mod query;
mod records;
mod runner;
mod store;
mod tree;
mod views;

pub use handoff::{DEFAULT_HANDOFF_BYTES, EventHandoff, EventSource};
pub use keys::StoredKey;
pub use query::{QueryPage, StatementQuery};
pub use runner::{Gather, Projection, ProjectorStats, run_projector};
pub use store::{StoreOptions, open_store};
pub use tree::{Iter, Tree};
pub use views::{
    Document, FoundStatement, Outcome, StatementRecord, Views, ViewsError, query_keys_of, statement_id_key,
};
