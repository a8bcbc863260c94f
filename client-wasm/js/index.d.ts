// Types of the `chorus-client` entry point (index.js). The client's own types are
// generated from the Rust crate into chorus_client.d.ts.

import type { ChorusClient, ConnectOptions, InitInput, SyncInitInput } from "./chorus_client.js";

export type {
  Ack,
  ChorusBody,
  ChorusCloseEvent,
  ChorusErrorEvent,
  ChorusEventMap,
  ChorusJoinedEvent,
  ChorusLeftEvent,
  ChorusMessageEvent,
  ChorusOpenEvent,
  ChorusPresenceEvent,
  ChorusReconnectingEvent,
  ChorusState,
  ChorusTypingEvent,
  ConnectOptions,
  HistoryError,
  HistoryMessage,
  HistoryOptions,
  HistoryPage,
  InitInput,
  Position,
  PublishError,
  PublishErrorCode,
  SyncInitInput,
} from "./chorus_client.js";
export { ChorusClient } from "./chorus_client.js";

/**
 * Load the WebAssembly module. Call once before `ChorusClient.connect`; later calls return
 * the same Promise. By default the module is fetched from next to this file; pass a URL, a
 * `Response` or a compiled `WebAssembly.Module` to load it from elsewhere.
 */
export default function init(moduleOrPath?: InitInput | Promise<InitInput>): Promise<void>;

/** Load the WebAssembly module synchronously from its bytes or a compiled module. */
export function initSync(module: SyncInitInput): void;

/** `await init()`, then `ChorusClient.connect(url, options)`. */
export function connect(url: string, options: ConnectOptions): Promise<ChorusClient>;
