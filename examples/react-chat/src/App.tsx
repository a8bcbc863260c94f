// The chat: the connection's state, a choice of rooms, and the chosen room's messages,
// members, typing indicator and a message box. Messages travel as JSON (`ChatMessage`).

import { useEffect, useMemo, useState } from "react";
import type { FormEvent } from "react";
import type { ChorusError } from "chorus-client";

import { useConnectionState, useRoom } from "./chorus-react";

/** What this app publishes: the room's JSON codec turns it into text and back. */
export interface ChatMessage {
  text: string;
}

const ROOMS = ["lobby", "random"];

export function App({ user }: { user: string }) {
  const connection = useConnectionState();
  const [roomName, setRoomName] = useState(ROOMS[0]!);
  return (
    <div className="app">
      <header>
        <h1>Chorus</h1>
        <span className="connection" data-testid="connection" data-state={connection}>
          {connection}
        </span>
        <span className="user">
          Signed in as <strong data-testid="user">{user}</strong>
        </span>
      </header>
      <nav aria-label="Rooms">
        {ROOMS.map((name) => (
          <button
            key={name}
            type="button"
            aria-pressed={name === roomName}
            onClick={() => setRoomName(name)}
          >
            #{name}
          </button>
        ))}
      </nav>
      {/* A new key per room: the old room's component unmounts (and leaves it). */}
      <ChatRoom key={roomName} name={roomName} user={user} />
    </div>
  );
}

/** A message sent from this page, shown until it arrives back (or with why it failed). */
interface Outgoing {
  id: number;
  text: string;
  failed?: string;
}

function ChatRoom({ name, user }: { name: string; user: string }) {
  const { room, state, messages, members, typing, error } = useRoom<ChatMessage>(name, { codec: "json" });
  const [draft, setDraft] = useState("");
  const [outgoing, setOutgoing] = useState<Outgoing[]>([]);

  // A sent message stops being "sending…" once it is in the room's list: at once on screen,
  // then in the state.
  const arrived = useMemo(
    () => new Set(messages.filter((m) => m.sender === user).map((m) => m.id)),
    [messages, user],
  );
  const sending = outgoing.filter((o) => !arrived.has(o.id));
  useEffect(() => {
    setOutgoing((list) => (list.some((o) => arrived.has(o.id)) ? list.filter((o) => !arrived.has(o.id)) : list));
  }, [arrived]);

  function send(event: FormEvent) {
    event.preventDefault();
    const text = draft.trim();
    if (text === "") return;
    const publish = room.publish({ text });
    // The id is known at once: it is the id the message will arrive with.
    const id = publish.id;
    setOutgoing((list) => [...list, { id, text }]);
    setDraft("");
    publish.catch((failure: ChorusError) =>
      setOutgoing((list) => list.map((o) => (o.id === id ? { ...o, failed: failure.message } : o))),
    );
  }

  const others = typing.filter((u) => u !== user);
  return (
    <main className="room" data-testid="room" data-room={name} data-state={state}>
      <aside>
        <h2>Members</h2>
        <ul data-testid="members">
          {members.map((member) => (
            <li key={member}>{member}</li>
          ))}
        </ul>
      </aside>
      <section>
        <h2>
          #{name} <small>{state}</small>
        </h2>
        {error && (
          <p className="error" role="alert" data-testid="error">
            {error.name}: {error.message}
          </p>
        )}
        <ol className="messages" data-testid="messages">
          {messages.map((message) => (
            <li key={message.seq} data-seq={message.seq} data-id={message.id} data-sender={message.sender}>
              <strong>{message.sender}</strong> {message.data.text}
            </li>
          ))}
          {sending.map((o) => (
            <li key={`out-${o.id}`} className="outgoing" data-status={o.failed ? "failed" : "sending"}>
              <strong>{user}</strong> {o.text} <em>{o.failed ? `failed: ${o.failed}` : "sending…"}</em>
            </li>
          ))}
        </ol>
        <p className="typing" data-testid="typing">
          {others.length > 0 && `${others.join(", ")} ${others.length === 1 ? "is" : "are"} typing…`}
        </p>
        <form onSubmit={send}>
          <input
            aria-label="Message"
            placeholder={`Message #${name}`}
            value={draft}
            onChange={(event) => {
              setDraft(event.target.value);
              room.typing();
            }}
          />
          <button type="submit">Send</button>
        </form>
      </section>
    </main>
  );
}
