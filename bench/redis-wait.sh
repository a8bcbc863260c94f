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
# shellcheck source=bench/servers.sh
source bench/servers.sh

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
  start_server "$port" --redis-url "redis://127.0.0.1:$primary" --redis-wait-replicas "$wait"
  echo "--redis-wait-replicas $wait:"
  "$bench" fanout --secret "$secret" --url "ws://127.0.0.1:$port/ws" --rooms 1 \
    --subscribers 1 --publishers 1 --window 1 "$@"
  kill "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
done
