// React bindings for chorus-client, small enough to copy into an app:
//
// - <ChorusProvider client={client}>: the app's one Client, made once outside React (see
//   main.tsx), so StrictMode's double renders and effects never open a second connection.
// - useConnectionState(): "connecting" | "open" | "reconnecting" | "closed".
// - useRoom(name, options): joins the room while a component using it is mounted, and
//   gives its messages (history and live, merged by the package's Timeline), members,
//   who is typing, its state and its last error. Every subscription is undone on unmount
//   with the function `on()` returned.

import { createContext, useCallback, useContext, useEffect, useState, useSyncExternalStore } from "react";
import type { ReactNode } from "react";
import { ErrorCode } from "chorus-client";
import type { ChorusError, Client, ClientState, Message, Room, RoomOptions, RoomState } from "chorus-client";

const ClientContext = createContext<Client | null>(null);

export function ChorusProvider({ client, children }: { client: Client; children: ReactNode }) {
  return <ClientContext value={client}>{children}</ClientContext>;
}

/** The Client of the nearest <ChorusProvider>. */
export function useClient(): Client {
  const client = useContext(ClientContext);
  if (client === null) throw new Error("useClient: no <ChorusProvider> above this component");
  return client;
}

/** The connection's state, re-rendering on every change. */
export function useConnectionState(): ClientState {
  const client = useClient();
  const subscribe = useCallback((changed: () => void) => client.on("state", changed), [client]);
  return useSyncExternalStore(subscribe, () => client.state);
}

/**
 * Components using each room. A room is left a microtask after the last of them unmounts:
 * StrictMode's unmount-and-mount-again (and a component moving in the tree) then neither
 * leaves nor joins again, and two components showing one room share its membership.
 */
const users = new WeakMap<object, number>();

function use(room: { leave(): void }): () => void {
  users.set(room, (users.get(room) ?? 0) + 1);
  return () => {
    users.set(room, (users.get(room) ?? 1) - 1);
    queueMicrotask(() => {
      if (users.get(room) === 0) room.leave();
    });
  };
}

export interface RoomView<T> {
  /** The room itself: `publish`, `typing`, `history`... */
  room: Room<T>;
  state: RoomState;
  /** Oldest first, each message once. */
  messages: readonly Message<T>[];
  members: readonly string[];
  typing: readonly string[];
  /** The last failure: a join refused, a payload that did not decode, history not loaded. */
  error: ChorusError | undefined;
}

/**
 * Join room `name` while the calling component is mounted, and follow it. `options` (the
 * codec) count on the room's first use in the client only.
 */
export function useRoom<T = string | Uint8Array>(name: string, options?: RoomOptions<T>): RoomView<T> {
  const client = useClient();
  // The same object for the same name: getting it while rendering is safe.
  const room = client.room<T>(name, options);
  const [messages, setMessages] = useState<readonly Message<T>[]>([]);
  const [error, setError] = useState<ChorusError>();

  useEffect(() => {
    const timeline = room.timeline();
    // A copy: the timeline's own array changes in place, and React compares by identity.
    setMessages(timeline.messages.slice());
    setError(undefined);
    const stop = [
      timeline.on("change", setMessages),
      timeline.on("error", setError),
      room.on("error", setError),
      use(room),
    ];
    // Idempotent: a room already joined (or joining) is not joined twice. A refusal comes
    // as an `error` event as well; leaving or closing first is no failure.
    room.join().catch((failure: ChorusError) => {
      if (failure.code !== ErrorCode.NotJoined && failure.code !== ErrorCode.Closed) setError(failure);
    });
    return () => {
      for (const undo of stop) undo();
      timeline.dispose();
    };
  }, [room]);

  const subscribe = useCallback(
    (changed: () => void) => {
      const stop = [
        room.on("joined", changed),
        room.on("left", changed),
        room.on("presence", changed),
        room.on("typing", changed),
        room.on("error", changed),
        client.on("state", changed),
      ];
      return () => stop.forEach((undo) => undo());
    },
    [client, room],
  );
  const state = useSyncExternalStore(subscribe, () => room.state);
  const members = useSyncExternalStore(subscribe, () => room.members);
  const typing = useSyncExternalStore(subscribe, () => room.typingUsers);

  return { room, state, messages, members, typing, error };
}
