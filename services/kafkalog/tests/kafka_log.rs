//! The log contract suite against a real Apache Kafka broker, plus what
//! only a networked log can get wrong (the broker going away).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lrs_eventlog::{EventLog, LogError, contract};
use lrs_kafkalog::{KafkaConfig, KafkaEventLog, create_topic, testing};

/// librdkafka's mock cluster (one broker) with the log topic, and a log on
/// it holding one event, "before".
async fn mock_log_with_one_event()
-> (rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>, KafkaEventLog) {
    let cluster = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = "lrs.log";
    cluster.create_topic(topic, 1, 1).unwrap();
    let mut config = KafkaConfig::new(cluster.bootstrap_servers(), topic);
    config.timeout = Duration::from_secs(2);
    let log = KafkaEventLog::connect(config).await.unwrap();
    log.append(vec![b"before".to_vec()]).await.unwrap();
    (cluster, log)
}

async fn fresh_log(timeout: Duration) -> KafkaEventLog {
    let mut config = KafkaConfig::new(testing::broker(), testing::unique_topic("contract"));
    config.timeout = timeout;
    assert!(create_topic(&config, 1).await.unwrap(), "the topic is new");
    KafkaEventLog::connect(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_log_passes_the_contract_suite() {
    contract::run_all(|| async { Arc::new(fresh_log(Duration::from_secs(20)).await) as Arc<dyn EventLog> }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_the_topic_twice_is_harmless_and_connect_needs_the_topic() {
    let config = KafkaConfig::new(testing::broker(), testing::unique_topic("create"));
    let missing = KafkaEventLog::connect(config.clone()).await;
    assert!(matches!(missing, Err(LogError::Storage(ref m)) if m.contains("does not exist")), "{:?}", missing.err());
    assert!(create_topic(&config, 1).await.unwrap());
    assert!(!create_topic(&config, 1).await.unwrap(), "a second create finds the topic");
    let log = KafkaEventLog::connect(config).await.unwrap();
    assert_eq!(log.end_offset().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_reads_what_the_first_appended() {
    let writer = fresh_log(Duration::from_secs(20)).await;
    let reader = KafkaEventLog::connect(writer.config().clone()).await.unwrap();
    let waiting = {
        let reader = reader.clone();
        tokio::spawn(async move { reader.wait_beyond(0, Duration::from_secs(30)).await.unwrap() })
    };
    let first = writer.append(vec![b"a".to_vec(), b"b".to_vec()]).await.unwrap();
    assert!(waiting.await.unwrap() > first);
    let records = reader.read(0, 10).await.unwrap();
    assert_eq!(records.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(), vec![b"a".to_vec(), b"b".to_vec()]);
}

/// librdkafka's mock cluster stands in for a broker that goes away: the
/// append must fail (not hang) within the configured timeout, and nothing
/// of it may appear once the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_fails_within_the_timeout_when_the_broker_is_down() {
    let (cluster, log) = mock_log_with_one_event().await;
    cluster.broker_down(1).unwrap();
    let started = Instant::now();
    let failed = log.append(vec![b"during-1".to_vec(), b"during-2".to_vec()]).await;
    assert!(failed.is_err(), "an append without a broker must fail");
    assert!(started.elapsed() < Duration::from_secs(10), "the failure must come within a bound");
    cluster.broker_up(1).unwrap();
    // The client reconnects with its own back-off: retry until a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        match log.append(vec![b"after".to_vec()]).await {
            Ok(offset) => break offset,
            Err(error) if Instant::now() > deadline => panic!("the log did not recover: {error}"),
            Err(_) => continue,
        }
    };
    let payloads: Vec<Vec<u8>> = log.read(0, 10).await.unwrap().into_iter().map(|r| r.payload).collect();
    assert!(payloads.first() == Some(&b"before".to_vec()) && payloads.last() == Some(&b"after".to_vec()));
    let during = payloads.iter().filter(|p| p.starts_with(b"during")).count();
    assert!(during == 0 || during == 2, "a failed append is all or nothing, never half: {payloads:?}");
    assert!(after > 0);
}

/// An idempotent producer that loses track of its sequence numbers fails
/// fatally and refuses every later record; the log replaces it, so appends
/// work again once the cluster does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_recovers_from_a_fatal_producer_error() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let (cluster, log) = mock_log_with_one_event().await;
    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
    assert!(log.append(vec![b"refused".to_vec()]).await.is_err(), "the broker refused the record");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match log.append(vec![b"after".to_vec()]).await {
            Ok(_) => break,
            Err(error) if Instant::now() > deadline => panic!("the log did not recover: {error}"),
            Err(_) => continue,
        }
    }
    let payloads: Vec<Vec<u8>> = log.read(0, 10).await.unwrap().into_iter().map(|r| r.payload).collect();
    assert_eq!(payloads.first(), Some(&b"before".to_vec()));
    assert_eq!(payloads.last(), Some(&b"after".to_vec()));
}

/// Readers are positioned at many offsets while the broker comes and goes.
/// librdkafka aborts the whole process (an assertion in its assignment
/// code) when a consumer is re-assigned while an earlier assignment is
/// still being stopped, so a reader must never be re-assigned: this test
/// dies with the process if one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_survive_reads_at_scattered_offsets_while_the_broker_flaps() {
    let (cluster, log) = mock_log_with_one_event().await;
    let mut offsets = vec![0];
    for n in 0..20u8 {
        offsets.push(log.append(vec![vec![n], vec![n, n]]).await.unwrap());
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..8)
        .map(|reader| {
            let (log, offsets, stop) = (log.clone(), offsets.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = reader;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n = (n * 7 + 3) % offsets.len();
                    let _ = log.read(offsets[n], 1).await;
                }
            })
        })
        .collect();
    // The broker goes down and up 200 times, at uneven intervals (pacing
    // the fault, not waiting for anything).
    for flap in 0..200u64 {
        cluster.broker_down(1).unwrap();
        tokio::time::sleep(Duration::from_millis(5 + flap % 40)).await;
        cluster.broker_up(1).unwrap();
        tokio::time::sleep(Duration::from_millis(5 + (flap * 7) % 40)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    // The log still reads, in order, once the broker stays up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let payloads = loop {
        match log.read(0, 100).await {
            Ok(records) => break records.into_iter().map(|r| r.payload).collect::<Vec<_>>(),
            Err(error) if Instant::now() > deadline => panic!("the log did not recover: {error}"),
            Err(_) => continue,
        }
    };
    assert_eq!(payloads.len(), 41);
    assert_eq!(payloads.first(), Some(&b"before".to_vec()));
}
