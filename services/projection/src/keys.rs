//! Key layout of the views tree. Every key starts with a one-byte table tag.

use sha1::{Digest, Sha1};
use uuid::Uuid;

use lrs_xapi::events::{DocumentKey, DocumentKind};

/// The views' bookkeeping, in one key: the next log offset, the next
/// statement sequence, the latest `stored` and the index high-water mark
/// (see `Bookkeeping` in `views.rs`).
pub const META_STATE: &[u8] = b"M:state";
/// The layout of the views; views of another layout are rebuilt from the log.
pub const META_LAYOUT: &[u8] = b"M:layout";
/// The dictionary the statement records are compressed with (zstd's bytes),
/// trained once the views hold `DICTIONARY_SAMPLES` statements and written
/// with the first batch whose records use it.
pub const META_RECORD_DICTIONARY: &[u8] = b"M:record-dictionary";
/// The current layout: 13 = statement ids' entries many to a key, in
/// 2^20 buckets by a hash of the id, each the sequence alone (12 = one key
/// an id, position and content fingerprint; records after the
/// first 4,096 compressed with a dictionary trained on those (11 = where each record is kept in a file of slots
/// by sequence, not under its position in the tree, and a posting list of
/// all statements (10 = posting chunks of positions only, each the
/// difference from the one before; 9 = position ‖ id, 32 bytes an entry;
/// statement records in a file beside the tree,
/// which keeps where each is; 8 = records in the tree, with no posting list
/// of all statements, the records being one; 7 = with it; the bookkeeping in one key; 6 = in four keys,
/// with statement records compressed with zstd; 5 = not compressed,
/// keeping only the facets they inherit by StatementRef; 4 = records keyed
/// by position, found by id through a small id table, holding all their
/// facets; 3 = records keyed by id; 2 = posting chunks with related lists
/// holding the primary entries too; 1 = one key per index entry))).
pub const LAYOUT: u64 = 13;

/// Where a statement record written again is (a later statement gave it
/// facets by StatementRef), by its sequence: the file of slots has it too,
/// written once the batch is, and these repair it when the views open
/// (see `records.rs`). Rare: most statements' records are written once.
pub const REWRITTEN: u8 = b'S';
/// Statement id → its sequence ([`IdEntry`]), many ids to a key: see
/// [`id_bucket`].
pub const STATEMENT_ID: u8 = b'U';
pub const INDEX: u8 = b'I';
pub const LATE_INDEX: u8 = b'J';
pub const REFERENCES: u8 = b'R';
pub const VOIDED: u8 = b'V';
pub const DOCUMENT: u8 = b'D';
pub const ACTIVITY: u8 = b'T';
pub const AGENT: u8 = b'P';
pub const ATTACHMENT: u8 = b'H';
pub const OUTCOME: u8 = b'O';

/// The secondary indexes of statements, and the list of all statements
/// (which a query with no facet filter walks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Agent,
    /// Related agents that are not also primary agents of the statement:
    /// a `related_agents` query reads this list and the `Agent` list.
    RelatedAgent,
    Verb,
    Activity,
    /// Related activities that are not also the statement's object: a
    /// `related_activities` query reads this list and the `Activity` list.
    RelatedActivity,
    Registration,
    /// Every statement, under one list ([`all_statements`]).
    All,
}

impl IndexKind {
    fn tag(self) -> u8 {
        match self {
            Self::Agent => b'a',
            Self::RelatedAgent => b'A',
            Self::Verb => b'v',
            Self::Activity => b'o',
            Self::RelatedActivity => b'O',
            Self::Registration => b'r',
            Self::All => b'*',
        }
    }
}

/// A key of the statement queries a statement may change (see
/// [`crate::query_keys_of`]): the facet's kind and value, a statement's
/// related agents and activities under the primary kinds (`Agent`,
/// `Activity`), so one key covers a query of either kind.
pub(crate) fn query_key(kind: IndexKind, value: &str) -> String {
    format!("{}:{value}", kind.tag() as char)
}

/// Order of statements: by stored time, ties broken by log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredKey {
    pub stored_micros: i64,
    pub sequence: u64,
}

impl StoredKey {
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&((self.stored_micros as u64) ^ (1 << 63)).to_be_bytes());
        out[8..].copy_from_slice(&self.sequence.to_be_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 {
            return None;
        }
        let micros = u64::from_be_bytes(bytes[..8].try_into().ok()?) ^ (1 << 63);
        let sequence = u64::from_be_bytes(bytes[8..].try_into().ok()?);
        Some(Self { stored_micros: micros as i64, sequence })
    }
}

/// The key under which a record written again is pointed at (see
/// [`REWRITTEN`]).
pub fn rewritten(sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(REWRITTEN);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// The sequence a [`rewritten`] key names.
pub fn rewritten_sequence(key: &[u8]) -> Option<u64> {
    match key {
        [REWRITTEN, sequence @ ..] => Some(u64::from_be_bytes(sequence.try_into().ok()?)),
        _ => None,
    }
}

/// How many buckets of id entries there are, as bits of an id's hash:
/// 2^20, so about ten entries a bucket at 10 million statements.
///
/// sled keeps 33–45 bytes of memory for every key of an open tree, however
/// small its value. One key per statement made the views' memory grow with
/// the data (the server opened 10 million statements with 1.26 GB, and
/// with 0.78 GB since); a fixed number of buckets bounds it (about 40 MB),
/// at the cost of writing a statement's bucket whole, 24 bytes an entry
/// already there.
pub(crate) const ID_BUCKET_BITS: u32 = 20;

/// The most entries a bucket holds. The entry of an id whose bucket is full
/// has a key of its own ([`statement_id`]): buckets fill only past some 80
/// million statements, or when ids are chosen to share one, and neither
/// makes a write rewrite more than this many entries.
pub const ID_BUCKET_CAPACITY: usize = 128;

/// One entry of a bucket: the id, then its [`IdEntry`].
const ID_BUCKET_ENTRY_LEN: usize = 16 + ID_ENTRY_LEN;

/// The key of the bucket that holds `id`'s entry: `U` and 20 bits of a hash
/// of the id, in three bytes. The value is the bucket's entries in the order
/// they were stored ([`IdBucket`]).
pub fn id_bucket(id: Uuid) -> Vec<u8> {
    let bucket = crate::id_filter::hash(id) >> (64 - ID_BUCKET_BITS);
    let [_, _, _, _, _, high, middle, low] = bucket.to_be_bytes();
    vec![STATEMENT_ID, high, middle, low]
}

/// The key of the id entry of a statement whose bucket was full when it was
/// stored: `U` and the id's 16 bytes, its value the [`IdEntry`].
pub fn statement_id(id: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(STATEMENT_ID);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The entries of one bucket of ids ([`id_bucket`]), as stored.
#[derive(Debug, Clone, Copy)]
pub struct IdBucket<'a>(&'a [u8]);

impl<'a> IdBucket<'a> {
    /// The bucket `bytes` hold (none: an empty bucket), or `None` if they
    /// are not one.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let whole = bytes.len().is_multiple_of(ID_BUCKET_ENTRY_LEN);
        (whole && bytes.len() <= ID_BUCKET_CAPACITY * ID_BUCKET_ENTRY_LEN).then_some(Self(bytes))
    }

    /// Each id in the bucket with its entry, in the order they were stored;
    /// `None` for an entry that cannot be read.
    pub fn entries(self) -> impl Iterator<Item = Option<(Uuid, IdEntry)>> + 'a {
        self.0.chunks_exact(ID_BUCKET_ENTRY_LEN).map(|entry| {
            let (id, rest) = entry.split_at(16);
            Some((Uuid::from_slice(id).ok()?, IdEntry::from_bytes(rest)?))
        })
    }

    /// The entry of `id` in this bucket; `None` for an entry that cannot be
    /// read.
    pub fn find(self, id: Uuid) -> Option<Option<IdEntry>> {
        let found = self.0.chunks_exact(ID_BUCKET_ENTRY_LEN).find(|entry| entry[..16] == id.as_bytes()[..])?;
        Some(IdEntry::from_bytes(&found[16..]))
    }

    /// Whether the bucket takes no more entries: the entries of ids that
    /// hash to it and are not in it have keys of their own.
    pub fn is_full(self) -> bool {
        self.0.len() == ID_BUCKET_CAPACITY * ID_BUCKET_ENTRY_LEN
    }
}

/// Adds `id`'s entry to the end of the bucket `bucket` (see [`IdBucket`]),
/// which must not be full.
pub fn push_id_entry(bucket: &mut Vec<u8>, id: Uuid, entry: IdEntry) {
    bucket.extend_from_slice(id.as_bytes());
    bucket.extend_from_slice(&entry.to_bytes());
}

/// The ids a key of the `U` table and its value hold: a bucket's, or the one
/// id whose bucket was full; `None` if they are neither.
pub fn ids_under(key: &[u8], value: &[u8]) -> Option<Vec<Uuid>> {
    match key {
        [STATEMENT_ID, _, _, _] => IdBucket::parse(value)?.entries().map(|entry| entry.map(|(id, _)| id)).collect(),
        [STATEMENT_ID, id @ ..] => IdEntry::from_bytes(value).and(Uuid::from_slice(id).ok()).map(|id| vec![id]),
        _ => None,
    }
}

/// Length of an id entry: the statement's sequence, big-endian.
pub const ID_ENTRY_LEN: usize = 8;

/// Which statement an id is, as its id entry says: its sequence, which
/// numbers the file of slots. Its record, read through the slot, has the
/// rest (its position's time, and the content the fingerprint of a "same
/// id, same statement?" check is taken from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdEntry {
    pub sequence: u64,
}

impl IdEntry {
    pub fn to_bytes(self) -> [u8; ID_ENTRY_LEN] {
        self.sequence.to_be_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self { sequence: u64::from_be_bytes(bytes.try_into().ok()?) })
    }
}

/// What identifies one index value (one posting list): index kind and 16
/// bytes of the value's SHA-1, without a table tag.
pub fn posting_list(kind: IndexKind, value: &str) -> Vec<u8> {
    let mut list = vec![kind.tag()];
    list.extend_from_slice(&Sha1::digest(value.as_bytes())[..16]);
    list
}

/// The posting list of every statement: as long as the others, with no
/// value to hash.
pub fn all_statements() -> Vec<u8> {
    let mut list = vec![IndexKind::All.tag()];
    list.extend_from_slice(&[0; 16]);
    list
}

/// Key of a posting chunk: `I ‖ list ‖ the highest position in the chunk`.
/// The value is the chunk's positions, ascending ([`encode_chunk`]). A chunk
/// holds what one projection batch added to one list above every position
/// already chunked, so the chunks of a list never overlap and their keys
/// sort them; one sled key serves many statements.
pub fn index_chunk(list: &[u8], highest: StoredKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + list.len() + StoredKey::LEN);
    key.push(INDEX);
    key.extend_from_slice(list);
    key.extend_from_slice(&highest.to_bytes());
    key
}

/// The value of a posting chunk: a format byte, then each position as
/// the difference from the one before (the first from zero): its stored
/// time, zigzag-encoded, then its sequence, each a varint. The entries of
/// one list are close in time and sequence, so most take 3 to 6 bytes
/// instead of 16. A posting needs no statement id: a query reads the
/// record at the position, which holds it.
pub fn encode_chunk(positions: impl IntoIterator<Item = StoredKey>) -> Vec<u8> {
    use crate::codec::{put_varint, zigzag};
    let mut out = vec![CHUNK_FORMAT];
    let mut previous = StoredKey { stored_micros: 0, sequence: 0 };
    for position in positions {
        put_varint(&mut out, zigzag(position.stored_micros.wrapping_sub(previous.stored_micros)));
        put_varint(&mut out, zigzag(position.sequence.wrapping_sub(previous.sequence) as i64));
        previous = position;
    }
    out
}

/// The positions [`encode_chunk`] wrote; `None` if the value is not one.
pub fn decode_chunk(value: &[u8]) -> Option<Vec<StoredKey>> {
    use crate::codec::{Reader, unzigzag};
    let (&format, rest) = value.split_first()?;
    if format != CHUNK_FORMAT {
        return None;
    }
    let mut input = Reader::new(rest);
    let mut positions = Vec::with_capacity(rest.len() / 3);
    let mut previous = StoredKey { stored_micros: 0, sequence: 0 };
    while !input.is_done() {
        let micros = unzigzag(input.varint().ok()?)?;
        let sequence = unzigzag(input.varint().ok()?)?;
        previous = StoredKey {
            stored_micros: previous.stored_micros.wrapping_add(micros),
            sequence: previous.sequence.wrapping_add(sequence as u64),
        };
        positions.push(previous);
    }
    Some(positions)
}

/// The first byte of a posting chunk's value.
const CHUNK_FORMAT: u8 = 1;

/// Key of a late entry: `J ‖ list ‖ position`, value the statement id. An
/// entry at or below the positions already chunked (a StatementRef target
/// that arrived after its referrer adds facets to an older statement) goes
/// here, one key each, so chunks never overlap.
pub fn late_entry(list: &[u8], stored: StoredKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + list.len() + StoredKey::LEN);
    key.push(LATE_INDEX);
    key.extend_from_slice(list);
    key.extend_from_slice(&stored.to_bytes());
    key
}

pub fn reference(target: Uuid, referrer: Uuid) -> Vec<u8> {
    let mut key = vec![REFERENCES];
    key.extend_from_slice(target.as_bytes());
    key.extend_from_slice(referrer.as_bytes());
    key
}

pub fn references_prefix(target: Uuid) -> Vec<u8> {
    let mut key = vec![REFERENCES];
    key.extend_from_slice(target.as_bytes());
    key
}

pub fn voided(target: Uuid) -> Vec<u8> {
    let mut key = vec![VOIDED];
    key.extend_from_slice(target.as_bytes());
    key
}

fn push_part(key: &mut Vec<u8>, part: Option<&str>) {
    match part {
        None => key.push(0),
        Some(text) => {
            key.push(1);
            key.extend_from_slice(&(text.len() as u32).to_be_bytes());
            key.extend_from_slice(text.as_bytes());
        }
    }
}

/// Prefix shared by all documents of one scope (kind, activity, agent,
/// registration); the document id follows it.
pub fn document_scope(
    kind: &DocumentKind,
    activity_id: Option<&str>,
    agent: Option<&str>,
    registration: Option<&str>,
) -> Vec<u8> {
    let mut key = document_scope_any_registration(kind, activity_id, agent);
    push_part(&mut key, registration);
    key
}

/// Prefix of the documents of one activity and agent, whatever their
/// registration.
pub fn document_scope_any_registration(kind: &DocumentKind, activity_id: Option<&str>, agent: Option<&str>) -> Vec<u8> {
    let mut key = vec![DOCUMENT];
    key.push(match kind {
        DocumentKind::State => b's',
        DocumentKind::ActivityProfile => b'a',
        DocumentKind::AgentProfile => b'g',
    });
    push_part(&mut key, activity_id);
    push_part(&mut key, agent);
    key
}

pub fn document(key: &DocumentKey) -> Vec<u8> {
    let mut out =
        document_scope(&key.kind, key.activity_id.as_deref(), key.agent.as_deref(), key.registration.as_deref());
    out.extend_from_slice(key.document_id.as_bytes());
    out
}

pub fn activity(id: &str) -> Vec<u8> {
    let mut key = vec![ACTIVITY];
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn agent(ifi: &str) -> Vec<u8> {
    let mut key = vec![AGENT];
    key.extend_from_slice(ifi.as_bytes());
    key
}

pub fn attachment(sha2: &str) -> Vec<u8> {
    let mut key = vec![ATTACHMENT];
    key.extend_from_slice(sha2.to_ascii_lowercase().as_bytes());
    key
}

/// The outcome of the event at `offset`, kept only when the event was
/// refused or partly a repeat.
pub fn outcome(offset: lrs_eventlog::Offset) -> Vec<u8> {
    let mut key = vec![OUTCOME];
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_sort_by_time_then_sequence() {
        let a = StoredKey { stored_micros: -5, sequence: 9 }.to_bytes();
        let b = StoredKey { stored_micros: 3, sequence: 1 }.to_bytes();
        let c = StoredKey { stored_micros: 3, sequence: 2 }.to_bytes();
        assert!(a < b && b < c);
        assert_eq!(StoredKey::from_bytes(&c), Some(StoredKey { stored_micros: 3, sequence: 2 }));
    }

    #[test]
    fn id_entries_round_trip_and_refuse_other_lengths() {
        let entry = IdEntry { sequence: 0x0102_0304_0506_0708 };
        assert_eq!(entry.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(IdEntry::from_bytes(&entry.to_bytes()), Some(entry));
        assert_eq!(IdEntry::from_bytes(&entry.to_bytes()[1..]), None);
    }

    #[test]
    fn a_bucket_of_ids_finds_what_it_holds_fills_up_and_refuses_damage() {
        let entry = |n: u64| IdEntry { sequence: n };
        let ids = crate::id_filter::ids_sharing_top_bits(ID_BUCKET_BITS, ID_BUCKET_CAPACITY as u64 + 1);
        let key = id_bucket(ids[0]);
        assert_eq!((key.len(), key[0]), (4, STATEMENT_ID));
        assert!(ids.iter().all(|id| id_bucket(*id) == key), "the ids share a bucket");
        // Ids that differ in a few low bits (as time-ordered ids do) spread.
        let sequential: std::collections::HashSet<Vec<u8>> = (0..1_000u128)
            .map(|n| id_bucket(Uuid::from_u128((0x0190_0000_0000_7000_8000_0000_0000_0000) | n)))
            .collect();
        assert!(sequential.len() > 990, "{} buckets for 1,000 ids", sequential.len());

        let mut bucket = Vec::new();
        assert!(!IdBucket::parse(&bucket).unwrap().is_full());
        for (n, id) in ids[..ID_BUCKET_CAPACITY].iter().enumerate() {
            assert_eq!(IdBucket::parse(&bucket).unwrap().find(*id), None);
            push_id_entry(&mut bucket, *id, entry(n as u64));
        }
        let full = IdBucket::parse(&bucket).unwrap();
        assert!(full.is_full());
        assert_eq!(full.find(ids[5]), Some(Some(entry(5))));
        assert_eq!(full.find(ids[ID_BUCKET_CAPACITY]), None);
        let listed: Vec<_> = full.entries().map(Option::unwrap).collect();
        assert_eq!(listed.len(), ID_BUCKET_CAPACITY);
        assert_eq!(listed[7], (ids[7], entry(7)), "entries in the order stored");
        assert_eq!(ids_under(&key, &bucket), Some(ids[..ID_BUCKET_CAPACITY].to_vec()));
        let own = statement_id(ids[ID_BUCKET_CAPACITY]);
        assert_eq!(ids_under(&own, &entry(0).to_bytes()), Some(vec![ids[ID_BUCKET_CAPACITY]]));

        let mut beyond = bucket.clone();
        push_id_entry(&mut beyond, ids[ID_BUCKET_CAPACITY], entry(0));
        assert!(IdBucket::parse(&beyond).is_none(), "more than a bucket holds");
        assert!(IdBucket::parse(&bucket[1..]).is_none(), "a part of an entry");
        assert_eq!(ids_under(&key, &bucket[..bucket.len() - 1]), None);
        assert_eq!(ids_under(&own, &[0; 3]), None);
        assert_eq!(ids_under(&key[..3], &[]), None, "a key of neither form");
    }

    #[test]
    fn records_written_again_are_keyed_by_sequence_and_the_list_of_all_is_a_list() {
        let key = rewritten(0x0102_0304_0506_0708);
        assert_eq!(key, [b'S', 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(rewritten_sequence(&key), Some(0x0102_0304_0506_0708));
        assert_eq!(rewritten_sequence(&key[..8]), None);
        assert_eq!(rewritten_sequence(&statement_id(Uuid::nil())), None);
        let all = all_statements();
        assert_eq!(all.len(), posting_list(IndexKind::Agent, "mbox:mailto:a@example.org").len());
        assert!(all != posting_list(IndexKind::Verb, ""));
    }

    #[test]
    fn a_chunk_of_close_positions_takes_a_few_bytes_each_and_damage_is_refused() {
        let base = 1_764_892_800_000_000; // 2025-12-05, in microseconds
        let positions: Vec<StoredKey> =
            (0..100).map(|n| StoredKey { stored_micros: base + n * 1_500, sequence: 40_000 + n as u64 * 7 }).collect();
        let chunk = encode_chunk(positions.iter().copied());
        assert_eq!(decode_chunk(&chunk), Some(positions));
        // The first entry in full, the others in three bytes or fewer.
        assert!(chunk.len() < 1 + 12 + 99 * 3, "{} bytes", chunk.len());
        assert_eq!(decode_chunk(&encode_chunk([])), Some(Vec::new()));
        assert_eq!(decode_chunk(&[]), None, "no format byte");
        assert_eq!(decode_chunk(&[9, 0, 0]), None, "an unknown format");
        assert_eq!(decode_chunk(&chunk[..chunk.len() - 1]), None, "cut inside the last entry");
    }

    proptest::proptest! {
        #[test]
        fn any_positions_round_trip_through_a_chunk(
            positions in proptest::collection::vec((proptest::prelude::any::<i64>(), proptest::prelude::any::<u64>()), 0..40)
        ) {
            let positions: Vec<StoredKey> =
                positions.into_iter().map(|(stored_micros, sequence)| StoredKey { stored_micros, sequence }).collect();
            proptest::prop_assert_eq!(decode_chunk(&encode_chunk(positions.iter().copied())), Some(positions));
        }
    }
}
