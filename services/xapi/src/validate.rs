//! Statement validation: the JSON Schemas in `schemas/xapi/` plus the rules
//! a schema cannot express.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;

use crate::XapiVersion;
use crate::statement::field;

const SCHEMA_1_0_3: &str = include_str!("../../../schemas/xapi/statement-1.0.3.json");
const SCHEMA_2_0_0: &str = include_str!("../../../schemas/xapi/statement-2.0.0.json");

/// A statement that breaks the specification: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {path})")]
pub struct ValidationError {
    /// JSON pointer of the offending property, `""` for the whole statement.
    pub path: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the statement schema for xAPI {version} is not valid JSON: {reason}")]
    NotJson { version: &'static str, reason: String },
    #[error("the statement schema for xAPI {version} does not compile: {reason}")]
    DoesNotCompile { version: &'static str, reason: String },
}

/// Validates statements against the compiled schemas and the coded rules.
/// Built once at start-up; the server refuses to start if it cannot be.
pub struct StatementValidator {
    v1_0_3: jsonschema::Validator,
    v2_0_0: jsonschema::Validator,
}

fn compile(source: &str, version: &'static str) -> Result<jsonschema::Validator, SchemaError> {
    let schema: Value =
        serde_json::from_str(source).map_err(|e| SchemaError::NotJson { version, reason: e.to_string() })?;
    jsonschema::validator_for(&schema).map_err(|e| SchemaError::DoesNotCompile { version, reason: e.to_string() })
}

impl StatementValidator {
    pub fn new() -> Result<Self, SchemaError> {
        Self::from_sources(SCHEMA_1_0_3, SCHEMA_2_0_0)
    }

    /// Builds a validator from schema texts (the shipped ones are used by
    /// [`StatementValidator::new`]); fails if either does not compile.
    pub fn from_sources(schema_1_0_3: &str, schema_2_0_0: &str) -> Result<Self, SchemaError> {
        Ok(Self { v1_0_3: compile(schema_1_0_3, "1.0.3")?, v2_0_0: compile(schema_2_0_0, "2.0.0")? })
    }

    /// Checks one statement as sent by a client.
    pub fn validate(&self, version: XapiVersion, statement: &Value) -> Result<(), ValidationError> {
        if !statement.is_object() {
            return Err(ValidationError::new("", "a statement must be a JSON object"));
        }
        let schema = match version {
            XapiVersion::V1_0_3 => &self.v1_0_3,
            XapiVersion::V2_0_0 => &self.v2_0_0,
        };
        if let Some(error) = best_schema_error(schema, statement) {
            return Err(error);
        }
        check_rules(version, statement, "")
    }
}

/// The schema error closest to the cause: the deepest instance path wins,
/// so a bad nested property is reported rather than the `oneOf` above it.
///
/// A valid statement (nearly every one) is checked by `is_valid`, which
/// stops at the first failure and builds no errors; only an invalid one is
/// walked again to find them.
fn best_schema_error(schema: &jsonschema::Validator, statement: &Value) -> Option<ValidationError> {
    if schema.is_valid(statement) {
        return None;
    }
    let mut best: Option<ValidationError> = None;
    for error in schema.iter_errors(statement).take(32) {
        let path = error.instance_path().to_string();
        let message = error.masked().to_string();
        let deeper = best.as_ref().is_none_or(|b| path.len() > b.path.len());
        if deeper {
            best = Some(ValidationError::new(path, message));
        }
    }
    best
}

fn check_rules(version: XapiVersion, statement: &Value, base: &str) -> Result<(), ValidationError> {
    check_version(version, statement, base)?;
    for property in ["timestamp", "stored"] {
        if let Some(value) = statement.get(property) {
            let path = format!("{base}/{property}");
            let text = value.as_str().ok_or_else(|| ValidationError::new(&path, "must be a string timestamp"))?;
            parse_timestamp(version, text).ok_or_else(|| {
                ValidationError::new(&path, "must be an ISO 8601 timestamp with a valid date and time zone")
            })?;
        }
    }
    if let Some(result) = statement.get("result") {
        check_score(result, &format!("{base}/result"))?;
    }
    check_language_maps(statement, &mut base.to_owned())?;
    if let Some(Value::String(tag)) = field(statement, &["context", "language"])
        && !is_language_tag(tag)
    {
        return Err(ValidationError::new(
            format!("{base}/context/language"),
            format!("{tag:?} is not a valid RFC 5646 language tag"),
        ));
    }
    check_interaction_components(statement, base)?;
    if let Some(object) = statement.get("object")
        && object.get("objectType").and_then(Value::as_str) == Some("SubStatement")
    {
        check_rules(version, object, &format!("{base}/object"))?;
    }
    Ok(())
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Appends `/` and `token`, escaped, to the JSON pointer `path`.
fn push_pointer_token(path: &mut String, token: &str) {
    path.push('/');
    if token.contains(['~', '/']) {
        path.push_str(&pointer_token(token));
    } else {
        path.push_str(token);
    }
}

/// RULES.md A.5: the 1.0.3 endpoint takes `1.0` / `1.0.x`; the 2.0 endpoint
/// also takes `2.0` / `2.0.x`. The schemas say the same; this keeps the
/// rule in force even if a schema is loosened.
fn check_version(version: XapiVersion, statement: &Value, base: &str) -> Result<(), ValidationError> {
    let Some(value) = statement.get("version") else {
        return Ok(());
    };
    let path = format!("{base}/version");
    let text = value.as_str().ok_or_else(|| ValidationError::new(&path, "version must be a string"))?;
    let patch_ok = |rest: &str| {
        rest.is_empty()
            || rest
                .strip_prefix('.')
                .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    };
    let accepted = match version {
        XapiVersion::V1_0_3 => text.strip_prefix("1.0").is_some_and(patch_ok),
        XapiVersion::V2_0_0 => {
            text.strip_prefix("1.0").is_some_and(patch_ok) || text.strip_prefix("2.0").is_some_and(patch_ok)
        }
    };
    if accepted {
        Ok(())
    } else {
        Err(ValidationError::new(path, format!("version {text:?} is not accepted by the xAPI {version} endpoint")))
    }
}

/// RULES.md A.1: `min < max`, and `min <= raw <= max` for the bounds present.
fn check_score(result: &Value, base: &str) -> Result<(), ValidationError> {
    let Some(score) = result.get("score") else {
        return Ok(());
    };
    let number = |name: &str| score.get(name).and_then(Value::as_f64);
    let (raw, min, max) = (number("raw"), number("min"), number("max"));
    if let (Some(min), Some(max)) = (min, max)
        && min >= max
    {
        return Err(ValidationError::new(format!("{base}/score/min"), "score min must be less than max"));
    }
    if let (Some(raw), Some(min)) = (raw, min)
        && raw < min
    {
        return Err(ValidationError::new(format!("{base}/score/raw"), "score raw must not be below min"));
    }
    if let (Some(raw), Some(max)) = (raw, max)
        && raw > max
    {
        return Err(ValidationError::new(format!("{base}/score/raw"), "score raw must not exceed max"));
    }
    Ok(())
}

/// RULES.md A.4: component ids are distinct within each list of every
/// activity definition in the statement (object and context activities).
/// A SubStatement is checked by its own `check_rules` call.
fn check_interaction_components(statement: &Value, base: &str) -> Result<(), ValidationError> {
    let object = statement.get("object");
    let object_is_activity =
        object.and_then(|o| o.get("objectType")).is_none_or(|kind| kind.as_str() == Some("Activity"));
    if object_is_activity && let Some(definition) = object.and_then(|o| o.get("definition")) {
        check_component_lists(definition, &format!("{base}/object/definition"))?;
    }
    let Some(Value::Object(context_activities)) = field(statement, &["context", "contextActivities"]) else {
        return Ok(());
    };
    for (key, value) in context_activities {
        let path = format!("{base}/context/contextActivities/{}", pointer_token(key));
        match value {
            Value::Array(activities) => {
                for (index, activity) in activities.iter().enumerate() {
                    if let Some(definition) = activity.get("definition") {
                        check_component_lists(definition, &format!("{path}/{index}/definition"))?;
                    }
                }
            }
            activity => {
                if let Some(definition) = activity.get("definition") {
                    check_component_lists(definition, &format!("{path}/definition"))?;
                }
            }
        }
    }
    Ok(())
}

const INTERACTION_COMPONENT_LISTS: [&str; 5] = ["choices", "scale", "source", "target", "steps"];

fn check_component_lists(definition: &Value, base: &str) -> Result<(), ValidationError> {
    for list in INTERACTION_COMPONENT_LISTS {
        let Some(Value::Array(components)) = definition.get(list) else {
            continue;
        };
        let mut seen = std::collections::HashSet::new();
        for (index, component) in components.iter().enumerate() {
            let Some(id) = component.get("id").and_then(Value::as_str) else {
                continue;
            };
            if !seen.insert(id) {
                return Err(ValidationError::new(
                    format!("{base}/{list}/{index}/id"),
                    format!("interaction component id {id:?} appears more than once in {list}"),
                ));
            }
        }
    }
    Ok(())
}

/// Parses an xAPI timestamp into an instant, checking that the date and time
/// really exist (RULES.md A.2).
///
/// Both versions take `YYYY-MM-DDThh:mm:ss[.fraction]` followed by `Z` or
/// `±hh:mm`, and reject the negative-zero offset. 1.0.3 (ISO 8601) also
/// takes a time without seconds (`Thh:mm`), `±hh` and `±hhmm` offsets, and
/// no zone at all (read as UTC). A leap second (`:60`) is accepted.
/// Fractions keep nanosecond precision; further digits are dropped.
pub fn parse_timestamp(version: XapiVersion, text: &str) -> Option<DateTime<FixedOffset>> {
    let lenient = version == XapiVersion::V1_0_3;
    let bytes = text.as_bytes();
    let mut at = 0;
    let year = read_digits(bytes, &mut at, 4)?;
    let expect = |at: &mut usize, options: &[u8]| -> bool {
        match bytes.get(*at) {
            Some(b) if options.contains(b) => {
                *at += 1;
                true
            }
            _ => false,
        }
    };
    if !expect(&mut at, b"-") {
        return None;
    }
    let month = read_digits(bytes, &mut at, 2)?;
    if !expect(&mut at, b"-") {
        return None;
    }
    let day = read_digits(bytes, &mut at, 2)?;
    if !expect(&mut at, b"Tt") {
        return None;
    }
    let hour = read_digits(bytes, &mut at, 2)?;
    if !expect(&mut at, b":") {
        return None;
    }
    let minute = read_digits(bytes, &mut at, 2)?;
    let (mut second, mut nanos) = (0, 0);
    if expect(&mut at, b":") {
        second = read_digits(bytes, &mut at, 2)?;
        if expect(&mut at, b".") {
            let start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            let fraction = bytes.get(start..at)?;
            if fraction.is_empty() {
                return None;
            }
            nanos = fraction
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(9)
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        }
    } else if !lenient {
        return None;
    }
    let offset_seconds: i32 = match bytes.get(at) {
        None if lenient => 0,
        None => return None,
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let negative = *sign == b'-';
            at += 1;
            let hours = read_digits(bytes, &mut at, 2)?;
            let minutes = if at == bytes.len() {
                if !lenient {
                    return None;
                }
                0
            } else {
                let colon = expect(&mut at, b":");
                if !colon && !lenient {
                    return None;
                }
                read_digits(bytes, &mut at, 2)?
            };
            if hours > 23 || minutes > 59 || (negative && hours == 0 && minutes == 0) {
                return None;
            }
            let magnitude = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            if negative { -magnitude } else { magnitude }
        }
        Some(_) => return None,
    };
    if at != bytes.len() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = if second == 60 {
        // chrono represents a leap second as 59 s plus an extra second of nanos.
        NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + nanos)?
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?
    };
    let offset = FixedOffset::east_opt(offset_seconds)?;
    NaiveDateTime::new(date, time).and_local_timezone(offset).single()
}

/// Reads exactly `len` ASCII digits at `*at`.
fn read_digits(bytes: &[u8], at: &mut usize, len: usize) -> Option<u32> {
    let digits = bytes.get(*at..*at + len)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *at += len;
    Some(digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// The irregular grandfathered tags of RFC 5646 (they match no other rule).
const IRREGULAR_TAGS: [&str; 17] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
];

/// Whether `tag` is a *valid* RFC 5646 language tag (RULES.md A.3): it is
/// well-formed (section 2.1, matched case-insensitively), and it repeats no
/// variant and no extension singleton (section 2.2.9). Subtags are not
/// checked against the IANA registry.
pub fn is_language_tag(tag: &str) -> bool {
    if IRREGULAR_TAGS.iter().any(|irregular| irregular.eq_ignore_ascii_case(tag)) {
        return true;
    }
    let subtags: Vec<&str> = tag.split('-').collect();
    if subtags.iter().any(|s| s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return false;
    }
    let alpha = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let is_private_singleton = |s: &str| s.eq_ignore_ascii_case("x");
    let mut i = 0;
    let at = |i: usize| subtags.get(i).copied();
    // privateuse = "x" 1*("-" (1*8alphanum))
    let private_use = |i: usize| i + 1 < subtags.len() && at(i).is_some_and(is_private_singleton);
    if private_use(0) {
        return true;
    }
    // language = 2*3ALPHA ["-" extlang] / 4ALPHA / 5*8ALPHA
    let Some(language) = at(0) else {
        return false;
    };
    if !(alpha(language) && language.len() >= 2) {
        return false;
    }
    i += 1;
    if language.len() <= 3 {
        // extlang = 3ALPHA *2("-" 3ALPHA)
        let mut extlangs = 0;
        while extlangs < 3 && at(i).is_some_and(|s| s.len() == 3 && alpha(s)) {
            extlangs += 1;
            i += 1;
        }
    }
    // script = 4ALPHA
    if at(i).is_some_and(|s| s.len() == 4 && alpha(s)) {
        i += 1;
    }
    // region = 2ALPHA / 3DIGIT
    if at(i).is_some_and(|s| (s.len() == 2 && alpha(s)) || (s.len() == 3 && digit(s))) {
        i += 1;
    }
    // variant = 5*8alphanum / (DIGIT 3alphanum)
    let mut variants: Vec<String> = Vec::new();
    while let Some(s) = at(i) {
        let is_variant = s.len() >= 5 || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit());
        if !is_variant {
            break;
        }
        let lower = s.to_ascii_lowercase();
        if variants.contains(&lower) {
            return false;
        }
        variants.push(lower);
        i += 1;
    }
    // extension = singleton 1*("-" (2*8alphanum))
    let mut singletons: Vec<u8> = Vec::new();
    while let Some(s) = at(i) {
        if s.len() != 1 || is_private_singleton(s) {
            break;
        }
        let singleton = s.as_bytes()[0].to_ascii_lowercase();
        if singletons.contains(&singleton) {
            return false;
        }
        singletons.push(singleton);
        i += 1;
        let first = i;
        while at(i).is_some_and(|s| s.len() >= 2) {
            i += 1;
        }
        if i == first {
            return false;
        }
    }
    if private_use(i) {
        return true;
    }
    i == subtags.len()
}

/// Properties that hold language maps when their value is an object.
pub(crate) const LANGUAGE_MAP_KEYS: [&str; 3] = ["display", "name", "description"];

/// RULES.md A.3 for every language-map key outside `extensions`.
fn check_language_maps(value: &Value, path: &mut String) -> Result<(), ValidationError> {
    // One path, extended on the way down and cut back on the way up: a
    // valid statement (nearly every one) allocates no path per property.
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                if key == "extensions" {
                    continue;
                }
                let length = path.len();
                push_pointer_token(path, key);
                if LANGUAGE_MAP_KEYS.contains(&key.as_str())
                    && let Value::Object(map) = child
                {
                    for tag in map.keys() {
                        if !is_language_tag(tag) {
                            return Err(ValidationError::new(
                                format!("{path}/{}", pointer_token(tag)),
                                format!("{tag:?} is not a valid RFC 5646 language tag"),
                            ));
                        }
                    }
                } else {
                    check_language_maps(child, path)?;
                }
                path.truncate(length);
            }
            Ok(())
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = path.len();
                push_pointer_token(path, &index.to_string());
                check_language_maps(item, path)?;
                path.truncate(length);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_that_does_not_compile_is_refused() {
        let broken = r#"{"type": "object", "properties": {"a": {"type": "no-such-type"}}}"#;
        assert!(matches!(
            StatementValidator::from_sources(broken, SCHEMA_2_0_0),
            Err(SchemaError::DoesNotCompile { version: "1.0.3", .. })
        ));
        assert!(matches!(
            StatementValidator::from_sources(SCHEMA_1_0_3, "not json"),
            Err(SchemaError::NotJson { version: "2.0.0", .. })
        ));
    }
    use serde_json::json;

    #[test]
    fn language_tags() {
        for good in [
            "en",
            "en-US",
            "en-GB",
            "zh-Hant-TW",
            "x-private",
            "sgn-BE-FR",
            "i-klingon",
            "EN-gb-OED",
            "de-CH-1901",
            "es-419",
            "zh-min-nan",
            "de-1901-1996",
            "en-a-bbb-b-ccc",
            "en-a-bbb-x-a-a",
            "x-a-b-c",
            "qaa-Qaaa-QM-x-southern",
            "sl-rozaj-biske-1994",
            "tlh",
            "cmn",
        ] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in [
            "",
            "e",
            "en_US",
            "en-",
            "-en",
            "toolongprimary",
            "x",
            "en--US",
            "en-a",
            "en-a-b",
            "en-x",
            "zh-z-aaa-z-bbb-c-ccc",
            "zh-Z-aaa-z-bbb",
            "de-1901-1901",
            "de-1901-DE",
            "sl-rozaj-ROZAJ",
            "i-notirregular",
            "en-US-US",
            "123",
        ] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps_need_an_rfc_3339_zone_in_2_0() {
        let v2 = XapiVersion::V2_0_0;
        let v1 = XapiVersion::V1_0_3;
        assert!(parse_timestamp(v2, "2024-01-01T10:00:00Z").is_some());
        assert!(parse_timestamp(v2, "2024-01-01t10:00:00.5z").is_some());
        assert!(parse_timestamp(v2, "2024-01-01T10:00:00.123+01:00").is_some());
        for bad in
            ["2024-01-01T10:00:00.123+0100", "2024-01-01T10:00:00+01", "2024-01-01T10:00:00", "2024-01-01T10:00Z"]
        {
            assert!(parse_timestamp(v2, bad).is_none(), "{bad}");
            assert!(parse_timestamp(v1, bad).is_some(), "{bad}");
        }
        for bad in [
            "2024-02-30T10:00:00Z",
            "2019-02-29T10:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T10:60:00Z",
            "2024-01-01T10:00:00-00:00",
            "2024-01-01T10:00:00-0000",
            "2024-01-01T10:00:00-00",
            "2024-01-01 10:00:00Z",
            "2024-01-01T10:00:00.Z",
            "2024-01-01T10:00:00+24:00",
            "2024-01-01T10:00:00+01:",
            "2024-01-01T10:00:00Zjunk",
        ] {
            assert!(parse_timestamp(v1, bad).is_none(), "{bad}");
            assert!(parse_timestamp(v2, bad).is_none(), "{bad}");
        }
        assert!(parse_timestamp(v1, "2020-02-29T10:00:00Z").is_some());
        assert!(parse_timestamp(v1, "2016-12-31T23:59:60Z").is_some());
        let parsed = parse_timestamp(v1, "2008-09-15T15:53:00.601-00:30");
        assert_eq!(parsed.map(|t| t.offset().local_minus_utc()), Some(-1800));
        let precise = parse_timestamp(v2, "2024-01-01T10:00:00.123456789123Z");
        assert_eq!(precise.map(|t| t.timestamp_subsec_nanos()), Some(123_456_789));
    }

    fn statement(extra: Value) -> Value {
        let mut base = json!({
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
            "object": {"id": "http://example.com/q"}
        });
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
            base.extend(extra);
        }
        base
    }

    fn error_path(version: XapiVersion, value: &Value) -> Option<String> {
        let validator = StatementValidator::new().unwrap();
        validator.validate(version, value).err().map(|e| e.path)
    }

    #[test]
    fn score_min_must_be_below_max() {
        let equal = statement(json!({"result": {"score": {"min": 5, "max": 5}}}));
        assert_eq!(error_path(XapiVersion::V1_0_3, &equal).as_deref(), Some("/result/score/min"));
        let fine = statement(json!({"result": {"score": {"raw": 5, "min": 5, "max": 6}}}));
        assert_eq!(error_path(XapiVersion::V2_0_0, &fine), None);
    }

    #[test]
    fn errors_point_at_the_bad_property() {
        let tag = statement(json!({"verb": {"id": "http://x.example/v", "display": {"de-1901-1901": "x"}}}));
        assert_eq!(error_path(XapiVersion::V2_0_0, &tag).as_deref(), Some("/verb/display/de-1901-1901"));
        // Past valid language maps, in a list, after a valid item.
        let in_list = statement(json!({
            "verb": {"id": "http://x.example/v", "display": {"en-GB": "v"}},
            "object": {"id": "http://example.com/q", "definition": {
                "name": {"en-GB": "q"}, "interactionType": "choice",
                "choices": [{"id": "a", "description": {"en-GB": "A"}},
                            {"id": "b", "description": {"en-GB": "B", "de-1901-1901": "B"}}]}}}));
        assert_eq!(
            error_path(XapiVersion::V1_0_3, &in_list).as_deref(),
            Some("/object/definition/choices/1/description/de-1901-1901")
        );
        let language = statement(json!({"context": {"language": "en-a-aa-A-bb"}}));
        assert_eq!(error_path(XapiVersion::V1_0_3, &language).as_deref(), Some("/context/language"));
        let steps = statement(
            json!({"context": {"contextActivities": {"parent": {"id": "http://example.com/p", "definition": {
                "interactionType": "performance",
                "steps": [{"id": "s1"}, {"id": "s2"}, {"id": "s2"}]
            }}}}}),
        );
        assert_eq!(
            error_path(XapiVersion::V1_0_3, &steps).as_deref(),
            Some("/context/contextActivities/parent/definition/steps/2/id")
        );
        let scale = statement(json!({"object": {"objectType": "SubStatement",
            "actor": {"mbox": "mailto:b@example.com"}, "verb": {"id": "http://example.com/v"},
            "object": {"id": "http://example.com/q", "definition": {"interactionType": "likert",
                "scale": [{"id": "1"}, {"id": "1"}]}}}}));
        assert_eq!(error_path(XapiVersion::V2_0_0, &scale).as_deref(), Some("/object/object/definition/scale/1/id"));
        let same_id_in_two_lists = statement(json!({"object": {"id": "http://example.com/q", "definition": {
            "interactionType": "matching", "source": [{"id": "a"}], "target": [{"id": "a"}]}}}));
        assert_eq!(error_path(XapiVersion::V2_0_0, &same_id_in_two_lists), None);
    }

    #[test]
    fn version_depends_on_the_endpoint() {
        for (version, v1, v2) in [
            ("1.0", true, true),
            ("1.0.3", true, true),
            ("1.0.9", true, true),
            ("2.0.0", false, true),
            ("2.0", false, true),
            ("1.1.0", false, false),
            ("3.0.0", false, false),
            ("1.0.", false, false),
        ] {
            let value = statement(json!({"version": version}));
            assert_eq!(error_path(XapiVersion::V1_0_3, &value).is_none(), v1, "1.0.3 endpoint, {version}");
            assert_eq!(error_path(XapiVersion::V2_0_0, &value).is_none(), v2, "2.0 endpoint, {version}");
            let mut inner = json!({"version": version});
            assert_eq!(check_version(XapiVersion::V1_0_3, &inner, "").is_ok(), v1, "{version}");
            inner["x"] = json!(1);
            assert_eq!(check_version(XapiVersion::V2_0_0, &inner, "").is_ok(), v2, "{version}");
        }
    }
}
