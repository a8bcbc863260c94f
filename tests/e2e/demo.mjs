// What the end-to-end tests do on the demo page (www/), written once: start a server that
// serves it, sign in, join a room, send, and read the page back. Selectors are the page's
// labels and roles for what a user does, and its data-testid attributes for what a test
// reads.

import assert from "node:assert/strict";

import { newUserPage, screenshot } from "../support/browser.mjs";
import { startServer } from "../support/server.mjs";

/** How long a wait for the page may take before the test fails. */
export const WAIT_MS = 20_000;

const MESSAGE = '[data-testid="message-log"] [data-testid="message"]';

/**
 * A chorus-server serving the demo (www/) and the client package (client-wasm/pkg). To try
 * another build of either: $CHORUS_E2E_STATIC_DIR, $CHORUS_E2E_PKG_DIR.
 */
export function startDemoServer(name, args = []) {
  return startServer(name, [
    "--static-dir",
    process.env.CHORUS_E2E_STATIC_DIR ?? "www",
    "--pkg-dir",
    process.env.CHORUS_E2E_PKG_DIR ?? "client-wasm/pkg",
    "--shutdown-timeout",
    "2s",
    ...args,
  ]);
}

/**
 * A new user (own browser context) on the demo page, signed in as `nickname`.
 * `beforeLoad(page)`, when given, runs before the page loads (to route its WebSocket, say).
 */
export async function signIn(browser, server, nickname, { beforeLoad } = {}) {
  const page = await newUserPage(browser);
  page.setDefaultTimeout(WAIT_MS);
  page.nickname = nickname;
  await beforeLoad?.(page);
  await page.goto(server.url + "/");
  await page.getByLabel("Nickname").fill(nickname);
  await page.getByRole("button", { name: "Connect" }).click();
  await connectionState(page, "connected");
  assert.equal(await page.getByTestId("current-user").textContent(), nickname);
  return page;
}

/**
 * Signs in again on `page` as `page.nickname`, after it was reloaded (or signed out): the
 * same browser context, so the same storage.
 */
export async function signInAgain(page) {
  await page.getByLabel("Nickname").fill(page.nickname);
  await page.getByRole("button", { name: "Connect" }).click();
  await connectionState(page, "connected");
}

/**
 * Publishes `text` to `room` as `sender` from the backend (`POST /api/publish` with the
 * server's token secret, which the server must have been started with).
 */
export async function publishFromBackend(server, secret, { room, sender, text }) {
  const response = await fetch(`${server.url}/api/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ room, sender, text }),
  });
  const answer = await response.json();
  assert.ok(response.ok, `POST /api/publish: HTTP ${response.status} ${JSON.stringify(answer)}`);
  return answer.seq;
}

/** Waits until the connection status says `state` ("connected", "reconnecting", ...). */
export async function connectionState(page, state) {
  await page.locator(`[data-testid="connection-status"][data-state="${state}"]`).waitFor();
}

/**
 * How many `reconnecting` events the page's client has emitted in this session (the page
 * shows the count in the status's data-reconnects): one when a connection is lost, then one
 * per failed attempt.
 */
export async function reconnects(page) {
  return Number(await page.getByTestId("connection-status").getAttribute("data-reconnects"));
}

/** Waits until the page has counted at least `count` `reconnecting` events. */
export async function waitForReconnects(page, count) {
  await page.waitForFunction(
    (count) =>
      Number(document.querySelector('[data-testid="connection-status"]').dataset.reconnects) >=
      count,
    count,
    { timeout: WAIT_MS },
  );
}

/**
 * The console errors of a server outage. Chromium logs every request the stopped server
 * refuses, and the client makes one per attempt: the WebSocket for the first attempt after
 * the loss, the token probe (`GET /ws?token=...&probe=1`) for the next ones, whose failure
 * skips the WebSocket. Checks that the page logged at most `attempts` of those since
 * `from` (an index into `page.problems`), then drops them from `page.problems` (anything else
 * stays, for `assertNoProblems`). Returns how many there were.
 */
export function takeOutageErrors(page, from, attempts) {
  const refused = (problem) => problem.includes("net::ERR_CONNECTION_REFUSED");
  const outage = page.problems.slice(from).filter(refused);
  assert.ok(
    outage.length <= attempts,
    `${page.nickname}'s page logged ${outage.length} refused requests in ${attempts} failed ` +
      `attempts (at most one each):\n  ${outage.join("\n  ")}`,
  );
  page.problems = [
    ...page.problems.slice(0, from),
    ...page.problems.slice(from).filter((problem) => !refused(problem)),
  ];
  return outage.length;
}

/** Joins `room` (and shows it); resolves when the server has confirmed the join. */
export async function joinRoom(page, room) {
  await page.getByLabel("Room name").fill(room);
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await roomJoined(page, room);
}

/** Waits until `room` is shown and joined. */
export async function roomJoined(page, room) {
  await page
    .locator(`[data-testid="room-view"][data-room="${room}"][data-status="joined"]`)
    .waitFor();
}

/** Types `text` into the composer, key by key, and sends it with Enter. */
export async function send(page, text) {
  const input = page.getByLabel("Message", { exact: true });
  await input.pressSequentially(text);
  await input.press("Enter");
}

/** The message log as the page shows it: sender, text, seq and (own messages) status. */
export function readLog(page) {
  return page.locator(MESSAGE).evaluateAll((items) =>
    items.map((item) => ({
      sender: item.querySelector('[data-testid="message-sender"]')?.textContent ?? "",
      text: item.querySelector('[data-testid="message-body"]')?.textContent ?? "",
      seq: item.dataset.seq === undefined ? null : Number(item.dataset.seq),
      status: item.dataset.status ?? null,
    })),
  );
}

/**
 * Waits until the log shows exactly `expected` ("sender: text" lines, in order), each
 * message with its sequence number and, when sent from this page, "sent" (acknowledged).
 */
export async function waitForLog(page, expected) {
  try {
    await page.waitForFunction(
      ({ selector, expected }) => {
        const items = [...document.querySelectorAll(selector)];
        return (
          items.length === expected.length &&
          items.every((item, i) => {
            const sender = item.querySelector('[data-testid="message-sender"]')?.textContent;
            const text = item.querySelector('[data-testid="message-body"]')?.textContent;
            return (
              `${sender}: ${text}` === expected[i] &&
              item.dataset.seq !== undefined &&
              (item.dataset.status === undefined || item.dataset.status === "sent")
            );
          })
        );
      },
      { selector: MESSAGE, expected },
      { timeout: WAIT_MS },
    );
  } catch (error) {
    const shown = (await readLog(page)).map(
      ({ sender, text, seq, status }) => `${sender}: ${text} (seq ${seq}, ${status ?? "received"})`,
    );
    throw new Error(
      `${page.nickname}'s log:\n  ${shown.join("\n  ")}\nexpected:\n  ${expected.join("\n  ")}`,
      { cause: error },
    );
  }
}

/**
 * Waits until the log shows `count` messages, each with its sequence number and, when sent
 * from this page, "sent" (acknowledged).
 */
export async function waitForSettledLog(page, count) {
  try {
    await page.waitForFunction(
      ({ selector, count }) => {
        const items = [...document.querySelectorAll(selector)];
        return (
          items.length === count &&
          items.every(
            (item) =>
              item.dataset.seq !== undefined &&
              (item.dataset.status === undefined || item.dataset.status === "sent"),
          )
        );
      },
      { selector: MESSAGE, count },
      { timeout: WAIT_MS },
    );
  } catch (error) {
    throw new Error(
      `${page.nickname}'s log did not settle at ${count} messages: ` +
        JSON.stringify(await readLog(page)),
      { cause: error },
    );
  }
  return readLog(page);
}

/**
 * Waits until the log is in the server's order: sequence numbers 1, 2, 3... from the top,
 * as every member of the room must see it. Called once every message is in and
 * acknowledged, so it waits only `timeout` for a late reordering.
 */
export async function waitForServerOrder(page, timeout = 5_000) {
  try {
    await page.waitForFunction(
      (selector) =>
        [...document.querySelectorAll(selector)].every(
          (item, i) => item.dataset.seq === String(i + 1),
        ),
      MESSAGE,
      { timeout },
    );
  } catch (error) {
    const shown = (await readLog(page)).map(({ sender, text, seq }) => `${seq} ${sender}: ${text}`);
    throw new Error(
      `${page.nickname}'s log is not in the server's order (seq, sender, text):\n  ` +
        shown.join("\n  "),
      { cause: error },
    );
  }
}

/** Waits until the member list shows exactly `users` (sorted, as the page sorts them). */
export async function waitForMembers(page, users) {
  const expected = [...users].sort((a, b) => a.localeCompare(b));
  try {
    await page.waitForFunction(
      (expected) => {
        const shown = [...document.querySelectorAll('[data-testid="member"]')].map(
          (item) => item.dataset.user,
        );
        return shown.join("\n") === expected.join("\n");
      },
      expected,
      { timeout: WAIT_MS },
    );
  } catch (error) {
    const shown = await page.getByTestId("member").evaluateAll((items) =>
      items.map((item) => item.dataset.user),
    );
    throw new Error(`${page.nickname} sees members [${shown}], expected [${expected}]`, {
      cause: error,
    });
  }
  assert.equal(await page.getByTestId("members-title").textContent(), `Here (${users.length})`);
}

/** Waits until the typing line reads `text` ("" for nobody typing). */
export async function waitForTyping(page, text) {
  try {
    await page.waitForFunction(
      (text) => document.querySelector('[data-testid="typing-indicator"]')?.textContent === text,
      text,
      { timeout: WAIT_MS },
    );
  } catch (error) {
    const shown = await page.getByTestId("typing-indicator").textContent();
    throw new Error(`${page.nickname}'s typing line reads "${shown}", expected "${text}"`, {
      cause: error,
    });
  }
}

/** Screenshot `page` as test-artifacts/e2e/<name>-<nickname>.png. */
export function snap(page, name) {
  return screenshot(page, `${name}-${page.nickname}`);
}

/** The page logged no errors and threw nothing. */
export function assertNoProblems(...pages) {
  for (const page of pages) assert.deepEqual(page.problems, [], `${page.nickname}'s page`);
}
