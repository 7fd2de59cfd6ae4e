//! The xAPI domain: versions, agents, statement validation and formatting,
//! documents, and the events the store appends to its log.
//!
//! Nothing here does I/O; the services build on these pure functions.

pub mod agent;
pub mod document;
pub mod events;
pub mod format;
pub mod multipart;
pub mod signature;
pub mod statement;
pub mod validate;
pub mod version;

pub use validate::{StatementValidator, ValidationError};
pub use version::XapiVersion;
