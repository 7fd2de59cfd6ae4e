//! The Kafka mode's services as real processes over a real broker:
//! a projection killed (SIGKILL) at arbitrary points while writes flow, and
//! one rebuilt by `lrs replay`, end in the same state as one that never
//! stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const KEY: &str = "kafka-key";
const SECRET: &str = "kafka-secret-0123456789";

fn lrs() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lrs"));
    command.env_remove("LRS_CHECK_ARGS").env("RUST_LOG", "warn");
    command
}

fn run_ok(args: &[&str]) -> String {
    let output = lrs().args(args).output().unwrap();
    assert!(output.status.success(), "lrs {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A service process; killed (SIGKILL) when dropped.
struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lrs ARGS --listen 127.0.0.1:0` and waits for its "listening on" line.
fn start(args: &[&str]) -> Service {
    let mut child = lrs()
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?} from lrs {args:?}"))
        .trim_end_matches('/')
        .to_owned();
    Service { child, url }
}

fn project(kafka: &[&str], data_dir: &Path) -> Service {
    let mut args = vec!["project"];
    args.extend_from_slice(kafka);
    args.extend(["--data-dir", data_dir.to_str().unwrap(), "--cache-mib", "16"]);
    start(&args)
}

async fn digest(client: &reqwest::Client, projection: &Service) -> Value {
    let response = client.get(format!("{}/internal/digest", projection.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn statement(n: usize, round: usize) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "actor": {"mbox": format!("mailto:learner{}@example.org", n % 7), "name": "Learner"},
        "verb": {"id": if n % 3 == 0 { "http://adlnet.gov/expapi/verbs/passed" } else { "http://adlnet.gov/expapi/verbs/completed" },
                 "display": {"en-GB": "did"}},
        "object": {"id": format!("http://example.org/course/{}", n % 5)},
        "result": {"score": {"scaled": 0.5 + (n % 5) as f64 / 10.0}},
        "context": {"registration": uuid::Uuid::new_v4().to_string(), "extensions": {"http://example.org/round": round}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_anywhere_or_replayed_ends_identical_to_one_that_never_stopped() {
    let broker = lrs_kafkalog::testing::broker();
    let topic = lrs_kafkalog::testing::unique_topic("exactly-once");
    let kafka = ["--kafka", broker.as_str(), "--topic", topic.as_str()];
    let mut create = vec!["topics", "create", "--replication-factor", "1"];
    create.extend_from_slice(&kafka);
    assert!(run_ok(&create).contains("created"));

    let root = tempfile::tempdir().unwrap();
    let [steady_dir, killed_dir, replayed_dir] = ["steady", "killed", "replayed"].map(|d| root.path().join(d));
    for dir in [&steady_dir, &killed_dir, &replayed_dir] {
        run_ok(&[
            "credentials",
            "add",
            "--data-dir",
            dir.to_str().unwrap(),
            "--name",
            "writer",
            "--key",
            KEY,
            "--secret",
            SECRET,
            "--scopes",
            "all",
        ]);
    }
    let steady = project(&kafka, &steady_dir);
    let mut ingest_args = vec!["ingest"];
    ingest_args.extend_from_slice(&kafka);
    ingest_args.extend(["--data-dir", steady_dir.to_str().unwrap(), "--projection", steady.url.as_str()]);
    let ingest = start(&ingest_args);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();

    let mut killed = project(&kafka, &killed_dir);
    let mut voidable = Vec::new();
    for round in 0..6 {
        for request in 0..8 {
            let batch: Vec<Value> = (0..10).map(|n| statement(request * 10 + n, round)).collect();
            voidable.push(batch[0]["id"].as_str().unwrap().to_owned());
            let response = client
                .post(format!("{}/xapi/statements", ingest.url))
                .basic_auth(KEY, Some(SECRET))
                .header("X-Experience-API-Version", "2.0.0")
                .json(&batch)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
        let void = json!({
            "actor": {"mbox": "mailto:admin@example.org"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided", "display": {"en-GB": "voided"}},
            "object": {"objectType": "StatementRef", "id": voidable[round * 3]}
        });
        let response = client
            .post(format!("{}/xapi/statements", ingest.url))
            .basic_auth(KEY, Some(SECRET))
            .header("X-Experience-API-Version", "2.0.0")
            .json(&void)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let state = format!(
            "{}/xapi/activities/state?activityId=http://example.org/course/1&stateId=progress&agent=%7B%22mbox%22%3A%22mailto%3Alearner1%40example.org%22%7D",
            ingest.url
        );
        let response = client
            .post(&state)
            .basic_auth(KEY, Some(SECRET))
            .header("X-Experience-API-Version", "2.0.0")
            .header("Content-Type", "application/json")
            .body(format!("{{\"round{round}\":{round}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        // SIGKILL the second projection wherever it is, and start it again.
        drop(killed);
        killed = project(&kafka, &killed_dir);
    }

    let steady_digest = digest(&client, &steady).await;
    let killed_digest = digest(&client, &killed).await;
    assert_eq!(killed_digest, steady_digest, "a projection killed and restarted six times matches");

    let mut replay = vec!["replay"];
    replay.extend_from_slice(&kafka);
    replay.extend(["--data-dir", replayed_dir.to_str().unwrap(), "--cache-mib", "16"]);
    assert!(run_ok(&replay).contains("replayed the log"));
    let replayed = project(&kafka, &replayed_dir);
    assert_eq!(digest(&client, &replayed).await, steady_digest, "a projection replayed from the start matches");
    assert!(steady_digest["offset"].as_u64().unwrap() > 0);
}
