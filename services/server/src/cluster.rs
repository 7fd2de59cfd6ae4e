//! The LRS as separate services over Apache Kafka.
//!
//! - **ingest** ([`IngestService`]) authenticates and validates writes
//!   exactly as `lrs serve` does, appends each request as one record to the
//!   log topic (idempotent producer, `acks=all`), then asks a projection what
//!   became of it: projections decide conflicts in log order, so two ingest
//!   replicas cannot both store different statements under one id. It
//!   answers once a projection has applied the write (read-your-writes).
//! - **projection** ([`ProjectionService`]) consumes the log into its own
//!   views (on local disk, offsets stored atomically with the state) and
//!   serves every read, plus `GET /internal/outcome/{offset}` for ingest.
//!   Before a read it catches up with the log's end (bounded), so a write
//!   acknowledged by any ingest replica is visible to the read.
//! - **query** ([`Forwarder`]) is a stateless front: reads to projections,
//!   writes to ingest replicas, retrying another replica when one cannot be
//!   reached.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use lrs_eventlog::{EventLog, Offset};
use lrs_hub::HubViews;
use lrs_kafkalog::{KafkaConfig, KafkaEventLog};
use lrs_projection::Views;
use lrs_xapi::StatementValidator;
use lrs_xapi::events::{self, Event};
use lrs_xapi::statement::format_time;

use crate::app::{AppState, ServerConfig};
use crate::credentials::CredentialStore;
use crate::embedded::{Projectors, StartError, caught_up, open_local_state};
use crate::error::ApiError;
use crate::more_links::MoreLinks;
use crate::sequencer::{DocumentCommand, StatementBatch, VisibleAt};
use crate::writer::Writer;

/// What a projection says became of the event at an offset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeReport {
    pub status: u16,
    #[serde(default)]
    pub message: String,
    pub consistent_through: String,
}

/// The write side of a Kafka deployment.
pub struct KafkaIngest {
    log: Arc<dyn EventLog>,
    projections: Vec<String>,
    client: reqwest::Client,
    next_projection: AtomicUsize,
    last_stored: Mutex<DateTime<Utc>>,
    consistent_through: Mutex<String>,
    /// How long to wait for a projection to apply a write.
    wait: Duration,
}

impl KafkaIngest {
    pub fn new(log: Arc<dyn EventLog>, projections: Vec<String>, wait: Duration) -> Self {
        Self {
            log,
            projections: projections.into_iter().map(|p| p.trim_end_matches('/').to_owned()).collect(),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default(),
            next_projection: AtomicUsize::new(0),
            last_stored: Mutex::new(DateTime::<Utc>::MIN_UTC),
            consistent_through: Mutex::new(format_time(DateTime::UNIX_EPOCH)),
            wait,
        }
    }

    /// This replica's next `stored` time, later than its previous one.
    /// Projections keep `stored` increasing across replicas.
    fn next_stored(&self) -> String {
        let now = Utc::now();
        let mut last = self.last_stored.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = if now > *last { now } else { *last + chrono::Duration::microseconds(1) };
        let stored = DateTime::from_timestamp_micros(stored.timestamp_micros()).unwrap_or(stored);
        *last = stored;
        format_time(stored)
    }

    pub fn consistent_through(&self) -> String {
        self.consistent_through.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub async fn store_statements(&self, batch: StatementBatch) -> Result<VisibleAt, ApiError> {
        let stored = Value::String(self.next_stored());
        let mut statements = batch.statements;
        for statement in &mut statements {
            if let Some(object) = statement.as_object_mut() {
                object.insert("stored".to_owned(), stored.clone());
            }
        }
        let event = Event::StatementsStored { statements, attachments: batch.attachments };
        self.append_and_decide(vec![events::encode(&event)]).await
    }

    pub async fn change_document(&self, command: DocumentCommand) -> Result<VisibleAt, ApiError> {
        let event = Event::DocumentRequested {
            key: command.key,
            op: command.op,
            if_match: command.if_match,
            if_none_match: command.if_none_match,
            updated: self.next_stored(),
        };
        self.append_and_decide(vec![events::encode(&event)]).await
    }

    pub async fn append_events(&self, events: Vec<Event>) -> Result<VisibleAt, ApiError> {
        let mut visible = 0;
        for event in events {
            visible = self.append_and_decide(vec![events::encode(&event)]).await?;
        }
        Ok(visible)
    }

    /// Appends one event (one Kafka record: all or nothing), then waits for
    /// a projection's decision on it.
    async fn append_and_decide(&self, encoded: Vec<Vec<u8>>) -> Result<VisibleAt, ApiError> {
        let offset = self.log.append(encoded).await?;
        let report = self.outcome(offset).await?;
        if let Ok(mut through) = self.consistent_through.lock() {
            *through = report.consistent_through.clone();
        }
        if report.status == 200 { Ok(offset + 1) } else { Err(ApiError::refused(report.status, report.message)) }
    }

    async fn outcome(&self, offset: Offset) -> Result<OutcomeReport, ApiError> {
        let count = self.projections.len();
        let start = self.next_projection.fetch_add(1, Ordering::Relaxed);
        for attempt in 0..count {
            let base = &self.projections[(start + attempt) % count];
            let url = format!("{base}/internal/outcome/{offset}?wait_ms={}", self.wait.as_millis());
            let answer = self.client.get(&url).timeout(self.wait + Duration::from_secs(2)).send().await;
            match answer {
                Ok(response) if response.status() == StatusCode::OK => match response.json::<OutcomeReport>().await {
                    Ok(report) => return Ok(report),
                    Err(error) => tracing::warn!(%error, projection = %base, "unreadable outcome"),
                },
                Ok(response) => tracing::warn!(status = %response.status(), projection = %base, "no outcome yet"),
                Err(error) => tracing::warn!(%error, projection = %base, "projection unreachable"),
            }
        }
        Err(ApiError::Unavailable(
            "the write is in the log but no projection has confirmed it yet; send it again (an identical \
             statement is accepted again)"
                .to_owned(),
        ))
    }
}

/// Kafka connection settings shared by the services.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    pub bootstrap: String,
    pub topic: String,
    /// Bound on waiting for the cluster (appends answer 503 after it).
    pub timeout: Duration,
    pub client_id: String,
}

impl KafkaOptions {
    fn config(&self) -> KafkaConfig {
        let mut config = KafkaConfig::new(self.bootstrap.clone(), self.topic.clone());
        config.timeout = self.timeout;
        config.client_id = self.client_id.clone();
        config
    }
}

/// `lrs ingest`.
pub struct IngestService {
    pub state: AppState,
    forwarder: Arc<Forwarder>,
}

impl IngestService {
    /// Connects to Kafka. `config_dir` holds `credentials.json`.
    pub async fn open(
        kafka: KafkaOptions,
        config_dir: PathBuf,
        projections: Vec<String>,
        server: ServerConfig,
        jwt: Option<crate::jwt::JwtVerifier>,
    ) -> Result<Self, StartError> {
        let validator = StatementValidator::new()?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        metrics.use_kafka_offsets();
        let log =
            crate::metrics::TimedLog::wrap(Arc::new(KafkaEventLog::connect(kafka.config()).await?), metrics.clone());
        let credentials = CredentialStore::open(&config_dir)?;
        // A write's answer waits for its decision: long enough for a busy
        // projection, bounded so a client is never left hanging.
        let decision_wait = server.read_your_writes_timeout.max(Duration::from_secs(30));
        let ingest = KafkaIngest::new(log.clone(), projections.clone(), decision_wait);
        let forwarder = Arc::new(Forwarder::new(projections, Vec::new(), server.max_body_bytes));
        let state = AppState::new(
            log,
            Arc::new(Views::temporary()?),
            Arc::new(HubViews::temporary(lrs_hub::frameworks::Frameworks::empty())?),
            Writer::Kafka(Arc::new(ingest)),
            validator,
            credentials,
            MoreLinks::ephemeral(),
            server,
            jwt,
            metrics,
        );
        Ok(Self { state, forwarder })
    }

    /// Writes are served here; reads are passed to a projection.
    pub fn router(&self) -> Router {
        crate::app::app(self.state.clone()).layer(from_fn_with_state(self.forwarder.clone(), forward_reads))
    }
}

/// True for GET and HEAD, including the alternate request syntax's
/// `POST ?method=GET|HEAD`.
fn is_read(request: &Request) -> bool {
    match *request.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => true,
        Method::POST => request.uri().query().is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
                name == "method" && (value.eq_ignore_ascii_case("GET") || value.eq_ignore_ascii_case("HEAD"))
            })
        }),
        _ => false,
    }
}

async fn forward_reads(State(forwarder): State<Arc<Forwarder>>, request: Request, next: Next) -> Response {
    if is_read(&request)
        && *request.method() != Method::OPTIONS
        && !crate::app::is_operational_path(request.uri().path())
    {
        return forwarder.forward(request).await;
    }
    next.run(request).await
}

/// `lrs project`.
pub struct ProjectionService {
    pub state: AppState,
    projectors: Projectors,
}

/// Settings of a projection.
#[derive(Debug, Clone)]
pub struct ProjectionOptions {
    pub data_dir: PathBuf,
    /// How each projection's store is opened (page cache, compression).
    pub store: lrs_projection::StoreOptions,
    pub frameworks: lrs_hub::frameworks::Frameworks,
    pub server: ServerConfig,
}

impl ProjectionService {
    pub async fn open(
        kafka: KafkaOptions,
        options: ProjectionOptions,
        jwt: Option<crate::jwt::JwtVerifier>,
    ) -> Result<Self, StartError> {
        let log: Arc<dyn EventLog> = Arc::new(KafkaEventLog::connect(kafka.config()).await?);
        let service = Self::open_with_log(log, options, jwt)?;
        service.state.metrics.use_kafka_offsets();
        Ok(service)
    }

    /// As [`ProjectionService::open`], over a log the caller opened (tests
    /// wrap a log to inject faults). Must be called inside a tokio runtime.
    pub fn open_with_log(
        log: Arc<dyn EventLog>,
        options: ProjectionOptions,
        jwt: Option<crate::jwt::JwtVerifier>,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| StartError::DataDir { path: options.data_dir.clone(), reason: e.to_string() })?;
        let (state, projectors) = open_local_state(
            &options.data_dir,
            options.store,
            options.frameworks,
            options.server,
            jwt,
            log,
            lrs_projection::DEFAULT_HANDOFF_BYTES,
            Default::default(),
            |_, _| Writer::ReadOnly,
        )?;
        Ok(Self { state, projectors })
    }

    pub fn router(&self) -> Router {
        let internal = Router::new()
            .route("/internal/outcome/{offset}", get(outcome))
            .route("/internal/digest", get(digest))
            .with_state(self.state.clone())
            // Timed and counted like every other route, so the wait ingest
            // spends on a write's outcome shows in this projection's metrics.
            .layer(axum::middleware::from_fn(|request, next: axum::middleware::Next| {
                crate::http::remember_route(request, |request| next.run(request))
            }))
            .layer(from_fn_with_state(self.state.metrics.clone(), crate::http::access_log));
        let public = crate::app::app(self.state.clone());
        Router::new().merge(internal).fallback_service(public)
    }

    pub async fn stop(self) -> Result<(), StartError> {
        self.projectors.stop(&self.state.views, &self.state.hub).await
    }
}

/// Waits (bounded) until both projections have applied everything before
/// `end`; false when the bound passed first.
async fn wait_applied(state: &AppState, end: Offset, bound: Duration) -> bool {
    caught_up(&state.views, Some(&state.hub), end, bound).await
}

#[derive(Deserialize)]
struct OutcomeParams {
    wait_ms: Option<u64>,
}

async fn outcome(
    State(state): State<AppState>,
    Path(offset): Path<Offset>,
    Query(params): Query<OutcomeParams>,
) -> Result<Response, ApiError> {
    let bound = Duration::from_millis(params.wait_ms.unwrap_or(10_000).min(60_000));
    if !wait_applied(&state, offset.saturating_add(1), bound).await {
        return Err(ApiError::Unavailable(format!("this projection has not reached offset {offset} yet")));
    }
    let outcome = state.views.outcome(offset)?;
    let report = OutcomeReport {
        status: outcome.status,
        message: outcome.message,
        consistent_through: state.consistent_through(),
    };
    Ok(axum::Json(report).into_response())
}

/// Digests of the projected state once caught up with the log's end (to
/// compare projections).
async fn digest(State(state): State<AppState>) -> Result<Response, ApiError> {
    let end = state.log.end_offset().await?;
    if !wait_applied(&state, end, Duration::from_secs(60)).await {
        return Err(ApiError::Unavailable("this projection has not caught up".to_owned()));
    }
    let views = state.views.clone();
    let hub = state.hub.clone();
    let digests = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        Ok(serde_json::json!({
            "views": views.state_digest()?,
            "hub": hub.state_digest().map_err(ApiError::internal)?,
            "offset": views.applied_offset(),
        }))
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(axum::Json(digests).into_response())
}

/// Rebuilds a projection's state from the start of the log into `data_dir`
/// (replacing what is there) and returns the number of events applied.
pub async fn replay(kafka: KafkaOptions, options: ProjectionOptions) -> Result<Offset, StartError> {
    for part in ["views", "hub"] {
        let dir = options.data_dir.join(part);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| StartError::DataDir { path: dir.clone(), reason: e.to_string() })?;
        }
    }
    let service = ProjectionService::open(kafka, options, None).await?;
    let end = service.state.log.end_offset().await?;
    while !wait_applied(&service.state, end, Duration::from_secs(3600)).await {}
    let applied = service.state.views.applied_offset();
    service.stop().await?;
    Ok(applied)
}

/// A stateless HTTP front: reads go to `reads`, writes to `writes`, spread
/// round-robin; an upstream that cannot be reached is skipped.
pub struct Forwarder {
    client: reqwest::Client,
    reads: Vec<String>,
    writes: Vec<String>,
    next: AtomicUsize,
    max_body_bytes: usize,
    /// This front's requests, for `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
}

const HOP_BY_HOP: [HeaderName; 5] =
    [header::CONNECTION, header::HOST, header::TRANSFER_ENCODING, header::CONTENT_LENGTH, header::UPGRADE];

impl Forwarder {
    pub fn new(reads: Vec<String>, writes: Vec<String>, max_body_bytes: usize) -> Self {
        let clean = |list: Vec<String>| list.into_iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        Self {
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default(),
            reads: clean(reads),
            writes: clean(writes),
            next: AtomicUsize::new(0),
            max_body_bytes,
            metrics: Default::default(),
        }
    }

    /// The query service's router.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(crate::app::health))
            .route("/ready", get(crate::metrics::front_ready))
            .route(
                "/metrics",
                get(|State(forwarder): State<Arc<Forwarder>>| async move {
                    crate::metrics::render_front(&forwarder.metrics)
                }),
            )
            .fallback(|State(forwarder): State<Arc<Forwarder>>, request: Request| async move {
                forwarder.forward(request).await
            })
            .with_state(self.clone())
            .layer(from_fn_with_state(self.metrics.clone(), crate::http::access_log))
    }

    pub async fn forward(&self, request: Request) -> Response {
        let upstreams = if is_read(&request) { &self.reads } else { &self.writes };
        let version = request.headers().get(crate::http::VERSION_HEADER).cloned();
        if upstreams.is_empty() {
            let error = ApiError::MethodNotAllowed(format!("{} is not served here", request.method()));
            return own_error(error, version);
        }
        let (parts, body) = request.into_parts();
        let body = match crate::http::read_body(body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(error) => return own_error(error, version),
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut headers = HeaderMap::new();
        for (name, value) in &parts.headers {
            if !HOP_BY_HOP.contains(name) && name != "x-forwarded-for" {
                headers.append(name.clone(), value.clone());
            }
        }
        // Name the client for the services behind (their sign-in throttle),
        // keeping what fronts before this one said.
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let earlier = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        let forwarded = match (earlier, peer) {
            (Some(earlier), Some(peer)) => Some(format!("{earlier}, {peer}")),
            (None, Some(peer)) => Some(peer.to_string()),
            (Some(earlier), None) => Some(earlier.to_owned()),
            (None, None) => None,
        };
        if let Some(value) = forwarded.and_then(|f| axum::http::HeaderValue::from_str(&f).ok()) {
            headers.insert("x-forwarded-for", value);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for attempt in 0..upstreams.len() {
            let base = &upstreams[(start + attempt) % upstreams.len()];
            let sent = self
                .client
                .request(parts.method.clone(), format!("{base}{path}"))
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) => return relay(response).await,
                Err(error) if error.is_connect() => {
                    tracing::warn!(%error, upstream = %base, "upstream unreachable; trying the next");
                }
                Err(error) => {
                    tracing::warn!(%error, upstream = %base, "upstream failed");
                    return bad_gateway();
                }
            }
        }
        bad_gateway()
    }
}

/// An error the front answers itself carries the headers every xAPI
/// response has; it knows nothing of the store, so Consistent-Through is
/// the epoch (trivially true).
fn own_error(error: ApiError, version: Option<axum::http::HeaderValue>) -> Response {
    let mut response = error.into_response();
    let version = version
        .filter(|v| v.to_str().is_ok_and(|v| v.starts_with("1.0.") || v.starts_with("2.0.")))
        .unwrap_or(axum::http::HeaderValue::from_static(lrs_xapi::XapiVersion::V2_0_0.header_value()));
    response.headers_mut().insert(crate::http::VERSION_HEADER, version);
    if let Ok(epoch) = axum::http::HeaderValue::from_str(&format_time(DateTime::UNIX_EPOCH)) {
        response.headers_mut().insert("x-experience-api-consistent-through", epoch);
    }
    response
}

fn bad_gateway() -> Response {
    let body = serde_json::json!({"error": {"status": 502, "reason": "Bad Gateway",
        "message": "no upstream replica answered; try again"}});
    let mut response = (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    response
}

async fn relay(response: reqwest::Response) -> Response {
    let status = response.status();
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    match response.bytes().await {
        Ok(bytes) => {
            let mut relayed = Response::new(Body::from(bytes));
            *relayed.status_mut() = status;
            *relayed.headers_mut() = headers;
            relayed
        }
        Err(_) => bad_gateway(),
    }
}
