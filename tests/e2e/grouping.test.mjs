// Consecutive messages from one sender are grouped: the first shows the sender's name, the
// ones after it only their text (the name stays in the page for screen readers). Live
// messages, one's own and messages from the history are grouped alike.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  connectionState,
  joinRoom,
  roomJoined,
  send,
  signIn,
  snap,
  startDemoServer,
  waitForLog,
  waitForMembers,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  server = await startDemoServer("grouping");
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("grouping-end");
  await server?.close();
});

/**
 * Each message of the log: "sender: text" (the name is in the page either way, for screen
 * readers), whether it continues a group, and whether its sender's name takes space on
 * screen.
 */
function readGroups(page) {
  return page.locator('[data-testid="message-log"] [data-testid="message"]').evaluateAll((items) =>
    items.map((item) => {
      const sender = item.querySelector('[data-testid="message-sender"]');
      const body = item.querySelector('[data-testid="message-body"]');
      const box = sender.getBoundingClientRect();
      return {
        line: `${sender.textContent}: ${body.textContent}`,
        grouped: item.classList.contains("grouped"),
        nameShown: box.width > 1 && box.height > 1,
      };
    }),
  );
}

test("consecutive messages from one sender show the name once, live and from history", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  const bob = await signIn(chromium.browser, server, "bob");
  await joinRoom(alice, "lobby");
  await joinRoom(bob, "lobby");
  await waitForMembers(alice, ["alice", "bob"]);

  const conversation = [
    [alice, "Three things"],
    [alice, "First, the release"],
    [alice, "Second, the docs"],
    [bob, "And third?"],
    [alice, "I forgot"],
  ];
  const lines = [];
  for (const [page, text] of conversation) {
    await send(page, text);
    lines.push(`${page.nickname}: ${text}`);
    await waitForLog(alice, lines);
    await waitForLog(bob, lines);
  }
  const expected = lines.map((line, i) => ({
    line,
    grouped: i === 1 || i === 2,
    nameShown: !(i === 1 || i === 2),
  }));
  assert.deepEqual(await readGroups(alice), expected, "alice's page (her own messages)");
  assert.deepEqual(await readGroups(bob), expected, "bob's page");
  await snap(alice, "grouping");

  // Bob's page after a reload shows the same messages from the room's history: grouped alike.
  await bob.reload();
  await connectionState(bob, "connected");
  await roomJoined(bob, "lobby");
  await waitForLog(bob, lines);
  assert.deepEqual(await readGroups(bob), expected, "bob's page after a reload");
  await snap(bob, "grouping-history");
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});
