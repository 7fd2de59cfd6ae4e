//! Latency of the Learning Hub queries over a large projected log.
//!
//! Loads `HUB_BENCH_STATEMENTS` generated statements (default 2,000,000)
//! from a deterministic generator straight into `HubViews` (the same
//! `apply` the projector runs), prints the load rate, then measures
//! transcript, competency, uptake and coverage queries with criterion
//! (uptake both read from the store and asked again, from the kept rows).
//!
//!     cargo bench -p lrs-hub --bench queries
//!     HUB_BENCH_STATEMENTS=5000000 cargo bench -p lrs-hub --bench queries

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

use lrs_eventlog::LogRecord;
use lrs_hub::frameworks::Frameworks;
use lrs_hub::{Granularity, HubViews, UptakeQuery};
use lrs_xapi::events::{Event, LearnerEntry, OrganisationEntry, encode};

const LEARNERS: u64 = 200_000;
const TRUSTS: u64 = 60;
const ACTIVITIES: u64 = 400;
const PER_EVENT: usize = 100;

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn trust(n: u64) -> String {
    format!("R{n:02}")
}

fn directory_events() -> Vec<Event> {
    let mut organisations = vec![OrganisationEntry { code: "Y56".into(), name: "London".into(), parent: None }];
    for icb in 0..6 {
        organisations.push(OrganisationEntry {
            code: format!("Q{icb}"),
            name: format!("ICB {icb}"),
            parent: Some("Y56".into()),
        });
    }
    for t in 0..TRUSTS {
        organisations.push(OrganisationEntry {
            code: trust(t),
            name: format!("Trust {t}"),
            parent: Some(format!("Q{}", t % 6)),
        });
    }
    let learners = (0..LEARNERS)
        .map(|l| LearnerEntry {
            learner: lrs_hub::facts::learning_hub_learner(&l.to_string()),
            organisation: trust(l % TRUSTS),
            staff_group: Some(["Nursing", "Medical", "Admin"][(l % 3) as usize].into()),
        })
        .collect();
    vec![Event::OrganisationsImported { organisations }, Event::LearnersImported { learners }]
}

fn statement(random: &mut XorShift, n: u64, start: chrono::DateTime<Utc>) -> serde_json::Value {
    let learner = random.below(LEARNERS);
    let activity = random.below(ACTIVITIES);
    let verb = ["launched", "initialized", "progressed", "completed", "passed", "failed", "terminated"]
        [random.below(7) as usize];
    let time = start + Duration::seconds((n * 9) as i64);
    let platform = ["e-LfH", "FutureLearn", "Magpie"][random.below(3) as usize];
    json!({
        "id": uuid::Uuid::from_u64_pair(0xbe4c, n).to_string(),
        "actor": { "account": { "homePage": "https://learninghub.nhs.uk", "name": learner.to_string() } },
        "verb": { "id": format!("http://adlnet.gov/expapi/verbs/{verb}") },
        "object": { "id": format!("https://www.e-lfh.org.uk/programmes/p{activity}"),
                    "definition": { "name": { "en-GB": format!("Programme {activity}") } } },
        "result": { "score": { "scaled": (random.below(100) as f64) / 100.0 }, "duration": "PT5M" },
        "context": { "platform": platform },
        "timestamp": time.to_rfc3339(),
        "stored": time.to_rfc3339(),
        "authority": { "objectType": "Agent", "name": "bench", "account": { "homePage": "https://lrs", "name": "k" } },
        "version": "2.0.0"
    })
}

fn load(views: &HubViews, statements: u64) {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
    let mut random = XorShift(0x5eed_1234);
    let mut offset = 0u64;
    let mut records: Vec<LogRecord> = directory_events()
        .iter()
        .map(|e| {
            offset += 1;
            LogRecord { offset: offset - 1, payload: encode(e) }
        })
        .collect();
    views.apply(&records).unwrap();
    let began = Instant::now();
    let mut n = 0;
    while n < statements {
        records.clear();
        for _ in 0..20 {
            let batch: Vec<_> = (0..PER_EVENT).map(|i| statement(&mut random, n + i as u64, start)).collect();
            n += PER_EVENT as u64;
            records.push(LogRecord {
                offset,
                payload: encode(&Event::StatementsStored { statements: batch, attachments: vec![] }),
            });
            offset += 1;
        }
        views.apply(&records).unwrap();
        if n % 200_000 == 0 {
            eprintln!("{n} statements loaded, {:.0}/s", n as f64 / began.elapsed().as_secs_f64());
        }
    }
    let seconds = began.elapsed().as_secs_f64();
    println!("loaded {n} statements into the hub views in {seconds:.1} s ({:.0} statements/s)", n as f64 / seconds);
}

fn bench(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once as tests: keep that small.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let default = if benchmarking { 2_000_000 } else { 2_000 };
    let statements: u64 = std::env::var("HUB_BENCH_STATEMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let dir = tempfile::tempdir().unwrap();
    let frameworks = Frameworks::parse(include_str!("../../../schemas/examples/competency-frameworks.json")).unwrap();
    let views = HubViews::open(dir.path(), lrs_projection::StoreOptions::cache(256 * 1024 * 1024), frameworks).unwrap();
    load(&views, statements);
    let mut random = XorShift(7);
    c.bench_function("transcript of one learner", |b| {
        b.iter(|| views.transcript(&lrs_hub::facts::learning_hub_learner(&random.below(LEARNERS).to_string())).unwrap())
    });
    c.bench_function("competencies of one learner", |b| {
        b.iter(|| {
            views.competencies(&lrs_hub::facts::learning_hub_learner(&random.below(LEARNERS).to_string())).unwrap()
        })
    });
    let from = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let days = (statements * 9 / 86_400).max(1) as i64;
    // Each question read from the store (its kept rows dropped first), and
    // asked again with nothing changed (the kept rows).
    for (name, organisation, span) in [
        ("trust, one week", "R07", 7),
        ("trust, whole range", "R07", days),
        ("ICB, one week", "Q1", 7),
        ("region, whole range", "Y56", days),
    ] {
        let query = UptakeQuery {
            organisation: organisation.into(),
            from,
            to: from + Duration::days(span),
            granularity: Granularity::Week,
            activity: None,
            platform: None,
            staff_group: None,
        };
        c.bench_function(&format!("uptake by week: {name}"), |b| {
            b.iter(|| {
                views.forget_kept_uptake();
                views.uptake(&query).unwrap()
            })
        });
        c.bench_function(&format!("uptake by week: {name}, asked again"), |b| b.iter(|| views.uptake(&query).unwrap()));
    }
    c.bench_function("competency coverage of a trust", |b| b.iter(|| views.coverage("R07").unwrap()));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
