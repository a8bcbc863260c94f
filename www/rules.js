// What the page checks before asking the server, and the words it shows. Pure functions, no
// DOM: the same rules as the server's (protocol/src/validate.rs, docs/PROTOCOL.md), so a
// mistake is explained at once instead of after a round trip.

/** The server's default frame limit (`--max-frame`): 64 KiB. */
export const DEFAULT_MAX_FRAME = 64 * 1024;
/** Bodies may be the frame limit minus 1 KiB: 64 512 bytes by default. */
export const DEFAULT_MAX_BODY = DEFAULT_MAX_FRAME - 1024;

const MAX_ROOM_BYTES = 128;
const MAX_USER_BYTES = 64;
const ROOM_CHARS = /^[A-Za-z0-9\-_.:@/]*$/;
const encoder = new TextEncoder();

/** The UTF-8 length of `text`, in bytes. */
export function byteLength(text) {
  return encoder.encode(text).length;
}

/** Why `name` is not a valid room name, or null when it is. */
export function roomError(name) {
  if (name === "") return "Enter a room name.";
  if (!ROOM_CHARS.test(name)) {
    return "Room names may only use ASCII letters, digits and - _ . : @ /";
  }
  if (name.length > MAX_ROOM_BYTES) {
    return `Room names are at most ${MAX_ROOM_BYTES} characters (this one has ${name.length}).`;
  }
  if (name.startsWith(":")) return "A room name cannot start with “:”.";
  return null;
}

/** Why `name` is not a valid nickname, or null when it is. */
export function nicknameError(name) {
  if (name === "") return "Enter a nickname.";
  if (name !== name.trim()) return "A nickname cannot start or end with a space.";
  // Control characters: C0, DEL and C1.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    return "A nickname cannot contain control characters.";
  }
  const bytes = byteLength(name);
  if (bytes > MAX_USER_BYTES) {
    return `A nickname is at most ${MAX_USER_BYTES} bytes (this one has ${bytes}).`;
  }
  return null;
}

/**
 * The typing line for `users` (yourself already left out): "" for nobody, then
 * "Alice is typing…", "Alice and Bob are typing…", "Alice, Bob and Carol are typing…",
 * "Alice, Bob and 2 others are typing…".
 */
export function typingLine(users) {
  const [a, b, c] = users;
  switch (users.length) {
    case 0:
      return "";
    case 1:
      return `${a} is typing…`;
    case 2:
      return `${a} and ${b} are typing…`;
    case 3:
      return `${a}, ${b} and ${c} are typing…`;
    default:
      return `${a}, ${b} and ${users.length - 2} others are typing…`;
  }
}

/** A byte count for people: "812 bytes", "63 KB", "1.4 MB". */
export function formatBytes(n) {
  if (n < 1024) return `${n} ${n === 1 ? "byte" : "bytes"}`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** Consecutive messages from one sender within this long of each other form a group. */
export const GROUP_MS = 5 * 60 * 1000;

/**
 * Whether message `next` continues the group of `previous` (the message shown just above it,
 * or null): the same sender, at most GROUP_MS apart. `ts` is ms since the Unix epoch.
 */
export function continuesGroup(previous, next) {
  return (
    previous !== null &&
    previous.sender === next.sender &&
    Math.abs(next.ts - previous.ts) <= GROUP_MS
  );
}

/**
 * Why the connection changed, for people: the client's reasons are already words ("connection
 * lost", "server unreachable"), the server's are snake_case names ("server_shutdown").
 */
export function reasonText(reason) {
  return reason ? reason.replaceAll("_", " ") : "";
}

/**
 * The connection status line. `connection` is "idle" (never connected), "connecting",
 * "open", "reconnecting" or "closed"; `retry` is `{ attempt, remainingMs }` while
 * reconnecting; `reason` is why the connection was lost or closed (the client's `state`
 * event), shown after the state.
 */
export function statusLine(connection, online, retry, reason = "") {
  const why = reasonText(reason);
  const because = why ? `: ${why}` : "";
  if (connection === "closed") return { state: "closed", text: `Closed${because}` };
  if (connection === "idle") return { state: "idle", text: "Not signed in" };
  if (!online) return { state: "offline", text: "Offline" };
  if (connection === "open") return { state: "connected", text: "Connected" };
  if (connection === "reconnecting" && retry) {
    const seconds = Math.ceil(retry.remainingMs / 1000);
    const text =
      seconds > 0
        ? `Reconnecting in ${seconds} s (attempt ${retry.attempt})${because}`
        : `Reconnecting… (attempt ${retry.attempt})${because}`;
    return { state: "reconnecting", text };
  }
  return { state: "connecting", text: "Connecting…" };
}
