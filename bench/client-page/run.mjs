// The client page benchmark (issue 13): chorus-client, socket.io-client and a raw WebSocket
// speaking the Chorus wire, side by side on the same blank page in headless Chromium, with
// the browser's WebSocket alone (counting frames) as the ceiling. README.md beside this file
// says what is measured and how.
//
//   node bench/client-page/run.mjs [--quick] [--runs 3] [--messages 20000] [--loads 15]
//        [--clients "chorus-client socket.io-client raw-websocket websocket-only"]
//        [--server-bin PATH] [--logs DIR] [--profile DIR]
//
// Prints one JSON line per result to stdout (bench/run.sh appends them to results.jsonl,
// which `chorus-bench render` turns into the "Browser client" section of BENCHMARKS.md) and
// a summary table to stderr. --profile DIR instead runs one flood per client under the CPU
// profiler, writes DIR/<client>.cpuprofile (open it in Chromium's DevTools) and prints where
// the main thread's time went (by kind of code, then by function); it prints no results,
// the profiler slowing the page.
//
// Needs the built package (bash scripts/build-client.sh), a chorus-server binary
// (--server-bin, else $CHORUS_SERVER_BIN, else the release build under $CARGO_TARGET_DIR or
// target/) and Chromium (scripts/setup.sh).

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, createWriteStream, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { loadavg } from "node:os";
import { join, resolve, extname } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import WebSocket from "ws";

import { launchBrowser } from "../../tests/support/browser.mjs";
import { freePort, root } from "../../tests/support/server.mjs";

const CLIENTS = ["chorus-client", "socket.io-client", "raw-websocket", "websocket-only"];
// Not a client (page.js): the browser's WebSocket counting frames. It floods only.
const NO_STARTUP = new Set(["websocket-only"]);
const BODY_BYTES = 64;

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    messages: { type: "string" },
    loads: { type: "string" },
    clients: { type: "string", default: CLIENTS.join(" ") },
    "server-bin": { type: "string" },
    logs: { type: "string" },
    profile: { type: "string" },
  },
});
const quick = flags.quick;
const profileDir = flags.profile && resolve(flags.profile);
const runs = profileDir ? 1 : Number(flags.runs ?? (quick ? 1 : 3));
const messages = Number(flags.messages ?? (quick ? 200 : 20_000));
const loads = profileDir ? 0 : Number(flags.loads ?? (quick ? 1 : 15));
const clients = flags.clients.split(/[\s,]+/).filter(Boolean);
for (const kind of clients) {
  if (!CLIENTS.includes(kind)) usage(`unknown client ${kind} (known: ${CLIENTS.join(", ")})`);
}
if (!(runs >= 1 && messages >= 2 && loads >= 0)) usage("--runs ≥ 1, --messages ≥ 2, --loads ≥ 0");

const targetDir = resolve(root, process.env.CARGO_TARGET_DIR ?? "target");
const serverBin = resolve(
  flags["server-bin"] ?? process.env.CHORUS_SERVER_BIN ?? join(targetDir, "release", "chorus-server"),
);
const logs = resolve(flags.logs ?? join(targetDir, "bench", "client-page"));
const pkg = join(root, "client-wasm", "pkg");
const sioDist = join(root, "node_modules", "socket.io-client", "dist");
const pageDir = join(root, "bench", "client-page");

function usage(message) {
  console.error(`client-page: ${message}`);
  process.exit(2);
}

function say(message) {
  console.error(`[client-page] ${message}`);
}

for (const [file, fix] of [
  [join(pkg, "index.js"), "bash scripts/build-client.sh"],
  [join(pkg, "chorus_client_bg.wasm"), "bash scripts/build-client.sh"],
  [serverBin, "cargo build --release -p chorus-server"],
  [join(sioDist, "socket.io.esm.min.js"), "npm ci"],
]) {
  if (!existsSync(file)) usage(`${file} is missing: run ${fix}`);
}
mkdirSync(logs, { recursive: true });

/** Rejects after `ms` with what was awaited: a guard against a hang, never a wait. */
function within(promise, ms, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`client-page: ${what} took over ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

// The servers go when this process goes, however it ends (a failed start included).
const children = [];
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
});

/** Spawn `command`, log its output, resolve with the child once a stdout line matches. */
function startProcess(name, command, args, ready) {
  const log = createWriteStream(join(logs, `${name}.log`));
  const child = spawn(command, args, {
    cwd: root,
    // chorus-server says it listens at level info; the rest of info is per connection.
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn,chorus_server::cli=info", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  child.stderr.pipe(log);
  return within(
    new Promise((resolveStart, reject) => {
      child.on("error", reject);
      child.on("exit", (code, signal) =>
        reject(new Error(`${name} exited before listening (${code ?? signal}); see ${name}.log`)),
      );
      createInterface({ input: child.stdout }).on("line", (line) => {
        log.write(line + "\n");
        const match = ready(line);
        if (match) resolveStart({ child, port: match });
      });
    }),
    30_000,
    `starting ${name}`,
  );
}

async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((done) => child.on("exit", done));
  child.kill("SIGTERM");
  await within(exited, 15_000, "a process exiting").catch(() => child.kill("SIGKILL"));
}

// --- Servers ----------------------------------------------------------------------------

const ROOM = "bench:page";
// As in bench/run.sh: the bench namespace has no presence or typing (the peers have
// neither) and no publish rate limit, so the publisher below runs at full speed. The
// outbound queue may hold a whole flood: a page cannot read 20,000 messages as fast as
// they are published, and with the default limits (1024 frames, 4 MiB) the server drops it
// as a slow consumer; the Socket.IO peer buffers without bound.
writeFileSync(join(logs, "chorus.toml"), "[namespaces.bench]\npresence = false\ntyping = false\n");
const chorusPort = await freePort();
const chorus = await startProcess(
  "chorus-server",
  serverBin,
  [
    "serve",
    "--dev",
    "--bind",
    `127.0.0.1:${chorusPort}`,
    "--config",
    join(logs, "chorus.toml"),
    "--publish-rate",
    "1000000",
    "--publish-burst",
    "1000000",
    "--queue-max-messages",
    String(Math.max(1024, 2 * messages)),
    "--queue-max-bytes",
    String(Math.max(4 << 20, 256 * messages)),
  ],
  (line) => line.includes("chorus-server listening on") && chorusPort,
);
const socketio = await startProcess(
  "socketio-server",
  process.execPath,
  [join(root, "bench", "peers", "socketio", "server.mjs"), "0"],
  (line) => Number(line.match(/^LISTENING (\d+)$/)?.[1]),
);
const chorusUrl = `ws://127.0.0.1:${chorusPort}/ws`;
const sioUrl = `http://127.0.0.1:${socketio.port}`;

async function token(user) {
  const response = await fetch(`http://127.0.0.1:${chorusPort}/api/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  if (!response.ok) throw new Error(`POST /api/dev/token: HTTP ${response.status}`);
  return (await response.json()).token;
}

// The page, the package and socket.io-client's browser build, from one origin, read once
// here: a package rebuilt during the run changes nothing. Every answer says no-store; the
// cold loads also disable the cache through CDP.
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
};
const FILES = new Map(
  [
    ["/", join(pageDir, "index.html")],
    ["/page/page.js", join(pageDir, "page.js")],
    ["/page/raw.js", join(pageDir, "raw.js")],
    ["/pkg/index.js", join(pkg, "index.js")],
    ["/pkg/chorus_client_bg.wasm", join(pkg, "chorus_client_bg.wasm")],
    ["/pkg/package.json", join(pkg, "package.json")],
    ["/sio/socket.io.esm.min.js", join(sioDist, "socket.io.esm.min.js")],
  ].map(([path, file]) => [path, { file, body: readFileSync(file) }]),
);
const http = createServer((request, response) => {
  const served = FILES.get(new URL(request.url, "http://x").pathname);
  if (!served) return response.writeHead(404).end();
  response.writeHead(200, {
    "content-type": TYPES[extname(served.file)],
    "cache-control": "no-store",
  });
  response.end(served.body);
});
await new Promise((done) => http.listen(0, "127.0.0.1", done));
const pageUrl = `http://127.0.0.1:${http.address().port}/`;

// --- Publishers: what makes each server push a room's messages at full speed -------------

/** The 64-byte body of message `i`: its number, padded. */
const body = (i) => `m${String(i).padStart(9, "0")}`.padEnd(BODY_BYTES, ".");

function leb(out, value) {
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function postcardString(out, text) {
  const bytes = Buffer.from(text);
  leb(out, bytes.length);
  out.push(...bytes);
}

/** Opens a `ws` socket and resolves once it is open. */
function openSocket(url, protocols) {
  const socket = new WebSocket(url, protocols, { perMessageDeflate: false });
  return within(
    new Promise((done, reject) => {
      socket.once("open", () => done(socket));
      socket.once("error", reject);
    }),
    10_000,
    `opening ${url}`,
  );
}

/**
 * A Chorus member of the room that publishes over its own WebSocket (the protocol wants a
 * publisher to be a member): every publish is written at once, the server acks each and
 * delivers it to every member. Ids grow across floods, so none is taken for a resend.
 */
async function chorusPublisher() {
  const socket = await openSocket(`${chorusUrl}?token=${await token("publisher")}`, ["chorus.v1"]);
  let nextId = 1;
  let waiter;
  let acked = 0;
  let failure;
  socket.on("message", (data) => {
    const tag = data[0];
    if (tag === 4) acked++; // PublishAck
    else if (tag === 9) failure ??= new Error(`chorus publisher: server error, frame ${data.toString("hex")}`);
    else if (tag === 1) waiter?.(); // Joined
    else if (tag === 10) failure ??= new Error("chorus publisher: disconnected by the server");
    if (tag === 4 || failure) waiter?.();
  });
  const join = [0];
  postcardString(join, ROOM);
  join.push(0);
  await within(
    new Promise((done) => {
      waiter = done;
      socket.send(Buffer.from(join));
    }),
    10_000,
    "the publisher's join",
  );
  // The server closes a connection silent for its heartbeat timeout (60 s): ping meanwhile.
  let nonce = 0;
  const heartbeat = setInterval(() => {
    const ping = [5];
    leb(ping, ++nonce);
    socket.send(Buffer.from(ping));
  }, 20_000);
  heartbeat.unref();
  const prefix = [2];
  postcardString(prefix, ROOM);
  return {
    async publish(n) {
      const frames = [];
      for (let i = 0; i < n; i++) {
        const frame = [...prefix];
        leb(frame, nextId++);
        frame.push(0); // Body::Text
        postcardString(frame, body(i));
        frames.push(Buffer.from(frame));
      }
      acked = 0;
      const start = Date.now();
      for (const frame of frames) socket.send(frame);
      const written = Date.now();
      await new Promise((done) => {
        waiter = () => (acked === n || failure) && done();
        waiter();
      });
      if (failure) throw failure;
      return { start, written };
    },
    close: () => {
      clearInterval(heartbeat);
      socket.close();
    },
  };
}

/**
 * A Socket.IO client outside the room that sends `pub` events: the peer server broadcasts
 * each to the room (`io.to(room).emit`). Raw Engine.IO frames over `ws`, as in
 * bench/peers/smoke.test.mjs.
 */
async function socketioPublisher() {
  const socket = new WebSocket(
    `ws://127.0.0.1:${socketio.port}/socket.io/?EIO=4&transport=websocket`,
    { perMessageDeflate: false },
  );
  // Listening from the start: the open packet may come with the upgrade's answer.
  await within(
    new Promise((done, reject) => {
      socket.once("error", reject);
      socket.on("message", (data) => {
        const frame = data.toString();
        if (frame === "2") socket.send("3");
        else if (frame.startsWith("0{")) socket.send("40");
        else if (frame.startsWith("40")) done();
      });
    }),
    10_000,
    "the Socket.IO publisher's connect",
  );
  return {
    async publish(n) {
      const frames = [];
      for (let i = 0; i < n; i++) frames.push(`42${JSON.stringify(["pub", { room: ROOM, body: body(i) }])}`);
      const start = Date.now();
      for (const frame of frames) socket.send(frame);
      return { start, written: Date.now() };
    },
    close: () => socket.close(),
  };
}

const publishers = { chorus: await chorusPublisher(), socketio: await socketioPublisher() };
const publisherOf = (kind) => (kind === "socket.io-client" ? publishers.socketio : publishers.chorus);

// --- The browser --------------------------------------------------------------------------

const { browser, close: closeBrowser } = await launchBrowser();
const chromium = browser.version();
let users = 0;

/** A fresh context (its own cache, storage and renderer) on the blank page. */
async function freshPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(error.message));
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.bench !== undefined);
  const config = { chorusUrl, token: await token(`page-${++users}`), sioUrl };
  return { context, page, cdp, config, problems };
}

/** Open client `kind` on a cold page; resolves with the import-to-open ms and its phases. */
async function startup(kind) {
  const { context, page, config } = await freshPage();
  try {
    return await within(
      page.evaluate(([kind, config]) => window.bench.open(kind, config), [kind, config]),
      30_000,
      `${kind}: startup`,
    );
  } finally {
    await context.close();
  }
}

/** JS heap (used), Blink's heap and ArrayBuffer backing stores, after a full GC. */
async function heap(cdp) {
  await cdp.send("HeapProfiler.collectGarbage");
  const usage = await cdp.send("Runtime.getHeapUsage");
  return { js: usage.usedSize, embedder: usage.embedderHeapUsedSize, backing: usage.backingStorageSize };
}

/** Main-thread time so far (CPU time: the thread's ticks), in ms. */
async function mainThread(cdp) {
  const { metrics } = await cdp.send("Performance.getMetrics");
  const get = (name) => metrics.find((m) => m.name === name)?.value * 1000;
  return { script: get("ScriptDuration"), task: get("TaskDuration") };
}

/** Join the room with client `kind` and receive `messages` pushed at full speed. */
async function flood(kind, run) {
  const { context, page, cdp, config, problems } = await freshPage();
  try {
    await cdp.send("HeapProfiler.enable");
    await cdp.send("Performance.enable", { timeDomain: "threadTicks" });
    const blank = await heap(cdp);
    await within(
      page.evaluate(([kind, config]) => window.bench.open(kind, config), [
        kind,
        { ...config, watchWasm: true },
      ]),
      30_000,
      `${kind}: connecting`,
    );
    await within(page.evaluate((room) => window.bench.join(room), ROOM), 30_000, `${kind}: joining`);
    const joined = await heap(cdp);
    const wasmBytes = await page.evaluate(() => window.bench.wasmBytes());
    await page.evaluate((n) => window.bench.expect(n), messages);

    if (profileDir) {
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
      await cdp.send("Profiler.start");
    }
    const before = await mainThread(cdp);
    const sent = await publisherOf(kind).publish(messages);
    const got = await within(
      page.evaluate(() => window.bench.done()),
      60_000 + messages,
      `${kind}: receiving ${messages} messages`,
    );
    const after = await mainThread(cdp);
    if (profileDir) {
      const { profile } = await cdp.send("Profiler.stop");
      writeFileSync(join(profileDir, `${kind}.cpuprofile`), JSON.stringify(profile));
      summarize(kind, profile);
    }
    if (got.count !== messages) throw new Error(`${kind}: ${got.count} of ${messages} messages`);
    if (got.chars !== messages * BODY_BYTES) throw new Error(`${kind}: bodies of the wrong size`);
    if (problems.length) throw new Error(`${kind}: page errors: ${problems.join("; ")}`);
    const perThousand = (ms) => round((ms / messages) * 1000, 2);
    return {
      messages_per_second: Math.round(((messages - 1) * 1000) / (got.last - got.first)),
      script_ms_per_1000: perThousand(after.script - before.script),
      task_ms_per_1000: perThousand(after.task - before.task),
      // The main thread's CPU time over the flood's wall time: well below 100 %, the page is
      // waiting for the browser (its network service, the IPC to the renderer) or the server.
      main_thread_busy_percent: Math.round((100 * (after.task - before.task)) / (got.last - got.first)),
      heap_joined_kib: kib(joined.js - blank.js),
      embedder_joined_kib: kib(joined.embedder - blank.embedder),
      array_buffers_joined_kib: kib(joined.backing - blank.backing),
      wasm_memory_kib: kib(wasmBytes),
      // How the publisher kept up: when its last frame was written, and the last arrival.
      publish_write_ms: sent.written - sent.start,
      last_arrival_ms: Math.round(got.last - sent.start),
    };
  } finally {
    await context.close();
  }
}

const round = (value, digits) => Math.round(value * 10 ** digits) / 10 ** digits;
const kib = (bytes) => round(bytes / 1024, 1);

/**
 * Print where a CPU profile's busy time went: by kind of code, then the functions with the
 * most self time and the most inclusive time (each function counted once per sample).
 */
function summarize(kind, profile) {
  const { samples, timeDeltas, nodes } = profile;
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  // A sample stands for the time until the next one.
  const perNode = new Map();
  for (let i = 0; i < samples.length; i++) {
    perNode.set(samples[i], (perNode.get(samples[i]) ?? 0) + (timeDeltas[i + 1] ?? 0));
  }
  const label = ({ functionName, url, lineNumber, columnNumber }) => {
    const where = url ? ` ${url.replace(pageUrl, "/")}:${lineNumber + 1}:${columnNumber + 1}` : "";
    return (functionName || "(anonymous)") + where;
  };
  const category = ({ functionName, url }) => {
    if (functionName === "(garbage collector)") return "garbage collector";
    if (url.endsWith(".wasm") || /^(wasm-function|js-to-wasm|wasm-to-js)/.test(functionName)) {
      return "wasm, and calls between JS and wasm";
    }
    if (url.includes("/pkg/")) return "chorus-client JS (index.js)";
    if (url.includes("/sio/")) return "socket.io-client JS";
    if (url.includes("/page/")) return "page JS (raw.js, the handler)";
    return "built-ins without source (TextDecoder, JSON.parse, event.data...)";
  };
  const outside = new Set(["(root)", "(idle)", "(program)"]);
  const self = new Map();
  const inclusive = new Map();
  const kinds = new Map();
  const add = (map, key, micros) => map.set(key, (map.get(key) ?? 0) + micros);
  let busy = 0;
  for (const [id, micros] of perNode) {
    const frame = byId.get(id).callFrame;
    if (outside.has(frame.functionName)) continue;
    busy += micros;
    add(self, label(frame), micros);
    add(kinds, category(frame), micros);
    const seen = new Set();
    for (let node = id; node !== undefined; node = parent.get(node)) {
      const name = label(byId.get(node).callFrame);
      if (outside.has(byId.get(node).callFrame.functionName) || seen.has(name)) continue;
      seen.add(name);
      add(inclusive, name, micros);
    }
  }
  const print = (map, count) => {
    for (const [key, micros] of [...map].sort((a, b) => b[1] - a[1]).slice(0, count)) {
      const share = String(round((micros / busy) * 100, 1)).padStart(5);
      console.error(`  ${share} %  ${String(round(micros / 1000, 1)).padStart(6)} ms  ${key}`);
    }
  };
  say(`${kind}: ${round(busy / 1000, 1)} ms busy on the main thread (profiler on); by kind of code:`);
  print(kinds, 10);
  say(`${kind}: most self time:`);
  print(self, 20);
  say(`${kind}: most inclusive time:`);
  print(inclusive, 12);
}

// --- The run ------------------------------------------------------------------------------

const started = Date.now();
const size = (paths) => {
  const bytes = paths.map((path) => FILES.get(path).body);
  return {
    bytes: bytes.reduce((sum, b) => sum + b.length, 0),
    gzip_bytes: bytes.reduce((sum, b) => sum + gzipSync(b, { level: 9 }).length, 0),
  };
};
const sizes = {
  "chorus-client": size(["/pkg/index.js", "/pkg/chorus_client_bg.wasm"]),
  "socket.io-client": size(["/sio/socket.io.esm.min.js"]),
  "raw-websocket": size(["/page/raw.js"]),
};
sizes["websocket-only"] = sizes["raw-websocket"];
const versions = {
  "chorus-client": JSON.parse(FILES.get("/pkg/package.json").body).version,
  "socket.io-client": JSON.parse(readFileSync(join(sioDist, "..", "package.json"), "utf8")).version,
  "raw-websocket": "bench/client-page/raw.js",
  "websocket-only": "the browser's WebSocket",
};
// When, and how busy the machine was: its other work competes with the page for the CPUs.
const date = new Date().toISOString().replace(/T(\d\d:\d\d).*/, " $1 UTC");
const loadAverage = round(loadavg()[0], 2);
const lines = [];
const emit = (workload, kind, params, results) => {
  const line = {
    workload,
    protocol: kind,
    quick,
    params: { ...params, chromium, client: versions[kind], date, load_average: loadAverage },
    results,
  };
  lines.push(line);
  console.log(JSON.stringify(line));
};

let status = 0;
try {
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  if (loads > 0) {
    // One load of each first, not counted: the browser's own first-use costs. Then the
    // clients take turns, so a change in the machine's load touches all three alike.
    const starting = clients.filter((kind) => !NO_STARTUP.has(kind));
    for (const kind of starting) await startup(kind);
    const samples = Object.fromEntries(starting.map((kind) => [kind, []]));
    for (let i = 0; i < loads; i++) {
      for (const kind of starting) samples[kind].push(await startup(kind));
    }
    for (const kind of starting) {
      const phase = (key) => samples[kind].map((sample) => round(sample[key], 1));
      const sorted = phase("total").sort((a, b) => a - b);
      const med = (key) => median(phase(key).sort((a, b) => a - b));
      emit("client-page-startup", kind, { loads, ...sizes[kind] }, {
        median_ms: median(sorted),
        min_ms: sorted[0],
        max_ms: sorted.at(-1),
        samples_ms: phase("total"),
        // The phases' own medians (they need not add up to the total's).
        import_median_ms: med("import"),
        wasm_median_ms: med("wasm"),
        connect_median_ms: med("connect"),
      });
    }
  }
  for (let run = 1; run <= runs; run++) {
    for (const kind of clients) {
      const results = await flood(kind, run);
      if (!profileDir) emit("client-page-flood", kind, { messages, body: BODY_BYTES, run }, results);
    }
  }
  if (!profileDir) table();
  say(`done in ${Math.round((Date.now() - started) / 1000)} s`);
} catch (error) {
  console.error(error);
  status = 1;
} finally {
  await closeBrowser();
  publishers.chorus.close();
  publishers.socketio.close();
  http.close();
  await Promise.all([stopProcess(chorus.child), stopProcess(socketio.child)]);
}
process.exit(status);

function median(sorted) {
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : round((sorted[mid - 1] + sorted[mid]) / 2, 2);
}

function table() {
  const of = (workload, kind) => lines.filter((l) => l.workload === workload && l.protocol === kind);
  const med = (values) => median([...values].sort((a, b) => a - b));
  const columns = [
    ["msgs/s", "messages_per_second"],
    ["main thread busy %", "main_thread_busy_percent"],
    ["script ms / 1000 msgs", "script_ms_per_1000"],
    ["task ms / 1000 msgs", "task_ms_per_1000"],
    ["JS heap joined KiB", "heap_joined_kib"],
    ["wasm memory KiB", "wasm_memory_kib"],
  ];
  console.error(`\n| Client | Startup ms (median of ${loads}) | ${columns.map(([title]) => title).join(" | ")} |`);
  console.error(`|${" --- |".repeat(columns.length + 2)}`);
  for (const kind of clients) {
    const start = of("client-page-startup", kind)[0]?.results.median_ms ?? "n/a";
    const floods = of("client-page-flood", kind).map((l) => l.results);
    const cells = columns.map(([, key]) => {
      const values = floods.map((r) => r[key]);
      return `${med(values)} (${values.join(", ")})`;
    });
    console.error(`| ${kind} | ${start} | ${cells.join(" | ")} |`);
  }
}
