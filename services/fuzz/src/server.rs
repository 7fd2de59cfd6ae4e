//! The whole LRS in this process, for targets that go through the HTTP
//! application: `lrs_server::Embedded` over a scratch data directory,
//! called through its router without a socket.
//!
//! This is how the fuzz targets reach the server code that is private to
//! `lrs-server` (the strict JSON parser and its duplicate-key check, the
//! statement query handler): through the same public router `lrs serve`
//! runs.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use serde_json::Value;
use tower::ServiceExt;

use lrs_server::credentials::{self, Scope};
use lrs_server::more_links::MoreLinks;
use lrs_server::{Embedded, EmbeddedOptions};

/// A running embedded LRS and a credential of scope `all` on it.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    authorization: String,
    /// Keeps the store (and its projector tasks) alive.
    _store: Embedded,
    /// The store's `more` link key, to seal cursors as the LRS does.
    more_links: MoreLinks,
    pub data_dir: PathBuf,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The Content-Type header, if it is text.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The JSON body, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A coarse description of the outcome for [`crate::feature`]: status
    /// and the letters of the error message (names and values the input
    /// chose are mostly quoted or numeric and so dropped).
    pub fn shape(&self) -> String {
        let message = self
            .json()
            .and_then(|body| body.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let shape = crate::targets::shape(&message);
        format!("{} {shape}", self.status.as_u16())
    }
}

/// How long one request may take before the target reports a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Scratch directories of earlier runs are removed once this old (or at
/// once, where `/proc` shows their process has ended).
const STALE: Duration = Duration::from_secs(3600);

/// `target/fuzz-work`: scratch data directories, each named
/// `<pid>-<anything>` after the process that uses it.
pub fn work_root() -> PathBuf {
    crate::engine::target_dir().join("fuzz-work")
}

/// Removes the scratch directories of processes that have ended.
pub fn remove_stale_work_dirs() {
    let Ok(entries) = std::fs::read_dir(work_root()) else {
        return;
    };
    let proc_fs = std::path::Path::new("/proc/self").exists();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|pid| pid.parse::<u32>().ok());
        let ended = proc_fs && pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age > STALE);
        if ended || old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn open() -> Result<Harness, String> {
    remove_stale_work_dirs();
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let data_dir = work_root().join(format!("{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
    let (credential, secret) = credentials::add(&data_dir, "lrs-fuzz", None, None, vec![Scope::All])
        .map_err(|e| format!("cannot add a credential: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let mut options = EmbeddedOptions::new(&data_dir);
    options.store.cache_bytes = 8 * 1024 * 1024;
    let store = {
        let _entered = runtime.enter();
        Embedded::open(options).map_err(|e| format!("cannot open the embedded LRS: {e}"))?
    };
    let router = store.router();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", credential.key));
    let more_links = MoreLinks::open(&data_dir).map_err(|e| format!("cannot read the more-link key: {e}"))?;
    let harness =
        Harness { runtime, router, authorization: format!("Basic {token}"), _store: store, more_links, data_dir };
    harness.store_some_statements();
    Ok(harness)
}

/// The shared harness, started on first use.
///
/// # Panics
/// If the LRS cannot start (no writable target directory…): every input
/// of a target that needs it would fail the same way.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();
    match HARNESS.get_or_init(open) {
        Ok(harness) => harness,
        Err(reason) => panic!("the fuzz harness cannot start the embedded LRS: {reason}"),
    }
}

impl Harness {
    /// `cursor` sealed as the LRS seals the cursor of a `more` link.
    pub fn seal(&self, cursor: &[u8]) -> String {
        self.more_links.seal(cursor)
    }

    /// Stores the valid statement fixtures, so that queries find something
    /// (and have `more` pages at small limits).
    fn store_some_statements(&self) {
        let valid = crate::corpus::workspace_root().join("tests/fixtures/statements/valid");
        for statement in crate::corpus::read_tree(&valid, &[".json"]) {
            let _ = self.request(Method::POST, "/xapi/statements", "1.0.3", Some(b"application/json"), statement);
        }
    }

    /// Sends one request with this harness's credential and the xAPI
    /// version header. `None` if the request cannot be built (a URI or
    /// header the HTTP types refuse, which never reaches a server).
    ///
    /// # Panics
    /// If the server takes longer than 30 s to answer (a hang is a bug).
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        version: &str,
        content_type: Option<&[u8]>,
        body: Vec<u8>,
    ) -> Option<Answer> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("authorization", &self.authorization)
            .header("x-experience-api-version", version);
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let request = builder.body(Body::from(body)).ok()?;
        let router = self.router.clone();
        let answer = self.runtime.block_on(async move {
            tokio::time::timeout(REQUEST_TIMEOUT, async move {
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let status = response.status();
                let content_type =
                    response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.map(|b| b.to_vec());
                (status, content_type, body)
            })
            .await
        });
        match answer {
            Ok((status, content_type, Ok(body))) => Some(Answer { status, content_type, body }),
            Ok((status, _, Err(error))) => panic!("the {status} response body could not be read: {error}"),
            Err(_) => panic!("the LRS did not answer {path_and_query} within {REQUEST_TIMEOUT:?}"),
        }
    }
}
