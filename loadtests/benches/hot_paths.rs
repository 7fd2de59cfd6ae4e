//! The store's hot paths, per statement, with criterion: what a write
//! costs the server before the log (parse, validate, fingerprint), the
//! event it becomes (encode, decode), and what applying it costs each
//! projection, in the shapes the projectors see them: events of one
//! statement sixteen to a batch (single POSTs grouped by the writer) and
//! events of a hundred (POSTed batches, imports, replays).
//!
//! Statements come from the load tool's generator (realistic Learning Hub
//! traffic), completed as the server stores them. The projections are
//! opened on disk as `lrs serve` opens them, and grow while measured.
//!
//!     cargo bench -p lrs-load --bench hot_paths
//!     cargo bench -p lrs-load --bench hot_paths -- validate   # one group

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use uuid::Uuid;

use lrs_eventlog::LogRecord;
use lrs_hub::HubViews;
use lrs_hub::frameworks::Frameworks;
use lrs_load::{Generator, GeneratorConfig};
use lrs_projection::{StoreOptions, Views};
use lrs_xapi::events::{Event, LearnerEntry, OrganisationEntry, decode, encode};
use lrs_xapi::statement::{complete_for_storage, content_fingerprint, statement_id};
use lrs_xapi::{StatementValidator, XapiVersion};

/// The allocator of the `lrs` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sled's page cache for each projection, as `lrs serve` opens them.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

fn generator() -> Generator {
    Generator::new(GeneratorConfig { seed: 5, learners: 20_000, organisations: 60, ..GeneratorConfig::default() })
}

/// Completes generated statements as the writer stores them: `stored`
/// later each time, an authority and a version.
struct Completer {
    stored: DateTime<Utc>,
    authority: Value,
}

impl Completer {
    fn new() -> Self {
        Self {
            stored: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc),
            authority: json!({ "objectType": "Agent", "name": "bench",
                               "account": { "homePage": "https://lrs.example", "name": "bench" } }),
        }
    }

    fn complete(&mut self, mut statement: Value) -> Value {
        self.stored += chrono::Duration::milliseconds(3);
        let id = statement_id(&statement).unwrap_or_else(Uuid::new_v4);
        complete_for_storage(&mut statement, id, self.stored, &self.authority, XapiVersion::V1_0_3);
        statement
    }
}

/// The organisation and learner directories of `generator`, as the
/// import commands append them.
fn directory_events(generator: &Generator) -> Vec<Event> {
    let organisations = generator
        .organisations()
        .iter()
        .map(|o| OrganisationEntry { code: o.code.clone(), name: o.name.clone(), parent: o.parent.clone() })
        .collect();
    let learners = generator
        .learners()
        .iter()
        .map(|l| LearnerEntry {
            learner: lrs_hub::facts::learning_hub_learner(&l.account),
            organisation: generator.organisations()[l.organisation].code.clone(),
            staff_group: Some(l.staff_group.to_owned()),
        })
        .collect();
    vec![Event::OrganisationsImported { organisations }, Event::LearnersImported { learners }]
}

/// Writes a log's records: the next offsets, in order.
struct Records {
    next: u64,
}

impl Records {
    fn of(&mut self, events: &[Event]) -> Vec<LogRecord> {
        events
            .iter()
            .map(|event| {
                self.next += 1;
                LogRecord { offset: self.next - 1, payload: encode(event) }
            })
            .collect()
    }
}

/// Both projections on disk, the hub following the xAPI views' decisions
/// as in `lrs serve`, with the directories applied.
struct Projections {
    _dir: tempfile::TempDir,
    views: Arc<Views>,
    hub: HubViews,
    generator: Generator,
    completer: Completer,
    records: Records,
}

impl Projections {
    fn open() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let views = Arc::new(Views::open(&dir.path().join("views"), StoreOptions::cache(CACHE_BYTES)).unwrap());
        let frameworks = Frameworks::parse(include_str!("../../schemas/examples/competency-frameworks.json")).unwrap();
        let hub = HubViews::open(&dir.path().join("hub"), StoreOptions::cache(CACHE_BYTES), frameworks).unwrap();
        hub.follow_decisions_of(views.clone());
        let generator = generator();
        let mut records = Records { next: 0 };
        let directories = records.of(&directory_events(&generator));
        views.apply(&directories).unwrap();
        hub.apply(&directories).unwrap();
        Self { _dir: dir, views, hub, generator, completer: Completer::new(), records }
    }

    /// The next `events` statement events of `per_event` statements each.
    fn next_records(&mut self, events: usize, per_event: usize) -> Vec<LogRecord> {
        let events: Vec<Event> = (0..events)
            .map(|_| Event::StatementsStored {
                statements: (0..per_event).map(|_| self.completer.complete(self.generator.next_statement())).collect(),
                attachments: Vec::new(),
            })
            .collect();
        self.records.of(&events)
    }
}

/// Benchmarks `apply` on `store` under `name`, timing only `apply`: each
/// iteration's batch is made (untimed) by `next`.
fn bench_applying(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: String,
    mut store: Projections,
    next: impl Fn(&mut Projections) -> Vec<LogRecord>,
    apply: impl Fn(&Projections, &[LogRecord]),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let records = next(&mut store);
                let began = Instant::now();
                apply(&store, &records);
                spent += began.elapsed();
            }
            spent
        })
    });
}

fn request_path(c: &mut Criterion) {
    let mut completer = Completer::new();
    let statements: Vec<Value> = generator().take(1_000).collect();
    let texts: Vec<Vec<u8>> = statements.iter().map(|s| serde_json::to_vec(s).unwrap()).collect();
    let validator = StatementValidator::new().unwrap();
    let mut group = c.benchmark_group("statement");
    group.throughput(Throughput::Elements(1));
    let mut n = 0;
    group.bench_function("parse", |b| {
        b.iter(|| {
            n = (n + 1) % texts.len();
            serde_json::from_slice::<Value>(&texts[n]).unwrap()
        })
    });
    for version in [XapiVersion::V1_0_3, XapiVersion::V2_0_0] {
        group.bench_function(format!("validate {version}"), |b| {
            b.iter(|| {
                n = (n + 1) % statements.len();
                validator.validate(version, &statements[n]).unwrap()
            })
        });
    }
    group.bench_function("fingerprint", |b| {
        b.iter(|| {
            n = (n + 1) % statements.len();
            content_fingerprint(&statements[n])
        })
    });
    group.finish();

    let event = Event::StatementsStored {
        statements: statements.iter().take(100).map(|s| completer.complete(s.clone())).collect(),
        attachments: Vec::new(),
    };
    let payload = encode(&event);
    let mut group = c.benchmark_group("event of 100 statements");
    group.throughput(Throughput::Elements(100));
    group.bench_function("encode", |b| b.iter(|| encode(&event)));
    // The decoded event is dropped untimed (the parsed statements of
    // `parse` are dropped in the timed loop).
    group.bench_function("decode", |b| b.iter_batched(|| (), |()| decode(&payload).unwrap(), BatchSize::SmallInput));
    group.finish();
}

fn projections(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    // (shape, events per batch, statements per event)
    // A batch of one is what a projection that keeps up with single POSTs
    // applies; a backlog gives it several events at once.
    for (shape, events, per_event) in
        [("1 event of 1 statement", 1, 1), ("16 events of 1 statement", 16, 1), ("1 event of 100 statements", 1, 100)]
    {
        group.throughput(Throughput::Elements((events * per_event) as u64));
        // The xAPI views alone (the hub of this store is left behind).
        bench_applying(
            &mut group,
            format!("xAPI views, {shape}"),
            Projections::open(),
            |store| store.next_records(events, per_event),
            |store, records| store.views.apply(records).unwrap(),
        );
        // The hub, each batch applied to the xAPI views first (untimed),
        // whose decisions it follows.
        bench_applying(
            &mut group,
            format!("Learning Hub views, {shape}"),
            Projections::open(),
            |store| {
                let records = store.next_records(events, per_event);
                store.views.apply(&records).unwrap();
                records
            },
            |store, records| store.hub.apply(records).unwrap(),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = request_path, projections
}
criterion_main!(benches);
