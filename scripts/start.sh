#!/usr/bin/env bash
# Builds the server and the client package, then starts the demo on 127.0.0.1:8080 (or
# CHORUS_BIND): the demo chat page (www/) at /, the npm package chorus-client at /pkg/.
# Extra arguments go to `chorus-server serve`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

bash scripts/setup.sh
cargo build --release -p chorus-server

# The client package is rebuilt only when its sources changed.
pkg=client-wasm/pkg
bash scripts/build-client.sh --if-stale

target_dir=${CARGO_TARGET_DIR:-target}
bind=${CHORUS_BIND:-127.0.0.1:8080}
echo "Chorus demo: http://$bind/"
exec "$target_dir/release/chorus-server" serve --dev --bind "$bind" --static-dir www --pkg-dir "$pkg" "$@"
