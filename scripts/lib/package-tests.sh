# Shared by the scripts that test the npm package where its users run it: scripts/test-e2e.sh
# (browsers), tests/node/test.sh (Node, Deno, Bun) and examples/react-chat/test-browser.sh.
# Source it from the repository's root after defining `say` (each script's own prefix).
#
# - on_exit HINT: on exit, removes what `pack_package` left, says how long the script took
#   and, when it failed, HINT (where its logs are).
# - require_node_modules NAME...: stops with a message when a root npm package is missing.
# - build_package_and_server: the client package when its sources are newer than it, and the
#   debug server; exports CHORUS_SERVER_BIN (unless set) for tests/support/server.mjs.
# - pack_package FILE...: `npm pack` of client-wasm/pkg into a fresh temporary directory,
#   checked to hold each FILE; sets PACKED (the directory, to remove) and TARBALL (its path).

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export CI=true

on_exit() {
  EXIT_HINT=$1
  STARTED=$SECONDS
  PACKED=""
  trap finish_package_test EXIT
}

finish_package_test() {
  local status=$?
  [[ -n "$PACKED" ]] && rm -rf "$PACKED"
  [[ $status -eq 0 ]] || say "FAILED; $EXIT_HINT"
  say "$((SECONDS - STARTED)) s"
  exit "$status"
}

require_node_modules() {
  local dep
  for dep in "$@"; do
    if [[ ! -f node_modules/$dep/package.json ]]; then
      say "node_modules/$dep missing; run scripts/setup.sh (npm ci)" >&2
      exit 1
    fi
  done
}

build_package_and_server() {
  bash scripts/build-client.sh --if-stale
  cargo build --quiet -p chorus-server
  local target_dir=${CARGO_TARGET_DIR:-target}
  [[ "$target_dir" = /* ]] || target_dir="$PWD/$target_dir"
  export CHORUS_SERVER_BIN=${CHORUS_SERVER_BIN:-$target_dir/debug/chorus-server}
}

pack_package() {
  PACKED=$(mktemp -d)
  local name file contents
  name=$(cd client-wasm/pkg && npm pack --silent --pack-destination "$PACKED")
  TARBALL="$PACKED/$name"
  # A package caught half-built (another build of client-wasm/pkg running at the same time)
  # would fail later in confusing ways; say so here instead. (The listing first: `grep -q`
  # stops reading at its match, which would fail a pipe.)
  contents=$(tar -tzf "$TARBALL")
  for file in "$@"; do
    if ! grep -qx "package/$file" <<<"$contents"; then
      say "$name has no $file: is client-wasm/pkg being rebuilt right now?" >&2
      exit 1
    fi
  done
}
