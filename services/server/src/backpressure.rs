//! A bound on request bodies being received at once.
//!
//! Each write reserves its declared length (or the largest body allowed,
//! when it declares none) from a budget before its body is read; when the
//! budget is spent, the write gets 503 with `Retry-After` at once, so a
//! flood of large uploads slows clients down instead of growing memory.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

const UNIT: usize = 1024;

pub struct BodyBudget {
    units: Arc<Semaphore>,
    max_body_bytes: usize,
}

impl BodyBudget {
    /// At most `total_bytes` of bodies in flight; one body counts at most
    /// `max_body_bytes`.
    pub fn new(total_bytes: usize, max_body_bytes: usize) -> Self {
        let units = (total_bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self { units: Arc::new(Semaphore::new(units)), max_body_bytes }
    }

    pub fn for_config(config: &crate::app::ServerConfig) -> Self {
        Self::new(config.max_inflight_body_bytes, config.max_body_bytes)
    }

    fn units_for(&self, request: &Request) -> u32 {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(self.max_body_bytes);
        let bytes = declared.min(self.max_body_bytes);
        u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX)
    }
}

/// A step of the application's front (`app::front`): a write that fits
/// the budget is answered by `next`, holding its share until answered; one
/// that does not gets 503 at once.
pub async fn limit_bodies_in_flight<F: Future<Output = Response>>(
    budget: &BodyBudget,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next(request).await;
    }
    let units = budget.units_for(&request);
    match budget.units.clone().try_acquire_many_owned(units) {
        Ok(reserved) => {
            let response = next(request).await;
            drop(reserved);
            response
        }
        Err(_) => {
            tracing::warn!("request bodies in flight reached their bound; refusing a write");
            ApiError::Unavailable("the store is receiving too much at once; retry shortly".to_owned()).into_response()
        }
    }
}
