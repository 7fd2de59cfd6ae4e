//! The embedded event log as append-only segment files, with group commit.
//!
//! Events live in segment files named by the offset of their first event
//! (`00000000000000000000.seg`, …). A segment starts with an 8-byte magic
//! and then holds frames back to back:
//!
//! ```text
//! length u32 LE | crc32 u32 LE | flags u8 | raw length u32 LE | body
//! ```
//!
//! `length` counts the bytes after the first eight (flags, raw length,
//! body) and the CRC covers the same bytes. Flag bit 0 says the body is a
//! zstd frame of the event (events of a few hundred bytes and more are
//! compressed when that makes them smaller); bit 1, with bit 0, that it was
//! compressed with one of the log's dictionaries (`<offset>.zdict` beside
//! the segments, named in the zstd frame by its id; see `dictionary.rs`).
//! `raw length` is the event's own length. An event's offset is its
//! segment's first offset plus its position in the segment, so offsets are
//! dense.
//!
//! Appends go through one writer task (`group.rs`): it takes every request
//! waiting in its queue, writes their frames in one write, calls
//! `fdatasync` once, and only then answers them. Readers see only offsets
//! below the durable end. On open, the last segment is read whole and a torn
//! or corrupt tail (a crash in the middle of a write that was never
//! acknowledged) is cut off; earlier segments are sealed, and a frame that
//! does not check out there is reported as corruption, never skipped. After
//! a failed sync the log refuses further appends until it is reopened,
//! since the kernel may have dropped the unsynced pages.
//!
//! The newest events appended (`FileEventLogConfig::tail_bytes` of them)
//! stay in memory as they were appended, and a read that starts among them
//! takes them from there: the projections of the same process follow the
//! writer closely, and read every event back, so without it each event was
//! read from the segment and decompressed once for each of them, on a
//! blocking thread.
//!
//! The directory is locked while open, so two processes never write one log.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::dictionary::{self, Dictionaries, Sampler};
use crate::group::{self, AppendRequest};
use crate::{EventLog, LogError, LogRecord, Offset};

const MAGIC: &[u8; 8] = b"LRSLOG\x00\x01";
const HEADER: u64 = MAGIC.len() as u64;
/// length, crc, flags, raw length.
const FRAME_HEADER: usize = 4 + 4 + 1 + 4;
const FLAG_ZSTD: u8 = 1;
/// Always with [`FLAG_ZSTD`], so a reader that knows no dictionaries finds
/// the frame damaged rather than taking its body for the event.
const FLAG_DICTIONARY: u8 = 2;
/// Every how many frames the in-memory index remembers a position.
const STRIDE: u64 = 32;
const LOCK_FILE: &str = "LOCK";
const SEGMENT_SUFFIX: &str = ".seg";

/// Tuning of the segment-file log.
#[derive(Debug, Clone)]
pub struct FileEventLogConfig {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// Appends waiting for the writer before callers are told to slow down.
    pub queue_depth: usize,
    /// Upper bound of events written in one group commit.
    pub max_group_events: usize,
    /// Largest single event accepted.
    pub max_event_bytes: usize,
    /// Events at least this long are stored compressed (when that is smaller).
    pub compress_from_bytes: usize,
    /// zstd level for compressed events.
    pub compression_level: i32,
    /// Events sampled before a dictionary is trained for them (see
    /// `dictionary.rs`); 0 never trains one.
    pub dictionary_samples: usize,
    /// Largest dictionary trained.
    pub dictionary_bytes: usize,
    /// Bytes of the newest events kept in memory for readers close behind
    /// the writer (see the module's documentation); 0 keeps none.
    pub tail_bytes: usize,
}

impl Default for FileEventLogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 128 * 1024 * 1024,
            queue_depth: 4096,
            max_group_events: 20_000,
            max_event_bytes: 64 * 1024 * 1024,
            compress_from_bytes: 256,
            compression_level: 1,
            dictionary_samples: 2048,
            dictionary_bytes: 64 * 1024,
            tail_bytes: 4 * 1024 * 1024,
        }
    }
}

fn storage(error: impl std::fmt::Display) -> LogError {
    LogError::Storage(error.to_string())
}

fn segment_name(first: Offset) -> String {
    format!("{first:020}{SEGMENT_SUFFIX}")
}

/// What readers need of one segment: where it starts, how many durable
/// frames it holds, and where every `STRIDE`th of them begins.
struct Segment {
    first: Offset,
    file: Arc<File>,
    count: u64,
    /// File position of frame `k * STRIDE`.
    sparse: Vec<u64>,
    /// File length up to the end of the last durable frame.
    len: u64,
}

impl Segment {
    fn note_frame(&mut self, position: u64, frame_len: u64) {
        if self.count.is_multiple_of(STRIDE) {
            self.sparse.push(position);
        }
        self.count += 1;
        self.len = position + frame_len;
    }
}

/// Called with the duration of each sync of the embedded log.
type FlushObserver = Box<dyn Fn(Duration) + Send + Sync>;

struct Inner {
    segments: RwLock<Vec<Segment>>,
    dictionaries: Arc<Dictionaries>,
    flush_observer: std::sync::OnceLock<FlushObserver>,
    durable_end: AtomicU64,
    end_watch: watch::Receiver<Offset>,
    queue: mpsc::Sender<AppendRequest>,
    max_event_bytes: usize,
    tail: Mutex<Tail>,
}

/// The newest durable events, in memory: `events[k]` is the event at offset
/// `first + k`, and together they hold at most the configured bytes. The
/// writer adds a group's events before it moves the durable end past them,
/// so the tail reaches at least as far as the durable end whenever it holds
/// anything.
#[derive(Default)]
struct Tail {
    first: Offset,
    events: VecDeque<Arc<Vec<u8>>>,
    bytes: usize,
}

impl Tail {
    /// Adds `events`, appended from offset `first`, dropping the oldest held
    /// past `limit` bytes.
    fn extend(&mut self, first: Offset, events: &[Arc<Vec<u8>>], limit: usize) {
        if self.first + self.events.len() as Offset != first {
            self.events.clear();
            self.bytes = 0;
            self.first = first;
        }
        for event in events {
            self.events.push_back(event.clone());
            self.bytes += event.len();
        }
        while self.bytes > limit
            && let Some(oldest) = self.events.pop_front()
        {
            self.bytes -= oldest.len();
            self.first += 1;
        }
    }

    /// The events from `from` on, at most `max` of them and no more once
    /// they add up to `max_bytes` (the rule of `read_bounded`), if the tail
    /// holds the event at `from`.
    fn read(&self, from: Offset, max: u64, max_bytes: usize) -> Option<Vec<(Offset, Arc<Vec<u8>>)>> {
        let skip = usize::try_from(from.checked_sub(self.first)?).ok()?;
        if skip >= self.events.len() {
            return None;
        }
        let mut bytes = 0usize;
        let mut out = Vec::new();
        for (k, event) in self.events.iter().skip(skip).take(usize::try_from(max).unwrap_or(usize::MAX)).enumerate() {
            if bytes >= max_bytes {
                break;
            }
            bytes = bytes.saturating_add(event.len());
            out.push((from + k as Offset, event.clone()));
        }
        Some(out)
    }
}

/// The embedded [`EventLog`] on append-only segment files.
#[derive(Clone)]
pub struct FileEventLog {
    inner: Arc<Inner>,
}

impl FileEventLog {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail left by
    /// a crash. Must be called inside a tokio runtime.
    pub fn open(dir: &Path, config: FileEventLogConfig) -> Result<Self, LogError> {
        let lock = lock_dir(dir)?;
        let dictionaries = Arc::new(Dictionaries::load(dir, config.compression_level)?);
        let mut segments = recover(dir)?;
        if segments.is_empty() {
            segments.push(create_segment(dir, 0)?);
        }
        let end = segments.last().map_or(0, |s| s.first + s.count);
        let (end_sender, end_watch) = watch::channel(end);
        let (queue, receiver) = mpsc::channel(config.queue_depth.max(1));
        let inner = Arc::new(Inner {
            segments: RwLock::new(segments),
            dictionaries,
            flush_observer: std::sync::OnceLock::new(),
            durable_end: AtomicU64::new(end),
            end_watch,
            queue,
            max_event_bytes: config.max_event_bytes,
            tail: Mutex::new(Tail { first: end, ..Tail::default() }),
        });
        let writer = Writer {
            dir: dir.to_owned(),
            sampler: Sampler::new(config.dictionary_samples, config.compress_from_bytes),
            training: None,
            config,
            next: end,
            receiver,
            end_sender,
            inner: Arc::downgrade(&inner),
            poisoned: None,
            _lock: lock,
        };
        tokio::spawn(writer.run());
        Ok(Self { inner })
    }

    /// Has `observer` called with the duration of every sync (group
    /// commit) from now on; only the first observer set is kept.
    pub fn observe_flushes(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        let _ = self.inner.flush_observer.set(Box::new(observer));
    }

    /// The bytes of all segments, up to the end of their durable frames,
    /// and of the log's dictionaries.
    pub fn size_on_disk(&self) -> Option<u64> {
        let segments = self.inner.segments.read().ok()?;
        Some(segments.iter().map(|s| s.len).sum::<u64>() + self.inner.dictionaries.count_and_bytes().1)
    }

    /// How many dictionaries the log has trained for its events.
    pub fn dictionaries(&self) -> usize {
        self.inner.dictionaries.count_and_bytes().0
    }
}

/// Creates `dir` if need be and takes its lock, which is held for as long
/// as the returned file is open.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, LogError> {
    std::fs::create_dir_all(dir).map_err(storage)?;
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE)).map_err(storage)?;
    lock.try_lock()
        .map_err(|_| LogError::Storage(format!("the log in {} is open in another process", dir.display())))?;
    Ok(lock)
}

/// Removes every segment file in `dir` (what an interrupted copy from the
/// sled log left).
pub(crate) fn remove_segments(dir: &Path) -> Result<(), LogError> {
    if !dir.exists() {
        return Ok(());
    }
    for (_, path) in segment_files(dir).map_err(storage)? {
        std::fs::remove_file(path).map_err(storage)?;
    }
    Ok(())
}

fn segment_files(dir: &Path) -> std::io::Result<Vec<(Offset, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else { continue };
        if let Ok(first) = stem.parse::<Offset>() {
            files.push((first, path));
        }
    }
    files.sort_unstable_by_key(|(first, _)| *first);
    Ok(files)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(storage)
}

/// Makes `file` an empty segment: its header and nothing after, synced.
fn start_segment(file: &File) -> Result<(), LogError> {
    file.set_len(0).map_err(storage)?;
    file.write_all_at(MAGIC, 0).map_err(storage)?;
    file.sync_all().map_err(storage)
}

fn create_segment(dir: &Path, first: Offset) -> Result<Segment, LogError> {
    let path = dir.join(segment_name(first));
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(storage)?;
    start_segment(&file)?;
    sync_dir(dir)?;
    Ok(Segment { first, file: Arc::new(file), count: 0, sparse: Vec::new(), len: HEADER })
}

/// Writes `events` into new segment files in `dir` (which holds none),
/// from offset 0, syncing each segment; returns how many were written. For
/// filling a log from another store, before it is opened.
pub(crate) fn write_segments(
    dir: &Path,
    config: &FileEventLogConfig,
    events: impl Iterator<Item = Result<Vec<u8>, LogError>>,
) -> Result<Offset, LogError> {
    const FLUSH_BYTES: usize = 8 * 1024 * 1024;
    let mut next: Offset = 0;
    let mut segment = create_segment(dir, 0)?;
    let mut pending = Vec::new();
    for event in events {
        let event = event?;
        if event.len() > config.max_event_bytes {
            return Err(LogError::EventTooLarge { size: event.len(), limit: config.max_event_bytes });
        }
        encode_frame(&event, config, None, &mut pending)?;
        next += 1;
        if pending.len() >= FLUSH_BYTES || segment.len + pending.len() as u64 >= config.segment_bytes {
            segment.file.write_all_at(&pending, segment.len).map_err(storage)?;
            segment.len += pending.len() as u64;
            pending.clear();
        }
        if segment.len >= config.segment_bytes {
            segment.file.sync_data().map_err(storage)?;
            segment = create_segment(dir, next)?;
        }
    }
    segment.file.write_all_at(&pending, segment.len).map_err(storage)?;
    segment.file.sync_data().map_err(storage)?;
    Ok(next)
}

/// Scans the segments in `dir`, builds their indexes and cuts a torn tail
/// off the last one.
fn recover(dir: &Path) -> Result<Vec<Segment>, LogError> {
    let files = segment_files(dir).map_err(storage)?;
    let mut segments: Vec<Segment> = Vec::with_capacity(files.len());
    let last_index = files.len().saturating_sub(1);
    for (index, (first, path)) in files.into_iter().enumerate() {
        let is_last = index == last_index;
        if let Some(previous) = segments.last()
            && previous.first + previous.count != first
        {
            return Err(LogError::Storage(format!(
                "the log is corrupt: {} follows a segment that ends at offset {}",
                path.display(),
                previous.first + previous.count
            )));
        }
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(storage)?;
        let file_len = file.metadata().map_err(storage)?.len();
        let mut segment = Segment { first, file: Arc::new(file), count: 0, sparse: Vec::new(), len: HEADER };
        let mut magic = [0u8; 8];
        let header_ok = file_len >= HEADER && segment.file.read_exact_at(&mut magic, 0).is_ok() && &magic == MAGIC;
        if !header_ok {
            if is_last && file_len <= HEADER {
                // Created but never written: start it again.
                start_segment(&segment.file)?;
                segments.push(segment);
                continue;
            }
            return Err(LogError::Storage(format!("the log is corrupt: {} has no segment header", path.display())));
        }
        let mut reader = FrameReader::new(segment.file.clone(), HEADER, file_len);
        loop {
            let position = reader.position();
            if position == file_len {
                break;
            }
            match reader.next_frame(is_last) {
                Ok(frame_len) => segment.note_frame(position, frame_len),
                Err(problem) if is_last => {
                    tracing::warn!(
                        segment = %path.display(),
                        position,
                        dropped_bytes = file_len - position,
                        %problem,
                        "cutting off the log's unacknowledged tail"
                    );
                    segment.file.set_len(position).map_err(storage)?;
                    segment.file.sync_all().map_err(storage)?;
                    break;
                }
                Err(problem) => {
                    return Err(LogError::Storage(format!(
                        "the log is corrupt: {} at byte {position}: {problem}",
                        path.display()
                    )));
                }
            }
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// Reads frames forward from a position, through a buffer that never reads
/// past `limit`.
struct FrameReader {
    file: Arc<File>,
    position: u64,
    limit: u64,
    buffer: Vec<u8>,
    /// File position of `buffer[0]`.
    buffer_at: u64,
}

const READ_AHEAD: usize = 256 * 1024;

impl FrameReader {
    fn new(file: Arc<File>, position: u64, limit: u64) -> Self {
        Self { file, position, limit, buffer: Vec::new(), buffer_at: 0 }
    }

    fn position(&self) -> u64 {
        self.position
    }

    /// The `n` bytes at `at`, reading ahead when they are not buffered.
    fn bytes(&mut self, at: u64, n: usize) -> std::io::Result<&[u8]> {
        let buffered_end = self.buffer_at + self.buffer.len() as u64;
        if at < self.buffer_at || at + n as u64 > buffered_end {
            let ahead = usize::try_from(self.limit.saturating_sub(at)).unwrap_or(READ_AHEAD).min(READ_AHEAD);
            let want = n.max(ahead);
            self.buffer.resize(want, 0);
            let mut filled = 0;
            while filled < want {
                match self.file.read_at(&mut self.buffer[filled..], at + filled as u64) {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.buffer.truncate(filled);
            self.buffer_at = at;
            if filled < n {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "the frame is cut short"));
            }
        }
        let start = usize::try_from(at - self.buffer_at).map_err(std::io::Error::other)?;
        Ok(&self.buffer[start..start + n])
    }

    /// The body length and checksum of the frame at the reader's position,
    /// once its length says it fits before the reader's limit.
    fn frame_header(&mut self) -> Result<(usize, u32), String> {
        let at = self.position;
        let header = self.bytes(at, 8).map_err(|e| e.to_string())?;
        let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if length < FRAME_HEADER - 8 || at + 8 + length as u64 > self.limit {
            return Err(format!("a frame of {length} bytes cannot be here"));
        }
        Ok((length, crc))
    }

    /// The body of the frame at the reader's position, if it matches `crc`.
    fn checked_body(&mut self, length: usize, crc: u32) -> Result<&[u8], String> {
        let body = self.bytes(self.position + 8, length).map_err(|e| e.to_string())?;
        if crc32fast::hash(body) != crc {
            return Err("a frame's checksum does not match".to_owned());
        }
        Ok(body)
    }

    /// Steps over the next frame, checking its checksum when `check` says
    /// so, and returns its length.
    fn next_frame(&mut self, check: bool) -> Result<u64, String> {
        let (length, crc) = self.frame_header()?;
        if check {
            self.checked_body(length, crc)?;
        }
        self.position += 8 + length as u64;
        Ok(8 + length as u64)
    }

    /// Reads, checks and decodes the next frame.
    fn read_event(&mut self, dictionaries: &Dictionaries) -> Result<Vec<u8>, LogError> {
        let at = self.position;
        let corrupt = |what: &str| LogError::Storage(format!("the log is corrupt at byte {at} of a segment: {what}"));
        let (length, crc) = self.frame_header().map_err(|e| corrupt(&e))?;
        let body = self.checked_body(length, crc).map_err(|e| corrupt(&e))?;
        let flags = body[0];
        let raw_length = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let data = &body[5..];
        let event = if flags & FLAG_ZSTD != 0 {
            let event = if flags & FLAG_DICTIONARY != 0 {
                let id = crate::compression::dictionary_id(data);
                let dictionary = dictionaries.get(id).ok_or_else(|| {
                    corrupt(&format!("an event was compressed with dictionary {id}, which the log does not have"))
                })?;
                dictionary.decompress(data, raw_length)
            } else {
                crate::compression::decompress(data, raw_length)
            }
            .map_err(|e| corrupt(&e.to_string()))?;
            if event.len() != raw_length {
                return Err(corrupt("a compressed event has the wrong length"));
            }
            event
        } else {
            data.to_vec()
        };
        self.position = at + 8 + length as u64;
        Ok(event)
    }
}

/// Appends the frame of `event` to `out`, compressed with `dictionary`
/// when it is one a dictionary is for.
fn encode_frame(
    event: &[u8],
    config: &FileEventLogConfig,
    dictionary: Option<&crate::compression::Dictionary>,
    out: &mut Vec<u8>,
) -> Result<(), LogError> {
    let raw_length = u32::try_from(event.len()).map_err(storage)?;
    let compressed = if event.len() < config.compress_from_bytes {
        None
    } else if let Some(dictionary) = dictionary.filter(|_| event.len() <= dictionary::MAX_SAMPLE_BYTES) {
        dictionary.compress(event).ok().map(|c| (FLAG_ZSTD | FLAG_DICTIONARY, c))
    } else {
        crate::compression::compress(event, config.compression_level).ok().map(|c| (FLAG_ZSTD, c))
    };
    let (flags, data) = match &compressed {
        Some((flags, c)) if c.len() < event.len() => (*flags, c.as_slice()),
        _ => (0, event),
    };
    let length = u32::try_from(1 + 4 + data.len()).map_err(storage)?;
    let start = out.len();
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(flags);
    out.extend_from_slice(&raw_length.to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

struct Writer {
    dir: PathBuf,
    config: FileEventLogConfig,
    next: Offset,
    receiver: mpsc::Receiver<AppendRequest>,
    end_sender: watch::Sender<Offset>,
    inner: std::sync::Weak<Inner>,
    /// Events to train the next dictionary on.
    sampler: Sampler,
    /// The dictionary being trained, if one is.
    training: Option<tokio::task::JoinHandle<()>>,
    /// Why appends are refused: a sync failed, so what the kernel holds of
    /// the file can no longer be trusted until the log is reopened.
    poisoned: Option<String>,
    /// Held for as long as the writer runs.
    _lock: File,
}

impl Writer {
    async fn run(mut self) {
        while let Some(group) = group::next_group(&mut self.receiver, self.config.max_group_events).await {
            self.commit(group).await;
        }
        // The directory stays locked until a dictionary being written is.
        if let Some(training) = self.training.take() {
            let _ = training.await;
        }
    }

    /// Trains a dictionary on the events sampled when the log has none and
    /// the sample is full, or when a segment was started.
    fn train_when_due(&mut self, inner: &Arc<Inner>, rolled: bool) {
        if self.training.as_ref().is_some_and(|t| !t.is_finished()) || !self.sampler.is_full() {
            return;
        }
        if !rolled && inner.dictionaries.current().is_some() {
            return;
        }
        let samples = self.sampler.take();
        let dictionaries = inner.dictionaries.clone();
        let dir = self.dir.clone();
        let (bytes, level, offset) = (self.config.dictionary_bytes, self.config.compression_level, self.next);
        self.training = Some(tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let trained = crate::compression::Dictionary::train(&samples, bytes, level)
                .map_err(storage)
                .and_then(|dictionary| dictionaries.install(&dir, offset, dictionary));
            match trained {
                Ok(true) => tracing::info!(
                    offset,
                    samples = samples.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "trained a dictionary for the log's events"
                ),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "no dictionary for the log's events; they are compressed without a new one");
                }
            }
        }));
    }

    async fn commit(&mut self, group: Vec<AppendRequest>) {
        if let Some(reason) = &self.poisoned {
            for request in group {
                let _ = request.reply.send(Err(LogError::Storage(reason.clone())));
            }
            return;
        }
        let Some(inner) = self.inner.upgrade() else { return };
        let mut firsts = Vec::with_capacity(group.len());
        let mut next = self.next;
        for request in &group {
            firsts.push(next);
            next += request.events.len() as u64;
        }
        let (group, result) = {
            let config = self.config.clone();
            let dir = self.dir.clone();
            let inner = inner.clone();
            let first = self.next;
            tokio::task::spawn_blocking(move || {
                let dictionary = inner.dictionaries.current();
                let result = write_group(&dir, &config, &inner, dictionary.as_deref(), first, &group);
                (group, result)
            })
            .await
            .unwrap_or_else(|error| (Vec::new(), Err(WriteFailure::Poisoned(storage(error)))))
        };
        match result {
            Ok(Written { synced_in, rolled }) => {
                let mut appended = Vec::new();
                let mut replies = Vec::with_capacity(group.len());
                for (request, first) in group.into_iter().zip(firsts) {
                    appended.extend(request.events.into_iter().map(Arc::new));
                    replies.push((request.reply, first));
                }
                // Into the tail before the durable end moves past them: a
                // reader that sees the new end finds them there.
                if self.config.tail_bytes > 0 {
                    let mut tail = inner.tail.lock().unwrap_or_else(PoisonError::into_inner);
                    tail.extend(self.next, &appended, self.config.tail_bytes);
                }
                self.next = next;
                inner.durable_end.store(next, Ordering::Release);
                if let Some(observe) = inner.flush_observer.get() {
                    observe(synced_in);
                }
                self.end_sender.send_replace(next);
                for (reply, first) in replies {
                    let _ = reply.send(Ok(first));
                }
                // Sampled once answered: no caller waits for it.
                for event in &appended {
                    self.sampler.offer(event);
                }
                self.train_when_due(&inner, rolled);
            }
            Err(failure) => {
                let error = match failure {
                    WriteFailure::Unsynced(error) => error,
                    WriteFailure::Poisoned(error) => {
                        self.poisoned = Some(format!("{error}; the log refuses appends until it is reopened"));
                        error
                    }
                };
                tracing::error!(%error, "event log append failed");
                for request in group {
                    let _ = request.reply.send(Err(LogError::Storage(error.to_string())));
                }
            }
        }
    }
}

enum WriteFailure {
    /// Nothing of the group is in the file any more; later appends may go on.
    Unsynced(LogError),
    /// A sync failed or a partial write could not be cut off.
    Poisoned(LogError),
}

/// What a group's write did.
struct Written {
    synced_in: Duration,
    /// Whether it started a segment.
    rolled: bool,
}

/// Writes one group's frames (rolling to a new segment first when the
/// active one is full), syncs, and publishes the frames to readers.
fn write_group(
    dir: &Path,
    config: &FileEventLogConfig,
    inner: &Inner,
    dictionary: Option<&crate::compression::Dictionary>,
    first: Offset,
    group: &[AppendRequest],
) -> Result<Written, WriteFailure> {
    let mut bytes = Vec::new();
    // Start and length of each frame within `bytes`.
    let mut frames = Vec::new();
    for event in group.iter().flat_map(|r| &r.events) {
        let start = bytes.len();
        encode_frame(event, config, dictionary, &mut bytes).map_err(WriteFailure::Unsynced)?;
        frames.push((start as u64, (bytes.len() - start) as u64));
    }
    let active = {
        let segments = inner.segments.read().map_err(|_| WriteFailure::Unsynced(storage("lock poisoned")))?;
        segments.last().filter(|s| s.len < config.segment_bytes || s.count == 0).map(|s| (s.file.clone(), s.len))
    };
    let rolled = active.is_none();
    let (file, at) = match active {
        Some(active) => active,
        None => {
            let segment = create_segment(dir, first).map_err(WriteFailure::Unsynced)?;
            let active = (segment.file.clone(), segment.len);
            inner.segments.write().map_err(|_| WriteFailure::Unsynced(storage("lock poisoned")))?.push(segment);
            active
        }
    };
    if let Err(error) = file.write_all_at(&bytes, at) {
        // Cut off whatever part of the group reached the file.
        return Err(match file.set_len(at) {
            Ok(()) => WriteFailure::Unsynced(storage(error)),
            Err(_) => WriteFailure::Poisoned(storage(error)),
        });
    }
    let started = std::time::Instant::now();
    if let Err(error) = file.sync_data() {
        let _ = file.set_len(at);
        return Err(WriteFailure::Poisoned(storage(error)));
    }
    let synced_in = started.elapsed();
    let mut segments = inner.segments.write().map_err(|_| WriteFailure::Poisoned(storage("lock poisoned")))?;
    let active = segments.last_mut().ok_or_else(|| WriteFailure::Poisoned(storage("no active segment")))?;
    for (start, length) in frames {
        active.note_frame(at + start, length);
    }
    Ok(Written { synced_in, rolled })
}

/// Where a read starts in one segment and how many events it takes there.
struct Span {
    file: Arc<File>,
    position: u64,
    /// The end of the segment's durable frames.
    limit: u64,
    skip: u64,
    first: Offset,
    take: u64,
}

#[async_trait]
impl EventLog for FileEventLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        group::submit(&self.inner.queue, &self.inner.durable_end, self.inner.max_event_bytes, events).await
    }

    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        let end = self.inner.durable_end.load(Ordering::Acquire);
        if from >= end || max == 0 {
            return Ok(Vec::new());
        }
        let want = (max as u64).min(end - from);
        let held = self.inner.tail.lock().unwrap_or_else(PoisonError::into_inner).read(from, want, max_bytes);
        if let Some(held) = held {
            // Copied once the lock is let go: the writer waits for it.
            return Ok(held.into_iter().map(|(offset, event)| LogRecord { offset, payload: event.to_vec() }).collect());
        }
        let spans = {
            let segments = self.inner.segments.read().map_err(|_| storage("lock poisoned"))?;
            let mut spans = Vec::new();
            let mut at = from;
            let mut index = segments.partition_point(|s| s.first <= at).saturating_sub(1);
            while at < from + want {
                let Some(segment) = segments.get(index) else { break };
                let within = at - segment.first;
                if within < segment.count {
                    let take = (segment.count - within).min(from + want - at);
                    let mark = within / STRIDE;
                    let position = segment.sparse.get(mark as usize).copied().unwrap_or(HEADER);
                    spans.push(Span {
                        file: segment.file.clone(),
                        position,
                        limit: segment.len,
                        skip: within - mark * STRIDE,
                        first: at,
                        take,
                    });
                    at += take;
                }
                index += 1;
            }
            spans
        };
        let dictionaries = self.inner.dictionaries.clone();
        tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            let mut bytes = 0usize;
            for span in spans {
                let mut reader = FrameReader::new(span.file, span.position, span.limit);
                for _ in 0..span.skip {
                    reader
                        .next_frame(false)
                        .map_err(|problem| LogError::Storage(format!("the log is corrupt in a segment: {problem}")))?;
                }
                for k in 0..span.take {
                    if bytes >= max_bytes {
                        return Ok(records);
                    }
                    let payload = reader.read_event(&dictionaries)?;
                    bytes = bytes.saturating_add(payload.len());
                    records.push(LogRecord { offset: span.first + k, payload });
                }
            }
            Ok(records)
        })
        .await
        .map_err(storage)?
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        Ok(self.inner.durable_end.load(Ordering::Acquire))
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        group::wait_beyond(&self.inner.end_watch, &self.inner.durable_end, offset, timeout).await
    }
}
