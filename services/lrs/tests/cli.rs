//! End-to-end tests of the `lrs` binary: the command line, the server it
//! runs, graceful shutdown and crash safety. Every test runs the real binary
//! as a child process and talks to it over HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::{NamedTempFile, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_lrs");
const VERSION_HEADER: &str = "X-Experience-API-Version";
const XAPI_VERSION: &str = "1.0.3";
/// How long a server may take to print its endpoint (debug build, busy CI).
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);
/// How long a server may take to exit after SIGTERM.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// Per-request bound so a hung server fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const ACTIVITY: &str = "http://example.com/lrs-cli-tests/activity";
const VERB: &str = "http://adlnet.gov/expapi/verbs/experienced";

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// A `Command` for the binary with none of the LRS_* variables or RUST_LOG
/// leaking in from the environment of the test run.
fn lrs() -> Command {
    let mut command = Command::new(BIN);
    for name in [
        "LRS_LISTEN",
        "LRS_DATA_DIR",
        "LRS_MAX_BODY_BYTES",
        "LRS_MAX_PAGE_SIZE",
        "LRS_AUTHORITY_HOME_PAGE",
        "LRS_CACHE_MIB",
        "LRS_COMPRESS_VIEWS",
        "LRS_LOG_FORMAT",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.stdin(Stdio::null());
    command
}

fn run(args: &[&str]) -> Output {
    lrs().args(args).output().expect("run the lrs binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(output.status.success(), "`lrs {}` failed: {}", args.join(" "), describe(&output));
    text(&output.stdout)
}

fn run_failing(args: &[&str]) -> Output {
    let output = run(args);
    assert!(!output.status.success(), "`lrs {}` should have failed: {}", args.join(" "), describe(&output));
    output
}

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().expect("temporary directory paths are UTF-8")
}

/// The value after `label` on the line that starts with it (after trimming).
fn labelled_value(output: &str, label: &str) -> Option<String> {
    output.lines().map(str::trim_start).find_map(|l| l.strip_prefix(label)).map(|v| v.trim().to_owned())
}

/// The rows of `lrs credentials list`: key, name, scopes, status.
fn list_credentials(data_dir: &Path) -> Vec<Vec<String>> {
    let out = run_ok(&["credentials", "list", "--data-dir", dir_arg(data_dir)]);
    out.lines().filter(|l| !l.trim().is_empty()).map(|l| l.split('\t').map(str::to_owned).collect()).collect()
}

fn credentials_file(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("credentials.json")).expect("read credentials.json")
}

// ---------------------------------------------------------------------------
// A running server
// ---------------------------------------------------------------------------

/// A running `lrs serve`; killed and reaped when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    origin: String,
    /// `http://127.0.0.1:PORT/xapi/` as printed.
    endpoint: String,
    /// Everything printed to stdout up to and including the endpoint line.
    stdout_head: String,
    /// The credential printed on a fresh data directory, if any.
    created: Option<(String, String)>,
    stderr: NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a server did not come up.
#[derive(Debug)]
struct StartFailure {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Server {
    fn serve(data_dir: &Path) -> Server {
        let mut command = lrs();
        command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir_arg(data_dir)]);
        Server::start(command).unwrap_or_else(|failure| panic!("lrs serve did not start: {failure:?}"))
    }

    /// Spawns `command` (an `lrs serve …`) and reads its stdout until the
    /// endpoint line, the end of the output, or the deadline.
    fn start(mut command: Command) -> Result<Server, StartFailure> {
        let stderr = NamedTempFile::new().expect("temporary file for stderr");
        command.stdout(Stdio::piped()).stderr(Stdio::from(stderr.reopen().expect("reopen stderr file")));
        let mut child = command.spawn().expect("spawn lrs serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        // Drains stdout for the child's whole life so it never blocks on a
        // full pipe; ends at EOF (when the child exits).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let mut head = String::new();
        let endpoint = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(remaining) {
                Ok(line) => {
                    head.push_str(&line);
                    head.push('\n');
                    if let Some(endpoint) = line.strip_prefix("xAPI endpoint: ") {
                        break endpoint.trim().to_owned();
                    }
                }
                Err(error) => {
                    // EOF (the child exited) or the deadline passed.
                    if matches!(error, mpsc::RecvTimeoutError::Timeout) {
                        let _ = child.kill();
                    }
                    let status = child.wait().ok();
                    return Err(StartFailure {
                        status,
                        stdout: head,
                        stderr: std::fs::read_to_string(stderr.path()).unwrap_or_default(),
                    });
                }
            }
        };
        let origin = endpoint
            .strip_suffix("/xapi/")
            .unwrap_or_else(|| panic!("the endpoint {endpoint:?} does not end in /xapi/"))
            .to_owned();
        let created = match (labelled_value(&head, "key:"), labelled_value(&head, "secret:")) {
            (Some(key), Some(secret)) => Some((key, secret)),
            _ => None,
        };
        Ok(Server { child, origin, endpoint, stdout_head: head, created, stderr })
    }

    /// The last lines the server wrote to stderr (its log), for messages.
    fn stderr_text(&self) -> String {
        let all = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends SIGTERM to this child (by its own pid).
    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {} failed: {status:?}", self.pid());
    }

    /// Polls for the child's exit until the deadline.
    fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    fn client(&self, key: &str, secret: &str) -> Lrs {
        Lrs::new(&self.origin, key, secret)
    }

    /// A client with the credential this server created on first start.
    fn admin(&self) -> Lrs {
        let (key, secret) = self.created.as_ref().expect("this server printed a first credential");
        self.client(key, secret)
    }
}

// ---------------------------------------------------------------------------
// An xAPI client
// ---------------------------------------------------------------------------

#[derive(Clone)]
struct Lrs {
    http: reqwest::Client,
    origin: String,
    key: String,
    secret: String,
}

fn statement(id: &str) -> Value {
    json!({
        "id": id,
        "actor": { "objectType": "Agent", "mbox": "mailto:lrs-cli-tests@example.com" },
        "verb": { "id": VERB, "display": { "en-US": "experienced" } },
        "object": { "objectType": "Activity", "id": ACTIVITY },
    })
}

fn state_agent() -> String {
    json!({ "objectType": "Agent", "mbox": "mailto:lrs-cli-tests@example.com" }).to_string()
}

impl Lrs {
    fn new(origin: &str, key: &str, secret: &str) -> Lrs {
        let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().expect("HTTP client");
        Lrs { http, origin: origin.to_owned(), key: key.to_owned(), secret: secret.to_owned() }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.origin, path))
            .basic_auth(&self.key, Some(&self.secret))
            .header(VERSION_HEADER, XAPI_VERSION)
    }

    async fn post_statements(&self, body: &Value) -> reqwest::Result<reqwest::Response> {
        self.request(reqwest::Method::POST, "/xapi/statements").json(body).send().await
    }

    /// POSTs and insists on 200 with exactly these ids back.
    async fn post_ok(&self, body: &Value, ids: &[&str]) {
        let response = self.post_statements(body).await.expect("POST /xapi/statements");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, reqwest::StatusCode::OK, "POST /xapi/statements: {text}");
        let returned: Vec<String> = serde_json::from_str(&text).expect("POST answers a JSON array of ids");
        assert_eq!(returned, ids, "POST returns the ids of the statements stored");
    }

    /// GET ?statementId: Some(statement) on 200, None on 404.
    async fn get_statement(&self, id: &str) -> Option<Value> {
        let response = self
            .request(reqwest::Method::GET, "/xapi/statements")
            .query(&[("statementId", id)])
            .send()
            .await
            .expect("GET /xapi/statements?statementId");
        match response.status() {
            reqwest::StatusCode::OK => Some(response.json().await.expect("a statement as JSON")),
            reqwest::StatusCode::NOT_FOUND => None,
            other => panic!("GET ?statementId={id}: unexpected {other}: {}", response.text().await.unwrap_or_default()),
        }
    }

    /// Every statement id the store lists, in order, following `more` links.
    async fn list_all_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut path = "/xapi/statements?limit=500".to_owned();
        let mut pages = 0usize;
        loop {
            pages += 1;
            assert!(pages < 100_000, "more links never end");
            let response = self.request(reqwest::Method::GET, &path).send().await.expect("GET /xapi/statements");
            let status = response.status();
            let body: Value = response.json().await.expect("a StatementResult");
            assert_eq!(status, reqwest::StatusCode::OK, "GET {path}: {body}");
            let statements = body["statements"].as_array().expect("statements is an array");
            assert!(statements.len() <= 500, "a page holds at most limit statements");
            for statement in statements {
                ids.push(statement["id"].as_str().expect("each statement has an id").to_owned());
            }
            match body["more"].as_str() {
                Some(more) if !more.is_empty() => {
                    assert!(!statements.is_empty(), "a more link after an empty page: {more}");
                    path = more.to_owned();
                }
                _ => break,
            }
        }
        ids
    }

    fn state_request(&self, method: reqwest::Method, state_id: &str) -> reqwest::RequestBuilder {
        self.request(method, "/xapi/activities/state").query(&[
            ("activityId", ACTIVITY),
            ("agent", state_agent().as_str()),
            ("stateId", state_id),
        ])
    }

    async fn put_state(&self, state_id: &str, content: &Value) -> reqwest::Result<reqwest::Response> {
        self.state_request(reqwest::Method::PUT, state_id)
            .header("Content-Type", "application/json")
            .body(content.to_string())
            .send()
            .await
    }

    /// The raw bytes of a state document, None on 404.
    async fn get_state(&self, state_id: &str) -> Option<Vec<u8>> {
        let response = self.state_request(reqwest::Method::GET, state_id).send().await.expect("GET state");
        match response.status() {
            reqwest::StatusCode::OK => Some(response.bytes().await.expect("state body").to_vec()),
            reqwest::StatusCode::NOT_FOUND => None,
            other => panic!("GET state {state_id}: unexpected {other}: {}", response.text().await.unwrap_or_default()),
        }
    }
}

/// A version-4-shaped UUID that is unique by construction.
fn test_uuid(tag: u32, a: u32, b: u32, counter: u64) -> String {
    format!("{tag:08x}-{:04x}-4{:03x}-8{:03x}-{counter:012x}", a & 0xffff, b & 0xfff, (a >> 16) & 0xfff)
}

// ---------------------------------------------------------------------------
// 1. Help
// ---------------------------------------------------------------------------

fn assert_help_mentions(args: &[&str], expected: &[&str]) {
    let mut full = args.to_vec();
    full.push("--help");
    let out = run_ok(&full);
    for word in expected {
        assert!(out.contains(word), "`lrs {}` does not mention {word}:\n{out}", full.join(" "));
    }
}

#[test]
fn top_level_help_lists_the_serve_and_credentials_commands() {
    assert_help_mentions(&[], &["serve", "credentials", "--help", "--version"]);
}

#[test]
fn serve_help_mentions_every_serve_flag() {
    assert_help_mentions(
        &["serve"],
        &[
            "--listen",
            "--data-dir",
            "--max-body-bytes",
            "--max-page-size",
            "--authority-home-page",
            "--cache-mib",
            "--compress-views",
            "--log-format",
            "LRS_LISTEN",
            "LRS_DATA_DIR",
        ],
    );
}

/// The page cache's default is what keeps the server under 1 GB while it is
/// written (`loadtests/RESULTS.md`), and the README's table says it.
#[test]
fn the_projections_page_cache_defaults_to_32_mib_each_as_the_readme_says() {
    let help = run_ok(&["serve", "--help"]);
    let cache = help.split("--cache-mib").nth(1).expect("serve --help describes --cache-mib");
    let cache = &cache[..cache.find("--compress-views").unwrap_or(cache.len())];
    assert!(cache.contains("[default: 32]"), "--cache-mib's default is not 32:\n{cache}");
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains("| `--cache-mib` | `LRS_CACHE_MIB` | 32 |"),
        "the README's configuration table does not give --cache-mib's default as 32"
    );
}

#[test]
fn credentials_help_lists_add_list_and_revoke() {
    assert_help_mentions(&["credentials"], &["add", "list", "revoke"]);
}

#[test]
fn credentials_add_help_mentions_every_add_flag() {
    assert_help_mentions(&["credentials", "add"], &["--data-dir", "--name", "--key", "--secret", "--scopes"]);
}

#[test]
fn credentials_list_help_mentions_the_data_dir_flag() {
    assert_help_mentions(&["credentials", "list"], &["--data-dir"]);
}

#[test]
fn credentials_revoke_help_mentions_the_data_dir_flag_and_the_key_or_name_argument() {
    assert_help_mentions(&["credentials", "revoke"], &["--data-dir", "KEY_OR_NAME"]);
}

// ---------------------------------------------------------------------------
// 2. Credentials
// ---------------------------------------------------------------------------

#[test]
fn credentials_add_with_explicit_key_and_secret_is_listed_without_the_secret() {
    let dir = TempDir::new().unwrap();
    let out = run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        dir_arg(dir.path()),
        "--name",
        "moodle",
        "--key",
        "moodle-key",
        "--secret",
        "moodle-secret-value",
        "--scopes",
        "statements/write,statements/read",
    ]);
    assert_eq!(labelled_value(&out, "key:").as_deref(), Some("moodle-key"), "add prints the key:\n{out}");
    assert_eq!(
        labelled_value(&out, "secret:").as_deref(),
        Some("moodle-secret-value"),
        "add prints the secret:\n{out}"
    );

    let rows = list_credentials(dir.path());
    assert_eq!(rows, vec![vec!["moodle-key", "moodle", "statements/write,statements/read", "active", ""]]);
    let listing = run_ok(&["credentials", "list", "--data-dir", dir_arg(dir.path())]);
    assert!(!listing.contains("moodle-secret-value"), "list must never show a secret:\n{listing}");
}

/// A random base64url secret begins with '-' one time in 64; the command
/// line must take it as the value, not as an unknown flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_add_grant_and_revoke_take_a_key_that_begins_with_a_hyphen() {
    let dir = TempDir::new().unwrap();
    let (key, secret) = ("-hyphen-key", "-E4q_secret-value");
    let out = run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        dir_arg(dir.path()),
        "--name",
        "hyphen",
        "--key",
        key,
        "--secret",
        secret,
        "--scopes",
        "all",
    ]);
    assert_eq!(labelled_value(&out, "key:").as_deref(), Some(key), "{out}");
    assert_eq!(labelled_value(&out, "secret:").as_deref(), Some(secret), "{out}");
    let server = Server::serve(dir.path());
    let id = test_uuid(0xe0e0, 5, 5, 1);
    server.client(key, secret).post_ok(&statement(&id), &[&id]).await;
    drop(server);
    let d = dir_arg(dir.path());
    run_ok(&["credentials", "grant", "--data-dir", d, key, "--organisations", "RJ1"]);
    run_ok(&["credentials", "revoke", "--data-dir", d, key]);
    let status = list_credentials(dir.path()).into_iter().find(|row| row[0] == key).map(|row| row[3].clone());
    assert_eq!(status.as_deref(), Some("revoked"));
}

#[test]
fn credentials_add_generates_and_prints_a_distinct_key_and_secret_when_omitted() {
    let dir = TempDir::new().unwrap();
    let add =
        || run_ok(&["credentials", "add", "--data-dir", dir_arg(dir.path()), "--name", "generated", "--scopes", "all"]);
    let (first, second) = (add(), add());
    let key1 = labelled_value(&first, "key:").expect("a generated key is printed");
    let secret1 = labelled_value(&first, "secret:").expect("a generated secret is printed");
    let key2 = labelled_value(&second, "key:").expect("a generated key is printed");
    let secret2 = labelled_value(&second, "secret:").expect("a generated secret is printed");
    for value in [&key1, &secret1, &key2, &secret2] {
        assert!(value.len() >= 16, "generated keys and secrets are long: {value:?}");
        assert!(!value.contains(':'), "a generated key or secret must not contain ':' (Basic auth): {value:?}");
    }
    assert_ne!(key1, key2, "generated keys differ");
    assert_ne!(secret1, secret2, "generated secrets differ");

    let rows = list_credentials(dir.path());
    let keys: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(keys, vec![key1.as_str(), key2.as_str()]);
    assert!(rows.iter().all(|r| r[1] == "generated" && r[2] == "all" && r[3] == "active"), "{rows:?}");
}

#[test]
fn credentials_file_never_contains_a_secret_in_clear() {
    let dir = TempDir::new().unwrap();
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        dir_arg(dir.path()),
        "--name",
        "explicit",
        "--key",
        "explicit-key",
        "--secret",
        "explicit-secret-9f8e7d",
        "--scopes",
        "all",
    ]);
    let generated =
        run_ok(&["credentials", "add", "--data-dir", dir_arg(dir.path()), "--name", "gen", "--scopes", "state"]);
    let generated_key = labelled_value(&generated, "key:").unwrap();
    let generated_secret = labelled_value(&generated, "secret:").unwrap();
    run_ok(&["credentials", "revoke", "--data-dir", dir_arg(dir.path()), "gen"]);

    let file = credentials_file(dir.path());
    assert!(file.contains("explicit-key") && file.contains(&generated_key), "the file holds the keys:\n{file}");
    assert!(!file.contains("explicit-secret-9f8e7d"), "explicit secret stored in clear:\n{file}");
    assert!(!file.contains(&generated_secret), "generated secret stored in clear:\n{file}");
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    for name in &leftovers {
        let contents = std::fs::read(dir.path().join(name)).unwrap_or_default();
        let contents = String::from_utf8_lossy(&contents);
        assert!(
            !contents.contains("explicit-secret-9f8e7d") && !contents.contains(&generated_secret),
            "{name} holds a secret in clear"
        );
    }
}

#[test]
fn credentials_revoke_by_key_marks_only_that_credential_revoked() {
    let dir = TempDir::new().unwrap();
    let d = dir_arg(dir.path());
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "one",
        "--key",
        "k1",
        "--secret",
        "s1",
        "--scopes",
        "all",
    ]);
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "two",
        "--key",
        "k2",
        "--secret",
        "s2",
        "--scopes",
        "all",
    ]);
    let out = run_ok(&["credentials", "revoke", "--data-dir", d, "k1"]);
    assert!(out.contains("k1"), "revoke names the key it revoked:\n{out}");
    let status: HashMap<String, String> =
        list_credentials(dir.path()).into_iter().map(|r| (r[0].clone(), r[3].clone())).collect();
    assert_eq!(status.get("k1").map(String::as_str), Some("revoked"));
    assert_eq!(status.get("k2").map(String::as_str), Some("active"));
}

#[test]
fn credentials_revoke_by_name_marks_that_credential_revoked() {
    let dir = TempDir::new().unwrap();
    let d = dir_arg(dir.path());
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "lms",
        "--key",
        "lms-key",
        "--secret",
        "x",
        "--scopes",
        "state,define",
    ]);
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "other",
        "--key",
        "other-key",
        "--secret",
        "y",
        "--scopes",
        "profile",
    ]);
    run_ok(&["credentials", "revoke", "--data-dir", d, "lms"]);
    let rows = list_credentials(dir.path());
    assert_eq!(
        rows,
        vec![
            vec!["lms-key", "lms", "state,define", "revoked", ""],
            vec!["other-key", "other", "profile", "active", ""],
        ]
    );
}

#[test]
fn credentials_revoke_of_an_unknown_key_fails_and_names_it() {
    let dir = TempDir::new().unwrap();
    let d = dir_arg(dir.path());
    run_ok(&["credentials", "add", "--data-dir", d, "--name", "a", "--key", "ka", "--secret", "sa", "--scopes", "all"]);
    let output = run_failing(&["credentials", "revoke", "--data-dir", d, "no-such-credential"]);
    assert!(text(&output.stderr).contains("no-such-credential"), "{}", describe(&output));
    assert_eq!(list_credentials(dir.path())[0][3], "active", "a failed revoke changes nothing");
}

#[test]
fn credentials_add_with_an_unknown_scope_fails_naming_the_scope_and_stores_nothing() {
    let dir = TempDir::new().unwrap();
    let output = run_failing(&[
        "credentials",
        "add",
        "--data-dir",
        dir_arg(dir.path()),
        "--name",
        "bad",
        "--scopes",
        "statements/write,statements/frobnicate",
    ]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("statements/frobnicate"), "the error names the unknown scope: {}", describe(&output));
    assert!(list_credentials(dir.path()).is_empty(), "no credential was created");
}

#[test]
fn credentials_add_with_a_duplicate_key_fails_and_keeps_the_original() {
    let dir = TempDir::new().unwrap();
    let d = dir_arg(dir.path());
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "first",
        "--key",
        "dup",
        "--secret",
        "s1",
        "--scopes",
        "all",
    ]);
    let output = run_failing(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "second",
        "--key",
        "dup",
        "--secret",
        "s2",
        "--scopes",
        "state",
    ]);
    assert!(text(&output.stderr).contains("dup"), "the error names the key: {}", describe(&output));
    assert_eq!(list_credentials(dir.path()), vec![vec!["dup", "first", "all", "active", ""]]);
}

#[test]
fn credentials_list_on_an_empty_data_dir_prints_nothing() {
    let dir = TempDir::new().unwrap();
    let out = run_ok(&["credentials", "list", "--data-dir", dir_arg(dir.path())]);
    assert_eq!(out.trim(), "", "no credentials, no rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_added_and_revoked_while_serving_take_effect_without_restart() {
    let dir = TempDir::new().unwrap();
    let server = Server::serve(dir.path());
    let added = run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        dir_arg(dir.path()),
        "--name",
        "late",
        "--scopes",
        "statements/write",
    ]);
    let key = labelled_value(&added, "key:").unwrap();
    let secret = labelled_value(&added, "secret:").unwrap();
    let client = server.client(&key, &secret);
    let id = test_uuid(0x1a7e, 1, 1, 1);
    client.post_ok(&statement(&id), &[&id]).await;

    let wrong = server.client(&key, "not-the-secret");
    let id2 = test_uuid(0x1a7e, 1, 1, 2);
    let status = wrong.post_statements(&statement(&id2)).await.unwrap().status();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "a wrong secret is refused");

    run_ok(&["credentials", "revoke", "--data-dir", dir_arg(dir.path()), &key]);
    let id3 = test_uuid(0x1a7e, 1, 1, 3);
    let status = client.post_statements(&statement(&id3)).await.unwrap().status();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "a revoked credential is refused without a restart");
}

// ---------------------------------------------------------------------------
// 3. Serve
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_fresh_data_dir_prints_a_first_credential_that_can_post_statements() {
    let dir = TempDir::new().unwrap();
    let server = Server::serve(dir.path());
    let (key, secret) =
        server.created.clone().unwrap_or_else(|| panic!("no credential printed:\n{}", server.stdout_head));
    assert!(
        server.endpoint.starts_with("http://127.0.0.1:") && server.endpoint.ends_with("/xapi/"),
        "{}",
        server.endpoint
    );
    let port: u16 = server.origin.rsplit(':').next().unwrap().parse().expect("a port");
    assert_ne!(port, 0, "the real port is printed, not 0");
    assert!(!credentials_file(dir.path()).contains(&secret), "the printed secret is not stored in clear");
    assert_eq!(
        list_credentials(dir.path()),
        vec![vec![key.clone(), "admin".to_owned(), "all".to_owned(), "active".to_owned(), "*".to_owned()]]
    );

    let client = server.client(&key, &secret);
    let id = test_uuid(0xf1e5, 2, 2, 1);
    client.post_ok(&statement(&id), &[&id]).await;
    let stored = client.get_statement(&id).await.expect("the statement just posted can be read back");
    assert_eq!(stored["id"], json!(id));
}

/// A log that goes to a file (not a terminal) is plain text: no colour
/// escapes in the lines a collector or `grep` reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_plain_text_to_a_file() {
    let dir = TempDir::new().unwrap();
    let server = Server::serve(dir.path());
    let (key, secret) = server.created.clone().unwrap();
    let id = test_uuid(0x1065, 4, 4, 1);
    server.client(&key, &secret).post_ok(&statement(&id), &[&id]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(server.stderr.path()).unwrap_or_default();
        if log.contains("lrs::access") {
            break log;
        }
        assert!(Instant::now() < deadline, "no access line in the log:\n{log}");
        tokio::task::yield_now().await;
    };
    assert!(!log.contains('\u{1b}'), "the log has terminal escapes:\n{log:?}");
    assert!(log.contains(" INFO lrs::access: request method=POST"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_requests_without_valid_credentials() {
    let dir = TempDir::new().unwrap();
    let server = Server::serve(dir.path());
    let id = test_uuid(0x0a17, 3, 3, 1);
    let anonymous = reqwest::Client::new()
        .post(format!("{}/xapi/statements", server.origin))
        .header(VERSION_HEADER, XAPI_VERSION)
        .json(&statement(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let (key, _) = server.created.clone().unwrap();
    let wrong = server.client(&key, "wrong-secret").post_statements(&statement(&id)).await.unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(server.admin().get_statement(&id).await, None, "refused statements are not stored");
}

#[test]
fn serve_on_an_existing_data_dir_does_not_create_another_credential() {
    let dir = TempDir::new().unwrap();
    let first_key = {
        let server = Server::serve(dir.path());
        server.created.clone().expect("first start creates a credential").0
    };
    let server = Server::serve(dir.path());
    assert!(server.created.is_none(), "second start printed a credential:\n{}", server.stdout_head);
    assert!(!server.stdout_head.contains("created"), "second start printed:\n{}", server.stdout_head);
    let rows = list_credentials(dir.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], first_key);
}

#[test]
fn serve_does_not_create_a_credential_when_one_was_added_beforehand() {
    let dir = TempDir::new().unwrap();
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        dir_arg(dir.path()),
        "--name",
        "pre",
        "--key",
        "pre",
        "--secret",
        "s",
        "--scopes",
        "all",
    ]);
    let server = Server::serve(dir.path());
    assert!(server.created.is_none(), "a credential was created although one exists:\n{}", server.stdout_head);
    assert_eq!(list_credentials(dir.path()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_honours_the_lrs_listen_and_lrs_data_dir_environment_variables() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("from-env");
    let mut command = lrs();
    command.arg("serve").env("LRS_LISTEN", "127.0.0.1:0").env("LRS_DATA_DIR", &data_dir);
    let server = Server::start(command).unwrap_or_else(|f| panic!("lrs serve with env did not start: {f:?}"));
    assert!(server.endpoint.starts_with("http://127.0.0.1:"), "{}", server.endpoint);
    assert!(!server.endpoint.starts_with("http://127.0.0.1:8080/"), "LRS_LISTEN was ignored: {}", server.endpoint);
    assert!(data_dir.join("credentials.json").is_file(), "LRS_DATA_DIR was ignored: nothing in {}", data_dir.display());
    assert!(data_dir.join("log").exists(), "the log lives in LRS_DATA_DIR");
    let id = test_uuid(0xe0e0, 4, 4, 1);
    server.admin().post_ok(&statement(&id), &[&id]).await;
}

#[test]
fn serve_with_an_unparsable_listen_address_fails_naming_it() {
    let dir = TempDir::new().unwrap();
    let output = run_failing(&["serve", "--listen", "not-an-address", "--data-dir", dir_arg(dir.path())]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not-an-address") && stderr.contains("--listen"), "{}", describe(&output));
    assert!(!text(&output.stdout).contains("xAPI endpoint"), "{}", describe(&output));
}

#[test]
fn serve_on_an_address_already_in_use_fails_naming_it() {
    let dir = TempDir::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let mut command = lrs();
    command.args(["serve", "--listen", &address, "--data-dir", dir_arg(dir.path())]);
    match Server::start(command) {
        Ok(server) => panic!("lrs serve started on a taken address: {}", server.endpoint),
        Err(failure) => {
            let status = failure.status.expect("the server exited");
            assert!(!status.success(), "exit status {status:?}");
            assert!(failure.stderr.contains(&address), "the error names the address: {failure:?}");
            assert!(!failure.stdout.contains("xAPI endpoint"), "no endpoint is announced: {failure:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Graceful shutdown
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_every_statement_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::serve(dir.path());
    let client = server.admin();
    let (key, secret) = server.created.clone().unwrap();
    let mut ids = Vec::new();
    for n in 0..20u64 {
        let id = test_uuid(0x5165, 5, 5, n);
        client.post_ok(&statement(&id), &[&id]).await;
        ids.push(id);
    }
    let batch: Vec<String> = (100..110u64).map(|n| test_uuid(0x5165, 5, 5, n)).collect();
    let batch_refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    client.post_ok(&Value::Array(batch.iter().map(|id| statement(id)).collect()), &batch_refs).await;
    ids.extend(batch.iter().cloned());
    let response = client.put_state("sigterm", &json!({ "version": 7 })).await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);

    // The client keeps its keep-alive connection open across the signal.
    server.terminate();
    let status = server.wait_exit(SHUTDOWN_DEADLINE);
    let stderr = server.stderr_text();
    let status = status.unwrap_or_else(|| panic!("no exit within {SHUTDOWN_DEADLINE:?} of SIGTERM; stderr:\n{stderr}"));
    assert!(status.success(), "exit after SIGTERM was {status:?}; stderr:\n{stderr}");
    drop(server);

    let server = Server::serve(dir.path());
    assert!(server.created.is_none());
    let client = server.client(&key, &secret);
    for id in &ids {
        let stored = client.get_statement(id).await.unwrap_or_else(|| panic!("{id} lost across a graceful restart"));
        assert_eq!(stored["id"], json!(id));
    }
    let listed = client.list_all_ids().await;
    let listed_set: HashSet<&String> = listed.iter().collect();
    assert_eq!(listed.len(), ids.len(), "each statement listed once: {listed:?}");
    assert!(ids.iter().all(|id| listed_set.contains(id)));
    let state = client.get_state("sigterm").await.expect("the state document survives");
    assert_eq!(serde_json::from_slice::<Value>(&state).unwrap(), json!({ "version": 7 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_an_idle_server_that_has_answered_health_exits_with_success() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::serve(dir.path());
    let health = reqwest::get(format!("{}/health", server.origin)).await.expect("GET /health");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);
    server.terminate();
    let status = server.wait_exit(SHUTDOWN_DEADLINE).unwrap_or_else(|| panic!("no exit within {SHUTDOWN_DEADLINE:?}"));
    assert!(status.success(), "{status:?}; stderr:\n{}", server.stderr_text());
}

/// Once the endpoint is announced the server is up, so a supervisor may stop
/// it at once: SIGTERM then must still be a clean shutdown, not death by the
/// signal's default action. Repeated because the window is short.
#[test]
fn sigterm_right_after_the_endpoint_is_announced_exits_with_success() {
    let dir = TempDir::new().unwrap();
    for attempt in 1..=25 {
        let mut server = Server::serve(dir.path());
        server.terminate();
        let status = server
            .wait_exit(SHUTDOWN_DEADLINE)
            .unwrap_or_else(|| panic!("attempt {attempt}: no exit within {SHUTDOWN_DEADLINE:?} of SIGTERM"));
        assert!(
            status.success(),
            "attempt {attempt}: SIGTERM right after \"xAPI endpoint\" gave {status:?}; stderr:\n{}",
            server.stderr_text()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Crash safety
// ---------------------------------------------------------------------------

/// xorshift64*: tiny, deterministic, good enough to choose operations.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(splitmix(seed) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const BASE_SEED: u64 = 0x1ea2_0b5e_ed00_2024;
const ROUNDS: u32 = 20;
const WRITERS: u32 = 4;

/// What one writer did in one round, as far as the client can know.
#[derive(Default)]
struct WriterLog {
    /// Ids of acknowledged statements (singles and batches).
    acked: Vec<String>,
    /// Ids of single statements sent but not acknowledged.
    unacked_singles: Vec<String>,
    /// Every batch sent, and whether it was acknowledged.
    batches: Vec<(Vec<String>, bool)>,
    /// The state document this writer PUTs, the versions sent, the last acked.
    state_id: String,
    state_sent: Vec<u64>,
    state_acked: Option<u64>,
    /// Answers that mean the test (not the crash) is wrong: 4xx and the like.
    unexpected: Vec<String>,
    /// Number of 503 answers (back-pressure); allowed, not acknowledged.
    busy: usize,
}

enum Sent {
    Acked,
    Refused,
    Lost,
}

async fn classify(result: reqwest::Result<reqwest::Response>, what: &str, log: &mut WriterLog) -> Sent {
    match result {
        Err(_) => Sent::Lost,
        Ok(response) => {
            let status = response.status();
            // Only an answer that arrived whole counts as an acknowledgement.
            let body = response.bytes().await;
            match (status.as_u16(), body) {
                (200 | 204, Ok(_)) => Sent::Acked,
                (_, Err(_)) => Sent::Lost,
                (503, Ok(_)) => {
                    log.busy += 1;
                    Sent::Refused
                }
                (code, Ok(body)) => {
                    log.unexpected.push(format!("{what}: {code} {}", String::from_utf8_lossy(&body)));
                    Sent::Refused
                }
            }
        }
    }
}

/// One writer: sends until told to stop or until the server goes away.
async fn writer(
    client: Lrs,
    seed: u64,
    round: u32,
    index: u32,
    stop: Arc<AtomicBool>,
    acks: Arc<tokio::sync::watch::Sender<usize>>,
) -> WriterLog {
    let mut rng = XorShift::new(seed);
    let tag = (BASE_SEED >> 32) as u32;
    let mut log = WriterLog { state_id: format!("crash-r{round}-w{index}"), ..WriterLog::default() };
    let mut counter = 0u64;
    let mut next_id = || {
        counter += 1;
        test_uuid(tag, round, index, counter)
    };
    let mut version = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let choice = rng.below(10);
        let outcome = if choice < 5 {
            let id = next_id();
            let sent = classify(client.post_statements(&statement(&id)).await, "single POST", &mut log).await;
            match sent {
                Sent::Acked => log.acked.push(id),
                _ => log.unacked_singles.push(id),
            }
            sent
        } else if choice < 8 {
            let ids: Vec<String> = (0..10).map(|_| next_id()).collect();
            let body = Value::Array(ids.iter().map(|id| statement(id)).collect());
            let sent = classify(client.post_statements(&body).await, "batch POST", &mut log).await;
            let acked = matches!(sent, Sent::Acked);
            if acked {
                log.acked.extend(ids.iter().cloned());
            }
            log.batches.push((ids, acked));
            sent
        } else {
            version += 1 + rng.below(3);
            log.state_sent.push(version);
            let sent =
                classify(client.put_state(&log.state_id, &json!({ "version": version })).await, "state PUT", &mut log)
                    .await;
            if matches!(sent, Sent::Acked) {
                log.state_acked = Some(version);
            }
            sent
        };
        match outcome {
            Sent::Acked => acks.send_modify(|n| *n += 1),
            Sent::Refused => {}
            Sent::Lost => break,
        }
    }
    log
}

/// A state document's id, the versions PUT, the last acknowledged version,
/// and the version seen after the first restart (`Some(None)`: absent).
type StateHistory = (String, Vec<u64>, Option<u64>, Option<Option<u64>>);

/// Everything known across rounds.
#[derive(Default)]
struct History {
    acked: Vec<String>,
    unacked_singles: Vec<String>,
    batches: Vec<(Vec<String>, bool)>,
    /// Outcome of an unacknowledged batch once observed after a restart.
    batch_outcome: HashMap<usize, bool>,
    /// State id → (versions sent, last acknowledged, value seen after restart).
    states: Vec<StateHistory>,
    /// Every id listed after some restart: must stay listed.
    seen: HashSet<String>,
    markers: Vec<String>,
}

/// Checks the store after a crash; returns the problems found.
async fn check_after_restart(client: &Lrs, history: &mut History) -> Vec<String> {
    let mut problems = Vec::new();

    // Acknowledged statements are each readable by id.
    let mut missing = Vec::new();
    for chunk in history.acked.chunks(16) {
        let lookups = chunk.iter().map(|id| async move { (id, client.get_statement(id).await) });
        for (id, found) in futures_join_all(lookups).await {
            match found {
                None => missing.push(id.clone()),
                Some(statement) if statement["id"] != json!(id) => {
                    problems.push(format!("GET ?statementId={id} returned {}", statement["id"]));
                }
                Some(_) => {}
            }
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {} acknowledged statements missing after restart, e.g. {:?}",
            missing.len(),
            history.acked.len(),
            &missing[..missing.len().min(5)]
        ));
    }

    // The full listing has each id at most once.
    let listed = client.list_all_ids().await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &listed {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    if !duplicated.is_empty() {
        problems.push(format!(
            "{} ids listed more than once, e.g. {:?}",
            duplicated.len(),
            &duplicated[..duplicated.len().min(5)]
        ));
    }
    let listed_set: HashSet<&str> = counts.keys().copied().collect();
    let unlisted = history.acked.iter().filter(|id| !listed_set.contains(id.as_str())).count();
    if unlisted > 0 {
        problems.push(format!("{unlisted} acknowledged statements absent from the listing"));
    }
    let known: HashSet<&str> = history
        .acked
        .iter()
        .chain(&history.unacked_singles)
        .chain(history.batches.iter().flat_map(|(ids, _)| ids))
        .chain(&history.markers)
        .map(String::as_str)
        .collect();
    let strangers: Vec<&&str> = listed_set.iter().filter(|id| !known.contains(**id)).collect();
    if !strangers.is_empty() {
        problems.push(format!(
            "{} listed ids were never sent, e.g. {:?}",
            strangers.len(),
            &strangers[..strangers.len().min(5)]
        ));
    }
    let vanished: Vec<&String> = history.seen.iter().filter(|id| !listed_set.contains(id.as_str())).collect();
    if !vanished.is_empty() {
        problems.push(format!(
            "{} statements seen after an earlier restart vanished, e.g. {:?}",
            vanished.len(),
            &vanished[..vanished.len().min(5)]
        ));
    }
    history.seen.extend(listed_set.iter().map(|id| (*id).to_owned()));

    // Batches are all or nothing, and their outcome does not change later.
    for (index, (ids, acked)) in history.batches.iter().enumerate() {
        let present = ids.iter().filter(|id| listed_set.contains(id.as_str())).count();
        if present != 0 && present != ids.len() {
            problems.push(format!("batch {index} torn: {present} of {} statements stored ({:?})", ids.len(), ids[0]));
            continue;
        }
        if *acked && present == 0 {
            problems.push(format!("acknowledged batch {index} lost ({:?})", ids[0]));
        }
        let stored = present == ids.len();
        match history.batch_outcome.get(&index) {
            Some(before) if *before != stored => {
                problems
                    .push(format!("batch {index} was stored={before} after an earlier restart, now stored={stored}"));
            }
            Some(_) => {}
            None => {
                history.batch_outcome.insert(index, stored);
            }
        }
    }

    // State documents: a value that was sent, whole, no older than the last ack.
    for (state_id, sent, acked, seen) in &mut history.states {
        let document = client.get_state(state_id).await;
        let version = match &document {
            None => {
                if let Some(acked) = acked {
                    problems.push(format!("state {state_id}: acknowledged version {acked} lost (document absent)"));
                }
                None
            }
            Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
                Err(error) => {
                    problems
                        .push(format!("state {state_id}: torn document {:?}: {error}", String::from_utf8_lossy(bytes)));
                    continue;
                }
                Ok(value) => {
                    let version = value.get("version").and_then(Value::as_u64);
                    let whole = value.as_object().is_some_and(|o| o.len() == 1);
                    match version {
                        Some(v) if whole && sent.contains(&v) => {
                            if acked.is_some_and(|a| v < a) {
                                problems.push(format!(
                                    "state {state_id}: version {v} is older than the acknowledged {acked:?}"
                                ));
                            }
                            Some(v)
                        }
                        _ => {
                            problems.push(format!("state {state_id}: {value} was never sent (sent {sent:?})"));
                            continue;
                        }
                    }
                }
            },
        };
        match seen {
            Some(before) if *before != version => {
                problems.push(format!("state {state_id}: was {before:?} after an earlier restart, now {version:?}"));
            }
            Some(_) => {}
            None => *seen = Some(version),
        }
    }
    problems
}

/// `join_all` without a futures dependency: runs the lookups concurrently
/// on the runtime and returns their results in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, _)> = futures.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(index, future)| match future.as_mut().poll(cx) {
            std::task::Poll::Ready(value) => {
                results[*index] = Some(value);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    results.into_iter().map(|r| r.expect("every future finished")).collect()
}

/// Waits until a statement just POSTed is readable: since the projector
/// applies the log in order, everything before it is then visible too.
async fn barrier(client: &Lrs, id: &str, seed_note: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let response = client.post_statements(&statement(id)).await.expect("POST the barrier statement");
        let status = response.status();
        if status == reqwest::StatusCode::OK {
            break;
        }
        assert!(
            status == reqwest::StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline,
            "{seed_note}: barrier POST answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    loop {
        if client.get_statement(id).await.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "{seed_note}: the barrier statement never became readable");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_writes_loses_no_acknowledged_write_and_tears_nothing() {
    let base_seed = std::env::var("LRS_CRASH_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(BASE_SEED);
    let dir = TempDir::new().unwrap();
    let mut server = Server::serve(dir.path());
    let (key, secret) = server.created.clone().expect("a first credential");
    let mut history = History::default();

    for round in 0..ROUNDS {
        let round_seed = splitmix(base_seed ^ u64::from(round).wrapping_mul(0x9E37_79B9));
        let note = format!(
            "base seed {base_seed:#x} (replay: LRS_CRASH_SEED={base_seed:x}), round {round}, round seed {round_seed:#x}"
        );
        let mut rng = XorShift::new(round_seed);
        let target = 60 + rng.below(120) as usize;

        let client = server.client(&key, &secret);
        let stop = Arc::new(AtomicBool::new(false));
        let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(0usize);
        let acks_tx = Arc::new(acks_tx);
        let writers: Vec<_> = (0..WRITERS)
            .map(|index| {
                let seed = splitmix(round_seed.wrapping_add(u64::from(index) + 1));
                tokio::spawn(writer(client.clone(), seed, round, index, stop.clone(), acks_tx.clone()))
            })
            .collect();

        // Kill once enough writes were acknowledged, with writers still busy.
        let reached = tokio::time::timeout(Duration::from_secs(180), acks_rx.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|r| r.is_ok());
        let finished_early = writers.iter().filter(|w| w.is_finished()).count();
        server.kill();
        stop.store(true, Ordering::SeqCst);
        let stderr = server.stderr_text();
        let mut logs = Vec::new();
        for handle in writers {
            let log = tokio::time::timeout(REQUEST_TIMEOUT * 2, handle)
                .await
                .unwrap_or_else(|_| panic!("{note}: a writer did not stop after the kill"))
                .expect("writer task");
            logs.push(log);
        }
        assert!(
            reached,
            "{note}: only {} of {target} writes acknowledged before the deadline; stderr:\n{stderr}",
            *acks_rx.borrow()
        );
        assert_eq!(finished_early, 0, "{note}: writers stopped before the kill; stderr:\n{stderr}");
        let unexpected: Vec<&String> = logs.iter().flat_map(|l| &l.unexpected).collect();
        assert!(unexpected.is_empty(), "{note}: unexpected answers: {unexpected:?}");
        let acked_this_round: usize = logs.iter().map(|l| l.acked.len()).sum();
        let busy: usize = logs.iter().map(|l| l.busy).sum();
        let in_flight =
            logs.iter().map(|l| l.unacked_singles.len() + l.batches.iter().filter(|(_, a)| !a).count()).sum::<usize>()
                + logs.iter().filter(|l| l.state_sent.last().is_some_and(|v| l.state_acked != Some(*v))).count();
        for log in logs {
            history.acked.extend(log.acked);
            history.unacked_singles.extend(log.unacked_singles);
            history.batches.extend(log.batches);
            if !log.state_sent.is_empty() {
                history.states.push((log.state_id, log.state_sent, log.state_acked, None));
            }
        }

        drop(std::mem::replace(&mut server, Server::serve(dir.path())));
        assert!(server.created.is_none(), "{note}: a restart created another credential");
        let client = server.client(&key, &secret);
        let marker = test_uuid(0xba11, round, 0xfff, 0);
        history.markers.push(marker.clone());
        barrier(&client, &marker, &note).await;
        let problems = check_after_restart(&client, &mut history).await;
        assert!(
            problems.is_empty(),
            "{note}: after SIGKILL and restart ({acked_this_round} statements acknowledged this round, {busy} busy answers):\n  {}\nstderr of the restarted server:\n{}",
            problems.join("\n  "),
            server.stderr_text()
        );
        eprintln!(
            "round {round}: {acked_this_round} statements acknowledged, {} in total, {} batches, {in_flight} writes in flight at the kill, {busy} busy answers",
            history.acked.len(),
            history.batches.len()
        );
    }
    // The projections after all those crashes equal a fresh replay of the log.
    server.kill();
    let verified = run(&["verify", "--data-dir", dir_arg(dir.path())]);
    assert!(verified.status.success(), "lrs verify after the crashes: {}", describe(&verified));
    assert!(text(&verified.stdout).contains("match a replay"), "{}", describe(&verified));
}

// ---------------------------------------------------------------------------
// Analysts, directories and the Learning Hub settings
// ---------------------------------------------------------------------------

#[test]
fn directory_and_grant_commands_explain_their_flags() {
    assert_help_mentions(&["learners", "import", "--help"], &["--data-dir", "/admin/learners"]);
    assert_help_mentions(&["organisations", "import", "--help"], &["--data-dir", "/admin/organisations"]);
    assert_help_mentions(&["credentials", "grant", "--help"], &["--data-dir", "--organisations"]);
    assert_help_mentions(
        &["serve", "--help"],
        &["--competencies", "--jwt-issuer", "--jwt-audience", "--jwt-key", "LRS_JWT_KEYS"],
    );
}

#[test]
fn credentials_grant_sets_and_replaces_analytics_organisations() {
    let dir = TempDir::new().unwrap();
    let d = dir_arg(dir.path());
    run_ok(&[
        "credentials",
        "add",
        "--data-dir",
        d,
        "--name",
        "analyst",
        "--key",
        "a1",
        "--secret",
        "s",
        "--scopes",
        "all/read",
        "--organisations",
        "RJ1,QKK",
    ]);
    assert_eq!(list_credentials(dir.path())[0][4], "RJ1,QKK");
    run_ok(&["credentials", "grant", "--data-dir", d, "a1", "--organisations", "L81008"]);
    assert_eq!(list_credentials(dir.path())[0][4], "L81008", "a grant replaces the earlier one");
    let refused =
        run_failing(&["credentials", "grant", "--data-dir", d, "analyst", "--organisations", "not an ods code"]);
    assert!(text(&refused.stderr).contains("ODS"), "{}", describe(&refused));
    assert_eq!(list_credentials(dir.path())[0][4], "L81008", "a refused grant changes nothing");
}

/// Polls GET `path` with the credential until `accept` holds for the JSON.
async fn poll_json(server: &Server, key: &str, secret: &str, path: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let client = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response =
            client.get(format!("{}{path}", server.origin)).basic_auth(key, Some(secret)).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() && accept(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "GET {path} never satisfied the condition; last answer {status}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_imported_while_stopped_place_learners_in_organisations() {
    let dir = TempDir::new().unwrap();
    let d = dir_arg(dir.path());
    let organisations = dir.path().join("organisations.csv");
    std::fs::write(&organisations, "code,name,parent\nQKK,South East London ICB,\nRJ1,Guy's and St Thomas',QKK\n")
        .unwrap();
    // More learners than one directory event holds: 7002, the last, is in
    // the third event.
    let learners = dir.path().join("learners.json");
    let mut rows = vec![json!({"learner": "7001", "organisation": "RJ1", "staffGroup": "Nursing"})];
    let per_event = lrs_server::analytics::DIRECTORY_ROWS_PER_EVENT;
    rows.extend((0..2 * per_event).map(|n| json!({"learner": format!("other-{n}"), "organisation": "QKK"})));
    rows.push(json!({"learner": "7002", "organisation": "RJ1"}));
    std::fs::write(&learners, serde_json::to_vec(&rows).unwrap()).unwrap();
    assert!(
        run_ok(&["organisations", "import", "--data-dir", d, organisations.to_str().unwrap()]).contains("imported 2")
    );
    assert!(
        run_ok(&["learners", "import", "--data-dir", d, learners.to_str().unwrap()])
            .contains(&format!("imported {}", 2 * per_event + 2))
    );

    let mut command = lrs();
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", d, "--competencies"]);
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/examples/competency-frameworks.json"));
    let server = Server::start(command).unwrap_or_else(|failure| panic!("lrs serve did not start: {failure:?}"));
    let (key, secret) = server.created.clone().expect("a first credential");
    let learner_statement = json!({
        "actor": { "account": { "homePage": "https://learninghub.nhs.uk", "name": "7001" } },
        "verb": { "id": "http://adlnet.gov/expapi/verbs/completed" },
        "object": { "id": "https://www.futurelearn.com/courses/genomic-medicine/1" },
        "timestamp": "2026-03-02T09:00:00Z"
    });
    for (n, learner) in ["7001", "7002"].into_iter().enumerate() {
        let id = test_uuid(0xd1c7, 1, 1, n as u64 + 1);
        let mut body = learner_statement.clone();
        body["id"] = json!(id);
        body["actor"]["account"]["name"] = json!(learner);
        server.client(&key, &secret).post_ok(&body, &[&id]).await;
    }

    // No organisation extension: the directory puts both learners in RJ1,
    // whose uptake rolls up to the ICB.
    let uptake = poll_json(
        &server,
        &key,
        &secret,
        "/analytics/uptake?org=QKK&from=2026-03-01&to=2026-03-31&granularity=month",
        |b| b["periods"].as_array().is_some_and(|p| !p.is_empty()) && b["periods"][0]["statements"] == json!(2),
    )
    .await;
    assert_eq!(uptake["periods"][0]["completed"], json!(2), "{uptake}");
    let competencies = poll_json(&server, &key, &secret, "/analytics/learners/7001/competencies", |b| {
        b["competencies"].as_array().is_some_and(|c| c.iter().any(|c| c["status"] == "achieved"))
    })
    .await;
    let achieved: Vec<&Value> =
        competencies["competencies"].as_array().unwrap().iter().filter(|c| c["status"] == "achieved").collect();
    assert_eq!(achieved.len(), 1);
    assert_eq!(achieved[0]["competency"], json!("https://learninghub.nhs.uk/frameworks/genomics/foundations"));
}

#[test]
fn importing_while_the_server_runs_fails_and_points_to_the_admin_api() {
    let dir = TempDir::new().unwrap();
    let _server = Server::serve(dir.path());
    let learners = dir.path().join("learners.csv");
    std::fs::write(&learners, "learner,organisation,staff_group\n1,RJ1,\n").unwrap();
    let refused = run_failing(&["learners", "import", "--data-dir", dir_arg(dir.path()), learners.to_str().unwrap()]);
    assert!(text(&refused.stderr).contains("/admin/learners"), "{}", describe(&refused));
}

#[test]
fn serve_refuses_a_bad_competency_file_or_incomplete_sign_in_settings() {
    let dir = TempDir::new().unwrap();
    let bad = dir.path().join("frameworks.json");
    std::fs::write(&bad, r#"{"frameworks": [{"id": "not an iri", "name": "F", "competencies": []}]}"#).unwrap();
    let mut command = lrs();
    command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir_arg(dir.path()),
        "--competencies",
        bad.to_str().unwrap(),
    ]);
    let failure = Server::start(command).err().expect("a bad framework file stops start-up");
    assert!(failure.stderr.contains("frameworks.json"), "{failure:?}");
    assert!(!failure.status.is_some_and(|s| s.success()));

    let mut command = lrs();
    command.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir_arg(dir.path()),
        "--jwt-issuer",
        "https://idp",
    ]);
    let failure = Server::start(command).err().expect("sign-in without keys or audience stops start-up");
    assert!(failure.stderr.contains("learner sign-in"), "{failure:?}");
}

#[test]
fn verify_says_when_the_projections_differ_from_a_replay_of_the_log() {
    let dir = TempDir::new().unwrap();
    drop(Server::serve(dir.path()));
    let verified = run(&["verify", "--data-dir", dir_arg(dir.path())]);
    assert!(verified.status.success(), "{}", describe(&verified));
    // It says how many statements the replay stored, and how long it and
    // the digests took.
    let figures = replay_figures(&text(&verified.stdout));
    assert_eq!(figures.len(), 5, "events, statements, seconds, rate, digest seconds: {}", describe(&verified));
    assert_eq!(figures[1], 0.0, "a store without statements replays none: {}", describe(&verified));
    // The replay went to a scratch store beside the live one, which its
    // help warns about, and is gone.
    assert!(!dir.path().join("verify-scratch").exists(), "the replay's scratch store is left behind");
    assert_help_mentions(&["verify", "--help"], &["--data-dir", "verify-scratch"]);
    {
        // Tamper with the views behind the store's back.
        let db = sled::open(dir.path().join("views")).unwrap();
        db.open_tree("views").unwrap().insert(b"S-tampered", b"x".as_slice()).unwrap();
        db.flush().unwrap();
    }
    let verified = run(&["verify", "--data-dir", dir_arg(dir.path())]);
    assert_eq!(verified.status.code(), Some(1), "{}", describe(&verified));
    assert!(text(&verified.stdout).contains("DIFFER"), "{}", describe(&verified));
}

/// The figures of `lrs verify`'s line about its replay: the events
/// replayed, the statements they stored, the seconds, statements a second,
/// and the seconds of the digests.
fn replay_figures(stdout: &str) -> Vec<f64> {
    let line = stdout.lines().find(|l| l.starts_with("replayed ")).expect("the replay is reported");
    line.split_whitespace().filter_map(|word| word.trim_matches(['(', ')', ';']).parse().ok()).collect()
}

/// The MiB `lrs verify` says its replay took on disk.
fn scratch_mib(stdout: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with("the replay took ")).expect("the scratch disk is reported");
    line["the replay took ".len()..].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn verify_can_compress_its_scratch_store_which_then_takes_less_disk_and_leaves_the_live_store_as_it_was() {
    let dir = TempDir::new().unwrap();
    let ndjson = dir.path().join("statements.ndjson");
    let lines: Vec<String> = (0..10_000).map(|n| import_statement(n, true).to_string()).collect();
    std::fs::write(&ndjson, lines.join("\n") + "\n").unwrap();
    let data = dir.path().join("data");
    run_ok(&["import", ndjson.to_str().unwrap(), "--data-dir", dir_arg(&data), "--quiet"]);
    let plain = run_ok(&["verify", "--data-dir", dir_arg(&data)]);
    assert!(plain.contains("the projections match a replay of the log"), "{plain}");
    // The replay's rate counts the statements it stored.
    let figures = replay_figures(&plain);
    let (statements, seconds, rate) = (figures[1], figures[2], figures[3]);
    assert_eq!(statements, 10_000.0, "{plain}");
    // The seconds are printed to a tenth and the rate to a unit: the rate
    // lies between the statements over the seconds' bounds.
    assert!(
        rate > 0.0
            && rate >= statements / (seconds + 0.05) - 1.0
            && (seconds < 0.1 || rate <= statements / (seconds - 0.05) + 1.0),
        "{plain}"
    );
    let compressed = run_ok(&["verify", "--data-dir", dir_arg(&data), "--compress-scratch"]);
    assert!(compressed.contains("the projections match a replay of the log"), "{compressed}");
    assert!(compressed.contains(", compressed (removed)"), "{compressed}");
    let (plain_mib, compressed_mib) = (scratch_mib(&plain), scratch_mib(&compressed));
    assert!(
        plain_mib > 0.0 && compressed_mib < plain_mib * 0.8,
        "plain {plain_mib} MiB, compressed {compressed_mib} MiB"
    );
    assert!(!data.join("verify-scratch").exists());
    assert!(
        !sled_conf_compressed(&data.join("views")) && !sled_conf_compressed(&data.join("hub")),
        "the live store changed"
    );
    assert_help_mentions(&["verify", "--help"], &["--compress-scratch"]);
}

#[test]
fn verify_says_the_projections_differ_when_a_statement_record_is_damaged() {
    let dir = TempDir::new().unwrap();
    let ndjson = dir.path().join("statements.ndjson");
    std::fs::write(&ndjson, format!("{}\n{}\n", import_statement(1, false), import_statement(2, false))).unwrap();
    let data = dir.path().join("data");
    run_ok(&["import", ndjson.to_str().unwrap(), "--data-dir", dir_arg(&data), "--quiet"]);
    let verified = run(&["verify", "--data-dir", dir_arg(&data)]);
    assert!(verified.status.success(), "{}", describe(&verified));
    // Flip a bit inside the last record: its checksum no longer matches.
    let path = data.join("views").join("statement-records");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let verified = run(&["verify", "--data-dir", dir_arg(&data)]);
    assert_eq!(verified.status.code(), Some(1), "{}", describe(&verified));
    assert!(text(&verified.stdout).contains("DIFFER"), "{}", describe(&verified));
}

// ---------------------------------------------------------------------------
// lrs import
// ---------------------------------------------------------------------------

fn import_statement(n: u64, with_id: bool) -> Value {
    let mut statement = json!({
        "actor": { "objectType": "Agent", "account": { "homePage": "https://learninghub.nhs.uk", "name": format!("learner-{}", n % 97) } },
        "verb": { "id": "http://adlnet.gov/expapi/verbs/completed", "display": { "en-GB": "completed" } },
        "object": { "objectType": "Activity", "id": format!("https://learninghub.nhs.uk/activities/import/{}", n % 13) },
        "timestamp": "2026-11-01T09:00:00Z",
        "result": { "completion": true, "extensions": { "https://example.org/ext/n": n } },
    });
    if with_id {
        statement["id"] = json!(test_uuid(0x1e, 1, 2, n));
    }
    statement
}

fn checkpoint_offset(data_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data_dir.join("imports")) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter_map(|checkpoint| checkpoint["offset"].as_u64())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_loads_ndjson_and_arrays_names_rejected_lines_and_stores_nothing_twice() {
    let data = TempDir::new().unwrap();
    let files = TempDir::new().unwrap();
    let ndjson = files.path().join("statements.ndjson");
    let mut conflicting = import_statement(1, true);
    conflicting["verb"]["id"] = json!("http://adlnet.gov/expapi/verbs/passed");
    let mut no_verb = import_statement(5, false);
    no_verb.as_object_mut().unwrap().remove("verb");
    let lines = [
        import_statement(1, true).to_string(),
        String::new(),
        "{\"actor\": {".to_owned(),
        import_statement(4, false).to_string(),
        no_verb.to_string(),
        conflicting.to_string(),
        "[1]".to_owned(),
        import_statement(8, false).to_string(),
    ];
    std::fs::write(&ndjson, lines.join("\n") + "\n").unwrap();
    let output = run_ok(&["import", ndjson.to_str().unwrap(), "--data-dir", dir_arg(data.path()), "--quiet"]);
    assert!(output.contains("3 statements stored (or already there), 4 rejected"), "{output}");
    for line in ["  3: ", "  5: ", "  6: ", "  7: "] {
        assert!(output.contains(line), "line {line:?} is named in the summary: {output}");
    }
    assert!(output.contains("5: \"verb\" is a required property"), "the reason names the property: {output}");
    assert!(output.contains("6: a different statement with id"), "a conflict is named: {output}");
    assert!(!output.contains("learner-"), "rejections never show statement content: {output}");

    // The same file again from the start: statements without an id get the
    // same derived id, so nothing is stored twice.
    // One statement per append this time, so the conflict is decided by
    // the store's writer rather than within one batch.
    let again = run_ok(&[
        "import",
        ndjson.to_str().unwrap(),
        "--data-dir",
        dir_arg(data.path()),
        "--restart",
        "--batch-size",
        "1",
        "--quiet",
    ]);
    assert!(again.contains("3 statements stored (or already there), 4 rejected"), "{again}");
    assert!(again.contains("6: a different statement with id"), "a conflict is named: {again}");

    // A batch of several, one of them taking the id of a stored statement
    // with other content: the writer refuses the batch and hands it back
    // whole, and the import stores the others one by one.
    let mixed = files.path().join("mixed.ndjson");
    let mixed_lines = [import_statement(30, false), conflicting.clone(), import_statement(31, false)];
    std::fs::write(&mixed, mixed_lines.map(|line| line.to_string()).join("\n") + "\n").unwrap();
    let output = run_ok(&["import", mixed.to_str().unwrap(), "--data-dir", dir_arg(data.path()), "--quiet"]);
    assert!(output.contains("2 statements stored (or already there), 1 rejected"), "{output}");
    assert!(output.contains("2: a different statement with id"), "a conflict is named: {output}");

    let array = files.path().join("statements.json");
    let elements: Vec<Value> = (20..23).map(|n| import_statement(n, n % 2 == 0)).collect();
    std::fs::write(&array, serde_json::to_string_pretty(&elements).unwrap()).unwrap();
    let output = run_ok(&["import", array.to_str().unwrap(), "--data-dir", dir_arg(data.path()), "--quiet"]);
    assert!(output.contains("3 statements stored (or already there), 0 rejected"), "{output}");

    let server = Server::serve(data.path());
    let ids = server.admin().list_all_ids().await;
    assert_eq!(ids.len(), 8, "three lines, two of the mixed batch and three array elements, each once: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 8);
    let first = server.admin().get_statement(&test_uuid(0x1e, 1, 2, 1)).await.expect("the statement with an id");
    assert_eq!(
        first["verb"]["id"], "http://adlnet.gov/expapi/verbs/completed",
        "the first of two conflicting ones stays"
    );
    assert_eq!(first["authority"]["account"]["name"], "import");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_midway_resumes_and_stores_every_statement_once() {
    let data = TempDir::new().unwrap();
    let files = TempDir::new().unwrap();
    let path = files.path().join("big.ndjson");
    let count = 8_000u64;
    let mut text = String::new();
    for n in 0..count {
        text.push_str(&import_statement(n, n % 2 == 0).to_string());
        text.push('\n');
    }
    std::fs::write(&path, &text).unwrap();
    let args = ["import", path.to_str().unwrap(), "--data-dir", dir_arg(data.path()), "--batch-size", "100", "--quiet"];
    let mut child = lrs().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + STARTUP_DEADLINE;
    while checkpoint_offset(data.path()) == 0 {
        assert!(Instant::now() < deadline, "the import wrote no checkpoint");
        assert!(child.try_wait().unwrap().is_none(), "the import finished before it could be interrupted");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let interrupted_at = checkpoint_offset(data.path());
    assert!(interrupted_at < text.len() as u64, "the import was interrupted before the end");

    let output = run_ok(&args);
    assert!(output.contains(&format!("{count} statements stored (or already there), 0 rejected")), "{output}");
    assert!(output.contains("earlier, interrupted run"), "the second run resumed: {output}");

    let server = Server::serve(data.path());
    let ids = server.admin().list_all_ids().await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "no statement is stored twice");
    assert_eq!(ids.len() as u64, count, "every statement is stored once");
    for n in (0..count).step_by(2) {
        assert!(distinct.contains(&test_uuid(0x1e, 1, 2, n)), "statement {n} is stored");
    }
}

fn sled_conf_compressed(store: &Path) -> bool {
    std::fs::read(store.join("conf")).unwrap().split(|b| *b == b'\n').any(|line| line == b"use_compression: true")
}

/// `lrs import` into a new store writes the log as segment files, and the
/// projections' stores compressed only when asked (flag or environment).
#[test]
fn a_new_store_has_a_segment_log_and_compressed_projections_only_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("statements.ndjson");
    let line = serde_json::to_string(&statement("7c2b0e5e-5a61-4ac5-9a8d-1f0d7b0e2a11")).unwrap();
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let f = file.to_str().unwrap();
    for (name, flag, env, compressed) in
        [("plain", false, None, false), ("flag", true, None, true), ("env", false, Some("true"), true)]
    {
        let dir = root.path().join(name);
        let mut command = lrs();
        command.args(["import", f, "--data-dir", dir.to_str().unwrap(), "--quiet"]);
        if flag {
            command.arg("--compress-views");
        }
        if let Some(value) = env {
            command.env("LRS_COMPRESS_VIEWS", value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{name}: {}", describe(&output));
        assert!(dir.join("log").join(format!("{:020}.seg", 0)).is_file(), "{name}: the log is segment files");
        assert!(!dir.join("log").join("db").exists(), "{name}: no sled log");
        assert_eq!(sled_conf_compressed(&dir.join("views")), compressed, "{name}: views");
        assert_eq!(sled_conf_compressed(&dir.join("hub")), compressed, "{name}: hub");
    }
}
