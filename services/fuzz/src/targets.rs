//! The fuzz targets. Each takes arbitrary bytes and must not panic; the
//! assertions inside are oracles (properties that must hold for every
//! input), so a panic is either a crash of the code under test or a broken
//! property.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Datelike, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};
use uuid::Uuid;

use lrs_server::http::Params;
use lrs_xapi::events::{self as ev, Event};
use lrs_xapi::format::{self as fmt, StatementFormat};
use lrs_xapi::multipart::{self as mp, Part};
use lrs_xapi::statement as st;
use lrs_xapi::validate::parse_timestamp;
use lrs_xapi::{StatementValidator, XapiVersion, agent, document, signature};

use crate::engine::{feature, fnv1a};
use crate::server::{Answer, Harness, harness};

const VERSIONS: [XapiVersion; 2] = [XapiVersion::V1_0_3, XapiVersion::V2_0_0];

/// The parameters GET /xapi/statements accepts, for [`Params::only`].
pub use lrs_server::QUERY_PARAMETERS;

/// The statement validator, compiled once.
///
/// # Panics
/// If the shipped schemas do not compile (then the server cannot start either).
pub fn validator() -> &'static StatementValidator {
    static VALIDATOR: OnceLock<Result<StatementValidator, String>> = OnceLock::new();
    match VALIDATOR.get_or_init(|| StatementValidator::new().map_err(|e| e.to_string())) {
        Ok(validator) => validator,
        Err(reason) => panic!("the statement schemas do not compile: {reason}"),
    }
}

/// The xAPI version a request is sent with: chosen by the input, so each
/// input always goes the same way and both versions are covered.
fn version_for(data: &[u8]) -> &'static str {
    if fnv1a(data) & 1 == 0 { "1.0.3" } else { "2.0.0" }
}

/// A few words of a message, for [`feature`] tags, without what the input
/// chose as far as it can be told: messages quote it (`"…"`, `'…'`, or a
/// backtick), and the quoted text may itself contain quotes, so only the
/// words before the first quote and after the last one are kept (after
/// skipping a leading quoted value, as in `"x" is not of type "object"`),
/// at most six before and three after; words with digits (numbers, ids,
/// positions) and long words are dropped.
pub(crate) fn shape(text: &str) -> String {
    let is_quote = |c: char| matches!(c, '"' | '\'' | '`');
    let mut text = text.trim_start();
    if let Some(first) = text.chars().next().filter(|c| is_quote(*c)) {
        text = text[1..].split_once(first).map_or("", |(_, rest)| rest);
    }
    let (before, after) = match (text.find(is_quote), text.rfind(is_quote)) {
        (Some(first), Some(last)) => (&text[..first], &text[last + 1..]),
        _ => (text, ""),
    };
    let words = |part: &str| -> Vec<String> {
        part.split_whitespace()
            .filter(|word| word.len() <= 24 && !word.bytes().any(|b| b.is_ascii_digit()))
            .map(|word| word.chars().filter(char::is_ascii_alphabetic).collect::<String>())
            .filter(|word| !word.is_empty())
            .take(6)
            .collect()
    };
    let mut kept = words(before);
    // Six words say what the message is; a quote after them is in text the
    // input chose (a message that does not quote it).
    if kept.len() < 6 {
        kept.extend(words(after).into_iter().take(3));
    }
    kept.join(" ")
}

/// A JSON pointer with array indexes and the input's own key names
/// reduced, so that features count kinds of places rather than places.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|token| {
            if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
                "#"
            } else if token.contains(':') || token.len() > 24 {
                "*"
            } else {
                token
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Records the answer as a feature and asserts it is not a server error:
/// no input may make the LRS fail with 5xx.
fn check_answer(what: &str, answer: &Answer) {
    feature(&format!("{what} {}", answer.shape()));
    assert!(
        !answer.status.is_server_error(),
        "{what} answered {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
}

fn fixed_stored() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap_or(DateTime::UNIX_EPOCH)
}

fn authority() -> Value {
    json!({
        "objectType": "Agent",
        "name": "lrs-fuzz",
        "account": {"homePage": "https://learninghub.nhs.uk/lrs/credentials", "name": "fuzz"}
    })
}

/// What the LRS does with one statement of a request, through the public
/// `lrs_xapi` functions `lrs-server` calls: validation for both versions,
/// signature checks, normalisation, fingerprint, completion for storage,
/// the event carrying it, and its presentation in every format.
pub fn ingest(statement: &Value) {
    let mut valid_for = Vec::new();
    for version in VERSIONS {
        match validator().validate(version, statement) {
            Ok(()) => {
                feature(&format!("{version} valid"));
                valid_for.push(version);
            }
            Err(error) => feature(&format!("{version} {} {}", path_shape(&error.path), shape(&error.message))),
        }
    }
    let _ = st::statement_id(statement);
    match signature::signature_attachment_hashes(statement) {
        Ok(hashes) if !hashes.is_empty() => {
            feature("signed");
            let _ = signature::verify_statement_signatures(statement, |_: &str| None::<&[u8]>);
            // The statement's own text as the "signature", which cannot match.
            let text = serde_json::to_vec(statement).unwrap_or_default();
            if let Err(error) = signature::verify_signed_statement(statement, &text) {
                feature(&format!("signature {}", shape(&error.to_string())));
            }
        }
        Ok(_) => {}
        Err(error) => feature(&format!("signature attachments {}", shape(&error.to_string()))),
    }

    let mut normalised = statement.clone();
    st::normalise_context_activities(&mut normalised);
    let mut twice = normalised.clone();
    st::normalise_context_activities(&mut twice);
    assert_eq!(twice, normalised, "normalising context activities twice differs from once");
    let fingerprint = st::content_fingerprint(&normalised);

    let id = st::statement_id(&normalised).unwrap_or_else(Uuid::nil);
    for version in VERSIONS {
        let mut completed = normalised.clone();
        st::complete_for_storage(&mut completed, id, fixed_stored(), &authority(), version);
        if completed.is_object() {
            assert_eq!(
                st::content_fingerprint(&completed),
                fingerprint,
                "completing a statement for storage changed its content fingerprint"
            );
        }
        if valid_for.contains(&version) {
            // What the LRS stores (and serves) must itself be a valid statement.
            if let Err(error) = validator().validate(version, &completed) {
                panic!("a statement valid for {version} is invalid once completed for storage: {error}");
            }
        }

        // The log: a stored statement survives the event encoding.
        let event = Event::StatementsStored { statements: vec![completed.clone()], attachments: Vec::new() };
        let bytes = ev::encode(&event);
        match ev::decode(&bytes) {
            Ok(back) => assert_eq!(back, event, "a stored statement changed through the event log"),
            Err(error) => panic!("a stored statement's event does not decode: {error}"),
        }

        // The read side.
        let mut keys = Vec::new();
        agent::related_agent_keys(&completed, &mut keys);
        agent::primary_agent_keys(&completed, &mut keys);
        let _ = agent::ids_only(&completed["actor"]);
        let _ = agent::person_for(&completed["actor"], &keys);
        let mut activities = Vec::new();
        st::activity_ids(&completed, false, &mut activities);
        st::activity_ids(&completed, true, &mut activities);
        let _ = st::activities_with_definitions(&completed);
        let _ = st::context_activities(&completed).count();
        let _ = st::voided_target(&completed);
        let _ = st::statement_ref_target(&completed);
        if let Some(Value::String(duration)) = completed.pointer("/result/duration") {
            let _ = st::duration_to_hundredths(duration);
        }
        let languages = fmt::parse_accept_language("fr-CA, en;q=0.8, *;q=0.1");
        for format in [StatementFormat::Exact, StatementFormat::Ids, StatementFormat::Canonical] {
            let mut shown = fmt::apply(format, &completed, &languages);
            st::fill_timestamp(&mut shown);
            if format == StatementFormat::Exact {
                let mut expected = completed.clone();
                st::fill_timestamp(&mut expected);
                assert_eq!(shown, expected, "format=exact changed the statement");
            }
        }
    }
}

/// Statement request bodies (`application/json`): parsed as the server
/// parses them, each statement through [`ingest`], then POSTed to the
/// embedded LRS (which adds the strict parser's duplicate-key check) and,
/// when accepted, read back.
pub fn statement(data: &[u8]) {
    if data.iter().all(u8::is_ascii_whitespace) {
        feature("empty body");
    } else {
        match serde_json::from_slice::<Value>(data) {
            Ok(Value::Array(items)) => {
                feature("array");
                for item in items.iter().take(16) {
                    ingest(item);
                }
            }
            Ok(value) => ingest(&value),
            Err(error) => feature(&format!("not json {:?}", error.classify())),
        }
    }
    let content_type: Option<&[u8]> = if fnv1a(data) & 2 == 0 { Some(b"application/json") } else { None };
    post_and_read_back(data, content_type);
}

/// POSTs a statement request to the embedded LRS; when accepted, every
/// returned id must be readable (as a statement or a voided statement),
/// as a valid statement.
fn post_and_read_back(body: &[u8], content_type: Option<&[u8]>) {
    let lrs = harness();
    let version = version_for(body);
    let Some(answer) = lrs.request(Method::POST, "/xapi/statements", version, content_type, body.to_vec()) else {
        return;
    };
    check_answer("POST", &answer);
    if answer.status != StatusCode::OK {
        return;
    }
    accepted(lrs, version, content_type, body, &answer);
}

/// After a POST was accepted: every returned id reads back, and sending
/// the same request again is accepted too (same statements, same ids: the
/// immutability check must see them as equal).
fn accepted(lrs: &Harness, version: &str, content_type: Option<&[u8]>, body: &[u8], answer: &Answer) {
    let ids: Vec<String> = match answer.json() {
        Some(Value::Array(ids)) => ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect(),
        _ => {
            panic!("POST /statements answered 200 without an array of ids: {:?}", String::from_utf8_lossy(&answer.body))
        }
    };
    for id in ids.iter().take(4) {
        read_back(lrs, version, id);
    }
    let Some(again) = lrs.request(Method::POST, "/xapi/statements", version, content_type, body.to_vec()) else {
        return;
    };
    check_answer("POST again", &again);
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the same request, accepted once, is refused the second time: {}",
        String::from_utf8_lossy(&again.body)
    );
}

fn read_back(lrs: &Harness, version: &str, id: &str) {
    // POST answers once the statement is visible (bounded by the
    // read-your-writes timeout), so only a very slow machine needs the retries.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for parameter in ["statementId", "voidedStatementId"] {
            let path = format!("/xapi/statements?{parameter}={id}&format=exact");
            let Some(answer) = lrs.request(Method::GET, &path, version, None, Vec::new()) else {
                panic!("cannot build a GET for the id {id:?} the LRS returned");
            };
            check_answer("GET one", &answer);
            if answer.status == StatusCode::OK {
                let Some(served) = answer.json() else {
                    panic!("GET {path} answered 200 with a body that is not JSON");
                };
                let valid = VERSIONS.iter().any(|v| validator().validate(*v, &served).is_ok());
                assert!(valid, "GET {path} served a statement no version accepts: {served}");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "statement {id} was accepted but is found neither by statementId nor by voidedStatementId"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Splits a `multipart` input: the first line is the Content-Type (or,
/// when it does not start with `multipart/`, the boundary itself), the rest
/// is the body.
fn split_first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => {
            let line = &data[..at];
            (line.strip_suffix(b"\r").unwrap_or(line), &data[at + 1..])
        }
        None => (data, &[]),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn trim_ascii(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Parts as compared after a build/parse round trip: header values
/// trimmed (a folded header can leave a leading space, see the README).
fn comparable(parts: &[Part]) -> Vec<Part> {
    parts
        .iter()
        .map(|p| Part {
            headers: p.headers.iter().map(|(n, v)| (n.clone(), trim_ascii(v).to_owned())).collect(),
            body: p.body.clone(),
        })
        .collect()
}

fn parse_multipart(body: &[u8], boundary: &str, tag: &str) -> Option<Vec<Part>> {
    let parts = match mp::parse(body, boundary) {
        Ok(parts) => parts,
        Err(error) => {
            let kind = format!("{error:?}");
            feature(&format!("{tag} {}", kind.split(['(', ' ', '{']).next().unwrap_or("")));
            return None;
        }
    };
    feature(&format!("{tag} parsed {}", parts.len().min(4)));
    assert!(!parts.is_empty() && parts.len() <= mp::MAX_PARTS, "parse returned {} parts", parts.len());
    for part in &parts {
        for (name, _) in &part.headers {
            assert!(!name.is_empty(), "a header with an empty name was accepted");
            assert_eq!(*name, name.to_ascii_lowercase(), "a header name is not lower-cased");
        }
    }
    // build() documents that the boundary must not occur in any part; when
    // it does not (and headers hold no line breaks, which build() replaces),
    // parsing what build() wrote gives the same parts back.
    let boundary_bytes = boundary.as_bytes();
    let clean = parts.iter().all(|p| {
        !contains(&p.body, boundary_bytes)
            && p.headers.iter().all(|(n, v)| {
                !contains(n.as_bytes(), boundary_bytes)
                    && !contains(v.as_bytes(), boundary_bytes)
                    && !n.contains(['\r', '\n'])
                    && !v.contains(['\r', '\n'])
            })
    });
    if clean {
        let rebuilt = mp::build(boundary, &parts);
        match mp::parse(&rebuilt, boundary) {
            Ok(again) => assert_eq!(
                comparable(&again),
                comparable(&parts),
                "parse(build(parts)) differs from parts; rebuilt {:?}",
                String::from_utf8_lossy(&rebuilt)
            ),
            Err(error) => panic!("what build() wrote does not parse: {error}; {:?}", String::from_utf8_lossy(&rebuilt)),
        }
    }
    Some(parts)
}

/// `multipart/mixed` statement requests: the boundary parameter, the
/// parser (checked against the builder), the xAPI part rules, each
/// statement through [`ingest`], then the request through the embedded LRS.
pub fn multipart(data: &[u8]) {
    let (first, body) = split_first_line(data);
    let first_text = String::from_utf8_lossy(first).into_owned();
    let is_content_type = first_text.to_ascii_lowercase().starts_with("multipart/");
    let content_type = if is_content_type { first_text.clone() } else { mp::content_type_for(&first_text) };
    let _ = mp::media_type(&content_type);

    // The raw line as a boundary, whatever boundary_from_content_type says.
    if !is_content_type {
        let _ = parse_multipart(body, &first_text, "raw");
    }
    match mp::boundary_from_content_type(&content_type) {
        Ok(boundary) => {
            if let Some(parts) = parse_multipart(body, &boundary, "boundary") {
                match mp::split_statement_request(parts) {
                    Ok((json, attachments)) => {
                        feature(&format!("split {}", attachments.len().min(4)));
                        for attachment in &attachments {
                            let computed = match attachment.sha2.len() {
                                64 => hex::encode(Sha256::digest(&attachment.body)),
                                96 => hex::encode(Sha384::digest(&attachment.body)),
                                128 => hex::encode(Sha512::digest(&attachment.body)),
                                other => panic!("an attachment with a {other}-digit hash was accepted"),
                            };
                            assert_eq!(attachment.sha2, computed, "an attachment's hash does not match its content");
                        }
                        match json {
                            Value::Array(items) => items.iter().take(16).for_each(ingest),
                            other => ingest(&other),
                        }
                    }
                    Err(error) => feature(&format!("split {}", shape(&error.to_string()))),
                }
            }
        }
        Err(error) => feature(&format!("content type {}", shape(&error.to_string()))),
    }

    let header: &[u8] = if is_content_type { first } else { content_type.as_bytes() };
    post_and_read_back_multipart(header, body);
}

fn post_and_read_back_multipart(content_type: &[u8], body: &[u8]) {
    // The version comes from the body so that mutating the header line
    // does not switch it.
    let lrs = harness();
    let version = version_for(body);
    let Some(answer) = lrs.request(Method::POST, "/xapi/statements", version, Some(content_type), body.to_vec()) else {
        return;
    };
    check_answer("POST multipart", &answer);
    if answer.status == StatusCode::OK {
        accepted(lrs, version, Some(content_type), body, &answer);
    }
}

/// Bytes as a URI query: what a URI cannot carry is percent-encoded
/// (form decoding turns it back into the same bytes); `%`, `&`, `=` and
/// `+` stay as they are, so the input controls the escapes.
pub fn to_query(data: &[u8]) -> String {
    let mut query = String::with_capacity(data.len());
    for &byte in data {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte) {
            query.push(char::from(byte));
        } else {
            query.push_str(&format!("%{byte:02X}"));
        }
    }
    query
}

/// Timestamps as `since`/`until` and statements use them.
fn check_timestamp(text: &str) {
    let lenient = parse_timestamp(XapiVersion::V1_0_3, text);
    let strict = parse_timestamp(XapiVersion::V2_0_0, text);
    feature(&format!("timestamp {} {}", lenient.is_some(), strict.is_some()));
    if let Some(strict) = strict {
        assert_eq!(lenient, Some(strict), "1.0.3 reads a timestamp 2.0 accepts differently: {text:?}");
    }
    if let Some(time) = lenient {
        let micros = time.timestamp_micros();
        let utc = time.with_timezone(&Utc);
        // The LRS writes times with format_time; what it writes it must read.
        if (1..=9999).contains(&utc.year()) {
            let written = st::format_time(utc);
            match parse_timestamp(XapiVersion::V2_0_0, &written) {
                Some(again) => assert_eq!(
                    again.timestamp_micros(),
                    micros,
                    "{text:?} written as {written:?} reads back as another instant"
                ),
                None => panic!("{text:?} written by format_time as {written:?} is not a 2.0 timestamp"),
            }
        }
    }
}

/// An `agent` parameter (a JSON Agent or Group).
fn check_agent(text: &str) {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        feature("agent not json");
        return;
    };
    let key = agent::ifi_key(&value);
    feature(&format!("agent key {}", key.as_deref().map_or("none", |k| k.split(':').next().unwrap_or(""))));
    let reduced = agent::ids_only(&value);
    assert_eq!(agent::ifi_key(&reduced), key, "an agent reduced to its ids has another key");
    let _ = agent::person_for(&value, &["a name".to_owned()]);
}

/// Statement query parameters: the public parameter parser
/// (`lrs_server::http::Params`) and the parsers get_statements applies to
/// each parameter, then GET /xapi/statements on the embedded LRS (which
/// reaches the private handler), following the `more` link of an answer.
pub fn query_params(data: &[u8]) {
    let query = to_query(data);
    let mut limit = None;
    match Params::parse(Some(&query)) {
        Err(error) => feature(&format!("params {}", shape(&error.to_string()))),
        Ok(params) => {
            if let Err(error) = params.only(&QUERY_PARAMETERS) {
                feature(&format!("params {}", shape(&error.to_string())));
            }
            for name in ["attachments", "related_agents", "related_activities", "ascending"] {
                if let Err(error) = params.boolean(name) {
                    feature(&format!("boolean {}", shape(&error.to_string())));
                }
            }
            if let Some(text) = params.get("format") {
                feature(&format!("format {:?}", StatementFormat::parse(text)));
            }
            for name in ["statementId", "voidedStatementId", "registration"] {
                if let Some(text) = params.get(name) {
                    feature(&format!("{name} uuid {}", Uuid::parse_str(text).is_ok()));
                }
            }
            if let Some(text) = params.get("agent") {
                check_agent(text);
            }
            for name in ["since", "until"] {
                if let Some(text) = params.get(name) {
                    check_timestamp(text);
                }
            }
            if let Some(text) = params.get("limit") {
                limit = text.parse::<usize>().ok();
                feature(&format!("limit {}", limit.is_some()));
            }
        }
    }

    // The same parsers on the raw text, which reaches their edges sooner.
    if let Ok(text) = std::str::from_utf8(data) {
        check_timestamp(text);
        check_agent(text);
        let _ = fmt::parse_accept_language(text);
        let _ = st::duration_to_hundredths(text);
        let _ = document::check_preconditions(Some(text), Some(text), Some("\"abc\""));
        let _ = lrs_xapi::validate::is_language_tag(text);
    }

    let lrs = harness();
    let version = version_for(data);
    let path = format!("/xapi/statements?{query}");
    match lrs.request(Method::GET, &path, version, None, Vec::new()) {
        Some(answer) => check_query_answer(lrs, version, &path, limit, &answer),
        None => feature("not a uri"),
    }

    // A JSON object is also tried as the cursor of a `more` link, sealed
    // with the LRS's own key: this reaches the cursor decoding and the
    // query it resumes, which a client cannot forge.
    if data.first() == Some(&b'{')
        && let Ok(Value::Object(cursor)) = serde_json::from_slice::<Value>(data)
    {
        feature("sealed cursor");
        let limit = cursor.get("limit").and_then(Value::as_u64).and_then(|l| usize::try_from(l).ok());
        let path = format!("/xapi/statements?more={}", lrs.seal(data));
        if let Some(answer) = lrs.request(Method::GET, &path, version, None, Vec::new()) {
            check_query_answer(lrs, version, &path, limit, &answer);
        }
    }
}

/// The answer to a statement query: no server error; a 200 is a
/// StatementResult (or a single statement) whose statements are valid and
/// no more than `limit`, and whose `more` link works.
fn check_query_answer(lrs: &Harness, version: &str, path: &str, limit: Option<usize>, answer: &Answer) {
    check_answer("GET", answer);
    if answer.status != StatusCode::OK {
        return;
    }
    let Some(result) = statement_result(answer) else {
        panic!(
            "GET {path} answered 200 ({:?}) with a body that is neither JSON nor multipart with a JSON first part",
            answer.content_type
        );
    };
    if result.get("statements").is_none() {
        return;
    }
    let Some(statements) = result["statements"].as_array() else {
        panic!("a StatementResult without a statements array: {result}");
    };
    if let Some(limit) = limit.filter(|l| *l > 0) {
        assert!(statements.len() <= limit, "{} statements for limit={limit}", statements.len());
    }
    for served in statements {
        let valid = VERSIONS.iter().any(|v| validator().validate(*v, served).is_ok());
        assert!(valid, "GET {path} served a statement no version accepts: {served}");
    }
    let more = result.get("more").and_then(Value::as_str).unwrap_or("");
    if !more.is_empty() {
        feature("more");
        let next_path = more.find("/xapi/").map_or(more, |at| &more[at..]);
        let Some(next) = lrs.request(Method::GET, next_path, version, None, Vec::new()) else {
            panic!("the more link {more:?} is not a valid URI");
        };
        check_answer("GET more", &next);
        assert_eq!(next.status, StatusCode::OK, "the more link {more:?} does not work");
    }
}

/// The JSON of a GET answer: the body, or with `attachments=true` the
/// first part of the multipart answer, which must parse with the LRS's own
/// multipart parser and follow the xAPI rules for parts.
fn statement_result(answer: &Answer) -> Option<Value> {
    let content_type = answer.content_type.as_deref().unwrap_or("");
    if mp::media_type(content_type) != "multipart/mixed" {
        return answer.json();
    }
    feature("multipart answer");
    let boundary = match mp::boundary_from_content_type(content_type) {
        Ok(boundary) => boundary,
        Err(error) => panic!("the LRS answered with a multipart Content-Type its parser refuses: {error}"),
    };
    let parts = match mp::parse(&answer.body, &boundary) {
        Ok(parts) => parts,
        Err(error) => panic!("the LRS's multipart answer does not parse: {error}"),
    };
    match mp::split_statement_request(parts) {
        Ok((json, _)) => Some(json),
        Err(error) => panic!("the LRS's multipart answer breaks the xAPI part rules: {error}"),
    }
}

/// Event log records: `decode` never panics, and whatever it accepts
/// encodes to bytes that decode to the same event (and encode the same).
pub fn events(data: &[u8]) {
    let event = match ev::decode(data) {
        Ok(event) => event,
        Err(error) => {
            // "event is not valid JSON of a known shape: <what serde said>"
            let message = error.to_string();
            let detail = message.split_once(": ").map_or(message.as_str(), |(_, detail)| detail);
            feature(&format!("decode {}", shape(detail)));
            return;
        }
    };
    feature(match &event {
        Event::StatementsStored { .. } => "event statements_stored",
        Event::DocumentSet { .. } => "event document_set",
        Event::DocumentDeleted { .. } => "event document_deleted",
        Event::StateCleared { .. } => "event state_cleared",
        Event::LearnersImported { .. } => "event learners_imported",
        Event::OrganisationsImported { .. } => "event organisations_imported",
        Event::DocumentRequested { .. } => "event document_requested",
    });
    let bytes = ev::encode(&event);
    assert!(!bytes.is_empty(), "encode wrote nothing for {event:?}");
    match ev::decode(&bytes) {
        Ok(again) => {
            assert_eq!(again, event, "decode(encode(e)) != e; encoded {:?}", String::from_utf8_lossy(&bytes));
            assert_eq!(ev::encode(&again), bytes, "encoding the same event twice differs");
        }
        Err(error) => panic!(
            "an event decode accepted does not decode once encoded: {error}; encoded {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    }
}
