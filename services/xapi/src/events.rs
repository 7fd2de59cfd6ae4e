//! The events the store appends to its log, versioned.
//!
//! Each event is JSON with a `type` and a version `v`; the shapes are
//! described by the JSON Schemas in `schemas/events/`. Adding or changing a
//! field means a new version: old versions stay readable forever, and
//! [`decode`] upcasts them to the current shape.

use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a document lives: which of the three document resources, and its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    State,
    ActivityProfile,
    AgentProfile,
}

/// The full address of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentKey {
    pub kind: DocumentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    /// The agent's IFI key (see [`crate::agent::ifi_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<String>,
    pub document_id: String,
}

/// An attachment's bytes, carried on the log beside its statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentContent {
    pub sha2: String,
    pub content_type: String,
    #[serde(with = "base64_bytes", rename = "content_b64")]
    pub content: Vec<u8>,
}

/// One learner in the learner directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LearnerEntry {
    /// The learner's agent IFI key (see [`crate::agent::ifi_key`]).
    pub learner: String,
    /// ODS code of the learner's organisation.
    pub organisation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff_group: Option<String>,
}

/// One organisation in the organisation directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganisationEntry {
    /// ODS code.
    pub code: String,
    pub name: String,
    /// ODS code of the parent (ICB, region…), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// Everything that can happen in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Statements accepted together (one request), with LRS properties set.
    StatementsStored { statements: Vec<Value>, attachments: Vec<AttachmentContent> },
    /// A document written (PUT, or POST after merging).
    DocumentSet { key: DocumentKey, content_type: String, content: Vec<u8>, etag: String, updated: String },
    /// One document deleted.
    DocumentDeleted { key: DocumentKey, updated: String },
    /// Every state document of an activity, agent (and registration) deleted.
    StateCleared { activity_id: String, agent: String, registration: Option<String>, updated: String },
    /// Learners added to (or moved within) the learner directory.
    LearnersImported { learners: Vec<LearnerEntry> },
    /// Organisations added to (or changed in) the organisation directory.
    OrganisationsImported { organisations: Vec<OrganisationEntry> },
    /// A document request not yet decided (the Kafka mode's ingest appends
    /// these): projections decide it against the document at this point of
    /// the log with [`crate::document::decide`], so replicas cannot race.
    DocumentRequested {
        key: DocumentKey,
        op: crate::document::DocumentOp,
        if_match: Option<String>,
        if_none_match: Option<String>,
        updated: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    StatementsStored(StatementsStoredV1),
    DocumentSet(DocumentSetV1),
    DocumentDeleted(DocumentDeletedV1),
    StateCleared(StateClearedV1),
    LearnersImported(LearnersImportedV1),
    OrganisationsImported(OrganisationsImportedV1),
    DocumentRequested(DocumentRequestedV1),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentRequestedV1 {
    v: u32,
    #[serde(flatten)]
    key: DocumentKey,
    request: crate::document::DocumentOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    if_match: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    if_none_match: Option<String>,
    updated: String,
}

#[derive(Serialize, Deserialize)]
struct LearnersImportedV1 {
    v: u32,
    learners: Vec<LearnerEntry>,
}

#[derive(Serialize, Deserialize)]
struct OrganisationsImportedV1 {
    v: u32,
    organisations: Vec<OrganisationEntry>,
}

#[derive(Serialize, Deserialize)]
struct StatementsStoredV1 {
    v: u32,
    statements: Vec<Value>,
    #[serde(default)]
    attachments: Vec<AttachmentContent>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentSetV1 {
    v: u32,
    #[serde(flatten)]
    key: DocumentKey,
    content_type: String,
    #[serde(with = "base64_bytes", rename = "content_b64")]
    content: Vec<u8>,
    etag: String,
    updated: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentDeletedV1 {
    v: u32,
    #[serde(flatten)]
    key: DocumentKey,
    updated: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateClearedV1 {
    v: u32,
    activity_id: String,
    agent: String,
    #[serde(default)]
    registration: Option<String>,
    updated: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON of a known shape: {0}")]
    Malformed(String),
    #[error("event {kind} has unknown version {version}")]
    UnknownVersion { kind: &'static str, version: u32 },
}

/// Serialises an event in its current version.
pub fn encode(event: &Event) -> Vec<u8> {
    // The hot case, statements, is written from borrowed data; the output
    // is the same as the tagged enum's (tag first, then fields in order).
    if let Event::StatementsStored { statements, attachments } = event {
        #[derive(Serialize)]
        struct StatementsStoredOut<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            v: u32,
            statements: &'a [Value],
            attachments: &'a [AttachmentContent],
        }
        let out = StatementsStoredOut { kind: "statements_stored", v: 1, statements, attachments };
        return serde_json::to_vec(&out).unwrap_or_default();
    }
    let wire = match event.clone() {
        Event::StatementsStored { statements, attachments } => {
            Wire::StatementsStored(StatementsStoredV1 { v: 1, statements, attachments })
        }
        Event::DocumentSet { key, content_type, content, etag, updated } => {
            Wire::DocumentSet(DocumentSetV1 { v: 1, key, content_type, content, etag, updated })
        }
        Event::DocumentDeleted { key, updated } => Wire::DocumentDeleted(DocumentDeletedV1 { v: 1, key, updated }),
        Event::StateCleared { activity_id, agent, registration, updated } => {
            Wire::StateCleared(StateClearedV1 { v: 1, activity_id, agent, registration, updated })
        }
        Event::LearnersImported { learners } => Wire::LearnersImported(LearnersImportedV1 { v: 1, learners }),
        Event::OrganisationsImported { organisations } => {
            Wire::OrganisationsImported(OrganisationsImportedV1 { v: 1, organisations })
        }
        Event::DocumentRequested { key, op, if_match, if_none_match, updated } => {
            Wire::DocumentRequested(DocumentRequestedV1 { v: 1, key, request: op, if_match, if_none_match, updated })
        }
    };
    // Serialising these plain structures cannot fail.
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Reads an event of any version ever written, upcast to the current shape.
pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
    // Statements are most of the log: read their type first, then parse the
    // body straight into its struct (the tagged enum would buffer it all).
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    // `encode` writes the type first, so the usual event says what it is in
    // its first bytes; anything else (other writers, fixtures) is read for
    // its type in full.
    let statements = bytes.starts_with(br#"{"type":"statements_stored","#) || {
        let head: Head<'_> = serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
        head.kind == "statements_stored"
    };
    if statements {
        let event: StatementsStoredV1 =
            serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
        if event.v != 1 {
            return Err(EventError::UnknownVersion { kind: "statements_stored", version: event.v });
        }
        return Ok(Event::StatementsStored { statements: event.statements, attachments: event.attachments });
    }
    let wire: Wire = serde_json::from_slice(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
    let check = |kind: &'static str, version: u32| {
        if version == 1 { Ok(()) } else { Err(EventError::UnknownVersion { kind, version }) }
    };
    Ok(match wire {
        Wire::StatementsStored(e) => {
            check("statements_stored", e.v)?;
            Event::StatementsStored { statements: e.statements, attachments: e.attachments }
        }
        Wire::DocumentSet(e) => {
            check("document_set", e.v)?;
            Event::DocumentSet {
                key: e.key,
                content_type: e.content_type,
                content: e.content,
                etag: e.etag,
                updated: e.updated,
            }
        }
        Wire::DocumentDeleted(e) => {
            check("document_deleted", e.v)?;
            Event::DocumentDeleted { key: e.key, updated: e.updated }
        }
        Wire::StateCleared(e) => {
            check("state_cleared", e.v)?;
            Event::StateCleared {
                activity_id: e.activity_id,
                agent: e.agent,
                registration: e.registration,
                updated: e.updated,
            }
        }
        Wire::LearnersImported(e) => {
            check("learners_imported", e.v)?;
            Event::LearnersImported { learners: e.learners }
        }
        Wire::OrganisationsImported(e) => {
            check("organisations_imported", e.v)?;
            Event::OrganisationsImported { organisations: e.organisations }
        }
        Wire::DocumentRequested(e) => {
            check("document_requested", e.v)?;
            Event::DocumentRequested {
                key: e.key,
                op: e.request,
                if_match: e.if_match,
                if_none_match: e.if_none_match,
                updated: e.updated,
            }
        }
    })
}

pub(crate) mod base64_bytes {
    use super::BASE64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_event_round_trips() {
        let key = DocumentKey {
            kind: DocumentKind::State,
            activity_id: Some("http://a".into()),
            agent: Some("mbox:mailto:a@example.com".into()),
            registration: None,
            document_id: "bookmark".into(),
        };
        let events = vec![
            Event::StatementsStored {
                statements: vec![json!({"id": "x"})],
                attachments: vec![AttachmentContent {
                    sha2: "ab".into(),
                    content_type: "text/plain".into(),
                    content: vec![0, 1, 255],
                }],
            },
            Event::DocumentSet {
                key: key.clone(),
                content_type: "application/json".into(),
                content: b"{}".to_vec(),
                etag: "\"e\"".into(),
                updated: "t".into(),
            },
            Event::DocumentDeleted { key, updated: "t".into() },
            Event::StateCleared {
                activity_id: "http://a".into(),
                agent: "k".into(),
                registration: Some("r".into()),
                updated: "t".into(),
            },
            Event::LearnersImported {
                learners: vec![LearnerEntry {
                    learner: "account:https://learninghub.nhs.uk|1".into(),
                    organisation: "RJ1".into(),
                    staff_group: Some("Nursing".into()),
                }],
            },
            Event::OrganisationsImported {
                organisations: vec![OrganisationEntry {
                    code: "RJ1".into(),
                    name: "Guy's and St Thomas'".into(),
                    parent: Some("QKK".into()),
                }],
            },
        ];
        for event in events {
            assert_eq!(decode(&encode(&event)).unwrap(), event);
        }
    }

    #[test]
    fn statements_decode_whatever_the_order_of_their_fields() {
        let expected = Event::StatementsStored { statements: vec![json!({"id": "x"})], attachments: Vec::new() };
        let encoded = encode(&expected);
        assert!(encoded.starts_with(br#"{"type":"statements_stored","#), "the type comes first");
        for bytes in [
            encoded.as_slice(),
            br#"{"v":1,"statements":[{"id":"x"}],"attachments":[],"type":"statements_stored"}"#,
            br#"{ "type" : "statements_stored", "v":1, "statements":[{"id":"x"}], "attachments":[] }"#,
        ] {
            assert_eq!(decode(bytes).unwrap(), expected);
        }
        let future = br#"{"type":"statements_stored","v":2,"statements":[],"attachments":[]}"#;
        assert!(matches!(decode(future), Err(EventError::UnknownVersion { .. })));
        assert!(matches!(decode(br#"{"type":"statements_stored","v":1"#), Err(EventError::Malformed(_))));
    }

    #[test]
    fn unknown_versions_are_refused_not_misread() {
        let bytes = br#"{"type":"document_deleted","v":9,"kind":"state","documentId":"d","updated":"t"}"#;
        assert!(matches!(decode(bytes), Err(EventError::UnknownVersion { .. })));
    }
}
