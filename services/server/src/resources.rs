//! The Activities, Agents and About resources.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use lrs_xapi::XapiVersion;
use lrs_xapi::agent::person_for;

use crate::app::AppState;
use crate::credentials::Scope;
use crate::documents::agent_param;
use crate::error::ApiError;
use crate::http::{Params, authenticate};

const READ_SCOPES: [Scope; 5] = [Scope::AllRead, Scope::StatementsRead, Scope::Profile, Scope::Define, Scope::State];

/// GET /activities?activityId=…: the Activity as the LRS knows it.
pub async fn activities(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    principal.require(&READ_SCOPES)?;
    let params = Params::parse(request.uri().query())?;
    params.only(&["activityId"])?;
    let id = params.required("activityId")?.to_owned();
    let views = state.views.clone();
    let lookup = id.clone();
    let known = tokio::task::spawn_blocking(move || views.activity(&lookup)).await.map_err(ApiError::internal)??;
    let activity = known.unwrap_or_else(|| json!({ "objectType": "Activity", "id": id }));
    Ok(axum::Json(activity).into_response())
}

/// GET /agents?agent=…: the Person object for an Agent.
pub async fn agents(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    principal.require(&READ_SCOPES)?;
    let params = Params::parse(request.uri().query())?;
    params.only(&["agent"])?;
    let key = agent_param(&params, true)?.unwrap_or_default();
    let agent: Value = params.get("agent").and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
    let views = state.views.clone();
    let names = tokio::task::spawn_blocking(move || views.agent_names(&key)).await.map_err(ApiError::internal)??;
    Ok(axum::Json(person_for(&agent, &names)).into_response())
}

/// GET /about: versions spoken, no authentication or version header needed.
pub async fn about(_request: Request) -> Response {
    let versions: Vec<&str> = XapiVersion::SUPPORTED.to_vec();
    axum::Json(json!({
        "version": versions,
        "extensions": {
            "https://learninghub.nhs.uk/xapi/ext/lrs": { "name": "learning-hub-lrs", "version": env!("CARGO_PKG_VERSION") }
        }
    }))
    .into_response()
}
