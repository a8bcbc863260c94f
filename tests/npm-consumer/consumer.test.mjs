// The packed chorus-client, installed into a Vite + TypeScript app (this directory) and
// built with `vite build`, works in a browser: the wasm is an asset Vite emitted, and the
// app connects, joins a JSON room, publishes and receives its message. scripts/test-e2e.sh packs,
// installs, type-checks and builds the app before running this.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchBrowser, newUserPage, screenshot } from "../support/browser.mjs";
import { root, startServer } from "../support/server.mjs";

const dist = join(root, "tests", "npm-consumer", "dist");

let server;
let chromium;

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "build the app first (scripts/test-e2e.sh)");
  server = await startServer("npm-consumer", ["--static-dir", dist]);
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("npm-consumer-end");
  await server?.close();
});

test("the Vite-built app loads the wasm asset, connects, publishes and receives its message", async () => {
  const page = await newUserPage(chromium.browser);
  const wasmResponse = page.waitForResponse((response) => response.url().endsWith(".wasm"));
  const text = "hello from the npm package";
  await page.goto(`${server.url}/?user=vite-user&room=npm:consumer&text=${encodeURIComponent(text)}`);

  // The module came from Vite's output (a hashed asset), served as WebAssembly.
  const wasm = await wasmResponse;
  assert.match(new URL(wasm.url()).pathname, /^\/assets\/chorus_client_bg-[\w-]+\.wasm$/);
  assert.equal(wasm.status(), 200);
  assert.equal(wasm.headers()["content-type"], "application/wasm");

  const message = page.locator('[data-testid="messages"] li[data-sender="vite-user"]');
  await message.filter({ hasText: text }).waitFor();
  await page.locator('[data-testid="ack"]').filter({ hasText: /^\d+$/ }).waitFor();

  assert.equal(await page.getByTestId("status").textContent(), "joined");
  assert.equal(await message.count(), 1);
  // The JSON codec decoded the payload: the item shows its `text`, not the JSON.
  assert.equal(await message.textContent(), text);
  // The publish's ack names the sequence number the message arrived with, and the id that
  // `publish(...).id` gave at once is the id it arrived with.
  assert.equal(
    await page.getByTestId("ack").textContent(),
    await message.getAttribute("data-seq"),
  );
  assert.match(await message.getAttribute("data-id"), /^\d+$/);
  assert.equal(
    await page.getByTestId("publish-id").textContent(),
    await message.getAttribute("data-id"),
  );
  assert.equal(await page.getByTestId("problem").textContent(), "");
  assert.deepEqual(page.problems, []);
  await screenshot(page, "npm-consumer");
  await page.context().close();
});
