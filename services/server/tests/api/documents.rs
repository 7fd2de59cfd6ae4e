//! The document resources: State, Activity Profile and Agent Profile.
//! Storage round trips, the JSON merge of POST, listing, deletion,
//! concurrency control and parameter validation.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of a test binary may panic

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::support::*;

const ACTIVITY: &str = "http://example.com/activities/documents-test";
const OTHER_ACTIVITY: &str = "http://example.com/activities/documents-other";
const AGENT: &str = r#"{"objectType":"Agent","mbox":"mailto:learner@example.com"}"#;
const OTHER_AGENT: &str = r#"{"objectType":"Agent","mbox":"mailto:someone-else@example.com"}"#;
const REGISTRATION: &str = "6fbd600f-d17c-4c74-801a-2ec2e53231e7";
const OTHER_REGISTRATION: &str = "0c8f3c1a-3b4e-4d8e-9a55-5a1f7a3c2b10";

/// One of the three document resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    State,
    ActivityProfile,
    AgentProfile,
}

const KINDS: [Kind; 3] = [Kind::State, Kind::ActivityProfile, Kind::AgentProfile];
const PROFILES: [Kind; 2] = [Kind::ActivityProfile, Kind::AgentProfile];

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::State => "/xapi/activities/state",
            Kind::ActivityProfile => "/xapi/activities/profile",
            Kind::AgentProfile => "/xapi/agents/profile",
        }
    }

    fn id_param(self) -> &'static str {
        match self {
            Kind::State => "stateId",
            _ => "profileId",
        }
    }

    /// The parameters naming the set of documents (no document id).
    fn scope(self) -> Vec<(&'static str, String)> {
        match self {
            Kind::State => vec![("activityId", ACTIVITY.to_owned()), ("agent", AGENT.to_owned())],
            Kind::ActivityProfile => vec![("activityId", ACTIVITY.to_owned())],
            Kind::AgentProfile => vec![("agent", AGENT.to_owned())],
        }
    }

    /// The parameters naming one document.
    fn one(self, id: &str) -> Vec<(&'static str, String)> {
        let mut params = self.scope();
        params.push((self.id_param(), id.to_owned()));
        params
    }
}

fn sha1_etag(content: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha1::digest(content)))
}

fn put(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)]) -> RequestBuilder {
    app.put(kind.path(), version).query(params)
}

fn post(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)]) -> RequestBuilder {
    app.post(kind.path(), version).query(params)
}

fn get(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)]) -> RequestBuilder {
    app.get(kind.path(), version).query(params)
}

fn delete(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)]) -> RequestBuilder {
    app.delete(kind.path(), version).query(params)
}

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("send")
}

async fn status_and_text(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, text)
}

/// Creates a document that must not exist yet (If-None-Match: * satisfies
/// every version's precondition rules), asserting 204.
async fn create(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)], content_type: &str, body: &[u8]) {
    let response = send(
        put(app, version, kind, params)
            .header("If-None-Match", "*")
            .header("Content-Type", content_type)
            .body(body.to_vec()),
    )
    .await;
    let (status, text) = status_and_text(response).await;
    assert_eq!(status, 204, "{version} {kind:?}: creating {params:?} failed: {text}");
}

/// A stored document: status 200, its bytes, Content-Type and ETag.
struct Fetched {
    bytes: Vec<u8>,
    content_type: String,
    etag: String,
    last_modified: Option<String>,
}

async fn fetch(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)]) -> Fetched {
    let response = send(get(app, version, kind, params)).await;
    let status = response.status();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().expect("header text").to_owned());
    let content_type = header("content-type").unwrap_or_default();
    let etag = header("etag").unwrap_or_default();
    let last_modified = header("last-modified");
    let bytes = response.bytes().await.expect("body").to_vec();
    assert_eq!(status, 200, "{version} {kind:?}: GET {params:?} failed: {}", String::from_utf8_lossy(&bytes));
    Fetched { bytes, content_type, etag, last_modified }
}

async fn status_of(request: RequestBuilder) -> u16 {
    send(request).await.status().as_u16()
}

/// The ids a listing GET returns, sorted.
async fn list(app: &TestApp, version: &str, kind: Kind, params: &[(&str, String)]) -> Vec<String> {
    let response = send(get(app, version, kind, params)).await;
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().expect("text").to_owned());
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{version} {kind:?}: listing {params:?} failed: {text}");
    assert!(
        content_type.as_deref().is_some_and(|t| t.starts_with("application/json")),
        "a listing is JSON, got {content_type:?}"
    );
    let mut ids: Vec<String> = serde_json::from_str(&text).expect("a JSON array of ids");
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_then_get_returns_binary_bytes_content_type_sha1_etag_and_last_modified() {
    let app = spawn_app().await;
    let content: Vec<u8> = vec![0x00, 0xff, 0x10, 0x80, b'x', 0x00, 0xfe, 0x7f, b'\n'];
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("binary-{version}"));
            create(&app, version, kind, &params, "application/octet-stream", &content).await;
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, content, "{version} {kind:?}: bytes differ");
            assert_eq!(fetched.content_type, "application/octet-stream", "{version} {kind:?}");
            assert_eq!(fetched.etag, sha1_etag(&content), "{version} {kind:?}: ETag is not the quoted SHA-1");
            let last_modified = fetched.last_modified.unwrap_or_else(|| panic!("{version} {kind:?}: no Last-Modified"));
            let parsed = chrono::DateTime::parse_from_rfc2822(&last_modified).unwrap_or_else(|e| {
                panic!("{version} {kind:?}: Last-Modified {last_modified:?} is not an HTTP date: {e}")
            });
            let age = chrono::Utc::now().signed_duration_since(parsed);
            assert!(
                age > chrono::Duration::seconds(-5) && age < chrono::Duration::minutes(5),
                "{version} {kind:?}: Last-Modified {last_modified} is not about now"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_then_get_returns_json_document_byte_for_byte() {
    let app = spawn_app().await;
    // Odd spacing and key order: the LRS must store bytes, not re-serialise.
    let content = br#"{ "zeta" : 1,  "alpha":[true, null ,"x"], "nested": {"b":2,"a":1} }"#;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("json-{version}"));
            create(&app, version, kind, &params, "application/json", content).await;
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, content.to_vec(), "{version} {kind:?}: bytes differ");
            assert!(
                fetched.content_type.starts_with("application/json"),
                "{version} {kind:?}: {}",
                fetched.content_type
            );
            assert_eq!(fetched.etag, sha1_etag(content), "{version} {kind:?}");
            assert!(fetched.last_modified.is_some(), "{version} {kind:?}: no Last-Modified");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_existing_json_document_merges_top_level_properties() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("merge-{version}"));
            create(
                &app,
                version,
                kind,
                &params,
                "application/json",
                br#"{"kept":1,"replaced":{"old":true},"also":"x"}"#,
            )
            .await;
            let response = send(
                post(&app, version, kind, &params)
                    .header("Content-Type", "application/json")
                    .body(r#"{"replaced":{"new":true},"added":[1,2]}"#),
            )
            .await;
            let (status, text) = status_and_text(response).await;
            assert_eq!(status, 204, "{version} {kind:?}: merge POST failed: {text}");
            let fetched = fetch(&app, version, kind, &params).await;
            let merged: Value = serde_json::from_slice(&fetched.bytes).expect("merged document is JSON");
            assert_eq!(
                merged,
                json!({"kept": 1, "replaced": {"new": true}, "also": "x", "added": [1, 2]}),
                "{version} {kind:?}: top-level properties are replaced, others kept"
            );
            assert!(
                fetched.content_type.starts_with("application/json"),
                "{version} {kind:?}: {}",
                fetched.content_type
            );
            assert_eq!(fetched.etag, sha1_etag(&fetched.bytes), "{version} {kind:?}: ETag follows the merged bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_json_onto_a_non_json_document_is_rejected_and_leaves_it_unchanged() {
    let app = spawn_app().await;
    let stored = b"plain text, not JSON".to_vec();
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("text-{version}"));
            create(&app, version, kind, &params, "text/plain", &stored).await;
            let response =
                send(post(&app, version, kind, &params).header("Content-Type", "application/json").body(r#"{"a":1}"#))
                    .await;
            expect_error(response, 400).await;
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, stored, "{version} {kind:?}: a refused POST must not change the document");
            assert_eq!(fetched.content_type, "text/plain", "{version} {kind:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_non_json_onto_a_json_document_is_rejected_and_leaves_it_unchanged() {
    let app = spawn_app().await;
    let stored = br#"{"a":1}"#.to_vec();
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("json-{version}"));
            create(&app, version, kind, &params, "application/json", &stored).await;
            let response = send(
                post(&app, version, kind, &params)
                    .header("Content-Type", "application/octet-stream")
                    .body(vec![1u8, 2, 3]),
            )
            .await;
            expect_error(response, 400).await;
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, stored, "{version} {kind:?}: a refused POST must not change the document");
            assert_eq!(fetched.etag, sha1_etag(&stored), "{version} {kind:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_a_missing_document_creates_it() {
    let app = spawn_app().await;
    let content = br#"{"created":"by post"}"#;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("new-{version}"));
            let response = send(
                post(&app, version, kind, &params).header("Content-Type", "application/json").body(content.to_vec()),
            )
            .await;
            let (status, text) = status_and_text(response).await;
            assert_eq!(status, 204, "{version} {kind:?}: POST creating a document failed: {text}");
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, content.to_vec(), "{version} {kind:?}");
            assert!(
                fetched.content_type.starts_with("application/json"),
                "{version} {kind:?}: {}",
                fetched.content_type
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_without_document_id_lists_the_ids() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            assert!(
                list(&app, version, kind, &kind.scope()).await.is_empty(),
                "{version} {kind:?}: nothing stored yet"
            );
        }
        for kind in KINDS {
            create(&app, version, kind, &kind.one("first"), "application/json", b"{}").await;
            create(&app, version, kind, &kind.one("second"), "application/octet-stream", b"2").await;
            assert_eq!(list(&app, version, kind, &kind.scope()).await, ["first", "second"], "{version} {kind:?}");
        }
        // Tidy up so the next version starts empty.
        for kind in KINDS {
            for id in ["first", "second"] {
                assert_eq!(status_of(delete(&app, version, kind, &kind.one(id))).await, 204);
            }
        }
    }
}

/// The `stored` of a fresh statement: the LRS stamps statements and
/// document changes from one increasing clock, so it separates the
/// document changes made before it from those made after.
async fn marker(app: &TestApp, version: &str) -> String {
    let ids = app.post_statements(version, &statement("marker@example.com", COMPLETED, ACTIVITY)).await;
    let stored = app.query(version, &format!("?statementId={}", ids[0])).await;
    stored["stored"].as_str().expect("stored timestamp").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_lists_only_documents_changed_after_it() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let early = format!("early-{version}");
            let touched = format!("touched-{version}");
            let late = format!("late-{version}");
            create(&app, version, kind, &kind.one(&early), "application/json", b"{}").await;
            create(&app, version, kind, &kind.one(&touched), "application/json", b"{}").await;
            let before = marker(&app, version).await;
            // A change after the marker counts, not the creation before it.
            let response = send(
                post(&app, version, kind, &kind.one(&touched))
                    .header("Content-Type", "application/json")
                    .body(r#"{"changed":true}"#),
            )
            .await;
            assert_eq!(response.status(), 204, "{version} {kind:?}");
            create(&app, version, kind, &kind.one(&late), "application/json", b"{}").await;
            let after = marker(&app, version).await;

            let mut params = kind.scope();
            params.push(("since", before.clone()));
            let mut expected = vec![late.clone(), touched.clone()];
            expected.sort();
            assert_eq!(list(&app, version, kind, &params).await, expected, "{version} {kind:?}: since={before}");

            let mut params = kind.scope();
            params.push(("since", after.clone()));
            assert!(list(&app, version, kind, &params).await.is_empty(), "{version} {kind:?}: since={after}");

            let all = list(&app, version, kind, &kind.scope()).await;
            assert!(all.contains(&early), "{version} {kind:?}: without since every id is listed: {all:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_listing_with_registration_shows_only_that_registration() {
    let app = spawn_app().await;
    let kind = Kind::State;
    for version in VERSIONS {
        let with = |registration: &str, id: &str| {
            let mut params = kind.one(&format!("{id}-{version}"));
            params.push(("registration", registration.to_owned()));
            params
        };
        create(&app, version, kind, &with(REGISTRATION, "mine-a"), "application/json", b"{}").await;
        create(&app, version, kind, &with(REGISTRATION, "mine-b"), "application/json", b"{}").await;
        create(&app, version, kind, &with(OTHER_REGISTRATION, "theirs"), "application/json", b"{}").await;
        create(&app, version, kind, &kind.one(&format!("unregistered-{version}")), "application/json", b"{}").await;

        let mut params = kind.scope();
        params.push(("registration", REGISTRATION.to_owned()));
        let ids = list(&app, version, kind, &params).await;
        let expected: Vec<String> = ["mine-a", "mine-b"].iter().map(|id| format!("{id}-{version}")).collect();
        // Earlier versions' documents share the registration; keep only this round's.
        let ids: Vec<String> = ids.into_iter().filter(|id| id.ends_with(version)).collect();
        assert_eq!(ids, expected, "{version}: listing with a registration");

        // A document under one registration is not visible under another.
        let other = with(OTHER_REGISTRATION, "mine-a");
        assert_eq!(status_of(get(&app, version, kind, &other)).await, 404, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_only_the_named_document() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let gone = kind.one(&format!("gone-{version}"));
            let kept = kind.one(&format!("kept-{version}"));
            create(&app, version, kind, &gone, "application/json", b"{}").await;
            create(&app, version, kind, &kept, "application/json", b"{}").await;
            assert_eq!(status_of(delete(&app, version, kind, &gone)).await, 204, "{version} {kind:?}");
            expect_error(send(get(&app, version, kind, &gone)).await, 404).await;
            assert_eq!(fetch(&app, version, kind, &kept).await.bytes, b"{}".to_vec(), "{version} {kind:?}");
        }
    }
}

fn state_params(
    activity: &str,
    agent: &str,
    registration: Option<&str>,
    state_id: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut params = vec![("activityId", activity.to_owned()), ("agent", agent.to_owned())];
    if let Some(registration) = registration {
        params.push(("registration", registration.to_owned()));
    }
    if let Some(id) = state_id {
        params.push(("stateId", id.to_owned()));
    }
    params
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_state_without_state_id_clears_the_activity_and_agent() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let cleared = [
            state_params(ACTIVITY, AGENT, None, Some("one")),
            state_params(ACTIVITY, AGENT, None, Some("two")),
            state_params(ACTIVITY, AGENT, Some(REGISTRATION), Some("registered")),
        ];
        let untouched = [
            state_params(ACTIVITY, OTHER_AGENT, None, Some("one")),
            state_params(OTHER_ACTIVITY, AGENT, None, Some("one")),
        ];
        assert_state_delete_clears(&app, version, &cleared, &untouched, &state_params(ACTIVITY, AGENT, None, None))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_state_with_registration_clears_only_that_registration() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let cleared = [
            state_params(ACTIVITY, AGENT, Some(REGISTRATION), Some("one")),
            state_params(ACTIVITY, AGENT, Some(REGISTRATION), Some("two")),
        ];
        let untouched = [
            state_params(ACTIVITY, AGENT, Some(OTHER_REGISTRATION), Some("one")),
            state_params(ACTIVITY, AGENT, None, Some("one")),
        ];
        assert_state_delete_clears(
            &app,
            version,
            &cleared,
            &untouched,
            &state_params(ACTIVITY, AGENT, Some(REGISTRATION), None),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_missing_document_is_404() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            expect_error(send(get(&app, version, kind, &kind.one("never-stored"))).await, 404).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_if_match_of_the_current_etag_replaces_the_document() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("match-{version}"));
            create(&app, version, kind, &params, "application/json", br#"{"v":1}"#).await;
            let etag = fetch(&app, version, kind, &params).await.etag;
            let response = send(
                put(&app, version, kind, &params)
                    .header("If-Match", &etag)
                    .header("Content-Type", "application/json")
                    .body(r#"{"v":2}"#),
            )
            .await;
            let (status, text) = status_and_text(response).await;
            assert_eq!(status, 204, "{version} {kind:?}: If-Match {etag} failed: {text}");
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, br#"{"v":2}"#.to_vec(), "{version} {kind:?}");
            assert_ne!(fetched.etag, etag, "{version} {kind:?}: the ETag follows the content");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_with_if_match_of_a_stale_etag_fails_412_and_keeps_the_document() {
    let app = spawn_app().await;
    let stale = sha1_etag(b"some earlier content");
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("stale-{version}"));
            create(&app, version, kind, &params, "application/json", br#"{"v":1}"#).await;
            let response = send(
                put(&app, version, kind, &params)
                    .header("If-Match", &stale)
                    .header("Content-Type", "application/json")
                    .body(r#"{"v":2}"#),
            )
            .await;
            assert_eq!(response.status(), 412, "{version} {kind:?}: PUT with a stale If-Match");
            let response = send(
                post(&app, version, kind, &params)
                    .header("If-Match", &stale)
                    .header("Content-Type", "application/json")
                    .body(r#"{"w":3}"#),
            )
            .await;
            assert_eq!(response.status(), 412, "{version} {kind:?}: POST with a stale If-Match");
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(
                fetched.bytes,
                br#"{"v":1}"#.to_vec(),
                "{version} {kind:?}: a failed precondition changes nothing"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_if_match_to_a_missing_document_fails_412_and_creates_nothing() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("absent-{version}"));
            let response = send(
                put(&app, version, kind, &params)
                    .header("If-Match", "*")
                    .header("Content-Type", "application/json")
                    .body(r#"{"v":1}"#),
            )
            .await;
            assert_eq!(response.status(), 412, "{version} {kind:?}: If-Match: * needs an existing document");
            assert_eq!(status_of(get(&app, version, kind, &params)).await, 404, "{version} {kind:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_if_none_match_star_to_an_existing_document_fails_412_and_keeps_it() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("exists-{version}"));
            create(&app, version, kind, &params, "application/json", br#"{"v":1}"#).await;
            let response = send(
                put(&app, version, kind, &params)
                    .header("If-None-Match", "*")
                    .header("Content-Type", "application/json")
                    .body(r#"{"v":2}"#),
            )
            .await;
            assert_eq!(response.status(), 412, "{version} {kind:?}");
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(
                fetched.bytes,
                br#"{"v":1}"#.to_vec(),
                "{version} {kind:?}: a failed precondition changes nothing"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_put_to_an_existing_profile_conflicts_409_and_keeps_it() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in PROFILES {
            let params = kind.one(&format!("conflict-{version}"));
            create(&app, version, kind, &params, "application/json", br#"{"v":1}"#).await;
            let response =
                send(put(&app, version, kind, &params).header("Content-Type", "application/json").body(r#"{"v":2}"#))
                    .await;
            expect_error(response, 409).await;
            let fetched = fetch(&app, version, kind, &params).await;
            assert_eq!(fetched.bytes, br#"{"v":1}"#.to_vec(), "{version} {kind:?}: a conflicting PUT changes nothing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_put_to_a_new_profile_is_rejected_in_1_0_3() {
    let app = spawn_app().await;
    for kind in PROFILES {
        let params = kind.one("unconditional");
        let response =
            send(put(&app, V1, kind, &params).header("Content-Type", "application/json").body(r#"{"v":1}"#)).await;
        expect_error(response, 400).await;
        assert_eq!(status_of(get(&app, V1, kind, &params)).await, 404, "{kind:?}: the refused PUT stored nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_put_to_a_new_profile_creates_it_in_2_0() {
    let app = spawn_app().await;
    for kind in PROFILES {
        let params = kind.one("unconditional");
        let response =
            send(put(&app, V2, kind, &params).header("Content-Type", "application/json").body(r#"{"v":1}"#)).await;
        assert_eq!(response.status(), 204, "{kind:?}");
        assert_eq!(fetch(&app, V2, kind, &params).await.bytes, br#"{"v":1}"#.to_vec(), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_state_put_overwrites_in_1_0_3() {
    let app = spawn_app().await;
    let params = Kind::State.one("overwritten");
    for body in [r#"{"v":1}"#, r#"{"v":2}"#] {
        let response =
            send(put(&app, V1, Kind::State, &params).header("Content-Type", "application/json").body(body)).await;
        assert_eq!(response.status(), 204, "unconditional State PUT of {body}");
    }
    assert_eq!(fetch(&app, V1, Kind::State, &params).await.bytes, br#"{"v":2}"#.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_state_put_to_an_existing_document_conflicts_in_2_0() {
    let app = spawn_app().await;
    let params = Kind::State.one("guarded");
    let response =
        send(put(&app, V2, Kind::State, &params).header("Content-Type", "application/json").body(r#"{"v":1}"#)).await;
    assert_eq!(response.status(), 204, "creating without headers is allowed");
    let response =
        send(put(&app, V2, Kind::State, &params).header("Content-Type", "application/json").body(r#"{"v":2}"#)).await;
    expect_error(response, 409).await;
    assert_eq!(fetch(&app, V2, Kind::State, &params).await.bytes, br#"{"v":1}"#.to_vec());
}

/// Sends `params` to `kind` with each method and expects a 400 JSON error
/// from every one of them.
async fn expect_rejected_by_every_method(
    app: &TestApp,
    version: &str,
    kind: Kind,
    params: &[(&str, String)],
    what: &str,
) {
    let requests = [
        ("GET", get(app, version, kind, params)),
        ("PUT", put(app, version, kind, params).header("If-None-Match", "*")),
        ("POST", post(app, version, kind, params)),
        ("DELETE", delete(app, version, kind, params)),
    ];
    for (method, request) in requests {
        let response = send(request.header("Content-Type", "application/json").body(r#"{"a":1}"#)).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 400, "{version} {kind:?} {method} {what}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text}"));
        assert!(body["error"]["message"].is_string(), "{version} {kind:?} {method} {what}: no message in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_activity_id_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in [Kind::State, Kind::ActivityProfile] {
            let mut params = kind.one("doc");
            params.retain(|(name, _)| *name != "activityId");
            expect_rejected_by_every_method(&app, version, kind, &params, "without activityId").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_agent_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in [Kind::State, Kind::AgentProfile] {
            let mut params = kind.one("doc");
            params.retain(|(name, _)| *name != "agent");
            expect_rejected_by_every_method(&app, version, kind, &params, "without agent").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_without_a_document_id_are_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.scope();
            let response = send(
                put(&app, version, kind, &params)
                    .header("If-None-Match", "*")
                    .header("Content-Type", "application/json")
                    .body("{}"),
            )
            .await;
            expect_error(response, 400).await;
            let response =
                send(post(&app, version, kind, &params).header("Content-Type", "application/json").body("{}")).await;
            expect_error(response, 400).await;
            assert!(list(&app, version, kind, &params).await.is_empty(), "{version} {kind:?}: nothing was stored");
        }
        // Only State may be deleted wholesale; a profile DELETE names its document.
        for kind in PROFILES {
            expect_error(send(delete(&app, version, kind, &kind.scope())).await, 400).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_that_is_not_json_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in [Kind::State, Kind::AgentProfile] {
            for agent in ["mailto:learner@example.com", r#"{"mbox":"mailto:learner@example.com""#, r#""a string""#] {
                let mut params = kind.one("doc");
                params.retain(|(name, _)| *name != "agent");
                params.push(("agent", agent.to_owned()));
                expect_rejected_by_every_method(&app, version, kind, &params, &format!("with agent={agent}")).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_two_identifiers_is_rejected() {
    let app = spawn_app().await;
    let agent =
        r#"{"objectType":"Agent","mbox":"mailto:learner@example.com","openid":"http://openid.example.com/learner"}"#;
    for version in VERSIONS {
        for kind in [Kind::State, Kind::AgentProfile] {
            let mut params = kind.one("doc");
            params.retain(|(name, _)| *name != "agent");
            params.push(("agent", agent.to_owned()));
            expect_rejected_by_every_method(&app, version, kind, &params, "with two IFIs").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameter_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let mut params = kind.one("doc");
            params.push(("colour", "blue".to_owned()));
            expect_rejected_by_every_method(&app, version, kind, &params, "with an unknown parameter").await;
        }
        // registration belongs to State only.
        for kind in PROFILES {
            let mut params = kind.one("doc");
            params.push(("registration", REGISTRATION.to_owned()));
            expect_rejected_by_every_method(&app, version, kind, &params, "with registration").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_registration_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let mut params = Kind::State.one("doc");
        params.push(("registration", "not-a-uuid".to_owned()));
        expect_rejected_by_every_method(&app, version, Kind::State, &params, "with a malformed registration").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_a_json_non_object_onto_a_json_document_is_rejected_and_leaves_it_unchanged() {
    let app = spawn_app().await;
    let stored = br#"{"a":1}"#.to_vec();
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("object-{version}"));
            create(&app, version, kind, &params, "application/json", &stored).await;
            for body in ["[1,2]", "\"text\"", "42", "{not json"] {
                let response =
                    send(post(&app, version, kind, &params).header("Content-Type", "application/json").body(body))
                        .await;
                expect_error(response, 400).await;
            }
            assert_eq!(fetch(&app, version, kind, &params).await.bytes, stored, "{version} {kind:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_parameter_names_the_agent_by_its_identifier_alone() {
    let app = spawn_app().await;
    let described = r#"{"name":"A. Learner","mbox":"mailto:learner@example.com","objectType":"Agent"}"#;
    let bare = r#"{"mbox":"mailto:learner@example.com"}"#;
    for version in VERSIONS {
        for kind in [Kind::State, Kind::AgentProfile] {
            let id = format!("same-agent-{version}");
            let mut params = kind.one(&id);
            params.retain(|(name, _)| *name != "agent");
            let with_agent = |agent: &str| {
                let mut p = params.clone();
                p.push(("agent", agent.to_owned()));
                p
            };
            create(&app, version, kind, &with_agent(described), "application/json", br#"{"who":"me"}"#).await;
            let fetched = fetch(&app, version, kind, &with_agent(bare)).await;
            assert_eq!(fetched.bytes, br#"{"who":"me"}"#.to_vec(), "{version} {kind:?}");
            assert_eq!(
                status_of(get(&app, version, kind, &with_agent(OTHER_AGENT))).await,
                404,
                "{version} {kind:?}: another agent has no such document"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_with_the_same_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for kind in KINDS {
            let params = kind.one(&format!("race-{version}"));
            create(&app, version, kind, &params, "application/json", br#"{"n":0}"#).await;
            let etag = fetch(&app, version, kind, &params).await.etag;
            let writers = (1..=6).map(|n| {
                let request = put(&app, version, kind, &params)
                    .header("If-Match", &etag)
                    .header("Content-Type", "application/json")
                    .body(format!(r#"{{"n":{n}}}"#));
                async move { (n, send(request).await.status().as_u16()) }
            });
            let outcomes = futures_join_all(writers).await;
            let winners: Vec<u32> = outcomes.iter().filter(|(_, s)| *s == 204).map(|(n, _)| *n).collect();
            assert_eq!(winners.len(), 1, "{version} {kind:?}: exactly one write may win: {outcomes:?}");
            assert!(outcomes.iter().all(|(_, s)| *s == 204 || *s == 412), "{version} {kind:?}: {outcomes:?}");
            let stored: Value = serde_json::from_slice(&fetch(&app, version, kind, &params).await.bytes).expect("json");
            assert_eq!(stored, json!({ "n": winners[0] }), "{version} {kind:?}: the winner's content is stored");
        }
    }
}

/// Runs futures concurrently on the runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

/// Creates every document of `cleared` and `untouched`, DELETEs the state
/// scope `delete_params`, and checks exactly `cleared` is gone.
async fn assert_state_delete_clears(
    app: &TestApp,
    version: &str,
    cleared: &[Vec<(&str, String)>],
    untouched: &[Vec<(&str, String)>],
    delete_params: &[(&str, String)],
) {
    let kind = Kind::State;
    for params in cleared.iter().chain(untouched) {
        create(app, version, kind, params, "application/json", b"{}").await;
    }
    let response = send(delete(app, version, kind, delete_params)).await;
    assert_eq!(response.status(), 204, "{version}");
    for params in cleared {
        assert_eq!(status_of(get(app, version, kind, params)).await, 404, "{version}: {params:?} survived");
    }
    for params in untouched {
        assert_eq!(status_of(get(app, version, kind, params)).await, 200, "{version}: {params:?} was deleted");
        assert_eq!(status_of(delete(app, version, kind, params)).await, 204, "{version}: tidy up");
    }
}
