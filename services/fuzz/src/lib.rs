//! Fuzzing that runs on stable Rust.
//!
//! Four targets, each `fn(&[u8])` that must not panic for any input:
//!
//! * [`statement`]: a statement request body, as the server reads it
//!   (parse, validate for 1.0.3 and 2.0, normalise, fingerprint, complete for
//!   storage, the event that carries it, every GET format), then POSTed to
//!   an embedded LRS and read back;
//! * [`multipart`]: a `multipart/mixed` statement request (first line: the
//!   Content-Type or the boundary; the rest: the body);
//! * [`query_params`]: a GET /xapi/statements query string;
//! * [`events`]: an event-log record (`decode`, and `decode(encode(e)) == e`).
//!
//! [`run`] fuzzes a target from a seed corpus ([`seed_corpus`]) with the
//! mutation engine in [`engine`]. `cargo run --release -p lrs-fuzz -- statement
//! --seconds 3600` runs a longer campaign; see the README.

pub mod corpus;
pub mod engine;
pub mod server;
pub mod targets;

pub use corpus::seed_corpus;
pub use engine::{Crash, Options, Report, Target, execute, feature, run, run_named, run_with};
pub use targets::{events, multipart, query_params, statement};

/// Every target, by name.
pub const TARGETS: [(&str, Target); 4] =
    [("statement", statement), ("multipart", multipart), ("query_params", query_params), ("events", events)];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(known, _)| *known == name).map(|(_, target)| *target)
}
