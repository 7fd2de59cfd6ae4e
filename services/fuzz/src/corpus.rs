//! Seed inputs: the repository's fixtures (read at run time), the small
//! hand-written files in `services/fuzz/corpus/<target>/`, and a few inputs
//! built here from the public encoders so every shape is represented.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384};

use lrs_xapi::events::{self, AttachmentContent, DocumentKey, DocumentKind, Event, LearnerEntry, OrganisationEntry};
use lrs_xapi::multipart::{self, Part};

/// The root of the Cargo workspace this crate lives in.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

/// `services/fuzz/corpus`.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Every regular file under `dir` (recursively) whose name ends with one of
/// `extensions` (all files if empty), in path order. Missing directories
/// give nothing.
pub fn read_tree(dir: &Path, extensions: &[&str]) -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    collect(dir, extensions, &mut paths);
    paths.sort();
    paths.into_iter().filter_map(|path| std::fs::read(path).ok()).collect()
}

fn collect(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, extensions, out);
        } else if extensions.is_empty()
            || path.file_name().and_then(|n| n.to_str()).is_some_and(|n| extensions.iter().any(|e| n.ends_with(e)))
        {
            out.push(path);
        }
    }
}

/// The seed corpus of a target (empty for an unknown name).
pub fn seed_corpus(target: &str) -> Vec<Vec<u8>> {
    let fixtures = workspace_root().join("tests").join("fixtures");
    let own = corpus_dir().join(target);
    let mut corpus = match target {
        "statement" => {
            let mut corpus = read_tree(&fixtures.join("statements"), &[".json"]);
            corpus.extend(read_tree(&own, &[]));
            corpus
        }
        "multipart" => {
            let mut corpus = read_tree(&own, &[]);
            corpus.extend(built_multipart_bodies());
            corpus
        }
        "query_params" => read_tree(&own, &[]),
        "events" => {
            let mut corpus = read_tree(&fixtures.join("events"), &[".json"]);
            corpus.extend(read_tree(&own, &[]));
            corpus.extend(built_events());
            corpus
        }
        _ => Vec::new(),
    };
    corpus.dedup();
    corpus
}

fn statement_with_attachments(attachments: Value) -> Value {
    json!({
        "actor": {"objectType": "Agent", "name": "Ada", "mbox": "mailto:ada@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted", "display": {"en-GB": "attempted"}},
        "object": {"id": "http://example.com/activities/with-attachments"},
        "attachments": attachments
    })
}

/// Statement requests with attachments, as `multipart` inputs take them:
/// the Content-Type line, then the body.
fn built_multipart_bodies() -> Vec<Vec<u8>> {
    let text = b"here is a simple attachment".to_vec();
    let sha256 = hex::encode(Sha256::digest(&text));
    let sha384 = hex::encode(Sha384::digest(&text));
    let attachment = |sha2: &str| {
        json!({
            "usageType": "http://example.com/attachment-usage/test",
            "display": {"en-US": "A test attachment"},
            "contentType": "text/plain",
            "length": text.len(),
            "sha2": sha2
        })
    };
    let one = statement_with_attachments(json!([attachment(&sha256)]));
    let two = statement_with_attachments(json!([attachment(&sha256), attachment(&sha384)]));
    let jws = b"eyJhbGciOiJSUzI1NiJ9.eyJhY3RvciI6e319.c2lnbmF0dXJl".to_vec();
    let jws_sha = hex::encode(Sha256::digest(&jws));
    let signed = statement_with_attachments(json!([{
        "usageType": lrs_xapi::statement::SIGNATURE_USAGE_TYPE,
        "display": {"en-US": "signature"},
        "contentType": "application/octet-stream",
        "length": jws.len(),
        "sha2": jws_sha
    }]));
    let bodies: Vec<(&str, Vec<Part>)> = vec![
        ("xapi-fuzz-1", vec![Part::json(one.to_string()), Part::attachment("text/plain", &sha256, text.clone())]),
        (
            "-------314159265358979323846",
            vec![
                Part::json(json!([two]).to_string()),
                Part::attachment("text/plain", &sha256, text.clone()),
                Part::attachment("text/plain; charset=ascii", &sha384, text.clone()),
            ],
        ),
        ("sig", vec![Part::json(signed.to_string()), Part::attachment("application/octet-stream", &jws_sha, jws)]),
    ];
    bodies
        .into_iter()
        .map(|(boundary, parts)| {
            let mut input = multipart::content_type_for(boundary).into_bytes();
            input.push(b'\n');
            input.extend(multipart::build(boundary, &parts));
            input
        })
        .collect()
}

/// One event of every kind, encoded.
fn built_events() -> Vec<Vec<u8>> {
    let key = DocumentKey {
        kind: DocumentKind::AgentProfile,
        activity_id: None,
        agent: Some("account:https://learninghub.nhs.uk|42".to_owned()),
        registration: None,
        document_id: "preferences".to_owned(),
    };
    let state = DocumentKey {
        kind: DocumentKind::State,
        activity_id: Some("http://example.com/a".to_owned()),
        agent: Some("mbox:mailto:a@example.com".to_owned()),
        registration: Some("ec531277-b57b-4c15-8d91-d292c5b2b8f7".to_owned()),
        document_id: "bookmark".to_owned(),
    };
    let updated = "2024-03-01T10:00:00.000000Z".to_owned();
    let events = [
        Event::StatementsStored {
            statements: vec![statement_with_attachments(json!([]))],
            attachments: vec![AttachmentContent {
                sha2: "ab".to_owned(),
                content_type: "text/plain".to_owned(),
                content: vec![0, 1, 255],
            }],
        },
        Event::DocumentSet {
            key: key.clone(),
            content_type: "application/json".to_owned(),
            content: b"{\"a\":1}".to_vec(),
            etag: lrs_xapi::document::etag(b"{\"a\":1}"),
            updated: updated.clone(),
        },
        Event::DocumentDeleted { key: key.clone(), updated: updated.clone() },
        Event::StateCleared {
            activity_id: "http://example.com/a".to_owned(),
            agent: "mbox:mailto:a@example.com".to_owned(),
            registration: None,
            updated: updated.clone(),
        },
        Event::LearnersImported {
            learners: vec![LearnerEntry {
                learner: "account:https://learninghub.nhs.uk|42".to_owned(),
                organisation: "RJ1".to_owned(),
                staff_group: Some("Nursing".to_owned()),
            }],
        },
        Event::OrganisationsImported {
            organisations: vec![OrganisationEntry {
                code: "RJ1".to_owned(),
                name: "Guy's and St Thomas'".to_owned(),
                parent: Some("QKK".to_owned()),
            }],
        },
        Event::DocumentRequested {
            key: state.clone(),
            op: lrs_xapi::document::DocumentOp::Put {
                content_type: "application/octet-stream".to_owned(),
                content: vec![1, 2, 3],
                precondition: lrs_xapi::document::PutPrecondition::WhenExisting,
            },
            if_match: Some("\"abc\"".to_owned()),
            if_none_match: None,
            updated: updated.clone(),
        },
        Event::DocumentRequested {
            key: state.clone(),
            op: lrs_xapi::document::DocumentOp::Post {
                content_type: "application/json".to_owned(),
                content: b"{}".to_vec(),
            },
            if_match: None,
            if_none_match: Some("*".to_owned()),
            updated: updated.clone(),
        },
        Event::DocumentRequested {
            key: state,
            op: lrs_xapi::document::DocumentOp::ClearState,
            if_match: None,
            if_none_match: None,
            updated,
        },
    ];
    events.iter().map(events::encode).collect()
}
