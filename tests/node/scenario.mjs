// One runtime's run of the packed chorus-client, started by runtimes.test.mjs under Node
// (20 with `ws`, 22 with its own WebSocket), Deno and Bun. Plain JavaScript and only what
// all four share (fetch, WebSocket where there is one, node:process), so that the package
// is all that differs.
//
//   scenario.mjs resume <config JSON>        connect, join, publish, receive, then resume
//                                            after the connection is dropped
//   scenario.mjs no-websocket <config JSON>  with no WebSocket at all: NoWebSocket at once
//
// Prints one line `REPORT <JSON>` of what it saw for the test to check; exits 1 with the
// reason on stderr when a step fails or times out. It never calls process.exit on success:
// the runtime exits once nothing is pending, which is how the test sees that a closed
// client leaves no socket or timer behind.

import process from "node:process";

import { ChorusError, Client, ErrorCode, connect } from "chorus-client";

const [mode, json] = process.argv.slice(2);
const config = JSON.parse(json ?? "{}");
const report = { mode, entry: import.meta.resolve("chorus-client") };

/** What the run saw so far, for the reason of a failure. */
const seen = { states: [], events: [] };

/** Fails the run: the reason and what was seen on stderr, exit code 1. */
function fail(message) {
  process.stderr.write(`scenario (${mode}): ${message}\nseen: ${JSON.stringify(seen)}\n`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

/** `promise`, or a failure naming `step` after `ms` (the timer is cleared either way). */
async function step(name, promise, ms = 10_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } catch (error) {
    fail(`step "${name}" failed: ${error?.stack ?? error}`);
  } finally {
    clearTimeout(timer);
  }
}

/** The next `event` of `emitter` whose payload satisfies `predicate`. */
function next(emitter, event, predicate = () => true) {
  return new Promise((resolve) => {
    const off = emitter.on(event, (payload) => {
      if (!predicate(payload)) return;
      off();
      resolve(payload);
    });
  });
}

/** Resolves once `list` has `count` entries (checked on every `event` of `room`). */
function until(room, list, count) {
  if (list.length >= count) return Promise.resolve();
  return next(room, "message", () => list.length >= count);
}

async function control(action) {
  const response = await fetch(`${config.control}/${action}`, { method: "POST" });
  check(response.ok, `control ${action}: HTTP ${response.status}`);
  await response.arrayBuffer();
}

async function noWebSocket() {
  // Node 20 has none; elsewhere the global is taken away for this run.
  report.hadGlobal = typeof globalThis.WebSocket === "function";
  if (report.hadGlobal) delete globalThis.WebSocket;
  check(typeof globalThis.WebSocket === "undefined", "could not remove globalThis.WebSocket");

  const started = performance.now();
  try {
    new Client(config.url, { token: config.token });
    fail("new Client(...) without a WebSocket did not throw");
  } catch (error) {
    check(error instanceof ChorusError, `new Client threw ${error}, not a ChorusError`);
    report.thrown = { code: error.code, name: error.name, message: error.message };
  }
  const rejected = await step(
    "connect() rejects",
    connect(config.url, { token: config.token }).then(
      (client) => {
        client.close();
        fail("connect(...) without a WebSocket resolved");
      },
      (error) => error,
    ),
    2_000,
  );
  check(rejected instanceof ChorusError, `connect rejected with ${rejected}, not a ChorusError`);
  report.connect = { code: rejected.code, name: rejected.name };
  report.elapsedMs = performance.now() - started;
  report.errorCode = ErrorCode.NoWebSocket;
}

async function resume() {
  const WebSocket = config.ws ? (await import("ws")).WebSocket : undefined;
  report.webSocket = config.ws ? "ws" : typeof globalThis.WebSocket;
  const options = { initialBackoffMs: 50, maxBackoffMs: 200, ...(WebSocket && { WebSocket }) };

  // No `await init()`: the package's node entry loaded the module at import, so the client
  // can be made at once (the browser entry would throw "not loaded yet" here).
  const alice = new Client(config.proxy, { ...options, token: config.tokens.alice });
  const bob = new Client(config.url, { ...options, token: config.tokens.bob });
  const states = seen.states;
  alice.on("state", ({ state, reason }) => states.push(`${state}:${reason.code}`));
  alice.on("reconnecting", ({ attempt, delayMs, reason }) =>
    seen.events.push(`reconnecting ${attempt} in ${Math.round(delayMs)} ms: ${reason.code} ${reason.text}`),
  );
  const problems = [];
  for (const client of [alice, bob]) client.on("error", (error) => problems.push(`${error.name}: ${error.message}`));

  const rooms = [alice, bob].map((client) => client.room(config.room, { codec: "json" }));
  const [aliceRoom, bobRoom] = rooms;
  const got = { alice: [], bob: [] };
  aliceRoom.on("message", (message) => got.alice.push(message));
  bobRoom.on("message", (message) => got.bob.push(message));
  const joins = (seen.joins = []);
  aliceRoom.on("joined", ({ recovery }) => joins.push(recovery));
  for (const room of rooms) room.on("error", (error) => problems.push(`${error.name}: ${error.message}`));

  await step("join", Promise.all(rooms.map((room) => room.join())));
  report.user = alice.user;

  // Both connected: each publishes, each receives both.
  const acks = [];
  const first = [aliceRoom.publish({ n: 1, from: "alice" }), bobRoom.publish({ n: 2, from: "bob" })];
  acks.push(...(await step("first publishes", Promise.all(first))));
  await step("first messages", Promise.all([until(aliceRoom, got.alice, 2), until(bobRoom, got.bob, 2)]));

  // The proxy drops Alice's connection and refuses new ones until told.
  const reconnecting = next(alice, "state", ({ state }) => state === "reconnecting");
  await step("cut", control("cut"));
  await step("alice reconnecting", reconnecting);

  // Meanwhile Bob publishes (Alice misses these live), and Alice's publishes wait offline.
  const fromBob = [3, 4, 5].map((n) => bobRoom.publish({ n, from: "bob" }));
  acks.push(...(await step("bob's publishes while alice is away", Promise.all(fromBob))));
  const fromAlice = [6, 7].map((n) => aliceRoom.publish({ n, from: "alice" }));
  report.queuedWhileAway = alice.pendingPublishes;
  report.queuedIds = fromAlice.map((publish) => publish.id);
  check(
    got.alice.length === 2,
    `alice received ${got.alice.length} messages while disconnected, expected 2`,
  );

  // At least one attempt is refused before the proxy lets Alice through: a failed handshake
  // must count as one at once (the next attempt follows after the backoff), not only after
  // the connect timeout (10 s by default).
  await step(
    "a refused reconnect attempt reported",
    next(alice, "reconnecting", ({ attempt }) => attempt >= 2),
    5_000,
  );
  const rejoined = next(aliceRoom, "joined");
  await step("restore", control("restore"));
  report.recovery = (await step("alice rejoins", rejoined)).recovery;
  acks.push(...(await step("alice's queued publishes", Promise.all(fromAlice))));
  await step("every message", Promise.all([until(aliceRoom, got.alice, 7), until(bobRoom, got.bob, 7)]));

  // Nothing more arrives on a round trip after the last message (no late duplicate).
  const fence = bobRoom.publish({ n: 8, from: "bob" });
  acks.push(await step("fence", fence));
  await step("fence received", Promise.all([until(aliceRoom, got.alice, 8), until(bobRoom, got.bob, 8)]));

  const summary = (list) => list.map(({ seq, id, sender, data }) => ({ seq, id, sender, n: data.n }));
  report.alice = summary(got.alice);
  report.bob = summary(got.bob);
  report.acks = acks.map(({ id, seq }) => ({ id, seq }));
  report.joins = joins;
  report.states = states;
  report.problems = problems;
  report.pendingAfter = alice.pendingPublishes;

  const closed = Promise.all([alice, bob].map((client) => next(client, "close")));
  alice.close();
  bob.close();
  report.close = (await step("close", closed)).map(({ code }) => code);
  report.finalStates = [alice.state, bob.state];
}

if (mode === "no-websocket") await noWebSocket();
else if (mode === "resume") await resume();
else fail(`unknown mode ${mode}`);
process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
