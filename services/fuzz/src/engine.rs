//! A small mutation fuzzer that runs on stable Rust.
//!
//! There is no compiler instrumentation on stable, so guidance comes from
//! the targets themselves: a target calls [`feature`] with a short tag for
//! each outcome it reaches (a validation error path, an HTTP status and error
//! kind…), and an input that produces a tag never seen before joins the pool
//! of inputs that later mutations start from.
//!
//! Every input runs under [`std::panic::catch_unwind`]; a panic is a crash.
//! Its input is written to the crash directory (by default
//! `target/fuzz-crashes/<target>-<hash>.bin`) and returned in the [`Report`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// A fuzz target: must not panic, whatever the input.
pub type Target = fn(&[u8]);

thread_local! {
    /// Whether this thread is running an input for the engine.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static FEATURES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    static TRACED: RefCell<Vec<(u64, String)>> = const { RefCell::new(Vec::new()) };
}

/// Records that the running input reached the outcome `tag` (ignored when
/// the target is called outside the engine).
///
/// With `LRS_FUZZ_TRACE_FEATURES` set, each new tag is printed to stderr
/// (to tune what targets report: tags must not carry the input's own text,
/// or every input looks new).
pub fn feature(tag: &str) {
    if ACTIVE.with(Cell::get) {
        let hash = fnv1a(tag.as_bytes());
        FEATURES.with(|features| features.borrow_mut().push(hash));
        if trace_features() {
            TRACED.with(|traced| traced.borrow_mut().push((hash, tag.to_owned())));
        }
    }
}

fn trace_features() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("LRS_FUZZ_TRACE_FEATURES").is_some())
}

/// FNV-1a, 64 bits: stable across platforms and Rust versions, so crash
/// file names are too.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Where crash inputs go unless told otherwise: `LRS_FUZZ_CRASH_DIR`, else
/// `fuzz-crashes` in the Cargo target directory (`CARGO_TARGET_DIR`, else
/// the workspace's `target/`).
pub fn default_crash_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LRS_FUZZ_CRASH_DIR") {
        return PathBuf::from(dir);
    }
    target_dir().join("fuzz-crashes")
}

/// The Cargo target directory of the workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => crate::corpus::workspace_root().join("target"),
    }
}

/// How to run a campaign.
#[derive(Debug, Clone)]
pub struct Options {
    /// Names crash files (`<name>-<hash>.bin`).
    pub name: String,
    pub seed: u64,
    /// Wall-clock budget (the seed inputs always all run once).
    pub duration: Duration,
    /// Stop after this many executions even if time remains.
    pub max_executions: Option<u64>,
    /// Mutated inputs are cut to this length.
    pub max_len: usize,
    /// Largest pool of inputs to mutate from.
    pub max_pool: usize,
    /// Distinct crashes (by panic location) kept in the report.
    pub max_crashes: usize,
    pub crash_dir: PathBuf,
}

impl Options {
    pub fn new(name: impl Into<String>, seed: u64, duration: Duration) -> Self {
        Self {
            name: name.into(),
            seed,
            duration,
            max_executions: None,
            max_len: 64 * 1024,
            max_pool: 4096,
            max_crashes: 16,
            crash_dir: default_crash_dir(),
        }
    }
}

/// One input that made the target panic.
#[derive(Debug, Clone)]
pub struct Crash {
    pub input: Vec<u8>,
    /// The panic message and location.
    pub message: String,
    /// Where the input was written (`None` if writing failed).
    pub path: Option<PathBuf>,
}

/// What a campaign did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub seed: u64,
    pub executions: u64,
    pub elapsed: Duration,
    /// Inputs in the pool at the end (seeds plus inputs that found new features).
    pub pool: usize,
    /// Distinct features the target reported.
    pub features: usize,
    /// Executions that panicked, including repeats of the same crash.
    pub crashing_executions: u64,
    /// Distinct crashes, by panic location.
    pub crashes: Vec<Crash>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target {}: seed {}, {} executions in {:.1?}, {} features, pool {}, {} distinct crash(es)",
            self.target,
            self.seed,
            self.executions,
            self.elapsed,
            self.features,
            self.pool,
            self.crashes.len()
        )?;
        for crash in &self.crashes {
            let shown = String::from_utf8_lossy(&crash.input[..crash.input.len().min(300)]).into_owned();
            write!(f, "\n  crash: {}\n    input ({} bytes): {shown:?}", crash.message, crash.input.len())?;
            if let Some(path) = &crash.path {
                write!(f, "\n    saved to {}", path.display())?;
            }
        }
        Ok(())
    }
}

/// The name of a known target, for [`run`]; `"custom"` for any other.
fn name_of(target: Target) -> &'static str {
    crate::TARGETS.iter().find(|(_, known)| std::ptr::fn_addr_eq(*known, target)).map_or("custom", |(name, _)| *name)
}

/// Fuzzes `target` from `corpus` for `duration`. Crash files are named after
/// the target if it is one of [`crate::TARGETS`], else `custom-<hash>.bin`;
/// see [`run_named`] and [`run_with`].
pub fn run(target: Target, corpus: &[Vec<u8>], seed: u64, duration: Duration) -> Report {
    run_named(name_of(target), target, corpus, seed, duration)
}

/// [`run`] with the name used for crash files.
pub fn run_named(name: &str, target: Target, corpus: &[Vec<u8>], seed: u64, duration: Duration) -> Report {
    run_with(&Options::new(name, seed, duration), target, corpus)
}

/// Runs one input as the engine does: `Err` holds the panic message.
pub fn execute(target: Target, input: &[u8]) -> Result<Vec<u64>, String> {
    install_panic_hook();
    LAST_PANIC.with(|last| last.borrow_mut().take());
    FEATURES.with(|features| features.borrow_mut().clear());
    ACTIVE.with(|active| active.set(true));
    let outcome = panic::catch_unwind(|| target(input));
    ACTIVE.with(|active| active.set(false));
    let features = FEATURES.with(|features| std::mem::take(&mut *features.borrow_mut()));
    match outcome {
        Ok(()) => Ok(features),
        Err(payload) => {
            Err(LAST_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| payload_text(&*payload)))
        }
    }
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic with a non-text payload".to_owned()
    }
}

/// Panics on a thread running an input are recorded quietly (they are
/// reported with the crash); every other panic goes to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if ACTIVE.with(Cell::get) {
                let message = payload_text(info.payload());
                let text = match info.location() {
                    Some(location) => format!("{message} (at {location})"),
                    None => message,
                };
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// The part of a panic message that identifies the bug: its location when
/// known (inputs differ in the message text).
fn crash_key(message: &str) -> String {
    match message.rfind(" (at ") {
        Some(at) => message[at..].to_owned(),
        None => message.to_owned(),
    }
}

fn save_crash(dir: &Path, name: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{name}-{:016x}.bin", fnv1a(input)));
    std::fs::write(&path, input).ok()?;
    Some(path)
}

/// Runs a campaign as `options` say.
pub fn run_with(options: &Options, target: Target, corpus: &[Vec<u8>]) -> Report {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut pool: Vec<Vec<u8>> = corpus.iter().filter(|input| input.len() <= options.max_len).cloned().collect();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let seeds = pool.len();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut crashes: Vec<Crash> = Vec::new();
    let mut crash_keys: HashMap<String, usize> = HashMap::new();
    let mut crashing_executions = 0;
    let mut executions: u64 = 0;
    let mut next_seed = 0;

    loop {
        let out_of_time = started.elapsed() >= options.duration;
        let out_of_runs = options.max_executions.is_some_and(|max| executions >= max);
        // Every seed runs once, unmutated, whatever the budget.
        if next_seed >= seeds && (out_of_time || out_of_runs) {
            break;
        }
        let input = if next_seed < seeds {
            next_seed += 1;
            pool[next_seed - 1].clone()
        } else {
            mutate(&pool, &mut rng, options.max_len)
        };
        executions += 1;
        match execute(target, &input) {
            Ok(features) => {
                let mut new = false;
                let traced = TRACED.with(|traced| std::mem::take(&mut *traced.borrow_mut()));
                for (hash, tag) in traced {
                    if !seen.contains(&hash) {
                        eprintln!("new feature: {tag}");
                    }
                }
                for feature in features {
                    new |= seen.insert(feature);
                }
                if new && next_seed >= seeds {
                    if pool.len() < options.max_pool {
                        pool.push(input);
                    } else {
                        // Replace a non-seed input, keeping the seeds.
                        let victim = rng.gen_range(seeds.min(pool.len() - 1)..pool.len());
                        pool[victim] = input;
                    }
                }
            }
            Err(message) => {
                crashing_executions += 1;
                let key = crash_key(&message);
                if let Some(&index) = crash_keys.get(&key) {
                    // Keep the smallest input for each crash.
                    if input.len() < crashes[index].input.len() {
                        crashes[index].path = save_crash(&options.crash_dir, &options.name, &input);
                        crashes[index].input = input;
                        crashes[index].message = message;
                    }
                } else if crashes.len() < options.max_crashes {
                    let path = save_crash(&options.crash_dir, &options.name, &input);
                    crash_keys.insert(key, crashes.len());
                    crashes.push(Crash { input, message, path });
                }
            }
        }
    }

    Report {
        target: options.name.clone(),
        seed: options.seed,
        executions,
        elapsed: started.elapsed(),
        pool: pool.len(),
        features: seen.len(),
        crashing_executions,
        crashes,
    }
}

/// Tokens worth inserting: JSON syntax, escapes a parser must refuse or
/// handle, numbers at and beyond every limit, multipart and query syntax,
/// xAPI property names and values near their rules' edges, invalid UTF-8.
pub const DICTIONARY: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\udfff",
    b"\\ud83d\\ude00",
    b"\\uffff",
    b"\\\"",
    b"null",
    b"true",
    b"false",
    b"-0",
    b"-0.0",
    b"1e999",
    b"-1e999",
    b"1e-999",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"340282366920938463463374607431768211456",
    b"0.30000000000000004",
    b"123456789012345678901234567890.123456789e-30",
    b"--boundary",
    b"--",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"--abc\r\n",
    b"\r\n--abc--",
    b"boundary=",
    b"; boundary=\"",
    b"multipart/mixed; boundary=abc\n",
    b"Content-Type: application/json\r\n",
    b"Content-Transfer-Encoding: binary\r\n",
    b"X-Experience-API-Hash: ",
    b"\r\n ",
    b" \t",
    b"&",
    b"=",
    b"%",
    b"%00",
    b"%FF",
    b"%C3%28",
    b"%E2%82",
    b"%ZZ",
    b"+",
    b"%22",
    b"%7B",
    b"%7D",
    b"%3A",
    b"%26",
    b"statementId=",
    b"voidedStatementId=",
    b"agent=",
    b"verb=",
    b"activity=",
    b"registration=",
    b"since=",
    b"until=",
    b"limit=",
    b"format=",
    b"attachments=true",
    b"ascending=true",
    b"related_agents=true",
    b"related_activities=true",
    b"more=",
    b"\"objectType\":",
    b"\"SubStatement\"",
    b"\"StatementRef\"",
    b"\"Group\"",
    b"\"Agent\"",
    b"\"Activity\"",
    b"\"mbox\":\"mailto:a@example.com\"",
    b"\"account\":{\"homePage\":\"http://example.com\",\"name\":\"n\"}",
    b"\"mbox_sha1sum\":\"ebd31e95054c018b10727ccffd2ef2ec3a016ee9\"",
    b"\"openid\":\"http://example.com/me\"",
    b"\"member\":[]",
    b"\"id\":",
    b"\"extensions\":{}",
    b"\"http://example.com/extension\"",
    b"\"attachments\":[]",
    b"\"usageType\":\"http://adlnet.gov/expapi/attachments/signature\"",
    b"\"contentType\":\"application/octet-stream\"",
    b"\"sha2\":\"",
    b"\"score\":{\"raw\":1,\"min\":0,\"max\":2}",
    b"\"duration\":\"PT1.999S\"",
    b"\"timestamp\":\"",
    b"\"version\":\"1.0.3\"",
    b"\"interactionType\":\"choice\"",
    b"\"contextActivities\":{\"parent\":{\"id\":\"http://example.com/p\"}}",
    b"2024-02-29T23:59:60Z",
    b"2024-01-01T00:00:00.123456789123+23:59",
    b"-00:00",
    b"+24:00",
    b"9999-12-31T23:59:59Z",
    b"0000-01-01T00:00:00Z",
    b"PT1.999S",
    b"P1W",
    b"P0.5Y",
    b"00000000-0000-0000-0000-000000000000",
    b"ffffffff-ffff-ffff-ffff-ffffffffffff",
    b"en-US",
    b"x-private",
    b"i-klingon",
    b"de-1901-1901",
    b"\xff",
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80",
    b"\x00",
    b"\xef\xbb\xbf",
];

/// Interesting JSON values to put in place of a node.
fn interesting_value(rng: &mut StdRng) -> Value {
    let long = "a".repeat(rng.gen_range(0..5000));
    let choices: [Value; 36] = [
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(u64::MAX),
        serde_json::json!(i64::MIN),
        serde_json::json!(1.5),
        serde_json::json!(-0.0),
        serde_json::json!(f64::MAX),
        serde_json::json!(f64::MIN_POSITIVE),
        serde_json::json!(1e-320),
        serde_json::json!(""),
        serde_json::json!("\u{0}"),
        serde_json::json!("\u{fffd}\u{10ffff}"),
        Value::String(long),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!({"objectType": "SubStatement"}),
        serde_json::json!({"objectType": "StatementRef", "id": "00000000-0000-0000-0000-000000000000"}),
        serde_json::json!({"objectType": "Group", "member": [{"mbox": "mailto:a@example.com"}]}),
        serde_json::json!({"mbox": "mailto:a@example.com"}),
        serde_json::json!({"account": {"homePage": "http://example.com", "name": "n"}}),
        serde_json::json!({"en-US": "x", "x-private": "y"}),
        serde_json::json!({"http://example.com/ext": {"nested": [1, 2, {"a": null}]}}),
        serde_json::json!("mailto:a@example.com"),
        serde_json::json!("http://example.com/iri"),
        serde_json::json!("2024-02-29T23:59:60.999999999Z"),
        serde_json::json!("2019-02-29T10:00:00Z"),
        serde_json::json!("PT1.2345S"),
        serde_json::json!("6690e6c9-3ef0-4ed3-8b37-7f3964730bee"),
        serde_json::json!("http://adlnet.gov/expapi/verbs/voided"),
        serde_json::json!("2.0.0"),
        serde_json::json!("1.0"),
        serde_json::json!({"raw": 5, "min": 5, "max": 5}),
        serde_json::json!([{"id": "a"}, {"id": "a"}]),
    ];
    choices[rng.gen_range(0..choices.len())].clone()
}

const INTERESTING_KEYS: [&str; 40] = [
    "objectType",
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
    "mbox",
    "mbox_sha1sum",
    "openid",
    "account",
    "member",
    "name",
    "display",
    "definition",
    "extensions",
    "contextActivities",
    "parent",
    "registration",
    "instructor",
    "team",
    "contextAgents",
    "score",
    "raw",
    "min",
    "max",
    "scaled",
    "duration",
    "interactionType",
    "choices",
    "sha2",
    "usageType",
    "statements",
    "content_b64",
    "documentId",
];

/// JSON pointers to every node of `value` (depth-first, bounded).
fn pointers(value: &Value, path: String, out: &mut Vec<String>) {
    if out.len() >= 512 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{path}/{}", key.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                pointers(child, format!("{path}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(path);
}

/// A structural mutation of a JSON document; `None` if `input` is not JSON.
fn mutate_json(input: &[u8], pool: &[Vec<u8>], rng: &mut StdRng) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(input).ok()?;
    let mut paths = Vec::new();
    pointers(&value, String::new(), &mut paths);
    let path = paths.get(rng.gen_range(0..paths.len().max(1)))?.clone();
    match rng.gen_range(0..6) {
        0 => {
            let replacement = interesting_value(rng);
            *value.pointer_mut(&path)? = replacement;
        }
        1 => {
            // Delete the node from its parent.
            let (parent, last) = path.rsplit_once('/')?;
            match value.pointer_mut(parent)? {
                Value::Object(map) => {
                    let key = last.replace("~1", "/").replace("~0", "~");
                    map.remove(&key);
                }
                Value::Array(items) => {
                    let index: usize = last.parse().ok()?;
                    if index < items.len() {
                        items.remove(index);
                    }
                }
                _ => {}
            }
        }
        2 => {
            // Add an interesting key (to an object) or item (to an array).
            let key = INTERESTING_KEYS[rng.gen_range(0..INTERESTING_KEYS.len())];
            let added = interesting_value(rng);
            match value.pointer_mut(&path)? {
                Value::Object(map) => {
                    map.insert(key.to_owned(), added);
                }
                Value::Array(items) => items.push(added),
                _ => return None,
            }
        }
        3 => {
            // Copy a subtree of this or another JSON input over this node.
            let donor_bytes = &pool[rng.gen_range(0..pool.len())];
            let donor: Value = serde_json::from_slice(donor_bytes).unwrap_or_else(|_| value.clone());
            let mut donor_paths = Vec::new();
            pointers(&donor, String::new(), &mut donor_paths);
            let from = &donor_paths[rng.gen_range(0..donor_paths.len())];
            let subtree = donor.pointer(from)?.clone();
            *value.pointer_mut(&path)? = subtree;
        }
        4 => {
            // Wrap in an array (a single statement becomes a batch, a
            // context activity becomes a list…), or unwrap one.
            let node = value.pointer_mut(&path)?;
            let taken = node.take();
            *node = match taken {
                Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
                other => Value::Array(vec![other.clone(), other]),
            };
        }
        _ => {
            // Set objectType to each of its values.
            const KINDS: [&str; 6] = ["Activity", "Agent", "Group", "StatementRef", "SubStatement", "Person"];
            if let Value::Object(map) = value.pointer_mut(&path)? {
                map.insert("objectType".to_owned(), Value::String(KINDS[rng.gen_range(0..KINDS.len())].to_owned()));
            } else {
                return None;
            }
        }
    }
    if rng.gen_bool(0.5) { serde_json::to_vec(&value).ok() } else { serde_json::to_vec_pretty(&value).ok() }
}

fn random_range(rng: &mut StdRng, len: usize) -> (usize, usize) {
    let start = rng.gen_range(0..=len);
    let max = (len - start).min(64);
    let end = start + rng.gen_range(0..=max);
    (start, end)
}

/// One input derived from the pool by stacked random mutations.
pub fn mutate(pool: &[Vec<u8>], rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let mut data = pool[rng.gen_range(0..pool.len())].clone();
    let rounds = 1 << rng.gen_range(0..4);
    for _ in 0..rounds {
        let len = data.len();
        match rng.gen_range(0..16) {
            0 if len > 0 => {
                let at = rng.gen_range(0..len);
                data[at] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let at = rng.gen_range(0..len);
                const BYTES: [u8; 12] = [0, 0xff, 0x7f, 0x80, b'"', b'\\', b'{', b'}', b'\n', b'\r', b'-', b'&'];
                data[at] = if rng.gen_bool(0.5) { BYTES[rng.gen_range(0..BYTES.len())] } else { rng.r#gen() };
            }
            2 => {
                let at = rng.gen_range(0..=len);
                let count = rng.gen_range(1..8);
                for _ in 0..count {
                    data.insert(at, rng.r#gen());
                }
            }
            3 if len > 0 => {
                let (start, end) = random_range(rng, len);
                data.drain(start..end);
            }
            4 if len > 0 => {
                // Duplicate a chunk somewhere.
                let (start, end) = random_range(rng, len);
                let chunk = data[start..end].to_vec();
                let at = rng.gen_range(0..=len);
                data.splice(at..at, chunk);
            }
            5 | 6 => {
                let token = DICTIONARY[rng.gen_range(0..DICTIONARY.len())];
                let at = rng.gen_range(0..=len);
                data.splice(at..at, token.iter().copied());
            }
            7 if len > 0 => {
                // Overwrite with a token.
                let token = DICTIONARY[rng.gen_range(0..DICTIONARY.len())];
                let at = rng.gen_range(0..len);
                let end = (at + token.len()).min(len);
                data.splice(at..end, token.iter().copied());
            }
            8 => {
                // Splice: a prefix of this input, a suffix of another.
                let other = &pool[rng.gen_range(0..pool.len())];
                let cut = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            9 => {
                // Insert a chunk of another input.
                let other = &pool[rng.gen_range(0..pool.len())];
                let (start, end) = random_range(rng, other.len());
                let at = rng.gen_range(0..=len);
                data.splice(at..at, other[start..end].iter().copied());
            }
            10 if len > 0 => {
                // Replace a run of digits with an extreme number.
                let at = rng.gen_range(0..len);
                if let Some(offset) = data[at..].iter().position(u8::is_ascii_digit) {
                    let start = at + offset;
                    let end = start + data[start..].iter().take_while(|b| b.is_ascii_digit()).count();
                    const NUMBERS: [&[u8]; 8] = [
                        b"0",
                        b"99",
                        b"4294967296",
                        b"18446744073709551616",
                        b"99999999999999999999999999999999999999999",
                        b"1e309",
                        b"00",
                        b"60",
                    ];
                    data.splice(start..end, NUMBERS[rng.gen_range(0..NUMBERS.len())].iter().copied());
                }
            }
            11 | 12 => {
                if let Some(mutated) = mutate_json(&data, pool, rng) {
                    data = mutated;
                }
            }
            13 if len > 0 => {
                data.truncate(rng.gen_range(0..len));
            }
            14 => {
                // Deep nesting.
                const OPENERS: [&[u8]; 3] =
                    [b"[", b"{\"a\":", b"{\"object\":{\"objectType\":\"SubStatement\",\"object\":"];
                let opener = OPENERS[rng.gen_range(0..OPENERS.len())];
                let depth = rng.gen_range(1..300);
                let at = rng.gen_range(0..=len);
                let nested: Vec<u8> = opener.iter().copied().cycle().take(opener.len() * depth).collect();
                data.splice(at..at, nested);
            }
            15 if len > 0 => {
                // Flip the case of an ASCII letter (header names, hex, tags).
                let at = rng.gen_range(0..len);
                if data[at].is_ascii_alphabetic() {
                    data[at] ^= 0x20;
                }
            }
            _ => {
                let at = rng.gen_range(0..=len);
                data.insert(at, rng.r#gen());
            }
        }
        if data.len() > max_len {
            data.truncate(max_len);
        }
    }
    data
}
