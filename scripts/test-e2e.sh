#!/usr/bin/env bash
# End-to-end tests in headless Chromium (playwright-core, the system's /usr/bin/chromium):
#
# 1. tests/npm-consumer: the npm package as its users get it. `npm pack` of client-wasm/pkg
#    is installed into a Vite + TypeScript app, which must type-check (`tsc --noEmit`,
#    strict, with compile-time tests of the package's types) and build (`vite build`);
#    then the built app, served by chorus-server, connects, publishes and receives.
#    tests/webpack-consumer: the same tarball in a plain-JS webpack 5 app with no plugin,
#    built with `webpack` and checked the same way.
# 2. tests/e2e/*.test.mjs: the demo page (www/) with two users in two browsers, against
#    chorus-server processes the tests start, stop and restart themselves.
#
# Builds the client package when its sources are newer than it, and the debug server.
# Extra arguments go to `node --test` (e.g. --test-name-pattern=typing).
# Screenshots and server logs: test-artifacts/e2e/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI=true
started=$SECONDS
say() { printf 'test-e2e: %s\n' "$*"; }
packed=""
finish() {
  local status=$?
  [[ -n "$packed" ]] && rm -rf "$packed"
  [[ $status -eq 0 ]] || say "FAILED; screenshots and server logs in test-artifacts/e2e/"
  say "$((SECONDS - started)) s"
  exit "$status"
}
trap finish EXIT

for dep in playwright-core vite typescript webpack webpack-cli; do
  if [[ ! -f node_modules/$dep/package.json ]]; then
    echo "test-e2e: node_modules/$dep missing; run scripts/setup.sh (npm ci)" >&2
    exit 1
  fi
done

# The client package is rebuilt only when its sources changed.
pkg=client-wasm/pkg
bash scripts/build-client.sh --if-stale

cargo build --quiet -p chorus-server
target_dir=${CARGO_TARGET_DIR:-target}
[[ "$target_dir" = /* ]] || target_dir="$PWD/$target_dir"
export CHORUS_SERVER_BIN=${CHORUS_SERVER_BIN:-$target_dir/debug/chorus-server}

# The consumer app installs the tarball afresh each time: its node_modules holds nothing
# else (vite and typescript come from the root's node_modules).
consumer=tests/npm-consumer
packed=$(mktemp -d)
tarball=$(cd "$pkg" && npm pack --silent --pack-destination "$packed")
# A package caught half-built (another build of client-wasm/pkg running at the same time)
# would fail below in confusing ways; say so here instead.
contents=$(tar -tzf "$packed/$tarball")
for file in package.json index.js node.js index.d.ts chorus_client.d.ts chorus_client_bg.wasm; do
  if ! grep -qx "package/$file" <<<"$contents"; then
    echo "test-e2e: $tarball has no $file: is client-wasm/pkg being rebuilt right now?" >&2
    exit 1
  fi
done
mv "$packed/$tarball" "$consumer/chorus-client.tgz"
say "packed $tarball"
rm -rf "$consumer/node_modules" "$consumer/dist"
(
  cd "$consumer"
  npm install --silent --no-audit --no-fund
  say "type-checking the consumer app (tsc --noEmit)"
  npm run --silent typecheck
  say "building the consumer app (vite build)"
  npm run --silent build -- --logLevel warn
)
webpack_consumer=tests/webpack-consumer
cp "$consumer/chorus-client.tgz" "$webpack_consumer/chorus-client.tgz"
rm -rf "$webpack_consumer/node_modules" "$webpack_consumer/dist"
(
  cd "$webpack_consumer"
  npm install --silent --no-audit --no-fund
  say "building the webpack consumer app (webpack)"
  npm run --silent build
)

# This run's screenshots and logs only.
rm -rf test-artifacts/e2e
mkdir -p test-artifacts/e2e
say "running the browser tests"
node --test --test-reporter=spec "$@" "$consumer"/*.test.mjs \
  "$webpack_consumer"/*.test.mjs tests/e2e/*.test.mjs
