//! Helpers for tests that need a real broker.
//!
//! [`broker`] returns the bootstrap address of the local single-node Kafka
//! started by `deploy/kafka/local-kafka.sh` (which fetches Apache Kafka with
//! Maven on first use). `tests/run.sh` starts it before the tests and stops
//! it after; a test run on its own starts it here if needed (and leaves it
//! running for the next run). `LRS_TEST_KAFKA` points the tests at another
//! broker instead.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root (this crate lives in `services/kafkalog`).
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bootstrap address of the test broker, started on first use.
///
/// # Panics
/// When the broker cannot be started: the Kafka tests must not pass
/// without one.
#[allow(clippy::panic)]
pub fn broker() -> String {
    static BROKER: OnceLock<String> = OnceLock::new();
    BROKER
        .get_or_init(|| {
            if let Ok(address) = std::env::var("LRS_TEST_KAFKA")
                && !address.is_empty()
            {
                return address;
            }
            let script = repository_root().join("deploy/kafka/local-kafka.sh");
            let output = Command::new("bash").arg(&script).arg("start").output();
            match output {
                Ok(output) if output.status.success() => {
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    stdout.lines().last().unwrap_or_default().trim().to_owned()
                }
                Ok(output) => panic!(
                    "{} start failed:\n{}\n{}",
                    script.display(),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
                Err(error) => panic!("cannot run {}: {error}", script.display()),
            }
        })
        .clone()
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
