//! Operations: liveness and readiness, the Prometheus metrics (checked
//! against a known load), the OpenAPI document (checked against the routes
//! and parameters the server really serves) and the access log (checked for
//! what it must and must never contain). Real HTTP over 127.0.0.1; waits
//! poll a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

use lrs_eventlog::{EventLog, FileEventLog, FileEventLogConfig, LogError, LogRecord, Offset};
use lrs_server::app::NON_XAPI_ROUTES;
use lrs_server::credentials::{self, Scope};
use lrs_server::{Embedded, EmbeddedOptions};

const DEADLINE: Duration = Duration::from_secs(15);
const V2: &str = "2.0.0";
const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";

struct App {
    address: String,
    client: Client,
    key: String,
    secret: String,
    data_dir: tempfile::TempDir,
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(&self.key, Some(&self.secret))
            .header("X-Experience-API-Version", V2)
    }

    fn add_credential(&self, name: &str, scopes: &[Scope]) -> (String, String) {
        let (credential, secret) =
            credentials::add(self.data_dir.path(), name, None, None, scopes.to_vec()).expect("credential");
        (credential.key, secret)
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("send");
        let status = response.status();
        let body = response.json().await.expect("JSON body");
        (status, body)
    }

    async fn metrics(&self) -> Metrics {
        let response = self.client.get(self.url("/metrics")).send().await.expect("send");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
        Metrics::parse(&response.text().await.expect("body"))
    }

    /// Polls `/ready` until it answers `status` (deadline).
    async fn wait_ready(&self, status: u16) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let (actual, body) = self.get_json("/ready").await;
            if actual.as_u16() == status {
                return body;
            }
            assert!(tokio::time::Instant::now() < deadline, "/ready never answered {status}; last: {actual} {body}");
            tokio::task::yield_now().await;
        }
    }
}

fn options(dir: &std::path::Path) -> EmbeddedOptions {
    let mut options = EmbeddedOptions::new(dir);
    options.store.cache_bytes = 16 * 1024 * 1024;
    options
}

/// Starts `store` on 127.0.0.1 with a credential of scope `all`.
async fn serve(store: Embedded, data_dir: tempfile::TempDir) -> App {
    init_logging();
    let (credential, secret) =
        credentials::add(data_dir.path(), "test-client", None, None, vec![Scope::All]).expect("credential");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let router = store.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
        drop(store);
    });
    let client = Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    App { address, client, key: credential.key, secret, data_dir }
}

async fn spawn_app(adjust: impl FnOnce(&mut EmbeddedOptions)) -> App {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let mut options = options(data_dir.path());
    adjust(&mut options);
    let store = Embedded::open(options).expect("store starts");
    serve(store, data_dir).await
}

fn statement(id: Option<&str>, activity: &str) -> Value {
    let mut statement = json!({
        "actor": { "objectType": "Agent", "mbox": "mailto:load@example.org" },
        "verb": { "id": COMPLETED, "display": { "en-GB": "completed" } },
        "object": { "objectType": "Activity", "id": activity }
    });
    if let Some(id) = id {
        statement["id"] = json!(id);
    }
    statement
}

// ----- a parsed exposition -----

#[derive(Debug)]
struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (name.to_owned(), parse_labels(rest.strip_suffix('}').expect("closing brace"))),
            };
            samples.push((name, labels, value));
        }
        Self { samples }
    }

    /// The value of the one sample of `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|(n, l, _)| n == name && *l == wanted).map(|(_, _, v)| *v)
    }

    fn all(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples.iter().filter(|(n, _, _)| n == name).map(|(_, l, v)| (l.clone(), *v)).collect()
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(name, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

// ----- /health and /ready -----

#[tokio::test]
async fn health_says_ok_and_ready_reports_its_checks() {
    let app = spawn_app(|_| {}).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "status": "ok" }));
    let body = app.wait_ready(200).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], json!([]));
    for check in ["log", "projection:xapi", "projection:learning-hub"] {
        assert_eq!(body["checks"][check]["ok"], true, "{body}");
    }
    // Neither needs a credential nor the xAPI version header.
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

/// The embedded log, with the projectors' reads (chunks of many events)
/// held back on demand, or each made slow, and the log's end made
/// unreadable on demand.
struct ControlledLog {
    inner: FileEventLog,
    hold_projectors: watch::Sender<bool>,
    slow_projectors: Duration,
    broken: AtomicBool,
}

impl ControlledLog {
    fn open(dir: &std::path::Path, slow_projectors: Duration) -> Arc<Self> {
        let inner = FileEventLog::open(&dir.join("log"), FileEventLogConfig::default()).expect("log");
        Arc::new(Self { inner, hold_projectors: watch::channel(false).0, slow_projectors, broken: false.into() })
    }
}

#[async_trait]
impl EventLog for ControlledLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        self.inner.append(events).await
    }

    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        if max >= 100 {
            let mut held = self.hold_projectors.subscribe();
            let _ = held.wait_for(|held| !*held).await;
            // Injected slowness, not a wait for anything.
            tokio::time::sleep(self.slow_projectors).await;
        }
        self.inner.read_bounded(from, max, max_bytes).await
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(LogError::Storage("injected: the log cannot be read".to_owned()));
        }
        self.inner.end_offset().await
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        self.inner.wait_beyond(offset, timeout).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_keeps_the_writer_near_the_projections_so_they_parse_none_of_its_events() {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let file = data_dir.path().join("statements.ndjson");
    let lines: Vec<String> = (0..40).map(|n| statement(None, &format!("urn:import:{n}")).to_string()).collect();
    std::fs::write(&file, lines.join("\n")).expect("file");
    let mut options = options(data_dir.path());
    // Room for a few of the import's events (two statements each, well
    // under a kilobyte): a writer running ahead of the slow projections
    // would fill it, and they would parse what it could not hold.
    options.event_handoff_bytes = 4096;
    // The projectors fall behind a writer appending at full speed.
    let log = ControlledLog::open(data_dir.path(), Duration::from_millis(5));
    let store = Embedded::open_with_log(options, log).expect("store starts");
    let import = lrs_server::import::ImportOptions {
        file,
        version: lrs_xapi::XapiVersion::V2_0_0,
        batch_size: 2,
        authority: json!({ "objectType": "Agent", "account": { "homePage": "https://lrs.example", "name": "import" } }),
        restart: false,
    };
    let progress =
        lrs_server::import::import(&store.state, data_dir.path(), &import, |_| {}).await.expect("import runs");
    assert_eq!(progress.accepted, 40);
    // The import returns once both projections have applied everything.
    for (name, source) in [("xapi", store.state.views.event_source()), ("hub", store.state.hub.event_source())] {
        assert_eq!((source.decoded(), source.handed()), (0, 20), "{name}: events parsed again, events handed");
    }
    store.stop().await.expect("store stops");
}

#[tokio::test]
async fn ready_is_503_naming_the_failed_check_while_projections_lag_or_the_log_fails() {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let mut options = options(data_dir.path());
    options.server.ready_max_lag_events = 0;
    options.server.read_your_writes_timeout = Duration::from_millis(20);
    let log = ControlledLog::open(data_dir.path(), Duration::ZERO);
    let store = Embedded::open_with_log(options, log.clone()).expect("store starts");
    let app = serve(store, data_dir).await;
    app.wait_ready(200).await;

    // Projections held back: a write is stored but not projected.
    log.hold_projectors.send_replace(true);
    let response = app.request(Method::POST, "/xapi/statements").json(&statement(None, "urn:a")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["failed"], json!(["projection:xapi", "projection:learning-hub"]), "{body}");
    assert_eq!(body["checks"]["log"]["ok"], true);
    assert_eq!(body["checks"]["projection:xapi"]["lag_events"], 1, "{body}");
    assert_eq!(body["checks"]["projection:xapi"]["max_lag_events"], 0);
    let metrics = app.metrics().await;
    assert_eq!(metrics.get("lrs_projection_lag_events", &[("projection", "xapi")]), Some(1.0));
    assert_eq!(metrics.get("lrs_projection_lag_events", &[("projection", "learning-hub")]), Some(1.0));
    let age = metrics.get("lrs_projection_lag_seconds", &[("projection", "xapi")]).expect("lag in seconds");
    assert!(age >= 0.0, "{age}");
    assert_eq!(metrics.get("lrs_log_end_offset", &[]), Some(1.0));
    // /health does not depend on the projections.
    assert_eq!(app.get_json("/health").await.0, 200);

    // Released: ready again once both projections caught up.
    log.hold_projectors.send_replace(false);
    app.wait_ready(200).await;
    let metrics = app.metrics().await;
    assert_eq!(metrics.get("lrs_projection_lag_events", &[("projection", "xapi")]), Some(0.0));
    assert_eq!(metrics.get("lrs_projection_lag_seconds", &[("projection", "xapi")]), Some(0.0));

    // The log's end cannot be read: not ready, and the log check says so.
    log.broken.store(true, Ordering::SeqCst);
    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["log"]["ok"], false, "{body}");
    assert_eq!(body["failed"][0], "log", "{body}");
    assert!(!body.to_string().contains("injected"), "storage details stay in the server's log: {body}");
    assert_eq!(app.get_json("/health").await.0, 200);
    log.broken.store(false, Ordering::SeqCst);
    app.wait_ready(200).await;
}

// ----- /metrics against a known load -----

#[tokio::test]
async fn metrics_count_exactly_the_requests_and_statements_sent() {
    const MAX_BODY: usize = 64 * 1024;
    let app = spawn_app(|options| options.server.max_body_bytes = MAX_BODY).await;
    let (reader_key, reader_secret) = app.add_credential("reader", &[Scope::StatementsRead]);
    let post = || app.request(Method::POST, "/xapi/statements");

    // 5 single statements, then 3 batches of 4: 17 stored.
    let first_id = uuid::Uuid::new_v4().to_string();
    for i in 0..5 {
        let id = (i == 0).then_some(first_id.as_str());
        let response = post().json(&statement(id, &format!("urn:single:{i}"))).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    for batch in 0..3 {
        let statements: Vec<Value> = (0..4).map(|i| statement(None, &format!("urn:batch:{batch}:{i}"))).collect();
        assert_eq!(post().json(&statements).send().await.unwrap().status(), 200);
    }
    // A repeat of a stored statement: accepted, not stored again.
    assert_eq!(post().json(&statement(Some(&first_id), "urn:single:0")).send().await.unwrap().status(), 200);
    // PUT: one new statement (204), then a different one under its id (409).
    let put_id = uuid::Uuid::new_v4().to_string();
    let put = |activity: &str| {
        app.request(Method::PUT, &format!("/xapi/statements?statementId={put_id}")).json(&statement(None, activity))
    };
    assert_eq!(put("urn:put").send().await.unwrap().status(), 204);
    assert_eq!(put("urn:put:other").send().await.unwrap().status(), 409);
    // Invalid: two without a verb, one without the version header.
    for _ in 0..2 {
        let invalid = json!({ "actor": { "mbox": "mailto:load@example.org" }, "object": { "id": "urn:x" } });
        assert_eq!(post().json(&invalid).send().await.unwrap().status(), 400);
    }
    let no_version = app.client.post(app.url("/xapi/statements")).basic_auth(&app.key, Some(&app.secret));
    assert_eq!(no_version.json(&statement(None, "urn:v")).send().await.unwrap().status(), 400);
    // Unauthorized (wrong secret) three times; forbidden (read-only) once.
    for _ in 0..3 {
        let response = app
            .client
            .post(app.url("/xapi/statements"))
            .basic_auth(&app.key, Some("wrong"))
            .header("X-Experience-API-Version", V2)
            .json(&statement(None, "urn:u"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let forbidden = app
        .client
        .post(app.url("/xapi/statements"))
        .basic_auth(&reader_key, Some(&reader_secret))
        .header("X-Experience-API-Version", V2)
        .json(&statement(None, "urn:f"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    // Too large.
    let mut large = statement(None, "urn:large");
    large["result"] = json!({ "response": "x".repeat(MAX_BODY + 1) });
    assert_eq!(post().json(&large).send().await.unwrap().status(), 413);
    // Reads: 4 statement queries, 2 /about, 1 unknown path, 1 analytics
    // request this credential may not make.
    for _ in 0..4 {
        assert_eq!(app.request(Method::GET, "/xapi/statements?limit=1").send().await.unwrap().status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(app.request(Method::GET, "/xapi/about").send().await.unwrap().status(), 200);
    }
    assert_eq!(app.request(Method::GET, "/no/such/place?who=someone").send().await.unwrap().status(), 404);
    assert_eq!(app.request(Method::GET, "/analytics/uptake?org=RJ1").send().await.unwrap().status(), 403);

    let metrics = app.metrics().await;
    let requests: BTreeMap<(String, String, String), f64> = metrics
        .all("lrs_http_requests_total")
        .into_iter()
        .map(|(l, v)| ((l["route"].clone(), l["method"].clone(), l["status"].clone()), v))
        .collect();
    let expected: BTreeMap<(String, String, String), f64> = [
        ("/xapi/statements", "POST", "200", 9.0),
        ("/xapi/statements", "PUT", "204", 1.0),
        ("/xapi/statements", "PUT", "409", 1.0),
        ("/xapi/statements", "POST", "400", 3.0),
        ("/xapi/statements", "POST", "401", 3.0),
        ("/xapi/statements", "POST", "403", 1.0),
        ("/xapi/statements", "POST", "413", 1.0),
        ("/xapi/statements", "GET", "200", 4.0),
        ("/xapi/about", "GET", "200", 2.0),
        ("other", "GET", "404", 1.0),
        ("/analytics/uptake", "GET", "403", 1.0),
    ]
    .into_iter()
    .map(|(r, m, s, v)| ((r.to_owned(), m.to_owned(), s.to_owned()), v))
    .collect();
    assert_eq!(requests, expected);
    let duration_count = |route| metrics.get("lrs_http_request_duration_seconds_count", &[("route", route)]);
    assert_eq!(duration_count("/xapi/statements"), Some(23.0));
    assert_eq!(duration_count("/xapi/about"), Some(2.0));
    assert_eq!(duration_count("other"), Some(1.0));
    let inf = metrics.get("lrs_http_request_duration_seconds_bucket", &[("route", "/xapi/about"), ("le", "+Inf")]);
    assert_eq!(inf, Some(2.0));

    assert_eq!(metrics.get("lrs_statements_ingested_total", &[]), Some(18.0));
    let rejected: BTreeMap<String, f64> =
        metrics.all("lrs_statements_rejected_total").into_iter().map(|(l, v)| (l["reason"].clone(), v)).collect();
    let expected_rejected: BTreeMap<String, f64> = [
        ("invalid", 3.0),
        ("unauthorized", 3.0),
        ("forbidden", 1.0),
        ("conflict", 1.0),
        ("too_large", 1.0),
        ("throttled", 0.0),
        ("unavailable", 0.0),
        ("error", 0.0),
    ]
    .into_iter()
    .map(|(r, v)| (r.to_owned(), v))
    .collect();
    assert_eq!(rejected, expected_rejected);

    // One event per request that stored something: 5 + 3 + 1.
    assert_eq!(metrics.get("lrs_log_end_offset", &[]), Some(9.0));
    let appends = metrics.get("lrs_log_append_duration_seconds_count", &[]).expect("append histogram");
    assert!((1.0..=9.0).contains(&appends), "{appends}");
    let flushes = metrics.get("lrs_log_flush_duration_seconds_count", &[]).expect("flush histogram");
    assert!((1.0..=9.0).contains(&flushes), "{flushes}");
    assert!(metrics.get("lrs_log_size_bytes", &[]).expect("log size") > 0.0);
    // Every write handed to the writer (the 5 + 3 POSTs, the repeat and both
    // PUTs) has its time there counted; the views are waited for by the
    // ones it accepted, not by the refused PUT.
    let stage = |stage| metrics.get("lrs_write_stage_duration_seconds_count", &[("stage", stage)]);
    assert_eq!(stage("writer"), Some(11.0));
    assert_eq!(stage("views"), Some(10.0));
    let views_inf = metrics.get("lrs_write_stage_duration_seconds_bucket", &[("stage", "views"), ("le", "+Inf")]);
    assert_eq!(views_inf, Some(10.0));
    for projection in ["xapi", "learning-hub"] {
        assert!(metrics.get("lrs_projection_lag_events", &[("projection", projection)]).is_some());
        assert!(metrics.get("lrs_projection_lag_seconds", &[("projection", projection)]).is_some());
    }
    // Writes waited for the xAPI views: they applied all nine events, in
    // one to nine batches, taking some time; the Learning Hub views follow.
    let projector = |metric, projection| metrics.get(metric, &[("projection", projection)]).expect(metric);
    assert_eq!(projector("lrs_projection_events_total", "xapi"), 9.0);
    assert!((1.0..=9.0).contains(&projector("lrs_projection_batches_total", "xapi")));
    assert!(projector("lrs_projection_apply_seconds_total", "xapi") > 0.0);
    assert!(projector("lrs_projection_events_total", "learning-hub") <= 9.0);
    // The writer hands the events of statements to the projections decoded:
    // the xAPI views decode only the document's event, and share it with
    // the Learning Hub views, which never decode one themselves.
    let decoded = |projection| projector("lrs_projection_events_decoded_total", projection);
    let handed = |projection| projector("lrs_projection_events_handed_total", projection);
    assert_eq!(decoded("xapi") + handed("xapi"), 9.0);
    assert!(handed("xapi") >= 8.0, "statement events decoded again: {}", decoded("xapi"));
    assert_eq!(decoded("learning-hub"), 0.0);
    assert_eq!(handed("learning-hub"), projector("lrs_projection_events_total", "learning-hub"));
    // Applied in small batches, their postings are held in memory.
    assert!(metrics.get("lrs_views_postings_held", &[]).expect("postings held") > 0.0);
    // These statements name no organisation: no uptake digest waits.
    assert_eq!(metrics.get("lrs_hub_digests_unwritten", &[]), Some(0.0));
    // No label names a person or carries a query.
    for (name, labels, _) in &metrics.samples {
        for value in labels.values() {
            assert!(!value.contains('?') && !value.contains('@') && !value.contains("someone"), "{name} {labels:?}");
        }
    }
    // The scrape itself is counted afterwards.
    let again = app.metrics().await;
    assert_eq!(
        again.get("lrs_http_requests_total", &[("route", "/metrics"), ("method", "GET"), ("status", "200")]),
        Some(1.0)
    );
    // A statement naming its organisation changes the uptake digests of its
    // day, week and month, which wait (no later batch writes them).
    let mut counted = statement(None, "urn:counted");
    counted["context"] = json!({ "extensions": { lrs_hub::facts::ORGANISATION_EXTENSION: "RJ1" } });
    counted["timestamp"] = json!("2026-03-02T10:00:00Z");
    assert_eq!(post().json(&counted).send().await.unwrap().status(), 200);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let waiting = app.metrics().await.get("lrs_hub_digests_unwritten", &[]);
        if waiting == Some(3.0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "unwritten digests: {waiting:?}");
        tokio::task::yield_now().await;
    }
}

/// The writer tells a new statement id from a stored one by a filter of
/// the stored ids, built at start-up from the views, without reading them;
/// an id the filter may hold is read from the views, which decide. A
/// statement stored before the start must be in the filter, or a different
/// statement under its id would be stored beside it.
#[tokio::test]
async fn ids_stored_before_a_start_are_in_the_writers_filter_and_new_ids_skip_the_views() {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let stored_id = uuid::Uuid::new_v4().to_string();
    let log = FileEventLog::open(&data_dir.path().join("log"), FileEventLogConfig::default()).expect("log");
    let mut earlier = statement(Some(&stored_id), "urn:before:restart");
    earlier["stored"] = json!("2026-01-01T00:00:00.000000Z");
    earlier["timestamp"] = json!("2026-01-01T00:00:00.000000Z");
    earlier["authority"] = json!({ "objectType": "Agent", "mbox": "mailto:authority@example.org" });
    earlier["version"] = json!("2.0.0");
    let event = lrs_xapi::events::Event::StatementsStored { statements: vec![earlier], attachments: Vec::new() };
    log.append(vec![lrs_xapi::events::encode(&event)]).await.expect("append");
    let store = Embedded::open_with_log(options(data_dir.path()), Arc::new(log)).expect("store starts");
    let app = serve(store, data_dir).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while app.metrics().await.get("lrs_statement_id_filter_ready", &[]) != Some(1.0) {
        assert!(tokio::time::Instant::now() < deadline, "the id filter was never built");
        tokio::task::yield_now().await;
    }
    let post = |body: Value| app.request(Method::POST, "/xapi/statements").json(&body).send();
    let checks = |metrics: &Metrics, answer: &str| metrics.get("lrs_statement_id_checks_total", &[("answer", answer)]);

    let new_id = uuid::Uuid::new_v4().to_string();
    assert_eq!(post(statement(Some(&new_id), "urn:new")).await.unwrap().status(), 200);
    let metrics = app.metrics().await;
    assert_eq!(checks(&metrics, "filter"), Some(1.0), "a new id is answered by the filter");
    assert_eq!(checks(&metrics, "views"), Some(0.0), "and the views are not read");

    let response = post(statement(Some(&stored_id), "urn:another:statement")).await.unwrap();
    assert_eq!(response.status(), 409, "the id stored before the start is taken");
    let response = app.request(Method::GET, &format!("/xapi/statements?statementId={stored_id}")).send().await.unwrap();
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["object"]["id"], "urn:before:restart", "the stored statement is unchanged");
    // Once the views show the new statement (a query by its id waits for
    // them: its POST was answered once durable, perhaps before they applied
    // it, and until then the writer answers a repeat from what it appended),
    // its repeat is read from the views and accepted.
    let response = app.request(Method::GET, &format!("/xapi/statements?statementId={new_id}")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the new statement is shown");
    assert_eq!(post(statement(Some(&new_id), "urn:new")).await.unwrap().status(), 200);
    let metrics = app.metrics().await;
    assert_eq!(checks(&metrics, "filter"), Some(1.0));
    assert_eq!(checks(&metrics, "views"), Some(2.0), "ids the filter holds are read from the views");
    assert_eq!(checks(&metrics, "recent"), Some(0.0));
    assert_eq!(metrics.get("lrs_statements_ingested_total", &[]), Some(1.0));
    // The build of the writer's filter is reported, and done. (The views'
    // own filters were built from their trees while empty, before they
    // applied the log: no build ran.)
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let building = app.metrics().await.get("lrs_id_filters_building", &[("filter", "statement id")]);
        if building == Some(0.0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the writer's filter building: {building:?}");
        tokio::task::yield_now().await;
    }
}

/// A store that will write starts its projections' filters of ids when it
/// opens, beside the writer's, so that its first writes do not share the
/// CPU with their scans (views that only answer queries never start them).
#[tokio::test]
async fn a_store_opened_to_write_starts_its_projections_filters_at_once() {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let store = Embedded::open(options(data_dir.path())).expect("store starts");
    assert!(store.state.views.filters_started(), "the xAPI views' filters of ids");
    assert!(store.state.hub.filters_started(), "the Learning Hub views' filter of voided ids");
    store.stop().await.expect("store stops");
}

#[tokio::test]
async fn metrics_may_require_a_credential() {
    let app = spawn_app(|options| options.server.metrics_require_credential = true).await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 401);
    let response = app.client.get(app.url("/metrics")).basic_auth(&app.key, Some(&app.secret)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("lrs_http_requests_total"));
}

// ----- the OpenAPI document -----

fn document_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

fn query_parameters(document: &Value, path: &str) -> BTreeSet<String> {
    document["paths"][path]["get"]["parameters"]
        .as_array()
        .map(|parameters| {
            parameters.iter().filter(|p| p["in"] == "query").map(|p| p["name"].as_str().unwrap().to_owned()).collect()
        })
        .unwrap_or_default()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A concrete path for a template.
fn concrete(template: &str) -> String {
    template.split('/').map(|s| if s.starts_with('{') { "probe" } else { s }).collect::<Vec<_>>().join("/")
}

#[tokio::test]
async fn openapi_document_matches_the_routes_and_parameters_served() {
    let app = spawn_app(|_| {}).await;
    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let served: Value = response.json().await.unwrap();
    let document: Value = serde_json::from_str(lrs_server::openapi::DOCUMENT).expect("openapi.json is JSON");
    assert_eq!(served, document);
    assert_eq!(document["openapi"], "3.1.0");

    // The routes the code registers and the document, both ways.
    let routes: BTreeSet<(String, String)> =
        NON_XAPI_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(routes.len(), NON_XAPI_ROUTES.len(), "a route is listed twice");
    let documented = document_operations(&document);
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&routes).collect();
    assert!(undocumented.is_empty(), "served but not in openapi.json: {undocumented:?}");
    assert!(not_served.is_empty(), "in openapi.json but not served: {not_served:?}");
    assert!(documented.iter().all(|(_, path)| !path.starts_with("/xapi")), "the xAPI is not documented here");

    // Every listed route is really routed (its template, not the fallback,
    // answered it, and the method is allowed there).
    for (method, template) in NON_XAPI_ROUTES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.request(method.clone(), &concrete(template)).send().await.unwrap();
        assert_ne!(response.status(), 405, "{method} {template}");
    }
    let metrics = app.metrics().await;
    let matched: BTreeSet<(String, String)> = metrics
        .all("lrs_http_requests_total")
        .into_iter()
        .filter(|(labels, _)| labels["status"] != "405")
        .map(|(labels, _)| (labels["method"].clone(), labels["route"].clone()))
        .collect();
    for (method, template) in NON_XAPI_ROUTES {
        assert!(matched.contains(&(method.to_string(), template.to_string())), "{method} {template} is not routed");
    }

    // Query parameters: the document lists what the handlers accept.
    use lrs_server::analytics::{COVERAGE_PARAMETERS, LEARNER_PARAMETERS, UPTAKE_PARAMETERS};
    assert_eq!(query_parameters(&document, "/analytics/uptake"), names(UPTAKE_PARAMETERS));
    assert_eq!(query_parameters(&document, "/analytics/competencies/coverage"), names(COVERAGE_PARAMETERS));
    for view in ["transcript", "competencies"] {
        let path = format!("/analytics/learners/{{learner}}/{view}");
        assert_eq!(query_parameters(&document, &path), names(LEARNER_PARAMETERS), "{path}");
    }
    // …and the handlers agree: every documented parameter is known to the
    // handler, an undocumented one is refused by name.
    for (method, template) in NON_XAPI_ROUTES.iter().filter(|(m, _)| *m == "GET") {
        let documented = query_parameters(&document, template);
        if documented.is_empty() {
            continue;
        }
        let path = concrete(template);
        let response = app.request(Method::GET, &format!("{path}?undocumented=1")).send().await.unwrap();
        assert_eq!(response.status(), 400, "{method} {template} accepts an undocumented parameter");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["path"], "?undocumented", "{template}: {body}");
        for name in &documented {
            let response = app.request(Method::GET, &format!("{path}?{name}=x")).send().await.unwrap();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.contains("unknown parameter"), "{template} refuses documented {name}: {body}");
        }
    }
}

// ----- the access log -----

thread_local! {
    /// Log output of this thread, when it captures.
    static CAPTURED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the emitting thread's capture, if it has one.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(buffer) = captured.borrow_mut().as_mut() {
                buffer.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One JSON subscriber for the whole test binary, as `--log-format json`
/// sets up (a scoped subscriber misses events whose call sites other tests'
/// threads registered first); only capturing threads keep its output.
fn init_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(|| ThreadCapture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}

fn data_file(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

/// Single-threaded, so the server's tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn access_log_names_route_status_latency_and_credential_but_no_secret_body_or_query() {
    const ISSUER: &str = "https://sign-in.example.nhs.uk";
    const AUDIENCE: &str = "lrs-operations-test";
    const LEARNER: &str = "L7730155";
    const EMAIL: &str = "zebedee.quillfeather@example.nhs.uk";
    const RESPONSE: &str = "free text mentioning a diagnosis";
    init_logging();
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));

    let verifier =
        lrs_server::jwt::JwtVerifier::from_pem_files(&[data_file("test-only-jwt-rsa-public.pem")], ISSUER, AUDIENCE)
            .unwrap();
    let app = spawn_app(|options| options.jwt = Some(verifier)).await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "sub": LEARNER, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 });
    let key =
        jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(data_file("test-only-jwt-rsa-private.pem")).unwrap())
            .unwrap();
    let token =
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap();

    let mut body = statement(None, "urn:logged");
    body["actor"] = json!({ "mbox": format!("mailto:{EMAIL}") });
    body["result"] = json!({ "response": RESPONSE });
    let agent: String =
        form_urlencoded::byte_serialize(format!("{{\"mbox\":\"mailto:{EMAIL}\"}}").as_bytes()).collect();
    // (method, path, expected route, status, credential)
    let mut expected = Vec::new();
    let response = app.request(Method::POST, "/xapi/statements").json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    expected.push(("POST", "/xapi/statements", 200, "test-client"));
    let response = app.request(Method::GET, &format!("/xapi/statements?agent={agent}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    expected.push(("GET", "/xapi/statements", 200, "test-client"));
    let response = app
        .client
        .get(app.url(&format!("/xapi/statements?agent={agent}")))
        .basic_auth(&app.key, Some("not-the-secret"))
        .header("X-Experience-API-Version", V2)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    expected.push(("GET", "/xapi/statements", 401, "-"));
    let response =
        app.client.get(app.url("/analytics/learners/me/transcript")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    expected.push(("GET", "/analytics/learners/{learner}/transcript", 200, "jwt"));
    let response =
        app.request(Method::GET, &format!("/analytics/learners/{LEARNER}/competencies")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    expected.push(("GET", "/analytics/learners/{learner}/competencies", 403, "test-client"));
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    expected.push(("GET", "/health", 200, "-"));

    let text = String::from_utf8(CAPTURED.with(|captured| captured.borrow_mut().take()).unwrap()).unwrap();
    let access: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "lrs::access")
        .collect();
    assert_eq!(access.len(), expected.len(), "one line per request:\n{text}");
    for (line, (method, route, status, credential)) in access.iter().zip(&expected) {
        let fields = &line["fields"];
        assert_eq!(fields["method"], *method, "{line}");
        assert_eq!(fields["route"], *route, "{line}");
        assert_eq!(fields["status"], *status, "{line}");
        assert_eq!(fields["credential"], *credential, "{line}");
        assert!(fields["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
        assert!(fields.get("path").is_none(), "{line}");
    }
    for secret in [
        app.secret.as_str(),
        "not-the-secret",
        token.as_str(),
        LEARNER,
        EMAIL,
        "quillfeather",
        RESPONSE,
        "urn:logged",
        "agent=",
        agent.as_str(),
        "learner L",
    ] {
        assert!(!text.contains(secret), "the log contains {secret:?}:\n{text}");
    }
}
