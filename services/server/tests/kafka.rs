//! What only the Kafka deployment can get wrong: two ingest replicas racing
//! on one statement id, reads on a query replica right after a write on an
//! ingest replica, and a broker that goes away. The whole xAPI suite also
//! runs against this deployment (`LRS_TEST_DEPLOYMENT=kafka`, see
//! `tests/run.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use lrs_server::EmbeddedOptions;
use lrs_server::credentials::{self, Scope};

#[path = "api/support.rs"]
#[allow(unused_imports)]
mod support;

use support::{KafkaDeployment, alternate_syntax_get, spawn_kafka_deployment};

struct Cluster {
    deployment: KafkaDeployment,
    client: Client,
    key: String,
    secret: String,
    _data_dir: tempfile::TempDir,
}

async fn cluster() -> Cluster {
    let data_dir = tempfile::tempdir().unwrap();
    let (credential, secret) = credentials::add(data_dir.path(), "kafka-test", None, None, vec![Scope::All]).unwrap();
    let mut options = EmbeddedOptions::new(data_dir.path());
    options.store.cache_bytes = 16 * 1024 * 1024;
    let deployment = spawn_kafka_deployment(options).await;
    let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Cluster { deployment, client, key: credential.key, secret, _data_dir: data_dir }
}

impl Cluster {
    fn request(&self, method: reqwest::Method, base: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{base}{path}"))
            .basic_auth(&self.key, Some(&self.secret))
            .header("X-Experience-API-Version", "2.0.0")
    }

    /// POSTs a new statement to `ingest`, expecting 200; its id.
    async fn post_new_statement(&self, ingest: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let response = self
            .request(reqwest::Method::POST, ingest, "/xapi/statements")
            .json(&statement(&id, "http://example.org/ryw"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        id
    }
}

fn statement(id: &str, activity: &str) -> Value {
    json!({
        "id": id,
        "actor": {"mbox": "mailto:racer@example.org", "name": "Racer"},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": {"en-GB": "completed"}},
        "object": {"id": activity}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_statements_with_one_id_at_two_ingest_replicas_store_exactly_one() {
    let cluster = cluster().await;
    let [first, second] = [&cluster.deployment.ingest[0], &cluster.deployment.ingest[1]];
    for round in 0..10 {
        let id = uuid::Uuid::new_v4().to_string();
        let a = statement(&id, &format!("http://example.org/a/{round}"));
        let b = statement(&id, &format!("http://example.org/b/{round}"));
        let path = format!("/xapi/statements?statementId={id}");
        let (left, right) = tokio::join!(
            cluster.request(reqwest::Method::PUT, first, &path).json(&a).send(),
            cluster.request(reqwest::Method::PUT, second, &path).json(&b).send(),
        );
        let mut statuses = [left.unwrap().status(), right.unwrap().status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::CONFLICT], "round {round}: one wins, one gets 409");
        // Every query replica agrees on the winner, and it is one of the two.
        let mut seen = Vec::new();
        for query in &cluster.deployment.query {
            let response = cluster.request(reqwest::Method::GET, query, &path).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let stored: Value = response.json().await.unwrap();
            seen.push(stored["object"]["id"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen[0], seen[1]);
        assert!(seen[0].contains(&format!("/{round}")));
        // Identical re-sends are no-ops wherever they land.
        let winner = if seen[0].contains("/a/") { &a } else { &b };
        for ingest in [first, second] {
            let response = cluster.request(reqwest::Method::PUT, ingest, &path).json(winner).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT, "an identical re-send is accepted");
            let ids: Vec<String> = cluster
                .request(reqwest::Method::POST, ingest, "/xapi/statements")
                .json(&json!([winner]))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(ids, vec![id.clone()]);
        }
    }
    let all: Value = cluster
        .request(reqwest::Method::GET, &cluster.deployment.query[0], "/xapi/statements?limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["statements"].as_array().unwrap().len(), 10, "ten ids, ten statements, no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_conflicting_in_one_statement_is_refused_whole() {
    let cluster = cluster().await;
    let taken = uuid::Uuid::new_v4().to_string();
    let ingest = &cluster.deployment.ingest;
    let response = cluster
        .request(reqwest::Method::POST, &ingest[0], "/xapi/statements")
        .json(&json!([statement(&taken, "http://example.org/original")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let fresh = uuid::Uuid::new_v4().to_string();
    let batch = json!([statement(&fresh, "http://example.org/new"), statement(&taken, "http://example.org/other")]);
    let response =
        cluster.request(reqwest::Method::POST, &ingest[1], "/xapi/statements").json(&batch).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains(&taken));
    let path = format!("/xapi/statements?statementId={fresh}");
    let response = cluster.request(reqwest::Method::GET, &cluster.deployment.query[1], &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "nothing of a refused batch is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_any_ingest_replica_is_read_at_once_on_any_query_replica() {
    let cluster = cluster().await;
    for round in 0..8 {
        let ingest = &cluster.deployment.ingest[round % 2];
        let query = &cluster.deployment.query[(round / 2) % 2];
        let id = cluster.post_new_statement(ingest).await;
        let response = cluster
            .request(reqwest::Method::GET, query, &format!("/xapi/statements?statementId={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "round {round}: the statement is visible once the POST returned");
        // And in the 1.0.3 alternate syntax, which the query front passes on
        // as a read and the projection catches up for as for a GET.
        let id = cluster.post_new_statement(ingest).await;
        let credential = (cluster.key.as_str(), cluster.secret.as_str());
        let response =
            alternate_syntax_get(&cluster.client, query, "/xapi/statements", credential, &[("statementId", &id)])
                .send()
                .await
                .unwrap();
        assert_eq!(response.status(), 200, "round {round}: visible to a read in the alternate syntax");
        // Documents too: PUT on one replica, GET on the other side.
        let document = format!(
            "/xapi/activities/state?activityId=http://example.org/ryw&stateId=s{round}&agent=%7B%22mbox%22%3A%22mailto%3Aracer%40example.org%22%7D"
        );
        let response = cluster
            .request(reqwest::Method::PUT, ingest, &document)
            .header("Content-Type", "application/json")
            .body(format!("{{\"round\":{round}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let response = cluster.request(reqwest::Method::GET, query, &document).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), format!("{{\"round\":{round}}}"));
    }
    let metrics = cluster.client.get(format!("{}/metrics", cluster.deployment.projection)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with("lrs_http_request_duration_seconds_count")
            && line.contains("route=\"/internal/outcome/{offset}\"")),
        "the projection's metrics time the outcome requests ingest makes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_if_match_writes_at_two_replicas_let_only_one_through() {
    let cluster = cluster().await;
    let document = "/xapi/activities/profile?activityId=http://example.org/race&profileId=p";
    let ingest = &cluster.deployment.ingest;
    let response = cluster
        .request(reqwest::Method::PUT, &ingest[0], document)
        .header("Content-Type", "application/json")
        .header("If-None-Match", "*")
        .body("{\"v\":0}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for round in 1..=5 {
        let current =
            cluster.request(reqwest::Method::GET, &cluster.deployment.query[0], document).send().await.unwrap();
        let etag = current.headers()["etag"].to_str().unwrap().to_owned();
        let (left, right) = tokio::join!(
            cluster
                .request(reqwest::Method::PUT, &ingest[0], document)
                .header("Content-Type", "application/json")
                .header("If-Match", &etag)
                .body(format!("{{\"v\":{round},\"by\":\"left\"}}"))
                .send(),
            cluster
                .request(reqwest::Method::PUT, &ingest[1], document)
                .header("Content-Type", "application/json")
                .header("If-Match", &etag)
                .body(format!("{{\"v\":{round},\"by\":\"right\"}}"))
                .send(),
        );
        let mut statuses = [left.unwrap().status(), right.unwrap().status()];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::NO_CONTENT, StatusCode::PRECONDITION_FAILED],
            "round {round}: no lost update"
        );
    }
}

/// librdkafka's mock cluster stands in for a broker that goes away (a real
/// broker cannot be stopped under the other tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_ingest_answers_503_with_retry_after_within_a_bound_and_never_half_writes() {
    use lrs_server::cluster::{IngestService, KafkaOptions, ProjectionOptions, ProjectionService};
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("lrs.log", 1, 1).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let (credential, secret) = credentials::add(data_dir.path(), "mock", None, None, vec![Scope::All]).unwrap();
    let kafka = KafkaOptions {
        bootstrap: mock.bootstrap_servers(),
        topic: "lrs.log".to_owned(),
        timeout: Duration::from_secs(2),
        client_id: "lrs-test".to_owned(),
    };
    let options = ProjectionOptions {
        data_dir: data_dir.path().to_owned(),
        store: lrs_projection::StoreOptions::cache(16 * 1024 * 1024),
        frameworks: lrs_hub::frameworks::Frameworks::empty(),
        server: Default::default(),
    };
    let projection = ProjectionService::open(kafka.clone(), options, None).await.unwrap();
    let projection_address = serve(projection.router()).await;
    let ingest =
        IngestService::open(kafka, data_dir.path().to_owned(), vec![projection_address], Default::default(), None)
            .await
            .unwrap();
    let ingest_address = serve(ingest.router()).await;
    let client = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let post = |body: Value| {
        client
            .post(format!("{ingest_address}/xapi/statements"))
            .basic_auth(&credential.key, Some(&secret))
            .header("X-Experience-API-Version", "2.0.0")
            .json(&body)
            .send()
    };
    let before = uuid::Uuid::new_v4().to_string();
    assert_eq!(post(json!([statement(&before, "http://example.org/before")])).await.unwrap().status(), 200);

    mock.broker_down(1).unwrap();
    let batch_ids: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let batch: Vec<Value> = batch_ids.iter().map(|id| statement(id, "http://example.org/during")).collect();
    let started = Instant::now();
    let response = post(json!(batch)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"), "503 says when to retry");
    assert!(elapsed < Duration::from_secs(15), "503 within a bound, took {elapsed:?}");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string());

    mock.broker_up(1).unwrap();
    let after = uuid::Uuid::new_v4().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = post(json!([statement(&after, "http://example.org/after")])).await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "ingest did not recover: {status}");
    }
    let mut present = 0;
    for id in &batch_ids {
        let response = client
            .get(format!("{ingest_address}/xapi/statements?statementId={id}"))
            .basic_auth(&credential.key, Some(&secret))
            .header("X-Experience-API-Version", "2.0.0")
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            present += 1;
        }
    }
    assert!(present == 0 || present == batch_ids.len(), "a batch is all or nothing, found {present} of 3");
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}
