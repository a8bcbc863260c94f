// The "raw WebSocket, Chorus wire" column of the client page: a browser WebSocket and a
// hand-written postcard decoder for just the frames a room member receives (docs/PROTOCOL.md
// is the format). No library, no wasm: the least a JS app must do per message, decoding the
// same fields chorus-client hands to its handlers ({ room, seq, id, sender, ts, body }).
// Not a client: no reconnect, no resume, no queue; it answers nothing but keeps the
// heartbeat (a Ping every heartbeat_ms) so a long run stays connected.

const utf8 = new TextDecoder();

// ServerMessage variant indices (protocol/src/message.rs).
const WELCOME = 0;
const JOINED = 1;
const MESSAGE = 3;
const ERROR = 9;
const DISCONNECT = 10;

/** A cursor over one frame. */
class Frame {
  constructor(bytes) {
    this.b = bytes;
    this.at = 0;
  }

  /** An unsigned LEB128 varint, exact up to 2^53. */
  varint() {
    const b = this.b;
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = b[this.at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  }

  /** A varint-length UTF-8 string: short ASCII by hand, the rest through TextDecoder. */
  str() {
    const length = this.varint();
    const start = this.at;
    this.at += length;
    if (length <= 32) {
      let text = "";
      for (let i = start; i < this.at; i++) {
        const byte = this.b[i];
        if (byte > 0x7f) return utf8.decode(this.b.subarray(start, this.at));
        text += String.fromCharCode(byte);
      }
      return text;
    }
    return utf8.decode(this.b.subarray(start, this.at));
  }

  /** A Body: variant 0 is text, 1 bytes (copied out). */
  body() {
    if (this.varint() === 0) return this.str();
    const length = this.varint();
    const start = this.at;
    this.at += length;
    return this.b.slice(start, this.at);
  }
}

function varint(out, value) {
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function string(out, text) {
  const bytes = new TextEncoder().encode(text);
  varint(out, bytes.length);
  out.push(...bytes);
}

/**
 * One connection. `onMessage` gets every room message as { room, seq, id, sender, ts, body }.
 * `opened` resolves with the Welcome; `join(room)` resolves with the Joined.
 */
export class RawChorus {
  constructor(url, token, onMessage) {
    this.onMessage = onMessage;
    this.joins = new Map();
    this.nonce = 0;
    this.opened = new Promise((resolve, reject) => {
      this.welcomed = resolve;
      this.failed = reject;
    });
    const socket = new WebSocket(url, ["chorus.v1", "chorus.auth." + token]);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => this.frame(new Frame(new Uint8Array(event.data)));
    socket.onclose = (event) => {
      clearInterval(this.heartbeat);
      this.failed(new Error(`raw: socket closed (${event.code})`));
      for (const join of this.joins.values()) join.reject(new Error("raw: socket closed"));
    };
    this.socket = socket;
  }

  frame(f) {
    switch (f.varint()) {
      case MESSAGE: {
        const room = f.str();
        const seq = f.varint();
        const id = f.varint();
        const sender = f.str();
        const ts = f.varint();
        const body = f.body();
        this.onMessage({ room, seq, id, sender, ts, body });
        break;
      }
      case WELCOME: {
        const session = f.str();
        const user = f.str();
        f.varint(); // protocol
        const heartbeatMs = f.varint();
        this.heartbeat = setInterval(() => this.send([5, ...leb(++this.nonce)]), heartbeatMs);
        this.welcomed({ session, user });
        break;
      }
      case JOINED: {
        const room = f.str();
        this.joins.get(room)?.resolve();
        this.joins.delete(room);
        break;
      }
      case ERROR: {
        const code = f.varint();
        const message = f.str();
        const error = new Error(`raw: server error ${code}: ${message}`);
        for (const join of this.joins.values()) join.reject(error);
        this.joins.clear();
        break;
      }
      case DISCONNECT:
        this.failed(new Error(`raw: disconnected (${f.varint()}: ${f.str()})`));
        break;
      // Left, PublishAck, presence, typing, Pong, History: nothing to do here.
    }
  }

  send(bytes) {
    this.socket.send(new Uint8Array(bytes));
  }

  /** ClientMessage::Join { room, since: None }. */
  join(room) {
    return new Promise((resolve, reject) => {
      this.joins.set(room, { resolve, reject });
      const out = [0];
      string(out, room);
      out.push(0);
      this.send(out);
    });
  }

  close() {
    clearInterval(this.heartbeat);
    this.socket.onclose = null;
    this.socket.close();
  }
}

function leb(value) {
  const out = [];
  varint(out, value);
  return out;
}
