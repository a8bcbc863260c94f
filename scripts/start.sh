#!/usr/bin/env bash
# Builds the server and starts the demo on 127.0.0.1:8080. Extra arguments go to
# `chorus-server serve`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

bash scripts/setup.sh
cargo build --release -p chorus-server
echo "Chorus demo: http://127.0.0.1:8080/"
exec target/release/chorus-server serve --dev --bind 127.0.0.1:8080 --static-dir www "$@"
