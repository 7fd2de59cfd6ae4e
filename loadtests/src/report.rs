//! What a run measured: per request kind and overall, as a table on stdout
//! and as JSON (`--json FILE`).
//!
//! # JSON shape (`report_version` 1)
//!
//! ```text
//! {
//!   "tool": "lrs-load", "report_version": 1,
//!   "scenario": "single" | "batch" | "mixed" | "reads",
//!   "mode": "closed-loop" | "open-loop",
//!   "url": "http://127.0.0.1:8080", "xapi_version": "1.0.3",
//!   "batch_size": 100, "concurrency": 8, "rate_per_s": null | 500.0, "seed": 1,
//!   "warmup_s": 5.0,            // not measured
//!   "duration_s": 60.02,        // measured phase, first send to last answer
//!   "requests": 1234,           // measured requests that got an answer or failed
//!   "requests_ok": 1230,        // answered 2xx
//!   "requests_failed": 4,
//!   "requests_per_s": 20.5,
//!   "statements_sent": 123400,
//!   "statements_accepted": 123000,   // statements in 2xx write requests
//!   "statements_per_s": 2049.3,      // accepted / duration
//!   "latency_us": { "count", "mean", "p50", "p90", "p99", "p999", "max" },
//!   "errors": { "total": 4, "status": { "503": 4 }, "transport": 0, "timeout": 0 },
//!   "open_loop": null | { "scheduled", "sent", "dropped", "late", "late_threshold_ms" },
//!   "generator_stalls": 0,      // times a sender found no pre-generated request ready
//!   "kinds": { "write/batch": { "requests", "requests_ok", "statements_accepted",
//!                               "errors": {…}, "latency_us": {…} }, … },
//!   "server": null | { "pid", "samples", "cpu_percent_mean", "cpu_percent_max",
//!                      "rss_mib_mean", "rss_mib_max",
//!                      "disk_written_mib": null | 12.5 },   // page cache dirtied
//!                                                         // (`write_bytes`), see `DiskReport`
//!   "client": same as "server", for the load tool itself,
//!   "host": null | { "cores", "cpu_busy_percent", "iowait_percent", "steal_percent",
//!                    "disk": null | { "device": "vda", "written_mib": 12.5 } }
//! }
//! ```
//!
//! Latencies are in microseconds. In open-loop mode they are measured from
//! the time a request was *scheduled*, so a server (or client) that falls
//! behind shows up as latency rather than as a lower send rate.
//! CPU is a percentage of one core (200 = two cores busy).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track: 10 minutes, in microseconds.
const MAX_LATENCY_US: u64 = 600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, MAX_LATENCY_US, 3) {
        Ok(histogram) => histogram,
        Err(error) => unreachable!("constant histogram bounds are valid: {error:?}"),
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean: (histogram.mean() * 10.0).round() / 10.0,
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Errors {
    pub total: u64,
    /// Non-2xx answers by status code.
    pub status: BTreeMap<String, u64>,
    /// Connection refused or reset, malformed answers.
    pub transport: u64,
    /// No answer within `--timeout`.
    pub timeout: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindReport {
    pub requests: u64,
    pub requests_ok: u64,
    pub statements_accepted: u64,
    pub errors: Errors,
    pub latency_us: LatencySummary,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OpenLoopReport {
    /// Requests due in the measured phase.
    pub scheduled: u64,
    pub sent: u64,
    /// Not sent: `--concurrency` requests were already in flight.
    pub dropped: u64,
    /// Sent more than `late_threshold_ms` after their scheduled time.
    pub late: u64,
    pub late_threshold_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProcessReport {
    pub pid: u32,
    pub samples: u64,
    pub cpu_percent_mean: f64,
    pub cpu_percent_max: f64,
    pub rss_mib_mean: f64,
    pub rss_mib_max: f64,
    /// Page cache dirtied over the measured phase (`write_bytes` of
    /// `/proc/PID/io`), which can be many times what reached the disk (see
    /// `procstat::written_bytes`); `None` when it cannot be read.
    pub disk_written_mib: Option<f64>,
}

/// What one disk wrote over the measured phase, by every process.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DiskReport {
    /// The device's name in `/proc/diskstats`.
    pub device: String,
    pub written_mib: f64,
}

/// How the whole machine's CPU time was spent over the measured phase, as
/// percentages of all cores' time: what else was running, how long the
/// disk kept cores waiting, and what a virtual machine's host took.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HostReport {
    pub cores: usize,
    pub cpu_busy_percent: f64,
    pub iowait_percent: f64,
    pub steal_percent: f64,
    /// The disk of `--disk-of`, when given and found.
    pub disk: Option<DiskReport>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub tool: &'static str,
    pub report_version: u32,
    pub scenario: String,
    pub mode: &'static str,
    pub url: String,
    pub xapi_version: String,
    pub batch_size: usize,
    pub concurrency: usize,
    pub rate_per_s: Option<f64>,
    pub seed: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub requests_per_s: f64,
    pub statements_sent: u64,
    pub statements_accepted: u64,
    pub statements_per_s: f64,
    pub latency_us: LatencySummary,
    pub errors: Errors,
    pub open_loop: Option<OpenLoopReport>,
    pub generator_stalls: u64,
    pub kinds: BTreeMap<String, KindReport>,
    pub server: Option<ProcessReport>,
    pub client: Option<ProcessReport>,
    pub host: Option<HostReport>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

impl Report {
    /// A readable table of the report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate = self.rate_per_s.map_or_else(String::new, |r| format!(", {r} requests/s scheduled"));
        let _ = writeln!(
            out,
            "lrs-load {} ({}{}), concurrency {}, batch size {}, xAPI {}, {}",
            self.scenario, self.mode, rate, self.concurrency, self.batch_size, self.xapi_version, self.url
        );
        let _ = writeln!(
            out,
            "measured {:.2} s after {:.1} s warm-up: {} requests ({} ok, {} failed), {:.1} requests/s, {} statements accepted, {:.1} statements/s",
            self.duration_s,
            self.warmup_s,
            self.requests,
            self.requests_ok,
            self.requests_failed,
            self.requests_per_s,
            self.statements_accepted,
            self.statements_per_s
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "kind", "requests", "errors", "stmts ok", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let row = |out: &mut String, name: &str, requests: u64, errors: u64, statements: u64, l: &LatencySummary| {
            let _ = writeln!(
                out,
                "{:<28} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                requests,
                errors,
                statements,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.p999),
                ms(l.max)
            );
        };
        for (name, kind) in &self.kinds {
            row(&mut out, name, kind.requests, kind.errors.total, kind.statements_accepted, &kind.latency_us);
        }
        row(&mut out, "all", self.requests, self.errors.total, self.statements_accepted, &self.latency_us);
        if self.errors.total > 0 {
            let statuses: Vec<String> = self.errors.status.iter().map(|(code, n)| format!("{code}: {n}")).collect();
            let _ = writeln!(
                out,
                "\nerrors: status {{{}}}, transport {}, timeout {}",
                statuses.join(", "),
                self.errors.transport,
                self.errors.timeout
            );
        }
        if let Some(open) = &self.open_loop {
            let _ = writeln!(
                out,
                "\nopen loop: {} scheduled, {} sent, {} dropped (in-flight cap), {} late (> {} ms behind schedule)",
                open.scheduled, open.sent, open.dropped, open.late, open.late_threshold_ms
            );
        }
        if self.generator_stalls > 0 {
            let _ =
                writeln!(out, "generator stalls: {} (request generation limited the send rate)", self.generator_stalls);
        }
        for (label, process) in [("server", &self.server), ("client", &self.client)] {
            if let Some(p) = process {
                let _ = writeln!(
                    out,
                    "{label} pid {}: CPU mean {:.1} % max {:.1} % of one core, RSS mean {:.1} MiB max {:.1} MiB ({} samples)",
                    p.pid, p.cpu_percent_mean, p.cpu_percent_max, p.rss_mib_mean, p.rss_mib_max, p.samples
                );
                if let Some(written) = p.disk_written_mib {
                    let per_statement = if label == "server" { self.per_statement(written) } else { String::new() };
                    let _ = writeln!(
                        out,
                        "{label} pid {}: dirtied {written:.1} MiB of page cache{per_statement} (write_bytes: can be many times what reaches the disk)",
                        p.pid
                    );
                }
            }
        }
        if let Some(host) = &self.host {
            let _ = writeln!(
                out,
                "host, {} cores: CPU busy {:.1} %, waiting for the disk {:.1} %, stolen by the hypervisor {:.1} % of all cores' time",
                host.cores, host.cpu_busy_percent, host.iowait_percent, host.steal_percent
            );
            if let Some(disk) = &host.disk {
                let _ = writeln!(
                    out,
                    "disk {}: {:.1} MiB written, by every process{}",
                    disk.device,
                    disk.written_mib,
                    self.per_statement(disk.written_mib)
                );
            }
        }
        out
    }

    /// ` (N KiB per statement accepted)` for `mib` written over the run,
    /// or nothing when no statement was accepted.
    fn per_statement(&self, mib: f64) -> String {
        if self.statements_accepted == 0 {
            return String::new();
        }
        format!(" ({:.1} KiB per statement accepted)", mib * 1024.0 / self.statements_accepted as f64)
    }
}
