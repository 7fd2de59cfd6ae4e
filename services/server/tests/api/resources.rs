//! Cross-cutting HTTP behaviour: the Activities, Agents and About
//! resources, the version header, HEAD, the 1.0.3 alternate request
//! syntax, CORS, authentication and scopes, and routing errors.

#![allow(clippy::expect_used, clippy::unwrap_used)] // helpers of a test binary may panic

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use lrs_server::credentials::{self, Scope};

use crate::support::*;

const AGENT: &str = r#"{"objectType":"Agent","mbox":"mailto:learner@example.com"}"#;
const ACTIVITY: &str = "http://example.com/activities/resources-test";

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("send")
}

/// Status and JSON body, asserting the status.
async fn expect_json(response: Response, status: u16, what: &str) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "{what}: unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"))
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().expect("header text").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_resource_returns_the_definition_merged_from_statements() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let activity = format!("{ACTIVITY}/merged/{version}");
        let mut first = statement("first@example.com", COMPLETED, &activity);
        first["object"]["definition"] = json!({ "name": { "en-GB": "Hand hygiene" } });
        let mut second = statement("second@example.com", PASSED, &activity);
        second["object"]["definition"] = json!({
            "name": { "fr-FR": "Hygiène des mains" },
            "description": { "en-GB": "Washing hands properly" }
        });
        app.post_statements(version, &json!([first])).await;
        app.post_statements(version, &json!([second])).await;
        let response = send(app.get("/xapi/activities", version).query(&[("activityId", activity.as_str())])).await;
        let body = expect_json(response, 200, version).await;
        assert_eq!(body["id"], json!(activity), "{version}: {body}");
        assert_eq!(body["objectType"], json!("Activity"), "{version}: {body}");
        assert_eq!(
            body["definition"]["name"],
            json!({ "en-GB": "Hand hygiene", "fr-FR": "Hygiène des mains" }),
            "{version}: both languages of the name are kept: {body}"
        );
        assert_eq!(body["definition"]["description"]["en-GB"], json!("Washing hands properly"), "{version}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activities_resource_returns_an_unknown_activity_with_just_its_id() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let activity = format!("{ACTIVITY}/never-seen/{version}");
        let response = send(app.get("/xapi/activities", version).query(&[("activityId", activity.as_str())])).await;
        let body = expect_json(response, 200, version).await;
        assert_eq!(body["id"], json!(activity), "{version}: {body}");
        let object = body.as_object().expect("an Activity object");
        assert!(
            object.keys().all(|k| k == "id" || k == "objectType"),
            "{version}: an unknown activity has no definition: {body}"
        );
        if let Some(kind) = object.get("objectType") {
            assert_eq!(kind, "Activity", "{version}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_resource_returns_a_person_with_identifiers_and_names_seen() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let email = format!("person-{version}@example.com");
        let mut first = statement(&email, COMPLETED, ACTIVITY);
        first["actor"]["name"] = json!("Ada Lovelace");
        let mut second = statement(&email, PASSED, ACTIVITY);
        second["actor"]["name"] = json!("Ada King");
        app.post_statements(version, &json!([first, second])).await;
        let agent = json!({ "objectType": "Agent", "mbox": format!("mailto:{email}") }).to_string();
        let response = send(app.get("/xapi/agents", version).query(&[("agent", agent.as_str())])).await;
        let body = expect_json(response, 200, version).await;
        assert_eq!(body["objectType"], json!("Person"), "{version}: {body}");
        assert_eq!(body["mbox"], json!([format!("mailto:{email}")]), "{version}: IFIs are arrays: {body}");
        let mut names: Vec<&str> = body["name"]
            .as_array()
            .unwrap_or_else(|| panic!("{version}: name is an array: {body}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["Ada King", "Ada Lovelace"], "{version}: every name seen: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn about_needs_neither_version_header_nor_credentials() {
    let app = spawn_app().await;
    let response = send(app.client.get(app.url("/xapi/about"))).await;
    assert!(header(&response, "x-experience-api-version").is_some(), "About also carries the version header");
    let body = expect_json(response, 200, "GET /about").await;
    let versions: Vec<&str> =
        body["version"].as_array().expect("version is an array").iter().filter_map(Value::as_str).collect();
    for expected in ["1.0.3", "2.0.0"] {
        assert!(versions.contains(&expected), "About lists {expected}: {body}");
    }
}

/// Requests that need a version header, without one.
fn without_version(app: &TestApp) -> Vec<(&'static str, RequestBuilder)> {
    let auth = |request: RequestBuilder| request.basic_auth(&app.key, Some(&app.secret));
    vec![
        ("GET statements", auth(app.client.get(app.url("/xapi/statements")))),
        (
            "POST statements",
            auth(app.client.post(app.url("/xapi/statements"))).json(&statement("a@example.com", COMPLETED, ACTIVITY)),
        ),
        (
            "GET state",
            auth(app.client.get(app.url("/xapi/activities/state")))
                .query(&[("activityId", ACTIVITY), ("agent", AGENT)]),
        ),
        (
            "PUT activity profile",
            auth(app.client.put(app.url("/xapi/activities/profile")))
                .query(&[("activityId", ACTIVITY), ("profileId", "p")])
                .header("If-None-Match", "*")
                .body("x"),
        ),
        ("GET agent profile", auth(app.client.get(app.url("/xapi/agents/profile"))).query(&[("agent", AGENT)])),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_version_header_is_rejected_with_a_json_error() {
    let app = spawn_app().await;
    for (what, request) in without_version(&app) {
        let response = send(request).await;
        assert!(
            header(&response, "x-experience-api-version").is_some(),
            "{what}: the error carries the version header"
        );
        expect_json(response, 400, what).await;
    }
    // Nothing was written by the refused requests.
    let response =
        send(app.get("/xapi/activities/profile", V2).query(&[("activityId", ACTIVITY), ("profileId", "p")])).await;
    assert_eq!(response.status(), 404);
    let result = app.query(V2, "").await;
    assert_eq!(result["statements"], json!([]), "the refused POST stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_version_header_is_rejected() {
    let app = spawn_app().await;
    for version in ["0.9", "0.95", "1.1.0", "3.0.0", "2.1.0", "latest", ""] {
        let requests = [
            ("GET statements", app.get("/xapi/statements", version)),
            (
                "GET state",
                app.get("/xapi/activities/state", version).query(&[("activityId", ACTIVITY), ("agent", AGENT)]),
            ),
        ];
        for (what, request) in requests {
            let response = send(request).await;
            let body = expect_json(response, 400, &format!("{what} with version {version:?}")).await;
            assert!(body["error"]["message"].is_string(), "{what} {version:?}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_1_0_0_to_1_0_3_are_accepted_and_answered_as_1_0_3() {
    let app = spawn_app().await;
    for version in ["1.0.0", "1.0.1", "1.0.2", "1.0.3"] {
        let response = send(app.get("/xapi/statements", version)).await;
        assert_eq!(response.status(), 200, "version {version}");
        assert_eq!(header(&response, "x-experience-api-version").as_deref(), Some("1.0.3"), "version {version}");
    }
    let response = send(app.get("/xapi/statements", V2)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-experience-api-version").as_deref(), Some("2.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_version_header() {
    let app = spawn_app().await;
    let (define_key, define_secret) = app.add_credential("define-only", &[Scope::Define]);
    for version in VERSIONS {
        let state_id = format!("versioned-{version}");
        let state = [("activityId", ACTIVITY), ("agent", AGENT), ("stateId", state_id.as_str())];
        let cases: Vec<(u16, &str, RequestBuilder)> = vec![
            (200, "GET statements", app.get("/xapi/statements", version)),
            (
                200,
                "POST statements",
                app.post("/xapi/statements", version).json(&statement("v@example.com", COMPLETED, ACTIVITY)),
            ),
            (
                204,
                "PUT state",
                app.put("/xapi/activities/state", version).query(&state).header("If-None-Match", "*").body("x"),
            ),
            (200, "GET state", app.get("/xapi/activities/state", version).query(&state)),
            (200, "GET activities", app.get("/xapi/activities", version).query(&[("activityId", ACTIVITY)])),
            (200, "GET agents", app.get("/xapi/agents", version).query(&[("agent", AGENT)])),
            (400, "bad parameter", app.get("/xapi/statements", version).query(&[("colour", "blue")])),
            (
                401,
                "no credentials",
                app.client.get(app.url("/xapi/statements")).header("X-Experience-API-Version", version),
            ),
            (
                403,
                "missing scope",
                app.client
                    .get(app.url("/xapi/statements"))
                    .basic_auth(&define_key, Some(&define_secret))
                    .header("X-Experience-API-Version", version),
            ),
            (
                404,
                "missing document",
                app.get("/xapi/activities/state", version).query(&[
                    ("activityId", ACTIVITY),
                    ("agent", AGENT),
                    ("stateId", "none"),
                ]),
            ),
            (404, "unknown path", app.get("/xapi/nowhere", version)),
            (405, "wrong method", app.request(Method::PATCH, "/xapi/statements", version)),
            (
                412,
                "failed precondition",
                app.put("/xapi/activities/state", version).query(&state).header("If-None-Match", "*").body("y"),
            ),
        ];
        let expected = if version == V1 { "1.0.3" } else { "2.0.0" };
        for (status, what, request) in cases {
            let response = send(request).await;
            assert_eq!(response.status().as_u16(), status, "{version} {what}");
            assert_eq!(
                header(&response, "x-experience-api-version").as_deref(),
                Some(expected),
                "{version} {what}: the response must say which version answered"
            );
        }
    }
    let response = send(app.client.get(app.url("/xapi/about"))).await;
    assert_eq!(response.status(), 200);
    let about_version = header(&response, "x-experience-api-version");
    assert!(
        about_version.as_deref().is_some_and(|v| v == "1.0.3" || v == "2.0.0"),
        "About without a version header still answers with one: {about_version:?}"
    );
}

/// GET and HEAD of one resource: the HEAD answer has GET's status and
/// Content-Type, and no body.
async fn assert_head_matches_get(app: &TestApp, version: &str, path: &str, query: &[(&str, &str)]) {
    let get = send(app.get(path, version).query(query)).await;
    let head = send(app.request(Method::HEAD, path, version).query(query)).await;
    assert_eq!(get.status(), 200, "{version} GET {path}");
    assert_eq!(head.status(), 200, "{version} HEAD {path}");
    let get_type = header(&get, "content-type");
    assert!(get_type.is_some(), "{version} GET {path} has a Content-Type");
    assert_eq!(header(&head, "content-type"), get_type, "{version} HEAD {path}: same Content-Type as GET");
    if path.ends_with("/state") && query.iter().any(|(name, _)| *name == "stateId") {
        assert_eq!(header(&head, "etag"), header(&get, "etag"), "{version} HEAD {path}: same ETag as GET");
    }
    let get_body = get.bytes().await.expect("body");
    assert!(!get_body.is_empty(), "{version} GET {path} has a body");
    let head_body = head.bytes().await.expect("body");
    assert!(head_body.is_empty(), "{version} HEAD {path} must have no body, got {} bytes", head_body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_every_get_resource_without_a_body() {
    let app = spawn_app().await;
    for version in VERSIONS {
        app.post_statements(version, &statement("head@example.com", COMPLETED, ACTIVITY)).await;
        let state_id = format!("head-{version}");
        let state = [("activityId", ACTIVITY), ("agent", AGENT), ("stateId", state_id.as_str())];
        let response = send(
            app.put("/xapi/activities/state", version)
                .query(&state)
                .header("If-None-Match", "*")
                .header("Content-Type", "application/json")
                .body(r#"{"progress":0.5}"#),
        )
        .await;
        assert_eq!(response.status(), 204, "{version}: creating the state document");

        assert_head_matches_get(&app, version, "/xapi/statements", &[("limit", "1")]).await;
        assert_head_matches_get(&app, version, "/xapi/activities/state", &state).await;
        assert_head_matches_get(&app, version, "/xapi/activities/state", &[("activityId", ACTIVITY), ("agent", AGENT)])
            .await;
        assert_head_matches_get(&app, version, "/xapi/activities", &[("activityId", ACTIVITY)]).await;
        assert_head_matches_get(&app, version, "/xapi/agents", &[("agent", AGENT)]).await;
        assert_head_matches_get(&app, version, "/xapi/about", &[]).await;
    }
}

/// A 1.0.3 alternate-syntax request: a form POST to `path?<query>` (query
/// normally `method=…`) carrying headers, parameters and content as fields.
/// It carries no real Authorization or version header of its own.
fn alternate(app: &TestApp, path: &str, query: &str, fields: &[(&str, &str)]) -> RequestBuilder {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    app.client
        .post(format!("{}?{query}", app.url(path)))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.finish())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_syntax_put_of_a_statement_in_1_0_3_stores_it() {
    let app = spawn_app().await;
    let id = "0e8f7c5a-6b1d-4f8a-9c3e-2d5b7a9e1f04";
    let mut body = statement("alternate@example.com", COMPLETED, ACTIVITY);
    body["id"] = json!(id);
    let content = body.to_string();
    let authorization = basic(&app.key, &app.secret);
    let response = send(alternate(
        &app,
        "/xapi/statements",
        "method=PUT",
        &[
            ("statementId", id),
            ("content", &content),
            ("Authorization", &authorization),
            ("X-Experience-API-Version", V1),
        ],
    ))
    .await;
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 204, "alternate-syntax PUT: {text}");
    let stored = app.query(V1, &format!("?statementId={id}")).await;
    assert_eq!(stored["id"], json!(id));
    assert_eq!(stored["actor"]["mbox"], json!("mailto:alternate@example.com"));
    assert_eq!(stored["verb"]["id"], json!(COMPLETED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_syntax_get_of_a_document_in_1_0_3_returns_it() {
    let app = spawn_app().await;
    let state = [("activityId", ACTIVITY), ("agent", AGENT), ("stateId", "bookmark")];
    let response = send(
        app.put("/xapi/activities/state", V1)
            .query(&state)
            .header("Content-Type", "application/json")
            .body(r#"{"page":7}"#),
    )
    .await;
    assert_eq!(response.status(), 204);
    let authorization = basic(&app.key, &app.secret);
    let mut fields = state.to_vec();
    fields.push(("Authorization", &authorization));
    fields.push(("X-Experience-API-Version", V1));
    let response = send(alternate(&app, "/xapi/activities/state", "method=GET", &fields)).await;
    let status = response.status();
    let etag = header(&response, "etag");
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "alternate-syntax GET: {text}");
    assert_eq!(text, r#"{"page":7}"#);
    let expected_etag = {
        use sha1::Digest;
        format!("\"{}\"", hex::encode(sha1::Sha1::digest(br#"{"page":7}"#)))
    };
    assert_eq!(etag, Some(expected_etag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_syntax_with_other_query_parameters_is_rejected() {
    let app = spawn_app().await;
    let authorization = basic(&app.key, &app.secret);
    let fields = [("Authorization", authorization.as_str()), ("X-Experience-API-Version", V1), ("agent", AGENT)];
    let response = send(alternate(
        &app,
        "/xapi/activities/state",
        "method=GET&activityId=http%3A%2F%2Fexample.com%2Fa&stateId=s",
        &fields,
    ))
    .await;
    expect_json(response, 400, "alternate syntax with parameters in the query").await;

    let id = "5c2e9d4b-1a3f-4e6d-8b7c-9f0a1b2c3d4e";
    let content = statement("alternate@example.com", COMPLETED, ACTIVITY).to_string();
    let fields =
        [("Authorization", authorization.as_str()), ("X-Experience-API-Version", V1), ("content", content.as_str())];
    let response = send(alternate(&app, "/xapi/statements", &format!("method=PUT&statementId={id}"), &fields)).await;
    expect_json(response, 400, "alternate-syntax PUT with statementId in the query").await;
    let response = send(app.get("/xapi/statements", V1).query(&[("statementId", id)])).await;
    assert_eq!(response.status(), 404, "the refused statement was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_syntax_is_rejected_in_2_0() {
    let app = spawn_app().await;
    let authorization = basic(&app.key, &app.secret);
    let id = "7d3f1e2a-4b5c-4d6e-8f9a-0b1c2d3e4f5a";
    let mut body = statement("alternate@example.com", COMPLETED, ACTIVITY);
    body["id"] = json!(id);
    let content = body.to_string();
    let fields = [
        ("statementId", id),
        ("content", content.as_str()),
        ("Authorization", authorization.as_str()),
        ("X-Experience-API-Version", V2),
    ];
    let response = send(alternate(&app, "/xapi/statements", "method=PUT", &fields)).await;
    expect_json(response, 400, "alternate syntax in 2.0").await;
    let response = send(app.get("/xapi/statements", V2).query(&[("statementId", id)])).await;
    assert_eq!(response.status(), 404, "the refused statement was not stored");

    // Also when the 2.0 version header is a real header rather than a field.
    let fields = [("statementId", id), ("content", content.as_str()), ("Authorization", authorization.as_str())];
    let response =
        send(alternate(&app, "/xapi/statements", "method=PUT", &fields).header("X-Experience-API-Version", V2)).await;
    expect_json(response, 400, "alternate syntax with a 2.0 header").await;
}

const ORIGIN: &str = "https://moodle.example.org";

/// Whether a comma-separated CORS header value lists `name` itself
/// (case-insensitively), not only through a `*` wildcard.
fn lists(value: &str, name: &str) -> bool {
    value.split(',').map(str::trim).any(|item| item.eq_ignore_ascii_case(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_authenticated_xapi_requests_from_another_origin() {
    let app = spawn_app().await;
    for path in ["/xapi/statements", "/xapi/activities/state", "/xapi/agents/profile"] {
        let response = send(
            app.client
                .request(Method::OPTIONS, app.url(path))
                .header("Origin", ORIGIN)
                .header("Access-Control-Request-Method", "PUT")
                .header("Access-Control-Request-Headers", "authorization,content-type,x-experience-api-version"),
        )
        .await;
        assert!(response.status().is_success(), "{path}: preflight status {}", response.status());
        let origin = header(&response, "access-control-allow-origin");
        assert!(
            origin.as_deref().is_some_and(|o| o == "*" || o == ORIGIN),
            "{path}: Access-Control-Allow-Origin {origin:?}"
        );
        let methods = header(&response, "access-control-allow-methods").unwrap_or_default();
        assert!(lists(&methods, "PUT") || methods.trim() == "*", "{path}: Access-Control-Allow-Methods {methods:?}");
        let headers = header(&response, "access-control-allow-headers").unwrap_or_default();
        for name in ["x-experience-api-version", "content-type"] {
            assert!(lists(&headers, name) || lists(&headers, "*"), "{path}: {name} not allowed by {headers:?}");
        }
        // Fetch: `*` in Access-Control-Allow-Headers never covers Authorization;
        // a browser refuses the actual request unless it is named.
        assert!(
            lists(&headers, "authorization"),
            "{path}: Access-Control-Allow-Headers {headers:?} must name Authorization, which a wildcard does not cover"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_responses_expose_the_xapi_headers() {
    let app = spawn_app().await;
    let state = [("activityId", ACTIVITY), ("agent", AGENT), ("stateId", "exposed")];
    let response = send(app.put("/xapi/activities/state", V2).query(&state).body("x")).await;
    assert_eq!(response.status(), 204);
    let requests = [
        ("GET statements", app.get("/xapi/statements", V2).header("Origin", ORIGIN)),
        ("GET state", app.get("/xapi/activities/state", V2).query(&state).header("Origin", ORIGIN)),
    ];
    for (what, request) in requests {
        let response = send(request).await;
        assert_eq!(response.status(), 200, "{what}");
        let origin = header(&response, "access-control-allow-origin");
        assert!(
            origin.as_deref().is_some_and(|o| o == "*" || o == ORIGIN),
            "{what}: Access-Control-Allow-Origin {origin:?}"
        );
        let exposed = header(&response, "access-control-expose-headers").unwrap_or_default();
        for name in ["etag", "x-experience-api-version", "x-experience-api-consistent-through"] {
            assert!(lists(&exposed, name), "{what}: {name} is not in Access-Control-Expose-Headers {exposed:?}");
        }
    }
}

/// Asserts a 401 with a Basic challenge and a JSON error body.
async fn expect_unauthorized(response: Response, what: &str) {
    let challenge = header(&response, "www-authenticate");
    assert!(
        challenge.as_deref().is_some_and(|c| c.to_ascii_lowercase().starts_with("basic")),
        "{what}: a 401 challenges for Basic credentials, got {challenge:?}"
    );
    let body = expect_json(response, 401, what).await;
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_credentials_is_401_with_a_challenge() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let requests = [
            ("GET statements", app.client.get(app.url("/xapi/statements"))),
            (
                "POST statements",
                app.client.post(app.url("/xapi/statements")).json(&statement("anon@example.com", COMPLETED, ACTIVITY)),
            ),
            (
                "GET state",
                app.client.get(app.url("/xapi/activities/state")).query(&[("activityId", ACTIVITY), ("agent", AGENT)]),
            ),
            ("GET activities", app.client.get(app.url("/xapi/activities")).query(&[("activityId", ACTIVITY)])),
            ("GET agents", app.client.get(app.url("/xapi/agents")).query(&[("agent", AGENT)])),
        ];
        for (what, request) in requests {
            let response = send(request.header("X-Experience-API-Version", version)).await;
            expect_unauthorized(response, &format!("{version} {what}")).await;
        }
        assert_eq!(
            app.query(version, "").await["statements"],
            json!([]),
            "{version}: the anonymous POST stored nothing"
        );
    }
}

/// GET /statements with a raw Authorization header value.
async fn with_authorization(app: &TestApp, version: &str, authorization: &str) -> Response {
    send(
        app.client
            .get(app.url("/xapi/statements"))
            .header("Authorization", authorization)
            .header("X-Experience-API-Version", version),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_401() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let response = with_authorization(&app, version, &basic(&app.key, "not-the-secret")).await;
        expect_unauthorized(response, version).await;
        let response = with_authorization(&app, version, &basic(&app.key, &format!("{}x", app.secret))).await;
        expect_unauthorized(response, version).await;
        // The right secret still works after wrong attempts.
        assert_eq!(with_authorization(&app, version, &basic(&app.key, &app.secret)).await.status(), 200, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_is_401() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let response = with_authorization(&app, version, &basic("no-such-key", &app.secret)).await;
        expect_unauthorized(response, version).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_header_is_401() {
    let app = spawn_app().await;
    let key_only = {
        use base64::Engine;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&app.key))
    };
    let malformed = [
        "Basic".to_owned(),
        "Basic !!!not-base64!!!".to_owned(),
        key_only,
        format!("Bearer {}", app.secret),
        format!("{}:{}", app.key, app.secret),
    ];
    for version in VERSIONS {
        for authorization in &malformed {
            let response = with_authorization(&app, version, authorization).await;
            expect_unauthorized(response, &format!("{version} Authorization: {authorization}")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_credential_is_401_without_restart() {
    let app = spawn_app().await;
    let (key, secret) = app.add_credential("soon-revoked", &[Scope::All]);
    for version in VERSIONS {
        let response = with_authorization(&app, version, &basic(&key, &secret)).await;
        assert_eq!(response.status(), 200, "{version}: before revocation");
    }
    credentials::revoke(app.data_dir.path(), &key).expect("revoke");
    for version in VERSIONS {
        let response = with_authorization(&app, version, &basic(&key, &secret)).await;
        expect_unauthorized(response, &format!("{version}: after revocation")).await;
        // Other credentials are unaffected.
        assert_eq!(with_authorization(&app, version, &basic(&app.key, &app.secret)).await.status(), 200, "{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_secrets_are_never_stored_in_clear() {
    let app = spawn_app().await;
    let (key, secret) = app.add_credential("another", &[Scope::StatementsWrite]);
    // Both credentials work, so the file holds something that verifies them…
    for (key, secret) in [(&app.key, &app.secret), (&key, &secret)] {
        let response = send(
            app.client
                .post(app.url("/xapi/statements"))
                .basic_auth(key, Some(secret))
                .header("X-Experience-API-Version", V2)
                .json(&statement("secret@example.com", COMPLETED, ACTIVITY)),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    // …but never the secrets themselves, in any common encoding.
    let text =
        std::fs::read_to_string(app.data_dir.path().join(credentials::CREDENTIALS_FILE)).expect("credentials file");
    assert!(text.contains(&key) && text.contains(&app.key), "the file is the credential store");
    for secret in [&app.secret, &secret] {
        use base64::Engine;
        let forms = [
            secret.to_string(),
            base64::engine::general_purpose::STANDARD.encode(secret),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret),
            hex::encode(secret),
        ];
        for form in forms {
            assert!(!text.contains(&form), "a secret is stored in clear ({form})");
        }
    }
}

/// The requests of the scope matrix, in the column order of `SCOPE_TABLE`.
const OPERATIONS: [&str; 11] = [
    "GET statements",
    "POST statements",
    "PUT statements",
    "GET state",
    "PUT state",
    "GET activity profile",
    "PUT activity profile",
    "GET agent profile",
    "PUT agent profile",
    "GET activities",
    "GET agents",
];

/// What each scope may do (true = allowed, false = 403), column by column
/// as in `OPERATIONS`. `all/read` reads everything; `statements/read(/mine)`
/// reads statements; `state` and `profile` read and write their documents;
/// `define` writes nothing. Reading the Activities and Agents resources is
/// granted by every scope that reads something (they only show what
/// statements already reveal) except `statements/read/mine`, which may not
/// see other people's statements.
#[rustfmt::skip]
const SCOPE_TABLE: [(&str, [bool; 11]); 8] = [
    //                        stmt GET POST  PUT   state GET PUT  act.prof GET PUT  agent prof GET PUT  activities agents
    ("all",                  [true,  true,  true,  true,  true,  true,  true,  true,  true,  true,  true ]),
    ("all/read",             [true,  false, false, true,  false, true,  false, true,  false, true,  true ]),
    ("statements/write",     [false, true,  true,  false, false, false, false, false, false, false, false]),
    ("statements/read",      [true,  false, false, false, false, false, false, false, false, true,  true ]),
    ("statements/read/mine", [true,  false, false, false, false, false, false, false, false, false, false]),
    ("state",                [false, false, false, true,  true,  false, false, false, false, true,  true ]),
    ("profile",              [false, false, false, false, false, true,  true,  true,  true,  true,  true ]),
    ("define",               [false, false, false, false, false, false, false, false, false, true,  true ]),
];

/// One request of the matrix, authenticated as (key, secret). `n` makes
/// writes unique so every allowed write succeeds.
fn operation(app: &TestApp, index: usize, key: &str, secret: &str, n: usize) -> RequestBuilder {
    let request = |method: Method, path: &str| {
        app.client.request(method, app.url(path)).basic_auth(key, Some(secret)).header("X-Experience-API-Version", V2)
    };
    let document_id = format!("scoped-{n}");
    match OPERATIONS[index] {
        "GET statements" => request(Method::GET, "/xapi/statements"),
        "POST statements" => {
            request(Method::POST, "/xapi/statements").json(&statement("scoped@example.com", COMPLETED, ACTIVITY))
        }
        "PUT statements" => {
            let id = uuid::Uuid::new_v4().to_string();
            request(Method::PUT, "/xapi/statements").query(&[("statementId", id.as_str())]).json(&statement(
                "scoped@example.com",
                COMPLETED,
                ACTIVITY,
            ))
        }
        "GET state" => {
            request(Method::GET, "/xapi/activities/state").query(&[("activityId", ACTIVITY), ("agent", AGENT)])
        }
        "PUT state" => request(Method::PUT, "/xapi/activities/state")
            .query(&[("activityId", ACTIVITY), ("agent", AGENT), ("stateId", document_id.as_str())])
            .header("If-None-Match", "*")
            .body("x"),
        "GET activity profile" => request(Method::GET, "/xapi/activities/profile").query(&[("activityId", ACTIVITY)]),
        "PUT activity profile" => request(Method::PUT, "/xapi/activities/profile")
            .query(&[("activityId", ACTIVITY), ("profileId", document_id.as_str())])
            .header("If-None-Match", "*")
            .body("x"),
        "GET agent profile" => request(Method::GET, "/xapi/agents/profile").query(&[("agent", AGENT)]),
        "PUT agent profile" => request(Method::PUT, "/xapi/agents/profile")
            .query(&[("agent", AGENT), ("profileId", document_id.as_str())])
            .header("If-None-Match", "*")
            .body("x"),
        "GET activities" => request(Method::GET, "/xapi/activities").query(&[("activityId", ACTIVITY)]),
        "GET agents" => request(Method::GET, "/xapi/agents").query(&[("agent", AGENT)]),
        other => panic!("no request for {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_allow_and_forbid_each_resource_as_tabled() {
    let app = spawn_app().await;
    for scope in Scope::EVERY {
        assert!(SCOPE_TABLE.iter().any(|(name, _)| *name == scope.name()), "the table has no row for {}", scope.name());
    }
    let mut n = 0;
    for (name, row) in SCOPE_TABLE {
        let scope = Scope::parse(name).unwrap_or_else(|| panic!("{name} is not a scope"));
        let (key, secret) = app.add_credential(&format!("scoped-{}", name.replace('/', "-")), &[scope]);
        for (index, allowed) in row.into_iter().enumerate() {
            n += 1;
            let what = format!("scope {name}, {}", OPERATIONS[index]);
            let response = send(operation(&app, index, &key, &secret, n)).await;
            let status = response.status();
            let text = response.text().await.expect("body");
            if allowed {
                assert!(status.is_success(), "{what}: expected success, got {status}: {text}");
            } else {
                assert_eq!(status, 403, "{what}: expected 403 Forbidden: {text}");
                let body: Value =
                    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: body is not JSON: {text}"));
                assert!(body["error"]["message"].is_string(), "{what}: {text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404_with_a_json_error() {
    let app = spawn_app().await;
    for version in VERSIONS {
        for path in ["/xapi/nowhere", "/xapi/statements/extra", "/nowhere"] {
            let response = send(app.get(path, version)).await;
            expect_json(response, 404, &format!("{version} GET {path}")).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_method_is_405_with_a_json_error() {
    let app = spawn_app().await;
    for version in VERSIONS {
        let cases = [
            (Method::PATCH, "/xapi/statements"),
            (Method::DELETE, "/xapi/statements"),
            (Method::PUT, "/xapi/activities"),
            (Method::POST, "/xapi/agents"),
            (Method::DELETE, "/xapi/about"),
        ];
        for (method, path) in cases {
            let response = send(app.request(method.clone(), path, version)).await;
            let allow = header(&response, "allow").unwrap_or_default();
            assert!(
                lists(&allow, "GET"),
                "{version} {method} {path}: a 405 names the allowed methods in Allow, got {allow:?}"
            );
            assert!(!lists(&allow, method.as_str()), "{version} {method} {path}: Allow {allow:?}");
            let body = expect_json(response, 405, &format!("{version} {method} {path}")).await;
            assert!(body["error"]["message"].is_string(), "{version} {method} {path}: {body}");
        }
    }
}
