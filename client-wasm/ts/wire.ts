// Reads the records the engine writes (client-wasm/src/engine.rs, "The record format").

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

  /** A message body: text, or a copy of the bytes. */
  body(): string | Uint8Array {
    return this.u8() === 0 ? this.str() : this.bytes().slice();
  }
}
