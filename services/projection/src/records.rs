//! Statement records in an append-only file beside the views' tree, and
//! where each is in a second file, of slots by sequence.
//!
//! A record is written once, when its statement is stored (and again, as a
//! new copy, in the rare case a later statement adds to the facets it
//! inherits by StatementRef). Statement `n` (its position's sequence) has
//! the twelve bytes at `12 n` of the slot file: where its record is
//! ([`RecordPointer`]). So finding a record by position reads no sled key,
//! and the tree holds no key per statement for it: sled keeps an entry in
//! memory for every page of the tree, and pages split past sixteen keys, so
//! keys per statement are memory as the store grows.
//!
//! Each record in the record file is its length (u32, big-endian), the
//! CRC-32 of its bytes, then the bytes. The views' bookkeeping, written in
//! the same sled batch as the rest of a batch, says how much of the record
//! file written batches point into (the committed length) and how many
//! statements there are (so how much of the slot file is committed). A
//! batch's records and its new statements' slots are written at the
//! committed lengths before its sled batch, so a reader that finds a
//! statement in the tree finds its slot and its record. A batch whose sled
//! write fails leaves bytes past the committed lengths that nothing
//! reaches, which the next batch overwrites and an open cuts off. Record
//! bytes never change once committed, so readers need no lock.
//!
//! A record written again for a statement of an earlier batch gets a new
//! copy in the record file, its pointer under its sequence in the tree
//! ([`crate::keys::rewritten`]) in the batch, and, once the batch is
//! written, its slot overwritten in place; until then readers find the
//! older copy, which stays whole. Opening the views writes those pointers
//! to their slots again, in case the process stopped in between.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::views::ViewsError;

/// Bytes before each record in the file: its length and its CRC-32.
const HEADER: usize = 8;

/// The longest record the file holds (a guard against a corrupt length).
const MAX_RECORD: u32 = 64 << 20;

/// Where a record is: the offset of its header in the file, and the length
/// of its bytes. This is what a statement's slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordPointer {
    offset: u64,
    len: u32,
}

impl RecordPointer {
    pub(crate) const LEN: usize = 12;

    pub(crate) fn to_bytes(self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, ViewsError> {
        let corrupt = || ViewsError::Corrupt("statement record pointer".to_owned());
        let (offset, len) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let len: [u8; 4] = len.try_into().map_err(|_| corrupt())?;
        Ok(Self { offset: u64::from_be_bytes(*offset), len: u32::from_be_bytes(len) })
    }

    /// Where the record's file entry ends.
    #[cfg(test)]
    fn end(self) -> u64 {
        self.offset + HEADER as u64 + u64::from(self.len)
    }
}

/// Bytes of a slot: a [`RecordPointer`].
const SLOT: u64 = RecordPointer::LEN as u64;

/// The file of statement records, and the slots that say where each
/// statement's is.
pub(crate) struct RecordFile {
    file: File,
    slots: File,
}

impl RecordFile {
    /// Opens (or creates) the record file at `path` and the slot file at
    /// `slots`; [`Self::recover`] then cuts them back to what the tree says
    /// was committed.
    pub(crate) fn open(path: &Path, slots: &Path) -> io::Result<Self> {
        let open =
            |path: &Path| std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path);
        Ok(Self { file: open(path)?, slots: open(slots)? })
    }

    /// Files gone when dropped (for views that are themselves temporary).
    pub(crate) fn temporary() -> io::Result<Self> {
        Ok(Self { file: tempfile::tempfile()?, slots: tempfile::tempfile()? })
    }

    /// Cuts the files back to `committed` bytes of records and `statements`
    /// slots (as the views' bookkeeping says), dropping what batches whose
    /// sled write never happened left past them. Returns false, changing
    /// nothing, if either is shorter than that: records or slots the tree
    /// relies on were lost (the machine stopped before the file reached the
    /// disk), and the views must be rebuilt.
    pub(crate) fn recover(&self, committed: u64, statements: u64) -> io::Result<bool> {
        let slots_committed = statements.saturating_mul(SLOT);
        let len = self.file.metadata()?.len();
        let slots_len = self.slots.metadata()?.len();
        if len < committed || slots_len < slots_committed {
            return Ok(false);
        }
        if len > committed {
            self.file.set_len(committed)?;
        }
        if slots_len > slots_committed {
            self.slots.set_len(slots_committed)?;
        }
        Ok(true)
    }

    /// Empties the files (the views are being rebuilt).
    pub(crate) fn clear(&self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.slots.set_len(0)
    }

    /// Writes a batch's records and its new statements' slots (at the
    /// committed lengths they were gathered from). The slots of statements
    /// of earlier batches it wrote again are written by
    /// [`Self::write_rewritten`], once the batch is.
    pub(crate) fn write(&self, appending: &Appending) -> io::Result<()> {
        if !appending.bytes.is_empty() {
            self.file.write_all_at(&appending.bytes, appending.base)?;
        }
        if !appending.slots.is_empty() {
            self.slots.write_all_at(&appending.slots, appending.first_sequence.saturating_mul(SLOT))?;
        }
        Ok(())
    }

    /// Points the slots of statements of earlier batches at the records a
    /// written batch wrote for them again (see the module's comment).
    pub(crate) fn write_rewritten(&self, appending: &Appending) -> io::Result<()> {
        for (sequence, pointer) in &appending.rewritten {
            self.write_slot(*sequence, *pointer)?;
        }
        Ok(())
    }

    /// Writes one slot in place.
    pub(crate) fn write_slot(&self, sequence: u64, pointer: RecordPointer) -> io::Result<()> {
        self.slots.write_all_at(&pointer.to_bytes(), sequence.saturating_mul(SLOT))
    }

    /// Makes the files' committed bytes durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.slots.sync_data()
    }

    /// Where the record of statement `sequence` is, as its slot says.
    pub(crate) fn pointer(&self, sequence: u64) -> Result<RecordPointer, ViewsError> {
        let mut slot = [0u8; RecordPointer::LEN];
        self.slots
            .read_exact_at(&mut slot, sequence.saturating_mul(SLOT))
            .map_err(|e| ViewsError::Corrupt(format!("the slot of statement record {sequence}: {e}")))?;
        RecordPointer::from_bytes(&slot)
    }

    /// The record of statement `sequence`. A slot being written again as
    /// it is read (a record written again) can be read half old, half new;
    /// the record it names then fails its check, and the slot is read once
    /// more.
    pub(crate) fn record(&self, sequence: u64) -> Result<Vec<u8>, ViewsError> {
        let pointer = self.pointer(sequence)?;
        match self.read(pointer) {
            Err(ViewsError::Corrupt(error)) => match self.pointer(sequence)? {
                again if again != pointer => self.read(again),
                _ => Err(ViewsError::Corrupt(error)),
            },
            read => read,
        }
    }

    /// The record at `pointer`, checked against its header.
    pub(crate) fn read(&self, pointer: RecordPointer) -> Result<Vec<u8>, ViewsError> {
        if pointer.len > MAX_RECORD {
            return Err(corrupt(pointer, "its length is implausible"));
        }
        let mut entry = vec![0u8; HEADER + pointer.len as usize];
        self.file.read_exact_at(&mut entry, pointer.offset).map_err(|e| corrupt(pointer, &e.to_string()))?;
        let record = entry.split_off(HEADER);
        check(pointer, &entry, &record)?;
        Ok(record)
    }
}

fn corrupt(pointer: RecordPointer, reason: &str) -> ViewsError {
    ViewsError::Corrupt(format!("statement record at byte {} of the record file: {reason}", pointer.offset))
}

/// Checks a record against its header.
fn check(pointer: RecordPointer, header: &[u8], record: &[u8]) -> Result<(), ViewsError> {
    let mut expected = [0u8; HEADER];
    expected[..4].copy_from_slice(&pointer.len.to_be_bytes());
    expected[4..].copy_from_slice(&crc32fast::hash(record).to_be_bytes());
    if header != expected {
        return Err(corrupt(pointer, "its length or checksum does not match"));
    }
    Ok(())
}

/// The records a batch appends and the slots it writes, held until the
/// batch is written.
pub(crate) struct Appending {
    /// Where the first record goes: the committed length.
    base: u64,
    bytes: Vec<u8>,
    /// The sequence of the first statement the batch stores: the committed
    /// number of slots.
    first_sequence: u64,
    /// The slots of the statements the batch stores, from `first_sequence`.
    slots: Vec<u8>,
    /// Statements of earlier batches whose records it wrote again, with
    /// where the new copy is.
    rewritten: std::collections::BTreeMap<u64, RecordPointer>,
}

impl Appending {
    pub(crate) fn new(base: u64, first_sequence: u64) -> Self {
        Self { base, bytes: Vec::new(), first_sequence, slots: Vec::new(), rewritten: Default::default() }
    }

    /// Adds a record, returning where it will be.
    fn push(&mut self, record: &[u8]) -> Result<RecordPointer, ViewsError> {
        let len = u32::try_from(record.len())
            .ok()
            .filter(|len| *len <= MAX_RECORD)
            .ok_or_else(|| ViewsError::Corrupt(format!("a statement record of {} bytes", record.len())))?;
        let pointer = RecordPointer { offset: self.end(), len };
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(&crc32fast::hash(record).to_be_bytes());
        self.bytes.extend_from_slice(record);
        Ok(pointer)
    }

    /// The sequence of the next statement stored.
    fn next_sequence(&self) -> u64 {
        self.first_sequence + (self.slots.len() as u64) / SLOT
    }

    /// Adds the record of statement `sequence`: the next one stored, or
    /// one stored before, written again. Returns where it will be, and
    /// whether the statement is of an earlier batch (its pointer must then
    /// go in the tree too, under [`crate::keys::rewritten`]).
    pub(crate) fn put(&mut self, sequence: u64, record: &[u8]) -> Result<(RecordPointer, bool), ViewsError> {
        let next = self.next_sequence();
        if sequence > next {
            return Err(ViewsError::Corrupt(format!("statement record {sequence} written before record {next}")));
        }
        let pointer = self.push(record)?;
        if sequence == next {
            self.slots.extend_from_slice(&pointer.to_bytes());
            return Ok((pointer, false));
        }
        match sequence.checked_sub(self.first_sequence).and_then(|index| usize::try_from(index * SLOT).ok()) {
            Some(at) => {
                if let Some(slot) = self.slots.get_mut(at..at + RecordPointer::LEN) {
                    slot.copy_from_slice(&pointer.to_bytes());
                }
                Ok((pointer, false))
            }
            None => {
                self.rewritten.insert(sequence, pointer);
                Ok((pointer, true))
            }
        }
    }

    /// Where the file ends once these records are written.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Where the record of statement `sequence` is: as this batch put it,
    /// if it did, else as its slot in `file` says.
    pub(crate) fn pointer(&self, file: &RecordFile, sequence: u64) -> Result<RecordPointer, ViewsError> {
        if let Some(pointer) = self.rewritten.get(&sequence) {
            return Ok(*pointer);
        }
        if let Some(at) = sequence.checked_sub(self.first_sequence).and_then(|index| usize::try_from(index * SLOT).ok())
            && let Some(slot) = self.slots.get(at..at + RecordPointer::LEN)
        {
            return RecordPointer::from_bytes(slot);
        }
        file.pointer(sequence)
    }

    /// The record of statement `sequence`, as this batch leaves it.
    pub(crate) fn record(&self, file: &RecordFile, sequence: u64) -> Result<Vec<u8>, ViewsError> {
        self.read(file, self.pointer(file, sequence)?)
    }

    /// The record at `pointer`: from these records if it is one of them,
    /// else from `file`.
    pub(crate) fn read(&self, file: &RecordFile, pointer: RecordPointer) -> Result<Vec<u8>, ViewsError> {
        let Some(start) = pointer.offset.checked_sub(self.base) else {
            return file.read(pointer);
        };
        let entry = usize::try_from(start)
            .ok()
            .and_then(|start| self.bytes.get(start..start + HEADER + pointer.len as usize))
            .ok_or_else(|| corrupt(pointer, "it points past the records being written"))?;
        let (header, record) = entry.split_at(HEADER);
        check(pointer, header, record)?;
        Ok(record.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What the views' bookkeeping says is committed: bytes of records and
    /// statements.
    #[derive(Default)]
    struct Committed {
        bytes: u64,
        statements: u64,
    }

    /// Writes `records` as the next statements' at `committed`, moving it
    /// past them.
    fn written(file: &RecordFile, committed: &mut Committed, records: &[&[u8]]) -> Vec<RecordPointer> {
        let mut appending = Appending::new(committed.bytes, committed.statements);
        let pointers = records
            .iter()
            .enumerate()
            .map(|(n, record)| appending.put(committed.statements + n as u64, record).unwrap().0)
            .collect();
        file.write(&appending).unwrap();
        committed.bytes = appending.end();
        committed.statements += records.len() as u64;
        pointers
    }

    fn paths(dir: &tempfile::TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
        (dir.path().join("records"), dir.path().join("slots"))
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn records_read_back_from_the_batch_and_then_from_the_file() {
        let file = RecordFile::temporary().unwrap();
        let mut committed = Committed::default();
        let first = written(&file, &mut committed, &[b"one", b""]);
        let mut appending = Appending::new(committed.bytes, committed.statements);
        let (pointer, earlier) = appending.put(2, b"three").unwrap();
        assert!(!earlier);
        assert_eq!(appending.read(&file, pointer).unwrap(), b"three");
        assert_eq!(appending.record(&file, 2).unwrap(), b"three");
        assert_eq!(appending.record(&file, 0).unwrap(), b"one");
        assert_eq!(appending.read(&file, first[0]).unwrap(), b"one");
        // Not written yet: the file does not have it, nor its slot.
        assert!(matches!(file.read(pointer), Err(ViewsError::Corrupt(_))));
        assert!(matches!(file.record(2), Err(ViewsError::Corrupt(_))));
        file.write(&appending).unwrap();
        assert_eq!(file.read(pointer).unwrap(), b"three");
        assert_eq!(file.record(2).unwrap(), b"three");
        assert_eq!(file.pointer(2).unwrap(), pointer);
        assert_eq!(file.record(1).unwrap(), b"");
        assert_eq!(file.read(first[1]).unwrap(), b"");
        let bytes = RecordPointer::from_bytes(&pointer.to_bytes()).unwrap();
        assert_eq!(bytes, pointer);
    }

    #[test]
    fn statements_are_put_in_sequence() {
        let mut appending = Appending::new(0, 5);
        assert!(matches!(appending.put(6, b"too soon"), Err(ViewsError::Corrupt(_))));
        assert!(!appending.put(5, b"fifth").unwrap().1);
        assert!(matches!(appending.put(7, b"too soon"), Err(ViewsError::Corrupt(_))));
    }

    #[test]
    fn a_record_written_again_is_found_where_the_batch_put_it_and_then_in_its_slot() {
        let file = RecordFile::temporary().unwrap();
        let mut committed = Committed::default();
        written(&file, &mut committed, &[b"zero", b"one"]);
        let mut appending = Appending::new(committed.bytes, committed.statements);
        appending.put(2, b"two").unwrap();
        // Statement 2, of this batch, again: its slot in the batch changes.
        let (again, earlier) = appending.put(2, b"two, again").unwrap();
        assert!(!earlier);
        assert_eq!(appending.pointer(&file, 2).unwrap(), again);
        // Statement 0, of an earlier batch: the batch says where it is; the
        // file's slot keeps the older copy until the batch is written.
        let (rewritten, earlier) = appending.put(0, b"zero, again").unwrap();
        assert!(earlier);
        assert_eq!(appending.record(&file, 0).unwrap(), b"zero, again");
        assert_eq!(appending.put(3, b"three").unwrap().0.offset, rewritten.offset + HEADER as u64 + 11);
        file.write(&appending).unwrap();
        assert_eq!(file.record(0).unwrap(), b"zero");
        assert_eq!(file.record(2).unwrap(), b"two, again");
        assert_eq!(file.record(3).unwrap(), b"three");
        file.write_rewritten(&appending).unwrap();
        assert_eq!(file.record(0).unwrap(), b"zero, again");
        assert_eq!(file.record(1).unwrap(), b"one");
    }

    #[test]
    fn a_damaged_record_is_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (path, slots) = paths(&dir);
        let file = RecordFile::open(&path, &slots).unwrap();
        let pointers = written(&file, &mut Committed::default(), &[b"first record", b"second record"]);
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let file = RecordFile::open(&path, &slots).unwrap();
        assert!(file.recover(pointers[1].end(), 2).unwrap());
        assert_eq!(file.read(pointers[0]).unwrap(), b"first record");
        let error = file.read(pointers[1]).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
        let error = file.record(1).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
        // A pointer whose length disagrees with the header.
        let wrong = RecordPointer { offset: pointers[0].offset, len: pointers[0].len - 1 };
        assert!(file.read(wrong).is_err());
        // A slot past the file's end.
        assert!(matches!(file.record(2), Err(ViewsError::Corrupt(_))));
    }

    #[test]
    fn recovery_cuts_off_uncommitted_bytes_and_refuses_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let (path, slots) = paths(&dir);
        let file = RecordFile::open(&path, &slots).unwrap();
        let mut committed = Committed::default();
        let kept = written(&file, &mut committed, &[b"kept"]);
        // A batch whose records were written but whose sled batch was not.
        let mut refused = Appending::new(committed.bytes, committed.statements);
        refused.put(1, b"refused").unwrap();
        file.write(&refused).unwrap();
        drop(file);

        let file = RecordFile::open(&path, &slots).unwrap();
        assert!(file.recover(committed.bytes, committed.statements).unwrap());
        assert_eq!(len(&path), committed.bytes);
        assert_eq!(len(&slots), SLOT);
        assert_eq!(file.read(kept[0]).unwrap(), b"kept");
        assert!(file.record(1).is_err());
        // The next batch goes where the refused one went.
        let at = committed.bytes;
        let next = written(&file, &mut committed, &[b"next"]);
        assert_eq!(next[0].offset, at);
        assert_eq!(file.record(1).unwrap(), b"next");

        // The tree says more was committed than either file holds.
        let file = RecordFile::open(&path, &slots).unwrap();
        let (records_len, slots_len) = (len(&path), len(&slots));
        assert!(!file.recover(records_len + 1, 2).unwrap());
        assert!(!file.recover(records_len, 3).unwrap());
        assert_eq!((len(&path), len(&slots)), (records_len, slots_len));
        assert!(file.recover(records_len, 2).unwrap());
    }
}
