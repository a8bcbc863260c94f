// Compile-time tests of the package's types (index.d.ts and the declarations beside it):
// `tsc --noEmit` must accept the right uses and reject each wrong one. A `@ts-expect-error`
// line whose next line compiles is itself an error ("unused directive"), so a type that
// became too loose fails the check too. Nothing here runs; the app does not import this file.

import init, { ChorusError, Client, ErrorCode, Room, Timeline, connect, initSync } from "chorus-client";
import type {
  Ack,
  ClientEvents,
  ClientOptions,
  ClientState,
  Codec,
  ErrorName,
  HistoryOptions,
  HistoryPage,
  JoinedInfo,
  Message,
  Position,
  PresenceEvent,
  PublishPromise,
  Reason,
  Recovery,
  RoomEvents,
  RoomState,
  WebSocketConstructor,
} from "chorus-client";

/** An app's message type, carried by a JSON room. */
interface ChatMessage {
  text: string;
  sentAt: number;
  replyTo?: number;
}

export async function rightUses(): Promise<void> {
  await init();
  await init(new URL("/chorus_client_bg.wasm", location.href));
  initSync(new Uint8Array(8));

  const options: ClientOptions = {
    getToken: async () => "token",
    WebSocket,
    maxReconnectAttempts: 10,
    initialBackoffMs: 500,
    maxBackoffMs: 30_000,
    publishTimeoutMs: 15_000,
    requestTimeoutMs: 10_000,
    queueMaxMessages: 256,
    typingIdleMs: 3000,
  };
  const client: Client = new Client("/ws", options);
  const other: Client = await connect("wss://chat.example.com/ws", { token: "t" });
  const socketClass: WebSocketConstructor = WebSocket;
  console.log(socketClass);

  // Events: each handler gets its own payload; `on` and `once` return the function that
  // removes the handler.
  const stopState: () => void = client.on("state", ({ state, previous, reason }) => {
    const now: ClientState = state;
    const was: ClientState = previous;
    const why: Reason = reason;
    console.log(now, was, why.code + 1, why.text.length);
  });
  stopState();
  client.on("open", ({ session, user }) => console.log(session.length, user.length));
  client.on("reconnecting", ({ attempt, delayMs, reason: { code, text } }) =>
    console.log(attempt + delayMs + code, text),
  );
  client.on("close", ({ code, text }) => console.log(code + 1, text.length));
  const onError = (error: ChorusError): void => {
    if (error.code === ErrorCode.Unauthorized || error.code === ErrorCode.TokenUnavailable) {
      console.log(error.name, error.message, error.room ?? "-");
    }
  };
  client.on("error", onError);
  client.off("error", onError);
  const cancel: () => void = client.once("open", ({ user }) => console.log(user));
  cancel();
  const state: ClientState = client.state;
  const user: string | undefined = client.user;
  const session: string | undefined = client.session;
  const pending: number = client.pendingPublishes;
  console.log(state, user, session, pending);

  // A typed JSON room: publish takes a ChatMessage, messages carry one.
  const lobby: Room<ChatMessage> = client.room<ChatMessage>("lobby", { codec: "json" });
  const stopMessages = lobby.on("message", (message: Message<ChatMessage>) => {
    const { room, seq, id, sender, ts, data } = message;
    console.log(room, seq + id + ts, sender, data.text.toUpperCase(), data.sentAt + 1, data.replyTo);
  });
  stopMessages();
  const info: JoinedInfo = await lobby.join();
  const recovery: Recovery = info.recovery;
  const members: string[] = info.members;
  console.log(recovery, members, info.room);
  const stored: Position | undefined = lobby.position;
  if (stored) await lobby.join({ since: stored });
  lobby.on("joined", ({ recovery }) => {
    if (recovery === "missed") console.log("reload the room");
  });
  lobby.on("left", ({ room }) => console.log(room));
  lobby.on("presence", (event: PresenceEvent) => {
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
  lobby.on("typing", ({ room, users }) => console.log(room, users.join()));
  lobby.on("error", ({ code, room }) => console.log(code === ErrorCode.DecodeFailed, room));
  const roomState: RoomState = lobby.state;
  const present: readonly string[] = lobby.members;
  const typists: readonly string[] = lobby.typingUsers;
  console.log(roomState, present, typists, lobby.name);

  // publish: a Promise of the ack, with the message id known at once.
  const publish: PublishPromise = lobby.publish({ text: "hi", sentAt: Date.now() });
  const id: number = publish.id;
  const ack: Ack = await publish;
  const seq: number = ack.seq;
  console.log(id === ack.id, seq, ack.room);
  await lobby.publish({ text: "again", sentAt: 0, replyTo: seq }, { id: 42 });
  try {
    await lobby.publish({ text: "maybe", sentAt: 0 });
  } catch (error) {
    if (error instanceof ChorusError) {
      switch (error.code) {
        case ErrorCode.QueueFull:
        case ErrorCode.TimedOut:
          console.log("retry message", error.id);
          break;
        case ErrorCode.BodyTooLarge:
          console.log(error.size, error.max);
          break;
      }
    }
  }
  lobby.typing();

  // History pages, typed by the room's codec, and paging back with `before`.
  let page: HistoryPage<ChatMessage> = await lobby.history({ limit: 20 });
  let oldest: Message<ChatMessage> | undefined = page.messages[0];
  while (page.more && oldest !== undefined) {
    const before: Position = { epoch: page.position.epoch, seq: oldest.seq };
    const options: HistoryOptions = { before, limit: 20 };
    page = await lobby.history(options);
    oldest = page.messages[0];
  }
  console.log(page.messages.map(({ data }) => data.text), page.room);

  // The timeline: history and live messages merged.
  const timeline: Timeline<ChatMessage> = lobby.timeline({ pageSize: 20, max: 500 });
  const stopTimeline: () => void = timeline.on("change", (messages) => {
    console.log(messages.map(({ seq, data }) => `${seq}: ${data.text}`));
  });
  timeline.on("error", (error: ChorusError) => console.log(error.code));
  const shown: readonly Message<ChatMessage>[] = timeline.messages;
  const more: boolean = await timeline.loadOlder();
  console.log(shown.length, more, timeline.more);
  stopTimeline();
  timeline.dispose();

  // The default room carries strings and bytes as they are.
  const raw: Room = client.room("raw");
  const same: Room<string | Uint8Array> = raw;
  await raw.publish("text");
  await same.publish(new Uint8Array([1, 2, 3]));
  raw.on("message", ({ data }) => {
    const text: string = typeof data === "string" ? data : new TextDecoder().decode(data);
    console.log(text);
  });

  // A codec of one's own.
  const dates: Codec<Date> = {
    encode: (date) => date.toISOString(),
    decode: (body) => new Date(typeof body === "string" ? body : new TextDecoder().decode(body)),
  };
  const calendar = client.room("calendar", { codec: dates });
  await calendar.publish(new Date());
  calendar.on("message", ({ data }) => console.log(data.getTime()));

  // Error codes: named constants with their literal values.
  const noWebSocket: 609 = ErrorCode.NoWebSocket;
  const name: ErrorName = "QueueFull";
  const code: number = ErrorCode[name];
  const failure = new ChorusError(ErrorCode.InvalidArgument, "bad");
  console.log(noWebSocket, code, failure.code, failure instanceof Error);

  const clientEvents: (keyof ClientEvents)[] = ["state", "open", "reconnecting", "close", "error"];
  const roomEvents: (keyof RoomEvents<ChatMessage>)[] = ["message", "joined", "presence", "typing"];
  console.log(clientEvents, roomEvents);
  lobby.leave();
  client.reconnect();
  client.close();
  other.close();
}

export async function wrongUses(client: Client): Promise<void> {
  // @ts-expect-error: there is no event "mesage"
  client.on("mesage", () => {});
  // @ts-expect-error: messages are room events, not client events
  client.on("message", () => {});
  // @ts-expect-error: there is no event "connected" (it is "open", or "state")
  client.off("connected", () => {});
  // @ts-expect-error: `off` needs the handler that `on` was given
  client.off("open");
  // @ts-expect-error: an "open" handler gets { session, user }, strings
  client.on("open", ({ user }: { user: number }) => console.log(user));
  // @ts-expect-error: "close" carries a Reason { code, text }, not `reason`
  client.on("close", ({ reason }) => console.log(reason));
  client.on("state", ({ state }) => {
    // @ts-expect-error: "connected" is not a state
    if (state === "connected") console.log(state);
  });
  // @ts-expect-error: `on` returns the unsubscribe function, not the client: no chaining
  client.on("open", () => {}).on("close", () => {});
  // @ts-expect-error: the unsubscribe function takes no handler
  client.on("open", () => {})(() => {});

  const lobby = client.room<ChatMessage>("lobby", { codec: "json" });
  // @ts-expect-error: a JSON room of ChatMessage publishes ChatMessages, not strings
  lobby.publish("hello");
  // @ts-expect-error: `text` is a string
  lobby.publish({ text: 1, sentAt: 0 });
  // @ts-expect-error: `sentAt` is required
  lobby.publish({ text: "hi" });
  // @ts-expect-error: a message's `data` is a ChatMessage, not a string
  lobby.on("message", ({ data }) => data.toUpperCase());
  // @ts-expect-error: a message has `data`, not `body`
  lobby.on("message", ({ body }) => console.log(body));
  // @ts-expect-error: a "message" handler gets a Message, not a typing event
  lobby.on("message", (event: { users: string[] }) => console.log(event.users));
  // @ts-expect-error: "typing" payloads have `users`, not `user`
  lobby.on("typing", ({ user }) => console.log(user));
  lobby.on("presence", (event) => {
    // @ts-expect-error: `members` exists only on the "list" kind; narrow on `kind` first
    console.log(event.members);
  });
  lobby.on("joined", ({ recovery }) => {
    // @ts-expect-error: "lost" is not a recovery value
    if (recovery === "lost") console.log(recovery);
  });
  // @ts-expect-error: a timeline has "change" and "error" events, not "message"
  lobby.timeline().on("message", () => {});
  // @ts-expect-error: the timeline's list is read-only
  lobby.timeline().messages.push({} as Message<ChatMessage>);
  // @ts-expect-error: the member list is read-only
  lobby.members.push("mallory");

  const publish = lobby.publish({ text: "hi", sentAt: 0 });
  // @ts-expect-error: the message id is a number
  const id: string = publish.id;
  // @ts-expect-error: the message id is read-only
  publish.id = 7;
  const ack = await publish;
  // @ts-expect-error: an ack's seq is a number
  const seq: string = ack.seq;
  // @ts-expect-error: the id option is a number
  lobby.publish({ text: "hi", sentAt: 0 }, { id: "a" });
  console.log(id, seq);

  const raw = client.room("raw");
  // @ts-expect-error: a raw body is a string or a Uint8Array, not a number
  raw.publish(42);
  // @ts-expect-error: nor a plain object (use a JSON room)
  raw.publish({ text: "hi" });
  // @ts-expect-error: a raw message's data may be bytes, not only a string
  raw.on("message", ({ data }) => data.toUpperCase());
  // @ts-expect-error: "xml" is not a codec
  client.room("feed", { codec: "xml" });
  // @ts-expect-error: a codec needs `decode` too
  client.room<Date>("dates", { codec: { encode: (date: Date) => date.toISOString() } });
  // @ts-expect-error: the room name is a string
  client.room(42);

  // @ts-expect-error: `since` is a position { epoch, seq }, not a sequence number
  lobby.join({ since: 10 });
  // @ts-expect-error: `before` is a position { epoch, seq }, not a sequence number
  lobby.history({ before: 10 });
  // @ts-expect-error: a position needs its epoch
  lobby.history({ before: { seq: 10 } });
  // @ts-expect-error: the limit is a number
  lobby.history({ limit: "20" });
  // @ts-expect-error: unknown option (it is `before`)
  lobby.history({ after: { epoch: 1, seq: 10 } });
  const page = await lobby.history();
  // @ts-expect-error: a page's messages carry ChatMessages
  page.messages.map(({ data }) => data.toUpperCase());
  // @ts-expect-error: `more` is a boolean
  const more: number = page.more;
  console.log(more);

  // @ts-expect-error: error codes are named constants; there is no `Timeout`
  console.log(ErrorCode.Timeout);
  // @ts-expect-error: the constants are read-only
  ErrorCode.QueueFull = 1;
  // @ts-expect-error: each constant has its literal value: QueueFull is 607, not 608
  const queueFull: 608 = ErrorCode.QueueFull;
  // @ts-expect-error: "Timeout" is not an error name
  const name: ErrorName = "Timeout";
  const error = new ChorusError(ErrorCode.Closed, "closed");
  // @ts-expect-error: an error's code is a number
  const code: string = error.code;
  // @ts-expect-error: an error's code is read-only
  error.code = 600;
  console.log(queueFull, name, code);

  // @ts-expect-error: `state` is read-only
  client.state = "open";
  // @ts-expect-error: "connected" is not a state
  const state: ClientState = "connected";
  // @ts-expect-error: "member" is not a room state
  const roomState: RoomState = "member";
  console.log(state, roomState);

  // @ts-expect-error: the options are required
  new Client("/ws");
  // @ts-expect-error: unknown option (a typo of `token`)
  new Client("/ws", { tokn: "t" });
  // @ts-expect-error: a token is a string
  new Client("/ws", { token: 1 });
  // @ts-expect-error: getToken returns a Promise of the token
  new Client("/ws", { getToken: () => "token" });
  // @ts-expect-error: backoff is a number of milliseconds
  new Client("/ws", { token: "t", initialBackoffMs: "1s" });
  // @ts-expect-error: the WebSocket option is a class, not a URL or a name
  new Client("/ws", { token: "t", WebSocket: "ws" });
  // @ts-expect-error: the URL is a string
  new Client(new URL("wss://chat.example.com/ws"), { token: "t" });
  // @ts-expect-error: connect() resolves to the client; it needs awaiting
  const notAwaited: Client = connect("/ws", { token: "t" });
  console.log(notAwaited);

  // The engine and the shell's internals are not part of the API.
  // @ts-expect-error: the engine is internal
  console.log(client.engine);
  // @ts-expect-error: so is the shell's pump
  client.pump();
  // @ts-expect-error: and a room's decoding
  lobby.decode({});
  // @ts-expect-error: events are emitted by the package, not by apps
  lobby.emit("message", {} as Message<ChatMessage>);
  // (No check that init(42) fails: InitInput includes WebAssembly.Module, an empty
  // interface in TypeScript's lib, which every value but null and undefined satisfies.)
}
