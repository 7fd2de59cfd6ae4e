//! CPU and memory of a process from `/proc` (Linux), sampled every 500 ms.

use std::time::{Duration, Instant};

use crate::report::ProcessReport;

pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// User plus system CPU time of a process in clock ticks, and its resident set in KiB.
pub fn read(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some((utime + stime, rss_kib))
}

/// Clock ticks per second (`getconf CLK_TCK`, else the usual 100).
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// Accumulates samples of one process.
#[derive(Debug)]
pub struct Sampler {
    pid: u32,
    ticks_per_second: f64,
    first: Option<(Instant, u64)>,
    last: Option<(Instant, u64)>,
    cpu_max: f64,
    rss_sum_kib: u64,
    rss_max_kib: u64,
    samples: u64,
}

impl Sampler {
    pub fn new(pid: u32, ticks_per_second: f64) -> Self {
        Self {
            pid,
            ticks_per_second,
            first: None,
            last: None,
            cpu_max: 0.0,
            rss_sum_kib: 0,
            rss_max_kib: 0,
            samples: 0,
        }
    }

    /// Takes one sample now; false if the process cannot be read.
    pub fn sample(&mut self) -> bool {
        let Some((ticks, rss)) = read(self.pid) else {
            return false;
        };
        let now = Instant::now();
        if let Some((at, before)) = self.last {
            let seconds = now.duration_since(at).as_secs_f64();
            if seconds > 0.0 {
                let cpu = (ticks.saturating_sub(before)) as f64 / self.ticks_per_second / seconds * 100.0;
                self.cpu_max = self.cpu_max.max(cpu);
            }
        }
        self.first.get_or_insert((now, ticks));
        self.last = Some((now, ticks));
        self.rss_sum_kib += rss;
        self.rss_max_kib = self.rss_max_kib.max(rss);
        self.samples += 1;
        true
    }

    pub fn report(&self) -> Option<ProcessReport> {
        let ((t0, c0), (t1, c1)) = (self.first?, self.last?);
        let seconds = t1.duration_since(t0).as_secs_f64();
        let cpu_mean =
            if seconds > 0.0 { c1.saturating_sub(c0) as f64 / self.ticks_per_second / seconds * 100.0 } else { 0.0 };
        let round = |x: f64| (x * 10.0).round() / 10.0;
        Some(ProcessReport {
            pid: self.pid,
            samples: self.samples,
            cpu_percent_mean: round(cpu_mean),
            cpu_percent_max: round(self.cpu_max),
            rss_mib_mean: round(self.rss_sum_kib as f64 / self.samples.max(1) as f64 / 1024.0),
            rss_mib_max: round(self.rss_max_kib as f64 / 1024.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let (ticks, rss) = read(std::process::id()).unwrap_or_default();
        assert!(rss > 0);
        let _ = ticks;
        let mut sampler = Sampler::new(std::process::id(), ticks_per_second());
        assert!(sampler.sample());
        assert!(sampler.sample());
        assert!(sampler.report().is_some_and(|r| r.samples == 2 && r.rss_mib_max > 0.0));
    }
}
