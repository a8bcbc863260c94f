#!/usr/bin/env bash
# Codec microbenchmarks: encode and decode of every message kind, postcard against JSON,
# natively (criterion, protocol/benches/codec.rs) and as wasm in headless Chromium
# (bench/codec-wasm). Both measure the same values, chorus_protocol::samples.
#
#   bash bench/codec.sh [--quick]
#
# Prints one JSON line per (runtime, format, message, op) to stdout, and nothing else:
#   {"workload":"codec","protocol":"postcard"|"json","quick":false,
#    "params":{"runtime":"native"|"wasm-chromium","message":"ClientMessage::Publish","op":"encode"|"decode"},
#    "results":{"ns_per_op":123.4,"bytes":42}}
# ns_per_op is the mean time of one call; bytes is the encoded size in that format. Build
# output and progress go to stderr. Nothing is printed unless both runtimes measured every
# message kind; any failure exits non-zero.
#
# --quick (CHORUS_BENCH_QUICK=1) measures each operation for about 0.1 s natively and
# 10 ms in Chromium instead of about 1 s and 100 ms: a smoke run, with rough figures. The
# wasm side reads the variable at compile time, so switching between quick and full
# rebuilds that one test crate.
#
# Needs node, chromium and chromedriver (scripts/setup.sh installs them) and
# wasm-bindgen-test-runner from wasm-bindgen-cli. Honours CARGO_TARGET_DIR and CHROMEDRIVER.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
started=$SECONDS

say() { printf 'codec.sh: %s\n' "$*" >&2; }

quick=false
for arg in "$@"; do
  case "$arg" in
    --quick) quick=true ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
      exit 0
      ;;
    *)
      say "unknown argument: $arg (usage: bash bench/codec.sh [--quick])"
      exit 2
      ;;
  esac
done
# The flag alone decides, so the "quick" field cannot lie about a variable left set.
if $quick; then
  export CHORUS_BENCH_QUICK=1
else
  unset CHORUS_BENCH_QUICK
fi

if [[ -z "${CHROMEDRIVER:-}" ]]; then
  CHROMEDRIVER=$(command -v chromedriver || true)
fi
if [[ -z "$CHROMEDRIVER" ]]; then
  say "chromedriver not found; scripts/setup.sh installs it"
  exit 1
fi
export CHROMEDRIVER
for tool in node wasm-bindgen-test-runner; do
  if ! command -v "$tool" >/dev/null; then
    say "$tool not found; scripts/setup.sh installs it"
    exit 1
  fi
done

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
# One directory per run (runs may overlap): criterion's estimates and the browser's output.
# Removed after a good run, kept after a failed one.
# Absolute: criterion runs the bench with the package directory as its working directory.
work=$(realpath "$(mktemp -d "$target_dir/codec-bench.XXXXXX")")
finish() {
  local status=$?
  if [[ $status -eq 0 ]]; then
    rm -rf "$work"
  else
    say "FAILED; the run's files are in $work"
  fi
  say "$((SECONDS - started)) s"
  exit "$status"
}
trap finish EXIT

say "native: criterion (quick=$quick)"
cargo bench -p chorus-protocol --bench codec -- --list >"$work/native.list"
# Criterion prints its progress on stdout; this script's stdout is only for results.
CRITERION_HOME="$work/criterion" cargo bench -p chorus-protocol --bench codec >&2

say "wasm: headless Chromium, release build (quick=$quick)"
# As in scripts/test-browser.sh. The runner reads bench/codec-wasm/webdriver.json for
# Chromium's flags; its timeout covers the whole test binary. It shows the console of a
# passing test only with --nocapture.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-180}
export WASM_BINDGEN_TEST_ONLY_WEB=1
cargo test -p chorus-bench-codec-wasm --target wasm32-unknown-unknown --release --test codec \
  -- --nocapture | tee "$work/wasm.log" | { grep -v '^CODEC ' || true; } >&2

# Check both runs and print the results, native first, each in the benchmark's order.
node - "$quick" "$work/native.list" "$work/criterion" "$work/wasm.log" <<'JS'
const fs = require("fs");
const path = require("path");
const [quick, listFile, criterionDir, wasmLog] = process.argv.slice(2);

function fail(message) {
  console.error(`codec.sh: ${message}`);
  process.exit(1);
}

function line(runtime, protocol, message, op, nsPerOp, bytes) {
  if (!(nsPerOp > 0) || !(bytes > 0)) {
    fail(`${runtime} ${message}/${protocol}/${op}: bad figures ${nsPerOp} ns, ${bytes} bytes`);
  }
  return {
    key: `${message}/${protocol}/${op}`,
    text: JSON.stringify({
      workload: "codec",
      protocol,
      quick: quick === "true",
      params: { runtime, message, op },
      results: { ns_per_op: Math.round(nsPerOp * 10) / 10, bytes },
    }),
  };
}

// Native: criterion's own list gives the ids and their order; each id's directory holds a
// benchmark.json (the id and the throughput, which is the encoded size) and the
// estimates.json of this run.
function* benchmarkFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* benchmarkFiles(file);
    else if (entry.name === "benchmark.json" && path.basename(dir) === "new") yield file;
  }
}
const measured = new Map();
for (const file of benchmarkFiles(criterionDir)) {
  const id = JSON.parse(fs.readFileSync(file, "utf8"));
  const estimates = JSON.parse(fs.readFileSync(path.join(path.dirname(file), "estimates.json"), "utf8"));
  measured.set(id.full_id, { bytes: id.throughput?.Bytes, ns: estimates.mean.point_estimate });
}
const native = [];
for (const entry of fs.readFileSync(listFile, "utf8").split("\n")) {
  const id = entry.match(/^(.+): benchmark$/)?.[1];
  if (!id) continue;
  const [message, protocol, op] = id.split("/");
  const result = measured.get(id);
  if (!result) fail(`native: no estimates for ${id}`);
  native.push(line("native", protocol, message, op, result.ns, result.bytes));
}
if (native.length === 0) fail("native: criterion listed no benchmarks");

// Wasm: one "CODEC {...}" line per measurement, for the same ids.
const wasm = fs
  .readFileSync(wasmLog, "utf8")
  .split("\n")
  .filter((l) => l.startsWith("CODEC "))
  .map((l) => {
    const m = JSON.parse(l.slice("CODEC ".length));
    return line(m.runtime, m.protocol, m.message, m.op, m.ns_per_op, m.bytes);
  });
const keys = (lines) => JSON.stringify(lines.map((l) => l.key).sort());
if (keys(wasm) !== keys(native)) {
  fail(`wasm measured ${wasm.length} operations, native ${native.length}: the sets differ`);
}

for (const l of [...native, ...wasm]) console.log(l.text);
console.error(`codec.sh: ${native.length} native and ${wasm.length} wasm measurements`);
JS
