#!/usr/bin/env bash
# Builds the server and the client package, then starts the demo on 127.0.0.1:8080 (or
# CHORUS_BIND): the demo chat page (www/) at /, the npm package chorus-client at /pkg/.
# Extra arguments go to `chorus-server serve`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

bash scripts/setup.sh
cargo build --release -p chorus-server

# The client package is rebuilt only when something it is built from is newer than the
# oldest file of the last build, or a file is missing (a failed build leaves either).
pkg=client-wasm/pkg
outputs=("$pkg/chorus_client.js" "$pkg/chorus_client_bg.wasm" "$pkg/index.js" "$pkg/package.json")
inputs=(client-wasm/src client-wasm/js client-wasm/Cargo.toml protocol/src protocol/Cargo.toml
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
  echo "start: client package up to date"
else
  bash scripts/build-client.sh
fi

target_dir=${CARGO_TARGET_DIR:-target}
bind=${CHORUS_BIND:-127.0.0.1:8080}
echo "Chorus demo: http://$bind/"
exec "$target_dir/release/chorus-server" serve --dev --bind "$bind" --static-dir www --pkg-dir "$pkg" "$@"
