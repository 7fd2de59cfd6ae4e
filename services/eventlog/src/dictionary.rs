//! The zstd dictionaries of the segment-file log.
//!
//! An event of a single statement compressed alone keeps little of its
//! size (about 600 of 1,300 bytes): what it shares with every other
//! statement (field names, verb and profile IRIs, the platforms' activity
//! ids) is in each block again. A dictionary trained on events the log has
//! taken holds that once, and the events compressed with it keep about 170
//! bytes.
//!
//! The writer samples the events it appends (those between the size from
//! which events are compressed and [`MAX_SAMPLE_BYTES`]; larger ones, such
//! as a bulk load's, compress well alone), keeping the first
//! [`SAMPLE_PREFIX`] bytes of each. Once it has
//! `dictionary_samples` of them and the log has no dictionary, and again
//! whenever it starts a segment with a full sample of the events since the
//! last one, it trains a dictionary on a blocking thread. The dictionary
//! is written to `<offset>.zdict` in the log's directory (`offset` = the
//! log's end when it was made; the file is an 8-byte magic, the CRC-32 of
//! the dictionary, and the dictionary as zstd wrote it), synced, and only
//! then used, so no frame
//! on disk ever names a dictionary that is not there. A frame compressed
//! with one says so by a flag and names it by zstd's dictionary id; every
//! dictionary stays for as long as the log, and the newest is the one new
//! events use, after a reopen too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::compression::Dictionary;
use crate::{LogError, Offset};

pub(crate) const DICTIONARY_SUFFIX: &str = ".zdict";
const TEMPORARY_SUFFIX: &str = ".zdict.tmp";
const MAGIC: &[u8; 8] = b"LRSDICT\x01";
/// Events longer than this are not samples, and are compressed without a
/// dictionary: alone they already compress well.
pub(crate) const MAX_SAMPLE_BYTES: usize = 16 * 1024;
/// A sample is at most this much of the start of an event (one or two
/// statements), so a full sample holds at most this many bytes an event.
const SAMPLE_PREFIX: usize = 2 * 1024;

fn storage(error: impl std::fmt::Display) -> LogError {
    LogError::Storage(error.to_string())
}

/// Every dictionary of one log, oldest first: the newest is the one new
/// events are compressed with.
#[derive(Default)]
pub(crate) struct Dictionaries {
    /// Found by id; a log gains one a segment at most.
    known: RwLock<Vec<Arc<Dictionary>>>,
}

impl Dictionaries {
    /// Loads the dictionaries in `dir` (the newest becomes the current one)
    /// and removes what an interrupted write of one left.
    pub(crate) fn load(dir: &Path, level: i32) -> Result<Self, LogError> {
        let mut files: Vec<(Offset, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(storage)? {
            let path = entry.map_err(storage)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.ends_with(TEMPORARY_SUFFIX) {
                std::fs::remove_file(&path).map_err(storage)?;
            } else if let Some(offset) = name.strip_suffix(DICTIONARY_SUFFIX).and_then(|s| s.parse().ok()) {
                files.push((offset, path));
            }
        }
        files.sort_unstable_by_key(|(offset, _)| *offset);
        let dictionaries = Self::default();
        for (_, path) in files {
            let corrupt = |why: String| LogError::Storage(format!("the log is corrupt: {}: {why}", path.display()));
            let file = std::fs::read(&path).map_err(storage)?;
            let bytes = match file.strip_prefix(MAGIC.as_slice()).and_then(|rest| rest.split_at_checked(4)) {
                Some((crc, bytes)) if crc32fast::hash(bytes).to_le_bytes() == crc => bytes.to_vec(),
                _ => return Err(corrupt("a dictionary file that does not check out".to_owned())),
            };
            let dictionary = Dictionary::from_bytes(bytes, level).map_err(|e| corrupt(e.to_string()))?;
            if dictionaries.get(dictionary.id()).is_some() {
                return Err(corrupt(format!("a second dictionary with id {}", dictionary.id())));
            }
            dictionaries.add(Arc::new(dictionary))?;
        }
        Ok(dictionaries)
    }

    /// The dictionary with zstd's id `id`, if the log has it.
    pub(crate) fn get(&self, id: u32) -> Option<Arc<Dictionary>> {
        let known = self.known.read().ok()?;
        known.iter().find(|d| d.id() == id).cloned()
    }

    /// The dictionary new events are compressed with: the newest.
    pub(crate) fn current(&self) -> Option<Arc<Dictionary>> {
        self.known.read().ok()?.last().cloned()
    }

    /// How many dictionaries the log has, and their bytes on disk.
    pub(crate) fn count_and_bytes(&self) -> (usize, u64) {
        const HEADER: u64 = MAGIC.len() as u64 + 4;
        self.known
            .read()
            .map(|known| (known.len(), known.iter().map(|d| HEADER + d.bytes().len() as u64).sum()))
            .unwrap_or_default()
    }

    fn add(&self, dictionary: Arc<Dictionary>) -> Result<(), LogError> {
        self.known.write().map_err(|_| storage("lock poisoned"))?.push(dictionary);
        Ok(())
    }

    /// Writes `dictionary` into `dir` as made at `offset`, durably, then
    /// makes it the current one. `false` if the log already has one with
    /// its id (then nothing changes: a frame names its dictionary by id).
    pub(crate) fn install(&self, dir: &Path, offset: Offset, dictionary: Dictionary) -> Result<bool, LogError> {
        if self.get(dictionary.id()).is_some() {
            return Ok(false);
        }
        let name = format!("{offset:020}");
        let temporary = dir.join(format!("{name}{TEMPORARY_SUFFIX}"));
        let path = dir.join(format!("{name}{DICTIONARY_SUFFIX}"));
        if path.exists() {
            // Made at the same end as another: keep the one there.
            return Ok(false);
        }
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&crc32fast::hash(dictionary.bytes()).to_le_bytes());
        file.extend_from_slice(dictionary.bytes());
        std::fs::write(&temporary, &file).map_err(storage)?;
        std::fs::File::open(&temporary).and_then(|f| f.sync_all()).map_err(storage)?;
        std::fs::rename(&temporary, &path).map_err(storage)?;
        crate::file_log::sync_dir(dir)?;
        self.add(Arc::new(dictionary))?;
        Ok(true)
    }
}

/// A uniform sample of the events offered since it was last emptied
/// (reservoir sampling), of those a dictionary would be used for.
pub(crate) struct Sampler {
    wanted: usize,
    smallest: usize,
    seen: u64,
    samples: Vec<Vec<u8>>,
    random: u64,
}

impl Sampler {
    /// A sampler of `wanted` events of `smallest` to [`MAX_SAMPLE_BYTES`]
    /// bytes; `wanted` 0 takes none.
    pub(crate) fn new(wanted: usize, smallest: usize) -> Self {
        Self { wanted, smallest, seen: 0, samples: Vec::new(), random: 0x9e37_79b9_7f4a_7c15 }
    }

    pub(crate) fn offer(&mut self, event: &[u8]) {
        if self.wanted == 0 || event.len() < self.smallest || event.len() > MAX_SAMPLE_BYTES {
            return;
        }
        self.seen += 1;
        let event = &event[..event.len().min(SAMPLE_PREFIX)];
        if self.samples.len() < self.wanted {
            self.samples.push(event.to_vec());
            return;
        }
        // xorshift64: any spread will do, and the same log samples alike.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        if let Some(slot) = usize::try_from(self.random % self.seen).ok().and_then(|k| self.samples.get_mut(k)) {
            slot.clear();
            slot.extend_from_slice(event);
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.wanted > 0 && self.samples.len() >= self.wanted
    }

    /// The samples, leaving the sampler empty.
    pub(crate) fn take(&mut self) -> Vec<Vec<u8>> {
        self.seen = 0;
        std::mem::take(&mut self.samples)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_sampler_keeps_a_spread_of_the_events_it_is_offered_in_its_size_range() {
        let mut sampler = Sampler::new(100, 10);
        sampler.offer(b"short");
        sampler.offer(&vec![b'x'; MAX_SAMPLE_BYTES + 1]);
        assert_eq!(sampler.samples.len(), 0, "too short and too long are not samples");
        sampler.offer(&vec![b'y'; MAX_SAMPLE_BYTES]);
        assert_eq!(sampler.take(), vec![vec![b'y'; SAMPLE_PREFIX]], "the start of a long event");
        for n in 0..10_000u32 {
            sampler.offer(format!("event number {n:05}").as_bytes());
        }
        assert!(sampler.is_full());
        let samples = sampler.take();
        assert_eq!(samples.len(), 100);
        // Uniform over the 10,000: some from each quarter.
        let numbers: Vec<u32> =
            samples.iter().map(|s| std::str::from_utf8(&s[13..]).unwrap().parse().unwrap()).collect();
        for quarter in 0..4 {
            let within = numbers.iter().filter(|n| **n / 2_500 == quarter).count();
            assert!(within >= 10, "{within} samples from quarter {quarter}: {numbers:?}");
        }
        assert!(!sampler.is_full());
        assert!(!Sampler::new(0, 1).is_full());
    }
}
