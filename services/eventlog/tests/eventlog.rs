//! The log contract suite on the embedded sled log, plus its durability.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lrs_eventlog::{EventLog, SledEventLog, SledEventLogConfig, contract};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_log_passes_the_contract_suite() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    contract::run_all(|| {
        n += 1;
        let dir = root.path().join(format!("log-{n}"));
        async move {
            let log = SledEventLog::open(&dir, SledEventLogConfig::default()).unwrap();
            Arc::new(log) as Arc<dyn EventLog>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_log_keeps_events_across_reopen() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    {
        let log = SledEventLog::open(&dir, SledEventLogConfig::default()).unwrap();
        log.append(vec![b"a".to_vec(), b"b".to_vec()]).await.unwrap();
        log.append(vec![b"c".to_vec()]).await.unwrap();
    }
    // The writer task holds the database until it notices the log is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        match SledEventLog::open(&dir, SledEventLogConfig::default()) {
            Ok(log) => break log,
            Err(error) if std::time::Instant::now() > deadline => panic!("log did not reopen: {error}"),
            Err(_) => tokio::task::yield_now().await,
        }
    };
    assert_eq!(log.end_offset().await.unwrap(), 3);
    let payloads: Vec<Vec<u8>> = log.read(0, 10).await.unwrap().into_iter().map(|r| r.payload).collect();
    assert_eq!(payloads, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(log.append(vec![b"d".to_vec()]).await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_event_is_refused_without_writing() {
    let root = tempfile::tempdir().unwrap();
    let config = SledEventLogConfig { max_event_bytes: 10, ..Default::default() };
    let log = SledEventLog::open(&root.path().join("log"), config).unwrap();
    assert!(log.append(vec![b"ok".to_vec(), vec![0; 11]]).await.is_err());
    assert_eq!(log.end_offset().await.unwrap(), 0);
}
