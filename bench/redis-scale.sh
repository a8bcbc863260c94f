#!/usr/bin/env bash
# Room fan-out through Redis across three chorus-server instances, against one embedded
# instance, on this machine. Prints one line per setup (add --json for JSON lines).
#
#   bash bench/redis-scale.sh [chorus-bench fanout options...]
#
# Everything runs on loopback: a redis-server of its own on a free port (saving nothing),
# release builds of chorus-server and chorus-bench. The load generator shares the machine
# with the servers and Redis, so the figures are a comparison, not a capacity plan. After
# the Redis run, what its publishes cost Redis goes to stderr (bench/redis-publish-cost.sh).
#
# Publish-heavy (Redis does most of the work): many rooms, one subscriber each, publishers
# with publishes in flight, e.g.
#
#   bash bench/redis-scale.sh --rooms 64 --subscribers 1 --publishers 2 --window 16
#
# REDIS_CPU=N pins the Redis run's redis-server to CPU N, and its servers and load generator
# to the other CPUs (taskset): Redis then has a core to itself, and a publish-heavy run is
# bound by it rather than by the processes competing for every core.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

cargo build --quiet --release -p chorus-server -p chorus-bench
target_dir=${CARGO_TARGET_DIR:-target}
server="$target_dir/release/chorus-server"
bench="$target_dir/release/chorus-bench"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

pids=()
pin=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # url
  for _ in $(seq 1 200); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "redis-scale.sh: $1 did not answer" >&2
  return 1
}

start_server() { # port [extra args...]
  local port=$1
  shift
  RUST_LOG=warn "${pin[@]}" "$server" serve --bind "127.0.0.1:$port" --token-secret "$secret" \
    --publish-rate 1000000 --publish-burst 1000000 "$@" &
  pids+=($!)
  wait_for "http://127.0.0.1:$port/healthz"
}

# One embedded instance.
port=$(free_port)
start_server "$port"
"$bench" fanout --secret "$secret" --url "ws://127.0.0.1:$port/ws" "$@"
cleanup
pids=()

# Three instances over one Redis.
redis_pin=()
if [[ -n ${REDIS_CPU:-} ]]; then
  redis_pin=(taskset -c "$REDIS_CPU")
  pin=(taskset -c "$(seq 0 $(($(nproc) - 1)) | grep -vx "$REDIS_CPU" | paste -sd,)")
fi
redis_port=$(free_port)
"${redis_pin[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --loglevel warning >/dev/null &
pids+=($!)
for _ in $(seq 1 200); do
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then break; fi
  sleep 0.05
done
urls=()
for _ in 1 2 3; do
  port=$(free_port)
  start_server "$port" --redis-url "redis://127.0.0.1:$redis_port"
  urls+=(--url "ws://127.0.0.1:$port/ws")
done
# What the publishes cost Redis (CPU per publish, EVALSHA and the commands inside it), on
# stderr: bench/redis-publish-cost.sh.
bash bench/redis-publish-cost.sh --port "$redis_port" -- \
  "${pin[@]}" "$bench" fanout --secret "$secret" "${urls[@]}" "$@"
