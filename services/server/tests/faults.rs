//! Faults under the store, injected into a real embedded log: a failing
//! disk, a stalled projection, a flood of large uploads. Writes are refused
//! with 503 and `Retry-After`; reads, health and what was stored before stay
//! as they were; the store recovers by itself once the fault is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use lrs_eventlog::{EventLog, FileEventLog, FileEventLogConfig, LogError, LogRecord, Offset};
use lrs_server::credentials::{self, Scope};
use lrs_server::{Embedded, EmbeddedOptions};

#[path = "api/support.rs"]
#[allow(unused_imports)]
mod support;

/// The embedded log, with switches: appends fail as a full or failing disk
/// makes them fail; reads stall as a projection that cannot keep up.
struct FaultyLog {
    inner: FileEventLog,
    fail_appends: AtomicBool,
    stall_reads: AtomicBool,
    resumed: Notify,
    /// Ends the stall when a read request reaches the server.
    release_on_read: AtomicBool,
}

impl FaultyLog {
    fn release(&self) {
        self.stall_reads.store(false, Ordering::SeqCst);
        self.resumed.notify_waiters();
    }
}

#[async_trait]
impl EventLog for FaultyLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        if self.fail_appends.load(Ordering::SeqCst) {
            return Err(LogError::Storage("No space left on device (os error 28)".to_owned()));
        }
        self.inner.append(events).await
    }

    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        while self.stall_reads.load(Ordering::SeqCst) {
            let resumed = self.resumed.notified();
            if !self.stall_reads.load(Ordering::SeqCst) {
                break;
            }
            resumed.await;
        }
        self.inner.read_bounded(from, max, max_bytes).await
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        self.inner.end_offset().await
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        self.inner.wait_beyond(offset, timeout).await
    }
}

struct App {
    log: Arc<FaultyLog>,
    base: String,
    client: Client,
    key: String,
    secret: String,
    _dir: tempfile::TempDir,
}

async fn spawn(adjust: impl FnOnce(&mut EmbeddedOptions)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let inner = FileEventLog::open(&dir.path().join("log"), FileEventLogConfig::default()).unwrap();
    spawn_over(dir, inner, false, adjust).await
}

/// As [`spawn`], over `inner`, the log in `dir`, which may hold events
/// already; when `stalled`, the log's reads stall from the start until a
/// read request arrives.
async fn spawn_over(
    dir: tempfile::TempDir,
    inner: FileEventLog,
    stalled: bool,
    adjust: impl FnOnce(&mut EmbeddedOptions),
) -> App {
    let (credential, secret) = credentials::add(dir.path(), "faults", None, None, vec![Scope::All]).unwrap();
    // Every organisation's analytics too.
    credentials::grant_organisations(dir.path(), &credential.key, vec!["*".to_owned()]).unwrap();
    let log = Arc::new(FaultyLog {
        inner,
        fail_appends: AtomicBool::new(false),
        stall_reads: AtomicBool::new(stalled),
        resumed: Notify::new(),
        release_on_read: AtomicBool::new(stalled),
    });
    let mut options = EmbeddedOptions::new(dir.path());
    options.store.cache_bytes = 8 * 1024 * 1024;
    adjust(&mut options);
    let store = Embedded::open_with_log(options, log.clone()).unwrap();
    let base = serve_releasing_on_read(store.router(), &log, store).await;
    let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    App { log, base, client, key: credential.key, secret, _dir: dir }
}

/// Serves `router` on loopback (its address), ending the log's stall (when
/// `release_on_read` is set) as a read arrives, in either syntax; `keep`
/// (the store behind the router) lives as long as the server.
async fn serve_releasing_on_read(router: axum::Router, log: &Arc<FaultyLog>, keep: impl Send + 'static) -> String {
    let faults = log.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let read = request.method() == axum::http::Method::GET || request.uri().query() == Some("method=GET");
            if read && faults.release_on_read.swap(false, Ordering::SeqCst) {
                faults.release();
            }
            next.run(request)
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
        drop(keep);
    });
    base
}

impl App {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.key, Some(&self.secret))
            .header("X-Experience-API-Version", "2.0.0")
    }

    async fn post(&self, statement: &Value) -> reqwest::Response {
        self.request(reqwest::Method::POST, "/xapi/statements").json(statement).send().await.unwrap()
    }

    async fn get_statement(&self, id: &str) -> StatusCode {
        self.request(reqwest::Method::GET, &format!("/xapi/statements?statementId={id}")).send().await.unwrap().status()
    }
}

fn statement(n: u32) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "actor": {"mbox": format!("mailto:learner{n}@example.org")},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"id": format!("http://example.org/course/{n}")}
    })
}

async fn assert_refused_with_retry_after(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(response.headers().contains_key("retry-after"), "{what}: no Retry-After");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_refuses_writes_with_503_keeps_reads_and_damages_nothing() {
    let app = spawn(|_| {}).await;
    let before = statement(1);
    assert_eq!(app.post(&before).await.status(), 200);
    let document = "/xapi/activities/state?activityId=http://example.org/a&stateId=s&agent=%7B%22mbox%22%3A%22mailto%3Aa%40example.org%22%7D";
    let put = app.request(reqwest::Method::PUT, document).header("Content-Type", "text/plain").body("version 1");
    assert_eq!(put.send().await.unwrap().status(), 204);

    app.log.fail_appends.store(true, Ordering::SeqCst);
    let during = statement(2);
    assert_refused_with_retry_after(app.post(&during).await, "a statement on a failing disk").await;
    let batch = json!([statement(3), statement(4)]);
    let response = app.request(reqwest::Method::POST, "/xapi/statements").json(&batch).send().await.unwrap();
    assert_refused_with_retry_after(response, "a batch on a failing disk").await;
    let put = app
        .request(reqwest::Method::PUT, document)
        .header("Content-Type", "text/plain")
        .header("If-Match", "*")
        .body("version 2");
    assert_refused_with_retry_after(put.send().await.unwrap(), "a document on a failing disk").await;
    // Reads and health go on; what was stored is intact.
    assert_eq!(app.client.get(format!("{}/health", app.base)).send().await.unwrap().status(), 200);
    assert_eq!(app.get_statement(before["id"].as_str().unwrap()).await, 200);
    assert_eq!(app.get_statement(during["id"].as_str().unwrap()).await, 404);
    let stored = app.request(reqwest::Method::GET, document).send().await.unwrap();
    assert_eq!(stored.text().await.unwrap(), "version 1");

    app.log.fail_appends.store(false, Ordering::SeqCst);
    assert_eq!(app.post(&during).await.status(), 200, "writes work again once the disk does");
    assert_eq!(app.get_statement(during["id"].as_str().unwrap()).await, 200);
    let all: Value = app.request(reqwest::Method::GET, "/xapi/statements").send().await.unwrap().json().await.unwrap();
    assert_eq!(all["statements"].as_array().unwrap().len(), 2, "nothing of the refused writes was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_projection_makes_writes_slow_down_instead_of_piling_up() {
    let app = spawn(|options| {
        options.max_projection_lag = 3;
        options.server.read_your_writes_timeout = Duration::from_millis(50);
    })
    .await;
    assert_eq!(app.post(&statement(0)).await.status(), 200);
    app.log.stall_reads.store(true, Ordering::SeqCst);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 1..=10 {
        let body = statement(n);
        let response = app.post(&body).await;
        if response.status() == 200 {
            accepted.push(body["id"].as_str().unwrap().to_owned());
        } else {
            assert_refused_with_retry_after(response, "a write while the projection is stalled").await;
            refused += 1;
        }
    }
    assert!(accepted.len() <= 4, "at most the allowed lag is accepted: {}", accepted.len());
    assert!(refused >= 6, "the rest is refused: {refused}");
    assert_eq!(app.client.get(format!("{}/health", app.base)).send().await.unwrap().status(), 200);

    app.log.release();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = app.post(&statement(99)).await;
        if response.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "writes never resumed: {}", response.status());
    }
    for id in accepted {
        assert_eq!(app.get_statement(&id).await, 200, "an acknowledged write is visible once caught up");
    }
}

/// Waits (at most 30 s) until the xAPI views show every write (`/ready`).
async fn wait_until_projected(app: &App) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready: Value = app.client.get(format!("{}/ready", app.base)).send().await.unwrap().json().await.unwrap();
        if ready["checks"]["projection:xapi"]["lag_events"] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the writes were never projected: {ready}");
        tokio::task::yield_now().await;
    }
}

/// Stalls the views and posts `statement(n)` for each of `numbers`: each
/// is answered while the views stand still (200), and `/ready` counts
/// them unprojected. Their ids.
async fn post_while_stalled(app: &App, numbers: impl IntoIterator<Item = u32>) -> Vec<String> {
    app.log.stall_reads.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for n in numbers {
        let body = statement(n);
        assert_eq!(app.post(&body).await.status(), 200, "acknowledged while the views are stalled");
        acknowledged.push(body["id"].as_str().unwrap().to_owned());
    }
    let ready: Value = app.client.get(format!("{}/ready", app.base)).send().await.unwrap().json().await.unwrap();
    let lag = ready["checks"]["projection:xapi"]["lag_events"].as_u64();
    assert_eq!(lag, Some(acknowledged.len() as u64), "acknowledged before projected: {ready}");
    acknowledged
}

/// By default a write is answered once durable in the log, without waiting
/// for the views while few statements are unprojected
/// (`DEFAULT_ACKNOWLEDGE_AHEAD`); reads wait for them instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_write_is_answered_without_waiting_for_the_views() {
    let app = spawn(|options| {
        assert_eq!(options.server.acknowledge_ahead, lrs_server::app::DEFAULT_ACKNOWLEDGE_AHEAD);
        assert!(options.server.acknowledge_ahead >= 64, "64 clients' single statements are not held up");
        // A write that waited for the stalled views would outlast the
        // client's 30-second timeout.
        options.server.read_your_writes_timeout = Duration::from_secs(600);
    })
    .await;
    let acknowledged = post_while_stalled(&app, 0..3).await;
    app.log.release_on_read.store(true, Ordering::SeqCst);
    for id in &acknowledged {
        assert_eq!(app.get_statement(id).await, StatusCode::OK, "{id} is read back");
    }
}

/// A write answered ahead of the views is covered by the
/// Consistent-Through of a read after it: the header is taken once the
/// read has waited for the views, in either syntax.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_through_covers_a_write_answered_ahead_of_the_views() {
    let app = spawn(|options| options.server.read_your_writes_timeout = Duration::from_secs(600)).await;
    for alternate in [false, true] {
        let id = post_while_stalled(&app, [u32::from(alternate)]).await.remove(0);
        app.log.release_on_read.store(true, Ordering::SeqCst);
        let response = match alternate {
            false => app.request(reqwest::Method::GET, &format!("/xapi/statements?statementId={id}")),
            true => support::alternate_syntax_get(
                &app.client,
                &app.base,
                "/xapi/statements",
                (&app.key, &app.secret),
                &[("statementId", id.as_str())],
            ),
        }
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let header = response.headers()["x-experience-api-consistent-through"].to_str().unwrap().to_owned();
        let statement: Value = response.json().await.unwrap();
        let through = chrono::DateTime::parse_from_rfc3339(&header).unwrap();
        let stored = chrono::DateTime::parse_from_rfc3339(statement["stored"].as_str().unwrap()).unwrap();
        assert!(through >= stored, "alternate syntax {alternate}: consistent through {through}, stored {stored}");
    }
}

/// How many reads have waited for the views, by what they waited for
/// (`lrs_read_wait_duration_seconds_count`).
async fn read_waits(app: &App) -> std::collections::BTreeMap<String, u64> {
    let text = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("lrs_read_wait_duration_seconds_count{for=\""))
        .filter_map(|rest| rest.split_once("\"} "))
        .map(|(label, count)| (label.to_owned(), count.parse().unwrap()))
        .collect()
}

/// A statement query waits only for the writes answered ahead of the views
/// that may change what it finds: those with its id, or with every one of
/// its facet filters; and a void, a query with no filter or one in the
/// canonical format (any write may change activity definitions) waits for
/// everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_query_waits_only_for_the_writes_answered_ahead_that_may_change_it() {
    // A read that waits gives up after the bound (the views stay stalled),
    // and counts the wait.
    let app = spawn(|options| options.server.read_your_writes_timeout = Duration::from_millis(200)).await;
    let shown = statement(1);
    assert_eq!(app.post(&shown).await.status(), 200);
    wait_until_projected(&app).await;
    let ahead = post_while_stalled(&app, [2]).await.remove(0);
    let shown_id = shown["id"].as_str().unwrap();
    let get = |query: String| {
        let app = &app;
        async move {
            let response =
                app.request(reqwest::Method::GET, &format!("/xapi/statements?{query}")).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            let body: Value = response.json().await.unwrap();
            body
        }
    };
    let agent = |n: u32| format!("agent=%7B%22mbox%22%3A%22mailto%3Alearner{n}%40example.org%22%7D");
    let completed = "verb=http%3A%2F%2Fadlnet.gov%2Fexpapi%2Fverbs%2Fcompleted";
    let course = |n: u32| format!("activity=http%3A%2F%2Fexample.org%2Fcourse%2F{n}");

    // Nothing answered ahead can change these: none waits.
    let before = read_waits(&app).await;
    let found = get(agent(1)).await;
    assert_eq!(found["statements"][0]["id"], shown["id"], "{found}");
    assert_eq!(get(format!("statementId={shown_id}")).await["id"], shown["id"]);
    // The statement answered ahead is completed too, but on another course.
    let found = get(format!("{completed}&{}", course(1))).await;
    assert_eq!(found["statements"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(read_waits(&app).await, before, "no read waited for a write that cannot change it");

    // These may change: each waits (and gives up, the views being stalled;
    // the one answered ahead is not found then). (`/metrics` takes seconds
    // while the log's reads stall, so the waits are counted together.)
    let waits_since =
        |before: &std::collections::BTreeMap<String, u64>,
         after: &std::collections::BTreeMap<String, u64>,
         label: &str| { after.get(label).copied().unwrap_or(0) - before.get(label).copied().unwrap_or(0) };
    let before = read_waits(&app).await;
    for query in [agent(2), format!("statementId={ahead}"), format!("{completed}&{}", course(2))] {
        app.request(reqwest::Method::GET, &format!("/xapi/statements?{query}")).send().await.unwrap();
    }
    let after = read_waits(&app).await;
    assert_eq!(waits_since(&before, &after, "statement-query"), 3, "{after:?}");
    assert_eq!(waits_since(&before, &after, "everything"), 0, "{after:?}");
    for query in ["limit=10".to_owned(), format!("{}&format=canonical", agent(1))] {
        get(query).await;
    }
    let before = after;
    let after = read_waits(&app).await;
    assert_eq!(waits_since(&before, &after, "everything"), 2, "{after:?}");
    assert_eq!(waits_since(&before, &after, "statement-query"), 0, "{after:?}");

    // A void answered ahead may change any query.
    let void = json!({
        "actor": {"mbox": "mailto:admin@example.org"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
        "object": {"objectType": "StatementRef", "id": shown_id}
    });
    assert_eq!(app.post(&void).await.status(), 200);
    let before = after;
    get(agent(1)).await;
    let after = read_waits(&app).await;
    assert_eq!(waits_since(&before, &after, "statement-query"), 1, "after a void: {after:?}");

    // Once the views move, every write is read back.
    app.log.release();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found = get(agent(2)).await;
        if found["statements"].as_array().is_some_and(|s| !s.is_empty()) {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "never shown: {found}");
    };
    assert_eq!(found["statements"][0]["id"], ahead.as_str());
    assert_eq!(app.get_statement(shown_id).await, StatusCode::NOT_FOUND, "voided");
}

/// A document read waits only for document writes: not for statements
/// answered ahead of the views, and for a document write answered ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_read_waits_only_for_document_writes() {
    let app = spawn(|options| options.server.read_your_writes_timeout = Duration::from_millis(200)).await;
    let document = "/xapi/activities/state?activityId=http://example.org/a&stateId=s&agent=%7B%22mbox%22%3A%22mailto%3Aa%40example.org%22%7D";
    let put = |version: &str, if_match: bool| {
        let mut put = app.request(reqwest::Method::PUT, document).header("Content-Type", "text/plain");
        if if_match {
            put = put.header("If-Match", "*");
        }
        put.body(version.to_owned()).send()
    };
    let read = || async { app.request(reqwest::Method::GET, document).send().await.unwrap().text().await.unwrap() };
    assert_eq!(put("version 1", false).await.unwrap().status(), 204);
    wait_until_projected(&app).await;
    post_while_stalled(&app, [1]).await;
    let before = read_waits(&app).await;
    assert_eq!(read().await, "version 1");
    assert_eq!(read_waits(&app).await, before, "a statement answered ahead changes no document");

    // A document write is decided once the views show every write before
    // it, and then answered ahead of them.
    app.log.release();
    wait_until_projected(&app).await;
    app.log.stall_reads.store(true, Ordering::SeqCst);
    assert_eq!(put("version 2", true).await.unwrap().status(), 204, "answered ahead of the stalled views");
    let before = read_waits(&app).await;
    read().await;
    let after = read_waits(&app).await;
    assert_eq!(after["document"], before["document"] + 1, "{after:?}");
    assert_eq!(after["everything"], before["everything"], "{after:?}");

    app.log.release();
    wait_until_projected(&app).await;
    assert_eq!(read().await, "version 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_acknowledged_ahead_of_a_stalled_projection_and_a_read_waits_for_them() {
    let app = spawn(|options| {
        options.server.acknowledge_ahead = 5;
        // A write that waited for the stalled views would outlast the
        // client's 30-second timeout.
        options.server.read_your_writes_timeout = Duration::from_secs(600);
    })
    .await;
    assert_eq!(app.post(&statement(0)).await.status(), 200);
    // Acknowledged ahead, the first write may not be projected yet: the
    // stall starts once it is, so the lag below counts only what follows.
    wait_until_projected(&app).await;
    let acknowledged = post_while_stalled(&app, 1..=3).await;

    // The stall ends as the read arrives: the read waits for the views to
    // show every acknowledged write instead of answering without them.
    app.log.release_on_read.store(true, Ordering::SeqCst);
    let all: Value = app.request(reqwest::Method::GET, "/xapi/statements").send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = all["statements"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "every acknowledged statement is read back: {ids:?}");
    for id in &acknowledged {
        assert!(ids.contains(&id.as_str()), "{id} is missing from {ids:?}");
    }
}

/// A store reopened over a log that holds statements (written, and
/// acknowledged, before a restart) with views that do not show them yet:
/// sled writes the views to disk every 500 ms, and deleted views are
/// rebuilt. The log's reads stall until the first read request arrives.
/// Returns the store and the ids of the statements, ada's in RJ1 on the
/// activity `.../activities/<n>`, on 1 March 2026.
async fn restarted_behind_its_log() -> (App, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = FileEventLog::open(&dir.path().join("log"), FileEventLogConfig::default()).unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = uuid::Uuid::new_v4().to_string();
        let at = format!("2026-03-01T10:00:0{n}.000000Z");
        let statement = json!({
            "id": id,
            "actor": { "objectType": "Agent", "account": { "homePage": "https://learninghub.nhs.uk", "name": "ada" } },
            "verb": { "id": support::COMPLETED },
            "object": { "objectType": "Activity", "id": format!("https://learninghub.nhs.uk/activities/{n}") },
            "context": { "extensions": { "https://learninghub.nhs.uk/xapi/ext/organisation": "RJ1" } },
            "timestamp": at, "stored": at, "version": "2.0.0",
            "authority": { "objectType": "Agent", "mbox": "mailto:authority@example.org" }
        });
        let event = lrs_xapi::events::Event::StatementsStored { statements: vec![statement], attachments: Vec::new() };
        log.append(vec![lrs_xapi::events::encode(&event)]).await.unwrap();
        ids.push(id);
    }
    let app = spawn_over(dir, log, true, |options| {
        // Long enough that a read that waited for nothing fails below,
        // rather than one that waited for the bound.
        options.server.read_your_writes_timeout = Duration::from_secs(600);
    })
    .await;
    // Signs the credential in (checking a secret takes long enough for a
    // released projection to catch up) with a request that is no read and
    // writes nothing.
    assert_eq!(app.post(&json!({})).await.status(), StatusCode::BAD_REQUEST);
    (app, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_an_xapi_read_waits_for_the_views_to_show_the_writes_already_in_the_log() {
    let (app, ids) = restarted_behind_its_log().await;
    for id in &ids {
        assert_eq!(app.get_statement(id).await, StatusCode::OK, "{id}, written before the restart, is read back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_transcript_waits_for_the_views_to_show_the_learners_writes_already_in_the_log() {
    let (app, _) = restarted_behind_its_log().await;
    let response = app.request(reqwest::Method::GET, "/analytics/learners/ada/transcript").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let transcript: Value = response.json().await.unwrap();
    let activities = transcript["activities"].as_array().expect("activities");
    assert_eq!(activities.len(), 3, "every activity written before the restart: {transcript}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_uptake_waits_for_the_views_to_show_the_organisations_writes_already_in_the_log() {
    let (app, _) = restarted_behind_its_log().await;
    let path = "/analytics/uptake?org=RJ1&from=2026-03-01&to=2026-03-01&granularity=day";
    let response = app.request(reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let uptake: Value = response.json().await.unwrap();
    assert_eq!(uptake["periods"][0]["statements"], 3, "every statement written before the restart: {uptake}");
}

/// A projection replica (`lrs project`) over the same log, served on
/// loopback: it acknowledges nothing itself, so before a read it waits for
/// the log's end.
async fn spawn_replica(app: &App, dir: &std::path::Path) -> (String, String, String) {
    let (credential, secret) = credentials::add(dir, "replica", None, None, vec![Scope::All]).unwrap();
    let mut options = lrs_server::cluster::ProjectionOptions {
        data_dir: dir.to_owned(),
        store: lrs_server::StoreOptions::cache(8 * 1024 * 1024),
        frameworks: lrs_hub::frameworks::Frameworks::empty(),
        server: Default::default(),
    };
    options.server.read_your_writes_timeout = Duration::from_secs(600);
    let replica = lrs_server::cluster::ProjectionService::open_with_log(app.log.clone(), options, None).unwrap();
    let base = serve_releasing_on_read(replica.router(), &app.log, replica).await;
    (base, credential.key, secret)
}

/// A read in the 1.0.3 alternate syntax (`POST ?method=GET`, headers and
/// parameters as form fields) of every statement, as (status, ids).
async fn read_all_in_alternate_syntax(
    client: &Client,
    base: &str,
    key: &str,
    secret: &str,
) -> (StatusCode, Vec<String>) {
    let response = support::alternate_syntax_get(client, base, "/xapi/statements", (key, secret), &[("limit", "100")])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let ids = body["statements"]
        .as_array()
        .map_or_else(Vec::new, |all| all.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect());
    (status, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_in_the_alternate_syntax_wait_for_acknowledged_writes_on_the_writer_and_on_a_projection_replica() {
    let app = spawn(|options| {
        options.server.acknowledge_ahead = 5;
        options.server.read_your_writes_timeout = Duration::from_secs(600);
    })
    .await;
    let replica_dir = tempfile::tempdir().unwrap();
    let (replica, replica_key, replica_secret) = spawn_replica(&app, replica_dir.path()).await;
    let mut acknowledged = vec![];
    let body = statement(0);
    assert_eq!(app.post(&body).await.status(), 200);
    acknowledged.push(body["id"].as_str().unwrap().to_owned());

    for (base, key, secret) in [(&app.base, &app.key, &app.secret), (&replica, &replica_key, &replica_secret)] {
        // A first read signs the credential in (checking a secret takes a
        // while, long enough for a released projection to catch up).
        assert_eq!(read_all_in_alternate_syntax(&app.client, base, key, secret).await.0, 200);
        app.log.stall_reads.store(true, Ordering::SeqCst);
        for n in 0..2 {
            let body = statement(acknowledged.len() as u32 * 10 + n);
            assert_eq!(app.post(&body).await.status(), 200, "acknowledged while the views are stalled");
            acknowledged.push(body["id"].as_str().unwrap().to_owned());
        }
        // The stall ends as the read arrives: the read waits for every
        // acknowledged write instead of answering without them.
        app.log.release_on_read.store(true, Ordering::SeqCst);
        let (status, ids) = read_all_in_alternate_syntax(&app.client, base, key, secret).await;
        assert_eq!(status, 200, "read at {base}");
        for id in &acknowledged {
            assert!(ids.contains(id), "read at {base}: {id} is missing from {ids:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_bodies_in_flight_get_503_instead_of_memory() {
    let app = spawn(|options| {
        options.server.max_inflight_body_bytes = 64 * 1024;
    })
    .await;
    // One upload that declares 60 KiB and sends it slowly (a raw
    // connection) holds most of the budget while it is being received.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.key, app.secret))
    };
    let head = format!(
        "PUT /xapi/activities/profile?activityId=http://example.org/a&profileId=big HTTP/1.1\r\nHost: x\r\n\
         Authorization: Basic {basic}\r\nX-Experience-API-Version: 2.0.0\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 61440\r\n\r\n"
    );
    let start_slow_upload = || async {
        let mut slow = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
        slow.write_all(head.as_bytes()).await.unwrap();
        slow.write_all(&[b'x'; 1024]).await.unwrap();
        slow
    };
    let mut slow = start_slow_upload().await;
    // While it is in flight, another large write is refused at once.
    // Each try writes a document of its own: a try that went through before
    // the slow upload held the budget created its document, and a PUT
    // without a precondition over an existing document is a 409.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let response = app
            .request(
                reqwest::Method::PUT,
                &format!("/xapi/activities/profile?activityId=http://example.org/a&profileId=other-{attempt}"),
            )
            .header("Content-Type", "application/octet-stream")
            .body(vec![b'y'; 16 * 1024])
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(response.headers().contains_key("retry-after"));
            break;
        }
        // The slow upload may not have reached the server yet, or reached
        // it while this write held the budget and was refused itself (it
        // has an answer already): then start it again.
        let mut early = [0u8; 1024];
        match slow.try_read(&mut early) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(read) => {
                let answer = String::from_utf8_lossy(&early[..read]).into_owned();
                assert!(answer.starts_with("HTTP/1.1 503"), "the slow upload was answered early: {answer}");
                slow = start_slow_upload().await;
            }
            Err(error) => panic!("the slow upload's connection failed: {error}"),
        }
        assert!(std::time::Instant::now() < deadline, "the second upload was never refused");
    }
    slow.write_all(&[b'x'; 60 * 1024]).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let read = slow.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the slow upload got no answer");
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 204"), "{}", String::from_utf8_lossy(&answer));
    drop(slow);
    // The budget is back: a write of the same size now goes through.
    let response = app
        .request(reqwest::Method::PUT, "/xapi/activities/profile?activityId=http://example.org/a&profileId=after")
        .header("Content-Type", "application/octet-stream")
        .body(vec![b'y'; 16 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

/// An xAPI resource is read from the xAPI views alone, so a read of it waits
/// for them, not for the Learning Hub views: with the hub never applying the
/// write (no projector runs; the xAPI views are given it by hand), a
/// statement query on a projection replica still answers at once, with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xapi_read_does_not_wait_for_the_learning_hub_views() {
    let dir = tempfile::tempdir().unwrap();
    let (credential, secret) = credentials::add(dir.path(), "reader", None, None, vec![Scope::All]).unwrap();
    let log = Arc::new(FileEventLog::open(&dir.path().join("log"), FileEventLogConfig::default()).unwrap());
    let id = uuid::Uuid::new_v4().to_string();
    let statement = json!({
        "id": id,
        "actor": { "objectType": "Agent", "mbox": "mailto:learner@example.nhs.uk" },
        "verb": { "id": support::COMPLETED },
        "object": { "objectType": "Activity", "id": "https://learninghub.nhs.uk/activities/1" },
        "timestamp": "2026-03-01T10:00:00.000Z",
        "stored": "2026-03-01T10:00:00.000Z",
        "authority": { "objectType": "Agent", "mbox": "mailto:platform@example.nhs.uk" },
        "version": "1.0.0"
    });
    let event = lrs_xapi::events::Event::StatementsStored { statements: vec![statement], attachments: Vec::new() };
    log.append(vec![lrs_xapi::events::encode(&event)]).await.unwrap();
    let store = lrs_server::StoreOptions::cache(8 * 1024 * 1024);
    let views = Arc::new(lrs_projection::Views::open(&dir.path().join("views"), store).unwrap());
    views.apply(&log.read(0, 10).await.unwrap()).unwrap();
    let hub = Arc::new(
        lrs_hub::HubViews::open(&dir.path().join("hub"), store, lrs_hub::frameworks::Frameworks::empty()).unwrap(),
    );
    // Were the read to wait for the hub, it would wait this long.
    let config = lrs_server::ServerConfig { read_your_writes_timeout: Duration::from_secs(600), ..Default::default() };
    let state = lrs_server::AppState::new(
        log.clone(),
        views,
        hub.clone(),
        lrs_server::writer::Writer::ReadOnly,
        lrs_xapi::StatementValidator::new().unwrap(),
        credentials::CredentialStore::open(dir.path()).unwrap(),
        lrs_server::more_links::MoreLinks::open(dir.path()).unwrap(),
        config,
        None,
        Default::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, lrs_server::app(state)).await });

    let read = Client::new()
        .get(format!("{base}/xapi/statements"))
        .basic_auth(&credential.key, Some(&secret))
        .header("X-Experience-API-Version", "2.0.0")
        .send();
    let response = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the statement query waited for the Learning Hub views")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["statements"][0]["id"], json!(id), "{page}");
    assert_eq!(hub.applied_offset(), 0, "the hub never applied the write");
}

/// A learner's own views (transcript, competencies) wait only for the
/// acknowledged writes that may change them: that learner's statements,
/// voids of them, directory loads; an organisation's figures (uptake,
/// coverage) for the statements naming it, voids of them, directory loads.
/// With the Learning Hub views never applying anything (only the xAPI
/// views' projector runs), reads of another learner and another
/// organisation answer at once after a statement and the void of it, while
/// the ends those reads would wait for move as they must; after a
/// directory load, every such read waits.
/// A server whose Learning Hub views apply nothing unless a test hands
/// them records (only the xAPI views' projector runs), with reads allowed
/// to wait ten minutes for them: a read that waits for them fails on the
/// client's 60 s timeout instead.
struct HubLeftBehind {
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
    log: Arc<dyn EventLog>,
    hub: Arc<lrs_hub::HubViews>,
    writes: Arc<lrs_server::scoped_writes::AcknowledgedFor>,
    base: String,
    client: Client,
    key: String,
    secret: String,
}

impl HubLeftBehind {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (credential, secret) = credentials::add(dir.path(), "writer", None, None, vec![Scope::All]).unwrap();
        credentials::grant_organisations(dir.path(), &credential.key, vec!["*".to_owned()]).unwrap();
        let log: Arc<dyn EventLog> =
            Arc::new(FileEventLog::open(&dir.path().join("log"), FileEventLogConfig::default()).unwrap());
        let store = lrs_server::StoreOptions::cache(8 * 1024 * 1024);
        let views = Arc::new(lrs_projection::Views::open(&dir.path().join("views"), store).unwrap());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(lrs_projection::run_projector(log.clone(), views.clone(), stopped));
        let hub = Arc::new(
            lrs_hub::HubViews::open(&dir.path().join("hub"), store, lrs_hub::frameworks::Frameworks::empty()).unwrap(),
        );
        // Were a read to wait for the hub, it would wait this long.
        let config =
            lrs_server::ServerConfig { read_your_writes_timeout: Duration::from_secs(600), ..Default::default() };
        let writer = lrs_server::writer::Writer::Embedded(lrs_server::sequencer::Sequencer::start(
            log.clone(),
            views.clone(),
            64,
            1_000,
        ));
        let state = lrs_server::AppState::new(
            log.clone(),
            views,
            hub.clone(),
            writer,
            lrs_xapi::StatementValidator::new().unwrap(),
            credentials::CredentialStore::open(dir.path()).unwrap(),
            lrs_server::more_links::MoreLinks::open(dir.path()).unwrap(),
            config,
            None,
            Default::default(),
        );
        let writes = state.acknowledged_for.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, lrs_server::app(state)).await });
        let client = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Self { _dir: dir, _stop: stop, log, hub, writes, base, client, key: credential.key, secret }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Result<reqwest::Response> {
        request.basic_auth(&self.key, Some(&self.secret)).header("X-Experience-API-Version", "2.0.0").send().await
    }

    /// Posts a statement, which must be stored; the log's end after it.
    async fn post_statement(&self, statement: &Value) -> Offset {
        let response =
            self.send(self.client.post(format!("{}/xapi/statements", self.base)).json(statement)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        self.log.end_offset().await.unwrap()
    }

    /// Loads learners (CSV rows of learner, organisation); the log's end after.
    async fn load_learners(&self, rows: &str) -> Offset {
        let response = self
            .send(
                self.client
                    .post(format!("{}/admin/learners", self.base))
                    .header("Content-Type", "text/csv")
                    .body(format!("learner,organisation,staff_group\n{rows}")),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        self.log.end_offset().await.unwrap()
    }

    async fn uptake_of(&self, code: &str) -> reqwest::Result<reqwest::Response> {
        self.send(self.client.get(format!("{}/analytics/uptake?org={code}", self.base))).await
    }

    /// Has the Learning Hub views apply everything the log holds.
    async fn hub_catches_up(&self) {
        let end = self.log.end_offset().await.unwrap();
        let records = self.log.read(0, end as usize).await.unwrap();
        self.hub.apply(&records).unwrap();
        assert_eq!(self.hub.applied_offset(), end);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learning_hub_reads_wait_for_the_writes_that_may_change_them_not_everyones() {
    let app = HubLeftBehind::start().await;
    let (log, hub, writes, base, client) = (&app.log, &app.hub, &app.writes, &app.base, &app.client);
    let send = |request| app.send(request);
    let (ada, bea) = (lrs_hub::facts::learning_hub_learner("ada"), lrs_hub::facts::learning_hub_learner("bea"));

    let id = uuid::Uuid::new_v4().to_string();
    let statement = json!({
        "id": id,
        "actor": { "objectType": "Agent", "account": { "homePage": "https://learninghub.nhs.uk", "name": "ada" } },
        "verb": { "id": support::COMPLETED },
        "object": { "objectType": "Activity", "id": "https://learninghub.nhs.uk/activities/1" },
        "context": { "extensions": { "https://learninghub.nhs.uk/xapi/ext/organisation": "RJ1" } },
        "timestamp": "2026-03-01T10:00:00.000Z"
    });
    let response = send(client.post(format!("{base}/xapi/statements")).json(&statement)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let after_statement = log.end_offset().await.unwrap();
    assert_eq!((writes.learner(&ada), writes.learner(&bea)), (after_statement, 0));
    assert_eq!((writes.organisations(["RJ1"]), writes.organisations(["RJ2"])), (after_statement, 0));
    let transcript_of = |learner: &str| send(client.get(format!("{base}/analytics/learners/{learner}/transcript")));
    let uptake_of = |code: &str| send(client.get(format!("{base}/analytics/uptake?org={code}")));
    let coverage_of = |code: &str| send(client.get(format!("{base}/analytics/competencies/coverage?org={code}")));
    let response = transcript_of("bea").await.expect("bea's transcript waited for ada's write");
    assert_eq!(response.status(), StatusCode::OK);
    let response = uptake_of("RJ2").await.expect("RJ2's uptake waited for a write in RJ1");
    assert_eq!(response.status(), StatusCode::OK);
    let response = coverage_of("RJ2").await.expect("RJ2's coverage waited for a write in RJ1");
    assert_eq!(response.status(), StatusCode::OK);

    // The void is by someone else; the views it changes are ada's, which
    // the writer learns from the voided statement in the xAPI views. The
    // statement was answered ahead of them: read it back first (the read
    // waits for them), else the void may find it not there yet and count
    // for everyone.
    let read_back = send(client.get(format!("{base}/xapi/statements?statementId={id}"))).await.unwrap();
    assert_eq!(read_back.status(), StatusCode::OK);
    let void = json!({
        "actor": { "objectType": "Agent", "mbox": "mailto:admin@example.nhs.uk" },
        "verb": { "id": support::VOIDED },
        "object": { "objectType": "StatementRef", "id": id }
    });
    let response = send(client.post(format!("{base}/xapi/statements")).json(&void)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let after_void = log.end_offset().await.unwrap();
    assert!(after_void > after_statement);
    assert_eq!(writes.learner(&ada), after_void, "a void moves the end of the voided statement's actor");
    assert_eq!(writes.learner("mbox:mailto:admin@example.nhs.uk"), 0, "not the voiding actor's");
    assert_eq!(writes.learner(&bea), 0);
    assert_eq!((writes.organisations(["RJ1"]), writes.organisations(["RJ2"])), (after_void, 0));
    let response = transcript_of("bea").await.expect("bea's transcript waited for the void of ada's statement");
    assert_eq!(response.status(), StatusCode::OK);
    let response = uptake_of("RJ2").await.expect("RJ2's uptake waited for the void of a statement in RJ1");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(hub.applied_offset(), 0, "the hub never applied a write");

    let response = send(
        client
            .post(format!("{base}/admin/learners"))
            .header("Content-Type", "text/csv")
            .body("learner,organisation,staff_group\nbea,RXX,\n"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let after_directory = log.end_offset().await.unwrap();
    assert_eq!(
        (writes.learner(&ada), writes.learner(&bea), writes.organisations(["RJ2"])),
        (after_directory, after_directory, after_directory),
        "a directory load may change anyone's views"
    );
}

/// A statement that names no organisation counts for the one the learner
/// directory gives its learner. While the Learning Hub views have not
/// applied every directory load before it, it may change any
/// organisation's figures; once they have, it touches only the
/// organisation the directory they hold gives (or none, for a learner it
/// does not place), and other organisations' uptake answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_naming_no_organisation_waits_reads_of_the_directorys_organisation_once_the_hub_holds_it() {
    let app = HubLeftBehind::start().await;
    let statement_by = |name: &str| {
        json!({
            "actor": { "objectType": "Agent", "account": { "homePage": "https://learninghub.nhs.uk", "name": name } },
            "verb": { "id": support::COMPLETED },
            "object": { "objectType": "Activity", "id": "https://learninghub.nhs.uk/activities/1" },
            "timestamp": "2026-03-01T10:00:00.000Z"
        })
    };
    // RJ1's end and RJ2's.
    let ends = || (app.writes.organisations(["RJ1"]), app.writes.organisations(["RJ2"]));
    let after_directory = app.load_learners("ada,RJ1,\n").await;
    assert_eq!(app.hub.applied_offset(), 0);
    let after_first = app.post_statement(&statement_by("ada")).await;
    assert!(after_first > after_directory);
    assert_eq!(
        ends(),
        (after_first, after_first),
        "the hub has not applied the directory load: any organisation's figures may change"
    );

    app.hub_catches_up().await;
    let after_second = app.post_statement(&statement_by("ada")).await;
    assert_eq!(ends(), (after_second, after_first), "the organisation the directory gives ada, and no other");
    let response = app.uptake_of("RJ2").await.expect("RJ2's uptake waited for a statement the directory puts in RJ1");
    assert_eq!(response.status(), StatusCode::OK);
    let after_unplaced = app.post_statement(&statement_by("nobody-placed")).await;
    assert!(after_unplaced > after_second);
    assert_eq!(
        ends(),
        (after_second, after_first),
        "a learner the directory does not place counts for no organisation"
    );
    assert_eq!(app.hub.applied_offset(), after_first, "the hub applied nothing after it caught up");

    // A directory load the hub has not applied: ada may have moved.
    let after_move = app.load_learners("ada,RJ2,\n").await;
    let after_third = app.post_statement(&statement_by("ada")).await;
    assert!(after_third > after_move);
    assert_eq!(app.writes.organisations(["RJ3"]), after_third, "any organisation's figures may change");
}

/// The Learning Hub projection gathers events into larger batches, as no
/// write waits for it; a Learning Hub read right after a write must not
/// wait for that. With the projection allowed to hold a small batch for an
/// hour and the read to wait ten minutes for it, the learner's transcript
/// still answers at once, with the statement just written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learning_hub_read_after_a_write_has_the_hub_apply_what_it_gathered_at_once() {
    let app = spawn(|options| {
        options.server.learning_hub_gather_wait = Duration::from_secs(3600);
        options.server.read_your_writes_timeout = Duration::from_secs(600);
    })
    .await;
    let (analyst, secret) = credentials::add(app._dir.path(), "analyst", None, None, vec![Scope::AllRead]).unwrap();
    credentials::grant_organisations(app._dir.path(), &analyst.key, vec!["*".to_owned()]).unwrap();
    let statement = json!({
        "actor": { "objectType": "Agent", "account": { "homePage": "https://learninghub.nhs.uk", "name": "gathered" } },
        "verb": { "id": support::COMPLETED },
        "object": { "objectType": "Activity", "id": "https://learninghub.nhs.uk/activities/gathered" },
        "timestamp": "2026-03-01T10:00:00.000Z"
    });
    assert_eq!(app.post(&statement).await.status(), StatusCode::OK);
    let read = app
        .client
        .get(format!("{}/analytics/learners/gathered/transcript", app.base))
        .basic_auth(&analyst.key, Some(&secret))
        .send();
    let response = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the read waited for the Learning Hub views to finish gathering")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let transcript: Value = response.json().await.unwrap();
    let activities = transcript["activities"].as_array().expect("activities");
    assert_eq!(activities.len(), 1, "the transcript shows the write: {transcript}");
    // The read waited, for that learner's writes, and /metrics says so.
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let waits = |wait: &str| {
        let name = format!("lrs_read_wait_duration_seconds_count{{for=\"{wait}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&name)).map(str::to_owned)
    };
    assert_eq!(
        (waits("learner").as_deref(), waits("everything").as_deref(), waits("organisation").as_deref()),
        (Some("1"), Some("0"), Some("0")),
        "{metrics}"
    );
}
