// The Chorus demo chat. It uses the npm package `chorus-client` exactly as an app would: the
// package entry (index.js), which the server serves at /pkg/.
//
// Everything user-supplied (nicknames, room names, message text) reaches the page as text
// nodes or attribute values, never as HTML.
//
// The session survives a reload: the nickname, the token, the rooms with the position each
// had reached, and the messages not yet acknowledged are kept in sessionStorage (this tab
// only), and the reloaded page joins each room again with `join({ since })`, so what was
// published meanwhile is replayed, and sends the unacknowledged messages again with their
// ids, so each is delivered once.
//
// Payloads travel with the room's default "raw" codec: text messages are strings, images are
// bytes, and a backend's `POST /api/publish` text reads as a message like any other.

import init, { Client, ErrorCode } from "/pkg/index.js";
import {
  DEFAULT_MAX_BODY,
  byteLength,
  continuesGroup,
  formatBytes,
  nicknameError,
  reasonText,
  roomError,
  statusLine,
  typingLine,
} from "./rules.js";

/** Messages kept per room; older ones are dropped, and their images released. */
const MAX_MESSAGES = 500;
/** Messages asked for per history page: on joining a room, and per "Load older messages". */
const HISTORY_PAGE = 50;
/** Error codes not worth interrupting anyone for: typing refused or rate limited. */
const QUIET_ERRORS = new Set([ErrorCode.RateLimited, ErrorCode.TypingDisabled]);
/** Client errors that close the client for good; the `close` event follows. */
const FATAL_ERRORS = new Set([
  ErrorCode.Unauthorized,
  ErrorCode.DoNotRetry,
  ErrorCode.AttemptsExhausted,
]);
/** A log scrolled to within this many pixels of its end follows new messages. */
const STICK_PX = 48;
/** The last nickname, to prefill the sign-in form (localStorage: kept across visits). */
const NICKNAME_KEY = "chorus.nickname";
/** The signed-in session, to resume it after a reload (sessionStorage: this tab only). */
const SESSION_KEY = "chorus.session";

/** Elements with an id, by that id in camelCase: #message-input is ui.messageInput. */
const ui = {};
for (const element of document.querySelectorAll("[id]")) {
  ui[element.id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = element;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

// Start loading the WebAssembly module while the user picks a nickname. A failure is
// reported when they try to connect (init() may then be called again).
init().catch(() => {});

/**
 * The signed-in session, or null. `connection` is the client's state ("connecting", "open",
 * "reconnecting"), `reason` why it last changed; `retry` is { attempt, until } from the
 * first `reconnecting` event of an outage until the connection is open again.
 */
let session = null;
/** Whether a session has ended: the status then says "Closed" rather than "Not signed in". */
let everClosed = false;
/** Why the last session closed, when it was not signed out. */
let closedReason = "";

// ---------------------------------------------------------------------------------------
// Small helpers

/** An element with attributes; string children become text nodes (never parsed as HTML). */
function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

/** A stable hue for a user name, for their avatar and name colour. */
function hue(name) {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) % 360;
  return hash;
}

function storedNickname() {
  try {
    return localStorage.getItem(NICKNAME_KEY) ?? "";
  } catch {
    return "";
  }
}

function storeNickname(name) {
  try {
    localStorage.setItem(NICKNAME_KEY, name);
  } catch {
    // Storage may be off (private mode): only the prefill is lost.
  }
}

function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/** A token for `user` from the dev server (`chorus-server serve --dev`). */
async function fetchToken(user) {
  let response;
  try {
    response = await fetch("/api/dev/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user }),
    });
  } catch {
    throw new Error("Could not reach the server to get a token.");
  }
  const answer = await response.json().catch(() => null);
  if (response.ok && typeof answer?.token === "string") return answer.token;
  if (response.status === 404 || response.status === 405) {
    throw new Error("This server does not hand out demo tokens (run it with --dev).");
  }
  if (typeof answer?.error === "string") {
    throw new Error(`The server refused the nickname: ${answer.error}`);
  }
  throw new Error(`Getting a token failed (HTTP ${response.status}).`);
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// ---------------------------------------------------------------------------------------
// The session in sessionStorage

/**
 * The stored session, or null: `{ nickname, token, active, rooms: [{ name, position }],
 * pending: [{ room, id, ts, text } | { room, id, ts, bytes }] }` (`bytes` in base64).
 */
function storedSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (typeof stored?.nickname !== "string" || typeof stored.token !== "string") return null;
    return {
      nickname: stored.nickname,
      token: stored.token,
      active: typeof stored.active === "string" ? stored.active : null,
      rooms: Array.isArray(stored.rooms) ? stored.rooms : [],
      pending: Array.isArray(stored.pending) ? stored.pending : [],
    };
  } catch {
    return null;
  }
}

let saveQueued = false;

/** Store the session once the current task's changes are done. */
function saveSoon() {
  if (saveQueued) return;
  saveQueued = true;
  queueMicrotask(() => {
    saveQueued = false;
    saveSession();
  });
}

function saveSession() {
  if (!session || session.ending) return;
  const rooms = [...session.rooms.values()]
    .filter((room) => room.status !== "error")
    .map((room) => ({ name: room.name, position: room.handle.position ?? room.since }));
  const pending = [...session.outgoing]
    .filter((entry) => !entry.discarded && entry.id !== null)
    .map(({ room, id, ts, body }) =>
      typeof body === "string"
        ? { room: room.name, id, ts, text: body }
        : { room: room.name, id, ts, bytes: toBase64(body) },
    );
  const stored = {
    nickname: session.nickname,
    token: session.token,
    active: session.active?.name ?? null,
    rooms,
    pending,
  };
  try {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(stored));
  } catch {
    // Storage off or full (large images waiting): a reload then starts from the sign-in.
  }
}

function forgetSession() {
  try {
    sessionStorage.removeItem(SESSION_KEY);
  } catch {
    // Nothing stored.
  }
}

// ---------------------------------------------------------------------------------------
// Connection status and the banner

/** The connection as the status line shows it: "reconnecting" until open again. */
function shownConnection() {
  if (!session) return everClosed ? "closed" : "idle";
  return session.connection === "connecting" && session.retry ? "reconnecting" : session.connection;
}

function renderStatus() {
  const connection = shownConnection();
  const retry = session?.retry
    ? { attempt: session.retry.attempt, remainingMs: session.retry.until - performance.now() }
    : null;
  const reason =
    connection === "reconnecting" ? session.reason : connection === "closed" ? closedReason : "";
  const { state, text } = statusLine(connection, navigator.onLine, retry, reason);
  // Only real changes, so the live region is not told the same thing again.
  if (ui.connectionText.textContent !== text) {
    ui.connectionText.textContent = text;
    ui.connectionText.title = text;
  }
  ui.connectionStatus.dataset.state = state;
  // For tests and the curious: how many times this session started waiting to reconnect.
  ui.connectionStatus.dataset.reconnects = String(session?.reconnects ?? 0);
  ui.retryNow.hidden = connection !== "reconnecting";
  if (retry && retry.remainingMs <= 0) stopTicker();
}

function startTicker() {
  if (session && !session.ticker) session.ticker = setInterval(renderStatus, 250);
}

function stopTicker() {
  if (session?.ticker) {
    clearInterval(session.ticker);
    session.ticker = 0;
  }
}

addEventListener("online", renderStatus);
addEventListener("offline", renderStatus);

ui.retryNow.addEventListener("click", () => session?.client.reconnect());

/** What the banner is about: "token" ones go away once connected again. */
let bannerKind = "";

function showBanner(text, kind = "") {
  ui.bannerText.textContent = text;
  ui.banner.hidden = false;
  bannerKind = kind;
}

function hideBanner() {
  ui.banner.hidden = true;
  ui.bannerText.textContent = "";
  bannerKind = "";
}

ui.bannerClose.addEventListener("click", hideBanner);

// ---------------------------------------------------------------------------------------
// Signing in and out

ui.nicknameInput.value = storedNickname();

ui.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (session || ui.loginButton.disabled) return;
  const nickname = ui.nicknameInput.value.trim();
  const problem = nicknameError(nickname);
  if (problem) {
    loginError(problem);
    return;
  }
  loginError("");
  setConnecting(true);
  try {
    const [token] = await Promise.all([fetchToken(nickname), loadClient()]);
    start(nickname, token);
    storeNickname(nickname);
    ui.roomInput.focus();
    ui.roomInput.select();
  } catch (error) {
    loginError(error.message);
  } finally {
    setConnecting(false);
  }
});

ui.nicknameInput.addEventListener("input", () => loginError(""));

function loginError(text) {
  ui.loginError.textContent = text;
  if (text) {
    ui.nicknameInput.setAttribute("aria-invalid", "true");
    ui.nicknameInput.focus();
  } else {
    ui.nicknameInput.removeAttribute("aria-invalid");
  }
}

function setConnecting(connecting) {
  ui.loginButton.disabled = connecting;
  ui.loginButton.textContent = connecting ? "Connecting…" : "Connect";
}

function loadClient() {
  return init().catch((error) => {
    throw new Error(`Could not load the chat client: ${error.message}`);
  });
}

/** Resume the session stored before a reload: the same user, rooms and unsent messages. */
async function resume(stored) {
  ui.nicknameInput.value = stored.nickname;
  setConnecting(true);
  try {
    await loadClient();
    if (session) return;
    start(stored.nickname, stored.token);
  } catch (error) {
    loginError(error.message);
    return;
  } finally {
    setConnecting(false);
  }
  for (const { name, position } of stored.rooms) {
    if (typeof name !== "string" || roomError(name) || session.rooms.has(name)) continue;
    joinRoom(addRoom(name), validPosition(position) ? position : undefined);
  }
  // After the joins, so that they go out after them.
  for (const message of stored.pending) {
    const room = session.rooms.get(message.room);
    if (!room || !Number.isSafeInteger(message.id)) continue;
    const body = typeof message.text === "string" ? message.text : fromBase64(message.bytes ?? "");
    publish(room, body, undefined, { id: message.id, ts: message.ts });
  }
  const active = session.rooms.get(stored.active) ?? session.rooms.values().next().value;
  if (active) {
    selectRoom(active);
    ui.messageInput.focus();
  }
  saveSession();
}

function validPosition(position) {
  return Number.isInteger(position?.epoch) && Number.isInteger(position?.seq);
}

function start(nickname, token) {
  const client = new Client(wsUrl(), {
    token,
    // Asked again when the server refuses or expires the token.
    getToken: async () => {
      const fresh = await fetchToken(nickname);
      if (session?.client === client) {
        session.token = fresh;
        saveSoon();
      }
      return fresh;
    },
  });
  session = {
    client,
    nickname,
    token,
    me: nickname,
    connection: client.state,
    reason: "",
    retry: null,
    reconnects: 0,
    ticker: 0,
    rooms: new Map(),
    active: null,
    /** Largest body the server takes; a BodyTooLarge rejection tells the real one. */
    maxBody: DEFAULT_MAX_BODY,
    /** Own messages not yet acknowledged: queued or pending. */
    outgoing: new Set(),
    /** The error that closes the client for good, just before its `close` event. */
    fatal: null,
    signingOut: false,
    /** The page is going away: the stored session stays, to be resumed. */
    unloading: false,
    ending: false,
  };
  client.on("state", onState);
  client.on("open", onOpen);
  client.on("reconnecting", onReconnecting);
  client.on("close", onClose);
  client.on("error", onClientError);

  hideBanner();
  closedReason = "";
  ui.whoami.textContent = nickname;
  ui.account.hidden = false;
  ui.loginView.hidden = true;
  ui.chatView.hidden = false;
  renderStatus();
  renderRoom();
  saveSession();
}

ui.signOut.addEventListener("click", () => {
  if (!session) return;
  session.signingOut = true;
  session.client.close(); // fires "close" before it returns
  if (session) end();
});

// Leave the rooms at once rather than when the server notices the socket is gone. The
// session stays stored: the page that comes next (a reload) resumes it.
addEventListener("pagehide", () => {
  if (!session) return;
  saveSession();
  session.signingOut = true;
  session.unloading = true;
  session.client.close();
});

// Back from the back/forward cache: the client was closed on the way out.
addEventListener("pageshow", (event) => {
  const stored = event.persisted && !session ? storedSession() : null;
  if (stored) resume(stored);
});

/** After the "close" event: drop everything and show the sign-in form again. */
function end() {
  const { rooms, ticker, unloading } = session;
  session.ending = true;
  clearInterval(ticker);
  for (const room of rooms.values()) discardRoom(room);
  session = null;
  everClosed = true;
  if (!unloading) forgetSession();

  ui.roomList.replaceChildren();
  ui.messageLog.replaceChildren();
  ui.historyStatus.textContent = "";
  ui.account.hidden = true;
  ui.chatView.hidden = true;
  ui.loginView.hidden = false;
  ui.roomInput.value = "lobby";
  renderStatus();
  renderTitle();
  ui.nicknameInput.focus();
}

// ---------------------------------------------------------------------------------------
// Client events

function onState({ state, reason }) {
  session.connection = state;
  session.reason = state === "open" ? "" : reason.text;
  if (state === "open") session.retry = null;
  renderStatus();
}

function onOpen({ user }) {
  session.me = user;
  stopTicker();
  if (bannerKind === "token") hideBanner();
  for (const entry of session.outgoing) {
    if (entry.status === "queued") setStatus(entry, "pending");
  }
  renderStatus();
}

function onReconnecting({ attempt, delayMs }) {
  session.retry = { attempt, until: performance.now() + delayMs };
  session.reconnects += 1;
  // Sent but unacknowledged messages go out again after the reconnect.
  for (const entry of session.outgoing) {
    if (entry.status === "pending") setStatus(entry, "queued");
  }
  // Nobody is seen typing through a lost connection; the rejoin tells who is present.
  for (const room of session.rooms.values()) room.typing = [];
  if (session.active) renderTyping();
  renderStatus();
  startTicker();
}

function onClose({ code, text }) {
  const { signingOut, fatal } = session;
  closedReason = signingOut ? "" : (fatal?.message ?? text);
  end();
  if (!signingOut) {
    const why = fatal?.message ?? (reasonText(text) || "no reason given");
    showBanner(`The connection was closed: ${why} (code ${code}).`);
  }
}

/** A failure no Promise reports and no room owns. */
function onClientError(error) {
  if (FATAL_ERRORS.has(error.code)) {
    // The close that follows says it.
    session.fatal = error;
    return;
  }
  if (QUIET_ERRORS.has(error.code)) {
    console.info("chorus:", error.name, error.message);
    return;
  }
  if (error.code === ErrorCode.TokenUnavailable) {
    showBanner(`Could not get a new token: ${error.message}`, "token");
  } else {
    showBanner(error.message);
  }
}

// ---------------------------------------------------------------------------------------
// Rooms

ui.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.roomInput.value.trim();
  const problem = roomError(name);
  if (problem) {
    roomInputError(problem);
    return;
  }
  let room = session.rooms.get(name);
  if (!room) {
    room = addRoom(name);
    joinRoom(room);
  } else if (room.status === "error") {
    // Try again a join the server refused.
    joinRoom(room);
  }
  roomInputError("");
  ui.roomInput.value = "";
  selectRoom(room);
  ui.messageInput.focus();
});

ui.roomInput.addEventListener("input", () => roomInputError(""));

function roomInputError(text) {
  ui.roomError.textContent = text;
  if (text) {
    ui.roomInput.setAttribute("aria-invalid", "true");
    ui.roomInput.focus();
  } else {
    ui.roomInput.removeAttribute("aria-invalid");
  }
}

/** Join `room` (again, after a refusal), resuming from `since` when given. */
function joinRoom(room, since) {
  room.status = "joining";
  room.error = "";
  room.since = since ?? null;
  renderRoomItem(room);
  if (room === session.active) renderRoom();
  room.handle.join(since ? { since } : {}).catch((error) => {
    // Left first, or signed out: nothing to say. A refusal also comes as the room's
    // `error` event (on a rejoin after a reconnect, only so).
    if (error.code !== ErrorCode.NotJoined && error.code !== ErrorCode.Closed) {
      joinRefused(room, error);
    }
  });
  saveSoon();
}

function joinRefused(room, error) {
  if (session?.rooms.get(room.name) !== room || room.status === "error") return;
  room.status = "error";
  room.error = `Could not join: ${error.message}`;
  renderRoomItem(room);
  if (room === session.active) renderRoom();
  saveSoon();
}

/** A room in the list, with its handle's events followed (until it is left). */
function addRoom(name) {
  const badge = h("span", { class: "badge", "aria-hidden": "true", "data-testid": "unread-count" });
  const unreadText = h("span", { class: "sr-only" });
  const state = h("span", { class: "room-item-state", "data-testid": "room-item-state" });
  const button = h(
    "button",
    { type: "button", class: "room-button", "data-testid": "room-button" },
    h("span", { class: "room-name" }, name),
    state,
    badge,
    unreadText,
  );
  const item = h(
    "li",
    { class: "room-item", "data-testid": "room-item", "data-room": name },
    button,
  );
  const handle = session.client.room(name);
  const room = {
    name,
    handle,
    /** "joining", "joined" or "error" (the server refused the join). */
    status: "joining",
    error: "",
    /** The position the join resumes from (after a reload), until joined. */
    since: null,
    /** What the last join's resume request became ("not_requested" without one). */
    recovery: "",
    members: new Set(),
    typing: [],
    unread: 0,
    /** The epoch of the room's history, from the last join: sequences compare within one. */
    epoch: null,
    /** Message entries, oldest first. */
    entries: [],
    /** Entries by sender and message id: dedupes echoes and replays. */
    byKey: new Map(),
    /** Entries of this epoch by sequence: a message both in a history page and live once. */
    bySeq: new Map(),
    /**
     * Paging back: `oldest` is the sequence the next older page ends before, `more` whether
     * the server has older messages, `loading` "recent" or "older" while a page is on its
     * way, `failed` the page that failed ("recent" or "older") and `error` why; `asked`
     * whether the recent messages were asked for since the room was added.
     */
    history: { oldest: null, more: false, loading: "", failed: "", error: "", asked: false },
    list: h("ol", { class: "messages" }),
    historyBar: null,
    olderButton: null,
    historyNote: null,
    /** Whether the log follows new messages (the user has not scrolled up). */
    stick: true,
    scrollTop: 0,
    item,
    button,
    badge,
    unreadText,
    state,
    /** Stop following the handle's events. */
    unfollow: [],
  };
  room.unfollow = [
    handle.on("joined", (info) => onJoined(room, info)),
    handle.on("message", (message) => onMessage(room, message)),
    handle.on("presence", (event) => onPresence(room, event)),
    handle.on("typing", ({ users }) => onTyping(room, users)),
    handle.on("error", (error) => onRoomError(room, error)),
  ];
  button.addEventListener("click", () => {
    selectRoom(room);
    ui.messageInput.focus();
  });
  room.olderButton = h(
    "button",
    { type: "button", class: "button quiet", "data-testid": "load-older" },
    "Load older messages",
  );
  room.olderButton.addEventListener("click", () => {
    if (room.history.loading) return;
    loadHistory(room, room.history.failed === "recent" ? "recent" : "older");
  });
  room.historyNote = h("span", { class: "history-note", "data-testid": "history-note" });
  room.historyBar = h(
    "li",
    { class: "history-bar", "data-testid": "history-bar", hidden: true },
    room.historyNote,
    room.olderButton,
  );
  room.list.append(room.historyBar);
  session.rooms.set(name, room);
  ui.roomList.append(item);
  renderRoomItem(room);
  return room;
}

function onJoined(room, { members, position, recovery }) {
  room.status = "joined";
  room.error = "";
  room.since = null;
  room.recovery = recovery;
  room.members = new Set(members);
  if (room.epoch !== position.epoch) {
    // Another history (the server lost the old one): its sequences start again, and
    // the old one can no longer be paged through.
    room.epoch = position.epoch;
    room.bySeq.clear();
    room.history.oldest = null;
    room.history.more = false;
  }
  if (recovery === "missed" && room.entries.length > 0) {
    addNotice(
      room,
      "Reconnected, but the server could not replay everything: " +
        "messages sent while you were away may be missing.",
    );
  }
  renderRoomItem(room);
  if (room === session.active) renderRoom();
  // The first join shows what the room said recently (after a reload too: the replay
  // brings only what was published since); after a gap the replay could not fill, what
  // the server still has is shown too. ("recovered": nothing was lost.)
  if (recovery !== "recovered" || !room.history.asked) loadHistory(room);
  saveSoon();
}

function onMessage(room, message) {
  const key = keyOf(message.sender, message.id);
  // Shown already: our own message (by its id), or from a history page (by its seq).
  const known = room.byKey.get(key) ?? room.bySeq.get(message.seq);
  if (known) {
    // The echo of our own message: adopt the server's time and sequence.
    if (known.own) {
      setTime(known, message.ts, false);
      setSeq(known, message.seq);
    }
  } else {
    const own = message.sender === session.me;
    const entry = messageView(room, {
      sender: message.sender,
      ts: message.ts,
      own,
      body: message.data,
    });
    setId(entry, message.id);
    setSeq(entry, message.seq);
    addEntry(room, entry);
    if (!own && room !== session.active) {
      room.unread += 1;
      renderRoomItem(room);
      renderTitle();
    }
  }
  saveSoon(); // The room's position moved.
}

function onPresence(room, event) {
  if (event.kind === "list") room.members = new Set(event.members);
  else if (event.kind === "join") room.members.add(event.user);
  else if (event.kind === "leave") room.members.delete(event.user);
  if (room === session.active) renderMembers();
}

function onTyping(room, users) {
  room.typing = users.filter((user) => user !== session.me);
  if (room === session.active) renderTyping();
}

function onRoomError(room, error) {
  // Refused for good: the handle stopped wanting the room.
  if (room.handle.state === "left") {
    joinRefused(room, error);
    return;
  }
  if (QUIET_ERRORS.has(error.code)) {
    console.info("chorus:", room.name, error.name, error.message);
    return;
  }
  showBanner(`${room.name}: ${error.message}`);
}

function selectRoom(room) {
  const previous = session.active;
  if (previous && previous !== room) {
    previous.scrollTop = ui.messageLog.scrollTop;
  }
  session.active = room;
  if (room) room.unread = 0;
  if (previous !== room) composerError("");
  if (previous) renderRoomItem(previous);
  if (room) renderRoomItem(room);
  renderTitle();

  // Swap the log's content without the screen reader reading the whole room out.
  if (previous !== room) {
    quietLog();
    ui.messageLog.replaceChildren(...(room ? [room.list] : []));
  }
  renderRoom();
  if (room) {
    if (room.stick) scrollToEnd();
    else ui.messageLog.scrollTop = room.scrollTop;
  }
  saveSoon();
}

ui.leaveButton.addEventListener("click", () => {
  const room = session?.active;
  if (!room) return;
  room.handle.leave();
  const rooms = [...session.rooms.values()];
  const index = rooms.indexOf(room);
  const next = rooms[index + 1] ?? rooms[index - 1] ?? null;
  discardRoom(room);
  room.item.remove();
  session.rooms.delete(room.name);
  selectRoom(next);
  (next ? ui.messageInput : ui.roomInput).focus();
});

/** Releases what a room holds: its handle's listeners, its images, its unsent messages. */
function discardRoom(room) {
  for (const stop of room.unfollow) stop();
  for (const entry of room.entries) discardEntry(entry);
  room.entries = [];
  room.byKey.clear();
  room.bySeq.clear();
}

function renderRoomItem(room) {
  const active = room === session.active;
  room.item.dataset.status = room.status;
  if (active) room.button.setAttribute("aria-current", "true");
  else room.button.removeAttribute("aria-current");
  room.badge.textContent = String(room.unread);
  room.badge.hidden = room.unread === 0;
  room.unreadText.textContent = room.unread === 0 ? "" : `, ${room.unread} unread`;
  room.state.textContent =
    room.status === "joining" ? "joining…" : room.status === "error" ? "not joined" : "";
}

function renderTitle() {
  let unread = 0;
  for (const room of session?.rooms.values() ?? []) unread += room.unread;
  document.title = unread > 0 ? `(${unread}) Chorus` : "Chorus";
}

function renderRoom() {
  const room = session?.active ?? null;
  ui.emptyRoom.hidden = room !== null;
  ui.roomView.hidden = room === null;
  if (!room) return;
  ui.roomTitle.textContent = room.name;
  ui.roomView.dataset.room = room.name;
  ui.roomView.dataset.status = room.status;
  ui.roomView.dataset.recovery = room.recovery;
  ui.roomState.textContent = room.status === "joining" ? "Joining…" : "";
  ui.roomErrorText.textContent = room.error;
  ui.roomErrorText.hidden = room.error === "";
  ui.messageInput.placeholder = `Message ${room.name}`;
  // Nothing can be sent to a room the server refused; "Join" tries again.
  for (const control of ui.composer.elements) control.disabled = room.status === "error";
  renderMembers();
  renderTyping();
}

function renderMembers() {
  const room = session.active;
  const members = [...room.members].sort((a, b) => a.localeCompare(b));
  ui.membersTitle.textContent = `Here (${members.length})`;
  ui.memberList.replaceChildren(
    ...members.map((user) =>
      h(
        "li",
        {
          class: "member",
          "data-testid": "member",
          "data-user": user,
          style: `--hue: ${hue(user)}`,
        },
        h("span", { class: "avatar", "aria-hidden": "true" }, [...user][0].toUpperCase()),
        h("span", { class: "member-name" }, user),
        user === session.me ? h("span", { class: "you" }, " (you)") : "",
      ),
    ),
  );
}

function renderTyping() {
  ui.typing.textContent = typingLine(session.active.typing);
}

// ---------------------------------------------------------------------------------------
// Messages

function keyOf(sender, id) {
  return `${sender}\n${id}`;
}

/** The entry of each message element, for grouping. */
const entryOf = new WeakMap();

/** A message's view: `entry.el` plus what later updates need. */
function messageView(room, { sender, ts, own, body, blob, local = false }) {
  const time = h("time", { class: "time", "data-testid": "message-time" });
  const status = h("span", { class: "status", "data-testid": "message-status" });
  const content = h("div", { class: "body", "data-testid": "message-body" });
  const el = h(
    "li",
    {
      class: own ? "message own" : "message",
      "data-testid": "message",
      "data-sender": sender,
      style: `--hue: ${hue(sender)}`,
    },
    h(
      "div",
      { class: "meta" },
      h("span", { class: "sender", "data-testid": "message-sender" }, sender),
      time,
      status,
    ),
    content,
  );
  const entry = {
    room,
    el,
    time,
    statusEl: status,
    content,
    own,
    sender,
    body,
    ts,
    id: null,
    status: null,
    failure: null,
    blobUrl: null,
    discarded: false,
  };
  entryOf.set(el, entry);
  setTime(entry, ts, local);
  showBody(entry, body, blob);
  return entry;
}

function showBody(entry, body, blob) {
  if (typeof body === "string") {
    entry.content.append(h("p", { class: "text" }, body));
    return;
  }
  // Binary bodies carry no type: try them as an image, and say what they are otherwise.
  const url = URL.createObjectURL(blob ?? new Blob([body]));
  entry.blobUrl = url;
  const image = h("img", {
    class: "image",
    src: url,
    alt: `Image from ${entry.sender}`,
    "data-testid": "message-image",
  });
  image.addEventListener(
    "error",
    () => {
      releaseImage(entry);
      const note = `binary message (${body.byteLength} bytes)`;
      image.replaceWith(h("p", { class: "binary", "data-testid": "message-binary" }, note));
    },
    { once: true },
  );
  image.addEventListener(
    "load",
    () => {
      if (entry.room === session?.active && entry.room.stick) scrollToEnd();
    },
    { once: true },
  );
  entry.content.append(image);
}

function releaseImage(entry) {
  if (entry.blobUrl) {
    URL.revokeObjectURL(entry.blobUrl);
    entry.blobUrl = null;
  }
}

function discardEntry(entry) {
  entry.discarded = true;
  releaseImage(entry);
  session?.outgoing.delete(entry);
}

function setTime(entry, ts, local) {
  entry.ts = ts;
  entry.time.dateTime = new Date(ts).toISOString();
  entry.time.textContent = timeFormat.format(ts);
  entry.time.title = local
    ? "Sent from this device; the server's time follows"
    : fullTimeFormat.format(ts);
  if (local) delete entry.el.dataset.ts;
  else entry.el.dataset.ts = String(ts);
  if (entry.el.parentNode) regroup(entry.room);
}

/** The entry's message id: it finds the entry for the echo, the ack and history pages. */
function setId(entry, id) {
  const { room } = entry;
  if (entry.id !== null && room.byKey.get(keyOf(entry.sender, entry.id)) === entry) {
    room.byKey.delete(keyOf(entry.sender, entry.id));
  }
  entry.id = id;
  entry.el.dataset.id = String(id);
  room.byKey.set(keyOf(entry.sender, id), entry);
}

function setSeq(entry, seq) {
  const { room } = entry;
  if (entry.seq !== undefined && room.bySeq.get(entry.seq) === entry) room.bySeq.delete(entry.seq);
  entry.seq = seq;
  entry.epoch = room.epoch;
  entry.el.dataset.seq = String(seq);
  room.bySeq.set(seq, entry);
  place(entry);
}

/**
 * Keep the messages of the current epoch in server order: each goes before the first message
 * with a higher sequence, or with none yet (our own, still pending). Sequences start again
 * with a new epoch, so only messages of the current one are compared; older ones stay above.
 */
function place(entry) {
  const { room } = entry;
  const at = room.entries.indexOf(entry);
  if (at < 0) return; // Not shown yet: addEntry places it.
  room.entries.splice(at, 1);
  const before = room.entries.findIndex((other) =>
    other.seq === undefined ? other.own : other.epoch === room.epoch && other.seq > entry.seq,
  );
  if (before < 0) {
    room.entries.push(entry);
    room.list.append(entry.el);
  } else {
    room.entries[before].el.before(entry.el);
    room.entries.splice(before, 0, entry);
  }
  regroup(room);
}

/**
 * Consecutive messages from one sender form a group: the first shows the sender, the others
 * only their text (the name stays there for screen readers). A notice breaks a group.
 */
function regroup(room) {
  let previous = null;
  for (const el of room.list.children) {
    const entry = entryOf.get(el);
    if (!entry) {
      previous = null;
      continue;
    }
    const grouped = continuesGroup(previous, entry);
    if (el.classList.contains("grouped") !== grouped) el.classList.toggle("grouped", grouped);
    previous = entry;
  }
}

/** "queued", "pending", "sent" or "failed" (with the reason, under the message). */
function setStatus(entry, status, reason = "") {
  entry.status = status;
  entry.el.dataset.status = status;
  entry.statusEl.textContent = status;
  entry.failure?.remove();
  entry.failure = null;
  if (status === "failed") {
    entry.failure = h("p", { class: "failure", "data-testid": "message-error" }, reason);
    entry.el.append(entry.failure);
  }
}

function addEntry(room, entry) {
  room.list.append(entry.el);
  room.entries.push(entry);
  if (entry.seq !== undefined) place(entry);
  while (room.entries.length > MAX_MESSAGES) {
    const old = room.entries.shift();
    old.el.remove();
    discardEntry(old);
    if (old.id !== null && room.byKey.get(keyOf(old.sender, old.id)) === old) {
      room.byKey.delete(keyOf(old.sender, old.id));
    }
    if (old.seq !== undefined && room.bySeq.get(old.seq) === old) room.bySeq.delete(old.seq);
  }
  regroup(room);
  if (room === session.active && room.stick) scrollToEnd();
}

function addNotice(room, text) {
  room.list.append(h("li", { class: "notice", "data-testid": "notice" }, text));
  regroup(room);
  if (room === session.active && room.stick) scrollToEnd();
}

// ---------------------------------------------------------------------------------------
// History

/**
 * Fetch a page of the room's history and show what the page does not show yet: `"recent"`,
 * the newest messages (on joining), or `"older"`, the page before the oldest one fetched.
 */
async function loadHistory(room, which = "recent") {
  const { history } = room;
  if (which === "older" && (history.loading || history.oldest === null)) return;
  const epoch = room.epoch;
  const options =
    which === "older"
      ? { before: { epoch, seq: history.oldest }, limit: HISTORY_PAGE }
      : { limit: HISTORY_PAGE };
  history.loading = which;
  history.failed = "";
  history.error = "";
  if (which === "recent") history.asked = true;
  renderHistory(room);
  let page = null;
  let failure = null;
  try {
    page = await room.handle.history(options);
  } catch (error) {
    failure = error;
  }
  if (session?.rooms.get(room.name) !== room) return; // left, or signed out
  if (history.loading === which) history.loading = "";
  // Answered for a history the room no longer follows (the server lost it since): the
  // join into the new one loads that.
  if (room.epoch !== epoch) {
    renderHistory(room);
    return;
  }
  if (failure) {
    if (which === "older" && failure.code === ErrorCode.EpochChanged) {
      history.more = false;
      announceHistory("Older messages are no longer available.");
    } else if (failure.code !== ErrorCode.Closed) {
      // Closed: the client closed (signing out); nothing to tell.
      history.failed = which;
      history.error = `Could not load ${which === "older" ? "older" : "recent"} messages: ${failure.message}`;
      announceHistory(history.error);
    }
    renderHistory(room);
    return;
  }
  if (page.messages.length > 0 && page.position.epoch !== epoch) {
    renderHistory(room);
    return;
  }
  const first = page.messages[0]?.seq ?? null;
  // Paging goes on from the oldest page fetched in this epoch: after a newer "recent" page,
  // from where the older pages had reached.
  if (which === "older" || history.oldest === null || (first !== null && first < history.oldest)) {
    history.oldest = first;
    history.more = page.more && first !== null;
  }
  const shown = showHistory(room, page.messages, which === "older");
  if (which === "older") {
    announceHistory(
      shown === 0 ? "No older messages." : `Loaded ${plural(shown, "older message")}.`,
    );
  } else if (shown > 0 && room === session.active) {
    announceHistory(`Showing ${plural(shown, "recent message")}.`);
  }
  renderHistory(room);
}

/**
 * Add history messages the room does not show yet (by sequence in this epoch, and by sender
 * and id), each in its place by sequence. Returns how many were added.
 */
function showHistory(room, messages, older) {
  const log = ui.messageLog;
  const active = room === session.active;
  // Keep what the reader looks at in place while older messages are added above it.
  const fromBottom = log.scrollHeight - log.scrollTop;
  if (active) quietLog();
  let shown = 0;
  // Newest first: when the room is full, the oldest are the ones left out.
  for (const message of [...messages].reverse()) {
    if (room.bySeq.has(message.seq)) continue;
    // Our own message whose ack is still on its way is found by its id: the ack settles it.
    if (room.byKey.has(keyOf(message.sender, message.id))) continue;
    if (older && room.entries.length >= MAX_MESSAGES) break;
    const entry = messageView(room, {
      sender: message.sender,
      ts: message.ts,
      own: message.sender === session.me,
      body: message.data,
    });
    entry.el.dataset.history = "";
    setId(entry, message.id);
    setSeq(entry, message.seq);
    addEntry(room, entry);
    shown += 1;
  }
  if (active && older && shown > 0) log.scrollTop = log.scrollHeight - fromBottom;
  return shown;
}

/** The bar above the messages: "Load older messages", or what history is doing. */
function renderHistory(room) {
  const { history } = room;
  const full = room.entries.length >= MAX_MESSAGES;
  let note = "";
  let button = "";
  if (history.loading === "recent") note = "Loading recent messages…";
  else if (history.failed) {
    note = history.error;
    button = "Retry";
  } else if (history.loading === "older") button = "Loading…";
  else if (history.more && !full) button = "Load older messages";
  const hadFocus = document.activeElement === room.olderButton;
  room.historyNote.textContent = note;
  room.historyNote.hidden = note === "";
  room.olderButton.textContent = button;
  room.olderButton.hidden = button === "";
  // aria-disabled rather than disabled: a disabled button would drop the keyboard focus.
  room.olderButton.setAttribute("aria-disabled", String(history.loading !== ""));
  room.historyBar.hidden = note === "" && button === "";
  room.historyBar.dataset.state = history.loading
    ? "loading"
    : history.failed
      ? "failed"
      : button
        ? "more"
        : "";
  // Nothing older to load: the focus goes to the log rather than to the page's start.
  if (hadFocus && button === "") ui.messageLog.focus({ preventScroll: true });
}

/** Tell screen readers what a page of history did (the log itself stays quiet meanwhile). */
function announceHistory(text) {
  ui.historyStatus.textContent = "";
  // A change of text is what a live region announces; clear first so a repeat is one too.
  setTimeout(() => {
    ui.historyStatus.textContent = text;
  }, 50);
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** Mute the log's live region for a moment: messages added from history are not news. */
function quietLog() {
  ui.messageLog.setAttribute("aria-live", "off");
  clearTimeout(quietLog.timer);
  quietLog.timer = setTimeout(() => ui.messageLog.setAttribute("aria-live", "polite"), 100);
}

function scrollToEnd() {
  ui.messageLog.scrollTop = ui.messageLog.scrollHeight;
}

ui.messageLog.addEventListener("scroll", () => {
  const room = session?.active;
  if (!room) return;
  const log = ui.messageLog;
  room.stick = log.scrollHeight - log.scrollTop - log.clientHeight < STICK_PX;
});

/**
 * Show our own message at once, then publish it. `resend`: a message from before a reload,
 * sent again with its id (and shown with its time) so that it is delivered once.
 */
function publish(room, body, blob, resend) {
  const entry = messageView(room, {
    sender: session.me,
    ts: resend?.ts ?? Date.now(),
    own: true,
    body,
    blob,
    local: true,
  });
  if (resend) setId(entry, resend.id);
  room.stick = true;
  addEntry(room, entry);
  send(entry);
}

/** Publish the entry's message; a retry keeps its id, so it is delivered at most once. */
function send(entry) {
  const { room } = entry;
  setStatus(entry, session.connection === "open" ? "pending" : "queued");
  session.outgoing.add(entry);
  const promise = room.handle.publish(entry.body, entry.id === null ? {} : { id: entry.id });
  if (entry.id === null && Number.isSafeInteger(promise.id)) setId(entry, promise.id);
  promise.then(
    (ack) => acknowledged(entry, ack),
    (error) => failed(entry, error),
  );
  saveSoon();
}

function acknowledged(entry, ack) {
  if (!session || entry.discarded) return;
  session.outgoing.delete(entry);
  const { room } = entry;
  const other = room.bySeq.get(ack.seq);
  if (other && other !== entry) {
    // Shown already under its sequence (not found by its id): this entry takes its place.
    setTime(entry, other.ts, false);
    other.el.replaceWith(entry.el);
    room.entries.splice(room.entries.indexOf(other), 1);
    discardEntry(other);
  }
  setId(entry, ack.id);
  setSeq(entry, ack.seq);
  setStatus(entry, "sent");
  saveSoon();
}

function failed(entry, error) {
  if (!session || entry.discarded) return;
  session.outgoing.delete(entry);
  saveSoon();
  let reason = error?.message ?? String(error);
  const tooLarge = error?.code === ErrorCode.BodyTooLarge;
  if (tooLarge && error.max) {
    session.maxBody = error.max;
    const [size, max] = [formatBytes(error.size), formatBytes(error.max)];
    reason = `too large: ${size}, over the server's limit of ${max}`;
  }
  setStatus(entry, "failed", reason);
  if (!tooLarge && error?.code !== ErrorCode.Closed) {
    const retry = h("button", { type: "button", class: "link", "data-testid": "retry" }, "Retry");
    retry.addEventListener("click", () => {
      send(entry);
      ui.messageInput.focus();
    });
    entry.failure.append(" ", retry);
  }
}

// ---------------------------------------------------------------------------------------
// The composer

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = session?.active;
  if (!room) return;
  const text = ui.messageInput.value;
  if (text.trim() === "") return;
  const size = byteLength(text);
  if (size > session.maxBody) {
    const max = formatBytes(session.maxBody);
    composerError(`This message is ${formatBytes(size)}; the server takes at most ${max}.`);
    return;
  }
  ui.messageInput.value = "";
  composerError("");
  publish(room, text);
});

ui.messageInput.addEventListener("input", () => {
  composerError("");
  const room = session?.active;
  if (room && ui.messageInput.value !== "") room.handle.typing();
});

ui.imageInput.addEventListener("change", async () => {
  const file = ui.imageInput.files[0];
  ui.imageInput.value = ""; // so the same file can be picked again
  const room = session?.active;
  if (!file || !room) return;
  if (file.type && !file.type.startsWith("image/")) {
    composerError(`“${file.name}” is not an image.`);
    return;
  }
  const max = session.maxBody;
  if (file.size > max) {
    composerError(
      `“${file.name}” is ${formatBytes(file.size)}; images can be at most ` +
        `${formatBytes(max)} (${max.toLocaleString("en")} bytes, the server's limit). ` +
        "Choose a smaller image.",
    );
    return;
  }
  composerError("");
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (session?.rooms.get(room.name) !== room) return; // left (or signed out) meanwhile
  publish(room, bytes, file);
  ui.messageInput.focus();
});

function composerError(text) {
  ui.composerError.textContent = text;
}

// A session stored before a reload: carry on with it.
const stored = storedSession();
if (stored) resume(stored);
