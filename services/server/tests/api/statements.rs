//! The Statement resource (`/xapi/statements`): storing, immutability,
//! validation, voiding, queries, formats, paging, headers, attachments,
//! signatures and the `statements/read/mine` scope.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use lrs_server::credentials::Scope;

use crate::support::{
    COMPLETED, PASSED, TestApp, V1, V2, VERSIONS, VOIDED, expect_error, spawn_app, spawn_app_with, statement,
};

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
    all_pages(app, version, query).await.iter().map(|s| s["id"].as_str().expect("statement id").to_owned()).collect()
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

/// A page of results lists each statement as a GET by id returns it: as
/// stored, its timestamp filled from `stored` when the client gave none,
/// in every format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_lists_statements_as_a_get_by_id_returns_them() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let actor = format!("listed-{}@example.com", new_id());
        let mut dated = statement(&actor, COMPLETED, "http://example.com/listed");
        dated["timestamp"] = json!("2026-03-01T10:00:00.000Z");
        let undated = statement(&actor, COMPLETED, "http://example.com/listed");
        let ids = app.post_statements(version, &json!([dated, undated])).await;
        let agent = encode(&json!({ "mbox": format!("mailto:{actor}") }).to_string());
        for format in ["exact", "ids", "canonical"] {
            let page = app.query(version, &format!("?agent={agent}&format={format}&ascending=true")).await;
            let listed = page["statements"].as_array().expect("statements");
            assert_eq!(listed.len(), 2, "{version} {format}");
            for (id, listed) in ids.iter().zip(listed) {
                let response = app
                    .get(&format!("{STATEMENTS}?statementId={id}&format={format}"), version)
                    .send()
                    .await
                    .expect("send");
                let one: Value = serde_json::from_str(&response.text().await.expect("body")).expect("json");
                assert_eq!(listed, &one, "{version} {format}");
                assert!(listed["timestamp"].is_string(), "{version} {format}: {listed}");
            }
            assert_eq!(listed[0]["timestamp"], json!("2026-03-01T10:00:00.000Z"), "{version} {format}");
            assert_eq!(listed[1]["timestamp"], listed[1]["stored"], "{version} {format}: from stored");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_with_statement_id_stores_it_and_lrs_sets_stored_authority_version_timestamp() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let mut body = statement("put@example.com", COMPLETED, "http://example.com/put");
        body["authority"] = json!({ "objectType": "Agent", "mbox": "mailto:impostor@example.com" });
        let response =
            app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
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
        let response =
            app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
        assert_eq!(response.status(), 204, "{version}");
        let (_, stored) = get_by_id(&app, version, &id).await;
        let timestamp =
            chrono::DateTime::parse_from_rfc3339(stored["timestamp"].as_str().expect("timestamp")).expect("rfc3339");
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
        let response =
            app.put(&format!("{STATEMENTS}?statementId={parameter}"), version).json(&body).send().await.expect("send");
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
        let ids = app
            .post_statements(version, &statement_with_id(&id, "one@example.com", COMPLETED, "http://example.com/one"))
            .await;
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
        let response =
            app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
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
        app.post_statements(version, &statement_with_id(&id, "orig@example.com", COMPLETED, "http://example.com/orig"))
            .await;
        let changed = statement_with_id(&id, "orig@example.com", PASSED, "http://example.com/orig");
        let response = app.post(STATEMENTS, version).json(&changed).send().await.expect("send");
        expect_error(response, 409).await;
        let response =
            app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&changed).send().await.expect("send");
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
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("fixture folder").map(|e| e.expect("entry").path()).collect();
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
        app.post_statements(version, &statement_with_id(&target, "v@example.com", COMPLETED, "http://example.com/v"))
            .await;
        app.post_statements(version, &voiding(&target)).await;
        let (status, _) = get_by_id(&app, version, &target).await;
        assert_eq!(status, 404, "{version}: voided statement still returned by statementId");
        let response =
            app.get(&format!("{STATEMENTS}?voidedStatementId={target}"), version).send().await.expect("send");
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
        app.post_statements(version, &statement_with_id(&id, "nv@example.com", COMPLETED, "http://example.com/nv"))
            .await;
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
        app.post_statements(version, &statement_with_id(&target, "q@example.com", COMPLETED, "http://example.com/q"))
            .await;
        app.post_statements(version, &statement_with_id(&kept, "q@example.com", COMPLETED, "http://example.com/q"))
            .await;
        let voider = app.post_statements(version, &voiding(&target)).await.remove(0);
        let ids = ids_of(&app, version, "").await;
        assert_eq!(ids, vec![voider.clone(), kept.clone()], "{version}");
        // A filter the voided statement matched: the voiding statement (which refers to it) stays.
        let ids = ids_of(&app, version, &format!("?activity={}", encode("http://example.com/q"))).await;
        assert!(!ids.contains(&target), "{version}: voided statement returned by an activity query");
        assert!(ids.contains(&kept), "{version}");
        assert!(ids.contains(&voider), "{version}: the voiding statement refers to a matching statement");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_a_voiding_statement_does_not_void_it() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let target = new_id();
        app.post_statements(version, &statement_with_id(&target, "vv@example.com", COMPLETED, "http://example.com/vv"))
            .await;
        let first_voider = app.post_statements(version, &voiding(&target)).await.remove(0);
        let response = app.post(STATEMENTS, version).json(&voiding(&first_voider)).send().await.expect("send");
        let status = response.status();
        assert!(status == 200 || status == 400, "{version}: unexpected {status}");
        let (status, body) = get_by_id(&app, version, &first_voider).await;
        assert_eq!(status, 200, "{version}: the voiding statement was voided");
        assert_eq!(body["id"], json!(first_voider), "{version}");
        let response =
            app.get(&format!("{STATEMENTS}?voidedStatementId={first_voider}"), version).send().await.expect("send");
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
        let alice = app
            .post_statements(version, &statement("alice@example.com", COMPLETED, "http://example.com/a1"))
            .await
            .remove(0);
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
        let wanted = app
            .post_statements(version, &account_actor_statement(home, "u-1", COMPLETED, "http://example.com/acc"))
            .await
            .remove(0);
        app.post_statements(version, &account_actor_statement(home, "u-2", COMPLETED, "http://example.com/acc")).await;
        app.post_statements(
            version,
            &account_actor_statement("https://other.example.com", "u-1", COMPLETED, "http://example.com/acc"),
        )
        .await;
        let agent = encode(&json!({ "account": { "homePage": home, "name": "u-1" } }).to_string());
        let ids = ids_of(&app, version, &format!("?agent={agent}")).await;
        assert_eq!(ids, vec![wanted], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_filter_that_is_not_an_agent_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let response =
            app.get(&format!("{STATEMENTS}?agent={}", encode("not json")), version).send().await.expect("send");
        expect_error(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verb_filter_returns_only_that_verb() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let passed =
            app.post_statements(version, &statement("v@example.com", PASSED, "http://example.com/vf")).await.remove(0);
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
            .post_statements(
                version,
                &with_context_activity(statement("a@example.com", COMPLETED, "http://example.com/lesson"), course),
            )
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
        let own = app
            .post_statements(version, &statement("teacher@example.com", COMPLETED, "http://example.com/own"))
            .await
            .remove(0);
        app.post_statements(version, &statement("learner@example.com", COMPLETED, "http://example.com/untaught")).await;
        let agent = encode(r#"{"mbox":"mailto:teacher@example.com"}"#);
        let ids = ids_of(&app, version, &format!("?agent={agent}")).await;
        assert_eq!(ids, vec![own.clone()], "{version}: the narrow agent filter must ignore the instructor");
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
            ids.push(
                app.post_statements(
                    version,
                    &statement("t@example.com", COMPLETED, &format!("http://example.com/t{n}")),
                )
                .await
                .remove(0),
            );
        }
        let mut stored = Vec::new();
        for id in &ids {
            let (_, s) = get_by_id(&app, version, id).await;
            stored.push(s["stored"].as_str().expect("stored").to_owned());
        }
        let since = encode(&stored[1]);
        let until = encode(&stored[2]);
        assert_eq!(
            ids_of(&app, version, &format!("?since={since}")).await,
            vec![ids[3].clone(), ids[2].clone()],
            "{version}: since"
        );
        assert_eq!(
            ids_of(&app, version, &format!("?until={until}")).await,
            vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
            "{version}: until"
        );
        assert_eq!(
            ids_of(&app, version, &format!("?since={since}&until={until}")).await,
            vec![ids[2].clone()],
            "{version}: both"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_ascending_order_results() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(
                app.post_statements(
                    version,
                    &statement("o@example.com", COMPLETED, &format!("http://example.com/o{n}")),
                )
                .await
                .remove(0),
            );
        }
        let page = app.query(version, "?limit=2").await;
        let got: Vec<&str> =
            page["statements"].as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id")).collect();
        assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()], "{version}: newest first");
        let page = app.query(version, "?limit=2&ascending=true").await;
        let got: Vec<&str> =
            page["statements"].as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id")).collect();
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
        let target = app
            .post_statements(version, &statement("ref@example.com", PASSED, "http://example.com/ref"))
            .await
            .remove(0);
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

// ---------------------------------------------------------------- formats

/// A statement with names, displays and definitions in several languages
/// and an instructor, to see what each format keeps.
fn rich_statement(id: &str) -> Value {
    json!({
        "id": id,
        "actor": { "objectType": "Agent", "name": "Rich Learner", "mbox": "mailto:rich@example.com" },
        "verb": { "id": COMPLETED, "display": { "en-US": "completed", "en-GB": "finished", "fr": "terminé" } },
        "object": {
            "objectType": "Activity",
            "id": "http://example.com/rich",
            "definition": {
                "name": { "en-US": "Rich activity", "fr": "Activité riche" },
                "description": { "en-US": "A description", "fr": "Une description" }
            }
        },
        "context": {
            "instructor": { "objectType": "Agent", "name": "Teacher", "mbox": "mailto:teacher@example.com" },
            "contextActivities": { "parent": [{ "id": "http://example.com/parent", "definition": { "name": { "en-US": "Parent" } } }] }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_ids_reduces_agents_activities_and_verbs_to_identifiers() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        app.post_statements(version, &rich_statement(&id)).await;
        let response =
            app.get(&format!("{STATEMENTS}?statementId={id}&format=ids"), version).send().await.expect("send");
        assert_eq!(response.status(), 200, "{version}");
        let single: Value = response.json().await.expect("json");
        let page = app.query(version, "?format=ids").await;
        for s in [&single, &page["statements"][0]] {
            assert_eq!(s["id"], json!(id), "{version}");
            assert_eq!(s["actor"]["mbox"], json!("mailto:rich@example.com"), "{version}");
            assert!(s["actor"].get("name").is_none(), "{version}: actor name kept: {s}");
            assert_eq!(s["verb"], json!({ "id": COMPLETED }), "{version}: verb");
            assert_eq!(s["object"]["id"], json!("http://example.com/rich"), "{version}");
            assert!(s["object"].get("definition").is_none(), "{version}: definition kept: {s}");
            assert!(s["context"]["instructor"].get("name").is_none(), "{version}: instructor name kept");
            assert_eq!(s["context"]["instructor"]["mbox"], json!("mailto:teacher@example.com"), "{version}");
            let parent = &s["context"]["contextActivities"]["parent"][0];
            assert_eq!(parent["id"], json!("http://example.com/parent"), "{version}");
            assert!(parent.get("definition").is_none(), "{version}: context activity definition kept");
            assert!(s["authority"].get("name").is_none(), "{version}: authority name kept");
            assert!(s["authority"].get("account").is_some(), "{version}: authority lost its IFI");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_exact_returns_every_language() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        app.post_statements(version, &rich_statement(&id)).await;
        let response = app
            .get(&format!("{STATEMENTS}?statementId={id}&format=exact"), version)
            .header("Accept-Language", "fr")
            .send()
            .await
            .expect("send");
        let s: Value = response.json().await.expect("json");
        let sent = rich_statement(&id);
        assert_eq!(s["verb"], sent["verb"], "{version}");
        assert_eq!(s["object"], sent["object"], "{version}");
        assert_eq!(s["actor"], sent["actor"], "{version}");
        assert_eq!(s["context"]["instructor"], sent["context"]["instructor"], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_canonical_keeps_one_language_chosen_by_accept_language() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        app.post_statements(version, &rich_statement(&id)).await;
        let get = |language: &'static str| {
            app.get(&format!("{STATEMENTS}?statementId={id}&format=canonical"), version)
                .header("Accept-Language", language)
                .send()
        };
        let french: Value = get("fr").await.expect("send").json().await.expect("json");
        assert_eq!(french["verb"]["display"], json!({ "fr": "terminé" }), "{version}");
        assert_eq!(french["object"]["definition"]["name"], json!({ "fr": "Activité riche" }), "{version}");
        assert_eq!(french["object"]["definition"]["description"], json!({ "fr": "Une description" }), "{version}");
        let british: Value = get("en-GB, fr;q=0.5").await.expect("send").json().await.expect("json");
        assert_eq!(british["verb"]["display"], json!({ "en-GB": "finished" }), "{version}");
        let name = british["object"]["definition"]["name"].as_object().expect("name map");
        assert_eq!(name.len(), 1, "{version}: more than one language: {name:?}");
        let page = app.query(version, "?format=canonical").await;
        let display = page["statements"][0]["verb"]["display"].as_object().expect("display");
        assert_eq!(display.len(), 1, "{version}: query result kept {display:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_format_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let response = app.get(&format!("{STATEMENTS}?format=everything"), version).send().await.expect("send");
        expect_error(response, 400).await;
    }
}

// ---------------------------------------------------------------- paging

async fn post_numbered(app: &TestApp, version: &str, count: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let s = statement("pager@example.com", COMPLETED, &format!("http://example.com/{tag}/{n}"));
        ids.push(app.post_statements(version, &s).await.remove(0));
    }
    ids
}

fn page_ids(page: &Value) -> Vec<String> {
    page["statements"].as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_links_return_every_statement_once_in_order() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let ids = post_numbered(&app, version, 5, "paging").await;
        for (query, expected) in
            [("?limit=2", ids.iter().rev().cloned().collect::<Vec<_>>()), ("?limit=2&ascending=true", ids.clone())]
        {
            let mut page = app.query(version, query).await;
            let mut seen = Vec::new();
            let mut pages = 0;
            loop {
                pages += 1;
                let got = page_ids(&page);
                assert!(got.len() <= 2, "{version} {query}: page larger than limit");
                seen.extend(got);
                let more = page["more"].as_str().expect("more").to_owned();
                if more.is_empty() {
                    break;
                }
                assert!(pages < 10, "{version} {query}: more links never end");
                let response = app.get(&more, version).send().await.expect("send");
                assert_eq!(response.status(), 200, "{version}");
                page = response.json().await.expect("json");
            }
            assert_eq!(seen, expected, "{version} {query}");
            assert_eq!(pages, 3, "{version} {query}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_is_empty_on_the_last_page() {
    let app = spawn_app().await;
    for version in VERSIONS {
        post_numbered(&app, version, 2, version).await;
    }
    for version in VERSIONS {
        let page = app.query(version, "?limit=4").await;
        assert_eq!(page["more"], json!(""), "{version}");
        assert_eq!(page_ids(&page).len(), 4, "{version}");
        let page = app.query(version, "").await;
        assert_eq!(page["more"], json!(""), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_stored_between_pages_do_not_appear_or_shift_later_pages() {
    for version in VERSIONS {
        for ascending in [false, true] {
            let app = spawn_app().await;
            let ids = post_numbered(&app, version, 5, "before").await;
            let query = if ascending { "?limit=2&ascending=true" } else { "?limit=2" };
            let expected: Vec<String> = if ascending { ids.clone() } else { ids.iter().rev().cloned().collect() };
            let first = app.query(version, query).await;
            let mut seen = page_ids(&first);
            let later = post_numbered(&app, version, 3, "between").await;
            let mut more = first["more"].as_str().expect("more").to_owned();
            while !more.is_empty() {
                let page: Value = app.get(&more, version).send().await.expect("send").json().await.expect("json");
                seen.extend(page_ids(&page));
                more = page["more"].as_str().expect("more").to_owned();
            }
            assert_eq!(seen, expected, "{version} ascending={ascending}");
            assert!(later.iter().all(|id| !seen.contains(id)), "{version} ascending={ascending}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_more_token_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        post_numbered(&app, version, 3, version).await;
        let page = app.query(version, "?limit=1").await;
        let more = page["more"].as_str().expect("more").to_owned();
        assert!(!more.is_empty());
        let (path, token) = more.split_once("more=").expect("more parameter");
        let garbled: String = token.chars().rev().collect();
        let response = app.get(&format!("{path}more={garbled}"), version).send().await.expect("send");
        expect_error(response, 400).await;
        let response = app.get(&format!("{path}more=!!not-a-token!!"), version).send().await.expect("send");
        expect_error(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_more_token_is_rejected() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = spawn_app().await;
    for version in VERSIONS {
        post_numbered(&app, version, 3, version).await;
        let page = app.query(version, "?limit=1").await;
        let more = page["more"].as_str().expect("more").to_owned();
        let (path, token) = more.split_once("more=").expect("more parameter");
        // A client that can read the token edits it (here, its page size) and re-encodes it.
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else {
            continue; // opaque to the client: cannot be edited this way
        };
        let Ok(mut decoded) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        assert_eq!(decoded["limit"], json!(1), "{version}: token layout changed: {decoded}");
        decoded["limit"] = json!(100);
        let edited = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&decoded).expect("json"));
        let response = app.get(&format!("{path}more={edited}"), version).send().await.expect("send");
        expect_error(response, 400).await;
    }
}

// ---------------------------------------------------------------- headers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_through_header_is_on_every_statements_response() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let body = statement_with_id(&id, "h@example.com", COMPLETED, "http://example.com/h");
        let response = app.post(STATEMENTS, version).json(&body).send().await.expect("send");
        assert_eq!(response.status(), 200);
        assert_consistent_through(&response, &format!("{version} POST 200"));

        let put_id = new_id();
        let response = app
            .put(&format!("{STATEMENTS}?statementId={put_id}"), version)
            .json(&statement("h@example.com", COMPLETED, "http://example.com/h"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 204);
        assert_consistent_through(&response, &format!("{version} PUT 204"));

        let response = app.get(&format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send");
        assert_eq!(response.status(), 200);
        assert_consistent_through(&response, &format!("{version} GET one 200"));

        let response = app.get(STATEMENTS, version).send().await.expect("send");
        assert_eq!(response.status(), 200);
        assert_consistent_through(&response, &format!("{version} GET query 200"));

        let response =
            app.request(Method::HEAD, &format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send");
        assert_eq!(response.status(), 200);
        assert_consistent_through(&response, &format!("{version} HEAD 200"));

        let mut bad = statement("h@example.com", COMPLETED, "http://example.com/h");
        bad["actor"]["mbox"] = json!("h@example.com");
        let response = app.post(STATEMENTS, version).json(&bad).send().await.expect("send");
        assert_eq!(response.status(), 400);
        assert_consistent_through(&response, &format!("{version} POST 400"));

        let response = app.get(&format!("{STATEMENTS}?limit=lots"), version).send().await.expect("send");
        assert_eq!(response.status(), 400);
        assert_consistent_through(&response, &format!("{version} GET 400"));

        let response =
            app.client.get(app.url(STATEMENTS)).header("X-Experience-API-Version", version).send().await.expect("send");
        assert_eq!(response.status(), 401);
        assert_consistent_through(&response, &format!("{version} GET 401"));

        let response = app.get(&format!("{STATEMENTS}?statementId={}", new_id()), version).send().await.expect("send");
        assert_eq!(response.status(), 404);
        assert_consistent_through(&response, &format!("{version} GET 404"));

        let conflicting = statement_with_id(&id, "h@example.com", PASSED, "http://example.com/h");
        let response = app.post(STATEMENTS, version).json(&conflicting).send().await.expect("send");
        assert_eq!(response.status(), 409);
        assert_consistent_through(&response, &format!("{version} POST 409"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_through_header_is_on_a_statements_response_refusing_the_version_header() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url(STATEMENTS))
        .basic_auth(&app.key, Some(&app.secret))
        .header("X-Experience-API-Version", "0.9")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    assert_consistent_through(&response, "GET with an unsupported version, 400");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_through_is_not_before_a_statement_just_stored() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = app
            .post_statements(version, &statement("ct@example.com", COMPLETED, "http://example.com/ct"))
            .await
            .remove(0);
        let response = app.get(&format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send");
        let header = response.headers()["x-experience-api-consistent-through"].to_str().expect("text").to_owned();
        let body: Value = response.json().await.expect("json");
        let through = chrono::DateTime::parse_from_rfc3339(&header).expect("rfc3339");
        let stored = chrono::DateTime::parse_from_rfc3339(body["stored"].as_str().expect("stored")).expect("rfc3339");
        assert!(through >= stored, "{version}: consistent through {through} is before stored {stored}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_header_is_on_every_response() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = app
            .post_statements(version, &statement("vh@example.com", COMPLETED, "http://example.com/vh"))
            .await
            .remove(0);
        let responses = [
            ("GET 200", app.get(&format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send")),
            (
                "POST 200",
                app.post(STATEMENTS, version)
                    .json(&statement("vh@example.com", COMPLETED, "http://example.com/vh"))
                    .send()
                    .await
                    .expect("send"),
            ),
            (
                "POST 400",
                app.post(STATEMENTS, version)
                    .body("{")
                    .header("Content-Type", "application/json")
                    .send()
                    .await
                    .expect("send"),
            ),
            (
                "GET 404",
                app.get(&format!("{STATEMENTS}?statementId={}", new_id()), version).send().await.expect("send"),
            ),
            (
                "GET 401",
                app.client
                    .get(app.url(STATEMENTS))
                    .header("X-Experience-API-Version", version)
                    .send()
                    .await
                    .expect("send"),
            ),
        ];
        for (what, response) in responses {
            assert_version_header(&response, &format!("{version} {what}"));
            let sent = response.headers()["x-experience-api-version"].to_str().expect("text");
            assert_eq!(sent, version, "{version} {what}");
        }
        let missing =
            app.client.get(app.url(STATEMENTS)).basic_auth(&app.key, Some(&app.secret)).send().await.expect("send");
        assert_eq!(missing.status(), 400, "{version}: no version header");
        assert_version_header(&missing, &format!("{version} GET without version header"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_sends_last_modified_and_json_content_type() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = app
            .post_statements(version, &statement("lm@example.com", COMPLETED, "http://example.com/lm"))
            .await
            .remove(0);
        for path in [format!("{STATEMENTS}?statementId={id}"), STATEMENTS.to_owned()] {
            let response = app.get(&path, version).send().await.expect("send");
            assert_eq!(response.status(), 200);
            let content_type = response.headers()["content-type"].to_str().expect("text").to_owned();
            assert!(content_type.starts_with("application/json"), "{version} {path}: {content_type}");
            let last_modified = response
                .headers()
                .get("last-modified")
                .unwrap_or_else(|| panic!("{version} {path}: no Last-Modified"))
                .to_str()
                .expect("text")
                .to_owned();
            let last_modified = chrono::DateTime::parse_from_rfc2822(&last_modified)
                .unwrap_or_else(|e| panic!("{version} {path}: Last-Modified {last_modified:?}: {e}"));
            let (_, s) = get_by_id(&app, version, &id).await;
            let stored = chrono::DateTime::parse_from_rfc3339(s["stored"].as_str().expect("stored")).expect("rfc3339");
            assert_eq!(
                last_modified.timestamp(),
                stored.timestamp(),
                "{version} {path}: Last-Modified is not the newest stored"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_returns_200_without_a_body() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = app
            .post_statements(version, &statement("head@example.com", COMPLETED, "http://example.com/head"))
            .await
            .remove(0);
        let response =
            app.request(Method::HEAD, &format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send");
        assert_eq!(response.status(), 200, "{version}");
        let body = response.bytes().await.expect("body");
        assert!(body.is_empty(), "{version}: HEAD sent {} bytes", body.len());
        let response = app
            .request(Method::HEAD, &format!("{STATEMENTS}?statementId={}", new_id()), version)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 404, "{version}: HEAD of an unknown statement");
    }
}

// ---------------------------------------------------------------- attachments

const BOUNDARY: &str = "statements-test-boundary-7f3a";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A multipart/mixed statement request: the JSON part, then each
/// (content type, declared hash, bytes) attachment part.
fn multipart_body(json_part: &[u8], parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n").as_bytes());
    body.extend_from_slice(json_part);
    for (content_type, hash, bytes) in parts {
        body.extend_from_slice(
            format!(
                "\r\n--{BOUNDARY}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {hash}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
    }
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn post_multipart(app: &TestApp, version: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    app.post(STATEMENTS, version).header("Content-Type", format!("multipart/mixed; boundary={BOUNDARY}")).body(body)
}

/// POSTs a multipart body, which must be stored: the ids answered.
async fn post_multipart_stored(app: &TestApp, version: &str, body: Vec<u8>) -> Value {
    let response = post_multipart(app, version, body).send().await.expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{version}: {text}");
    serde_json::from_str(&text).expect("ids")
}

/// The parts of the multipart/mixed answer to GET `path`.
async fn multipart_answer(app: &TestApp, path: &str, version: &str) -> Vec<lrs_xapi::multipart::Part> {
    let response = app.get(path, version).send().await.expect("send");
    assert_eq!(response.status(), 200, "{version} {path}");
    let content_type = response.headers()["content-type"].to_str().expect("text").to_owned();
    assert!(content_type.starts_with("multipart/mixed"), "{version} {path}: {content_type}");
    let bytes = response.bytes().await.expect("body");
    let boundary = lrs_xapi::multipart::boundary_from_content_type(&content_type).expect("boundary");
    lrs_xapi::multipart::parse(&bytes, &boundary).expect("multipart response")
}

fn with_attachment(mut s: Value, content: &[u8]) -> Value {
    s["attachments"] = json!([{
        "usageType": "http://example.com/attachment-usage/certificate",
        "display": { "en-US": "Certificate" },
        "contentType": "text/plain",
        "length": content.len(),
        "sha2": sha256_hex(content)
    }]);
    s
}

const ATTACHMENT: &[u8] = b"This certifies that the learner completed the course.\n\x00\x01\x02binary tail";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_post_with_attachment_is_accepted_and_returned_with_attachments_true() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let s =
            with_attachment(statement_with_id(&id, "att@example.com", COMPLETED, "http://example.com/att"), ATTACHMENT);
        let hash = sha256_hex(ATTACHMENT);
        let body = multipart_body(&serde_json::to_vec(&s).expect("json"), &[("text/plain", &hash, ATTACHMENT)]);
        assert_eq!(post_multipart_stored(&app, version, body).await, json!([id]), "{version}");

        for path in
            [format!("{STATEMENTS}?statementId={id}&attachments=true"), format!("{STATEMENTS}?attachments=true")]
        {
            let parts = multipart_answer(&app, &path, version).await;
            assert_eq!(parts.len(), 2, "{version} {path}");
            assert!(parts[0].media_type().is_some_and(|m| m == "application/json"), "{version} {path}");
            let json: Value = serde_json::from_slice(&parts[0].body).expect("json part");
            let returned = if json.get("statements").is_some() { json["statements"][0].clone() } else { json };
            assert_eq!(returned["id"], json!(id), "{version} {path}");
            assert_eq!(parts[1].body, ATTACHMENT, "{version} {path}: attachment bytes");
            assert_eq!(parts[1].header("x-experience-api-hash"), Some(hash.as_str()), "{version} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_with_attachment_is_plain_json_without_attachments_true() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let s =
            with_attachment(statement_with_id(&id, "att@example.com", COMPLETED, "http://example.com/att"), ATTACHMENT);
        let body = multipart_body(
            &serde_json::to_vec(&s).expect("json"),
            &[("text/plain", &sha256_hex(ATTACHMENT), ATTACHMENT)],
        );
        assert_eq!(post_multipart(&app, version, body).send().await.expect("send").status(), 200);
        let response = app.get(&format!("{STATEMENTS}?statementId={id}"), version).send().await.expect("send");
        let content_type = response.headers()["content-type"].to_str().expect("text").to_owned();
        assert!(content_type.starts_with("application/json"), "{version}: {content_type}");
        let returned: Value = response.json().await.expect("json");
        assert_eq!(returned["attachments"][0]["sha2"], json!(sha256_hex(ATTACHMENT)), "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_part_not_matching_its_hash_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let s = with_attachment(statement("att@example.com", COMPLETED, "http://example.com/att"), ATTACHMENT);
        let tampered = b"This certifies nothing at all.";
        let body = multipart_body(
            &serde_json::to_vec(&s).expect("json"),
            &[("text/plain", &sha256_hex(ATTACHMENT), tampered)],
        );
        expect_error(post_multipart(&app, version, body).send().await.expect("send"), 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_part_not_matching_the_statement_sha2_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let s = with_attachment(statement("att@example.com", COMPLETED, "http://example.com/att"), ATTACHMENT);
        let other: &[u8] = b"a different file";
        let body = multipart_body(&serde_json::to_vec(&s).expect("json"), &[("text/plain", &sha256_hex(other), other)]);
        expect_error(post_multipart(&app, version, body).send().await.expect("send"), 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_without_file_url_sent_as_plain_json_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let s = with_attachment(statement("att@example.com", COMPLETED, "http://example.com/att"), ATTACHMENT);
        let response = app.post(STATEMENTS, version).json(&s).send().await.expect("send");
        let error = expect_error(response, 400).await;
        let path = error["error"]["path"].as_str().unwrap_or_default();
        assert!(path.starts_with("/attachments"), "{version}: path {path:?}");
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_with_file_url_may_be_sent_as_plain_json() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let mut s = with_attachment(statement("att@example.com", COMPLETED, "http://example.com/att"), ATTACHMENT);
        s["attachments"][0]["fileUrl"] = json!("https://files.example.com/certificate.txt");
        let id = app.post_statements(version, &s).await.remove(0);
        let (status, stored) = get_by_id(&app, version, &id).await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(
            stored["attachments"][0]["fileUrl"],
            json!("https://files.example.com/certificate.txt"),
            "{version}"
        );
    }
}

/// ADL's conformance suite (H.Communication1.5, "should succeed when
/// attachment is raw data and request content-type is multipart/mixed")
/// sends a part that is not `length` octets long and expects it stored:
/// the part's bytes are what is kept and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_whose_part_is_not_its_declared_length_is_stored_as_sent() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let mut s = with_attachment(statement("len@example.com", COMPLETED, "http://example.com/len"), ATTACHMENT);
        s["attachments"][0]["length"] = json!(ATTACHMENT.len() / 2);
        let hash = sha256_hex(ATTACHMENT);
        let body = multipart_body(&serde_json::to_vec(&s).expect("json"), &[("text/plain", &hash, ATTACHMENT)]);
        let id = post_multipart_stored(&app, version, body).await[0].as_str().expect("id").to_owned();
        let parts = multipart_answer(&app, &format!("{STATEMENTS}?statementId={id}&attachments=true"), version).await;
        let stored: Value = serde_json::from_slice(&parts[0].body).expect("statement");
        assert_eq!(stored["attachments"][0]["length"], json!(ATTACHMENT.len() / 2), "{version}: as declared");
        assert_eq!(parts.get(1).map(|p| p.body.as_slice()), Some(ATTACHMENT), "{version}: the bytes sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_json_keys_in_the_multipart_statement_part_are_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let hash = sha256_hex(ATTACHMENT);
        let json_part = format!(
            r#"{{"actor": {{"objectType": "Agent", "mbox": "mailto:a@example.com", "mbox": "mailto:b@example.com"}},
               "verb": {{"id": "{COMPLETED}"}},
               "object": {{"id": "http://example.com/dupkeys"}},
               "attachments": [{{"usageType": "http://example.com/u", "display": {{"en-US": "A"}}, "contentType": "text/plain", "length": {}, "sha2": "{hash}"}}]}}"#,
            ATTACHMENT.len()
        );
        let body = multipart_body(json_part.as_bytes(), &[("text/plain", &hash, ATTACHMENT)]);
        expect_error(post_multipart(&app, version, body).send().await.expect("send"), 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

// ---------------------------------------------------------------- signed statements

const SIGNATURE_USAGE: &str = "http://adlnet.gov/expapi/attachments/signature";

fn test_data(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../xapi/tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The signed payload (a statement) with its JWS as a signature attachment.
fn signed_statement(statement: &Value, jws: &[u8]) -> Value {
    let mut s = statement.clone();
    s["attachments"] = json!([{
        "usageType": SIGNATURE_USAGE,
        "display": { "en-US": "Signature" },
        "contentType": "application/octet-stream",
        "length": jws.len(),
        "sha2": sha256_hex(jws)
    }]);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_signed_statement_is_accepted() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let payload: Value = serde_json::from_slice(&test_data("signed_statement_payload.json")).expect("payload");
        let jws = test_data("signed_statement_rs384.jws");
        let s = signed_statement(&payload, &jws);
        let body = multipart_body(
            &serde_json::to_vec(&s).expect("json"),
            &[("application/octet-stream", &sha256_hex(&jws), &jws)],
        );
        assert_eq!(post_multipart_stored(&app, version, body).await, json!([payload["id"]]), "{version}");
        let path = format!("{STATEMENTS}?statementId={}&attachments=true", payload["id"].as_str().expect("id"));
        let parts = multipart_answer(&app, &path, version).await;
        assert_eq!(parts.get(1).map(|p| p.body.as_slice()), Some(jws.as_slice()), "{version}: signature not returned");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_statement_whose_payload_differs_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let mut payload: Value = serde_json::from_slice(&test_data("signed_statement_payload.json")).expect("payload");
        payload["verb"] = json!({ "id": PASSED, "display": { "en-US": "passed" } });
        let jws = test_data("signed_statement_rs384.jws");
        let s = signed_statement(&payload, &jws);
        let body = multipart_body(
            &serde_json::to_vec(&s).expect("json"),
            &[("application/octet-stream", &sha256_hex(&jws), &jws)],
        );
        expect_error(post_multipart(&app, version, body).send().await.expect("send"), 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_attachment_that_is_not_a_jws_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let payload: Value = serde_json::from_slice(&test_data("signed_statement_payload.json")).expect("payload");
        let not_jws: &[u8] = b"this is not a JSON web signature";
        let s = signed_statement(&payload, not_jws);
        let body = multipart_body(
            &serde_json::to_vec(&s).expect("json"),
            &[("application/octet-stream", &sha256_hex(not_jws), not_jws)],
        );
        expect_error(post_multipart(&app, version, body).send().await.expect("send"), 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

// ---------------------------------------------------------------- authorization

fn as_credential(
    app: &TestApp,
    method: Method,
    path: &str,
    version: &str,
    key: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(path)).basic_auth(key, Some(secret)).header("X-Experience-API-Version", version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_mine_scope_sees_only_statements_it_stored() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let (key, secret) = app.add_credential("mine-only", &[Scope::StatementsReadMine, Scope::StatementsWrite]);
        let others = app
            .post_statements(version, &statement("o@example.com", COMPLETED, "http://example.com/mine"))
            .await
            .remove(0);
        let response = as_credential(&app, Method::POST, STATEMENTS, version, &key, &secret)
            .json(&statement("m@example.com", COMPLETED, "http://example.com/mine"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{version}");
        let mine: Vec<String> = response.json().await.expect("ids");

        let response = as_credential(&app, Method::GET, STATEMENTS, version, &key, &secret).send().await.expect("send");
        assert_eq!(response.status(), 200, "{version}");
        let page: Value = response.json().await.expect("json");
        assert_eq!(page_ids(&page), mine, "{version}: read/mine query");

        let query = format!("{STATEMENTS}?activity={}", encode("http://example.com/mine"));
        let page: Value = as_credential(&app, Method::GET, &query, version, &key, &secret)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        assert_eq!(page_ids(&page), mine, "{version}: read/mine filtered query");

        let response =
            as_credential(&app, Method::GET, &format!("{STATEMENTS}?statementId={others}"), version, &key, &secret)
                .send()
                .await
                .expect("send");
        assert!(
            matches!(response.status().as_u16(), 403 | 404),
            "{version}: another's statement: {}",
            response.status()
        );
        let response =
            as_credential(&app, Method::GET, &format!("{STATEMENTS}?statementId={}", mine[0]), version, &key, &secret)
                .send()
                .await
                .expect("send");
        assert_eq!(response.status(), 200, "{version}: own statement by id");

        let mut everything = ids_of(&app, version, "").await;
        everything.sort();
        let mut expected = vec![others, mine[0].clone()];
        expected.sort();
        assert_eq!(everything, expected, "{version}: the all-scope credential sees both");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_mine_more_links_stay_within_its_statements() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let (key, secret) = app.add_credential("mine-pager", &[Scope::StatementsReadMine, Scope::StatementsWrite]);
        let mut mine = Vec::new();
        for n in 0..3 {
            app.post_statements(
                version,
                &statement("o@example.com", COMPLETED, &format!("http://example.com/other/{n}")),
            )
            .await;
            let response = as_credential(&app, Method::POST, STATEMENTS, version, &key, &secret)
                .json(&statement("m@example.com", COMPLETED, &format!("http://example.com/mine/{n}")))
                .send()
                .await
                .expect("send");
            let ids: Vec<String> = response.json().await.expect("ids");
            mine.push(ids[0].clone());
        }
        let mut seen = Vec::new();
        let mut path = format!("{STATEMENTS}?limit=1&ascending=true");
        loop {
            let response = as_credential(&app, Method::GET, &path, version, &key, &secret).send().await.expect("send");
            assert_eq!(response.status(), 200, "{version} {path}");
            let page: Value = response.json().await.expect("json");
            seen.extend(page_ids(&page));
            let more = page["more"].as_str().expect("more").to_owned();
            if more.is_empty() {
                break;
            }
            assert!(seen.len() <= 6, "{version}: too many pages");
            path = more;
        }
        assert_eq!(seen, mine, "{version}");
        // The all-scope credential cannot reuse a read/mine cursor to widen its view, nor the reverse.
        let page = app.query(version, "?limit=1").await;
        let more = page["more"].as_str().expect("more").to_owned();
        let response = as_credential(&app, Method::GET, &more, version, &key, &secret).send().await.expect("send");
        assert!(response.status().is_client_error(), "{version}: read/mine followed another credential's more link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_only_scope_cannot_read_statements() {
    let app = spawn_app().await;
    let (key, secret) = app.add_credential("writer", &[Scope::StatementsWrite]);
    for version in VERSIONS {
        let response = as_credential(&app, Method::POST, STATEMENTS, version, &key, &secret)
            .json(&statement("w@example.com", COMPLETED, "http://example.com/w"))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{version}: write scope cannot write");
        let ids: Vec<String> = response.json().await.expect("ids");
        let response = as_credential(&app, Method::GET, STATEMENTS, version, &key, &secret).send().await.expect("send");
        expect_error(response, 403).await;
        let response =
            as_credential(&app, Method::GET, &format!("{STATEMENTS}?statementId={}", ids[0]), version, &key, &secret)
                .send()
                .await
                .expect("send");
        expect_error(response, 403).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_valid_credentials_are_refused_with_401() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let body = statement("anon@example.com", COMPLETED, "http://example.com/anon");
        let anonymous = |method: Method, path: &str| {
            app.client.request(method, app.url(path)).header("X-Experience-API-Version", version)
        };
        expect_error(anonymous(Method::GET, STATEMENTS).send().await.expect("send"), 401).await;
        expect_error(anonymous(Method::POST, STATEMENTS).json(&body).send().await.expect("send"), 401).await;
        let put = format!("{STATEMENTS}?statementId={}", new_id());
        expect_error(anonymous(Method::PUT, &put).json(&body).send().await.expect("send"), 401).await;
        let wrong = as_credential(&app, Method::POST, STATEMENTS, version, &app.key, "not-the-secret")
            .json(&body)
            .send()
            .await
            .expect("send");
        expect_error(wrong, 401).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

// ---------------------------------------------------------------- more request shapes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_of_an_array_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = new_id();
        let body = json!([statement_with_id(&id, "arr@example.com", COMPLETED, "http://example.com/arr")]);
        let response =
            app.put(&format!("{STATEMENTS}?statementId={id}"), version).json(&body).send().await.expect("send");
        expect_error(response, 400).await;
        assert_eq!(stored_count(&app, version).await, 0, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_of_an_empty_array_is_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let response = app.post(STATEMENTS, version).json(&json!([])).send().await.expect("send");
        expect_error(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameter_and_statement_id_with_filters_are_rejected() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let id = app
            .post_statements(version, &statement("p@example.com", COMPLETED, "http://example.com/p"))
            .await
            .remove(0);
        let response = app.get(&format!("{STATEMENTS}?colour=blue"), version).send().await.expect("send");
        expect_error(response, 400).await;
        let response = app
            .get(&format!("{STATEMENTS}?statementId={id}&verb={}", encode(COMPLETED)), version)
            .send()
            .await
            .expect("send");
        expect_error(response, 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_statement_in_the_same_request_as_its_target_voids_it() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let target = new_id();
        let voider = new_id();
        let mut void_it = voiding(&target);
        void_it["id"] = json!(voider);
        let body =
            json!([statement_with_id(&target, "same@example.com", COMPLETED, "http://example.com/same"), void_it]);
        app.post_statements(version, &body).await;
        let (status, _) = get_by_id(&app, version, &target).await;
        assert_eq!(status, 404, "{version}");
        assert_eq!(ids_of(&app, version, "").await, vec![voider], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_posts_store_one_statement() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        let body = statement_with_id(&id, "race@example.com", COMPLETED, "http://example.com/race");
        let (a, b) = tokio::join!(
            app.post(STATEMENTS, version).json(&body).send(),
            app.post(STATEMENTS, version).json(&body).send()
        );
        assert_eq!(a.expect("send").status(), 200, "{version}");
        assert_eq!(b.expect("send").status(), 200, "{version}");
        assert_eq!(ids_of(&app, version, "").await, vec![id], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_posts_store_exactly_one() {
    for version in VERSIONS {
        let app = spawn_app().await;
        let id = new_id();
        let first = statement_with_id(&id, "race@example.com", COMPLETED, "http://example.com/race");
        let second = statement_with_id(&id, "race@example.com", PASSED, "http://example.com/race");
        let (a, b) = tokio::join!(
            app.post(STATEMENTS, version).json(&first).send(),
            app.post(STATEMENTS, version).json(&second).send()
        );
        let mut statuses = [a.expect("send").status().as_u16(), b.expect("send").status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{version}");
        assert_eq!(ids_of(&app, version, "").await, vec![id], "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_through_header_is_on_403_and_413_responses() {
    let app = spawn_app_with(|o| o.server.max_body_bytes = 2048).await;
    let (key, secret) = app.add_credential("writer", &[Scope::StatementsWrite]);
    for version in VERSIONS {
        let response = as_credential(&app, Method::GET, STATEMENTS, version, &key, &secret).send().await.expect("send");
        assert_eq!(response.status(), 403);
        assert_consistent_through(&response, &format!("{version} GET 403"));
        let response = app
            .post(STATEMENTS, version)
            .header("Content-Type", "application/json")
            .body(vec![b' '; 4096])
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 413);
        assert_consistent_through(&response, &format!("{version} POST 413"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_of_a_query_returns_200_without_a_body() {
    let app = spawn_app().await;
    for version in VERSIONS {
        app.post_statements(version, &statement("hq@example.com", COMPLETED, "http://example.com/hq")).await;
        let response = app
            .request(Method::HEAD, &format!("{STATEMENTS}?verb={}", encode(COMPLETED)), version)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{version}");
        assert_consistent_through(&response, &format!("{version} HEAD query"));
        assert!(response.bytes().await.expect("body").is_empty(), "{version}");
    }
}
