//! Documents (State, Activity Profile, Agent Profile): ETags, preconditions
//! and the JSON merge of POST.

use serde_json::Value;
use sha1::{Digest, Sha1};

/// The ETag of a document's bytes: the quoted SHA-1 hex.
pub fn etag(content: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha1::digest(content)))
}

/// The outcome of checking `If-Match` / `If-None-Match` against the
/// document's current ETag (`None` when it does not exist).
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    Holds,
    /// 412 Precondition Failed.
    Failed,
}

/// Checks conditional headers. `If-Match: *` holds when the document exists,
/// `If-None-Match: *` when it does not; otherwise any listed ETag matches
/// (quoted or not, weak prefix ignored).
pub fn check_preconditions(if_match: Option<&str>, if_none_match: Option<&str>, current: Option<&str>) -> Precondition {
    if let Some(header) = if_match {
        let holds = match current {
            None => false,
            Some(current) => header_matches(header, current),
        };
        if !holds {
            return Precondition::Failed;
        }
    }
    if let Some(header) = if_none_match {
        if let Some(current) = current {
            if header_matches(header, current) {
                return Precondition::Failed;
            }
        }
    }
    Precondition::Holds
}

fn header_matches(header: &str, current: &str) -> bool {
    let current = current.trim_matches('"');
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"').eq_ignore_ascii_case(current))
}

/// Whether a content type names JSON (`application/json`, with or without
/// parameters).
pub fn is_json_content_type(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The POST merge: both must be JSON objects; top-level properties of
/// `incoming` replace those of `existing`.
pub fn merge_json_objects(existing: &[u8], incoming: &[u8]) -> Option<Vec<u8>> {
    let mut base: Value = serde_json::from_slice(existing).ok()?;
    let patch: Value = serde_json::from_slice(incoming).ok()?;
    let (Some(base_map), Value::Object(patch_map)) = (base.as_object_mut(), patch) else {
        return None;
    };
    for (key, value) in patch_map {
        base_map.insert(key, value);
    }
    serde_json::to_vec(&base).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_quoted_sha1() {
        assert_eq!(etag(b"abc"), "\"a9993e364706816aba3e25717850c26c9cd0d89d\"");
    }

    #[test]
    fn preconditions() {
        let tag = etag(b"x");
        assert_eq!(check_preconditions(Some("*"), None, None), Precondition::Failed);
        assert_eq!(check_preconditions(Some("*"), None, Some(&tag)), Precondition::Holds);
        assert_eq!(check_preconditions(None, Some("*"), Some(&tag)), Precondition::Failed);
        assert_eq!(check_preconditions(None, Some("*"), None), Precondition::Holds);
        assert_eq!(check_preconditions(Some(&tag), None, Some(&tag)), Precondition::Holds);
        assert_eq!(check_preconditions(Some("\"nope\""), None, Some(&tag)), Precondition::Failed);
    }

    #[test]
    fn merge_replaces_top_level_properties() {
        let merged = merge_json_objects(br#"{"a":1,"b":{"c":1}}"#, br#"{"b":{"d":2},"e":3}"#).unwrap();
        let value: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(value, serde_json::json!({"a":1,"b":{"d":2},"e":3}));
        assert!(merge_json_objects(b"[1]", b"{}").is_none());
    }
}
