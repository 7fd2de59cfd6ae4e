#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Access control over real HTTP on loopback.
//!
//! 1. [`access_matrix`]: every routed endpoint × method against every kind
//!    of caller (no credential, bad credentials, each single scope, learner
//!    tokens good and bad, analysts), with the expected outcome written out
//!    in [`expected`]. Requests are valid, so only authorisation decides;
//!    writes are checked afterwards to have happened exactly when allowed.
//! 2. Learner isolation: two learners signed in with tokens never see each
//!    other's statements, transcripts, competencies or documents, by any
//!    filter, `more` link or the alternate request syntax.
//! 3. Analyst grant isolation: an analyst granted one organisation reads
//!    nothing about organisations outside the grant, by any parameter, and
//!    refusals do not tell whether an organisation or learner exists.
//!
//! The policy comes from the xAPI scopes (xAPI 1.0.3 §4.1 / 2.0 "OAuth
//! scope"), README "Credentials" and "Who may see what", and ARCHITECTURE
//! "Invariants"; choices the documents leave open are marked "policy".

#[path = "api/support.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use uuid::Uuid;

use lrs_server::credentials::{self, Scope};

use support::{COMPLETED, PASSED, TestApp, V1, V2, VOIDED, spawn_app, spawn_app_with};

// ===== constants =====

const HOME_PAGE: &str = "https://learninghub.nhs.uk";
const ORGANISATION_EXT: &str = "https://learninghub.nhs.uk/xapi/ext/organisation";
const ISSUER: &str = "https://auth.learninghub.nhs.uk";
const AUDIENCE: &str = "lrs";

const RSA_PRIVATE: &str = "test-only-jwt-rsa-private.pem";
const RSA_PUBLIC: &str = "test-only-jwt-rsa-public.pem";
const EC_PRIVATE: &str = "test-only-jwt-ec-p256-private.pem";
const EC_PUBLIC: &str = "test-only-jwt-ec-p256-public.pem";
const UNTRUSTED_RSA_PRIVATE: &str = "test-only-jwt-untrusted-rsa-private.pem";

const ATTEMPTED: &str = "http://adlnet.gov/expapi/verbs/attempted";

// ===== small helpers =====

fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("data").join(name)
}

fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn account(name: &str) -> Value {
    json!({ "objectType": "Agent", "account": { "homePage": HOME_PAGE, "name": name } })
}

fn learner_key(name: &str) -> String {
    format!("account:{HOME_PAGE}|{name}")
}

fn basic(key: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{key}:{secret}")))
}

fn admin(app: &TestApp) -> String {
    basic(&app.key, &app.secret)
}

/// A statement with a fresh id.
fn statement_by(actor: &Value, verb: &str, activity: &str, timestamp: &str) -> Value {
    json!({
        "id": Uuid::new_v4().to_string(),
        "actor": actor,
        "verb": { "id": verb, "display": { "en-GB": "did" } },
        "object": { "objectType": "Activity", "id": activity, "definition": { "name": { "en-GB": "An activity" } } },
        "timestamp": timestamp,
        "context": { "platform": "e-LfH" }
    })
}

fn voiding(target: &str) -> Value {
    json!({
        "id": Uuid::new_v4().to_string(),
        "actor": { "objectType": "Agent", "mbox": "mailto:lrs-admin@example.nhs.uk" },
        "verb": { "id": VOIDED, "display": { "en-GB": "voided" } },
        "object": { "objectType": "StatementRef", "id": target }
    })
}

fn id_of(statement: &Value) -> String {
    statement["id"].as_str().expect("statement id").to_owned()
}

// ----- tokens -----

fn claims(subject: &str) -> Value {
    json!({ "sub": subject, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + 3600 })
}

fn sign(key_file: &str, algorithm: Algorithm, claims: &Value) -> String {
    let pem = std::fs::read(data_file(key_file)).expect("key file");
    let key = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .expect("signing key");
    encode(&Header::new(algorithm), claims, &key).expect("sign token")
}

fn unsigned_token(claims: &Value) -> String {
    let b64 = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(claims))
}

/// `Authorization` of a learner signed in with the trusted RSA key.
fn learner_bearer(account_name: &str) -> String {
    format!("Bearer {}", sign(RSA_PRIVATE, Algorithm::RS256, &claims(account_name)))
}

/// An app that accepts learner tokens signed by the test RSA and EC keys.
async fn spawn_jwt_app() -> TestApp {
    let jwt =
        lrs_server::jwt::JwtVerifier::from_pem_files(&[data_file(RSA_PUBLIC), data_file(EC_PUBLIC)], ISSUER, AUDIENCE)
            .expect("test JWT keys load");
    spawn_app_with(move |o| o.jwt = Some(jwt)).await
}

/// The same, with the failed sign-in throttle out of the way: the matrix
/// makes hundreds of 401s on purpose and tests authorisation, not throttling.
async fn spawn_matrix_app() -> TestApp {
    let jwt =
        lrs_server::jwt::JwtVerifier::from_pem_files(&[data_file(RSA_PUBLIC), data_file(EC_PUBLIC)], ISSUER, AUDIENCE)
            .expect("test JWT keys load");
    spawn_app_with(move |o| {
        o.jwt = Some(jwt);
        o.server.auth_failure_limit = 1_000_000;
    })
    .await
}

/// A credential with `scopes`, granted analytics access to `organisations`;
/// returns its `Authorization` header.
fn analyst(app: &TestApp, name: &str, scopes: &[Scope], organisations: &[&str]) -> String {
    let (key, secret) = app.add_credential(name, scopes);
    credentials::grant_organisations(
        app.data_dir.path(),
        &key,
        organisations.iter().map(|o| (*o).to_owned()).collect(),
    )
    .expect("grant organisations");
    basic(&key, &secret)
}

// ----- HTTP -----

/// A response, read whole.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    fn describe(&self) -> String {
        format!("{} {}", self.status, self.body)
    }

    /// Why this is not a proper JSON error, if it is not one.
    fn json_error_problem(&self) -> Option<String> {
        let content_type = self.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/json") {
            return Some(format!("error with Content-Type {content_type:?}"));
        }
        let json = self.json();
        if json["error"]["status"] != json!(self.status) || !json["error"]["message"].is_string() {
            return Some("error body is not {\"error\": {\"status\", \"message\"}}".to_owned());
        }
        None
    }

    /// The texts of `secrets` that appear in the body.
    fn leaked<'a>(&self, secrets: &'a [String]) -> Vec<&'a str> {
        secrets.iter().filter(|s| !s.is_empty() && self.body.contains(s.as_str())).map(String::as_str).collect()
    }
}

async fn exchange(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    Answer { status, headers, body }
}

/// A request with the 2.0.0 version header and, if given, `Authorization`.
fn call(app: &TestApp, auth: Option<&str>, method: Method, path: &str) -> RequestBuilder {
    let mut request = app.client.request(method, app.url(path)).header("X-Experience-API-Version", V2);
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth);
    }
    request
}

async fn get(app: &TestApp, auth: &str, path: &str) -> Answer {
    exchange(call(app, Some(auth), Method::GET, path)).await
}

async fn put_json(app: &TestApp, auth: &str, path: &str, body: &Value) -> Answer {
    exchange(call(app, Some(auth), Method::PUT, path).header(CONTENT_TYPE, "application/json").body(body.to_string()))
        .await
}

async fn import(app: &TestApp, auth: &str, what: &str, csv: &str) -> Answer {
    exchange(
        call(app, Some(auth), Method::POST, &format!("/admin/{what}"))
            .header(CONTENT_TYPE, "text/csv")
            .body(csv.to_owned()),
    )
    .await
}

async fn expect_imported(app: &TestApp, what: &str, csv: &str) {
    let answer = import(app, &admin(app), what, csv).await;
    assert_eq!(answer.status, 200, "POST /admin/{what}: {}", answer.describe());
}

/// The 1.0.3 alternate request syntax: POST `path?method=GET` with the
/// headers and parameters as form fields.
async fn alternate_get(app: &TestApp, path: &str, auth: &str, fields: &[(&str, &str)]) -> Answer {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Authorization", auth);
    form.append_pair("X-Experience-API-Version", V1);
    for (name, value) in fields {
        form.append_pair(name, value);
    }
    exchange(
        app.client
            .post(app.url(&format!("{path}?method=GET")))
            .header("X-Experience-API-Version", V1)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.finish()),
    )
    .await
}

/// Polls a GET until it answers 200 with a body `done` accepts (10 s).
async fn poll(app: &TestApp, auth: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(app, auth, path).await;
        if answer.status == 200 && done(&answer.json()) {
            return answer.json();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last answer to GET {path}: {}",
            answer.describe()
        );
        tokio::task::yield_now().await;
    }
}

fn activity_count(transcript: &Value) -> usize {
    transcript["activities"].as_array().map_or(0, Vec::len)
}

// ===================================================================
// 1. The matrix
// ===================================================================

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Caller {
    NoCredential,
    /// The key of a good credential (scope `all`) with another secret.
    WrongSecret,
    UnknownKey,
    /// A credential (scope `all`) that worked, then was revoked.
    Revoked,
    /// `Basic` followed by something that is not base64 of key:secret.
    MalformedBasic,
    /// A credential with exactly this one scope and no analytics grant.
    Scoped(Scope),
    /// The matrix learner, token signed RS256 by the trusted key.
    Learner,
    /// The matrix learner, token signed ES256 by the trusted key.
    LearnerEs256,
    ExpiredJwt,
    /// `nbf` an hour from now.
    NotYetValidJwt,
    UntrustedKeyJwt,
    /// `alg: none`.
    UnsignedJwt,
    WrongAudienceJwt,
    WrongIssuerJwt,
    /// Scope `define` (the weakest xAPI scope), granted RJ1.
    AnalystRj1,
    /// Scope `all/read`, granted `*`.
    AnalystEverywhere,
}

impl Caller {
    fn every() -> Vec<Caller> {
        let mut callers = vec![Caller::NoCredential, Caller::WrongSecret, Caller::UnknownKey, Caller::Revoked];
        callers.push(Caller::MalformedBasic);
        callers.extend(Scope::EVERY.map(Caller::Scoped));
        callers.extend([
            Caller::Learner,
            Caller::LearnerEs256,
            Caller::ExpiredJwt,
            Caller::NotYetValidJwt,
            Caller::UntrustedKeyJwt,
            Caller::UnsignedJwt,
            Caller::WrongAudienceJwt,
            Caller::WrongIssuerJwt,
            Caller::AnalystRj1,
            Caller::AnalystEverywhere,
        ]);
        callers
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Scoped(scope) => write!(f, "scope {}", scope.name()),
            other => write!(f, "{other:?}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Statements,
    State,
    ActivityProfile,
    AgentProfile,
    Activities,
    Agents,
    About,
    Transcript,
    Competencies,
    Uptake,
    Coverage,
    AdminLearners,
    AdminOrganisations,
}

impl Resource {
    fn route(self) -> &'static str {
        match self {
            Resource::Statements => "/xapi/statements",
            Resource::State => "/xapi/activities/state",
            Resource::ActivityProfile => "/xapi/activities/profile",
            Resource::AgentProfile => "/xapi/agents/profile",
            Resource::Activities => "/xapi/activities",
            Resource::Agents => "/xapi/agents",
            Resource::About => "/xapi/about",
            Resource::Transcript => "/analytics/learners/{learner}/transcript",
            Resource::Competencies => "/analytics/learners/{learner}/competencies",
            Resource::Uptake => "/analytics/uptake",
            Resource::Coverage => "/analytics/competencies/coverage",
            Resource::AdminLearners => "/admin/learners",
            Resource::AdminOrganisations => "/admin/organisations",
        }
    }

    fn is_document(self) -> bool {
        matches!(self, Resource::State | Resource::ActivityProfile | Resource::AgentProfile)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Get,
    Put,
    Post,
    Delete,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Put => Method::PUT,
            Verb::Post => Method::POST,
            Verb::Delete => Method::DELETE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint(Resource, Verb);

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.1.method(), self.0.route())
    }
}

/// Every route and method the server answers (app.rs), except /health.
#[rustfmt::skip]
const ENDPOINTS: [Endpoint; 24] = {
    use Resource::*;
    use Verb::*;
    [
        Endpoint(Statements, Get), Endpoint(Statements, Put), Endpoint(Statements, Post),
        Endpoint(State, Get), Endpoint(State, Put), Endpoint(State, Post), Endpoint(State, Delete),
        Endpoint(ActivityProfile, Get), Endpoint(ActivityProfile, Put), Endpoint(ActivityProfile, Post), Endpoint(ActivityProfile, Delete),
        Endpoint(AgentProfile, Get), Endpoint(AgentProfile, Put), Endpoint(AgentProfile, Post), Endpoint(AgentProfile, Delete),
        Endpoint(Activities, Get), Endpoint(Agents, Get), Endpoint(About, Get),
        Endpoint(Transcript, Get), Endpoint(Competencies, Get), Endpoint(Uptake, Get), Endpoint(Coverage, Get),
        Endpoint(AdminLearners, Post), Endpoint(AdminOrganisations, Post),
    ]
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// 2xx (every matrix request is valid and addresses existing things).
    Allowed,
    /// 401: not authenticated.
    Unauthorized,
    /// 403: authenticated, not permitted.
    Forbidden,
}

/// Who a caller is once authenticated.
enum Identity {
    /// An HTTP Basic credential: its scopes and analytics grant.
    Credential { scopes: Vec<Scope>, grant: Grant },
    /// A learner signed in with a bearer token (the matrix learner).
    Learner,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    None,
    /// RJ1 and below (the matrix learner is in RJ1).
    Rj1,
    Everything,
}

/// `None` for callers that must not authenticate.
fn identity(caller: Caller) -> Option<Identity> {
    match caller {
        Caller::NoCredential
        | Caller::WrongSecret
        | Caller::UnknownKey
        | Caller::Revoked
        | Caller::MalformedBasic
        | Caller::ExpiredJwt
        | Caller::NotYetValidJwt
        | Caller::UntrustedKeyJwt
        | Caller::UnsignedJwt
        | Caller::WrongAudienceJwt
        | Caller::WrongIssuerJwt => None,
        Caller::Scoped(scope) => Some(Identity::Credential { scopes: vec![scope], grant: Grant::None }),
        Caller::Learner | Caller::LearnerEs256 => Some(Identity::Learner),
        Caller::AnalystRj1 => Some(Identity::Credential { scopes: vec![Scope::Define], grant: Grant::Rj1 }),
        Caller::AnalystEverywhere => {
            Some(Identity::Credential { scopes: vec![Scope::AllRead], grant: Grant::Everything })
        }
    }
}

/// The access policy, cell by cell.
///
/// - `/xapi/about` is public: it never looks at credentials (xAPI: "MUST NOT
///   require authentication" for About), so even a bad credential gets 200.
/// - Everything else needs a valid credential or learner token: 401 without.
/// - xAPI scopes (spec table): `all` is everything; `all/read` every read;
///   `statements/write` PUT/POST statements; `statements/read` and
///   `statements/read/mine` GET statements (mine: only those it stored);
///   `state` the State resource; `profile` the two Profile resources.
///   Policy (the spec leaves it open): the Activities and Agents resources
///   are readable with `all/read`, `statements/read`, `state`, `profile` or
///   `define`, but not with `statements/write` or `statements/read/mine`
///   (they show data from every statement); `define` grants nothing else.
///   The spec's "limited to Activities and Actors associated with the
///   current token" for state/profile is not enforced (no such association
///   exists for Basic credentials): any activity/agent is allowed.
/// - A learner token is `statements/read/mine` narrowed to statements about
///   the learner (README "Who may see what"), plus the learner's own
///   transcript and competencies; nothing else.
/// - Analytics are decided by the organisation grant, not by scopes (README:
///   "Platforms (xAPI credentials): no analytics unless granted"), so even
///   `all` without a grant gets 403, and `define` with a grant reads.
/// - The directory imports need `all` (README).
fn expected(caller: Caller, endpoint: Endpoint) -> Outcome {
    use Resource as R;
    use Scope as S;
    let Endpoint(resource, verb) = endpoint;
    if resource == R::About {
        return Outcome::Allowed;
    }
    let Some(identity) = identity(caller) else {
        return Outcome::Unauthorized;
    };
    let allowed = match identity {
        // Reads of statements about them, and of their own transcript and
        // competencies; nothing else.
        Identity::Learner => {
            matches!((resource, verb), (R::Statements | R::Transcript | R::Competencies, Verb::Get))
        }
        Identity::Credential { scopes, grant } => {
            let has = |wanted: &[Scope]| scopes.contains(&S::All) || wanted.iter().any(|s| scopes.contains(s));
            match (resource, verb) {
                (R::Statements, Verb::Get) => has(&[S::StatementsRead, S::StatementsReadMine, S::AllRead]),
                (R::Statements, _) => has(&[S::StatementsWrite]),
                (R::State, Verb::Get) => has(&[S::State, S::AllRead]),
                (R::State, _) => has(&[S::State]),
                (R::ActivityProfile | R::AgentProfile, Verb::Get) => has(&[S::Profile, S::AllRead]),
                (R::ActivityProfile | R::AgentProfile, _) => has(&[S::Profile]),
                (R::Activities | R::Agents, _) => {
                    has(&[S::AllRead, S::StatementsRead, S::State, S::Profile, S::Define])
                }
                (R::Transcript | R::Competencies | R::Uptake | R::Coverage, _) => grant != Grant::None,
                (R::AdminLearners | R::AdminOrganisations, _) => has(&[]),
                (R::About, _) => true,
            }
        }
    };
    if allowed { Outcome::Allowed } else { Outcome::Forbidden }
}

const MATRIX_LEARNER: &str = "200001";
const MATRIX_ACTIVITY: &str = "https://example.nhs.uk/courses/access-matrix";
const SEEDED: &str = "seeded";

fn matrix_agent() -> Value {
    json!({ "objectType": "Agent", "mbox": "mailto:matrix.agent@example.nhs.uk" })
}

fn document_path(resource: Resource, document_id: &str) -> String {
    let activity = url_encode(MATRIX_ACTIVITY);
    let agent = url_encode(&matrix_agent().to_string());
    match resource {
        Resource::State => format!("/xapi/activities/state?activityId={activity}&agent={agent}&stateId={document_id}"),
        Resource::ActivityProfile => format!("/xapi/activities/profile?activityId={activity}&profileId={document_id}"),
        Resource::AgentProfile => format!("/xapi/agents/profile?agent={agent}&profileId={document_id}"),
        other => panic!("{other:?} is not a document resource"),
    }
}

/// One cell: its caller, endpoint, and the ids that make its request unique.
struct Cell {
    caller: Caller,
    endpoint: Endpoint,
    index: usize,
    id: Uuid,
}

impl Cell {
    fn organisation_code(&self) -> String {
        format!("M{:05}", self.index)
    }

    fn directory_learner(&self) -> String {
        format!("matrix-{}", self.id)
    }

    /// The request: valid in every respect but authorisation.
    fn request(&self) -> (String, Option<(&'static str, String)>) {
        let Endpoint(resource, verb) = self.endpoint;
        let statement = || {
            let mut statement = statement_by(&matrix_agent(), COMPLETED, MATRIX_ACTIVITY, "2026-03-02T09:00:00Z");
            statement["id"] = json!(self.id.to_string());
            statement
        };
        match resource {
            Resource::Statements => match verb {
                Verb::Get => ("/xapi/statements?limit=1".to_owned(), None),
                Verb::Put => (
                    format!("/xapi/statements?statementId={}", self.id),
                    Some(("application/json", statement().to_string())),
                ),
                _ => ("/xapi/statements".to_owned(), Some(("application/json", json!([statement()]).to_string()))),
            },
            r if r.is_document() => match verb {
                Verb::Get => (document_path(r, SEEDED), None),
                Verb::Delete => (document_path(r, &self.id.to_string()), None),
                _ => (
                    document_path(r, &self.id.to_string()),
                    Some(("application/json", json!({ "cell": self.index }).to_string())),
                ),
            },
            Resource::Activities => (format!("/xapi/activities?activityId={}", url_encode(MATRIX_ACTIVITY)), None),
            Resource::Agents => (format!("/xapi/agents?agent={}", url_encode(&matrix_agent().to_string())), None),
            Resource::About => ("/xapi/about".to_owned(), None),
            Resource::Transcript => (format!("/analytics/learners/{MATRIX_LEARNER}/transcript"), None),
            Resource::Competencies => (format!("/analytics/learners/{MATRIX_LEARNER}/competencies"), None),
            Resource::Uptake => {
                ("/analytics/uptake?org=RJ1&from=2026-03-01&to=2026-03-31&granularity=week".to_owned(), None)
            }
            Resource::Coverage => ("/analytics/competencies/coverage?org=RJ1".to_owned(), None),
            Resource::AdminLearners => (
                "/admin/learners".to_owned(),
                Some(("text/csv", format!("learner,organisation,staff_group\n{},RJ1,\n", self.directory_learner()))),
            ),
            Resource::AdminOrganisations => (
                "/admin/organisations".to_owned(),
                Some((
                    "text/csv",
                    format!("code,name,parent\n{},Matrix unit {},RJ1\n", self.organisation_code(), self.index),
                )),
            ),
            _ => unreachable!(),
        }
    }
}

/// A caller's `Authorization` header and what must never be echoed back.
struct Authorisation {
    header: Option<String>,
    sensitive: Vec<String>,
}

/// Creates the credentials and tokens of every caller.
async fn authorisations(app: &TestApp) -> HashMap<Caller, Authorisation> {
    let mut out = HashMap::new();
    let basic_auth = |key: &str, secret: &str| Authorisation {
        header: Some(basic(key, secret)),
        sensitive: vec![secret.to_owned(), STANDARD.encode(format!("{key}:{secret}"))],
    };
    let bearer = |token: String| Authorisation { header: Some(format!("Bearer {token}")), sensitive: vec![token] };
    for caller in Caller::every() {
        let authorisation = match caller {
            Caller::NoCredential => Authorisation { header: None, sensitive: Vec::new() },
            Caller::WrongSecret => basic_auth(&app.key, &format!("wrong-{}", app.secret)),
            Caller::UnknownKey => basic_auth("no-such-key", "no-such-secret-0123456789"),
            Caller::Revoked => {
                let (key, secret) = app.add_credential("to-be-revoked", &[Scope::All]);
                let before = get(app, &basic(&key, &secret), "/xapi/statements?limit=1").await;
                assert_eq!(before.status, 200, "the credential works before it is revoked: {}", before.describe());
                credentials::revoke(app.data_dir.path(), &key).expect("revoke");
                basic_auth(&key, &secret)
            }
            Caller::MalformedBasic => Authorisation {
                header: Some("Basic %%not-base64%%".to_owned()),
                sensitive: vec!["%%not-base64%%".to_owned()],
            },
            Caller::Scoped(scope) => {
                let (key, secret) = app.add_credential(&format!("only-{}", scope.name()), &[scope]);
                basic_auth(&key, &secret)
            }
            Caller::Learner => bearer(sign(RSA_PRIVATE, Algorithm::RS256, &claims(MATRIX_LEARNER))),
            Caller::LearnerEs256 => bearer(sign(EC_PRIVATE, Algorithm::ES256, &claims(MATRIX_LEARNER))),
            Caller::ExpiredJwt => {
                let mut expired = claims(MATRIX_LEARNER);
                expired["iat"] = json!(now() - 7200);
                expired["exp"] = json!(now() - 3600);
                bearer(sign(RSA_PRIVATE, Algorithm::RS256, &expired))
            }
            Caller::NotYetValidJwt => {
                let mut future = claims(MATRIX_LEARNER);
                future["nbf"] = json!(now() + 3600);
                future["exp"] = json!(now() + 7200);
                bearer(sign(RSA_PRIVATE, Algorithm::RS256, &future))
            }
            Caller::UntrustedKeyJwt => bearer(sign(UNTRUSTED_RSA_PRIVATE, Algorithm::RS256, &claims(MATRIX_LEARNER))),
            Caller::UnsignedJwt => bearer(unsigned_token(&claims(MATRIX_LEARNER))),
            Caller::WrongAudienceJwt => {
                let mut wrong = claims(MATRIX_LEARNER);
                wrong["aud"] = json!("another-service");
                bearer(sign(RSA_PRIVATE, Algorithm::RS256, &wrong))
            }
            Caller::WrongIssuerJwt => {
                let mut wrong = claims(MATRIX_LEARNER);
                wrong["iss"] = json!("https://auth.example.com");
                bearer(sign(EC_PRIVATE, Algorithm::ES256, &wrong))
            }
            Caller::AnalystRj1 => {
                let header = analyst(app, "analyst-rj1", &[Scope::Define], &["RJ1"]);
                Authorisation { header: Some(header), sensitive: Vec::new() }
            }
            Caller::AnalystEverywhere => {
                let header = analyst(app, "analyst-everywhere", &[Scope::AllRead], &["*"]);
                Authorisation { header: Some(header), sensitive: Vec::new() }
            }
        };
        out.insert(caller, authorisation);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix() {
    let app = spawn_matrix_app().await;
    let admin = admin(&app);
    expect_imported(
        &app,
        "organisations",
        "code,name,parent\nQKK,South East London ICB,\nRJ1,Guy's and St Thomas',QKK\n",
    )
    .await;
    expect_imported(&app, "learners", &format!("learner,organisation,staff_group\n{MATRIX_LEARNER},RJ1,Nursing\n"))
        .await;
    app.post_statements(
        V2,
        &json!([statement_by(&account(MATRIX_LEARNER), COMPLETED, MATRIX_ACTIVITY, "2026-03-02T09:00:00Z")]),
    )
    .await;
    for resource in [Resource::State, Resource::ActivityProfile, Resource::AgentProfile] {
        let answer = put_json(&app, &admin, &document_path(resource, SEEDED), &json!({ "seeded": true })).await;
        assert_eq!(answer.status, 204, "seeding {resource:?}: {}", answer.describe());
    }

    let auth = authorisations(&app).await;
    let mut cells = Vec::new();
    for caller in Caller::every() {
        for endpoint in ENDPOINTS {
            cells.push(Cell { caller, endpoint, index: cells.len(), id: Uuid::new_v4() });
        }
    }
    // Every DELETE addresses a document of its own, which exists.
    for cell in cells.iter().filter(|c| c.endpoint.1 == Verb::Delete) {
        let answer = put_json(&app, &admin, &document_path(cell.endpoint.0, &cell.id.to_string()), &json!({})).await;
        assert_eq!(answer.status, 204, "seeding a document to delete: {}", answer.describe());
    }
    let rj1 = auth[&Caller::AnalystRj1].header.clone().expect("analyst");
    poll(&app, &rj1, &format!("/analytics/learners/{MATRIX_LEARNER}/transcript"), "the directory", |t| {
        activity_count(t) == 1
    })
    .await;

    let mut failures = Vec::new();
    let mut challenges = BTreeSet::new();
    for cell in &cells {
        let want = expected(cell.caller, cell.endpoint);
        let authorisation = &auth[&cell.caller];
        let (path, body) = cell.request();
        let mut request = call(&app, authorisation.header.as_deref(), cell.endpoint.1.method(), &path);
        if let Some((content_type, body)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        let answer = exchange(request).await;
        let cell_name = format!("[{} × {}] {} {path}", cell.caller, cell.endpoint, cell.endpoint.1.method());
        let right = match want {
            Outcome::Allowed => (200..300).contains(&answer.status),
            Outcome::Unauthorized => answer.status == 401,
            Outcome::Forbidden => answer.status == 403,
        };
        if !right {
            failures.push(format!("{cell_name} → {} (expected {want:?})", answer.describe()));
            continue;
        }
        if want != Outcome::Allowed {
            if let Some(problem) = answer.json_error_problem() {
                failures.push(format!("{cell_name} → {problem}: {}", answer.describe()));
            }
            let leaked = answer.leaked(&authorisation.sensitive);
            if !leaked.is_empty() {
                failures.push(format!("{cell_name} → the refusal echoes the credential {leaked:?}"));
            }
        }
        if answer.status == 401 {
            match answer.header("www-authenticate") {
                Some(challenge) if !challenge.trim().is_empty() => {
                    challenges.insert(challenge);
                }
                _ => failures.push(format!("{cell_name} → 401 without WWW-Authenticate")),
            }
        }
    }
    assert_eq!(cells.len(), Caller::every().len() * ENDPOINTS.len());
    // The server challenges with Basic on every 401, bearer failures too.
    assert!(
        challenges.iter().all(|c| c.starts_with("Basic")),
        "unexpected WWW-Authenticate challenges: {challenges:?}"
    );

    // Every write happened exactly when it was allowed. The Learning Hub
    // views follow the log in order: once a later import is visible, every
    // earlier one has been applied.
    let canary = format!("canary-{}", Uuid::new_v4());
    expect_imported(&app, "learners", &format!("learner,organisation,staff_group\n{canary},RJ1,\n")).await;
    poll(&app, &rj1, &format!("/analytics/learners/{canary}/transcript"), "the canary import", |_| true).await;
    for cell in cells.iter().filter(|c| c.endpoint.1 != Verb::Get) {
        let allowed = expected(cell.caller, cell.endpoint) == Outcome::Allowed;
        let Endpoint(resource, verb) = cell.endpoint;
        let (path, want, reader) = match resource {
            Resource::Statements => {
                (format!("/xapi/statements?statementId={}", cell.id), if allowed { 200 } else { 404 }, &admin)
            }
            r if r.is_document() => {
                let present = if verb == Verb::Delete { !allowed } else { allowed };
                (document_path(r, &cell.id.to_string()), if present { 200 } else { 404 }, &admin)
            }
            Resource::AdminLearners => (
                format!("/analytics/learners/{}/transcript", cell.directory_learner()),
                if allowed { 200 } else { 403 },
                &rj1,
            ),
            Resource::AdminOrganisations => {
                (format!("/analytics/uptake?org={}", cell.organisation_code()), if allowed { 200 } else { 403 }, &rj1)
            }
            other => panic!("{other:?} is not written"),
        };
        let answer = get(&app, reader, &path).await;
        if answer.status != want {
            failures.push(format!(
                "[{} × {}] afterwards GET {path} → {} (expected {want}: the write {} have taken effect)",
                cell.caller,
                cell.endpoint,
                answer.describe(),
                if allowed { "should" } else { "must not" }
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cells failed:\n{}", failures.len(), cells.len(), failures.join("\n"));
}

// ===================================================================
// 2. Learner isolation
// ===================================================================

const SHARED_ACTIVITY: &str = "https://example.nhs.uk/courses/shared-induction";

/// A learner signed in with a token, and the records about them.
struct Learner {
    name: String,
    auth: String,
    agent: Value,
    /// Their statements that are not voided.
    visible: Vec<String>,
    voided: String,
    /// The admin's statement voiding `voided`.
    voiding: String,
    /// A verb, activity and registration only this learner's statements use.
    verb: String,
    activity: String,
    registration: String,
}

impl Learner {
    /// Texts that identify this learner or their records: none may appear
    /// in anything the other learner is told.
    fn identifiers(&self) -> Vec<String> {
        let mut out = vec![self.name.clone(), self.verb.clone(), self.activity.clone(), self.registration.clone()];
        out.push(format!("secret-of-{}", self.name));
        out
    }

    fn statement_ids(&self) -> Vec<String> {
        let mut out = self.visible.clone();
        out.push(self.voided.clone());
        out.push(self.voiding.clone());
        out
    }

    fn agent_param(&self) -> String {
        url_encode(&self.agent.to_string())
    }
}

/// Stores four statements by the learner (one voided by the admin) and a
/// state document and agent profile about them.
async fn learner_with_records(app: &TestApp, name: &str, day: u32) -> Learner {
    let agent = account(name);
    let verb = format!("https://example.nhs.uk/verbs/only-{name}");
    let activity = format!("https://example.nhs.uk/courses/only-{name}");
    let registration = Uuid::new_v4().to_string();
    let at = |hour: u32| format!("2026-03-{day:02}T{hour:02}:00:00Z");
    let mut first = statement_by(&agent, COMPLETED, &activity, &at(9));
    first["context"]["registration"] = json!(registration);
    let second = statement_by(&agent, &verb, SHARED_ACTIVITY, &at(10));
    let mut third = statement_by(&agent, ATTEMPTED, SHARED_ACTIVITY, &at(11));
    third["context"]["registration"] = json!(registration);
    let to_void = statement_by(&agent, PASSED, &activity, &at(12));
    let voided = id_of(&to_void);
    let voiding = voiding(&voided);
    app.post_statements(V2, &json!([first, second, third, to_void])).await;
    app.post_statements(V2, &json!([voiding])).await;
    let admin = admin(app);
    let state = format!(
        "/xapi/activities/state?activityId={}&agent={}&stateId=bookmark",
        url_encode(SHARED_ACTIVITY),
        url_encode(&agent.to_string())
    );
    let answer = put_json(app, &admin, &state, &json!({ "bookmark": format!("secret-of-{name}") })).await;
    assert_eq!(answer.status, 204, "{}", answer.describe());
    let profile = format!("/xapi/agents/profile?agent={}&profileId=preferences", url_encode(&agent.to_string()));
    let answer = put_json(app, &admin, &profile, &json!({ "note": format!("secret-of-{name}") })).await;
    assert_eq!(answer.status, 204, "{}", answer.describe());
    Learner {
        name: name.to_owned(),
        auth: learner_bearer(name),
        agent,
        visible: vec![id_of(&first), id_of(&second), id_of(&third)],
        voided,
        voiding: id_of(&voiding),
        verb,
        activity,
        registration,
    }
}

fn ids_in(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["statements"]
        .as_array()
        .map(|statements| statements.iter().filter_map(|s| s["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Follows `more` links from `first`, checking every page; returns the
/// sorted ids and the more links met.
async fn all_pages(
    app: &TestApp,
    auth: &str,
    first: &str,
    forbidden: &[String],
    failures: &mut Vec<String>,
) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut links = Vec::new();
    let mut path = first.to_owned();
    for _ in 0..50 {
        let answer = get(app, auth, &path).await;
        if answer.status != 200 {
            failures.push(format!("GET {path} → {} (expected 200)", answer.describe()));
            break;
        }
        let leaked = answer.leaked(forbidden);
        if !leaked.is_empty() {
            failures.push(format!("GET {path} reveals {leaked:?}: {}", answer.body));
        }
        let body = answer.json();
        ids.extend(ids_in(&body));
        match body["more"].as_str() {
            Some(more) if !more.is_empty() => {
                links.push(more.to_owned());
                path = more.to_owned();
            }
            _ => break,
        }
    }
    ids.sort();
    (ids, links)
}

/// A learner filter as the reader asks it: the learner's own agent (a
/// learner's query is always narrowed to them) and no paging.
fn reader_filter(filter: &str, me: &Learner) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("agent", &me.agent.to_string());
    for (name, value) in form_urlencoded::parse(filter.as_bytes()) {
        if !["agent", "related_agents", "limit"].contains(&name.as_ref()) {
            query.append_pair(&name, &value);
        }
    }
    query.finish()
}

/// The more token of a link.
fn more_token(link: &str) -> String {
    link.split_once("more=").map(|(_, token)| token.to_owned()).expect("a more link")
}

/// The same link with its cursor's `agent` changed, the seal kept.
fn tampered(link: &str, agent_key: &str) -> String {
    let token = more_token(link);
    let (payload, seal) = token.split_once('.').expect("sealed token");
    let mut cursor: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    cursor["agent"] = json!(agent_key);
    format!("/xapi/statements?more={}.{seal}", URL_SAFE_NO_PAD.encode(cursor.to_string()))
}

/// Checks an answer is the JSON error `status`, revealing none of `secrets`.
fn check_refusal(what: &str, answer: &Answer, status: u16, secrets: &[String], failures: &mut Vec<String>) {
    if answer.status != status {
        failures.push(format!("{what} → {} (expected {status})", answer.describe()));
        return;
    }
    if let Some(problem) = answer.json_error_problem() {
        failures.push(format!("{what} → {problem}: {}", answer.body));
    }
    let leaked = answer.leaked(secrets);
    if !leaked.is_empty() {
        failures.push(format!("{what} → the refusal reveals {leaked:?}: {}", answer.body));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_never_sees_another_learners_records() {
    let app = spawn_jwt_app().await;
    let alice = learner_with_records(&app, "alice-7001", 2).await;
    let bob = learner_with_records(&app, "bob-7002", 3).await;
    let (reader_key, reader_secret) = app.add_credential("reader", &[Scope::StatementsRead]);
    let reader = basic(&reader_key, &reader_secret);
    // A statements/read/mine platform with two statements of its own.
    let (mine_key, mine_secret) = app.add_credential("mine", &[Scope::StatementsWrite, Scope::StatementsReadMine]);
    let mine = basic(&mine_key, &mine_secret);
    let platform_agent = json!({ "objectType": "Agent", "mbox": "mailto:platform@example.nhs.uk" });
    let answer = exchange(call(&app, Some(&mine), Method::POST, "/xapi/statements").json(&json!([
        statement_by(&platform_agent, COMPLETED, SHARED_ACTIVITY, "2026-03-04T09:00:00Z"),
        statement_by(&platform_agent, COMPLETED, SHARED_ACTIVITY, "2026-03-04T10:00:00Z"),
    ])))
    .await;
    assert_eq!(answer.status, 200, "{}", answer.describe());

    let mut failures = Vec::new();
    for (me, other) in [(&alice, &bob), (&bob, &alice)] {
        let who = format!("{} about {}", me.name, other.name);
        let mut forbidden = other.identifiers();
        forbidden.extend(other.statement_ids());

        // ----- filters: the learner sees what a reader sees about them -----
        let filters = [
            String::new(),
            "related_agents=true".to_owned(),
            format!("agent={}", me.agent_param()),
            format!("agent={}&related_agents=true", me.agent_param()),
            format!("verb={}", url_encode(&me.verb)),
            format!("verb={}", url_encode(&other.verb)),
            format!("activity={}", url_encode(&other.activity)),
            format!("activity={}&related_activities=true", url_encode(&other.activity)),
            format!("activity={}", url_encode(SHARED_ACTIVITY)),
            format!("activity={}&related_activities=true", url_encode(SHARED_ACTIVITY)),
            format!("registration={}", other.registration),
            format!("registration={}", me.registration),
            format!("verb={}&activity={}", url_encode(&other.verb), url_encode(SHARED_ACTIVITY)),
            "since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z&ascending=true".to_owned(),
            "format=ids".to_owned(),
            "format=canonical".to_owned(),
            "limit=1".to_owned(),
            "limit=2&ascending=true&format=exact".to_owned(),
        ];
        let mut my_links = Vec::new();
        for filter in &filters {
            let path = format!("/xapi/statements?{filter}");
            let (seen, links) = all_pages(&app, &me.auth, &path, &forbidden, &mut failures).await;
            my_links.extend(links);
            let reference = format!("/xapi/statements?{}", reader_filter(filter, me));
            let (about, _) = all_pages(&app, &reader, &reference, &forbidden, &mut failures).await;
            // A learner reads the statements they made, not those of others
            // that mention them (those name other people).
            let mut wanted = Vec::new();
            for id in about {
                let one = get(&app, &reader, &format!("/xapi/statements?statementId={id}")).await;
                if one.json()["actor"]["account"]["name"].as_str() == Some(me.name.as_str()) {
                    wanted.push(id);
                }
            }
            if seen != wanted {
                failures.push(format!("{who}: GET {path} → {seen:?}, but the statements they made are {wanted:?}"));
            }
            let names_other = [&other.verb, &other.activity, &other.registration]
                .iter()
                .any(|t| filter.contains(&url_encode(t)) || filter.contains(t.as_str()));
            if names_other && !seen.is_empty() {
                failures.push(format!("{who}: GET {path} (the other's verb/activity/registration) → {seen:?}"));
            }
        }
        // Positive control: unfiltered, the learner sees all their statements.
        let (own, _) = all_pages(&app, &me.auth, "/xapi/statements", &forbidden, &mut failures).await;
        for id in &me.visible {
            if !own.contains(id) {
                failures.push(format!("{who}: their own statement {id} is missing from GET /xapi/statements"));
            }
        }

        // ----- the other's agent, in every spelling: 403 like a stranger -----
        let reordered = json!({ "account": { "name": other.name, "homePage": HOME_PAGE } });
        let stranger = account("nobody-0000");
        let stranger_refusal =
            get(&app, &me.auth, &format!("/xapi/statements?agent={}", url_encode(&stranger.to_string()))).await;
        check_refusal(&format!("{who}: agent=<stranger>"), &stranger_refusal, 403, &forbidden, &mut failures);
        for query in [
            format!("agent={}", other.agent_param()),
            format!("agent={}", url_encode(&reordered.to_string())),
            format!("agent={}&related_agents=true", other.agent_param()),
            format!("agent={}&verb={}", other.agent_param(), url_encode(&other.verb)),
            format!("agent={}&format=ids&limit=1", other.agent_param()),
        ] {
            let answer = get(&app, &me.auth, &format!("/xapi/statements?{query}")).await;
            check_refusal(&format!("{who}: GET /xapi/statements?{query}"), &answer, 403, &forbidden, &mut failures);
            if answer.status == 403 && answer.body != stranger_refusal.body {
                failures.push(format!(
                    "{who}: ?{query}: the refusal differs from a stranger's: {} vs {}",
                    answer.body, stranger_refusal.body
                ));
            }
        }

        // ----- the other's statements by id: 404, as if they did not exist -----
        for (parameter, id, extra) in [
            ("statementId", &other.visible[0], ""),
            ("statementId", &other.visible[2], "&format=canonical&attachments=true"),
            ("statementId", &other.voided, ""),
            ("statementId", &other.voiding, ""),
            ("voidedStatementId", &other.voided, ""),
            ("voidedStatementId", &other.visible[1], "&format=ids"),
        ] {
            let random = Uuid::new_v4().to_string();
            let baseline = get(&app, &me.auth, &format!("/xapi/statements?{parameter}={random}{extra}")).await;
            let path = format!("/xapi/statements?{parameter}={id}{extra}");
            let answer = get(&app, &me.auth, &path).await;
            let secrets = other.identifiers();
            check_refusal(&format!("{who}: GET {path}"), &answer, 404, &secrets, &mut failures);
            if answer.body.replace(id.as_str(), "ID") != baseline.body.replace(&random, "ID") {
                failures.push(format!(
                    "{who}: GET {path} answers differently from an unknown id: {} vs {}",
                    answer.body, baseline.body
                ));
            }
        }
        // Positive controls: their own by id, and their own voided one.
        let own_one = get(&app, &me.auth, &format!("/xapi/statements?statementId={}", me.visible[0])).await;
        if own_one.status != 200 || own_one.json()["id"] != json!(me.visible[0]) {
            failures.push(format!("{who}: their own statement by id → {}", own_one.describe()));
        }
        let own_voided = get(&app, &me.auth, &format!("/xapi/statements?voidedStatementId={}", me.voided)).await;
        if own_voided.status != 200 || own_voided.json()["id"] != json!(me.voided) {
            failures.push(format!("{who}: their own voided statement → {}", own_voided.describe()));
        }
        // attachments=true answers multipart: still nothing of the other's.
        let multipart = get(&app, &me.auth, "/xapi/statements?attachments=true").await;
        if multipart.status != 200 || !multipart.leaked(&forbidden).is_empty() {
            failures.push(format!("{who}: ?attachments=true → {}", multipart.describe()));
        }

        // ----- more links -----
        let (_, other_links) = all_pages(&app, &other.auth, "/xapi/statements?limit=1", &[], &mut failures).await;
        let (_, reader_about_other) = all_pages(
            &app,
            &reader,
            &format!("/xapi/statements?agent={}&limit=1", other.agent_param()),
            &me.identifiers(),
            &mut failures,
        )
        .await;
        let (_, reader_everything) = all_pages(&app, &reader, "/xapi/statements?limit=1", &[], &mut failures).await;
        let (_, mine_links) = all_pages(&app, &mine, "/xapi/statements?limit=1", &[], &mut failures).await;
        if my_links.is_empty()
            || other_links.is_empty()
            || reader_about_other.is_empty()
            || reader_everything.is_empty()
            || mine_links.is_empty()
        {
            failures.push(format!("{who}: expected more links from every paged query"));
        } else {
            for (whose, link) in [
                ("the other learner's", &other_links[0]),
                ("a statements/read link about the other", &reader_about_other[0]),
                ("an unfiltered statements/read link", &reader_everything[0]),
                ("a statements/read/mine credential's", &mine_links[0]),
            ] {
                let answer = get(&app, &me.auth, link).await;
                check_refusal(&format!("{who}: replaying {whose} more link"), &answer, 403, &forbidden, &mut failures);
                let alternate =
                    alternate_get(&app, "/xapi/statements", &me.auth, &[("more", more_token(link).as_str())]).await;
                check_refusal(
                    &format!("{who}: replaying {whose} more link in the alternate syntax"),
                    &alternate,
                    403,
                    &forbidden,
                    &mut failures,
                );
            }
            // The learner's own link, edited to point at the other: not sealed.
            let edited = tampered(&my_links[0], &learner_key(&other.name));
            let answer = get(&app, &me.auth, &edited).await;
            check_refusal(&format!("{who}: an edited more link"), &answer, 400, &forbidden, &mut failures);
            let answer = get(&app, &other.auth, &edited).await;
            check_refusal(
                &format!("{who}: an edited more link, by the other"),
                &answer,
                400,
                &me.identifiers(),
                &mut failures,
            );
            // A link with extra parameters.
            let widened = format!("{}&agent={}", my_links[0], other.agent_param());
            let answer = get(&app, &me.auth, &widened).await;
            check_refusal(&format!("{who}: a more link with agent="), &answer, 400, &forbidden, &mut failures);
        }

        // ----- the alternate request syntax (1.0.3) -----
        // (what the same learner sees without it, checked above)
        let (everything, _) = all_pages(&app, &me.auth, "/xapi/statements", &forbidden, &mut failures).await;
        let answer = alternate_get(&app, "/xapi/statements", &me.auth, &[]).await;
        if answer.status != 200 || ids_in(&answer.json()) != everything || !answer.leaked(&forbidden).is_empty() {
            failures
                .push(format!("{who}: alternate syntax, no filter → {} (wanted {everything:?})", answer.describe()));
        }
        for (name, value) in
            [("verb", &other.verb), ("activity", &other.activity), ("registration", &other.registration)]
        {
            let answer = alternate_get(&app, "/xapi/statements", &me.auth, &[(name, value.as_str())]).await;
            if answer.status != 200 || !ids_in(&answer.json()).is_empty() || !answer.leaked(&forbidden).is_empty() {
                failures.push(format!("{who}: alternate syntax, {name}=<the other's> → {}", answer.describe()));
            }
        }
        let agent = other.agent.to_string();
        let answer = alternate_get(&app, "/xapi/statements", &me.auth, &[("agent", agent.as_str())]).await;
        check_refusal(&format!("{who}: alternate syntax, agent=<other>"), &answer, 403, &forbidden, &mut failures);
        let answer =
            alternate_get(&app, "/xapi/statements", &me.auth, &[("statementId", other.visible[0].as_str())]).await;
        check_refusal(
            &format!("{who}: alternate syntax, statementId=<other's>"),
            &answer,
            404,
            &other.identifiers(),
            &mut failures,
        );
        let answer =
            alternate_get(&app, "/xapi/statements", &me.auth, &[("voidedStatementId", other.voided.as_str())]).await;
        check_refusal(
            &format!("{who}: alternate syntax, voidedStatementId=<other's>"),
            &answer,
            404,
            &other.identifiers(),
            &mut failures,
        );

        // ----- transcript and competencies -----
        for endpoint in ["transcript", "competencies"] {
            // Positive control: the other's own view has their records.
            if endpoint == "transcript" {
                poll(&app, &other.auth, "/analytics/learners/me/transcript", "the other's transcript", |t| {
                    t["activities"].to_string().contains(&other.activity)
                })
                .await;
            }
            let own = get(&app, &me.auth, &format!("/analytics/learners/me/{endpoint}")).await;
            if own.status != 200
                || own.json()["learner"] != json!(learner_key(&me.name))
                || !own.leaked(&forbidden).is_empty()
            {
                failures.push(format!("{who}: GET /analytics/learners/me/{endpoint} → {}", own.describe()));
            }
            // `me` with another agent still means me (or is refused).
            let path = format!("/analytics/learners/me/{endpoint}?agent={}", other.agent_param());
            let answer = get(&app, &me.auth, &path).await;
            let is_mine = answer.status == 200 && answer.json()["learner"] == json!(learner_key(&me.name));
            if !(is_mine || (400..500).contains(&answer.status)) || !answer.leaked(&other.identifiers()).is_empty() {
                failures.push(format!("{who}: GET {path} → {}", answer.describe()));
            }
            let stranger = get(&app, &me.auth, &format!("/analytics/learners/nobody-0000/{endpoint}")).await;
            check_refusal(&format!("{who}: another stranger's {endpoint}"), &stranger, 403, &[], &mut failures);
            let encoded_name: String = format!("%{:02X}{}", other.name.as_bytes()[0], &other.name[1..]);
            for path in [
                format!("/analytics/learners/{}/{endpoint}", other.name),
                format!("/analytics/learners/{encoded_name}/{endpoint}"),
                format!("/analytics/learners/{}/{endpoint}?agent={}", me.name, other.agent_param()),
                format!("/analytics/learners/agent/{endpoint}?agent={}", other.agent_param()),
                format!("/analytics/learners/agent/{endpoint}?agent={}", url_encode(&reordered.to_string())),
            ] {
                let answer = get(&app, &me.auth, &path).await;
                check_refusal(&format!("{who}: GET {path}"), &answer, 403, &forbidden, &mut failures);
                if answer.status == 403 && answer.body != stranger.body {
                    failures.push(format!("{who}: GET {path}: the refusal differs from a stranger's: {}", answer.body));
                }
            }
        }

        // ----- documents and the Agents/Activities resources -----
        let state =
            format!("/xapi/activities/state?activityId={}&agent={}", url_encode(SHARED_ACTIVITY), other.agent_param());
        for path in [
            format!("{state}&stateId=bookmark"),
            state.clone(),
            format!("/xapi/agents/profile?agent={}&profileId=preferences", other.agent_param()),
            format!("/xapi/agents/profile?agent={}", other.agent_param()),
            format!("/xapi/agents?agent={}", other.agent_param()),
            format!("/xapi/activities?activityId={}", url_encode(&other.activity)),
        ] {
            let answer = get(&app, &me.auth, &path).await;
            check_refusal(&format!("{who}: GET {path}"), &answer, 403, &forbidden, &mut failures);
        }
        let overwrite = put_json(&app, &me.auth, &format!("{state}&stateId=bookmark"), &json!({ "bookmark": 0 })).await;
        check_refusal(&format!("{who}: PUT the other's state"), &overwrite, 403, &forbidden, &mut failures);
        let clear = exchange(call(&app, Some(&me.auth), Method::DELETE, &state)).await;
        check_refusal(&format!("{who}: DELETE the other's state"), &clear, 403, &forbidden, &mut failures);
        let kept = get(&app, &admin(&app), &format!("{state}&stateId=bookmark")).await;
        if kept.status != 200 || kept.json() != json!({ "bookmark": format!("secret-of-{}", other.name) }) {
            failures.push(format!("{who}: the other's state changed: {}", kept.describe()));
        }
    }
    assert!(failures.is_empty(), "{} isolation failures:\n{}", failures.len(), failures.join("\n"));
}

// ===================================================================
// 3. Analyst grant isolation
// ===================================================================

/// QKK ← RJ1 ← RJ122 ← RJ122W; QKK ← RJZ ← RJZ01; QWE ← RYJ.
const ORGANISATIONS: &str = "code,name,parent
QKK,South East London ICB,
RJ1,Guy's and St Thomas' NHS Foundation Trust,QKK
RJ122,St Thomas' Hospital,RJ1
RJ122W,\"Ward 1, St Thomas' Hospital\",RJ122
RJZ,King's College Hospital NHS Foundation Trust,QKK
RJZ01,Denmark Hill Renal Unit,RJZ
QWE,South West London ICB,
RYJ,Imperial College Healthcare NHS Trust,QWE
";

/// The learners, their organisation and staff group.
const ANALYST_LEARNERS: [(&str, &str, &str); 5] = [
    ("400001", "RJ1", "Nursing and Midwifery"),
    ("400005", "RJ122W", "Allied Health Professionals"),
    ("400002", "RJZ", "Medical and Dental"),
    ("400003", "RJZ01", "Nursing and Midwifery"),
    ("400004", "RYJ", "Medical and Dental"),
];

const ANALYST_COURSE: &str = "https://example.nhs.uk/courses/information-governance";

fn active_learners(uptake: &Value) -> u64 {
    uptake["periods"].as_array().map_or(0, |rows| rows.iter().filter_map(|r| r["active_learners"].as_u64()).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_reads_nothing_outside_the_grant() {
    let app = spawn_app().await;
    expect_imported(&app, "organisations", ORGANISATIONS).await;
    let mut learners = String::from("learner,organisation,staff_group\n");
    for (name, organisation, staff_group) in ANALYST_LEARNERS {
        learners.push_str(&format!("{name},{organisation},{staff_group}\n"));
    }
    expect_imported(&app, "learners", &learners).await;
    let star = analyst(&app, "analyst-everywhere", &[Scope::AllRead], &["*"]);
    let rj1 = analyst(&app, "analyst-rj1", &[Scope::AllRead], &["RJ1"]);
    let rjz = analyst(&app, "analyst-rjz", &[Scope::AllRead], &["RJZ"]);
    let statements: Vec<Value> = ANALYST_LEARNERS
        .iter()
        .map(|(name, organisation, _)| {
            let mut statement = statement_by(&account(name), COMPLETED, ANALYST_COURSE, "2026-03-02T09:00:00Z");
            statement["context"]["extensions"][ORGANISATION_EXT] = json!(organisation);
            statement
        })
        .collect();
    app.post_statements(V2, &json!(statements)).await;
    poll(&app, &star, "/analytics/learners/400004/transcript", "the statements", |t| activity_count(t) == 1).await;

    let month = "from=2026-03-01&to=2026-03-31&granularity=month";
    let mut failures = Vec::new();
    // ----- positive controls: the data is there, and the grant works -----
    let everyone = get(&app, &star, &format!("/analytics/uptake?org=QKK&{month}")).await;
    assert_eq!(active_learners(&everyone.json()), 4, "QKK has four active learners: {}", everyone.describe());
    let own = get(&app, &rj1, &format!("/analytics/uptake?org=RJ1&{month}")).await;
    assert_eq!(own.status, 200, "{}", own.describe());
    assert_eq!(active_learners(&own.json()), 2, "RJ1 and below count only their two learners: {}", own.body);
    let own_csv = get(&app, &rj1, &format!("/analytics/uptake?org=RJ1&{month}&format=csv")).await;
    assert_eq!(own_csv.status, 200, "{}", own_csv.describe());
    for (_, organisation, _) in ANALYST_LEARNERS.iter().filter(|(_, o, _)| !["RJ1", "RJ122W"].contains(o)) {
        assert!(!own_csv.body.contains(organisation), "RJ1's CSV names {organisation}: {}", own_csv.body);
    }
    for path in ["/analytics/learners/400001/transcript", "/analytics/learners/400005/competencies"] {
        let answer = get(&app, &rj1, path).await;
        assert_eq!(answer.status, 200, "the RJ1 analyst reads {path}: {}", answer.describe());
    }
    let child_of_other = get(&app, &rjz, &format!("/analytics/uptake?org=RJZ01&{month}")).await;
    assert_eq!(active_learners(&child_of_other.json()), 1, "RJZ01 is below RJZ: {}", child_of_other.describe());

    // ----- organisations outside the grant, through every parameter -----
    let names = [
        "South East London",
        "King's College",
        "Denmark Hill",
        "South West London",
        "Imperial",
        "King&#39;s",
        "400002",
        "400003",
        "400004",
    ];
    let outside = ["QKK", "RJZ", "RJZ01", "QWE", "RYJ", "ZZZ99", "rjz", "RJ1Z", "RJ12", "Q"];
    let variants = [
        String::new(),
        format!("&{month}"),
        "&granularity=day".to_owned(),
        "&granularity=week".to_owned(),
        "&granularity=month".to_owned(),
        "&granularity=fortnight".to_owned(),
        "&format=csv".to_owned(),
        "&format=json".to_owned(),
        "&format=xml".to_owned(),
        "&from=not-a-date".to_owned(),
        "&from=2026-03-31&to=2026-03-01".to_owned(),
        "&from=2016-01-01&to=2026-03-31".to_owned(),
        format!("&activity={}&platform=e-LfH&staff_group=Medical%20and%20Dental", url_encode(ANALYST_COURSE)),
    ];
    let reference = get(&app, &rj1, "/analytics/uptake?org=ZZZ99").await;
    check_refusal("uptake of an unknown organisation", &reference, 403, &[], &mut failures);
    let mut secrets: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    for organisation in outside {
        let mut secrets = secrets.clone();
        secrets.push(organisation.to_owned());
        let mut requests: Vec<(String, Option<&str>)> =
            variants.iter().map(|variant| (format!("/analytics/uptake?org={organisation}{variant}"), None)).collect();
        requests.push((format!("/analytics/uptake?org={organisation}&{month}"), Some("text/csv")));
        requests.push((format!("/analytics/competencies/coverage?org={organisation}"), None));
        for (path, accept) in requests {
            let mut request = call(&app, Some(&rj1), Method::GET, &path);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            let answer = exchange(request).await;
            let what =
                format!("RJ1 analyst: GET {path}{}", accept.map_or(String::new(), |a| format!(" (Accept: {a})")));
            check_refusal(&what, &answer, 403, &secrets, &mut failures);
            if answer.status == 403 && answer.body != reference.body {
                failures.push(format!("{what}: the refusal differs from an unknown organisation's: {}", answer.body));
            }
        }
        // The same through the 1.0.3 alternate request syntax.
        let answer = alternate_get(&app, "/analytics/uptake", &rj1, &[("org", organisation)]).await;
        check_refusal(
            &format!("RJ1 analyst: alternate syntax, org={organisation}"),
            &answer,
            403,
            &secrets,
            &mut failures,
        );
    }
    // The granted organisation named twice with another: refused, not merged.
    for query in ["org=RJ1&org=RJZ", "org=RJZ&org=RJ1"] {
        let answer = get(&app, &rj1, &format!("/analytics/uptake?{query}&{month}")).await;
        check_refusal(&format!("RJ1 analyst: GET /analytics/uptake?{query}"), &answer, 400, &secrets, &mut failures);
    }
    secrets.retain(|s| !s.starts_with("400"));

    // ----- learners outside the grant -----
    let unknown = get(&app, &rj1, "/analytics/learners/499999/transcript").await;
    check_refusal("RJ1 analyst: an unknown learner", &unknown, 403, &["499999".to_owned()], &mut failures);
    for endpoint in ["transcript", "competencies"] {
        let mut paths: Vec<(String, String)> = ["400002", "400003", "400004", "499999"]
            .iter()
            .map(|name| (format!("/analytics/learners/{name}/{endpoint}"), (*name).to_owned()))
            .collect();
        for name in ["400002", "400003"] {
            let agent = url_encode(&account(name).to_string());
            paths.push((format!("/analytics/learners/agent/{endpoint}?agent={agent}"), name.to_owned()));
            // A learner inside the grant in the path, one outside in ?agent=.
            paths.push((format!("/analytics/learners/400001/{endpoint}?agent={agent}"), name.to_owned()));
        }
        for (path, name) in paths {
            let answer = get(&app, &rj1, &path).await;
            let mut secrets = secrets.clone();
            secrets.push(name);
            check_refusal(&format!("RJ1 analyst: GET {path}"), &answer, 403, &secrets, &mut failures);
            if answer.status == 403 && answer.body != unknown.body {
                failures.push(format!(
                    "RJ1 analyst: GET {path}: the refusal differs from an unknown learner's: {}",
                    answer.body
                ));
            }
        }
    }

    // ----- a changed grant takes effect at once -----
    credentials::grant_organisations(app.data_dir.path(), "analyst-rj1", vec!["RJZ01".to_owned()]).expect("grant");
    for (path, want) in [
        (format!("/analytics/uptake?org=RJZ01&{month}"), 200),
        (format!("/analytics/uptake?org=RJ1&{month}"), 403),
        (format!("/analytics/uptake?org=RJZ&{month}"), 403),
        ("/analytics/learners/400003/transcript".to_owned(), 200),
        ("/analytics/learners/400001/transcript".to_owned(), 403),
    ] {
        let answer = get(&app, &rj1, &path).await;
        if answer.status != want {
            failures.push(format!("after re-granting RJZ01: GET {path} → {} (expected {want})", answer.describe()));
        }
    }
    credentials::grant_organisations(app.data_dir.path(), "analyst-rj1", Vec::new()).expect("grant");
    for path in [format!("/analytics/uptake?org=RJZ01&{month}"), "/analytics/learners/400003/transcript".to_owned()] {
        let answer = get(&app, &rj1, &path).await;
        check_refusal(&format!("after removing the grant: GET {path}"), &answer, 403, &secrets, &mut failures);
    }
    assert!(failures.is_empty(), "{} grant failures:\n{}", failures.len(), failures.join("\n"));
}

/// Credentials are re-read when `credentials.json` changes, judged by its
/// modification time and size. Two versions of the file can share both: a
/// grant swapped for one of the same length, written within the timestamp
/// resolution of the file system (one jiffy on ext4, a second on others).
/// Setting the time back reproduces that deterministically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_grant_takes_effect_even_if_the_file_keeps_its_size_and_time() {
    let app = spawn_app().await;
    let analyst_auth = analyst(&app, "analyst", &[Scope::AllRead], &["RJ1"]);
    let answer = get(&app, &analyst_auth, "/analytics/uptake?org=RJ1").await;
    assert_eq!(answer.status, 200, "the grant works: {}", answer.describe());
    let path = app.data_dir.path().join(credentials::CREDENTIALS_FILE);
    let before = std::fs::metadata(&path).expect("credentials file");
    credentials::grant_organisations(app.data_dir.path(), "analyst", vec!["RJZ".to_owned()]).expect("grant");
    let file = std::fs::File::options().write(true).open(&path).expect("open");
    file.set_modified(before.modified().expect("mtime")).expect("set mtime");
    drop(file);
    assert_eq!(std::fs::metadata(&path).expect("credentials file").len(), before.len(), "same size");
    let old = get(&app, &analyst_auth, "/analytics/uptake?org=RJ1").await;
    let new = get(&app, &analyst_auth, "/analytics/uptake?org=RJZ").await;
    assert_eq!(
        (old.status, new.status),
        (403, 200),
        "after the grant moved from RJ1 to RJZ the analyst still reads RJ1 and not RJZ: RJ1 → {}; RJZ → {}",
        old.describe(),
        new.describe()
    );
}

// ===================================================================
// 4. The failed sign-in throttle must not open a hole of its own
// ===================================================================

/// A credential's key is no secret: it is the `authority` account name of
/// every statement the credential stores, which every reader sees, a
/// learner reading their own statements included. Failed sign-ins with the
/// key by someone else must not lock the credential's owner out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_by_someone_else_do_not_lock_a_platform_out() {
    let app = spawn_jwt_app().await;
    let (key, secret) = app.add_credential("platform", &[Scope::StatementsWrite, Scope::StatementsRead]);
    let platform = basic(&key, &secret);
    let name = "alice-7101";
    let stored = exchange(call(&app, Some(&platform), Method::POST, "/xapi/statements").json(&json!([statement_by(
        &account(name),
        COMPLETED,
        SHARED_ACTIVITY,
        "2026-03-02T09:00:00Z"
    )])))
    .await;
    assert_eq!(stored.status, 200, "{}", stored.describe());
    // The learner finds the platform's key in their own statement...
    let own = get(&app, &learner_bearer(name), "/xapi/statements").await;
    let found = own.json()["statements"][0]["authority"]["account"]["name"].as_str().map(str::to_owned);
    assert_eq!(found.as_deref(), Some(key.as_str()), "the authority names the key: {}", own.describe());
    // ...and guesses secrets with it.
    let mut answers = BTreeSet::new();
    for attempt in 0..30 {
        answers.insert(get(&app, &basic(&key, &format!("guess-{attempt}")), "/xapi/statements").await.status);
    }
    let answer = get(&app, &platform, "/xapi/statements?limit=1").await;
    assert_eq!(
        answer.status,
        200,
        "the platform is locked out by someone else's failed sign-ins with its (public) key \
         (the guesses got {answers:?}): {}",
        answer.describe()
    );
}

/// The 1.0.3 alternate request syntax carries `Authorization` as a form
/// field: a client throttled for failed sign-ins must stay throttled there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alternate_request_syntax_does_not_bypass_the_sign_in_throttle() {
    // A server that knows client addresses, as `lrs serve` does.
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let (credential, secret) =
        credentials::add(data_dir.path(), "platform", None, None, vec![Scope::All]).expect("credential");
    let mut options = lrs_server::EmbeddedOptions::new(data_dir.path());
    options.store.cache_bytes = 16 * 1024 * 1024;
    let store = lrs_server::Embedded::open(options).expect("store starts");
    let router = store.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let _ = axum::serve(listener, service).await;
        drop(store);
    });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let app = TestApp { address, client, key: credential.key, secret, data_dir };

    let mut throttled = false;
    for attempt in 0..200 {
        let answer = get(&app, &basic(&app.key, &format!("guess-{attempt}")), "/xapi/statements").await;
        if answer.status == 429 {
            throttled = true;
            break;
        }
        assert_eq!(answer.status, 401, "{}", answer.describe());
    }
    assert!(throttled, "precondition: guessing in the Authorization header is throttled");
    let mut answers = Vec::new();
    for attempt in 0..30 {
        let guess = basic(&app.key, &format!("alternate-guess-{attempt}"));
        answers.push(alternate_get(&app, "/xapi/statements", &guess, &[]).await.status);
    }
    assert!(
        answers.iter().all(|s| *s == 429),
        "a throttled client goes on guessing secrets through the alternate request syntax: {answers:?}"
    );
}
