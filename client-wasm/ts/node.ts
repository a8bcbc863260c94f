// The entry for Node, Deno and Bun: the module is read from its file at import, so the
// client is ready at once, with no fetch and no bundler.

import { readFileSync } from "node:fs";

import { initSync } from "./wasm.js";

initSync(readFileSync(new URL("./chorus_client_bg.wasm", import.meta.url)));

export * from "./api.js";
export { default } from "./api.js";
