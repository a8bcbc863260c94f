// The entry: one Client for the whole app, made before React renders, then the app in
// StrictMode. The user comes from `?user=`; without it, a form asks for a name.
//
// Tokens: this demo asks the server's development endpoint (`POST /api/dev/token`, only with
// `chorus-server serve --dev`). A real app asks its own backend, which signs them.

import { StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { connect } from "chorus-client";

import { App } from "./App";
import { ChorusProvider } from "./chorus-react";
import "./style.css";

async function devToken(user: string): Promise<string> {
  const response = await fetch("/api/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user }),
  });
  if (!response.ok) throw new Error(`POST /api/dev/token answered ${response.status}`);
  const { token } = (await response.json()) as { token: string };
  return token;
}

function SignIn() {
  const [name, setName] = useState("");
  return (
    <form
      className="sign-in"
      onSubmit={(event) => {
        event.preventDefault();
        if (name.trim() !== "") location.search = `?user=${encodeURIComponent(name.trim())}`;
      }}
    >
      <h1>Chorus</h1>
      <input aria-label="Your name" placeholder="Your name" value={name} onChange={(e) => setName(e.target.value)} />
      <button type="submit">Sign in</button>
    </form>
  );
}

const root = createRoot(document.getElementById("root")!);
const user = new URLSearchParams(location.search).get("user");
if (user === null) {
  root.render(
    <StrictMode>
      <SignIn />
    </StrictMode>,
  );
} else {
  // Loads the WebAssembly module (a file Vite ships next to the bundle), then connects; the
  // client asks `getToken` again whenever the server refuses or expires its token.
  connect("/ws", { getToken: () => devToken(user) }).then(
    (client) =>
      root.render(
        <StrictMode>
          <ChorusProvider client={client}>
            <App user={user} />
          </ChorusProvider>
        </StrictMode>,
      ),
    (error: unknown) => {
      root.render(
        <p className="error" role="alert">
          Could not start the chat: {String(error)}
        </p>,
      );
      throw error;
    },
  );
}
