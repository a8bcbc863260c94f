// Compile-time tests of the package's types (index.d.ts, chorus_client.d.ts): `tsc --noEmit`
// must accept the right uses and reject each wrong one. A `@ts-expect-error` line whose
// next line compiles is itself an error ("unused directive"), so a type that became too
// loose fails the check too. Nothing here runs; the app does not import this file.

import init, { ChorusClient, connect, initSync } from "chorus-client";
import type {
  Ack,
  ChorusBody,
  ChorusEventMap,
  ChorusMessageEvent,
  ChorusPresenceEvent,
  ChorusState,
  ChorusTypingEvent,
  ConnectOptions,
  HistoryError,
  HistoryMessage,
  HistoryOptions,
  HistoryPage,
  Position,
  PublishError,
  PublishErrorCode,
} from "chorus-client";

export async function rightUses(): Promise<void> {
  await init();
  await init(new URL("/chorus_client_bg.wasm", location.href));
  initSync(new Uint8Array(8));
  const options: ConnectOptions = {
    getToken: async () => "token",
    initialBackoffMs: 500,
    typingIdleMs: 3000,
    requestTimeoutMs: 10_000,
  };
  const client: ChorusClient = ChorusClient.connect("/ws", options);
  const other: ChorusClient = await connect("wss://chat.example.com/ws", { token: "t" });

  client.on("open", ({ session, user }) => console.log(session.length, user.length));
  client.on("reconnecting", ({ attempt, delayMs }) => console.log(attempt + delayMs));
  client.on("close", ({ code, reason }) => console.log(code + 1, reason.length));
  client.on("joined", ({ room, members, position, recovery }) => {
    const kind: "not_requested" | "recovered" | "missed" = recovery;
    console.log(room, members.join(), position.epoch + position.seq, kind);
  });
  client.on("left", ({ room }) => console.log(room));
  const onMessage = (event: ChorusMessageEvent): void => {
    const body: ChorusBody = event.body;
    const text: string = typeof body === "string" ? body : new TextDecoder().decode(body);
    console.log(event.room, event.seq + event.id + event.ts, event.sender, text);
  };
  client.on("message", onMessage);
  client.off("message", onMessage);
  client.on("presence", (event: ChorusPresenceEvent) => {
    switch (event.kind) {
      case "list":
        console.log(event.members.length);
        break;
      case "join":
      case "leave":
        console.log(event.user.length);
        break;
    }
  });
  client.on("typing", ({ room, users }: ChorusTypingEvent) => console.log(room, users.length));
  client.on("error", ({ code, message, room }) => console.log(code + 1, message, room ?? "-"));

  client.join("lobby");
  const ack: Ack = await client.publish("lobby", "hello");
  const seq: number = ack.seq;
  await client.publish("lobby", new Uint8Array([1, 2, 3]));
  client.typing("lobby");
  const state: ChorusState = client.state;
  try {
    await client.publish("lobby", "again");
  } catch (error) {
    const failure = error as PublishError;
    const code: PublishErrorCode = failure.code;
    const serverCode: number | undefined = failure.serverCode;
    console.log(failure.name === "PublishError", code, serverCode);
  }

  // History: the newest page, then older pages while there are more.
  const latest: HistoryPage = await client.history("lobby");
  let page: HistoryPage = await client.history("lobby", { limit: 20 });
  let oldest: HistoryMessage | undefined = page.messages[0];
  while (page.more && oldest !== undefined) {
    const before: Position = { epoch: page.position.epoch, seq: oldest.seq };
    const options: HistoryOptions = { before, limit: 20 };
    page = await client.history(page.room, options);
    oldest = page.messages[0];
  }
  for (const { seq, id, sender, ts, body } of latest.messages) {
    const text: string = typeof body === "string" ? body : `${body.byteLength} bytes`;
    console.log(seq + id + ts, sender.length, text);
  }
  const first: HistoryMessage | undefined = latest.messages[0];
  console.log(first?.seq, latest.more === true, latest.position.epoch);
  await client.history("lobby", {});
  try {
    await client.history("lobby", { before: latest.position });
  } catch (error) {
    const failure = error as HistoryError;
    const historyCode: number = failure.code;
    if (failure.name === "HistoryError" && historyCode === 112) await client.history("lobby");
  }
  const eventNames: (keyof ChorusEventMap)[] = ["open", "message", "presence", "typing"];
  console.log(seq, state, eventNames);
  client.leave("lobby");
  client.close();
  other.free();
}

export async function wrongUses(client: ChorusClient): Promise<void> {
  // @ts-expect-error: there is no event "mesage"
  client.on("mesage", () => {});
  // @ts-expect-error: there is no event "connected" (it is "open")
  client.off("connected", () => {});
  // @ts-expect-error: a "message" handler gets a ChorusMessageEvent, not a typing event
  client.on("message", (event: ChorusTypingEvent) => console.log(event.users));
  // @ts-expect-error: "typing" payloads have `users`, not `user`
  client.on("typing", ({ user }) => console.log(user));
  // @ts-expect-error: a message body may be bytes, not only a string
  client.on("message", ({ body }) => body.toUpperCase());
  client.on("presence", (event) => {
    // @ts-expect-error: `members` exists only on the "list" kind; narrow on `kind` first
    console.log(event.members);
  });
  client.on("joined", ({ recovery }) => {
    // @ts-expect-error: "lost" is not a recovery value
    if (recovery === "lost") console.log(recovery);
  });
  client.on("error", ({ code }) => {
    // @ts-expect-error: error codes are numbers
    const name: string = code;
    console.log(name);
  });

  // @ts-expect-error: a body is a string or a Uint8Array, not a number
  await client.publish("lobby", 42);
  // @ts-expect-error: nor a plain object
  await client.publish("lobby", { text: "hi" });
  // @ts-expect-error: the room comes first and is required
  await client.publish("hello");
  const ack = await client.publish("lobby", "hi");
  // @ts-expect-error: an ack's id is a number
  const id: string = ack.id;
  console.log(id);

  // @ts-expect-error: the room is required
  await client.history();
  // @ts-expect-error: the room is a string
  await client.history(42);
  // @ts-expect-error: the limit is a number
  await client.history("lobby", { limit: "20" });
  // @ts-expect-error: `before` is a position { epoch, seq }, not a sequence number
  await client.history("lobby", { before: 10 });
  // @ts-expect-error: a position needs its epoch
  await client.history("lobby", { before: { seq: 10 } });
  // @ts-expect-error: unknown option (it is `before`)
  await client.history("lobby", { after: { epoch: 1, seq: 10 } });
  const page = await client.history("lobby");
  // @ts-expect-error: a page's messages may carry bytes, not only strings
  page.messages.map(({ body }) => body.toUpperCase());
  // @ts-expect-error: `more` is a boolean
  const more: number = page.more;
  console.log(more);
  // @ts-expect-error: history error codes are numbers
  const historyCode: string = ({} as HistoryError).code;
  console.log(historyCode);

  // @ts-expect-error: `state` is read-only
  client.state = "open";
  // @ts-expect-error: "connected" is not a state
  const state: ChorusState = "connected";
  // @ts-expect-error: "timeout" is not a publish error code (it is "timed_out")
  const code: PublishErrorCode = "timeout";
  console.log(state, code);

  // @ts-expect-error: the constructor is private; use ChorusClient.connect
  new ChorusClient();
  // @ts-expect-error: the options are required
  ChorusClient.connect("/ws");
  // @ts-expect-error: unknown option (a typo of `token`)
  ChorusClient.connect("/ws", { tokn: "t" });
  // @ts-expect-error: a token is a string
  ChorusClient.connect("/ws", { token: 1 });
  // @ts-expect-error: getToken returns a Promise of the token
  ChorusClient.connect("/ws", { getToken: () => "token" });
  // @ts-expect-error: backoff is a number of milliseconds
  ChorusClient.connect("/ws", { token: "t", initialBackoffMs: "1s" });
  // @ts-expect-error: connect() resolves to the client; it needs awaiting
  const notAwaited: ChorusClient = connect("/ws", { token: "t" });
  console.log(notAwaited);
  // @ts-expect-error: the URL is a string
  ChorusClient.connect(new URL("wss://chat.example.com/ws"), { token: "t" });
  // (No check that init(42) fails: InitInput includes WebAssembly.Module, an empty
  // interface in TypeScript's lib, which every value but null and undefined satisfies.)
}
