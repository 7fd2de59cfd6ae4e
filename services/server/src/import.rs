//! `lrs import`: bulk loading of statements from a file into a stopped
//! store, with the API's validation, in large appends.
//!
//! - The file is NDJSON (one statement per line) or one JSON array of
//!   statements; [`Items`] splits either without reading it whole.
//! - Each statement is checked and completed exactly as `POST /statements`
//!   does ([`Prepare`]). A statement without an `id` gets one derived from
//!   the file's name, its position and its bytes, so importing the same
//!   file again stores nothing twice.
//! - Statements are appended through the store's single writer in batches,
//!   so conflicts are decided as for the API: a batch refused for a
//!   conflicting id is retried one statement at a time, and only the
//!   conflicting ones are rejected.
//! - After every acknowledged batch a checkpoint (byte offset, counts,
//!   reasons) is written under `DATA_DIR/imports/`; an interrupted import
//!   resumes there. A rejected statement is reported by its line (or array
//!   element) number and reason, never by its content.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use lrs_xapi::XapiVersion;

use crate::app::AppState;
use crate::error::ApiError;
use crate::sequencer::{Refused, StatementBatch};
use crate::statements::{Prepare, Prepared, check_attachments_without_parts, parse_json};

/// The largest statement accepted from a file (larger ones are rejected).
pub const MAX_ITEM_BYTES: usize = 1024 * 1024;
/// Rejected examples kept in the summary.
const MAX_EXAMPLES: usize = 20;

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub file: PathBuf,
    pub version: XapiVersion,
    /// Statements per append.
    pub batch_size: usize,
    /// The `authority` recorded on imported statements.
    pub authority: Value,
    /// Ignore an earlier checkpoint and start from the beginning.
    pub restart: bool,
}

/// Where an import stands; also the checkpoint's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportProgress {
    pub file: String,
    /// The file's size when the import started.
    pub file_bytes: u64,
    /// Bytes of the file dealt with (stored or rejected).
    pub offset: u64,
    /// Lines (or array elements) dealt with.
    pub items: u64,
    /// Statements stored, or found already stored with the same content.
    pub accepted: u64,
    pub rejected: u64,
    /// Rejections by reason.
    pub reasons: BTreeMap<String, u64>,
    /// The first rejections: (line or element number, reason).
    pub examples: Vec<(u64, String)>,
    /// Whether the whole file has been dealt with.
    pub complete: bool,
    /// The checkpoint this import resumed from, in bytes (0 when fresh).
    #[serde(default)]
    pub resumed_at: u64,
}

impl ImportProgress {
    fn reject(&mut self, number: u64, reason: String) {
        self.rejected += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push((number, reason.clone()));
        }
        *self.reasons.entry(reason).or_default() += 1;
    }
}

/// What the caller is told while the import runs.
pub enum ImportEvent<'a> {
    /// After each acknowledged batch.
    Stored(&'a ImportProgress),
    /// While waiting for the projections after the last batch: events still
    /// to apply.
    Projecting { behind: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("cannot write the checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("the store refused the import: {0} (the checkpoint keeps what was stored; run the import again to resume)")]
    Store(ApiError),
}

/// One statement's text in the file.
struct Item {
    /// 1-based line number (NDJSON) or element number (array).
    number: u64,
    /// Byte offset just after the item.
    end: u64,
    bytes: Vec<u8>,
    too_large: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Lines,
    Array,
}

/// Splits a file into statements: lines, or the elements of one array.
struct Items {
    reader: BufReader<File>,
    layout: Layout,
    position: u64,
    number: u64,
    finished: bool,
}

impl Items {
    fn open(path: &Path, from: u64, number: u64) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let layout = detect_layout(&mut file)?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut position = from;
        if from == 0 && layout == Layout::Array {
            // Step over the opening bracket (and what precedes it).
            let mut skipped = Vec::new();
            reader.read_until(b'[', &mut skipped)?;
            position = skipped.len() as u64;
        } else {
            reader.seek(SeekFrom::Start(from))?;
        }
        Ok(Self { reader, layout, position, number, finished: false })
    }

    fn next_item(&mut self) -> std::io::Result<Option<Item>> {
        if self.finished {
            return Ok(None);
        }
        match self.layout {
            Layout::Lines => self.next_line(),
            Layout::Array => self.next_element(),
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Item>> {
        loop {
            let mut bytes = Vec::new();
            let read = self.reader.read_until(b'\n', &mut bytes)?;
            if read == 0 {
                self.finished = true;
                return Ok(None);
            }
            self.position += read as u64;
            self.number += 1;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let too_large = bytes.len() > MAX_ITEM_BYTES;
            if too_large {
                bytes = Vec::new();
            }
            return Ok(Some(Item { number: self.number, end: self.position, bytes, too_large }));
        }
    }

    fn next_byte(&mut self) -> std::io::Result<Option<u8>> {
        let buffer = self.reader.fill_buf()?;
        let Some(&byte) = buffer.first() else { return Ok(None) };
        self.reader.consume(1);
        self.position += 1;
        Ok(Some(byte))
    }

    /// The next element of the array: skips separators, then scans one JSON
    /// value, tracking strings and nesting.
    fn next_element(&mut self) -> std::io::Result<Option<Item>> {
        let first = loop {
            match self.next_byte()? {
                None | Some(b']') => {
                    self.finished = true;
                    return Ok(None);
                }
                Some(byte) if byte.is_ascii_whitespace() || byte == b',' => continue,
                Some(byte) => break byte,
            }
        };
        let mut bytes = vec![first];
        let mut depth = i64::from(first == b'{' || first == b'[');
        let (mut in_string, mut escaped, mut too_large) = (first == b'"', false, false);
        let scalar = depth == 0 && !in_string;
        loop {
            let Some(byte) = self.next_byte()? else {
                self.finished = true;
                break;
            };
            if scalar {
                // A number or literal ends at a separator.
                if byte == b']' {
                    self.finished = true;
                }
                if byte == b',' || byte == b']' || byte.is_ascii_whitespace() {
                    break;
                }
            }
            if bytes.len() < MAX_ITEM_BYTES {
                bytes.push(byte);
            } else {
                too_large = true;
            }
            if scalar {
                continue;
            }
            if in_string {
                match (escaped, byte) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                if !in_string && depth == 0 {
                    break;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
        self.number += 1;
        if too_large {
            bytes.clear();
        }
        Ok(Some(Item { number: self.number, end: self.position, bytes, too_large }))
    }
}

/// An array when the first byte that is not white space (or a byte-order
/// mark) is `[`, else lines.
fn detect_layout(file: &mut File) -> std::io::Result<Layout> {
    use std::io::Read;
    let mut head = [0u8; 4096];
    let read = file.read(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    let text = head[..read].strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head[..read]);
    Ok(match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Layout::Array,
        _ => Layout::Lines,
    })
}

/// The id of a statement the file gives without one: the same for the same
/// file, position and bytes, so a repeated import repeats nothing.
fn derived_id(file: &str, number: u64, bytes: &[u8]) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"lrs import\0")
        .chain_update(file.as_bytes())
        .chain_update(number.to_be_bytes())
        .chain_update(bytes)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x80; // version 8: custom
    id[8] = (id[8] & 0x3f) | 0x80; // RFC 4122 variant
    Uuid::from_bytes(id)
}

fn checkpoint_path(data_dir: &Path, file: &str) -> PathBuf {
    let digest = Sha256::digest(file.as_bytes());
    data_dir.join("imports").join(format!("{}.json", hex::encode(&digest[..12])))
}

fn write_checkpoint(path: &Path, progress: &ImportProgress) -> Result<(), ImportError> {
    let failed = |e: std::io::Error| ImportError::Checkpoint { path: path.to_owned(), reason: e.to_string() };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(progress)
        .map_err(|e| ImportError::Checkpoint { path: path.to_owned(), reason: e.to_string() })?;
    std::fs::write(&temporary, text).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

/// A batch read and prepared from the file.
struct PreparedBatch {
    statements: Vec<(u64, Prepared)>,
    rejected: Vec<(u64, String)>,
    /// Statements that repeat one earlier in the same batch.
    repeats: u64,
    end: u64,
    items: u64,
    finished: bool,
}

fn reason_of(error: &ApiError) -> String {
    match error {
        ApiError::BadRequest { message, path: Some(path) } if !path.is_empty() => format!("{path}: {message}"),
        other => other.to_string(),
    }
}

/// Reads and prepares up to `size` statements.
fn prepare_batch(items: &mut Items, context: &Prepare<'_>, file: &str, size: usize) -> std::io::Result<PreparedBatch> {
    let mut batch = PreparedBatch {
        statements: Vec::with_capacity(size),
        rejected: Vec::new(),
        repeats: 0,
        end: 0,
        items: 0,
        finished: false,
    };
    let mut in_batch: std::collections::HashMap<Uuid, [u8; 32]> = std::collections::HashMap::new();
    while batch.statements.len() + batch.rejected.len() < size {
        let Some(item) = items.next_item()? else {
            batch.finished = true;
            break;
        };
        batch.items += 1;
        batch.end = item.end;
        if item.too_large {
            batch.rejected.push((item.number, format!("the statement is larger than {MAX_ITEM_BYTES} bytes")));
            continue;
        }
        let prepared = parse_json(&item.bytes).and_then(|value| {
            if !value.is_object() {
                return Err(ApiError::bad_request("each line or element must be one statement object"));
            }
            context.prepare(value, "", || derived_id(file, item.number, &item.bytes), check_attachments_without_parts)
        });
        match prepared {
            // One append may not hold one id twice: a repeat within the
            // batch is dropped, a different statement with it is refused.
            Ok(prepared) => match in_batch.get(&prepared.id) {
                Some(fingerprint) if *fingerprint == prepared.fingerprint => batch.repeats += 1,
                Some(_) => batch.rejected.push((
                    item.number,
                    format!("a different statement with id {} is earlier in the file", prepared.id),
                )),
                None => {
                    in_batch.insert(prepared.id, prepared.fingerprint);
                    batch.statements.push((item.number, prepared));
                }
            },
            Err(error) => batch.rejected.push((item.number, reason_of(&error))),
        }
    }
    if batch.end == 0 {
        batch.end = items.position;
    }
    Ok(batch)
}

/// Stores statements through the writer, waiting while it is busy; on a
/// conflict, stores them one by one and returns the conflicting ones.
async fn store_batch(state: &AppState, statements: Vec<(u64, Prepared)>) -> Result<Vec<(u64, String)>, ApiError> {
    let numbers: Vec<u64> = statements.iter().map(|(number, _)| *number).collect();
    let (fingerprints, statements) = statements.into_iter().map(|(_, p)| (p.fingerprint, p.statement)).unzip();
    let batch = StatementBatch { statements, fingerprints, attachments: Vec::new() };
    let conflict = |error: &ApiError| matches!(error, ApiError::Conflict(_) | ApiError::BadRequest { .. });
    match store_waiting(state, batch).await {
        Ok(()) => Ok(Vec::new()),
        Err(Refused { error, batch: Some(batch) }) if conflict(&error) && numbers.len() > 1 => {
            let mut refused = Vec::new();
            let StatementBatch { statements, fingerprints, .. } = batch;
            for ((number, statement), fingerprint) in numbers.into_iter().zip(statements).zip(fingerprints) {
                let one = StatementBatch {
                    statements: vec![statement],
                    fingerprints: vec![fingerprint],
                    attachments: Vec::new(),
                };
                match store_waiting(state, one).await {
                    Ok(()) => {}
                    Err(Refused { error, .. }) if conflict(&error) => refused.push((number, reason_of(&error))),
                    Err(other) => return Err(other.error),
                }
            }
            Ok(refused)
        }
        // One statement refused: that one is rejected. (A batch of more
        // comes back with its conflict; were it not, the import stops
        // rather than count statements it did not store.)
        Err(Refused { error, .. }) if conflict(&error) && numbers.len() == 1 => {
            Ok(numbers.first().map(|number| (*number, reason_of(&error))).into_iter().collect())
        }
        Err(other) => Err(other.error),
    }
}

/// Hands `batch` to the writer, retrying while it says it is catching up
/// (503) and waiting for the projections to move rather than spinning. A
/// refused batch comes back from the writer whole, so no attempt copies it.
async fn store_waiting(state: &AppState, mut batch: StatementBatch) -> Result<(), Refused> {
    let mut applied = state.views.subscribe();
    let mut waited = Duration::ZERO;
    loop {
        match state.writer.store_statements_or_back(batch).await {
            Ok(_) => return Ok(()),
            Err(Refused { error: ApiError::Unavailable(reason), batch: Some(back) })
                if waited < Duration::from_secs(600) =>
            {
                batch = back;
                let started = Instant::now();
                if tokio::time::timeout(Duration::from_secs(1), applied.changed()).await.is_ok_and(|r| r.is_err()) {
                    return Err(Refused { error: ApiError::Unavailable(reason), batch: Some(batch) });
                }
                waited += started.elapsed();
            }
            Err(refused) => return Err(refused),
        }
    }
}

/// Imports `options.file` into the store behind `state` (whose data
/// directory is `data_dir`), reporting progress to `report`.
pub async fn import(
    state: &AppState,
    data_dir: &Path,
    options: &ImportOptions,
    mut report: impl FnMut(ImportEvent<'_>),
) -> Result<ImportProgress, ImportError> {
    let file_error = |e: std::io::Error| ImportError::File { path: options.file.clone(), reason: e.to_string() };
    let canonical = std::fs::canonicalize(&options.file).map_err(file_error)?;
    let name = canonical.to_string_lossy().into_owned();
    let size = std::fs::metadata(&canonical).map_err(file_error)?.len();
    let checkpoint = checkpoint_path(data_dir, &name);
    let earlier: Option<ImportProgress> = if options.restart {
        None
    } else {
        std::fs::read(&checkpoint).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok())
    };
    let mut progress = match earlier {
        // A file that shrank is another file: start again.
        Some(earlier) if earlier.offset <= size => {
            ImportProgress { file_bytes: size, resumed_at: earlier.offset, complete: false, ..earlier }
        }
        _ => ImportProgress { file: name.clone(), file_bytes: size, ..ImportProgress::default() },
    };
    let mut items = Items::open(&canonical, progress.offset, progress.items).map_err(file_error)?;
    let batch_size = options.batch_size.clamp(1, 10_000);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<PreparedBatch>>(2);
    let reader = {
        let validator = state.validator.clone();
        let (version, authority, name) = (options.version, options.authority.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            loop {
                let context =
                    Prepare { validator: &validator, version, authority: &authority, stored: chrono::Utc::now() };
                let batch = prepare_batch(&mut items, &context, &name, batch_size);
                let finished = batch.as_ref().map_or(true, |b| b.finished);
                if sender.blocking_send(batch).is_err() || finished {
                    return;
                }
            }
        })
    };
    while let Some(batch) = receiver.recv().await {
        let batch = batch.map_err(file_error)?;
        let count = batch.statements.len() as u64;
        let mut refused = Vec::new();
        if !batch.statements.is_empty() {
            keep_close(state).await;
            refused = store_batch(state, batch.statements).await.map_err(ImportError::Store)?;
        }
        progress.accepted += count + batch.repeats - refused.len() as u64;
        for (number, reason) in batch.rejected.into_iter().chain(refused) {
            progress.reject(number, reason);
        }
        progress.items += batch.items;
        progress.offset = progress.offset.max(batch.end);
        progress.complete = batch.finished;
        write_checkpoint(&checkpoint, &progress)?;
        report(ImportEvent::Stored(&progress));
    }
    let _ = reader.await;
    progress.examples.sort();
    wait_for_projections(state, &mut report).await;
    Ok(progress)
}

/// How long an import waits for the projections before appending anyway
/// (the writer then refuses while they lag too far, and the import waits
/// for that instead).
const KEEP_CLOSE_AT_MOST: Duration = Duration::from_secs(10);

/// Waits until the events the writer handed to the projections, decoded,
/// and not both applied yet fill at most half the handoff. So the writer
/// stays as close to the slower projection as a batch or two, the
/// projections always have the next event to apply, and the handoff still
/// holds it, decoded, when they reach it. As far ahead as the writer
/// allows (200,000 statements), its events had left the handoff by then,
/// and the projections parsed them again (about a tenth of an import's
/// time).
async fn keep_close(state: &AppState) {
    let Some(handoff) = state.views.event_source().handoff() else {
        return;
    };
    let deadline = tokio::time::Instant::now() + KEEP_CLOSE_AT_MOST;
    let (mut views, mut hub) = (state.views.subscribe(), state.hub.subscribe());
    // A projection far behind (the Learning Hub views rebuilt while an
    // import runs) is not near what the handoff holds: waiting for it
    // would only slow the import.
    while handoff.held().1 > handoff.limit_bytes() / 2 && handoff.takers_near() {
        if state.hub.applied_offset() < state.views.applied_offset() {
            // It may be holding a small batch, waiting for more.
            state.hub.hurry();
        }
        let moved = tokio::select! {
            moved = views.changed() => moved.is_ok(),
            moved = hub.changed() => moved.is_ok(),
            _ = tokio::time::sleep_until(deadline) => false,
        };
        if !moved {
            return;
        }
    }
}

/// Waits until both projections have applied the whole log.
async fn wait_for_projections(state: &AppState, report: &mut impl FnMut(ImportEvent<'_>)) {
    let Ok(end) = state.log.end_offset().await else { return };
    loop {
        let behind = end.saturating_sub(state.views.applied_offset().min(state.hub.applied_offset()));
        report(ImportEvent::Projecting { behind });
        if crate::embedded::caught_up(&state.views, Some(&state.hub), end, Duration::from_millis(500)).await {
            report(ImportEvent::Projecting { behind: 0 });
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<(u64, String)> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("items");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let mut items = Items::open(&path, 0, 0).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        while let Some(item) = items.next_item().unwrap_or_else(|e| panic!("{e}")) {
            out.push((item.number, String::from_utf8_lossy(&item.bytes).into_owned()));
        }
        out
    }

    #[test]
    fn lines_skip_blank_ones_and_keep_numbers() {
        assert_eq!(
            split("{\"a\":1}\n\n{\"b\":\"x\\n\"}\n"),
            vec![(1, "{\"a\":1}\n".into()), (3, "{\"b\":\"x\\n\"}\n".into())]
        );
    }

    #[test]
    fn array_elements_are_split_whatever_their_content() {
        let text = " [ {\"a\":\"],}\\\"\"} ,{\"b\":[1,{\"c\":2}]},\n 7, \"s\" ,[]]";
        assert_eq!(
            split(text),
            vec![
                (1, "{\"a\":\"],}\\\"\"}".into()),
                (2, "{\"b\":[1,{\"c\":2}]}".into()),
                (3, "7".into()),
                (4, "\"s\"".into()),
                (5, "[]".into())
            ]
        );
        assert_eq!(split("[]"), Vec::<(u64, String)>::new());
        assert_eq!(split("[{\"a\":1}"), vec![(1, "{\"a\":1}".into())], "a truncated array keeps what is whole");
    }

    #[test]
    fn derived_ids_depend_on_file_position_and_content() {
        let one = derived_id("f", 1, b"{}");
        assert_eq!(one, derived_id("f", 1, b"{}"));
        assert_ne!(one, derived_id("f", 2, b"{}"));
        assert_ne!(one, derived_id("g", 1, b"{}"));
        assert_eq!(one.get_version_num(), 8);
    }
}
