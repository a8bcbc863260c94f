// The app: asks the dev server for a token, connects with `connect()` (which loads the
// package's WebAssembly from the asset webpack emitted for its
// `new URL("chorus_client_bg.wasm", import.meta.url)`), joins a room, publishes one text and
// shows what arrives. Query parameters: `user`, `room`, `text`.

import { ChorusError, connect } from "chorus-client";

const params = new URLSearchParams(location.search);
const user = params.get("user") ?? "webpack-app";
const roomName = params.get("room") ?? "webpack:consumer";
const text = params.get("text") ?? "hello from a webpack app";

function byTestId(id) {
  const element = document.querySelector(`[data-testid="${id}"]`);
  if (element === null) throw new Error(`index.html has no [data-testid="${id}"]`);
  return element;
}

const statusOutput = byTestId("status");
const publishIdOutput = byTestId("publish-id");
const ackOutput = byTestId("ack");
const messageList = byTestId("messages");
const problemOutput = byTestId("problem");

function problem(text) {
  problemOutput.textContent += text + "\n";
}

function showMessage({ seq, id, sender, data }) {
  const item = document.createElement("li");
  item.dataset.seq = String(seq);
  item.dataset.id = String(id);
  item.dataset.sender = sender;
  item.textContent = typeof data === "string" ? data : new TextDecoder().decode(data);
  messageList.append(item);
}

async function devToken(name) {
  const response = await fetch("/api/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: name }),
  });
  if (!response.ok) throw new Error(`POST /api/dev/token answered ${response.status}`);
  const { token } = await response.json();
  return token;
}

async function main() {
  const client = await connect("/ws", { token: await devToken(user) });
  statusOutput.textContent = client.state;
  client.on("state", ({ state }) => {
    statusOutput.textContent = state;
  });
  client.on("error", ({ code, message }) => problem(`client error ${code}: ${message}`));

  const room = client.room(roomName);
  room.on("message", showMessage);
  room.on("error", ({ code, message }) => problem(`room error ${code}: ${message}`));
  await room.join();
  statusOutput.textContent = "joined";

  const publish = room.publish(text);
  publishIdOutput.textContent = String(publish.id);
  const ack = await publish;
  ackOutput.textContent = String(ack.seq);
}

main().catch((error) => {
  statusOutput.textContent = "failed";
  problem(error instanceof ChorusError ? `${error.name} (${error.code}): ${error.message}` : String(error));
});
