// The app: asks the dev server for a token, loads the package's WebAssembly through Vite's
// ordinary asset handling (`init()` with no argument: the package's
// `new URL("chorus_client_bg.wasm", import.meta.url)`, which `vite build` rewrites to the
// emitted asset), connects, joins a JSON room, publishes one message and shows what arrives.
// Query parameters: `user`, `room`, `text`.

import init, { ChorusError, Client } from "chorus-client";
import type { Message } from "chorus-client";

/** What this app sends through its JSON room. */
interface ChatMessage {
  text: string;
  sentAt: number;
}

const params = new URLSearchParams(location.search);
const user = params.get("user") ?? "vite-app";
const roomName = params.get("room") ?? "npm:consumer";
const text = params.get("text") ?? "hello from a Vite app";

function byTestId(id: string): HTMLElement {
  const element = document.querySelector<HTMLElement>(`[data-testid="${id}"]`);
  if (element === null) throw new Error(`index.html has no [data-testid="${id}"]`);
  return element;
}

const statusOutput = byTestId("status");
const publishIdOutput = byTestId("publish-id");
const ackOutput = byTestId("ack");
const messageList = byTestId("messages");
const problemOutput = byTestId("problem");

function problem(text: string): void {
  problemOutput.textContent += text + "\n";
}

function showMessage({ seq, id, sender, data }: Message<ChatMessage>): void {
  const item = document.createElement("li");
  item.dataset.seq = String(seq);
  item.dataset.id = String(id);
  item.dataset.sender = sender;
  item.textContent = data.text;
  messageList.append(item);
}

async function devToken(name: string): Promise<string> {
  const response = await fetch("/api/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user: name }),
  });
  if (!response.ok) throw new Error(`POST /api/dev/token answered ${response.status}`);
  const { token } = (await response.json()) as { token: string };
  return token;
}

async function main(): Promise<void> {
  const [token] = await Promise.all([devToken(user), init()]);
  const client = new Client("/ws", { token });
  statusOutput.textContent = client.state;
  client.on("state", ({ state }) => {
    statusOutput.textContent = state;
  });
  client.on("error", ({ code, message }) => problem(`client error ${code}: ${message}`));

  const room = client.room<ChatMessage>(roomName, { codec: "json" });
  room.on("message", showMessage);
  room.on("error", ({ code, message }) => problem(`room error ${code}: ${message}`));
  await room.join();
  statusOutput.textContent = "joined";

  const publish = room.publish({ text, sentAt: Date.now() });
  // The id is known at once, before the ack: it is the id the message arrives with.
  publishIdOutput.textContent = String(publish.id);
  const ack = await publish;
  ackOutput.textContent = String(ack.seq);
}

main().catch((error: unknown) => {
  statusOutput.textContent = "failed";
  problem(error instanceof ChorusError ? `${error.name} (${error.code}): ${error.message}` : String(error));
});
