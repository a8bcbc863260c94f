#!/usr/bin/env bash
# Builds the React chat (a development build, so StrictMode double-runs effects as in
# `npm run dev`) and the debug server, then runs chat.test.mjs in headless Chromium. The app
# uses this checkout's client-wasm/pkg, linked by `npm install` here; react, vite and
# typescript come from the root's node_modules. Logs and screenshots of a failure:
# test-artifacts/e2e/. Extra arguments go to `node --test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI=true
started=$SECONDS
trap 'printf "react-chat: %s s\n" "$((SECONDS - started))"' EXIT

for dep in react react-dom vite typescript playwright-core; do
  if [[ ! -f node_modules/$dep/package.json ]]; then
    echo "react-chat: node_modules/$dep missing; run scripts/setup.sh (npm ci)" >&2
    exit 1
  fi
done

bash scripts/build-client.sh --if-stale
cargo build --quiet -p chorus-server
target_dir=${CARGO_TARGET_DIR:-target}
[[ "$target_dir" = /* ]] || target_dir="$PWD/$target_dir"
export CHORUS_SERVER_BIN=${CHORUS_SERVER_BIN:-$target_dir/debug/chorus-server}

(
  cd examples/react-chat
  rm -rf dist
  npm install --silent --no-audit --no-fund
  npm run --silent typecheck
  NODE_ENV=development npm run --silent build -- --mode development --logLevel warn
)
node --test --test-reporter=spec "$@" examples/react-chat/chat.test.mjs
