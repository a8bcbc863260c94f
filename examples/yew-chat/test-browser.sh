#!/usr/bin/env bash
# Builds the Yew chat and the debug server, then runs the browser smoke test
# (examples/yew-chat/smoke.test.mjs) in headless Chromium. Logs and screenshots of a failure:
# test-artifacts/e2e/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
bash examples/yew-chat/build.sh
cargo build --quiet -p chorus-server
node --test --test-reporter=spec examples/yew-chat/smoke.test.mjs
