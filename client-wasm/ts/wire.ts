// Reads the records the engine writes (client-wasm/src/engine.rs, "The record format").

/** Record tags, as in engine.rs. */
export const Tag = {
  OpenSocket: 1,
  Send: 2,
  CloseSocket: 3,
  FetchToken: 4,
  Probe: 5,
  Acked: 6,
  PublishFailed: 7,
  History: 8,
  HistoryFailed: 9,
  Open: 10,
  Close: 11,
  Reconnecting: 12,
  Joined: 13,
  Left: 14,
  Message: 15,
  MemberJoined: 16,
  MemberLeft: 17,
  Typing: 18,
  Error: 19,
  State: 20,
} as const;

/** The inputs of `Engine.input`, as in engine.rs (`Op`). */
export const Op = {
  Connect: 0,
  Leave: 1,
  PublishText: 2,
  PublishBytes: 3,
  History: 4,
  Typing: 5,
  Close: 6,
  Reconnect: 7,
  Wake: 8,
  TokenFetched: 9,
  AuthProbed: 10,
  SocketOpened: 11,
  SocketFrame: 12,
  SocketClosed: 13,
  Tick: 14,
  Wants: 15,
  Join: 16,
} as const;

const decoder = new TextDecoder();

/** UTF-8 bytes as a string. */
export const text = (bytes: Uint8Array) => decoder.decode(bytes);

/** A cursor over one drain's records (a copy, so app code may call the engine meanwhile). */
export class Reader {
  readonly #view: DataView;
  #at = 0;

  readonly #data: Uint8Array;

  constructor(data: Uint8Array) {
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  more(): boolean {
    return this.#at < this.#data.length;
  }

  u8(): number {
    return this.#data[this.#at++];
  }

  num(): number {
    const value = this.#view.getFloat64(this.#at, true);
    this.#at += 8;
    return value;
  }

  bytes(): Uint8Array {
    const start = this.#at + 4;
    this.#at = start + this.#view.getUint32(this.#at, true);
    return this.#data.subarray(start, this.#at);
  }

  str(): string {
    const bytes = this.bytes();
    // Names are short and mostly ASCII: building those by hand beats a TextDecoder call.
    if (bytes.length <= 32) {
      let text = "";
      for (const byte of bytes) {
        if (byte > 0x7f) return decoder.decode(bytes);
        text += String.fromCharCode(byte);
      }
      return text;
    }
    return decoder.decode(bytes);
  }

  list(): string[] {
    const list: string[] = [];
    for (let n = this.num(); n > 0; n--) list.push(this.str());
    return list;
  }

  /** A message body: text, or a copy of the bytes. */
  body(): string | Uint8Array {
    return this.u8() === 0 ? this.str() : this.bytes().slice();
  }
}
