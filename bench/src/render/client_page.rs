//! The "Browser client" section: `bench/client-page/run.mjs`'s results (workloads
//! `client-page-startup` and `client-page-flood`), chorus-client against socket.io-client
//! and a raw WebSocket speaking the Chorus wire, with issue 13's targets.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Run, short, yes};

/// The clients, in the order the table uses. The last is no client: the browser's
/// WebSocket counting the frames, the ceiling of the others.
const CLIENTS: [(&str, &str); 4] = [
    ("chorus-client", "chorus-client"),
    ("socket.io-client", "socket.io-client"),
    ("raw-websocket", "raw WebSocket, Chorus wire"),
    ("websocket-only", "browser WebSocket alone (no decoding)"),
];

/// A client's figures: startup, and the median of its flood runs with each run.
struct Figures<'a> {
    startup: Option<&'a Value>,
    floods: Vec<&'a Value>,
}

impl Figures<'_> {
    fn startup_ms(&self) -> Option<f64> {
        self.startup?["results"]["median_ms"].as_f64()
    }

    /// "import / wasm / connect" medians, in ms.
    fn startup_phases(&self) -> String {
        let r = self.startup.map(|s| &s["results"]);
        let phase = |key: &str| {
            r.and_then(|r| r[key].as_f64())
                .map_or("n/a".into(), |v| format!("{v:.0}"))
        };
        match r {
            Some(_) => format!(
                "{} / {} / {}",
                phase("import_median_ms"),
                phase("wasm_median_ms"),
                phase("connect_median_ms")
            ),
            None => "n/a".into(),
        }
    }

    /// The flood runs' values of `key`, in run order.
    fn runs(&self, key: &str) -> Vec<f64> {
        self.floods
            .iter()
            .filter_map(|r| r["results"][key].as_f64())
            .collect()
    }

    fn median(&self, key: &str) -> Option<f64> {
        let mut values = self.runs(key);
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        Some(if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        })
    }

    /// "median (run 1, run 2, ...)", each written by `format`.
    fn cell(&self, key: &str, format: impl Fn(f64) -> String) -> String {
        let runs = self.runs(key);
        match self.median(key) {
            Some(m) if runs.len() > 1 => format!(
                "{} ({})",
                format(m),
                runs.iter()
                    .map(|&v| format(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(m) => format(m),
            None => "n/a".into(),
        }
    }
}

impl Run {
    fn client_figures(&self, client: &str) -> Figures<'_> {
        Figures {
            startup: self.of("client-page-startup", client).last(),
            floods: self.of("client-page-flood", client).collect(),
        }
    }

    pub(super) fn client_page(&self, md: &mut String) {
        let any = self.reports.iter().find(|r| {
            r["workload"] == "client-page-startup" || r["workload"] == "client-page-flood"
        });
        let Some(any) = any else {
            return;
        };
        let params = &any["params"];
        let figures: Vec<Figures<'_>> = CLIENTS
            .iter()
            .map(|(c, _)| self.client_figures(c))
            .collect();
        let loads = figures
            .iter()
            .find_map(|f| f.startup?["params"]["loads"].as_u64())
            .unwrap_or(0);
        let flood = figures.iter().find_map(|f| f.floods.first().copied());
        let messages = flood
            .and_then(|r| r["params"]["messages"].as_u64())
            .unwrap_or(0);
        let runs = figures.iter().map(|f| f.floods.len()).max().unwrap_or(0);
        let messages = thousands(messages);

        let _ = writeln!(md, "## Browser client\n");
        let _ = writeln!(
            md,
            "The npm package `chorus-client` against socket.io-client and a raw `WebSocket` that \
             decodes the Chorus wire by hand (`bench/client-page/raw.js`), on the same blank \
             page in headless Chromium {} (`bench/client-page`, measured {}; load average at \
             its start {}). Startup is the time from the start of the module import to the \
             first open (the server's welcome; socket.io-client's `connect`), module fetch and \
             wasm compile included: the median of {loads} cold loads, each in a new browser \
             context with the cache disabled. The flood is one room receiving {messages} \
             messages of 64 B pushed as fast as the server sends them (Chorus: a member \
             publishing over its own WebSocket, with the outbound queue limits raised to hold \
             the whole flood, as Socket.IO buffers without bound; Socket.IO: the peer \
             server's broadcast of `pub` events), the median of {runs} runs with each run in \
             brackets. The last row is no client: the browser's WebSocket counting the \
             frames of the same flood, the most any client could receive here. Messages/s \
             counts from the first arrival to the last; main thread busy is the page's \
             main-thread CPU time over that wall time: well below 100 %, the page waits for \
             the browser's network process or the server. Script and task time are the page's \
             main-thread CPU time over the flood (CDP `Performance.getMetrics`, \
             `ScriptDuration` and `TaskDuration`), per 1,000 messages. The heap is the JS heap \
             used once joined minus that of the blank page, both after a full GC; the wasm \
             linear memory is apart. `node bench/client-page/run.mjs --profile DIR` shows \
             where each client's time goes.\n",
            text(&params["chromium"]),
            text(&params["date"]),
            text(&params["load_average"]),
        );
        let _ = writeln!(
            md,
            "| Client | Startup ms | Import / wasm / connect ms | Module bytes (gzip) | \
             Messages/s | Main thread busy | Script ms / 1000 msgs | Task ms / 1000 msgs | \
             JS heap joined | Wasm memory |"
        );
        let _ = writeln!(md, "|{}", " --- |".repeat(10));
        for ((_, name), f) in CLIENTS.iter().zip(&figures) {
            let size = f.startup.map_or("n/a".into(), |s| {
                let p = &s["params"];
                format!(
                    "{} ({})",
                    short(p["bytes"].as_f64().unwrap_or(0.0)),
                    short(p["gzip_bytes"].as_f64().unwrap_or(0.0))
                )
            });
            let kib = |v: f64| format!("{v:.0} KiB");
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {size} | {} | {} | {} | {} | {} | {} |",
                f.startup_ms().map_or("n/a".into(), |v| format!("{v:.0}")),
                f.startup_phases(),
                f.cell("messages_per_second", short),
                f.median("main_thread_busy_percent")
                    .map_or("n/a".into(), |v| format!("{v:.0} %")),
                f.cell("script_ms_per_1000", |v| format!("{v:.1}")),
                f.cell("task_ms_per_1000", |v| format!("{v:.1}")),
                f.median("heap_joined_kib").map_or("n/a".into(), kib),
                f.median("wasm_memory_kib")
                    .map_or("n/a".into(), |v| if v > 0.0 {
                        kib(v)
                    } else {
                        "none".into()
                    }),
            );
        }
        md.push('\n');

        let [chorus, socketio, ..] = &figures[..] else {
            return;
        };
        let _ = writeln!(
            md,
            "| Target (issue 13) | chorus-client | socket.io-client | Met |"
        );
        let _ = writeln!(md, "| --- | --- | --- | --- |");
        let mut row = |goal: &str,
                       ours: Option<f64>,
                       theirs: Option<f64>,
                       higher: bool,
                       f: &dyn Fn(f64) -> String| {
            let met = match (ours, theirs) {
                (Some(a), Some(b)) => (higher && a >= b) || (!higher && a <= b),
                _ => false,
            };
            let cell = |v: Option<f64>| v.map_or("n/a".into(), f);
            let _ = writeln!(
                md,
                "| {goal} | {} | {} | {} |",
                cell(ours),
                cell(theirs),
                yes(met)
            );
        };
        row(
            "Received messages/s ≥ socket.io-client's",
            chorus.median("messages_per_second"),
            socketio.median("messages_per_second"),
            true,
            &short,
        );
        row(
            "Script time per message ≤ socket.io-client's",
            chorus.median("script_ms_per_1000"),
            socketio.median("script_ms_per_1000"),
            false,
            &|v| format!("{v:.1} ms / 1000"),
        );
        row(
            "Startup ≤ socket.io-client's",
            chorus.startup_ms(),
            socketio.startup_ms(),
            false,
            &|v| format!("{v:.0} ms"),
        );
        md.push('\n');
    }
}

/// `20000` as `20,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "n/a".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn startup(client: &str, ms: f64) -> Value {
        json!({"workload": "client-page-startup", "protocol": client,
               "params": {"loads": 15, "bytes": 81414, "gzip_bytes": 33760,
                          "chromium": "156", "date": "2026-12-03 07:00 UTC", "load_average": 1.5},
               "results": {"median_ms": ms, "import_median_ms": 20.0, "wasm_median_ms": 10.0,
                           "connect_median_ms": 30.0}})
    }

    fn flood(client: &str, run: u64, rate: f64, script: f64) -> Value {
        json!({"workload": "client-page-flood", "protocol": client,
               "params": {"messages": 20000, "body": 64, "run": run},
               "results": {"messages_per_second": rate, "script_ms_per_1000": script,
                           "task_ms_per_1000": script * 2.0, "heap_joined_kib": 150.0,
                           "main_thread_busy_percent": 40.0,
                           "wasm_memory_kib": if client == "chorus-client" { 1152.0 } else { 0.0 }}})
    }

    #[test]
    fn the_section_shows_medians_runs_and_targets() {
        let mut reports = vec![
            startup("chorus-client", 90.0),
            startup("socket.io-client", 80.0),
            startup("raw-websocket", 30.0),
        ];
        for (run, (ours, theirs)) in [(1, (150e3, 100e3)), (2, (120e3, 110e3)), (3, (160e3, 90e3))]
        {
            reports.push(flood("chorus-client", run, ours, 5.0));
            reports.push(flood("socket.io-client", run, theirs, 6.0));
            reports.push(flood("raw-websocket", run, 300e3, 2.0));
        }
        let mut md = String::new();
        Run::new(reports, json!({})).client_page(&mut md);
        assert!(md.contains("## Browser client"), "{md}");
        assert!(md.contains("receiving 20,000 messages of 64 B"), "{md}");
        assert!(
            md.contains(
                "| chorus-client | 90 | 20 / 10 / 30 | 81k (34k) | 150k (150k, 120k, 160k) | 40 % \
                 | 5.0 (5.0, 5.0, 5.0) |"
            ),
            "{md}"
        );
        assert!(md.contains("| raw WebSocket, Chorus wire | 30 |"), "{md}");
        // Not measured at all: every cell says so.
        assert!(
            md.contains(&format!(
                "| browser WebSocket alone (no decoding) |{}",
                " n/a |".repeat(9)
            )),
            "{md}"
        );
        assert!(md.contains("| 150 KiB | 1152 KiB |"), "{md}");
        assert!(md.contains("| 150 KiB | none |"), "{md}");
        assert!(
            md.contains("| Received messages/s ≥ socket.io-client's | 150k | 100k | yes |"),
            "{md}"
        );
        assert!(
            md.contains("| Script time per message ≤ socket.io-client's | 5.0 ms / 1000 | 6.0 ms / 1000 | yes |"),
            "{md}"
        );
        assert!(
            md.contains("| Startup ≤ socket.io-client's | 90 ms | 80 ms | **no** |"),
            "{md}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(200), "200");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn no_results_no_section() {
        let mut md = String::new();
        Run::new(vec![], json!({})).client_page(&mut md);
        assert!(md.is_empty());
    }
}
