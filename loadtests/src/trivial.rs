//! A trivial HTTP endpoint for measuring the load tool's own ceiling: it
//! reads and discards every request body and answers at once (POST: 200
//! `[]`, PUT/DELETE: 204, anything else: 200 `{}`).

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;

async fn answer(request: Request) -> Response {
    let method = request.method().clone();
    let _ = to_bytes(request.into_body(), usize::MAX).await;
    let (status, body) = match method {
        Method::POST => (StatusCode::OK, "[]"),
        Method::PUT | Method::DELETE => (StatusCode::NO_CONTENT, ""),
        _ => (StatusCode::OK, "{}"),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    }
    response
}

/// The router of the trivial server.
pub fn router() -> Router {
    Router::new().fallback(answer)
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}
