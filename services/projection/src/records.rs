//! Statement records in an append-only file beside the views' tree.
//!
//! A record is written once, when its statement is stored (and again, as a
//! new copy, in the rare case a later statement adds to the facets it
//! inherits by StatementRef). The tree keeps, under the record's position,
//! only where the record is in this file ([`RecordPointer`]), so sled's
//! pages stay small: sled rewrites a page for every few changes to it,
//! and a page of records is sixteen records long.
//!
//! Each record in the file is its length (u32, big-endian), the CRC-32 of
//! its bytes, then the bytes. The views' bookkeeping, written in the same
//! sled batch as the pointers, says how much of the file written batches
//! point into (the committed length). A batch's records are written to the
//! file at the committed length before its sled batch, so a reader that
//! finds a pointer in the tree finds its record in the file. A batch whose
//! sled write fails leaves bytes past the committed length that no pointer
//! reaches, which the next batch overwrites and an open cuts off. Bytes a
//! pointer reaches never change, so readers need no lock.

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
/// of its bytes. This is what the tree keeps under the record's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordPointer {
    offset: u64,
    len: u32,
}

impl RecordPointer {
    const LEN: usize = 12;

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

/// The file of statement records.
pub(crate) struct RecordFile {
    file: File,
}

impl RecordFile {
    /// Opens (or creates) the file at `path`; [`Self::recover`] then cuts
    /// it back to what the tree says was committed.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Self { file })
    }

    /// A file gone when dropped (for views that are themselves temporary).
    pub(crate) fn temporary() -> io::Result<Self> {
        Ok(Self { file: tempfile::tempfile()? })
    }

    /// Cuts the file back to `committed` (as the views' bookkeeping says),
    /// dropping what batches whose sled write never happened left past it.
    /// Returns false, changing nothing, if the file is shorter than that:
    /// records the tree points at were lost (the machine stopped before the
    /// file reached the disk), and the views must be rebuilt.
    pub(crate) fn recover(&self, committed: u64) -> io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len < committed {
            return Ok(false);
        }
        if len > committed {
            self.file.set_len(committed)?;
        }
        Ok(true)
    }

    /// Empties the file (the views are being rebuilt).
    pub(crate) fn clear(&self) -> io::Result<()> {
        self.file.set_len(0)
    }

    /// Writes a batch's records (at the committed length they were
    /// gathered from).
    pub(crate) fn write(&self, appending: &Appending) -> io::Result<()> {
        if appending.bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&appending.bytes, appending.base)
    }

    /// Makes the file's committed bytes durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
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

/// The records a batch appends, held until the batch is written.
pub(crate) struct Appending {
    /// Where the first of them goes: the committed length.
    base: u64,
    bytes: Vec<u8>,
}

impl Appending {
    pub(crate) fn new(base: u64) -> Self {
        Self { base, bytes: Vec::new() }
    }

    /// Adds a record, returning where it will be.
    pub(crate) fn push(&mut self, record: &[u8]) -> Result<RecordPointer, ViewsError> {
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

    /// Where the file ends once these records are written.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
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

    /// Writes `records` at `*committed`, moving it past them.
    fn written(file: &RecordFile, committed: &mut u64, records: &[&[u8]]) -> Vec<RecordPointer> {
        let mut appending = Appending::new(*committed);
        let pointers = records.iter().map(|record| appending.push(record).unwrap()).collect();
        file.write(&appending).unwrap();
        *committed = appending.end();
        pointers
    }

    #[test]
    fn records_read_back_from_the_batch_and_then_from_the_file() {
        let file = RecordFile::temporary().unwrap();
        let mut committed = 0;
        let first = written(&file, &mut committed, &[b"one", b""]);
        let mut appending = Appending::new(committed);
        let pointer = appending.push(b"three").unwrap();
        assert_eq!(appending.read(&file, pointer).unwrap(), b"three");
        assert_eq!(appending.read(&file, first[0]).unwrap(), b"one");
        // Not written yet: the file does not have it.
        assert!(matches!(file.read(pointer), Err(ViewsError::Corrupt(_))));
        file.write(&appending).unwrap();
        assert_eq!(file.read(pointer).unwrap(), b"three");
        assert_eq!(file.read(first[1]).unwrap(), b"");
        let bytes = RecordPointer::from_bytes(&pointer.to_bytes()).unwrap();
        assert_eq!(bytes, pointer);
    }

    #[test]
    fn a_damaged_record_is_reported_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        let file = RecordFile::open(&path).unwrap();
        let pointers = written(&file, &mut 0, &[b"first record", b"second record"]);
        drop(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let file = RecordFile::open(&path).unwrap();
        assert!(file.recover(pointers[1].end()).unwrap());
        assert_eq!(file.read(pointers[0]).unwrap(), b"first record");
        let error = file.read(pointers[1]).unwrap_err().to_string();
        assert!(error.contains("checksum"), "{error}");
        // A pointer whose length disagrees with the header.
        let wrong = RecordPointer { offset: pointers[0].offset, len: pointers[0].len - 1 };
        assert!(file.read(wrong).is_err());
    }

    #[test]
    fn recovery_cuts_off_uncommitted_bytes_and_refuses_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        let file = RecordFile::open(&path).unwrap();
        let mut committed = 0;
        let kept = written(&file, &mut committed, &[b"kept"]);
        // A batch whose records were written but whose sled batch was not.
        let mut refused = Appending::new(committed);
        refused.push(b"refused").unwrap();
        file.write(&refused).unwrap();
        drop(file);

        let file = RecordFile::open(&path).unwrap();
        assert!(file.recover(committed).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), committed);
        assert_eq!(file.read(kept[0]).unwrap(), b"kept");
        // The next batch goes where the refused one went.
        let at = committed;
        let next = written(&file, &mut committed, &[b"next"]);
        assert_eq!(next[0].offset, at);
        assert_eq!(file.read(next[0]).unwrap(), b"next");

        // The tree says more was committed than the file holds.
        let file = RecordFile::open(&path).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(!file.recover(len + 1).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }
}
