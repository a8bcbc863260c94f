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
# REDIS_CLUSTER=1 adds a third setup: three instances over a Redis Cluster of three primaries
# (no replicas; `--redis-cluster`), and prints on stderr what each primary did: publishes,
# Redis CPU per publish, and its cluster bus's pub/sub messages.
#
# REDIS_CPU=N pins the Redis run's redis-server to CPU N, and its servers and load generator
# to the other CPUs (taskset): Redis then has a core to itself, and a publish-heavy run is
# bound by it rather than by the processes competing for every core.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bench/servers.sh
source bench/servers.sh

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

if [[ ${REDIS_CLUSTER:-} == 1 ]]; then
  cleanup
  pids=()
  # Three instances over a Redis Cluster of three primaries. Bus ports are ports + 10000.
  free_cluster_port() {
    python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p < 55535:
        b = socket.socket()
        try:
            b.bind(("127.0.0.1", p + 10000)); b.close(); print(p); break
        except OSError:
            pass'
  }
  cluster_dir=$(mktemp -d)
  trap 'cleanup; rm -rf "$cluster_dir"' EXIT
  nodes=()
  for _ in 1 2 3; do
    node=$(free_cluster_port)
    redis-server --bind 127.0.0.1 --port "$node" --cluster-enabled yes \
      --cluster-config-file "$cluster_dir/nodes-$node.conf" --dir "$cluster_dir" \
      --save "" --appendonly no --loglevel warning >/dev/null &
    pids+=($!)
    nodes+=("$node")
  done
  for node in "${nodes[@]}"; do
    for _ in $(seq 1 200); do
      if redis-cli -p "$node" ping >/dev/null 2>&1; then break; fi
      sleep 0.05
    done
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${nodes[@]}") --cluster-yes >/dev/null
  for _ in $(seq 1 200); do
    ok=0
    for node in "${nodes[@]}"; do
      redis-cli -p "$node" cluster info | grep -q cluster_state:ok && ok=$((ok + 1))
    done
    [[ $ok == 3 ]] && break
    sleep 0.05
  done
  seeds=$(printf 'redis://127.0.0.1:%s,' "${nodes[@]}")
  urls=()
  for _ in 1 2 3; do
    port=$(free_port)
    start_server "$port" --redis-cluster --redis-url "${seeds%,}"
    urls+=(--url "ws://127.0.0.1:$port/ws")
  done
  stat() { # port: "cpu_seconds publishes script_calls bus_publish bus_publishshard"
    local cpu calls scripts bus
    cpu=$(redis-cli -p "$1" info cpu | tr -d '\r' |
      awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { print t }')
    calls=$(redis-cli -p "$1" info commandstats | tr -d '\r' |
      awk -F'[:,=]' '/^cmdstat_spublish:/ { print $3 }')
    scripts=$(redis-cli -p "$1" info commandstats | tr -d '\r' |
      awk -F'[:,=]' '/^cmdstat_(evalsha|eval):/ { n += $3 } END { print n + 0 }')
    bus=$(redis-cli -p "$1" cluster info | tr -d '\r' | awk -F: '
      /^cluster_stats_messages_publish_(sent|received):/ { p += $2 }
      /^cluster_stats_messages_publishshard_(sent|received):/ { s += $2 }
      END { print p + 0, s + 0 }')
    echo "${cpu:-0} ${calls:-0} ${scripts:-0} $bus"
  }
  declare -A before
  for node in "${nodes[@]}"; do before[$node]=$(stat "$node"); done
  "$bench" fanout --secret "$secret" "${urls[@]}" "$@"
  for node in "${nodes[@]}"; do
    read -r cpu0 calls0 scripts0 pub0 shard0 <<<"${before[$node]}"
    read -r cpu1 calls1 scripts1 pub1 shard1 <<<"$(stat "$node")"
    awk -v n="$node" -v c0="$cpu0" -v c1="$cpu1" -v p="$((calls1 - calls0))" \
      -v s="$((scripts1 - scripts0))" \
      -v pb="$((pub1 - pub0))" -v sb="$((shard1 - shard0))" 'BEGIN {
        c = c1 - c0
        printf "cluster primary %s: %d publishes, CPU %.2f s: %.1f us per publish, %.1f publishes per call; bus pub/sub messages: %d classic, %d sharded\n",
          n, p, c, (p > 0 ? c * 1e6 / p : 0), (s > 0 ? p / s : 0), pb, sb }' >&2
  done
fi
