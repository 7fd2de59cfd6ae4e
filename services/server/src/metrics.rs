//! Operational metrics in the Prometheus text exposition format (0.0.4),
//! and readiness.
//!
//! Every label value comes from a small fixed set: route templates (never a
//! raw path or query, which can name people), methods, statuses, rejection
//! reasons and projection names. Nothing here identifies a person, so
//! `/metrics` is open unless `ServerConfig::metrics_require_credential` is
//! set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use lrs_eventlog::{EventLog, LogError, LogRecord, Offset};
use lrs_xapi::events::{self, Event};

use crate::app::AppState;
use crate::sequencer::IdCheck;
use crate::writer::Writer;

/// Upper bounds (seconds) of the buckets of every duration histogram.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Why a statement write (PUT or POST to `/xapi/statements`) was refused.
pub const REJECTION_REASONS: [&str; 8] =
    ["invalid", "unauthorized", "forbidden", "conflict", "too_large", "throttled", "unavailable", "error"];

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The reason a refused statement write counts under, by its status.
pub fn rejection_reason(status: u16) -> Option<&'static str> {
    let reason = match status {
        0..=399 => return None,
        401 => "unauthorized",
        403 => "forbidden",
        409 => "conflict",
        413 => "too_large",
        429 => "throttled",
        503 => "unavailable",
        400..=499 => "invalid",
        _ => "error",
    };
    Some(reason)
}

/// A histogram of durations over [`DURATION_BUCKETS`], lock-free.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = DURATION_BUCKETS.iter().position(|le| seconds <= *le) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        for (le, bucket) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = le.to_string();
            let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_set(labels, Some(&le)));
        }
        let count = self.count().max(cumulative);
        let _ = writeln!(out, "{name}_bucket{} {count}", label_set(labels, Some("+Inf")));
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{} {sum}", label_set(labels, None));
        let _ = writeln!(out, "{name}_count{} {count}", label_set(labels, None));
    }
}

/// `{a="x",b="y"}` (with `le` last when given), or nothing without labels.
fn label_set(labels: &[(&str, &str)], le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(name, value)| format!("{name}=\"{}\"", escape(value))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header_lines(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A histogram family `name`, one histogram for each value of `label`.
fn render_histograms_by<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    histograms: impl Iterator<Item = (&'static str, &'a Histogram)>,
) {
    header_lines(out, name, "histogram", help);
    for (value, histogram) in histograms {
        histogram.render(out, name, &[(label, value)]);
    }
}

/// A method as a label: the standard ones, else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// A stage of a statement or document write, for the time it spends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStage {
    /// Handed to the writer until it answers: waiting for the single
    /// writer's next cycle, deciding, and the append becoming durable (on
    /// Kafka: the append and a projection's answer).
    Writer,
    /// Durable until acknowledged: waiting for the views to show the write.
    Views,
}

impl WriteStage {
    const ALL: [Self; 2] = [Self::Writer, Self::Views];

    fn label(self) -> &'static str {
        match self {
            Self::Writer => "writer",
            Self::Views => "views",
        }
    }
}

/// What a read waited for before it was served: the projections to show
/// the writes acknowledged before it that it must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWait {
    /// Every acknowledged write (xAPI resources, pages, and every read on a
    /// projection replica).
    Everything,
    /// Those that may change one learner's own views.
    Learner,
    /// Those that may change one organisation's figures.
    Organisation,
    /// Those answered ahead of the xAPI views that may change what one
    /// statement query finds (a query with no filter waits for everything).
    Query,
    /// Document writes, before a document read.
    Document,
}

impl ReadWait {
    const ALL: [Self; 5] = [Self::Everything, Self::Learner, Self::Organisation, Self::Query, Self::Document];

    fn label(self) -> &'static str {
        match self {
            Self::Everything => "everything",
            Self::Learner => "learner",
            Self::Organisation => "organisation",
            Self::Query => "statement-query",
            Self::Document => "document",
        }
    }
}

type LogSize = Box<dyn Fn() -> Option<u64> + Send + Sync>;

/// The counters and histograms of one service.
#[derive(Default)]
pub struct Metrics {
    /// (route template, method, status) → requests.
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    /// Route template → request durations.
    durations: Mutex<BTreeMap<String, Arc<Histogram>>>,
    /// Refused statement writes, by [`REJECTION_REASONS`].
    rejected: [AtomicU64; REJECTION_REASONS.len()],
    log_append: Histogram,
    log_flush: Histogram,
    /// By [`WriteStage`], in the order of `WriteStage::ALL` (the order the
    /// variants are declared in, which `stage as usize` indexes by).
    write_stages: [Histogram; WriteStage::ALL.len()],
    /// By [`ReadWait`], in the order of `ReadWait::ALL`: reads that waited.
    read_waits: [Histogram; ReadWait::ALL.len()],
    flushes_observed: AtomicBool,
    log_size: OnceLock<LogSize>,
    /// Offsets are Kafka's (`record << 16 | event`): lags count records.
    kafka_offsets: AtomicBool,
}

impl Metrics {
    /// Records one answered request. `route` is a route template or
    /// `other`; a refused `statement_write` also counts by reason.
    pub fn observe_request(&self, route: &str, method: &Method, status: u16, elapsed: Duration, statement_write: bool) {
        {
            let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            *requests.entry((route.to_owned(), method_label(method), status)).or_default() += 1;
        }
        let histogram = {
            let mut durations = self.durations.lock().unwrap_or_else(PoisonError::into_inner);
            durations.entry(route.to_owned()).or_default().clone()
        };
        histogram.observe(elapsed);
        if statement_write
            && let Some(reason) = rejection_reason(status)
            && let Some(index) = REJECTION_REASONS.iter().position(|r| *r == reason)
        {
            self.rejected[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records how long a statement or document write spent in `stage`.
    pub fn observe_write_stage(&self, stage: WriteStage, elapsed: Duration) {
        self.write_stages[stage as usize].observe(elapsed);
    }

    /// Records how long a read waited for the projections (only reads that
    /// found them behind what they must see).
    pub fn observe_read_wait(&self, wait: ReadWait, elapsed: Duration) {
        self.read_waits[wait as usize].observe(elapsed);
    }

    /// Records how long one append to the log took (until durable).
    pub fn observe_append(&self, elapsed: Duration) {
        self.log_append.observe(elapsed);
    }

    /// Records how long one flush of the embedded log took.
    pub fn observe_flush(&self, elapsed: Duration) {
        self.flushes_observed.store(true, Ordering::Relaxed);
        self.log_flush.observe(elapsed);
    }

    /// Watches the flushes and the size of the embedded log (a weak link
    /// back, so the two do not keep each other alive).
    pub fn watch_embedded_log(self: &Arc<Self>, log: &lrs_eventlog::FileEventLog) {
        self.flushes_observed.store(true, Ordering::Relaxed);
        let metrics = Arc::downgrade(self);
        log.observe_flushes(move |elapsed| {
            if let Some(metrics) = metrics.upgrade() {
                metrics.observe_flush(elapsed);
            }
        });
        let log = log.clone();
        let _ = self.log_size.set(Box::new(move || log.size_on_disk()));
    }

    /// The log's offsets are Kafka's: a lag counts records, not offsets.
    pub fn use_kafka_offsets(&self) {
        self.kafka_offsets.store(true, Ordering::Relaxed);
    }

    /// Events (records, on Kafka) between `applied` and `end`.
    pub fn lag_events(&self, applied: Offset, end: Offset) -> u64 {
        let behind = end.saturating_sub(applied);
        if self.kafka_offsets.load(Ordering::Relaxed) { behind.div_ceil(1 << 16) } else { behind }
    }

    /// `lrs_http_requests_total` and `lrs_http_request_duration_seconds`.
    pub fn render_requests(&self, out: &mut String) {
        header_lines(out, "lrs_http_requests_total", "counter", "HTTP requests answered, by route template.");
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for ((route, method, status), count) in &requests {
            let status = status.to_string();
            let labels = label_set(&[("route", route), ("method", method), ("status", &status)], None);
            let _ = writeln!(out, "lrs_http_requests_total{labels} {count}");
        }
        header_lines(
            out,
            "lrs_http_request_duration_seconds",
            "histogram",
            "Time to answer HTTP requests, by route template.",
        );
        let durations = self.durations.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for (route, histogram) in &durations {
            histogram.render(out, "lrs_http_request_duration_seconds", &[("route", route)]);
        }
    }

    /// `lrs_statements_rejected_total`.
    pub fn render_rejections(&self, out: &mut String) {
        header_lines(
            out,
            "lrs_statements_rejected_total",
            "counter",
            "Statement writes (PUT or POST /xapi/statements) refused, by reason; a refused batch counts once.",
        );
        for (reason, count) in REJECTION_REASONS.iter().zip(&self.rejected) {
            let labels = label_set(&[("reason", reason)], None);
            let _ = writeln!(out, "lrs_statements_rejected_total{labels} {}", count.load(Ordering::Relaxed));
        }
    }

    fn render_write_stages(&self, out: &mut String) {
        render_histograms_by(
            out,
            "lrs_write_stage_duration_seconds",
            "Time statement and document writes spent in each stage: writer (until decided and durable in the log), views (until the views show it, before the acknowledgement).",
            "stage",
            WriteStage::ALL.iter().map(|stage| stage.label()).zip(&self.write_stages),
        );
    }

    fn render_read_waits(&self, out: &mut String) {
        render_histograms_by(
            out,
            "lrs_read_wait_duration_seconds",
            "Time reads that found the projections behind spent waiting for them to show the acknowledged writes they must see: everything, or those that may change one learner's views or one organisation's figures.",
            "for",
            ReadWait::ALL.iter().map(|wait| wait.label()).zip(&self.read_waits),
        );
    }

    fn render_log(&self, out: &mut String, appends: bool) {
        if appends {
            header_lines(
                out,
                "lrs_log_append_duration_seconds",
                "histogram",
                "Time for an append to the event log to become durable.",
            );
            self.log_append.render(out, "lrs_log_append_duration_seconds", &[]);
        }
        if self.flushes_observed.load(Ordering::Relaxed) {
            header_lines(out, "lrs_log_flush_duration_seconds", "histogram", "Time of one flush of the embedded log.");
            self.log_flush.render(out, "lrs_log_flush_duration_seconds", &[]);
        }
        if let Some(size) = self.log_size.get().and_then(|size| size()) {
            header_lines(out, "lrs_log_size_bytes", "gauge", "Size of the event log on disk.");
            let _ = writeln!(out, "lrs_log_size_bytes {size}");
        }
    }
}

/// An [`EventLog`] that times its appends into [`Metrics`].
pub struct TimedLog {
    inner: Arc<dyn EventLog>,
    metrics: Arc<Metrics>,
}

impl TimedLog {
    pub fn wrap(inner: Arc<dyn EventLog>, metrics: Arc<Metrics>) -> Arc<dyn EventLog> {
        Arc::new(Self { inner, metrics })
    }
}

#[async_trait]
impl EventLog for TimedLog {
    async fn append(&self, events: Vec<Vec<u8>>) -> Result<Offset, LogError> {
        let started = std::time::Instant::now();
        let appended = self.inner.append(events).await;
        if appended.is_ok() {
            self.metrics.observe_append(started.elapsed());
        }
        appended
    }

    async fn read_bounded(&self, from: Offset, max: usize, max_bytes: usize) -> Result<Vec<LogRecord>, LogError> {
        self.inner.read_bounded(from, max, max_bytes).await
    }

    async fn end_offset(&self) -> Result<Offset, LogError> {
        self.inner.end_offset().await
    }

    async fn wait_beyond(&self, offset: Offset, timeout: Duration) -> Result<Offset, LogError> {
        self.inner.wait_beyond(offset, timeout).await
    }
}

/// How long `/ready` and `/metrics` wait for the log.
const LOG_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn log_end(state: &AppState) -> Result<Offset, String> {
    match tokio::time::timeout(LOG_PROBE_TIMEOUT, state.log.end_offset()).await {
        Ok(Ok(end)) => Ok(end),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the event log cannot be read");
            Err("the event log cannot be read".to_owned())
        }
        Err(_) => Err(format!("the event log did not answer within {} s", LOG_PROBE_TIMEOUT.as_secs())),
    }
}

/// The projections this process keeps, with their applied offsets; none on
/// a Kafka ingest replica (it keeps no views).
fn projections(state: &AppState) -> Vec<(&'static str, Offset)> {
    if !state.writer.projects_locally() {
        return Vec::new();
    }
    vec![("xapi", state.views.applied_offset()), ("learning-hub", state.hub.applied_offset())]
}

/// When the event was written (`stored`, `updated`), if it says.
fn event_time(payload: &[u8]) -> Option<DateTime<Utc>> {
    let text = match events::decode(payload).ok()? {
        Event::StatementsStored { statements, .. } => statements.first()?.get("stored")?.as_str()?.to_owned(),
        Event::DocumentSet { updated, .. }
        | Event::DocumentDeleted { updated, .. }
        | Event::StateCleared { updated, .. }
        | Event::DocumentRequested { updated, .. } => updated,
        Event::LearnersImported { .. } | Event::OrganisationsImported { .. } => return None,
    };
    DateTime::parse_from_rfc3339(&text).ok().map(|time| time.with_timezone(&Utc))
}

/// Age in seconds of the oldest event a projection has not applied; 0 when
/// it is caught up, or when the next events carry no time (directory
/// imports).
async fn lag_seconds(log: &dyn EventLog, applied: Offset, end: Offset) -> f64 {
    if applied >= end {
        return 0.0;
    }
    let Ok(Ok(records)) = tokio::time::timeout(LOG_PROBE_TIMEOUT, log.read(applied, 4)).await else {
        return 0.0;
    };
    records
        .iter()
        .find_map(|record| event_time(&record.payload))
        .map_or(0.0, |time| (Utc::now() - time).num_milliseconds().max(0) as f64 / 1000.0)
}

fn text(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.config.metrics_require_credential {
        match crate::http::authenticate(&state, &headers) {
            Ok(principal) if principal.learner.is_none() => {}
            Ok(_) => {
                let error =
                    crate::error::ApiError::Forbidden("a learner's token does not give access to metrics".into());
                return error.into_response();
            }
            Err(error) => return error.into_response(),
        }
    }
    let mut out = String::new();
    state.metrics.render_requests(&mut out);
    let writes = !matches!(state.writer, Writer::ReadOnly);
    if let Writer::Embedded(sequencer) = &state.writer {
        header_lines(
            &mut out,
            "lrs_statements_ingested_total",
            "counter",
            "Statements newly stored (each statement of a batch; repeats not counted).",
        );
        let _ = writeln!(out, "lrs_statements_ingested_total {}", sequencer.progress.statements_stored());
        header_lines(
            &mut out,
            "lrs_statement_id_checks_total",
            "counter",
            "Statement ids the writer checked, by where it found the answer: filter (certainly new, from memory), \
             recent (appended, perhaps not yet projected) or views (read from the store).",
        );
        for check in IdCheck::ALL {
            let _ = writeln!(
                out,
                "lrs_statement_id_checks_total{} {}",
                label_set(&[("answer", check.label())], None),
                sequencer.progress.id_checks(check)
            );
        }
        header_lines(
            &mut out,
            "lrs_statement_id_filter_ready",
            "gauge",
            "1 once the writer's filter of stored statement ids is built (at start-up); the writer uses it from its next statement write.",
        );
        let _ = writeln!(out, "lrs_statement_id_filter_ready {}", u8::from(sequencer.progress.id_filter_ready()));
    }
    if writes {
        state.metrics.render_rejections(&mut out);
        state.metrics.render_write_stages(&mut out);
        state.metrics.render_read_waits(&mut out);
    }
    state.metrics.render_log(&mut out, writes);
    if let Ok(end) = log_end(&state).await {
        header_lines(&mut out, "lrs_log_end_offset", "gauge", "Offset one past the last durable event of the log.");
        let _ = writeln!(out, "lrs_log_end_offset {end}");
        let projections = projections(&state);
        if !projections.is_empty() {
            header_lines(
                &mut out,
                "lrs_projection_lag_events",
                "gauge",
                "Events of the log a projection has not applied yet (records, on Kafka).",
            );
            for (name, applied) in &projections {
                let lag = state.metrics.lag_events(*applied, end);
                let _ = writeln!(out, "lrs_projection_lag_events{} {lag}", label_set(&[("projection", name)], None));
            }
            header_lines(
                &mut out,
                "lrs_projection_lag_seconds",
                "gauge",
                "Age of the oldest event a projection has not applied yet (0 when caught up).",
            );
            for (name, applied) in &projections {
                let seconds = lag_seconds(state.log.as_ref(), *applied, end).await;
                let _ =
                    writeln!(out, "lrs_projection_lag_seconds{} {seconds}", label_set(&[("projection", name)], None));
            }
        }
    }
    render_projectors(&state, &mut out);
    render_filter_builds(&mut out);
    text(out)
}

/// The filters of ids this process is building from its stores (at
/// start-up, or when a projection applies its first batch after it).
fn render_filter_builds(out: &mut String) {
    let builds = lrs_projection::id_filter::builds_running();
    if builds.is_empty() {
        return;
    }
    let metric = "lrs_id_filters_building";
    header_lines(
        out,
        metric,
        "gauge",
        "Filters of ids being built from a scan of a store, by what they filter: each takes a core until done, \
         and until then every check it would answer reads the store.",
    );
    for (filter, running) in builds {
        let _ = writeln!(out, "{metric}{} {running}", label_set(&[("filter", filter)], None));
    }
}

/// A counter's name, its help text, and how to read it from a projector's
/// figures.
type Counter = (&'static str, &'static str, fn(&lrs_projection::ProjectorStats) -> String);

/// The same, for how a projection got its events.
type SourceCounter = (&'static str, &'static str, fn(&lrs_projection::EventSource) -> u64);

/// What each local projector applied, and how long applying took: a
/// projection applying nearly all the time bounds every write rate.
fn render_projectors(state: &AppState, out: &mut String) {
    if !state.writer.projects_locally() {
        return;
    }
    let stats = [("xapi", state.views.projector_stats()), ("learning-hub", state.hub.projector_stats())];
    let counters: [Counter; 3] = [
        ("lrs_projection_batches_total", "Batches a projection applied, each one atomic write.", |s| {
            s.batches().to_string()
        }),
        ("lrs_projection_events_total", "Events a projection applied.", |s| s.events().to_string()),
        (
            "lrs_projection_apply_seconds_total",
            "Time a projection spent applying batches (not reading the log or waiting for events).",
            |s| s.apply_time().as_secs_f64().to_string(),
        ),
    ];
    for (metric, help, value) in counters {
        header_lines(out, metric, "counter", help);
        for (name, stats) in stats {
            let _ = writeln!(out, "{metric}{} {}", label_set(&[("projection", name)], None), value(stats));
        }
    }
    let sources = [("xapi", state.views.event_source()), ("learning-hub", state.hub.event_source())];
    let source_counters: [SourceCounter; 2] = [
        (
            "lrs_projection_events_decoded_total",
            "Events a projection decoded from the log's bytes itself.",
            lrs_projection::EventSource::decoded,
        ),
        (
            "lrs_projection_events_handed_total",
            "Events a projection took already decoded, from the writer or the projection ahead of it in this process.",
            lrs_projection::EventSource::handed,
        ),
    ];
    for (metric, help, value) in source_counters {
        header_lines(out, metric, "counter", help);
        for (name, source) in sources {
            let _ = writeln!(out, "{metric}{} {}", label_set(&[("projection", name)], None), value(source));
        }
    }
    let held = "lrs_views_postings_held";
    header_lines(
        out,
        held,
        "gauge",
        "Posting-list entries the xAPI views hold in memory, not yet written (read again from the statement records when the views open after a stop).",
    );
    let _ = writeln!(out, "{held} {}", state.views.held_postings());
    let unwritten = "lrs_hub_digests_unwritten";
    header_lines(
        out,
        unwritten,
        "gauge",
        "Uptake digests the Learning Hub views changed and have not yet written, a few being written with each batch (rebuilt from the fact rows when the views open after a stop).",
    );
    let _ = writeln!(out, "{unwritten} {}", state.hub.unwritten_digests());
}

/// `/metrics` of a stateless front: its requests only.
pub fn render_front(metrics: &Metrics) -> Response {
    let mut out = String::new();
    metrics.render_requests(&mut out);
    text(out)
}

/// `GET /ready`: 200 when the log answers and every projection this
/// process keeps is within `ready_max_lag_events` of its end; otherwise 503
/// saying which check failed.
pub async fn ready(State(state): State<AppState>) -> Response {
    let mut checks = Map::new();
    let mut failed = Vec::new();
    let end = log_end(&state).await;
    match &end {
        Ok(end) => {
            checks.insert("log".to_owned(), json!({ "ok": true, "end_offset": end }));
        }
        Err(message) => {
            checks.insert("log".to_owned(), json!({ "ok": false, "message": message }));
            failed.push("log".to_owned());
        }
    }
    let bound = state.config.ready_max_lag_events;
    for (name, applied) in projections(&state) {
        let check = format!("projection:{name}");
        let value = match &end {
            Ok(end) => {
                let lag = state.metrics.lag_events(applied, *end);
                if lag > bound {
                    failed.push(check.clone());
                }
                json!({ "ok": lag <= bound, "lag_events": lag, "max_lag_events": bound })
            }
            Err(_) => {
                failed.push(check.clone());
                json!({ "ok": false, "message": "unknown: the log's end cannot be read" })
            }
        };
        checks.insert(check, value);
    }
    let status = if failed.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if failed.is_empty() { "ready" } else { "not ready" },
        "checks": Value::Object(checks),
        "failed": failed,
    });
    (status, axum::Json(body)).into_response()
}

/// `GET /ready` of a stateless front: it depends on nothing of its own.
pub async fn front_ready() -> Response {
    axum::Json(json!({ "status": "ready", "checks": {}, "failed": [] })).into_response()
}
