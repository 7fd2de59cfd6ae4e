//! The whole LRS in one process over the embedded log: what `lrs serve`
//! runs and what the integration tests start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use lrs_eventlog::{EventLog, SledEventLog, SledEventLogConfig};
use lrs_hub::HubViews;
use lrs_projection::{Views, run_projector};
use lrs_xapi::StatementValidator;

use crate::app::{AppState, ServerConfig};
use crate::credentials::CredentialStore;
use crate::more_links::MoreLinks;
use crate::sequencer::Sequencer;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    /// Page cache of the log and of the views, in bytes each.
    pub cache_bytes: u64,
    /// Writes waiting for the single writer before clients get 503.
    pub write_queue_depth: usize,
    pub server: ServerConfig,
    /// Competency frameworks for the Learning Hub views.
    pub frameworks: lrs_hub::frameworks::Frameworks,
    /// Learner sign-in (bearer JWTs), when configured.
    pub jwt: Option<crate::jwt::JwtVerifier>,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            cache_bytes: 128 * 1024 * 1024,
            write_queue_depth: 4096,
            server: ServerConfig::default(),
            frameworks: lrs_hub::frameworks::Frameworks::empty(),
            jwt: None,
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
    pub(crate) async fn stop(self, state: &AppState) -> Result<(), StartError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        state.views.flush()?;
        state.hub.flush()?;
        Ok(())
    }
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
        let validator = StatementValidator::new()?;
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| StartError::DataDir { path: options.data_dir.clone(), reason: e.to_string() })?;
        let log_config = SledEventLogConfig { cache_capacity_bytes: options.cache_bytes, ..Default::default() };
        let log: Arc<dyn EventLog> = Arc::new(SledEventLog::open(&options.data_dir.join("log"), log_config)?);
        let views = Arc::new(Views::open(&options.data_dir.join("views"), options.cache_bytes)?);
        let credentials = CredentialStore::open(&options.data_dir)?;
        let more_links = MoreLinks::open(&options.data_dir)
            .map_err(|e| StartError::DataDir { path: options.data_dir.clone(), reason: e.to_string() })?;
        let hub = Arc::new(HubViews::open(&options.data_dir.join("hub"), options.cache_bytes, options.frameworks)?);
        let projectors = Projectors::start(&log, &views, &hub);
        let sequencer = Sequencer::start(log.clone(), views.clone(), options.write_queue_depth);
        let state = AppState {
            log,
            views,
            writer: crate::writer::Writer::Embedded(sequencer),
            validator: Arc::new(validator),
            credentials: Arc::new(credentials),
            config: options.server,
            spoken_versions: Default::default(),
            more_links: Arc::new(more_links),
            hub,
            jwt: options.jwt.map(Arc::new),
        };
        Ok(Self { state, projectors })
    }

    /// The HTTP application over this store.
    pub fn router(&self) -> axum::Router {
        crate::app::app(self.state.clone())
    }

    /// Stops the projectors and flushes the views.
    pub async fn stop(self) -> Result<(), StartError> {
        self.projectors.stop(&self.state).await
    }
}
