//! What the LRS adds to an accepted statement, and how statements are
//! compared for the immutability rule.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
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
    statement.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
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

fn normalise_durations(statement: &mut Value) {
    if let Some(Value::String(duration)) = statement.pointer_mut("/result/duration") {
        *duration = duration_to_hundredths(duration);
    }
    if let Some(object) = statement.get_mut("object") {
        if object.get("objectType").and_then(Value::as_str) == Some("SubStatement") {
            normalise_durations(object);
        }
    }
}

/// A fingerprint of what the client said, for "same id, same statement"
/// checks: the statement without the properties the LRS sets (`id`,
/// `stored`, `authority`, `version`), with object keys sorted.
pub fn content_fingerprint(statement: &Value) -> [u8; 32] {
    let mut copy = statement.clone();
    if let Some(object) = copy.as_object_mut() {
        for property in ["id", "stored", "authority", "version"] {
            object.remove(property);
        }
    }
    normalise_durations(&mut copy);
    let canonical = sorted(&copy);
    let mut hasher = Sha256::new();
    // Serialising a Value cannot fail.
    hasher.update(serde_json::to_vec(&canonical).unwrap_or_default());
    hasher.finalize().into()
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
    if !object.contains_key("timestamp") {
        if let Some(stored) = object.get("stored").cloned() {
            object.insert("timestamp".to_owned(), stored);
        }
    }
}

/// The id of the statement this one voids, if it is a voiding statement.
pub fn voided_target(statement: &Value) -> Option<Uuid> {
    if statement.pointer("/verb/id").and_then(Value::as_str) != Some(VOIDED_VERB) {
        return None;
    }
    statement_ref_target(statement)
}

/// The id a StatementRef object points at.
pub fn statement_ref_target(statement: &Value) -> Option<Uuid> {
    let object = statement.get("object")?;
    if object.get("objectType").and_then(Value::as_str) != Some("StatementRef") {
        return None;
    }
    object.get("id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok())
}

/// The activity ids a statement mentions: its object (when an Activity) and,
/// under the broad rule, every context activity and the same inside a
/// SubStatement.
pub fn activity_ids(statement: &Value, related: bool, out: &mut Vec<String>) {
    let object = &statement["object"];
    let kind = object.get("objectType").and_then(Value::as_str).unwrap_or("Activity");
    if kind == "Activity" {
        if let Some(id) = object.get("id").and_then(Value::as_str) {
            out.push(id.to_owned());
        }
    }
    if !related {
        return;
    }
    if kind == "SubStatement" {
        activity_ids(object, true, out);
    }
    out.extend(context_activities(statement).filter_map(|a| a.get("id").and_then(Value::as_str)).map(str::to_owned));
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
    match object.get("objectType").and_then(Value::as_str).unwrap_or("Activity") {
        "Activity" => out.push(object),
        "SubStatement" => collect_activities(object, out),
        _ => {}
    }
    out.extend(context_activities(statement));
}

/// Every Activity in `context.contextActivities` (any list; a single object
/// as 1.0.3 allowed counts as a list of one).
pub fn context_activities(statement: &Value) -> impl Iterator<Item = &Value> {
    let lists = statement.pointer("/context/contextActivities").and_then(Value::as_object);
    lists.into_iter().flat_map(|lists| lists.values()).flat_map(|list| match list {
        Value::Array(items) => items.iter().collect::<Vec<_>>(),
        single => vec![single],
    })
}

/// 1.0.3 allowed a single object where 2.0 requires arrays in
/// `contextActivities`; the LRS stores the array form.
pub fn normalise_context_activities(statement: &mut Value) {
    if let Some(Value::Object(lists)) = statement.pointer_mut("/context/contextActivities") {
        for list in lists.values_mut() {
            if list.is_object() {
                let single = list.take();
                *list = Value::Array(vec![single]);
            }
        }
    }
    if let Some(object) = statement.get_mut("object") {
        if object.get("objectType").and_then(Value::as_str) == Some("SubStatement") {
            normalise_context_activities(object);
        }
    }
}

#[cfg(test)]
mod tests {
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
