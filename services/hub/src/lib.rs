//! The Learning Hub views: per-learner transcripts and competency profiles,
//! and per-organisation uptake, all projections of the statement log.
//!
//! - [`frameworks`]: the competency-framework file and how statements map to
//!   competencies.
//! - [`facts`]: what one statement says for these views (learner, time,
//!   activity, outcome, organisation…).
//! - [`HubViews`]: the projection itself, in sled, with its queries.

mod digest_queue;
mod digests;
mod fact_chunks;
pub mod facts;
pub mod frameworks;
mod keys;
mod sorted;
mod summaries;
mod summary_chunks;
mod uptake_cache;
mod views;

pub use views::{
    CompetencyStatus, CompetencyView, Coverage, DEFAULT_GATHER_WAIT, Granularity, HubError, HubViews, TranscriptEntry,
    TranscriptStatus, UptakeQuery, UptakeRow,
};
