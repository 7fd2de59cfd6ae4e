//! The whole LRS in one process over the embedded log: what `lrs serve`
//! runs and what the integration tests start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use lrs_eventlog::{EventLog, open_embedded};
use lrs_hub::HubViews;
use lrs_projection::{DEFAULT_HANDOFF_BYTES, EventHandoff, StoreOptions, Views, run_projector};
use lrs_xapi::StatementValidator;

use crate::app::{AppState, ServerConfig};
use crate::credentials::CredentialStore;
use crate::more_links::MoreLinks;
use crate::sequencer::Sequencer;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    /// How each projection's store is opened (page cache, compression).
    pub store: StoreOptions,
    /// Writes waiting for the single writer before clients get 503.
    pub write_queue_depth: usize,
    /// Events the views may lag behind the log before writes get 503.
    pub max_projection_lag: u64,
    pub server: ServerConfig,
    /// Competency frameworks for the Learning Hub views.
    pub frameworks: lrs_hub::frameworks::Frameworks,
    /// Learner sign-in (bearer JWTs), when configured.
    pub jwt: Option<crate::jwt::JwtVerifier>,
    /// Encoded bytes of events the writer hands to the projections decoded
    /// at most (see [`EventHandoff`]).
    pub event_handoff_bytes: usize,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            store: StoreOptions::cache(StoreOptions::DEFAULT_CACHE_MIB << 20),
            write_queue_depth: 4096,
            max_projection_lag: 50_000,
            server: ServerConfig::default(),
            frameworks: lrs_hub::frameworks::Frameworks::empty(),
            jwt: None,
            event_handoff_bytes: DEFAULT_HANDOFF_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Schema(#[from] lrs_xapi::validate::SchemaError),
    #[error("cannot create the data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("cannot open the event log: {0}")]
    Log(#[from] lrs_eventlog::LogError),
    #[error("cannot open the views: {0}")]
    Views(#[from] lrs_projection::ViewsError),
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialError),
    #[error("cannot open the Learning Hub views: {0}")]
    Hub(#[from] lrs_hub::HubError),
}

/// The two projector tasks (xAPI views, then the Learning Hub views that
/// follow their decisions) of a process that keeps views.
pub(crate) struct Projectors {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Projectors {
    pub(crate) fn start(log: &Arc<dyn EventLog>, views: &Arc<Views>, hub: &Arc<HubViews>) -> Self {
        hub.follow_decisions_of(views.clone());
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(run_projector(log.clone(), views.clone(), stopped.clone())),
            tokio::spawn(run_projector(log.clone(), hub.clone(), stopped)),
        ];
        Self { stop, tasks }
    }

    /// Stops the projectors and flushes the views they write.
    pub(crate) async fn stop(self, views: &Views, hub: &HubViews) -> Result<(), StartError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        views.flush()?;
        hub.flush()?;
        Ok(())
    }
}

/// Opens the views, credentials and `more`-link key in `data_dir`, starts
/// the projectors, and builds the state handlers share, with the writer
/// `writer` makes from the views and the handoff (of at most
/// `handoff_bytes`) the projections take decoded events from: what `serve`
/// and a Kafka projection share.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_local_state(
    data_dir: &std::path::Path,
    store: StoreOptions,
    frameworks: lrs_hub::frameworks::Frameworks,
    config: ServerConfig,
    jwt: Option<crate::jwt::JwtVerifier>,
    log: Arc<dyn EventLog>,
    handoff_bytes: usize,
    metrics: Arc<crate::metrics::Metrics>,
    writer: impl FnOnce(&Arc<Views>, &Arc<EventHandoff>) -> crate::writer::Writer,
) -> Result<(AppState, Projectors), StartError> {
    let validator = StatementValidator::new()?;
    let views = Arc::new(Views::open(&data_dir.join("views"), store)?);
    let credentials = CredentialStore::open(data_dir)?;
    let more_links = MoreLinks::open(data_dir)
        .map_err(|e| StartError::DataDir { path: data_dir.to_owned(), reason: e.to_string() })?;
    let mut hub = HubViews::open(&data_dir.join("hub"), store, frameworks)?;
    hub.set_gather_wait(config.learning_hub_gather_wait);
    let hub = Arc::new(hub);
    // This process writes: the projections' filters of ids start now,
    // beside the writer's, rather than with the first write.
    views.start_filters();
    hub.start_filters();
    let handoff = hand_off(&views, &hub, handoff_bytes);
    let projectors = Projectors::start(&log, &views, &hub);
    let writer = writer(&views, &handoff);
    let state = AppState::new(log, views, hub, writer, validator, credentials, more_links, config, jwt, metrics);
    Ok((state, projectors))
}

/// A handoff both projections take events from: the one that decodes an
/// event first (or the writer, offering what it appends) saves the other
/// decoding it again.
fn hand_off(views: &Views, hub: &HubViews, limit_bytes: usize) -> Arc<EventHandoff> {
    let handoff = EventHandoff::new(limit_bytes);
    views.event_source().attach(&handoff);
    hub.event_source().attach(&handoff);
    handoff
}

/// A running store: the state handlers share, and the projector tasks.
pub struct Embedded {
    pub state: AppState,
    projectors: Projectors,
}

impl Embedded {
    /// Opens the data directory and starts the projector and the writer.
    /// Must be called inside a tokio runtime.
    pub fn open(options: EmbeddedOptions) -> Result<Self, StartError> {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| StartError::DataDir { path: options.data_dir.clone(), reason: e.to_string() })?;
        let log = open_embedded(&options.data_dir.join("log"))?;
        let store = Self::open_with_log(options, Arc::new(log.clone()))?;
        store.state.metrics.watch_embedded_log(&log);
        Ok(store)
    }

    /// As [`Embedded::open`], over a log the caller opened (tests wrap the
    /// embedded log to inject faults).
    pub fn open_with_log(options: EmbeddedOptions, log: Arc<dyn EventLog>) -> Result<Self, StartError> {
        let (queue_depth, max_lag) = (options.write_queue_depth, options.max_projection_lag);
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let log = crate::metrics::TimedLog::wrap(log, metrics.clone());
        let (state, projectors) = open_local_state(
            &options.data_dir,
            options.store,
            options.frameworks,
            options.server,
            options.jwt,
            log.clone(),
            options.event_handoff_bytes,
            metrics,
            |views, handoff| {
                crate::writer::Writer::Embedded(Sequencer::start_handing_off(
                    log,
                    views.clone(),
                    queue_depth,
                    max_lag,
                    Some(handoff.clone()),
                ))
            },
        )?;
        Ok(Self { state, projectors })
    }

    /// The HTTP application over this store.
    pub fn router(&self) -> axum::Router {
        crate::app::app(self.state.clone())
    }

    /// Stops the projectors and flushes the views.
    pub async fn stop(self) -> Result<(), StartError> {
        self.projectors.stop(&self.state.views, &self.state.hub).await
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The log's end: every event before it was compared.
    pub end: lrs_eventlog::Offset,
    pub live_views: String,
    pub replayed_views: String,
    pub live_hub: String,
    pub replayed_hub: String,
    /// The disk the replay's scratch store took once it had caught up
    /// (removed afterwards): about the free disk a verification needs.
    pub scratch_bytes: u64,
    /// How long the replay of the whole log into the scratch store took.
    pub replay: Duration,
    /// The statements the replay stored.
    pub statements: u64,
    /// How long the digests of both stores took (each store's two
    /// projections side by side).
    pub digesting: Duration,
}

impl VerifyReport {
    pub fn matches(&self) -> bool {
        self.live_views == self.replayed_views && self.live_hub == self.replayed_hub
    }
}

/// Waits (at most `bound`) until the xAPI views, and the Learning Hub views
/// when given, have applied everything before `end`; false when the bound
/// passed first.
pub(crate) async fn caught_up(
    views: &Views,
    hub: Option<&HubViews>,
    end: lrs_eventlog::Offset,
    bound: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    let mut watch = views.subscribe();
    if tokio::time::timeout_at(deadline, watch.wait_for(|applied| *applied >= end)).await.is_err() {
        return false;
    }
    let Some(hub) = hub else {
        return true;
    };
    // The hub projection follows the xAPI views closely, unless it is
    // gathering events into a larger batch: ask it to apply what it holds
    // at once, and again each time it moves. (A hurry while it is not
    // waiting ends its next wait, so none is lost.)
    let mut applied = hub.subscribe();
    loop {
        if *applied.borrow_and_update() >= end {
            return true;
        }
        hub.hurry();
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => {}
            // The views are gone, or the bound passed.
            Ok(Err(_)) | Err(_) => return *applied.borrow() >= end,
        }
    }
}

/// With the store stopped: lets its projections catch up with the log, then
/// replays the whole log into fresh projections (in a scratch directory
/// inside the data directory, removed afterwards) and compares the two by
/// digest.
pub async fn verify(options: EmbeddedOptions, compress_scratch: bool) -> Result<VerifyReport, StartError> {
    let log: Arc<dyn EventLog> = Arc::new(open_embedded(&options.data_dir.join("log"))?);
    let end = log.end_offset().await?;
    let scratch = options.data_dir.join("verify-scratch");
    let _ = std::fs::remove_dir_all(&scratch);
    let mut digests = Vec::new();
    // The live store keeps the compression it was made with; only the
    // scratch store is made compressed when asked.
    let scratch_store = StoreOptions { compress_new: compress_scratch, ..options.store };
    let (mut replay, mut digesting, mut statements) = (Duration::ZERO, Duration::ZERO, 0);
    for (dir, store) in [(options.data_dir.clone(), options.store), (scratch.clone(), scratch_store)] {
        let views = Arc::new(Views::open(&dir.join("views"), store)?);
        let hub = Arc::new(HubViews::open(&dir.join("hub"), store, options.frameworks.clone())?);
        hand_off(&views, &hub, options.event_handoff_bytes);
        let began = std::time::Instant::now();
        let projectors = Projectors::start(&log, &views, &hub);
        // Projectors never stop on their own (they retry and log), so this
        // waits as long as the replay takes.
        while !caught_up(&views, Some(&hub), end, Duration::from_secs(3600)).await {}
        projectors.stop(&views, &hub).await?;
        // The live store's projections only catch up; the scratch one's
        // replay the whole log.
        replay = began.elapsed();
        statements = views.statements_stored();
        let began = std::time::Instant::now();
        digests.push(state_digests(views, hub).await?);
        digesting += began.elapsed();
    }
    let scratch_bytes = disk_usage(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let [(live_views, live_hub), (replayed_views, replayed_hub)] = <[(String, String); 2]>::try_from(digests)
        .map_err(|_| StartError::DataDir { path: scratch, reason: "verification did not run".to_owned() })?;
    Ok(VerifyReport {
        end,
        live_views,
        replayed_views,
        live_hub,
        replayed_hub,
        scratch_bytes,
        replay,
        statements,
        digesting,
    })
}

/// Both projections' digests, each a scan of its whole store, side by side.
async fn state_digests(views: Arc<Views>, hub: Arc<HubViews>) -> Result<(String, String), StartError> {
    let views = tokio::task::spawn_blocking(move || views.state_digest());
    let hub = tokio::task::spawn_blocking(move || hub.state_digest());
    Ok((joined(views.await)?, joined(hub.await)?))
}

/// What a blocking task returned; its panic, carried on.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    result.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
}

/// The disk the files under `path` take (blocks allocated, so a sparse
/// file counts what it holds); what cannot be read counts nothing.
fn disk_usage(path: &std::path::Path) -> u64 {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if metadata.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        return entries.filter_map(Result::ok).map(|entry| disk_usage(&entry.path())).sum();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        metadata.blocks() * 512
    }
    #[cfg(not(unix))]
    {
        metadata.len()
    }
}
