//! A learner's summaries (the `R` table), packed many activities to a key.
//!
//! The summaries of a learner's statements on one activity are one value
//! (`summaries.rs`). With a key for each learner and activity the table had
//! 4.5 million keys at 10 million statements, and sled keeps memory for
//! every key of an open tree.
//!
//! A learner's activities, in the order of their numbers, are kept in
//! chunks of about [`CHUNK_BYTES`] at most, each under the key of its first
//! activity ([`chunk_key`]: the tag, then the learner's and the activity's
//! numbers, four bytes each, big-endian). So a learner's chunks are
//! together, and an activity's summaries are in the chunk with the greatest
//! key at or before its own. A chunk past the size splits in halves (by
//! bytes); one activity's summaries alone are never split.
//!
//! A chunk's value: a format byte, a varint count of activities, then each
//! activity's number less the one before's (varint), the length of its
//! summaries (varint), and the summaries as `summaries.rs` writes them.

use lrs_projection::codec::{Reader, put_varint};

use crate::keys;

/// About the most bytes a chunk of more than one activity holds.
pub(crate) const CHUNK_BYTES: usize = 1024;

/// The first byte of every chunk.
const FORMAT: u8 = 1;

/// The key of a chunk whose first activity is `activity` (and where that
/// activity's summaries would be alone): nine bytes.
pub(crate) fn chunk_key(learner: u32, activity: u32) -> Vec<u8> {
    let mut out = learner_prefix(learner);
    out.extend_from_slice(&activity.to_be_bytes());
    out
}

/// The start of the keys of every chunk of the learner numbered `learner`.
pub(crate) fn learner_prefix(learner: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(keys::SUMMARY);
    out.extend_from_slice(&learner.to_be_bytes());
    out
}

/// Some of a learner's activities, in order, each with its (encoded,
/// non-empty) summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SummaryChunk {
    activities: Vec<(u32, Vec<u8>)>,
}

impl SummaryChunk {
    /// The activities and their encoded summaries, in order.
    pub(crate) fn activities(&self) -> &[(u32, Vec<u8>)] {
        &self.activities
    }

    /// The encoded summaries of an activity, if the chunk holds it.
    pub(crate) fn get(&self, activity: u32) -> Option<&[u8]> {
        let at = self.activities.binary_search_by_key(&activity, |(a, _)| *a).ok()?;
        Some(&self.activities[at].1)
    }

    /// Sets an activity's encoded summaries, or takes the activity out
    /// (`None`: it has none left).
    pub(crate) fn set(&mut self, activity: u32, summaries: Option<Vec<u8>>) {
        crate::sorted::set(&mut self.activities, activity, summaries);
    }

    /// The keys and values to store this chunk of `learner`'s under: none
    /// when it holds no activity, else pieces of at most [`CHUNK_BYTES`]
    /// (or of one activity), each under its first activity's key.
    pub(crate) fn into_stored(self, learner: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        split(&self.activities, &mut |piece| out.push((chunk_key(learner, piece[0].0), encode(piece))));
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut input = Reader::new(bytes);
        if input.byte()? != FORMAT {
            return Err("a summaries chunk of an unknown format".to_owned());
        }
        let count = input.u64()?;
        let mut activities: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut activity = 0u32;
        for _ in 0..count {
            let step = u32::try_from(input.u64()?).map_err(|_| "an activity's number out of range")?;
            if !activities.is_empty() && step == 0 {
                return Err("a summaries chunk's activities out of order".to_owned());
            }
            activity = activity.checked_add(step).ok_or("an activity's number out of range")?;
            let len = usize::try_from(input.u64()?).map_err(|_| "summaries' length out of range")?;
            let summaries = input.bytes(len)?;
            if summaries.is_empty() {
                return Err("an activity with no summaries".to_owned());
            }
            activities.push((activity, summaries.to_vec()));
        }
        if !input.is_done() {
            return Err("a summaries chunk with bytes after it".to_owned());
        }
        if activities.is_empty() {
            return Err("a summaries chunk with no activities".to_owned());
        }
        Ok(Self { activities })
    }
}

/// What one activity takes in a chunk, near enough.
fn size(activity: &(u32, Vec<u8>)) -> usize {
    activity.1.len() + 6
}

/// Hands `emit` the pieces `activities` is stored in: itself if it is
/// small enough or one activity, else the pieces of each half by bytes.
fn split<'a>(activities: &'a [(u32, Vec<u8>)], emit: &mut impl FnMut(&'a [(u32, Vec<u8>)])) {
    let total: usize = activities.iter().map(size).sum();
    if activities.is_empty() {
        return;
    }
    if activities.len() == 1 || total <= CHUNK_BYTES {
        emit(activities);
        return;
    }
    let mut running = 0;
    let mut at = 0;
    while at < activities.len() - 1 && running + size(&activities[at]) / 2 < total / 2 {
        running += size(&activities[at]);
        at += 1;
    }
    let at = at.clamp(1, activities.len() - 1);
    split(&activities[..at], emit);
    split(&activities[at..], emit);
}

fn encode(activities: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + activities.iter().map(size).sum::<usize>());
    out.push(FORMAT);
    put_varint(&mut out, activities.len() as u128);
    let mut previous = 0u32;
    for (activity, summaries) in activities {
        put_varint(&mut out, u128::from(activity - previous));
        previous = *activity;
        put_varint(&mut out, summaries.len() as u128);
        out.extend_from_slice(summaries);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(activities: &[(u32, usize)]) -> SummaryChunk {
        let mut chunk = SummaryChunk::default();
        for (activity, len) in activities {
            chunk.set(*activity, Some(vec![*activity as u8; *len]));
        }
        chunk
    }

    #[test]
    fn a_chunk_round_trips_in_the_order_of_its_activities() {
        let chunk = chunk(&[(300, 40), (2, 10), (70_000, 1), (0, 3)]);
        let activities: Vec<u32> = chunk.activities().iter().map(|(a, _)| *a).collect();
        assert_eq!(activities, [0, 2, 300, 70_000]);
        let stored = chunk.clone().into_stored(7);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, chunk_key(7, 0));
        assert!(stored[0].0.starts_with(&learner_prefix(7)) && stored[0].0.len() == 9);
        assert_eq!(SummaryChunk::decode(&stored[0].1).unwrap(), chunk);
        assert_eq!(chunk.get(300), Some(&[44u8; 40][..]));
        assert_eq!(chunk.get(3), None);
    }

    #[test]
    fn an_activity_with_no_summaries_left_is_taken_out_and_an_empty_chunk_is_not_stored() {
        let mut chunk = chunk(&[(1, 5), (2, 5)]);
        chunk.set(1, None);
        chunk.set(9, None);
        assert_eq!(chunk.activities().len(), 1);
        chunk.set(2, None);
        assert_eq!(chunk.into_stored(1), []);
    }

    #[test]
    fn a_chunk_past_its_size_splits_by_bytes_each_piece_under_its_first_activitys_key() {
        let activities: Vec<(u32, usize)> = (0..40).map(|a| (a * 3, 50)).collect();
        let stored = chunk(&activities).into_stored(5);
        assert!(stored.len() >= 2);
        let mut seen = Vec::new();
        for (key, value) in &stored {
            assert!(value.len() <= CHUNK_BYTES + 8, "{} bytes", value.len());
            let piece = SummaryChunk::decode(value).unwrap();
            assert_eq!(*key, chunk_key(5, piece.activities()[0].0));
            seen.extend(piece.activities().iter().map(|(a, _)| *a));
        }
        assert_eq!(seen, (0..40).map(|a| a * 3).collect::<Vec<u32>>(), "every activity once, in order");
        // Halves: neither piece of a chunk just past the size is tiny.
        let stored = chunk(&(0..20).map(|a| (a, 50)).collect::<Vec<_>>()).into_stored(5);
        let pieces: Vec<usize> =
            stored.iter().map(|(_, v)| SummaryChunk::decode(v).unwrap().activities().len()).collect();
        assert_eq!(pieces, [10, 10]);
        // One activity's summaries alone are never split, however big.
        let stored = chunk(&[(1, 10), (2, 5_000), (3, 10)]).into_stored(5);
        let pieces: Vec<Vec<u32>> = stored
            .iter()
            .map(|(_, v)| SummaryChunk::decode(v).unwrap().activities().iter().map(|(a, _)| *a).collect())
            .collect();
        assert!(pieces.contains(&vec![2]), "{pieces:?}");
    }

    #[test]
    fn a_malformed_chunk_is_refused() {
        let good = chunk(&[(4, 2), (6, 2)]).into_stored(1).remove(0).1;
        assert!(SummaryChunk::decode(&good).is_ok());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(SummaryChunk::decode(&trailing).unwrap_err().contains("after"));
        assert!(SummaryChunk::decode(&good[..good.len() - 1]).is_err(), "cut short");
        let mut format = good.clone();
        format[0] = 2;
        assert!(SummaryChunk::decode(&format).unwrap_err().contains("format"));
        // Format, count, then the first activity (step, length, two bytes):
        // the second's step made 0.
        let mut repeated = good.clone();
        assert_eq!(repeated[6], 2);
        repeated[6] = 0;
        assert!(SummaryChunk::decode(&repeated).unwrap_err().contains("order"));
        let mut empty = good;
        empty[3] = 0;
        assert!(SummaryChunk::decode(&empty).is_err());
        assert!(SummaryChunk::decode(&[FORMAT, 0]).unwrap_err().contains("no activities"));
    }
}
