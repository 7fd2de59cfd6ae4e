//! Documents (State, Activity Profile, Agent Profile): ETags, preconditions
//! and the JSON merge of POST.

use serde::{Deserialize, Serialize};
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
    if let Some(header) = if_none_match
        && let Some(current) = current
        && header_matches(header, current)
    {
        return Precondition::Failed;
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

/// Whether a PUT must carry If-Match / If-None-Match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PutPrecondition {
    /// Never required (1.0.3 State).
    Optional,
    /// Required when the document exists (409 otherwise).
    WhenExisting,
    /// Always required: 409 when the document exists, 400 when it does not
    /// (1.0.3 profiles).
    Always,
}

/// What a client asks to happen to a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum DocumentOp {
    /// PUT: replace.
    Put {
        content_type: String,
        #[serde(with = "crate::events::base64_bytes", rename = "content_b64")]
        content: Vec<u8>,
        precondition: PutPrecondition,
    },
    /// POST: merge JSON objects, or create.
    Post {
        content_type: String,
        #[serde(with = "crate::events::base64_bytes", rename = "content_b64")]
        content: Vec<u8>,
    },
    /// DELETE of one document.
    Delete,
    /// DELETE of all state of an activity and agent (and registration).
    ClearState,
}

/// A document as it is now.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub content_type: &'a str,
    pub content: &'a [u8],
    pub etag: &'a str,
}

/// What a request does to the stored documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Set {
        content_type: String,
        content: Vec<u8>,
        etag: String,
    },
    Delete,
    ClearState,
    /// Nothing to do (deleting a document that does not exist).
    Unchanged,
}

/// Why a request was refused, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, message: &str) -> Self {
        Self { status, message: message.to_owned() }
    }
}

/// Decides a document request against the current document: the same rules
/// wherever the decision is made (the embedded writer before appending, a
/// projection when it applies a request taken from Kafka).
pub fn decide(
    op: &DocumentOp,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
    current: Option<Current<'_>>,
) -> Result<Decision, Refusal> {
    if check_preconditions(if_match, if_none_match, current.map(|c| c.etag)) == Precondition::Failed {
        return Err(Refusal::new(412, "the document's ETag does not satisfy If-Match / If-None-Match"));
    }
    match op {
        DocumentOp::Put { content_type, content, precondition } => {
            let unconditional = if_match.is_none() && if_none_match.is_none();
            if unconditional && *precondition != PutPrecondition::Optional {
                if current.is_some() {
                    return Err(Refusal::new(409, "the document exists; send If-Match with its ETag to overwrite it"));
                }
                if *precondition == PutPrecondition::Always {
                    return Err(Refusal::new(400, "a PUT to a profile must carry If-Match or If-None-Match"));
                }
            }
            Ok(Decision::Set { content_type: content_type.clone(), content: content.clone(), etag: etag(content) })
        }
        DocumentOp::Post { content_type, content } => match current {
            Some(existing) => {
                if !is_json_content_type(existing.content_type) || !is_json_content_type(content_type) {
                    return Err(Refusal::new(
                        400,
                        "POST merges JSON documents: both the stored and the posted document must be application/json",
                    ));
                }
                let merged = merge_json_objects(existing.content, content).ok_or_else(|| {
                    Refusal::new(400, "POST merges JSON objects: both documents must be JSON objects")
                })?;
                Ok(Decision::Set { etag: etag(&merged), content_type: "application/json".to_owned(), content: merged })
            }
            None => {
                if is_json_content_type(content_type)
                    && !serde_json::from_slice::<Value>(content).is_ok_and(|v| v.is_object())
                {
                    return Err(Refusal::new(400, "a JSON document sent by POST must be a JSON object"));
                }
                Ok(Decision::Set { content_type: content_type.clone(), content: content.clone(), etag: etag(content) })
            }
        },
        DocumentOp::Delete if current.is_none() => Ok(Decision::Unchanged),
        DocumentOp::Delete => Ok(Decision::Delete),
        DocumentOp::ClearState => Ok(Decision::ClearState),
    }
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
