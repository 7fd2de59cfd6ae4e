#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A corpus of hostile and malformed HTTP requests sent to a real server
//! over loopback. Every case must be refused with the expected 4xx and a
//! JSON error body carrying a message, the server must stay healthy after
//! each one, and nothing any case sent may end up stored.
//!
//! The cases run in groups, one app per group: 1.0.3, 2.0.0, bodies over a
//! small size limit, and huge batches. A failing case does not stop the
//! group: every failure is collected and reported at the end with the
//! case's name, so one run shows everything that is wrong.

#[path = "api/support.rs"]
mod support;

use base64::Engine;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};

use lrs_server::credentials::{self, Scope};
use support::{COMPLETED, TestApp, V1, V2, expect_error, spawn_app, spawn_app_with, statement};

const STATEMENTS: &str = "/xapi/statements";
const STATE: &str = "/xapi/activities/state";
const ACTIVITY_PROFILE: &str = "/xapi/activities/profile";
const AGENT_PROFILE: &str = "/xapi/agents/profile";

const ACTIVITY: &str = "http://example.com/activities/hostile";
const AGENT: &str = r#"{"objectType":"Agent","mbox":"mailto:hostile@example.com"}"#;
const REGISTRATION: &str = "3f1c8a52-6e0b-4c1e-9a7d-2b5e8c4d1f60";
/// The document id every document case aims at.
const DOC: &str = "hostile-doc";
/// An activity id with a space in it: not an IRI.
const SPACED_ACTIVITY: &str = "http://example.com/activities/with space";

const BOUNDARY: &str = "hostile-boundary-5d1c";
const ATTACHMENT: &[u8] = b"hostile attachment bytes\n\x00\x01\xfe\xff tail";

/// Nesting depth of the deep JSON bodies.
const DEEP: usize = 100_000;

// ---------------------------------------------------------------- the case table

/// How a case authenticates.
#[derive(Clone)]
enum Auth {
    /// The app's own Basic credential (scope `all`).
    App,
    /// No Authorization header.
    Missing,
    /// This exact Authorization header value (may be non-UTF-8).
    Raw(Vec<u8>),
}

/// One hostile request and the status it must get.
struct Case {
    name: String,
    method: Method,
    path_and_query: String,
    content_type: Option<String>,
    body: Vec<u8>,
    /// `X-Experience-API-Version`; `None` sends no header.
    version: Option<&'static str>,
    auth: Auth,
    /// Extra headers, as raw bytes (so they can be non-UTF-8).
    headers: Vec<(&'static str, Vec<u8>)>,
    expect: u16,
    /// The `error.path` the response must name, when the case checks it.
    error_path: Option<String>,
}

impl Case {
    fn new(name: impl Into<String>, method: Method, path_and_query: impl Into<String>, version: &'static str) -> Self {
        Self {
            name: name.into(),
            method,
            path_and_query: path_and_query.into(),
            content_type: None,
            body: Vec::new(),
            version: Some(version),
            auth: Auth::App,
            headers: Vec::new(),
            expect: 400,
            error_path: None,
        }
    }

    fn body(mut self, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self.body = body.into();
        self
    }

    fn json(self, body: impl Into<Vec<u8>>) -> Self {
        self.body(Some("application/json"), body)
    }

    fn expect(mut self, status: u16) -> Self {
        self.expect = status;
        self
    }

    fn version(mut self, version: Option<&'static str>) -> Self {
        self.version = version;
        self
    }

    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn error_path(mut self, path: impl Into<String>) -> Self {
        self.error_path = Some(path.into());
        self
    }
}

/// POST /xapi/statements with a JSON body.
fn post_json(name: impl Into<String>, version: &'static str, body: impl Into<Vec<u8>>) -> Case {
    Case::new(name, Method::POST, STATEMENTS, version).json(body)
}

/// POST /xapi/statements with any content type (or none).
fn post_raw(
    name: impl Into<String>,
    version: &'static str,
    content_type: Option<&str>,
    body: impl Into<Vec<u8>>,
) -> Case {
    Case::new(name, Method::POST, STATEMENTS, version).body(content_type, body)
}

fn get(name: impl Into<String>, version: &'static str, path_and_query: impl Into<String>) -> Case {
    Case::new(name, Method::GET, path_and_query, version)
}

// ---------------------------------------------------------------- running a group

/// Runs every case in order against one app. After each case the server
/// must answer `/health`, and no statement may be stored. Returns the
/// failures, each naming its case.
async fn run(app: &TestApp, group: &str, cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    // Statements already reported as stored, so each is reported once, by
    // the case that stored it.
    let mut stored = std::collections::HashSet::new();
    let total = cases.len();
    for (index, case) in cases.into_iter().enumerate() {
        let label = format!(
            "[{group} {}/{total}] {} ({} {}, expect {})",
            index + 1,
            case.name,
            case.method,
            shorten(&case.path_and_query),
            case.expect
        );
        println!("running {label}");
        let started = std::time::Instant::now();
        if let Err(problem) = run_case(app, case).await {
            failures.push(format!("{label}: {problem}"));
        }
        println!("  answered in {:?}", started.elapsed());
        if let Err(problem) = healthy(app).await {
            failures.push(format!("{label}: the server is not healthy afterwards: {problem}"));
        }
        match stored_ids(app).await {
            Ok(ids) => {
                let new: Vec<String> = ids.into_iter().filter(|id| stored.insert(id.clone())).collect();
                if !new.is_empty() {
                    failures.push(format!("{label}: stored {} statement(s): {new:?}", new.len()));
                }
            }
            Err(problem) => failures.push(format!("{label}: {problem}")),
        }
    }
    failures
}

fn shorten(text: &str) -> String {
    if text.len() <= 120 {
        return text.to_owned();
    }
    let mut end = 120;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…({} bytes)", &text[..end], text.len())
}

async fn run_case(app: &TestApp, case: Case) -> Result<(), String> {
    let mut request = app.client.request(case.method.clone(), app.url(&case.path_and_query));
    match &case.auth {
        Auth::App => request = request.basic_auth(&app.key, Some(&app.secret)),
        Auth::Missing => {}
        Auth::Raw(value) => request = request.header(AUTHORIZATION, raw_header(value)),
    }
    if let Some(version) = case.version {
        request = request.header("X-Experience-API-Version", version);
    }
    if let Some(content_type) = &case.content_type {
        request = request.header(CONTENT_TYPE, raw_header(content_type.as_bytes()));
    }
    for (name, value) in &case.headers {
        request = request.header(*name, raw_header(value));
    }
    // Huge batches take a while to validate in a debug build on a busy machine.
    let request = request.timeout(std::time::Duration::from_secs(180));
    let response = request.body(case.body).send().await.map_err(|e| format!("no response: {e:?}"))?;
    let expect = case.expect;
    // expect_error panics on a mismatch; run it in a task so one failing
    // case does not stop the corpus.
    let body = tokio::spawn(async move { expect_error(response, expect).await }).await.map_err(panic_message)?;
    if body["error"]["status"] != json!(expect) {
        return Err(format!("error.status is not {expect}: {body}"));
    }
    if !body["error"]["reason"].is_string() {
        return Err(format!("error.reason is missing: {body}"));
    }
    println!("  answered {expect}: {}", body["error"]["message"]);
    if let Some(path) = case.error_path
        && body["error"]["path"] != json!(path)
    {
        return Err(format!("error.path is not {path:?}: {body}"));
    }
    Ok(())
}

fn raw_header(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("a header value the client can send")
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned()),
        Err(error) => error.to_string(),
    }
}

async fn healthy(app: &TestApp) -> Result<(), String> {
    let response = app.client.get(app.url("/health")).send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    if status == 200 { Ok(()) } else { Err(format!("GET /health answered {status}")) }
}

/// The ids of the stored statements (the first page; the corpus should
/// leave none at all).
async fn stored_ids(app: &TestApp) -> Result<Vec<String>, String> {
    let response = app.get(STATEMENTS, V2).send().await.map_err(|e| format!("GET /xapi/statements: {e:?}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("GET /xapi/statements body: {e:?}"))?;
    if status != 200 {
        return Err(format!("GET /xapi/statements answered {status}: {text}"));
    }
    let page: Value = serde_json::from_str(&text).map_err(|_| format!("GET /xapi/statements is not JSON: {text}"))?;
    let statements =
        page["statements"].as_array().ok_or_else(|| format!("GET /xapi/statements has no statements array: {text}"))?;
    Ok(statements.iter().map(|s| s["id"].as_str().unwrap_or_default().to_owned()).collect())
}

/// The documents the corpus tried to write do not exist, and the listings
/// of their scopes are empty.
async fn no_documents(app: &TestApp, version: &'static str) -> Vec<String> {
    let mut failures = Vec::new();
    for path in written_documents() {
        let response = app.get(&path, version).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        // 404, or 400 for an address the server refuses outright (an
        // activityId that is not an IRI can hold no document).
        if status != 404 && !(status == 400 && text.contains("must be an IRI")) {
            failures.push(format!("[{version} documents] GET {path}: expected 404, got {status}: {}", shorten(&text)));
        }
    }
    for path in [
        at(STATE, &[("activityId", ACTIVITY), ("agent", AGENT)]),
        at(STATE, &[("activityId", ACTIVITY), ("agent", AGENT), ("registration", REGISTRATION)]),
        at(ACTIVITY_PROFILE, &[("activityId", ACTIVITY)]),
        at(AGENT_PROFILE, &[("agent", AGENT)]),
    ] {
        let response = app.get(&path, version).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        if status != 200 || serde_json::from_str::<Value>(&text).ok() != Some(json!([])) {
            failures.push(format!("[{version} documents] listing {path}: expected 200 [], got {status}: {text}"));
        }
    }
    failures
}

/// Every document address a case sends a write to (when its parameters are
/// valid enough to name one).
fn written_documents() -> Vec<String> {
    vec![
        state_doc(&[]),
        state_doc(&[("registration", REGISTRATION)]),
        activity_profile_doc(&[]),
        agent_profile_doc(&[]),
        at(STATE, &[("activityId", SPACED_ACTIVITY), ("agent", AGENT), ("stateId", DOC)]),
    ]
}

fn assert_no_failures(failures: &[String], cases: usize) {
    assert!(failures.is_empty(), "{} failure(s) in {cases} cases:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------- request material

fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

fn at(path: &str, pairs: &[(&str, &str)]) -> String {
    format!("{path}?{}", query(pairs))
}

fn state_doc(extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("activityId", ACTIVITY), ("agent", AGENT), ("stateId", DOC)];
    pairs.extend_from_slice(extra);
    at(STATE, &pairs)
}

fn activity_profile_doc(extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("activityId", ACTIVITY), ("profileId", DOC)];
    pairs.extend_from_slice(extra);
    at(ACTIVITY_PROFILE, &pairs)
}

fn agent_profile_doc(extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("agent", AGENT), ("profileId", DOC)];
    pairs.extend_from_slice(extra);
    at(AGENT_PROFILE, &pairs)
}

/// A valid statement: every statement case is this with one defect.
fn valid() -> Value {
    statement("hostile@example.com", COMPLETED, ACTIVITY)
}

fn bytes_of(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("json")
}

/// `value` with `pointer` (`/a/b/c`) set, creating objects on the way.
fn set(mut value: Value, pointer: &str, new: Value) -> Value {
    let mut target = &mut value;
    for key in pointer.trim_start_matches('/').split('/') {
        if !target.is_object() {
            *target = json!({});
        }
        let key = key.replace("~1", "/").replace("~0", "~");
        target = target.as_object_mut().expect("object").entry(key).or_insert(Value::Null);
    }
    *target = new;
    value
}

/// The valid statement with `pointer` set.
fn valid_with(pointer: &str, new: Value) -> Value {
    set(valid(), pointer, new)
}

/// `text` with the first occurrence of `needle` replaced by raw bytes.
fn splice(text: &[u8], needle: &str, replacement: &[u8]) -> Vec<u8> {
    let needle = needle.as_bytes();
    let at = text.windows(needle.len()).position(|w| w == needle).unwrap_or_else(|| {
        panic!("{:?} not found in {}", String::from_utf8_lossy(needle), String::from_utf8_lossy(text))
    });
    [&text[..at], replacement, &text[at + needle.len()..]].concat()
}

/// The valid statement's text with the learner's name replaced by raw bytes.
fn with_name_bytes(name: &[u8]) -> Vec<u8> {
    splice(&bytes_of(&valid()), "Test Learner", name)
}

/// The valid statement with `pointer` set to a marker number, whose text is
/// then replaced by `literal` (for numbers serde_json cannot produce).
fn with_number_literal(pointer: &str, literal: &str) -> Vec<u8> {
    let marker = 424_242.5;
    let text = bytes_of(&valid_with(pointer, json!(marker)));
    splice(&text, "424242.5", literal.as_bytes())
}

fn deep_arrays(depth: usize) -> Vec<u8> {
    let mut out = "[".repeat(depth).into_bytes();
    out.extend_from_slice("]".repeat(depth).as_bytes());
    out
}

fn deep_objects(depth: usize) -> Vec<u8> {
    let mut out = r#"{"a":"#.repeat(depth).into_bytes();
    out.push(b'1');
    out.extend_from_slice("}".repeat(depth).as_bytes());
    out
}

/// The valid statement with a deeply nested value as a result extension.
fn deep_in_extension(nested: &[u8]) -> Vec<u8> {
    let text = bytes_of(&valid_with("/result/extensions/http:~1~1example.com~1ext", json!("MARKER")));
    splice(&text, "\"MARKER\"", nested)
}

/// The valid statement's text padded with trailing spaces to exactly `size` bytes.
fn padded_to(size: usize) -> Vec<u8> {
    let mut bytes = bytes_of(&valid());
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The valid statement with one attachment of `content` (no fileUrl).
fn with_attachment(content: &[u8]) -> Value {
    valid_with(
        "/attachments",
        json!([{
            "usageType": "http://example.com/attachment-usage/certificate",
            "display": { "en-US": "Certificate" },
            "contentType": "text/plain",
            "length": content.len(),
            "sha2": sha256_hex(content)
        }]),
    )
}

fn multipart_type() -> String {
    format!("multipart/mixed; boundary={BOUNDARY}")
}

/// One body part: its opening delimiter, header lines, blank line, body
/// and the line break that belongs to the next delimiter.
fn part(headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("--{BOUNDARY}\r\n").into_bytes();
    for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

fn json_part(body: &[u8]) -> Vec<u8> {
    part(&["Content-Type: application/json"], body)
}

fn attachment_part(hash: &str, body: &[u8]) -> Vec<u8> {
    let hash = format!("X-Experience-API-Hash: {hash}");
    part(&["Content-Type: text/plain", "Content-Transfer-Encoding: binary", &hash], body)
}

/// Parts followed by the close delimiter.
fn multipart(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = parts.concat();
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

/// A well-formed multipart statement request with one attachment: what
/// the multipart cases break one way each.
fn valid_multipart() -> Vec<u8> {
    multipart(&[
        json_part(&bytes_of(&with_attachment(ATTACHMENT))),
        attachment_part(&sha256_hex(ATTACHMENT), ATTACHMENT),
    ])
}

fn basic(credentials: &[u8]) -> Vec<u8> {
    let mut value = b"Basic ".to_vec();
    value.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(credentials).as_bytes());
    value
}

fn fixture_dir(folder: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/statements").join(folder)
}

/// (file name, bytes) of every fixture in a folder, sorted.
fn fixtures(folder: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(fixture_dir(folder))
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {folder}");
    files
        .into_iter()
        .map(|p| (p.file_name().expect("name").to_string_lossy().into_owned(), std::fs::read(&p).expect("fixture")))
        .collect()
}

// ---------------------------------------------------------------- statement bodies

fn body_cases(v: &'static str) -> Vec<Case> {
    let valid_text = bytes_of(&valid());
    let len = valid_text.len();
    let mut cases = vec![
        post_json("malformed JSON: unclosed object", v, r#"{"actor": {"mbox": "mailto:a@example.com"}, "verb": "#),
        post_json("malformed JSON: comma instead of a member", v, "{,}"),
        post_json("malformed JSON: missing colon", v, r#"{"actor" {}}"#),
        post_json("malformed JSON: single quotes", v, "{'actor': {}}"),
        post_json("malformed JSON: trailing comma", v, splice(&valid_text, "}}}", b"}}},")),
        post_json("malformed JSON: a comment", v, [b"/* hi */".as_slice(), &valid_text].concat()),
        post_json("malformed JSON: two statements back to back", v, [valid_text.as_slice(), &valid_text].concat()),
        post_json("malformed JSON: trailing garbage", v, [valid_text.as_slice(), b"garbage"].concat()),
        post_json("malformed JSON: NaN score", v, with_number_literal("/result/score/raw", "NaN")),
        post_json("malformed JSON: Infinity score", v, with_number_literal("/result/score/raw", "Infinity")),
        post_json("malformed JSON: form data", v, "actor=me&verb=did"),
        post_json("empty body", v, Vec::new()),
        post_json("whitespace-only body", v, " \r\n\t "),
        post_json("JSON null", v, "null"),
        post_json("JSON number", v, "42"),
        post_json("JSON string", v, r#""a statement""#),
        post_json("JSON true", v, "true"),
        post_json("empty object", v, "{}"),
        post_json("empty array", v, "[]"),
        post_json("array of numbers", v, "[1, 2, 3]"),
        post_json("array of strings", v, r#"["a", "b"]"#),
        post_json("array of null", v, "[null]"),
        post_json("array of arrays", v, "[[], []]"),
        post_json("array of empty objects", v, "[{}, {}]"),
        post_json("valid statement then a number", v, bytes_of(&json!([valid(), 1]))).error_path("/1"),
        post_json("valid statement then null", v, bytes_of(&json!([valid(), null]))).error_path("/1"),
        post_json("arrays nested 100,000 deep", v, deep_arrays(DEEP)),
        post_json("objects nested 100,000 deep", v, deep_objects(DEEP)),
        post_json("arrays nested 100,000 deep inside a result extension", v, deep_in_extension(&deep_arrays(DEEP))),
        post_json("objects nested 100,000 deep inside a result extension", v, deep_in_extension(&deep_objects(DEEP))),
        post_json("unclosed arrays 100,000 deep", v, "[".repeat(DEEP)),
        post_json("a statement inside arrays 1,000 deep", v, {
            let mut body = "[".repeat(1000).into_bytes();
            body.extend_from_slice(&valid_text);
            body.extend_from_slice("]".repeat(1000).as_bytes());
            body
        }),
        Case::new(
            "PUT of arrays nested 100,000 deep",
            Method::PUT,
            at(STATEMENTS, &[("statementId", REGISTRATION)]),
            v,
        )
        .json(deep_arrays(DEEP)),
        Case::new("PUT of JSON null", Method::PUT, at(STATEMENTS, &[("statementId", REGISTRATION)]), v).json("null"),
        Case::new("PUT of an empty array", Method::PUT, at(STATEMENTS, &[("statementId", REGISTRATION)]), v).json("[]"),
        Case::new("PUT of an empty body", Method::PUT, at(STATEMENTS, &[("statementId", REGISTRATION)]), v).json(""),
        Case::new("PUT without statementId", Method::PUT, STATEMENTS, v).json(valid_text.clone()),
        Case::new("PUT with statementId not a UUID", Method::PUT, at(STATEMENTS, &[("statementId", "not-a-uuid")]), v)
            .json(valid_text.clone()),
        Case::new("PUT with statementId %ZZ", Method::PUT, format!("{STATEMENTS}?statementId=%ZZ"), v)
            .json(valid_text.clone()),
        Case::new(
            "PUT with an unknown parameter",
            Method::PUT,
            format!("{STATEMENTS}?statementId={REGISTRATION}&colour=blue"),
            v,
        )
        .json(valid_text.clone()),
        // The statement id is a UUID in its hyphenated string form, as the
        // schema requires of a statement's `id`; uuid's parser also takes
        // the urn:uuid:, braced and unhyphenated forms.
        Case::new(
            "PUT with statementId in urn:uuid: form",
            Method::PUT,
            at(STATEMENTS, &[("statementId", format!("urn:uuid:{REGISTRATION}").as_str())]),
            v,
        )
        .json(valid_text.clone()),
        Case::new(
            "PUT with statementId in braces",
            Method::PUT,
            at(STATEMENTS, &[("statementId", format!("{{{REGISTRATION}}}").as_str())]),
            v,
        )
        .json(valid_text.clone()),
        Case::new(
            "PUT with statementId without hyphens",
            Method::PUT,
            at(STATEMENTS, &[("statementId", REGISTRATION.replace('-', "").as_str())]),
            v,
        )
        .json(valid_text.clone()),
        Case::new("POST with a query parameter", Method::POST, format!("{STATEMENTS}?statementId={REGISTRATION}"), v)
            .json(valid_text.clone()),
    ];
    for cut in [1, len / 4, len / 2, 3 * len / 4, len - 1] {
        cases.push(post_json(
            format!("valid statement truncated to {cut} of {len} bytes"),
            v,
            valid_text[..cut].to_vec(),
        ));
    }
    cases
}

// ---------------------------------------------------------------- statement content

fn content_cases(v: &'static str) -> Vec<Case> {
    let valid_text = bytes_of(&valid());
    let dup_top = br#"{"actor":{"objectType":"Agent","mbox":"mailto:a@example.com"},"actor":{"objectType":"Agent","mbox":"mailto:b@example.com"},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed"},"object":{"id":"http://example.com/activities/hostile"}}"#;
    let dup_escaped = br#"{"id":"6fbd600f-d17c-4c74-801a-2ec2e53231e7","\u0069d":"0c8f3c1a-3b4e-4d8e-9a55-5a1f7a3c2b10","actor":{"mbox":"mailto:a@example.com"},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed"},"object":{"id":"http://example.com/activities/hostile"}}"#;
    let dup_display = br#"{"actor":{"mbox":"mailto:a@example.com"},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed","display":{"en-US":"did","en-US":"did not"}},"object":{"id":"http://example.com/activities/hostile"}}"#;
    let dup_extension = br#"{"actor":{"mbox":"mailto:a@example.com"},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed"},"object":{"id":"http://example.com/activities/hostile"},"result":{"extensions":{"http://example.com/ext":{"k":1,"k":2}}}}"#;
    let dup_after_backslash = br#"{"actor":{"objectType":"Agent","name":"back\\","mbox":"mailto:a@example.com","name":"again"},"verb":{"id":"http://adlnet.gov/expapi/verbs/completed"},"object":{"id":"http://example.com/activities/hostile"}}"#;
    let dup_in_second = [b"[".as_slice(), &valid_text, b",", dup_display, b"]"].concat();

    let mut cases = vec![
        // Duplicate keys: serde_json would silently keep the last one.
        post_json("duplicate top-level key actor", v, dup_top.to_vec()),
        post_json("duplicate key spelled once with an escape (id / \\u0069d)", v, dup_escaped.to_vec()),
        post_json("duplicate language-map key", v, dup_display.to_vec()),
        post_json("duplicate key inside an extension", v, dup_extension.to_vec()),
        post_json("duplicate key after a string ending in an escaped backslash", v, dup_after_backslash.to_vec()),
        post_json("duplicate key in the second statement of a batch", v, dup_in_second),
        // Numbers out of range.
        post_json("score.scaled 1.0000001", v, bytes_of(&valid_with("/result/score/scaled", json!(1.000_000_1)))),
        post_json("score.scaled -1.5", v, bytes_of(&valid_with("/result/score/scaled", json!(-1.5)))),
        post_json(
            "score.raw above max",
            v,
            bytes_of(&valid_with("/result/score", json!({"raw": 101, "min": 0, "max": 100}))),
        ),
        post_json(
            "score.raw below min",
            v,
            bytes_of(&valid_with("/result/score", json!({"raw": -1, "min": 0, "max": 100}))),
        ),
        post_json("score.min above max", v, bytes_of(&valid_with("/result/score", json!({"min": 10, "max": 5})))),
        post_json("score.raw 1e400", v, with_number_literal("/result/score/raw", "1e400")),
        post_json("score.scaled -1e400", v, with_number_literal("/result/score/scaled", "-1e400")),
        post_json(
            "extension value 1e400",
            v,
            with_number_literal("/result/extensions/http:~1~1example.com~1n", "1e400"),
        ),
        post_json("attachment length 1e400", v, {
            let mut s = with_attachment(ATTACHMENT);
            s["attachments"][0]["fileUrl"] = json!("https://files.example.com/a.txt");
            s["attachments"][0]["length"] = json!(424_242.5);
            splice(&bytes_of(&s), "424242.5", b"1e400")
        }),
        post_json("attachment length 1.5", v, {
            let mut s = with_attachment(ATTACHMENT);
            s["attachments"][0]["fileUrl"] = json!("https://files.example.com/a.txt");
            s["attachments"][0]["length"] = json!(1.5);
            bytes_of(&s)
        }),
        // NUL bytes and bad text.
        post_json("raw NUL byte inside a string", v, with_name_bytes(b"Test\x00Learner")),
        post_json("raw NUL byte between tokens", v, splice(&valid_text, ",", b",\x00")),
        post_json(
            "escaped NUL in the verb id",
            v,
            bytes_of(&valid_with("/verb/id", json!("http://example.com/verbs/\u{0}did"))),
        ),
        // An mbox is a mailto: IRI, and IRIs have no control characters (the
        // schema refuses them in every other IRI).
        post_json(
            "escaped NUL in the mbox",
            v,
            bytes_of(&valid_with("/actor/mbox", json!("mailto:a\u{0}@example.com"))),
        ),
        post_json(
            "BEL control character in the mbox",
            v,
            bytes_of(&valid_with("/actor/mbox", json!("mailto:a\u{7}b@example.com"))),
        ),
        post_json(
            "escaped NUL in an openid",
            v,
            bytes_of(&valid_with("/actor", json!({"openid": "http://openid.example.com/a\u{0}b"}))),
        ),
        post_json(
            "escaped NUL in an account homePage",
            v,
            bytes_of(&valid_with("/actor", json!({"account": {"homePage": "http://example.com/\u{0}", "name": "a"}}))),
        ),
        post_json(
            "escaped NUL in a language tag",
            v,
            bytes_of(&valid_with("/verb/display", json!({"en\u{0}US": "did"}))),
        ),
        post_json("invalid UTF-8 byte 0xff in a string", v, with_name_bytes(b"Test \xff Learner")),
        post_json("overlong UTF-8 encoding in a string", v, with_name_bytes(b"Test \xc0\xaf Learner")),
        post_json("UTF-8-encoded surrogate in a string", v, with_name_bytes(b"Test \xed\xa0\x80 Learner")),
        post_json("truncated UTF-8 sequence in a string", v, with_name_bytes(b"Test \xe2\x82")),
        post_json("invalid UTF-8 in a key", v, splice(&valid_text, "\"actor\"", b"\"act\xffor\"")),
        post_json("invalid UTF-8 outside any string", v, [b"\xff".as_slice(), &valid_text].concat()),
        post_json("lone leading surrogate escape \\ud800", v, with_name_bytes(br"\ud800")),
        post_json("lone trailing surrogate escape \\udc00", v, with_name_bytes(br"\udc00")),
        post_json("leading surrogate followed by a letter \\ud800\\u0041", v, with_name_bytes(br"\ud800\u0041")),
        post_json("UTF-16 body", v, {
            let text = String::from_utf8(valid_text.clone()).expect("utf-8");
            text.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>()
        }),
    ];
    // Durations the ISO 8601 pattern refuses.
    for duration in
        ["P", "PT", "PT-5S", "-P1D", "P1W1D", "P1H", "PT1D", "PT1.5.5S", "P1DT", "PT1S1S", "P\u{661}D", "PT 1S"]
    {
        cases.push(post_json(
            format!("duration {duration:?}"),
            v,
            bytes_of(&valid_with("/result/duration", json!(duration))),
        ));
    }
    cases
}

// ---------------------------------------------------------------- content types and multipart

fn content_type_cases(v: &'static str) -> Vec<Case> {
    let valid_text = bytes_of(&valid());
    let body = bytes_of(&with_attachment(ATTACHMENT));
    let hash = sha256_hex(ATTACHMENT);
    let good_attachment = attachment_part(&hash, ATTACHMENT);
    let full = valid_multipart();
    let extra: &[u8] = b"an extra part no statement mentions";
    let multipart_case = |name: &str, body: Vec<u8>| post_raw(name, v, Some(&multipart_type()), body);
    let mut cases = vec![
        // XAPI-00127: a PUT or POST without Content-Type application/json or
        // multipart/mixed is a 400 (not 415). The server answers 400 for a
        // wrong one.
        post_raw("valid statement as text/plain", v, Some("text/plain"), valid_text.clone()),
        post_raw("valid statement as application/xml", v, Some("application/xml"), valid_text.clone()),
        post_raw("valid statement as application/jsonx", v, Some("application/jsonx"), valid_text.clone()),
        post_raw(
            "valid statement as application/x-www-form-urlencoded",
            v,
            Some("application/x-www-form-urlencoded"),
            valid_text.clone(),
        ),
        post_raw(
            "valid statement as multipart/form-data",
            v,
            Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
            full.clone(),
        ),
        // XAPI-00127 covers a missing Content-Type too, and a header that is
        // not even text is not application/json.
        post_raw("valid statement with no Content-Type", v, None, valid_text.clone()),
        post_raw("valid statement with a non-UTF-8 Content-Type", v, None, valid_text.clone())
            .header("content-type", b"application/json\xff".to_vec()),
        post_raw("malformed JSON with no Content-Type", v, None, "{\"actor\":"),
        Case::new(
            "PUT of a valid statement as text/plain",
            Method::PUT,
            at(STATEMENTS, &[("statementId", REGISTRATION)]),
            v,
        )
        .body(Some("text/plain"), valid_text.clone()),
        // multipart/mixed.
        post_raw("multipart/mixed without a boundary", v, Some("multipart/mixed"), full.clone()),
        post_raw("multipart/mixed with an empty boundary", v, Some("multipart/mixed; boundary="), full.clone()),
        post_raw(
            "multipart/mixed with a boundary of 201 characters",
            v,
            Some(&format!("multipart/mixed; boundary={}", "b".repeat(201))),
            full.clone(),
        ),
        post_raw(
            "multipart/mixed whose boundary never appears",
            v,
            Some("multipart/mixed; boundary=some-other-boundary"),
            full.clone(),
        ),
        multipart_case("multipart with an empty body", Vec::new()),
        multipart_case("multipart with only the close delimiter", format!("--{BOUNDARY}--\r\n").into_bytes()),
        multipart_case(
            "multipart truncated in the last part",
            full[..full.len() - (ATTACHMENT.len() / 2 + BOUNDARY.len() + 8)].to_vec(),
        ),
        multipart_case("multipart without the close delimiter", {
            let mut body = json_part(&body);
            body.extend_from_slice(&good_attachment);
            body
        }),
        multipart_case(
            "multipart statement part without Content-Type",
            multipart(&[part(&[], &body), good_attachment.clone()]),
        ),
        multipart_case(
            "multipart statement part as text/plain",
            multipart(&[part(&["Content-Type: text/plain"], &body), good_attachment.clone()]),
        ),
        multipart_case(
            "multipart statement part with malformed JSON",
            multipart(&[json_part(b"{\"actor\":"), good_attachment.clone()]),
        ),
        multipart_case(
            "multipart statement part nested 100,000 deep",
            multipart(&[json_part(&deep_arrays(DEEP)), good_attachment.clone()]),
        ),
        multipart_case(
            "multipart statement part with a duplicate key",
            multipart(&[
                json_part(&splice(&body, "{", br#"{"version":"1.0.0","version":"1.0.0","#)),
                good_attachment.clone(),
            ]),
        ),
        multipart_case(
            "multipart attachment whose hash does not match its bytes",
            multipart(&[json_part(&body), attachment_part(&hash, b"tampered bytes")]),
        ),
        multipart_case(
            "multipart attachment hash that is not hex",
            multipart(&[json_part(&body), attachment_part(&"z".repeat(64), ATTACHMENT)]),
        ),
        multipart_case(
            "multipart attachment without X-Experience-API-Hash",
            multipart(&[
                json_part(&body),
                part(&["Content-Type: text/plain", "Content-Transfer-Encoding: binary"], ATTACHMENT),
            ]),
        ),
        multipart_case(
            "multipart attachment with Content-Transfer-Encoding base64",
            multipart(&[
                json_part(&body),
                part(
                    &[
                        "Content-Type: text/plain",
                        "Content-Transfer-Encoding: base64",
                        &format!("X-Experience-API-Hash: {hash}"),
                    ],
                    ATTACHMENT,
                ),
            ]),
        ),
        multipart_case(
            "multipart attachment header without a colon",
            multipart(&[
                json_part(&body),
                part(&["Content-Type text/plain", &format!("X-Experience-API-Hash: {hash}")], ATTACHMENT),
            ]),
        ),
        multipart_case(
            "multipart attachment header that is not UTF-8",
            multipart(&[json_part(&body), {
                let mut p = part(&["Content-Type: text/plain", &format!("X-Experience-API-Hash: {hash}")], ATTACHMENT);
                p = splice(&p, "text/plain", b"text/\xffplain");
                p
            }]),
        ),
        multipart_case(
            "multipart attachment missing for a statement attachment without fileUrl",
            multipart(&[json_part(&body)]),
        ),
        multipart_case(
            "multipart extra part no statement references",
            multipart(&[json_part(&body), good_attachment.clone(), attachment_part(&sha256_hex(extra), extra)]),
        ),
        multipart_case("multipart with 1,001 parts", {
            let mut parts = vec![json_part(&body)];
            parts.extend(std::iter::repeat_n(good_attachment.clone(), 1000));
            multipart(&parts)
        }),
    ];
    cases.push(
        Case::new("PUT multipart without a boundary", Method::PUT, at(STATEMENTS, &[("statementId", REGISTRATION)]), v)
            .body(Some("multipart/mixed"), full),
    );
    cases
}

// ---------------------------------------------------------------- statement queries

fn query_cases(v: &'static str) -> Vec<Case> {
    let q = |name: &str, raw_query: &str| get(name, v, format!("{STATEMENTS}?{raw_query}"));
    let p = |name: &str, pairs: &[(&str, &str)]| get(name, v, at(STATEMENTS, pairs));
    let deep_agent = "[".repeat(10_000);
    vec![
        p("limit=-1", &[("limit", "-1")]),
        p("limit=99999999999999999999", &[("limit", "99999999999999999999")]),
        p("limit=1.5", &[("limit", "1.5")]),
        p("limit=ten", &[("limit", "ten")]),
        p("limit empty", &[("limit", "")]),
        q("limit=%ZZ", "limit=%ZZ"),
        q("limit=%", "limit=%"),
        q("limit given twice", "limit=1&limit=2"),
        p("since=not-a-date", &[("since", "not-a-date")]),
        p("since=9999999-01-01T00:00:00Z", &[("since", "9999999-01-01T00:00:00Z")]),
        p("since=2024-02-30T00:00:00Z (no such day)", &[("since", "2024-02-30T00:00:00Z")]),
        p("until=2024-01-01T25:00:00Z (no such hour)", &[("until", "2024-01-01T25:00:00Z")]),
        p("until=2024-13-01T00:00:00Z (no such month)", &[("until", "2024-13-01T00:00:00Z")]),
        q("since=%e9 (invalid UTF-8)", "since=%e9"),
        p("agent=not-json", &[("agent", "not-json")]),
        p("agent={}", &[("agent", "{}")]),
        p("agent=[]", &[("agent", "[]")]),
        p("agent=null", &[("agent", "null")]),
        p(
            "agent with two identifiers",
            &[("agent", r#"{"mbox":"mailto:a@example.com","openid":"http://a.example.com/"}"#)],
        ),
        // An Agent's mbox is a mailto: IRI; the document resources refuse
        // this agent with 400, the statement query answers 200 and nothing.
        p("agent whose mbox is not a mailto: IRI", &[("agent", r#"{"mbox":"hostile@example.com"}"#)]),
        p("agent nested 10,000 deep", &[("agent", deep_agent.as_str())]),
        q("agent=%ZZ", "agent=%ZZ"),
        q("agent=%e9 (invalid UTF-8)", "agent=%e9"),
        p("verb=not an IRI", &[("verb", "not an IRI")]),
        q("verb=%e9 (invalid UTF-8)", "verb=%e9"),
        q("verb=%", "verb=%"),
        p("activity=not-an-iri", &[("activity", "not-an-iri")]),
        p("registration=not-a-uuid", &[("registration", "not-a-uuid")]),
        q("registration=%ZZ", "registration=%ZZ"),
        p("statementId=not-a-uuid", &[("statementId", "not-a-uuid")]),
        p("voidedStatementId=not-a-uuid", &[("voidedStatementId", "not-a-uuid")]),
        p("statementId with verb", &[("statementId", REGISTRATION), ("verb", COMPLETED)]),
        p("statementId and voidedStatementId", &[("statementId", REGISTRATION), ("voidedStatementId", REGISTRATION)]),
        p("format=weird", &[("format", "weird")]),
        p("format=IDS (wrong case)", &[("format", "IDS")]),
        p("attachments=maybe", &[("attachments", "maybe")]),
        p("attachments=maybe with statementId", &[("statementId", REGISTRATION), ("attachments", "maybe")]),
        p("ascending=2", &[("ascending", "2")]),
        p("related_agents=yes", &[("related_agents", "yes")]),
        p("related_activities=1", &[("related_activities", "1")]),
        p("unknown parameter colour", &[("colour", "blue")]),
        // XAPI-00325: a parameter with differing case is refused.
        p("parameter with differing case (Limit)", &[("Limit", "1")]),
        q("parameter named %ZZ", "%ZZ=1"),
        q("parameter named %ff (invalid UTF-8)", "%ff=1"),
        get(
            "5,000 unknown parameters",
            v,
            format!("{STATEMENTS}?{}", (0..5_000).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&")),
        ),
        p("more=garbage", &[("more", "garbage")]),
        p("more empty", &[("more", "")]),
        p("more with another parameter", &[("more", "garbage"), ("limit", "1")]),
    ]
}

// ---------------------------------------------------------------- documents

fn document_cases(v: &'static str) -> Vec<Case> {
    let put = |name: &str, path: String| {
        Case::new(name, Method::PUT, path, v).header("If-None-Match", "*").json(r#"{"a":1}"#)
    };
    let post = |name: &str, path: String, body: &[u8]| Case::new(name, Method::POST, path, v).json(body.to_vec());
    let with_agent = |base: &str, agent: &str, id_param: &str| {
        let mut pairs = vec![("agent", agent), (id_param, DOC)];
        if base == STATE {
            pairs.insert(0, ("activityId", ACTIVITY));
        }
        at(base, &pairs)
    };
    let mut cases = vec![
        put("state PUT without activityId", at(STATE, &[("agent", AGENT), ("stateId", DOC)])),
        put("activity profile PUT without activityId", at(ACTIVITY_PROFILE, &[("profileId", DOC)])),
        get("state GET without activityId", v, at(STATE, &[("agent", AGENT), ("stateId", DOC)])),
        put("state PUT without agent", at(STATE, &[("activityId", ACTIVITY), ("stateId", DOC)])),
        put("agent profile PUT without agent", at(AGENT_PROFILE, &[("profileId", DOC)])),
        put("state PUT without stateId", at(STATE, &[("activityId", ACTIVITY), ("agent", AGENT)])),
        put("activity profile PUT without profileId", at(ACTIVITY_PROFILE, &[("activityId", ACTIVITY)])),
        Case::new("agent profile DELETE without profileId", Method::DELETE, at(AGENT_PROFILE, &[("agent", AGENT)]), v),
        put(
            "state PUT with activityId not an IRI",
            at(STATE, &[("activityId", "not-an-iri"), ("agent", AGENT), ("stateId", DOC)]),
        ),
        // An IRI has no spaces (the statement schema refuses them in
        // activity ids).
        put(
            "state PUT with activityId containing a space",
            at(STATE, &[("activityId", SPACED_ACTIVITY), ("agent", AGENT), ("stateId", DOC)]),
        ),
        put(
            "state PUT with activityId=%e9",
            format!("{STATE}?activityId=%e9&agent={}&stateId={DOC}", query(&[("a", AGENT)]).trim_start_matches("a=")),
        ),
        put("state PUT with registration not a UUID", state_doc(&[("registration", "not-a-uuid")])),
        put("state PUT with registration=%ZZ", format!("{}&registration=%ZZ", state_doc(&[]))),
        put("state PUT with stateId given twice", format!("{}&stateId=other", state_doc(&[]))),
        put("state PUT with an unknown parameter", state_doc(&[("colour", "blue")])),
        put("state PUT with since", state_doc(&[("since", "2024-01-01T00:00:00Z")])),
        put("activity profile PUT with registration", activity_profile_doc(&[("registration", REGISTRATION)])),
        get("state GET with since and stateId", v, state_doc(&[("since", "2024-01-01T00:00:00Z")])),
        get(
            "state listing with since=not-a-date",
            v,
            at(STATE, &[("activityId", ACTIVITY), ("agent", AGENT), ("since", "not-a-date")]),
        ),
        get(
            "state listing with since=%e9",
            v,
            format!("{}&since=%e9", at(STATE, &[("activityId", ACTIVITY), ("agent", AGENT)])),
        ),
        Case::new("state PUT with a non-UTF-8 If-Match", Method::PUT, state_doc(&[]), v)
            .header("If-Match", b"\"\xff\"".to_vec())
            .json("{}"),
        Case::new("state PUT with If-Match to a missing document", Method::PUT, state_doc(&[]), v)
            .header("If-Match", "\"0123456789abcdef0123456789abcdef01234567\"")
            .json("{}")
            .expect(412),
        Case::new("agent profile PUT with If-Match * to a missing document", Method::PUT, agent_profile_doc(&[]), v)
            .header("If-Match", "*")
            .json("{}")
            .expect(412),
        Case::new("state PUT with a non-UTF-8 Content-Type", Method::PUT, state_doc(&[]), v)
            .header("If-None-Match", "*")
            .header("content-type", b"application/\xffjson".to_vec())
            .body(None, "{}"),
        // Bodies declared as JSON must be JSON.
        put("state PUT of malformed JSON", state_doc(&[])).json("{\"a\":"),
        put("state PUT of malformed JSON as application/json; charset=utf-8", state_doc(&[]))
            .body(Some("application/json; charset=utf-8"), "{\"a\":"),
        put("state PUT of malformed JSON as APPLICATION/JSON", state_doc(&[]))
            .body(Some("APPLICATION/JSON"), "{\"a\":"),
        put("state PUT of invalid UTF-8 as JSON", state_doc(&[])).json(b"{\"a\":\"\xff\"}".to_vec()),
        put("state PUT of a lone surrogate escape as JSON", state_doc(&[])).json(br#"{"a":"\ud800"}"#.to_vec()),
        // serde_json stops at 128 levels: declared JSON this deep is refused.
        put("state PUT of arrays nested 100,000 deep as JSON", state_doc(&[])).json(deep_arrays(DEEP)),
        put("activity profile PUT of objects nested 100,000 deep as JSON", activity_profile_doc(&[]))
            .json(deep_objects(DEEP)),
        // POST merges JSON objects: anything else is refused.
        post("state POST of arrays nested 100,000 deep", state_doc(&[]), &deep_arrays(DEEP)),
        post("state POST of objects nested 100,000 deep", state_doc(&[]), &deep_objects(DEEP)),
        post("agent profile POST of objects nested 100,000 deep", agent_profile_doc(&[]), &deep_objects(DEEP)),
        post("state POST of a JSON array", state_doc(&[]), b"[1, 2]"),
        post("state POST of JSON null", state_doc(&[]), b"null"),
        post("activity profile POST of a JSON string", activity_profile_doc(&[]), br#""text""#),
        post("agent profile POST of a JSON number", agent_profile_doc(&[]), b"42"),
        post("state POST with registration of JSON true", state_doc(&[("registration", REGISTRATION)]), b"true"),
        post("state POST of malformed JSON", state_doc(&[]), b"{not json"),
        post("state POST of an empty body as JSON", state_doc(&[]), b""),
    ];
    for (base, id_param) in [(STATE, "stateId"), (AGENT_PROFILE, "profileId")] {
        for (what, agent) in [
            ("[]", "[]".to_owned()),
            ("{}", "{}".to_owned()),
            ("null", "null".to_owned()),
            ("not JSON", "not-json".to_owned()),
            ("a string", r#""mailto:hostile@example.com""#.to_owned()),
            ("mbox without mailto:", r#"{"mbox":"hostile@example.com"}"#.to_owned()),
            ("objectType Activity", r#"{"objectType":"Activity","mbox":"mailto:hostile@example.com"}"#.to_owned()),
            ("two identifiers", r#"{"mbox":"mailto:hostile@example.com","openid":"http://a.example.com/"}"#.to_owned()),
            ("account without homePage", r#"{"account":{"name":"x"}}"#.to_owned()),
            ("nested 10,000 deep", "[".repeat(10_000)),
        ] {
            cases.push(put(&format!("{base} PUT with agent {what}"), with_agent(base, &agent, id_param)));
        }
        cases.push(put(
            &format!("{base} PUT with agent=%ZZ"),
            format!(
                "{base}?agent=%ZZ&{id_param}={DOC}{}",
                if base == STATE { format!("&{}", query(&[("activityId", ACTIVITY)])) } else { String::new() }
            ),
        ));
    }
    cases
}

// ---------------------------------------------------------------- headers and routes

fn header_cases(v: &'static str) -> Vec<Case> {
    let valid_text = bytes_of(&valid());
    let post = |name: &str| post_json(name, v, valid_text.clone());
    let query = |name: &str| get(name, v, STATEMENTS);
    vec![
        post("POST without X-Experience-API-Version").version(None),
        query("GET without X-Experience-API-Version").version(None),
        post("X-Experience-API-Version 3.0.0").version(Some("3.0.0")),
        post("X-Experience-API-Version garbage").version(Some("garbage")),
        post("X-Experience-API-Version empty").version(Some("")),
        post("X-Experience-API-Version 2.0.0.0").version(Some("2.0.0.0")),
        post("X-Experience-API-Version 0.95").version(Some("0.95")),
        post("X-Experience-API-Version 1.0.3, 2.0.0").version(Some("1.0.3, 2.0.0")),
        post("X-Experience-API-Version not UTF-8")
            .version(None)
            .header("X-Experience-API-Version", b"2.0.\xff".to_vec()),
        query("GET with X-Experience-API-Version 3.0.0").version(Some("3.0.0")),
        Case::new("state PUT without X-Experience-API-Version", Method::PUT, state_doc(&[]), v)
            .version(None)
            .header("If-None-Match", "*")
            .json("{}"),
        // Unknown versions are refused before authentication.
        post("bad version and no credentials").version(Some("3.0.0")).auth(Auth::Missing),
        // Authentication: 401 with a JSON error whatever is wrong with it.
        post("POST without Authorization").auth(Auth::Missing).expect(401),
        query("GET without Authorization").auth(Auth::Missing).expect(401),
        Case::new("state PUT without Authorization", Method::PUT, state_doc(&[]), v)
            .auth(Auth::Missing)
            .header("If-None-Match", "*")
            .json("{}")
            .expect(401),
        post("Authorization: garbage").auth(Auth::Raw(b"garbage".to_vec())).expect(401),
        post("Authorization: empty").auth(Auth::Raw(Vec::new())).expect(401),
        post("Authorization: Basic with invalid base64")
            .auth(Auth::Raw(b"Basic !!!not base64!!!".to_vec()))
            .expect(401),
        post("Authorization: Basic alone").auth(Auth::Raw(b"Basic".to_vec())).expect(401),
        post("Authorization: Basic without a colon").auth(Auth::Raw(basic(b"no-colon-here"))).expect(401),
        post("Authorization: Basic of invalid UTF-8").auth(Auth::Raw(basic(b"key\xff:secret\xfe"))).expect(401),
        post("Authorization: Basic of an unknown key").auth(Auth::Raw(basic(b"unknown:secret"))).expect(401),
        post("Authorization: Basic with an empty key and secret").auth(Auth::Raw(basic(b":"))).expect(401),
        post("Authorization: Bearer garbage").auth(Auth::Raw(b"Bearer garbage".to_vec())).expect(401),
        post("Authorization: Bearer alone").auth(Auth::Raw(b"Bearer".to_vec())).expect(401),
        post("Authorization: Bearer of a JWT-shaped token")
            .auth(Auth::Raw(b"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_vec()))
            .expect(401),
        post("Authorization: Digest").auth(Auth::Raw(b"Digest username=\"x\"".to_vec())).expect(401),
        // A header value that is not text cannot be an Authorization at all;
        // the server answers 400 (a malformed request) rather than 401.
        post("Authorization not UTF-8").auth(Auth::Raw(b"Basic \xff\xfe".to_vec())),
    ]
}

fn route_cases(v: &'static str) -> Vec<Case> {
    let valid_text = bytes_of(&valid());
    vec![
        Case::new("PATCH /xapi/statements", Method::PATCH, STATEMENTS, v).json(valid_text.clone()).expect(405),
        Case::new("DELETE /xapi/statements", Method::DELETE, STATEMENTS, v).expect(405),
        Case::new("PUT /xapi/about", Method::PUT, "/xapi/about", v).json("{}").expect(405),
        Case::new("POST /xapi/activities", Method::POST, "/xapi/activities", v).json("{}").expect(405),
        Case::new("PATCH /xapi/activities/state", Method::PATCH, state_doc(&[]), v).json("{}").expect(405),
        Case::new("POST to an unknown resource", Method::POST, "/xapi/nothing-here", v)
            .json(valid_text.clone())
            .expect(404),
        Case::new("GET of a percent-encoded resource name", Method::GET, "/xapi/%73tatements", v).expect(404),
        Case::new("GET of a resource name with %00", Method::GET, "/xapi/statements%00", v).expect(404),
        Case::new("GET of a resource name with %ff", Method::GET, "/xapi/statements%ff", v).expect(404),
        Case::new("POST /xapi/statements/ (trailing slash)", Method::POST, "/xapi/statements/", v)
            .json(valid_text)
            .expect(404),
    ]
}

// ---------------------------------------------------------------- version-specific

/// Refused by 1.0.3 only.
fn v1_only_cases() -> Vec<Case> {
    let v = V1;
    let valid_text = bytes_of(&valid());
    let form = "application/x-www-form-urlencoded";
    let content = query(&[("content", String::from_utf8(valid_text.clone()).expect("utf-8").as_str())]);
    let mut cases = Vec::new();
    // 2.0 statements: contextAgents, contextGroups and version 2.0.0 are
    // unknown to 1.0.3 (its Context has no such properties).
    for (file, bytes) in fixtures("valid-2.0") {
        cases.push(post_json(format!("2.0-only statement {file}"), v, bytes));
    }
    cases.extend([
        post_json("version 2.0.0 in a 1.0.3 statement", v, bytes_of(&valid_with("/version", json!("2.0.0")))),
        // 1.0.3 profiles: a PUT must carry If-Match or If-None-Match.
        Case::new("activity profile PUT without a precondition", Method::PUT, activity_profile_doc(&[]), v).json("{}"),
        Case::new("agent profile PUT without a precondition", Method::PUT, agent_profile_doc(&[]), v).json("{}"),
        // The alternate request syntax, broken in each way.
        Case::new("alternate syntax with method=PATCH", Method::POST, format!("{STATEMENTS}?method=PATCH"), v)
            .body(Some(form), content.clone()),
        Case::new("alternate syntax with method empty", Method::POST, format!("{STATEMENTS}?method="), v)
            .body(Some(form), content.clone()),
        Case::new("alternate syntax sent with GET", Method::GET, format!("{STATEMENTS}?method=GET"), v),
        Case::new(
            "alternate syntax with another query parameter",
            Method::POST,
            format!("{STATEMENTS}?method=POST&limit=1"),
            v,
        )
        .body(Some(form), content.clone()),
        Case::new("alternate syntax as application/json", Method::POST, format!("{STATEMENTS}?method=POST"), v)
            .json(valid_text.clone()),
        Case::new("alternate syntax with malformed JSON content", Method::POST, format!("{STATEMENTS}?method=POST"), v)
            .body(Some(form), query(&[("content", "{\"actor\":")])),
        Case::new("alternate syntax with content 100,000 deep", Method::POST, format!("{STATEMENTS}?method=POST"), v)
            .body(Some(form), query(&[("content", "[".repeat(DEEP).as_str())])),
        Case::new("alternate syntax naming version 2.0.0", Method::POST, format!("{STATEMENTS}?method=POST"), v)
            .body(Some(form), format!("X-Experience-API-Version=2.0.0&{content}")),
        Case::new(
            "alternate syntax with Content-Type text/plain",
            Method::POST,
            format!("{STATEMENTS}?method=POST"),
            v,
        )
        .body(Some(form), format!("Content-Type=text%2Fplain&{content}")),
        Case::new(
            "alternate syntax with a header field holding a newline",
            Method::POST,
            format!("{STATEMENTS}?method=POST"),
            v,
        )
        .body(Some(form), format!("If-Match=a%0Ab&{content}")),
        Case::new("alternate syntax with Authorization garbage", Method::POST, format!("{STATEMENTS}?method=POST"), v)
            .auth(Auth::Missing)
            .body(Some(form), format!("Authorization=garbage&{content}"))
            .expect(401),
        Case::new("alternate syntax PUT without statementId", Method::POST, format!("{STATEMENTS}?method=PUT"), v)
            .body(Some(form), content.clone()),
        Case::new(
            "alternate syntax with invalid percent-encoding",
            Method::POST,
            format!("{STATEMENTS}?method=POST"),
            v,
        )
        .body(Some(form), "content=%ZZ%e9"),
    ]);
    cases
}

/// Refused by 2.0.0 only.
fn v2_only_cases() -> Vec<Case> {
    let v = V2;
    let valid_text = bytes_of(&valid());
    let form = "application/x-www-form-urlencoded";
    let content = query(&[("content", String::from_utf8(valid_text).expect("utf-8").as_str())]);
    let mut cases = Vec::new();
    // Time stamps 1.0.3 reads leniently and 2.0 requires in RFC 3339.
    for (file, bytes) in fixtures("invalid-2.0") {
        cases.push(post_json(format!("1.0.3-only statement {file}"), v, bytes));
    }
    cases.extend([
        get("since without a time zone", v, at(STATEMENTS, &[("since", "2024-01-01T00:00:00")])),
        get("until with a +0530 offset", v, at(STATEMENTS, &[("until", "2024-01-01T00:00:00+0530")])),
        // The alternate request syntax is not part of 2.0, even well formed.
        Case::new("alternate request syntax", Method::POST, format!("{STATEMENTS}?method=POST"), v)
            .body(Some(form), content.clone()),
        Case::new("alternate request syntax PUT to a state document", Method::POST, format!("{STATE}?method=PUT"), v)
            .body(
                Some(form),
                format!("{}&content=%7B%7D", query(&[("activityId", ACTIVITY), ("agent", AGENT), ("stateId", DOC)])),
            ),
    ]);
    cases
}

// ---------------------------------------------------------------- the groups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_by_the_1_0_3_endpoint() {
    let app = spawn_app().await;
    let mut cases = Vec::new();
    cases.extend(body_cases(V1));
    cases.extend(content_cases(V1));
    cases.extend(content_type_cases(V1));
    cases.extend(query_cases(V1));
    cases.extend(document_cases(V1));
    cases.extend(header_cases(V1));
    cases.extend(route_cases(V1));
    cases.extend(v1_only_cases());
    let count = cases.len();
    let mut failures = run(&app, "1.0.3", cases).await;
    failures.extend(no_documents(&app, V1).await);
    assert_no_failures(&failures, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_by_the_2_0_endpoint() {
    let app = spawn_app().await;
    let mut cases = Vec::new();
    cases.extend(body_cases(V2));
    cases.extend(content_cases(V2));
    cases.extend(content_type_cases(V2));
    cases.extend(query_cases(V2));
    cases.extend(document_cases(V2));
    cases.extend(header_cases(V2));
    cases.extend(route_cases(V2));
    cases.extend(v2_only_cases());
    let count = cases.len();
    let mut failures = run(&app, "2.0.0", cases).await;
    failures.extend(no_documents(&app, V2).await);
    assert_no_failures(&failures, count);
}

const SMALL_LIMIT: usize = 4096;
const TEN_MB: usize = 10 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_size_limit_are_refused_with_413() {
    let app = spawn_app_with(|o| o.server.max_body_bytes = SMALL_LIMIT).await;
    let mut cases = Vec::new();
    // The 10 MB cases need the server to let the client finish sending (or
    // to read and discard the rest of the body) before it closes: a server
    // that answers 413 and closes with most of the body unread makes the
    // kernel reset the connection, and the client sees a broken pipe
    // instead of the 413 (RFC 9112 section 9.6, "lingering close").
    for v in [V1, V2] {
        let just_over = padded_to(SMALL_LIMIT + 1);
        let huge = padded_to(TEN_MB);
        let mut multipart_over = valid_multipart();
        let first = json_part(&bytes_of(&with_attachment(ATTACHMENT)));
        // Pad the JSON part with whitespace so the body is one byte over.
        let padding = SMALL_LIMIT + 1 - multipart_over.len();
        multipart_over = splice(&multipart_over, "\r\n--", &[&vec![b' '; padding][..], b"\r\n--"].concat());
        assert_eq!(multipart_over.len(), SMALL_LIMIT + 1);
        assert!(multipart_over.starts_with(&first[..first.len() - 2]));
        let octets = |size: usize| vec![0xA5_u8; size];
        let pad_json = |size: usize| {
            let mut body = br#"{"a":1}"#.to_vec();
            body.resize(size, b' ');
            body
        };
        cases.extend([
            post_json("statement POST of limit + 1 bytes", v, just_over.clone()).expect(413),
            post_json("statement POST of 10 MB", v, huge.clone()).expect(413),
            post_json("statement POST of 10 MB of garbage", v, vec![b'x'; TEN_MB]).expect(413),
            post_raw("statement POST of limit + 1 bytes as text/plain", v, Some("text/plain"), just_over.clone())
                .expect(413),
            Case::new(
                "statement PUT of limit + 1 bytes",
                Method::PUT,
                at(STATEMENTS, &[("statementId", REGISTRATION)]),
                v,
            )
            .json(just_over.clone())
            .expect(413),
            Case::new("statement PUT of 10 MB", Method::PUT, at(STATEMENTS, &[("statementId", REGISTRATION)]), v)
                .json(huge.clone())
                .expect(413),
            post_raw("multipart statement POST of limit + 1 bytes", v, Some(&multipart_type()), multipart_over)
                .expect(413),
            Case::new("state PUT of limit + 1 octets", Method::PUT, state_doc(&[]), v)
                .header("If-None-Match", "*")
                .body(Some("application/octet-stream"), octets(SMALL_LIMIT + 1))
                .expect(413),
            Case::new("state PUT of 10 MB of octets", Method::PUT, state_doc(&[]), v)
                .header("If-None-Match", "*")
                .body(Some("application/octet-stream"), octets(TEN_MB))
                .expect(413),
            Case::new("state POST of limit + 1 bytes of JSON", Method::POST, state_doc(&[]), v)
                .json(pad_json(SMALL_LIMIT + 1))
                .expect(413),
            Case::new("activity profile PUT of 10 MB of JSON", Method::PUT, activity_profile_doc(&[]), v)
                .header("If-None-Match", "*")
                .json(pad_json(TEN_MB))
                .expect(413),
            Case::new("agent profile POST of 10 MB of JSON", Method::POST, agent_profile_doc(&[]), v)
                .json(pad_json(TEN_MB))
                .expect(413),
        ]);
    }
    // The 1.0.3 alternate syntax reads its form body under the same limit.
    let content = query(&[("content", String::from_utf8(padded_to(SMALL_LIMIT)).expect("utf-8").as_str())]);
    cases.push(
        Case::new("alternate syntax form over the limit", Method::POST, format!("{STATEMENTS}?method=POST"), V1)
            .body(Some("application/x-www-form-urlencoded"), content)
            .expect(413),
    );
    let count = cases.len();
    let mut failures = run(&app, "413", cases).await;
    failures.extend(no_documents(&app, V2).await);
    assert_no_failures(&failures, count);

    // Control: the same statement at exactly the limit is accepted, so the
    // 413s above were about size alone.
    let response = app
        .post(STATEMENTS, V2)
        .header("Content-Type", "application/json")
        .body(padded_to(SMALL_LIMIT))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "a statement of exactly the limit: {}", response.text().await.expect("body"));
}

/// `count` copies of a small valid statement, each with its own id, with
/// `last` replacing the final one.
fn big_batch(count: usize, last: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 200);
    out.push(b'[');
    for index in 0..count - 1 {
        let s = json!({
            "id": format!("00000000-0000-4000-8000-{index:012}"),
            "actor": {"mbox": "mailto:batch@example.com"},
            "verb": {"id": COMPLETED},
            "object": {"id": "http://example.com/activities/batch"}
        });
        out.extend_from_slice(&bytes_of(&s));
        out.push(b',');
    }
    out.extend_from_slice(&bytes_of(last));
    out.push(b']');
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_batches_are_refused_whole() {
    let app = spawn_app().await;
    let count = 100_000;
    let bad_verb = json!({
        "actor": {"mbox": "mailto:batch@example.com"},
        "verb": {"id": "not an IRI"},
        "object": {"id": "http://example.com/activities/batch"}
    });
    let repeated_id = json!({
        "id": "00000000-0000-4000-8000-000000000000",
        "actor": {"mbox": "mailto:batch@example.com"},
        "verb": {"id": COMPLETED},
        "object": {"id": "http://example.com/activities/batch"}
    });
    let zeros = {
        let mut body = "0,".repeat(1_000_000).into_bytes();
        body.pop();
        [b"[".as_slice(), &body, b"]"].concat()
    };
    let empties = {
        let mut body = "{},".repeat(1_000_000).into_bytes();
        body.pop();
        [b"[".as_slice(), &body, b"]"].concat()
    };
    // One 100,000-statement batch per version (each takes seconds to
    // validate in a debug build).
    let mut cases = vec![
        post_json("100,000 statements, the last with a verb that is not an IRI", V1, big_batch(count, &bad_verb))
            .error_path(format!("/{}/verb/id", count - 1)),
        post_json("100,000 statements, the last repeating the first one's id", V2, big_batch(count, &repeated_id))
            .error_path(format!("/{}/id", count - 1)),
    ];
    let many_digits = with_number_literal("/result/score/raw", &"9".repeat(1_000_000));
    let many_keys = {
        let keys: Vec<String> = (0..500_000).map(|i| format!("\"k{i}\":0")).collect();
        format!("{{{}}}", keys.join(",")).into_bytes()
    };
    for v in [V1, V2] {
        cases.push(post_json("score.raw with 1,000,000 digits", v, many_digits.clone()));
        cases.push(post_json("an object with 500,000 unknown properties", v, many_keys.clone()));
        cases.push(post_json("1,000,000 zeros", v, zeros.clone()).error_path("/0"));
        cases.push(post_json("1,000,000 empty objects", v, empties.clone()));
    }
    let count = cases.len();
    let failures = run(&app, "huge", cases).await;
    assert_no_failures(&failures, count);
}

// ---------------------------------------------------------------- controls

/// The requests the corpus breaks are accepted when intact: the valid
/// statement, the multipart request and the document addresses. Without
/// this, a case could pass for a reason other than its defect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_the_corpus_breaks_are_accepted_when_intact() {
    let app = spawn_app().await;
    for v in [V1, V2] {
        let response = app.post(STATEMENTS, v).json(&valid()).send().await.expect("send");
        assert_eq!(response.status(), 200, "{v} valid statement: {}", response.text().await.expect("body"));

        let response = app
            .post(STATEMENTS, v)
            .header("Content-Type", multipart_type())
            .body(valid_multipart())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{v} valid multipart: {}", response.text().await.expect("body"));

        let batch = big_batch(
            3,
            &json!({"actor": {"mbox": "mailto:batch@example.com"}, "verb": {"id": COMPLETED}, "object": {"id": ACTIVITY}}),
        );
        let response =
            app.post(STATEMENTS, v).header("Content-Type", "application/json").body(batch).send().await.expect("send");
        assert_eq!(response.status(), 200, "{v} small batch: {}", response.text().await.expect("body"));

        for path in [
            state_doc(&[]),
            state_doc(&[("registration", REGISTRATION)]),
            activity_profile_doc(&[]),
            agent_profile_doc(&[]),
        ] {
            let path = path.replace(DOC, &format!("control-{v}"));
            let response = app
                .put(&path, v)
                .header("If-None-Match", "*")
                .header("Content-Type", "application/json")
                .body(r#"{"a":1}"#)
                .send()
                .await
                .expect("send");
            assert_eq!(response.status(), 204, "{v} PUT {path}: {}", response.text().await.expect("body"));
        }
    }
    // The 1.0.3 alternate syntax, well formed.
    let content = query(&[("content", String::from_utf8(bytes_of(&valid())).expect("utf-8").as_str())]);
    let response = app
        .post(&format!("{STATEMENTS}?method=POST"), V1)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(content)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200, "alternate syntax: {}", response.text().await.expect("body"));
}

// ---------------------------------------------------------------- valid but absurd

/// Durations the ISO 8601 pattern accepts but no activity lasts: stored
/// like any statement, and the projections must keep working. The Learning
/// Hub transcript adds a learner's durations up per activity: the sum must
/// not overflow (a panic there stops the Hub projector for everyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_but_valid_durations_are_stored_and_do_not_break_the_projections() {
    let app = spawn_app().await;
    let (key, secret) = app.add_credential("analytics-everything", &[Scope::AllRead]);
    credentials::grant_organisations(app.data_dir.path(), &key, vec!["*".to_owned()]).expect("grant organisations");
    let hub_learner = |name: &str| json!({"objectType": "Agent", "account": {"homePage": "https://learninghub.nhs.uk", "name": name}});
    let transcript = |name: &str| {
        app.client
            .get(app.url(&format!("/analytics/learners/{name}/transcript")))
            .basic_auth(&key, Some(&secret))
            .header("X-Experience-API-Version", V2)
    };
    // "P1e3D" is not ISO 8601: refused. The others are, however absurd.
    let response =
        app.post(STATEMENTS, V2).json(&valid_with("/result/duration", json!("P1e3D"))).send().await.expect("send");
    expect_error(response, 400).await;
    let mut ids = Vec::new();
    for duration in ["P99999999999999999999Y", "PT99999999999999999999H", "P0.000000000000000000001D"] {
        let mut s = valid_with("/result/duration", json!(duration));
        s["actor"] = hub_learner("hostile-duration");
        ids.extend(app.post_statements(V2, &s).await);
    }
    // A later statement by another learner.
    let mut later = valid();
    later["actor"] = hub_learner("hostile-after");
    ids.extend(app.post_statements(V2, &later).await);
    for id in &ids {
        let response = app.get(&format!("{STATEMENTS}?statementId={id}"), V2).send().await.expect("send");
        assert_eq!(response.status(), 200, "statement {id} is not readable");
    }
    // Both transcripts catch up (bounded wait: the Hub views are projected
    // after the statement views).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for (name, statements) in [("hostile-duration", 3), ("hostile-after", 1)] {
        loop {
            let response = transcript(name).send().await.expect("send");
            let status = response.status();
            let text = response.text().await.expect("body");
            assert_eq!(status, 200, "transcript of {name}: {text}");
            let value: Value = serde_json::from_str(&text).expect("transcript json");
            if value["activities"][0]["statements"] == json!(statements) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the transcript of {name} never counted {statements} statement(s) (the Hub projector stopped?): {text}"
            );
            tokio::task::yield_now().await;
        }
    }
    assert!(healthy(&app).await.is_ok());
}
