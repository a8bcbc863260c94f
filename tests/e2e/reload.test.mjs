// A reload does not end the session: the page keeps the nickname, the token, the rooms with
// their positions and the messages not yet acknowledged in sessionStorage, joins each room
// again with `join({ since })`, and sends those messages again with their ids. What was
// published while the page reloaded shows once, and a message sent just before the reload
// is delivered once. Signing out forgets it all.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  connectionState,
  joinRoom,
  readLog,
  roomJoined,
  send,
  signIn,
  signInAgain,
  snap,
  startDemoServer,
  waitForLog,
  waitForMembers,
  waitForServerOrder,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  server = await startDemoServer("reload");
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("reload-end");
  await server?.close();
});

/** Waits until the page shows `room` joined, with the join's resume request `recovery`. */
async function joinedWith(page, room, recovery) {
  await roomJoined(page, room);
  await page
    .locator(`[data-testid="room-view"][data-room="${room}"][data-recovery="${recovery}"]`)
    .waitFor();
}

/**
 * Reloads `page`, holding the new page's script back until `meanwhile()` has run: the old
 * page (and its client) is gone by then, the new one not started yet.
 */
async function reloadAround(page, meanwhile) {
  let release;
  const held = new Promise((resolve) => (release = resolve));
  let asked;
  const requested = new Promise((resolve) => (asked = resolve));
  const script = /\/app\.js$/;
  await page.route(script, async (route) => {
    asked();
    await held;
    await route.continue();
  });
  const reloading = page.reload();
  await requested;
  try {
    await meanwhile();
  } finally {
    release();
    await reloading;
    await page.unroute(script);
  }
}

test("a reload resumes the session: same rooms, and what was published meanwhile shows once", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  const bob = await signIn(chromium.browser, server, "bob");
  await joinRoom(alice, "side");
  await joinRoom(alice, "lobby");
  await joinRoom(bob, "lobby");
  await waitForMembers(alice, ["alice", "bob"]);

  const lines = ["alice: Back in a second, reloading", "bob: Sure"];
  await send(alice, "Back in a second, reloading");
  await waitForLog(bob, lines.slice(0, 1));
  await send(bob, "Sure");
  await waitForLog(alice, lines);

  const meanwhile = ["While you were away", "there were two messages"];
  await reloadAround(alice, async () => {
    // Alice's old page closed its client on the way out.
    await waitForMembers(bob, ["bob"]);
    for (const text of meanwhile) await send(bob, text);
    lines.push(...meanwhile.map((text) => `bob: ${text}`));
    await waitForLog(bob, lines);
  });

  // Signed in without the form, in both rooms, the last one shown, resumed where it was.
  await connectionState(alice, "connected");
  assert.equal(await alice.getByTestId("current-user").textContent(), "alice");
  assert.equal(await alice.getByTestId("login-form").isVisible(), false);
  await joinedWith(alice, "lobby", "recovered");
  assert.deepEqual(
    await alice.getByTestId("room-item").evaluateAll((items) => items.map((i) => i.dataset.room)),
    ["side", "lobby"],
  );
  await waitForLog(alice, lines);
  await waitForServerOrder(alice);
  await waitForMembers(bob, ["alice", "bob"]);
  await snap(alice, "reload-resumed");

  // Nothing comes twice later either.
  await send(bob, "Welcome back");
  lines.push("bob: Welcome back");
  await waitForLog(alice, lines);
  await waitForLog(bob, lines);
  const seqs = (await readLog(alice)).map(({ seq }) => seq);
  assert.equal(new Set(seqs).size, seqs.length, "each sequence once");

  // Signing out forgets the session: a reload then shows the sign-in form.
  await alice.getByRole("button", { name: "Sign out" }).click();
  await alice.getByLabel("Nickname").waitFor();
  await alice.reload();
  await alice.getByLabel("Nickname").waitFor();
  await connectionState(alice, "idle");
  await signInAgain(alice);
  assert.equal(await alice.getByTestId("room-item").count(), 0);
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});

test("a message not acknowledged before a reload is sent again with its id and shows once", async () => {
  // Alice's socket goes through the test, which can stop passing on what the server sends
  // her: her message reaches the room, but its ack does not reach her page.
  const sockets = [];
  const alice = await signIn(chromium.browser, server, "alice", {
    beforeLoad: (page) =>
      page.routeWebSocket(/\/ws$/, (socket) => {
        const route = { deaf: false };
        sockets.push(route);
        const upstream = socket.connectToServer();
        upstream.onMessage((frame) => {
          if (!route.deaf) socket.send(frame);
        });
      }),
  });
  const bob = await signIn(chromium.browser, server, "bob");
  await joinRoom(alice, "acks");
  await joinRoom(bob, "acks");
  await waitForMembers(alice, ["alice", "bob"]);

  sockets.at(-1).deaf = true;
  await send(alice, "Did this get through?");
  const lines = ["alice: Did this get through?"];
  await waitForLog(bob, lines);
  const mine = alice.locator('[data-testid="message"][data-sender="alice"]');
  assert.equal(await mine.getAttribute("data-status"), "pending");

  // The reloaded page sends it again, with the same id: the server knows it, and answers
  // with the ack of the first one; the room gets nothing new.
  await alice.reload();
  await connectionState(alice, "connected");
  await joinedWith(alice, "acks", "recovered");
  await waitForLog(alice, lines);
  await send(bob, "Yes, once");
  lines.push("bob: Yes, once");
  await waitForLog(bob, lines);
  await waitForLog(alice, lines);
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});
