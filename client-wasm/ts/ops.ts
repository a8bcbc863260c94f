// What `Engine.input` does, by its `op` (client-wasm/src/engine.rs, `Op`). Imported as a
// namespace (`Op.Join`); the bundler inlines the numbers.

export const Connect = 0;
export const Leave = 1;
export const PublishText = 2;
export const PublishBytes = 3;
export const History = 4;
export const Typing = 5;
export const Close = 6;
export const Reconnect = 7;
export const Wake = 8;
export const TokenFetched = 9;
export const AuthProbed = 10;
export const SocketOpened = 11;
export const SocketFrame = 12;
export const SocketClosed = 13;
export const Tick = 14;
export const Wants = 15;
export const Join = 16;
export const Pending = 17;
