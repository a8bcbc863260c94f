// The app: asks the dev server for a token, loads the package's WebAssembly through Vite's
// ordinary asset handling (`init()` with no argument: the package's
// `new URL("chorus_client_bg.wasm", import.meta.url)`, which `vite build` rewrites to the
// emitted asset), connects, joins a room, publishes one message and shows what arrives.
// Query parameters: `user`, `room`, `text`.

import init, { ChorusClient } from "chorus-client";
import type { Ack, ChorusMessageEvent } from "chorus-client";

const params = new URLSearchParams(location.search);
const user = params.get("user") ?? "vite-app";
const room = params.get("room") ?? "npm:consumer";
const text = params.get("text") ?? "hello from a Vite app";

function byTestId(id: string): HTMLElement {
  const element = document.querySelector<HTMLElement>(`[data-testid="${id}"]`);
  if (element === null) throw new Error(`index.html has no [data-testid="${id}"]`);
  return element;
}

const statusOutput = byTestId("status");
const ackOutput = byTestId("ack");
const messageList = byTestId("messages");
const problemOutput = byTestId("problem");

function setStatus(status: string): void {
  statusOutput.textContent = status;
}

function showMessage({ seq, sender, body }: ChorusMessageEvent): void {
  const item = document.createElement("li");
  item.dataset.seq = String(seq);
  item.dataset.sender = sender;
  item.textContent = typeof body === "string" ? body : `(${body.byteLength} bytes)`;
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
  setStatus("connecting");
  const client = ChorusClient.connect("/ws", { token });
  let published = false;

  client.on("open", () => {
    setStatus("open");
    client.join(room);
  });
  client.on("joined", (event) => {
    if (event.room !== room) return;
    setStatus("joined");
    if (published) return;
    published = true;
    client.publish(room, text).then(
      (ack: Ack) => {
        ackOutput.textContent = String(ack.seq);
      },
      (error: unknown) => {
        problemOutput.textContent = `publish failed: ${String(error)}`;
      },
    );
  });
  client.on("message", showMessage);
  client.on("error", ({ code, message }) => {
    problemOutput.textContent = `error ${code}: ${message}`;
  });
}

main().catch((error: unknown) => {
  setStatus("failed");
  problemOutput.textContent = String(error);
});
