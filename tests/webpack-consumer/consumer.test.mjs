// The packed chorus-client, installed into a webpack 5 app (this directory) with no plugin
// and bundled with `webpack`, works in a browser: the wasm is the asset webpack emitted for
// the package's `new URL(..., import.meta.url)`, served as application/wasm and compiled
// with WebAssembly.instantiateStreaming, and the app connects, joins a room, publishes and
// receives its message. scripts/test-e2e.sh packs, installs and builds the app before this.

import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchBrowser, newUserPage, screenshot } from "../support/browser.mjs";
import { root, startServer } from "../support/server.mjs";

const dist = join(root, "tests", "webpack-consumer", "dist");

let server;
let chromium;

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "build the app first (scripts/test-e2e.sh)");
  server = await startServer("webpack-consumer", ["--static-dir", dist]);
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("webpack-consumer-end");
  await server?.close();
});

test("the webpack-built app streams the emitted wasm asset, connects, publishes and receives its message", async () => {
  const emitted = readdirSync(dist).filter((file) => file.endsWith(".wasm"));
  assert.equal(emitted.length, 1, `webpack emitted one .wasm asset: ${emitted}`);

  const page = await newUserPage(chromium.browser);
  // The package falls back to WebAssembly.instantiate with only a console warning when
  // streaming fails (a wrong content type): count the streams that succeed, and take
  // warnings as problems too.
  await page.addInitScript(() => {
    const instantiateStreaming = WebAssembly.instantiateStreaming;
    globalThis.wasmStreamed = 0;
    WebAssembly.instantiateStreaming = async (...args) => {
      const result = await instantiateStreaming(...args);
      globalThis.wasmStreamed += 1;
      return result;
    };
  });
  page.on("console", (message) => {
    if (message.type() === "warning") page.problems.push(`console warning: ${message.text()}`);
  });
  const wasmResponse = page.waitForResponse((response) => response.url().endsWith(".wasm"));
  const text = "hello from webpack";
  await page.goto(`${server.url}/?user=webpack-user&room=webpack:consumer&text=${encodeURIComponent(text)}`);

  // The module came from webpack's output, served as WebAssembly.
  const wasm = await wasmResponse;
  assert.equal(new URL(wasm.url()).pathname, `/${emitted[0]}`);
  assert.equal(wasm.status(), 200);
  assert.equal(wasm.headers()["content-type"], "application/wasm");

  const message = page.locator('[data-testid="messages"] li[data-sender="webpack-user"]');
  await message.filter({ hasText: text }).waitFor();
  await page.locator('[data-testid="ack"]').filter({ hasText: /^\d+$/ }).waitFor();

  assert.equal(await page.evaluate(() => globalThis.wasmStreamed), 1);
  assert.equal(await page.getByTestId("status").textContent(), "joined");
  assert.equal(await message.count(), 1);
  assert.equal(await message.textContent(), text);
  // The ack names the sequence number the message arrived with, under the id publish gave.
  assert.equal(await page.getByTestId("ack").textContent(), await message.getAttribute("data-seq"));
  assert.equal(
    await page.getByTestId("publish-id").textContent(),
    await message.getAttribute("data-id"),
  );
  assert.equal(await page.getByTestId("problem").textContent(), "");
  assert.deepEqual(page.problems, []);
  await screenshot(page, "webpack-consumer");
  await page.context().close();
});
