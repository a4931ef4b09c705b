/* eslint-disable @typescript-eslint/no-explicit-any */
type Listener = (...args: any[]) => void;

/** A small typed event emitter that works in Node and in browsers. */
export class TypedEmitter<E extends { [K in keyof E]: Listener }> {
  private readonly listeners = new Map<keyof E, Set<Listener>>();
  /** Called when a listener throws (the emitter itself never throws). */
  protected onListenerError(event: keyof E, error: unknown): void {
    // eslint-disable-next-line no-console
    console.error(`sync-client: a '${String(event)}' listener threw`, error);
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, fn: E[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  once<K extends keyof E>(event: K, fn: E[K]): () => void {
    const wrapper = ((...args: any[]) => {
      off();
      fn(...args);
    }) as E[K];
    const off = this.on(event, wrapper);
    return off;
  }

  off<K extends keyof E>(event: K, fn: E[K]): void {
    this.listeners.get(event)?.delete(fn);
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        this.onListenerError(event, e);
      }
    }
  }

  listenerCount(event: keyof E): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}
