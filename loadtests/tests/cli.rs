//! The `lrs-load` binary end to end over 127.0.0.1: `generate`, and `run`
//! against `trivial-server`. Assertions are on counts, never on timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lrs-load");

/// A `trivial-server` child on a free port, killed when dropped.
struct TrivialServer {
    child: Child,
    url: String,
}

impl TrivialServer {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["trivial-server", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The server prints its address once it is listening.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").expect("the address line").to_owned();
        let server = Self { child, url };
        let deadline = Instant::now() + Duration::from_secs(10);
        let address = server.url.trim_start_matches("http://").to_owned();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "trivial server not reachable");
            std::thread::yield_now();
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TrivialServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(server: &TrivialServer, args: &[&str]) -> Value {
    let dir = tempdir();
    let json = dir.join("report.json");
    // A key and secret that begin with '-' (a random secret can) are taken
    // as values, not as flags.
    let output = Command::new(BIN)
        .args(["run", "--url", &server.url, "--key", "-k", "--secret", "-s", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "run failed: {}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("p99"), "{table}");
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lrs-load-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn batch_count_against_the_trivial_server() {
    let server = TrivialServer::start();
    let pid = server.pid().to_string();
    let report = run(
        &server,
        &[
            "--scenario",
            "batch",
            "--batch-size",
            "10",
            "--count",
            "40",
            "--concurrency",
            "4",
            "--server-pid",
            &pid,
            "--load-directories",
            "--disk-of",
            env!("CARGO_MANIFEST_DIR"),
        ],
    );
    assert_eq!(report["tool"], "lrs-load");
    assert_eq!(report["report_version"], 1);
    assert_eq!(report["mode"], "closed-loop");
    assert_eq!(report["requests"], 40);
    assert_eq!(report["requests_ok"], 40);
    assert_eq!(report["requests_failed"], 0);
    assert_eq!(report["statements_sent"], 400);
    assert_eq!(report["statements_accepted"], 400);
    assert_eq!(report["errors"]["total"], 0);
    assert_eq!(report["latency_us"]["count"], 40);
    assert_eq!(report["kinds"]["write/batch"]["requests"], 40);
    assert!(report["latency_us"]["p50"].as_u64().unwrap() <= report["latency_us"]["max"].as_u64().unwrap());
    assert!(report["open_loop"].is_null());
    assert_eq!(report["server"]["pid"].as_u64().unwrap().to_string(), pid);
    assert!(report["server"]["samples"].as_u64().unwrap() >= 1);
    assert!(report["client"]["rss_mib_max"].as_f64().unwrap() > 0.0);
    // What the disk of the sources wrote, when it is a block device.
    let disk = &report["host"]["disk"];
    match lrs_load::procstat::Disk::of(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))) {
        Some(expected) => {
            assert_eq!(disk["device"], expected.name.as_str());
            assert!(disk["written_mib"].as_f64().unwrap() >= 0.0);
        }
        None => assert!(disk.is_null(), "{disk}"),
    }
}

#[test]
fn single_and_mixed_scenarios_against_the_trivial_server() {
    let server = TrivialServer::start();
    let report = run(&server, &["--scenario", "single", "--count", "50", "--xapi-version", "2.0.0"]);
    assert_eq!(report["requests_ok"], 50);
    assert_eq!(report["statements_accepted"], 50);
    assert_eq!(report["xapi_version"], "2.0.0");

    let report = run(&server, &["--scenario", "mixed", "--count", "1000", "--batch-size", "5", "--concurrency", "6"]);
    assert_eq!(report["requests"], 1000);
    assert_eq!(report["requests_ok"], 1000);
    let kinds = report["kinds"].as_object().unwrap();
    for kind in ["write/single", "write/batch", "read/statements?agent", "state/get", "analytics/transcript"] {
        assert!(kinds.contains_key(kind), "no {kind} request in {:?}", kinds.keys().collect::<Vec<_>>());
    }
    let total: u64 = kinds.values().map(|k| k["requests"].as_u64().unwrap()).sum();
    assert_eq!(total, 1000);
}

#[test]
fn reads_scenario_writes_nothing() {
    let server = TrivialServer::start();
    let report = run(&server, &["--scenario", "reads", "--count", "500", "--skip", "2000", "--concurrency", "4"]);
    assert_eq!(report["scenario"], "reads");
    assert_eq!(report["requests_ok"], 500);
    assert_eq!(report["statements_accepted"], 0);
    let kinds = report["kinds"].as_object().unwrap();
    for kind in kinds.keys() {
        assert!(!kind.starts_with("write/") && !kind.starts_with("state/"), "{kind} in a reads run");
    }
    for kind in ["read/statements?agent", "analytics/transcript", "analytics/uptake"] {
        assert!(kinds.contains_key(kind), "no {kind} request in {:?}", kinds.keys().collect::<Vec<_>>());
    }
}

/// The open-loop scheduler sends (or drops, at the in-flight cap) exactly
/// the requests due in the measured phase: rate × duration.
#[test]
fn open_loop_schedules_rate_times_duration() {
    let server = TrivialServer::start();
    let report = run(
        &server,
        &["--scenario", "single", "--rate", "200", "--duration", "1s", "--warmup", "200ms", "--concurrency", "8"],
    );
    assert_eq!(report["mode"], "open-loop");
    let open = &report["open_loop"];
    assert_eq!(open["scheduled"], 200);
    let (sent, dropped) = (open["sent"].as_u64().unwrap(), open["dropped"].as_u64().unwrap());
    assert_eq!(sent + dropped, 200);
    assert_eq!(report["requests"].as_u64().unwrap(), sent);
    assert!(sent > 0);

    // With --count the measured phase is that many scheduled requests.
    let report = run(&server, &["--scenario", "batch", "--batch-size", "3", "--rate", "400", "--count", "60"]);
    assert_eq!(report["open_loop"]["scheduled"], 60);
    assert_eq!(report["open_loop"]["sent"].as_u64().unwrap() + report["open_loop"]["dropped"].as_u64().unwrap(), 60);
}

#[test]
fn generate_writes_ndjson_and_directories() {
    let output =
        Command::new(BIN).args(["generate", "--seed", "3", "--statements", "25", "--out", "-"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25);
    for line in &lines {
        let statement: Value = serde_json::from_str(line).unwrap();
        assert!(statement["id"].is_string());
    }
    let again =
        Command::new(BIN).args(["generate", "--seed", "3", "--statements", "25", "--out", "-"]).output().unwrap();
    assert_eq!(again.stdout, text.as_bytes());

    let dir = tempdir();
    let status = Command::new(BIN)
        .args(["generate", "--learners", "300", "--organisations", "12", "--directories"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let organisations = std::fs::read_to_string(dir.join("organisations.csv")).unwrap();
    let learners = std::fs::read_to_string(dir.join("learners.csv")).unwrap();
    assert!(organisations.starts_with("code,name,parent\nY56,"));
    assert!(learners.starts_with("learner,organisation,staff_group\n"));
    assert_eq!(learners.lines().count(), 301);
    let _ = std::fs::remove_dir_all(&dir);
}
