//! The Kafka mode's services as real processes over a real broker:
//! a projection killed (SIGKILL) at arbitrary points while writes flow, and
//! one rebuilt by `lrs replay`, end in the same state as one that never
//! stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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
    /// The last lines it wrote to stderr (also passed on to this test's).
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Service {
    /// What it logged last, to show with a failed assertion.
    fn recent_log(&self) -> String {
        let lines = self.log.lock().unwrap();
        lines.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

/// Asserts the response's status; a failure shows its body and what the
/// services said lately.
async fn expect_status(response: reqwest::Response, expected: u16, services: &[(&str, &Service)]) {
    let status = response.status();
    let body = response.text().await.unwrap();
    let logs: String = services
        .iter()
        .map(|(name, service)| format!("--- {name} ({}):\n{}\n", service.url, service.recent_log()))
        .collect();
    assert_eq!(status, expected, "{body}\n{logs}");
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lrs ARGS --listen 127.0.0.1:0` and waits for its "listening on" line.
fn start(args: &[&str]) -> Service {
    start_at(args, "127.0.0.1:0")
}

/// Starts `lrs ARGS --listen ADDRESS` and waits for its "listening on" line.
fn start_at(args: &[&str], address: &str) -> Service {
    let mut child =
        lrs().args(args).args(["--listen", address]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let log = Arc::new(Mutex::new(VecDeque::new()));
    let stderr = child.stderr.take().unwrap();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let mut kept = kept.lock().unwrap();
            if kept.len() == 40 {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?} from lrs {args:?}"))
        .trim_end_matches('/')
        .to_owned();
    Service { child, url, log }
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
        "verb": {"id": if n.is_multiple_of(3) { "http://adlnet.gov/expapi/verbs/passed" } else { "http://adlnet.gov/expapi/verbs/completed" },
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
            expect_status(response, 200, &[("ingest", &ingest), ("steady", &steady)]).await;
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
        expect_status(response, 200, &[("ingest", &ingest), ("steady", &steady)]).await;
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
        expect_status(response, 204, &[("ingest", &ingest), ("steady", &steady)]).await;
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

/// A free loopback port (bound, then released) so a service restarts at the
/// same address.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A broker of this test's own (other tests share the main one), stopped
/// and removed when dropped.
struct OwnBroker {
    port: String,
    controller_port: String,
    bootstrap: String,
}

impl OwnBroker {
    fn script(&self, command: &str) -> String {
        let script = lrs_kafkalog::testing::repository_root().join("deploy/kafka/local-kafka.sh");
        let output = Command::new("bash")
            .arg(script)
            .arg(command)
            .env("LRS_KAFKA_PORT", &self.port)
            .env("LRS_KAFKA_CONTROLLER_PORT", &self.controller_port)
            .output()
            .unwrap();
        assert!(output.status.success(), "local-kafka.sh {command}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().to_owned()
    }

    fn start() -> Self {
        let port_of = |address: String| address.rsplit(':').next().unwrap().to_owned();
        let mut broker =
            Self { port: port_of(free_address()), controller_port: port_of(free_address()), bootstrap: String::new() };
        broker.bootstrap = broker.script("start");
        broker
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.script("stop");
    }
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    acked: Vec<String>,
    unavailable: usize,
    other: Vec<String>,
}

async fn write_until(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    front: String,
    writer: usize,
) -> Tally {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut tally = Tally::default();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        n += 1;
        let mut body = statement(n, writer);
        let id = body["id"].as_str().unwrap().to_owned();
        body.as_object_mut().unwrap().remove("id");
        let sent = client
            .put(format!("{front}/xapi/statements?statementId={id}"))
            .basic_auth(KEY, Some(SECRET))
            .header("X-Experience-API-Version", "2.0.0")
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 204 => {
                tally.acked.push(id);
                acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(response) if response.status() == 503 || response.status() == 502 => tally.unavailable += 1,
            Ok(response) => tally.other.push(format!("{}: {}", response.status(), response.text().await.unwrap())),
            Err(_) => tally.unavailable += 1,
        }
    }
    tally
}

/// Waits until the writers have had 20 more acknowledgements: the
/// deployment works again after the last fault, by itself.
async fn progress(acks: &std::sync::atomic::AtomicUsize, note: &str, services: &[&Service]) {
    let target = acks.load(std::sync::atomic::Ordering::SeqCst) + 20;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while acks.load(std::sync::atomic::Ordering::SeqCst) < target {
        if std::time::Instant::now() >= deadline {
            // Say what each service reports about itself (its checks and
            // projection lags), so a failure in CI can be diagnosed.
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            let mut states = Vec::new();
            for service in services {
                let ready = match client.get(format!("{}/ready", service.url)).send().await {
                    Ok(response) => format!("{} {}", response.status(), response.text().await.unwrap_or_default()),
                    Err(error) => format!("unreachable: {error}"),
                };
                let lag = match client.get(format!("{}/metrics", service.url)).send().await {
                    Ok(response) => response
                        .text()
                        .await
                        .unwrap_or_default()
                        .lines()
                        .filter(|line| line.starts_with("lrs_projection_lag") || line.starts_with("lrs_log_end"))
                        .collect::<Vec<_>>()
                        .join("; "),
                    Err(_) => String::new(),
                };
                states.push(format!("{}: {ready} {lag}", service.url));
            }
            panic!("{note}: the deployment did not recover; the services say:\n{}", states.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_services_and_stopping_the_broker_loses_and_duplicates_no_acknowledged_statement() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let seed: u64 = std::env::var("LRS_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_122);
    let broker = OwnBroker::start();
    let topic = "lrs.log";
    let kafka = ["--kafka", broker.bootstrap.as_str(), "--topic", topic, "--kafka-timeout-ms", "3000"];
    let mut create = vec!["topics", "create", "--replication-factor", "1"];
    create.extend_from_slice(&kafka[..4]);
    run_ok(&create);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("projection");
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "writer",
        "--key",
        KEY,
        "--secret",
        SECRET,
        "--scopes",
        "all",
    ]);
    let [projection_at, ingest_a_at, ingest_b_at, query_at] = [(); 4].map(|_| free_address());
    let projection_url = format!("http://{projection_at}");
    let ingest_urls = format!("http://{ingest_a_at},http://{ingest_b_at}");
    let mut project_args = vec!["project"];
    project_args.extend_from_slice(&kafka);
    project_args.extend(["--data-dir", data.to_str().unwrap(), "--cache-mib", "16"]);
    let mut ingest_args = vec!["ingest"];
    ingest_args.extend_from_slice(&kafka);
    ingest_args.extend(["--data-dir", data.to_str().unwrap(), "--projection", projection_url.as_str()]);
    let query_args = ["query", "--projection", projection_url.as_str(), "--ingest", ingest_urls.as_str()];
    let mut projection = start_at(&project_args, &projection_at);
    let mut ingest_a = start_at(&ingest_args, &ingest_a_at);
    let mut ingest_b = start_at(&ingest_args, &ingest_b_at);
    let mut query = start_at(&query_args, &query_at);
    let front = query.url.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> =
        (0..3).map(|w| tokio::spawn(write_until(stop.clone(), acks.clone(), front.clone(), w))).collect();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    // Every fault twice, in an order the seed shuffles.
    let mut faults: Vec<u64> = (0..10).map(|n| n % 5).collect();
    let mut random = seed.max(1);
    for i in (1..faults.len()).rev() {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        faults.swap(i, (random % (i as u64 + 1)) as usize);
    }
    let mut broker_outages = 0;
    for (round, fault) in faults.into_iter().enumerate() {
        let note = format!("seed {seed} (LRS_FAULT_SEED), round {round}, fault {fault}");
        progress(&acks, &note, &[&projection, &ingest_a, &ingest_b, &query]).await;
        eprintln!("{note}");
        match fault {
            0 => {
                // The broker goes away: ingest answers 503 with Retry-After
                // within a bound, then recovers by itself.
                broker.script("pause");
                let started = std::time::Instant::now();
                let response = client
                    .post(format!("{}/xapi/statements", ingest_a.url))
                    .basic_auth(KEY, Some(SECRET))
                    .header("X-Experience-API-Version", "2.0.0")
                    .json(&statement(0, 99))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 503, "{note}: with the broker away");
                assert!(response.headers().contains_key("retry-after"), "{note}");
                assert!(started.elapsed() < Duration::from_secs(20), "{note}: 503 took {:?}", started.elapsed());
                broker.script("resume");
                broker_outages += 1;
            }
            1 => {
                drop(projection);
                projection = start_at(&project_args, &projection_at);
            }
            2 => {
                drop(ingest_a);
                ingest_a = start_at(&ingest_args, &ingest_a_at);
            }
            3 => {
                drop(ingest_b);
                ingest_b = start_at(&ingest_args, &ingest_b_at);
            }
            _ => {
                drop(query);
                query = start_at(&query_args, &query_at);
            }
        }
    }
    progress(&acks, "after the last fault", &[&projection, &ingest_a, &ingest_b, &query]).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for writer in writers {
        let tally = writer.await.unwrap();
        assert!(tally.other.is_empty(), "unexpected answers: {:?}", tally.other);
        acked.extend(tally.acked);
        unavailable += tally.unavailable;
    }
    assert!(broker_outages >= 1);
    assert!(acked.len() >= 180, "too few writes were acknowledged: {}", acked.len());
    // Every acknowledged statement is there, once.
    let mut stored = Vec::new();
    let mut next = Some(format!("{front}/xapi/statements?limit=500"));
    while let Some(url) = next {
        let page: Value = client
            .get(&url)
            .basic_auth(KEY, Some(SECRET))
            .header("X-Experience-API-Version", "2.0.0")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stored.extend(page["statements"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        next = page["more"].as_str().filter(|m| !m.is_empty()).map(|m| format!("{front}{m}"));
    }
    let distinct: std::collections::HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "a statement is listed twice");
    let missing: Vec<&String> = acked.iter().filter(|id| !distinct.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged statements lost: {missing:?}");
    eprintln!("{} acknowledged, {} stored, {unavailable} unavailable answers", acked.len(), stored.len());
    drop((projection, ingest_a, ingest_b, query));
}
