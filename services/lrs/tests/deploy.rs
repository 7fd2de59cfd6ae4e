#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Checks the operator files under `deploy/` against the binary: every `lrs`
//! command line they contain (the Dockerfile's ENTRYPOINT and CMD, the
//! compose services' `entrypoint`/`command`, the Kubernetes containers'
//! `command`/`args` of the lrs image, and the `lrs …` lines of
//! deploy/README.md) is run as `LRS_CHECK_ARGS=1 lrs …`, which parses the
//! command line with the real argument parser and exits without doing
//! anything. A renamed or removed flag therefore fails this test instead of
//! a deployment.
//!
//! There is no YAML library among the dependencies, so this file carries a
//! small parser for the subset the deploy files use: block maps and lists,
//! flow lists and maps, quoted and plain scalars, block scalars, comments,
//! several documents per file, anchors (ignored) and aliases (kept as such).
//! It fails loudly, with file and line, on anything it does not understand.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lrs");
/// The value a `$(VAR)`/`${VAR}` reference gets when nothing defines VAR.
const PLACEHOLDER: &str = "placeholder";
/// How long one parse-only run may take (debug build, busy machine).
const CHECK_DEADLINE: Duration = Duration::from_secs(60);
/// The subcommands the Kafka deployment must use somewhere.
const DEPLOYMENT_SUBCOMMANDS: [&str; 4] = ["topics", "ingest", "project", "query"];
/// Files that must each contain at least one lrs command line.
const FILES_WITH_COMMANDS: [&str; 6] = [
    "Dockerfile",
    "docker-compose.yml",
    "k8s/kafka-topic-job.yaml",
    "k8s/ingest.yaml",
    "k8s/projection.yaml",
    "k8s/query.yaml",
];
/// Folders under deploy/ that hold no lrs deployment files.
const SKIPPED_FOLDERS: [&str; 2] = ["kafka", "secrets"];

fn deploy_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    dir.canonicalize().unwrap_or_else(|e| panic!("cannot open {}: {e}", dir.display()))
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn every_command_line_in_deploy_parses() {
    let dir = deploy_dir();
    assert_check_mode_is_honoured();
    let extraction = extract_all(&dir);
    assert!(extraction.errors.is_empty(), "cannot read the deploy files:\n{}", extraction.errors.join("\n"));

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for invocation in &extraction.invocations {
        *counts.entry(invocation.file.clone()).or_default() += 1;
    }
    for file in FILES_WITH_COMMANDS {
        assert!(
            counts.get(file).copied().unwrap_or(0) > 0,
            "found no lrs command line in deploy/{file} (found: {counts:?}); the extractor would check nothing there"
        );
    }
    for file in &extraction.yaml_files {
        assert!(
            counts.get(file).copied().unwrap_or(0) > 0 || extraction.config_only.contains(file),
            "deploy/{file} has neither an lrs container nor only ConfigMaps/Secrets: is its image the lrs image?"
        );
    }
    let used: BTreeSet<&str> =
        extraction.invocations.iter().filter_map(|i| i.argv.first()).map(String::as_str).collect();
    for subcommand in DEPLOYMENT_SUBCOMMANDS {
        assert!(used.contains(subcommand), "no deploy file runs `lrs {subcommand}` (used: {used:?})");
    }

    let scratch = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for invocation in &extraction.invocations {
        if let Err(reason) = check_args(&invocation.argv, &invocation.env, scratch.path()) {
            failures.push(format!(
                "deploy/{}:{}: `lrs {}` (env {:?})\n{}",
                invocation.file,
                invocation.line,
                invocation.argv.join(" "),
                invocation.env,
                indent(&reason)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} lrs command lines in deploy/ do not parse:\n\n{}",
        failures.len(),
        extraction.invocations.len(),
        failures.join("\n\n")
    );
    for invocation in &extraction.invocations {
        eprintln!("ok: deploy/{}:{}: lrs {}", invocation.file, invocation.line, invocation.argv.join(" "));
    }
    eprintln!("checked {} lrs command lines in deploy/: {counts:?}", extraction.invocations.len());
}

#[test]
fn check_mode_rejects_an_unknown_flag() {
    let scratch = tempfile::tempdir().unwrap();
    let argv: Vec<String> = ["ingest", "--no-such-flag"].iter().map(|s| s.to_string()).collect();
    let outcome = run_checked(&argv, &BTreeMap::new(), scratch.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!outcome.success, "`LRS_CHECK_ARGS=1 lrs ingest --no-such-flag` succeeded:\n{}", outcome.describe());
    assert!(outcome.stderr.contains("--no-such-flag"), "the error does not name the bad flag:\n{}", outcome.describe());
    let message = check_args(&argv, &BTreeMap::new(), scratch.path()).expect_err("check_args must report it");
    assert!(message.contains("--no-such-flag"), "{message}");
}

#[test]
fn extractor_reads_flow_and_block_lists() {
    let compose = r#"
services:
  one:   # a comment
    image: "lrs:local"
    command: ["ingest", "--kafka", "${KAFKA:-kafka:9092}", 'it''s', "a # b"]
  two:
    image: lrs:local
    entrypoint:
    - lrs
    command:
      - query
      - --listen
      - 0.0.0.0:8082   # trailing comment
    environment:
      - LRS_INGEST=http://ingest:8080
  three:
    build: { context: .., dockerfile: deploy/Dockerfile }
    command: project --data-dir '/var/lib/my lrs' --topic ${TOPIC}
  kafka:
    image: apache/kafka:3.9.1
    command: ["not", "lrs"]
    healthcheck: &health
      test: |
        some block
        text
"#;
    let mut extraction = Extraction::default();
    let docs = parse_yaml(compose).unwrap();
    compose_invocations("compose", &docs[0], &BTreeMap::new(), &mut extraction);
    assert!(extraction.errors.is_empty(), "{:?}", extraction.errors);
    let argvs: Vec<Vec<String>> = extraction.invocations.iter().map(|i| i.argv.clone()).collect();
    assert_eq!(
        argvs,
        vec![
            strings(&["ingest", "--kafka", "kafka:9092", "it's", "a # b"]),
            strings(&["query", "--listen", "0.0.0.0:8082"]),
            strings(&["project", "--data-dir", "/var/lib/my lrs", "--topic", PLACEHOLDER]),
        ]
    );
    assert_eq!(extraction.invocations[0].line, 5);
    assert_eq!(extraction.invocations[1].env.get("LRS_INGEST").map(String::as_str), Some("http://ingest:8080"));

    let k8s = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data:
  LRS_KAFKA: "kafka:9092"
---
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: a
          image: registry.example.com/team/lrs:1.2.3
          args: ["project", "--kafka", "$(LRS_KAFKA)", "--topic", "$(LRS_TOPIC)", "--x", "$$(KEEP)"]
          envFrom:
            - configMapRef:
                name: cfg
          env:
            - name: LRS_TOPIC
              value: lrs.log
        - name: b
          image: busybox
          command: ["sh"]
"#;
    let docs = parse_yaml(k8s).unwrap();
    let mut extraction = Extraction::default();
    let mut config_maps = BTreeMap::new();
    collect_config_maps(&docs, &mut config_maps);
    for doc in &docs {
        k8s_invocations("k8s", doc, &config_maps, &BTreeMap::new(), &mut extraction);
    }
    assert!(extraction.errors.is_empty(), "{:?}", extraction.errors);
    assert_eq!(extraction.invocations.len(), 1);
    assert_eq!(
        extraction.invocations[0].argv,
        strings(&["project", "--kafka", "kafka:9092", "--topic", "lrs.log", "--x", "$(KEEP)"])
    );

    let dockerfile = "FROM rust AS build\nRUN cargo build \\\n  --release\nCMD [\"x\"]\nFROM debian\n\
                      ENV A=1 B=\"two\"\nENTRYPOINT [\"/usr/local/bin/lrs\"]\nCMD [\"serve\", \"--listen\", \"0.0.0.0:8080\"]\n";
    let mut extraction = Extraction::default();
    let env = dockerfile_invocations("Dockerfile", dockerfile, &mut extraction);
    assert!(extraction.errors.is_empty(), "{:?}", extraction.errors);
    assert_eq!(extraction.invocations.len(), 1);
    assert_eq!(extraction.invocations[0].argv, strings(&["serve", "--listen", "0.0.0.0:8080"]));
    assert_eq!(extraction.invocations[0].line, 8);
    assert_eq!(env.get("B").map(String::as_str), Some("two"));
    // A shell-form CMD after an exec-form ENTRYPOINT is `lrs /bin/sh -c …`
    // in Docker too, and so fails the check.
    let mut extraction = Extraction::default();
    dockerfile_invocations("Dockerfile", "FROM x\nENTRYPOINT [\"lrs\"]\nCMD serve\n", &mut extraction);
    assert_eq!(extraction.invocations[0].argv, strings(&["/bin/sh", "-c", "serve"]));

    let mut extraction = Extraction::default();
    let undefined = "kind: Job\nspec:\n  containers:\n    - image: lrs\n      args: [query, --ingest, $(NOPE)]\n";
    k8s_invocations("k8s", &parse_yaml(undefined).unwrap()[0], &config_maps, &BTreeMap::new(), &mut extraction);
    assert_eq!(extraction.errors.len(), 1, "an undefined $(VAR) must be reported: {:?}", extraction.errors);

    assert!(parse_yaml("a:\n  b: 1\n    c: 2\n").is_err(), "bad indentation must be an error");
    assert!(parse_yaml("a: [1, 2\n").is_err(), "an unclosed flow list must be an error");
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Running the binary in parse-only mode
// ---------------------------------------------------------------------------

struct Outcome {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!("{}\n--- stdout ---\n{}--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `LRS_CHECK_ARGS=1 lrs ARGV…` with `env` (and no LRS_* variable of
/// this process), in `cwd`, bounded by [`CHECK_DEADLINE`].
fn run_checked(argv: &[String], env: &BTreeMap<String, String>, cwd: &Path) -> Result<Outcome, String> {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LRS_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .envs(env)
        .env("LRS_CHECK_ARGS", "1")
        .args(argv)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("cannot run {BIN}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for lrs: {e}"))? {
            break status;
        }
        if started.elapsed() > CHECK_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`LRS_CHECK_ARGS=1 lrs {}` still ran after {CHECK_DEADLINE:?} and was killed: \
                 is LRS_CHECK_ARGS=1 (parse the command line, print ok, exit) implemented?",
                argv.join(" ")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Ok(Outcome { success: status.success(), status: status.to_string(), stdout, stderr })
}

/// `Ok` when the command line parses: exit 0 and `ok` printed.
fn check_args(argv: &[String], env: &BTreeMap<String, String>, cwd: &Path) -> Result<(), String> {
    let outcome = run_checked(argv, env, cwd)?;
    if !outcome.success {
        return Err(outcome.describe());
    }
    if !outcome.stdout.lines().any(|line| line.trim() == "ok") {
        return Err(format!("exited 0 but did not print `ok`:\n{}", outcome.describe()));
    }
    Ok(())
}

/// Fails (instead of running a real server, or writing files) when the
/// binary ignores LRS_CHECK_ARGS.
fn assert_check_mode_is_honoured() {
    let scratch = tempfile::tempdir().unwrap();
    let argv = strings(&["serve", "--listen", "127.0.0.1:0", "--data-dir", "canary"]);
    if let Err(reason) = check_args(&argv, &BTreeMap::new(), scratch.path()) {
        panic!("`LRS_CHECK_ARGS=1 lrs serve …` must print ok and exit 0 without serving:\n{reason}");
    }
    assert!(!scratch.path().join("canary").exists(), "LRS_CHECK_ARGS=1 lrs serve created its data directory");
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

// ---------------------------------------------------------------------------
// Extraction
// ---------------------------------------------------------------------------

/// One lrs command line found in a deploy file.
#[derive(Debug, Clone)]
struct Invocation {
    /// Path relative to deploy/.
    file: String,
    line: usize,
    /// The arguments after `lrs`, references substituted.
    argv: Vec<String>,
    /// Environment the container gets (ConfigMaps, `env`, `environment`).
    env: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Extraction {
    invocations: Vec<Invocation>,
    errors: Vec<String>,
    /// Every YAML file read (relative to deploy/).
    yaml_files: Vec<String>,
    /// YAML files holding only ConfigMaps or Secrets.
    config_only: BTreeSet<String>,
}

impl Extraction {
    fn push(&mut self, file: &str, line: usize, argv: Vec<String>, env: BTreeMap<String, String>) {
        self.invocations.push(Invocation { file: file.to_owned(), line, argv, env });
    }

    fn error(&mut self, file: &str, line: usize, message: impl std::fmt::Display) {
        self.errors.push(format!("deploy/{file}:{line}: {message}"));
    }
}

/// Every file under `dir` (but the skipped folders), sorted, relative.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            if path.is_dir() {
                if !SKIPPED_FOLDERS.contains(&relative.as_str()) {
                    walk(root, &path, out);
                }
            } else {
                out.push(relative);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn extract_all(dir: &Path) -> Extraction {
    let mut extraction = Extraction::default();
    let files = files_under(dir);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("cannot read deploy/{name}: {e}"))
    };

    // The image's own environment applies to every container of it.
    let mut image_env = BTreeMap::new();
    for name in files.iter().filter(|f| is_dockerfile(f)) {
        image_env = dockerfile_invocations(name, &read(name), &mut extraction);
    }

    let mut yaml_docs: Vec<(String, Vec<Node>)> = Vec::new();
    for name in files.iter().filter(|f| f.ends_with(".yaml") || f.ends_with(".yml")) {
        extraction.yaml_files.push(name.clone());
        match parse_yaml(&read(name)) {
            Ok(docs) => yaml_docs.push((name.clone(), docs)),
            Err(e) => extraction.errors.push(format!("deploy/{name}: not YAML this test can read: {e}")),
        }
    }
    let mut config_maps = BTreeMap::new();
    for (_, docs) in &yaml_docs {
        collect_config_maps(docs, &mut config_maps);
    }
    for (name, docs) in &yaml_docs {
        let kinds: Vec<Option<String>> = docs.iter().map(|d| d.get("kind").and_then(Node::scalar)).collect();
        if kinds.iter().all(|k| k.is_none()) && docs.iter().any(|d| d.get("services").is_some()) {
            for doc in docs {
                compose_invocations(name, doc, &image_env, &mut extraction);
            }
        } else {
            if !kinds.is_empty() && kinds.iter().all(|k| matches!(k.as_deref(), Some("ConfigMap" | "Secret"))) {
                extraction.config_only.insert(name.clone());
            }
            for doc in docs {
                k8s_invocations(name, doc, &config_maps, &image_env, &mut extraction);
            }
        }
    }

    for name in files.iter().filter(|f| f.ends_with(".md")) {
        markdown_invocations(name, &read(name), &mut extraction);
    }
    extraction
}

fn is_dockerfile(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    (base == "Dockerfile" || base.starts_with("Dockerfile.") || base.ends_with(".Dockerfile"))
        && !base.ends_with(".dockerignore")
}

/// Whether an image reference names the lrs image (`lrs`, `lrs:tag`,
/// `registry/path/lrs:tag`, `…@sha256:…`).
fn is_lrs_image(image: &str) -> bool {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next() == Some("lrs")
}

/// Whether a command word runs the lrs binary (`lrs`, `/usr/local/bin/lrs`).
fn is_lrs_binary(word: &str) -> bool {
    word.rsplit('/').next() == Some("lrs")
}

// --- Dockerfile ------------------------------------------------------------

/// Adds the final stage's ENTRYPOINT + CMD; returns the final stage's ENV.
fn dockerfile_invocations(file: &str, text: &str, extraction: &mut Extraction) -> BTreeMap<String, String> {
    let mut entrypoint: Option<(usize, Vec<String>)> = None;
    let mut cmd: Option<(usize, Vec<String>)> = None;
    let mut env = BTreeMap::new();
    for (line, instruction) in dockerfile_instructions(text) {
        let (keyword, rest) = instruction.split_once(char::is_whitespace).unwrap_or((&instruction, ""));
        let rest = rest.trim();
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => {
                entrypoint = None;
                cmd = None;
                env.clear();
            }
            "ENTRYPOINT" => entrypoint = Some((line, docker_words(rest))),
            "CMD" => cmd = Some((line, docker_words(rest))),
            "ENV" => {
                let words = shell_words(rest).unwrap_or_default();
                if words.len() >= 2 && !words[0].contains('=') {
                    env.insert(words[0].clone(), words[1..].join(" "));
                } else {
                    for word in words {
                        if let Some((name, value)) = word.split_once('=') {
                            env.insert(name.to_owned(), value.to_owned());
                        }
                    }
                }
            }
            // RUN, COPY and the rest run no lrs command line.
            _ => {}
        }
    }
    match entrypoint {
        Some((_, words)) if words.first().is_some_and(|w| is_lrs_binary(w)) => {
            let (line, mut argv) = match cmd {
                Some((line, cmd)) => (line, words[1..].iter().cloned().chain(cmd).collect::<Vec<_>>()),
                None => (0, words[1..].to_vec()),
            };
            argv.iter_mut().for_each(|word| *word = substitute(word, &env));
            extraction.push(file, line, argv, env.clone());
        }
        Some((line, words)) => extraction.error(file, line, format!("ENTRYPOINT {words:?} is not the lrs binary")),
        None => extraction.error(file, 0, "the final stage has no ENTRYPOINT"),
    }
    env
}

/// (first line, instruction) with continuation lines joined and comments
/// dropped.
fn dockerfile_instructions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (index + 1, String::new()));
        if !entry.1.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body.trim());
        if !continues {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// The exec form (a JSON array) or the shell form of ENTRYPOINT/CMD.
fn docker_words(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(words) if rest.starts_with('[') => words,
        _ => vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.to_owned()],
    }
}

// --- docker compose --------------------------------------------------------

fn compose_invocations(file: &str, doc: &Node, image_env: &BTreeMap<String, String>, extraction: &mut Extraction) {
    let Some(Value::Map(services)) = doc.get("services").map(|n| &n.value) else {
        return;
    };
    let none = BTreeMap::new();
    for (name, service) in services {
        let image = service.get("image").and_then(Node::scalar).map(|s| substitute(&s, &none)).unwrap_or_default();
        if service.get("build").is_none() && !is_lrs_image(&image) {
            continue;
        }
        let mut env = image_env.clone();
        match service.get("environment").map(|n| &n.value) {
            Some(Value::Map(entries)) => {
                for (key, value) in entries {
                    env.insert(key.clone(), substitute(&value.scalar().unwrap_or_default(), &none));
                }
            }
            Some(Value::List(items)) => {
                for item in items {
                    let text = item.scalar().unwrap_or_default();
                    let (key, value) = text.split_once('=').unwrap_or((&text, ""));
                    env.insert(key.to_owned(), substitute(value, &none));
                }
            }
            _ => {}
        }
        let words = |key: &str, extraction: &mut Extraction| -> Option<(usize, Vec<String>)> {
            let node = service.get(key)?;
            match node.words() {
                Ok(words) => Some((node.line, words.iter().map(|w| substitute(w, &none)).collect())),
                Err(e) => {
                    extraction.error(file, node.line, format!("service {name}: {key}: {e}"));
                    None
                }
            }
        };
        let entrypoint = words("entrypoint", extraction);
        let command = words("command", extraction);
        let (line, argv) = match (entrypoint, command) {
            (Some((line, entrypoint)), command) => {
                if !entrypoint.first().is_some_and(|w| is_lrs_binary(w)) {
                    extraction.error(file, line, format!("service {name}: entrypoint {entrypoint:?} is not lrs"));
                    continue;
                }
                let (line, command) = command.unwrap_or((line, Vec::new()));
                (line, entrypoint[1..].iter().cloned().chain(command).collect())
            }
            (None, Some((line, command))) => (line, command),
            // The image's default command, checked with the Dockerfile.
            (None, None) => continue,
        };
        extraction.push(file, line, argv, env);
    }
}

// --- Kubernetes --------------------------------------------------------------

fn collect_config_maps(docs: &[Node], out: &mut BTreeMap<String, BTreeMap<String, String>>) {
    for doc in docs {
        if doc.get("kind").and_then(Node::scalar).as_deref() != Some("ConfigMap") {
            continue;
        }
        let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(Node::scalar).unwrap_or_default();
        let mut data = BTreeMap::new();
        if let Some(Value::Map(entries)) = doc.get("data").map(|n| &n.value) {
            for (key, value) in entries {
                data.insert(key.clone(), value.scalar().unwrap_or_default());
            }
        }
        out.insert(name, data);
    }
}

fn k8s_invocations(
    file: &str,
    doc: &Node,
    config_maps: &BTreeMap<String, BTreeMap<String, String>>,
    image_env: &BTreeMap<String, String>,
    extraction: &mut Extraction,
) {
    let mut containers = Vec::new();
    find_containers(doc, &mut containers);
    for container in containers {
        let image = container.get("image").and_then(Node::scalar).unwrap_or_default();
        if !is_lrs_image(&image) {
            continue;
        }
        let mut env = image_env.clone();
        if let Some(Value::List(sources)) = container.get("envFrom").map(|n| &n.value) {
            for source in sources {
                let Some(reference) = source.get("configMapRef") else { continue };
                let name = reference.get("name").and_then(Node::scalar).unwrap_or_default();
                match config_maps.get(&name) {
                    Some(data) => env.extend(data.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    None => extraction.error(file, source.line, format!("envFrom names an unknown ConfigMap {name:?}")),
                }
            }
        }
        if let Some(Value::List(variables)) = container.get("env").map(|n| &n.value) {
            for variable in variables {
                let Some(name) = variable.get("name").and_then(Node::scalar) else { continue };
                let value = variable.get("value").and_then(Node::scalar).unwrap_or_else(|| PLACEHOLDER.to_owned());
                env.insert(name, value);
            }
        }
        let words = |key: &str, extraction: &mut Extraction| -> Option<(usize, Vec<String>)> {
            let node = container.get(key)?;
            match node.words() {
                Ok(words) => Some((node.line, words)),
                Err(e) => {
                    extraction.error(file, node.line, format!("{key}: {e}"));
                    None
                }
            }
        };
        let command = words("command", extraction);
        let args = words("args", extraction);
        let (line, argv): (usize, Vec<String>) = match (command, args) {
            (Some((line, command)), args) => {
                if !command.first().is_some_and(|w| is_lrs_binary(w)) {
                    extraction.error(file, line, format!("command {command:?} of an lrs container is not lrs"));
                    continue;
                }
                let args = args.map(|(_, a)| a).unwrap_or_default();
                (line, command[1..].iter().cloned().chain(args).collect())
            }
            (None, Some((line, args))) => (line, args),
            (None, None) => continue,
        };
        // Kubernetes leaves an undefined $(VAR) as it is: here the whole
        // environment is known, so an undefined one is an error.
        let mut missing = Vec::new();
        let argv = argv.iter().map(|word| substitute_noting(word, &env, &mut missing)).collect();
        if !missing.is_empty() {
            extraction.error(file, line, format!("{missing:?} referenced but defined neither in env nor in envFrom"));
        }
        extraction.push(file, line, argv, env);
    }
}

fn find_containers<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
    match &node.value {
        Value::Map(entries) => {
            for (key, value) in entries {
                if let (true, Value::List(items)) = (key == "containers" || key == "initContainers", &value.value) {
                    out.extend(items.iter());
                    continue;
                }
                find_containers(value, out);
            }
        }
        Value::List(items) => items.iter().for_each(|item| find_containers(item, out)),
        _ => {}
    }
}

// --- Markdown ------------------------------------------------------------

/// `lrs …` lines of fenced code blocks (shell continuations joined).
fn markdown_invocations(file: &str, text: &str, extraction: &mut Extraction) {
    let mut in_code = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            pending = None;
            continue;
        }
        if !in_code {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        let entry = pending.get_or_insert_with(|| (index + 1, String::new()));
        if !entry.1.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(body);
        if continues {
            continue;
        }
        let Some((line, command)) = pending.take() else { continue };
        let command = command.strip_prefix("$ ").unwrap_or(&command).to_owned();
        if !command.starts_with("lrs ") {
            continue;
        }
        match shell_words(&command) {
            Ok(words) => {
                let argv = words[1..].iter().map(|w| substitute(w, &BTreeMap::new())).collect();
                extraction.push(file, line, argv, BTreeMap::new());
            }
            Err(e) => extraction.error(file, line, e),
        }
    }
}

// --- Words and references ----------------------------------------------------

/// Splits a command string the way a POSIX shell (or compose) splits words:
/// whitespace, '…', "…" and backslash escapes; no expansion.
fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Replaces `$(VAR)` (Kubernetes) and `${VAR}`, `${VAR:-default}`,
/// `${VAR-default}`, `${VAR:?message}` (compose, shell) with the value of
/// VAR in `env`, else the default, else [`PLACEHOLDER`]; `$$` is a `$`.
fn substitute(text: &str, env: &BTreeMap<String, String>) -> String {
    substitute_noting(text, env, &mut Vec::new())
}

/// [`substitute`], adding to `missing` the names that got the placeholder.
fn substitute_noting(text: &str, env: &BTreeMap<String, String>, missing: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(close) = match after.chars().next() {
            Some('(') => Some(')'),
            Some('{') => Some('}'),
            _ => None,
        } {
            match after.find(close) {
                Some(end) => {
                    let inner = &after[1..end];
                    let name_end =
                        inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
                    let (name, modifier) = inner.split_at(name_end);
                    // `:-` also replaces an empty value; `:?`/`?` (required) has no default.
                    let default = modifier.strip_prefix(":-").or_else(|| modifier.strip_prefix('-'));
                    let value = env
                        .get(name)
                        .filter(|v| !(modifier.starts_with(':') && v.is_empty()))
                        .cloned()
                        .or_else(|| default.map(|d| substitute_noting(d, env, missing)))
                        .unwrap_or_else(|| {
                            missing.push(name.to_owned());
                            PLACEHOLDER.to_owned()
                        });
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// A YAML subset
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Value {
    Null,
    Scalar(String),
    Alias(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
struct Node {
    /// 1-based line in the file.
    line: usize,
    value: Value,
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn scalar(&self) -> Option<String> {
        match &self.value {
            Value::Scalar(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// A command: a list of scalars, or a string split into words.
    fn words(&self) -> Result<Vec<String>, String> {
        match &self.value {
            Value::Scalar(text) => shell_words(text),
            Value::List(items) => items
                .iter()
                .map(|item| item.scalar().ok_or_else(|| format!("line {}: not a plain string", item.line)))
                .collect(),
            Value::Null => Ok(Vec::new()),
            Value::Alias(name) => Err(format!("the alias *{name} is not supported in a command")),
            Value::Map(_) => Err("a map is not a command".to_owned()),
        }
    }
}

/// One logical line: comment stripped, flow collections joined, block
/// scalar content attached.
#[derive(Debug, Clone)]
struct Line {
    number: usize,
    indent: usize,
    text: String,
    block: Option<String>,
}

/// Parses every document of `source`.
fn parse_yaml(source: &str) -> Result<Vec<Node>, String> {
    let raw: Vec<&str> = source.lines().collect();
    let mut documents: Vec<Vec<Line>> = vec![Vec::new()];
    let mut index = 0;
    while index < raw.len() {
        let number = index + 1;
        let line = raw[index];
        index += 1;
        let content = strip_comment(line);
        if content.trim().is_empty() || line.starts_with('%') {
            continue;
        }
        if line == "---" || line.starts_with("--- ") || line == "..." {
            documents.push(Vec::new());
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        if content[..indent].contains('\t') {
            return Err(format!("line {number}: tab in indentation"));
        }
        let mut text = content.trim().to_owned();
        // A flow collection may span several lines.
        while flow_depth(&text) > 0 {
            let Some(next) = raw.get(index) else {
                return Err(format!("line {number}: unclosed [ or {{"));
            };
            index += 1;
            text.push(' ');
            text.push_str(strip_comment(next).trim());
        }
        let mut block = None;
        if let Some((head, folded)) = block_indicator(&text) {
            let mut content_lines = Vec::new();
            while index < raw.len() {
                let next = raw[index];
                let next_indent = next.len() - next.trim_start().len();
                if !next.trim().is_empty() && next_indent <= indent {
                    break;
                }
                content_lines.push(next);
                index += 1;
            }
            while content_lines.last().is_some_and(|l| l.trim().is_empty()) {
                content_lines.pop();
            }
            let common = content_lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            let stripped: Vec<&str> =
                content_lines.iter().map(|l| if l.len() >= common { &l[common..] } else { "" }).collect();
            block = Some(stripped.join(if folded { " " } else { "\n" }));
            text = head;
        }
        documents.last_mut().unwrap().push(Line { number, indent, text, block });
    }
    let mut nodes = Vec::new();
    for lines in documents.into_iter().filter(|d| !d.is_empty()) {
        let mut parser = Parser { lines, position: 0 };
        let first_indent = parser.lines[0].indent;
        let node = parser.node(first_indent)?;
        if let Some(line) = parser.lines.get(parser.position) {
            return Err(format!("line {}: unexpected {:?} (bad indentation?)", line.number, line.text));
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// Each character of `text` with whether it stands outside quotes (the
/// quotes themselves count as inside).
fn unquoted(text: &str) -> Vec<(usize, char, bool)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut quote: Option<char> = None;
    let mut index = 0;
    while index < chars.len() {
        let (at, c) = chars[index];
        match quote {
            None if (c == '"' || c == '\'') && starts_scalar(&text[..at]) => {
                quote = Some(c);
                out.push((at, c, false));
            }
            None => out.push((at, c, true)),
            Some(q) => {
                out.push((at, c, false));
                let doubled = q == '\'' && c == '\'' && chars.get(index + 1).is_some_and(|(_, n)| *n == '\'');
                if (q == '"' && c == '\\') || doubled {
                    // An escape (\x in "…", '' in '…'): the next character is content.
                    index += 1;
                    if let Some(&(at, c)) = chars.get(index) {
                        out.push((at, c, false));
                    }
                } else if c == q {
                    quote = None;
                }
            }
        }
        index += 1;
    }
    out
}

/// Whether a quote after `before` opens a quoted scalar (rather than being
/// a character inside a plain one, as in `it's`).
fn starts_scalar(before: &str) -> bool {
    let before = before.trim_end();
    before.is_empty() || before.ends_with([':', '-', '[', '{', ',', '?'])
}

/// The line without its comment (`#` at the start or after a blank, not in
/// quotes).
fn strip_comment(line: &str) -> &str {
    let mut previous_blank = true;
    for (at, c, outside) in unquoted(line) {
        if outside && c == '#' && previous_blank {
            return &line[..at];
        }
        previous_blank = c.is_whitespace();
    }
    line
}

/// Open `[`/`{` minus closing ones, outside quotes.
fn flow_depth(text: &str) -> i32 {
    let mut depth = 0;
    for (at, c, outside) in unquoted(text) {
        if !outside {
            continue;
        }
        // `[` or `{` opens a collection only where a value starts.
        if (c == '[' || c == '{') && starts_scalar(&text[..at]) {
            depth += 1;
        } else if (c == ']' || c == '}') && depth > 0 {
            depth -= 1;
        }
    }
    depth
}

/// `key: |`, `- >-` and the like: the text without the indicator, and
/// whether the block is folded.
fn block_indicator(text: &str) -> Option<(String, bool)> {
    for indicator in ["|-", "|+", ">-", ">+", "|", ">"] {
        let head = if text == indicator {
            ""
        } else if let Some(head) = text.strip_suffix(indicator).filter(|h| h.ends_with(' ')) {
            head.trim_end()
        } else {
            continue;
        };
        let head = head.split_whitespace().filter(|w| !w.starts_with('&')).collect::<Vec<_>>().join(" ");
        if head.is_empty() || head == "-" || head.ends_with(':') {
            return Some((head, indicator.starts_with('>')));
        }
    }
    None
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

struct Parser {
    lines: Vec<Line>,
    position: usize,
}

impl Parser {
    fn current(&self) -> Option<&Line> {
        self.lines.get(self.position)
    }

    fn node(&mut self, indent: usize) -> Result<Node, String> {
        let line = self.current().ok_or("unexpected end")?.clone();
        if line.indent != indent {
            return Err(format!("line {}: unexpected indentation", line.number));
        }
        if is_item(&line.text) {
            self.list(indent)
        } else if split_key(&line.text)?.is_some() {
            self.map(indent)
        } else {
            self.position += 1;
            if let Some(next) = self.current().filter(|next| next.indent > indent) {
                return Err(format!("line {}: multi-line plain scalars are not supported", next.number));
            }
            inline_value(&line.text, line.number)
        }
    }

    fn list(&mut self, indent: usize) -> Result<Node, String> {
        let first = self.lines[self.position].number;
        let mut items = Vec::new();
        while let Some(line) = self.current().cloned() {
            if line.indent != indent || !is_item(&line.text) {
                break;
            }
            let after_dash = &line.text[1..];
            let rest = after_dash.trim_start();
            let column = indent + 1 + (after_dash.len() - rest.len());
            if rest.is_empty() {
                self.position += 1;
                if let Some(block) = line.block {
                    items.push(Node { line: line.number, value: Value::Scalar(block) });
                } else if self.current().is_some_and(|next| next.indent > indent) {
                    let next_indent = self.lines[self.position].indent;
                    items.push(self.node(next_indent)?);
                } else {
                    items.push(Node { line: line.number, value: Value::Null });
                }
            } else if is_item(rest) || split_key(rest)?.is_some() {
                // `- key: value` or `- - x`: the rest is a node at its column.
                let entry = &mut self.lines[self.position];
                entry.indent = column;
                entry.text = rest.to_owned();
                items.push(self.node(column)?);
            } else {
                self.position += 1;
                if let Some(next) = self.current().filter(|next| next.indent > indent) {
                    return Err(format!("line {}: unexpected indentation", next.number));
                }
                items.push(inline_value(rest, line.number)?);
            }
        }
        Ok(Node { line: first, value: Value::List(items) })
    }

    fn map(&mut self, indent: usize) -> Result<Node, String> {
        let first = self.lines[self.position].number;
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some(line) = self.current().cloned() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return Err(format!("line {}: unexpected indentation", line.number));
            }
            if is_item(&line.text) {
                break;
            }
            let Some((key, value)) = split_key(&line.text)? else {
                return Err(format!("line {}: expected `key: value`, found {:?}", line.number, line.text));
            };
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("line {}: duplicate key {key:?}", line.number));
            }
            self.position += 1;
            let value = strip_properties(&value);
            let node = if !value.is_empty() {
                inline_value(&value, line.number)?
            } else if let Some(block) = line.block {
                Node { line: line.number, value: Value::Scalar(block) }
            } else if let Some(next) = self.current().cloned() {
                if next.indent > indent {
                    let mut node = self.node(next.indent)?;
                    node.line = line.number;
                    node
                } else if next.indent == indent && is_item(&next.text) {
                    let mut node = self.list(indent)?;
                    node.line = line.number;
                    node
                } else {
                    Node { line: line.number, value: Value::Null }
                }
            } else {
                Node { line: line.number, value: Value::Null }
            };
            entries.push((key, node));
        }
        Ok(Node { line: first, value: Value::Map(entries) })
    }
}

/// Drops an anchor (`&name`) or tag (`!tag`) before a value.
fn strip_properties(value: &str) -> String {
    let mut rest = value.trim();
    while rest.starts_with('&') || rest.starts_with('!') {
        rest = rest.split_once(char::is_whitespace).map_or("", |(_, tail)| tail.trim_start());
    }
    rest.to_owned()
}

/// Splits `key: value` (value possibly empty); `None` when the text is not
/// a map entry.
fn split_key(text: &str) -> Result<Option<(String, String)>, String> {
    if text.starts_with('[') || text.starts_with('{') || text.starts_with('*') || text.starts_with('&') {
        return Ok(None);
    }
    let chars: Vec<char> = text.chars().collect();
    let (key, after) = if text.starts_with('"') || text.starts_with('\'') {
        let mut position = 0;
        let key = parse_quoted(&chars, &mut position)?;
        (key, chars[position..].iter().collect::<String>())
    } else {
        let mut end = None;
        for (at, c) in chars.iter().enumerate() {
            if *c == ':' && chars.get(at + 1).is_none_or(|n| n.is_whitespace()) {
                end = Some(at);
                break;
            }
        }
        let Some(end) = end else { return Ok(None) };
        (chars[..end].iter().collect::<String>().trim().to_owned(), chars[end..].iter().collect::<String>())
    };
    let after = after.trim_start();
    match after.strip_prefix(':') {
        Some(value) if value.is_empty() || value.starts_with(char::is_whitespace) => {
            Ok(Some((key, value.trim().to_owned())))
        }
        _ => Ok(None),
    }
}

/// A value written on one line: flow collection, quoted or plain scalar,
/// alias.
fn inline_value(text: &str, line: usize) -> Result<Node, String> {
    let text = strip_properties(text);
    let at = |e: String| format!("line {line}: {e}");
    let value = if text.starts_with('[') || text.starts_with('{') || text.starts_with('"') || text.starts_with('\'') {
        let chars: Vec<char> = text.chars().collect();
        let mut position = 0;
        let value = flow_value(&chars, &mut position, false).map_err(at)?;
        skip_blanks(&chars, &mut position);
        if position != chars.len() {
            return Err(at(format!("unexpected {:?} after the value", chars[position..].iter().collect::<String>())));
        }
        value
    } else if let Some(name) = text.strip_prefix('*') {
        Value::Alias(name.to_owned())
    } else if text.is_empty() || text == "~" || text == "null" {
        Value::Null
    } else {
        Value::Scalar(text)
    };
    Ok(Node { line, value: attach_line(value, line) })
}

/// Flow values carry the line of the line they were written on.
fn attach_line(value: Value, line: usize) -> Value {
    match value {
        Value::List(items) => {
            Value::List(items.into_iter().map(|n| Node { line, value: attach_line(n.value, line) }).collect())
        }
        Value::Map(entries) => Value::Map(
            entries.into_iter().map(|(k, n)| (k, Node { line, value: attach_line(n.value, line) })).collect(),
        ),
        other => other,
    }
}

fn skip_blanks(chars: &[char], position: &mut usize) {
    while chars.get(*position).is_some_and(|c| c.is_whitespace()) {
        *position += 1;
    }
}

/// A value inside (or starting) a flow collection. `key` stops a plain
/// scalar at `: ` as in a flow map's key.
fn flow_value(chars: &[char], position: &mut usize, key: bool) -> Result<Value, String> {
    skip_blanks(chars, position);
    match chars.get(*position) {
        None => Ok(Value::Null),
        Some('[') => {
            *position += 1;
            let mut items = Vec::new();
            loop {
                skip_blanks(chars, position);
                match chars.get(*position) {
                    Some(']') => {
                        *position += 1;
                        return Ok(Value::List(items));
                    }
                    None => return Err("unclosed [".to_owned()),
                    _ => {}
                }
                items.push(Node { line: 0, value: flow_value(chars, position, false)? });
                skip_blanks(chars, position);
                match chars.get(*position) {
                    Some(',') => *position += 1,
                    Some(']') => {}
                    other => return Err(format!("expected , or ] in a flow list, found {other:?}")),
                }
            }
        }
        Some('{') => {
            *position += 1;
            let mut entries = Vec::new();
            loop {
                skip_blanks(chars, position);
                match chars.get(*position) {
                    Some('}') => {
                        *position += 1;
                        return Ok(Value::Map(entries));
                    }
                    None => return Err("unclosed {".to_owned()),
                    _ => {}
                }
                let key = match flow_value(chars, position, true)? {
                    Value::Scalar(key) => key,
                    other => return Err(format!("unsupported flow map key {other:?}")),
                };
                skip_blanks(chars, position);
                let value = if chars.get(*position) == Some(&':') {
                    *position += 1;
                    skip_blanks(chars, position);
                    if matches!(chars.get(*position), Some(',' | '}')) {
                        Value::Null
                    } else {
                        flow_value(chars, position, false)?
                    }
                } else {
                    Value::Null
                };
                entries.push((key, Node { line: 0, value }));
                skip_blanks(chars, position);
                match chars.get(*position) {
                    Some(',') => *position += 1,
                    Some('}') => {}
                    other => return Err(format!("expected , or }} in a flow map, found {other:?}")),
                }
            }
        }
        Some('"' | '\'') => Ok(Value::Scalar(parse_quoted(chars, position)?)),
        Some(_) => {
            let start = *position;
            while let Some(&c) = chars.get(*position) {
                if c == ',' || c == ']' || c == '}' {
                    break;
                }
                if key && c == ':' && chars.get(*position + 1).is_none_or(|n| n.is_whitespace() || *n == ',') {
                    break;
                }
                *position += 1;
            }
            let text: String = chars[start..*position].iter().collect::<String>().trim().to_owned();
            Ok(if text.is_empty() || text == "~" || text == "null" { Value::Null } else { Value::Scalar(text) })
        }
    }
}

/// A '…' or "…" scalar starting at `position`.
fn parse_quoted(chars: &[char], position: &mut usize) -> Result<String, String> {
    let quote = chars[*position];
    *position += 1;
    let mut out = String::new();
    loop {
        let Some(&c) = chars.get(*position) else {
            return Err(format!("unclosed {quote}"));
        };
        *position += 1;
        match (quote, c) {
            ('\'', '\'') if chars.get(*position) == Some(&'\'') => {
                *position += 1;
                out.push('\'');
            }
            (q, c) if c == q => return Ok(out),
            ('"', '\\') => {
                let Some(&escaped) = chars.get(*position) else {
                    return Err("unclosed \"".to_owned());
                };
                *position += 1;
                match escaped {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'u' => {
                        let hex: String = chars.get(*position..*position + 4).unwrap_or_default().iter().collect();
                        let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("bad \\u escape {hex:?}"))?;
                        out.push(char::from_u32(code).ok_or("bad \\u escape")?);
                        *position += 4;
                    }
                    other => out.push(other),
                }
            }
            (_, c) => out.push(c),
        }
    }
}
