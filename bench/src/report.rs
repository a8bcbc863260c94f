//! Results: one per workload run, printed as a line for a human or as one JSON object
//! (JSON lines with `--json`).
//!
//! Every JSON result has the same envelope:
//!
//! ```json
//! {"workload": "echo", "protocol": "chorus", "servers": ["ws://127.0.0.1:8080/ws"],
//!  "quick": false, "params": {...}, "results": {...},
//!  "generator": {"wall_s": .., "cpu_s": .., "user_s": .., "system_s": .., "cpu_percent": ..,
//!                "threads": 2},
//!  "server": {"cpu_s": .., "cpu_percent": ..}}
//! ```
//!
//! `generator` is the load generator's own CPU over the measured stretch, and `server` the
//! server process's over the same stretch (only with `--server-pid`): together they show
//! which side was the bottleneck.

use serde_json::{Value, json};

use crate::stats::CpuUsage;

/// One result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Workload name.
    pub workload: &'static str,
    /// Protocol name.
    pub protocol: &'static str,
    /// Server URLs.
    pub servers: Vec<String>,
    /// Whether `--quick` shrank the run.
    pub quick: bool,
    /// What was asked for.
    pub params: Value,
    /// What was measured.
    pub results: Value,
    /// The generator's CPU over the measurement.
    pub generator: CpuUsage,
    /// Worker threads of the generator.
    pub threads: usize,
    /// The human-readable line (without the generator's CPU, which is appended).
    pub text: String,
}

impl Report {
    /// The JSON object.
    pub fn json(&self) -> Value {
        let mut generator = self.generator.json();
        generator["threads"] = json!(self.threads);
        let mut report = json!({
            "workload": self.workload,
            "protocol": self.protocol,
            "servers": self.servers,
            "quick": self.quick,
            "params": self.params,
            "results": self.results,
            "generator": generator,
        });
        if let Some(server) = self.generator.server_json() {
            report["server"] = server;
        }
        report
    }

    /// Print as JSON or text.
    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.json());
        } else {
            println!(
                "{} {}: {} | {}",
                self.workload,
                self.protocol,
                self.text,
                self.generator.text()
            );
        }
    }
}
