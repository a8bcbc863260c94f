// Loading the WebAssembly module: once, from wherever the runtime keeps it.

import load, { initSync as loadSync } from "./chorus_client.js";
import type { InitInput, SyncInitInput } from "./chorus_client.js";
import { ChorusError } from "./errors.js";

export type { InitInput, SyncInitInput };

let memory: WebAssembly.Memory | undefined;
let loading: Promise<void> | undefined;

/**
 * Load the WebAssembly module; later calls return the same Promise. By default it is
 * fetched from next to this file (bundlers see the `new URL(..., import.meta.url)` and ship
 * it); pass a URL, a `Response`, the bytes or a compiled `WebAssembly.Module` to load it
 * from elsewhere. In Node, Deno and Bun the package loads it from its file on import.
 */
export function init(input?: InitInput | Promise<InitInput>): Promise<void> {
  if (memory) return Promise.resolve();
  loading ??= load(input === undefined ? undefined : { module_or_path: input }).then(
    (exports) => {
      memory = exports.memory;
    },
    (error: unknown) => {
      // Let a later call try again (the network may be back).
      loading = undefined;
      throw error;
    },
  );
  return loading;
}

/** Load the WebAssembly module synchronously from its bytes or a compiled module. */
export function initSync(module: SyncInitInput): void {
  if (!memory) memory = loadSync({ module }).memory;
}

let bytes = new Uint8Array(0);

/** The module's memory as bytes (a view made again only after the memory grew). */
export function memoryBytes(): Uint8Array {
  if (bytes.byteLength === 0) bytes = new Uint8Array(wasmMemory().buffer);
  return bytes;
}

/** The module's memory, where the engine leaves its records. */
export function wasmMemory(): WebAssembly.Memory {
  if (!memory) {
    throw new ChorusError(
      602,
      "chorus-client's module is not loaded: `await init()` first, or use `await connect(url, options)`",
    );
  }
  return memory;
}
