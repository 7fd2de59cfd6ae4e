//! The segment-file log: the contract suite, and what it promises on disk:
//! events survive reopening, a torn tail is cut off, corruption in a sealed
//! segment is reported rather than skipped, segments roll and compress
//! (small events with dictionaries the log trains and keeps), the newest
//! events are read from memory and older ones from the segments, and one
//! process at a time holds a log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lrs_eventlog::{EventLog, FileEventLog, FileEventLogConfig, LogError, contract, open_embedded, open_embedded_with};

/// Opens the log in `dir`, waiting (bounded) for an earlier handle's writer
/// to notice it was dropped and let go of the lock.
async fn reopen(dir: &Path, config: FileEventLogConfig) -> FileEventLog {
    retry_open(|| FileEventLog::open(dir, config.clone())).await
}

/// Calls `open` until it succeeds, for at most ten seconds.
async fn retry_open(open: impl Fn() -> Result<FileEventLog, LogError>) -> FileEventLog {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open() {
            Ok(log) => return log,
            Err(error) if Instant::now() > deadline => panic!("log did not reopen: {error}"),
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

/// The error opening the log in `dir` gives for its `damage`, once an
/// earlier handle let go of it (bounded): it must say the log is corrupt.
async fn open_fails_as_corrupt(dir: &Path, config: &FileEventLogConfig, damage: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match FileEventLog::open(dir, config.clone()) {
            Err(error) if error.to_string().contains("corrupt") => return error.to_string(),
            Err(_) | Ok(_) if Instant::now() < deadline => tokio::task::yield_now().await,
            Err(error) => panic!("unexpected error: {error}"),
            Ok(_) => panic!("a log with {damage} opened"),
        }
    }
}

/// The files in `dir` named `*.extension`, in order.
fn files_named(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    files.sort();
    files
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    files_named(dir, "seg")
}

async fn payloads(log: &dyn EventLog, from: u64, max: usize) -> Vec<Vec<u8>> {
    log.read(from, max).await.unwrap().into_iter().map(|r| r.payload).collect()
}

fn event(n: usize) -> Vec<u8> {
    // Varying lengths, some long enough to be compressed.
    format!("{{\"n\":{n},\"pad\":\"{}\"}}", "learning hub ".repeat(n % 70)).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_log_passes_the_contract_suite() {
    let root = tempfile::tempdir().unwrap();
    let mut n = 0;
    contract::run_all(|| {
        n += 1;
        let dir = root.path().join(format!("log-{n}"));
        async move { Arc::new(FileEventLog::open(&dir, FileEventLogConfig::default()).unwrap()) as Arc<dyn EventLog> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_reopening_and_offsets_stay_dense() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    {
        let log = FileEventLog::open(&dir, FileEventLogConfig::default()).unwrap();
        assert_eq!(log.append(vec![b"a".to_vec(), b"b".to_vec()]).await.unwrap(), 0);
        assert_eq!(log.append(vec![b"c".to_vec()]).await.unwrap(), 2);
    }
    let log = reopen(&dir, FileEventLogConfig::default()).await;
    assert_eq!(log.end_offset().await.unwrap(), 3);
    assert_eq!(payloads(&log, 0, 10).await, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(log.append(vec![b"d".to_vec()]).await.unwrap(), 3);
    assert_eq!(payloads(&log, 3, 10).await, vec![b"d".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_every_offset_across_rolled_segments_before_and_after_reopening() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    // A tail of a few events: reads before the reopening start in the
    // segments and run on into it, or start in it.
    let config = FileEventLogConfig { segment_bytes: 2_000, tail_bytes: 3_000, ..Default::default() };
    let all: Vec<Vec<u8>> = (0..300).map(event).collect();
    {
        let log = FileEventLog::open(&dir, config.clone()).unwrap();
        // Appends of 1 to 7 events, so segment boundaries fall inside and
        // between appends.
        let mut next = 0;
        while next < all.len() {
            let n = (next % 7 + 1).min(all.len() - next);
            assert_eq!(log.append(all[next..next + n].to_vec()).await.unwrap(), next as u64);
            next += n;
        }
        check_every_read(&log, &all).await;
    }
    assert!(segments(&dir).len() > 10, "small segments roll: {} files", segments(&dir).len());
    let log = reopen(&dir, config).await;
    assert_eq!(log.end_offset().await.unwrap(), all.len() as u64);
    check_every_read(&log, &all).await;
}

async fn check_every_read(log: &FileEventLog, all: &[Vec<u8>]) {
    for from in 0..all.len() {
        for max in [1, 5, 33, 1_000] {
            let records = log.read(from as u64, max).await.unwrap();
            let expected = &all[from..(from + max).min(all.len())];
            assert_eq!(records.len(), expected.len(), "read({from}, {max})");
            for (k, record) in records.iter().enumerate() {
                assert_eq!(record.offset, (from + k) as u64);
                assert_eq!(&record.payload, &expected[k], "offset {}", from + k);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_off_and_appends_go_on_after_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    {
        let log = FileEventLog::open(&dir, FileEventLogConfig::default()).unwrap();
        log.append((0..5).map(event).collect()).await.unwrap();
    }
    let segment = segments(&dir).pop().unwrap();
    let acknowledged = std::fs::metadata(&segment).unwrap().len();
    // A crash in the middle of a write: half a frame header, then a frame
    // whose body never arrived.
    for torn in [vec![0x20, 0x00], vec![0x40, 0, 0, 0, 1, 2, 3, 4, 0, 9]] {
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes.truncate(acknowledged as usize);
        bytes.extend_from_slice(&torn);
        std::fs::write(&segment, &bytes).unwrap();
        let log = reopen(&dir, FileEventLogConfig::default()).await;
        assert_eq!(log.end_offset().await.unwrap(), 5);
        assert_eq!(std::fs::metadata(&segment).unwrap().len(), acknowledged, "the torn bytes are gone");
        assert_eq!(payloads(&log, 0, 10).await, (0..5).map(event).collect::<Vec<_>>());
    }
    let log = reopen(&dir, FileEventLogConfig::default()).await;
    assert_eq!(log.append(vec![b"after".to_vec()]).await.unwrap(), 5);
    drop(log);
    let log = reopen(&dir, FileEventLogConfig::default()).await;
    assert_eq!(payloads(&log, 5, 10).await, vec![b"after".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_frame_in_a_sealed_segment_stops_the_open_instead_of_being_skipped() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let config = FileEventLogConfig { segment_bytes: 500, ..Default::default() };
    {
        let log = FileEventLog::open(&dir, config.clone()).unwrap();
        for n in 0..20 {
            log.append(vec![event(n)]).await.unwrap();
        }
    }
    let files = segments(&dir);
    assert!(files.len() >= 3);
    // Reading a damaged frame fails loudly.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    let log = reopen(&dir, config.clone()).await;
    let error = log.read(0, 100).await.unwrap_err().to_string();
    assert!(error.contains("corrupt"), "{error}");
    drop(log);
    // A sealed segment cut short is corruption, not a tail to drop.
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&files[0], &bytes).unwrap();
    let error = open_fails_as_corrupt(&dir, &config, "a damaged sealed segment").await;
    assert!(error.contains(&files[0].file_name().unwrap().to_string_lossy().to_string()), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_close_behind_the_writer_come_from_memory_and_older_ones_from_the_segment() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    // Events of 100 bytes, in appends of one to three; the tail holds ten.
    let config = FileEventLogConfig { tail_bytes: 1_000, ..Default::default() };
    let all: Vec<Vec<u8>> = (0..50).map(|n| format!("{n:0>100}").into_bytes()).collect();
    let log = FileEventLog::open(&dir, config.clone()).unwrap();
    let mut next = 0;
    while next < all.len() {
        let n = (next % 3 + 1).min(all.len() - next);
        log.append(all[next..next + n].to_vec()).await.unwrap();
        next += n;
    }
    // Every frame on disk damaged: what is still read must come from memory.
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    for byte in &mut bytes[8..] {
        *byte ^= 0x5a;
    }
    std::fs::write(&segment, &bytes).unwrap();
    for from in 40..50 {
        for max in [1, 4, 100] {
            let records = log.read(from, max).await.unwrap();
            let expected = &all[from as usize..(from as usize + max).min(all.len())];
            assert_eq!(records.iter().map(|r| &r.payload).collect::<Vec<_>>(), expected.iter().collect::<Vec<_>>());
            assert_eq!(records[0].offset, from);
        }
        // The byte bound holds as on disk: at least one, none once it is reached.
        let bounded = log.read_bounded(from, 100, 150).await.unwrap();
        assert_eq!(bounded.len(), 2.min(50 - from as usize), "read_bounded({from}, 100, 150)");
    }
    for from in [0, 20, 39] {
        let error = log.read(from, 100).await.unwrap_err().to_string();
        assert!(error.contains("corrupt"), "read({from}): {error}");
    }
    // Appends go on into the tail, pushing the oldest out.
    assert_eq!(log.append(vec![b"after".to_vec()]).await.unwrap(), 50);
    assert_eq!(payloads(&log, 49, 10).await, vec![all[49].clone(), b"after".to_vec()]);
    assert!(log.read(40, 1).await.unwrap_err().to_string().contains("corrupt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_are_stored_compressed_and_incompressible_ones_as_they_are() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    // No tail: the events are read back from the segment.
    let log = FileEventLog::open(&dir, FileEventLogConfig { tail_bytes: 0, ..Default::default() }).unwrap();
    let statements: Vec<u8> = (0..2_000)
        .flat_map(|n| {
            format!("{{\"id\":\"{n:08}\",\"verb\":{{\"id\":\"http://adlnet.gov/expapi/verbs/completed\"}}}},")
                .into_bytes()
        })
        .collect();
    let mut noise = Vec::with_capacity(100_000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push((x >> 24) as u8);
    }
    log.append(vec![statements.clone()]).await.unwrap();
    let after_statements = log.size_on_disk().unwrap();
    assert!(after_statements < statements.len() as u64 / 5, "{after_statements} bytes for {}", statements.len());
    log.append(vec![noise.clone()]).await.unwrap();
    let grown = log.size_on_disk().unwrap() - after_statements;
    assert!(grown >= noise.len() as u64 && grown < noise.len() as u64 + 64, "noise took {grown} bytes");
    assert_eq!(payloads(&log, 0, 10).await, vec![statements, noise]);
    assert_eq!(log.size_on_disk().unwrap(), std::fs::metadata(&segments(&dir)[0]).unwrap().len());
}

/// An event of one statement, as the store appends for a single POST:
/// alike in shape, different in ids, names, scores and times.
fn statement_event(n: u64) -> Vec<u8> {
    let h = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (n << 17);
    let verb = ["launched", "initialized", "progressed", "answered", "passed", "completed"][(h % 6) as usize];
    format!(
        r#"{{"kind":"statements_stored","statements":[{{"id":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","actor":{{"objectType":"Agent","name":"Learner {}","account":{{"homePage":"https://learninghub.nhs.uk","name":"{}"}}}},"verb":{{"id":"http://adlnet.gov/expapi/verbs/{verb}","display":{{"en-GB":"{verb}"}}}},"object":{{"objectType":"Activity","id":"https://learninghub.nhs.uk/activities/{}","definition":{{"name":{{"en-GB":"Course {}"}},"type":"http://adlnet.gov/expapi/activities/course"}}}},"result":{{"score":{{"scaled":0.{}}},"success":{},"duration":"PT{}M"}},"context":{{"registration":"{:016x}-{:x}","platform":"e-Learning for Healthcare","extensions":{{"https://learninghub.nhs.uk/extensions/organisation":"R{:03}","https://learninghub.nhs.uk/extensions/staff-group":"{}"}}}},"timestamp":"2026-12-0{}T{:02}:{:02}:{:02}Z","stored":"2026-12-06T10:{:02}:{:02}.{:06}Z"}}]}}"#,
        h as u32,
        (h >> 32) as u16,
        (h >> 40) & 0xfff,
        (h >> 20) & 0xfff,
        h >> 8,
        h % 100_003,
        h % 1_000_003,
        h % 4_001,
        h % 4_001,
        h % 97,
        h.is_multiple_of(2),
        h % 59,
        h.rotate_left(7),
        h % 65_521,
        h % 300,
        ["Nursing", "Medical", "Allied Health", "Admin"][(h % 4) as usize],
        h % 9 + 1,
        h % 24,
        h % 60,
        (h >> 6) % 60,
        (h >> 3) % 60,
        (h >> 9) % 60,
        h % 1_000_000,
    )
    .into_bytes()
}

/// Waits (bounded) until `log` has `count` dictionaries.
async fn until_dictionaries(log: &FileEventLog, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.dictionaries() < count {
        assert!(Instant::now() < deadline, "{} dictionaries, not {count}", log.dictionaries());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn dictionary_files(dir: &Path) -> Vec<PathBuf> {
    files_named(dir, "zdict")
}

/// Appends `events` one at a time; returns what they added to the log.
async fn append_one_by_one(log: &FileEventLog, events: &[Vec<u8>]) -> u64 {
    let before = log.size_on_disk().unwrap();
    for event in events {
        log.append(vec![event.clone()]).await.unwrap();
    }
    log.size_on_disk().unwrap() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_alike_are_compressed_with_a_dictionary_trained_on_them_which_a_reopened_log_keeps() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let config = FileEventLogConfig { dictionary_samples: 300, ..Default::default() };
    let all: Vec<Vec<u8>> = (0..700).map(statement_event).collect();
    let raw: usize = all[300..500].iter().map(Vec::len).sum();
    let log = FileEventLog::open(&dir, config.clone()).unwrap();
    let alone = append_one_by_one(&log, &all[..300]).await;
    until_dictionaries(&log, 1).await;
    assert_eq!(dictionary_files(&dir).len(), 1);
    let with_dictionary = append_one_by_one(&log, &all[300..500]).await;
    // Per event: alone, about half the raw size; with the dictionary, a
    // fraction of that.
    let (alone, with_dictionary) = (alone as f64 / 300.0, with_dictionary as f64 / 200.0);
    assert!(
        with_dictionary * 2.0 < alone,
        "{with_dictionary:.0} bytes an event with the dictionary, {alone:.0} without, {:.0} raw",
        raw as f64 / 200.0
    );
    assert_eq!(payloads(&log, 0, 1_000).await, all[..500]);
    drop(log);

    // Reopened: the dictionary is read back and new events use it too.
    let log = reopen(&dir, config.clone()).await;
    assert_eq!(log.dictionaries(), 1);
    assert_eq!(payloads(&log, 0, 1_000).await, all[..500]);
    let after_reopening = append_one_by_one(&log, &all[500..]).await as f64 / 200.0;
    assert!(after_reopening * 2.0 < alone, "{after_reopening:.0} bytes an event after reopening, {alone:.0} alone");
    assert_eq!(payloads(&log, 0, 1_000).await, all);
    assert_eq!(log.dictionaries(), 1, "no new dictionary without a new segment");
    let segment_bytes: u64 = segments(&dir).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let dictionary_bytes: u64 = dictionary_files(&dir).iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert_eq!(log.size_on_disk().unwrap(), segment_bytes + dictionary_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_segment_brings_a_dictionary_trained_on_the_events_before_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let config = FileEventLogConfig { dictionary_samples: 100, segment_bytes: 40_000, ..Default::default() };
    let all: Vec<Vec<u8>> = (0..1_200).map(statement_event).collect();
    {
        let log = FileEventLog::open(&dir, config.clone()).unwrap();
        append_one_by_one(&log, &all[..150]).await;
        until_dictionaries(&log, 1).await;
        append_one_by_one(&log, &all[150..]).await;
        until_dictionaries(&log, 2).await;
        assert_eq!(payloads(&log, 0, 2_000).await, all);
    }
    assert!(segments(&dir).len() >= 3, "{} segments", segments(&dir).len());
    let log = reopen(&dir, config).await;
    let trained = dictionary_files(&dir).len();
    assert!(trained >= 2 && trained < segments(&dir).len() + 1, "{trained} dictionaries");
    assert_eq!(log.dictionaries(), trained);
    check_every_read(&log, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_damaged_dictionary_is_reported_and_a_half_written_one_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let config = FileEventLogConfig { dictionary_samples: 100, ..Default::default() };
    let all: Vec<Vec<u8>> = (0..200).map(statement_event).collect();
    {
        let log = FileEventLog::open(&dir, config.clone()).unwrap();
        append_one_by_one(&log, &all[..100]).await;
        until_dictionaries(&log, 1).await;
        append_one_by_one(&log, &all[100..]).await;
    }
    let dictionary = dictionary_files(&dir).pop().unwrap();
    let bytes = std::fs::read(&dictionary).unwrap();

    // What a crash while writing one leaves is removed at open.
    let half_written = dir.join("00000000000000000150.zdict.tmp");
    std::fs::write(&half_written, &bytes[..bytes.len() / 2]).unwrap();
    let log = reopen(&dir, config.clone()).await;
    assert!(!half_written.exists());
    assert_eq!(payloads(&log, 0, 1_000).await, all);
    drop(log);

    // Without it, the events compressed with it cannot be read: an error,
    // never other bytes.
    std::fs::remove_file(&dictionary).unwrap();
    let log = reopen(&dir, config.clone()).await;
    assert_eq!(payloads(&log, 0, 100).await, all[..100], "the events before it read as they were");
    let error = match log.read(100, 100).await {
        Err(error) => error.to_string(),
        Ok(records) => panic!("{} events read without their dictionary", records.len()),
    };
    assert!(error.contains("corrupt") && error.contains("dictionary"), "{error}");
    drop(log);

    // Damaged, it stops the open and is named.
    std::fs::write(&dictionary, &bytes[..bytes.len() / 2]).unwrap();
    let error = open_fails_as_corrupt(&dir, &config, "a damaged dictionary").await;
    assert!(error.contains(&dictionary.file_name().unwrap().to_string_lossy().to_string()), "{error}");
    // Put back, all reads again.
    std::fs::write(&dictionary, &bytes).unwrap();
    let log = reopen(&dir, config).await;
    assert_eq!(payloads(&log, 0, 1_000).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_is_held_by_one_handle_at_a_time_and_oversized_events_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let config = FileEventLogConfig { max_event_bytes: 10, ..Default::default() };
    let log = FileEventLog::open(&dir, config.clone()).unwrap();
    let error = FileEventLog::open(&dir, config).err().unwrap().to_string();
    assert!(error.contains("another process"), "{error}");
    assert!(log.append(vec![b"ok".to_vec(), vec![0; 11]]).await.is_err());
    assert_eq!(log.end_offset().await.unwrap(), 0);
}

/// A log as the sled backend of earlier versions wrote it: tree `events`,
/// key = offset as big-endian u64.
fn write_sled_log(dir: &Path, events: &[Vec<u8>]) {
    let db = sled::Config::new().path(dir).open().unwrap();
    let tree = db.open_tree("events").unwrap();
    for (offset, event) in events.iter().enumerate() {
        tree.insert((offset as u64).to_be_bytes(), event.as_slice()).unwrap();
    }
    db.flush().unwrap();
    drop((tree, db));
    wait_until_sled_lets_go(dir);
}

/// sled's background threads can hold its files, and the lock on `db`, a
/// moment after the last handle is dropped; a process that stopped would
/// have let go at once. Waits, with a deadline, until the lock is free.
fn wait_until_sled_lets_go(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let db = std::fs::File::open(dir.join("db")).unwrap();
    while let Err(error) = db.try_lock() {
        assert!(Instant::now() < deadline, "sled still holds {}: {error}", dir.display());
        std::thread::yield_now();
    }
}

fn sled_files_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name == "conf" || name == "db" || name == "blobs" || name.starts_with("snap."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_log_is_moved_into_segments_at_the_same_offsets_and_its_files_removed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    // Large events too, so the copy rolls segments and compresses.
    let events: Vec<Vec<u8>> = (0..400).map(|n| if n % 50 == 0 { event(n).repeat(2_000) } else { event(n) }).collect();
    write_sled_log(&dir, &events);
    let config = FileEventLogConfig { segment_bytes: 2_000, ..Default::default() };
    let log = open_embedded_with(&dir, config.clone()).unwrap();
    assert!(sled_files_left(&dir).is_empty(), "left: {:?}", sled_files_left(&dir));
    assert!(segments(&dir).len() > 3, "{} segments", segments(&dir).len());
    assert_eq!(log.end_offset().await.unwrap(), events.len() as u64);
    assert_eq!(payloads(&log, 0, 1_000).await, events);
    assert_eq!(log.append(vec![b"next".to_vec()]).await.unwrap(), events.len() as u64);
    drop(log);
    let log = reopen(&dir, config).await;
    assert_eq!(log.end_offset().await.unwrap(), events.len() as u64 + 1);
    assert_eq!(payloads(&log, 0, 1_000).await[..events.len()], events[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_move_from_sled_is_done_again_or_finished_never_half_kept() {
    let root = tempfile::tempdir().unwrap();
    let events: Vec<Vec<u8>> = (0..50).map(event).collect();

    // Stopped while copying: segments are there but no marker says they
    // are complete; the sled files are still the log, and it is copied again.
    let copying = root.path().join("copying");
    write_sled_log(&copying, &events);
    std::fs::write(copying.join(format!("{:020}.seg", 0)), b"LRSLOG\x00\x01partial").unwrap();
    std::fs::write(copying.join(format!("{:020}.seg", 7)), b"LRSLOG\x00\x01").unwrap();
    let log = open_embedded(&copying).unwrap();
    assert_eq!(payloads(&log, 0, 100).await, events);
    assert!(sled_files_left(&copying).is_empty());

    // Stopped while removing the sled files after the copy was marked
    // complete: the segments are the log, and what is left of sled goes.
    let removing = root.path().join("removing");
    write_sled_log(&removing, &events);
    drop(open_embedded(&removing).unwrap());
    // Put back part of sled and the marker, as a crash would leave them.
    std::fs::write(removing.join("conf"), b"segment_size: 524288\n").unwrap();
    std::fs::write(removing.join("COPIED-FROM-SLED"), b"").unwrap();
    let log = retry_open(|| open_embedded(&removing)).await;
    assert_eq!(payloads(&log, 0, 100).await, events);
    assert!(sled_files_left(&removing).is_empty());
    assert!(!removing.join("COPIED-FROM-SLED").exists());
}
