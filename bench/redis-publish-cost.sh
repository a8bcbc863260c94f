#!/usr/bin/env bash
# What a publish costs Redis: CPU per publish (INFO cpu, used_cpu_sys + used_cpu_user, over
# the publishes made) and the commands behind it (INFO commandstats: EVALSHA, and what the
# script calls inside it, counted per publish).
#
#   bash bench/redis-publish-cost.sh [options]
#       The publish script alone: a redis-server of its own on a free port, the script as the
#       server loads it (lua/prelude.lua, then lua/publish.lua), run with EVALSHA by
#       redis-benchmark in one busy room (history full, so every XADD trims) with a fresh
#       publish id each time, as a client publishes.
#         --requests N      publishes (default 200000)
#         --clients N       redis-benchmark connections (default 8)
#         --pipeline N      requests each connection keeps in flight (default 16: the
#                           server's pooled connections pipeline concurrent publishes)
#         --subscribers N   redis-cli connections subscribed to each room's channel (default 1:
#                           a room with members on one instance)
#         --batch N         publishes per call, each in a room of its own (default 1; an
#                           instance puts the publishes that gathered while its calls were
#                           in Redis in one call); --requests counts calls
#         --body N          body bytes (default 64)
#         --lua DIR         the scripts' directory (default server/src/broker/redis/lua)
#         --size N, --ttl MS, --dedupe MS, --keep MS
#                           the history policy (defaults 1000, 300000, 120000, 300000: the
#                           server's defaults)
#         --instructions    run redis-server under valgrind (callgrind) and also report the
#                           instructions it runs per publish: exact, so it compares scripts
#                           where CPU time is noisy (about 50 times slower, and the
#                           times then mean nothing: use --requests 5000)
#
#   bash bench/redis-publish-cost.sh --port PORT -- COMMAND [ARGS...]
#       The same report for a Redis already running on PORT, over what COMMAND makes it do
#       (bench/redis-scale.sh runs its fan-out this way). Publishes are counted by PUBLISH
#       (SPUBLISH in a Cluster), which the publish script calls once per publish that was
#       not a resend, and instances for the few other envelopes (typing, presence, epoch
#       resets); the CPU includes the little else Redis did meanwhile (joins, presence
#       renewals).
#
# The report goes to stderr, so COMMAND's stdout (JSON lines with --json) stays clean.
# usec_per_call is wall time inside Redis: on a loaded machine it grows when Redis is
# preempted mid-call, while CPU per publish does not.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=""
requests=200000
clients=8
pipeline=16
subscribers=1
batch=1
body=64
lua=server/src/broker/redis/lua
size=1000
ttl=300000
dedupe=120000
keep=300000
instructions=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --port) port=$2; shift ;;
    --requests) requests=$2; shift ;;
    --clients) clients=$2; shift ;;
    --pipeline) pipeline=$2; shift ;;
    --subscribers) subscribers=$2; shift ;;
    --batch) batch=$2; shift ;;
    --body) body=$2; shift ;;
    --lua) lua=$2; shift ;;
    --size) size=$2; shift ;;
    --ttl) ttl=$2; shift ;;
    --dedupe) dedupe=$2; shift ;;
    --keep) keep=$2; shift ;;
    --instructions) instructions=true ;;
    --) shift; break ;;
    *) echo "redis-publish-cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

cpu_seconds() {
  redis-cli -p "$port" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'
}

# The report of what Redis did since `CONFIG RESETSTAT` and the CPU reading $1.
report() {
  local cpu_before=$1 cpu_after
  cpu_after=$(cpu_seconds)
  redis-cli -p "$port" info commandstats | tr -d '\r' | awk -F'[:,=]' \
    -v before="$cpu_before" -v after="$cpu_after" '
    /^cmdstat_/ {
      name = substr($1, 9); calls[name] = $3; per[name] = $7; order[++n] = name
    }
    END {
      publishes = calls["publish"] + calls["spublish"]
      if (publishes == 0) { print "redis: no publishes"; exit }
      printf "redis: %d publishes, CPU %.2f s: %.1f us per publish; evalsha %.1f us per call, %.1f publishes per call\n",
        publishes, after - before, (after - before) * 1e6 / publishes, per["evalsha"],
        calls["evalsha"] ? publishes / calls["evalsha"] : 0
      line = "redis: per publish:"
      for (i = 1; i <= n; i++) {
        name = order[i]
        if (name == "evalsha" || calls[name] < publishes / 100) continue
        line = line sprintf(" %s %.2fx%.2fus", name, calls[name] / publishes, per[name])
      }
      print line
    }' >&2
}

if [[ -n $port ]]; then
  redis-cli -p "$port" config resetstat >/dev/null
  before=$(cpu_seconds)
  status=0
  "$@" || status=$?
  report "$before"
  exit "$status"
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
valgrind=()
if $instructions; then
  profiles=$(mktemp -d)
  valgrind=(valgrind --tool=callgrind --callgrind-out-file="$profiles/callgrind")
fi
"${valgrind[@]}" redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --loglevel warning >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 400); do
  if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
  sleep 0.05
done

# As scripts.rs builds it: the publish command, the prelude, a newline, the script.
sha=$(redis-cli -p "$port" -x script load < <(echo "local PUBLISH = 'PUBLISH'"
  cat "$lua/prelude.lua"; echo; cat "$lua/publish.lua"))
# Shaped as envelope::message_parts makes them: variant and room; id, sender, ts and body.
prefix=$(printf 'x%.0s' {1..9})
suffix=$(printf 'y%.0s' $(seq 1 $((body + 20))))
keys=()
args=()
for i in $(seq 0 $((batch - 1))); do
  room="chorus:{bench:$i}"
  for _ in $(seq 1 "$subscribers"); do
    redis-cli -p "$port" subscribe "$room:ch" >/dev/null &
    pids+=($!)
  done
  keys+=("$room:meta" "$room:log" "$room:d:__rand_int__:user-1" "$room:ch")
  # The deadline, last: never past, these calls are not late.
  args+=(1234567 "$prefix" "$suffix" "$size" "$ttl" "$dedupe" "$keep" 9007199254740991)
done
publish=(evalsha "$sha" $((4 * batch)) "${keys[@]}" "${args[@]}")

# Fill the history first, so every measured publish trims as a busy room's does.
redis-benchmark -p "$port" -c "$clients" -n "$size" -r 2000000000 "${publish[@]}" >/dev/null
redis-cli -p "$port" config resetstat >/dev/null
# Each dump holds what was run since the last one: the second, the measured publishes.
if $instructions; then callgrind_control --dump "${pids[0]}" >/dev/null 2>&1; fi
before=$(cpu_seconds)
redis-benchmark -p "$port" -c "$clients" -P "$pipeline" -n "$requests" -r 2000000000 -q "${publish[@]}" |
  tr '\r' '\n' | grep 'requests per second' | tail -1 |
  sed 's/.*: \([0-9.]* requests per second\).*/redis-benchmark: \1/' >&2
report "$before"
if $instructions; then
  callgrind_control --dump "${pids[0]}" >/dev/null 2>&1
  publishes=$(redis-cli -p "$port" info commandstats | tr -d '\r' |
    awk -F'[:,=]' '/^cmdstat_s?publish:/ { n += $3 } END { print n + 0 }')
  callgrind_annotate "$profiles/callgrind.2" 2>/dev/null |
    awk -v n="$publishes" '/PROGRAM TOTALS/ { gsub(",", "", $1); printf "redis: %.0f instructions per publish\n", $1 / n }' >&2
  rm -r "$profiles"
fi
