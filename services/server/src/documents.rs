//! The document resources: State, Activity Profile and Agent Profile.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde_json::Value;
use uuid::Uuid;

use lrs_xapi::XapiVersion;
use lrs_xapi::agent::ifi_key;
use lrs_xapi::document::is_json_content_type;
use lrs_xapi::events::{DocumentKey, DocumentKind};

use crate::app::AppState;
use crate::credentials::Scope;
use crate::error::ApiError;
use crate::http::{Params, authenticate, header_text, http_date, read_body};
use crate::sequencer::{DocumentCommand, DocumentOp, PutPrecondition};

/// Which resource, and the names of its parameters.
#[derive(Clone, Copy)]
struct Resource {
    kind: fn() -> DocumentKind,
    id_param: &'static str,
    needs_activity: bool,
    needs_agent: bool,
    allows_registration: bool,
    scope: Scope,
}

const STATE: Resource = Resource {
    kind: || DocumentKind::State,
    id_param: "stateId",
    needs_activity: true,
    needs_agent: true,
    allows_registration: true,
    scope: Scope::State,
};
const ACTIVITY_PROFILE: Resource = Resource {
    kind: || DocumentKind::ActivityProfile,
    id_param: "profileId",
    needs_activity: true,
    needs_agent: false,
    allows_registration: false,
    scope: Scope::Profile,
};
const AGENT_PROFILE: Resource = Resource {
    kind: || DocumentKind::AgentProfile,
    id_param: "profileId",
    needs_activity: false,
    needs_agent: true,
    allows_registration: false,
    scope: Scope::Profile,
};

pub async fn state(state: State<AppState>, request: Request) -> Result<Response, ApiError> {
    handle(state, request, STATE).await
}

pub async fn activity_profile(state: State<AppState>, request: Request) -> Result<Response, ApiError> {
    handle(state, request, ACTIVITY_PROFILE).await
}

pub async fn agent_profile(state: State<AppState>, request: Request) -> Result<Response, ApiError> {
    handle(state, request, AGENT_PROFILE).await
}

/// The parsed address of a request: the scope, and the id when one is given.
struct Address {
    activity_id: Option<String>,
    agent: Option<String>,
    registration: Option<String>,
    document_id: Option<String>,
}

/// Parses the `agent` parameter into the agent's IFI key.
pub fn agent_param(params: &Params, required: bool) -> Result<Option<String>, ApiError> {
    let Some(text) = params.get("agent") else {
        return if required {
            Err(ApiError::bad_property("?agent", "the parameter \"agent\" is required"))
        } else {
            Ok(None)
        };
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|_| ApiError::bad_property("?agent", "agent must be a JSON Agent object"))?;
    if !value.is_object() {
        return Err(ApiError::bad_property("?agent", "agent must be a JSON Agent object"));
    }
    if value.get("objectType").and_then(Value::as_str).is_some_and(|t| t != "Agent" && t != "Group") {
        return Err(ApiError::bad_property("?agent/objectType", "agent must be an Agent"));
    }
    if let Some(mbox) = value.get("mbox")
        && !mbox.as_str().is_some_and(|m| m.starts_with("mailto:"))
    {
        return Err(ApiError::bad_property("?agent/mbox", "mbox must be a mailto: IRI"));
    }
    ifi_key(&value)
        .map(Some)
        .ok_or_else(|| ApiError::bad_property("?agent", "agent must have exactly one inverse functional identifier"))
}

fn is_iri(text: &str) -> bool {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    text.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
    })
}

fn address(params: &Params, resource: Resource) -> Result<Address, ApiError> {
    let mut allowed = vec![resource.id_param, "since"];
    if resource.needs_activity {
        allowed.push("activityId");
    }
    if resource.needs_agent {
        allowed.push("agent");
    }
    if resource.allows_registration {
        allowed.push("registration");
    }
    params.only(&allowed)?;
    let activity_id = if resource.needs_activity {
        let id = params.required("activityId")?;
        if !is_iri(id) {
            return Err(ApiError::bad_property("?activityId", "activityId must be an IRI"));
        }
        Some(id.to_owned())
    } else {
        None
    };
    let agent = if resource.needs_agent { agent_param(params, true)? } else { None };
    let registration = match params.get("registration") {
        Some(text) => Some(
            Uuid::parse_str(text)
                .map_err(|_| ApiError::bad_property("?registration", "registration must be a UUID"))?
                .to_string(),
        ),
        None => None,
    };
    Ok(Address { activity_id, agent, registration, document_id: params.get(resource.id_param).map(str::to_owned) })
}

/// `Last-Modified` for a document's RFC 3339 change time.
fn last_modified(updated: &str) -> Option<HeaderValue> {
    http_date(DateTime::parse_from_rfc3339(updated).ok()?.to_utc())
}

async fn handle(State(state): State<AppState>, request: Request, resource: Resource) -> Result<Response, ApiError> {
    let version = request.extensions().get::<XapiVersion>().copied().unwrap_or(XapiVersion::V2_0_0);
    let principal = authenticate(&state, request.headers())?;
    let method = request.method().clone();
    let reading = method == Method::GET || method == Method::HEAD;
    if reading {
        principal.require(&[resource.scope, Scope::AllRead])?;
    } else {
        principal.require(&[resource.scope])?;
    }
    let params = Params::parse(request.uri().query())?;
    let address = address(&params, resource)?;
    let kind = (resource.kind)();
    let (parts, body) = request.into_parts();
    let headers = parts.headers;

    if reading {
        state.wait_for_document_writes().await;
        return read(&state, &params, kind, address).await;
    }
    if params.get("since").is_some() {
        return Err(ApiError::bad_property("?since", "since is only allowed when listing documents"));
    }
    let if_match = header_text(&headers, "if-match")?.map(str::to_owned);
    let if_none_match = header_text(&headers, "if-none-match")?.map(str::to_owned);
    let op = if method == Method::DELETE {
        match &address.document_id {
            Some(_) => DocumentOp::Delete,
            None if kind == DocumentKind::State => DocumentOp::ClearState,
            None => {
                return Err(ApiError::bad_property(
                    format!("?{}", resource.id_param),
                    format!("the parameter {:?} is required", resource.id_param),
                ));
            }
        }
    } else {
        if address.document_id.is_none() {
            return Err(ApiError::bad_property(
                format!("?{}", resource.id_param),
                format!("the parameter {:?} is required", resource.id_param),
            ));
        }
        let content_type = content_type(&headers)?;
        let content = read_body(body, state.config.max_body_bytes).await?.to_vec();
        if is_json_content_type(&content_type) && serde_json::from_slice::<Value>(&content).is_err() {
            return Err(ApiError::bad_request("the document is declared application/json but is not valid JSON"));
        }
        if method == Method::PUT {
            let precondition = match (version, &kind) {
                (XapiVersion::V1_0_3, DocumentKind::State) => PutPrecondition::Optional,
                (XapiVersion::V1_0_3, _) => PutPrecondition::Always,
                (XapiVersion::V2_0_0, _) => PutPrecondition::WhenExisting,
            };
            DocumentOp::Put { content_type, content, precondition }
        } else if method == Method::POST {
            DocumentOp::Post { content_type, content }
        } else {
            return Err(ApiError::MethodNotAllowed(format!("{method} is not allowed here")));
        }
    };
    let key = DocumentKey {
        kind,
        activity_id: address.activity_id,
        agent: address.agent,
        registration: address.registration,
        document_id: address.document_id.unwrap_or_default(),
    };
    let began = std::time::Instant::now();
    let visible = state.writer.change_document(DocumentCommand { key, op, if_match, if_none_match }).await;
    state.metrics.observe_write_stage(crate::metrics::WriteStage::Writer, began.elapsed());
    state.wait_visible(visible?, crate::scoped_writes::WriteScope::document()).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn content_type(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(header_text(headers, "content-type")?.unwrap_or("application/octet-stream").to_owned())
}

async fn read(state: &AppState, params: &Params, kind: DocumentKind, address: Address) -> Result<Response, ApiError> {
    let views = state.views.clone();
    if let Some(document_id) = address.document_id {
        if params.get("since").is_some() {
            return Err(ApiError::bad_property("?since", "since cannot be combined with a document id"));
        }
        let key = DocumentKey {
            kind,
            activity_id: address.activity_id,
            agent: address.agent,
            registration: address.registration,
            document_id,
        };
        let document =
            tokio::task::spawn_blocking(move || views.document(&key)).await.map_err(ApiError::internal)??;
        let Some(document) = document else {
            return Err(ApiError::NotFound("no document with that id".to_owned()));
        };
        let mut headers = HeaderMap::new();
        let content_type = HeaderValue::from_str(&document.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_TYPE, content_type);
        if let Ok(etag) = HeaderValue::from_str(&document.etag) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(date) = last_modified(&document.updated) {
            headers.insert(header::LAST_MODIFIED, date);
        }
        return Ok((StatusCode::OK, headers, Bytes::from(document.content)).into_response());
    }
    let since = match params.get("since") {
        Some(text) => Some(
            lrs_xapi::validate::parse_timestamp(XapiVersion::V1_0_3, text)
                .ok_or_else(|| ApiError::bad_property("?since", "since must be an ISO 8601 timestamp"))?,
        ),
        None => None,
    };
    let activity_id = address.activity_id;
    let agent = address.agent;
    let registration = address.registration;
    let documents = tokio::task::spawn_blocking(move || {
        views.documents(&kind, activity_id.as_deref(), agent.as_deref(), registration.as_deref())
    })
    .await
    .map_err(ApiError::internal)??;
    let mut latest: Option<String> = None;
    let ids: Vec<String> = documents
        .into_iter()
        .filter(|d| {
            since.is_none_or(|since| DateTime::parse_from_rfc3339(&d.updated).is_ok_and(|updated| updated > since))
        })
        .map(|d| {
            if latest.as_ref().is_none_or(|l| *l < d.updated) {
                latest = Some(d.updated.clone());
            }
            d.id
        })
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(date) = latest.as_deref().and_then(last_modified) {
        headers.insert(header::LAST_MODIFIED, date);
    }
    let body = serde_json::to_vec(&ids).map_err(ApiError::internal)?;
    Ok((StatusCode::OK, headers, Bytes::from(body)).into_response())
}
