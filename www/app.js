// The Chorus demo chat. It uses the npm package `chorus-client` exactly as an app would: the
// package entry (index.js), which the server serves at /pkg/.
//
// Everything user-supplied (nicknames, room names, message text) reaches the page as text
// nodes or attribute values, never as HTML.

import init, { ChorusClient } from "/pkg/index.js";
import {
  DEFAULT_MAX_BODY,
  byteLength,
  formatBytes,
  nicknameError,
  roomError,
  statusLine,
  typingLine,
} from "./rules.js";

/** Messages kept per room; older ones are dropped, and their images released. */
const MAX_MESSAGES = 500;
/** Messages asked for per history page: on joining a room, and per "Load older messages". */
const HISTORY_PAGE = 50;
/** History error: the epoch of `before` is gone (see docs/PROTOCOL.md). */
const EPOCH_CHANGED = 112;
/** Error codes of a refused join (see docs/PROTOCOL.md). */
const JOIN_REFUSALS = new Set([102, 104, 107, 108]);
/** Error codes not worth interrupting anyone for: typing refused or rate limited. */
const QUIET_ERRORS = new Set([106, 110]);
/** A log scrolled to within this many pixels of its end follows new messages. */
const STICK_PX = 48;
const NICKNAME_KEY = "chorus.nickname";

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
 * The signed-in session, or null. `connection` follows the client's events: "connecting",
 * "open", "reconnecting"; `retry` is { attempt, until } while reconnecting.
 */
let session = null;
/** Whether a session has ended: the status then says "Closed" rather than "Not signed in". */
let everClosed = false;

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

// ---------------------------------------------------------------------------------------
// Connection status and the banner

function renderStatus() {
  const connection = session ? session.connection : everClosed ? "closed" : "idle";
  const retry = session?.retry
    ? { attempt: session.retry.attempt, remainingMs: session.retry.until - performance.now() }
    : null;
  const { state, text } = statusLine(connection, navigator.onLine, retry);
  // Only real changes, so the live region is not told the same thing again.
  if (ui.connectionText.textContent !== text) ui.connectionText.textContent = text;
  ui.connectionStatus.dataset.state = state;
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
  ui.loginButton.disabled = true;
  ui.loginButton.textContent = "Connecting…";
  try {
    const [token] = await Promise.all([
      fetchToken(nickname),
      init().catch((error) => {
        throw new Error(`Could not load the chat client: ${error.message}`);
      }),
    ]);
    start(nickname, token);
    storeNickname(nickname);
  } catch (error) {
    loginError(error.message);
  } finally {
    ui.loginButton.disabled = false;
    ui.loginButton.textContent = "Connect";
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

function start(nickname, token) {
  const client = ChorusClient.connect(wsUrl(), {
    token,
    // Asked again when the server refuses or expires the token.
    getToken: () => fetchToken(nickname),
  });
  session = {
    client,
    me: nickname,
    connection: "connecting",
    retry: null,
    ticker: 0,
    rooms: new Map(),
    active: null,
    /** Largest body the server takes; a "too_large" rejection tells the real one. */
    maxBody: DEFAULT_MAX_BODY,
    /** Own messages not yet acknowledged: queued or pending. */
    outgoing: new Set(),
    signingOut: false,
  };
  for (const [name, handler] of Object.entries(handlers)) client.on(name, handler);

  hideBanner();
  ui.whoami.textContent = nickname;
  ui.account.hidden = false;
  ui.loginView.hidden = true;
  ui.chatView.hidden = false;
  renderStatus();
  renderRoom();
  ui.roomInput.focus();
  ui.roomInput.select();
}

ui.signOut.addEventListener("click", () => {
  if (!session) return;
  session.signingOut = true;
  session.client.close(); // fires "close" before it returns
  if (session) end();
});

// Leave the rooms at once rather than when the server notices the socket is gone.
addEventListener("pagehide", () => {
  if (!session) return;
  session.signingOut = true;
  session.client.close();
});

/** After the "close" event: drop everything and show the sign-in form again. */
function end() {
  const { client, rooms, ticker } = session;
  clearInterval(ticker);
  for (const room of rooms.values()) discardRoom(room);
  session = null;
  everClosed = true;
  // Not from inside the client's own event handler.
  setTimeout(() => client.free(), 0);

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

const handlers = {
  open({ user }) {
    session.me = user;
    session.connection = "open";
    session.retry = null;
    stopTicker();
    if (bannerKind === "token") hideBanner();
    for (const entry of session.outgoing) {
      if (entry.status === "queued") setStatus(entry, "pending");
    }
    renderStatus();
  },

  reconnecting({ attempt, delayMs }) {
    session.connection = "reconnecting";
    session.retry = { attempt, until: performance.now() + delayMs };
    // Sent but unacknowledged messages go out again after the reconnect.
    for (const entry of session.outgoing) {
      if (entry.status === "pending") setStatus(entry, "queued");
    }
    // Nobody is seen typing through a lost connection; the rejoin tells who is present.
    for (const room of session.rooms.values()) room.typing = [];
    if (session.active) renderTyping();
    renderStatus();
    startTicker();
  },

  close({ code, reason }) {
    const expected = session.signingOut;
    end();
    if (!expected) {
      showBanner(`The connection was closed: ${reason || "no reason given"} (code ${code}).`);
    }
  },

  joined({ room: name, members, position, recovery }) {
    const room = session.rooms.get(name);
    if (!room) return;
    room.status = "joined";
    room.error = "";
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
    // A first join shows what the room said recently; after a gap the replay could not
    // fill, what the server still has is shown too. ("recovered": nothing was lost.)
    if (recovery !== "recovered") loadHistory(room);
  },

  left() {
    // The room left the list when "Leave room" was pressed.
  },

  message(event) {
    const room = session.rooms.get(event.room);
    if (!room) return;
    const key = keyOf(event.sender, event.id);
    // Shown already: our own message (by its id), or from a history page (by its seq).
    const known = room.byKey.get(key) ?? room.bySeq.get(event.seq);
    if (known) {
      // The echo of our own message, already acknowledged: adopt the server's time.
      if (known.own) {
        setTime(known, event.ts, false);
        setSeq(known, event.seq);
      }
      return;
    }
    const own = event.sender === session.me;
    const entry = messageView(room, { sender: event.sender, ts: event.ts, own, body: event.body });
    entry.id = event.id;
    entry.el.dataset.id = String(event.id);
    setSeq(entry, event.seq);
    // An echo that arrives before its publish resolves waits here; acknowledged() then puts
    // the pending entry in its place.
    room.byKey.set(key, entry);
    addEntry(room, entry);
    if (!own && room !== session.active) {
      room.unread += 1;
      renderRoomItem(room);
      renderTitle();
    }
  },

  presence(event) {
    const room = session.rooms.get(event.room);
    if (!room) return;
    if (event.kind === "list") room.members = new Set(event.members);
    else if (event.kind === "join") room.members.add(event.user);
    else if (event.kind === "leave") room.members.delete(event.user);
    if (room === session.active) renderMembers();
  },

  typing({ room: name, users }) {
    const room = session.rooms.get(name);
    if (!room) return;
    room.typing = users.filter((user) => user !== session.me);
    if (room === session.active) renderTyping();
  },

  error({ code, message, room: name }) {
    const room = name === undefined ? undefined : session.rooms.get(name);
    if (name !== undefined && !room) {
      console.info("chorus: about a room already left:", code, message);
      return;
    }
    if (room && JOIN_REFUSALS.has(code)) {
      room.status = "error";
      room.error = `Could not join: ${message}`;
      renderRoomItem(room);
      if (room === session.active) renderRoom();
      return;
    }
    if (QUIET_ERRORS.has(code)) {
      console.info("chorus:", code, message);
      return;
    }
    if (code === 1002) showBanner(`Could not get a new token: ${message}`, "token");
    else showBanner(message);
  },
};

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
  if (!room || room.status === "error") {
    try {
      session.client.join(name);
    } catch (error) {
      roomInputError(error.message);
      return;
    }
    if (room) {
      // Try again a join the server refused.
      room.status = "joining";
      room.error = "";
      renderRoomItem(room);
    } else {
      room = addRoom(name);
    }
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
  const room = {
    name,
    /** "joining", "joined" or "error" (the server refused the join). */
    status: "joining",
    error: "",
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
     * way, `failed` the page that failed ("recent" or "older") and `error` why.
     */
    history: { oldest: null, more: false, loading: "", failed: "", error: "" },
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
  };
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
}

ui.leaveButton.addEventListener("click", () => {
  const room = session?.active;
  if (!room) return;
  session.client.leave(room.name);
  const rooms = [...session.rooms.values()];
  const index = rooms.indexOf(room);
  const next = rooms[index + 1] ?? rooms[index - 1] ?? null;
  discardRoom(room);
  room.item.remove();
  session.rooms.delete(room.name);
  selectRoom(next);
  (next ? ui.messageInput : ui.roomInput).focus();
});

/** Releases what a room holds: its images, and its unacknowledged messages. */
function discardRoom(room) {
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
}

/** "queued", "pending", "acknowledged" or "failed" (with the reason, under the message). */
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
  if (room === session.active && room.stick) scrollToEnd();
}

function addNotice(room, text) {
  room.list.append(h("li", { class: "notice", "data-testid": "notice" }, text));
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
  renderHistory(room);
  let page = null;
  let failure = null;
  try {
    page = await session.client.history(room.name, options);
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
    if (which === "older" && failure.code === EPOCH_CHANGED) {
      history.more = false;
      announceHistory("Older messages are no longer available.");
    } else if (failure.code !== 1006) {
      // 1006: the client closed (signing out); nothing to tell.
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
    const key = keyOf(message.sender, message.id);
    if (room.byKey.has(key)) continue;
    if (older && room.entries.length >= MAX_MESSAGES) break;
    const entry = messageView(room, {
      sender: message.sender,
      ts: message.ts,
      own: message.sender === session.me,
      body: message.body,
    });
    entry.id = message.id;
    entry.el.dataset.id = String(message.id);
    entry.el.dataset.history = "";
    // Our own message whose ack is still on its way is found here by its id, and takes
    // this entry's place when the ack comes (see acknowledged()).
    room.byKey.set(key, entry);
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

/** Show our own message at once, then publish it. */
function publish(room, body, blob) {
  const entry = messageView(room, {
    sender: session.me,
    ts: Date.now(),
    own: true,
    body,
    blob,
    local: true,
  });
  room.stick = true;
  addEntry(room, entry);
  send(entry);
}

function send(entry) {
  const { client } = session;
  setStatus(entry, session.connection === "open" ? "pending" : "queued");
  session.outgoing.add(entry);
  let promise;
  try {
    promise = client.publish(entry.room.name, entry.body);
  } catch (error) {
    failed(entry, error);
    return;
  }
  promise.then(
    (ack) => acknowledged(entry, ack),
    (error) => failed(entry, error),
  );
}

function acknowledged(entry, ack) {
  if (!session || entry.discarded) return;
  session.outgoing.delete(entry);
  const { room } = entry;
  const key = keyOf(session.me, ack.id);
  const echo = room.byKey.get(key);
  if (echo && echo !== entry) {
    // The echo came first: this entry takes its place (and its server time).
    setTime(entry, echo.ts, false);
    echo.el.replaceWith(entry.el);
    room.entries.splice(room.entries.indexOf(echo), 1);
    discardEntry(echo);
  }
  entry.id = ack.id;
  entry.el.dataset.id = String(ack.id);
  setSeq(entry, ack.seq);
  room.byKey.set(key, entry);
  setStatus(entry, "acknowledged");
}

function failed(entry, error) {
  if (!session || entry.discarded) return;
  session.outgoing.delete(entry);
  let reason = error?.message ?? String(error);
  if (error?.code === "too_large" && error.max) {
    session.maxBody = error.max;
    const [size, max] = [formatBytes(error.size), formatBytes(error.max)];
    reason = `too large: ${size}, over the server's limit of ${max}`;
  }
  setStatus(entry, "failed", reason);
  if (error?.code !== "too_large" && error?.code !== "closed") {
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
  if (room && ui.messageInput.value !== "") session.client.typing(room.name);
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
