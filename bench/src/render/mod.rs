//! `chorus-bench render`: a run's JSON lines (`bench/run.sh` writes them) into
//! `BENCHMARKS.md`, with its ratio tables, the targets met or missed, and SVG charts.
//!
//! The page says only what the results say: a figure that was not measured (a peer that
//! failed, a ramp with no step inside the latency limit) shows as `n/a`, and a target it
//! decides shows as not met.

mod chart;
mod client_page;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Result};
pub use chart::{Bars, Lines, short};

/// The peers, in the order every table uses.
pub const PEERS: [(&str, &str); 4] = [
    ("chorus", "Chorus"),
    ("ws", "Node ws"),
    ("socketio", "Socket.IO"),
    ("baseline", "Rust baseline"),
];

/// Fan-out room sizes of the issue.
const FANOUT_SIZES: [u64; 3] = [100, 1000, 5000];

/// A run's results and what it was.
#[derive(Debug, Clone)]
pub struct Run {
    reports: Vec<Value>,
    meta: Value,
}

/// A written page and its charts.
#[derive(Debug, Clone)]
pub struct Page {
    /// The markdown.
    pub markdown: String,
    /// (file name, SVG) of each chart, linked from the page relative to its directory.
    pub charts: Vec<(String, String)>,
    /// Where the page links its charts, relative to the page.
    charts_dir: String,
}

impl Page {
    /// Add a chart and its link.
    fn chart(&mut self, file: &str, alt: &str, svg: String) {
        let _ = writeln!(self.markdown, "![{alt}]({}/{file})\n", self.charts_dir);
        self.charts.push((file.to_owned(), svg));
    }
}

impl Run {
    /// Read `results` (JSON lines) and `meta` (one JSON object).
    pub fn read(results: &Path, meta: &Path) -> Result<Run> {
        let text = std::fs::read_to_string(results)?;
        let reports = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    Error::Usage(format!("{}: not JSON ({e}): {line}", results.display()))
                })
            })
            .collect::<Result<Vec<Value>>>()?;
        let meta = serde_json::from_str(&std::fs::read_to_string(meta)?)
            .map_err(|e| Error::Usage(format!("{}: not JSON ({e})", meta.display())))?;
        Ok(Run { reports, meta })
    }

    /// From values already in memory.
    pub fn new(reports: Vec<Value>, meta: Value) -> Run {
        Run { reports, meta }
    }

    /// The reports of one workload against one peer, in the order they were run.
    fn of<'a>(
        &'a self,
        workload: &str,
        protocol: &str,
    ) -> impl Iterator<Item = &'a Value> + use<'a> {
        let (workload, protocol) = (workload.to_owned(), protocol.to_owned());
        self.reports.iter().filter(move |r| {
            r["workload"] == workload.as_str() && r["protocol"] == protocol.as_str()
        })
    }

    /// The fan-out ramp's best deliveries/s within the latency limit, for `n` subscribers.
    fn fanout_best(&self, peer: &str, n: u64) -> Option<&Value> {
        self.of("fanout-ramp", peer)
            .find(|r| r["params"]["subscribers"] == n)
            .map(|r| &r["results"]["best"])
            .filter(|b| !b.is_null())
    }

    fn fanout_ran(&self, peer: &str, n: u64) -> bool {
        self.of("fanout-ramp", peer)
            .any(|r| r["params"]["subscribers"] == n)
    }

    fn fanout_rate(&self, peer: &str, n: u64) -> Option<f64> {
        self.fanout_best(peer, n)?["deliveries_per_second"].as_f64()
    }

    fn echo(&self, peer: &str, connections: u64, body: u64) -> Option<&Value> {
        self.of("echo", peer)
            .find(|r| r["params"]["connections"] == connections && r["params"]["body"] == body)
            .map(|r| &r["results"])
    }

    fn echo_configs(&self) -> Vec<(u64, u64)> {
        let mut configs: Vec<(u64, u64)> = self
            .reports
            .iter()
            .filter(|r| r["workload"] == "echo")
            .filter_map(|r| {
                Some((
                    r["params"]["connections"].as_u64()?,
                    r["params"]["body"].as_u64()?,
                ))
            })
            .collect();
        configs.sort_unstable();
        configs.dedup();
        configs
    }

    /// The page and its charts; charts are linked as `<charts_dir>/<file>`.
    pub fn page(&self, charts_dir: &str) -> Page {
        let mut page = Page {
            markdown: String::new(),
            charts: Vec::new(),
            charts_dir: charts_dir.to_owned(),
        };
        self.header(&mut page.markdown);
        self.targets(&mut page.markdown);
        self.fanout(&mut page);
        self.chat(&mut page.markdown);
        self.echo_section(&mut page);
        self.idle(&mut page);
        self.storm(&mut page.markdown);
        self.codec(&mut page);
        self.client_page(&mut page.markdown);
        method(&mut page.markdown);
        page
    }

    fn header(&self, md: &mut String) {
        let m = &self.meta;
        let text = |v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        };
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "<!-- Written by `chorus-bench render` from bench/results.jsonl; do not edit by hand: \
             run `npm run bench`. -->\n"
        );
        if m["quick"] == true {
            let _ = writeln!(
                md,
                "**A `--quick` smoke run: every workload shrunk to seconds. These figures mean \
                 little.**\n"
            );
        }
        let _ = writeln!(
            md,
            "Chorus against Node `ws`, Socket.IO and a raw Rust baseline, measured side by side \
             in one run of `npm run bench` (`bench/run.sh`) on {}, in {} minutes.\n",
            text(&m["date"]),
            m["wall_seconds"]
                .as_f64()
                .map_or("?".into(), |s| format!("{:.0}", s / 60.0)),
        );
        let _ = writeln!(md, "| Machine | |\n| --- | --- |");
        let machine = &m["machine"];
        let _ = writeln!(md, "| CPU | {} |", text(&machine["cpu"]));
        let _ = writeln!(md, "| CPUs | {} |", text(&machine["cpus"]));
        let _ = writeln!(md, "| Memory | {} GiB |", text(&machine["memory_gib"]));
        let _ = writeln!(md, "| Kernel | Linux {} |", text(&machine["kernel"]));
        let _ = writeln!(
            md,
            "| Open-file limit | {} |",
            text(&machine["open_file_limit"])
        );
        let _ = writeln!(md, "\n| Versions and settings | |\n| --- | --- |");
        for (key, value) in m["versions"].as_object().into_iter().flatten() {
            let _ = writeln!(md, "| {key} | {} |", text(value));
        }
        for (key, value) in m["settings"].as_object().into_iter().flatten() {
            let _ = writeln!(md, "| {} | {} |", key.replace('_', " "), text(value));
        }
        if let Some(failed) = m["failed"].as_array().filter(|f| !f.is_empty()) {
            let names: Vec<String> = failed.iter().map(text).collect();
            let _ = writeln!(md, "\n**Failed in this run:** {}.", names.join(", "));
        }
        md.push('\n');
    }

    fn targets(&self, md: &mut String) {
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| Target | Measured | Met |\n| --- | --- | --- |");
        let ratio_row = |md: &mut String, peer: &str, name: &str, wanted: f64, percent: bool| {
            let mut cells = Vec::new();
            let mut met = true;
            for n in FANOUT_SIZES {
                let (Some(ours), true) = (self.fanout_rate("chorus", n), self.fanout_ran(peer, n))
                else {
                    cells.push(format!("N={n}: n/a"));
                    met = false;
                    continue;
                };
                match self.fanout_rate(peer, n) {
                    Some(theirs) => {
                        let r = ours / theirs;
                        met &= r >= wanted;
                        cells.push(if percent {
                            format!("N={n}: {:.0} %", 100.0 * r)
                        } else {
                            format!("N={n}: {r:.1}×")
                        });
                    }
                    None => cells.push(format!("N={n}: {name} held no step")),
                }
            }
            let goal = if percent {
                format!("≥ {:.0} % of {name}", 100.0 * wanted)
            } else {
                format!("≥ {wanted}× {name}")
            };
            let _ = writeln!(
                md,
                "| Fan-out deliveries/s at p99 ≤ 50 ms, {goal} | {} | {} |",
                cells.join(", "),
                yes(met)
            );
        };
        ratio_row(md, "socketio", "Socket.IO", 10.0, false);
        ratio_row(md, "ws", "Node ws", 3.0, false);
        ratio_row(md, "baseline", "the Rust baseline", 0.85, true);

        let configs = self.echo_configs();
        let mut below = 0;
        let mut compared = 0;
        let mut cells = Vec::new();
        for &(c, b) in &configs {
            let p99 = |peer| self.echo(peer, c, b).and_then(|r| r["p99_ms"].as_f64());
            if let (Some(ours), Some(theirs)) = (p99("chorus"), p99("ws")) {
                compared += 1;
                if ours < theirs {
                    below += 1;
                }
                cells.push(format!("{c}×{b} B: {ours:.2} vs {theirs:.2} ms"));
            }
        }
        let _ = writeln!(
            md,
            "| Echo p99 below Node ws at equal load | {} of {} loads: {} | {} |",
            below,
            compared,
            cells.join("; "),
            yes(compared > 0 && below == compared)
        );

        let idle: Vec<&Value> = self.of("idle", "chorus").collect();
        let mut cells = Vec::new();
        let mut met = !idle.is_empty();
        for r in &idle {
            let per = r["results"]["server_rss_per_connection_bytes"].as_f64();
            let open = r["results"]["open"].as_u64().unwrap_or(0);
            match per {
                Some(per) => {
                    met &= per <= 4096.0 && r["results"]["failed"] == 0;
                    cells.push(format!("{open} connections: {:.2} KiB", per / 1024.0));
                }
                None => {
                    met = false;
                    cells.push(format!("{open} connections: n/a"));
                }
            }
        }
        let _ = writeln!(
            md,
            "| Idle joined connection ≤ 4 KiB RSS, at 10k and at the limit | {} | {} |",
            or_na(cells.join(", ")),
            yes(met)
        );

        let storm = self.of("storm", "chorus").next().map(|r| &r["results"]);
        let (cell, met) = match storm {
            Some(s) => {
                let clients = s["clients"].as_u64().unwrap_or(0);
                let failures = s["failures"].as_u64().unwrap_or(u64::MAX);
                let back = s["all_back_s"].as_f64();
                (
                    format!(
                        "{} of {clients} back and rejoined in {}, {failures} failures",
                        s["back"],
                        back.map_or("n/a".into(), |b| format!("{b:.2} s"))
                    ),
                    clients >= 10_000 && failures == 0 && back.is_some(),
                )
            }
            None => ("n/a".into(), false),
        };
        let _ = writeln!(
            md,
            "| Reconnect storm: 10k clients back and rejoined, 0 failures | {cell} | {} |",
            yes(met)
        );
        md.push('\n');
    }

    fn fanout(&self, page: &mut Page) {
        let md = &mut page.markdown;
        let _ = writeln!(md, "## Room fan-out, 1 → N\n");
        let _ = writeln!(
            md,
            "One publisher, N subscribers in one room, 64-byte bodies, at a rising open-loop \
             publish rate. The figure is the highest deliveries per second at which p99 stayed \
             within 50 ms; latency is publish to delivery, at that rate. CPU is the generator's \
             and the server's over that step (100 % = one core); at 90 % or more of the \
             generator's cores the figure is the generator's limit, a lower bound for the \
             server. Where no step held, the row shows the lowest step (two publishes a second \
             or so): a burst of N deliveries then takes longer than the limit to drain.\n"
        );
        let _ = writeln!(
            md,
            "| N | Peer | Deliveries/s | Chorus / peer | p50 ms | p99 ms | p99.9 ms | Generator CPU | Server CPU |"
        );
        let _ = writeln!(
            md,
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for n in FANOUT_SIZES {
            for (peer, name) in PEERS {
                if !self.fanout_ran(peer, n) {
                    continue;
                }
                let report = self
                    .of("fanout-ramp", peer)
                    .find(|r| r["params"]["subscribers"] == n);
                let threads = report
                    .and_then(|r| r["generator"]["threads"].as_f64())
                    .unwrap_or(1.0);
                let best = self.fanout_best(peer, n);
                let rate = best.and_then(|b| b["deliveries_per_second"].as_f64());
                let ratio = match (self.fanout_rate("chorus", n), rate) {
                    _ if peer == "chorus" => "".into(),
                    (Some(a), Some(b)) => format!("{:.2}", a / b),
                    _ => "n/a".into(),
                };
                // With no step inside the limit, the lowest step's figures show by how much.
                let lowest = report
                    .and_then(|r| r["results"]["steps"].as_array())
                    .and_then(|steps| {
                        steps.iter().min_by(|a, b| {
                            let asked = |s: &Value| s["asked_deliveries_per_second"].as_f64();
                            asked(a)
                                .partial_cmp(&asked(b))
                                .unwrap_or(std::cmp::Ordering::Equal)
                        })
                    });
                let (shown, rate_cell) = match (best, lowest) {
                    (Some(best), _) => (Some(best), num(rate)),
                    (None, Some(step)) => (
                        Some(step),
                        format!(
                            "none held (lowest step: {}/s)",
                            num(step["deliveries_per_second"].as_f64())
                        ),
                    ),
                    (None, None) => (None, "n/a".into()),
                };
                let f = |key: &str| shown.and_then(|b| b[key].as_f64());
                // A step's CPU is under `generator` and `server`; the best's is flattened.
                let cpu = |flat: &str, part: &str| {
                    f(flat).or_else(|| shown.and_then(|s| s[part]["cpu_percent"].as_f64()))
                };
                let generator_cpu = cpu("generator_cpu_percent", "generator");
                let bound = generator_cpu.is_some_and(|c| c >= 90.0 * threads);
                let _ = writeln!(
                    md,
                    "| {n} | {name} | {rate_cell}{} | {ratio} | {} | {} | {} | {} | {} |",
                    if bound { " (generator-bound)" } else { "" },
                    ms(f("p50_ms")),
                    ms(f("p99_ms")),
                    ms(f("p999_ms")),
                    pct(generator_cpu),
                    pct(cpu("server_cpu_percent", "server")),
                );
            }
        }
        md.push('\n');
        let bars = Bars {
            title: "Fan-out: deliveries/s with p99 ≤ 50 ms (log scale)",
            unit: "deliveries per second",
            groups: FANOUT_SIZES.iter().map(|n| format!("N = {n}")).collect(),
            series: PEERS
                .iter()
                .map(|&(peer, name)| {
                    (
                        name,
                        FANOUT_SIZES
                            .iter()
                            .map(|&n| self.fanout_rate(peer, n))
                            .collect(),
                    )
                })
                .collect(),
            log: true,
        };
        page.chart("fanout.svg", "Fan-out deliveries per second", bars.svg());
        let n = 1000;
        let series: Vec<(&str, Vec<(f64, f64)>)> = PEERS
            .iter()
            .filter_map(|&(peer, name)| {
                let r = self
                    .of("fanout-ramp", peer)
                    .find(|r| r["params"]["subscribers"] == n)?;
                let points = r["results"]["steps"]
                    .as_array()?
                    .iter()
                    .filter_map(|s| {
                        Some((s["deliveries_per_second"].as_f64()?, s["p99_ms"].as_f64()?))
                    })
                    .filter(|&(x, y)| x > 0.0 && y > 0.0)
                    .collect();
                Some((name, points))
            })
            .collect();
        if !series.is_empty() {
            let lines = Lines {
                title: "Fan-out to 1000: p99 latency against deliveries/s (log-log)",
                x_unit: "deliveries per second",
                y_unit: "p99 latency, ms",
                series,
                limit: Some((50.0, "50 ms")),
            };
            page.chart(
                "fanout-latency.svg",
                "Fan-out p99 against rate",
                lines.svg(),
            );
        }
    }

    fn chat(&self, md: &mut String) {
        let _ = writeln!(md, "## All-to-all chat\n");
        let _ = writeln!(
            md,
            "Rooms where every member publishes and receives every message, at a rising rate; \
             the figure is deliveries per second with p99 ≤ 50 ms.\n"
        );
        let _ = writeln!(
            md,
            "| Members | Rooms | Peer | Deliveries/s | Chorus / peer | p50 ms | p99 ms |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
        let mut sizes: Vec<u64> = self
            .reports
            .iter()
            .filter(|r| r["workload"] == "chat")
            .filter_map(|r| r["params"]["members"].as_u64())
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let best = |peer: &str, m: u64| {
            self.of("chat", peer)
                .find(|r| r["params"]["members"] == m)
                .map(|r| (&r["params"]["rooms"], &r["results"]["best"]))
        };
        for m in sizes {
            let ours = best("chorus", m).and_then(|(_, b)| b["deliveries_per_second"].as_f64());
            for (peer, name) in PEERS {
                let Some((rooms, b)) = best(peer, m) else {
                    continue;
                };
                let rate = b["deliveries_per_second"].as_f64();
                let ratio = match (ours, rate) {
                    _ if peer == "chorus" => "".into(),
                    (Some(a), Some(r)) => format!("{:.2}", a / r),
                    _ => "n/a".into(),
                };
                let _ = writeln!(
                    md,
                    "| {m} | {rooms} | {name} | {} | {ratio} | {} | {} |",
                    num(rate),
                    ms(b["p50_ms"].as_f64()),
                    ms(b["p99_ms"].as_f64())
                );
            }
        }
        md.push('\n');
    }

    fn echo_section(&self, page: &mut Page) {
        let md = &mut page.markdown;
        let _ = writeln!(md, "## Echo round trip\n");
        let _ = writeln!(
            md,
            "Closed loop: each connection sends, waits for its echo, and sends again.\n"
        );
        let _ = writeln!(
            md,
            "| Connections | Body | Peer | Round trips/s | p50 ms | p99 ms | p99.9 ms | p99 Chorus / peer |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        let configs = self.echo_configs();
        for &(c, b) in &configs {
            let ours = self.echo("chorus", c, b).and_then(|r| r["p99_ms"].as_f64());
            for (peer, name) in PEERS {
                let Some(r) = self.echo(peer, c, b) else {
                    continue;
                };
                let p99 = r["p99_ms"].as_f64();
                let ratio = match (ours, p99) {
                    _ if peer == "chorus" => "".into(),
                    (Some(a), Some(t)) if t > 0.0 => format!("{:.2}", a / t),
                    _ => "n/a".into(),
                };
                let _ = writeln!(
                    md,
                    "| {c} | {b} B | {name} | {} | {} | {} | {} | {ratio} |",
                    num(r["round_trips_per_second"].as_f64()),
                    ms(r["p50_ms"].as_f64()),
                    ms(p99),
                    ms(r["p999_ms"].as_f64())
                );
            }
        }
        md.push('\n');
        let bars = Bars {
            title: "Echo: p99 round trip, ms (lower is better)",
            unit: "p99, ms",
            groups: configs
                .iter()
                .map(|(c, b)| format!("{c} × {b} B"))
                .collect(),
            series: PEERS
                .iter()
                .map(|&(peer, name)| {
                    (
                        name,
                        configs
                            .iter()
                            .map(|&(c, b)| self.echo(peer, c, b).and_then(|r| r["p99_ms"].as_f64()))
                            .collect(),
                    )
                })
                .collect(),
            log: true,
        };
        page.chart("echo.svg", "Echo p99", bars.svg());
    }

    fn idle(&self, page: &mut Page) {
        let md = &mut page.markdown;
        let _ = writeln!(md, "## Idle joined connections\n");
        let _ = writeln!(
            md,
            "Connections that joined a room (100 per room) and then stay silent, opened from \
             127.0.0.x source addresses, first 10,000 and then as many as the open-file limit \
             allows. Memory is the server's resident set (VmRSS) after minus before, divided \
             by the connections.\n"
        );
        let _ = writeln!(
            md,
            "| Peer | Connections | Failed | RSS per connection | Server RSS after |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
        let mut groups = Vec::new();
        let mut series = Vec::new();
        for (peer, name) in PEERS {
            let mut values = Vec::new();
            for (i, r) in self.of("idle", peer).enumerate() {
                let res = &r["results"];
                let per = res["server_rss_per_connection_bytes"].as_f64();
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {} | {} |",
                    res["open"],
                    res["failed"],
                    per.map_or("n/a".into(), |p| format!("{:.2} KiB", p / 1024.0)),
                    res["server_rss_after_bytes"]
                        .as_f64()
                        .map_or("n/a".into(), |b| format!("{:.0} MiB", b / 1048576.0))
                );
                if groups.len() <= i {
                    groups.push(if i == 0 {
                        "first total".to_owned()
                    } else {
                        "the limit".to_owned()
                    });
                }
                values.push(per.map(|p| p / 1024.0));
            }
            series.push((name, values));
        }
        md.push('\n');
        if !groups.is_empty() {
            if let Some(first) = self.of("idle", "chorus").next() {
                groups[0] = format!("{} connections", first["results"]["open"]);
            }
            let bars = Bars {
                title: "Idle joined connection: server RSS, KiB each (lower is better)",
                unit: "KiB per connection",
                groups,
                series,
                log: false,
            };
            page.chart("idle.svg", "Idle memory per connection", bars.svg());
        }
    }

    fn storm(&self, md: &mut String) {
        let _ = writeln!(md, "## Reconnect storm\n");
        let _ = writeln!(
            md,
            "Every client's connection is dropped at once; each reconnects after a random \
             delay below the jitter and rejoins its room. The time is until the last is back.\n"
        );
        let _ = writeln!(
            md,
            "| Peer | Clients | Back | Failures | All back | Reconnect p50 | p99 | Max |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        for (peer, name) in PEERS {
            for r in self.of("storm", peer) {
                let s = &r["results"];
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {} | {} | {} | {} | {} |",
                    s["clients"],
                    s["back"],
                    s["failures"],
                    s["all_back_s"]
                        .as_f64()
                        .map_or("n/a".into(), |b| format!("{b:.2} s")),
                    ms(s["reconnect_p50_ms"].as_f64()),
                    ms(s["reconnect_p99_ms"].as_f64()),
                    ms(s["reconnect_max_ms"].as_f64())
                );
            }
        }
        md.push('\n');
    }

    fn codec(&self, page: &mut Page) {
        let md = &mut page.markdown;
        let codec: Vec<&Value> = self
            .reports
            .iter()
            .filter(|r| r["workload"] == "codec")
            .collect();
        if codec.is_empty() {
            return;
        }
        let _ = writeln!(md, "## Codec\n");
        let _ = writeln!(
            md,
            "Encoding and decoding each message kind: postcard (the wire format) against JSON \
             (serde_json) of the same value. Native figures are criterion's mean; wasm figures \
             are timed loops in headless Chromium (`bench/codec.sh`).\n"
        );
        let _ = writeln!(
            md,
            "| Runtime | Message | Op | postcard ns | JSON ns | JSON / postcard | postcard bytes | JSON bytes |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- | --- |");
        let mut keys: Vec<(String, String, String)> = codec
            .iter()
            .filter_map(|r| {
                let p = &r["params"];
                Some((
                    p["runtime"].as_str()?.to_owned(),
                    p["message"].as_str()?.to_owned(),
                    p["op"].as_str()?.to_owned(),
                ))
            })
            .collect();
        keys.sort();
        keys.dedup();
        let find = |format: &str, key: &(String, String, String)| {
            codec.iter().find(|r| {
                r["protocol"] == format
                    && r["params"]["runtime"] == key.0.as_str()
                    && r["params"]["message"] == key.1.as_str()
                    && r["params"]["op"] == key.2.as_str()
            })
        };
        for key in &keys {
            let pc = find("postcard", key).map(|r| &r["results"]);
            let js = find("json", key).map(|r| &r["results"]);
            let ns = |r: Option<&Value>| r.and_then(|r| r["ns_per_op"].as_f64());
            let ratio = match (ns(pc), ns(js)) {
                (Some(p), Some(j)) if p > 0.0 => format!("{:.1}", j / p),
                _ => "n/a".into(),
            };
            let bytes = |r: Option<&Value>| r.map_or("n/a".into(), |r| r["bytes"].to_string());
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {ratio} | {} | {} |",
                key.0,
                key.1,
                key.2,
                ns(pc).map_or("n/a".into(), |v| format!("{v:.0}")),
                ns(js).map_or("n/a".into(), |v| format!("{v:.0}")),
                bytes(pc),
                bytes(js)
            );
        }
        md.push('\n');
        for runtime in ["native", "wasm-chromium"] {
            let rows: Vec<&(String, String, String)> = keys
                .iter()
                .filter(|k| k.0 == runtime && k.2 == "decode")
                .collect();
            if rows.is_empty() {
                continue;
            }
            let groups = rows
                .iter()
                .map(|k| {
                    k.1.replace("ClientMessage::", "client ")
                        .replace("ServerMessage::", "server ")
                })
                .collect();
            let values = |format| {
                rows.iter()
                    .map(|k| find(format, k).and_then(|r| r["results"]["ns_per_op"].as_f64()))
                    .collect()
            };
            let title = format!("Decode, {runtime}: ns per message (lower is better, log scale)");
            let bars = Bars {
                title: &title,
                unit: "ns per decode",
                groups,
                series: vec![("postcard", values("postcard")), ("JSON", values("json"))],
                log: true,
            };
            let file = format!("codec-{runtime}.svg");
            page.chart(&file, &format!("Decode time, {runtime}"), bars.svg());
        }
    }
}

fn method(md: &mut String) {
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "- One command, `npm run bench`, builds everything in release mode, starts each peer \
         in turn on a fresh process and runs `chorus-bench suite` against it: idle (on the \
         fresh heap), echo, fan-out ramps (N = 100, 1000, 5000), chat ramps (16 and 32 \
         members) and the reconnect storm; then the codec microbenchmarks.\n\
         - The load generator (`bench/`, Rust, tokio) parses many frames per read and \
         allocates nothing per message; `chorus-bench ceiling` measures its own limit. Every \
         result carries its CPU time and the server's; a ramp step that used 90 % or more of \
         the generator's core is flagged generator-bound, and its figure is a lower bound for \
         the server.\n\
         - Latency is stamped into each body by the sender and read by the receiver on the \
         same clock, into HDR histograms.\n\
         - The peers are in `bench/peers/`: idiomatic Node `ws` and Socket.IO servers, and a \
         raw Rust baseline that fans out pre-framed bytes with vectored writes.\n\
         - The raw results are `bench/results.jsonl` and `bench/meta.json` beside this page."
    );
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

fn or_na(text: String) -> String {
    if text.is_empty() { "n/a".into() } else { text }
}

fn num(v: Option<f64>) -> String {
    v.map_or("n/a".into(), short)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} %"))
}

/// Write the page to `markdown` and its charts into `charts`, which must be in the same
/// directory as the page or below it (the page links them relatively).
pub fn write(run: &Run, markdown: &Path, charts: &Path) -> Result<()> {
    let base = markdown.parent().unwrap_or(Path::new(""));
    let relative: PathBuf = charts
        .strip_prefix(base)
        .map_err(|_| {
            Error::Usage(format!(
                "the charts ({}) must be in the page's directory ({})",
                charts.display(),
                base.display()
            ))
        })?
        .to_owned();
    let dir = relative.to_string_lossy().replace('\\', "/");
    let page = run.page(if dir.is_empty() { "." } else { &dir });
    std::fs::create_dir_all(charts)?;
    for (file, svg) in &page.charts {
        std::fs::write(charts.join(file), svg)?;
    }
    std::fs::write(markdown, page.markdown)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fanout(peer: &str, n: u64, rate: Option<f64>) -> Value {
        json!({"workload": "fanout-ramp", "protocol": peer, "params": {"subscribers": n},
               "results": {"best": rate.map(|r| json!({"deliveries_per_second": r,
                   "p50_ms": 1.0, "p99_ms": 10.0, "p999_ms": 20.0})),
                   "steps": [{"deliveries_per_second": rate.unwrap_or(1e3), "p99_ms": 10.0}]}})
    }

    #[test]
    fn targets_follow_the_figures() {
        let mut reports = Vec::new();
        for n in FANOUT_SIZES {
            reports.push(fanout("chorus", n, Some(9e5)));
            reports.push(fanout("ws", n, Some(1e5)));
            reports.push(fanout("socketio", n, None));
            reports.push(fanout("baseline", n, Some(1e6)));
        }
        reports.push(json!({"workload": "storm", "protocol": "chorus",
            "results": {"clients": 10000, "back": 10000, "failures": 0, "all_back_s": 4.2}}));
        let page = Run::new(reports, json!({"quick": false})).page("bench");
        let md = &page.markdown;
        assert!(
            md.contains("≥ 10× Socket.IO | N=100: Socket.IO held no step"),
            "{md}"
        );
        assert!(
            md.contains("≥ 3× Node ws | N=100: 9.0×, N=1000: 9.0×, N=5000: 9.0× | yes"),
            "{md}"
        );
        assert!(
            md.contains("≥ 85 % of the Rust baseline | N=100: 90 %"),
            "{md}"
        );
        assert!(
            md.contains(
                "0 failures | 10000 of 10000 back and rejoined in 4.20 s, 0 failures | yes"
            ),
            "{md}"
        );
        // Nothing measured: not met.
        assert!(md.contains("at the limit | n/a | **no**"), "{md}");
        assert!(md.contains("![Fan-out deliveries per second](bench/fanout.svg)"));
        assert!(
            page.charts
                .iter()
                .any(|(f, svg)| f == "fanout.svg" && svg.contains("900k"))
        );
    }
}
