#!/usr/bin/env bash
# The benchmark run (`npm run bench`): Chorus and its peers side by side, on this machine, in
# one run, then the browser clients (bench/client-page); then docs/BENCHMARKS.md and its
# charts from the results.
#
#   bash bench/run.sh           the full run (about 15 minutes on 2 cores); rewrites
#                               docs/BENCHMARKS.md and docs/bench/*.svg
#   bash bench/run.sh --quick   a smoke test of every part on debug builds (about 2 minutes);
#                               figures mean little, and docs/ is left alone
#
# Options: --out DIR (default target/bench/<UTC time>), --peers "chorus ws socketio baseline",
# --no-codec. Each peer gets a fresh server for its suite (idle first, while its heap is
# fresh; then echo, fan-out ramps, chat ramps and the reconnect storm). With two or more
# CPUs, the server is pinned to CPU 0 and the load generator to CPU 1 (taskset). Every
# result is one JSON line in DIR/results.jsonl; DIR/meta.json records the machine, the
# versions and the settings; DIR/logs/ holds each process's output.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

quick=false
codec=true
out=""
peers="chorus ws socketio baseline"
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=true ;;
    --no-codec) codec=false ;;
    --out) out=$2; shift ;;
    --peers) peers=$2; shift ;;
    *) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

target_dir=${CARGO_TARGET_DIR:-target}
out=${out:-$target_dir/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out/logs"
results="$out/results.jsonl"
: >"$results"
started=$(date +%s)

bash scripts/setup.sh >&2
# The full run measures release builds; the smoke test reuses the debug builds `npm test`
# already made, so it costs no optimizing build.
if $quick; then profile=dev; profile_dir=debug; else profile=release; profile_dir=release; fi
log "building ($profile profile)"
cargo build --quiet --profile "$profile" -p chorus-server -p chorus-bench -p chorus-bench-baseline
server_bin="$target_dir/$profile_dir/chorus-server"
bench_bin="$target_dir/$profile_dir/chorus-bench"
baseline_bin="$target_dir/$profile_dir/chorus-bench-baseline"

# Pinning: the server on CPU 0, the generator on CPU 1, when there are two CPUs to give.
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0)
  pin_generator=(taskset -c 1)
  pinning="server on CPU 0, load generator on CPU 1 (taskset)"
else
  pin_server=()
  pin_generator=()
  pinning="none (fewer than 2 CPUs)"
fi
# Idle connections go up to the open-file limit.
ulimit -n "$(ulimit -Hn)"

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The peers have no presence or typing, so the bench rooms have none either: the same
# semantics, join and broadcast. History (the recovery log) stays on, as in production.
cat >"$out/chorus.toml" <<'TOML'
[namespaces.bench]
presence = false
typing = false
TOML
chorus_flags=(--config "$out/chorus.toml" --publish-rate 1000000 --publish-burst 1000000
  --max-connections 1000000)

server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Start peer $1 pinned; sets server_pid and url.
start_peer() {
  local peer=$1 port logfile="$out/logs/$1-server.log"
  port=$(free_port)
  case $peer in
    chorus)
      RUST_LOG=warn "${pin_server[@]}" "$server_bin" serve --bind "127.0.0.1:$port" \
        --token-secret "$secret" "${chorus_flags[@]}" >"$logfile" 2>&1 &
      url="ws://127.0.0.1:$port/ws" ;;
    ws) "${pin_server[@]}" node bench/peers/ws/server.mjs "$port" >"$logfile" 2>&1 &
      url="ws://127.0.0.1:$port/" ;;
    socketio) "${pin_server[@]}" node bench/peers/socketio/server.mjs "$port" >"$logfile" 2>&1 &
      url="ws://127.0.0.1:$port/socket.io/?EIO=4&transport=websocket" ;;
    baseline) "${pin_server[@]}" "$baseline_bin" "$port" >"$logfile" 2>&1 &
      url="ws://127.0.0.1:$port/" ;;
    *) echo "bench/run.sh: unknown peer $peer" >&2; exit 2 ;;
  esac
  server_pid=$!
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  echo "bench/run.sh: the $peer server did not start; its log:" >&2
  cat "$logfile" >&2
  exit 1
}

protocol_of() {
  case $1 in chorus) echo chorus ;; ws) echo ws ;; socketio) echo socketio ;; baseline) echo baseline ;; esac
}

quick_flag=()
$quick && quick_flag=(--quick)

# A whole suite may take this long before it is cut off (its results so far are kept).
suite_limit=$($quick && echo 120 || echo 420)
failed=()
for peer in $peers; do
  start_peer "$peer"
  log "$peer: suite against $url (server pid $server_pid)"
  status=0
  timeout --signal=INT "$suite_limit" "${pin_generator[@]}" "$bench_bin" \
    --protocol "$(protocol_of "$peer")" --url "$url" --secret "$secret" \
    --server-pid "$server_pid" --json "${quick_flag[@]}" suite \
    >"$out/logs/$peer-suite.jsonl" 2>"$out/logs/$peer-suite.log" || status=$?
  cat "$out/logs/$peer-suite.jsonl" >>"$results"
  if [[ $status -ne 0 ]]; then
    log "$peer: the suite failed (status $status):"
    tail -5 "$out/logs/$peer-suite.log" >&2
    failed+=("$peer")
  fi
  cleanup
done

if $codec; then
  log "codec microbenchmarks"
  if ! bash bench/codec.sh "${quick_flag[@]}" >>"$results" 2>"$out/logs/codec.log"; then
    log "codec: failed:"
    tail -5 "$out/logs/codec.log" >&2
    failed+=(codec)
  fi
fi

# The browser clients side by side on one page in headless Chromium (bench/client-page):
# chorus-client, socket.io-client and a raw WebSocket on the Chorus wire.
log "client page"
if ! { bash scripts/build-client.sh --if-stale && node bench/client-page/run.mjs "${quick_flag[@]}" \
  --server-bin "$server_bin" --logs "$out/logs/client-page" >>"$results"; } 2>"$out/logs/client-page.log"; then
  log "client page: failed:"
  tail -5 "$out/logs/client-page.log" >&2
  failed+=(client-page)
fi

# What this run was: machine, versions, settings.
node_version() { node -p "require('./node_modules/$1/package.json').version"; }
python3 - "$out/meta.json" <<EOF
import json, platform, re, subprocess, sys
def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return None
cpuinfo = open("/proc/cpuinfo").read()
model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
mem = re.search(r"MemTotal:\s*(\d+)", open("/proc/meminfo").read())
json.dump({
    "date": cmd("date", "-u", "+%Y-%m-%d %H:%M UTC"),
    "quick": "$quick" == "true",
    "wall_seconds": None,
    "machine": {
        "cpu": model.group(1) if model else platform.processor(),
        "cpus": int(cmd("nproc") or 0),
        "memory_gib": round(int(mem.group(1)) / 1048576, 1) if mem else None,
        "kernel": platform.release(),
        "open_file_limit": int(cmd("bash", "-c", "ulimit -Hn") or 0),
    },
    "versions": {
        "chorus": cmd("git", "describe", "--always", "--dirty"),
        "rustc": cmd("rustc", "--version"),
        "node": cmd("node", "--version"),
        "ws": "$(node_version ws)",
        "socket.io": "$(node_version socket.io)",
    },
    "settings": {
        "pinning": "$pinning",
        "chorus_server": "--publish-rate 1000000 --publish-burst 1000000 --max-connections 1000000; namespace bench: presence and typing off (the peers have neither); everything else default, history on",
        "peers": "$peers",
        "compression": "off for every peer",
        "build": "cargo profile $profile for chorus-server, chorus-bench and chorus-bench-baseline" + (" (opt-level 3, thin LTO)" if "$profile" == "release" else " (unoptimized: a smoke test)"),
    },
    "failed": "${failed[*]}".split(),
}, open(sys.argv[1], "w"), indent=2)
EOF
python3 - "$out/meta.json" "$(( $(date +%s) - started ))" <<'EOF'
import json, sys
meta = json.load(open(sys.argv[1]))
meta["wall_seconds"] = int(sys.argv[2])
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF

if $quick; then
  "$bench_bin" render --results "$results" --meta "$out/meta.json" \
    --markdown "$out/BENCHMARKS.md" --charts "$out/charts"
  log "quick run done in $(( $(date +%s) - started )) s: $out"
else
  "$bench_bin" render --results "$results" --meta "$out/meta.json" \
    --markdown docs/BENCHMARKS.md --charts docs/bench
  cp "$results" docs/bench/results.jsonl
  cp "$out/meta.json" docs/bench/meta.json
  log "done in $(( $(date +%s) - started )) s: docs/BENCHMARKS.md, results in $out"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  log "failed: ${failed[*]}"
  exit 1
fi
