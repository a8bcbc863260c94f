#!/usr/bin/env bash
# Installs what building and testing Chorus needs, and nothing that is already there.
# Idempotent and quick on a machine that has everything; prints one line per step.
# Non-interactive: safe in CI and without a terminal.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI=true
export DEBIAN_FRONTEND=noninteractive
exec </dev/null

say() { printf 'setup: %s\n' "$*"; }

# (a) The wasm target, for the browser client.
if ! command -v rustup >/dev/null; then
  say "wasm32 target: rustup not found, skipped (install the target by hand)"
elif rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "wasm32 target: present"
else
  say "wasm32 target: installing"
  rustup target add wasm32-unknown-unknown
fi

# (b) wasm-bindgen-cli must match the wasm-bindgen library in Cargo.lock exactly, or the
# generated glue does not fit the compiled module.
lock_version() {
  # Prints the highest version of package $1 in Cargo.lock, or nothing.
  [ -f Cargo.lock ] || return 0
  awk -v name="$1" '
    /^\[\[package\]\]/ { in_pkg = 0 }
    $0 == "name = \"" name "\"" { in_pkg = 1; next }
    in_pkg && /^version = / { gsub(/^version = "|"$/, ""); print; in_pkg = 0 }
  ' Cargo.lock | sort -V | tail -n 1
}
bindgen_version="$(lock_version wasm-bindgen)"
if [ -z "$bindgen_version" ]; then
  say "wasm-bindgen-cli: no wasm-bindgen in Cargo.lock, skipped"
else
  installed="$(wasm-bindgen --version 2>/dev/null || true)"
  if [ "$installed" = "wasm-bindgen $bindgen_version" ]; then
    say "wasm-bindgen-cli: $bindgen_version present"
  else
    say "wasm-bindgen-cli: installing $bindgen_version (found: ${installed:-none})"
    # --locked can fail when a dependency pinned in the tool's own lock file has since been
    # yanked; the tool is still fine with the newest compatible release of it.
    if ! cargo install wasm-bindgen-cli --version "$bindgen_version" --locked; then
      say "wasm-bindgen-cli: --locked install failed, retrying without --locked"
      cargo install wasm-bindgen-cli --version "$bindgen_version"
    fi
  fi
fi

# (c) wasm-pack builds the client package.
if command -v wasm-pack >/dev/null; then
  say "wasm-pack: present"
else
  say "wasm-pack: installing"
  cargo install wasm-pack --locked
fi

# (d) System packages: a browser and its driver for the browser tests, Redis for the broker
# tests, and binaryen. The client build runs the wasm-opt of the npm package `binaryen`
# (step (e)): Debian's (version 108) cannot read all the wasm that current rustc emits.
missing=()
for pair in chromium:chromium chromedriver:chromium-driver redis-server:redis-server \
  wasm-opt:binaryen; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -eq 0 ]; then
  say "system packages: present"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  say "system packages: installing ${missing[*]}"
  # The lock timeout waits for another apt run (say, a provisioning script) to finish.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}"
else
  say "system packages: missing ${missing[*]} (install them as root; continuing)"
fi

# (e) npm dependencies, when package-lock.json lists any.
if [ ! -f package-lock.json ]; then
  say "npm dependencies: no package-lock.json, skipped"
elif ! command -v npm >/dev/null; then
  say "npm dependencies: npm not found, skipped"
elif ! node -e '
  const lock = require("./package-lock.json");
  process.exit(Object.keys(lock.packages || {}).some((k) => k !== "") ? 0 : 1);
'; then
  say "npm dependencies: none"
elif [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm dependencies: installing (npm ci)"
  npm ci --no-audit --no-fund
else
  say "npm dependencies: up to date"
fi
