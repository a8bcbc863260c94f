// The client: a thin shell around the engine. It moves socket, timer, network and app events
// into the engine and carries out the records it drains: every decision (backoff,
// heartbeat, rejoin and resume, the queue and its pacing, typing, dedupe) is the engine's.

import { Engine } from "./chorus_client.js";
import { Emitter, report } from "./emitter.js";
import { ChorusError, ErrorCode } from "./errors.js";
import { Room, type RoomOptions, type Recovery } from "./room.js";
import { init, memoryBytes, wasmMemory } from "./wasm.js";
import * as Op from "./ops.js";
import * as Tag from "./tags.js";
import { Reader, text } from "./wire.js";

/** Where the connection is. */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

/** Why a state changed: a WebSocket close code (1000-4999) or an error code, and its text. */
export interface Reason {
  code: number;
  text: string;
}

/** A WebSocket class: the runtime's own by default; in Node 20, `WebSocket` from `ws`. */
export type WebSocketConstructor = new (url: string, protocols: string[]) => object;

/** How to connect. At least one of `token` and `getToken` is required. */
export interface ClientOptions {
  /** The token (a JWT) to connect with first. */
  token?: string;
  /**
   * Called for a token when there is none yet, and whenever the server refuses or expires
   * the current one. A rejection is reported as an `error` event (TokenUnavailable).
   */
  getToken?: () => Promise<string>;
  /** The WebSocket implementation. Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /**
   * Give up after this many connection attempts in a row fail: the client closes with
   * AttemptsExhausted. Default: never.
   */
  maxReconnectAttempts?: number;
  /** First reconnect delay bound, in ms. Default: 500. */
  initialBackoffMs?: number;
  /** Largest reconnect delay bound, in ms. Default: 30000. */
  maxBackoffMs?: number;
  /** A connection open this long resets the backoff, in ms. Default: 10000. */
  stableAfterMs?: number;
  /** The socket must open and the server's welcome arrive within this, in ms. Default: 10000. */
  connectTimeoutMs?: number;
  /**
   * Most silence tolerated past a heartbeat interval before the connection counts as dead,
   * in ms; the server's own heartbeat timeout shortens it. Default: 10000.
   */
  pongTimeoutMs?: number;
  /** A publish not acknowledged within this fails with TimedOut, in ms. Default: 15000. */
  publishTimeoutMs?: number;
  /** A history request not answered within this fails with TimedOut, in ms. Default: 15000. */
  requestTimeoutMs?: number;
  /** Most publishes waiting (queued offline or awaiting their ack). Default: 256. */
  queueMaxMessages?: number;
  /** Most body bytes waiting. Default: 1048576 (1 MiB). */
  queueMaxBytes?: number;
  /** "Typing stopped" is sent after this long without a keystroke, in ms. Default: 3000. */
  typingIdleMs?: number;
}

/** Every event a Client emits, by name. */
export interface ClientEvents {
  /** Every change of `state`, with why. */
  state: { state: ClientState; previous: ClientState; reason: Reason };
  /** The server welcomed a connection (the first, or one after a reconnect). */
  open: { session: string; user: string };
  /** The connection was lost or an attempt failed; the next one comes after `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; reason: Reason };
  /** Closed for good: by `close()`, or a failure that retrying cannot fix. */
  close: Reason;
  /** A failure no Promise reports and no room owns: the token refused, getToken failed... */
  error: ChorusError;
}

/** A socket as the client uses it: the DOM's WebSocket, or one that behaves like it. */
interface Socket {
  binaryType: string;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown; timeStamp?: number }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: (() => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A pending publish or history request. */
interface Pending {
  resolve(value: never): void;
  reject(error: ChorusError): void;
  room: Room<unknown>;
}

const STATES: ClientState[] = ["connecting", "open", "reconnecting", "closed"];
const RECOVERY: Recovery[] = ["not_requested", "recovered", "missed"];
const now = () => performance.now();
const NONE: Uint8Array = new Uint8Array(0);

/** A seed for the engine's jitter and ids: two tabs opened at once must not pick alike. */
function randomSeed(): number {
  const [high, low] = crypto.getRandomValues(new Uint32Array(2));
  return (high & 0x1fffff) * 2 ** 32 + low;
}

/** The server's WebSocket URL and its HTTP twin, from what the app passed. */
function endpoints(url: string): [socket: string, http: string] {
  let parsed: URL;
  try {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    parsed = new URL(url, base);
  } catch {
    throw new ChorusError(ErrorCode.InvalidArgument, `"${url}" is not a valid URL`);
  }
  const secure = { "wss:": true, "https:": true, "ws:": false, "http:": false }[parsed.protocol];
  if (secure === undefined) {
    throw new ChorusError(
      ErrorCode.InvalidArgument,
      `"${url}" must start with ws://, wss://, http:// or https://`,
    );
  }
  parsed.hash = "";
  parsed.protocol = secure ? "wss:" : "ws:";
  const socket = parsed.href;
  parsed.protocol = secure ? "https:" : "http:";
  return [socket, parsed.href];
}

function number(options: ClientOptions, key: keyof ClientOptions): number {
  const value = options[key];
  if (value === undefined) return NaN;
  if (typeof value !== "number" || !(value >= 0)) {
    throw new ChorusError(ErrorCode.InvalidArgument, `${key} must be a number, 0 or more`);
  }
  return value;
}

/** A socket opened while the module loads (see `openEarly`), for the client to adopt. */
interface Early {
  socket: Socket;
  token: string;
  /** What it heard meanwhile, to hand to the handlers of the client that adopts it. */
  heard: ((socket: Socket) => void)[];
}

type SocketClass = new (url: string, protocols: string[]) => Socket;

/** The WebSocket class to use: the app's, or the runtime's; `undefined` when neither. */
const socketClass = (options?: ClientOptions) =>
  (options?.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket) as
    | SocketClass
    | undefined;

/** The early socket the next `new Client` adopts (set by `connect` around that call). */
let adopting: Early | undefined;

/**
 * Open the socket the client's first attempt would open, at once: `connect` then loads the
 * module while the handshake is under way, instead of one after the other. Only with a
 * token (a `getToken` client asks for one first) and a WebSocket; never throws.
 */
function openEarly(url: string, options: ClientOptions): Early | undefined {
  const Socket = socketClass(options);
  const token = options?.token;
  if (typeof Socket !== "function" || typeof token !== "string" || token === "") return undefined;
  try {
    const socket = new Socket(endpoints(url)[0], ["chorus.v1", "chorus.auth." + token]);
    socket.binaryType = "arraybuffer";
    const heard: Early["heard"] = [];
    socket.onopen = () => heard.push((s) => s.onopen?.());
    socket.onmessage = (event) => heard.push((s) => s.onmessage?.(event));
    socket.onclose = (event) => heard.push((s) => s.onclose?.(event));
    socket.onerror = () => heard.push((s) => s.onerror?.());
    return { socket, token, heard };
  } catch {
    return undefined;
  }
}

/**
 * `await init()`, then `new Client(url, options)`; the first connection opens while the
 * module loads.
 */
export async function connect(url: string, options: ClientOptions): Promise<Client> {
  const early = openEarly(url, options);
  try {
    await init();
    adopting = early;
    return new Client(url, options);
  } catch (error) {
    early?.socket.close();
    throw error;
  } finally {
    adopting = undefined;
  }
}

/**
 * A connection to a Chorus server, kept up until `close()`: reconnects with backoff, rejoins
 * its rooms and resumes them, and queues publishes while offline.
 *
 * Create it with `new Client(url, options)` once the module is loaded (`await init()`), or
 * with `await connect(url, options)`.
 */
export class Client extends Emitter<ClientEvents> {
  /** @internal */
  readonly engine: Engine;
  readonly #url: string;
  readonly #probeUrl: string;
  readonly #WebSocket: SocketClass;
  readonly #getToken?: () => Promise<string>;
  readonly #rooms = new Map<string, Room<unknown>>();
  readonly #pending = new Map<number, Pending>();
  #socket?: Socket;
  #timer?: ReturnType<typeof setTimeout>;
  #pumping = false;
  readonly #reader = new Reader();
  #early = adopting;
  #again = false;
  #current: ClientState = "connecting";
  #who?: { session: string; user: string };
  #unwake?: () => void;

  /**
   * Connect to `url` (`wss://host/ws`; `ws:`, `http:`, `https:` and a URL relative to the
   * page work too). Throws a ChorusError for a bad URL, options without `token` or
   * `getToken`, no WebSocket implementation (NoWebSocket), or a module not loaded yet.
   */
  constructor(url: string, options: ClientOptions) {
    super();
    wasmMemory();
    if (typeof options !== "object" || options === null) {
      throw new ChorusError(ErrorCode.InvalidArgument, "options must be an object");
    }
    const { token, getToken } = options;
    if (token !== undefined && (typeof token !== "string" || token === "")) {
      throw new ChorusError(ErrorCode.InvalidArgument, "token must be a non-empty string");
    }
    if (getToken !== undefined && typeof getToken !== "function") {
      throw new ChorusError(ErrorCode.InvalidArgument, "getToken must be a function");
    }
    if (token === undefined && getToken === undefined) {
      throw new ChorusError(ErrorCode.InvalidArgument, "options need a token or getToken");
    }
    const Socket = socketClass(options);
    if (typeof Socket !== "function") {
      throw new ChorusError(
        ErrorCode.NoWebSocket,
        "no WebSocket in this runtime: pass one as the WebSocket option (Node 20: the `ws` package's)",
      );
    }
    [this.#url, this.#probeUrl] = endpoints(url);
    this.#WebSocket = Socket;
    this.#getToken = getToken;
    const keys: (keyof ClientOptions)[] = [
      "initialBackoffMs",
      "maxBackoffMs",
      "stableAfterMs",
      "connectTimeoutMs",
      "pongTimeoutMs",
      "publishTimeoutMs",
      "requestTimeoutMs",
      "queueMaxMessages",
      "queueMaxBytes",
      "typingIdleMs",
      "maxReconnectAttempts",
    ];
    const numbers = new Float64Array(keys.map((key) => number(options, key)));
    if (numbers[10] === Infinity) numbers[10] = NaN;
    this.engine = new Engine(new Uint8Array(numbers.buffer), token ?? "", getToken !== undefined, randomSeed());
    this.#listenForWake();
    this.act(Op.Connect);
  }

  /** Where the connection is. */
  get state(): ClientState {
    return this.#current;
  }

  /** The user the server welcomed, once welcomed. */
  get user(): string | undefined {
    return this.#who?.user;
  }

  /** The server's id of the current (or last) connection. */
  get session(): string | undefined {
    return this.#who?.session;
  }

  /** Publishes waiting: queued offline, paced, or awaiting their ack. */
  get pendingPublishes(): number {
    return this.input(Op.Pending);
  }

  /**
   * The handle of room `name`: the same object for the same name. `options.codec` says how
   * payloads are encoded: "raw" (the default: strings and Uint8Arrays as they are), "json",
   * or your own `{ encode, decode }`. Only the first call's options count.
   */
  room<T = unknown>(name: string, options: RoomOptions<T> & { codec: "json" }): Room<T>;
  room<T = string | Uint8Array>(name: string, options?: RoomOptions<T>): Room<T>;
  room<T>(name: string, options?: RoomOptions<T>): Room<T> {
    let room = this.#rooms.get(name);
    if (!room) {
      room = new Room<T>(this, name, options) as Room<unknown>;
      this.#rooms.set(name, room);
    }
    return room as Room<T>;
  }

  /** Connect again now: skip the wait before the next attempt, replace the current connection, or start again after `close()`. */
  reconnect(): void {
    if (this.#current === "closed") this.#listenForWake();
    this.act(Op.Reconnect);
  }

  /**
   * Close for good: pending publishes and requests reject with Closed, the `close` event
   * fires (before this returns; from inside a handler, right after it), nothing follows.
   */
  close(): void {
    this.act(Op.Close);
  }

  /** @internal One input to the engine (see `Op` in engine.rs for what each reads). */
  input(op: number, name = "", bytes: Uint8Array = NONE, x = NaN, y = NaN, z = NaN): number {
    return this.engine.input(op, name, bytes, x, y, z, now());
  }

  /** @internal An input, then what the engine decided on it carried out. */
  act(op: number, name?: string, bytes?: Uint8Array, x?: number): void {
    this.input(op, name, bytes, x);
    this.pump();
  }

  /** @internal The `length` bytes an input left at the engine's output, as text. */
  out(length: number): string {
    const ptr = this.engine.outPtr();
    return text(memoryBytes().subarray(ptr, ptr + length));
  }

  /** @internal A pending publish or history request, settled by its record. */
  track(id: number, pending: Pending): void {
    this.#pending.set(id, pending);
  }

  /** @internal Whether a publish or request with this id is pending. */
  tracks(id: number): boolean {
    return this.#pending.has(id);
  }

  /**
   * @internal Carry out what the engine decided. App code runs in here (handlers, getToken)
   * and may call back in; such a call only queues its work, which the loop already running
   * takes next, so events keep the engine's order.
   */
  pump(length = -1): void {
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    try {
      for (let n = length < 0 ? this.engine.drain() : length; ; n = this.engine.drain()) {
        this.#again = false;
        if (n > 0) {
          const ptr = this.engine.outPtr();
          this.#perform(this.#reader.load(memoryBytes().subarray(ptr, ptr + n)));
        }
        if (!this.#again) break;
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Set the one timer for `at` (ms on `now()`'s clock), or none for -1. */
  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timer =
      at < 0
        ? undefined
        : setTimeout(
            () => {
              this.act(Op.Tick);
            },
            Math.max(0, at - now()),
          );
  }

  #perform(r: Reader): void {
    while (r.more()) {
      const tag = r.u8();
      switch (tag) {
        case Tag.OpenSocket:
          this.#open(r.str());
          break;
        case Tag.Send: {
          // A copy: the reader's buffer is used again, and a socket may keep what it sends.
          const frame = r.bytes().slice();
          try {
            this.#socket?.send(frame);
          } catch {
            // A socket closing under us: its close event follows.
          }
          break;
        }
        case Tag.CloseSocket: {
          const code = r.num();
          const reason = r.str();
          const socket = this.#detach();
          try {
            socket?.close(code, reason);
          } catch {
            // Already closed.
          }
          break;
        }
        case Tag.FetchToken:
          this.#fetchToken();
          break;
        case Tag.Probe:
          this.#probe(r.str());
          break;
        case Tag.Acked: {
          const id = r.num();
          const room = r.str();
          const seq = r.num();
          this.#settle(id)?.resolve({ room, id, seq } as never);
          break;
        }
        case Tag.PublishFailed: {
          const id = r.num();
          const code = r.num();
          const message = r.str();
          const size = r.num();
          const max = r.num();
          const pending = this.#settle(id);
          pending?.reject(new ChorusError(code, message, { room: pending.room.name, id, size, max }));
          break;
        }
        case Tag.History: {
          const request = r.num();
          const name = r.str();
          const position = { epoch: r.num(), seq: r.num() };
          const more = r.u8() === 1;
          const pending = this.#settle(request);
          const room = pending?.room ?? this.#rooms.get(name);
          const messages = [];
          for (let n = r.num(); n > 0; n--) messages.push(r.message(name));
          if (pending && room) {
            try {
              const decoded = messages.map((m) => room.decode(m));
              pending.resolve({ room: name, position, messages: decoded, more } as never);
            } catch (error) {
              pending.reject(error as ChorusError);
            }
          }
          break;
        }
        case Tag.HistoryFailed: {
          const request = r.num();
          const code = r.num();
          const message = r.str();
          const pending = this.#settle(request);
          pending?.reject(new ChorusError(code, message, { room: pending.room.name }));
          break;
        }
        case Tag.Open: {
          const session = r.str();
          const user = r.str();
          this.#who = { session, user };
          this.emit("open", { session, user });
          break;
        }
        case Tag.Close: {
          const code = r.num();
          const text = r.str();
          this.#finish();
          this.emit("close", { code, text });
          break;
        }
        case Tag.Reconnecting: {
          const attempt = r.num();
          const delayMs = r.num();
          const reason = { code: r.num(), text: r.str() };
          this.emit("reconnecting", { attempt, delayMs, reason });
          break;
        }
        case Tag.Joined: {
          const room = this.#rooms.get(r.str());
          const position = { epoch: r.num(), seq: r.num() };
          const recovery = RECOVERY[r.u8()];
          const members = r.list();
          room?.joined(position, members, recovery);
          break;
        }
        case Tag.Left:
          this.#rooms.get(r.str())?.left();
          break;
        case Tag.Message: {
          const name = r.str();
          this.#rooms.get(name)?.message(r.message(name));
          break;
        }
        case Tag.MemberJoined:
        case Tag.MemberLeft: {
          const room = this.#rooms.get(r.str());
          room?.member(r.str(), tag === Tag.MemberJoined);
          break;
        }
        case Tag.Typing: {
          const room = this.#rooms.get(r.str());
          room?.typists(r.list());
          break;
        }
        case Tag.Error: {
          const code = r.num();
          const message = r.str();
          const name = r.str();
          const room = name ? this.#rooms.get(name) : undefined;
          const error = new ChorusError(code, message, name ? { room: name } : {});
          if (room) room.error(error, this.input(Op.Wants, name) === 1);
          else this.emit("error", error);
          break;
        }
        case Tag.Deadline:
          this.#arm(r.num());
          break;
        case Tag.State: {
          const state = STATES[r.u8()];
          const reason = { code: r.num(), text: r.str() };
          const previous = this.#current;
          this.#current = state;
          if (state !== "open") for (const room of this.#rooms.values()) room.disconnected();
          this.emit("state", { state, previous, reason });
          break;
        }
        default:
          // A record this shell does not know means the two halves of the package differ.
          report(new ChorusError(ErrorCode.Internal, `unknown engine record ${tag}`));
          return;
      }
    }
  }

  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    this.#pending.delete(id);
    return pending;
  }

  #open(token: string): void {
    this.#detach()?.close();
    const early = this.#early;
    this.#early = undefined;
    let socket: Socket;
    if (early?.token === token) {
      socket = early.socket;
    } else {
      early?.socket.close();
      try {
        socket = new this.#WebSocket(this.#url, ["chorus.v1", "chorus.auth." + token]);
      } catch {
        // A token the constructor refuses as a subprotocol: the engine handles it as a failed
        // attempt (and asks whether the server refuses the token).
        this.input(Op.SocketClosed, "", NONE, 1006);
        this.#again = true;
        return;
      }
    }
    this.#socket = socket;
    if (early?.socket !== socket) return this.#listen(socket);
    // Adopted: what it heard so far reaches the handlers in a task of its own, so an app
    // that subscribes right after `await connect()` misses nothing; it keeps listening for
    // itself until then, so nothing overtakes what it heard.
    setTimeout(() => {
      if (this.#socket !== socket) return;
      this.#listen(socket);
      for (const event of early.heard) event(socket);
    });
  }

  /** Feed what `socket` tells into the engine, while it is the current socket. */
  #listen(socket: Socket): void {
    socket.binaryType = "arraybuffer";
    const live = () => this.#socket === socket;
    socket.onopen = () => {
      if (!live()) return;
      this.act(Op.SocketOpened);
    };
    socket.onmessage = (event) => {
      if (!live()) return;
      const data = event.data;
      const bytes =
        data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : // Node's `ws` hands out Buffers when binaryType is not honoured.
            ArrayBuffer.isView(data) && new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      // The frame and the drain after it in one call into the engine: every message pays
      // it. The event's time is on performance.now()'s clock (a time origin's offset, not
      // the Unix epoch, which some old runtimes used), and costs nothing to read.
      const at = event.timeStamp;
      if (bytes) this.pump(this.engine.frame(bytes, at! > 0 && at! < 1e11 ? at! : now()));
    };
    const lost = (code: number) => {
      if (!live()) return;
      this.#detach();
      this.act(Op.SocketClosed, "", NONE, code);
    };
    socket.onclose = (event) => lost(event.code || 1006);
    // Browsers follow an error with a close; some runtimes (Node 22's WebSocket, when the
    // handshake fails) do not. Either way the socket is done.
    socket.onerror = () => lost(1006);
  }

  /** Stop listening to the current socket; returns it. */
  #detach(): Socket | undefined {
    const socket = this.#socket;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      this.#socket = undefined;
    }
    return socket;
  }

  #fetchToken(): void {
    const done = (ok: boolean, value: string) => {
      if (this.#current === "closed") return;
      this.act(Op.TokenFetched, value, NONE, ok ? 1 : 0);
    };
    let promise: Promise<string>;
    try {
      promise = Promise.resolve(this.#getToken!());
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (token) =>
        typeof token === "string" && token !== ""
          ? done(true, token)
          : done(false, "getToken must resolve with a non-empty string"),
      (error: unknown) => done(false, "getToken failed: " + String((error as Error)?.message ?? error)),
    );
  }

  /**
   * Ask the server over plain HTTP whether it accepts the token (a browser cannot read why a
   * WebSocket failed to open). The server answers 200 either way, so nothing is logged as
   * an error but a network failure.
   */
  #probe(token: string): void {
    const done = (outcome: 0 | 1 | 2) => {
      if (this.#current === "closed") return;
      this.act(Op.AuthProbed, "", NONE, outcome);
    };
    if (typeof fetch !== "function") return done(0);
    const url = new URL(this.#probeUrl);
    url.searchParams.set("token", token);
    url.searchParams.set("probe", "1");
    fetch(url.href).then(
      async (response) => {
        if (response.status === 401) return done(1);
        if (!response.ok) return done(0);
        const answer = (await response.json().catch(() => ({}))) as { token?: string };
        done(answer.token === "refused" ? 1 : 0);
      },
      () => done(2),
    );
  }

  /** Wake the engine when the network comes back or the page becomes visible. */
  #listenForWake(): void {
    const wake = () => {
      const hidden = (globalThis as { document?: { visibilityState?: string } }).document
        ?.visibilityState === "hidden";
      if (hidden || this.#current === "closed") return;
      this.act(Op.Wake);
    };
    // `online` on the global object (a window or a worker); `visibilitychange` on the
    // document, where there is one. Node has neither listener; Deno and Bun the first.
    const global = globalThis as Partial<EventTarget> & { document?: EventTarget };
    const document = global.document;
    global.addEventListener?.("online", wake);
    document?.addEventListener("visibilitychange", wake);
    this.#unwake = () => {
      global.removeEventListener?.("online", wake);
      document?.removeEventListener("visibilitychange", wake);
    };
  }

  /** Closed for good: no socket, timer or listener is left. */
  #finish(): void {
    this.#detach()?.close();
    this.#early?.socket.close();
    this.#early = undefined;
    clearTimeout(this.#timer);
    this.#unwake?.();
    this.#unwake = undefined;
    for (const room of this.#rooms.values()) room.closed();
  }
}
