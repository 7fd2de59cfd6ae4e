//! The HTTP load driver: plans requests from the generator on a thread of
//! its own (ahead of the timed phase), sends them closed-loop (C workers
//! back to back) or open-loop (at a fixed rate, latency from the scheduled
//! time), and records latencies in HDR histograms per request kind.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use hdrhistogram::Histogram;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::generator::{Generator, GeneratorConfig, format_timestamp};
use crate::procstat::{Disk, HostTicks, SAMPLE_EVERY, Sampler, ticks_per_second};
use crate::report::{Errors, HostReport, KindReport, LatencySummary, OpenLoopReport, Report, new_histogram};

/// A request sent later than this after its scheduled time counts as late.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(2);
/// Memory the pre-generated requests may take.
const PREFILL_BYTES: usize = 96 << 20;
/// Typical size of one generated statement, for sizing the queue.
const STATEMENT_BYTES: usize = 1_100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// POST /xapi/statements with one statement each.
    Single,
    /// POST /xapi/statements with arrays of `batch_size` statements.
    Batch,
    /// Writes and reads mixed by [`MIX`].
    Mixed,
    /// Only the reads of [`MIX`] that ask about stored statements (statement
    /// queries, transcripts, uptake), in the same proportions: the latency
    /// of a store that serves readers while no write competes for the cores.
    Reads,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Batch => "batch",
            Self::Mixed => "mixed",
            Self::Reads => "reads",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Measure for this long (after the warm-up).
    Duration(Duration),
    /// Measure this many requests (after the warm-up).
    Count(u64),
}

/// What to do in open-loop mode when `concurrency` requests are in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Skip the request and count it as dropped.
    Drop,
    /// Wait for a free slot; the wait shows as latency (from the scheduled time).
    Queue,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub key: String,
    pub secret: String,
    pub scenario: Scenario,
    pub batch_size: usize,
    pub concurrency: usize,
    pub stop: Stop,
    /// Requests per second, open-loop; `None` for closed-loop.
    pub rate: Option<f64>,
    pub overflow: Overflow,
    pub warmup: Duration,
    pub timeout: Duration,
    /// `X-Experience-API-Version` to send: `1.0.3` or `2.0.0`.
    pub xapi_version: String,
    pub generator: GeneratorConfig,
    /// Statements of the generator's stream to pass over before planning, so
    /// that the reads of a run against a store loaded with the first `skip`
    /// statements of the same seed ask about learners, registrations and days
    /// it holds (`generate --statements N` then `lrs import`, then `--skip N`).
    pub skip: u64,
    /// Process whose CPU and memory to sample.
    pub server_pid: Option<u32>,
    /// A path on the disk whose writes to count (the server's data
    /// directory).
    pub disk_of: Option<std::path::PathBuf>,
    /// Before the run, POST the generator's organisations.csv and
    /// learners.csv to /admin/organisations and /admin/learners (scope `all`).
    pub load_directories: bool,
}

/// The kinds of request, as named in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    WriteSingle,
    WriteBatch,
    ReadAgent,
    ReadActivity,
    ReadVerb,
    ReadRegistration,
    ReadSince,
    StatePut,
    StatePost,
    StateGet,
    Transcript,
    Uptake,
}

impl Kind {
    /// Whether the `reads` scenario sends this kind: a read of what is
    /// stored (state documents are left out; the run creates none).
    pub fn reads_stored(self) -> bool {
        matches!(
            self,
            Self::ReadAgent
                | Self::ReadActivity
                | Self::ReadVerb
                | Self::ReadRegistration
                | Self::ReadSince
                | Self::Transcript
                | Self::Uptake
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::WriteSingle => "write/single",
            Self::WriteBatch => "write/batch",
            Self::ReadAgent => "read/statements?agent",
            Self::ReadActivity => "read/statements?activity",
            Self::ReadVerb => "read/statements?verb",
            Self::ReadRegistration => "read/statements?registration",
            Self::ReadSince => "read/statements?since",
            Self::StatePut => "state/put",
            Self::StatePost => "state/post",
            Self::StateGet => "state/get",
            Self::Transcript => "analytics/transcript",
            Self::Uptake => "analytics/uptake",
        }
    }
}

/// The `mixed` scenario: relative weights of each kind of request.
/// `state/put` creates a state document (one per learner, activity and
/// registration); `state/post` merges into one created earlier (POST needs
/// no precondition in either xAPI version); `state/get` reads one back.
pub const MIX: &[(Kind, u32)] = &[
    (Kind::WriteSingle, 30),
    (Kind::WriteBatch, 10),
    (Kind::ReadAgent, 10),
    (Kind::ReadActivity, 6),
    (Kind::ReadVerb, 4),
    (Kind::ReadRegistration, 6),
    (Kind::ReadSince, 4),
    (Kind::StatePut, 3),
    (Kind::StatePost, 3),
    (Kind::StateGet, 8),
    (Kind::Transcript, 10),
    (Kind::Uptake, 6),
];

/// A state document is read or merged into only this many requests after the PUT that created it.
const STATE_SETTLE: u64 = 256;
/// `limit` of statement queries: what a client paging through results asks for.
const READ_LIMIT: u32 = 50;

/// One request, ready to send.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: Kind,
    pub method: Method,
    /// Path and query, appended to the base URL.
    pub path: String,
    pub body: Option<Bytes>,
    /// Statements in the body.
    pub statements: u64,
    /// `since` = this many seconds before the time of sending.
    pub since_secs: Option<u64>,
}

/// Turns the generator's output into requests.
pub struct Planner {
    generator: Generator,
    scenario: Scenario,
    batch_size: usize,
    /// Query strings of state documents created so far (bounded), with the
    /// number of the request that created them.
    states: VecDeque<(u64, String)>,
    /// Requests planned so far.
    planned: u64,
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    serializer.finish()
}

impl Planner {
    pub fn new(generator: Generator, scenario: Scenario, batch_size: usize) -> Self {
        Self { generator, scenario, batch_size: batch_size.max(1), states: VecDeque::new(), planned: 0 }
    }

    pub fn next_request(&mut self) -> Planned {
        self.planned += 1;
        let kind = match self.scenario {
            Scenario::Single => Kind::WriteSingle,
            Scenario::Batch => Kind::WriteBatch,
            Scenario::Mixed => self.pick(|_| true),
            Scenario::Reads => self.pick(Kind::reads_stored),
        };
        self.plan(kind)
    }

    /// A kind of request drawn from [`MIX`] by weight, among those `admitted`.
    fn pick(&mut self, admitted: fn(Kind) -> bool) -> Kind {
        let mix = MIX.iter().filter(|(kind, _)| admitted(*kind));
        let total: u64 = mix.clone().map(|(_, weight)| u64::from(*weight)).sum();
        let mut roll = self.generator.aux_below(total);
        for (kind, weight) in mix {
            if roll < u64::from(*weight) {
                return *kind;
            }
            roll -= u64::from(*weight);
        }
        Kind::WriteSingle
    }

    /// Passes over the next `count` statements of the generator's stream.
    pub fn skip(&mut self, count: u64) {
        let mut scratch = Vec::with_capacity(4 * STATEMENT_BYTES);
        for _ in 0..count {
            scratch.clear();
            self.generator.write_next_statement(&mut scratch);
        }
    }

    fn get(kind: Kind, path: String) -> Planned {
        Planned { kind, method: Method::GET, path, body: None, statements: 0, since_secs: None }
    }

    fn plan(&mut self, kind: Kind) -> Planned {
        let limit = READ_LIMIT.to_string();
        match kind {
            Kind::WriteSingle => {
                let mut body = Vec::with_capacity(2 * STATEMENT_BYTES);
                self.generator.write_next_statement(&mut body);
                Planned {
                    kind,
                    method: Method::POST,
                    path: "/xapi/statements".to_owned(),
                    body: Some(Bytes::from(body)),
                    statements: 1,
                    since_secs: None,
                }
            }
            Kind::WriteBatch => {
                let mut body = Vec::with_capacity(self.batch_size * STATEMENT_BYTES + 2);
                body.push(b'[');
                for n in 0..self.batch_size {
                    if n > 0 {
                        body.push(b',');
                    }
                    self.generator.write_next_statement(&mut body);
                }
                body.push(b']');
                Planned {
                    kind,
                    method: Method::POST,
                    path: "/xapi/statements".to_owned(),
                    body: Some(Bytes::from(body)),
                    statements: self.batch_size as u64,
                    since_secs: None,
                }
            }
            Kind::ReadAgent => {
                let learner = if self.generator.aux_below(10) < 8 {
                    self.generator.active_learner().clone()
                } else {
                    self.generator.random_learner().clone()
                };
                let agent = self.generator.learner_agent_ifi(&learner).to_string();
                Self::get(kind, format!("/xapi/statements?{}", query(&[("agent", &agent), ("limit", &limit)])))
            }
            Kind::ReadActivity => {
                let activity = self.generator.random_activity_id();
                Self::get(kind, format!("/xapi/statements?{}", query(&[("activity", &activity), ("limit", &limit)])))
            }
            Kind::ReadVerb => {
                let verb = self.generator.random_verb_id();
                Self::get(kind, format!("/xapi/statements?{}", query(&[("verb", &verb), ("limit", &limit)])))
            }
            Kind::ReadRegistration => match self.generator.recent_registration() {
                Some(registration) => Self::get(
                    kind,
                    format!("/xapi/statements?{}", query(&[("registration", &registration), ("limit", &limit)])),
                ),
                None => self.plan(Kind::ReadAgent),
            },
            Kind::ReadSince => {
                let mut planned = Self::get(kind, format!("/xapi/statements?{}", query(&[("limit", &limit)])));
                planned.since_secs = Some(1 + self.generator.aux_below(60));
                planned
            }
            Kind::StatePut => {
                let learner = self.generator.active_learner().clone();
                let agent = self.generator.learner_agent_ifi(&learner).to_string();
                let activity = self.generator.random_activity_id();
                let registration = self.generator.recent_registration().unwrap_or_default();
                let mut pairs =
                    vec![("activityId", activity.as_str()), ("agent", agent.as_str()), ("stateId", "resume")];
                if !registration.is_empty() {
                    pairs.push(("registration", registration.as_str()));
                }
                let address = query(&pairs);
                if self.states.iter().any(|(_, a)| *a == address) {
                    return self.plan(Kind::StatePost);
                }
                self.states.push_back((self.planned, address.clone()));
                if self.states.len() > 4096 {
                    self.states.pop_front();
                }
                self.state_write(kind, Method::PUT, address)
            }
            Kind::StatePost | Kind::StateGet => {
                // Only documents whose PUT was planned well before, so that
                // it has been answered by the time this request is sent.
                let settled = self.states.iter().take_while(|(n, _)| n + STATE_SETTLE <= self.planned).count();
                if settled == 0 {
                    return self.plan(Kind::StatePut);
                }
                let index = self.generator.aux_below(settled as u64) as usize;
                let address = self.states[index].1.clone();
                if kind == Kind::StateGet {
                    Self::get(kind, format!("/xapi/activities/state?{address}"))
                } else {
                    self.state_write(kind, Method::POST, address)
                }
            }
            Kind::Transcript => {
                let learner = self.generator.active_learner().account.clone();
                Self::get(kind, format!("/analytics/learners/{learner}/transcript"))
            }
            Kind::Uptake => {
                let organisation = self.generator.random_organisation().code.clone();
                let granularity = ["day", "week", "week", "month"][self.generator.aux_below(4) as usize];
                let (start, now) = (self.generator.start_ms(), self.generator.now_ms());
                let from = crate::generator::format_date(start);
                let to = crate::generator::format_date(now.max(start));
                let pairs =
                    [("org", organisation.as_str()), ("from", &from), ("to", &to), ("granularity", granularity)];
                Self::get(kind, format!("/analytics/uptake?{}", query(&pairs)))
            }
        }
    }

    fn state_write(&mut self, kind: Kind, method: Method, address: String) -> Planned {
        let step = 1 + self.generator.aux_below(12);
        let progress = self.generator.aux_below(101);
        let document = json!({
            "bookmark": format!("step-{step}"),
            "progress": progress as f64 / 100.0,
            "updated": format_timestamp(self.generator.now_ms()),
            "suspend_data": format!("{{\"visited\":[1,{step}],\"answers\":\"{}\"}}", "a".repeat(step as usize * 8)),
        });
        Planned {
            kind,
            method,
            path: format!("/xapi/activities/state?{address}"),
            body: Some(Bytes::from(document.to_string())),
            statements: 0,
            since_secs: None,
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    Transport,
    Timeout,
}

#[derive(Debug)]
struct KindStats {
    requests: u64,
    ok: u64,
    statements: u64,
    errors: Errors,
    histogram: Histogram<u64>,
}

impl KindStats {
    fn new() -> Self {
        Self { requests: 0, ok: 0, statements: 0, errors: Errors::default(), histogram: new_histogram() }
    }

    fn record(&mut self, statements: u64, outcome: Outcome, latency_us: u64) {
        self.requests += 1;
        self.histogram.saturating_record(latency_us.max(1));
        match outcome {
            Outcome::Status(code) if (200..300).contains(&code) => {
                self.ok += 1;
                self.statements += statements;
            }
            Outcome::Status(code) => {
                self.errors.total += 1;
                *self.errors.status.entry(code.to_string()).or_insert(0) += 1;
            }
            Outcome::Transport => {
                self.errors.total += 1;
                self.errors.transport += 1;
            }
            Outcome::Timeout => {
                self.errors.total += 1;
                self.errors.timeout += 1;
            }
        }
    }
}

/// Measurements, shared by the senders.
#[derive(Debug, Default)]
struct Recorder {
    kinds: BTreeMap<Kind, KindStats>,
    statements_sent: u64,
}

impl Recorder {
    fn record(&mut self, kind: Kind, statements: u64, outcome: Outcome, latency: Duration) {
        self.statements_sent += statements;
        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.kinds.entry(kind).or_insert_with(KindStats::new).record(statements, outcome, latency_us);
    }
}

struct Shared {
    client: reqwest::Client,
    base: String,
    recorder: Mutex<Recorder>,
    stalls: AtomicU64,
}

impl Shared {
    fn record(&self, kind: Kind, statements: u64, outcome: Outcome, latency: Duration) {
        if let Ok(mut recorder) = self.recorder.lock() {
            recorder.record(kind, statements, outcome, latency);
        }
    }

    async fn send(&self, planned: &Planned) -> Outcome {
        let mut url = format!("{}{}", self.base, planned.path);
        if let Some(seconds) = planned.since_secs {
            let since = chrono::Utc::now() - chrono::Duration::seconds(seconds as i64);
            url.push_str("&since=");
            url.push_str(&since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        }
        let mut request = self.client.request(planned.method.clone(), url);
        if let Some(body) = &planned.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.clone());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(_) => Outcome::Status(status),
                    Err(e) if e.is_timeout() => Outcome::Timeout,
                    Err(_) => Outcome::Transport,
                }
            }
            Err(e) if e.is_timeout() => Outcome::Timeout,
            Err(_) => Outcome::Transport,
        }
    }
}

/// Receives the next planned request, counting a stall when none was ready.
async fn next_planned(shared: &Shared, receiver: &mut mpsc::Receiver<Planned>) -> Option<Planned> {
    match receiver.try_recv() {
        Ok(planned) => Some(planned),
        Err(mpsc::error::TryRecvError::Empty) => {
            shared.stalls.fetch_add(1, Ordering::Relaxed);
            receiver.recv().await
        }
        Err(mpsc::error::TryRecvError::Disconnected) => None,
    }
}

fn client(config: &RunConfig) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    headers.insert("X-Experience-API-Version", HeaderValue::from_str(&config.xapi_version)?);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", config.key, config.secret));
    let mut authorization = HeaderValue::from_str(&format!("Basic {token}")).context("credentials")?;
    authorization.set_sensitive(true);
    headers.insert(AUTHORIZATION, authorization);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(config.concurrency)
        .tcp_nodelay(true)
        .timeout(config.timeout)
        .no_proxy()
        .build()?)
}

/// Starts the planning thread. The receiver yields requests until the
/// planned total is reached (when the run's length in requests is known:
/// a count without warm-up, or open-loop), else until it is dropped.
/// The returned future resolves once the pre-generated requests are queued.
fn start_planner(config: &RunConfig) -> (mpsc::Receiver<Planned>, oneshot::Receiver<()>) {
    let batch = config.batch_size.max(1);
    let per_request = match config.scenario {
        Scenario::Single => STATEMENT_BYTES,
        Scenario::Batch => batch * STATEMENT_BYTES,
        Scenario::Mixed => (batch / 10 + 1) * STATEMENT_BYTES,
        Scenario::Reads => 256,
    };
    let capacity = (PREFILL_BYTES / per_request).clamp(256, 250_000);
    let limit = match (config.stop, config.rate) {
        (Stop::Count(n), Some(rate)) => Some(n as usize + (config.warmup.as_secs_f64() * rate).round() as usize),
        (Stop::Count(n), None) if config.warmup.is_zero() => Some(n as usize + config.concurrency),
        (Stop::Duration(d), Some(rate)) => {
            Some((d.as_secs_f64() * rate).round() as usize + (config.warmup.as_secs_f64() * rate).round() as usize)
        }
        _ => None,
    };
    let prefill = limit.unwrap_or(capacity).clamp(1, capacity);
    let (sender, receiver) = mpsc::channel(capacity);
    let (ready, ready_receiver) = oneshot::channel();
    let generator = Generator::new(config.generator.clone());
    let mut planner = Planner::new(generator, config.scenario, config.batch_size);
    let skip = config.skip;
    std::thread::spawn(move || {
        planner.skip(skip);
        let mut ready = Some(ready);
        let mut queued = 0usize;
        while limit.is_none_or(|limit| queued < limit) {
            if sender.blocking_send(planner.next_request()).is_err() {
                break;
            }
            queued += 1;
            if queued >= prefill
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
    });
    (receiver, ready_receiver)
}

/// Runs a load test and returns its report.
pub async fn run(config: RunConfig) -> anyhow::Result<Report> {
    if config.concurrency == 0 {
        bail!("concurrency must be at least 1");
    }
    if config.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("rate must be a positive number of requests per second");
    }
    let shared = Arc::new(Shared {
        client: client(&config)?,
        base: config.url.trim_end_matches('/').to_owned(),
        recorder: Mutex::new(Recorder::default()),
        stalls: AtomicU64::new(0),
    });
    if config.load_directories {
        load_directories(&config, &shared).await?;
    }
    let (receiver, ready) = start_planner(&config);
    let _ = ready.await;
    shared.stalls.store(0, Ordering::Relaxed);

    let ticks = ticks_per_second();
    let sampling = Arc::new(AtomicBool::new(true));
    let t0 = Instant::now();
    let measure_start = t0 + config.warmup;
    let sampler_task = {
        let sampling = sampling.clone();
        let server_pid = config.server_pid;
        let disk = config.disk_of.as_deref().and_then(Disk::of);
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start.into()).await;
            let mut server = server_pid.map(|pid| Sampler::new(pid, ticks));
            let mut client = Sampler::new(std::process::id(), ticks);
            let host_before = HostTicks::read();
            let disk_before = disk.as_ref().and_then(|disk| Some((disk, disk.written_bytes()?)));
            let mut interval = tokio::time::interval(SAMPLE_EVERY);
            loop {
                interval.tick().await;
                if let Some(server) = &mut server {
                    server.sample();
                }
                client.sample();
                if !sampling.load(Ordering::Relaxed) {
                    break;
                }
            }
            // A run shorter than a clock tick has no host figures, and would
            // lose the disk's with them: wait (briefly) for the next tick.
            let mut host_after = HostTicks::read();
            let tick_deadline = Instant::now() + std::time::Duration::from_millis(200);
            while host_before.zip(host_after).is_some_and(|(before, after)| after.total == before.total)
                && Instant::now() < tick_deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                host_after = HostTicks::read();
            }
            let host = host_before
                .zip(host_after)
                .and_then(|(before, after)| after.since(before))
                .map(|host| HostReport { disk: disk_before.and_then(|(disk, before)| disk.since(before)), ..host });
            (server.and_then(|s| s.report()), client.report(), host)
        })
    };

    let open_loop = match config.rate {
        Some(rate) => Some(open_loop(&config, rate, shared.clone(), receiver, t0, measure_start).await),
        None => {
            closed_loop(&config, shared.clone(), receiver, measure_start).await;
            None
        }
    };
    let finished = Instant::now();
    sampling.store(false, Ordering::Relaxed);
    let (server, client, host) = sampler_task.await.unwrap_or((None, None, None));

    let duration = finished.saturating_duration_since(measure_start).as_secs_f64().max(1e-9);
    let recorder = shared.recorder.lock().map_err(|_| anyhow::anyhow!("a sender panicked"))?;
    let mut overall = new_histogram();
    let mut errors = Errors::default();
    let mut kinds = BTreeMap::new();
    let (mut requests, mut ok, mut accepted) = (0, 0, 0);
    for (kind, stats) in &recorder.kinds {
        let _ = overall.add(&stats.histogram);
        requests += stats.requests;
        ok += stats.ok;
        accepted += stats.statements;
        errors.total += stats.errors.total;
        errors.transport += stats.errors.transport;
        errors.timeout += stats.errors.timeout;
        for (code, n) in &stats.errors.status {
            *errors.status.entry(code.clone()).or_insert(0) += n;
        }
        kinds.insert(
            kind.name().to_owned(),
            KindReport {
                requests: stats.requests,
                requests_ok: stats.ok,
                statements_accepted: stats.statements,
                errors: stats.errors.clone(),
                latency_us: LatencySummary::of(&stats.histogram),
            },
        );
    }
    let round = |x: f64| (x * 10.0).round() / 10.0;
    Ok(Report {
        tool: "lrs-load",
        report_version: 1,
        scenario: config.scenario.name().to_owned(),
        mode: if config.rate.is_some() { "open-loop" } else { "closed-loop" },
        url: config.url.clone(),
        xapi_version: config.xapi_version.clone(),
        batch_size: config.batch_size,
        concurrency: config.concurrency,
        rate_per_s: config.rate,
        seed: config.generator.seed,
        warmup_s: config.warmup.as_secs_f64(),
        duration_s: (duration * 1000.0).round() / 1000.0,
        requests,
        requests_ok: ok,
        requests_failed: requests - ok,
        requests_per_s: round(requests as f64 / duration),
        statements_sent: recorder.statements_sent,
        statements_accepted: accepted,
        statements_per_s: round(accepted as f64 / duration),
        latency_us: LatencySummary::of(&overall),
        errors,
        open_loop,
        generator_stalls: shared.stalls.load(Ordering::Relaxed),
        kinds,
        server,
        client,
        host,
    })
}

/// Loads the learner and organisation directories of the generator's population.
async fn load_directories(config: &RunConfig, shared: &Shared) -> anyhow::Result<()> {
    let generator = Generator::new(config.generator.clone());
    for (path, body) in
        [("/admin/organisations", generator.organisations_csv()), ("/admin/learners", generator.learners_csv())]
    {
        let response = shared
            .client
            .post(format!("{}{path}", shared.base))
            .header(CONTENT_TYPE, "text/csv")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("POST {path} answered {status}");
        }
    }
    Ok(())
}

async fn closed_loop(
    config: &RunConfig,
    shared: Arc<Shared>,
    receiver: mpsc::Receiver<Planned>,
    measure_start: Instant,
) {
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let claimed = Arc::new(AtomicU64::new(0));
    let end = match config.stop {
        Stop::Duration(d) => Some(measure_start + d),
        Stop::Count(_) => None,
    };
    let count = match config.stop {
        Stop::Count(n) => Some(n),
        Stop::Duration(_) => None,
    };
    let mut workers = Vec::new();
    for _ in 0..config.concurrency {
        let (shared, receiver, claimed) = (shared.clone(), receiver.clone(), claimed.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let planned = {
                    let mut receiver = receiver.lock().await;
                    match next_planned(&shared, &mut receiver).await {
                        Some(planned) => planned,
                        None => break,
                    }
                };
                let start = Instant::now();
                if end.is_some_and(|end| start >= end) {
                    break;
                }
                let measured = start >= measure_start;
                if measured && count.is_some_and(|n| claimed.fetch_add(1, Ordering::Relaxed) >= n) {
                    break;
                }
                let outcome = shared.send(&planned).await;
                if measured {
                    shared.record(planned.kind, planned.statements, outcome, start.elapsed());
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

async fn open_loop(
    config: &RunConfig,
    rate: f64,
    shared: Arc<Shared>,
    mut receiver: mpsc::Receiver<Planned>,
    t0: Instant,
    measure_start: Instant,
) -> OpenLoopReport {
    let warmup_ticks = (config.warmup.as_secs_f64() * rate).round() as u64;
    let measured_ticks = match config.stop {
        Stop::Count(n) => n,
        Stop::Duration(d) => (d.as_secs_f64() * rate).round() as u64,
    };
    let permits = u32::try_from(config.concurrency).unwrap_or(u32::MAX >> 3).min(Semaphore::MAX_PERMITS as u32);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let mut report = OpenLoopReport { late_threshold_ms: LATE_THRESHOLD.as_millis() as u64, ..Default::default() };
    for tick in 0..warmup_ticks + measured_ticks {
        let measured = tick >= warmup_ticks;
        let scheduled = if measured {
            measure_start + Duration::from_secs_f64((tick - warmup_ticks) as f64 / rate)
        } else {
            t0 + Duration::from_secs_f64(tick as f64 / rate)
        };
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        let Some(planned) = next_planned(&shared, &mut receiver).await else {
            break;
        };
        if measured {
            report.scheduled += 1;
        }
        let permit = match config.overflow {
            Overflow::Drop => match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    if measured {
                        report.dropped += 1;
                    }
                    continue;
                }
            },
            Overflow::Queue => match slots.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if measured {
            report.sent += 1;
            if Instant::now().saturating_duration_since(scheduled) > LATE_THRESHOLD {
                report.late += 1;
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let outcome = shared.send(&planned).await;
            if measured {
                shared.record(planned.kind, planned.statements, outcome, scheduled.elapsed());
            }
            drop(permit);
        });
    }
    let _ = slots.acquire_many(permits).await;
    report
}
