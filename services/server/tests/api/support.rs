//! `spawn_app` and request helpers shared by the suite.

#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};

use lrs_server::credentials::{self, Scope};
use lrs_server::{Embedded, EmbeddedOptions};

pub const V1: &str = "1.0.3";
pub const V2: &str = "2.0.0";
/// Both versions, for tests that must hold in each.
pub const VERSIONS: [&str; 2] = [V1, V2];

/// A running LRS on 127.0.0.1 with one credential of scope `all`.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub key: String,
    pub secret: String,
    pub data_dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Which deployment the suite runs against: `LRS_TEST_DEPLOYMENT=kafka`
/// runs it against two ingest replicas, one projection and two query
/// replicas over a real Kafka broker; otherwise against `lrs serve`'s
/// embedded store.
pub fn on_kafka() -> bool {
    std::env::var("LRS_TEST_DEPLOYMENT").is_ok_and(|d| d == "kafka")
}

/// Starts an app after letting the caller adjust the options.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut EmbeddedOptions)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let (credential, secret) =
        credentials::add(data_dir.path(), "test-client", None, None, vec![Scope::All]).expect("credential");
    let mut options = EmbeddedOptions::new(data_dir.path());
    options.store.cache_bytes = 16 * 1024 * 1024;
    adjust(&mut options);
    let address = if on_kafka() { spawn_kafka_deployment(options).await.front } else { spawn_embedded(options).await };
    let client = Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { address, client, key: credential.key, secret, data_dir }
}

async fn serve(router: axum::Router, keep: impl Send + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
        drop(keep);
    });
    address
}

async fn spawn_embedded(options: EmbeddedOptions) -> String {
    let store = Embedded::open(options).expect("store starts");
    let router = store.router();
    serve(router, store).await
}

/// The addresses of a Kafka deployment started by [`spawn_kafka_deployment`].
pub struct KafkaDeployment {
    /// A front that spreads writes over the ingest replicas and reads over
    /// the query replicas (what a load balancer does).
    pub front: String,
    pub ingest: Vec<String>,
    pub query: Vec<String>,
    pub projection: String,
    pub topic: String,
}

/// Two ingest replicas, one projection and two query replicas, in this
/// process but talking over loopback HTTP and a real Kafka broker.
pub async fn spawn_kafka_deployment(options: EmbeddedOptions) -> KafkaDeployment {
    use lrs_server::cluster::{Forwarder, IngestService, KafkaOptions, ProjectionOptions, ProjectionService};
    let topic = lrs_kafkalog::testing::unique_topic("api");
    let kafka = KafkaOptions {
        bootstrap: lrs_kafkalog::testing::broker(),
        topic: topic.clone(),
        timeout: Duration::from_secs(10),
        client_id: "lrs-test".to_owned(),
    };
    let mut config = lrs_kafkalog::KafkaConfig::new(kafka.bootstrap.clone(), topic.clone());
    config.timeout = kafka.timeout;
    lrs_kafkalog::create_topic(&config, 1).await.expect("topic");
    let projection_options = ProjectionOptions {
        data_dir: options.data_dir.clone(),
        store: options.store,
        frameworks: options.frameworks.clone(),
        server: options.server.clone(),
    };
    let projection =
        ProjectionService::open(kafka.clone(), projection_options, options.jwt.clone()).await.expect("projection");
    let projection_address = serve(projection.router(), projection).await;
    let mut ingest = Vec::new();
    for _ in 0..2 {
        let service = IngestService::open(
            kafka.clone(),
            options.data_dir.clone(),
            vec![projection_address.clone()],
            options.server.clone(),
            options.jwt.clone(),
        )
        .await
        .expect("ingest");
        ingest.push(serve(service.router(), service.state.clone()).await);
    }
    let max_body = options.server.max_body_bytes;
    let mut query = Vec::new();
    for _ in 0..2 {
        let forwarder = std::sync::Arc::new(Forwarder::new(vec![projection_address.clone()], ingest.clone(), max_body));
        query.push(serve(forwarder.router(), ()).await);
    }
    let front = std::sync::Arc::new(Forwarder::new(query.clone(), ingest.clone(), max_body));
    let front = serve(front.router(), ()).await;
    KafkaDeployment { front, ingest, query, projection: projection_address, topic }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A request with this app's credential and the given xAPI version.
    pub fn request(&self, method: Method, path: &str, version: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(&self.key, Some(&self.secret))
            .header("X-Experience-API-Version", version)
    }

    pub fn get(&self, path: &str, version: &str) -> RequestBuilder {
        self.request(Method::GET, path, version)
    }

    pub fn post(&self, path: &str, version: &str) -> RequestBuilder {
        self.request(Method::POST, path, version)
    }

    pub fn put(&self, path: &str, version: &str) -> RequestBuilder {
        self.request(Method::PUT, path, version)
    }

    pub fn delete(&self, path: &str, version: &str) -> RequestBuilder {
        self.request(Method::DELETE, path, version)
    }

    /// Adds a credential and returns its (key, secret).
    pub fn add_credential(&self, name: &str, scopes: &[Scope]) -> (String, String) {
        let (credential, secret) =
            credentials::add(self.data_dir.path(), name, None, None, scopes.to_vec()).expect("credential");
        (credential.key, secret)
    }

    /// POSTs statements and returns their ids, asserting 200.
    pub async fn post_statements(&self, version: &str, body: &Value) -> Vec<String> {
        let response = self.post("/xapi/statements", version).json(body).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "POST /statements failed: {text}");
        serde_json::from_str(&text).expect("ids")
    }

    /// GETs a statement query and returns the parsed StatementResult.
    pub async fn query(&self, version: &str, query: &str) -> Value {
        let response = self.get(&format!("/xapi/statements{query}"), version).send().await.expect("send");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "GET /statements{query} failed: {text}");
        serde_json::from_str(&text).expect("json")
    }
}

/// A minimal valid statement by an mbox agent.
pub fn statement(actor_email: &str, verb: &str, activity: &str) -> Value {
    json!({
        "actor": { "objectType": "Agent", "name": "Test Learner", "mbox": format!("mailto:{actor_email}") },
        "verb": { "id": verb, "display": { "en-GB": "did", "en-US": "did" } },
        "object": { "objectType": "Activity", "id": activity, "definition": { "name": { "en-GB": "An activity" } } }
    })
}

pub const COMPLETED: &str = "http://adlnet.gov/expapi/verbs/completed";
pub const PASSED: &str = "http://adlnet.gov/expapi/verbs/passed";
pub const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// Asserts a JSON error body with the status and returns it.
pub async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text}"));
    assert!(body["error"]["message"].is_string(), "error body has no message: {text}");
    body
}

/// The HTTP Basic `Authorization` value for a key and secret.
pub fn basic(key: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}")))
}

/// A 1.0.3 alternate-syntax read of `{base}{path}`: `POST ?method=GET`
/// with the credential, the version and `parameters` as form fields.
pub fn alternate_syntax_get(
    client: &Client,
    base: &str,
    path: &str,
    (key, secret): (&str, &str),
    parameters: &[(&str, &str)],
) -> RequestBuilder {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Authorization", &basic(key, secret)).append_pair("X-Experience-API-Version", V1);
    for (name, value) in parameters {
        form.append_pair(name, value);
    }
    client
        .post(format!("{base}{path}?method=GET"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.finish())
}
