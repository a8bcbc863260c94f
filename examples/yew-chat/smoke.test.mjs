// Browser smoke test of the Yew chat: two users in headless Chromium against a dev
// chorus-server serving examples/yew-chat/dist. Run by examples/yew-chat/test-browser.sh.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { launchBrowser, newUserPage } from "../../tests/support/browser.mjs";
import { startServer } from "../../tests/support/server.mjs";

let chromium;
let server;

before(async () => {
  chromium = await launchBrowser();
  server = await startServer("yew-chat", ["--static-dir", "examples/yew-chat/dist"]);
});

after(async () => {
  await chromium?.close("yew-chat-end");
  await server?.close();
});

async function signIn(nickname) {
  const page = await newUserPage(chromium.browser);
  page.nickname = nickname;
  await page.goto(server.url + "/");
  await page.getByPlaceholder("nickname").fill(nickname);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator(".status", { hasText: "in lobby" }).waitFor();
  return page;
}

test("two users chat in a room, with typing and acks", async () => {
  const alice = await signIn("alice");
  const bob = await signIn("bob");

  const input = alice.locator(".draft");
  await input.pressSequentially("hello bob");
  await bob.locator(".typing", { hasText: "alice is typing…" }).waitFor();

  await input.press("Enter");
  // Acked on alice's page (no "sending…" left), delivered on bob's.
  await alice.locator(".messages li.acked", { hasText: "alice: hello bob" }).waitFor();
  assert.equal(await alice.locator(".messages li.pending").count(), 0);
  await bob.locator(".messages li.acked", { hasText: "alice: hello bob" }).waitFor();
  assert.equal(await alice.locator(".draft").inputValue(), "");

  await bob.locator(".draft").fill("hi alice");
  await bob.locator(".draft").press("Enter");
  await alice.locator(".messages li.acked", { hasText: "bob: hi alice" }).waitFor();

  assert.deepEqual([...alice.problems, ...bob.problems], []);
  await alice.context().close();
  await bob.context().close();
});
