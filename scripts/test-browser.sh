#!/usr/bin/env bash
# Runs the browser tests of chorus-client (client-wasm/tests/browser_*.rs) in headless
# Chromium, against real chorus-server processes. A test controller (tests/harness,
# `chorus-test-harness`) starts, stops, freezes and restarts those servers when the tests
# ask; its URL is compiled into the tests as CHORUS_TEST_CONTROL.
#
# Extra arguments go to the test binaries, e.g. a test name filter:
#   bash scripts/test-browser.sh reconnect
# The output of the controller and its servers goes to test-artifacts/browser/harness-PID.log,
# which is kept when the run fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
started=$SECONDS

if [[ -z "${CHROMEDRIVER:-}" ]]; then
  CHROMEDRIVER=$(command -v chromedriver || true)
fi
if [[ -z "$CHROMEDRIVER" ]]; then
  echo "test-browser.sh: chromedriver not found; scripts/setup.sh installs it" >&2
  exit 1
fi
export CHROMEDRIVER

cargo build --quiet -p chorus-server -p chorus-test-harness
target_dir=${CARGO_TARGET_DIR:-target}
[[ "$target_dir" = /* ]] || target_dir="$PWD/$target_dir"
export CHORUS_SERVER_BIN=${CHORUS_SERVER_BIN:-$target_dir/debug/chorus-server}

artifacts=test-artifacts/browser
mkdir -p "$artifacts"
# One log per run (runs may overlap); kept only when the run fails.
log="$artifacts/harness-$$.log"

# The controller reads its stdin until it closes: if this script dies, however it dies, the
# pipe closes and the controller kills its servers and exits.
coproc HARNESS { exec "$target_dir/debug/chorus-test-harness" 2>"$log"; }
harness_pid=$HARNESS_PID

harness_in=${HARNESS[1]}
harness_out=${HARNESS[0]}

cleanup() {
  local status=$?
  # Closing its stdin is enough to stop the controller; SIGTERM too; SIGKILL if it hangs.
  exec {harness_in}>&- || true
  kill -TERM "$harness_pid" 2>/dev/null || true
  for _ in {1..100}; do
    kill -0 "$harness_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$harness_pid" 2>/dev/null || true
  wait "$harness_pid" 2>/dev/null || true
  if [[ $status -ne 0 ]]; then
    echo "test-browser.sh: FAILED; the last lines of $log:" >&2
    tail -n 40 "$log" >&2 || true
  else
    rm -f "$log"
  fi
  echo "test-browser.sh: $((SECONDS - started)) s" >&2
  exit "$status"
}
trap cleanup EXIT

if ! IFS= read -r -t 30 line <&"${HARNESS[0]}" || [[ "$line" != CHORUS_TEST_CONTROL=* ]]; then
  echo "test-browser.sh: the test controller did not announce its URL" >&2
  exit 1
fi
export CHORUS_TEST_CONTROL=${line#CHORUS_TEST_CONTROL=}
echo "test-browser.sh: controller at $CHORUS_TEST_CONTROL"

# The runner serves each test binary to Chromium through chromedriver and reads
# client-wasm/webdriver.json (next to the crate's Cargo.toml) for Chromium's flags. Its
# timeout is per test binary; WASM_BINDGEN_TEST_ONLY_WEB skips anything not marked
# run_in_browser.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-60}
export WASM_BINDGEN_TEST_ONLY_WEB=1
# The test processes must not hold the controller's stdin open (see above).
cargo test -p chorus-client --target wasm32-unknown-unknown --test 'browser_*' --no-fail-fast -- "$@" \
  {harness_in}>&- {harness_out}<&-
