//! The xAPI views' write pattern, written into sled 0.34.7 (the store the
//! projections use), fjall (an LSM tree) and redb (a copy-on-write B-tree):
//! time, CPU, what the disk wrote, what the store keeps, and warm reads.
//! `loadtests/RESULTS.md` has the figures and what they mean.
//!
//! Per statement, the keys the views write for one: an `S` pointer (12
//! bytes), a `U` id entry (48 bytes), a 32-byte entry in each of six posting
//! lists (learner, verb, activity, two parent activities, a fresh
//! registration), the entries of a batch gathered into one chunk per list;
//! and `M:state` per batch. The same bytes go to every engine, generated from
//! a fixed seed. No engine syncs each batch (the log, not the views, makes a
//! write durable): sled flushes and redb commits durably every 500 ms;
//! fjall writes its journal to the operating system at each batch, and
//! `fjall-p500` also syncs it every 500 ms.
//!
//! ```sh
//! cargo run --release --manifest-path loadtests/stores/Cargo.toml -- all      # 2 runs x {A, B} x every engine
//! cargo run --release --manifest-path loadtests/stores/Cargo.toml -- big      # 1,000,000 statements, once per engine
//! cargo run --release --manifest-path loadtests/stores/Cargo.toml -- one fjall A 1
//! ```
//!
//! Scenario A: 200,000 statements in batches of 100; B: 100,000 in batches of
//! one; A5: 1,000,000 in batches of 100. Engines: `sled`, `fjall`, `redb`,
//! and `fjall-p500` (fjall syncing its journal every 500 ms). Each case runs
//! in its own process, one at a time, and prints one `RESULT` line. Stores
//! go in `$STORE_BENCH_DIR` (default: the temporary directory), one
//! directory per case, removed after it; what the disk wrote is read from
//! `/proc/diskstats` for the device holding that directory, so run it on a
//! quiet machine.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- workload

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        // xorshift64*
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
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
    fn h16(&mut self) -> [u8; 16] {
        let mut h = [0u8; 16];
        self.fill(&mut h);
        h
    }
}

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const BASE_TS_US: u64 = 1_700_000_000_000_000;

fn position(n: u64) -> [u8; 16] {
    // A microsecond timestamp, 997 µs apart, then the sequence number.
    let ts = BASE_TS_US + n * 997;
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&ts.to_be_bytes());
    p[8..].copy_from_slice(&n.to_be_bytes());
    p
}

fn s_key(n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b'S');
    k.extend_from_slice(&position(n));
    k
}

type Batch = Vec<(Vec<u8>, Vec<u8>)>;

struct Workload {
    batches: Vec<Batch>,
    u_keys: Vec<Vec<u8>>, // all U keys, for the read check
    n_statements: u64,
    logical_bytes: u64, // sum of key+value lengths of live keys at the end
    live_keys: u64,
}

fn gen_workload(n_statements: u64, batch_size: u64) -> Workload {
    // fixed list-hash universes come from their own generator so they are identical in every case
    let mut lists_rng = XorShift(SEED ^ 0x1111);
    let learners: Vec<[u8; 16]> = (0..20_000).map(|_| lists_rng.h16()).collect();
    let verbs: Vec<[u8; 16]> = (0..10).map(|_| lists_rng.h16()).collect();
    let activities: Vec<[u8; 16]> = (0..500).map(|_| lists_rng.h16()).collect();
    let parents: Vec<[u8; 16]> = (0..100).map(|_| lists_rng.h16()).collect();

    let mut rng = XorShift(SEED);
    let mut batches = Vec::with_capacity((n_statements / batch_size) as usize + 1);
    let mut u_keys = Vec::with_capacity(n_statements as usize);
    let mut logical: u64 = 0;
    let mut live: u64 = 0;
    let mut n = 0u64;
    while n < n_statements {
        let end = (n + batch_size).min(n_statements);
        let mut batch: Batch = Vec::new();
        // list hash -> concatenated 32-byte entries (BTreeMap: deterministic order)
        let mut chunks: BTreeMap<[u8; 16], Vec<u8>> = BTreeMap::new();
        for i in n..end {
            let pos = position(i);
            batch.push((s_key(i), rng.bytes(12)));
            let mut uk = Vec::with_capacity(17);
            uk.push(b'U');
            uk.extend_from_slice(&rng.h16());
            u_keys.push(uk.clone());
            batch.push((uk, rng.bytes(48)));
            let p1 = rng.below(100) as usize;
            let mut p2 = rng.below(99) as usize;
            if p2 >= p1 {
                p2 += 1; // two distinct parents
            }
            let lists = [
                learners[rng.below(20_000) as usize],
                verbs[rng.below(10) as usize],
                activities[rng.below(500) as usize],
                parents[p1],
                parents[p2],
                rng.h16(), // fresh registration list
            ];
            for l in lists {
                // 32-byte entry: position + 16 random bytes
                let mut e = [0u8; 32];
                e[..16].copy_from_slice(&pos);
                rng.fill(&mut e[16..]);
                chunks.entry(l).or_default().extend_from_slice(&e);
            }
        }
        let hi = position(end - 1);
        for (l, v) in chunks {
            let mut k = Vec::with_capacity(33);
            k.push(b'I');
            k.extend_from_slice(&l);
            k.extend_from_slice(&hi);
            batch.push((k, v));
        }
        batch.push((b"M:state".to_vec(), rng.bytes(50)));
        for (k, v) in &batch {
            if k.as_slice() != b"M:state" {
                logical += (k.len() + v.len()) as u64;
                live += 1;
            }
        }
        batches.push(batch);
        n = end;
    }
    logical += (b"M:state".len() + 50) as u64;
    live += 1;
    Workload { batches, u_keys, n_statements, logical_bytes: logical, live_keys: live }
}

// ---------------------------------------------------------------- OS counters

fn cpu_secs() -> f64 {
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

fn proc_io() -> (u64, u64) {
    // (write_bytes, cancelled_write_bytes)
    let s = fs::read_to_string("/proc/self/io").unwrap();
    let get = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().parse::<u64>().unwrap())
            .unwrap_or(0)
    };
    (get("write_bytes:"), get("cancelled_write_bytes:"))
}

/// Where the stores go: `$STORE_BENCH_DIR`, or a directory in the
/// temporary directory.
fn stores_dir() -> PathBuf {
    std::env::var_os("STORE_BENCH_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("store-bench"))
}

/// The block device holding `path` (e.g. "vda"), from /proc/self/mountinfo:
/// the source of the longest mount point above it.
fn device_of(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = fields[4];
        let separator = fields.iter().position(|field| *field == "-").unwrap();
        let source = fields[separator + 2];
        if path.starts_with(mount_point)
            && source.starts_with("/dev/")
            && best.as_ref().is_none_or(|(len, _)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), source.trim_start_matches("/dev/").to_string()));
        }
    }
    best.expect("no block device holds the stores' directory").1
}

fn disk_sectors_written(dev: &str) -> u64 {
    let s = fs::read_to_string("/proc/diskstats").unwrap();
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 9 && f[2] == dev {
            return f[9].parse().unwrap();
        }
    }
    panic!("device {dev} not in /proc/diskstats");
}

fn sync_all() {
    unsafe { libc::sync() };
}

fn dir_size(p: &Path) -> (u64, u64) {
    // (apparent bytes of regular files, allocated bytes)
    use std::os::unix::fs::MetadataExt;
    let mut app = 0;
    let mut alloc = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            let (a, b) = dir_size(&e.path());
            app += a;
            alloc += b;
        } else if m.is_file() {
            app += m.len();
            alloc += m.blocks() * 512;
        }
    }
    (app, alloc)
}

/// stderr: files of the closed store grouped by parent dir (count, bytes), for the caveats
fn list_files(p: &Path, label: &str) {
    fn walk(p: &Path, acc: &mut BTreeMap<String, (u64, u64)>, root: &Path) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                walk(&e.path(), acc, root);
            } else {
                let rel = e.path().parent().unwrap().strip_prefix(root).unwrap().display().to_string();
                let a = acc.entry(rel).or_default();
                a.0 += 1;
                a.1 += m.len();
            }
        }
    }
    let mut acc = BTreeMap::new();
    walk(p, &mut acc, p);
    for (d, (c, b)) in acc {
        eprintln!("  [{label}] dir '{d}': {c} files, {b} bytes");
    }
}

// ---------------------------------------------------------------- engines

const CACHE: u64 = 256 * 1024 * 1024;
const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");

enum Store {
    Sled(sled::Db),
    // Option<Instant>: Some = extra variant that persists (fsync) the journal every 500 ms
    Fjall(fjall::Database, fjall::Keyspace, Option<Instant>),
    Redb(redb::Database, Instant),
}

impl Store {
    fn open(engine: &str, dir: &Path) -> Store {
        match engine {
            "sled" => Store::Sled(
                sled::Config::new()
                    .path(dir)
                    .cache_capacity(CACHE)
                    .flush_every_ms(Some(500))
                    .use_compression(false)
                    .open()
                    .unwrap(),
            ),
            "fjall" | "fjall-p500" => {
                let db = fjall::Database::builder(dir).cache_size(CACHE).open().unwrap();
                let ks = db.keyspace("kv", fjall::KeyspaceCreateOptions::default).unwrap();
                let p = (engine == "fjall-p500").then(Instant::now);
                Store::Fjall(db, ks, p)
            }
            "redb" => {
                fs::create_dir_all(dir).unwrap();
                let db = redb::Builder::new().set_cache_size(CACHE as usize).create(dir.join("data.redb")).unwrap();
                // make sure the table exists (durable)
                let tx = db.begin_write().unwrap();
                tx.open_table(REDB_TABLE).unwrap();
                tx.commit().unwrap();
                Store::Redb(db, Instant::now())
            }
            _ => panic!("unknown engine {engine}"),
        }
    }

    fn write_batch(&mut self, batch: &Batch) {
        match self {
            Store::Sled(db) => {
                let mut b = sled::Batch::default();
                for (k, v) in batch {
                    b.insert(k.as_slice(), v.as_slice());
                }
                db.apply_batch(b).unwrap();
            }
            Store::Fjall(db, ks, persist) => {
                let mut b = db.batch(); // durability None = journal flushed to OS buffers, no fsync
                for (k, v) in batch {
                    b.insert(ks, k.as_slice(), v.as_slice());
                }
                b.commit().unwrap();
                if let Some(last) = persist
                    && last.elapsed() >= Duration::from_millis(500)
                {
                    db.persist(fjall::PersistMode::SyncAll).unwrap();
                    *last = Instant::now();
                }
            }
            Store::Redb(db, last_durable) => {
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(redb::Durability::None).unwrap();
                {
                    let mut t = tx.open_table(REDB_TABLE).unwrap();
                    for (k, v) in batch {
                        t.insert(k.as_slice(), v.as_slice()).unwrap();
                    }
                }
                tx.commit().unwrap();
                if last_durable.elapsed() >= Duration::from_millis(500) {
                    let tx = db.begin_write().unwrap(); // default durability = Immediate
                    tx.commit().unwrap();
                    *last_durable = Instant::now();
                }
            }
        }
    }

    /// Clean close: make everything durable, then drop.
    fn close(self) {
        match self {
            Store::Sled(db) => {
                db.flush().unwrap();
                drop(db);
            }
            Store::Fjall(db, ks, _) => {
                db.persist(fjall::PersistMode::SyncAll).unwrap();
                drop(ks);
                drop(db);
            }
            Store::Redb(db, _) => {
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(redb::Durability::Immediate).unwrap();
                tx.commit().unwrap();
                drop(db);
            }
        }
    }

    fn reopen(engine: &str, dir: &Path) -> Store {
        match engine {
            "redb" => Store::Redb(
                redb::Builder::new().set_cache_size(CACHE as usize).open(dir.join("data.redb")).unwrap(),
                Instant::now(),
            ),
            _ => Store::open(engine, dir),
        }
    }

    /// returns value length (0 if missing)
    fn get(&self, k: &[u8]) -> usize {
        match self {
            Store::Sled(db) => db.get(k).unwrap().map_or(0, |v| v.len()),
            Store::Fjall(_, ks, _) => ks.get(k).unwrap().map_or(0, |v| v.len()),
            Store::Redb(db, _) => {
                use redb::{ReadableDatabase, ReadableTable};
                let tx = db.begin_read().unwrap();
                let t = tx.open_table(REDB_TABLE).unwrap();
                t.get(k).unwrap().map_or(0, |v| v.value().len())
            }
        }
    }

    /// scan up to `n` keys starting at `start` (within the 'S' prefix); returns count
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let end: &[u8] = b"T";
        match self {
            Store::Sled(db) => db.range(start..end).take(n).map(|r| r.unwrap().1.len()).filter(|l| *l > 0).count(),
            Store::Fjall(_, ks, _) => {
                ks.range(start..end).take(n).map(|g| g.into_inner().unwrap().1.len()).filter(|l| *l > 0).count()
            }
            Store::Redb(db, _) => {
                use redb::{ReadableDatabase, ReadableTable};
                let tx = db.begin_read().unwrap();
                let t = tx.open_table(REDB_TABLE).unwrap();
                t.range(start..end).unwrap().take(n).map(|r| r.unwrap().1.value().len()).filter(|l| *l > 0).count()
            }
        }
    }

    /// (live keys, sum of key+value lengths) by full iteration
    fn logical(&self) -> (u64, u64) {
        let (mut c, mut b) = (0u64, 0u64);
        match self {
            Store::Sled(db) => {
                for r in db.iter() {
                    let (k, v) = r.unwrap();
                    c += 1;
                    b += (k.len() + v.len()) as u64;
                }
            }
            Store::Fjall(_, ks, _) => {
                for g in ks.iter() {
                    let (k, v) = g.into_inner().unwrap();
                    c += 1;
                    b += (k.len() + v.len()) as u64;
                }
            }
            Store::Redb(db, _) => {
                use redb::{ReadableDatabase, ReadableTable};
                let tx = db.begin_read().unwrap();
                let t = tx.open_table(REDB_TABLE).unwrap();
                for r in t.iter().unwrap() {
                    let (k, v) = r.unwrap();
                    c += 1;
                    b += (k.value().len() + v.value().len()) as u64;
                }
            }
        }
        (c, b)
    }
}

// ---------------------------------------------------------------- one case

fn run_one(engine: &str, scenario: &str, run: u32) {
    let (n, bs) = match scenario {
        "A" => (200_000, 100),
        "B" => (100_000, 1),
        "A5" => (1_000_000, 100), // supplementary: 5x scenario A, to get past cache/memtable sizes
        _ => panic!("scenario must be A, B or A5"),
    };
    let wl = gen_workload(n, bs);
    let dir = stores_dir().join(format!("{engine}-{scenario}-{run}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let dev = device_of(&dir);
    fs::remove_dir(&dir).unwrap();

    // quiesce: flush whatever is dirty from before, then take start figures
    sync_all();
    std::thread::sleep(Duration::from_millis(200));
    let sec0 = disk_sectors_written(&dev);
    let (wb0, cwb0) = proc_io();
    let cpu0 = cpu_secs();
    let t0 = Instant::now();

    let mut store = Store::open(engine, &dir);
    for b in &wl.batches {
        store.write_batch(b);
    }
    let t_ingest = t0.elapsed().as_secs_f64();
    store.close();
    sync_all();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let (wb1, cwb1) = proc_io();
    let sec1 = disk_sectors_written(&dev);
    let (size_app, size_alloc) = dir_size(&dir);
    list_files(&dir, &format!("{engine}-{scenario}-{run}"));

    // read check (scenario A only) on the reopened store
    let (mut get_us, mut scan_us) = (f64::NAN, f64::NAN);
    let t = Instant::now();
    let store = Store::reopen(engine, &dir);
    let reopen_ms = t.elapsed().as_secs_f64() * 1e3;
    if scenario.starts_with('A') {
        let mut rng = XorShift(SEED ^ 0x2222);
        let t = Instant::now();
        let mut found = 0usize;
        for _ in 0..100_000 {
            let k = &wl.u_keys[rng.below(wl.u_keys.len() as u64) as usize];
            if store.get(k) == 48 {
                found += 1;
            }
        }
        get_us = t.elapsed().as_secs_f64() * 1e6 / 100_000.0;
        assert_eq!(found, 100_000, "{engine}: missing U keys");
        let t = Instant::now();
        let mut got = 0usize;
        for _ in 0..1_000 {
            let start = s_key(rng.below(wl.n_statements - 50));
            got += store.scan(&start, 50);
        }
        scan_us = t.elapsed().as_secs_f64() * 1e6 / 1_000.0;
        assert_eq!(got, 50 * 1_000, "{engine}: short scans");
    }
    let (live, logical) = store.logical();
    assert_eq!((live, logical), (wl.live_keys, wl.logical_bytes), "{engine}: content mismatch");
    store.close();
    fs::remove_dir_all(&dir).unwrap();

    // one machine-readable line
    println!(
        "RESULT run={run} engine={engine} scenario={scenario} stmts={n} batches={} wall_s={wall:.3} ingest_s={t_ingest:.3} \
         stmts_per_s={:.0} cpu_s={cpu:.3} cpu_us_per_stmt={:.2} proc_write_bytes={} proc_cancelled_write_bytes={} \
         disk_write_bytes={} store_bytes={size_app} store_alloc_bytes={size_alloc} logical_bytes={logical} live_keys={live} \
         reopen_ms={reopen_ms:.1} get_us={get_us:.2} scan50_us={scan_us:.2}",
        wl.batches.len(),
        n as f64 / wall,
        cpu * 1e6 / n as f64,
        wb1 - wb0,
        cwb1 - cwb0,
        (sec1 - sec0) * 512,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("one") => run_one(&args[2], &args[3], args.get(4).map_or(1, |r| r.parse().unwrap())),
        Some("all") => {
            let exe = std::env::current_exe().unwrap();
            let runs: u32 = args.get(2).map_or(2, |r| r.parse().unwrap());
            for run in 1..=runs {
                for sc in ["A", "B"] {
                    for engine in ["sled", "fjall", "redb", "fjall-p500"] {
                        eprintln!("== run {run} scenario {sc} engine {engine}");
                        // one child process per case, strictly sequential
                        let st = std::process::Command::new(&exe)
                            .args(["one", engine, sc, &run.to_string()])
                            .status()
                            .unwrap();
                        assert!(st.success(), "case failed");
                    }
                }
            }
            let _ = fs::remove_dir(stores_dir());
        }
        Some("big") => {
            // supplementary: scenario A5 once per engine, each in its own child process
            let exe = std::env::current_exe().unwrap();
            for engine in ["sled", "fjall", "redb"] {
                eprintln!("== scenario A5 engine {engine}");
                let st = std::process::Command::new(&exe).args(["one", engine, "A5", "1"]).status().unwrap();
                assert!(st.success(), "case failed");
            }
            let _ = fs::remove_dir(stores_dir());
        }
        _ => {
            eprintln!(
                "usage: store-bench all [runs] | store-bench big | store-bench one <sled|fjall|redb|fjall-p500> <A|B|A5> [run]"
            );
            std::process::exit(2);
        }
    }
}
