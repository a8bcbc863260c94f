// A room handle: its own publish, history, typing and events, with payloads through a codec.

import type { Client } from "./client.js";
import { Emitter } from "./emitter.js";
import { ChorusError, ErrorCode } from "./errors.js";
import * as Op from "./ops.js";
import { Timeline, type TimelineOptions } from "./timeline.js";

/** A room's place in its history: which history (`epoch`) and how far along it (`seq`). */
export interface Position {
  epoch: number;
  seq: number;
}

/** What a join's resume request became. "missed": not everything could be replayed; reload. */
export type Recovery = "not_requested" | "recovered" | "missed";

/** How a room's payloads travel: as text or bytes, and back. */
export interface Codec<T> {
  encode(data: T): string | Uint8Array;
  decode(body: string | Uint8Array): T;
}

export interface RoomOptions<T> {
  /**
   * "raw" (default): strings and Uint8Arrays as they are; "json": any JSON value, sent as
   * text; or your own codec.
   */
  codec?: "raw" | "json" | Codec<T>;
}

/** A message as the engine hands it over, before the codec. */
type RawMessage = Omit<Message<unknown>, "data"> & { body: string | Uint8Array };

/** A message published to a room. */
export interface Message<T> {
  room: string;
  /** Per-room sequence number. */
  seq: number;
  /** The publisher's message id. */
  id: number;
  sender: string;
  /** Server time of publication, ms since the Unix epoch. */
  ts: number;
  data: T;
}

/** A room as a join found it. */
export interface JoinedInfo {
  room: string;
  /** Users present. */
  members: string[];
  /** The room's position when the join took effect. */
  position: Position;
  recovery: Recovery;
}

/** A publish acknowledged by the server. */
export interface Ack {
  room: string;
  /** The publish's message id. */
  id: number;
  /** The sequence number the message got in the room. */
  seq: number;
}

/** What `publish` returns: a Promise of the ack, with the message id known at once. */
export type PublishPromise = Promise<Ack> & { readonly id: number };

export interface PublishOptions {
  /**
   * The message id, as an idempotency key (an integer, 0 to 2^53 - 1): a publish sent again
   * with the same id (after a page reload, say) is delivered once. Default: a new id.
   */
  id?: number;
}

export interface HistoryOptions {
  /**
   * Only messages before this position; omit for the newest. To page back, pass
   * `{ epoch: page.position.epoch, seq: page.messages[0].seq }`.
   */
  before?: Position;
  /** Most messages wanted, 1 or more; the server may answer fewer and set `more`. Default: 50. */
  limit?: number;
}

/** A page of a room's history, oldest first, consecutive sequence numbers. */
export interface HistoryPage<T> {
  room: string;
  /** The room's position when the page was read. */
  position: Position;
  messages: Message<T>[];
  /** Whether older messages are retained before `messages[0]`. */
  more: boolean;
}

/** Who is in a room: the whole list on every join, then each change. */
export type PresenceEvent =
  | { room: string; kind: "list"; members: string[] }
  | { room: string; kind: "join"; user: string }
  | { room: string; kind: "leave"; user: string };

/** Every event a Room emits, by name. */
export interface RoomEvents<T> {
  /** A message (each sequence number at most once). */
  message: Message<T>;
  /** Joined, or rejoined after a reconnect. */
  joined: JoinedInfo;
  /**
   * The server confirmed a `leave()`. (A join refused for good comes as `error`, with the
   * room's `state` already "left".)
   */
  left: { room: string };
  presence: PresenceEvent;
  /** Who is typing changed (sorted, without expired states). */
  typing: { room: string; users: string[] };
  /**
   * A failure in this room that no Promise reports: a join refused (then `state` is "left"
   * already), a rejoin refused, a payload undecodable.
   */
  error: ChorusError;
}

export type RoomState = "left" | "joining" | "joined";

const encoder = new TextEncoder();

const json: Codec<unknown> = {
  encode: (data) => JSON.stringify(data),
  decode: (body) => {
    if (typeof body !== "string") throw new TypeError("a binary body is not JSON");
    return JSON.parse(body);
  },
};
const raw: Codec<unknown> = { encode: (data) => data as string, decode: (body) => body };

/** Whether `value` is absent or a `{ epoch, seq }` position. */
const isPosition = (value?: Position) =>
  value === undefined || (Number.isInteger(value?.epoch) && Number.isInteger(value?.seq));

const check = (value: unknown) => {
  if (!(typeof value === "string" || value instanceof Uint8Array)) {
    throw new TypeError("a raw payload is a string or a Uint8Array");
  }
  return value;
};

/** A room of a Client. Get it with `client.room(name)`. */
export class Room<T = string | Uint8Array> extends Emitter<RoomEvents<T>> {
  readonly #codec: Codec<T>;
  #current: RoomState = "left";
  #list: string[] = [];
  #whoTypes: string[] = [];
  /** The position: the epoch of the last join (NaN before one) and the last seq delivered. */
  #epoch = NaN;
  #seq = 0;
  #joins: { resolve(info: JoinedInfo): void; reject(error: ChorusError): void }[] = [];

  readonly #client: Client;
  /** The room's name. */
  readonly name: string;

  /** Use `client.room(name)`, which returns the one handle of each room. */
  constructor(client: Client, name: string, options: RoomOptions<T> = {}) {
    super();
    this.#client = client;
    this.name = name;
    const codec = options.codec ?? "raw";
    this.#codec = (codec === "json" ? json : codec === "raw" ? raw : codec) as Codec<T>;
  }

  /** "left", "joining" (asked, or rejoining after a reconnect) or "joined". */
  get state(): RoomState {
    return this.#current;
  }

  /** Users present, as of the last join and the changes since. */
  get members(): readonly string[] {
    return this.#list;
  }

  /** Users typing now. */
  get typingUsers(): readonly string[] {
    return this.#whoTypes;
  }

  /**
   * The position of the last message delivered (or of the join): store it to resume from it
   * later with `join({ since })`.
   */
  get position(): Position | undefined {
    return Number.isNaN(this.#epoch) ? undefined : { epoch: this.#epoch, seq: this.#seq };
  }

  /**
   * Join now, or as soon as connected; the room is rejoined after every reconnect, with what
   * was missed replayed. `since` resumes from a stored position (after a page reload, say).
   * Resolves when joined; rejects with a ChorusError (InvalidRoom, Forbidden, TooManyRooms,
   * RoomFull, ...) when refused for good, with NotJoined when `leave()` comes first and with
   * Closed when the client closes first.
   */
  join(options: { since?: Position } = {}): Promise<JoinedInfo> {
    const since = options.since;
    if (!isPosition(since)) return this.#refuse(ErrorCode.InvalidArgument, "since must be a { epoch, seq } position");
    const client = this.#client;
    const refused = client.input(Op.Join, this.name, undefined, since?.epoch, since?.seq);
    if (refused > 0) return this.#refuse(ErrorCode.InvalidRoom, client.out(refused));
    if (client.state === "closed") return this.#refuse(ErrorCode.Closed, "the client is closed");
    if (this.#current === "joined") {
      return Promise.resolve(this.#info("not_requested"));
    }
    if (since && Number.isNaN(this.#epoch)) ({ epoch: this.#epoch, seq: this.#seq } = since);
    this.#current = "joining";
    const promise = new Promise<JoinedInfo>((resolve, reject) => this.#joins.push({ resolve, reject }));
    client.pump();
    return promise;
  }

  /** Leave (and stop rejoining). Publishes not yet sent to it reject with NotJoined. */
  leave(): void {
    this.#client.input(Op.Leave, this.name);
    this.#current = "left";
    this.#list = [];
    this.#whoTypes = [];
    this.#settleJoins(new ChorusError(ErrorCode.NotJoined, "left before the join completed", { room: this.name }));
    this.#client.pump();
  }

  /**
   * Publish `data` (through the room's codec); while disconnected it waits in the offline
   * queue, paced to the server's rate limit. Resolves with the server's Ack; rejects with a
   * ChorusError carrying the message `id`: QueueFull, TimedOut, BodyTooLarge, NotJoined,
   * RateLimited, Forbidden, Closed, InvalidArgument... The returned Promise's `id` is the
   * message id; it is `NaN` only when the call is refused before an id exists (a payload
   * the codec cannot encode, an invalid `id` option), unless the app gave one.
   */
  publish(data: T, options: PublishOptions = {}): PublishPromise {
    const client = this.#client;
    const given = options.id;
    const fail = (code: number, message: string, id = given ?? NaN) =>
      Object.assign(Promise.reject(new ChorusError(code, message, { room: this.name, id })), { id });
    if (given !== undefined && !(Number.isSafeInteger(given) && given >= 0)) {
      return fail(ErrorCode.InvalidArgument, "id must be an integer from 0 to 2^53 - 1");
    }
    if (given !== undefined && client.tracks(given)) {
      return fail(ErrorCode.InvalidArgument, "a publish with this id is pending");
    }
    let body: string | Uint8Array;
    try {
      body = this.#codec === raw ? check(data) : this.#codec.encode(data);
      check(body);
    } catch (error) {
      return fail(ErrorCode.InvalidArgument, "the payload cannot be encoded: " + (error as Error).message);
    }
    const id =
      typeof body === "string"
        ? client.input(Op.PublishText, this.name, encoder.encode(body), given)
        : client.input(Op.PublishBytes, this.name, body, given);
    return Object.assign(this.#settledBy<Ack>(id), { id });
  }

  /**
   * A page of history: the newest messages, or those before `options.before`. The room need
   * not be joined; while disconnected the request waits. Rejects with a ChorusError
   * (InvalidRequest, EpochChanged when `before` is from a history that is gone, TimedOut,
   * TooManyPending, Closed, DecodeFailed...).
   */
  history(options: HistoryOptions = {}): Promise<HistoryPage<T>> {
    const { before, limit = 50 } = options;
    if (!(Number.isInteger(limit) && limit >= 0 && limit <= 0xffffffff)) {
      return this.#refuse(ErrorCode.InvalidArgument, "limit must be an integer, 1 or more");
    }
    if (!isPosition(before)) return this.#refuse(ErrorCode.InvalidArgument, "before must be a { epoch, seq } position");
    const request = this.#client.input(Op.History, this.name, undefined, before?.epoch, before?.seq, limit);
    return this.#settledBy<HistoryPage<T>>(request);
  }

  /** The user typed here: call on every keystroke (the client throttles, and says "stopped"). */
  typing(): void {
    this.#client.act(Op.Typing, this.name);
  }

  /**
   * One ordered, de-duplicated list of this room's messages: history pages and live
   * messages merged, reset when the room's history changes. See `Timeline`.
   */
  timeline(options?: TimelineOptions): Timeline<T> {
    return new Timeline(this, options);
  }

  /** @internal A message through the codec. */
  decode({ room, seq, id, sender, ts, body }: RawMessage): Message<T> {
    let data: T;
    try {
      data = this.#codec.decode(body);
    } catch (error) {
      throw new ChorusError(ErrorCode.DecodeFailed, `message ${seq} cannot be decoded: ${(error as Error).message}`, {
        room: this.name,
        id,
      });
    }
    return { room, seq, id, sender, ts, data };
  }

  /** @internal */
  joined(position: Position, members: string[], recovery: Recovery): void {
    this.#current = "joined";
    ({ epoch: this.#epoch, seq: this.#seq } = position);
    this.#list = members;
    const info = this.#info(recovery);
    const joins = this.#joins;
    this.#joins = [];
    for (const join of joins) join.resolve(info);
    this.emit("joined", info);
    this.emit("presence", { room: this.name, kind: "list", members: members.slice() });
  }

  /** @internal */
  left(): void {
    this.#current = "left";
    this.#list = [];
    this.#whoTypes = [];
    this.emit("left", { room: this.name });
  }

  /** @internal */
  message(message: RawMessage): void {
    this.#seq = message.seq;
    if (!this.listens("message")) return;
    let decoded: Message<T>;
    try {
      decoded = this.decode(message);
    } catch (error) {
      this.emit("error", error as ChorusError);
      return;
    }
    this.emit("message", decoded);
  }

  /** @internal */
  member(user: string, joined: boolean): void {
    if (joined) {
      if (!this.#list.includes(user)) this.#list = [...this.#list, user];
    } else {
      this.#list = this.#list.filter((u) => u !== user);
    }
    this.emit("presence", joined ? { room: this.name, kind: "join", user } : { room: this.name, kind: "leave", user });
  }

  /** @internal */
  typists(users: string[]): void {
    this.#whoTypes = users;
    this.emit("typing", { room: this.name, users: users.slice() });
  }

  /** @internal An error about this room; `wanted`: whether the engine still wants it. */
  error(error: ChorusError, wanted: boolean): void {
    if (!wanted && this.#current !== "left") {
      this.#current = "left";
      this.#settleJoins(error);
    }
    this.emit("error", error);
  }

  /** @internal The connection is not open: joined rooms wait for their rejoin. */
  disconnected(): void {
    if (this.#current === "joined") this.#current = "joining";
  }

  /** @internal The client closed for good. */
  closed(): void {
    this.#settleJoins(new ChorusError(ErrorCode.Closed, "the client was closed", { room: this.name }));
    this.#current = "left";
  }

  /** A Promise rejected at once with `code`, about this room. */
  #refuse(code: number, message: string): Promise<never> {
    return Promise.reject(new ChorusError(code, message, { room: this.name }));
  }

  /** The Promise of the publish or history request `id`, settled by the engine's record. */
  #settledBy<V>(id: number): Promise<V> {
    const client = this.#client;
    const promise = new Promise<V>((resolve, reject) =>
      client.track(id, { resolve: resolve as (value: never) => void, reject, room: this as Room<unknown> }),
    );
    client.pump();
    return promise;
  }

  #settleJoins(error: ChorusError): void {
    const joins = this.#joins;
    this.#joins = [];
    for (const join of joins) join.reject(error);
  }

  #info(recovery: Recovery): JoinedInfo {
    return { room: this.name, members: this.#list.slice(), position: this.position!, recovery };
  }
}
