// The entry point of the npm package `chorus-client`: the generated bindings
// (chorus_client.js), plus a one-time loader for the WebAssembly module.
//
// `--target web` output needs its module loaded before first use. `init()` does that once
// (every call returns the same Promise), `connect()` loads on demand, and
// `ChorusClient.connect` called too early throws an error that says what to do instead of
// failing deep inside the glue.

import loadWasm, { ChorusClient, initSync as loadWasmSync } from "./chorus_client.js";

let loading;
let ready = false;

/**
 * Load the WebAssembly module. Call once before `ChorusClient.connect`; later calls return
 * the same Promise. By default the module is fetched from next to this file (bundlers see
 * the `new URL(..., import.meta.url)` and ship it); pass a URL, a `Response` or a compiled
 * `WebAssembly.Module` to load it from elsewhere.
 */
export default function init(moduleOrPath) {
  if (loading === undefined) {
    const input = moduleOrPath === undefined ? undefined : { module_or_path: moduleOrPath };
    loading = loadWasm(input).then(
      () => {
        ready = true;
      },
      (error) => {
        // Let a later call try again (the network may be back).
        loading = undefined;
        throw error;
      },
    );
  }
  return loading;
}

/** Load the WebAssembly module synchronously from its bytes or a compiled module. */
export function initSync(module) {
  loadWasmSync({ module });
  ready = true;
}

/** `await init()`, then `ChorusClient.connect(url, options)`. */
export async function connect(url, options) {
  await init();
  return ChorusClient.connect(url, options);
}

const connectLoaded = ChorusClient.connect;
ChorusClient.connect = function connectAfterInit(url, options) {
  if (!ready) {
    throw new Error(
      "chorus-client: the WebAssembly module is not loaded yet. Call `await init()` " +
        "(the package's default export) once before ChorusClient.connect, or use " +
        "`await connect(url, options)`.",
    );
  }
  return connectLoaded.call(this, url, options);
};

export { ChorusClient };
