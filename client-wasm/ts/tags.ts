// The tags of the records the engine writes (client-wasm/src/engine.rs, "The record
// format"). Imported as a namespace (`Tag.Acked`); the bundler inlines the numbers.

export const OpenSocket = 1;
export const Send = 2;
export const CloseSocket = 3;
export const FetchToken = 4;
export const Probe = 5;
export const Acked = 6;
export const PublishFailed = 7;
export const History = 8;
export const HistoryFailed = 9;
export const Open = 10;
export const Close = 11;
export const Reconnecting = 12;
export const Joined = 13;
export const Left = 14;
export const Message = 15;
export const MemberJoined = 16;
export const MemberLeft = 17;
export const Typing = 18;
export const Error = 19;
export const State = 20;
export const Deadline = 21;
