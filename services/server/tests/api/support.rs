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

/// Starts an app after letting the caller adjust the options.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut EmbeddedOptions)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temporary directory");
    let (credential, secret) =
        credentials::add(data_dir.path(), "test-client", None, None, vec![Scope::All]).expect("credential");
    let mut options = EmbeddedOptions::new(data_dir.path());
    options.cache_bytes = 16 * 1024 * 1024;
    adjust(&mut options);
    let store = Embedded::open(options).expect("store starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let router = store.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
        drop(store);
    });
    let client = Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    TestApp { address, client, key: credential.key, secret, data_dir }
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
