//! The JSON Schemas under `schemas/` against the code and the fixtures:
//! event schemas describe exactly what `events::encode` writes, and the
//! statement validator accepts / rejects the statement fixtures as
//! `tests/fixtures/statements/README.md` says.

use std::fs;
use std::path::{Path, PathBuf};

use lrs_xapi::document::{DocumentOp, PutPrecondition};
use lrs_xapi::events::{self, AttachmentContent, DocumentKey, DocumentKind, Event, LearnerEntry, OrganisationEntry};
use lrs_xapi::{StatementValidator, XapiVersion};
use serde_json::{Value, json};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every `.json` file in a fixture folder, sorted; the folder must not be empty.
fn fixtures(folder: &str) -> Vec<PathBuf> {
    let dir = workspace_root().join("tests/fixtures").join(folder);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

// ---------------------------------------------------------------- events --

fn event_schema(kind: &str, version: &str) -> jsonschema::Validator {
    let path = workspace_root().join(format!("schemas/events/{kind}.{version}.json"));
    let schema = read_json(&path);
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{} does not compile: {e}", path.display()))
}

/// The schema an event fixture is meant for: `<type>.v<N>[.<case>].json`.
fn schema_for_fixture(path: &Path) -> jsonschema::Validator {
    let name = file_name(path);
    let mut parts = name.split('.');
    let (Some(kind), Some(version)) = (parts.next(), parts.next()) else {
        panic!("event fixture {name} is not named <type>.v<N>[.<case>].json");
    };
    event_schema(kind, version)
}

fn schema_errors(schema: &jsonschema::Validator, value: &Value) -> Vec<String> {
    schema.iter_errors(value).map(|e| format!("{} at {:?}", e, e.instance_path().to_string())).collect()
}

fn key(kind: DocumentKind, activity_id: Option<&str>, agent: Option<&str>, registration: Option<&str>) -> DocumentKey {
    DocumentKey {
        kind,
        activity_id: activity_id.map(str::to_owned),
        agent: agent.map(str::to_owned),
        registration: registration.map(str::to_owned),
        document_id: "bookmark".to_owned(),
    }
}

fn stored_statement(version: &str) -> Value {
    json!({
        "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
        "actor": {"objectType": "Agent", "mbox": "mailto:ada@example.com"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-US": "completed"}},
        "object": {"objectType": "Activity", "id": "http://example.com/activities/course-101"},
        "timestamp": "2024-03-01T10:00:00+0530",
        "stored": "2024-03-01T10:00:01.234Z",
        "authority": {"objectType": "Agent", "account": {"homePage": "https://lrs.example.com", "name": "client-1"}},
        "version": version,
        "context": {"contextActivities": {"parent": [{"id": "http://example.com/p"}]}}
    })
}

/// One event of every variant, with every optional part both present and absent.
fn sample_events() -> Vec<(&'static str, Event)> {
    const ACTIVITY: &str = "http://example.com/activities/course-101";
    const REGISTRATION: &str = "ec531277-b57b-4c15-8d91-d292c5b2b8f7";
    let agents = [
        "mbox:mailto:ada@example.com",
        "mbox_sha1sum:ebd31e95054c018b10727ccffd2ef2ec3a016ee9",
        "openid:http://openid.example.com/ada",
        "account:https://sso.example.com|carol | smith",
    ];
    let mut out = vec![
        (
            "statements_stored",
            Event::StatementsStored {
                statements: vec![stored_statement("1.0.3"), stored_statement("2.0.0")],
                attachments: vec![
                    AttachmentContent {
                        sha2: "2852d7262f1fd6339a426560101d5840edf5b8999b90eb6b2eea86c8b9f7e298".to_owned(),
                        content_type: "text/plain; charset=utf-8".to_owned(),
                        content: b"hello attachment\n".to_vec(),
                    },
                    AttachmentContent {
                        sha2: "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855".to_owned(),
                        content_type: "application/octet-stream".to_owned(),
                        content: Vec::new(),
                    },
                ],
            },
        ),
        (
            "statements_stored",
            Event::StatementsStored { statements: vec![stored_statement("1.0.0")], attachments: Vec::new() },
        ),
    ];
    for agent in agents {
        for registration in [None, Some(REGISTRATION)] {
            out.push((
                "document_set",
                Event::DocumentSet {
                    key: key(DocumentKind::State, Some(ACTIVITY), Some(agent), registration),
                    content_type: "application/json".to_owned(),
                    content: br#"{"page":7}"#.to_vec(),
                    etag: "\"3f786850e387550fdab836ed7e6dc881de23001b\"".to_owned(),
                    updated: "2024-03-01T10:00:02.000Z".to_owned(),
                },
            ));
            out.push((
                "document_deleted",
                Event::DocumentDeleted {
                    key: key(DocumentKind::State, Some(ACTIVITY), Some(agent), registration),
                    updated: "2024-03-01T10:00:02+01:00".to_owned(),
                },
            ));
            out.push((
                "state_cleared",
                Event::StateCleared {
                    activity_id: ACTIVITY.to_owned(),
                    agent: agent.to_owned(),
                    registration: registration.map(str::to_owned),
                    updated: "2024-03-01T11:00:00Z".to_owned(),
                },
            ));
        }
        out.push((
            "document_set",
            Event::DocumentSet {
                key: key(DocumentKind::AgentProfile, None, Some(agent), None),
                content_type: "application/octet-stream".to_owned(),
                content: vec![0, 1, 2, 255],
                etag: "e1".to_owned(),
                updated: "2024-03-01T10:00:02Z".to_owned(),
            },
        ));
        out.push((
            "document_deleted",
            Event::DocumentDeleted {
                key: key(DocumentKind::AgentProfile, None, Some(agent), None),
                updated: "2024-03-01T10:00:02Z".to_owned(),
            },
        ));
    }
    out.push((
        "document_set",
        Event::DocumentSet {
            key: key(DocumentKind::ActivityProfile, Some(ACTIVITY), None, None),
            content_type: "text/plain".to_owned(),
            content: Vec::new(),
            etag: "abc".to_owned(),
            updated: "2024-03-01T10:00:02Z".to_owned(),
        },
    ));
    out.push((
        "document_deleted",
        Event::DocumentDeleted {
            key: key(DocumentKind::ActivityProfile, Some(ACTIVITY), None, None),
            updated: "2024-03-01T10:00:02Z".to_owned(),
        },
    ));
    let requests = [
        DocumentOp::Put {
            content_type: "application/json".to_owned(),
            content: br#"{"page":7}"#.to_vec(),
            precondition: PutPrecondition::WhenExisting,
        },
        DocumentOp::Post { content_type: "application/json; charset=utf-8".to_owned(), content: b"{}".to_vec() },
        DocumentOp::Delete,
        DocumentOp::ClearState,
    ];
    for (n, op) in requests.into_iter().enumerate() {
        out.push((
            "document_requested",
            Event::DocumentRequested {
                key: key(DocumentKind::State, Some(ACTIVITY), Some(agents[n]), (n % 2 == 0).then_some(REGISTRATION)),
                op,
                if_match: (n == 0).then(|| "\"3f786850e387550fdab836ed7e6dc881de23001b\"".to_owned()),
                if_none_match: (n == 1).then(|| "*".to_owned()),
                updated: "2024-03-01T10:00:02.000001Z".to_owned(),
            },
        ));
    }
    out.push((
        "document_requested",
        Event::DocumentRequested {
            key: key(DocumentKind::AgentProfile, None, Some(agents[0]), None),
            op: DocumentOp::Put {
                content_type: "application/octet-stream".to_owned(),
                content: vec![0, 255],
                precondition: PutPrecondition::Always,
            },
            if_match: None,
            if_none_match: None,
            updated: "2024-03-01T10:00:02Z".to_owned(),
        },
    ));
    let learner = |learner: &str, organisation: &str, staff_group: Option<&str>| LearnerEntry {
        learner: learner.to_owned(),
        organisation: organisation.to_owned(),
        staff_group: staff_group.map(str::to_owned),
    };
    let mut learners = vec![
        learner("account:https://learninghub.nhs.uk|123", "RJ1", Some("Nursing")),
        learner("account:https://learninghub.nhs.uk|124", "R1K01", None),
        learner("account:https://learninghub.nhs.uk|125", "X", Some("Allied Health Professionals")),
        learner("account:https://learninghub.nhs.uk|126", "123456789", None),
    ];
    learners.extend(agents.iter().map(|agent| learner(agent, "QKK", None)));
    out.push(("learners_imported", Event::LearnersImported { learners }));
    out.push(("learners_imported", Event::LearnersImported { learners: Vec::new() }));
    let organisation = |code: &str, name: &str, parent: Option<&str>| OrganisationEntry {
        code: code.to_owned(),
        name: name.to_owned(),
        parent: parent.map(str::to_owned),
    };
    out.push((
        "organisations_imported",
        Event::OrganisationsImported {
            organisations: vec![
                organisation("Y56", "London", None),
                organisation("QKK", "NHS South East London ICB", Some("Y56")),
                organisation("RJ1", "Guy's and St Thomas' NHS Foundation Trust", Some("QKK")),
                organisation("R1K01", "Northwick Park Hospital \u{2014} \"site\"", Some("R1K")),
            ],
        },
    ));
    // The importer accepts a CSV row with an empty name.
    out.push((
        "organisations_imported",
        Event::OrganisationsImported { organisations: vec![organisation("RJ2", "", None)] },
    ));
    out.push(("organisations_imported", Event::OrganisationsImported { organisations: Vec::new() }));
    out
}

#[test]
fn every_encoded_event_matches_its_schema() {
    let mut covered = std::collections::BTreeSet::new();
    for (kind, event) in sample_events() {
        let bytes = events::encode(&event);
        let value: Value =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{kind}: encode wrote no JSON: {e}"));
        assert_eq!(value["type"], kind, "encode wrote the wrong type for {event:?}");
        let version = format!("v{}", value["v"]);
        let schema = event_schema(kind, &version);
        let errors = schema_errors(&schema, &value);
        assert!(errors.is_empty(), "{kind}.{version}.json rejects what encode wrote:\n{value:#}\n{errors:#?}");
        covered.insert(kind);
    }
    let expected = [
        "document_deleted",
        "document_requested",
        "document_set",
        "learners_imported",
        "organisations_imported",
        "state_cleared",
        "statements_stored",
    ];
    assert_eq!(covered.into_iter().collect::<Vec<_>>(), expected);
}

#[test]
fn every_event_schema_has_a_sample() {
    let dir = workspace_root().join("schemas/events");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut schemas: Vec<String> = entries
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())).path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| file_name(&path))
        .collect();
    schemas.sort();
    let mut sampled: Vec<String> = sample_events()
        .into_iter()
        .map(|(kind, event)| {
            let value: Value = serde_json::from_slice(&events::encode(&event)).unwrap_or_default();
            format!("{kind}.v{}.json", value["v"])
        })
        .collect();
    sampled.sort();
    sampled.dedup();
    assert_eq!(schemas, sampled, "every schema file must be exercised by an encoded event");
}

#[test]
fn valid_event_fixtures_match_their_schema_and_decode() {
    for path in fixtures("events/valid") {
        let name = file_name(&path);
        let value = read_json(&path);
        let errors = schema_errors(&schema_for_fixture(&path), &value);
        assert!(errors.is_empty(), "valid event fixture {name} fails its schema: {errors:#?}");
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let event =
            events::decode(&bytes).unwrap_or_else(|e| panic!("valid event fixture {name} does not decode: {e}"));
        let reencoded: Value = serde_json::from_slice(&events::encode(&event)).unwrap_or_default();
        assert_eq!(
            reencoded, value,
            "valid event fixture {name} is not what encode writes for the event it decodes to"
        );
    }
}

#[test]
fn invalid_event_fixtures_fail_their_schema() {
    for path in fixtures("events/invalid") {
        let value = read_json(&path);
        assert!(
            !schema_for_fixture(&path).is_valid(&value),
            "invalid event fixture {} passes its schema",
            file_name(&path)
        );
    }
}

// ------------------------------------------------------------ statements --

const BOTH: [XapiVersion; 2] = [XapiVersion::V1_0_3, XapiVersion::V2_0_0];

fn validator() -> StatementValidator {
    StatementValidator::new().unwrap_or_else(|e| panic!("StatementValidator::new failed: {e}"))
}

fn assert_accepts(validator: &StatementValidator, folder: &str, versions: &[XapiVersion]) {
    for path in fixtures(folder) {
        let statement = read_json(&path);
        for &version in versions {
            if let Err(error) = validator.validate(version, &statement) {
                panic!("{folder}/{} is rejected by xAPI {version}: {error}", file_name(&path));
            }
        }
    }
}

fn assert_rejects(validator: &StatementValidator, folder: &str, versions: &[XapiVersion]) {
    for path in fixtures(folder) {
        let statement = read_json(&path);
        for &version in versions {
            match validator.validate(version, &statement) {
                Ok(()) => panic!("{folder}/{} is accepted by xAPI {version}", file_name(&path)),
                Err(error) => assert!(
                    statement.pointer(&error.path).is_some() || error.path.is_empty(),
                    "{folder}/{}: error path {:?} is not a pointer into the statement ({error})",
                    file_name(&path),
                    error.path
                ),
            }
        }
    }
}

#[test]
fn validator_builds() {
    validator();
}

#[test]
fn valid_statements_pass_both_versions() {
    assert_accepts(&validator(), "statements/valid", &BOTH);
}

#[test]
fn valid_2_0_statements_pass_2_0() {
    assert_accepts(&validator(), "statements/valid-2.0", &[XapiVersion::V2_0_0]);
}

#[test]
fn invalid_statements_fail_both_versions() {
    assert_rejects(&validator(), "statements/invalid", &BOTH);
}

#[test]
fn invalid_by_rule_statements_fail_both_versions() {
    assert_rejects(&validator(), "statements/invalid-by-rule", &BOTH);
}

#[test]
fn invalid_2_0_statements_fail_2_0_but_pass_1_0_3() {
    let validator = validator();
    assert_rejects(&validator, "statements/invalid-2.0", &[XapiVersion::V2_0_0]);
    assert_accepts(&validator, "statements/invalid-2.0", &[XapiVersion::V1_0_3]);
}

/// `invalid-by-rule/` must pass the schemas: the code, not the schema, rejects them.
#[test]
fn invalid_by_rule_statements_pass_the_schemas() {
    for (file, version) in
        [("statement-1.0.3.json", XapiVersion::V1_0_3), ("statement-2.0.0.json", XapiVersion::V2_0_0)]
    {
        let path = workspace_root().join("schemas/xapi").join(file);
        let schema = jsonschema::validator_for(&read_json(&path))
            .unwrap_or_else(|e| panic!("{} does not compile: {e}", path.display()));
        for fixture in fixtures("statements/invalid-by-rule") {
            let errors = schema_errors(&schema, &read_json(&fixture));
            assert!(
                errors.is_empty(),
                "invalid-by-rule/{} fails the {version} schema: {errors:#?}",
                file_name(&fixture)
            );
        }
    }
}
