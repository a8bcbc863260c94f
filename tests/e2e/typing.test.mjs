// The typing indicator: what one user types shows as "<name> is typing…" on the other's
// page, and goes away when they send (the client says "stopped" before the message) or, when
// their client falls silent mid-word, once the typing state expires (--typing-ttl).

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  connectionState,
  joinRoom,
  signIn,
  snap,
  startDemoServer,
  waitForLog,
  waitForMembers,
  waitForTyping,
} from "./demo.mjs";

let chromium;
const servers = [];

before(async () => {
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("typing-end");
  for (const server of servers) await server.close();
});

async function server(name, typingTtl) {
  const started = await startDemoServer(name, ["--typing-ttl", typingTtl]);
  servers.push(started);
  return started;
}

test("typing shows on the other page and ends with the message it was for", async () => {
  // A TTL far longer than the test: only a "stopped" can clear the line.
  const chat = await server("typing-stop", "60s");
  const alice = await signIn(chromium.browser, chat, "alice");
  const bob = await signIn(chromium.browser, chat, "bob");
  await joinRoom(alice, "lobby");
  await joinRoom(bob, "lobby");
  await waitForMembers(bob, ["alice", "bob"]);

  const input = alice.getByLabel("Message", { exact: true });
  await input.pressSequentially("On my way");
  await waitForTyping(bob, "alice is typing…");
  // Nobody is told about their own typing.
  assert.equal(await alice.getByTestId("typing-indicator").textContent(), "");
  await snap(bob, "typing");

  await input.press("Enter");
  // "Stopped" goes out before the message, so the line is empty by the time it shows.
  await waitForLog(bob, ["alice: On my way"]);
  assert.equal(await bob.getByTestId("typing-indicator").textContent(), "");
  await snap(bob, "typing-sent");
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});

test("typing from a client that falls silent mid-word expires after the typing TTL", async () => {
  const chat = await server("typing-ttl", "1s");
  const bob = await signIn(chromium.browser, chat, "bob");
  await joinRoom(bob, "lobby");

  // Carol's socket goes through the test, which stops passing on what her page sends once
  // she has started typing: no "stopped", no heartbeat, as if her tab had frozen.
  let silenced = false;
  const carol = await signIn(chromium.browser, chat, "carol", {
    beforeLoad: (page) =>
      page.routeWebSocket(/\/ws$/, (socket) => {
        const upstream = socket.connectToServer();
        socket.onMessage((frame) => {
          if (!silenced) upstream.send(frame);
        });
      }),
  });
  await joinRoom(carol, "lobby");
  await waitForMembers(bob, ["bob", "carol"]);

  await carol.getByLabel("Message", { exact: true }).pressSequentially("Hmm");
  await waitForTyping(bob, "carol is typing…");
  silenced = true;
  await waitForTyping(bob, "");
  // Carol is still there (her state expired; she did not leave), and still connected.
  await waitForMembers(bob, ["bob", "carol"]);
  await connectionState(carol, "connected");
  assertNoProblems(bob, carol);
  await Promise.all([bob.context().close(), carol.context().close()]);
});
