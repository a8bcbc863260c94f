#!/usr/bin/env bash
# What --redis-wait-replicas costs a publish: one chorus-server over a Redis primary with one
# replica (both on loopback, saving nothing), a closed loop of publishes (one room, one
# subscriber, one publisher with one publish in flight, so publishes/s is one over the
# publish round trip), without and with --redis-wait-replicas 1. Prints chorus-bench's
# fanout line for each.
#
#   bash bench/redis-wait.sh [chorus-bench fanout options...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

cargo build --quiet --release -p chorus-server -p chorus-bench
target_dir=${CARGO_TARGET_DIR:-target}
server="$target_dir/release/chorus-server"
bench="$target_dir/release/chorus-bench"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # command...
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "redis-wait.sh: $* never succeeded" >&2
  return 1
}

primary=$(free_port)
replica=$(free_port)
dir=$(mktemp -d)
trap 'cleanup; rm -rf "$dir"' EXIT
redis-server --bind 127.0.0.1 --port "$primary" --save "" --appendonly no --dir "$dir" \
  --dbfilename "p.rdb" --loglevel warning >/dev/null &
pids+=($!)
redis-server --bind 127.0.0.1 --port "$replica" --save "" --appendonly no --dir "$dir" \
  --dbfilename "r.rdb" --loglevel warning --replicaof 127.0.0.1 "$primary" >/dev/null &
pids+=($!)
wait_for sh -c "redis-cli -p $replica info replication | grep -q master_link_status:up"

for wait in 0 1; do
  port=$(free_port)
  RUST_LOG=warn "$server" serve --bind "127.0.0.1:$port" --token-secret "$secret" \
    --publish-rate 1000000 --publish-burst 1000000 \
    --redis-url "redis://127.0.0.1:$primary" --redis-wait-replicas "$wait" &
  server_pid=$!
  wait_for curl -fsS "http://127.0.0.1:$port/healthz"
  echo "--redis-wait-replicas $wait:"
  "$bench" fanout --secret "$secret" --url "ws://127.0.0.1:$port/ws" --rooms 1 \
    --subscribers 1 --publishers 1 --window 1 "$@"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
done
