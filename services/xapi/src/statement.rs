//! What the LRS adds to an accepted statement, and how statements are
//! compared for the immutability rule.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::XapiVersion;

pub const VOIDED_VERB: &str = "http://adlnet.gov/expapi/verbs/voided";
pub const SIGNATURE_USAGE_TYPE: &str = "http://adlnet.gov/expapi/attachments/signature";

/// Formats a time the way the LRS writes `stored` and `timestamp`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The statement id, parsed, if present and a UUID.
pub fn statement_id(statement: &Value) -> Option<Uuid> {
    statement.member("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

/// An ISO 8601 duration with its seconds cut to hundredths, as xAPI 2.0
/// compares them ("PT1.2345S" and "PT1.230S" both become "PT1.23S").
pub fn duration_to_hundredths(duration: &str) -> String {
    let Some(body) = duration.strip_suffix('S') else {
        return duration.to_owned();
    };
    let start = body.rfind(|c: char| c.is_ascii_alphabetic()).map_or(0, |i| i + 1);
    let (head, seconds) = body.split_at(start);
    let Some((whole, fraction)) = seconds.split_once('.') else {
        return duration.to_owned();
    };
    let mut hundredths: String = fraction.chars().take(2).collect();
    while hundredths.len() < 2 {
        hundredths.push('0');
    }
    let hundredths = hundredths.trim_end_matches('0');
    if hundredths.is_empty() { format!("{head}{whole}S") } else { format!("{head}{whole}.{hundredths}S") }
}

/// A fingerprint of what the client said, for "same id, same statement"
/// checks: the statement without the properties the LRS sets (`id`,
/// `stored`, `authority`, `version`), with object keys sorted.
pub fn content_fingerprint(statement: &Value) -> [u8; 32] {
    use std::io::Write;
    let mut out = Canonical::with_capacity(HASH_BUFFER, HashWriter(Sha256::new()));
    write_statement(&mut out, statement, true);
    // Writing to a digest cannot fail.
    let _ = out.flush();
    let (hasher, _) = out.into_parts();
    hasher.0.finalize().into()
}

/// Bytes of canonical text gathered before they are fed to the digest.
const HASH_BUFFER: usize = 4096;

/// Where the canonical text is written: the digest, a few kilobytes at a
/// time (the text is never held in memory whole, and the digest is not
/// called for every comma).
type Canonical = std::io::BufWriter<HashWriter>;

/// Feeds what is written into the digest.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An object's properties in byte order of their keys.
fn sorted(object: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = object.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

/// Writes a JSON value with object keys in byte order: the text
/// `serde_json` gives for a copy whose maps were rebuilt in sorted order.
fn write_sorted(out: &mut Canonical, value: &Value) {
    use std::io::Write;
    match value {
        Value::Object(object) => {
            write_object(out, &sorted(object), |out, _, value| write_sorted(out, value));
        }
        Value::Array(items) => {
            let _ = out.write_all(b"[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    let _ = out.write_all(b",");
                }
                write_sorted(out, item);
            }
            let _ = out.write_all(b"]");
        }
        // Writing to a digest cannot fail.
        scalar => {
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

fn write_object(
    out: &mut Canonical,
    entries: &[(&String, &Value)],
    mut write_value: impl FnMut(&mut Canonical, &str, &Value),
) {
    use std::io::Write;
    let _ = out.write_all(b"{");
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 {
            let _ = out.write_all(b",");
        }
        let _ = serde_json::to_writer(&mut *out, key);
        let _ = out.write_all(b":");
        write_value(out, key, value);
    }
    let _ = out.write_all(b"}");
}

/// A statement (or SubStatement) for the fingerprint: without what the LRS
/// sets (top level only), durations in hundredths of a second.
fn write_statement(out: &mut Canonical, statement: &Value, top: bool) {
    let Value::Object(object) = statement else {
        write_sorted(out, statement);
        return;
    };
    let mut entries = sorted(object);
    entries.retain(|(key, _)| !(top && matches!(key.as_str(), "id" | "stored" | "authority" | "version")));
    write_object(out, &entries, |out, key, value| match (key, value) {
        ("result", Value::Object(result)) => {
            write_object(out, &sorted(result), |out, key, value| match (key, value) {
                ("duration", Value::String(duration)) => {
                    write_sorted(out, &Value::String(duration_to_hundredths(duration)));
                }
                (_, other) => write_sorted(out, other),
            });
        }
        ("object", object) if object.member("objectType").and_then(Value::as_str) == Some("SubStatement") => {
            write_statement(out, object, false);
        }
        _ => write_sorted(out, value),
    });
}

/// Sets what the LRS owns on an accepted statement: `id` when absent,
/// `stored`, `authority`, and `version` when absent. A missing `timestamp`
/// is not stored but filled from `stored` on the way out (see
/// [`fill_timestamp`]), so a re-sent statement still compares equal.
pub fn complete_for_storage(
    statement: &mut Value,
    id: Uuid,
    stored: DateTime<Utc>,
    authority: &Value,
    version: XapiVersion,
) {
    let Some(object) = statement.as_object_mut() else {
        return;
    };
    let stored_text = format_time(stored);
    object.insert("id".to_owned(), Value::String(id.to_string()));
    object.insert("stored".to_owned(), Value::String(stored_text));
    object.insert("authority".to_owned(), authority.clone());
    if !object.contains_key("version") {
        object.insert("version".to_owned(), Value::String(version.default_statement_version().to_owned()));
    }
}

/// Sets `timestamp` to `stored` when the client gave none.
pub fn fill_timestamp(statement: &mut Value) {
    let Some(object) = statement.as_object_mut() else {
        return;
    };
    if !object.contains_key("timestamp")
        && let Some(stored) = object.member("stored").cloned()
    {
        object.insert("timestamp".to_owned(), stored);
    }
}

/// The value at `path`, object keys outermost first: what
/// `Value::pointer("/a/b")` finds, without parsing and unescaping a pointer
/// (an allocation for every key) for every statement.
pub fn field<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.member(key))
}

/// As [`field`], to change the value.
pub fn field_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |value, key| {
        let object = value.as_object_mut()?;
        if object.len() <= SCANNED_MEMBERS {
            object.iter_mut().find_map(|(name, value)| (name == key).then_some(value))
        } else {
            object.get_mut(*key)
        }
    })
}

/// Objects with at most this many members are searched in order rather
/// than through their hash table: a statement's objects are small, and
/// comparing a few names (their lengths first) costs less than hashing
/// the one sought with SipHash, which `serde_json`'s ordered maps use.
const SCANNED_MEMBERS: usize = 12;

/// Finding a member of a JSON object by name (what `get` does), cheaper
/// for the small objects statements are made of.
pub trait Members {
    /// The member `name`, if this is an object that has one.
    fn member(&self, name: &str) -> Option<&Value>;
}

impl Members for serde_json::Map<String, Value> {
    fn member(&self, name: &str) -> Option<&Value> {
        if self.len() <= SCANNED_MEMBERS {
            self.iter().find_map(|(key, value)| (key == name).then_some(value))
        } else {
            self.get(name)
        }
    }
}

impl Members for Value {
    fn member(&self, name: &str) -> Option<&Value> {
        self.as_object()?.member(name)
    }
}

/// The id of the statement this one voids, if it is a voiding statement.
pub fn voided_target(statement: &Value) -> Option<Uuid> {
    if field(statement, &["verb", "id"]).and_then(Value::as_str) != Some(VOIDED_VERB) {
        return None;
    }
    statement_ref_target(statement)
}

/// The id a StatementRef object points at.
pub fn statement_ref_target(statement: &Value) -> Option<Uuid> {
    let object = statement.member("object")?;
    if object.member("objectType").and_then(Value::as_str) != Some("StatementRef") {
        return None;
    }
    object.member("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

/// The activity ids a statement mentions: its object (when an Activity) and,
/// under the broad rule, every context activity and the same inside a
/// SubStatement.
pub fn activity_ids(statement: &Value, related: bool, out: &mut Vec<String>) {
    let object = &statement["object"];
    let kind = object.member("objectType").and_then(Value::as_str).unwrap_or("Activity");
    if kind == "Activity"
        && let Some(id) = object.member("id").and_then(Value::as_str)
    {
        out.push(id.to_owned());
    }
    if !related {
        return;
    }
    if kind == "SubStatement" {
        activity_ids(object, true, out);
    }
    out.extend(context_activities(statement).filter_map(|a| a.member("id").and_then(Value::as_str)).map(str::to_owned));
}

/// Every Activity object in a statement with a definition, for the
/// Activities resource: (activity id, activity object).
pub fn activities_with_definitions(statement: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    collect_activities(statement, &mut found);
    found
}

fn collect_activities<'a>(statement: &'a Value, out: &mut Vec<&'a Value>) {
    let object = &statement["object"];
    match object.member("objectType").and_then(Value::as_str).unwrap_or("Activity") {
        "Activity" => out.push(object),
        "SubStatement" => collect_activities(object, out),
        _ => {}
    }
    out.extend(context_activities(statement));
}

/// Every Activity in `context.contextActivities` (any list; a single object
/// as 1.0.3 allowed counts as a list of one).
pub fn context_activities(statement: &Value) -> impl Iterator<Item = &Value> {
    let lists = field(statement, &["context", "contextActivities"]).and_then(Value::as_object);
    lists.into_iter().flat_map(|lists| lists.values()).flat_map(|list| match list {
        Value::Array(items) => items.as_slice(),
        single => std::slice::from_ref(single),
    })
}

/// 1.0.3 allowed a single object where 2.0 requires arrays in
/// `contextActivities`; the LRS stores the array form.
pub fn normalise_context_activities(statement: &mut Value) {
    if let Some(Value::Object(lists)) = field_mut(statement, &["context", "contextActivities"]) {
        for list in lists.values_mut() {
            if list.is_object() {
                let single = list.take();
                *list = Value::Array(vec![single]);
            }
        }
    }
    if let Some(object) = statement.get_mut("object")
        && object.member("objectType").and_then(Value::as_str) == Some("SubStatement")
    {
        normalise_context_activities(object);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    #[test]
    fn members_are_found_alike_in_objects_searched_in_order_and_by_hash() {
        for size in [1, SCANNED_MEMBERS, SCANNED_MEMBERS + 1, 40] {
            let names: Vec<String> = (0..size).map(|n| format!("m{n}")).collect();
            let mut value = serde_json::json!({ "outer": {} });
            for (n, name) in names.iter().enumerate() {
                value["outer"][name] = serde_json::json!({ "inner": n });
            }
            for (n, name) in names.iter().enumerate() {
                assert_eq!(field(&value, &["outer", name, "inner"]), Some(&serde_json::json!(n)), "{name} of {size}");
                assert_eq!(value["outer"].member(name), value["outer"].get(name.as_str()), "{name} of {size}");
                *field_mut(&mut value, &["outer", name, "inner"]).unwrap() = serde_json::json!(n + 100);
                assert_eq!(value["outer"][name]["inner"], serde_json::json!(n + 100), "{name} of {size}");
            }
            // Absent names, prefixes of present ones, and values that are not objects.
            for missing in ["m", "m1x", "", "inner"] {
                assert_eq!(value["outer"].member(missing), None, "{missing} of {size}");
                assert!(field_mut(&mut value, &["outer", missing]).is_none(), "{missing} of {size}");
            }
            assert_eq!(field(&value, &["outer", "m0", "inner", "deeper"]), None);
            assert_eq!(serde_json::json!([1, 2]).member("m0"), None);
        }
    }

    /// The fingerprint as first defined: copy, strip, normalise, rebuild
    /// every map in key order, serialise, hash. The streaming one must
    /// give the same digests (they are stored in the views).
    fn reference_fingerprint(statement: &Value) -> [u8; 32] {
        fn normalise_durations(statement: &mut Value) {
            if let Some(Value::String(duration)) = statement.pointer_mut("/result/duration") {
                *duration = duration_to_hundredths(duration);
            }
            if let Some(object) = statement.get_mut("object")
                && object.get("objectType").and_then(Value::as_str) == Some("SubStatement")
            {
                normalise_durations(object);
            }
        }
        fn sorted(value: &Value) -> Value {
            match value {
                Value::Object(object) => {
                    let mut keys: Vec<&String> = object.keys().collect();
                    keys.sort();
                    let mut out = Map::new();
                    for key in keys {
                        out.insert(key.clone(), sorted(&object[key]));
                    }
                    Value::Object(out)
                }
                Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
                other => other.clone(),
            }
        }
        let mut copy = statement.clone();
        if let Some(object) = copy.as_object_mut() {
            for property in ["id", "stored", "authority", "version"] {
                object.remove(property);
            }
        }
        normalise_durations(&mut copy);
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&sorted(&copy)).unwrap_or_default());
        hasher.finalize().into()
    }

    #[test]
    fn the_streaming_fingerprint_equals_the_reference() {
        let cases = [
            json!({"id": "x", "stored": "s", "authority": {"a": 1}, "version": "1.0.0", "verb": {"id": "v", "display": {"en-GB": "é\"\n", "de": "ä"}}}),
            json!({"actor": {"mbox": "mailto:a@b"}, "result": {"duration": "PT1.2345S", "score": {"scaled": 0.5, "raw": 1e3}, "extensions": {"z": [1, {"b": null, "a": true}], "a": -0.0}}}),
            json!({"object": {"objectType": "SubStatement", "id": "kept", "result": {"duration": "PT90M"}, "object": {"objectType": "Activity", "id": "x"}}, "result": "not an object"}),
            json!({"result": {"duration": 5}, "object": {"objectType": "Activity", "version": "kept below the top"}}),
            json!([1, 2, {"b": 1, "a": 2}]),
            json!({"\u{1F600}": 1, "Z": 2, "a": 3, "": 4, "context": {"extensions": {"https://e/x": {"nested": [[], {}]}}}}),
            // Longer than the writer's buffer: in many small pieces, and
            // in one piece larger than the buffer.
            json!({"context": {"extensions": {"https://e/list": (0..2_000).collect::<Vec<u32>>()}}}),
            json!({"verb": {"id": "v"}, "result": {"response": "r".repeat(3 * HASH_BUFFER)}, "timestamp": "t"}),
        ];
        for case in &cases {
            assert_eq!(content_fingerprint(case), reference_fingerprint(case), "{case}");
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprint_ignores_lrs_properties_and_key_order() {
        let a = json!({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://v"}, "object": {"id": "http://o"}});
        let b = json!({"object": {"id": "http://o"}, "verb": {"id": "http://v"}, "actor": {"mbox": "mailto:a@example.com"},
            "stored": "2020-01-01T00:00:00Z", "authority": {"mbox": "mailto:x@example.com"}, "id": "00000000-0000-4000-8000-000000000000"});
        assert_eq!(content_fingerprint(&a), content_fingerprint(&b));
        let c = json!({"actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://v2"}, "object": {"id": "http://o"}});
        assert_ne!(content_fingerprint(&a), content_fingerprint(&c));
    }

    #[test]
    fn durations_compare_to_hundredths() {
        assert_eq!(duration_to_hundredths("PT1.2345S"), "PT1.23S");
        assert_eq!(duration_to_hundredths("PT1H2M3.999S"), "PT1H2M3.99S");
        assert_eq!(duration_to_hundredths("PT3.001S"), "PT3S");
        assert_eq!(duration_to_hundredths("PT3.5S"), "PT3.5S");
        assert_eq!(duration_to_hundredths("P1D"), "P1D");
    }

    #[test]
    fn single_context_activity_becomes_an_array() {
        let mut s = json!({"context": {"contextActivities": {"parent": {"id": "http://p"}}}});
        normalise_context_activities(&mut s);
        assert_eq!(s["context"]["contextActivities"]["parent"], json!([{"id": "http://p"}]));
    }
}
