#!/usr/bin/env bash
# Builds the Yew chat into examples/yew-chat/dist: the wasm, its JavaScript glue and index.html.
# Usage: bash examples/yew-chat/build.sh [--release]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
profile=debug
cargo_args=()
if [ "${1:-}" = "--release" ]; then
  profile=wasm-release
  cargo_args=(--profile wasm-release)
fi
cargo build -p yew-chat --target wasm32-unknown-unknown "${cargo_args[@]}"
out=examples/yew-chat/dist
rm -rf "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name yew_chat \
  "target/wasm32-unknown-unknown/$profile/yew-chat.wasm"
cp examples/yew-chat/index.html "$out/"
echo "built $out"
