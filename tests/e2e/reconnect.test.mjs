// A server restart mid-conversation (SIGTERM, then the server starts again on the same
// port): both pages say they are reconnecting and why, messages sent meanwhile wait as
// "queued", each failed attempt costs at most one console error, and after the restart both
// pages are connected again, back in the room, with those messages delivered to the other
// side and marked "sent".

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  connectionState,
  joinRoom,
  readLog,
  reconnects,
  roomJoined,
  send,
  signIn,
  snap,
  startDemoServer,
  takeOutageErrors,
  waitForLog,
  waitForMembers,
  waitForSettledLog,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  // A fixed secret, as a deployment has: tokens stay valid across the restart. (Without
  // one, --dev makes a new secret per start, and the page would need new tokens first.)
  server = await startDemoServer("reconnect", ["--token-secret", randomBytes(32).toString("hex")]);
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("reconnect-end");
  await server?.close();
});

test("after a server restart both pages reconnect, rejoin and deliver what was sent meanwhile", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  const bob = await signIn(chromium.browser, server, "bob");
  await joinRoom(alice, "lobby");
  await joinRoom(bob, "lobby");
  await waitForMembers(alice, ["alice", "bob"]);

  const earlier = ["alice: Deploying in a minute", "bob: Go ahead"];
  await send(alice, "Deploying in a minute");
  await waitForLog(bob, earlier.slice(0, 1));
  await send(bob, "Go ahead");
  await waitForLog(alice, earlier);
  await waitForLog(bob, earlier);

  const beforeOutage = new Map();
  for (const page of [alice, bob]) {
    beforeOutage.set(page, { problems: page.problems.length, reconnects: await reconnects(page) });
  }
  await server.stop();
  for (const page of [alice, bob]) {
    await connectionState(page, "reconnecting");
    // The status says why: once an attempt's token probe finds no server, that.
    await page
      .getByTestId("connection-text")
      .filter({ hasText: /^Reconnecting.*\(attempt \d+\): server unreachable$/ })
      .waitFor();
  }

  // Sent while the server is down: shown at once, waiting.
  await send(alice, "Is it down?");
  await send(bob, "Back soon, I hope");
  await alice.locator('[data-testid="message"][data-status="queued"]').waitFor();
  await bob.locator('[data-testid="message"][data-status="queued"]').waitFor();
  await snap(alice, "reconnecting");
  await snap(bob, "reconnecting");

  await server.start();
  for (const page of [alice, bob]) {
    await connectionState(page, "connected");
    await roomJoined(page, "lobby");
  }
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);
  // Chromium itself logs every request refused while the server was down: at most one per
  // failed attempt (how many attempts depends on the backoff's jitter). The first
  // `reconnecting` event of the outage is the lost connection, each further one an attempt.
  for (const [page, before] of beforeOutage) {
    const attempts = (await reconnects(page)) - before.reconnects - 1;
    assert.ok(attempts >= 1, `${page.nickname}'s page made ${attempts} failed attempts`);
    takeOutageErrors(page, before.problems, attempts);
  }

  // Each page has every message once: its own acknowledged, the other's received. The two
  // sent meanwhile were typed independently, each page showing its own where it was typed,
  // so only their set is checked here (the order of concurrent sends: chat.test.mjs).
  const sentMeanwhile = ["alice: Is it down?", "bob: Back soon, I hope"];
  for (const page of [alice, bob]) {
    const log = (await waitForSettledLog(page, earlier.length + sentMeanwhile.length)).map(
      ({ sender, text }) => `${sender}: ${text}`,
    );
    assert.deepEqual(log.slice(0, earlier.length), earlier, `${page.nickname}'s log`);
    assert.deepEqual(log.slice(earlier.length).sort(), sentMeanwhile, `${page.nickname}'s log`);
  }
  await snap(alice, "reconnected");
  await snap(bob, "reconnected");

  // The conversation goes on.
  const logs = new Map();
  for (const page of [alice, bob]) {
    logs.set(page, (await readLog(page)).map(({ sender, text }) => `${sender}: ${text}`));
  }
  await send(bob, "It's back");
  for (const [page, log] of logs) await waitForLog(page, [...log, "bob: It's back"]);
  assertNoProblems(alice, bob);
  await Promise.all([alice.context().close(), bob.context().close()]);
});
