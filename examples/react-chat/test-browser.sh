#!/usr/bin/env bash
# Builds the React chat (a development build, so StrictMode double-runs effects as in
# `npm run dev`) and the debug server, then runs chat.test.mjs in headless Chromium. The app
# uses this checkout's client-wasm/pkg, linked by `npm install` here; react, vite and
# typescript come from the root's node_modules. Logs and screenshots of a failure:
# test-artifacts/e2e/. Extra arguments go to `node --test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
say() { printf 'react-chat: %s\n' "$*"; }
source scripts/lib/package-tests.sh
on_exit "logs and screenshots in test-artifacts/e2e/"

require_node_modules react react-dom vite typescript playwright-core
build_package_and_server

(
  cd examples/react-chat
  rm -rf dist
  npm install --silent --no-audit --no-fund
  npm run --silent typecheck
  NODE_ENV=development npm run --silent build -- --mode development --logLevel warn
)
node --test --test-reporter=spec "$@" examples/react-chat/chat.test.mjs
