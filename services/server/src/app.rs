//! The HTTP application: state, configuration and routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Utc};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

use lrs_eventlog::EventLog;
use lrs_projection::Views;
use lrs_xapi::StatementValidator;
use lrs_xapi::statement::format_time;

use crate::credentials::CredentialStore;
use crate::error::ApiError;
use crate::metrics::ReadWait;
use crate::scoped_writes::WriteScope;
use crate::writer::Writer;
use crate::{analytics, documents, resources, statements};

/// Settings of the HTTP service.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Largest page of statements returned by one GET.
    pub max_page_size: usize,
    /// `homePage` of the account in the `authority` the LRS records.
    pub authority_home_page: String,
    /// How long a write waits for its projection before answering, and a
    /// read for the acknowledged writes the views do not show yet.
    pub read_your_writes_timeout: Duration,
    /// Statements a write may be acknowledged ahead of the views, once it
    /// is durable in the log; reads then wait until the views show every
    /// acknowledged write. 0: every acknowledgement waits for the views.
    pub acknowledge_ahead: u64,
    /// Failed sign-ins one client may make per minute before it gets 429.
    pub auth_failure_limit: u32,
    /// Whether `X-Forwarded-For` names the client (behind a trusted front).
    pub trust_forwarded_for: bool,
    /// Request bodies being received at once, in bytes, before writes get 503.
    pub max_inflight_body_bytes: usize,
    /// Events a projection may lag behind the log's end while `/ready`
    /// still answers 200.
    pub ready_max_lag_events: u64,
    /// Whether `/metrics` requires a credential (any valid one); by default
    /// it is open, as scrapers usually have none (it names no one).
    pub metrics_require_credential: bool,
    /// How long the Learning Hub projection may hold a small batch of events
    /// to gather more (no write waits for it; a read that needs it asks it
    /// to apply at once). Zero: it applies each batch as it comes.
    pub learning_hub_gather_wait: Duration,
}

/// Statements a write may be acknowledged ahead of the views by default:
/// enough that 64 clients posting one statement each are answered once it
/// is durable, without waiting for the views; few enough that a batch of
/// more waits for its own as before, and a read under a write load waits
/// for no more than a few single statements to be applied.
pub const DEFAULT_ACKNOWLEDGE_AHEAD: u64 = 64;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 20 * 1024 * 1024,
            max_page_size: 500,
            authority_home_page: "https://learninghub.nhs.uk/lrs/credentials".to_owned(),
            read_your_writes_timeout: statements::DEFAULT_READ_YOUR_WRITES_TIMEOUT,
            acknowledge_ahead: DEFAULT_ACKNOWLEDGE_AHEAD,
            auth_failure_limit: 20,
            trust_forwarded_for: false,
            max_inflight_body_bytes: 512 * 1024 * 1024,
            ready_max_lag_events: 1_000,
            metrics_require_credential: false,
            learning_hub_gather_wait: lrs_hub::DEFAULT_GATHER_WAIT,
        }
    }
}

/// Everything a handler needs: a handle, one shared [`SharedState`] behind
/// it. The router's middleware and extractors clone the state for every
/// request (each `from_fn_with_state` layer clones its state and the
/// services inside it), so a clone is one reference count, not one for
/// every field.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct SharedState {
    pub log: Arc<dyn EventLog>,
    pub views: Arc<Views>,
    /// Where writes go: the embedded single writer, or Kafka.
    pub writer: Writer,
    pub validator: Arc<StatementValidator>,
    pub credentials: Arc<CredentialStore>,
    pub config: ServerConfig,
    /// The version each client last spoke, to answer a request that forgot
    /// the version header in the client's own version.
    pub spoken_versions: Arc<crate::http::SpokenVersions>,
    /// Signs and checks `more` links.
    pub more_links: Arc<crate::more_links::MoreLinks>,
    /// Learning Hub views (transcripts, competencies, uptake).
    pub hub: Arc<lrs_hub::HubViews>,
    /// Checks learners' bearer tokens, when learner sign-in is configured.
    pub jwt: Option<Arc<crate::jwt::JwtVerifier>>,
    /// Slows down clients that keep failing to authenticate.
    pub throttle: Arc<crate::throttle::AuthThrottle>,
    /// Bounds the request bodies received at once.
    pub body_budget: Arc<crate::backpressure::BodyBudget>,
    /// Counters and histograms `/metrics` exposes.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The log offset every acknowledged write is below: what a read waits
    /// for the views to reach.
    pub acknowledged: Arc<std::sync::atomic::AtomicU64>,
    /// Per learner and per organisation, where the acknowledged writes that
    /// may change their Learning Hub views end: what a read of those views
    /// waits for instead (see [`crate::scoped_writes`]).
    pub acknowledged_for: Arc<crate::scoped_writes::AcknowledgedFor>,
}

impl AppState {
    /// The state handlers share, counting into `metrics` (which a log
    /// wrapped to time its appends may count into too); the sign-in
    /// throttle and the body budget follow from `config`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: Arc<dyn EventLog>,
        views: Arc<Views>,
        hub: Arc<lrs_hub::HubViews>,
        writer: Writer,
        validator: StatementValidator,
        credentials: CredentialStore,
        more_links: crate::more_links::MoreLinks,
        config: ServerConfig,
        jwt: Option<crate::jwt::JwtVerifier>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self(Arc::new(SharedState {
            log,
            views,
            writer,
            validator: Arc::new(validator),
            credentials: Arc::new(credentials),
            throttle: Arc::new(crate::throttle::AuthThrottle::for_config(&config)),
            body_budget: Arc::new(crate::backpressure::BodyBudget::for_config(&config)),
            config,
            spoken_versions: Default::default(),
            more_links: Arc::new(more_links),
            hub,
            jwt: jwt.map(Arc::new),
            metrics,
            acknowledged: Default::default(),
            acknowledged_for: Default::default(),
        }))
    }

    /// Before acknowledging a write: waits (bounded) until the views show
    /// it, or with `acknowledge_ahead` only until they are close enough
    /// behind it; either way a read from then on waits for them to show it
    /// (see [`read_acknowledged_writes`]), and a read of a learner's own
    /// views does when `scope` says the write may change them. If a bound
    /// passes, the Consistent-Through header stays honest about what is
    /// visible.
    pub async fn wait_visible(&self, visible: crate::sequencer::VisibleAt, mut scope: WriteScope) {
        if !self.writer.projects_locally() {
            // Kafka ingest answered once a projection had applied the write.
            return;
        }
        let began = std::time::Instant::now();
        let after = self.writer.acknowledge_after(visible, &self.views, self.config.acknowledge_ahead);
        let mut watch = self.views.subscribe();
        let _ = tokio::time::timeout(self.config.read_your_writes_timeout, watch.wait_for(|applied| *applied >= after))
            .await;
        self.metrics.observe_write_stage(crate::metrics::WriteStage::Views, began.elapsed());
        // The Learning Hub views' learner directory is the one this write
        // meets once they have applied every directory load before it.
        let directory =
            self.writer.directory_loads_end().filter(|end| self.hub.applied_offset() >= *end).map(|_| &*self.hub);
        let queries = scope.take_queries();
        if scope.writes_document() {
            self.acknowledged_for.acknowledged_document(visible);
        }
        self.acknowledged_for.acknowledged(&scope.resolve(&self.views, directory), visible);
        // Statement queries wait for the writes answered ahead of the views.
        if self.views.applied_offset() < visible {
            self.acknowledged_for.acknowledged_ahead(queries, visible);
        }
        self.acknowledged.fetch_max(visible, std::sync::atomic::Ordering::SeqCst);
    }

    /// Before a read of `learner`'s own views (transcript, competencies):
    /// with the embedded writer, waits (bounded) until both projections show
    /// every acknowledged write that may change them. Elsewhere the read
    /// already waited for every acknowledged write (see
    /// [`read_acknowledged_writes`]).
    pub async fn wait_for_learner_writes(&self, learner: &str) {
        if self.waits_per_scope() {
            self.wait_scoped(self.acknowledged_for.learner(learner), true, ReadWait::Learner).await;
        }
    }

    /// Before a statement query (`GET /xapi/statements`), found by the
    /// keys `keys` (one per facet filter, see
    /// [`lrs_projection::StatementQuery::facet_keys`], or a statement's id
    /// key; `None` when it cannot be narrowed): with the embedded writer,
    /// waits (bounded) until the xAPI views show every acknowledged write
    /// that may change what it finds. Elsewhere the read already waited for
    /// every acknowledged write.
    pub async fn wait_for_statement_query(&self, keys: Option<&[String]>) {
        if !self.waits_per_scope() {
            return;
        }
        match keys.and_then(|keys| self.acknowledged_for.statement_query(keys)) {
            Some(end) => self.wait_scoped(end, false, ReadWait::Query).await,
            None => self.wait_for_acknowledged_writes(false).await,
        }
    }

    /// Before a document read (state, activity or agent profile): with the
    /// embedded writer, waits (bounded) until the xAPI views show every
    /// acknowledged document write. Elsewhere the read already waited for
    /// every acknowledged write.
    pub async fn wait_for_document_writes(&self) {
        if self.waits_per_scope() {
            self.wait_scoped(self.acknowledged_for.documents(), false, ReadWait::Document).await;
        }
    }

    /// Before a read of an organisation's figures (uptake, competency
    /// coverage), which count the bodies below it too: with the embedded
    /// writer, waits (bounded) until both projections show every
    /// acknowledged write that may change the organisation tree, and then
    /// every one that may change the figures of the organisation or a body
    /// below it. Elsewhere the read already waited for every acknowledged
    /// write.
    pub async fn wait_for_organisation_writes(&self, organisation: &str) -> Result<(), ApiError> {
        // With every acknowledged write shown, no organisation's can be
        // missing: skip reading the organisation tree.
        if !self.waits_per_scope() || self.shows_every_acknowledged_write().await {
            return Ok(());
        }
        self.wait_scoped(self.acknowledged_for.every_organisation(), true, ReadWait::Organisation).await;
        let hub = self.hub.clone();
        let code = organisation.to_owned();
        let bodies = tokio::task::spawn_blocking(move || hub.organisation_and_descendants(&code))
            .await
            .map_err(ApiError::internal)??;
        let end = self.acknowledged_for.organisations(bodies.iter().map(String::as_str));
        self.wait_applied(end, true, ReadWait::Organisation).await;
        Ok(())
    }

    /// A read that waits only for the writes that may change it: waits as
    /// [`AppState::wait_applied`] for those acknowledged before `end`, and
    /// for every write acknowledged before this process started (it cannot
    /// tell which of those may change the read).
    async fn wait_scoped(&self, end: lrs_eventlog::Offset, hub: bool, wait: ReadWait) {
        self.wait_applied(end.max(self.acknowledged_before_start().await), hub, wait).await;
    }

    /// Waits (bounded) until the xAPI views, and the Learning Hub views when
    /// `hub`, have applied everything before `end`; counts the wait in the
    /// metrics as `wait` when they had not yet.
    async fn wait_applied(&self, end: lrs_eventlog::Offset, hub: bool, wait: ReadWait) {
        let hub = hub.then_some(&*self.hub);
        if self.views.applied_offset() < end || hub.is_some_and(|hub| hub.applied_offset() < end) {
            let began = std::time::Instant::now();
            crate::embedded::caught_up(&self.views, hub, end, self.config.read_your_writes_timeout).await;
            self.metrics.observe_read_wait(wait, began.elapsed());
        }
    }

    /// Whether both projections show every write acknowledged, by this
    /// process or before it started.
    async fn shows_every_acknowledged_write(&self) -> bool {
        self.acknowledged_end()
            .await
            .is_some_and(|end| self.views.applied_offset() >= end && self.hub.applied_offset() >= end)
    }

    /// Waits (bounded) until the xAPI views, and the Learning Hub views
    /// when `hub`, show every write acknowledged so far (see
    /// [`AppState::acknowledged_end`]).
    pub async fn wait_for_acknowledged_writes(&self, hub: bool) {
        if let Some(end) = self.acknowledged_end().await {
            self.wait_applied(end, hub, ReadWait::Everything).await;
        }
    }

    /// Where the writes acknowledged before this process started end, with
    /// the embedded writer: the log's end when it started (any write in the
    /// log may have been acknowledged before a restart, and the views may
    /// reopen behind it: sled writes them to disk every 500 ms), or while
    /// it starts, the log's end now. 0 with the other writers: ingest
    /// reads nothing, and a projection replica waits for the whole log.
    async fn acknowledged_before_start(&self) -> lrs_eventlog::Offset {
        let Writer::Embedded(sequencer) = &self.writer else {
            return 0;
        };
        match sequencer.progress.started_end() {
            Some(end) => end,
            None => self.log.end_offset().await.unwrap_or(0),
        }
    }

    /// Whether this process knows whose views the writes it acknowledged
    /// may change: only the embedded writer acknowledges with its own views
    /// (a projection replica waits for the whole log instead).
    fn waits_per_scope(&self) -> bool {
        matches!(self.writer, Writer::Embedded(_))
    }

    /// The log offset every write acknowledged so far is below, as far as
    /// this process can tell: its own acknowledgements (with the embedded
    /// writer, and the log as the writer found it: those acknowledged
    /// before a restart), or on a projection
    /// replica (which acknowledges nothing itself) the log's end as it is
    /// now, which covers whatever any ingest replica acknowledged. `None`
    /// when the log cannot say; the read is then served with what is
    /// visible, and Consistent-Through says what that is.
    pub async fn acknowledged_end(&self) -> Option<lrs_eventlog::Offset> {
        let acknowledged = self.acknowledged.load(std::sync::atomic::Ordering::SeqCst);
        match self.writer {
            Writer::Embedded(_) => return Some(acknowledged.max(self.acknowledged_before_start().await)),
            Writer::Kafka(_) => return Some(acknowledged),
            Writer::ReadOnly => {}
        }
        match self.log.end_offset().await {
            Ok(end) => Some(end),
            Err(error) => {
                tracing::warn!(%error, "cannot read the log's end before a read");
                None
            }
        }
    }

    /// The value of `X-Experience-API-Consistent-Through`: every statement
    /// stored at or before it is visible to queries.
    pub fn consistent_through(&self) -> String {
        let now = Utc::now();
        if let Some(reported) = self.writer.reported_consistent_through() {
            return reported;
        }
        if self.writer.is_quiet(&self.views) {
            return format_time(now);
        }
        let last = self.views.last_stored_micros().ok().flatten().and_then(DateTime::from_timestamp_micros);
        format_time(last.unwrap_or(DateTime::UNIX_EPOCH))
    }
}

/// Before a read: waits (bounded) until the projections it reads show every
/// write acknowledged so far, so whoever reads after an acknowledgement sees
/// the write. An xAPI resource is read from the xAPI views alone, so it does
/// not wait for the Learning Hub views, which follow a moment later; every
/// other read waits for both. It sits inside the alternate-syntax rewrite,
/// so a read sent as `POST ?method=GET` waits too.
async fn read_acknowledged_writes<F: Future<Output = Response>>(
    state: &AppState,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    if waits_for_writes(&request)
        && !(state.waits_per_scope()
            && (reads_one_scope(&request) || queries_statements(&request) || reads_document(&request)))
    {
        state.wait_for_acknowledged_writes(reads_learning_hub(request.uri().path())).await;
    }
    next(request).await
}

/// The middleware before routing, as one layer: each step is a function
/// that hands the request on to the next (as layers of their own, each
/// cost a boxed future and clones of the state and of the service inside
/// it for every request). Outermost first: the body budget;
/// `X-Experience-API-Consistent-Through`, so that errors carry it too; the
/// alternate request syntax, rewritten before anything reads the headers
/// and parameters it carries as form fields, and before routing, so a
/// rewritten request is routed as what it stands for; the sign-in
/// throttle; the version header.
async fn front(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::backpressure::limit_bodies_in_flight(&state.body_budget, request, |request| {
        crate::http::consistent_through(&state, request, |request| {
            crate::http::alternate_syntax(&state, request, |request| {
                crate::throttle::throttle_auth_failures(&state.throttle, request, |request| {
                    crate::http::negotiate_version(&state, request, |request| next.run(request))
                })
            })
        })
    })
    .await
}

/// The middleware inside the router, as one layer: hands the matched route
/// template to the access log, and has a read wait for the writes
/// acknowledged before it.
async fn routed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::http::remember_route(request, |request| {
        read_acknowledged_writes(&state, request, |request| next.run(request))
    })
    .await
}

/// The outermost layer: the access log and metrics, and the version header
/// on every response (preflights answered by the CORS layer inside it
/// too).
async fn outermost(State(state): State<AppState>, request: Request, next: Next) -> Response {
    crate::http::logged(&state.metrics, request, |request| async { ensure_version_header(next.run(request).await) })
        .await
}

/// Whether a read is of one learner's own views or one organisation's
/// figures, which wait in their handler for the writes that may change them
/// ([`AppState::wait_for_learner_writes`], [`AppState::wait_for_organisation_writes`]).
fn reads_one_scope(request: &Request) -> bool {
    request.extensions().get::<axum::extract::MatchedPath>().is_some_and(|path| {
        matches!(
            path.as_str(),
            "/analytics/learners/{learner}/transcript"
                | "/analytics/learners/{learner}/competencies"
                | "/analytics/uptake"
                | "/analytics/competencies/coverage"
        )
    })
}

/// Whether a read is a statement query, which waits in its handler for the
/// writes that may change what it finds ([`AppState::wait_for_statement_query`]).
fn queries_statements(request: &Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|path| path.as_str() == "/xapi/statements")
}

/// Whether a read is of documents (state, activity or agent profiles),
/// which waits in its handler for the document writes ([`AppState::wait_for_document_writes`]).
fn reads_document(request: &Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request.extensions().get::<axum::extract::MatchedPath>().is_some_and(|path| {
            matches!(path.as_str(), "/xapi/activities/state" | "/xapi/activities/profile" | "/xapi/agents/profile")
        })
}

/// Whether a read may be served from the Learning Hub views: anything but
/// the xAPI resources (`/xapi/…`), which are served from the xAPI views only.
fn reads_learning_hub(path: &str) -> bool {
    !path.starts_with("/xapi/")
}

async fn not_found(request: Request) -> Response {
    ApiError::NotFound(format!("no resource at {}", request.uri().path())).into_response()
}

/// Liveness: the process is up and answering.
pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

fn cors() -> CorsLayer {
    let exposed =
        ["x-experience-api-version", "x-experience-api-consistent-through", "etag", "last-modified", "content-type"]
            .map(HeaderName::from_static);
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::POST, Method::DELETE, Method::OPTIONS])
        // Browsers never let a wildcard cover Authorization, so name what was asked for.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(exposed)
        .max_age(Duration::from_secs(3600))
}

/// The xAPI resources (the xAPI specification documents them, so the
/// OpenAPI document does not).
pub const XAPI_ROUTES: &[&str] = &[
    "/xapi/statements",
    "/xapi/activities/state",
    "/xapi/activities/profile",
    "/xapi/agents/profile",
    "/xapi/activities",
    "/xapi/agents",
    "/xapi/about",
];

/// Every route outside the xAPI, as (method, path template): exactly what
/// `openapi.json` documents (a test compares the two both ways and requests
/// each route to check the application serves it). [`app`] registers these
/// from this list, except the `/ui` pages, which `ui::routes` registers.
pub const NON_XAPI_ROUTES: &[(&str, &str)] = &[
    ("GET", "/analytics/learners/{learner}/transcript"),
    ("GET", "/analytics/learners/{learner}/competencies"),
    ("GET", "/analytics/uptake"),
    ("GET", "/analytics/competencies/coverage"),
    ("POST", "/admin/learners"),
    ("POST", "/admin/organisations"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/ui"),
    ("GET", "/ui/"),
    ("GET", "/ui/uptake"),
    ("GET", "/ui/learning"),
    ("GET", "/ui/statements"),
    ("GET", "/ui/assets/{name}"),
    ("GET", "/ui/api/organisations"),
];

/// A read that must see the writes acknowledged before it: GET or HEAD of
/// anything but an operational endpoint.
fn waits_for_writes(request: &Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD) && !is_operational_path(request.uri().path())
}

/// Operational endpoints: answered by every service itself (never passed to
/// another replica, never waiting for a projection to catch up).
pub fn is_operational_path(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics" | "/openapi.json")
}

/// The handler of a route of [`NON_XAPI_ROUTES`]; `None` for the ones
/// registered elsewhere (the `/ui` pages).
fn non_xapi_route(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    let route = match (method, path) {
        ("GET", "/analytics/learners/{learner}/transcript") => get(analytics::transcript),
        ("GET", "/analytics/learners/{learner}/competencies") => get(analytics::competencies),
        ("GET", "/analytics/uptake") => get(analytics::uptake),
        ("GET", "/analytics/competencies/coverage") => get(analytics::coverage),
        ("POST", "/admin/learners") => post(analytics::import_learners),
        ("POST", "/admin/organisations") => post(analytics::import_organisations),
        ("GET", "/health") => get(health),
        ("GET", "/ready") => get(crate::metrics::ready),
        ("GET", "/metrics") => get(crate::metrics::metrics),
        ("GET", "/openapi.json") => get(crate::openapi::document),
        _ => return None,
    };
    Some(route)
}

/// The whole HTTP application, testable without a socket.
pub fn app(state: AppState) -> Router {
    let mut xapi = Router::new()
        .route(
            "/xapi/statements",
            get(statements::get_statements).put(statements::put_statement).post(statements::post_statements),
        )
        .route(
            "/xapi/activities/state",
            get(documents::state).put(documents::state).post(documents::state).delete(documents::state),
        )
        .route(
            "/xapi/activities/profile",
            get(documents::activity_profile)
                .put(documents::activity_profile)
                .post(documents::activity_profile)
                .delete(documents::activity_profile),
        )
        .route(
            "/xapi/agents/profile",
            get(documents::agent_profile)
                .put(documents::agent_profile)
                .post(documents::agent_profile)
                .delete(documents::agent_profile),
        )
        .route("/xapi/activities", get(resources::activities))
        .route("/xapi/agents", get(resources::agents))
        .route("/xapi/about", get(resources::about))
        .merge(crate::ui::routes());
    for (method, path) in NON_XAPI_ROUTES {
        if let Some(route) = non_xapi_route(method, path) {
            xapi = xapi.route(path, route);
        }
    }
    let xapi = xapi
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), routed))
        .with_state(state.clone());
    // Rewriting the alternate request syntax must happen before routing,
    // so the routed application is wrapped rather than layered.
    let fronted = tower::ServiceBuilder::new().layer(from_fn_with_state(state.clone(), front)).service(xapi);
    Router::new().fallback_service(fronted).layer(cors()).layer(from_fn_with_state(state, outermost))
}

fn ensure_version_header(mut response: Response) -> Response {
    if !response.headers().contains_key(crate::http::VERSION_HEADER) {
        response.headers_mut().insert(
            crate::http::VERSION_HEADER,
            axum::http::HeaderValue::from_static(lrs_xapi::XapiVersion::V2_0_0.header_value()),
        );
    }
    response
}

async fn method_not_allowed(request: Request) -> Response {
    ApiError::MethodNotAllowed(format!("{} is not allowed on {}", request.method(), request.uri().path()))
        .into_response()
}
