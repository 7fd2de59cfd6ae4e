//! What the embedded logs share: a bounded queue of appends in front of one
//! writer task that commits them in groups, and waiting for the durable end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::{LogError, Offset};

/// One caller's append, waiting for the writer.
pub(crate) struct AppendRequest {
    pub events: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Result<Offset, LogError>>,
}

/// Queues `events` for the writer and waits for its answer. Refuses an
/// oversized event before anything is queued; when the queue stays full for
/// a bounded time, tells the caller to back off.
pub(crate) async fn submit(
    queue: &mpsc::Sender<AppendRequest>,
    durable_end: &AtomicU64,
    max_event_bytes: usize,
    events: Vec<Vec<u8>>,
) -> Result<Offset, LogError> {
    if let Some(big) = events.iter().find(|e| e.len() > max_event_bytes) {
        return Err(LogError::EventTooLarge { size: big.len(), limit: max_event_bytes });
    }
    if events.is_empty() {
        return Ok(durable_end.load(Ordering::Acquire));
    }
    let (reply, answer) = oneshot::channel();
    let request = AppendRequest { events, reply };
    match queue.try_send(request) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(request)) => {
            match tokio::time::timeout(Duration::from_secs(5), queue.send(request)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(LogError::Closed),
                Err(_) => return Err(LogError::Overloaded),
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => return Err(LogError::Closed),
    }
    answer.await.map_err(|_| LogError::Closed)?
}

/// The next group for the writer: the first request waiting (waiting for
/// one if none is) and every other already queued, up to about
/// `max_group_events` events. `None` once every handle of the log is gone.
pub(crate) async fn next_group(
    receiver: &mut mpsc::Receiver<AppendRequest>,
    max_group_events: usize,
) -> Option<Vec<AppendRequest>> {
    let first = receiver.recv().await?;
    let mut events_in_group = first.events.len();
    let mut group = vec![first];
    while events_in_group < max_group_events {
        match receiver.try_recv() {
            Ok(request) => {
                events_in_group += request.events.len();
                group.push(request);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

/// Waits until the durable end passes `offset` or `timeout` elapses.
pub(crate) async fn wait_beyond(
    end_watch: &watch::Receiver<Offset>,
    durable_end: &AtomicU64,
    offset: Offset,
    timeout: Duration,
) -> Result<Offset, LogError> {
    let mut watch = end_watch.clone();
    let wait = watch.wait_for(|end| *end > offset);
    match tokio::time::timeout(timeout, wait).await {
        Ok(Ok(end)) => Ok(*end),
        Ok(Err(_)) => Err(LogError::Closed),
        Err(_) => Ok(durable_end.load(Ordering::Acquire)),
    }
}
