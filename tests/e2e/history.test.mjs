// History on the demo page: joining a room shows what was said there before (to a user who
// was not there, and to one who reloaded the page), merged with what arrives live without
// duplicates, and "Load older messages" pages back to the start of the room's history.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  connectionState,
  joinRoom,
  publishFromBackend,
  readLog,
  roomJoined,
  send,
  signIn,
  snap,
  startDemoServer,
  waitForLog,
  waitForServerOrder,
} from "./demo.mjs";

/** The server's token secret, for publishing from the "backend". */
const secret = randomBytes(32).toString("hex");
let server;
let chromium;

before(async () => {
  server = await startDemoServer("history", ["--token-secret", secret]);
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("history-end");
  await server?.close();
});

test("joining shows the recent messages, to a newcomer and after a reload", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  await joinRoom(alice, "lobby");
  const earlier = ["Anyone here?", "I'll leave a note then.", "See you later!"];
  for (const text of earlier) await send(alice, text);
  const lines = earlier.map((text) => `alice: ${text}`);
  await waitForLog(alice, lines);

  // Bob was not there: the page shows what was said before he came.
  const bob = await signIn(chromium.browser, server, "bob");
  await joinRoom(bob, "lobby");
  await waitForLog(bob, lines);
  await snap(bob, "history-newcomer");

  // What follows arrives live, once, after the history.
  await send(bob, "Hi Alice, just saw your note");
  lines.push("bob: Hi Alice, just saw your note");
  await waitForLog(bob, lines);
  await waitForLog(alice, lines);

  // A reload starts a new client with nothing in memory; the page resumes the session (in
  // the room again, from where it was: reload.test.mjs), and the history brings back
  // Alice's own earlier messages (shown as hers) and Bob's.
  await alice.reload();
  await connectionState(alice, "connected");
  await roomJoined(alice, "lobby");
  await waitForLog(alice, lines);
  await waitForServerOrder(alice);
  const own = await alice
    .locator('[data-testid="message"][data-sender="alice"]')
    .evaluateAll((items) => items.map((item) => item.classList.contains("own")));
  assert.deepEqual(own, [true, true, true], "Alice's messages are shown as her own");
  await snap(alice, "history-reloaded");

  // And the conversation goes on, without duplicates on either side.
  await send(alice, "Hi Bob!");
  lines.push("alice: Hi Bob!");
  await waitForLog(alice, lines);
  await waitForLog(bob, lines);
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});

test("'Load older messages' pages back to the start, merged with live messages", async () => {
  const room = "archive";
  const total = 120;
  const text = (n) => `note ${n}`;
  for (let n = 1; n <= total; n++) {
    await publishFromBackend(server, secret, { room, sender: "carol", text: text(n) });
  }
  const lines = (from, to) =>
    Array.from({ length: to - from + 1 }, (_, i) => `carol: ${text(from + i)}`);

  const dave = await signIn(chromium.browser, server, "dave");
  await joinRoom(dave, room);
  // The newest page: the last 50.
  await waitForLog(dave, lines(total - 49, total));
  const older = dave.getByRole("button", { name: "Load older messages" });
  await older.waitFor();

  await older.click();
  // A message published meanwhile arrives live, at the end, once.
  await publishFromBackend(server, secret, { room, sender: "carol", text: "live one" });
  await waitForLog(dave, [...lines(total - 99, total), "carol: live one"]);

  await older.click();
  await waitForLog(dave, [...lines(1, total), "carol: live one"]);
  // That was the start of the room's history: nothing older to load.
  await dave.getByTestId("history-bar").waitFor({ state: "hidden" });
  assert.equal(await older.count(), 0);
  await waitForServerOrder(dave);
  const seqs = (await readLog(dave)).map(({ seq }) => seq);
  assert.equal(new Set(seqs).size, seqs.length, "each sequence once");
  // Screen readers hear what the last click did.
  await dave
    .getByTestId("history-status")
    .filter({ hasText: "Loaded 20 older messages." })
    .waitFor({ state: "attached" });
  await snap(dave, "history-older");
  assertNoProblems(dave);
  await dave.context().close();
});
