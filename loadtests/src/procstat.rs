//! CPU, memory and disk writes of a process, how the machine's CPU time
//! was spent, and what a disk wrote, from `/proc` (Linux), sampled every
//! 500 ms.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::report::{DiskReport, HostReport, ProcessReport};

pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

const MIB: f64 = 1024.0 * 1024.0;

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

/// Bytes of page cache a process has dirtied (`write_bytes` of
/// `/proc/PID/io`): a page counts each time it is dirtied again, and on
/// kernels that cache files in large folios (ext4 from Linux 6.16) a write
/// of a few bytes counts its whole folio, so this can be many times what
/// reaches the disk (see [`Disk`]); `None` when the file cannot be read
/// (another user's process).
pub fn written_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines().find_map(|line| line.strip_prefix("write_bytes:")).and_then(|v| v.trim().parse().ok())
}

/// The machine's CPU time so far, in clock ticks over all cores, from the
/// first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostTicks {
    /// The `cpuN` lines: the cores the ticks are summed over.
    pub cores: usize,
    pub busy: u64,
    pub iowait: u64,
    pub steal: u64,
    pub total: u64,
}

impl HostTicks {
    /// Parses `/proc/stat`'s text: `cpu user nice system idle iowait irq
    /// softirq steal …` (guest time is already inside user and nice).
    pub fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let fields: Vec<u64> =
            line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
        let [user, nice, system, idle, iowait, irq, softirq, steal] = fields.try_into().ok()?;
        let busy = user + nice + system + irq + softirq;
        let cores = stat
            .lines()
            .filter(|line| line.strip_prefix("cpu").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())))
            .count();
        Some(Self { cores, busy, iowait, steal, total: busy + idle + iowait + steal })
    }

    pub fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// How the time between `earlier` and `self` was spent, as percentages
    /// of all cores' time.
    pub fn since(self, earlier: Self) -> Option<HostReport> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)? as f64;
        let share = |now: u64, then: u64| (now.saturating_sub(then) as f64 / total * 1000.0).round() / 10.0;
        Some(HostReport {
            cores: self.cores,
            cpu_busy_percent: share(self.busy, earlier.busy),
            iowait_percent: share(self.iowait, earlier.iowait),
            steal_percent: share(self.steal, earlier.steal),
            disk: None,
        })
    }
}

/// The block device holding a path, as `/proc/diskstats` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    major: u64,
    minor: u64,
    /// The device's name (`vda`, `nvme0n1p2`).
    pub name: String,
}

impl Disk {
    /// The disk holding `path`; `None` when the path's device is not a
    /// block device in `/proc/diskstats` (tmpfs, overlay) or cannot be read.
    pub fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(path).ok()?.dev();
        // Linux's encoding of dev_t (glibc's `major` and `minor`).
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
        let (name, _) = Self::find(&stats, major, minor)?;
        Some(Self { major, minor, name })
    }

    /// The name and sectors written of device `major:minor` in the text of
    /// `/proc/diskstats`: `major minor name reads merged sectors-read ms
    /// writes merged sectors-written …`.
    fn find(stats: &str, major: u64, minor: u64) -> Option<(String, u64)> {
        stats.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let numbers = (fields.first()?.parse::<u64>().ok()?, fields.get(1)?.parse::<u64>().ok()?);
            (numbers == (major, minor)).then(|| Some((fields.get(2)?.to_string(), fields.get(9)?.parse().ok()?)))?
        })
    }

    /// Bytes the device has written since it came up, by every process
    /// (the kernel counts 512-byte sectors whatever the device's own size).
    pub fn written_bytes(&self) -> Option<u64> {
        let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
        Some(Self::find(&stats, self.major, self.minor)?.1 * 512)
    }

    /// What the device wrote between `before` (bytes from
    /// [`Self::written_bytes`]) and now.
    pub fn since(&self, before: u64) -> Option<DiskReport> {
        let written = self.written_bytes()?.saturating_sub(before);
        Some(DiskReport { device: self.name.clone(), written_mib: (written as f64 / MIB * 10.0).round() / 10.0 })
    }
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
    /// `write_bytes` at the first and the last sample that could read it.
    written: Option<(u64, u64)>,
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
            written: None,
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
        if let Some(bytes) = written_bytes(self.pid) {
            let first = self.written.map_or(bytes, |(first, _)| first);
            self.written = Some((first, bytes));
        }
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
            disk_written_mib: self.written.map(|(first, last)| round(last.saturating_sub(first) as f64 / MIB)),
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

    #[test]
    fn counts_what_its_own_process_writes_to_disk() {
        let mut sampler = Sampler::new(std::process::id(), ticks_per_second());
        assert!(sampler.sample());
        // Beside the sources, on a disk: a tmpfs /tmp would write nothing.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let file = dir.path().join("written");
        std::fs::write(&file, vec![7u8; 4 * 1024 * 1024]).unwrap();
        std::fs::File::open(&file).unwrap().sync_all().unwrap();
        assert!(sampler.sample());
        let written = sampler.report().and_then(|r| r.disk_written_mib);
        assert!(written.is_some_and(|mib| mib >= 4.0), "{written:?}");
    }

    #[test]
    fn a_disk_is_found_by_its_device_numbers_with_what_it_wrote() {
        let stats = "   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
                     254       0 vda 1870139 45740 124339578 7681922 4940271 1049656 380071432 2728791 0 1271 1055\n \
                     254       1 vda1 10 0 20 0 30 0 40 0 0 0 0\n";
        assert_eq!(Disk::find(stats, 254, 0), Some(("vda".to_owned(), 380_071_432)));
        assert_eq!(Disk::find(stats, 254, 1), Some(("vda1".to_owned(), 40)));
        assert_eq!(Disk::find(stats, 8, 0), None);
        assert_eq!(Disk::find("254 0 vda 1 2\n", 254, 0), None, "a line cut short");
    }

    /// What the disk beside the sources wrote includes a file written and
    /// synced there (when that disk is a block device: not on tmpfs or
    /// overlay, where there is nothing to count).
    #[test]
    fn counts_what_the_disk_of_a_path_writes() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let Some(disk) = Disk::of(dir.path()) else {
            assert!(Disk::of(Path::new("/proc")).is_none(), "procfs is no block device");
            return;
        };
        let before = disk.written_bytes().unwrap();
        let file = dir.path().join("written");
        std::fs::write(&file, vec![7u8; 4 * 1024 * 1024]).unwrap();
        std::fs::File::open(&file).unwrap().sync_all().unwrap();
        let report = disk.since(before).unwrap();
        assert_eq!(report.device, disk.name);
        assert!(report.written_mib >= 4.0, "{report:?}");
    }

    #[test]
    fn host_time_is_split_into_busy_waiting_for_disk_and_stolen() {
        let before = HostTicks::parse("cpu  100 0 50 800 20 0 0 30 0 0\ncpu0 1 2 3\ncpu1 4 5 6\nintr 7\n").unwrap();
        // 200 more ticks: 90 busy (user 60, system 20, softirq 10), 10 iowait, 40 steal, 60 idle.
        let after = HostTicks::parse("cpu  160 0 70 860 30 0 10 70 5 0\ncpu0 1 2 3\ncpu1 4 5 6\n").unwrap();
        let host = after.since(before).unwrap();
        assert_eq!((host.cpu_busy_percent, host.iowait_percent, host.steal_percent), (45.0, 5.0, 20.0));
        assert_eq!(host.cores, 2);
        assert!(after.since(after).is_none(), "no time passed");
        assert!(HostTicks::parse("intr 1 2 3\n").is_none());
        assert!(HostTicks::read().is_some());
    }
}
