//! The Learning Hub analytics API: transcripts and competency profiles per
//! learner, uptake and competency coverage per organisation, and the admin
//! endpoints that load the learner and organisation directories.
//!
//! Who may see what: a learner (bearer token) sees only their own
//! transcript and competencies; an analyst (a credential granted
//! organisations) sees those organisations, the ones below them, and the
//! learners the learner directory places there; anyone else gets 403.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use lrs_hub::facts::{is_ods_code, learning_hub_learner};
use lrs_hub::{Granularity, UptakeQuery};
use lrs_xapi::agent::ifi_key;
use lrs_xapi::events::{Event, LearnerEntry, OrganisationEntry};

use crate::app::AppState;
use crate::credentials::Scope;
use crate::error::ApiError;
use crate::http::{Params, Principal, authenticate, media_type, read_body};

/// The longest uptake range one request may ask for.
const MAX_UPTAKE_DAYS: i64 = 3 * 366;

/// Query parameters of the learner views (transcript, competencies); the
/// OpenAPI document lists the same (a test compares them).
pub const LEARNER_PARAMETERS: &[&str] = &["agent"];
/// Query parameters of `GET /analytics/uptake`.
pub const UPTAKE_PARAMETERS: &[&str] =
    &["org", "from", "to", "granularity", "activity", "platform", "staff_group", "format"];
/// Query parameters of `GET /analytics/competencies/coverage`.
pub const COVERAGE_PARAMETERS: &[&str] = &["org"];

fn sees_everything(principal: &Principal) -> bool {
    principal.organisations.iter().any(|o| o == "*")
}

/// Checks the caller may read an organisation's analytics.
/// `*` sees everything, no grant sees nothing, otherwise the organisation
/// must be granted or below a grant (the pages apply the same rule).
pub(crate) fn require_organisation(state: &AppState, principal: &Principal, code: &str) -> Result<(), ApiError> {
    if sees_everything(principal) {
        return Ok(());
    }
    if principal.organisations.is_empty() {
        return Err(ApiError::Forbidden("this caller has no analytics access".to_owned()));
    }
    if state.hub.is_within(code, &principal.organisations)? {
        Ok(())
    } else {
        Err(ApiError::Forbidden("this caller may not see that organisation".to_owned()))
    }
}

/// Resolves `{learner}` (or `?agent=`) to an agent key.
fn learner_key(principal: &Principal, learner: &str, params: &Params) -> Result<String, ApiError> {
    Ok(if learner == "me" {
        principal
            .learner
            .clone()
            .ok_or_else(|| ApiError::bad_request("\"me\" means the signed-in learner; this caller is not one"))?
    } else if let Some(text) = params.get("agent") {
        let agent: Value = serde_json::from_str(text)
            .map_err(|_| ApiError::bad_property("?agent", "agent must be a JSON Agent object"))?;
        ifi_key(&agent).ok_or_else(|| {
            ApiError::bad_property("?agent", "agent must have exactly one inverse functional identifier")
        })?
    } else {
        learning_hub_learner(learner)
    })
}

/// Checks the caller may see the learner with agent key `key`.
fn check_learner_access(state: &AppState, principal: &Principal, key: String) -> Result<String, ApiError> {
    if let Some(own) = &principal.learner {
        return if *own == key {
            Ok(key)
        } else {
            Err(ApiError::Forbidden("a learner may only see their own records".to_owned()))
        };
    }
    if sees_everything(principal) {
        return Ok(key);
    }
    if principal.organisations.is_empty() {
        return Err(ApiError::Forbidden("this caller has no analytics access".to_owned()));
    }
    let organisation = state.hub.learner(&key)?.map(|entry| entry.organisation);
    match organisation {
        Some(code) if state.hub.is_within(&code, &principal.organisations)? => Ok(key),
        // Same answer whether the learner is unknown or elsewhere: nothing
        // about other organisations' staff leaks.
        _ => Err(ApiError::Forbidden("this caller may not see that learner".to_owned())),
    }
}

/// Answers one per-learner view after checking who may see the learner.
async fn learner_view<T: serde::Serialize + Send + 'static>(
    state: AppState,
    learner: String,
    request: Request,
    field: &'static str,
    read: fn(&lrs_hub::HubViews, &str) -> Result<T, lrs_hub::HubError>,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    let params = Params::parse(request.uri().query())?;
    params.only(LEARNER_PARAMETERS)?;
    let key = learner_key(&principal, &learner, &params)?;
    // Before the access check, which reads the learner directory.
    state.wait_for_learner_writes(&key).await;
    let key = check_learner_access(&state, &principal, key)?;
    let hub = state.hub.clone();
    let lookup = key.clone();
    let view = tokio::task::spawn_blocking(move || read(&hub, &lookup)).await.map_err(ApiError::internal)??;
    Ok(axum::Json(json!({ "learner": key, field: view })).into_response())
}

/// GET /analytics/learners/{learner}/transcript
pub async fn transcript(
    State(state): State<AppState>,
    Path(learner): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    learner_view(state, learner, request, "activities", lrs_hub::HubViews::transcript).await
}

/// GET /analytics/learners/{learner}/competencies
pub async fn competencies(
    State(state): State<AppState>,
    Path(learner): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    learner_view(state, learner, request, "competencies", lrs_hub::HubViews::competencies).await
}

fn organisation_param(params: &Params) -> Result<String, ApiError> {
    let code = params.required("org")?;
    if !is_ods_code(code) {
        return Err(ApiError::bad_property("?org", "org must be an ODS code (1 to 9 letters and digits)"));
    }
    Ok(code.to_owned())
}

fn date_param(params: &Params, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    params
        .get(name)
        .map(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ApiError::bad_property(format!("?{name}"), format!("{name} must be a date like 2026-03-01"))
            })
        })
        .transpose()
}

/// GET /analytics/uptake
pub async fn uptake(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    let params = Params::parse(request.uri().query())?;
    params.only(UPTAKE_PARAMETERS)?;
    let organisation = organisation_param(&params)?;
    // Before the access check, which reads the organisation tree.
    state.wait_for_organisation_writes(&organisation).await?;
    require_organisation(&state, &principal, &organisation)?;
    let to = date_param(&params, "to")?.unwrap_or_else(|| Utc::now().date_naive());
    let from = date_param(&params, "from")?.unwrap_or(to - chrono::Duration::days(30));
    if from > to {
        return Err(ApiError::bad_property("?from", "from must not be after to"));
    }
    if (to - from).num_days() > MAX_UPTAKE_DAYS {
        return Err(ApiError::bad_property("?from", format!("at most {MAX_UPTAKE_DAYS} days per request")));
    }
    let granularity = match params.get("granularity") {
        None => Granularity::Week,
        Some(text) => Granularity::parse(text)
            .ok_or_else(|| ApiError::bad_property("?granularity", "granularity must be day, week or month"))?,
    };
    let csv = match params.get("format") {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => return Err(ApiError::bad_property("?format", "format must be json or csv")),
        None => request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv")),
    };
    let query = UptakeQuery {
        organisation: organisation.clone(),
        from,
        to,
        granularity,
        activity: params.get("activity").map(str::to_owned),
        platform: params.get("platform").map(str::to_owned),
        staff_group: params.get("staff_group").map(str::to_owned),
    };
    let hub = state.hub.clone();
    let rows = tokio::task::spawn_blocking(move || hub.uptake(&query)).await.map_err(ApiError::internal)??;
    if csv {
        let mut text = String::from("organisation,period,active_learners,started,completed,passed,statements\n");
        for row in &rows {
            text.push_str(&format!(
                "{organisation},{},{},{},{},{},{}\n",
                row.period, row.active_learners, row.started, row.completed, row.passed, row.statements
            ));
        }
        let mut response = (StatusCode::OK, text).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        return Ok(response);
    }
    Ok(axum::Json(json!({
        "organisation": organisation,
        "from": from.to_string(),
        "to": to.to_string(),
        "granularity": granularity,
        "periods": rows,
    }))
    .into_response())
}

/// GET /analytics/competencies/coverage?org=…
pub async fn coverage(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    let params = Params::parse(request.uri().query())?;
    params.only(COVERAGE_PARAMETERS)?;
    let organisation = organisation_param(&params)?;
    state.wait_for_organisation_writes(&organisation).await?;
    require_organisation(&state, &principal, &organisation)?;
    let hub = state.hub.clone();
    let code = organisation.clone();
    let coverage = tokio::task::spawn_blocking(move || hub.coverage(&code)).await.map_err(ApiError::internal)??;
    Ok(axum::Json(json!({ "organisation": organisation, "competencies": coverage })).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LearnerRow {
    /// Learning Hub account name, or an agent object.
    learner: Value,
    organisation: String,
    #[serde(default)]
    staff_group: Option<String>,
}

/// The agent key of an agent whose identifier is well formed.
fn well_formed_agent_key(agent: &Value) -> Option<String> {
    let is_iri = |text: &str| text.split_once(':').is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
    if let Some(mbox) = agent.get("mbox") {
        mbox.as_str().filter(|m| m.starts_with("mailto:") && m.len() > 7)?;
    }
    if let Some(openid) = agent.get("openid") {
        openid.as_str().filter(|o| is_iri(o))?;
    }
    if let Some(sha) = agent.get("mbox_sha1sum") {
        sha.as_str().filter(|s| s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()))?;
    }
    if let Some(account) = agent.get("account") {
        account.get("homePage").and_then(Value::as_str).filter(|h| is_iri(h))?;
        account.get("name").and_then(Value::as_str).filter(|n| !n.is_empty())?;
    }
    ifi_key(agent)
}

/// Parses learner directory rows from CSV (`learner,organisation,staff_group`,
/// header first, learner = Learning Hub account name) or a JSON array.
pub fn parse_learners(content_type: Option<&str>, body: &[u8]) -> Result<Vec<LearnerEntry>, ApiError> {
    let rows: Vec<(Value, String, Option<String>)> = if content_type == Some("text/csv") {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the CSV is not UTF-8"))?;
        csv_rows(text, &["learner", "organisation", "staff_group"])?
            .into_iter()
            .map(|mut cells| {
                let staff_group = cells.pop().filter(|s| !s.is_empty());
                let organisation = cells.pop().unwrap_or_default();
                (Value::String(cells.pop().unwrap_or_default()), organisation, staff_group)
            })
            .collect()
    } else {
        let rows: Vec<LearnerRow> = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("expected a JSON array of learners: {e}")))?;
        rows.into_iter()
            .map(|r| (r.learner, r.organisation, r.staff_group.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())))
            .collect()
    };
    rows.into_iter()
        .enumerate()
        .map(|(index, (learner, organisation, staff_group))| {
            let learner = match &learner {
                Value::String(name) if !name.trim().is_empty() => learning_hub_learner(name.trim()),
                agent @ Value::Object(_) => well_formed_agent_key(agent).ok_or_else(|| {
                    ApiError::bad_property(
                        format!("/{index}/learner"),
                        "the agent needs exactly one well-formed identifier (mailto: mbox, IRI openid or account homePage)",
                    )
                })?,
                _ => return Err(ApiError::bad_property(format!("/{index}/learner"), "learner must be an account name or agent")),
            };
            if !is_ods_code(&organisation) {
                return Err(ApiError::bad_property(format!("/{index}/organisation"), "not an ODS code"));
            }
            Ok(LearnerEntry { learner, organisation, staff_group })
        })
        .collect()
}

/// Parses organisation directory rows from CSV (`code,name,parent`) or JSON.
pub fn parse_organisations(content_type: Option<&str>, body: &[u8]) -> Result<Vec<OrganisationEntry>, ApiError> {
    let rows: Vec<OrganisationEntry> = if content_type == Some("text/csv") {
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the CSV is not UTF-8"))?;
        csv_rows(text, &["code", "name", "parent"])?
            .into_iter()
            .map(|mut cells| {
                let parent = cells.pop().filter(|p| !p.is_empty());
                let name = cells.pop().unwrap_or_default();
                OrganisationEntry { code: cells.pop().unwrap_or_default(), name, parent }
            })
            .collect()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("expected a JSON array of organisations: {e}")))?
    };
    for (index, row) in rows.iter().enumerate() {
        if !is_ods_code(&row.code) || row.parent.as_deref().is_some_and(|p| !is_ods_code(p)) {
            return Err(ApiError::bad_property(
                format!("/{index}"),
                "codes must be ODS codes (1 to 9 letters and digits)",
            ));
        }
    }
    Ok(rows)
}

/// Splits simple CSV (quoted fields allowed) and checks the header.
fn csv_rows(text: &str, header: &[&str]) -> Result<Vec<Vec<String>>, ApiError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().ok_or_else(|| ApiError::bad_request("the CSV is empty"))?;
    let names = split_csv_line(first);
    if names.iter().map(|n| n.trim().to_ascii_lowercase()).collect::<Vec<_>>() != header {
        return Err(ApiError::bad_request(format!("the CSV header must be {}", header.join(","))));
    }
    lines
        .enumerate()
        .map(|(index, line)| {
            let cells: Vec<String> = split_csv_line(line).into_iter().map(|c| c.trim().to_owned()).collect();
            if cells.len() != header.len() {
                return Err(ApiError::bad_request(format!(
                    "CSV line {} has {} fields, expected {}",
                    index + 2,
                    cells.len(),
                    header.len()
                )));
            }
            Ok(cells)
        })
        .collect()
}

fn split_csv_line(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    cells.push(current);
    cells
}

async fn import(state: AppState, request: Request, learners: bool) -> Result<Response, ApiError> {
    let principal = authenticate(&state, request.headers())?;
    principal.require(&[Scope::All])?;
    let content_type = media_type(request.headers());
    let body = read_body(request.into_body(), state.config.max_body_bytes).await?;
    let (events, count) = directory_events(content_type.as_deref(), &body, learners)?;
    let visible = state.writer.append_events(events).await?;
    state.wait_visible(visible, crate::scoped_writes::WriteScope::everyone()).await;
    Ok(axum::Json(json!({ "imported": count })).into_response())
}

/// Directory rows per event. A directory is loaded as events of at most
/// this many rows, not as one event: every projection holds an event whole,
/// decoded, while it applies it, and a national directory of 200,000
/// learners in one event is 24 MB of JSON. The embedded store appends them
/// in one append (all or none); over Kafka they are appended one by one,
/// and an import cut short is completed by sending it again (loading a row
/// again changes nothing).
pub const DIRECTORY_ROWS_PER_EVENT: usize = 5_000;

/// Parses a learner (`learners`) or organisation directory file and returns
/// the events that load it, in order, with the number of rows.
pub fn directory_events(
    content_type: Option<&str>,
    body: &[u8],
    learners: bool,
) -> Result<(Vec<Event>, usize), ApiError> {
    Ok(if learners {
        in_events(parse_learners(content_type, body)?, |learners| Event::LearnersImported { learners })
    } else {
        in_events(parse_organisations(content_type, body)?, |organisations| Event::OrganisationsImported {
            organisations,
        })
    })
}

/// `rows` cut into events of at most [`DIRECTORY_ROWS_PER_EVENT`], in
/// order, with the number of rows.
fn in_events<T: Clone>(rows: Vec<T>, event: impl Fn(Vec<T>) -> Event) -> (Vec<Event>, usize) {
    (rows.chunks(DIRECTORY_ROWS_PER_EVENT).map(|chunk| event(chunk.to_vec())).collect(), rows.len())
}

/// POST /admin/learners: loads learner directory rows (scope `all`).
pub async fn import_learners(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    import(state, request, true).await
}

/// POST /admin/organisations: loads organisation directory rows (scope `all`).
pub async fn import_organisations(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    import(state, request, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_learners_and_organisations() {
        let learners =
            parse_learners(Some("text/csv"), b"learner,organisation,staff_group\n123,RJ1,Nursing\n\"45,6\",L81008,\n")
                .unwrap();
        assert_eq!(learners[0].learner, learning_hub_learner("123"));
        assert_eq!(learners[1].learner, learning_hub_learner("45,6"));
        assert_eq!(learners[1].staff_group, None);
        let organisations = parse_organisations(
            Some("text/csv"),
            b"code,name,parent\nRJ1,\"Guy's and St Thomas'\",QKK\nQKK,South East London ICB,\n",
        )
        .unwrap();
        assert_eq!(organisations[0].parent.as_deref(), Some("QKK"));
        assert!(parse_learners(Some("text/csv"), b"learner,org\n1,RJ1\n").is_err());
        assert!(parse_learners(Some("text/csv"), b"learner,organisation,staff_group\n1,not-an-ods-code,\n").is_err());
        let json_rows =
            br#"[{"learner": {"mbox": "mailto:ada@example.com"}, "organisation": "RJ1", "staffGroup": " "}]"#;
        assert_eq!(parse_learners(Some("application/json"), json_rows).unwrap()[0].staff_group, None);
        assert!(
            parse_learners(
                Some("application/json"),
                br#"[{"learner": {"mbox": "ada@example.com"}, "organisation": "RJ1"}]"#
            )
            .is_err()
        );
    }

    #[test]
    fn a_large_directory_is_loaded_as_several_events_in_order() {
        let mut csv = String::from("learner,organisation,staff_group\n");
        for n in 0..2 * DIRECTORY_ROWS_PER_EVENT + 1 {
            csv.push_str(&format!("{n},RJ1,\n"));
        }
        let (events, count) = directory_events(Some("text/csv"), csv.as_bytes(), true).unwrap();
        assert_eq!(count, 2 * DIRECTORY_ROWS_PER_EVENT + 1);
        let sizes: Vec<usize> = events
            .iter()
            .map(|event| match event {
                Event::LearnersImported { learners } => learners.len(),
                other => panic!("not a learners event: {other:?}"),
            })
            .collect();
        assert_eq!(sizes, [DIRECTORY_ROWS_PER_EVENT, DIRECTORY_ROWS_PER_EVENT, 1]);
        let Some(Event::LearnersImported { learners }) = events.last() else { unreachable!() };
        assert_eq!(learners[0].learner, learning_hub_learner(&(2 * DIRECTORY_ROWS_PER_EVENT).to_string()));

        let (events, count) =
            directory_events(Some("text/csv"), b"code,name,parent\nQKK,South East London ICB,\n", false).unwrap();
        assert_eq!(count, 1);
        assert!(matches!(&events[..], [Event::OrganisationsImported { organisations }] if organisations.len() == 1));
        let (events, _) = directory_events(Some("text/csv"), b"learner,organisation,staff_group\n", true).unwrap();
        assert!(events.is_empty(), "an empty directory appends nothing");
    }
}
