//! The Learning Hub analytics API (`/analytics/…`), the directory imports
//! (`/admin/organisations`, `/admin/learners`), learner bearer tokens and
//! what a learner may read from `/xapi/statements`.
//!
//! The Learning Hub projection runs after a POST returns, so every test that
//! reads it polls the API until the expected answer appears (10 s deadline).
//! The projection applies the log in order: once something written later is
//! visible, everything written before it is too ([`settle`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use lrs_server::credentials::{self, Scope};

use crate::support::{COMPLETED, PASSED, TestApp, V1, V2, VOIDED, expect_error, spawn_app, spawn_app_with};

// ----- constants -----

const HOME_PAGE: &str = "https://learninghub.nhs.uk";
const ORGANISATION_EXT: &str = "https://learninghub.nhs.uk/xapi/ext/organisation";
const STAFF_GROUP_EXT: &str = "https://learninghub.nhs.uk/xapi/ext/staff-group";
const ISSUER: &str = "https://auth.learninghub.nhs.uk";
const AUDIENCE: &str = "lrs";

const ATTEMPTED: &str = "http://adlnet.gov/expapi/verbs/attempted";
const FAILED: &str = "http://adlnet.gov/expapi/verbs/failed";
const EXPERIENCED: &str = "http://adlnet.gov/expapi/verbs/experienced";

const RSA_PRIVATE: &str = "test-only-jwt-rsa-private.pem";
const RSA_PUBLIC: &str = "test-only-jwt-rsa-public.pem";
const EC_PRIVATE: &str = "test-only-jwt-ec-p256-private.pem";
const EC_PUBLIC: &str = "test-only-jwt-ec-p256-public.pem";
const UNTRUSTED_RSA_PRIVATE: &str = "test-only-jwt-untrusted-rsa-private.pem";
const FRAMEWORKS: &str = "test-competency-frameworks.json";
const ORGANISATIONS_CSV: &str = "test-organisations.csv";
const LEARNERS_CSV: &str = "test-learners.csv";

// Activities.
const SAFEGUARDING_ADULTS: &str = "https://example.nhs.uk/courses/safeguarding-adults";
const SAFEGUARDING_CHILDREN_L2: &str = "https://example.nhs.uk/courses/safeguarding-children/level-2";
const FIRE_SAFETY: &str = "https://example.nhs.uk/courses/fire-safety";
const MANUAL_HANDLING: &str = "https://example.nhs.uk/courses/manual-handling";
const HAND_HYGIENE: &str = "https://example.nhs.uk/courses/hand-hygiene";
const REFLECTION_VIDEO: &str = "https://example.nhs.uk/videos/reflection";
const VIDEO_TYPE: &str = "https://w3id.org/xapi/video/activity-type/video";
const COURSE_A: &str = "https://example.nhs.uk/courses/information-governance";
const COURSE_B: &str = "https://example.nhs.uk/courses/conflict-resolution";

// Competencies (tests/data/test-competency-frameworks.json).
const CORE_FRAMEWORK: &str = "https://example.nhs.uk/frameworks/test-core-skills";
const DIGITAL_FRAMEWORK: &str = "https://example.nhs.uk/frameworks/test-digital";
const C_ADULTS: &str = "https://example.nhs.uk/frameworks/test-core-skills/safeguarding-adults";
const C_CHILDREN: &str = "https://example.nhs.uk/frameworks/test-core-skills/safeguarding-children";
const C_INFECTION: &str = "https://example.nhs.uk/frameworks/test-core-skills/infection-control";
const C_REFLECTIVE: &str = "https://example.nhs.uk/frameworks/test-digital/reflective-practice";
const C_GENOMICS: &str = "https://example.nhs.uk/frameworks/test-digital/genomics-foundations";

// The directory (tests/data/test-organisations.csv and test-learners.csv):
// QKK (ICB) ← RJ1 (trust) ← RJ122 (site) ← RJ122W (ward); QKK ← RJZ (trust).
// 100001 in RJ1, 100002 in RJZ, 100003 in RJ122W; 100004 is not in it.
// The agency nurse (an mbox agent) is added to RJ1 by a JSON import.
const AGENCY_NURSE: &str = "mailto:agency.nurse@example.nhs.uk";

// ----- files, app, callers -----

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

fn read_data(name: &str) -> String {
    std::fs::read_to_string(data_file(name)).unwrap_or_else(|e| panic!("cannot read test data {name}: {e}"))
}

fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// An app with the test frameworks and learner sign-in by the test keys.
async fn spawn_hub_app() -> TestApp {
    let frameworks = lrs_hub::frameworks::Frameworks::parse(&read_data(FRAMEWORKS)).expect("test frameworks parse");
    let jwt =
        lrs_server::jwt::JwtVerifier::from_pem_files(&[data_file(RSA_PUBLIC), data_file(EC_PUBLIC)], ISSUER, AUDIENCE)
            .expect("test JWT keys load");
    spawn_app_with(move |o| {
        o.frameworks = frameworks;
        o.jwt = Some(jwt);
    })
    .await
}

/// Who makes a request.
#[derive(Debug, Clone)]
enum Caller {
    Anonymous,
    Basic(String, String),
    Bearer(String),
}

impl Caller {
    fn authorise(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Caller::Anonymous => request,
            Caller::Basic(key, secret) => request.basic_auth(key, Some(secret)),
            Caller::Bearer(token) => request.bearer_auth(token),
        }
    }
}

/// A credential (scope `all/read`) granted analytics access to `organisations`.
fn analyst(app: &TestApp, name: &str, organisations: &[&str]) -> Caller {
    let (key, secret) = app.add_credential(name, &[Scope::AllRead]);
    credentials::grant_organisations(
        app.data_dir.path(),
        &key,
        organisations.iter().map(|o| (*o).to_owned()).collect(),
    )
    .expect("grant organisations");
    Caller::Basic(key, secret)
}

/// A test app plus the usual callers.
struct Hub {
    app: TestApp,
    /// Granted `*`: sees every organisation and learner.
    star: Caller,
    /// The app's own credential: scope `all`, no organisations.
    platform: Caller,
}

async fn hub() -> Hub {
    let app = spawn_hub_app().await;
    let star = analyst(&app, "analytics-everything", &["*"]);
    let platform = Caller::Basic(app.key.clone(), app.secret.clone());
    Hub { app, star, platform }
}

async fn send(app: &TestApp, caller: &Caller, method: Method, path: &str) -> (StatusCode, String) {
    let request = caller.authorise(app.client.request(method, app.url(path)).header("X-Experience-API-Version", V2));
    let response = request.send().await.expect("send");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn get(app: &TestApp, caller: &Caller, path: &str) -> (StatusCode, String) {
    send(app, caller, Method::GET, path).await
}

/// GETs and asserts 200 with a JSON body.
async fn get_json(app: &TestApp, caller: &Caller, path: &str) -> Value {
    let (status, body) = get(app, caller, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("GET {path} is not JSON: {body}"))
}

/// GETs and asserts a JSON error with `status`.
async fn get_error(app: &TestApp, caller: &Caller, path: &str, status: u16) -> Value {
    let response = caller
        .authorise(app.client.get(app.url(path)).header("X-Experience-API-Version", V2))
        .send()
        .await
        .expect("send");
    expect_error(response, status).await
}

/// Polls a GET until it answers 200 with a body `done` accepts (10 s).
async fn poll(app: &TestApp, caller: &Caller, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(app, caller, path).await;
        if status == 200
            && let Ok(value) = serde_json::from_str::<Value>(&body)
            && done(&value)
        {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last answer to GET {path}: {status} {body}");
        tokio::task::yield_now().await;
    }
}

fn transcript_path(account: &str) -> String {
    format!("/analytics/learners/{account}/transcript")
}

fn competencies_path(account: &str) -> String {
    format!("/analytics/learners/{account}/competencies")
}

fn agent_path(endpoint: &str, agent: &Value) -> String {
    format!("/analytics/learners/agent/{endpoint}?agent={}", url_encode(&agent.to_string()))
}

fn activity_count(transcript: &Value) -> usize {
    transcript["activities"].as_array().map_or(0, Vec::len)
}

/// Waits until the projection has applied everything written so far: writes
/// a statement by a fresh learner and waits for their transcript.
async fn settle(hub: &Hub) {
    let name = format!("barrier-{}", Uuid::new_v4());
    let barrier = statement(&account(&name), ATTEMPTED, "https://example.nhs.uk/barrier", "2026-01-01T00:00:00Z");
    hub.app.post_statements(V2, &json!([barrier])).await;
    poll(&hub.app, &hub.star, &transcript_path(&name), "the projection to catch up", |t| activity_count(t) == 1).await;
}

// ----- tokens -----

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(subject: &str) -> Value {
    json!({ "sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 600 })
}

fn sign(key_file: &str, algorithm: Algorithm, claims: &Value) -> String {
    let pem = std::fs::read(data_file(key_file)).expect("key file");
    let key = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("signing key");
    encode(&Header::new(algorithm), claims, &key).expect("sign token")
}

/// A valid token for a Learning Hub account, signed with the RSA test key.
fn learner(account: &str) -> Caller {
    Caller::Bearer(sign(RSA_PRIVATE, Algorithm::RS256, &claims(account)))
}

/// A valid token for a Learning Hub account, signed with the EC test key.
fn learner_ec(account: &str) -> Caller {
    Caller::Bearer(sign(EC_PRIVATE, Algorithm::ES256, &claims(account)))
}

/// An unsigned token (`alg: none`).
fn unsigned_token(claims: &Value) -> String {
    let b64 = |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(claims))
}

/// Tokens for `account` that must all be refused, with what is wrong.
fn bad_tokens(account: &str) -> Vec<(&'static str, Caller)> {
    let mut expired = claims(account);
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let mut wrong_issuer = claims(account);
    wrong_issuer["iss"] = json!("https://auth.example.com");
    let mut wrong_audience = claims(account);
    wrong_audience["aud"] = json!("another-service");
    let mut no_expiry = claims(account);
    no_expiry.as_object_mut().expect("claims").remove("exp");
    let mut blank_subject = claims(account);
    blank_subject["sub"] = json!("  ");
    let public_pem = std::fs::read(data_file(RSA_PUBLIC)).expect("public key");
    let hs256 = encode(&Header::new(Algorithm::HS256), &claims(account), &EncodingKey::from_secret(&public_pem))
        .expect("sign HS256");
    let valid = sign(RSA_PRIVATE, Algorithm::RS256, &claims(account));
    let (head, rest) = valid.split_once('.').expect("jwt");
    let (_, signature) = rest.split_once('.').expect("jwt");
    let mut elevated = claims(account);
    elevated["sub"] = json!("100002");
    let tampered =
        format!("{head}.{}.{signature}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(elevated.to_string()));
    vec![
        ("expired", Caller::Bearer(sign(RSA_PRIVATE, Algorithm::RS256, &expired))),
        ("wrong issuer", Caller::Bearer(sign(RSA_PRIVATE, Algorithm::RS256, &wrong_issuer))),
        ("wrong audience", Caller::Bearer(sign(EC_PRIVATE, Algorithm::ES256, &wrong_audience))),
        ("signed by an untrusted key", Caller::Bearer(sign(UNTRUSTED_RSA_PRIVATE, Algorithm::RS256, &claims(account)))),
        ("alg none", Caller::Bearer(unsigned_token(&claims(account)))),
        ("HS256 keyed with the RSA public key", Caller::Bearer(hs256)),
        ("payload changed after signing", Caller::Bearer(tampered)),
        ("no exp", Caller::Bearer(sign(RSA_PRIVATE, Algorithm::RS256, &no_expiry))),
        ("blank subject", Caller::Bearer(sign(RSA_PRIVATE, Algorithm::RS256, &blank_subject))),
        ("not a JWT", Caller::Bearer("not-a-token".to_owned())),
    ]
}

// ----- statements -----

fn account(name: &str) -> Value {
    json!({ "objectType": "Agent", "account": { "homePage": HOME_PAGE, "name": name } })
}

fn agency_nurse() -> Value {
    json!({ "objectType": "Agent", "mbox": AGENCY_NURSE })
}

fn learner_key(name: &str) -> String {
    format!("account:{HOME_PAGE}|{name}")
}

/// A statement with a fixed id, timestamp and platform `e-LfH`.
fn statement(actor: &Value, verb: &str, activity: &str, timestamp: &str) -> Value {
    let short = |iri: &str| iri.rsplit('/').next().unwrap_or(iri).to_owned();
    json!({
        "id": Uuid::new_v4().to_string(),
        "actor": actor,
        "verb": { "id": verb, "display": { "en-GB": short(verb) } },
        "object": { "objectType": "Activity", "id": activity, "definition": { "name": { "en-GB": short(activity) } } },
        "timestamp": timestamp,
        "context": { "platform": "e-LfH" }
    })
}

/// The statement with the organisation context extension.
fn at(mut statement: Value, organisation: &str) -> Value {
    statement["context"]["extensions"][ORGANISATION_EXT] = json!(organisation);
    statement
}

fn scored(mut statement: Value, scaled: f64) -> Value {
    statement["result"]["score"]["scaled"] = json!(scaled);
    statement
}

fn id(statement: &Value) -> String {
    statement["id"].as_str().expect("statement id").to_owned()
}

fn voiding(target: &str) -> Value {
    json!({
        "actor": { "objectType": "Agent", "mbox": "mailto:lrs-admin@example.nhs.uk" },
        "verb": { "id": VOIDED, "display": { "en-GB": "voided" } },
        "object": { "objectType": "StatementRef", "id": target }
    })
}

// ----- directories -----

async fn import(app: &TestApp, caller: &Caller, what: &str, content_type: &str, body: String) -> reqwest::Response {
    caller
        .authorise(app.client.post(app.url(&format!("/admin/{what}"))))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("send")
}

async fn expect_imported(response: reqwest::Response, count: u64) {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "import failed: {text}");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body, json!({ "imported": count }));
}

/// Loads the test organisation and learner directories (not yet projected).
async fn load_directories(hub: &Hub) {
    let app = &hub.app;
    expect_imported(import(app, &hub.platform, "organisations", "text/csv", read_data(ORGANISATIONS_CSV)).await, 5)
        .await;
    expect_imported(import(app, &hub.platform, "learners", "text/csv", read_data(LEARNERS_CSV)).await, 3).await;
    let agency = json!([{ "learner": agency_nurse(), "organisation": "RJ1", "staffGroup": "Nursing and Midwifery" }]);
    expect_imported(import(app, &hub.platform, "learners", "application/json", agency.to_string()).await, 1).await;
}

/// Statements the uptake tests count (see each test for the arithmetic):
///
/// | learner | org (how)        | verb      | activity | day        | platform | staff group |
/// |---------|------------------|-----------|----------|------------|----------|-------------|
/// | 100001  | RJ1 (directory)  | completed | A        | 2026-03-02 | e-LfH    | Nursing (dir) |
/// | 100001  | RJ1 (extension)  | attempted | B        | 2026-03-03 | Moodle   | Nursing (dir) |
/// | 100003  | RJ122W (ext)     | passed    | A        | 2026-03-04 | e-LfH    | AHP (dir)   |
/// | 100004  | RJ1 (ext)        | attempted | A        | 2026-03-02 | e-LfH    | Medical (ext) |
/// | 100002  | RJZ (ext)        | completed | A        | 2026-03-10 | e-LfH    | Medical (dir) |
/// | 100001  | RJ1 (ext)        | completed | B        | 2026-04-15 | e-LfH    | Nursing (dir) |
/// | agency  | RJ1 (directory)  | completed | A        | 2025-12-01 | e-LfH    | Nursing (dir) |
fn uptake_statements() -> Vec<Value> {
    let mut moodle = at(statement(&account("100001"), ATTEMPTED, COURSE_B, "2026-03-03T09:00:00Z"), "RJ1");
    moodle["context"]["platform"] = json!("Moodle");
    let mut outside = at(statement(&account("100004"), ATTEMPTED, COURSE_A, "2026-03-02T15:00:00Z"), "RJ1");
    outside["context"]["extensions"][STAFF_GROUP_EXT] = json!("Medical and Dental");
    vec![
        statement(&account("100001"), COMPLETED, COURSE_A, "2026-03-02T09:00:00Z"),
        moodle,
        scored(at(statement(&account("100003"), PASSED, COURSE_A, "2026-03-04T09:00:00Z"), "RJ122W"), 0.9),
        outside,
        at(statement(&account("100002"), COMPLETED, COURSE_A, "2026-03-10T09:00:00Z"), "RJZ"),
        at(statement(&account("100001"), COMPLETED, COURSE_B, "2026-04-15T09:00:00Z"), "RJ1"),
        statement(&agency_nurse(), COMPLETED, COURSE_A, "2025-12-01T09:00:00Z"),
    ]
}

/// A hub with the directories and [`uptake_statements`], fully projected.
async fn populated_hub() -> Hub {
    let hub = hub().await;
    load_directories(&hub).await;
    hub.app.post_statements(V2, &json!(uptake_statements())).await;
    poll(&hub.app, &hub.star, &transcript_path("100004"), "the uptake statements", |t| activity_count(t) == 1).await;
    hub
}

fn uptake_path(query: &str) -> String {
    format!("/analytics/uptake?{query}")
}

fn row(period: &str, active: u64, started: u64, completed: u64, passed: u64, statements: u64) -> Value {
    json!({
        "period": period,
        "active_learners": active,
        "started": started,
        "completed": completed,
        "passed": passed,
        "statements": statements,
    })
}

// ===== directory imports =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_imports_organisations_and_learners_from_csv_and_json() {
    let hub = hub().await;
    let app = &hub.app;
    expect_imported(
        import(app, &hub.platform, "organisations", "text/csv; charset=utf-8", read_data(ORGANISATIONS_CSV)).await,
        5,
    )
    .await;
    let birmingham = json!([
        { "code": "QHL", "name": "Birmingham and Solihull ICB" },
        { "code": "RRK", "name": "University Hospitals Birmingham NHS Foundation Trust", "parent": "QHL" }
    ]);
    expect_imported(import(app, &hub.platform, "organisations", "application/json", birmingham.to_string()).await, 2)
        .await;
    expect_imported(import(app, &hub.platform, "learners", "text/csv", read_data(LEARNERS_CSV)).await, 3).await;
    let learners = json!([
        { "learner": "200001", "organisation": "RRK", "staffGroup": "Nursing and Midwifery" },
        { "learner": agency_nurse(), "organisation": "RJ1" }
    ]);
    expect_imported(import(app, &hub.platform, "learners", "application/json", learners.to_string()).await, 2).await;

    // The imports take effect: analysts see the learners placed in their
    // organisations, through the organisation tree.
    let birmingham_analyst = analyst(app, "birmingham", &["QHL"]);
    let transcript =
        poll(app, &birmingham_analyst, &transcript_path("200001"), "the JSON learner import", |_| true).await;
    assert_eq!(transcript, json!({ "learner": learner_key("200001"), "activities": [] }));
    get_json(app, &birmingham_analyst, &uptake_path("org=RRK")).await;
    get_error(app, &birmingham_analyst, &uptake_path("org=RJ1"), 403).await;
    get_error(app, &birmingham_analyst, &transcript_path("100001"), 403).await;

    let london = analyst(app, "london", &["QKK"]);
    for account in ["100001", "100002", "100003"] {
        let body = get_json(app, &london, &transcript_path(account)).await;
        assert_eq!(body["learner"], json!(learner_key(account)));
    }
    let trust = analyst(app, "trust", &["RJ1"]);
    let body = get_json(app, &trust, &agent_path("transcript", &agency_nurse())).await;
    assert_eq!(body["learner"], json!(format!("mbox:{AGENCY_NURSE}")));
    get_json(app, &trust, &transcript_path("100003")).await; // RJ122W → RJ122 → RJ1
    get_error(app, &trust, &transcript_path("100002"), 403).await;
    get_error(app, &trust, &transcript_path("200001"), 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_imports_reject_bad_csv_headers_and_ods_codes_with_400() {
    let hub = hub().await;
    let app = &hub.app;
    let cases: &[(&str, &str, &str)] = &[
        ("organisations", "text/csv", "code,name\nRJ1,Guy's and St Thomas'\n"),
        ("organisations", "text/csv", "ods,name,parent\nRJ1,Guy's and St Thomas',QKK\n"),
        ("organisations", "text/csv", "code,name,parent\nRJ1-GSTT,Guy's and St Thomas',QKK\n"),
        ("organisations", "text/csv", "code,name,parent\nRJ1,Guy's and St Thomas',SOUTHEASTICB\n"),
        ("organisations", "text/csv", "code,name,parent\nRJ1,Guy's and St Thomas'\n"),
        ("organisations", "text/csv", ""),
        ("organisations", "application/json", r#"[{"code": "RJ1", "name": "Guy's", "parent": "QKK ICB"}]"#),
        ("organisations", "application/json", r#"[{"code": "", "name": "Nowhere"}]"#),
        ("organisations", "application/json", r#"{"code": "RJ1", "name": "Guy's"}"#),
        ("learners", "text/csv", "learner,org,staff_group\n100001,RJ1,Nursing\n"),
        ("learners", "text/csv", "learner,organisation\n100001,RJ1\n"),
        ("learners", "text/csv", "learner,organisation,staff_group\n100001,not-an-ods-code,Nursing\n"),
        ("learners", "text/csv", "learner,organisation,staff_group\n100001,RJ1\n"),
        ("learners", "text/csv", "learner,organisation,staff_group\n,RJ1,Nursing\n"),
        ("learners", "application/json", r#"[{"learner": "100001", "organisation": "R J 1"}]"#),
        ("learners", "application/json", r#"[{"learner": {"name": "No identifier"}, "organisation": "RJ1"}]"#),
        ("learners", "application/json", r#"[{"learner": 100001, "organisation": "RJ1"}]"#),
        ("learners", "application/json", "not json"),
    ];
    for (what, content_type, body) in cases {
        let response = import(app, &hub.platform, what, content_type, (*body).to_owned()).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 400, "POST /admin/{what} ({content_type}) {body:?} → {status} {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not a JSON error: {text}"));
        assert!(error["error"]["message"].is_string(), "{text}");
    }

    // A rejected import changes nothing, not even its valid rows.
    let csv = "learner,organisation,staff_group\n100001,RJ1,Nursing\n100002,RJ 1,Nursing\n";
    let response = import(app, &hub.platform, "learners", "text/csv", csv.to_owned()).await;
    expect_error(response, 400).await;
    expect_imported(import(app, &hub.platform, "organisations", "text/csv", read_data(ORGANISATIONS_CSV)).await, 5)
        .await;
    settle(&hub).await;
    let trust = analyst(app, "trust", &["RJ1"]);
    get_error(app, &trust, &transcript_path("100001"), 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_imports_need_the_all_scope() {
    let hub = hub().await;
    let app = &hub.app;
    let (key, secret) = app.add_credential("writer", &[Scope::StatementsWrite, Scope::StatementsRead, Scope::AllRead]);
    let writer = Caller::Basic(key, secret);
    let star_reader = hub.star.clone();
    let csv_learners = read_data(LEARNERS_CSV);
    let csv_organisations = read_data(ORGANISATIONS_CSV);
    for (caller, status) in [
        (&writer, 403),
        (&star_reader, 403),
        (&learner("100001"), 403),
        (&Caller::Anonymous, 401),
        (&Caller::Basic(app.key.clone(), "wrong-secret".to_owned()), 401),
    ] {
        expect_error(import(app, caller, "learners", "text/csv", csv_learners.clone()).await, status).await;
        expect_error(import(app, caller, "organisations", "text/csv", csv_organisations.clone()).await, status).await;
    }
    expect_imported(import(app, &hub.platform, "organisations", "text/csv", csv_organisations).await, 5).await;
}

// ===== transcripts =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_summarises_each_activity_from_the_learners_statements() {
    let hub = hub().await;
    let app = &hub.app;
    load_directories(&hub).await;
    let me = account("100001");
    // Safeguarding: attempted, then completed (no platform: the credential's name).
    let mut adults_completed = at(statement(&me, COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:30:00Z"), "RJ1");
    adults_completed["context"].as_object_mut().expect("context").remove("platform");
    adults_completed["result"]["duration"] = json!("PT20M");
    adults_completed["object"]["definition"]["name"] =
        json!({ "en-US": "Safeguarding Adults", "en-GB": "Safeguarding adults (level 1)" });
    let mut adults_attempted = at(statement(&me, ATTEMPTED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"), "RJ1");
    adults_attempted["result"]["duration"] = json!("PT10M");
    // Fire safety: failed, passed, failed again: passed wins, best score kept.
    let fire_failed = scored(at(statement(&me, FAILED, FIRE_SAFETY, "2026-03-03T10:00:00Z"), "RJ1"), 0.4);
    let mut fire_passed = scored(at(statement(&me, PASSED, FIRE_SAFETY, "2026-03-04T10:00:00Z"), "RJ1"), 0.9);
    fire_passed["result"]["duration"] = json!("PT1H");
    let mut fire_again = scored(at(statement(&me, FAILED, FIRE_SAFETY, "2026-03-05T10:00:00Z"), "RJ1"), 0.5);
    fire_again["context"]["platform"] = json!("Moodle");
    let manual = at(statement(&me, ATTEMPTED, MANUAL_HANDLING, "2026-03-01T08:00:00Z"), "RJ1");
    let hygiene = at(statement(&me, FAILED, HAND_HYGIENE, "2026-02-27T08:00:00Z"), "RJ1");
    // Someone else's statements are not in this transcript.
    let other = at(statement(&account("100002"), PASSED, SAFEGUARDING_ADULTS, "2026-03-06T08:00:00Z"), "RJZ");
    app.post_statements(V2, &json!([adults_attempted, fire_failed, fire_passed, fire_again, manual, hygiene, other]))
        .await;
    // A second batch, later in the log, with an earlier-timestamped statement.
    app.post_statements(V1, &json!([adults_completed])).await;

    let transcript = poll(app, &hub.star, &transcript_path("100001"), "the transcript", |t| {
        activity_count(t) == 4
            && t["activities"].as_array().expect("activities").iter().any(|a| a["status"] == "completed")
    })
    .await;
    assert_eq!(transcript["learner"], json!(learner_key("100001")));
    let activities = transcript["activities"].as_array().expect("activities");
    let order: Vec<&str> = activities.iter().map(|a| a["activity"].as_str().expect("activity")).collect();
    assert_eq!(order, [FIRE_SAFETY, SAFEGUARDING_ADULTS, MANUAL_HANDLING, HAND_HYGIENE], "most recent activity first");

    let time = |value: &Value| chrono::DateTime::parse_from_rfc3339(value.as_str().expect("time")).expect("RFC 3339");
    let expect_time =
        |value: &Value, text: &str| assert_eq!(time(value), chrono::DateTime::parse_from_rfc3339(text).expect("time"));

    let fire = &activities[0];
    assert_eq!(fire["status"], "passed");
    assert_eq!(fire["best_scaled"], json!(0.9));
    assert_eq!(fire["statements"], 3);
    assert_eq!(fire["total_duration_ms"], 3_600_000);
    assert_eq!(fire["platform"], "Moodle", "the platform of the latest statement");
    assert_eq!(fire["name"], "fire-safety");
    expect_time(&fire["first"], "2026-03-03T10:00:00Z");
    expect_time(&fire["last"], "2026-03-05T10:00:00Z");

    let adults = &activities[1];
    assert_eq!(adults["status"], "completed");
    assert_eq!(adults["statements"], 2);
    assert_eq!(adults["total_duration_ms"], 1_800_000);
    assert!(adults.get("best_scaled").is_none(), "no score, no best_scaled: {adults}");
    assert_eq!(adults["platform"], "test-client", "no context.platform: the name of the storing credential");
    assert_eq!(adults["name"], "Safeguarding adults (level 1)", "en-GB preferred");
    expect_time(&adults["first"], "2026-03-02T09:00:00Z");
    expect_time(&adults["last"], "2026-03-02T09:30:00Z");

    assert_eq!(activities[2]["status"], "in_progress");
    assert_eq!(activities[2]["statements"], 1);
    assert_eq!(activities[2]["total_duration_ms"], 0);
    assert_eq!(activities[3]["status"], "failed");

    // The same transcript for the trust's analyst and for the learner.
    let trust = analyst(app, "trust", &["RJ1"]);
    assert_eq!(get_json(app, &trust, &transcript_path("100001")).await, transcript);
    assert_eq!(get_json(app, &learner("100001"), &transcript_path("me")).await, transcript);
    assert_eq!(get_json(app, &learner("100001"), &transcript_path("100001")).await, transcript);

    // The other learner has only their own activity.
    let theirs = get_json(app, &hub.star, &transcript_path("100002")).await;
    assert_eq!(activity_count(&theirs), 1);
    assert_eq!(theirs["activities"][0]["status"], "passed");
    // A learner with no statements has an empty transcript.
    assert_eq!(
        get_json(app, &hub.star, &transcript_path("999999")).await,
        json!({ "learner": learner_key("999999"), "activities": [] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_and_competencies_of_a_non_learning_hub_agent_by_the_agent_parameter() {
    let hub = hub().await;
    let app = &hub.app;
    load_directories(&hub).await;
    let nurse = agency_nurse();
    app.post_statements(
        V2,
        &json!([
            statement(&nurse, COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"),
            // The same activity by a Learning Hub account named like the mbox.
            statement(&account(AGENCY_NURSE), ATTEMPTED, FIRE_SAFETY, "2026-03-02T09:00:00Z"),
        ]),
    )
    .await;
    let path = agent_path("transcript", &nurse);
    let transcript = poll(app, &hub.star, &path, "the agent's transcript", |t| activity_count(t) == 1).await;
    assert_eq!(transcript["learner"], json!(format!("mbox:{AGENCY_NURSE}")));
    assert_eq!(transcript["activities"][0]["activity"], SAFEGUARDING_ADULTS);
    assert_eq!(transcript["activities"][0]["status"], "completed");

    // Agent objects are matched by identifier: the name and objectType do not matter.
    let same = json!({ "name": "Agency Nurse", "mbox": AGENCY_NURSE });
    assert_eq!(get_json(app, &hub.star, &agent_path("transcript", &same)).await, transcript);
    // The agency nurse is in RJ1's directory.
    let trust = analyst(app, "trust", &["RJ1"]);
    assert_eq!(get_json(app, &trust, &path).await, transcript);
    let competencies = get_json(app, &trust, &agent_path("competencies", &nurse)).await;
    assert_eq!(competencies["learner"], json!(format!("mbox:{AGENCY_NURSE}")));
    let adults = competencies["competencies"]
        .as_array()
        .expect("competencies")
        .iter()
        .find(|c| c["competency"] == C_ADULTS)
        .expect("safeguarding adults");
    assert_eq!(adults["status"], "achieved");
    // Other trusts' analysts may not.
    let kings = analyst(app, "kings", &["RJZ"]);
    get_error(app, &kings, &path, 403).await;

    // Bad agent parameters.
    for agent in [
        "not json".to_owned(),
        json!({ "name": "No identifier" }).to_string(),
        json!({ "mbox": AGENCY_NURSE, "account": { "homePage": HOME_PAGE, "name": "1" } }).to_string(),
    ] {
        let path = format!("/analytics/learners/agent/transcript?agent={}", url_encode(&agent));
        let error = get_error(app, &hub.star, &path, 400).await;
        assert_eq!(error["error"]["path"], "?agent", "{error}");
    }
    let error = get_error(app, &hub.star, &format!("{path}&since=2026-01-01"), 400).await;
    assert_eq!(error["error"]["path"], "?since");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn me_is_the_signed_in_learner_for_either_key_type() {
    let hub = hub().await;
    let app = &hub.app;
    app.post_statements(
        V2,
        &json!([
            statement(&account("100001"), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"),
            statement(&account("100002"), ATTEMPTED, FIRE_SAFETY, "2026-03-02T09:00:00Z"),
        ]),
    )
    .await;
    let rsa = learner("100001");
    let transcript =
        poll(app, &rsa, &transcript_path("me"), "the learner's transcript", |t| activity_count(t) == 1).await;
    assert_eq!(transcript["learner"], json!(learner_key("100001")));
    assert_eq!(transcript["activities"][0]["activity"], SAFEGUARDING_ADULTS);
    let competencies = get_json(app, &rsa, &competencies_path("me")).await;
    assert_eq!(competencies["learner"], json!(learner_key("100001")));

    let ec = learner_ec("100002");
    let theirs =
        poll(app, &ec, &transcript_path("me"), "the other learner's transcript", |t| activity_count(t) == 1).await;
    assert_eq!(theirs["learner"], json!(learner_key("100002")));
    assert_eq!(theirs["activities"][0]["activity"], FIRE_SAFETY);
    assert_eq!(get_json(app, &ec, &competencies_path("me")).await["learner"], json!(learner_key("100002")));

    // `me` means nothing for a Basic credential.
    get_error(app, &hub.star, &transcript_path("me"), 400).await;
    get_error(app, &hub.platform, &competencies_path("me"), 400).await;
}

// ===== competencies =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competencies_follow_the_framework_rules() {
    let hub = hub().await;
    let app = &hub.app;
    let me = account("100001");
    let later = at(statement(&me, COMPLETED, SAFEGUARDING_ADULTS, "2026-03-05T09:00:00Z"), "RJ1");
    let earlier = at(statement(&me, COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"), "RJ1");
    // Below the rule's minScaled: progress only.
    let children = scored(at(statement(&me, PASSED, SAFEGUARDING_CHILDREN_L2, "2026-03-03T09:00:00Z"), "RJ1"), 0.6);
    // Matched by activity type.
    let mut video = at(statement(&me, COMPLETED, REFLECTION_VIDEO, "2026-03-04T09:00:00Z"), "RJ1");
    video["object"]["definition"]["type"] = json!(VIDEO_TYPE);
    // Only experienced: the rule counts completed only.
    let mut other_video =
        at(statement(&me, EXPERIENCED, "https://example.nhs.uk/videos/other", "2026-03-04T10:00:00Z"), "RJ1");
    other_video["object"]["definition"]["type"] = json!(VIDEO_TYPE);
    // The competency in the context: attempted shows progress.
    let mut hygiene = at(statement(&me, ATTEMPTED, HAND_HYGIENE, "2026-03-04T11:00:00Z"), "RJ1");
    hygiene["context"]["contextActivities"]["other"] = json!([{ "id": C_INFECTION }]);
    // The genomics rule counts passed only, and someone else's pass is theirs.
    let genomics =
        at(statement(&me, COMPLETED, "https://example.nhs.uk/courses/genomics-101", "2026-03-04T12:00:00Z"), "RJ1");
    let theirs = at(
        statement(&account("100002"), PASSED, "https://example.nhs.uk/courses/genomics-101", "2026-03-04T12:00:00Z"),
        "RJZ",
    );
    app.post_statements(V2, &json!([later, children, video, other_video, hygiene, genomics, theirs])).await;
    app.post_statements(V2, &json!([earlier])).await;

    let profile = poll(app, &hub.star, &competencies_path("100001"), "the competency profile", |p| {
        p["competencies"][0]["evidence"].as_array().is_some_and(|e| e.len() == 2)
    })
    .await;
    let by_id = |id: &str| -> Value {
        profile["competencies"]
            .as_array()
            .expect("competencies")
            .iter()
            .find(|c| c["competency"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing from {profile}"))
    };
    assert_eq!(profile["learner"], json!(learner_key("100001")));
    let order: Vec<&str> = profile["competencies"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["competency"].as_str().expect("id"))
        .collect();
    assert_eq!(order, [C_ADULTS, C_CHILDREN, C_INFECTION, C_REFLECTIVE, C_GENOMICS], "every competency, in file order");

    let adults = by_id(C_ADULTS);
    assert_eq!(adults["status"], "achieved");
    assert_eq!(adults["name"], "Safeguarding adults");
    assert_eq!(adults["domain"], "Safeguarding");
    assert_eq!(adults["framework"], CORE_FRAMEWORK);
    assert_eq!(adults["evidence"], json!([id(&earlier), id(&later)]), "earliest first");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(adults["achieved_at"].as_str().expect("achieved_at")).expect("time"),
        chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").expect("time")
    );

    let children_view = by_id(C_CHILDREN);
    assert_eq!(children_view["status"], "in_progress");
    assert_eq!(children_view["evidence"], json!([]));
    assert!(children_view.get("achieved_at").is_none());

    assert_eq!(by_id(C_INFECTION)["status"], "in_progress");
    let reflective = by_id(C_REFLECTIVE);
    assert_eq!(reflective["status"], "achieved");
    assert_eq!(reflective["framework"], DIGITAL_FRAMEWORK);
    assert_eq!(reflective["evidence"], json!([id(&video)]));
    let genomics_view = by_id(C_GENOMICS);
    assert_eq!(genomics_view["status"], "in_progress");
    assert_eq!(genomics_view["evidence"], json!([]));

    // The learner sees the same profile; a learner with nothing has every
    // competency not started.
    assert_eq!(get_json(app, &learner("100001"), &competencies_path("me")).await, profile);
    let nobody = get_json(app, &hub.star, &competencies_path("999999")).await;
    let statuses: Vec<&Value> = nobody["competencies"].as_array().expect("list").iter().map(|c| &c["status"]).collect();
    assert_eq!(statuses, vec![&json!("not_started"); 5]);
    let other = get_json(app, &hub.star, &competencies_path("100002")).await;
    assert_eq!(other["competencies"][4]["status"], "achieved");
    assert_eq!(other["competencies"][0]["status"], "not_started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competencies_are_empty_without_frameworks() {
    let app = spawn_app().await;
    let star = analyst(&app, "everything", &["*"]);
    app.post_statements(
        V2,
        &json!([statement(&account("100001"), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z")]),
    )
    .await;
    poll(&app, &star, &transcript_path("100001"), "the transcript", |t| activity_count(t) == 1).await;
    assert_eq!(
        get_json(&app, &star, &competencies_path("100001")).await,
        json!({ "learner": learner_key("100001"), "competencies": [] })
    );
    assert_eq!(
        get_json(&app, &star, "/analytics/competencies/coverage?org=RJ1").await,
        json!({ "organisation": "RJ1", "competencies": [] })
    );
}

// ===== uptake =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptake_counts_learners_and_activities_per_period_including_child_organisations() {
    let hub = populated_hub().await;
    let app = &hub.app;
    let march = "from=2026-03-01&to=2026-03-31";

    let weekly = get_json(app, &hub.star, &uptake_path(&format!("org=RJ1&{march}&granularity=week"))).await;
    assert_eq!(
        weekly,
        json!({
            "organisation": "RJ1",
            "from": "2026-03-01",
            "to": "2026-03-31",
            "granularity": "week",
            // 100001 (A completed, B attempted), 100003 in RJ122W (A passed), 100004 (A attempted).
            "periods": [row("2026-W10", 3, 4, 2, 1, 4)],
        })
    );
    // Week is the default granularity.
    assert_eq!(get_json(app, &hub.star, &uptake_path(&format!("org=RJ1&{march}"))).await, weekly);

    let daily = get_json(app, &hub.star, &uptake_path(&format!("org=RJ1&{march}&granularity=day"))).await;
    assert_eq!(daily["granularity"], "day");
    assert_eq!(
        daily["periods"],
        json!([row("2026-03-02", 2, 2, 1, 0, 2), row("2026-03-03", 1, 1, 0, 0, 1), row("2026-03-04", 1, 1, 1, 1, 1),])
    );

    // The ICB: both trusts and the ward below RJ1.
    let icb_weeks = get_json(app, &hub.star, &uptake_path(&format!("org=QKK&{march}"))).await;
    assert_eq!(icb_weeks["periods"], json!([row("2026-W10", 3, 4, 2, 1, 4), row("2026-W11", 1, 1, 1, 0, 1)]));
    let icb_months =
        get_json(app, &hub.star, &uptake_path("org=QKK&from=2026-03-01&to=2026-04-30&granularity=month")).await;
    assert_eq!(icb_months["granularity"], "month");
    assert_eq!(icb_months["periods"], json!([row("2026-03", 4, 5, 3, 1, 5), row("2026-04", 1, 1, 1, 0, 1)]));
    // The agency nurse's statement (December, organisation from the directory).
    let december =
        get_json(app, &hub.star, &uptake_path("org=RJ1&from=2025-12-01&to=2025-12-01&granularity=month")).await;
    assert_eq!(december["periods"], json!([row("2025-12", 1, 1, 1, 0, 1)]));

    // Only the organisation and those below it.
    let kings = get_json(app, &hub.star, &uptake_path(&format!("org=RJZ&{march}"))).await;
    assert_eq!(kings["periods"], json!([row("2026-W11", 1, 1, 1, 0, 1)]));
    let ward = get_json(app, &hub.star, &uptake_path(&format!("org=RJ122W&{march}&granularity=day"))).await;
    assert_eq!(ward["periods"], json!([row("2026-03-04", 1, 1, 1, 1, 1)]));
    // The range is inclusive at both ends and nothing outside it counts.
    let one_day = get_json(app, &hub.star, &uptake_path("org=QKK&from=2026-03-10&to=2026-03-10&granularity=day")).await;
    assert_eq!(one_day["periods"], json!([row("2026-03-10", 1, 1, 1, 0, 1)]));
    let empty = get_json(app, &hub.star, &uptake_path("org=QKK&from=2026-05-01&to=2026-05-31")).await;
    assert_eq!(empty["periods"], json!([]));
    // An organisation nobody imported just has no uptake.
    let unknown = get_json(app, &hub.star, &uptake_path(&format!("org=ZZZ99&{march}"))).await;
    assert_eq!(unknown["periods"], json!([]));

    // Without from and to: the last 30 days up to today.
    let recent = get_json(app, &hub.star, &uptake_path("org=RJ1")).await;
    let from = chrono::NaiveDate::parse_from_str(recent["from"].as_str().expect("from"), "%Y-%m-%d").expect("date");
    let to = chrono::NaiveDate::parse_from_str(recent["to"].as_str().expect("to"), "%Y-%m-%d").expect("date");
    assert_eq!((to - from).num_days(), 30);
    assert!((chrono::Utc::now().date_naive() - to).num_days().abs() <= 1, "to defaults to today: {recent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptake_filters_by_activity_platform_and_staff_group() {
    let hub = populated_hub().await;
    let app = &hub.app;
    let march = "from=2026-03-01&to=2026-03-31";
    let star = &hub.star;
    let periods = |query: String| async move { get_json(app, star, &uptake_path(&query)).await["periods"].clone() };
    let a = url_encode(COURSE_A);
    assert_eq!(periods(format!("org=RJ1&{march}&activity={a}")).await, json!([row("2026-W10", 3, 3, 2, 1, 3)]));
    assert_eq!(periods(format!("org=RJ1&{march}&platform=Moodle")).await, json!([row("2026-W10", 1, 1, 0, 0, 1)]));
    assert_eq!(periods(format!("org=RJ1&{march}&activity={a}&platform=Moodle")).await, json!([]));
    // Staff group from the directory…
    let ahp = url_encode("Allied Health Professionals");
    assert_eq!(periods(format!("org=RJ1&{march}&staff_group={ahp}")).await, json!([row("2026-W10", 1, 1, 1, 1, 1)]));
    // …or from the statement (100004 is not in the directory).
    let medical = url_encode("Medical and Dental");
    assert_eq!(
        periods(format!("org=QKK&{march}&staff_group={medical}&granularity=month")).await,
        json!([row("2026-03", 2, 2, 1, 0, 2)])
    );
    assert_eq!(periods(format!("org=RJ1&{march}&staff_group=Nobody")).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptake_as_csv_by_format_parameter_or_accept_header() {
    let hub = populated_hub().await;
    let app = &hub.app;
    let expected = "organisation,period,active_learners,started,completed,passed,statements\n\
                    QKK,2026-W10,3,4,2,1,4\n\
                    QKK,2026-W11,1,1,1,0,1\n";
    let query = "org=QKK&from=2026-03-01&to=2026-03-31";
    let by_parameter = hub
        .star
        .authorise(app.client.get(app.url(&uptake_path(&format!("{query}&format=csv")))))
        .send()
        .await
        .expect("send");
    let by_accept = hub
        .star
        .authorise(app.client.get(app.url(&uptake_path(query))))
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("send");
    for response in [by_parameter, by_accept] {
        assert_eq!(response.status(), 200);
        let content_type =
            response.headers().get("content-type").expect("content type").to_str().expect("text").to_owned();
        assert!(content_type.starts_with("text/csv"), "{content_type}");
        assert_eq!(response.text().await.expect("body"), expected);
    }
    // format=json wins over Accept; an empty result is just the header.
    let json_anyway = hub
        .star
        .authorise(app.client.get(app.url(&uptake_path(&format!("{query}&format=json")))))
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("send");
    assert_eq!(json_anyway.status(), 200);
    let body: Value = json_anyway.json().await.expect("JSON");
    assert_eq!(body["periods"].as_array().map(Vec::len), Some(2));
    let (status, empty) = get(app, &hub.star, &uptake_path("org=QKK&from=2026-05-01&to=2026-05-31&format=csv")).await;
    assert_eq!(status, 200);
    assert_eq!(empty, "organisation,period,active_learners,started,completed,passed,statements\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptake_and_coverage_reject_bad_parameters_with_400() {
    let hub = hub().await;
    let app = &hub.app;
    let cases: &[(&str, &str)] = &[
        ("/analytics/uptake", "?org"),
        ("/analytics/uptake?from=2026-03-01&to=2026-03-31", "?org"),
        ("/analytics/uptake?org=RJ1-GSTT", "?org"),
        ("/analytics/uptake?org=ABCDEFGHIJ", "?org"),
        ("/analytics/uptake?org=", "?org"),
        ("/analytics/uptake?org=RJ1&from=2026-03-10&to=2026-03-01", "?from"),
        ("/analytics/uptake?org=RJ1&from=2020-01-01&to=2026-01-01", "?from"),
        ("/analytics/uptake?org=RJ1&from=01%2F03%2F2026", "?from"),
        ("/analytics/uptake?org=RJ1&to=2026-02-30", "?to"),
        ("/analytics/uptake?org=RJ1&granularity=year", "?granularity"),
        ("/analytics/uptake?org=RJ1&granularity=Week", "?granularity"),
        ("/analytics/uptake?org=RJ1&format=xml", "?format"),
        ("/analytics/uptake?org=RJ1&organisation=RJ1", "?organisation"),
        ("/analytics/uptake?org=RJ1&org=RJZ", "?org"),
        ("/analytics/competencies/coverage", "?org"),
        ("/analytics/competencies/coverage?org=not%20ods", "?org"),
        ("/analytics/competencies/coverage?org=RJ1&from=2026-03-01", "?from"),
    ];
    for (path, property) in cases {
        let error = get_error(app, &hub.star, path, 400).await;
        assert_eq!(error["error"]["path"], *property, "GET {path}: {error}");
    }
    // Just inside the limits.
    get_json(app, &hub.star, "/analytics/uptake?org=RJ1&from=2026-03-01&to=2026-03-01").await;
    get_json(app, &hub.star, "/analytics/uptake?org=RJ1&from=2023-01-01&to=2026-01-01").await;
}

// ===== coverage =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_counts_learners_who_achieved_each_competency_below_an_organisation() {
    let hub = hub().await;
    let app = &hub.app;
    load_directories(&hub).await;
    let mut video = at(statement(&account("100003"), COMPLETED, REFLECTION_VIDEO, "2026-03-04T09:00:00Z"), "RJ122W");
    video["object"]["definition"]["type"] = json!(VIDEO_TYPE);
    app.post_statements(
        V2,
        &json!([
            // Organisation from the directory.
            statement(&account("100001"), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"),
            // Twice by the same learner: one learner.
            at(statement(&account("100001"), PASSED, SAFEGUARDING_ADULTS, "2026-03-03T09:00:00Z"), "RJ1"),
            at(statement(&account("100003"), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"), "RJ122W"),
            video,
            at(statement(&account("100002"), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"), "RJZ"),
            // Progress only.
            scored(
                at(statement(&account("100004"), PASSED, SAFEGUARDING_CHILDREN_L2, "2026-03-02T09:00:00Z"), "RJ1"),
                0.5
            ),
            // Achieved, credited to RJ1 by the statement though not in the directory.
            scored(
                at(
                    statement(
                        &account("100004"),
                        PASSED,
                        "https://example.nhs.uk/courses/genomics-101",
                        "2026-03-02T09:00:00Z"
                    ),
                    "RJ1"
                ),
                0.9
            ),
        ]),
    )
    .await;
    let counts = |body: &Value| -> Vec<(String, u64)> {
        body["competencies"]
            .as_array()
            .expect("competencies")
            .iter()
            .map(|c| {
                (c["competency"].as_str().expect("id").to_owned(), c["learners_achieved"].as_u64().expect("count"))
            })
            .collect()
    };
    let expect = |pairs: [u64; 5]| -> Vec<(String, u64)> {
        [C_ADULTS, C_CHILDREN, C_INFECTION, C_REFLECTIVE, C_GENOMICS]
            .iter()
            .map(|c| (*c).to_owned())
            .zip(pairs)
            .collect()
    };
    let icb = poll(app, &hub.star, "/analytics/competencies/coverage?org=QKK", "coverage", |body| {
        body["competencies"][0]["learners_achieved"] == 3
    })
    .await;
    assert_eq!(icb["organisation"], "QKK");
    assert_eq!(counts(&icb), expect([3, 0, 0, 1, 1]));
    let first = &icb["competencies"][0];
    assert_eq!(first["name"], "Safeguarding adults");
    assert_eq!(first["domain"], "Safeguarding");
    assert_eq!(first["framework"], CORE_FRAMEWORK);
    let star = &hub.star;
    let coverage = |org: &'static str| async move {
        counts(&get_json(app, star, &format!("/analytics/competencies/coverage?org={org}")).await)
    };
    assert_eq!(coverage("RJ1").await, expect([2, 0, 0, 1, 1]));
    assert_eq!(coverage("RJ122W").await, expect([1, 0, 0, 1, 0]));
    assert_eq!(coverage("RJZ").await, expect([1, 0, 0, 0, 0]));
    assert_eq!(coverage("ZZZ99").await, expect([0, 0, 0, 0, 0]));
}

// ===== voiding =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiding_a_counted_statement_removes_it_from_transcript_uptake_and_competencies() {
    let hub = hub().await;
    let app = &hub.app;
    load_directories(&hub).await;
    let me = account("100001");
    let attempted = at(statement(&me, ATTEMPTED, SAFEGUARDING_ADULTS, "2026-03-01T09:00:00Z"), "RJ1");
    let passed = scored(at(statement(&me, PASSED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"), "RJ1"), 0.9);
    let only = at(statement(&me, COMPLETED, FIRE_SAFETY, "2026-03-02T10:00:00Z"), "RJ1");
    app.post_statements(V2, &json!([attempted, passed, only])).await;

    let uptake = uptake_path("org=RJ1&from=2026-03-01&to=2026-03-31&granularity=day");
    let coverage = "/analytics/competencies/coverage?org=RJ1";
    let transcript =
        poll(app, &hub.star, &transcript_path("100001"), "the transcript", |t| activity_count(t) == 2).await;
    let adults = transcript["activities"]
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["activity"] == SAFEGUARDING_ADULTS)
        .cloned();
    let adults = adults.expect("safeguarding in transcript");
    assert_eq!((adults["status"].clone(), adults["statements"].clone()), (json!("passed"), json!(2)));
    assert_eq!(
        get_json(app, &hub.star, &uptake).await["periods"],
        json!([row("2026-03-01", 1, 1, 0, 0, 1), row("2026-03-02", 1, 2, 2, 1, 2)])
    );
    let profile = get_json(app, &hub.star, &competencies_path("100001")).await;
    assert_eq!(profile["competencies"][0]["status"], "achieved");
    assert_eq!(profile["competencies"][0]["evidence"], json!([id(&passed)]));
    assert_eq!(get_json(app, &hub.star, coverage).await["competencies"][0]["learners_achieved"], 1);

    app.post_statements(V2, &json!([voiding(&id(&passed)), voiding(&id(&only))])).await;

    let transcript = poll(app, &hub.star, &transcript_path("100001"), "the voided statements to stop counting", |t| {
        activity_count(t) == 1
    })
    .await;
    let adults = &transcript["activities"][0];
    assert_eq!(adults["activity"], SAFEGUARDING_ADULTS);
    assert_eq!(adults["status"], "in_progress");
    assert_eq!(adults["statements"], 1);
    assert!(adults.get("best_scaled").is_none(), "the voided score is gone: {adults}");
    assert_eq!(get_json(app, &hub.star, &uptake).await["periods"], json!([row("2026-03-01", 1, 1, 0, 0, 1)]));
    let profile = get_json(app, &hub.star, &competencies_path("100001")).await;
    assert_eq!(profile["competencies"][0]["status"], "in_progress");
    assert_eq!(profile["competencies"][0]["evidence"], json!([]));
    assert!(profile["competencies"][0].get("achieved_at").is_none());
    assert_eq!(get_json(app, &hub.star, coverage).await["competencies"][0]["learners_achieved"], 0);
    // The learner sees the same.
    assert_eq!(get_json(app, &learner("100001"), &transcript_path("me")).await, transcript);
}

// ===== access =====

/// Statuses per caller, in the order of [`COLUMNS`].
const COLUMNS: [&str; 8] = [
    "no credential",
    "wrong secret",
    "platform credential (no organisations)",
    "analyst granted RJ1",
    "analyst granted QKK (the ICB)",
    "analyst granted *",
    "learner 100001 (RS256 token)",
    "learner 100002 (ES256 token)",
];

/// Who may read what. 100001 is in RJ1, 100003 in RJ122W (below RJ1),
/// 100002 in RJZ (RJ1's sibling under QKK), 100004 in no directory; the
/// agency nurse (an mbox agent) is in RJ1. ZZZ99 is in no directory.
/// `me` is a learner's own record; for anyone else it is a bad request.
#[rustfmt::skip]
fn access_table() -> Vec<(String, [u16; 8])> {
    let agent = |endpoint: &str| agent_path(endpoint, &agency_nurse());
    let uptake = |org: &str| uptake_path(&format!("org={org}&from=2026-03-01&to=2026-03-31"));
    let coverage = |org: &str| format!("/analytics/competencies/coverage?org={org}");
    vec![
        //                                        none  bad   plat  RJ1   QKK   *     L1    L2
        (transcript_path("me"),                  [401, 401, 400, 400, 400, 400, 200, 200]),
        (competencies_path("me"),                [401, 401, 400, 400, 400, 400, 200, 200]),
        (transcript_path("100001"),              [401, 401, 403, 200, 200, 200, 200, 403]),
        (competencies_path("100001"),            [401, 401, 403, 200, 200, 200, 200, 403]),
        (transcript_path("100003"),              [401, 401, 403, 200, 200, 200, 403, 403]),
        (competencies_path("100003"),            [401, 401, 403, 200, 200, 200, 403, 403]),
        (transcript_path("100002"),              [401, 401, 403, 403, 200, 200, 403, 200]),
        (competencies_path("100002"),            [401, 401, 403, 403, 200, 200, 403, 200]),
        (transcript_path("100004"),              [401, 401, 403, 403, 403, 200, 403, 403]),
        (competencies_path("100004"),            [401, 401, 403, 403, 403, 200, 403, 403]),
        (agent("transcript"),                    [401, 401, 403, 200, 200, 200, 403, 403]),
        (agent("competencies"),                  [401, 401, 403, 200, 200, 200, 403, 403]),
        (uptake("RJ1"),                          [401, 401, 403, 200, 200, 200, 403, 403]),
        (uptake("RJ122W"),                       [401, 401, 403, 200, 200, 200, 403, 403]),
        (uptake("RJZ"),                          [401, 401, 403, 403, 200, 200, 403, 403]),
        (uptake("QKK"),                          [401, 401, 403, 403, 200, 200, 403, 403]),
        (uptake("ZZZ99"),                        [401, 401, 403, 403, 403, 200, 403, 403]),
        (coverage("RJ1"),                        [401, 401, 403, 200, 200, 200, 403, 403]),
        (coverage("RJ122W"),                     [401, 401, 403, 200, 200, 200, 403, 403]),
        (coverage("RJZ"),                        [401, 401, 403, 403, 200, 200, 403, 403]),
        (coverage("QKK"),                        [401, 401, 403, 403, 200, 200, 403, 403]),
        (coverage("ZZZ99"),                      [401, 401, 403, 403, 403, 200, 403, 403]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_access_matrix() {
    let hub = populated_hub().await;
    let app = &hub.app;
    let callers: [Caller; 8] = [
        Caller::Anonymous,
        Caller::Basic(app.key.clone(), format!("{}-wrong", app.secret)),
        hub.platform.clone(),
        analyst(app, "analyst-rj1", &["RJ1"]),
        analyst(app, "analyst-qkk", &["QKK"]),
        hub.star.clone(),
        learner("100001"),
        learner_ec("100002"),
    ];
    let mut failures = Vec::new();
    for (path, expected) in access_table() {
        for ((caller, name), want) in callers.iter().zip(COLUMNS).zip(expected) {
            let (status, body) = get(app, caller, &path).await;
            if status.as_u16() != want {
                failures.push(format!("{name}: GET {path} → {status} (expected {want}) {body}"));
                continue;
            }
            let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if want == 200 {
                if !(json["learner"].is_string() || json["organisation"].is_string()) {
                    failures.push(format!("{name}: GET {path} → 200 with an unexpected body {body}"));
                }
            } else if !json["error"]["message"].is_string() {
                failures.push(format!("{name}: GET {path} → {status} without a JSON error: {body}"));
            }
        }
    }
    // Tokens that are not valid: 401 on every analytics endpoint.
    for (what, caller) in bad_tokens("100001") {
        for (path, _) in access_table() {
            let (status, body) = get(app, &caller, &path).await;
            if status != 401 {
                failures.push(format!("token {what}: GET {path} → {status} (expected 401) {body}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} access failures:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_answer_does_not_reveal_whether_the_learner_exists() {
    let hub = populated_hub().await;
    let app = &hub.app;
    let trust = analyst(app, "analyst-rj1", &["RJ1"]);
    let platform = hub.platform.clone();
    let learner_token = learner("100001");
    for caller in [&trust, &platform, &learner_token] {
        for endpoint in ["transcript", "competencies"] {
            // 100002: another trust's learner with statements; 100004: has
            // statements but is in no directory; 123456789: unknown.
            let mut answers = Vec::new();
            for account in ["100002", "100004", "123456789"] {
                let path = format!("/analytics/learners/{account}/{endpoint}");
                let (status, body) = get(app, caller, &path).await;
                assert_eq!(status, 403, "GET {path}: {body}");
                assert!(!body.contains(account), "the 403 names the learner: {body}");
                answers.push(body);
            }
            let unknown_agent = json!({ "mbox": "mailto:nobody@example.com" });
            let (status, body) = get(app, caller, &agent_path(endpoint, &unknown_agent)).await;
            assert_eq!(status, 403, "{body}");
            answers.push(body);
            assert!(answers.windows(2).all(|w| w[0] == w[1]), "403 bodies differ: {answers:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_refused_when_learner_sign_in_is_not_configured() {
    let app = spawn_app().await;
    let token = learner("100001");
    for path in [transcript_path("me"), transcript_path("100001"), "/xapi/statements".to_owned()] {
        let (status, body) = get(&app, &token, &path).await;
        assert_eq!(status, 401, "GET {path}: {body}");
    }
}

/// RFC 7519 §4.1.5: a JWT "MUST NOT be accepted for processing" before its
/// `nbf` time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_is_not_yet_valid_is_refused() {
    let hub = hub().await;
    let mut future = claims("100001");
    future["nbf"] = json!(now() + 3600);
    future["exp"] = json!(now() + 7200);
    let token = Caller::Bearer(sign(RSA_PRIVATE, Algorithm::RS256, &future));
    for path in [transcript_path("me"), "/xapi/statements".to_owned()] {
        let (status, body) = get(&hub.app, &token, &path).await;
        assert_eq!(status, 401, "a token valid only from an hour from now was accepted: GET {path} → {status} {body}");
    }
}

// ===== learners on /xapi/statements =====

/// The sorted ids a statement query returns to `caller` (one page).
async fn statement_ids(app: &TestApp, caller: &Caller, query: &str) -> Vec<String> {
    let body = get_json(app, caller, &format!("/xapi/statements{query}")).await;
    assert_eq!(body["more"], "", "expected one page: {body}");
    let mut ids: Vec<String> = body["statements"].as_array().expect("statements").iter().map(id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_token_reads_only_the_learners_own_statements() {
    let hub = hub().await;
    let app = &hub.app;
    let mine = [
        statement(&account("100001"), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T09:00:00Z"),
        statement(&account("100001"), ATTEMPTED, FIRE_SAFETY, "2026-03-03T09:00:00Z"),
    ];
    let mut taught = statement(&account("100002"), COMPLETED, FIRE_SAFETY, "2026-03-04T09:00:00Z");
    taught["context"]["instructor"] = account("100001");
    let theirs = [statement(&account("100002"), PASSED, SAFEGUARDING_ADULTS, "2026-03-02T10:00:00Z"), taught];
    let by_mbox = statement(&agency_nurse(), COMPLETED, SAFEGUARDING_ADULTS, "2026-03-02T11:00:00Z");
    let all: Vec<Value> = mine.iter().chain(theirs.iter()).chain([&by_mbox]).cloned().collect();
    app.post_statements(V2, &json!(all)).await;

    let me = learner("100001");
    let mut mine_ids: Vec<String> = mine.iter().map(id).collect();
    mine_ids.sort();
    let me_ref = &me;
    let ids_for = |query: String| async move { statement_ids(app, me_ref, &query).await };
    assert_eq!(ids_for(String::new()).await, mine_ids);
    let own_agent = url_encode(&account("100001").to_string());
    assert_eq!(ids_for(format!("?agent={own_agent}")).await, mine_ids);
    // related_agents cannot widen it to statements the learner only appears in.
    assert_eq!(ids_for("?related_agents=true".to_owned()).await, mine_ids);
    assert_eq!(ids_for(format!("?agent={own_agent}&related_agents=true")).await, mine_ids);
    assert_eq!(ids_for(format!("?verb={}", url_encode(COMPLETED))).await, vec![id(&mine[0])]);
    // The same for a learner signed in with the EC key.
    let mut their_ids: Vec<String> = theirs.iter().map(id).collect();
    their_ids.sort();
    assert_eq!(statement_ids(app, &learner_ec("100002"), "").await, their_ids);

    // Another agent: refused.
    for other in [account("100002"), agency_nurse()] {
        let path = format!("/xapi/statements?agent={}", url_encode(&other.to_string()));
        get_error(app, &me, &path, 403).await;
    }
    // Another learner's statement by id: not found, as if it did not exist;
    // so is one the learner is only the instructor of.
    for other in theirs.iter().chain([&by_mbox]) {
        get_error(app, &me, &format!("/xapi/statements?statementId={}", id(other)), 404).await;
    }
    let own = get_json(app, &me, &format!("/xapi/statements?statementId={}", id(&mine[0]))).await;
    assert_eq!(own["id"], json!(id(&mine[0])));
    assert_eq!(own["actor"]["account"]["name"], "100001");

    // Writing is refused, even about oneself.
    let response = me
        .authorise(app.client.post(app.url("/xapi/statements")).header("X-Experience-API-Version", V2))
        .json(&json!([statement(&account("100001"), COMPLETED, HAND_HYGIENE, "2026-03-05T09:00:00Z")]))
        .send()
        .await
        .expect("send");
    expect_error(response, 403).await;
    let new_id = Uuid::new_v4();
    let mut put = statement(&account("100001"), COMPLETED, HAND_HYGIENE, "2026-03-05T09:00:00Z");
    put["id"] = json!(new_id.to_string());
    let response = me
        .authorise(
            app.client
                .put(app.url(&format!("/xapi/statements?statementId={new_id}")))
                .header("X-Experience-API-Version", V2),
        )
        .json(&put)
        .send()
        .await
        .expect("send");
    expect_error(response, 403).await;
    // Nothing was stored.
    assert_eq!(ids_for(String::new()).await, mine_ids);
    // Paging keeps to the learner's statements, and a more link is only
    // good for the learner it was issued to.
    let first = get_json(app, &me, "/xapi/statements?limit=1").await;
    assert_eq!(first["statements"].as_array().map(Vec::len), Some(1));
    let more = first["more"].as_str().expect("more link").to_owned();
    assert!(!more.is_empty(), "two statements, limit 1: a more link");
    let second = get_json(app, &me, &more).await;
    let mut paged: Vec<String> =
        first["statements"].as_array().into_iter().chain(second["statements"].as_array()).flatten().map(id).collect();
    paged.sort();
    assert_eq!(paged, mine_ids);
    get_error(app, &learner_ec("100002"), &more, 403).await;
    // The document and agent resources are not for learners.
    let agent = url_encode(&account("100001").to_string());
    for path in [
        format!("/xapi/activities/state?activityId={}&agent={agent}", url_encode(SAFEGUARDING_ADULTS)),
        format!("/xapi/agents/profile?agent={agent}"),
        format!("/xapi/agents?agent={agent}"),
        format!("/xapi/activities?activityId={}", url_encode(SAFEGUARDING_ADULTS)),
    ] {
        get_error(app, &me, &path, 403).await;
    }
    // Bad tokens get 401 on the statements resource too.
    for (what, caller) in bad_tokens("100001") {
        let (status, body) = get(app, &caller, "/xapi/statements").await;
        assert_eq!(status, 401, "token {what}: {body}");
    }
}
