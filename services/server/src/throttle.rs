//! Slows down clients that keep failing to authenticate.
//!
//! After `auth_failure_limit` (see `ServerConfig`) answers of 401 within a
//! minute to one client address, that address's requests with credentials
//! get 429 with `Retry-After` until the minute ends, before any secret is
//! checked. The layer runs after the alternate request syntax is rewritten,
//! so credentials sent as a form field count too. Memory is bounded: at most
//! [`AuthThrottle::MAX_CLIENTS`] clients are tracked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

struct Failures {
    count: u32,
    since: Instant,
}

pub struct AuthThrottle {
    clients: Mutex<HashMap<String, Failures>>,
    window: Duration,
    max_failures: u32,
    /// Whether `X-Forwarded-For` names the client (the server sits behind
    /// the LRS's own front, or a proxy the operator trusts).
    pub trust_forwarded_for: bool,
}

impl AuthThrottle {
    pub const MAX_CLIENTS: usize = 100_000;

    /// As the server is configured: `auth_failure_limit` per minute.
    pub fn for_config(config: &crate::app::ServerConfig) -> Self {
        let mut throttle = Self::new(config.auth_failure_limit, Duration::from_secs(60));
        throttle.trust_forwarded_for = config.trust_forwarded_for;
        throttle
    }

    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            clients: Mutex::new(HashMap::new()),
            window,
            max_failures: max_failures.max(1),
            trust_forwarded_for: false,
        }
    }

    /// How long `client` must wait, if it is throttled now.
    fn blocked_for(&self, client: &str, now: Instant) -> Option<Duration> {
        let clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let failures = clients.get(client)?;
        let elapsed = now.duration_since(failures.since);
        (failures.count >= self.max_failures && elapsed < self.window).then(|| self.window - elapsed)
    }

    fn record_failure(&self, client: String, now: Instant) {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if clients.len() >= Self::MAX_CLIENTS && !clients.contains_key(&client) {
            let window = self.window;
            clients.retain(|_, f| now.duration_since(f.since) < window);
            if clients.len() >= Self::MAX_CLIENTS {
                return;
            }
        }
        let failures = clients.entry(client).or_insert(Failures { count: 0, since: now });
        if now.duration_since(failures.since) >= self.window {
            *failures = Failures { count: 0, since: now };
        }
        failures.count += 1;
    }
}

/// The address a request comes from: the connection's peer, or, behind a
/// trusted front (`trust_forwarded_for`), the last address the front
/// appended to `X-Forwarded-For`. Failures are counted per address, never
/// per key alone: keys are not secret (statements name them as their
/// authority), so counting by key would let anyone lock a platform out.
fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<String> {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip().to_string())
}

/// A step of the application's front (`app::front`): refuses throttled
/// clients, else has `next` answer, and counts 401 answers.
pub async fn throttle_auth_failures<F: Future<Output = Response>>(
    throttle: &AuthThrottle,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    if !request.headers().contains_key(header::AUTHORIZATION) {
        // Without credentials there is nothing to guess (and public
        // resources stay reachable).
        return next(request).await;
    }
    let Some(client) = client_address(&request, throttle.trust_forwarded_for) else {
        return next(request).await;
    };
    let now = Instant::now();
    if let Some(wait) = throttle.blocked_for(&client, now) {
        let mut response =
            ApiError::TooManyRequests("too many failed sign-ins from this client; wait and try again".to_owned())
                .into_response();
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let response = next(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        throttle.record_failure(client, now);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_blocked_after_the_limit_until_the_window_ends() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..2 {
            throttle.record_failure("ip:1".to_owned(), start);
        }
        assert!(throttle.blocked_for("ip:1", start).is_none(), "below the limit");
        throttle.record_failure("ip:1".to_owned(), start);
        assert!(throttle.blocked_for("ip:1", start).is_some(), "at the limit");
        assert!(throttle.blocked_for("ip:2", start).is_none(), "other clients are not affected");
        assert!(throttle.blocked_for("ip:1", start + Duration::from_secs(61)).is_none(), "the window ends");
    }
}
