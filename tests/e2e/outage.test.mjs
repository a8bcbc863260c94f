// While the server is down, each failed connection attempt costs the page at most one console
// error: Chromium logs every request the stopped server refuses, so the client makes one
// request per attempt. After a socket fails to open, the next attempts start with the token
// probe (`GET /ws?token=...&probe=1`), and a probe that cannot reach the server skips the
// WebSocket. "Retry now" makes the next attempt at once; the status line says why the page
// is reconnecting.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  connectionState,
  joinRoom,
  reconnects,
  roomJoined,
  signIn,
  snap,
  startDemoServer,
  takeOutageErrors,
  waitForReconnects,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  // Tokens stay valid across the restart (see reconnect.test.mjs).
  server = await startDemoServer("outage", ["--token-secret", randomBytes(32).toString("hex")]);
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("outage-end");
  await server?.close();
});

test("while the server is down each failed attempt logs at most one console error", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  await joinRoom(alice, "lobby");
  const from = alice.problems.length;
  const before = await reconnects(alice);

  await server.stop();
  // The lost connection.
  await waitForReconnects(alice, before + 1);
  await connectionState(alice, "reconnecting");
  // Then failed attempts, each made at once with "Retry now" (or when its wait ends, for a
  // click that came while an attempt was under way).
  const retryNow = alice.getByRole("button", { name: "Retry now" });
  const failures = 6;
  for (let n = 1; n <= failures; n++) {
    await retryNow.click();
    await waitForReconnects(alice, before + 1 + n);
  }
  await alice
    .getByTestId("connection-text")
    .filter({ hasText: /^Reconnecting.*\(attempt \d+\): server unreachable$/ })
    .waitFor();
  await snap(alice, "outage");

  await server.start();
  await retryNow.click().catch(() => {}); // Gone already if the attempt under way succeeded.
  await connectionState(alice, "connected");
  await roomJoined(alice, "lobby");
  assert.equal(await retryNow.isVisible(), false);

  const attempts = (await reconnects(alice)) - before - 1;
  assert.ok(attempts >= failures, `${attempts} failed attempts counted`);
  const errors = takeOutageErrors(alice, from, attempts);
  // Chromium does log them: this test sees what it counts.
  assert.ok(errors >= 1, "the refused requests show in the console");
  assertNoProblems(alice);
  await alice.context().close();
});
