// History and live messages merged into one ordered, de-duplicated list per room: what a
// chat view shows, without every app writing it again.

import { Emitter } from "./emitter.js";
import type { ChorusError } from "./errors.js";
import type { Message, Room } from "./room.js";

export interface TimelineOptions {
  /** Messages loaded at first, and by each `loadOlder()` by default. Default: 50. */
  pageSize?: number;
  /** Most messages kept; the oldest go first (and `more` becomes true). Default: 1000. */
  max?: number;
}

export interface TimelineEvents<T> {
  /** The list changed: a message arrived, a page loaded, or the room's history was reset. */
  change: readonly Message<T>[];
  /** Loading the newest page after a reset failed; `loadOlder()` tries again. */
  error: ChorusError;
}

/**
 * A room's messages, oldest first, each sequence number once: live messages and pages of
 * history merged. The newest page loads once the room is joined (at once if it is); when a
 * join reports `missed`, or the room's epoch changes, the list is reset to the newest page.
 * Create it with `room.timeline()`; `dispose()` stops it.
 */
export class Timeline<T> extends Emitter<TimelineEvents<T>> {
  #list: Message<T>[] = [];
  #epoch?: number;
  #older = true;
  #loading?: Promise<boolean>;
  readonly #pageSize: number;
  readonly #max: number;
  readonly #stop: (() => void)[];

  readonly #room: Room<T>;

  constructor(room: Room<T>, options: TimelineOptions = {}) {
    super();
    this.#room = room;
    this.#pageSize = options.pageSize ?? 50;
    this.#max = options.max ?? 1000;
    this.#stop = [
      room.on("message", (message) => {
        if (this.#insert([message])) this.#changed();
      }),
      room.on("joined", (info) => {
        if (info.recovery === "missed" || info.position.epoch !== this.#epoch) {
          this.#epoch = info.position.epoch;
          this.#reset();
        }
      }),
    ];
    if (room.state === "joined") {
      this.#epoch = room.position?.epoch;
      this.#reset();
    }
  }

  /** The messages, oldest first: a new array after every change. */
  get messages(): readonly Message<T>[] {
    return this.#list;
  }

  /** Whether older messages may be retained before the first one. */
  get more(): boolean {
    return this.#older;
  }

  /** Load the page before the oldest message held; resolves with `more`. */
  loadOlder(limit = this.#pageSize): Promise<boolean> {
    const first = this.#list[0];
    if (!this.#older) return Promise.resolve(false);
    if (this.#loading) return this.#loading;
    const loading = this.#room
      .history({ limit, before: first && this.#epoch !== undefined ? { epoch: this.#epoch, seq: first.seq } : undefined })
      .then((page) => {
        if (this.#epoch === undefined) this.#epoch = page.position.epoch;
        if (page.position.epoch === this.#epoch) {
          this.#older = page.more;
          this.#insert(page.messages);
          this.#changed();
        }
        return this.#older;
      })
      .finally(() => {
        if (this.#loading === loading) this.#loading = undefined;
      });
    this.#loading = loading;
    return loading;
  }

  /** Stop following the room. */
  dispose(): void {
    for (const stop of this.#stop) stop();
  }

  /** Start again from the newest page. */
  #reset(): void {
    this.#list = [];
    this.#older = true;
    this.#changed();
    this.#loading = undefined;
    this.loadOlder().catch((error: ChorusError) => this.emit("error", error));
  }

  /**
   * Merge `messages` in; whether anything was added. The list is a new array after a
   * change, never changed in place, so `messages` can be compared by identity (React's
   * `useSyncExternalStore`, say).
   */
  #insert(messages: Message<T>[]): boolean {
    const list = this.#list.slice();
    for (const message of messages) {
      let i = list.length;
      while (i > 0 && list[i - 1].seq > message.seq) i--;
      if (i > 0 && list[i - 1].seq === message.seq) continue;
      list.splice(i, 0, message);
    }
    if (list.length === this.#list.length) return false;
    if (list.length > this.#max) {
      list.splice(0, list.length - this.#max);
      this.#older = true;
    }
    this.#list = list;
    return true;
  }

  #changed(): void {
    this.emit("change", this.#list);
  }
}
