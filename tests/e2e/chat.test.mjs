// Two users in two browsers join the same room and talk: each sees every message, in the
// same order (the server's sequence numbers), with their own marked "sent" (acknowledged).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  joinRoom,
  send,
  signIn,
  snap,
  startDemoServer,
  waitForLog,
  waitForMembers,
  waitForServerOrder,
  waitForSettledLog,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  server = await startDemoServer("chat");
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("chat-end");
  await server?.close();
});

/** Two users signed in and in `room`, each seeing the other. */
async function twoUsersIn(room) {
  const [alice, bob] = await Promise.all([
    signIn(chromium.browser, server, "alice"),
    signIn(chromium.browser, server, "bob"),
  ]);
  await joinRoom(alice, room);
  await joinRoom(bob, room);
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);
  return { alice, bob };
}

test("a conversation turn by turn shows the same messages in the same order on both pages", async () => {
  const { alice, bob } = await twoUsersIn("lobby");
  const lines = [
    ["alice", "Hi Bob!"],
    ["bob", "Hello Alice 👋"],
    ["alice", "Is <b>this</b> bold? It should not be."],
    ["bob", "Plain text, as typed."],
  ];
  const expected = [];
  for (const [sender, text] of lines) {
    await send(sender === "alice" ? alice : bob, text);
    expected.push(`${sender}: ${text}`);
    await waitForLog(alice, expected);
    await waitForLog(bob, expected);
  }
  await waitForServerOrder(alice);
  await waitForServerOrder(bob);
  // Text stays text.
  assert.equal(await alice.locator('[data-testid="message-body"] b').count(), 0);
  await snap(alice, "chat");
  await snap(bob, "chat");
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});

test("messages sent at the same time end up in the server's order on both pages", async () => {
  const { alice, bob } = await twoUsersIn("burst");
  const burst = [1, 2, 3, 4];
  const sendAll = async (page) => {
    for (const n of burst) await send(page, `${page.nickname} burst ${n}`);
  };
  await Promise.all([sendAll(alice), sendAll(bob)]);

  const total = 2 * burst.length;
  const seenByAlice = await waitForSettledLog(alice, total);
  const seenByBob = await waitForSettledLog(bob, total);
  for (const [page, seen] of [[alice, seenByAlice], [bob, seenByBob]]) {
    for (const sender of ["alice", "bob"]) {
      assert.deepEqual(
        seen.filter((m) => m.sender === sender).map((m) => m.text),
        burst.map((n) => `${sender} burst ${n}`),
        `${page.nickname} sees ${sender}'s messages in the order they were sent`,
      );
    }
  }
  await snap(alice, "chat-burst");
  await snap(bob, "chat-burst");
  await waitForServerOrder(alice);
  await waitForServerOrder(bob);
  const strip = (log) => log.map(({ sender, text }) => `${sender}: ${text}`);
  assert.deepEqual(strip(await waitForSettledLog(alice, total)), strip(await waitForSettledLog(bob, total)));
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});
