//! The OpenAPI 3.1 document of every endpoint outside the xAPI (analytics,
//! directory imports, the pages, and the operational endpoints), served at
//! `GET /openapi.json`. The file lives beside the crate (`openapi.json`);
//! a test keeps it in step with the routes and parameters the code serves.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The document, as in `services/server/openapi.json`.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
