//! JSON read for only some of its members.
//!
//! A reader that looks at a few members of a statement (the Learning Hub
//! views read about fifteen) pays, when it parses the statement into a
//! [`Value`], for every member it never looks at: a map entry and a string
//! for each key, a value for each leaf. [`Pruned`] parses the same text
//! into a [`Value`] that holds only the members a [`Keep`] names, skipping
//! the rest without building it. Every path the `Keep` names reads the
//! same in the pruned value as in the whole one; a reader that reads only
//! those paths cannot tell the two apart.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What to keep of a JSON value.
#[derive(Debug)]
pub enum Keep {
    /// All of it.
    All,
    /// Of an object, only these members, each kept as its `Keep` says. A
    /// value that is not an object is kept whole.
    Members(&'static [(&'static str, Keep)]),
}

impl Keep {
    fn member(members: &'static [(&'static str, Keep)], key: &str) -> Option<&'static Keep> {
        members.iter().find(|(name, _)| *name == key).map(|(_, keep)| keep)
    }
}

/// Parses a value keeping what `.0` says (see the module).
#[derive(Debug, Clone, Copy)]
pub struct Pruned(pub &'static Keep);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::All => Value::deserialize(deserializer),
            Keep::Members(members) => deserializer.deserialize_any(MembersVisitor(members)),
        }
    }
}

/// A value of which only some members of an object are kept.
struct MembersVisitor(&'static [(&'static str, Keep)]);

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match Keep::member(self.0, key.as_str()) {
                // A key given twice keeps its last value, as `Value` does.
                Some(keep) => {
                    let value = map.next_value_seed(Pruned(keep))?;
                    out.insert(key.into_string(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    // Anything but an object is kept whole, as `Value` reads it.

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A member's name, borrowed from the text unless it has escapes: a member
/// skipped costs no allocation.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Self::Borrowed(text) => text,
            Self::Owned(text) => text,
        }
    }

    fn into_string(self) -> String {
        match self {
            Self::Borrowed(text) => text.to_owned(),
            Self::Owned(text) => text,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(text))
            }

            fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(text.to_owned()))
            }

            fn visit_string<E>(self, text: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(text))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Parses a sequence of values, each kept as `.0` says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrunedSeq(pub &'static Keep);

impl<'de> DeserializeSeed<'de> for PrunedSeq {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<Value>, D::Error> {
        struct SeqVisitor(&'static Keep);
        impl<'de> Visitor<'de> for SeqVisitor {
            type Value = Vec<Value>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element_seed(Pruned(self.0))? {
                    items.push(item);
                }
                Ok(items)
            }
        }
        deserializer.deserialize_seq(SeqVisitor(self.0))
    }
}

/// `value` with only what `keep` names (what [`Pruned`] makes of its text).
pub fn prune(value: &Value, keep: &Keep) -> Value {
    match (keep, value) {
        (Keep::Members(members), Value::Object(object)) => Value::Object(
            object
                .iter()
                .filter_map(|(key, value)| Keep::member(members, key).map(|keep| (key.clone(), prune(value, keep))))
                .collect(),
        ),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    static KEEP: Keep = Keep::Members(&[
        ("id", Keep::All),
        ("verb", Keep::Members(&[("id", Keep::All)])),
        ("object", Keep::Members(&[("id", Keep::All), ("definition", Keep::Members(&[("name", Keep::All)]))])),
        ("extensions", Keep::Members(&[("https://x/é", Keep::All)])),
    ]);

    fn parse_pruned(text: &str) -> Value {
        Pruned(&KEEP).deserialize(&mut serde_json::Deserializer::from_str(text)).unwrap()
    }

    #[test]
    fn keeps_only_the_members_named() {
        let statement = json!({
            "id": "x",
            "actor": { "mbox": "mailto:a@example.com" },
            "verb": { "id": "v", "display": { "en": "did" } },
            "object": { "id": "o", "definition": { "name": { "en": "O" }, "type": "t" }, "objectType": "Activity" },
            "extensions": { "https://x/é": [1, 2.5, null, true], "https://y": 1 },
        });
        let pruned = parse_pruned(&statement.to_string());
        let expected = json!({
            "id": "x",
            "verb": { "id": "v" },
            "object": { "id": "o", "definition": { "name": { "en": "O" } } },
            "extensions": { "https://x/é": [1, 2.5, null, true] },
        });
        assert_eq!(pruned, expected);
        assert_eq!(prune(&statement, &KEEP), expected);
    }

    #[test]
    fn escaped_names_and_repeated_keys_read_as_a_value_reads_them() {
        // An escaped name is still matched; a repeated key keeps its last value.
        let text = r#"{"i\u0064":1,"verb":"not an object","id":2,"object":[{"id":3}]}"#;
        let whole: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_pruned(text), prune(&whole, &KEEP));
        assert_eq!(parse_pruned(text), json!({ "id": 2, "verb": "not an object", "object": [{ "id": 3 }] }));
    }

    #[test]
    fn a_sequence_is_pruned_item_by_item() {
        let text = r#"[{"id":1,"actor":{}},{"verb":{"id":"v","x":1}},7]"#;
        let items = PrunedSeq(&KEEP).deserialize(&mut serde_json::Deserializer::from_str(text)).unwrap();
        assert_eq!(items, vec![json!({ "id": 1 }), json!({ "verb": { "id": "v" } }), json!(7)]);
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let names = prop_oneof![
            Just("id".to_owned()),
            Just("verb".to_owned()),
            Just("object".to_owned()),
            Just("definition".to_owned()),
            Just("name".to_owned()),
            Just("extensions".to_owned()),
            Just("https://x/é".to_owned()),
            "[a-z]{1,3}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((names.clone(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Parsing pruned gives what pruning the whole value gives.
        #[test]
        fn parsing_pruned_is_pruning_the_whole(value in any_json()) {
            let text = value.to_string();
            let whole: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(parse_pruned(&text), prune(&whole, &KEEP));
        }
    }
}
