# Shared by the Redis benchmark scripts (sourced, from the repository's root): release builds
# of chorus-server and chorus-bench, a random token secret, processes killed on exit, free
# loopback ports, and chorus-server instances started and waited for.
#
# Sets: server, bench, secret, pids (processes to kill on exit), pin (a command prefix for
# the instances, e.g. taskset; empty by default).

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --quiet --release -p chorus-server -p chorus-bench
target_dir=${CARGO_TARGET_DIR:-target}
# SERVER_BIN=path runs another chorus-server build (another commit's, to compare) with
# this tree's scripts and load generator.
server=${SERVER_BIN:-"$target_dir/release/chorus-server"}
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

wait_for() { # command...: until it succeeds, for up to 10 s
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "$(basename "$0"): $* never succeeded" >&2
  return 1
}

start_server() { # port [extra args...]: in the background, up when this returns
  local port=$1
  shift
  RUST_LOG=warn "${pin[@]}" "$server" serve --bind "127.0.0.1:$port" --token-secret "$secret" \
    --publish-rate 1000000 --publish-burst 1000000 "$@" &
  pids+=($!)
  wait_for curl -fsS "http://127.0.0.1:$port/healthz"
}
