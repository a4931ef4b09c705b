import { MemoryStorage } from '../storage/memory-storage';
import { SyncClient, type SyncClientOptions } from '../sync-client';
import { FakeSyncServer } from './fake-sync-server';

/** What a spec gets from useFakeServer. */
export interface FakeHarness {
  /** This test's server (a fresh one per test). */
  server: FakeSyncServer;
  /** A client of this test's server (closed after the test): `defaults`, then `opts`. */
  client(userId: string, storage?: MemoryStorage, opts?: SyncClientOptions): SyncClient;
  /** Closes `c` (a client made otherwise) after the test too. */
  closeAfterTest(c: SyncClient): void;
  /** Replaces this test's server with a fresh one started with `opts` (e.g. a smaller message limit). */
  restart(opts: Parameters<FakeSyncServer['start']>[1]): Promise<void>;
}

/**
 * The SDK specs' setup: a FakeSyncServer started before each test and stopped after it, and clients
 * (websocket, no logger, short reconnect delays) closed after each test.
 */
export function useFakeServer(defaults: SyncClientOptions = {}): FakeHarness {
  const clients: SyncClient[] = [];
  const h: FakeHarness = {
    server: new FakeSyncServer(),
    client(userId, storage = new MemoryStorage(), opts = {}) {
      const c = new SyncClient(h.server.url, userId, storage, {
        logger: null,
        transports: ['websocket'],
        connectTimeoutMs: 5_000,
        socketOptions: { reconnectionDelay: 50, reconnectionDelayMax: 200 },
        ...defaults,
        ...opts,
      });
      clients.push(c);
      return c;
    },
    closeAfterTest(c) {
      clients.push(c);
    },
    async restart(opts) {
      await h.server.stop();
      h.server = new FakeSyncServer();
      await h.server.start(0, opts);
    },
  };
  beforeEach(async () => {
    h.server = new FakeSyncServer();
    await h.server.start();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await h.server.stop();
  });
  return h;
}

/** Polls `pred` every 10 ms until it holds; throws after `ms`. */
export async function until(pred: () => boolean, what = 'condition', ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
