//! The one error type of the HTTP layer. Every client mistake maps to a 4xx
//! with a JSON body saying what is wrong and where; only our own failures
//! are 5xx, and their details go to the log, not the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String, path: Option<String> },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The client must slow down (e.g. repeated failed sign-ins).
    #[error("{0}")]
    TooManyRequests(String),
    /// The store cannot take the write now (log unavailable or overloaded).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest { message: message.into(), path: None }
    }

    pub fn bad_property(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest { message: message.into(), path: Some(path.into()) }
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                "the server failed to handle the request; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "error": {
                "status": status.as_u16(),
                "reason": status.canonical_reason().unwrap_or(""),
                "message": message,
            }
        });
        if let Self::BadRequest { path: Some(path), .. } = &self {
            body["error"]["path"] = json!(path);
        }
        let mut response = (status, axum::Json(body)).into_response();
        match &self {
            Self::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"xAPI\""));
            }
            Self::Unavailable(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<lrs_projection::ViewsError> for ApiError {
    fn from(error: lrs_projection::ViewsError) -> Self {
        Self::internal(error)
    }
}

impl From<lrs_xapi::document::Refusal> for ApiError {
    fn from(refusal: lrs_xapi::document::Refusal) -> Self {
        Self::refused(refusal.status, refusal.message)
    }
}

impl ApiError {
    /// An error for a 4xx status decided elsewhere (a projection's outcome).
    pub fn refused(status: u16, message: String) -> Self {
        match status {
            409 => Self::Conflict(message),
            412 => Self::PreconditionFailed(message),
            413 => Self::PayloadTooLarge(message),
            429 => Self::TooManyRequests(message),
            503 => Self::Unavailable(message),
            _ => Self::bad_request(message),
        }
    }
}

impl From<lrs_eventlog::LogError> for ApiError {
    fn from(error: lrs_eventlog::LogError) -> Self {
        match error {
            lrs_eventlog::LogError::EventTooLarge { .. } => Self::PayloadTooLarge(error.to_string()),
            lrs_eventlog::LogError::Overloaded | lrs_eventlog::LogError::Closed => Self::Unavailable(error.to_string()),
            lrs_eventlog::LogError::Storage(detail) => {
                tracing::error!(%detail, "event log write failed");
                Self::Unavailable("the store cannot accept writes right now; try again later".to_owned())
            }
        }
    }
}

impl From<lrs_hub::HubError> for ApiError {
    fn from(error: lrs_hub::HubError) -> Self {
        Self::internal(error)
    }
}
