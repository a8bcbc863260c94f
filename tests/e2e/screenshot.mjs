// Takes docs/screenshot.png, the demo as the README shows it: three people in a room, one of
// them typing. Not a test; run it after changing the page (`npm run screenshot`), with the
// server (cargo build -p chorus-server) and the client package (npm run build) built.

import { join } from "node:path";

import { launchBrowser } from "../support/browser.mjs";
import { root } from "../support/server.mjs";
import {
  joinRoom,
  send,
  signIn,
  startDemoServer,
  waitForLog,
  waitForMembers,
  waitForTyping,
} from "./demo.mjs";

const server = await startDemoServer("screenshot");
const chromium = await launchBrowser();
try {
  const people = {};
  for (const name of ["ada", "grace", "linus"]) {
    people[name] = await signIn(chromium.browser, server, name);
    await joinRoom(people[name], "lobby");
  }
  const { ada, grace, linus } = people;
  await waitForMembers(ada, ["ada", "grace", "linus"]);

  // No emoji: the test machine's Chromium may have no font for them.
  const conversation = [
    [grace, "Morning! Is everyone in for the release review at ten?"],
    [ada, "Yes. I'll bring the numbers from the load test."],
    [linus, "Same here. Can we also look at the reconnect logs?"],
    [ada, "Sure, I'll put them in the agenda."],
    [grace, "Great, see you there."],
  ];
  const expected = [];
  for (const [page, text] of conversation) {
    await send(page, text);
    expected.push(`${page.nickname}: ${text}`);
    await waitForLog(ada, expected);
  }
  await linus.getByLabel("Message", { exact: true }).pressSequentially("One more thing");
  await waitForTyping(ada, "linus is typing…");
  await ada.getByLabel("Message", { exact: true }).fill("");
  await ada.getByLabel("Message", { exact: true }).blur();

  const path = join(root, "docs", "screenshot.png");
  await ada.screenshot({ path });
  console.log(`screenshot: ${path}`);
} finally {
  await chromium.close();
  await server.close();
}
