//! Request plumbing shared by every resource: parameters, bodies, the
//! version header, authentication and scopes.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use lrs_xapi::XapiVersion;

use crate::app::AppState;
use crate::credentials::Scope;
use crate::error::ApiError;

pub const VERSION_HEADER: &str = "x-experience-api-version";
pub const CONSISTENT_THROUGH_HEADER: &str = "x-experience-api-consistent-through";

/// Query parameters, each at most once.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut values = HashMap::new();
        let Some(query) = query else {
            return Ok(Self { values });
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if values.insert(name.to_string(), value.to_string()).is_some() {
                return Err(ApiError::bad_property(
                    format!("?{name}"),
                    format!("the parameter {name:?} appears more than once"),
                ));
            }
        }
        Ok(Self { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_property(format!("?{name}"), format!("the parameter {name:?} is required")))
    }

    /// Rejects parameters outside `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for name in self.names() {
            if !allowed.contains(&name) {
                return Err(ApiError::bad_property(format!("?{name}"), format!("unknown parameter {name:?}")));
            }
        }
        Ok(())
    }

    pub fn boolean(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => {
                Err(ApiError::bad_property(format!("?{name}"), format!("{name} must be true or false, not {other:?}")))
            }
        }
    }
}

/// Reads a request body up to `limit` bytes; larger bodies are refused with 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut collected = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(collected.freeze()),
            Some(Err(_)) => return Err(ApiError::bad_request("the request body could not be read")),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                if collected.len() + data.len() > limit {
                    drain(body).await;
                    return Err(ApiError::PayloadTooLarge(format!(
                        "the request body exceeds the limit of {limit} bytes"
                    )));
                }
                collected.extend_from_slice(&data);
            }
        }
    }
}

/// Reads and drops the rest of a refused body (up to a bound in bytes and
/// time) so the client, still sending, receives the answer instead of a
/// connection reset.
async fn drain(mut body: Body) {
    use http_body_util::BodyExt;
    const MOST_BYTES: usize = 256 * 1024 * 1024;
    const MOST_TIME: std::time::Duration = std::time::Duration::from_secs(10);
    let mut drained = 0usize;
    let _ = tokio::time::timeout(MOST_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            drained += frame.data_ref().map_or(0, |d| d.len());
            if drained > MOST_BYTES {
                break;
            }
        }
    })
    .await;
}

/// The media type of a Content-Type header, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(lrs_xapi::multipart::media_type(value))
}

/// An HTTP date (`Last-Modified`), in GMT.
pub fn http_date(time: chrono::DateTime<chrono::Utc>) -> Option<HeaderValue> {
    HeaderValue::from_str(&time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
}

pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            value.to_str().map(Some).map_err(|_| ApiError::bad_request(format!("the {name} header is not valid text")))
        }
    }
}

/// The xAPI version each client (by Authorization header) last used.
/// Bounded: forgotten wholesale when it grows past its capacity.
#[derive(Default)]
pub struct SpokenVersions {
    by_client: std::sync::Mutex<HashMap<[u8; 32], XapiVersion>>,
}

impl SpokenVersions {
    const CAPACITY: usize = 10_000;

    fn client(headers: &HeaderMap) -> Option<[u8; 32]> {
        use sha2::Digest;
        let authorization = headers.get(header::AUTHORIZATION)?;
        Some(sha2::Sha256::digest(authorization.as_bytes()).into())
    }

    fn remember(&self, headers: &HeaderMap, version: XapiVersion) {
        let Some(client) = Self::client(headers) else {
            return;
        };
        if let Ok(mut map) = self.by_client.lock() {
            if map.len() >= Self::CAPACITY {
                map.clear();
            }
            map.insert(client, version);
        }
    }

    fn recall(&self, headers: &HeaderMap) -> XapiVersion {
        Self::client(headers)
            .and_then(|client| self.by_client.lock().ok().and_then(|map| map.get(&client).copied()))
            .unwrap_or(XapiVersion::V2_0_0)
    }
}

/// A step of the application's front (`app::front`): requires and checks
/// `X-Experience-API-Version` (except on `/about`), records the version
/// for handlers, has `next` answer, and sends the header on every response.
pub async fn negotiate_version<F: Future<Output = Response>>(
    state: &AppState,
    mut request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    // The version this client last spoke answers a request that has none;
    // looked up only then, not on every request.
    let fallback = |request: &Request| state.spoken_versions.recall(request.headers());
    let path = request.uri().path().to_owned();
    let needs_version = path.starts_with("/xapi") && path != "/xapi/about" && request.method() != Method::OPTIONS;
    let header = request.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let version = match header.as_deref() {
        Some(text) => match XapiVersion::from_header(text) {
            Some(version) => Some(version),
            None if needs_version => {
                return with_version(
                    ApiError::bad_request(format!(
                        "unsupported X-Experience-API-Version {text:?}; this LRS speaks {}",
                        XapiVersion::SUPPORTED.join(", ")
                    ))
                    .into_response(),
                    fallback(&request),
                );
            }
            None => None,
        },
        None if needs_version => {
            return with_version(
                ApiError::bad_request("the X-Experience-API-Version header is required").into_response(),
                fallback(&request),
            );
        }
        None => None,
    };
    if let Some(version) = version {
        state.spoken_versions.remember(request.headers(), version);
    }
    let negotiated = version.unwrap_or_else(|| fallback(&request));
    request.extensions_mut().insert(negotiated);
    with_version(next(request).await, negotiated)
}

fn with_version(mut response: Response, version: XapiVersion) -> Response {
    response.headers_mut().insert(VERSION_HEADER, HeaderValue::from_static(version.header_value()));
    response
}

/// The `X-Experience-API-Consistent-Through` value a statement query took
/// once it had waited for the writes it must show, before it read
/// anything (see `statements::before_reading`).
#[derive(Debug, Clone)]
pub struct ConsistentThrough(pub String);

/// A step of the application's front (`app::front`): adds
/// `X-Experience-API-Consistent-Through` to every statements response
/// `next` gives, errors included: the value a statement query took, or
/// else one taken before the handler runs (everything stored up to it is
/// already visible, so the response cannot miss any of it).
pub async fn consistent_through<F: Future<Output = Response>>(
    state: &AppState,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    if request.uri().path() != "/xapi/statements" {
        return next(request).await;
    }
    let before = state.consistent_through();
    let mut response = next(request).await;
    let value = match response.extensions_mut().remove::<ConsistentThrough>() {
        Some(ConsistentThrough(taken)) => taken,
        None => before,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(CONSISTENT_THROUGH_HEADER, value);
    }
    response
}

/// Headers that the 1.0.3 alternate request syntax may carry as form fields.
const FORM_HEADERS: [&str; 6] =
    ["authorization", "x-experience-api-version", "content-type", "content-length", "if-match", "if-none-match"];

/// A step of the application's front (`app::front`): the 1.0.3 alternate
/// request syntax, a form POST with `?method=` carrying headers,
/// parameters and content as form fields, is turned back into the ordinary
/// request it stands for, which `next` answers; refused in 2.0.
pub async fn alternate_syntax<F: Future<Output = Response>>(
    state: &AppState,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let has_method_param =
        request.uri().query().is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "method"));
    if !has_method_param {
        return next(request).await;
    }
    match rewrite_alternate(request, state.config.max_body_bytes).await {
        Ok(rewritten) => next(rewritten).await,
        Err((error, version)) => with_version(error.into_response(), version),
    }
}

async fn rewrite_alternate(request: Request, limit: usize) -> Result<Request, (ApiError, XapiVersion)> {
    let (parts, body) = request.into_parts();
    let header_version =
        parts.headers.get(VERSION_HEADER).and_then(|v| v.to_str().ok()).and_then(XapiVersion::from_header);
    let fail = |error: ApiError| (error, header_version.unwrap_or(XapiVersion::V2_0_0));
    if parts.method != Method::POST {
        return Err(fail(ApiError::bad_request("the alternate request syntax must use POST")));
    }
    let query = Params::parse(parts.uri.query()).map_err(fail)?;
    if query.names().any(|n| n != "method") {
        return Err(fail(ApiError::bad_request(
            "with the alternate request syntax every parameter goes in the form body, only method in the query",
        )));
    }
    let method_name = query.get("method").unwrap_or("").to_ascii_uppercase();
    let method = match method_name.as_str() {
        "GET" | "HEAD" | "PUT" | "POST" | "DELETE" => {
            Method::from_bytes(method_name.as_bytes()).map_err(|_| fail(ApiError::bad_request("bad method")))?
        }
        other => {
            return Err(fail(ApiError::bad_request(format!(
                "unsupported method {other:?} in the alternate request syntax"
            ))));
        }
    };
    if media_type(&parts.headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(fail(ApiError::bad_request(
            "the alternate request syntax needs Content-Type application/x-www-form-urlencoded",
        )));
    }
    let bytes = read_body(body, limit).await.map_err(fail)?;
    let mut headers = parts.headers.clone();
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    let mut content: Option<String> = None;
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(&bytes) {
        let lower = name.to_ascii_lowercase();
        if lower == "content" {
            content = Some(value.into_owned());
        } else if FORM_HEADERS.contains(&lower.as_str()) {
            if lower == "content-length" {
                continue;
            }
            let value = HeaderValue::from_str(&value)
                .map_err(|_| fail(ApiError::bad_request(format!("form field {name} is not a valid header value"))))?;
            headers.insert(
                axum::http::HeaderName::from_bytes(lower.as_bytes())
                    .map_err(|_| fail(ApiError::bad_request("bad header")))?,
                value,
            );
        } else {
            serializer.append_pair(&name, &value);
        }
    }
    let version = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(XapiVersion::from_header)
        .unwrap_or(XapiVersion::V2_0_0);
    if version == XapiVersion::V2_0_0 {
        return Err((ApiError::bad_request("the alternate request syntax is not part of xAPI 2.0"), version));
    }
    if content.is_some() && !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let query = serializer.finish();
    let path_and_query =
        if query.is_empty() { parts.uri.path().to_owned() } else { format!("{}?{query}", parts.uri.path()) };
    let uri: Uri = path_and_query.parse().map_err(|_| (ApiError::bad_request("bad parameters"), version))?;
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(map) = builder.headers_mut() {
        *map = headers;
    }
    if let Some(extensions) = builder.extensions_mut() {
        // The connection's details (the client's address) stay with it.
        *extensions = parts.extensions;
    }
    builder.body(Body::from(content.unwrap_or_default())).map_err(|e| (ApiError::internal(e), version))
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub key: String,
    pub scopes: Vec<Scope>,
    /// The Agent the LRS records as `authority` for this caller's statements.
    pub authority: Value,
    /// Organisations whose analytics the caller may read (`*`: all).
    pub organisations: Vec<String>,
    /// For a learner signed in with a token: their agent key.
    pub learner: Option<String>,
}

impl Principal {
    pub fn has_any(&self, scopes: &[Scope]) -> bool {
        self.scopes.contains(&Scope::All) || scopes.iter().any(|s| self.scopes.contains(s))
    }

    pub fn require(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        if self.has_any(scopes) {
            Ok(())
        } else {
            let names: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
            Err(ApiError::Forbidden(format!(
                "this credential lacks the scope for this request (one of: {})",
                names.join(", ")
            )))
        }
    }
}

/// Authenticates HTTP Basic credentials against the credential store.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let value = header_text(headers, "authorization")?
        .ok_or_else(|| ApiError::Unauthorized("authentication is required (HTTP Basic)".to_owned()))?;
    let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        return authenticate_learner(state, encoded.trim());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::Unauthorized("only HTTP Basic authentication is supported".to_owned()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| ApiError::Unauthorized("the Basic credentials are not valid base64".to_owned()))?;
    let (key, secret) = decoded
        .split_once(':')
        .ok_or_else(|| ApiError::Unauthorized("the Basic credentials must be key:secret".to_owned()))?;
    let credential = state
        .credentials
        .authenticate(key, secret)
        .ok_or_else(|| ApiError::Unauthorized("unknown key, wrong secret or revoked credential".to_owned()))?;
    note_credential(&credential.name);
    let authority = json!({
        "objectType": "Agent",
        "name": credential.name,
        "account": { "homePage": state.config.authority_home_page, "name": credential.key },
    });
    Ok(Principal {
        name: credential.name,
        key: credential.key,
        scopes: credential.scopes,
        authority,
        organisations: credential.organisations,
        learner: None,
    })
}

fn authenticate_learner(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let verifier = state
        .jwt
        .as_ref()
        .ok_or_else(|| ApiError::Unauthorized("bearer tokens are not accepted by this LRS".to_owned()))?;
    let account = verifier
        .learner_account(token)
        .ok_or_else(|| ApiError::Unauthorized("the bearer token is invalid, expired or not for this LRS".to_owned()))?;
    let learner = lrs_hub::facts::learning_hub_learner(&account);
    note_credential("jwt");
    Ok(Principal {
        name: format!("learner {account}"),
        key: String::new(),
        scopes: vec![Scope::StatementsReadMine],
        authority: json!({ "objectType": "Agent", "account": { "homePage": lrs_hub::facts::LEARNING_HUB_HOME_PAGE, "name": account } }),
        organisations: Vec::new(),
        learner: Some(learner),
    })
}

tokio::task_local! {
    /// The name of the credential a request authenticated with, for the
    /// access log (set by [`authenticate`] within [`access_log`]).
    static CREDENTIAL: std::cell::RefCell<Option<String>>;
}

/// What the access log names the caller: the credential's name, or `jwt`
/// for a learner's bearer token (never the learner or the token).
fn note_credential(name: &str) {
    let _ = CREDENTIAL.try_with(|credential| *credential.borrow_mut() = Some(name.to_owned()));
}

/// The route template a request matched (a response extension).
#[derive(Debug, Clone)]
pub struct RouteTemplate(pub String);

/// Inside the router: hands the matched route template to the access log,
/// on the response `next` gives.
pub async fn remember_route<F: Future<Output = Response>>(
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let template = request.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_owned());
    let mut response = next(request).await;
    if let Some(template) = template {
        response.extensions_mut().insert(RouteTemplate(template));
    }
    response
}

/// The route template a path falls under, for requests answered before
/// routing (version header, throttle, body budget) or by a front that does
/// not route: a template of the application, else `other`.
pub fn route_of(path: &str) -> String {
    let templates = crate::app::XAPI_ROUTES.iter().copied().chain(crate::app::NON_XAPI_ROUTES.iter().map(|(_, p)| *p));
    for template in templates {
        let (mut wanted, mut given) = (template.split('/'), path.split('/'));
        let matches = loop {
            match (wanted.next(), given.next()) {
                (None, None) => break true,
                (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => break false,
            }
        };
        if matches {
            return template.to_owned();
        }
    }
    "other".to_owned()
}

/// A write of statements: PUT or POST on `/xapi/statements`, except the
/// alternate syntax's `POST ?method=GET|HEAD`.
fn is_statement_write(route: &str, method: &Method, query: Option<&str>) -> bool {
    if route != "/xapi/statements" {
        return false;
    }
    match *method {
        Method::PUT => true,
        Method::POST => !query.is_some_and(|query| {
            form_urlencoded::parse(query.as_bytes()).any(|(name, value)| {
                name == "method" && !(value.eq_ignore_ascii_case("PUT") || value.eq_ignore_ascii_case("POST"))
            })
        }),
        _ => false,
    }
}

/// One log line per request: route template (never the path or the query
/// string, which can name people), method, status, latency and the name of
/// the credential (`-` when none was accepted; `jwt` for a learner's
/// token). Bodies and secrets are never logged. Also counts the request in
/// the metrics.
pub async fn access_log(
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    logged(&metrics, request, |request| next.run(request)).await
}

/// What [`access_log`] does, around `next`.
pub async fn logged<F: Future<Output = Response>>(
    metrics: &crate::metrics::Metrics,
    request: Request,
    next: impl FnOnce(Request) -> F,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let started = std::time::Instant::now();
    let (response, credential) = CREDENTIAL
        .scope(std::cell::RefCell::new(None), async move {
            let response = next(request).await;
            let credential = CREDENTIAL.with(|credential| credential.borrow_mut().take());
            (response, credential)
        })
        .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = match response.extensions().get::<RouteTemplate>() {
        Some(RouteTemplate(template)) => template.clone(),
        None => route_of(&path),
    };
    let write = is_statement_write(&route, &method, query.as_deref());
    metrics.observe_request(&route, &method, status, elapsed, write);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let credential = credential.as_deref().unwrap_or("-");
    if response.status().is_server_error() {
        tracing::warn!(target: "lrs::access", %method, %route, status, latency_ms, %credential, "request failed");
    } else {
        tracing::info!(target: "lrs::access", %method, %route, status, latency_ms, %credential, "request");
    }
    response
}
