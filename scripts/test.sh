#!/usr/bin/env bash
# Runs every check CI runs, in order, stopping at the first failure.
# To add a check, add a `step` line below.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI=true
# A one-off build gains nothing from incremental artifacts, which double the target's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() {
  local name=$1
  shift
  printf '\n==> %s: %s\n' "$name" "$*"
  if ! "$@"; then
    printf '\ntest.sh: step "%s" FAILED (%s)\n' "$name" "$*" >&2
    exit 1
  fi
}

step setup bash scripts/setup.sh
step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step clippy-wasm cargo clippy -p chorus-client --target wasm32-unknown-unknown --all-targets -- -D warnings
step clippy-wasm-engine cargo clippy -p chorus-client --target wasm32-unknown-unknown --no-default-features --features js -- -D warnings
step clippy-yew-chat cargo clippy -p yew-chat --target wasm32-unknown-unknown -- -D warnings
step yew-chat cargo build -p yew-chat --target wasm32-unknown-unknown
step test cargo test --workspace
step test-engine cargo test -p chorus-client --features js --lib engine
step build-client bash scripts/build-client.sh
step browser bash scripts/test-browser.sh
step e2e bash scripts/test-e2e.sh
step node-runtimes bash tests/node/test.sh
step react-chat-browser bash examples/react-chat/test-browser.sh
step yew-chat-browser bash examples/yew-chat/test-browser.sh
step bench-peers bash -c 'cargo build --quiet -p chorus-bench-baseline && node --test bench/peers/smoke.test.mjs'
step bench-quick bash bench/run.sh --quick

printf '\ntest.sh: all steps passed\n'
