// Presence: the member list ("Here (n)") follows who is in the room: someone joining,
// leaving with "Leave room", signing out, or closing the tab.

import { after, before, test } from "node:test";

import { launchBrowser } from "../support/browser.mjs";
import {
  assertNoProblems,
  joinRoom,
  signIn,
  snap,
  startDemoServer,
  waitForMembers,
} from "./demo.mjs";

let server;
let chromium;

before(async () => {
  server = await startDemoServer("presence");
  chromium = await launchBrowser();
});

after(async () => {
  await chromium?.close("presence-end");
  await server?.close();
});

test("the member list follows joins, leaves, sign-outs and closed tabs", async () => {
  const alice = await signIn(chromium.browser, server, "alice");
  await joinRoom(alice, "lobby");
  await waitForMembers(alice, ["alice"]);

  const bob = await signIn(chromium.browser, server, "bob");
  await joinRoom(bob, "lobby");
  await waitForMembers(alice, ["alice", "bob"]);
  await waitForMembers(bob, ["alice", "bob"]);

  const carol = await signIn(chromium.browser, server, "carol");
  await joinRoom(carol, "lobby");
  await waitForMembers(alice, ["alice", "bob", "carol"]);
  await snap(alice, "presence");

  // Leaving the room.
  await bob.getByRole("button", { name: "Leave room" }).click();
  await waitForMembers(alice, ["alice", "carol"]);
  await waitForMembers(carol, ["alice", "carol"]);

  // Coming back.
  await joinRoom(bob, "lobby");
  await waitForMembers(alice, ["alice", "bob", "carol"]);

  // Signing out.
  await carol.getByRole("button", { name: "Sign out" }).click();
  await carol.getByLabel("Nickname").waitFor();
  await waitForMembers(alice, ["alice", "bob"]);

  // Closing the tab.
  await bob.close();
  await waitForMembers(alice, ["alice"]);
  await snap(alice, "presence-alone");
  assertNoProblems(alice, bob, carol);
  await Promise.all([alice, bob, carol].map((page) => page.context().close()));
});
