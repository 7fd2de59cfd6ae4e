//! The Learning Hub pages, served by the LRS itself: an uptake dashboard for
//! analysts, "My learning" for learners and a statement explorer for
//! administrators, plus a landing page.
//!
//! The pages are plain HTML, CSS and ES modules compiled into the binary.
//! They hold no data of their own: the browser calls the JSON APIs
//! (`/analytics/…`, `/xapi/statements`) with the credential the person
//! entered, so every page sees exactly what its caller may see through the
//! API. Every response carries a strict Content-Security-Policy (nothing
//! but this server's own files; no inline script or style).
//!
//! One small read-only endpoint is added for the dashboard's organisation
//! picker, `GET /ui/api/organisations`: the organisations an analyst may
//! see, with their names and parent links, under the same grant check as
//! the analytics API.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use lrs_hub::facts::is_ods_code;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{Params, authenticate};

/// What a page may load: only this server's own files.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The most organisations one answer of `/ui/api/organisations` lists.
const MAX_ORGANISATIONS: usize = 5000;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The pages, by path under `/ui/`.
const PAGES: [Asset; 4] = [
    Asset { name: "", content_type: HTML, body: include_bytes!("../ui/index.html") },
    Asset { name: "uptake", content_type: HTML, body: include_bytes!("../ui/uptake.html") },
    Asset { name: "learning", content_type: HTML, body: include_bytes!("../ui/learning.html") },
    Asset { name: "statements", content_type: HTML, body: include_bytes!("../ui/statements.html") },
];

/// Styles, scripts and the icon, by name under `/ui/assets/`.
const ASSETS: [Asset; 7] = [
    Asset { name: "style.css", content_type: CSS, body: include_bytes!("../ui/assets/style.css") },
    Asset { name: "common.js", content_type: JS, body: include_bytes!("../ui/assets/common.js") },
    Asset { name: "charts.js", content_type: JS, body: include_bytes!("../ui/assets/charts.js") },
    Asset { name: "uptake.js", content_type: JS, body: include_bytes!("../ui/assets/uptake.js") },
    Asset { name: "learning.js", content_type: JS, body: include_bytes!("../ui/assets/learning.js") },
    Asset { name: "statements.js", content_type: JS, body: include_bytes!("../ui/assets/statements.js") },
    Asset { name: "icon.svg", content_type: SVG, body: include_bytes!("../ui/assets/icon.svg") },
];

/// The routes of the pages, their assets and the organisation picker's API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { page("") }))
        .route("/ui/uptake", get(|| async { page("uptake") }))
        .route("/ui/learning", get(|| async { page("learning") }))
        .route("/ui/statements", get(|| async { page("statements") }))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/api/organisations", get(organisations))
}

/// Headers every UI response carries.
fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    response
}

fn serve(asset: &Asset) -> Response {
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // Assets are part of the binary: revalidating costs little and an
    // upgrade is seen at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(response)
}

fn not_found(what: &str) -> Response {
    secure(ApiError::NotFound(format!("no page or asset {what}")).into_response())
}

fn page(name: &str) -> Response {
    match PAGES.iter().find(|p| p.name == name) {
        Some(asset) => serve(asset),
        None => not_found(name),
    }
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset),
        None => not_found(&name),
    }
}

/// GET /ui/api/organisations[?root=CODE]: the organisations the caller may
/// see (each granted one and those below it; with `root`, that organisation
/// and those below it), as `{code, name, parent}` in tree order. A caller
/// granted `*` gets `everything: true` and, without `root`, an empty list:
/// the directory has no list of every organisation to offer.
async fn organisations(State(state): State<AppState>, request: Request) -> Response {
    secure(match organisations_answer(state, request).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => error.into_response(),
    })
}

async fn organisations_answer(state: AppState, request: Request) -> Result<Value, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    let params = Params::parse(request.uri().query())?;
    params.only(&["root"])?;
    if principal.learner.is_some() {
        return Err(ApiError::Forbidden("this caller has no analytics access".to_owned()));
    }
    let everything = principal.organisations.iter().any(|o| o == "*");
    let roots: Vec<String> = match params.get("root") {
        Some(code) => {
            if !is_ods_code(code) {
                return Err(ApiError::bad_property("?root", "root must be an ODS code (1 to 9 letters and digits)"));
            }
            crate::analytics::require_organisation(&state, &principal, code)?;
            vec![code.to_owned()]
        }
        None => {
            if principal.organisations.is_empty() {
                return Err(ApiError::Forbidden("this caller has no analytics access".to_owned()));
            }
            if everything { Vec::new() } else { principal.organisations.clone() }
        }
    };
    let hub = state.hub.clone();
    let listed = tokio::task::spawn_blocking(move || -> Result<(Vec<Value>, bool), ApiError> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut rows: Vec<(String, Option<String>, Option<String>)> = Vec::new();
        let mut truncated = false;
        'roots: for root in &roots {
            for code in hub.organisation_and_descendants(root)? {
                if !seen.insert(code.clone()) {
                    continue;
                }
                if rows.len() == MAX_ORGANISATIONS {
                    truncated = true;
                    break 'roots;
                }
                let entry = hub.organisation(&code)?;
                let name = entry.as_ref().map(|e| e.name.clone()).filter(|n| !n.is_empty());
                rows.push((code, name, entry.and_then(|e| e.parent)));
            }
        }
        // A parent is named only where the caller may see it too.
        let out = rows
            .into_iter()
            .map(|(code, name, parent)| {
                let parent = parent.filter(|p| seen.contains(p));
                json!({ "code": code, "name": name, "parent": parent })
            })
            .collect();
        Ok((out, truncated))
    })
    .await
    .map_err(ApiError::internal)??;
    let (organisations, truncated) = listed;
    let granted: Vec<&String> = principal.organisations.iter().collect();
    Ok(json!({
        "everything": everything,
        "granted": granted,
        "organisations": organisations,
        "truncated": truncated,
    }))
}
