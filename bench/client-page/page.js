// The measuring page of bench/client-page: loaded blank, then run.mjs asks it (through
// `window.bench`) to import one client, connect, join a room and count that room's
// messages. The clients get the same page and the same handler; only their import,
// connection and message event differ.

/** Where the messages go: a counter and the first and last arrival times. */
const sink = {
  count: 0,
  chars: 0,
  target: Infinity,
  first: 0,
  last: 0,
  error: undefined,
  done: undefined,
  settle: undefined,
};

/** The app's handler: every client calls it with the message's body (a string). */
function deliver(body) {
  const count = ++sink.count;
  sink.chars += body.length;
  if (count === 1) sink.first = performance.now();
  if (count === sink.target) {
    sink.last = performance.now();
    sink.settle?.();
  }
}

function fail(error) {
  sink.error ??= error;
  sink.settle?.();
}

/** Each client: import, connect; resolves once open, with when it opened and how to join. */
const clients = {
  async "chorus-client"(config) {
    const { connect } = await import("/pkg/index.js");
    const imported = performance.now();
    // connect() loads the wasm while the first socket opens: its load is in the connect
    // phase, not a phase of its own.
    const connecting = imported;
    const client = await connect(config.chorusUrl, { token: config.token });
    // A failed attempt or a lost connection fails the measurement (no silent reconnect).
    const openedAt = await new Promise((resolve, reject) => {
      client.once("open", () => resolve(performance.now()));
      client.on("reconnecting", ({ reason }) => {
        const error = new Error(`chorus-client: connection lost (${reason.code} ${reason.text})`);
        reject(error);
        fail(error);
      });
    });
    return {
      imported,
      connecting,
      openedAt,
      async join(room) {
        const handle = client.room(room);
        handle.on("message", (message) => deliver(message.data));
        handle.on("error", fail);
        await handle.join();
      },
    };
  },

  async "socket.io-client"(config) {
    const { io } = await import("/sio/socket.io.esm.min.js");
    const imported = performance.now();
    // The peer server allows the WebSocket transport only (no long-polling first).
    const socket = io(config.sioUrl, { transports: ["websocket"], reconnection: false });
    const openedAt = await new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(performance.now()));
      socket.once("connect_error", reject);
    });
    socket.on("disconnect", (reason) => fail(new Error(`socket.io-client disconnected: ${reason}`)));
    return {
      imported,
      connecting: imported,
      openedAt,
      async join(room) {
        socket.on("msg", (message) => deliver(message.body));
        await new Promise((resolve) => {
          socket.once("joined", resolve);
          socket.emit("join", room);
        });
      },
    };
  },

  async "raw-websocket"(config) {
    const { RawChorus } = await import("/page/raw.js");
    const imported = performance.now();
    const raw = new RawChorus(config.chorusUrl, config.token, (message) => deliver(message.body));
    await raw.opened;
    const openedAt = performance.now();
    raw.socket.addEventListener("close", (event) => fail(new Error(`raw: closed (${event.code})`)));
    return { imported, connecting: imported, openedAt, join: (room) => raw.join(room) };
  },

  // Not a client: the browser's WebSocket and nothing else, the ceiling of the other three.
  // Connected and joined as raw-websocket, then each Message frame is counted as a message
  // of 64 B without decoding anything.
  async "websocket-only"(config) {
    const { RawChorus } = await import("/page/raw.js");
    const raw = new RawChorus(config.chorusUrl, config.token, () => {});
    await raw.opened;
    const openedAt = performance.now();
    raw.socket.addEventListener("close", (event) => fail(new Error(`raw: closed (${event.code})`)));
    const body = "x".repeat(64);
    return {
      openedAt,
      async join(room) {
        await raw.join(room);
        raw.socket.onmessage = (event) => {
          if (new Uint8Array(event.data)[0] === 3) deliver(body);
        };
      },
    };
  },
};

let current;

/**
 * WebAssembly memories the page instantiates: CDP's heap figures count neither the wasm
 * linear memory nor its stack, so the flood runs note them here (not the startup loads,
 * whose timing should see the runtime as it is).
 */
const memories = [];
function watchWasm() {
  for (const name of ["instantiate", "instantiateStreaming"]) {
    const original = WebAssembly[name];
    WebAssembly[name] = async (...args) => {
      const result = await original.apply(WebAssembly, args);
      const exports = (result.instance ?? result).exports;
      for (const value of Object.values(exports)) {
        if (value instanceof WebAssembly.Memory) memories.push(value);
      }
      return result;
    };
  }
}

window.bench = {
  /**
   * Import client `kind` and connect it; resolves with the milliseconds from the start of
   * the import to the first open (the server's welcome), module fetch and compile included
   * (`total`), and its phases: the import itself, loading the wasm (0 for every client
   * now: chorus-client's `connect()` loads it while its socket opens), and from creating the
   * client to its open.
   */
  async open(kind, config) {
    if (config.watchWasm) watchWasm();
    const start = performance.now();
    current = await clients[kind](config);
    const { imported, connecting, openedAt } = current;
    return {
      total: openedAt - start,
      import: imported - start,
      wasm: connecting - imported,
      connect: openedAt - connecting,
    };
  },

  /** Join `room`; resolves once the server confirmed. */
  join(room) {
    return current.join(room);
  },

  /** Bytes of WebAssembly linear memory the client instantiated. */
  wasmBytes() {
    return memories.reduce((sum, memory) => sum + memory.buffer.byteLength, 0);
  },

  /** Count the next `n` messages from zero. */
  expect(n) {
    Object.assign(sink, { count: 0, chars: 0, target: n, first: 0, last: 0, error: undefined });
    sink.done = new Promise((resolve) => (sink.settle = resolve));
  },

  /** Resolves once the `n` messages arrived (or the client failed). */
  async done() {
    await sink.done;
    if (sink.error) throw sink.error;
    return {
      count: sink.count,
      chars: sink.chars,
      // Arrival times on the machine's clock, in ms since the Unix epoch.
      first: performance.timeOrigin + sink.first,
      last: performance.timeOrigin + sink.last,
    };
  },
};
