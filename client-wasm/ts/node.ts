// The entry for Node, Deno and Bun: the browser entry's API, with the module read from its
// file at import, so the client is ready at once, with no fetch and no bundler. It imports
// index.js rather than holding a second copy of the API.

import { readFileSync } from "node:fs";

import { initSync } from "./index.js";

initSync(readFileSync(new URL("./chorus_client_bg.wasm", import.meta.url)));

export * from "./index.js";
export { default } from "./index.js";
