//! The event log on Apache Kafka.
//!
//! The log is partition 0 of one topic (a single partition, because the
//! store's decisions and the `stored` order need one total order). Each
//! append is one Kafka record, a *frame* holding the appended events, so an
//! append is atomic however many events it carries. The producer is
//! idempotent with `acks=all`: an append returns only once every in-sync
//! replica has the record.
//!
//! Offsets: the event at index `i` of the frame at Kafka offset `k` has log
//! offset `k << 16 | i`, except the frame's last event, which has
//! `k << 16 | 0xFFFF`, so that "one past the last event" of a frame is the
//! first offset of the next frame, and a projection that has applied every
//! frame has an applied offset equal to the log's end. Offsets therefore
//! increase strictly in log order but are not consecutive; see the contract
//! in `lrs_eventlog::contract`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset as KafkaOffset, TopicPartitionList};
use rdkafka::util::Timeout;

use lrs_eventlog::{EventLog, LogError, LogRecord, Offset};

pub mod testing;

/// Bits of a log offset that hold the index of an event within its frame.
pub const FRAME_BITS: u32 = 16;
/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = (1 << FRAME_BITS) - 1;
/// The index part of the offset of a frame's last event.
const LAST_INDEX: usize = (1 << FRAME_BITS) - 1;

/// The index part of the offset of event `index` of a frame of `count`.
fn index_in_frame(index: usize, count: usize) -> usize {
    if index + 1 == count { LAST_INDEX } else { index }
}
/// Largest frame (one append) in bytes; the topic is created to accept it.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// The only partition of the log topic.
const PARTITION: i32 = 0;
/// Idle readers kept for reuse (projections read sequentially).
const MAX_IDLE_CURSORS: usize = 4;

/// Where the log lives and how long to wait for the cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`.
    pub bootstrap: String,
    /// The log topic.
    pub topic: String,
    /// How long an append may wait for the cluster's acknowledgement, and
    /// how long a read may wait for a record known to exist.
    pub timeout: Duration,
    /// Names this process in the broker's logs.
    pub client_id: String,
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            timeout: Duration::from_secs(10),
            client_id: "lrs".to_owned(),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", &self.client_id)
            .set("socket.timeout.ms", self.timeout.as_millis().max(10).to_string())
            .set("log_level", "4");
        config
    }
}

/// Splits a log offset into (Kafka offset of the frame, index in the frame).
pub fn split_offset(offset: Offset) -> (i64, usize) {
    ((offset >> FRAME_BITS) as i64, (offset & ((1 << FRAME_BITS) - 1)) as usize)
}

/// The log offset of event `index` of the frame at Kafka offset `kafka`.
pub fn join_offset(kafka: i64, index: usize) -> Offset {
    ((kafka.max(0) as u64) << FRAME_BITS) | index as u64
}

const FRAME_MAGIC: &[u8; 4] = b"LRF1";

fn encode_frame(events: &[Vec<u8>]) -> Vec<u8> {
    let size = 8 + events.iter().map(|e| 4 + e.len()).sum::<usize>();
    let mut frame = Vec::with_capacity(size);
    frame.extend_from_slice(FRAME_MAGIC);
    frame.extend_from_slice(&(events.len() as u32).to_be_bytes());
    for event in events {
        frame.extend_from_slice(&(event.len() as u32).to_be_bytes());
        frame.extend_from_slice(event);
    }
    frame
}

fn decode_frame(kafka: i64, bytes: &[u8]) -> Result<Vec<Vec<u8>>, LogError> {
    let corrupt = || LogError::Storage(format!("the record at Kafka offset {kafka} is not an LRS frame"));
    let rest = bytes.strip_prefix(FRAME_MAGIC.as_slice()).ok_or_else(corrupt)?;
    let (count, mut rest) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let count = u32::from_be_bytes(*count) as usize;
    let mut events = Vec::with_capacity(count.min(MAX_EVENTS_PER_APPEND));
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt());
        }
        events.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(events)
}

fn storage(context: &str, error: KafkaError) -> LogError {
    LogError::Storage(format!("{context}: {error}"))
}

/// Creates the log topic if it does not exist: one partition, never deleted
/// by retention, records up to [`MAX_FRAME_BYTES`].
pub async fn create_topic(config: &KafkaConfig, replication_factor: i32) -> Result<bool, LogError> {
    let admin: AdminClient<DefaultClientContext> =
        config.client().create().map_err(|e| storage("cannot create a Kafka admin client", e))?;
    let max_bytes = (MAX_FRAME_BYTES + 1024).to_string();
    let min_isr = replication_factor.clamp(1, 2).to_string();
    let topic = NewTopic::new(&config.topic, 1, TopicReplication::Fixed(replication_factor))
        .set("cleanup.policy", "delete")
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1")
        .set("max.message.bytes", &max_bytes)
        .set("min.insync.replicas", &min_isr)
        .set("unclean.leader.election.enable", "false");
    let options = AdminOptions::new().operation_timeout(Some(Timeout::After(config.timeout)));
    let results =
        admin.create_topics([&topic], &options).await.map_err(|e| storage("cannot create the log topic", e))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((name, code))) => Err(LogError::Storage(format!("cannot create topic {name}: {code}"))),
        None => Err(LogError::Storage("the cluster did not answer the topic creation".to_owned())),
    }
}

/// A frame: its Kafka offset and its events.
type Frame = (i64, Vec<Vec<u8>>);

/// A reader positioned in the log.
struct Cursor {
    consumer: BaseConsumer,
    /// The Kafka offset the consumer delivers next.
    next: i64,
    /// A frame already read but not wholly handed out.
    buffered: Option<Frame>,
}

impl Cursor {
    /// True when this reader delivers the frame at `kafka` next without
    /// being moved.
    fn is_at(&self, kafka: i64) -> bool {
        self.next == kafka || self.buffered.as_ref().is_some_and(|(buffered, _)| *buffered == kafka)
    }

    /// The next frame, or `None` when `deadline` passes first.
    fn next_frame(&mut self, deadline: Instant) -> Result<Option<Frame>, LogError> {
        if let Some(frame) = self.buffered.take() {
            return Ok(Some(frame));
        }
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(remaining) {
                None if remaining.is_zero() => return Ok(None),
                None => continue,
                Some(Err(error)) => return Err(storage("cannot read the log", error)),
                Some(Ok(message)) => {
                    let kafka = message.offset();
                    let events = decode_frame(kafka, message.payload().unwrap_or_default())?;
                    self.next = kafka + 1;
                    return Ok(Some((kafka, events)));
                }
            }
        }
    }
}

struct Shared {
    config: KafkaConfig,
    /// Replaced when librdkafka reports a fatal error: an idempotent
    /// producer that lost track of its sequence numbers (say, after the
    /// broker stopped answering with records in flight) refuses every later
    /// record, and only a new producer (a new producer id) recovers.
    producer: RwLock<FutureProducer>,
    idle: Mutex<Vec<Cursor>>,
}

impl Shared {
    fn producer(&self) -> FutureProducer {
        match self.producer.read() {
            Ok(producer) => producer.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the producer if it has failed fatally; a producer that has
    /// not is kept (another append may have replaced it already).
    fn renew_producer_if_failed(&self) {
        let mut producer = match self.producer.write() {
            Ok(producer) => producer,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some((code, reason)) = producer.client().fatal_error() else { return };
        match create_producer(&self.config) {
            Ok(fresh) => {
                tracing::warn!(%code, %reason, "the Kafka producer failed fatally; replaced it with a new one");
                *producer = fresh;
            }
            Err(error) => tracing::warn!(%code, %error, "the Kafka producer failed fatally and cannot be replaced yet"),
        }
    }
}

fn create_producer(config: &KafkaConfig) -> Result<FutureProducer, LogError> {
    config
        .client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .set("message.max.bytes", (MAX_FRAME_BYTES + 1024).to_string())
        .set("message.timeout.ms", config.timeout.as_millis().max(1).to_string())
        .create()
        .map_err(|e| storage("cannot create a Kafka producer", e))
}

/// The event log on one partition of a Kafka topic.
#[derive(Clone)]
pub struct KafkaEventLog {
    shared: Arc<Shared>,
}

impl KafkaEventLog {
    /// Connects to the cluster and checks that the topic exists with one
    /// partition (see [`create_topic`]).
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        let producer = RwLock::new(create_producer(&config)?);
        let shared = Arc::new(Shared { config, producer, idle: Mutex::new(Vec::new()) });
        let log = Self { shared };
        let checked = log.clone();
        tokio::task::spawn_blocking(move || checked.check_topic())
            .await
            .map_err(|e| LogError::Storage(e.to_string()))??;
        Ok(log)
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.shared.config
    }

    fn check_topic(&self) -> Result<(), LogError> {
        let config = &self.shared.config;
        let metadata = self
            .shared
            .producer()
            .client()
            .fetch_metadata(Some(&config.topic), config.timeout)
            .map_err(|e| storage("cannot reach the Kafka cluster", e))?;
        let topic = metadata.topics().iter().find(|t| t.name() == config.topic);
        match topic {
            Some(topic) if topic.error().is_none() && topic.partitions().len() == 1 => Ok(()),
            Some(topic) if topic.error().is_none() => Err(LogError::Storage(format!(
                "topic {} has {} partitions; the log needs exactly one",
                config.topic,
                topic.partitions().len()
            ))),
            _ => Err(LogError::Storage(format!(
                "topic {} does not exist; create it with `lrs topics create`",
                config.topic
            ))),
        }
    }

    /// The Kafka offset one past the last record.
    fn high_watermark(&self) -> Result<i64, LogError> {
        let config = &self.shared.config;
        let (_, high) = self
            .shared
            .producer()
            .client()
            .fetch_watermarks(&config.topic, PARTITION, config.timeout)
            .map_err(|e| storage("cannot read the end of the log", e))?;
        Ok(high.max(0))
    }

    /// A reader that delivers the frame at `kafka` next: an idle one already
    /// there, or a new consumer assigned there.
    ///
    /// A consumer is assigned once and never moved. librdkafka aborts the
    /// whole process (`rd_kafka_assignment_partition_stopped: Assertion
    /// rktp->rktp_started failed`) when a consumer is re-assigned while the
    /// stop of its previous assignment is still under way, which a broker
    /// that comes and goes makes likely; a fresh consumer has no previous
    /// assignment.
    fn take_cursor(&self, kafka: i64) -> Result<Cursor, LogError> {
        match self.take_idle_cursor(kafka)? {
            Some(cursor) => Ok(cursor),
            None => self.new_cursor(kafka),
        }
    }

    /// An idle reader that delivers the frame at `kafka` next, if any.
    fn take_idle_cursor(&self, kafka: i64) -> Result<Option<Cursor>, LogError> {
        let reused = {
            let mut idle = self.shared.idle.lock().map_err(|_| LogError::Closed)?;
            idle.iter().position(|c| c.is_at(kafka)).map(|index| idle.swap_remove(index))
        };
        Ok(reused.map(|mut cursor| {
            if cursor.buffered.as_ref().is_some_and(|(buffered, _)| *buffered != kafka) {
                cursor.buffered = None;
            }
            cursor
        }))
    }

    fn new_cursor(&self, kafka: i64) -> Result<Cursor, LogError> {
        let consumer: BaseConsumer = self
            .shared
            .config
            .client()
            .set("group.id", "lrs-log-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // Never jump to another offset on its own: a broker that
            // restarts can briefly report a shorter log, and a reader
            // that skipped ahead would silently miss events.
            .set("auto.offset.reset", "error")
            .set("fetch.wait.max.ms", "50")
            .set("fetch.message.max.bytes", (MAX_FRAME_BYTES + 1024).to_string())
            .create()
            .map_err(|e| storage("cannot create a Kafka consumer", e))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.shared.config.topic, PARTITION, KafkaOffset::Offset(kafka))
            .map_err(|e| storage("cannot position a log reader", e))?;
        consumer.assign(&assignment).map_err(|e| storage("cannot position a log reader", e))?;
        Ok(Cursor { consumer, next: kafka, buffered: None })
    }

    fn put_cursor(&self, cursor: Cursor) {
        // The newest readers are the likeliest to be wanted again; the
        // oldest is closed outside the lock (closing a consumer can wait).
        let _evicted = match self.shared.idle.lock() {
            Ok(mut idle) => {
                let evicted = if idle.len() >= MAX_IDLE_CURSORS { Some(idle.remove(0)) } else { None };
                idle.push(cursor);
                evicted
            }
            Err(_) => None,
        };
    }

    fn read_blocking(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        let (start, mut skip) = split_offset(from);
        if max == 0 {
            return Ok(Vec::new());
        }
        // A reader holding the frame at `start` (a wait found it) proves the
        // log reaches past it: no round trip to the broker for its end.
        // Otherwise ask the broker, and read on (waiting) up to that end.
        let idle = self.take_idle_cursor(start)?;
        let (mut cursor, high) = match idle {
            Some(cursor) if cursor.buffered.is_some() => (cursor, start + 1),
            idle => {
                let high = self.high_watermark()?;
                if start >= high {
                    if let Some(cursor) = idle {
                        self.put_cursor(cursor);
                    }
                    return Ok(Vec::new());
                }
                let cursor = match idle {
                    Some(cursor) => cursor,
                    None => self.new_cursor(start)?,
                };
                (cursor, high)
            }
        };
        let deadline = Instant::now() + self.shared.config.timeout;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut wanted = start;
        while out.len() < max && bytes < max_bytes {
            // Up to the known end the frames exist, so wait for them; past
            // it take only frames the reader has fetched already.
            let known = wanted < high;
            let next = match cursor.next_frame(if known { deadline } else { Instant::now() }) {
                Ok(next) => next,
                // What was read stands; the reader is dropped, so the next
                // read starts a fresh one where this one stops.
                Err(_) if !known => return Ok(out),
                Err(error) => return Err(error),
            };
            let Some((kafka, events)) = next else {
                if out.is_empty() {
                    return Err(LogError::Storage("timed out reading the log".to_owned()));
                }
                break;
            };
            if kafka < wanted {
                continue;
            }
            if kafka > wanted {
                skip = 0;
            }
            let count = events.len();
            let mut stopped_early = false;
            for (index, payload) in events.iter().enumerate() {
                let position = index_in_frame(index, count);
                if position < skip {
                    continue;
                }
                if out.len() == max || bytes >= max_bytes {
                    stopped_early = true;
                    break;
                }
                bytes = bytes.saturating_add(payload.len());
                out.push(LogRecord { offset: join_offset(kafka, position), payload: payload.clone() });
            }
            if stopped_early {
                cursor.buffered = Some((kafka, events));
                break;
            }
            wanted = kafka + 1;
            skip = 0;
        }
        self.put_cursor(cursor);
        Ok(out)
    }

    fn wait_blocking(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        let (kafka, _) = split_offset(offset);
        // A reader already at `kafka` (the one the last read used) receives
        // the next frame as soon as it is fetched; no need to ask the
        // broker for the log's end first. Otherwise ask, and wait at the end.
        let (mut cursor, end_if_nothing) = match self.take_idle_cursor(kafka)? {
            Some(cursor) => (cursor, offset),
            None => {
                let high = self.high_watermark()?;
                if high > kafka {
                    return Ok(join_offset(high, 0));
                }
                (self.take_cursor(high)?, join_offset(high, 0))
            }
        };
        let end = match cursor.next_frame(Instant::now() + timeout) {
            Ok(Some((arrived, events))) => {
                cursor.buffered = Some((arrived, events));
                Ok(join_offset(arrived + 1, 0))
            }
            Ok(None) => Ok(end_if_nothing),
            Err(error) => Err(error),
        };
        self.put_cursor(cursor);
        end
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let log = self.clone();
        tokio::task::spawn_blocking(move || work(&log)).await.map_err(|e| LogError::Storage(e.to_string()))?
    }
}

#[async_trait]
impl EventLog for KafkaEventLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        if events.is_empty() {
            return self.end_offset().await;
        }
        if events.len() > MAX_EVENTS_PER_APPEND {
            return Err(LogError::Storage(format!(
                "an append carries {} events; the most is {MAX_EVENTS_PER_APPEND}",
                events.len()
            )));
        }
        let frame = encode_frame(&events);
        if frame.len() > MAX_FRAME_BYTES {
            return Err(LogError::EventTooLarge { size: frame.len(), limit: MAX_FRAME_BYTES });
        }
        let config = &self.shared.config;
        let record = FutureRecord::<(), [u8]>::to(&config.topic).partition(PARTITION).payload(&frame);
        // librdkafka's own message timeout is not a hard bound (an idempotent
        // producer keeps in-flight records until the connection is reset), so
        // the caller's wait is bounded here. The record may still land later:
        // the client, told 503, sends it again, and a repeat is a no-op.
        let producer = self.shared.producer();
        let sent = producer.send(record, Timeout::After(config.timeout));
        let outcome = tokio::time::timeout(config.timeout + Duration::from_secs(1), sent).await;
        if !matches!(outcome, Ok(Ok(_))) && producer.client().fatal_error().is_some() {
            let shared = self.shared.clone();
            // Creating a producer resolves addresses: not on the runtime.
            let _ = tokio::task::spawn_blocking(move || shared.renew_producer_if_failed()).await;
        }
        match outcome {
            Err(_) => Err(LogError::Storage(format!(
                "Kafka did not acknowledge the append within {} ms",
                config.timeout.as_millis()
            ))),
            Ok(Ok(delivery)) => Ok(join_offset(delivery.offset, index_in_frame(0, events.len()))),
            Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))) => Err(LogError::Overloaded),
            Ok(Err((error, _))) => Err(storage("Kafka did not acknowledge the append", error)),
        }
    }

    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        self.blocking(move |log| log.read_blocking(from, max, max_bytes)).await
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        self.blocking(|log| log.high_watermark().map(|high| join_offset(high, 0))).await
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        self.blocking(move |log| log.wait_blocking(offset, timeout)).await
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.producer().flush(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let events = vec![b"one".to_vec(), Vec::new(), vec![0u8; 70_000]];
        assert_eq!(decode_frame(0, &encode_frame(&events)).unwrap(), events);
        assert!(decode_frame(0, b"LRF1\0\0\0\x02\0\0\0\x01a").is_err(), "a truncated frame is refused");
        assert!(decode_frame(0, b"{}").is_err());
    }

    #[test]
    fn offsets_split_and_join() {
        assert_eq!(split_offset(join_offset(7, 3)), (7, 3));
        assert!(join_offset(1, 0) > join_offset(0, LAST_INDEX));
        assert_eq!(join_offset(0, index_in_frame(0, 1)) + 1, join_offset(1, 0), "after a frame comes the next");
        assert_eq!(index_in_frame(0, 3), 0);
        assert_eq!(index_in_frame(2, 3), LAST_INDEX);
    }
}
