#!/usr/bin/env bash
# Builds the npm package `chorus-client` into client-wasm/pkg: the engine's wasm (feature
# `js` alone, size-tuned profile `wasm-release`, then wasm-opt -Oz), the TypeScript API
# (client-wasm/ts/) bundled with the wasm-bindgen glue into one module (index.js, for
# browsers and bundlers; node.js, for Node, Deno and Bun, loads the wasm from its file and
# re-exports it), its declarations, README,
# LICENSE and package.json. Prints the gzip sizes, and fails when their total is over the
# budget (scripts/client-package.mjs).
#
# wasm-pack runs the wasm-bindgen on PATH (scripts/setup.sh installs the version in
# Cargo.lock) and never downloads tools (--mode no-install). wasm-opt comes from the npm
# package `binaryen` (npm ci): Debian's binaryen is too old for the wasm features rustc
# emits.
#
# With --if-stale, it builds only when something the package is built from is newer than
# the oldest file of the last build, or a file is missing (a failed build leaves either).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

pkg=client-wasm/pkg
wasm="$pkg/chorus_client_bg.wasm"

if [[ "${1:-}" == "--if-stale" ]]; then
  outputs=("$wasm" "$pkg/index.js" "$pkg/node.js" "$pkg/index.d.ts" "$pkg/package.json")
  inputs=(client-wasm/src client-wasm/ts client-wasm/Cargo.toml protocol/src protocol/Cargo.toml
    Cargo.toml Cargo.lock scripts/build-client.sh scripts/client-package.mjs)
  oldest=""
  for file in "${outputs[@]}"; do
    if [[ ! -e "$file" ]]; then
      oldest=""
      break
    fi
    if [[ -z "$oldest" || "$file" -ot "$oldest" ]]; then
      oldest=$file
    fi
  done
  if [[ -n "$oldest" ]] && [[ -z "$(find "${inputs[@]}" -newer "$oldest" -print -quit)" ]]; then
    echo "build-client: client package up to date"
    exit 0
  fi
fi
wasm_opt=node_modules/.bin/wasm-opt
rolldown=node_modules/.bin/rolldown
tsc=node_modules/.bin/tsc

for tool in "$wasm_opt" "$rolldown" "$tsc"; do
  if [ ! -x "$tool" ]; then
    echo "build-client: $tool not found; run npm ci (or scripts/setup.sh)" >&2
    exit 1
  fi
done

# Panic locations embed source paths in the wasm; the package should not carry this
# machine's (nor differ from one machine to the next).
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="--remap-path-prefix=$cargo_home=cargo \
--remap-path-prefix=$PWD=chorus"

# --out-dir is relative to the crate.
rm -rf "$pkg"
wasm-pack build client-wasm --profile wasm-release --target web \
  --out-dir pkg --out-name chorus_client --mode no-install -- --no-default-features --features js

# The features rustc enables for wasm32-unknown-unknown (its target_features section).
# Besides -Oz: --flatten --rereloop between two rounds restructures control flow for a
# smaller result (about 1 % here), and --low-memory-unused lets constant address offsets
# fold into loads and stores: rustc's wasm32 layout puts the 1 MiB stack first, growing
# down towards address 0, so the lowest 1024 bytes are never used (emscripten passes the
# same flag for the same reason). Neither needs any wasm feature beyond those below.
"$wasm_opt" --low-memory-unused -Oz --flatten --rereloop -Oz -Oz --converge \
  --enable-bulk-memory --enable-bulk-memory-opt --enable-call-indirect-overlong \
  --enable-multivalue --enable-mutable-globals --enable-nontrapping-float-to-int \
  --enable-reference-types --enable-sign-ext \
  --strip-debug --strip-producers --strip-target-features \
  "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"

# The TypeScript API, built from a staging copy that has the glue beside it: declarations
# from tsc (which also type-checks), minified ES modules from rolldown.
stage=target/client-ts
rm -rf "$stage"
mkdir -p "$stage"
cp client-wasm/ts/*.ts client-wasm/ts/tsconfig.json "$pkg/chorus_client.js" "$pkg/chorus_client.d.ts" "$stage/"
"$tsc" -p "$stage/tsconfig.json" --outDir "$pkg"
# index.js holds the API and the glue; node.js only loads the module from its file and
# re-exports index.js.
"$rolldown" "$stage/index.ts" --file "$pkg/index.js" --format esm --minify \
  --no-codeSplitting --logLevel warn
"$rolldown" "$stage/node.ts" --file "$pkg/node.js" --format esm --minify \
  --external node:fs --external ./index.js --logLevel warn
rm -f "$pkg/chorus_client.js" "$pkg/chorus_client_bg.wasm.d.ts" "$pkg/.gitignore"
node scripts/client-package.mjs "$pkg"
