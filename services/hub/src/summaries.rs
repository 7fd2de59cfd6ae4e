//! A learner's summaries on one activity (the `R` table), in a compact
//! binary form.
//!
//! The table is read and rewritten for every statement counted, and read
//! whole for every transcript. As JSON, each summary repeated its field
//! names, spelt its time and statement id out as text, and repeated the
//! verb, platform and activity name the summary before it mostly had. Here,
//! after a format byte and the number of summaries (a varint), each
//! summary is:
//!
//! - the statement id: its 16 bytes when it is a UUID in canonical text, else
//!   the text;
//! - a `u16` of flags: which optional fields follow, and which of verb,
//!   platform and name are the same as the summary before's;
//! - its time (seconds as a zigzag varint, then nanoseconds) and sequence
//!   (varint);
//! - the fields the flags say are there.
//!
//! Strings are a varint length and their UTF-8 bytes. Summaries come in
//! the map's order (by id), so one map always has one encoding: replays
//! compare trees byte for byte.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use lrs_projection::codec::{Reader, put_str, put_varint, unzigzag, zigzag};

/// One statement's part in a transcript entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub(crate) time: DateTime<Utc>,
    pub(crate) sequence: u128,
    pub(crate) verb: String,
    pub(crate) scaled: Option<f64>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) platform: String,
    pub(crate) name: Option<String>,
    /// The organisation and staff group the learner directory credited when
    /// the statement arrived, if the statement did not name both itself.
    pub(crate) credited: Option<Credited>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Credited {
    pub(crate) organisation: Option<String>,
    pub(crate) staff_group: Option<String>,
}

/// A learner's summaries on one activity, by statement id.
pub(crate) type Summaries = BTreeMap<String, Summary>;

/// The first byte of every encoding: its format.
const FORMAT: u8 = 1;

/// How an id is written: a UUID's 16 bytes, or text.
const ID_UUID: u8 = 0;
const ID_TEXT: u8 = 1;

const SCALED: u16 = 1;
const DURATION: u16 = 1 << 1;
const NAME: u16 = 1 << 2;
const CREDITED: u16 = 1 << 3;
const CREDITED_ORGANISATION: u16 = 1 << 4;
const CREDITED_STAFF_GROUP: u16 = 1 << 5;
const SAME_VERB: u16 = 1 << 6;
const SAME_PLATFORM: u16 = 1 << 7;
const SAME_NAME: u16 = 1 << 8;
const KNOWN_FLAGS: u16 = (1 << 9) - 1;

/// The bytes the `R` table keeps for `summaries`.
pub(crate) fn encode(summaries: &Summaries) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 96 * summaries.len());
    out.push(FORMAT);
    put_varint(&mut out, summaries.len() as u128);
    let mut previous: Option<&Summary> = None;
    for (id, summary) in summaries {
        put_id(&mut out, id);
        let same_verb = previous.is_some_and(|p| p.verb == summary.verb);
        let same_platform = previous.is_some_and(|p| p.platform == summary.platform);
        let same_name = summary.name.is_some() && previous.is_some_and(|p| p.name == summary.name);
        let mut flags = 0;
        for (present, flag) in [
            (summary.scaled.is_some(), SCALED),
            (summary.duration_ms.is_some(), DURATION),
            (summary.name.is_some(), NAME),
            (summary.credited.is_some(), CREDITED),
            (summary.credited.as_ref().is_some_and(|c| c.organisation.is_some()), CREDITED_ORGANISATION),
            (summary.credited.as_ref().is_some_and(|c| c.staff_group.is_some()), CREDITED_STAFF_GROUP),
            (same_verb, SAME_VERB),
            (same_platform, SAME_PLATFORM),
            (same_name, SAME_NAME),
        ] {
            if present {
                flags |= flag;
            }
        }
        out.extend_from_slice(&flags.to_le_bytes());
        put_varint(&mut out, zigzag(summary.time.timestamp()));
        put_varint(&mut out, u128::from(summary.time.timestamp_subsec_nanos()));
        put_varint(&mut out, summary.sequence);
        if !same_verb {
            put_str(&mut out, &summary.verb);
        }
        if let Some(scaled) = summary.scaled {
            out.extend_from_slice(&scaled.to_le_bytes());
        }
        if let Some(duration) = summary.duration_ms {
            put_varint(&mut out, u128::from(duration));
        }
        if !same_platform {
            put_str(&mut out, &summary.platform);
        }
        if let (Some(name), false) = (&summary.name, same_name) {
            put_str(&mut out, name);
        }
        if let Some(credited) = &summary.credited {
            for part in [&credited.organisation, &credited.staff_group].into_iter().flatten() {
                put_str(&mut out, part);
            }
        }
        previous = Some(summary);
    }
    out
}

/// Summaries from what [`encode`] wrote; an error names what is wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<Summaries, String> {
    let mut input = Reader::new(bytes);
    let format = input.byte()?;
    if format != FORMAT {
        return Err(format!("summaries of unknown format {format}"));
    }
    let count = input.varint()?;
    let mut summaries = Summaries::new();
    let mut previous: Option<Summary> = None;
    for _ in 0..count {
        let id = read_id(&mut input)?;
        let flags = u16::from_le_bytes([input.byte()?, input.byte()?]);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(format!("summary flags {flags:#x} unknown"));
        }
        let has = |flag: u16| flags & flag != 0;
        let seconds = unzigzag(input.varint()?).ok_or("summary time out of range")?;
        let nanos = u32::try_from(input.varint()?).map_err(|_| "summary nanoseconds out of range")?;
        let time = DateTime::from_timestamp(seconds, nanos).ok_or("summary time out of range")?;
        let sequence = input.varint()?;
        let from_previous = |field: fn(&Summary) -> Option<&String>| {
            previous.as_ref().and_then(field).cloned().ok_or("a summary repeats a field the one before lacks")
        };
        let verb = if has(SAME_VERB) { from_previous(|p| Some(&p.verb))? } else { input.string()? };
        let scaled = if has(SCALED) { Some(f64::from_le_bytes(input.array()?)) } else { None };
        let duration_ms = if has(DURATION) { Some(input.u64()?) } else { None };
        let platform = if has(SAME_PLATFORM) { from_previous(|p| Some(&p.platform))? } else { input.string()? };
        let name = match (has(NAME), has(SAME_NAME)) {
            (false, false) => None,
            (true, true) => Some(from_previous(|p| p.name.as_ref())?),
            (true, false) => Some(input.string()?),
            (false, true) => return Err("a summary repeats a name it does not have".to_owned()),
        };
        let credited = if has(CREDITED) {
            let organisation = if has(CREDITED_ORGANISATION) { Some(input.string()?) } else { None };
            let staff_group = if has(CREDITED_STAFF_GROUP) { Some(input.string()?) } else { None };
            Some(Credited { organisation, staff_group })
        } else if has(CREDITED_ORGANISATION) || has(CREDITED_STAFF_GROUP) {
            return Err("a summary credits parts of nothing".to_owned());
        } else {
            None
        };
        let summary = Summary { time, sequence, verb, scaled, duration_ms, platform, name, credited };
        previous = Some(summary.clone());
        summaries.insert(id, summary);
    }
    if !input.is_done() {
        return Err("bytes after the last summary".to_owned());
    }
    Ok(summaries)
}

fn put_id(out: &mut Vec<u8>, id: &str) {
    match uuid::Uuid::try_parse(id) {
        // Only the canonical spelling comes back from the 16 bytes as the
        // same text.
        Ok(uuid) if uuid.hyphenated().to_string() == id => {
            out.push(ID_UUID);
            out.extend_from_slice(uuid.as_bytes());
        }
        _ => {
            out.push(ID_TEXT);
            put_str(out, id);
        }
    }
}

fn read_id(input: &mut Reader<'_>) -> Result<String, String> {
    match input.byte()? {
        ID_UUID => Ok(uuid::Uuid::from_bytes(input.array()?).hyphenated().to_string()),
        ID_TEXT => input.string(),
        other => Err(format!("summary id of unknown kind {other}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn summary(verb: &str, platform: &str, name: Option<&str>) -> Summary {
        Summary {
            time: DateTime::parse_from_rfc3339("2026-11-03T10:15:22.123456789Z").unwrap().with_timezone(&Utc),
            sequence: (4_321u128 << 20) | 17,
            verb: verb.to_owned(),
            scaled: Some(0.85),
            duration_ms: Some(1_234_567),
            platform: platform.to_owned(),
            name: name.map(str::to_owned),
            credited: None,
        }
    }

    #[test]
    fn summaries_come_back_as_they_went_in_and_smaller_than_json() {
        let completed = "http://adlnet.gov/expapi/verbs/completed";
        let mut summaries = Summaries::new();
        summaries.insert("3f2b1c9e-8d4a-4e1f-9b7c-2a6d5e8f0c1b".to_owned(), summary(completed, "e-LfH", Some("Fire")));
        summaries.insert("4a2b1c9e-8d4a-4e1f-9b7c-2a6d5e8f0c1b".to_owned(), summary(completed, "e-LfH", Some("Fire")));
        let mut other = summary("http://adlnet.gov/expapi/verbs/passed", "MOOC", None);
        other.scaled = None;
        other.duration_ms = None;
        other.time = DateTime::from_timestamp(-86_400 * 365, 0).unwrap();
        other.credited = Some(Credited { organisation: Some("RJ1".to_owned()), staff_group: None });
        // Not a UUID's canonical text: kept as text.
        summaries.insert("3F2B1C9E-8D4A-4E1F-9B7C-2A6D5E8F0C1B".to_owned(), other);
        let bytes = encode(&summaries);
        assert_eq!(decode(&bytes).unwrap(), summaries);
        // The second summary repeats the first's verb, platform and name.
        let first_two: Summaries = summaries.iter().skip(1).map(|(k, v)| (k.clone(), v.clone())).collect();
        let one: Summaries = summaries.iter().skip(1).take(1).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert!(
            encode(&first_two).len() - encode(&one).len() < 50,
            "{} {}",
            encode(&first_two).len(),
            encode(&one).len()
        );
    }

    #[test]
    fn damaged_summaries_are_refused_not_misread() {
        let mut summaries = Summaries::new();
        summaries.insert("3f2b1c9e-8d4a-4e1f-9b7c-2a6d5e8f0c1b".to_owned(), summary("v", "p", Some("n")));
        let bytes = encode(&summaries);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut to {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert!(decode(&unknown).is_err());
        // A first summary cannot repeat what no summary before it had.
        let mut repeating = bytes;
        repeating[19] |= SAME_VERB as u8;
        assert!(decode(&repeating).is_err());
    }

    fn any_summary() -> impl Strategy<Value = Summary> {
        let text = || prop_oneof![Just("e-LfH".to_owned()), Just("MOOC".to_owned()), ".{0,12}"];
        (
            (-62_000_000_000i64..250_000_000_000, 0u32..1_000_000_000, any::<u128>()),
            (text(), proptest::option::of(any::<f64>()), proptest::option::of(any::<u64>()), text()),
            (
                proptest::option::of(text()),
                proptest::option::of((proptest::option::of(text()), proptest::option::of(text()))),
            ),
        )
            .prop_map(
                |((seconds, nanos, sequence), (verb, scaled, duration_ms, platform), (name, credited))| Summary {
                    time: DateTime::from_timestamp(seconds, nanos).unwrap(),
                    sequence,
                    verb,
                    scaled,
                    duration_ms,
                    platform,
                    name,
                    credited: credited.map(|(organisation, staff_group)| Credited { organisation, staff_group }),
                },
            )
    }

    proptest! {
        #[test]
        fn any_summaries_round_trip(
            summaries in proptest::collection::btree_map(
                prop_oneof![any::<[u8; 16]>().prop_map(|b| uuid::Uuid::from_bytes(b).to_string()), ".{0,40}"],
                any_summary(),
                0..6,
            )
        ) {
            let decoded = decode(&encode(&summaries)).unwrap();
            // NaN is not equal to itself: compare the scores' bits.
            let bits = |s: &Summaries| s.values().map(|v| v.scaled.map(f64::to_bits)).collect::<Vec<_>>();
            prop_assert_eq!(bits(&decoded), bits(&summaries));
            let without_scores = |s: &Summaries| {
                s.iter().map(|(k, v)| (k.clone(), Summary { scaled: None, ..v.clone() })).collect::<Summaries>()
            };
            prop_assert_eq!(without_scores(&decoded), without_scores(&summaries));
        }
    }
}
