// Errors: one class, one numeric space. Server codes (100-599) come from the server and are
// listed in docs/PROTOCOL.md; client codes (600-699) are the client's own. Neither overlaps
// the WebSocket close codes (1000-4999) that `state` events carry as reasons.

/** Every error code, by name. */
export const ErrorCode = {
  BadFrame: 100,
  TextFrame: 101,
  InvalidRoom: 102,
  BodyTooLarge: 103,
  Forbidden: 104,
  NotJoined: 105,
  RateLimited: 106,
  TooManyRooms: 107,
  RoomFull: 108,
  PublishDisabled: 109,
  TypingDisabled: 110,
  InvalidRequest: 111,
  EpochChanged: 112,
  Internal: 500,
  Unavailable: 503,
  /** The server refused the token, and no `getToken` can supply another. */
  Unauthorized: 600,
  /** `getToken` failed. */
  TokenUnavailable: 601,
  /** An argument is invalid. */
  InvalidArgument: 602,
  /** The server closed the connection and asked not to reconnect. */
  DoNotRetry: 603,
  /** No answer in time. */
  TimedOut: 604,
  /** The client was closed first. */
  Closed: 605,
  /** Too many requests are pending. */
  TooManyPending: 606,
  /** The offline queue is full. */
  QueueFull: 607,
  /** `maxReconnectAttempts` attempts in a row failed. */
  AttemptsExhausted: 608,
  /** No WebSocket implementation: pass one as the `WebSocket` option. */
  NoWebSocket: 609,
  /** A payload could not be decoded by the room's codec. */
  DecodeFailed: 610,
} as const;

/** The name of an error code. */
export type ErrorName = keyof typeof ErrorCode;

const names: Record<number, string> = {};
for (const [name, code] of Object.entries(ErrorCode)) names[code] = name;

/**
 * What every rejected Promise and every `error` event carries. `name` is the name of its
 * `code` in `ErrorCode` ("QueueFull", "Forbidden", ...), or "ChorusError" for a code this
 * version does not know.
 */
export class ChorusError extends Error {
  /** A server code (100-599) or a client code (600-699): see `ErrorCode`. */
  readonly code: number;
  /** The room concerned, if any. */
  readonly room?: string;
  /** The publish's message id, for a publish that failed. */
  readonly id?: number;
  /** For BodyTooLarge: the body's size and the server's limit, in bytes. */
  readonly size?: number;
  readonly max?: number;

  constructor(
    code: number,
    message: string,
    details: { room?: string; id?: number; size?: number; max?: number } = {},
  ) {
    super(message);
    this.name = names[code] ?? "ChorusError";
    this.code = code;
    if (details.room !== undefined) this.room = details.room;
    if (details.id !== undefined) this.id = details.id;
    if (details.size) this.size = details.size;
    if (details.max) this.max = details.max;
  }
}
