// Reads the records the engine writes (client-wasm/src/engine.rs, "The record format").

const decoder = new TextDecoder();

/** UTF-8 bytes as a string. */
export const text = (bytes: Uint8Array) => decoder.decode(bytes);

/**
 * A cursor over one drain's records. They are copied out of wasm memory first (app code
 * called back from a record may make the engine allocate, and so move or grow its
 * memory), into one buffer kept for the next drains: receiving allocates nothing here.
 */
export class Reader {
  #data = new Uint8Array(256);
  #view = new DataView(this.#data.buffer);
  #at = 0;
  #end = 0;

  /** Read a copy of `records`. Only one drain is read at a time (see `Client.pump`). */
  load(records: Uint8Array): this {
    if (records.length > this.#data.length) {
      this.#data = new Uint8Array(Math.max(records.length, this.#data.length * 2));
      this.#view = new DataView(this.#data.buffer);
    }
    this.#data.set(records);
    this.#at = 0;
    this.#end = records.length;
    return this;
  }

  more(): boolean {
    return this.#at < this.#end;
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
    // Names and short texts are mostly ASCII: for those, building the string here beats a
    // call into TextDecoder several times over.
    if (bytes.length <= 256) {
      let ascii = true;
      for (const byte of bytes) ascii &&= byte < 0x80;
      if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
    }
    return decoder.decode(bytes);
  }

  list(): string[] {
    const list: string[] = [];
    for (let n = this.num(); n > 0; n--) list.push(this.str());
    return list;
  }

  /** A message of `room` (seq, id, sender, ts, body), its body not yet through a codec. */
  message(room: string) {
    return { room, seq: this.num(), id: this.num(), sender: this.str(), ts: this.num(), body: this.body() };
  }

  /** A message body: text, or a copy of the bytes. */
  body(): string | Uint8Array {
    return this.u8() === 0 ? this.str() : this.bytes().slice();
  }
}
