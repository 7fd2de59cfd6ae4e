//! The xAPI HTTP integration suite: a real server on a random loopback
//! port, real HTTP, both xAPI versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod analytics;
mod documents;
mod resources;
mod statements;
