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
say() { printf 'test-e2e: %s\n' "$*"; }
source scripts/lib/package-tests.sh
on_exit "screenshots and server logs in test-artifacts/e2e/"

require_node_modules playwright-core vite typescript webpack webpack-cli
build_package_and_server

# The consumer apps install the tarball afresh each time: their node_modules hold nothing
# else (vite, webpack and typescript come from the root's node_modules).
consumer=tests/npm-consumer
pack_package package.json index.js node.js index.d.ts chorus_client.d.ts chorus_client_bg.wasm
mv "$TARBALL" "$consumer/chorus-client.tgz"
say "packed $(basename "$TARBALL")"
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
