//! The contract every [`EventLog`] backend must honour.
//!
//! Each function checks one property against a fresh, empty log and panics
//! with a message naming the broken rule. Backends run [`run_all`] from their
//! own tests with a factory that creates a new empty log per check.
//!
//! Offsets are positions, not counts: they increase strictly in log order
//! and the events of one append are read back together, but a backend may
//! leave gaps between appends (the Kafka log does; the embedded one does
//! not, and its own tests say so). Readers keep "the next offset to read"
//! (last read + 1) and never compute offsets of events they have not read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{EventLog, LogRecord, Offset};

fn event(n: usize) -> Vec<u8> {
    format!("{{\"n\":{n}}}").into_bytes()
}

/// Runs every check of the contract, each on a log made by `new_log`.
pub async fn run_all<F, Fut>(mut new_log: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn EventLog>>,
{
    empty_log_has_end_zero(new_log().await).await;
    appends_return_increasing_offsets(new_log().await).await;
    read_returns_events_in_order_from_any_offset(new_log().await).await;
    read_respects_max_and_end(new_log().await).await;
    read_bounded_stops_once_the_bytes_are_reached(new_log().await).await;
    empty_append_is_a_no_op(new_log().await).await;
    concurrent_appends_get_distinct_offsets(new_log().await).await;
    batches_stay_contiguous_under_concurrency(new_log().await).await;
    wait_beyond_wakes_on_append_and_times_out_otherwise(new_log().await).await;
    a_reader_at_the_end_waits_for_and_then_reads_what_comes_next(new_log().await).await;
    payloads_are_returned_byte_for_byte(new_log().await).await;
}

pub async fn empty_log_has_end_zero(log: Arc<dyn EventLog>) {
    assert_eq!(log.end_offset().await.unwrap(), 0, "a new log must end at offset 0");
    assert!(log.read(0, 10).await.unwrap().is_empty(), "a new log must read empty");
}

pub async fn appends_return_increasing_offsets(log: Arc<dyn EventLog>) {
    let first = log.append(vec![event(0), event(1)]).await.unwrap();
    let second = log.append(vec![event(2)]).await.unwrap();
    let records = log.read(first, 10).await.unwrap();
    let offsets: Vec<Offset> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets.len(), 3, "all three events are read back");
    assert_eq!(offsets[0], first, "an append returns the offset of its first event");
    assert!(offsets[0] < offsets[1], "offsets increase within an append");
    assert_eq!(offsets[2], second, "the second append starts after the first batch");
    assert!(log.end_offset().await.unwrap() > second, "the end is past the last event");
}

pub async fn read_returns_events_in_order_from_any_offset(log: Arc<dyn EventLog>) {
    log.append((0..4).map(event).collect()).await.unwrap();
    for n in 4..10 {
        log.append(vec![event(n)]).await.unwrap();
    }
    let all: Vec<Offset> = log.read(0, 100).await.unwrap().iter().map(|r| r.offset).collect();
    assert_eq!(all.len(), 10, "every event is read from the start");
    assert!(all.windows(2).all(|w| w[0] < w[1]), "offsets increase strictly");
    for (n, from) in all.iter().enumerate() {
        let records = log.read(*from, 100).await.unwrap();
        let offsets: Vec<Offset> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, all[n..].to_vec(), "reading from an event's offset starts at that event");
        assert_eq!(records[0].payload, event(n));
    }
    for n in 1..10 {
        let records = log.read(all[n - 1] + 1, 100).await.unwrap();
        assert_eq!(records[0].offset, all[n], "reading from just past an event starts at the next one");
    }
}

pub async fn read_respects_max_and_end(log: Arc<dyn EventLog>) {
    let first = log.append((0..5).map(event).collect()).await.unwrap();
    let end = log.end_offset().await.unwrap();
    let second = log.read(first, 5).await.unwrap()[1].offset;
    assert_eq!(log.read(second, 2).await.unwrap().len(), 2);
    assert!(log.read(end, 10).await.unwrap().is_empty());
    assert!(log.read(end + (1 << 40), 10).await.unwrap().is_empty());
    assert!(log.read(0, 0).await.unwrap().is_empty());
}

/// A read bounded by bytes stops after the event that reaches the bound (so
/// it returns one event however large), and reads that go on from where the
/// last one stopped return every event once, in order, also when the bound
/// falls inside one append.
pub async fn read_bounded_stops_once_the_bytes_are_reached(log: Arc<dyn EventLog>) {
    let sized = |n: usize| format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(100 - 16)).into_bytes();
    assert_eq!(sized(0).len(), 100);
    let first = log.append((0..6).map(sized).collect()).await.unwrap();
    log.append((6..10).map(sized).collect()).await.unwrap();
    let lengths = |records: &[LogRecord]| records.iter().map(|r| r.payload.len()).sum::<usize>();

    let three = log.read_bounded(first, 100, 250).await.unwrap();
    assert_eq!(three.len(), 3, "100-byte events under a bound of 250: the third reaches it");
    assert_eq!(lengths(&three), 300);
    assert_eq!(log.read_bounded(first, 100, 300).await.unwrap().len(), 3, "reaching the bound exactly stops");
    assert_eq!(log.read_bounded(first, 100, 1).await.unwrap().len(), 1, "one event however large");
    assert_eq!(log.read_bounded(first, 2, 10_000).await.unwrap().len(), 2, "the count bound still holds");
    assert_eq!(log.read_bounded(first, 100, 1 << 40).await.unwrap().len(), 10, "a bound past the end reads all");
    assert!(log.read_bounded(first, 100, 0).await.unwrap().is_empty(), "a bound of 0 reads nothing");

    let mut from = first;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let records = log.read_bounded(from, 100, 150).await.unwrap();
        if records.is_empty() {
            break;
        }
        assert!(records.len() <= 2, "at most two 100-byte events under a bound of 150");
        for record in &records {
            seen.push(record.payload.clone());
        }
        from = records.last().unwrap().offset + 1;
    }
    assert_eq!(
        seen,
        (0..10).map(sized).collect::<Vec<_>>(),
        "bounded reads from where the last stopped read every event once"
    );
}

pub async fn empty_append_is_a_no_op(log: Arc<dyn EventLog>) {
    log.append(vec![event(0)]).await.unwrap();
    let end = log.end_offset().await.unwrap();
    log.append(vec![]).await.unwrap();
    assert_eq!(log.end_offset().await.unwrap(), end);
    assert_eq!(log.read(0, 10).await.unwrap().len(), 1);
}

pub async fn concurrent_appends_get_distinct_offsets(log: Arc<dyn EventLog>) {
    let mut tasks = Vec::new();
    for n in 0..50 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.append(vec![event(n)]).await.unwrap() }));
    }
    let mut offsets = Vec::new();
    for task in tasks {
        offsets.push(task.await.unwrap());
    }
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), 50, "offsets must be distinct");
    let records = log.read(0, 100).await.unwrap();
    let read: Vec<Offset> = records.iter().map(|r| r.offset).collect();
    assert_eq!(read, offsets, "the log holds exactly the appended events, at the offsets returned");
    let mut seen: Vec<usize> = records
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["n"].as_u64().unwrap() as usize)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>(), "every event once");
}

pub async fn batches_stay_contiguous_under_concurrency(log: Arc<dyn EventLog>) {
    let mut tasks = Vec::new();
    for batch in 0..20usize {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let events = (0..5).map(|i| event(batch * 5 + i)).collect();
            (batch, log.append(events).await.unwrap())
        }));
    }
    for task in tasks {
        let (batch, first) = task.await.unwrap();
        let records = log.read(first, 5).await.unwrap();
        let expected: Vec<Vec<u8>> = (0..5).map(|i| event(batch * 5 + i)).collect();
        let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
        assert_eq!(got, expected, "a batch is read back together, in order");
    }
}

pub async fn wait_beyond_wakes_on_append_and_times_out_otherwise(log: Arc<dyn EventLog>) {
    let end = log.wait_beyond(0, Duration::from_millis(50)).await.unwrap();
    assert_eq!(end, 0, "waiting on an empty log times out with end 0");
    let waiter = {
        let log = log.clone();
        tokio::spawn(async move { log.wait_beyond(0, Duration::from_secs(30)).await.unwrap() })
    };
    log.append(vec![event(0)]).await.unwrap();
    let end = log.end_offset().await.unwrap();
    assert_eq!(waiter.await.unwrap(), end, "a waiter wakes once the log grows");
}

/// How a projection tails the log: read to the end, wait there, read on.
pub async fn a_reader_at_the_end_waits_for_and_then_reads_what_comes_next(log: Arc<dyn EventLog>) {
    log.append(vec![event(0)]).await.unwrap();
    let mut end = log.end_offset().await.unwrap();
    assert_eq!(log.read(0, 10).await.unwrap().len(), 1);
    assert!(log.read(end, 10).await.unwrap().is_empty(), "nothing past the end");
    assert_eq!(log.wait_beyond(end, Duration::from_millis(50)).await.unwrap(), end, "nothing new: times out");
    for round in 0..3 {
        let waiter = {
            let log = log.clone();
            tokio::spawn(async move { log.wait_beyond(end, Duration::from_secs(30)).await.unwrap() })
        };
        let first = log.append(vec![event(10 * round + 1), event(10 * round + 2)]).await.unwrap();
        log.append(vec![event(10 * round + 3)]).await.unwrap();
        assert!(waiter.await.unwrap() > end, "round {round}: the waiter wakes past where it waited");
        assert_eq!(first, end, "round {round}: the next append starts at the end");
        // Read on from the end until the new end, as a projection does.
        let new_end = log.end_offset().await.unwrap();
        let mut got = Vec::new();
        let mut from = end;
        while from < new_end {
            let records = log.read(from, 10).await.unwrap();
            assert!(!records.is_empty(), "round {round}: a read before the end returns something");
            // Offsets need not be dense (the Kafka log's are not).
            assert!(records[0].offset >= from, "round {round}: a read starts where it was asked to");
            from = records.last().unwrap().offset + 1;
            got.extend(records.into_iter().map(|r| r.payload));
        }
        let expected: Vec<Vec<u8>> = [1, 2, 3].map(|i| event(10 * round + i)).to_vec();
        assert_eq!(got, expected, "round {round}: every event after the wait, once, in order");
        assert!(log.read(new_end, 10).await.unwrap().is_empty());
        end = new_end;
    }
}

pub async fn payloads_are_returned_byte_for_byte(log: Arc<dyn EventLog>) {
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let offset = log.append(vec![payload.clone(), Vec::new()]).await.unwrap();
    let records = log.read(offset, 2).await.unwrap();
    assert_eq!(records[0].payload, payload);
    assert!(records[1].payload.is_empty(), "an empty event is still an event");
}
