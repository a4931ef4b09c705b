/**
 * In-process locks by key: callers that share a key run one after the other, in arrival order.
 * A caller queues on all its keys at once (synchronously), so every key is served in call order,
 * also when key sets overlap: a later caller never overtakes an earlier one on a shared key, and
 * since that order is one total order, two callers with overlapping sets cannot deadlock.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  get size(): number {
    return this.tails.size;
  }

  async acquire(keys: Iterable<string>): Promise<() => void> {
    const queued = [...new Set(keys)].map((key) => {
      const prev = this.tails.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = prev.then(() => mine);
      this.tails.set(key, tail);
      return { key, prev, release, tail };
    });
    await Promise.all(queued.map((q) => q.prev));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const q of queued) {
        q.release();
        // forget the key when nobody queued behind us (bounded memory)
        if (this.tails.get(q.key) === q.tail) this.tails.delete(q.key);
      }
    };
  }
}
