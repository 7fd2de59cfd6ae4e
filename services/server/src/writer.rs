//! Where a write goes: the embedded single writer, or the Kafka log.

use std::sync::Arc;

use lrs_projection::Views;
use lrs_xapi::events::Event;

use crate::cluster::KafkaIngest;
use crate::error::ApiError;
use crate::sequencer::{DocumentCommand, Refused, Sequencer, StatementBatch, VisibleAt};

#[derive(Clone)]
pub enum Writer {
    /// `lrs serve`: one writer decides and appends; the views are local.
    Embedded(Sequencer),
    /// `lrs ingest`: appends to Kafka, then asks a projection what became of
    /// the write (projections decide conflicts in log order).
    Kafka(Arc<KafkaIngest>),
    /// `lrs project`: serves reads; writes belong to ingest.
    ReadOnly,
}

impl Writer {
    pub async fn store_statements(&self, batch: StatementBatch) -> Result<VisibleAt, ApiError> {
        match self {
            Self::Embedded(sequencer) => sequencer.store_statements(batch).await,
            Self::Kafka(ingest) => ingest.store_statements(batch).await,
            Self::ReadOnly => Err(read_only()),
        }
    }

    /// As [`Writer::store_statements`], handing the batch back when none
    /// of it was stored (see [`Refused`]), for a caller that offers it
    /// again.
    pub async fn store_statements_or_back(&self, batch: StatementBatch) -> Result<VisibleAt, Refused> {
        match self {
            Self::Embedded(sequencer) => sequencer.store_statements_or_back(batch).await,
            // Ingest sends a copy: whatever it answers, the batch comes back.
            Self::Kafka(ingest) => {
                let copy = batch.clone();
                ingest.store_statements(batch).await.map_err(|error| Refused { error, batch: Some(copy) })
            }
            Self::ReadOnly => Err(Refused { error: read_only(), batch: Some(batch) }),
        }
    }

    pub async fn append_events(&self, events: Vec<Event>) -> Result<VisibleAt, ApiError> {
        match self {
            Self::Embedded(sequencer) => sequencer.append_events(events).await,
            Self::Kafka(ingest) => ingest.append_events(events).await,
            Self::ReadOnly => Err(read_only()),
        }
    }

    pub async fn change_document(&self, command: DocumentCommand) -> Result<VisibleAt, ApiError> {
        match self {
            Self::Embedded(sequencer) => sequencer.change_document(command).await,
            Self::Kafka(ingest) => ingest.change_document(command).await,
            Self::ReadOnly => Err(read_only()),
        }
    }

    /// True when the views this process serves are the ones writes wait for.
    pub fn projects_locally(&self) -> bool {
        !matches!(self, Self::Kafka(_))
    }

    /// With the embedded writer, where the directory loads it appended end
    /// (see [`crate::sequencer::WriteProgress::directory_loads_end`]).
    pub fn directory_loads_end(&self) -> Option<VisibleAt> {
        match self {
            Self::Embedded(sequencer) => sequencer.progress.directory_loads_end(),
            Self::Kafka(_) | Self::ReadOnly => None,
        }
    }

    /// The offset the views must have applied before a write visible at
    /// `visible` is acknowledged, when `ahead` statements may be
    /// acknowledged ahead of them (see [`crate::sequencer::WriteProgress::acknowledge_after`]).
    pub fn acknowledge_after(&self, visible: VisibleAt, views: &Views, ahead: u64) -> VisibleAt {
        match self {
            Self::Embedded(sequencer) => sequencer.progress.acknowledge_after(visible, views.applied_offset(), ahead),
            Self::Kafka(_) | Self::ReadOnly => visible,
        }
    }

    /// True when nothing is being written that the views do not show yet
    /// (known only to the embedded writer).
    pub fn is_quiet(&self, views: &Views) -> bool {
        match self {
            Self::Embedded(sequencer) => sequencer.progress.is_quiet(views),
            Self::Kafka(_) | Self::ReadOnly => false,
        }
    }

    /// Consistent-Through as a projection last reported it (Kafka ingest).
    pub fn reported_consistent_through(&self) -> Option<String> {
        match self {
            Self::Kafka(ingest) => Some(ingest.consistent_through()),
            Self::Embedded(_) | Self::ReadOnly => None,
        }
    }
}

fn read_only() -> ApiError {
    ApiError::MethodNotAllowed("this is a projection: send writes to an ingest replica".to_owned())
}
