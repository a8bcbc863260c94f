// Smoke tests of the benchmark peers (node --test). Each starts a peer as the benchmark
// orchestrator would (a child process on port 0, reading `LISTENING <port>`), drives it with
// two or three clients speaking exactly the frames README.md documents, and stops it with
// SIGTERM, expecting exit status 0.
//
//   cargo build -p chorus-bench-baseline && node --test bench/peers/smoke.test.mjs
//
// The Rust baseline is taken from CHORUS_BASELINE_BIN, else from the debug build in
// $CARGO_TARGET_DIR (default: target/ at the repository root).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..");
const TIMEOUT_MS = 5000;

/** Starts a peer and resolves to `{ port, stop }` once it prints `LISTENING <port>`. */
async function startPeer(command, args, env = {}) {
  const child = spawn(command, args, {
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${command} printed no LISTENING line`)),
      TIMEOUT_MS,
    );
    child.once("error", reject);
    exited.then(({ code }) => reject(new Error(`${command} exited early with ${code}`)));
    lines.once("line", (line) => {
      clearTimeout(timer);
      const match = /^LISTENING (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
      else reject(new Error(`unexpected first line: ${JSON.stringify(line)}`));
    });
  });
  assert.ok(port > 0);
  return {
    port,
    /** SIGTERM, then the exit status, which must be a clean 0. */
    async stop() {
      child.kill("SIGTERM");
      const { code, signal } = await exited;
      assert.equal(signal, null, "killed by a signal rather than exiting");
      assert.equal(code, 0, "exit status after SIGTERM");
    },
  };
}

/** A WebSocket client whose received messages are awaited one at a time, in order. */
class Client {
  static async connect(url) {
    const client = new Client(new WebSocket(url, { perMessageDeflate: false }));
    await new Promise((resolve, reject) => {
      client.ws.once("open", resolve);
      client.ws.once("error", reject);
    });
    return client;
  }

  constructor(ws) {
    this.ws = ws;
    this.received = [];
    this.waiting = null;
    this.closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
    ws.on("message", (data, isBinary) => {
      this.received.push(isBinary ? Buffer.from(data) : data.toString());
      this.waiting?.();
    });
  }

  send(data) {
    this.ws.send(data);
  }

  /** The next message: a string for a text frame, a Buffer for a binary one. */
  async next() {
    const deadline = Date.now() + TIMEOUT_MS;
    while (this.received.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no message within the timeout");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = null;
    }
    return this.received.shift();
  }

  /** The close code the server sent, within the timeout. */
  async closeCode() {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("not closed within the timeout")), TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close() {
    this.ws.close();
  }
}

test("ws peer: join, broadcast to every member only, echo, a burst in order", async () => {
  const peer = await startPeer(process.execPath, [join(here, "ws", "server.mjs")]);
  try {
    const url = `ws://127.0.0.1:${peer.port}/`;
    const [a, b, c] = await Promise.all([url, url, url].map((u) => Client.connect(u)));
    for (const [client, room] of [[a, "r1"], [b, "r1"], [c, "r2"]]) {
      client.send(JSON.stringify({ t: "join", room }));
      assert.equal(await client.next(), `{"t":"joined","room":"${room}"}`);
    }

    a.send('{"t":"pub","room":"r1","body":"hello"}');
    for (const client of [a, b]) {
      assert.equal(await client.next(), '{"t":"msg","room":"r1","body":"hello"}');
    }
    // c, in r2, got nothing: its next message is its own publish to r2.
    c.send('{"t":"pub","room":"r2","body":"only r2"}');
    assert.equal(await c.next(), '{"t":"msg","room":"r2","body":"only r2"}');

    a.send('{"t":"echo","body":"ping-1"}');
    assert.equal(await a.next(), '{"t":"echo","body":"ping-1"}');

    for (let i = 0; i < 200; i++) a.send(JSON.stringify({ t: "pub", room: "r1", body: `m${i}` }));
    for (let i = 0; i < 200; i++) {
      assert.equal(await b.next(), `{"t":"msg","room":"r1","body":"m${i}"}`);
    }
    for (const client of [a, b, c]) client.close();
  } finally {
    await peer.stop();
  }
});

test("ws peer: invalid JSON closes with 1007, an unknown message with 1008", async () => {
  const peer = await startPeer(process.execPath, [join(here, "ws", "server.mjs")]);
  try {
    const url = `ws://127.0.0.1:${peer.port}/`;
    const cases = [
      ["{not json", 1007],
      ["null", 1008],
      ['{"t":"nope"}', 1008],
    ];
    for (const [message, code] of cases) {
      const client = await Client.connect(url);
      client.send(message);
      assert.equal(await client.closeCode(), code, message);
    }
  } finally {
    await peer.stop();
  }
});

/** Connects a raw Engine.IO v4 WebSocket client and the default namespace, as documented. */
async function connectSocketIo(port) {
  const url = `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`;
  const client = await Client.connect(url);
  const open = await client.next();
  assert.match(open, /^0\{/, "Engine.IO open packet");
  const handshake = JSON.parse(open.slice(1));
  assert.deepEqual(handshake.upgrades, []);
  client.send("40");
  assert.match(await client.next(), /^40\{"sid":"[^"]+"\}$/, "namespace connected");
  return { client, handshake };
}

test("socket.io peer: raw Engine.IO framing joins, broadcasts and echoes", async () => {
  const peer = await startPeer(process.execPath, [join(here, "socketio", "server.mjs")]);
  try {
    const members = await Promise.all([1, 2, 3].map(() => connectSocketIo(peer.port)));
    const [a, b, c] = members.map((m) => m.client);
    assert.equal(members[0].handshake.pingInterval, 60000);
    assert.equal(members[0].handshake.pingTimeout, 60000);
    for (const [client, room] of [[a, "r1"], [b, "r1"], [c, "r2"]]) {
      client.send(`42["join","${room}"]`);
      assert.equal(await client.next(), `42["joined","${room}"]`);
    }

    a.send('42["pub",{"room":"r1","body":"hello"}]');
    for (const client of [a, b]) {
      assert.equal(await client.next(), '42["msg",{"room":"r1","body":"hello"}]');
    }
    c.send('42["pub",{"room":"r2","body":"only r2"}]');
    assert.equal(await c.next(), '42["msg",{"room":"r2","body":"only r2"}]');

    a.send('42["echo","ping-1"]');
    assert.equal(await a.next(), '42["echo","ping-1"]');
    a.send('42["echo",{"t":1,"body":"x"}]');
    assert.equal(await a.next(), '42["echo",{"t":1,"body":"x"}]');

    for (let i = 0; i < 200; i++) a.send(`42["pub",{"room":"r1","body":"m${i}"}]`);
    for (let i = 0; i < 200; i++) {
      assert.equal(await b.next(), `42["msg",{"room":"r1","body":"m${i}"}]`);
    }
    for (const client of [a, b, c]) client.close();
  } finally {
    await peer.stop();
  }
});

test("socket.io peer: a client answering ping with pong stays, a silent one goes", async () => {
  const peer = await startPeer(process.execPath, [join(here, "socketio", "server.mjs")], {
    SIO_PING_INTERVAL: "100",
    SIO_PING_TIMEOUT: "200",
  });
  try {
    const { client: answering } = await connectSocketIo(peer.port);
    const { client: silent } = await connectSocketIo(peer.port);
    let pings = 0;
    answering.ws.on("message", (data) => {
      if (data.toString() === "2") {
        pings++;
        answering.send("3");
      }
    });
    // The silent client gets its ping and, with no pong within pingTimeout, is closed.
    assert.equal(await silent.next(), "2");
    await silent.closeCode();
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.ok(pings >= 3, `answered ${pings} pings`);
    answering.received.length = 0; // the pings, already answered
    answering.send('42["echo","still here"]');
    let reply;
    do reply = await answering.next();
    while (reply === "2");
    assert.equal(reply, '42["echo","still here"]');
    answering.close();
  } finally {
    await peer.stop();
  }
});

/** The Rust baseline's binary, built by `cargo build -p chorus-bench-baseline`. */
function baselineBin() {
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(repoRoot, "target");
  const bin = process.env.CHORUS_BASELINE_BIN ?? join(targetDir, "debug", "chorus-bench-baseline");
  assert.ok(
    existsSync(bin),
    `${bin} not found: run cargo build -p chorus-bench-baseline, or set CHORUS_BASELINE_BIN`,
  );
  return bin;
}

/** A baseline message: opcode, then (for join and pub) a length-prefixed room, then a body. */
function baselineMessage(opcode, room, body = Buffer.alloc(0)) {
  const parts = [Buffer.from([opcode])];
  if (room !== null) parts.push(Buffer.from([Buffer.byteLength(room)]), Buffer.from(room));
  parts.push(Buffer.from(body));
  return Buffer.concat(parts);
}
const JOIN = 0x01;
const PUB = 0x02;
const ECHO = 0x03;

test("rust baseline: join, broadcast to members only, echo, large and burst messages", async () => {
  const peer = await startPeer(baselineBin(), []);
  try {
    const url = `ws://127.0.0.1:${peer.port}/`;
    const [a, b, c] = await Promise.all([url, url, url].map((u) => Client.connect(u)));
    for (const [client, room] of [[a, "r1"], [b, "r1"], [c, "r2"]]) {
      const join = baselineMessage(JOIN, room);
      client.send(join);
      assert.deepEqual(await client.next(), join, "joined: the join message back");
    }

    const pub = baselineMessage(PUB, "r1", "hello");
    assert.deepEqual(pub, Buffer.from([0x02, 0x02, 0x72, 0x31, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
    a.send(pub);
    for (const client of [a, b]) assert.deepEqual(await client.next(), pub);
    const onlyR2 = baselineMessage(PUB, "r2", "only r2");
    c.send(onlyR2);
    assert.deepEqual(await c.next(), onlyR2);

    const echo = baselineMessage(ECHO, null, "ping-1");
    a.send(echo);
    assert.deepEqual(await a.next(), echo);

    // 70 000 bytes: a 64-bit length on the wire, read over several reads.
    const large = baselineMessage(PUB, "r1", Buffer.alloc(70_000, 0x61));
    a.send(large);
    for (const client of [a, b]) assert.deepEqual(await client.next(), large);

    // A burst: many frames per read on the way in, many per writev on the way out.
    for (let i = 0; i < 2000; i++) a.send(baselineMessage(PUB, "r1", `m${i}`));
    for (let i = 0; i < 2000; i++) {
      assert.deepEqual(await b.next(), baselineMessage(PUB, "r1", `m${i}`));
    }

    // WebSocket ping is answered with a pong carrying the same payload.
    const pong = new Promise((resolve) => a.ws.once("pong", resolve));
    a.ws.ping("are you there");
    assert.equal((await pong).toString(), "are you there");

    // A close is answered with the same code.
    a.ws.close(1000);
    assert.equal(await a.closeCode(), 1000);
    for (const client of [b, c]) client.close();
  } finally {
    await peer.stop();
  }
});

test("rust baseline: text frames close with 1003, malformed messages with 1008", async () => {
  const peer = await startPeer(baselineBin(), []);
  try {
    const url = `ws://127.0.0.1:${peer.port}/`;
    const text = await Client.connect(url);
    text.send('{"t":"join","room":"r1"}');
    assert.equal(await text.closeCode(), 1003);
    const malformed = await Client.connect(url);
    malformed.send(Buffer.from([0x01, 0x05, 0x72]));
    assert.equal(await malformed.closeCode(), 1008);
  } finally {
    await peer.stop();
  }
});

test("rust baseline: a member that stops reading is dropped, the others get everything", async () => {
  const peer = await startPeer(baselineBin(), [], { BASELINE_QUEUE_FRAMES: "16" });
  try {
    const url = `ws://127.0.0.1:${peer.port}/`;
    const clients = await Promise.all([url, url, url].map((u) => Client.connect(u)));
    const [stalled, reader, publisher] = clients;
    for (const client of [stalled, reader]) {
      client.send(baselineMessage(JOIN, "r1"));
      await client.next();
    }
    stalled.ws.pause(); // reads nothing more: the kernel's buffers fill, then its outbox
    // 32 MiB, far more than socket buffers and outbox hold, in steps the reader keeps up
    // with (it has every message of a step before the next is sent).
    const pub = baselineMessage(PUB, "r1", Buffer.alloc(256 * 1024, 0x62));
    for (let step = 0; step < 32; step++) {
      for (let i = 0; i < 4; i++) publisher.send(pub);
      for (let i = 0; i < 4; i++) assert.equal((await reader.next()).length, pub.length);
    }
    stalled.ws.resume();
    // Dropped without a close frame: the writer may have been in the middle of a frame.
    assert.equal(await stalled.closeCode(), 1006);
    for (const client of [reader, publisher]) client.close();
  } finally {
    await peer.stop();
  }
});
