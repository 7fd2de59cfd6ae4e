//! Events handed to the projections already decoded.
//!
//! In one process, the single writer holds every event it appends as a
//! value before it encodes it, and the projections then read the same
//! bytes back from the log and each parse them again: a statement's JSON
//! was decoded twice more after the writer had it (about 14 % of an
//! import's CPU). An [`EventHandoff`] carries the decoded event across:
//! the writer offers each event at the offset it is about to take, and a
//! projection that reads a record at that offset takes the event instead
//! of decoding it. A projection that had to decode a record itself shares
//! the result with the projections behind it (the Learning Hub views
//! follow the xAPI views), so a record is decoded at most once in a
//! process.
//!
//! What is taken is always what the log holds: an event the writer offers
//! carries its encoded bytes, and is taken only if the record read at that
//! offset has exactly those bytes (the writer guesses the offset before its
//! append; a failed append, or anyone else appending, makes the guess
//! wrong, and the record is then decoded as before). An event a projection
//! shares was decoded from the record at that offset of the same log.
//!
//! Memory is bounded: events every taker has passed are dropped, and past
//! [`EventHandoff::new`]'s bound (counted in encoded bytes) those furthest
//! ahead are dropped first (or not taken in), so what is held is what the
//! projections reach next. A writer running far ahead of the projections
//! (a bulk load) then offers in vain, but a projection that decodes still
//! hands its events to the one behind it. A projection that finds nothing
//! decodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use lrs_eventlog::{LogRecord, Offset};
use lrs_xapi::events::{Event, EventError, decode};

/// Encoded bytes of events an [`EventHandoff`] holds by default, at most:
/// about the events of 3,000 statements, several times what the Learning
/// Hub views lag behind the writer in a steady load. Decoded, they take
/// about ten times that (every member of a statement a map entry and a
/// string): 8 MiB made an import's peak 70–110 MB higher than 4 MiB.
pub const DEFAULT_HANDOFF_BYTES: usize = 4 * 1024 * 1024;

/// Decoded events on their way from the writer (or the first projection
/// to decode them) to the projections of one process.
#[derive(Debug)]
pub struct EventHandoff {
    limit_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    events: BTreeMap<Offset, Handed>,
    /// Encoded bytes of the events held.
    bytes: usize,
    /// For each taker, the last offset it took or decoded (`None` before
    /// its first): an event at or below every taker's is dropped.
    positions: Vec<Option<Offset>>,
}

#[derive(Debug)]
struct Handed {
    event: Arc<Event>,
    /// The encoded event, when its offset was a guess: taken only by a
    /// record with these bytes.
    check: Option<Vec<u8>>,
    bytes: usize,
}

impl EventHandoff {
    /// A handoff holding at most about `limit_bytes` of encoded events.
    pub fn new(limit_bytes: usize) -> Arc<Self> {
        Arc::new(Self { limit_bytes, inner: Mutex::new(Inner::default()) })
    }

    /// The encoded bytes it holds at most.
    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self) -> usize {
        let mut inner = self.inner();
        inner.positions.push(None);
        inner.positions.len() - 1
    }

    /// Offers `event`, encoded as `encoded`, for the record the log will
    /// hold at `offset` (a guess: see the module's documentation). Does
    /// nothing when no projection takes from this handoff.
    pub fn offer(&self, offset: Offset, encoded: &[u8], event: Arc<Event>) {
        let mut inner = self.inner();
        let bytes = encoded.len();
        let furthest = inner.events.last_key_value().is_none_or(|(last, _)| *last < offset);
        if inner.positions.is_empty() || (furthest && inner.bytes + bytes > self.limit_bytes) {
            return;
        }
        inner.insert(offset, Handed { event, check: Some(encoded.to_vec()), bytes }, self.limit_bytes);
    }

    /// The event at `record`'s offset, if one is held with the record's
    /// bytes; `taker` has passed the offset either way.
    fn take(&self, taker: usize, record: &LogRecord) -> Option<Arc<Event>> {
        let mut inner = self.inner();
        let found = match inner.events.get(&record.offset) {
            Some(handed) if handed.check.as_deref().is_none_or(|check| check == record.payload.as_slice()) => {
                Some(handed.event.clone())
            }
            Some(_) => {
                inner.remove(record.offset);
                None
            }
            None => None,
        };
        inner.passed(taker, record.offset);
        found
    }

    /// Shares an event `taker` decoded from the record at `offset`, if
    /// another taker has not passed it yet.
    fn share(&self, taker: usize, offset: Offset, bytes: usize, event: &Arc<Event>) {
        let mut inner = self.inner();
        let wanted =
            inner.positions.iter().enumerate().any(|(other, at)| other != taker && at.is_none_or(|at| at < offset));
        if wanted {
            inner.insert(offset, Handed { event: event.clone(), check: None, bytes }, self.limit_bytes);
        }
    }

    /// Events held, and their encoded bytes.
    pub fn held(&self) -> (usize, usize) {
        let inner = self.inner();
        (inner.events.len(), inner.bytes)
    }

    /// Whether every projection taking from it has reached the first event
    /// held (taken it, or the one before it): what it holds then leaves as
    /// they apply. One far behind (rebuilding from the log) leaves it full.
    pub fn takers_near(&self) -> bool {
        let inner = self.inner();
        let Some((first, _)) = inner.events.first_key_value() else {
            return true;
        };
        inner.positions.iter().all(|at| at.is_none_or(|at| at + 1 >= *first))
    }
}

impl Inner {
    fn insert(&mut self, offset: Offset, handed: Handed, limit_bytes: usize) {
        self.bytes += handed.bytes;
        if let Some(old) = self.events.insert(offset, handed) {
            self.bytes -= old.bytes;
        }
        while self.bytes > limit_bytes {
            let Some((_, furthest)) = self.events.pop_last() else { break };
            self.bytes -= furthest.bytes;
        }
    }

    fn remove(&mut self, offset: Offset) {
        if let Some(handed) = self.events.remove(&offset) {
            self.bytes -= handed.bytes;
        }
    }

    fn passed(&mut self, taker: usize, offset: Offset) {
        if let Some(position) = self.positions.get_mut(taker) {
            *position = Some(position.map_or(offset, |at| at.max(offset)));
        }
        let Some(lowest) = self.positions.iter().copied().min().flatten() else {
            return;
        };
        while let Some(entry) = self.events.first_entry() {
            if *entry.key() > lowest {
                break;
            }
            let handed = entry.remove();
            self.bytes -= handed.bytes;
        }
    }
}

/// How a projection gets the events of the records it applies: by
/// decoding each, or from an [`EventHandoff`] once attached. Counts both.
#[derive(Debug, Default)]
pub struct EventSource {
    taker: OnceLock<(Arc<EventHandoff>, usize)>,
    decoded: AtomicU64,
    handed: AtomicU64,
}

impl EventSource {
    /// Takes events from `handoff` from now on (the first handoff attached
    /// stays).
    pub fn attach(&self, handoff: &Arc<EventHandoff>) {
        self.taker.get_or_init(|| (handoff.clone(), handoff.register()));
    }

    /// The handoff it takes events from, once attached.
    pub fn handoff(&self) -> Option<&Arc<EventHandoff>> {
        self.taker.get().map(|(handoff, _)| handoff)
    }

    /// Events this projection decoded from the log itself.
    pub fn decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// Events it took already decoded.
    pub fn handed(&self) -> u64 {
        self.handed.load(Ordering::Relaxed)
    }

    /// Whether the handoff holds an event for `offset` (which the record
    /// there may still not match).
    pub(crate) fn holds(&self, offset: Offset) -> bool {
        self.taker.get().is_some_and(|(handoff, _)| handoff.inner().events.contains_key(&offset))
    }

    /// The event `record` holds.
    pub(crate) fn event(&self, record: &LogRecord) -> Result<Arc<Event>, EventError> {
        let handed = self.taker.get().and_then(|(handoff, taker)| handoff.take(*taker, record));
        if let Some(event) = handed {
            self.handed.fetch_add(1, Ordering::Relaxed);
            return Ok(event);
        }
        self.decoded.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(decode(&record.payload)?);
        if let Some((handoff, taker)) = self.taker.get() {
            handoff.share(*taker, record.offset, record.payload.len(), &event);
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lrs_xapi::events::encode;
    use serde_json::json;

    fn statement_event(id: u32) -> Event {
        Event::StatementsStored {
            statements: vec![json!({ "id": format!("00000000-0000-0000-0000-{id:012}"), "verb": { "id": "v" } })],
            attachments: Vec::new(),
        }
    }

    fn record(offset: Offset, event: &Event) -> LogRecord {
        LogRecord { offset, payload: encode(event) }
    }

    #[test]
    fn an_offered_event_is_taken_by_every_projection_and_then_dropped() {
        let handoff = EventHandoff::new(1 << 20);
        let (views, hub) = (EventSource::default(), EventSource::default());
        views.attach(&handoff);
        hub.attach(&handoff);
        let event = statement_event(1);
        let encoded = encode(&event);
        handoff.offer(7, &encoded, Arc::new(event.clone()));
        let read = record(7, &event);
        assert_eq!(*views.event(&read).unwrap(), event);
        assert_eq!(handoff.held().0, 1, "kept for the projection behind");
        assert_eq!(*hub.event(&read).unwrap(), event);
        assert_eq!((views.handed(), views.decoded(), hub.handed(), hub.decoded()), (1, 0, 1, 0));
        assert_eq!(handoff.held(), (0, 0), "both passed it");
    }

    #[test]
    fn an_offer_at_a_wrong_offset_is_never_taken_for_another_record() {
        let handoff = EventHandoff::new(1 << 20);
        let views = EventSource::default();
        views.attach(&handoff);
        let guessed = statement_event(1);
        handoff.offer(3, &encode(&guessed), Arc::new(guessed));
        // The log holds another event at offset 3 (the guess was wrong).
        let actual = statement_event(2);
        assert_eq!(*views.event(&record(3, &actual)).unwrap(), actual);
        assert_eq!((views.handed(), views.decoded()), (0, 1));
        assert_eq!(handoff.held(), (0, 0));
    }

    #[test]
    fn a_projection_that_decodes_shares_with_the_ones_behind_it_only() {
        let (ten, eleven) = (statement_event(10), statement_event(11));
        // Room for one of them.
        let handoff = EventHandoff::new(encode(&ten).len() + 1);
        let (views, hub) = (EventSource::default(), EventSource::default());
        views.attach(&handoff);
        hub.attach(&handoff);
        assert_eq!(*views.event(&record(10, &ten)).unwrap(), ten);
        assert_eq!(handoff.held().0, 1, "shared: the hub has not passed 10");
        assert_eq!(*views.event(&record(11, &eleven)).unwrap(), eleven);
        assert_eq!(handoff.held().0, 1, "11 not kept: 10 is nearer the hub");
        assert_eq!(*hub.event(&record(10, &ten)).unwrap(), ten);
        assert_eq!(handoff.held(), (0, 0));
        assert_eq!(*hub.event(&record(11, &eleven)).unwrap(), eleven);
        assert_eq!(handoff.held(), (0, 0), "the hub decoded 11 and kept it for nobody: the views passed it");
        assert_eq!((views.decoded(), views.handed(), hub.decoded(), hub.handed()), (2, 0, 1, 1));
    }

    #[test]
    fn past_the_bound_the_events_furthest_ahead_go_first() {
        let event = statement_event(1);
        let encoded = encode(&event);
        let handoff = EventHandoff::new(encoded.len() * 3);
        let (views, hub) = (EventSource::default(), EventSource::default());
        views.attach(&handoff);
        hub.attach(&handoff);
        // A writer far ahead: offers beyond the bound are not taken in.
        for offset in 2..7 {
            handoff.offer(offset, &encoded, Arc::new(event.clone()));
        }
        assert_eq!(handoff.held(), (3, encoded.len() * 3));
        // The views decode 0 and 1 and share them: 4 and 3 make room.
        views.event(&record(0, &event)).unwrap();
        views.event(&record(1, &event)).unwrap();
        for offset in 2..5 {
            views.event(&record(offset, &event)).unwrap();
        }
        // 2 was handed; 3 and 4, dropped for 0 and 1, decoded, and shared
        // in vain: nearer events fill the bound.
        assert_eq!((views.decoded(), views.handed()), (4, 1));
        for offset in 0..5 {
            hub.event(&record(offset, &event)).unwrap();
        }
        assert_eq!((hub.decoded(), hub.handed()), (2, 3));
        assert_eq!(handoff.held(), (0, 0));
    }

    #[test]
    fn without_a_handoff_every_record_is_decoded() {
        let source = EventSource::default();
        let event = statement_event(1);
        assert_eq!(*source.event(&record(0, &event)).unwrap(), event);
        assert_eq!((source.decoded(), source.handed()), (1, 0));
        let handoff = EventHandoff::new(1 << 20);
        handoff.offer(0, &encode(&event), Arc::new(event));
        assert_eq!(handoff.held(), (0, 0), "nobody takes: nothing kept");
    }

    #[test]
    fn takers_are_near_while_none_is_short_of_the_first_event_held() {
        let event = statement_event(1);
        let encoded = encode(&event);
        let handoff = EventHandoff::new(1 << 20);
        let (views, hub) = (EventSource::default(), EventSource::default());
        views.attach(&handoff);
        hub.attach(&handoff);
        assert!(handoff.takers_near(), "nothing held");
        for offset in 0..3 {
            views.event(&record(offset, &event)).unwrap();
            hub.event(&record(offset, &event)).unwrap();
        }
        handoff.offer(3, &encoded, Arc::new(event.clone()));
        assert!(handoff.takers_near(), "both took 2, and 3 is next");
        views.event(&record(3, &event)).unwrap();
        assert!(handoff.takers_near(), "the hub is next to take 3");
        // The hub far behind: the views share 100, which the hub is far from.
        views.event(&record(100, &event)).unwrap();
        hub.event(&record(3, &event)).unwrap();
        assert_eq!(handoff.held().0, 1);
        assert!(!handoff.takers_near());
    }
}
