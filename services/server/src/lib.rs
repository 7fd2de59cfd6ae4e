//! The HTTP services of the LRS: the xAPI write side (ingest), the xAPI read
//! side (query), and the single writer that orders writes onto the log.

pub mod analytics;
pub mod app;
pub mod backpressure;
pub mod cluster;
pub mod credentials;
mod documents;
pub mod embedded;
pub mod error;
pub mod http;
pub mod import;
pub mod jwt;
pub mod metrics;
pub mod more_links;
pub mod openapi;
mod resources;
pub mod scoped_writes;
pub mod sequencer;
pub mod statements;
pub mod throttle;
pub mod ui;
pub mod writer;

pub use app::{AppState, ServerConfig, SharedState, app};
pub use embedded::{Embedded, EmbeddedOptions, StartError, VerifyReport, verify};
pub use lrs_projection::StoreOptions;
pub use statements::QUERY_PARAMETERS;
