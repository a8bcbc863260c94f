// `npm run dev` serves the app with Vite and hands the WebSocket and the dev token API to a
// chorus-server on CHORUS_URL (default http://127.0.0.1:8080), so the app's relative "/ws"
// works in development as it does when chorus-server serves the build (--static-dir dist).
// React's JSX needs no plugin: Vite's own transform follows tsconfig.json's "jsx".

import { defineConfig } from "vite";

const server = process.env.CHORUS_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  server: {
    // This example links chorus-client to the checkout's client-wasm/pkg, outside the app's
    // folder; the dev server serves files from there (the wasm) only when allowed. An app
    // with the package in its own node_modules needs no such line.
    fs: { allow: [".", "../../client-wasm/pkg"] },
    proxy: {
      "/ws": { target: server, ws: true },
      "/api": { target: server },
    },
  },
});
