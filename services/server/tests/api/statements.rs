//! The Statement resource (`/xapi/statements`): storing, immutability,
//! validation, voiding, queries, formats, paging, headers, attachments,
//! signatures and the `statements/read/mine` scope.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{COMPLETED, PASSED, TestApp, V1, V2, VERSIONS, VOIDED, expect_error, spawn_app, spawn_app_with, statement};

const STATEMENTS: &str = "/xapi/statements";

fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// `statement(...)` with a fixed id.
fn statement_with_id(id: &str, email: &str, verb: &str, activity: &str) -> Value {
    let mut s = statement(email, verb, activity);
    s["id"] = json!(id);
    s
}

/// A voiding statement targeting `target`.
fn voiding(target: &str) -> Value {
    json!({
        "actor": { "objectType": "Agent", "mbox": "mailto:admin@example.com" },
        "verb": { "id": VOIDED, "display": { "en-US": "voided" } },
        "object": { "objectType": "StatementRef", "id": target }
    })
}

/// Every statement the query returns, following `more` links.
async fn all_pages(app: &TestApp, version: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut page = app.query(version, query).await;
    loop {
        out.extend(page["statements"].as_array().expect("statements array").iter().cloned());
        let more = page["more"].as_str().expect("more is a string").to_owned();
        if more.is_empty() {
            return out;
        }
        let response = app.get(&more, version).send().await.expect("send");
        assert_eq!(response.status(), 200, "following {more}");
        page = response.json().await.expect("json page");
    }
}

/// The ids a query returns (all pages), in order.
async fn ids_of(app: &TestApp, version: &str, query: &str) -> Vec<String> {
    all_pages(app, version, query)
        .await
        .iter()
        .map(|s| s["id"].as_str().expect("statement id").to_owned())
        .collect()
}

/// How many statements an unfiltered query returns.
async fn stored_count(app: &TestApp, version: &str) -> usize {
    all_pages(app, version, "").await.len()
}

/// GET ?statementId=… and return (status, body).
async fn get_by_id(app: &TestApp, version: &str, id: &str) -> (StatusCode, Value) {
    let response = app.get(&format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asserts the response carries a valid RFC 3339 `X-Experience-API-Consistent-Through`.
fn assert_consistent_through(response: &Response, what: &str) {
    let value = response
        .headers()
        .get("x-experience-api-consistent-through")
        .unwrap_or_else(|| panic!("{what}: no X-Experience-API-Consistent-Through header"))
        .to_str()
        .expect("header text");
    assert!(
        chrono::DateTime::parse_from_rfc3339(value).is_ok(),
        "{what}: X-Experience-API-Consistent-Through {value:?} is not RFC 3339"
    );
}

fn assert_version_header(response: &Response, what: &str) {
    let value = response
        .headers()
        .get("x-experience-api-version")
        .unwrap_or_else(|| panic!("{what}: no X-Experience-API-Version header"))
        .to_str()
        .expect("header text");
    assert!(value.starts_with("1.0") || value.starts_with("2.0"), "{what}: version header {value:?}");
}

// ---------------------------------------------------------------- PUT

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_statement_id_stores_it_and_lrs_sets_stored_authority_version_timestamp() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let mut body = statement("put@example.com", COMPLETED, "http://example.com/put");
        body["authority"] = json!({ "objectType": "Agent", "mbox": "mailto:impostor@example.com" });
        let response = app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
        assert_eq!(response.status(), 204, "{version}: {}", response.text().await.unwrap_or_default());

        let (status, stored) = get_by_id(&app, version, &id).await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(stored["id"], json!(id), "{version}");
        assert_eq!(stored["actor"]["mbox"], json!("mailto:put@example.com"), "{version}");
        let stored_text = stored["stored"].as_str().expect("stored is set");
        assert!(chrono::DateTime::parse_from_rfc3339(stored_text).is_ok(), "{version}: stored {stored_text:?}");
        assert_eq!(stored["timestamp"], stored["stored"], "{version}: timestamp defaults to stored");
        let expected_version_prefix = if version == V1 { "1.0" } else { "2.0" };
        assert!(
            stored["version"].as_str().is_some_and(|v| v.starts_with(expected_version_prefix)),
            "{version}: version {:?}",
            stored["version"]
        );
        let authority = &stored["authority"];
        assert_ne!(authority["mbox"], json!("mailto:impostor@example.com"), "{version}: client authority kept");
        assert_eq!(authority["account"]["name"], json!(app.key), "{version}: authority is not the credential");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_keeps_a_timestamp_the_client_gave() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let mut body = statement("ts@example.com", COMPLETED, "http://example.com/ts");
        body["timestamp"] = json!("2020-02-03T04:05:06.000Z");
        let response = app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
        assert_eq!(response.status(), 204, "{version}");
        let (_, stored) = get_by_id(&app, version, &id).await;
        let timestamp = chrono::DateTime::parse_from_rfc3339(stored["timestamp"].as_str().expect("timestamp")).expect("rfc3339");
        let expected = chrono::DateTime::parse_from_rfc3339("2020-02-03T04:05:06Z").expect("rfc3339");
        assert_eq!(timestamp, expected, "{version}");
        assert_ne!(stored["timestamp"], stored["stored"], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_without_statement_id_is_rejected_and_stores_nothing() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let body = statement("noid@example.com", COMPLETED, "http://example.com/noid");
        let response = app.put(STATEMENTS, version).json(&body).send().await.expect("send");
        expect_error(response, 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_whose_body_id_differs_from_the_parameter_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let parameter = new_id();
        let body = statement_with_id(&new_id(), "differ@example.com", COMPLETED, "http://example.com/differ");
        let response = app.put(&format!("{STATEMENTS}?statementId={parameter}"), version).json(&body).send().await.expect("send");
        let error = expect_error(response, 400).await;
        assert_eq!(error["error"]["path"], json!("/id"), "{version}");
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
        let (status, _) = get_by_id(&app, version, &parameter).await;
        assert_eq!(status, 404, "{version}");
    }
}

// ---------------------------------------------------------------- POST

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_one_statement_returns_its_id() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let ids = app.post_statements(version, &statement_with_id(&id, "one@example.com", COMPLETED, "http://example.com/one")).await;
        assert_eq!(ids, vec![id.clone()], "{version}");
        let (status, stored) = get_by_id(&app, version, &id).await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(stored["object"]["id"], json!("http://example.com/one"), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_an_array_returns_ids_in_order_and_generates_missing_ones() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let first = new_id();
        let third = new_id();
        let body = json!([
            statement_with_id(&first, "a@example.com", COMPLETED, "http://example.com/a"),
            statement("b@example.com", COMPLETED, "http://example.com/b"),
            statement_with_id(&third, "c@example.com", COMPLETED, "http://example.com/c"),
        ]);
        let ids = app.post_statements(version, &body).await;
        assert_eq!(ids.len(), 3, "{version}");
        assert_eq!(ids[0], first, "{version}");
        assert_eq!(ids[2], third, "{version}");
        let generated = Uuid::parse_str(&ids[1]).expect("generated id is a UUID");
        assert!(![first.as_str(), third.as_str()].contains(&generated.to_string().as_str()), "{version}");
        for (id, activity) in ids.iter().zip(["a", "b", "c"]) {
            let (status, stored) = get_by_id(&app, version, id).await;
            assert_eq!(status, 200, "{version}");
            assert_eq!(stored["object"]["id"], json!(format!("http://example.com/{activity}")), "{version}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_an_array_with_one_invalid_statement_stores_none_and_points_at_it() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let good = new_id();
        let mut bad = statement("bad@example.com", COMPLETED, "http://example.com/bad");
        bad["verb"]["id"] = json!("not an iri");
        let body = json!([statement_with_id(&good, "good@example.com", COMPLETED, "http://example.com/good"), bad]);
        let response = app.post(STATEMENTS, version).json(&body).send().await.expect("send");
        let error = expect_error(response, 400).await;
        let path = error["error"]["path"].as_str().unwrap_or_default();
        assert!(path.starts_with("/1/") || path == "/1", "{version}: error path {path:?}");
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
        let (status, _) = get_by_id(&app, version, &good).await;
        assert_eq!(status, 404, "{version}");
    }
}

// ---------------------------------------------------------------- immutability

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_resend_is_accepted_and_stored_once() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        let body = statement_with_id(&id, "again@example.com", COMPLETED, "http://example.com/again");
        assert_eq!(app.post_statements(version, &body).await, vec![id.clone()], "{version}");
        let (_, first) = get_by_id(&app, version, &id).await;
        assert_eq!(app.post_statements(version, &body).await, vec![id.clone()], "{version}: second POST");
        let response = app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
        assert_eq!(response.status(), 204, "{version}: PUT of the same statement");
        assert_eq!(ids_of(&app, version, "").await, vec![id.clone()], "{version}: stored more than once");
        let (_, after) = get_by_id(&app, version, &id).await;
        assert_eq!(after["stored"], first["stored"], "{version}: the repeat replaced the original");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_with_different_content_is_a_conflict() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        app.post_statements(version, &statement_with_id(&id, "orig@example.com", COMPLETED, "http://example.com/orig")).await;
        let changed = statement_with_id(&id, "orig@example.com", PASSED, "http://example.com/orig");
        let response = app.post(STATEMENTS, version).json(&changed).send().await.expect("send");
        expect_error(response, 409).await;
        let response = app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&changed).send().await.expect("send");
        expect_error(response, 409).await;
        let (_, stored) = get_by_id(&app, version, &id).await;
        assert_eq!(stored["verb"]["id"], json!(COMPLETED), "{version}: original changed");
        assert_eq!(stored_count(&app, version).await, 1, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_inside_one_post_are_rejected_and_nothing_is_stored() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        let body = json!([
            statement_with_id(&id, "dup@example.com", COMPLETED, "http://example.com/dup"),
            statement_with_id(&id, "dup@example.com", COMPLETED, "http://example.com/dup"),
        ]);
        let response = app.post(STATEMENTS, version).json(&body).send().await.expect("send");
        expect_error(response, 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

// ---------------------------------------------------------------- validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_statement_error_names_the_json_path() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let mut body = statement("x@example.com", COMPLETED, "http://example.com/x");
        body["actor"]["mbox"] = json!("x@example.com");
        let response = app.post(STATEMENTS, version).json(&body).send().await.expect("send");
        let error = expect_error(response, 400).await;
        assert_eq!(error["error"]["path"], json!("/actor/mbox"), "{version}: {error}");
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

/// POSTs raw bytes with a content type and expects `status`, then checks
/// that nothing was stored.
async fn post_raw_expecting(app: &TestApp, version: &str, content_type: Option<&str>, body: Vec<u8>, status: u16) {
    let mut request = app.post(STATEMENTS, version).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = request.send().await.expect("send");
    expect_error(response, status).await;
    assert_eq!(stored_count(app, version).await, 0, "{version}: something was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let text = r#"{"actor": {"mbox": "mailto:a@example.com"}, "verb": "#;
        post_raw_expecting(&app, version, Some("application/json"), text.as_bytes().to_vec(), 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_json_keys_are_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let text = r#"{
            "actor": {"objectType": "Agent", "mbox": "mailto:a@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "id": "http://adlnet.gov/expapi/verbs/passed"},
            "object": {"id": "http://example.com/dupkeys"}
        }"#;
        post_raw_expecting(&app, version, Some("application/json"), text.as_bytes().to_vec(), 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let body = serde_json::to_vec(&statement("ct@example.com", COMPLETED, "http://example.com/ct")).expect("json");
        post_raw_expecting(&app, version, Some("text/plain"), body, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        post_raw_expecting(&app, version, Some("application/json"), Vec::new(), 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_the_limit_is_refused_with_413() {
    let app = spawn_app_with(|o| o.server.max_body_bytes = 2048).await;
    for version in VERSIONS {
        let mut body = statement("big@example.com", COMPLETED, "http://example.com/big");
        body["object"]["definition"]["description"] = json!({ "en-US": "x".repeat(4096) });
        let bytes = serde_json::to_vec(&body).expect("json");
        assert!(bytes.len() > 2048);
        post_raw_expecting(&app, version, Some("application/json"), bytes, 413).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_valid_in_1_0_3_but_not_2_0_is_accepted_only_by_1_0_3() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/statements/invalid-2.0");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("fixture folder").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(!files.is_empty());
    let app = spawn_app().await;
    for file in files {
        let body: Value = serde_json::from_slice(&std::fs::read(&file).expect("fixture")).expect("fixture json");
        let response = app.post(STATEMENTS, V2).json(&body).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 400, "{}: 2.0 accepted it: {text}", file.display());
        assert_eq!(stored_count(&app, V2).await, 0, "{}", file.display());
    }
    for file in std::fs::read_dir(&dir).expect("fixture folder").map(|e| e.expect("entry").path()) {
        let body: Value = serde_json::from_slice(&std::fs::read(&file).expect("fixture")).expect("fixture json");
        let response = app.post(STATEMENTS, V1).json(&body).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "{}: 1.0.3 refused it: {text}", file.display());
    }
}

// ---------------------------------------------------------------- voiding

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voided_statement_is_found_only_by_voided_statement_id() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let target = new_id();
        app.post_statements(version, &statement_with_id(&target, "v@example.com", COMPLETED, "http://example.com/v")).await;
        app.post_statements(version, &voiding(&target)).await;
        let (status, _) = get_by_id(&app, version, &target).await;
        assert_eq!(status, 404, "{version}: voided statement still returned by statementId");
        let response = app.get(&format!("{STATEMENTS}?voidedStatementId={target}"), version).send().await.expect("send");
        assert_eq!(response.status(), 200, "{version}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["id"], json!(target), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_that_is_not_voided_is_not_found_by_voided_statement_id() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        app.post_statements(version, &statement_with_id(&id, "nv@example.com", COMPLETED, "http://example.com/nv")).await;
        let response = app.get(&format!("{STATEMENTS}?voidedStatementId={id}"), version).send().await.expect("send");
        expect_error(response, 404).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_exclude_voided_statements_but_include_the_voiding_statement() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let target = new_id();
        let kept = new_id();
        app.post_statements(version, &statement_with_id(&target, "q@example.com", COMPLETED, "http://example.com/q")).await;
        app.post_statements(version, &statement_with_id(&kept, "q@example.com", COMPLETED, "http://example.com/q")).await;
        let voider = app.post_statements(version, &voiding(&target)).await.remove(0);
        let ids = ids_of(&app, version, "").await;
        assert_eq!(ids, vec![voider.clone(), kept.clone()], "{version}");
        // A filter the voided statement matched: the voiding statement (which refers to it) stays.
        let ids = ids_of(&app, version, &format!("?activity={}", encode("http://example.com/q"))).await;
        assert!(!ids.contains(&target), "{version}: voided statement returned by an activity query");
        assert!(ids.contains(&kept), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_a_voiding_statement_does_not_void_it() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let target = new_id();
        app.post_statements(version, &statement_with_id(&target, "vv@example.com", COMPLETED, "http://example.com/vv")).await;
        let first_voider = app.post_statements(version, &voiding(&target)).await.remove(0);
        let response = app.post(STATEMENTS, version).json(&voiding(&first_voider)).send().await.expect("send");
        let status = response.status();
        assert!(status == 200 || status == 400, "{version}: unexpected {status}");
        let (status, body) = get_by_id(&app, version, &first_voider).await;
        assert_eq!(status, 200, "{version}: the voiding statement was voided");
        assert_eq!(body["id"], json!(first_voider), "{version}");
        let response = app.get(&format!("{STATEMENTS}?voidedStatementId={first_voider}"), version).send().await.expect("send");
        assert_eq!(response.status(), 404, "{version}");
        assert!(ids_of(&app, version, "").await.contains(&first_voider), "{version}");
        let (status, _) = get_by_id(&app, version, &target).await;
        assert_eq!(status, 404, "{version}: the original is still voided");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_an_unknown_statement_is_accepted() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let unknown = new_id();
        let ids = app.post_statements(version, &voiding(&unknown)).await;
        let (status, body) = get_by_id(&app, version, &ids[0]).await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(body["object"]["id"], json!(unknown), "{version}");
    }
}

// ---------------------------------------------------------------- queries

const ATTEMPTED: &str = "http://adlnet.gov/expapi/verbs/attempted";

fn account_actor_statement(home: &str, name: &str, verb: &str, activity: &str) -> Value {
    let mut s = statement("unused@example.com", verb, activity);
    s["actor"] = json!({ "objectType": "Agent", "account": { "homePage": home, "name": name } });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_filter_matches_mbox_agents() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let alice = app.post_statements(version, &statement("alice@example.com", COMPLETED, "http://example.com/a1")).await.remove(0);
        app.post_statements(version, &statement("bob@example.com", COMPLETED, "http://example.com/a1")).await;
        // An Agent as the object also counts under the narrow filter.
        let mut about_alice = statement("carol@example.com", COMPLETED, "http://example.com/a1");
        about_alice["object"] = json!({ "objectType": "Agent", "mbox": "mailto:alice@example.com" });
        let object_alice = app.post_statements(version, &about_alice).await.remove(0);
        let agent = encode(r#"{"objectType":"Agent","mbox":"mailto:alice@example.com"}"#);
        let ids = ids_of(&app, version, &format!("?agent={agent}")).await;
        assert_eq!(ids, vec![object_alice, alice], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_filter_matches_account_agents() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let home = "https://accounts.example.com";
        let wanted = app.post_statements(version, &account_actor_statement(home, "u-1", COMPLETED, "http://example.com/acc")).await.remove(0);
        app.post_statements(version, &account_actor_statement(home, "u-2", COMPLETED, "http://example.com/acc")).await;
        app.post_statements(version, &account_actor_statement("https://other.example.com", "u-1", COMPLETED, "http://example.com/acc")).await;
        let agent = encode(&json!({ "account": { "homePage": home, "name": "u-1" } }).to_string());
        let ids = ids_of(&app, version, &format!("?agent={agent}")).await;
        assert_eq!(ids, vec![wanted], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_filter_that_is_not_an_agent_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let response = app.get(&format!("{STATEMENTS}?agent={}", encode("not json")), version).send().await.expect("send");
        expect_error(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verb_filter_returns_only_that_verb() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let passed = app.post_statements(version, &statement("v@example.com", PASSED, "http://example.com/vf")).await.remove(0);
        app.post_statements(version, &statement("v@example.com", COMPLETED, "http://example.com/vf")).await;
        let ids = ids_of(&app, version, &format!("?verb={}", encode(PASSED))).await;
        assert_eq!(ids, vec![passed], "{version}");
    }
}

fn with_context_activity(mut s: Value, parent: &str) -> Value {
    s["context"] = json!({ "contextActivities": { "parent": [{ "id": parent }] } });
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_filter_matches_the_object_and_related_activities_adds_context_activities() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let course = "http://example.com/course";
        let direct = app.post_statements(version, &statement("a@example.com", COMPLETED, course)).await.remove(0);
        let in_context = app
            .post_statements(version, &with_context_activity(statement("a@example.com", COMPLETED, "http://example.com/lesson"), course))
            .await
            .remove(0);
        app.post_statements(version, &statement("a@example.com", COMPLETED, "http://example.com/elsewhere")).await;
        let ids = ids_of(&app, version, &format!("?activity={}", encode(course))).await;
        assert_eq!(ids, vec![direct.clone()], "{version}: narrow activity filter");
        let ids = ids_of(&app, version, &format!("?activity={}&related_activities=true", encode(course))).await;
        assert_eq!(ids, vec![in_context, direct], "{version}: related_activities");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_filter_returns_only_that_registration() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let registration = new_id();
        let mut s = statement("r@example.com", COMPLETED, "http://example.com/reg");
        s["context"] = json!({ "registration": registration });
        let wanted = app.post_statements(version, &s).await.remove(0);
        let mut other = statement("r@example.com", COMPLETED, "http://example.com/reg");
        other["context"] = json!({ "registration": new_id() });
        app.post_statements(version, &other).await;
        app.post_statements(version, &statement("r@example.com", COMPLETED, "http://example.com/reg")).await;
        let ids = ids_of(&app, version, &format!("?registration={registration}")).await;
        assert_eq!(ids, vec![wanted], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_agents_counts_the_context_instructor() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let mut taught = statement("learner@example.com", COMPLETED, "http://example.com/taught");
        taught["context"] = json!({ "instructor": { "objectType": "Agent", "mbox": "mailto:teacher@example.com" } });
        let taught = app.post_statements(version, &taught).await.remove(0);
        let own = app.post_statements(version, &statement("teacher@example.com", COMPLETED, "http://example.com/own")).await.remove(0);
        app.post_statements(version, &statement("learner@example.com", COMPLETED, "http://example.com/untaught")).await;
        let agent = encode(r#"{"mbox":"mailto:teacher@example.com"}"#);
        let ids = ids_of(&app, version, &format!("?agent={agent}")).await;
        assert_eq!(ids, vec![own.clone()], "{version}: narrow agent filter counts the instructor");
        let ids = ids_of(&app, version, &format!("?agent={agent}&related_agents=true")).await;
        assert_eq!(ids, vec![own, taught], "{version}: related_agents");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_is_exclusive_and_until_is_inclusive_on_stored() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let mut ids = Vec::new();
        for n in 0..4 {
            ids.push(app.post_statements(version, &statement("t@example.com", COMPLETED, &format!("http://example.com/t{n}"))).await.remove(0));
        }
        let mut stored = Vec::new();
        for id in &ids {
            let (_, s) = get_by_id(&app, version, id).await;
            stored.push(s["stored"].as_str().expect("stored").to_owned());
        }
        let since = encode(&stored[1]);
        let until = encode(&stored[2]);
        assert_eq!(ids_of(&app, version, &format!("?since={since}")).await, vec![ids[3].clone(), ids[2].clone()], "{version}: since");
        assert_eq!(
            ids_of(&app, version, &format!("?until={until}")).await,
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
            "{version}: until"
        );
        assert_eq!(ids_of(&app, version, &format!("?since={since}&until={until}")).await, vec![ids[2].clone()], "{version}: both");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_ascending_order_results() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(app.post_statements(version, &statement("o@example.com", COMPLETED, &format!("http://example.com/o{n}"))).await.remove(0));
        }
        let page = app.query(version, "?limit=2").await;
        let got: Vec<&str> = page["statements"].as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id")).collect();
        assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()], "{version}: newest first");
        let page = app.query(version, "?limit=2&ascending=true").await;
        let got: Vec<&str> = page["statements"].as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id")).collect();
        assert_eq!(got, vec![ids[0].as_str(), ids[1].as_str()], "{version}: ascending");
        assert_eq!(ids_of(&app, version, "?ascending=true").await, ids, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_with_and() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let activity = "http://example.com/combo";
        let wanted = app.post_statements(version, &statement("combo@example.com", PASSED, activity)).await.remove(0);
        app.post_statements(version, &statement("combo@example.com", COMPLETED, activity)).await;
        app.post_statements(version, &statement("other@example.com", PASSED, activity)).await;
        app.post_statements(version, &statement("combo@example.com", PASSED, "http://example.com/not-combo")).await;
        let agent = encode(r#"{"mbox":"mailto:combo@example.com"}"#);
        let query = format!("?agent={agent}&verb={}&activity={}", encode(PASSED), encode(activity));
        assert_eq!(ids_of(&app, version, &query).await, vec![wanted], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_referring_to_a_matching_statement_is_also_returned() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let target = app.post_statements(version, &statement("ref@example.com", PASSED, "http://example.com/ref")).await.remove(0);
        let mut referrer = statement("commenter@example.com", ATTEMPTED, "http://example.com/unused");
        referrer["object"] = json!({ "objectType": "StatementRef", "id": target });
        let referrer = app.post_statements(version, &referrer).await.remove(0);
        app.post_statements(version, &statement("ref@example.com", COMPLETED, "http://example.com/ref")).await;
        let ids = ids_of(&app, version, &format!("?verb={}", encode(PASSED))).await;
        assert_eq!(ids, vec![referrer.clone(), target.clone()], "{version}: verb filter");
        let ids = ids_of(&app, version, &format!("?activity={}", encode("http://example.com/ref"))).await;
        assert!(ids.contains(&referrer), "{version}: activity filter");
    }
}
