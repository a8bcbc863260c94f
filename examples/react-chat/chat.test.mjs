// Browser test of the React chat: two users in headless Chromium against a dev
// chorus-server serving examples/react-chat/dist, a development build (React's StrictMode
// double-runs effects there, as in `npm run dev`). Run by examples/react-chat/test-browser.sh.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchBrowser, newUserPage, screenshot } from "../../tests/support/browser.mjs";
import { root, startServer } from "../../tests/support/server.mjs";

const dist = join(root, "examples", "react-chat", "dist");

let chromium;
let server;

before(async () => {
  assert.ok(existsSync(join(dist, "index.html")), "build the app first (examples/react-chat/test-browser.sh)");
  chromium = await launchBrowser();
  server = await startServer("react-chat", ["--static-dir", dist]);
});

after(async () => {
  await chromium?.close("react-chat-end");
  await server?.close();
});

async function signIn(user) {
  const page = await newUserPage(chromium.browser);
  page.nickname = user;
  page.info = [];
  page.on("console", (message) => page.info.push(message.text()));
  await page.goto(`${server.url}/?user=${user}`);
  await page.locator('[data-testid="connection"][data-state="open"]').waitFor();
  return page;
}

/** Waits until `page` shows room `name` joined with exactly `members`. */
async function inRoom(page, name, members) {
  await page.locator(`[data-testid="room"][data-room="${name}"][data-state="joined"]`).waitFor();
  const list = page.getByTestId("members").locator("li");
  await page.waitForFunction(
    (expected) =>
      [...document.querySelectorAll('[data-testid="members"] li')].map((li) => li.textContent).sort().join() ===
      expected,
    [...members].sort().join(),
  );
  return list;
}

/** The messages `page` shows: `sender: text`, and their seqs. */
async function messages(page) {
  const items = page.getByTestId("messages").locator("li:not(.outgoing)");
  const texts = await items.evaluateAll((lis) =>
    lis.map((li) => ({ seq: Number(li.dataset.seq), line: li.textContent.replace(/^(\S+) /, "$1: ") })),
  );
  return texts;
}

test("two users chat in StrictMode: join, typing, send and receive once, leave on unmount, history on return", async () => {
  const alice = await signIn("alice");
  const bob = await signIn("bob");
  // A development build: StrictMode mounts every effect twice (join, timeline, listeners).
  assert.ok(
    alice.info.some((text) => text.includes("React DevTools")),
    "expected React's development build (its DevTools hint)",
  );
  await inRoom(alice, "lobby", ["alice", "bob"]);
  await inRoom(bob, "lobby", ["alice", "bob"]);

  const input = alice.getByLabel("Message");
  await input.pressSequentially("hello from react");
  await bob.getByTestId("typing").filter({ hasText: "alice is typing…" }).waitFor();
  await input.press("Enter");
  await alice.locator('[data-testid="messages"] li[data-sender="alice"]', { hasText: "hello from react" }).waitFor();
  await bob.locator('[data-testid="messages"] li[data-sender="alice"]', { hasText: "hello from react" }).waitFor();
  assert.equal(await input.inputValue(), "");

  await bob.getByLabel("Message").fill("hi alice");
  await bob.getByLabel("Message").press("Enter");
  for (const page of [alice, bob]) {
    await page.locator('[data-testid="messages"] li[data-sender="bob"]', { hasText: "hi alice" }).waitFor();
    await page.locator(".outgoing").first().waitFor({ state: "detached" });
  }
  const expected = ["alice: hello from react", "bob: hi alice"];
  const aliceLog = await messages(alice);
  const bobLog = await messages(bob);
  // Each message once (two effects' listeners would show it twice), in seq order.
  assert.deepEqual(aliceLog.map(({ line }) => line), expected);
  assert.deepEqual(bobLog, aliceLog);
  assert.ok(aliceLog[0].seq < aliceLog[1].seq);
  await screenshot(alice, "react-chat-alice");

  // Another room: the lobby's component unmounts and the room is left, as Bob sees.
  await alice.getByRole("button", { name: "#random" }).click();
  await inRoom(alice, "random", ["alice"]);
  await inRoom(bob, "lobby", ["bob"]);

  // Back: joined again, the conversation loaded from history, each message once.
  await alice.getByRole("button", { name: "#lobby" }).click();
  await inRoom(alice, "lobby", ["alice", "bob"]);
  await inRoom(bob, "lobby", ["alice", "bob"]);
  await alice.locator('[data-testid="messages"] li[data-sender="bob"]', { hasText: "hi alice" }).waitFor();
  assert.deepEqual(await messages(alice), aliceLog);

  assert.equal(await alice.getByTestId("error").count(), 0);
  assert.deepEqual([...alice.problems, ...bob.problems], []);
  await alice.context().close();
  await bob.context().close();
});
