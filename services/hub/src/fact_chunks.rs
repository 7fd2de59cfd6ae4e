//! Uptake fact rows (the `F` table), packed many to a key.
//!
//! A fact row counts the statements of one learner in one organisation on
//! one day, on one activity (or on none), from one platform, with one staff
//! group. There are about as many rows as statements' sessions: at 10
//! million statements, 4.5 million. sled keeps memory for every key, so a
//! row of its own to every key made the table grow the server's memory
//! with the data.
//!
//! The rows of an organisation and day are kept in chunks of at most
//! [`CHUNK_ROWS`] rows, in the order of their keys. A chunk is stored under
//! the key its first row would have on its own ([`RowId::key`]: tag,
//! organisation, day, learner's number, activity's number, platform, staff
//! group). So chunks sort as their rows do; a row is in the chunk with the
//! greatest key at or before its own (or, before the first chunk, in none);
//! and the rows of a range of days are the chunks of a range of keys.
//!
//! A chunk's value: a format byte; the platforms and staff groups its rows
//! name (a varint count, then each as a string), in the order the rows
//! first name them; a varint count of rows; then each row: its learner's
//! number less the row before's (varint), its activity's number plus one
//! (0 for none), the indexes of its platform and staff group in the list,
//! and its three counts (varints). One chunk has one encoding, so replays
//! compare trees byte for byte.
//!
//! Small chunks keep each write small: sled writes a key's whole value with
//! every change, and a statement changes its row's chunk.

use lrs_projection::codec::{Reader, put_str, put_varint};

use crate::keys;

/// The most rows a chunk holds; past it, a chunk splits in two halves.
pub(crate) const CHUNK_ROWS: usize = 32;

/// The first byte of every chunk.
const FORMAT: u8 = 1;

/// What a fact row counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FactCounts {
    pub(crate) statements: u64,
    /// Statements that completed (`completed` or `passed`).
    pub(crate) completed: u64,
    pub(crate) passed: u64,
}

/// Which row: everything a row's key holds after its organisation and day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowId {
    pub(crate) learner: u32,
    pub(crate) activity: Option<u32>,
    pub(crate) platform: String,
    pub(crate) staff_group: String,
}

impl RowId {
    /// What rows sort by: the order of their keys, whose parts are
    /// length-prefixed (no activity is an empty part, so it comes first).
    fn order(&self) -> (u32, Option<u32>, usize, &[u8], usize, &[u8]) {
        let (platform, staff_group) = (self.platform.as_bytes(), self.staff_group.as_bytes());
        (self.learner, self.activity, platform.len(), platform, staff_group.len(), staff_group)
    }

    /// The row's key on its own: the key of a chunk it is first in.
    pub(crate) fn key(&self, organisation: &str, day: &str) -> Vec<u8> {
        let activity = self.activity.map(u32::to_be_bytes);
        keys::key_of_bytes(
            keys::FACT,
            &[
                organisation.as_bytes(),
                day.as_bytes(),
                &self.learner.to_be_bytes(),
                activity.as_ref().map_or(&[][..], |a| &a[..]),
                self.platform.as_bytes(),
                self.staff_group.as_bytes(),
            ],
        )
    }
}

impl Ord for RowId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for RowId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The prefix of every chunk of an organisation's day.
pub(crate) fn day_prefix(organisation: &str, day: &str) -> Vec<u8> {
    keys::key_of_bytes(keys::FACT, &[organisation.as_bytes(), day.as_bytes()])
}

/// The day part of a chunk's key (`YYYYMMDD`); `None` if the key is
/// malformed.
pub(crate) fn day_of(chunk_key: &[u8]) -> Option<&[u8]> {
    let [_, day, _, _, _, _] = keys::split::<6>(chunk_key)?;
    Some(day)
}

/// Some rows of one organisation and day, in order, each counting at least
/// one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FactChunk {
    rows: Vec<(RowId, FactCounts)>,
}

impl FactChunk {
    pub(crate) fn rows(&self) -> &[(RowId, FactCounts)] {
        &self.rows
    }

    /// The counts of a row, if the chunk holds it.
    pub(crate) fn get(&self, id: &RowId) -> Option<FactCounts> {
        self.rows.binary_search_by(|(row, _)| row.cmp(id)).ok().map(|at| self.rows[at].1)
    }

    /// Sets a row's counts: adds it, changes it, or, when it counts no
    /// statement, takes it out.
    pub(crate) fn set(&mut self, id: RowId, counts: FactCounts) {
        crate::sorted::set(&mut self.rows, id, (counts.statements > 0).then_some(counts));
    }

    /// The keys and values to store this chunk under: none when it holds
    /// no row, two halves when it holds more than [`CHUNK_ROWS`], each under
    /// its first row's key.
    pub(crate) fn into_stored(self, organisation: &str, day: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let pieces: Vec<&[(RowId, FactCounts)]> = if self.rows.len() > CHUNK_ROWS {
            let (low, high) = self.rows.split_at(self.rows.len() / 2);
            vec![low, high]
        } else if self.rows.is_empty() {
            Vec::new()
        } else {
            vec![&self.rows]
        };
        pieces.into_iter().map(|rows| (rows[0].0.key(organisation, day), encode(rows))).collect()
    }

    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode(&self.rows)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut input = Reader::new(bytes);
        if input.byte()? != FORMAT {
            return Err("a fact chunk of an unknown format".to_owned());
        }
        let names = input.u64()?;
        let mut strings = Vec::new();
        for _ in 0..names {
            strings.push(input.string()?);
        }
        let count = input.u64()?;
        let mut rows: Vec<(RowId, FactCounts)> = Vec::new();
        let mut learner = 0u32;
        for _ in 0..count {
            let step = u32::try_from(input.u64()?).map_err(|_| "a learner's number out of range")?;
            learner = learner.checked_add(step).ok_or("a learner's number out of range")?;
            let activity = match input.u64()? {
                0 => None,
                n => Some(u32::try_from(n - 1).map_err(|_| "an activity's number out of range")?),
            };
            let mut string = || -> Result<String, String> {
                let index = usize::try_from(input.u64()?).map_err(|_| "a name's index out of range")?;
                strings.get(index).cloned().ok_or_else(|| "a name's index out of range".to_owned())
            };
            let id = RowId { learner, activity, platform: string()?, staff_group: string()? };
            let counts = FactCounts { statements: input.u64()?, completed: input.u64()?, passed: input.u64()? };
            if counts.statements == 0 {
                return Err("a fact row that counts no statement".to_owned());
            }
            if rows.last().is_some_and(|(previous, _)| *previous >= id) {
                return Err("fact rows out of order".to_owned());
            }
            rows.push((id, counts));
        }
        if !input.is_done() {
            return Err("a fact chunk with bytes after it".to_owned());
        }
        if rows.is_empty() {
            return Err("a fact chunk with no rows".to_owned());
        }
        Ok(Self { rows })
    }
}

fn encode(rows: &[(RowId, FactCounts)]) -> Vec<u8> {
    let mut strings: Vec<&str> = Vec::new();
    let mut indexes = Vec::with_capacity(rows.len());
    for (id, _) in rows {
        indexes.push((index_of(&mut strings, &id.platform), index_of(&mut strings, &id.staff_group)));
    }
    let mut out = Vec::with_capacity(16 + 12 * rows.len());
    out.push(FORMAT);
    put_varint(&mut out, strings.len() as u128);
    for text in strings {
        put_str(&mut out, text);
    }
    put_varint(&mut out, rows.len() as u128);
    let mut learner = 0u32;
    for ((id, counts), (platform, staff_group)) in rows.iter().zip(indexes) {
        put_varint(&mut out, u128::from(id.learner - learner));
        learner = id.learner;
        put_varint(&mut out, id.activity.map_or(0, |a| u128::from(a) + 1));
        put_varint(&mut out, platform as u128);
        put_varint(&mut out, staff_group as u128);
        for count in [counts.statements, counts.completed, counts.passed] {
            put_varint(&mut out, u128::from(count));
        }
    }
    out
}

/// The place of `text` in `strings`, added at the end if not there.
fn index_of<'a>(strings: &mut Vec<&'a str>, text: &'a str) -> usize {
    match strings.iter().position(|s| *s == text) {
        Some(at) => at,
        None => {
            strings.push(text);
            strings.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(learner: u32, activity: Option<u32>, platform: &str, staff_group: &str) -> RowId {
        RowId { learner, activity, platform: platform.to_owned(), staff_group: staff_group.to_owned() }
    }

    fn one(statements: u64) -> FactCounts {
        FactCounts { statements, completed: 0, passed: 0 }
    }

    #[test]
    fn rows_sort_as_their_keys_do() {
        let mut ids = Vec::new();
        for learner in [0, 1, 255, 256, 70_000, u32::MAX] {
            for activity in [None, Some(0), Some(1), Some(300), Some(u32::MAX)] {
                for platform in ["", "MOOC", "e-LfH", "Magpie", "e-LfH "] {
                    for staff_group in ["", "Nursing", "Medical", "Allied Health"] {
                        ids.push(id(learner, activity, platform, staff_group));
                    }
                }
            }
        }
        let mut by_row = ids.clone();
        by_row.sort();
        let mut by_key = ids;
        by_key.sort_by_key(|id| id.key("RJ1", "20260301"));
        assert_eq!(by_row, by_key);
    }

    #[test]
    fn a_chunk_round_trips_and_names_each_platform_and_staff_group_once() {
        let mut chunk = FactChunk::default();
        for learner in [9, 2, 700_000, 40] {
            for (activity, platform) in [(None, "Magpie"), (Some(3), "e-LfH"), (Some(128), "e-LfH")] {
                let counts = FactCounts { statements: u64::from(learner) + 1, completed: 1, passed: 0 };
                chunk.set(id(learner, activity, platform, "Nursing"), counts);
            }
        }
        let bytes = chunk.encode();
        assert_eq!(FactChunk::decode(&bytes).unwrap(), chunk);
        let names = |text: &str| bytes.windows(text.len()).filter(|w| *w == text.as_bytes()).count();
        assert_eq!((names("Magpie"), names("e-LfH"), names("Nursing")), (1, 1, 1));
        assert!(bytes.len() < 12 * chunk.rows().len() + 32, "{} bytes for 12 rows", bytes.len());
        let learners: Vec<u32> = chunk.rows().iter().map(|(id, _)| id.learner).collect();
        assert_eq!(learners, [2, 2, 2, 9, 9, 9, 40, 40, 40, 700_000, 700_000, 700_000]);
    }

    #[test]
    fn setting_a_row_to_no_statements_takes_it_out() {
        let mut chunk = FactChunk::default();
        chunk.set(id(1, Some(1), "e-LfH", ""), one(2));
        chunk.set(id(2, Some(1), "e-LfH", ""), one(1));
        assert_eq!(chunk.get(&id(1, Some(1), "e-LfH", "")), Some(one(2)));
        chunk.set(id(1, Some(1), "e-LfH", ""), one(0));
        chunk.set(id(3, Some(1), "e-LfH", ""), one(0));
        assert_eq!(chunk.get(&id(1, Some(1), "e-LfH", "")), None);
        assert_eq!(chunk.rows().len(), 1);
        chunk.set(id(2, Some(1), "e-LfH", ""), one(0));
        assert_eq!(chunk.into_stored("RJ1", "20260301"), [], "an empty chunk is not stored");
    }

    #[test]
    fn a_full_chunk_splits_in_halves_each_under_its_first_rows_key() {
        let mut chunk = FactChunk::default();
        for learner in 0..CHUNK_ROWS as u32 {
            chunk.set(id(learner * 2, None, "e-LfH", ""), one(1));
        }
        let stored = chunk.clone().into_stored("RJ1", "20260301");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, id(0, None, "e-LfH", "").key("RJ1", "20260301"));
        chunk.set(id(7, None, "e-LfH", ""), one(1));
        let stored = chunk.into_stored("RJ1", "20260301");
        assert_eq!(stored.len(), 2);
        let low = FactChunk::decode(&stored[0].1).unwrap();
        let high = FactChunk::decode(&stored[1].1).unwrap();
        assert_eq!((low.rows().len(), high.rows().len()), (CHUNK_ROWS / 2, CHUNK_ROWS / 2 + 1));
        assert_eq!(stored[1].0, high.rows()[0].0.key("RJ1", "20260301"));
        assert!(low.rows().last().unwrap().0 < high.rows()[0].0);
        assert_eq!(day_of(&stored[1].0), Some(&b"20260301"[..]));
    }

    #[test]
    fn a_malformed_chunk_is_refused() {
        let mut chunk = FactChunk::default();
        chunk.set(id(5, Some(1), "e-LfH", "Nursing"), one(1));
        chunk.set(id(6, Some(1), "e-LfH", "Nursing"), one(1));
        let good = chunk.encode();
        assert!(FactChunk::decode(&good).is_ok());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(FactChunk::decode(&trailing).unwrap_err().contains("after"));
        assert!(FactChunk::decode(&good[..good.len() - 1]).is_err(), "cut short");
        let mut format = good.clone();
        format[0] = 9;
        assert!(FactChunk::decode(&format).unwrap_err().contains("format"));
        // The second row's learner step (after format, names, count and
        // the first row's seven varints) made 0: the same row twice.
        let second = 1 + 1 + (1 + 5) + (1 + 7) + 1 + 7;
        let mut repeated = good.clone();
        assert_eq!(repeated[second], 1);
        repeated[second] = 0;
        assert!(FactChunk::decode(&repeated).unwrap_err().contains("order"));
        let mut no_statements = good.clone();
        no_statements[second - 3] = 0;
        assert!(FactChunk::decode(&no_statements).unwrap_err().contains("no statement"));
        let mut bad_name = good;
        bad_name[second - 4] = 7;
        assert!(FactChunk::decode(&bad_name).unwrap_err().contains("index"));
        assert!(FactChunk::decode(&[FORMAT, 0, 0]).unwrap_err().contains("no rows"));
    }
}
