//! What workloads measure: latency histograms sharded over connections, the generator's own
//! CPU time, a process's resident memory, and the open-file limit.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::Result;

/// Highest latency recorded exactly; anything slower is recorded as this.
const MAX_LATENCY: Duration = Duration::from_secs(60);

/// An empty latency histogram in nanoseconds, 3 significant digits, 1 ns to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3).expect("valid bounds")
}

/// Deliveries and their latencies seen by one group of connections.
#[derive(Debug)]
pub struct Shard {
    /// Latencies in nanoseconds.
    pub latency: Histogram<u64>,
    /// Messages counted (some may carry no latency).
    pub count: u64,
}

impl Shard {
    /// Count one message that took `nanos`.
    #[inline]
    pub fn record(&mut self, nanos: u64) {
        self.latency.saturating_record(nanos.max(1));
        self.count += 1;
    }
}

/// Latency histograms shared by many connection tasks. Each connection records into the
/// shard its index picks, locking it once per batch of frames, so recording takes neither
/// an allocation nor a contended lock (a histogram per connection would take 200 KB each,
/// a gigabyte at 5000 subscribers).
///
/// A std `Mutex`: it is held only while a batch already in memory is parsed, never across
/// an `.await`.
#[derive(Debug)]
pub struct Recorder {
    shards: Box<[Mutex<Shard>]>,
}

impl Recorder {
    /// A recorder with `shards` histograms (at least one).
    pub fn new(shards: usize) -> Recorder {
        Recorder {
            shards: (0..shards.max(1))
                .map(|_| {
                    Mutex::new(Shard {
                        latency: histogram(),
                        count: 0,
                    })
                })
                .collect(),
        }
    }

    /// A recorder with shards enough for the generator's threads.
    pub fn for_threads(threads: usize) -> Recorder {
        Recorder::new(threads * 16)
    }

    /// The shard of connection `index`.
    pub fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Messages counted so far.
    pub fn count(&self) -> u64 {
        (0..self.shards.len()).map(|i| self.shard(i).count).sum()
    }

    /// Everything recorded since the last take, merged; the shards start over.
    pub fn take(&self) -> Result<Summary> {
        let mut summary = Summary {
            count: 0,
            latency: histogram(),
        };
        for i in 0..self.shards.len() {
            let mut shard = self.shard(i);
            summary.count += shard.count;
            summary.latency.add(&shard.latency)?;
            shard.latency.reset();
            shard.count = 0;
        }
        Ok(summary)
    }
}

/// Merged counts and latencies.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Messages counted.
    pub count: u64,
    /// Their latencies, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Summary {
    /// The latency at quantile `q`, in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1e6
    }

    /// p50, p99, p99.9 and max, in milliseconds, as JSON fields.
    pub fn latency_json(&self) -> Value {
        json!({
            "p50_ms": round3(self.ms(0.5)),
            "p99_ms": round3(self.ms(0.99)),
            "p999_ms": round3(self.ms(0.999)),
            "max_ms": round3(if self.latency.is_empty() { 0.0 } else { self.latency.max() as f64 / 1e6 }),
            "samples": self.latency.len(),
        })
    }

    /// p50, p99, p99.9 and max, for a human.
    pub fn latency_text(&self) -> String {
        format!(
            "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            if self.latency.is_empty() {
                0.0
            } else {
                self.latency.max() as f64 / 1e6
            }
        )
    }
}

/// `x` to three decimals, so JSON stays readable.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// /proc counts CPU time in USER_HZ, which Linux fixes at 100 for this interface.
const TICK: f64 = 0.01;

/// The process's CPU time at one instant, and the server's when its pid is known.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    wall: Instant,
    cpu: Duration,
    user_ticks: u64,
    system_ticks: u64,
    server_ticks: Option<(u64, u64)>,
}

impl CpuSample {
    /// CPU time of this process (all threads) so far.
    pub fn now() -> CpuSample {
        CpuSample::with_server(None)
    }

    /// CPU time of this process so far and, if given, of the server process `server`.
    pub fn with_server(server: Option<u32>) -> CpuSample {
        let cpu = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let (user_ticks, system_ticks) = proc_ticks("self").unwrap_or((0, 0));
        CpuSample {
            wall: Instant::now(),
            cpu: Duration::new(cpu.tv_sec as u64, cpu.tv_nsec as u32),
            user_ticks,
            system_ticks,
            server_ticks: server.and_then(|pid| proc_ticks(&pid.to_string())),
        }
    }

    /// What was spent between `earlier` and this sample.
    pub fn since(&self, earlier: &CpuSample) -> CpuUsage {
        let seconds = |now: u64, then: u64| now.saturating_sub(then) as f64 * TICK;
        CpuUsage {
            wall: self.wall.duration_since(earlier.wall).as_secs_f64(),
            cpu: self.cpu.saturating_sub(earlier.cpu).as_secs_f64(),
            user: seconds(self.user_ticks, earlier.user_ticks),
            system: seconds(self.system_ticks, earlier.system_ticks),
            server: match (self.server_ticks, earlier.server_ticks) {
                (Some((user, system)), Some((user0, system0))) => {
                    Some(seconds(user, user0) + seconds(system, system0))
                }
                _ => None,
            },
        }
    }
}

/// The load generator's own CPU use over a stretch of wall time, and the server's.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsage {
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds, all threads (user and system).
    pub cpu: f64,
    /// User CPU seconds (10 ms resolution).
    pub user: f64,
    /// System CPU seconds (10 ms resolution).
    pub system: f64,
    /// The server's CPU seconds, user and system (10 ms resolution), when its pid is known.
    pub server: Option<f64>,
}

impl CpuUsage {
    /// CPU time over wall time, in percent of one core.
    pub fn percent(&self) -> f64 {
        if self.wall > 0.0 {
            100.0 * self.cpu / self.wall
        } else {
            0.0
        }
    }

    /// As JSON fields.
    pub fn json(&self) -> Value {
        json!({
            "wall_s": round3(self.wall),
            "cpu_s": round3(self.cpu),
            "user_s": round3(self.user),
            "system_s": round3(self.system),
            "cpu_percent": round3(self.percent()),
        })
    }

    /// The server's CPU time over wall time, in percent of one core, when known.
    pub fn server_percent(&self) -> Option<f64> {
        self.server
            .filter(|_| self.wall > 0.0)
            .map(|cpu| 100.0 * cpu / self.wall)
    }

    /// The server's part as JSON, when known.
    pub fn server_json(&self) -> Option<Value> {
        Some(json!({
            "cpu_s": round3(self.server?),
            "cpu_percent": round3(self.server_percent()?),
        }))
    }

    /// For a human.
    pub fn text(&self) -> String {
        let mut text = if self.user == 0.0 && self.system == 0.0 {
            format!("generator CPU {:.0}%", self.percent())
        } else {
            format!(
                "generator CPU {:.0}% ({:.2} s user, {:.2} s system)",
                self.percent(),
                self.user,
                self.system
            )
        };
        if let Some(server) = self.server_percent() {
            text.push_str(&format!(", server CPU {server:.0}%"));
        }
        text
    }
}

/// User and system ticks of process `pid` (`self` for this one), from `/proc/<pid>/stat`.
fn proc_ticks(pid: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // Fields 3.. of proc(5); utime is field 14, stime 15.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Resident memory of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| crate::Error::Usage(format!("no VmRSS in /proc/{pid}/status")))
}

/// Raise this process's open-file limit to its hard limit; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_and_start_over() {
        let recorder = Recorder::new(4);
        for i in 0..100u64 {
            recorder.shard(i as usize).record(1_000_000 * (i + 1));
        }
        assert_eq!(recorder.count(), 100);
        let summary = recorder.take().unwrap();
        assert_eq!(summary.count, 100);
        assert!((summary.ms(0.5) - 50.0).abs() < 0.1, "{}", summary.ms(0.5));
        assert_eq!(recorder.count(), 0);
        assert!(recorder.take().unwrap().latency.is_empty());
    }

    #[test]
    fn own_cpu_time_and_memory_are_readable() {
        // This process stands in for the server too.
        let before = CpuSample::with_server(Some(std::process::id()));
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let usage = CpuSample::with_server(Some(std::process::id())).since(&before);
        assert!(usage.cpu > 0.0);
        assert!(usage.server.is_some());
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
        assert!(proc_ticks("self").is_some());
    }
}
