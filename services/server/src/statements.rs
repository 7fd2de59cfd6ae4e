//! The Statement resource: PUT and POST (ingest), GET and HEAD (query).

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use lrs_projection::{FoundStatement, StatementQuery, StatementRecord, StoredKey};
use lrs_xapi::XapiVersion;
use lrs_xapi::agent::ifi_key;
use lrs_xapi::events::AttachmentContent;
use lrs_xapi::format::{self, StatementFormat, parse_accept_language};
use lrs_xapi::multipart::{self, Part};
use lrs_xapi::signature;
use lrs_xapi::statement::{complete_for_storage, content_fingerprint, fill_timestamp, normalise_context_activities};

use crate::app::AppState;
use crate::credentials::Scope;
use crate::error::ApiError;
use crate::http::{ConsistentThrough, Params, Principal, authenticate, header_text, http_date, media_type, read_body};
use crate::scoped_writes::WriteScope;
use crate::sequencer::{StatementBatch, VisibleAt};

/// A UUID in its hyphenated form only (as statement ids are written).
fn parse_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    Uuid::try_parse(text).ok()
}

/// True when `learner` (an IFI key) made the statement: a learner signed in
/// with a token reads their own records, not statements by others that
/// mention them (those name other people).
fn is_actor(statement: &Value, learner: &str) -> bool {
    ifi_key(&statement["actor"]).as_deref() == Some(learner)
}

fn version_of(request: &Request) -> XapiVersion {
    request.extensions().get::<XapiVersion>().copied().unwrap_or(XapiVersion::V2_0_0)
}

/// PUT /statements?statementId=…
pub async fn put_statement(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let version = version_of(&request);
    let principal = authenticate(&state, request.headers())?;
    principal.require(&[Scope::StatementsWrite])?;
    let params = Params::parse(request.uri().query())?;
    params.only(&["statementId"])?;
    let id_text = params.required("statementId")?;
    let id = parse_uuid(id_text).ok_or_else(|| ApiError::bad_property("?statementId", "statementId must be a UUID"))?;
    let (headers, body) = split(request);
    let (json, attachments) = parse_statement_body(&state, &headers, body).await?;
    let mut statement = match json {
        object @ Value::Object(_) => object,
        _ => return Err(ApiError::bad_request("PUT takes exactly one statement object")),
    };
    match statement.get("id") {
        Some(Value::String(given)) => {
            if Uuid::parse_str(given).ok() != Some(id) {
                return Err(ApiError::bad_property("/id", "the statement id differs from the statementId parameter"));
            }
        }
        Some(_) => {}
        None => {
            if let Some(object) = statement.as_object_mut() {
                object.insert("id".to_owned(), Value::String(id.to_string()));
            }
        }
    }
    let (visible, _, scope) = store(&state, version, &principal, vec![statement], attachments).await?;
    state.wait_visible(visible, scope).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// POST /statements: one statement or an array, all or nothing.
pub async fn post_statements(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let version = version_of(&request);
    let principal = authenticate(&state, request.headers())?;
    principal.require(&[Scope::StatementsWrite])?;
    let params = Params::parse(request.uri().query())?;
    if !params.is_empty() {
        return Err(ApiError::bad_request("POST /statements takes no parameters"));
    }
    let (headers, body) = split(request);
    let (json, attachments) = parse_statement_body(&state, &headers, body).await?;
    let statements = match json {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("the statement array is empty"));
            }
            items
        }
        object @ Value::Object(_) => vec![object],
        _ => return Err(ApiError::bad_request("the body must be a statement object or an array of statements")),
    };
    let (visible, ids, scope) = store(&state, version, &principal, statements, attachments).await?;
    state.wait_visible(visible, scope).await;
    Ok((StatusCode::OK, axum::Json(json!(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()))).into_response())
}

fn split(request: Request) -> (HeaderMap, Body) {
    let (parts, body) = request.into_parts();
    (parts.headers, body)
}

/// Reads a JSON or multipart/mixed statement request: the statement JSON
/// (object or array, as sent) and the attachment parts.
async fn parse_statement_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Value, Vec<multipart::AttachmentPart>), ApiError> {
    let media = media_type(headers);
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    let (json, parts) = match media.as_deref() {
        Some("multipart/mixed") => {
            let content_type = header_text(headers, "content-type")?.unwrap_or_default();
            let boundary = multipart::boundary_from_content_type(content_type)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let parts = multipart::parse(&bytes, &boundary).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if let Some(first) = parts.first() {
                check_no_duplicate_keys(&first.body)?;
            }
            multipart::split_statement_request(parts).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        Some("application/json") => (parse_json(&bytes)?, Vec::new()),
        None => {
            return Err(ApiError::bad_request(
                "statements must be sent with Content-Type application/json or multipart/mixed",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "statements must be sent as application/json or multipart/mixed, not {other}"
            )));
        }
    };
    Ok((json, parts))
}

/// Parses JSON strictly: duplicate keys are refused, and nesting is bounded.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    // The value keeps the last of a key given twice, so it then has fewer
    // keys than the text: only then is the text walked to name the key.
    if keys_in_text(bytes) != keys_in_value(&value) {
        check_no_duplicate_keys(bytes)?;
    }
    Ok(value)
}

/// The number of object keys in valid JSON text: each is followed by the
/// only `:`s outside strings.
fn keys_in_text(bytes: &[u8]) -> usize {
    let (mut keys, mut in_string, mut escaped) = (0, false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte == b':' {
            keys += 1;
        }
    }
    keys
}

/// The number of object keys in a parsed value, at every depth (serde_json
/// bounds the depth).
fn keys_in_value(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len() + map.values().map(keys_in_value).sum::<usize>(),
        Value::Array(items) => items.iter().map(keys_in_value).sum(),
        _ => 0,
    }
}

/// serde_json keeps the last of duplicate keys silently; xAPI requires
/// rejecting them. Walk the text once with a small tokenizer.
fn check_no_duplicate_keys(bytes: &[u8]) -> Result<(), ApiError> {
    let mut stack: Vec<Option<HashSet<String>>> = Vec::new();
    let mut expect_key = false;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'{' => {
                stack.push(Some(HashSet::new()));
                expect_key = true;
            }
            b'[' => {
                stack.push(None);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = matches!(stack.last(), Some(Some(_))),
            b':' => expect_key = false,
            b'"' => {
                let start = index + 1;
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' {
                    if bytes[index] == b'\\' {
                        index += 1;
                    }
                    index += 1;
                }
                if expect_key {
                    let raw = &bytes[start..index.min(bytes.len())];
                    let key: String = serde_json::from_slice(&[b"\"", raw, b"\""].concat()).unwrap_or_default();
                    if let Some(Some(keys)) = stack.last_mut()
                        && !keys.insert(key.clone())
                    {
                        return Err(ApiError::bad_request(format!("the JSON object has the key {key:?} twice")));
                    }
                    expect_key = false;
                }
            }
            _ => {}
        }
        index += 1;
    }
    Ok(())
}

/// Validates, completes and stores statements; returns the offset at which
/// they are visible and their ids in request order.
async fn store(
    state: &AppState,
    version: XapiVersion,
    principal: &Principal,
    statements: Vec<Value>,
    parts: Vec<multipart::AttachmentPart>,
) -> Result<(VisibleAt, Vec<Uuid>, WriteScope), ApiError> {
    let single = statements.len() == 1;
    let mut ids = Vec::with_capacity(statements.len());
    let mut seen = HashSet::new();
    let mut completed = Vec::with_capacity(statements.len());
    let mut fingerprints = Vec::with_capacity(statements.len());
    let part_hashes: HashSet<&str> = parts.iter().map(|p| p.sha2.as_str()).collect();
    let mut referenced_hashes: HashSet<String> = HashSet::new();
    let stored = chrono::Utc::now();
    for (index, original) in statements.into_iter().enumerate() {
        let prefix = if single { String::new() } else { format!("/{index}") };
        let context = Prepare { validator: &state.validator, version, authority: &principal.authority, stored };
        let prepared = context.prepare(original, &prefix, Uuid::new_v4, |statement| {
            check_attachments(statement, &part_hashes, &mut referenced_hashes, &parts, &prefix)
        })?;
        if !seen.insert(prepared.id) {
            return Err(ApiError::bad_property(
                format!("{prefix}/id"),
                format!("the id {} appears twice in this request", prepared.id),
            ));
        }
        ids.push(prepared.id);
        fingerprints.push(prepared.fingerprint);
        completed.push(prepared.statement);
    }
    for part in &parts {
        if !referenced_hashes.contains(&part.sha2) {
            return Err(ApiError::bad_request(format!(
                "the attachment part with hash {} matches no attachment of the statements",
                part.sha2
            )));
        }
    }
    let attachments = parts
        .into_iter()
        .map(|p| AttachmentContent { sha2: p.sha2, content_type: p.content_type, content: p.body })
        .collect();
    // Only a write of no more than `--ack-ahead` statements may be answered
    // before the views show it; a larger one waits for them.
    let ahead = completed.len() as u64 <= state.config.acknowledge_ahead;
    let scope = WriteScope::of_statements(&completed, ahead);
    let began = std::time::Instant::now();
    let visible =
        state.writer.store_statements(StatementBatch { statements: completed, fingerprints, attachments }).await;
    state.metrics.observe_write_stage(crate::metrics::WriteStage::Writer, began.elapsed());
    Ok((visible?, ids, scope))
}

/// How statements are validated and completed for storage: shared by the
/// API and `lrs import`.
pub struct Prepare<'a> {
    pub validator: &'a lrs_xapi::StatementValidator,
    pub version: XapiVersion,
    pub authority: &'a Value,
    pub stored: chrono::DateTime<chrono::Utc>,
}

/// A statement ready for the writer.
pub struct Prepared {
    pub id: Uuid,
    pub fingerprint: [u8; 32],
    pub statement: Value,
}

impl Prepare<'_> {
    /// Validates `original` (errors name properties under `prefix`), runs
    /// `attachments` on it, and completes it: `id` (from `new_id` when the
    /// client gave none), `stored`, `authority`, `version`.
    pub fn prepare(
        &self,
        original: Value,
        prefix: &str,
        new_id: impl FnOnce() -> Uuid,
        attachments: impl FnOnce(&Value) -> Result<(), ApiError>,
    ) -> Result<Prepared, ApiError> {
        self.validator
            .validate(self.version, &original)
            .map_err(|e| ApiError::bad_property(format!("{prefix}{}", e.path), e.message))?;
        attachments(&original)?;
        let mut statement = original;
        normalise_context_activities(&mut statement);
        let id = match statement.get("id").and_then(Value::as_str) {
            Some(text) => Uuid::parse_str(text)
                .map_err(|_| ApiError::bad_property(format!("{prefix}/id"), "id must be a UUID"))?,
            None => new_id(),
        };
        let fingerprint = content_fingerprint(&statement);
        complete_for_storage(&mut statement, id, self.stored, self.authority, self.version);
        Ok(Prepared { id, fingerprint, statement })
    }
}

/// Checks a statement's attachments when no multipart parts were sent:
/// each needs a `fileUrl`.
pub fn check_attachments_without_parts(statement: &Value) -> Result<(), ApiError> {
    check_attachments(statement, &HashSet::new(), &mut HashSet::new(), &[], "")
}

fn check_attachments(
    statement: &Value,
    part_hashes: &HashSet<&str>,
    referenced: &mut HashSet<String>,
    parts: &[multipart::AttachmentPart],
    prefix: &str,
) -> Result<(), ApiError> {
    let mut lists = vec![("", statement)];
    if lrs_xapi::statement::field(statement, &["object", "objectType"]).and_then(Value::as_str) == Some("SubStatement")
    {
        lists.push(("/object", &statement["object"]));
    }
    for (path, holder) in lists {
        let Some(Value::Array(attachments)) = holder.get("attachments") else {
            continue;
        };
        for (index, attachment) in attachments.iter().enumerate() {
            let sha2 = attachment.get("sha2").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
            let has_part = part_hashes.contains(sha2.as_str());
            // `length` is not checked against the part: ADL's conformance
            // suite expects a statement whose part is not `length` octets
            // to be stored (RULES.md B.13). The part's bytes are what is
            // stored and served, and its hash is checked.
            if has_part {
                referenced.insert(sha2.clone());
            } else if attachment.get("fileUrl").is_none() {
                return Err(ApiError::bad_property(
                    format!("{prefix}{path}/attachments/{index}"),
                    "the attachment has no fileUrl and its content was not sent in a multipart part with a matching hash",
                ));
            }
        }
    }
    let has_signature = signature::signature_attachment_hashes(statement)
        .map_err(|e| ApiError::bad_property(format!("{prefix}/attachments"), e.to_string()))?;
    if !has_signature.is_empty() {
        signature::verify_statement_signatures(statement, |hash| {
            parts.iter().find(|p| p.sha2.eq_ignore_ascii_case(hash)).map(|p| p.body.as_slice())
        })
        .map_err(|e| {
            ApiError::bad_property(format!("{prefix}/attachments"), format!("signed statement rejected: {e}"))
        })?;
    }
    Ok(())
}

/// The position of the `more` cursor and everything needed to continue.
#[derive(Debug, Serialize, Deserialize)]
struct MoreToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registration: Option<String>,
    #[serde(default)]
    related_activities: bool,
    #[serde(default)]
    related_agents: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<i64>,
    #[serde(default)]
    ascending: bool,
    limit: usize,
    after: (i64, u64),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    horizon: Option<(i64, u64)>,
    format: String,
    #[serde(default)]
    attachments: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
}

/// The parameters GET /xapi/statements accepts.
pub const QUERY_PARAMETERS: [&str; 14] = [
    "statementId",
    "voidedStatementId",
    "agent",
    "verb",
    "activity",
    "registration",
    "related_activities",
    "related_agents",
    "since",
    "until",
    "limit",
    "format",
    "attachments",
    "ascending",
];

fn parse_time(version: XapiVersion, name: &str, text: &str) -> Result<i64, ApiError> {
    lrs_xapi::validate::parse_timestamp(version, text)
        .map(|t| t.timestamp_micros())
        .ok_or_else(|| ApiError::bad_property(format!("?{name}"), format!("{name} must be an ISO 8601 timestamp")))
}

/// GET (and HEAD) /statements.
pub async fn get_statements(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let version = version_of(&request);
    let principal = authenticate(&state, request.headers())?;
    principal.require(&[Scope::StatementsRead, Scope::StatementsReadMine, Scope::AllRead])?;
    let mine_only = !principal.has_any(&[Scope::StatementsRead, Scope::AllRead]);
    let params = Params::parse(request.uri().query())?;
    let languages = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(parse_accept_language)
        .unwrap_or_default();
    // A learner signed in with a token reads the statements about them; a
    // statements/read/mine credential reads the statements it stored.
    let learner = principal.learner.clone();
    let authority_key = if mine_only && learner.is_none() { ifi_key(&principal.authority) } else { None };

    if let Some(token) = params.get("more") {
        if params.names().count() > 1 {
            return Err(ApiError::bad_request("a more link takes no other parameters"));
        }
        let token: MoreToken = state
            .more_links
            .unseal(token)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::bad_property("?more", "the more token is not one this LRS issued"))?;
        if token.authority != authority_key || token.actor != learner {
            return Err(ApiError::Forbidden("this more link belongs to another credential's query".to_owned()));
        }
        let format = StatementFormat::parse(&token.format).unwrap_or(StatementFormat::Exact);
        let query = StatementQuery {
            agent: token.agent.clone(),
            verb: token.verb.clone(),
            activity: token.activity.clone(),
            registration: token.registration.clone(),
            related_activities: token.related_activities,
            related_agents: token.related_agents,
            since_micros: token.since,
            until_micros: token.until,
            ascending: token.ascending,
            limit: token.limit,
            after: Some(StoredKey { stored_micros: token.after.0, sequence: token.after.1 }),
            horizon: token.horizon.map(|h| StoredKey { stored_micros: h.0, sequence: h.1 }),
            authority: token.authority.clone(),
            actor: token.actor.clone(),
        };
        let through = before_reading(&state, query.facet_keys(), format).await;
        return with_consistent_through(run_query(&state, query, format, token.attachments, &languages).await, through);
    }

    params.only(&QUERY_PARAMETERS)?;
    let format = match params.get("format") {
        None => StatementFormat::Exact,
        Some(text) => StatementFormat::parse(text)
            .ok_or_else(|| ApiError::bad_property("?format", "format must be ids, exact or canonical"))?,
    };
    let attachments = params.boolean("attachments")?;

    for single in ["statementId", "voidedStatementId"] {
        if let Some(text) = params.get(single) {
            let allowed = [single, "format", "attachments"];
            if let Some(other) = params.names().find(|n| !allowed.contains(n)) {
                return Err(ApiError::bad_property(
                    format!("?{other}"),
                    format!("{other} cannot be combined with {single}"),
                ));
            }
            let id = parse_uuid(text)
                .ok_or_else(|| ApiError::bad_property(format!("?{single}"), format!("{single} must be a UUID")))?;
            let only = Only { authority: authority_key.as_deref(), learner: learner.as_deref() };
            let through = before_reading(&state, vec![lrs_projection::statement_id_key(id)], format).await;
            let found = get_one(&state, id, single == "voidedStatementId", format, attachments, &languages, only).await;
            return with_consistent_through(found, through);
        }
    }

    let mut agent = crate::documents::agent_param(&params, false)?;
    let mut related_agents = params.boolean("related_agents")?;
    if let Some(learner) = &learner {
        if agent.as_ref().is_some_and(|a| a != learner) {
            return Err(ApiError::Forbidden("a learner may only read their own statements".to_owned()));
        }
        agent = Some(learner.clone());
        related_agents = false;
    }
    let verb = params.get("verb").map(str::to_owned);
    let activity = params.get("activity").map(str::to_owned);
    for (name, value) in [("verb", &verb), ("activity", &activity)] {
        if let Some(iri) = value
            && !iri.contains(':')
        {
            return Err(ApiError::bad_property(format!("?{name}"), format!("{name} must be an IRI")));
        }
    }
    let registration = match params.get("registration") {
        None => None,
        Some(text) => Some(
            parse_uuid(text)
                .ok_or_else(|| ApiError::bad_property("?registration", "registration must be a UUID"))?
                .to_string(),
        ),
    };
    let since = params.get("since").map(|t| parse_time(version, "since", t)).transpose()?;
    let until = params.get("until").map(|t| parse_time(version, "until", t)).transpose()?;
    let limit = match params.get("limit") {
        None => 0,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::bad_property("?limit", "limit must be a non-negative integer"))?,
    };
    let query = StatementQuery {
        agent,
        verb,
        activity,
        registration,
        related_activities: params.boolean("related_activities")?,
        related_agents,
        since_micros: since,
        until_micros: until,
        ascending: params.boolean("ascending")?,
        limit,
        after: None,
        horizon: None,
        authority: authority_key,
        actor: learner,
    };
    let through = before_reading(&state, query.facet_keys(), format).await;
    with_consistent_through(run_query(&state, query, format, attachments, &languages).await, through)
}

/// Before a statement query found by `keys` (see
/// [`AppState::wait_for_statement_query`]): waits for the acknowledged
/// writes that may change what it finds, then takes the Consistent-Through
/// value its answer carries, before anything is read. The canonical
/// format shows activity definitions any statement may change, so it
/// waits for every write.
async fn before_reading(state: &AppState, keys: Vec<String>, format: StatementFormat) -> ConsistentThrough {
    let narrowed = !keys.is_empty() && format != StatementFormat::Canonical;
    state.wait_for_statement_query(narrowed.then_some(keys.as_slice())).await;
    ConsistentThrough(state.consistent_through())
}

fn with_consistent_through(
    answer: Result<Response, ApiError>,
    through: ConsistentThrough,
) -> Result<Response, ApiError> {
    answer.map(|mut response| {
        response.extensions_mut().insert(through);
        response
    })
}

/// A stored statement as a GET returns it: in the asked format, with
/// `timestamp` filled from `stored` when the client gave none.
fn present(statement: &Value, format: StatementFormat, languages: &[String]) -> Value {
    let mut shown = format::apply(format, statement, languages);
    fill_timestamp(&mut shown);
    shown
}

/// Restrictions on what a single-statement GET may return.
#[derive(Clone, Copy)]
struct Only<'a> {
    /// Only statements stored with this authority (statements/read/mine).
    authority: Option<&'a str>,
    /// Only statements about this learner (learners signed in with a token).
    learner: Option<&'a str>,
}

async fn get_one(
    state: &AppState,
    id: Uuid,
    want_voided: bool,
    format: StatementFormat,
    attachments: bool,
    languages: &[String],
    only: Only<'_>,
) -> Result<Response, ApiError> {
    let views = state.views.clone();
    let record = tokio::task::spawn_blocking(move || -> Result<Option<(StatementRecord, bool)>, ApiError> {
        let Some(record) = views.statement(id)? else {
            return Ok(None);
        };
        let voided = views.is_voided(&record)?;
        Ok(Some((record, voided)))
    })
    .await
    .map_err(ApiError::internal)??;
    let not_found =
        || ApiError::NotFound(format!("no {}statement with id {id}", if want_voided { "voided " } else { "" }));
    let Some((record, voided)) = record else {
        return Err(not_found());
    };
    if voided != want_voided {
        return Err(not_found());
    }
    if let Some(authority) = only.authority
        && ifi_key(&record.statement["authority"]).as_deref() != Some(authority)
    {
        return Err(not_found());
    }
    if let Some(learner) = only.learner
        && !is_actor(&record.statement, learner)
    {
        return Err(not_found());
    }
    let statement = present(&record.statement, format, languages);
    let last_modified = record.stored_micros;
    let body = serde_json::to_vec(&statement).map_err(ApiError::internal)?;
    let mut hashes = Vec::new();
    if attachments {
        collect_hashes(&record.statement, &mut hashes);
    }
    respond(state, body, hashes, attachments, Some(last_modified)).await
}

/// A found statement as a page of results lists it, as JSON text: as
/// stored when the format is `exact` and it has a `timestamp` (most
/// statements), without parsing it; otherwise parsed, presented and
/// written again.
fn present_found<'a>(
    found: &'a FoundStatement,
    format: StatementFormat,
    languages: &[String],
) -> Result<Cow<'a, str>, ApiError> {
    if format == StatementFormat::Exact && found.has_timestamp() {
        return Ok(Cow::Borrowed(found.json.get()));
    }
    let shown = present(&found.statement()?, format, languages);
    Ok(Cow::Owned(serde_json::to_string(&shown).map_err(ApiError::internal)?))
}

async fn run_query(
    state: &AppState,
    mut query: StatementQuery,
    format: StatementFormat,
    attachments: bool,
    languages: &[String],
) -> Result<Response, ApiError> {
    let views = state.views.clone();
    let max = state.config.max_page_size;
    if query.horizon.is_none() {
        // Pin the first page's horizon so later pages are stable.
        let last = views.last_stored_micros()?.unwrap_or(i64::MIN);
        query.horizon = Some(StoredKey { stored_micros: last, sequence: u64::MAX });
    }
    let query_for_scan = query.clone();
    let page =
        tokio::task::spawn_blocking(move || views.query(&query_for_scan, max)).await.map_err(ApiError::internal)??;
    let more = match page.next {
        None => String::new(),
        Some(next) => {
            let horizon = query.horizon.map(|h| (h.stored_micros, h.sequence));
            let token = MoreToken {
                agent: query.agent.clone(),
                verb: query.verb.clone(),
                activity: query.activity.clone(),
                registration: query.registration.clone(),
                related_activities: query.related_activities,
                related_agents: query.related_agents,
                since: query.since_micros,
                until: query.until_micros,
                ascending: query.ascending,
                limit: query.limit,
                after: (next.stored_micros, next.sequence),
                horizon,
                format: match format {
                    StatementFormat::Exact => "exact",
                    StatementFormat::Ids => "ids",
                    StatementFormat::Canonical => "canonical",
                }
                .to_owned(),
                attachments,
                authority: query.authority.clone(),
                actor: query.actor.clone(),
            };
            let bytes = serde_json::to_vec(&token).map_err(ApiError::internal)?;
            format!("/xapi/statements?more={}", state.more_links.seal(&bytes))
        }
    };
    let last_modified = page.statements.iter().map(|found| found.stored_micros).max();
    // `{"statements":[…],"more":"…"}`, the statements written as they are
    // presented, not built into one value first.
    let listed: usize = page.statements.iter().map(|found| found.json.get().len() + 1).sum();
    let mut body = Vec::with_capacity(listed + more.len() + 32);
    body.extend_from_slice(br#"{"statements":["#);
    let mut hashes = Vec::new();
    for (n, found) in page.statements.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(present_found(found, format, languages)?.as_bytes());
        if attachments {
            collect_hashes(&found.statement()?, &mut hashes);
        }
    }
    body.extend_from_slice(br#"],"more":"#);
    serde_json::to_writer(&mut body, &more).map_err(ApiError::internal)?;
    body.push(b'}');
    respond(state, body, hashes, attachments, last_modified).await
}

/// Answers with the JSON body alone, or with the attachments of `hashes`
/// (the statements' `sha2`s, in order) as a multipart/mixed body.
async fn respond(
    state: &AppState,
    json_body: Vec<u8>,
    hashes: Vec<String>,
    attachments: bool,
    last_modified: Option<i64>,
) -> Result<Response, ApiError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = last_modified.and_then(DateTime::from_timestamp_micros).and_then(http_date) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    if !attachments {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok((StatusCode::OK, headers, Bytes::from(json_body)).into_response());
    }
    let views = state.views.clone();
    let parts = tokio::task::spawn_blocking(move || -> Result<Vec<Part>, ApiError> {
        let mut parts = vec![Part::json(json_body)];
        let mut seen = HashSet::new();
        for hash in hashes {
            if !seen.insert(hash.clone()) {
                continue;
            }
            if let Some((content_type, content)) = views.attachment(&hash)? {
                parts.push(Part::attachment(&content_type, &hash, content));
            }
        }
        Ok(parts)
    })
    .await
    .map_err(ApiError::internal)??;
    let boundary = multipart::new_boundary();
    let body = multipart::build(&boundary, &parts);
    let content_type = HeaderValue::from_str(&multipart::content_type_for(&boundary)).map_err(ApiError::internal)?;
    headers.insert(header::CONTENT_TYPE, content_type);
    Ok((StatusCode::OK, headers, Bytes::from(body)).into_response())
}

fn collect_hashes(statement: &Value, out: &mut Vec<String>) {
    if let Some(Value::Array(attachments)) = statement.get("attachments") {
        for attachment in attachments {
            if let Some(hash) = attachment.get("sha2").and_then(Value::as_str) {
                out.push(hash.to_ascii_lowercase());
            }
        }
    }
    if let Some(object) = statement.get("object")
        && object.get("objectType").and_then(Value::as_str) == Some("SubStatement")
    {
        collect_hashes(object, out);
    }
}

/// Gives up waiting for a projection after this long by default.
pub const DEFAULT_READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        assert!(check_no_duplicate_keys(br#"{"a":1,"b":{"c":1,"c":2}}"#).is_err());
        assert!(check_no_duplicate_keys(br#"{"a":1,"a":2}"#).is_err());
        assert!(check_no_duplicate_keys(br#"[{"a":1},{"a":2}]"#).is_ok());
        assert!(check_no_duplicate_keys(br#"{"a":"x\"y","b":["a","a"]}"#).is_ok());
    }

    /// The count that spares most bodies the walk above: a key given twice
    /// (spelled the same or not, at any depth, or inside the value a repeat
    /// drops) always leaves the value fewer keys than the text has; colons
    /// and quotes inside strings are not counted.
    #[test]
    fn a_key_given_twice_leaves_the_value_fewer_keys_than_the_text() {
        let cases: [(&[u8], bool); 9] = [
            (br#"{"a":1,"b":{"c":1,"d":[{"e":":"}]}}"#, false),
            (br#"{"a:b":"c:d","e\":":"f\\","g":"\"h:"}"#, false),
            (br#"[{"a":1},{"a":2}]"#, false),
            (br#"{"a":1,"a":2}"#, true),
            (br#"{"a":1,"b":{"c":1,"c":2}}"#, true),
            (br#"{"a":{"x":1},"a":{"y":2}}"#, true),
            (br#"{"id":1,"\u0069d":2}"#, true),
            (br#"[{"a":"\\","a":1}]"#, true),
            (br#"{"a":[{"b":1,"c":{"b":2}}],"d":{"e":{"f":1,"f":1}}}"#, true),
        ];
        for (text, twice) in cases {
            let value: Value = serde_json::from_slice(text).unwrap();
            let differ = keys_in_text(text) != keys_in_value(&value);
            assert_eq!(differ, twice, "{}", String::from_utf8_lossy(text));
            assert_eq!(parse_json(text).is_err(), twice, "{}", String::from_utf8_lossy(text));
        }
    }
}
