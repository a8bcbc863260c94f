// The browser entry of `chorus-client` (and of bundlers): the module is fetched from next to
// this file by `init()`, or by `connect()` on first use.

export * from "./api.js";
export { default } from "./api.js";
