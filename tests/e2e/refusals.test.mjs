// What the server refuses, the page explains: a join over the server's room limit shows
// "Could not join" with the server's reason (and "Join" tries again), a message over the
// server's body limit fails with both sizes, and the next one is checked before it is sent.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  joinRoom,
  roomJoined,
  signIn,
  snap,
  startDemoServer,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  // One room per connection, and bodies up to 2 KiB (the frame limit minus 1 KiB).
  server = await startDemoServer("refusals", [
    "--max-rooms-per-connection",
    "1",
    "--max-frame",
    "3072",
  ]);
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("refusals-end");
  await server?.close();
});

test("a refused join and a too large message say why, and the join can be tried again", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  await joinRoom(alice, "lobby");

  // A second room is one too many.
  await alice.getByLabel("Room name").fill("second");
  await alice.getByRole("button", { name: "Join", exact: true }).click();
  const view = alice.locator('[data-testid="room-view"][data-room="second"]');
  await view.and(alice.locator('[data-status="error"]')).waitFor();
  const error = alice.getByTestId("room-join-error");
  assert.match(await error.textContent(), /^Could not join: .+/);
  assert.equal(await alice.getByLabel("Message", { exact: true }).isDisabled(), true);
  const item = alice.locator('[data-testid="room-item"][data-room="second"]');
  assert.equal(await item.getAttribute("data-status"), "error");
  await snap(alice, "refused-join");

  // Out of the lobby, the same join goes through.
  await alice.locator('[data-testid="room-item"][data-room="lobby"] button').click();
  await alice.getByRole("button", { name: "Leave room" }).click();
  await joinRoom(alice, "second");
  assert.equal(await error.isVisible(), false);

  // 4000 bytes: under the page's default limit, over this server's.
  const input = alice.getByLabel("Message", { exact: true });
  await input.fill("x".repeat(4000));
  await input.press("Enter");
  const failed = alice.locator('[data-testid="message"][data-status="failed"]');
  await failed.waitFor();
  assert.equal(
    await failed.getByTestId("message-error").textContent(),
    "too large: 4 KB, over the server's limit of 2 KB",
  );
  // No "Retry": it would fail the same way.
  assert.equal(await failed.getByTestId("retry").count(), 0);
  // The page learnt the limit: the next one is stopped before it is sent.
  await input.fill("y".repeat(4000));
  await input.press("Enter");
  assert.equal(
    await alice.getByTestId("composer-error").textContent(),
    "This message is 4 KB; the server takes at most 2 KB.",
  );
  assert.equal(await alice.getByTestId("message").count(), 1);
  await roomJoined(alice, "second");
  assertNoProblems(alice);
  await alice.context().close();
});
