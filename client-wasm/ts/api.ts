// The package's API, shared by its browser entry (index.ts) and its file-loading one
// (node.ts).

export { Client, connect } from "./client.js";
export type { ClientEvents, ClientOptions, ClientState, Reason, WebSocketConstructor } from "./client.js";
export { ChorusError, ErrorCode } from "./errors.js";
export type { ErrorName } from "./errors.js";
export { Room } from "./room.js";
export type {
  Ack,
  Codec,
  HistoryOptions,
  HistoryPage,
  JoinedInfo,
  Message,
  Position,
  PresenceEvent,
  PublishOptions,
  PublishPromise,
  Recovery,
  RoomEvents,
  RoomOptions,
  RoomState,
} from "./room.js";
export { Timeline } from "./timeline.js";
export type { TimelineEvents, TimelineOptions } from "./timeline.js";
export { init, initSync } from "./wasm.js";
export type { InitInput, SyncInitInput } from "./wasm.js";
import { init } from "./wasm.js";

export default init;
