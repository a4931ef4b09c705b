import { cloneJson, StateImage, type StorageWrite, type StoredState, type SyncStorage } from './storage.types';

/**
 * The asynchronous key-value interface of React Native's AsyncStorage
 * (`@react-native-async-storage/async-storage`), and of MMKV or localStorage behind a thin wrapper:
 * `setItem` must be atomic per key (the whole value or nothing) and durable when it resolves.
 */
export interface KeyValueStore {
  getItem(key: string): Promise<string | null | undefined> | string | null | undefined;
  setItem(key: string, value: string): Promise<void> | void;
  removeItem(key: string): Promise<void> | void;
}

export interface KeyValueStorageOptions {
  /** Prefix of every key (default `sync-client:<name>`). */
  prefix?: string;
  /** Fold the journal into the snapshot after this many writes (default 200). */
  compactEvery?: number;
}

interface Snapshot {
  v: 1;
  state: StoredState;
  /** The journal entries folded into this snapshot: [from, to] (removed after the snapshot is stored). */
  from: number;
  to: number;
}

/**
 * A storage on any async key-value store (React Native's AsyncStorage, MMKV, localStorage...).
 *
 * Layout: `<prefix>:snapshot` holds the state up to journal entry `to`; each write after it is one
 * journal key `<prefix>:log:<n>` (n = to+1, to+2, ...), so a write is one atomic `setItem`: it is
 * either entirely there or not at all, whatever moment the app is killed at. Loading reads the
 * snapshot and replays the journal until the first missing (or unreadable) entry. Every
 * `compactEvery` writes the state is stored as a new snapshot and the folded journal keys removed;
 * a crash in between leaves keys that the snapshot already covers, removed at the next open.
 * A write that throws is not counted: the next write reuses its key, so a failure leaves no hole.
 */
export class KeyValueStorage implements SyncStorage {
  readonly kind = 'key-value';
  readonly durable = true;
  readonly prefix: string;
  private readonly compactEvery: number;
  private image?: StateImage;
  /** Journal: the snapshot covers up to `base`; entries base+1..head are stored. */
  private base = 0;
  private head = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: KeyValueStore,
    name = 'default',
    opts: KeyValueStorageOptions = {},
  ) {
    this.prefix = opts.prefix ?? `sync-client:${name}`;
    this.compactEvery = Math.max(1, opts.compactEvery ?? 200);
  }

  private key(n: number): string {
    return `${this.prefix}:log:${n}`;
  }

  /** Runs operations one at a time, in call order (writes must reach the journal in order). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  load(): Promise<StoredState> {
    return this.serial(async () => {
      const raw = await this.store.getItem(`${this.prefix}:snapshot`);
      let snap: Snapshot | undefined;
      if (raw) {
        try {
          snap = JSON.parse(raw) as Snapshot;
        } catch {
          throw new Error(`KeyValueStorage: the snapshot under ${this.prefix}:snapshot is unreadable`);
        }
      }
      const image = snap ? StateImage.from(snap.state) : new StateImage();
      // leftovers of a compaction interrupted after its snapshot was stored
      if (snap) for (let n = snap.from; n <= snap.to; n++) await this.store.removeItem(this.key(n));
      let n = snap ? snap.to : 0;
      this.base = n;
      for (;;) {
        const entry = await this.store.getItem(this.key(n + 1));
        if (entry === null || entry === undefined) break;
        let w: StorageWrite;
        try {
          w = JSON.parse(entry) as StorageWrite;
        } catch {
          break; // a torn entry can only be the last one: it was never reported as written
        }
        image.apply(w);
        n++;
      }
      this.head = n;
      this.image = image;
      return cloneJson(image.toState());
    });
  }

  write(w: StorageWrite): Promise<void> {
    return this.serial(async () => {
      if (!this.image) throw new Error('KeyValueStorage: load() first');
      const copy = cloneJson(w);
      await this.store.setItem(this.key(this.head + 1), JSON.stringify(copy));
      this.head++;
      this.image.apply(copy);
      if (this.head - this.base >= this.compactEvery) {
        // best effort: the journal stays valid if this fails part-way
        await this.compact().catch(() => undefined);
      }
    });
  }

  private async compact(): Promise<void> {
    const snap: Snapshot = { v: 1, state: this.image!.toState(), from: this.base + 1, to: this.head };
    await this.store.setItem(`${this.prefix}:snapshot`, JSON.stringify(snap));
    this.base = this.head;
    for (let n = snap.from; n <= snap.to; n++) await this.store.removeItem(this.key(n));
  }

  close(): Promise<void> {
    return this.serial(async () => {
      this.image = undefined;
    });
  }
}
