// Finishes the npm package that wasm-pack generated (scripts/build-client.sh):
// package.json for every bundler and for plain <script type="module">, types without
// `any`, and the gzip sizes against the budget (exits non-zero when over it).
//
// Usage: node scripts/client-package.mjs <package dir>

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const dir = process.argv[2];
const path = (name) => join(dir, name);

// package.json: wasm-pack's name, version, description and license; our entry point.
const generated = JSON.parse(readFileSync(path("package.json"), "utf8"));
const manifest = {
  name: generated.name,
  version: generated.version,
  description: generated.description,
  license: generated.license,
  keywords: ["websocket", "chat", "realtime", "wasm"],
  type: "module",
  main: "./index.js",
  module: "./index.js",
  types: "./index.d.ts",
  exports: {
    ".": { types: "./index.d.ts", default: "./index.js" },
    // For apps that load the module themselves: import wasmUrl from
    // "chorus-client/chorus_client_bg.wasm?url" (Vite), then init(wasmUrl).
    "./chorus_client_bg.wasm": "./chorus_client_bg.wasm",
    "./package.json": "./package.json",
  },
  files: [
    "index.js",
    "index.d.ts",
    "chorus_client.js",
    "chorus_client.d.ts",
    "chorus_client_bg.wasm",
  ],
  // index.js installs the "call init() first" check on ChorusClient.connect; everything
  // else is free of side effects.
  sideEffects: ["./index.js"],
};
if (manifest.name !== "chorus-client") {
  throw new Error(`package name is ${manifest.name}, expected chorus-client`);
}
writeFileSync(path("package.json"), JSON.stringify(manifest, null, 2) + "\n");

// The generated InitOutput (the raw wasm exports) types externrefs as `any`; they are
// opaque to callers, which `unknown` says without switching type checks off.
// `[Symbol.dispose]()` needs TypeScript's esnext.disposable lib, which an app targeting
// ES2022 lacks: its type check (without skipLibCheck) would fail on our types. The method
// stays at runtime; `free()` does the same.
const dtsName = "chorus_client.d.ts";
const dts = readFileSync(path(dtsName), "utf8")
  .replace(/(export interface InitOutput \{[\s\S]*?\n\})/, (block) =>
    block.replace(/\bany\b/g, "unknown"),
  )
  .replace(/^ *\[Symbol\.dispose\]\(\): void;\n/m, "");
writeFileSync(path(dtsName), dts);
for (const name of [dtsName, "index.d.ts"]) {
  const text = readFileSync(path(name), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
  if (/\bany\b/.test(text)) {
    throw new Error(`${name} still has \`any\` in a type`);
  }
}

// The JavaScript carries the doc comments of the Rust API and of index.js, which the .d.ts
// files already bring to editors: drop whole-line comments from what pages download. Only
// comments that start a line go (`/** ... */` blocks and `//` lines); the glue's
// `@ts-self-types` header (`/* ... */`) stays.
for (const name of ["chorus_client.js", "index.js"]) {
  const js = readFileSync(path(name), "utf8")
    .replace(/^[ \t]*\/\*\*[\s\S]*?\*\/[ \t]*\n/gm, "")
    .replace(/^[ \t]*\/\/.*\n/gm, "");
  writeFileSync(path(name), js);
}

// Sizes: what a page downloads, gzipped.
const BUDGET = 60 * 1024;
const GOAL = 25 * 1024;
const files = ["chorus_client_bg.wasm", "chorus_client.js", "index.js"];
let total = 0;
for (const name of files) {
  const raw = readFileSync(path(name));
  const gz = gzipSync(raw, { level: 9 }).length;
  total += gz;
  console.log(`build-client: ${name}: ${raw.length} bytes, ${gz} gzipped`);
}
const kb = (n) => (n / 1024).toFixed(1);
console.log(
  `build-client: total ${kb(total)} KB gzipped (budget ${kb(BUDGET)} KB, goal ${kb(GOAL)} KB)`,
);
// Over budget is a failed build, so that growth is noticed where it happens.
if (total > BUDGET) {
  console.error(`build-client: OVER BUDGET by ${total - BUDGET} bytes gzipped`);
  process.exit(1);
}
