//! Counting: a latency histogram, and a process's CPU time and RSS read
//! from `/proc`.

use std::fs;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, which is 100
/// on every architecture this runs on (`getconf CLK_TCK`).
const TICKS_PER_SEC: f64 = 100.0;

/// A log-linear histogram of microseconds: exact below 256 µs, then 128
/// buckets per power of two (under 0.8 % error), up to about 25 days.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const LINEAR: u64 = 256;
const SUB_BITS: u32 = 7;

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; LINEAR as usize + 34 * (1 << SUB_BITS)],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= 8
        let sub = (v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1);
        (LINEAR + u64::from(e - 8) * (1 << SUB_BITS) + sub) as usize
    }

    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let e = (i - LINEAR) / (1 << SUB_BITS) + 8;
        let sub = (i - LINEAR) % (1 << SUB_BITS);
        ((1 << SUB_BITS) + sub) << (e - u64::from(SUB_BITS))
    }

    pub fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the lower bound of its bucket.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    /// "p50 p99 p999 max" in milliseconds, for a report line.
    pub fn summary_ms(&self) -> String {
        format!(
            "p50={:.3}ms p99={:.3}ms p999={:.3}ms max={:.3}ms",
            self.quantile(0.50) as f64 / 1000.0,
            self.quantile(0.99) as f64 / 1000.0,
            self.quantile(0.999) as f64 / 1000.0,
            self.max as f64 / 1000.0
        )
    }
}

/// CPU seconds (user + system, all threads) used so far by process `pid`
/// (`"self"` for this one), from `/proc/PID/stat`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    cpu_split(pid).map(|(user, system)| user + system)
}

/// A process's CPU seconds in user space and in the kernel.
fn cpu_split(pid: &str) -> Option<(f64, f64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; fields are
    // counted after the last ')'. utime and stime are fields 14 and 15,
    // i.e. the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime / TICKS_PER_SEC, stime / TICKS_PER_SEC))
}

/// User-space CPU seconds of every process of a `--server-pid` list.
fn user_seconds(list: &str) -> Option<f64> {
    pids(list)
        .map(|pid| cpu_split(pid).map(|(user, _)| user))
        .sum()
}

/// The processes of a `--server-pid` list (`PID` or `PID,PID,…`).
fn pids(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|p| !p.is_empty())
}

/// Resident set size in KiB, from `/proc/PID/status`, of the first
/// process of a `--server-pid` list.
pub fn rss_kib(list: &str) -> Option<u64> {
    status_kib(pids(list).next()?, "VmRSS:")
}

/// Peak resident set size since it started (`VmHWM`), in KiB, of the
/// first process of a `--server-pid` list.
pub fn peak_rss_kib(list: &str) -> Option<u64> {
    status_kib(pids(list).next()?, "VmHWM:")
}

/// A `NAME: N kB` field of `/proc/PID/status`, in KiB.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds the whole machine has been busy (all cores; everything
/// but idle and iowait), from `/proc/stat`.
fn machine_busy_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal
    Some((v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / TICKS_PER_SEC)
}

/// Voluntary and involuntary context switches of the main threads of a
/// `--server-pid` list, summed (for a single-threaded server: its event
/// loop), from `/proc/PID/status`.
pub fn context_switches(list: &str) -> Option<(u64, u64)> {
    pids(list)
        .map(context_switches_one)
        .try_fold((0, 0), |(v, n), s| s.map(|(v1, n1)| (v + v1, n + n1)))
}

fn context_switches_one(pid: &str) -> Option<(u64, u64)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((
        field("voluntary_ctxt_switches:")?,
        field("nonvoluntary_ctxt_switches:")?,
    ))
}

/// Before/after CPU readings of the server (every process of its
/// `--server-pid` list: the server, or e.g. the wsgate behind nginx and
/// nginx's master and worker, summed) and of the generator itself.
pub struct CpuWindow {
    server: Option<String>,
    /// CPU seconds of each process of the list at the start.
    server0: Option<Vec<f64>>,
    /// Their user-space CPU seconds at the start, summed.
    server_user0: Option<f64>,
    self0: f64,
    machine0: Option<f64>,
    switches0: Option<(u64, u64)>,
    wall0: std::time::Instant,
}

/// What a [`CpuWindow`] measured.
pub struct CpuUse {
    pub wall: f64,
    /// Server CPU seconds, when a server PID was given.
    pub server: Option<f64>,
    /// Server CPU seconds per process of the `--server-pid` list, in its
    /// order (`server` is their sum).
    pub server_each: Vec<f64>,
    /// Of `server`, the seconds in user space (the rest is the kernel's).
    pub server_user: Option<f64>,
    pub generator: f64,
    /// CPU seconds used by everything else on the machine (other
    /// processes, and interrupt time not charged to a process): noise.
    pub others: Option<f64>,
    /// The server's voluntary (it slept) and involuntary (it was
    /// preempted) context switches.
    pub switches: Option<(u64, u64)>,
}

impl CpuWindow {
    pub fn start(server: Option<&str>) -> CpuWindow {
        CpuWindow {
            server: server.map(str::to_string),
            server0: server.and_then(|l| pids(l).map(cpu_seconds).collect()),
            server_user0: server.and_then(user_seconds),
            self0: cpu_seconds("self").unwrap_or(0.0),
            machine0: machine_busy_seconds(),
            switches0: server.and_then(context_switches),
            wall0: std::time::Instant::now(),
        }
    }

    pub fn stop(&self) -> CpuUse {
        let wall = self.wall0.elapsed().as_secs_f64();
        let server_each: Option<Vec<f64>> = match (&self.server, &self.server0) {
            (Some(list), Some(before)) => pids(list)
                .zip(before)
                .map(|(pid, b)| cpu_seconds(pid).map(|after| after - b))
                .collect(),
            _ => None,
        };
        let server = server_each.as_ref().map(|v| v.iter().sum());
        let server_user = match (&self.server, self.server_user0) {
            (Some(list), Some(before)) => user_seconds(list).map(|after| after - before),
            _ => None,
        };
        let generator = cpu_seconds("self").unwrap_or(0.0) - self.self0;
        let others = match (self.machine0, machine_busy_seconds()) {
            (Some(m0), Some(m1)) => Some((m1 - m0 - generator - server.unwrap_or(0.0)).max(0.0)),
            _ => None,
        };
        let switches = match (&self.server, self.switches0) {
            (Some(pid), Some((v0, n0))) => {
                context_switches(pid).map(|(v1, n1)| (v1.saturating_sub(v0), n1.saturating_sub(n0)))
            }
            _ => None,
        };
        CpuUse {
            wall,
            server,
            server_each: server_each.unwrap_or_default(),
            server_user,
            generator,
            others,
            switches,
        }
    }
}

impl CpuUse {
    /// Each server process's CPU seconds, joined by `sep` (`na` if
    /// unknown), for a report line.
    pub fn each_list(&self, sep: &str) -> String {
        if self.server_each.is_empty() {
            return "na".into();
        }
        self.server_each
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// `count` per second of wall time, and per second of server CPU.
    pub fn rates(&self, count: u64) -> (f64, Option<f64>) {
        let per_wall = count as f64 / self.wall.max(1e-9);
        let per_cpu = self.server.map(|s| count as f64 / s.max(0.01));
        (per_wall, per_cpu)
    }

    /// "server cpu 97% of a core, generator 41%" for the report.
    pub fn describe(&self) -> String {
        let server = match self.server {
            Some(s) if self.server_each.len() > 1 => format!(
                "{:.2}s ({:.0}% of one core), the sum of {}",
                s,
                100.0 * s / self.wall,
                self.each_list("s + ")
            ),
            Some(s) => format!("{:.2}s ({:.0}% of one core)", s, 100.0 * s / self.wall),
            None => "unknown (no --server-pid)".to_string(),
        };
        let others = match self.others {
            Some(o) => format!(
                "; everything else {:.0}% of one core",
                100.0 * o / self.wall
            ),
            None => String::new(),
        };
        let switches = match self.switches {
            Some((v, n)) => format!("\nserver context switches: {v} voluntary, {n} involuntary"),
            None => String::new(),
        };
        format!(
            "wall {:.2}s; server cpu {server}; generator cpu {:.2}s ({:.0}% of one core){others}{switches}",
            self.wall,
            self.generator,
            100.0 * self.generator / self.wall
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip() {
        for v in [0, 1, 255, 256, 257, 1000, 65_535, 1 << 30] {
            let i = Histogram::index(v);
            let lo = Histogram::value(i);
            assert!(lo <= v && v - lo <= v / 128, "{v} -> {lo}");
        }
    }
}
