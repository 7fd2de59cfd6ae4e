//! What one statement says for the Learning Hub views.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use lrs_xapi::agent::ifi_key;
use lrs_xapi::statement::{Members, field, statement_id, voided_target};

/// The home page of Learning Hub accounts.
pub const LEARNING_HUB_HOME_PAGE: &str = "https://learninghub.nhs.uk";
/// Context extension carrying the learner's organisation (ODS code).
pub const ORGANISATION_EXTENSION: &str = "https://learninghub.nhs.uk/xapi/ext/organisation";
/// Context extension carrying the learner's staff group.
pub const STAFF_GROUP_EXTENSION: &str = "https://learninghub.nhs.uk/xapi/ext/staff-group";

pub const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
pub const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
pub const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";

/// Whether `code` is an ODS organisation code: 1 to 9 letters and digits.
pub fn is_ods_code(code: &str) -> bool {
    (1..=9).contains(&code.len()) && code.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The agent key of a Learning Hub account.
pub fn learning_hub_learner(account_name: &str) -> String {
    format!("account:{LEARNING_HUB_HOME_PAGE}|{account_name}")
}

/// The facts of one statement, before the directories are consulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementFacts {
    pub id: String,
    /// Agent key of the actor.
    pub learner: String,
    /// `timestamp`, else `stored`, in UTC.
    pub time: DateTime<Utc>,
    pub verb: String,
    /// The object activity, when the object is an Activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_type: Option<String>,
    /// The activity's display name, preferring en-GB, then en-US, then any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `context.platform`, else the name of the credential that stored it.
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_group: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_activities: Vec<String>,
}

/// What a stored statement means for the views.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A statement that counts (unless voided later).
    Counts(Box<StatementFacts>),
    /// A voiding statement: the target stops counting.
    Voids(String),
    /// Nothing the views use (no identifiable actor, no time).
    Ignored,
}

fn parse_time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = value?.as_str()?;
    lrs_xapi::validate::parse_timestamp(lrs_xapi::XapiVersion::V1_0_3, text).map(|t| t.with_timezone(&Utc))
}

/// Picks a display text: en-GB, then en-US, then any language.
pub fn preferred_text(map: &Value) -> Option<String> {
    let object = map.as_object()?;
    for language in ["en-GB", "en-US"] {
        if let Some(text) = object.get(language).and_then(Value::as_str) {
            return Some(text.to_owned());
        }
    }
    object.values().find_map(Value::as_str).map(str::to_owned)
}

/// Milliseconds of an ISO 8601 duration (`P…T…`); years and months count as
/// 365 and 30 days.
pub fn duration_ms(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, time),
        None => (rest, ""),
    };
    let mut total = 0.0_f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
            } else {
                let factor = units.iter().find(|(unit, _)| *unit == c)?.1;
                total += number.parse::<f64>().ok()? * factor;
                number.clear();
            }
        }
        number.is_empty().then_some(())
    };
    const DAY: f64 = 86_400_000.0;
    take(date, &[('Y', 365.0 * DAY), ('M', 30.0 * DAY), ('W', 7.0 * DAY), ('D', DAY)])?;
    take(time, &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1_000.0)])?;
    Some(total.round() as u64)
}

/// The organisation a statement names for its learner (the organisation
/// context extension), as the views read it.
pub fn statement_organisation(statement: &Value) -> Option<String> {
    context_extension(statement, ORGANISATION_EXTENSION)
}

fn context_extension(statement: &Value, iri: &str) -> Option<String> {
    let value = field(statement, &["context", "extensions"])?.get(iri)?;
    let text = value.as_str()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Reads a stored statement (with `stored` and `authority` set).
pub fn read_statement(statement: &Value) -> Reading {
    if let Some(target) = voided_target(statement) {
        return Reading::Voids(target.to_string());
    }
    let (Some(id), Some(learner)) = (statement_id(statement), ifi_key(&statement["actor"])) else {
        return Reading::Ignored;
    };
    let Some(time) = parse_time(statement.member("timestamp")).or_else(|| parse_time(statement.member("stored")))
    else {
        return Reading::Ignored;
    };
    let object = &statement["object"];
    let is_activity = object.member("objectType").and_then(Value::as_str).unwrap_or("Activity") == "Activity";
    let activity = if is_activity { object.member("id").and_then(Value::as_str).map(str::to_owned) } else { None };
    let definition = if is_activity { object.member("definition") } else { None };
    let platform = field(statement, &["context", "platform"])
        .and_then(Value::as_str)
        .or_else(|| field(statement, &["authority", "name"]).and_then(Value::as_str))
        .or_else(|| field(statement, &["authority", "account", "name"]).and_then(Value::as_str))
        .unwrap_or("unknown")
        .to_owned();
    let context_activities = lrs_xapi::statement::context_activities(statement)
        .filter_map(|a| a.member("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Reading::Counts(Box::new(StatementFacts {
        id: id.to_string(),
        learner,
        time,
        verb: field(statement, &["verb", "id"]).and_then(Value::as_str).unwrap_or_default().to_owned(),
        activity,
        activity_type: definition.and_then(|d| d.member("type")).and_then(Value::as_str).map(str::to_owned),
        activity_name: definition.and_then(|d| d.member("name")).and_then(preferred_text),
        scaled: field(statement, &["result", "score", "scaled"]).and_then(Value::as_f64),
        duration_ms: field(statement, &["result", "duration"]).and_then(Value::as_str).and_then(duration_ms),
        platform,
        organisation: statement_organisation(statement),
        staff_group: context_extension(statement, STAFF_GROUP_EXTENSION),
        context_activities,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("PT1H30M"), Some(5_400_000));
        assert_eq!(duration_ms("PT0.5S"), Some(500));
        assert_eq!(duration_ms("P1DT1S"), Some(86_401_000));
        assert_eq!(duration_ms("PT"), Some(0));
        assert_eq!(duration_ms("1H"), None);
        assert_eq!(duration_ms("PT5X"), None);
    }

    #[test]
    fn facts_prefer_extensions_platform_and_en_gb() {
        let statement = json!({
            "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
            "actor": { "account": { "homePage": LEARNING_HUB_HOME_PAGE, "name": "42" } },
            "verb": { "id": PASSED },
            "object": { "id": "https://a", "definition": { "name": { "en-US": "Color", "en-GB": "Colour" } } },
            "result": { "score": { "scaled": 0.9 }, "duration": "PT10M" },
            "context": { "platform": "e-LfH", "extensions": { ORGANISATION_EXTENSION: "RJ1", STAFF_GROUP_EXTENSION: "Nursing" } },
            "stored": "2026-03-01T10:00:00Z",
            "authority": { "name": "moodle", "account": { "homePage": "https://x", "name": "k" } }
        });
        let Reading::Counts(facts) = read_statement(&statement) else { panic!("counts") };
        assert_eq!(facts.learner, learning_hub_learner("42"));
        assert_eq!(facts.activity_name.as_deref(), Some("Colour"));
        assert_eq!(facts.platform, "e-LfH");
        assert_eq!(facts.organisation.as_deref(), Some("RJ1"));
        assert_eq!(facts.duration_ms, Some(600_000));
        assert_eq!(facts.time.to_rfc3339(), "2026-03-01T10:00:00+00:00");
    }
}
