//! Key layout of the hub tree: a one-byte table tag, then length-prefixed
//! text parts, so any text can be a part and keys sort part by part.

pub const META_OFFSET: &[u8] = b"M:offset";
pub const META_FRAMEWORKS: &[u8] = b"M:frameworks";
/// The layout of the tree; a tree of another layout is rebuilt from the log.
pub const META_LAYOUT: &[u8] = b"M:layout";
/// The current layout: 10 = uptake fact rows and a learner's summaries
/// packed many to a key (`fact_chunks`, `summary_chunks`; 9 = a row, and a
/// learner's summaries on one activity, to a key, keyed by their numbers;
/// 8 = by their text; fact rows keyed by the learner's and activity's
/// numbers, their counts as varints; 7 = by their text, the counts as JSON;
/// a learner's summaries on an activity in a
/// compact binary form, `summaries.rs`; 6 = as JSON, no contribution
/// record for a statement on an
/// activity in views that follow the xAPI views, its summary keeping what
/// the directory credited; 5 = uptake digests per organisation and period,
/// learners and activities numbered; 4 = transcript entries made from the summaries when
/// read, not stored (3 = stored; a statement's contribution record keeps
/// only what retracting it reads; 2 = one summary list per learner and
/// activity, contributions holding all the statement's facts; 1 = one
/// summary key per statement)).
pub const LAYOUT: u64 = 10;

/// Learner directory: learner → organisation, staff group.
pub const LEARNER: u8 = b'L';
/// Organisation directory: code → name, parent.
pub const ORGANISATION: u8 = b'O';
/// Children of an organisation: parent, child.
pub const CHILD: u8 = b'K';
/// What a statement contributed, to retract it when voided: kept for
/// every counted statement by views that follow no xAPI views, else only
/// for one on no activity (see `Contribution` in `views.rs`).
pub const CONTRIBUTION: u8 = b'X';
/// Statements voided (possibly before they arrived).
pub const VOIDED: u8 = b'Y';
/// Transcript evidence, in chunks of a learner's activities (see
/// `summary_chunks`): learner's number, the chunk's first activity's number
/// (four bytes each, big-endian, no length parts) → for each activity, each
/// statement's summary, by id, from which the transcript entry is made when
/// read.
pub const SUMMARY: u8 = b'R';
/// Competency evidence: learner, competency, statement.
pub const EVIDENCE: u8 = b'E';
/// Competency status: learner, competency.
pub const COMPETENCY: u8 = b'Q';
/// Achieved competencies by organisation: organisation, competency, learner.
pub const COVERAGE: u8 = b'G';
/// Uptake facts, in chunks of rows of one organisation and day (see
/// `fact_chunks`): organisation, day, then the chunk's first row's learner's
/// number, activity's number (empty for a statement on no activity),
/// platform and staff group → the chunk's rows and their counts. The
/// numbers are those of the digests (`LEARNER_NUMBER`, `ACTIVITY_NUMBER`),
/// four bytes big-endian.
pub const FACT: u8 = b'F';
/// Uptake digests: organisation, granularity (`day`, `week`, `month`),
/// period label → what the period's uptake row counts (see `digests`).
pub const DIGEST: u8 = b'P';
/// An uptake digest changed by a committed batch and not yet written:
/// the tag, then the digest's key. Rebuilt from the fact rows on open.
pub const DIGEST_PENDING: u8 = b'D';
/// Learner numbers (in digests and summaries' keys): learner → u32.
pub const LEARNER_NUMBER: u8 = b'N';
/// Activity numbers (in digests and summaries' keys): activity → u32.
pub const ACTIVITY_NUMBER: u8 = b'A';
/// Activities by number: u32 (big-endian, no length part) → activity.
pub const ACTIVITY_OF_NUMBER: u8 = b'B';
/// The next learner number and the next activity number.
pub const META_LEARNER_NUMBERS: &[u8] = b"M:learner-numbers";
pub const META_ACTIVITY_NUMBERS: &[u8] = b"M:activity-numbers";

pub fn key(tag: u8, parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + parts.iter().map(|part| 4 + part.len()).sum::<usize>());
    out.push(tag);
    for part in parts {
        push_part(&mut out, part.as_bytes());
    }
    out
}

/// [`key`] of parts that need not be text (such as numbers).
pub fn key_of_bytes(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + parts.iter().map(|part| 4 + part.len()).sum::<usize>());
    out.push(tag);
    for part in parts {
        push_part(&mut out, part);
    }
    out
}

/// A part: its length (u32, big-endian), then its bytes.
fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    out.extend_from_slice(&(part.len() as u32).to_be_bytes());
    out.extend_from_slice(part);
}

/// The length-prefixed part at the start of `rest`, which moves past it;
/// `None` if it is cut short.
fn next_part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let part = rest.get(4..4 + length)?;
    *rest = rest.get(4 + length..)?;
    Some(part)
}

/// The text parts after the tag; `None` if the key is malformed.
pub fn parts(key: &[u8]) -> Option<Vec<String>> {
    let mut rest = key.get(1..)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        out.push(String::from_utf8(next_part(&mut rest)?.to_vec()).ok()?);
    }
    Some(out)
}

/// Exactly `N` text parts after the tag, borrowed from the key: no copies,
/// for scans that read many keys. `None` if the key is malformed or has
/// another number of parts.
pub fn split<const N: usize>(key: &[u8]) -> Option<[&[u8]; N]> {
    let mut rest = key.get(1..)?;
    let mut out: [&[u8]; N] = [&[]; N];
    for slot in &mut out {
        *slot = next_part(&mut rest)?;
    }
    rest.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let k = key(FACT, &["RJ1", "20260301", "account:x|1", "", "e-LfH"]);
        assert_eq!(parts(&k).unwrap(), vec!["RJ1", "20260301", "account:x|1", "", "e-LfH"]);
        assert!(key(FACT, &["RJ1", "20260301"]) < key(FACT, &["RJ1", "20260302"]));
    }

    #[test]
    fn split_borrows_exactly_the_parts_asked_for() {
        let k = key(FACT, &["RJ1", "20260301", "", "e-LfH"]);
        let parts: [&[u8]; 4] = split(&k).unwrap();
        assert_eq!(parts, [&b"RJ1"[..], b"20260301", b"", b"e-LfH"]);
        assert!(split::<3>(&k).is_none(), "a part left over");
        assert!(split::<5>(&k).is_none(), "a part missing");
        assert!(split::<4>(&k[..k.len() - 1]).is_none(), "a part cut short");
        assert!(split::<0>(&[FACT]).is_some() && split::<0>(&[]).is_none());
    }
}
