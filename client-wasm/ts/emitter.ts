// A small typed event emitter: `on` returns the function that removes the handler.

type Handler<T> = (event: T) => void;

/** Hand an exception thrown by an app's handler to the runtime's usual reporting. */
export function report(error: unknown): void {
  const global = globalThis as { reportError?: (error: unknown) => void };
  if (typeof global.reportError === "function") global.reportError(error);
  else queueMicrotask(() => {
    throw error;
  });
}

/** Events by name, each handler typed by its event. */
export class Emitter<Events> {
  #handlers: { [K in keyof Events]?: Handler<Events[K]>[] } = {};

  /**
   * Call `handler` with every `event` from now on; returns the function that stops it.
   * Adding the same handler twice for the same event has no effect.
   */
  on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    const list = this.#handlers[event] ?? [];
    // A new array on every change (never one changed in place), so that `emit` can walk the
    // array it started with, copying nothing per event.
    if (!list.includes(handler)) this.#handlers[event] = [...list, handler];
    return () => this.off(event, handler);
  }

  /** Call `handler` with the next `event` only; returns the function that cancels it. */
  once<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      handler(payload);
    });
    return off;
  }

  /** Stop calling `handler` for `event`. */
  off<K extends keyof Events>(event: K, handler: Handler<Events[K]>): void {
    const list = this.#handlers[event];
    if (list?.includes(handler)) this.#handlers[event] = list.filter((h) => h !== handler);
  }

  /** Whether anything listens to `event`. */
  protected listens(event: keyof Events): boolean {
    return (this.#handlers[event]?.length ?? 0) > 0;
  }

  /**
   * Call every handler of `event`. One that throws does not stop the others (its exception
   * is reported); one removed by an earlier handler is not called.
   */
  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#handlers[event];
    if (!list) return;
    for (const handler of list) {
      if (this.#handlers[event] !== list && !this.#handlers[event]?.includes(handler)) continue;
      try {
        handler(payload);
      } catch (error) {
        report(error);
      }
    }
  }
}
