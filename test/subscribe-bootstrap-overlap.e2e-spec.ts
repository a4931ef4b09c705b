import type { Socket } from 'socket.io-client';
import type { ClientChange } from '@sync/protocol';
import { SocketSessions } from '../src/common/socket-session';
import { DocumentRepository } from '../src/feed/document.repository';
import { BootstrapScheduler } from '../src/subscription/bootstrap.scheduler';
import { SubscriptionService } from '../src/subscription/subscription.service';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor } from './support/app';

const PAGE = 20;
const BIG = 130; // 7 pages
const SMALL = 7; // one page: its count comes from the bootstrap's read

interface Page {
  subscriptionId: string;
  data: { _id: string; n: number }[];
  page: number;
  done: boolean;
}

/**
 * A subscribe's bootstrap starts before its answer: the first page is read while the subscribe
 * counts (or gives the count, when it is the last), and held until the ack went out. On the wire
 * nothing changes: the ack first, then the pages in order, and the count is the number of documents
 * the pages carry. A socket that goes away while the count runs leaves nothing behind.
 */
describe('subscribe: count and bootstrap read overlapped', () => {
  let t: TestApp;
  let repo: DocumentRepository;
  let countQueries = 0;
  /** When set, a count query waits for it (a count that takes long). */
  let countGate: Promise<void> | null = null;
  let countStarted: () => void = () => undefined;
  /** Documents read through bootstrap cursors, and cursors opened / closed. */
  let rowsRead = 0;
  let cursorsOpened = 0;
  let cursorsClosed = 0;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', BOOTSTRAP_PAGE_SIZE: String(PAGE) }, 'subscribe_overlap');
    const writer = await joinedClient(t.url, 'writer');
    const write = async (collection: string, n: number) => {
      for (let k = 0; k < n; k += 100) {
        const changes = Array.from({ length: Math.min(100, n - k) }, (_, i): ClientChange => ({
          operation: 'insert',
          collection,
          documentId: `d${String(k + i).padStart(4, '0')}`,
          data: { n: k + i },
        }));
        expect(await emitAck(writer, 'sync:changeBatch', { changes })).toMatchObject({ success: true, successCount: changes.length });
      }
    };
    await write('big', BIG);
    await write('small', SMALL);
    writer.close();

    // instrument the real repository (the real database answers every call)
    repo = t.app.get(DocumentRepository);
    const count = repo.count.bind(repo);
    repo.count = async (...args: Parameters<DocumentRepository['count']>) => {
      countQueries++;
      countStarted();
      if (countGate) await countGate;
      return count(...args);
    };
    const stream = repo.stream.bind(repo);
    repo.stream = (...args: Parameters<DocumentRepository['stream']>) => {
      const cursor = stream(...args);
      cursorsOpened++;
      const next = cursor.next.bind(cursor);
      cursor.next = (async () => {
        const d = await next();
        if (d) rowsRead++;
        return d;
      }) as typeof cursor.next;
      const close = cursor.close.bind(cursor);
      cursor.close = (async () => {
        cursorsClosed++;
        return close();
      }) as typeof cursor.close;
      return cursor;
    };
  });
  afterAll(async () => {
    await t?.close();
  });

  /** Subscribes and records the ack and the socket's pages in the order the client got them. */
  function subscribe(c: Socket, body: Record<string, unknown>) {
    const log: ({ ack: { success: boolean; subscriptionId: string; count: number } } | { page: Page })[] = [];
    const onPage = (p: Page) => log.push({ page: p });
    c.on('sync:bootstrap', onPage);
    const acked = new Promise<void>((resolve) =>
      c.emit('sync:subscribe', body, (ack: { success: boolean; subscriptionId: string; count: number }) => {
        log.push({ ack });
        resolve();
      }),
    );
    return {
      log,
      acked,
      /** Waits for the last page (when the subscription bootstraps), then checks the order. */
      async finished(bootstrap = true) {
        await acked;
        // the socket's other subscriptions may send pages before this ack: only this one's pages count
        const ackAt = log.findIndex((e) => 'ack' in e);
        const ack = (log[ackAt] as { ack: { success: boolean; subscriptionId: string; count: number } }).ack;
        expect(ack).toMatchObject({ success: true });
        const isMine = (e: (typeof log)[number]) => 'page' in e && e.page.subscriptionId === ack.subscriptionId;
        const mine = () => log.flatMap((e) => ('page' in e && isMine(e) ? [e.page] : []));
        if (bootstrap) await waitFor(() => mine().some((p) => p.done), 30_000, 'the last page');
        c.off('sync:bootstrap', onPage);
        return { ack, pages: mine(), firstIsAck: !log.slice(0, ackAt).some(isMine) };
      },
    };
  }

  it('sends the ack before every page, with a count equal to the documents delivered', async () => {
    const c = await joinedClient(t.url, 'reader');
    try {
      // one page: the count is the bootstrap's read, no count query
      let before = countQueries;
      const small = await subscribe(c, { collection: 'small' }).finished();
      expect(small.firstIsAck).toBe(true);
      expect(small.ack.count).toBe(SMALL);
      expect(small.pages).toHaveLength(1);
      expect(small.pages[0]).toMatchObject({ page: 1, done: true });
      expect(small.pages[0].data.map((d) => d._id).sort()).toEqual(Array.from({ length: SMALL }, (_, i) => `d${String(i).padStart(4, '0')}`));
      expect(countQueries).toBe(before);

      // several pages: the count query runs while the first page is held
      before = countQueries;
      const big = await subscribe(c, { collection: 'big' }).finished();
      expect(big.firstIsAck).toBe(true);
      expect(big.ack.count).toBe(BIG);
      const ids = big.pages.flatMap((p) => p.data.map((d) => d._id));
      expect(ids).toHaveLength(BIG);
      expect(new Set(ids).size).toBe(BIG);
      expect(big.pages.map((p) => p.page)).toEqual(big.pages.map((_, i) => i + 1));
      expect(big.pages.filter((p) => p.done)).toHaveLength(1);
      expect(big.pages.at(-1)?.done).toBe(true);
      expect(countQueries).toBe(before + 1);

      // a filter, both sides of the page size
      for (const [filter, expected, match] of [
        ['n < 15', 15, (n: number) => n < 15],
        ['n >= 30 AND n < 95', 65, (n: number) => n >= 30 && n < 95],
        ['n > 1e9', 0, () => false],
      ] as const) {
        const r = await subscribe(c, { collection: 'big', filter }).finished();
        expect(r.firstIsAck).toBe(true);
        expect(r.ack.count).toBe(expected);
        expect(r.pages.flatMap((p) => p.data)).toHaveLength(expected);
        expect(r.pages.flatMap((p) => p.data).every((d) => match(d.n))).toBe(true);
      }

      // without a bootstrap: a count query, no page
      before = countQueries;
      const quiet = await subscribe(c, { collection: 'small', bootstrap: false }).finished(false);
      expect(quiet.ack.count).toBe(SMALL);
      expect(quiet.pages).toHaveLength(0);
      expect(countQueries).toBe(before + 1);

      // three at once: the later ones queue behind the first bootstrap (and count with a query);
      // each ack still precedes its own pages
      const many = [subscribe(c, { collection: 'big' }), subscribe(c, { collection: 'small' }), subscribe(c, { collection: 'big', filter: 'n < 50' })];
      const results = await Promise.all(many.map((m) => m.finished()));
      for (const [r, expected] of results.map((r, i) => [r, [BIG, SMALL, 50][i]] as const)) {
        expect(r.firstIsAck).toBe(true);
        expect(r.ack.count).toBe(expected);
        expect(r.pages.flatMap((p) => p.data)).toHaveLength(expected);
        expect(r.pages.filter((p) => p.done)).toHaveLength(1);
      }
      await waitFor(() => cursorsClosed === cursorsOpened, 15_000, 'every bootstrap cursor closed');
    } finally {
      c.close();
    }
  }, 120_000);

  it('stops the read and keeps nothing when the socket closes while the count runs', async () => {
    let release!: () => void;
    countGate = new Promise<void>((resolve) => (release = resolve));
    const started = new Promise<void>((resolve) => (countStarted = resolve));
    const opened = cursorsOpened;
    const c = await joinedClient(t.url, 'leaver');
    try {
      const readBefore = rowsRead;
      const sub = subscribe(c, { collection: 'big' });
      await started; // the count query is running (held), the first page was read
      expect(cursorsOpened).toBe(opened + 1);
      c.close();
      const sessions = t.app.get(SocketSessions);
      await waitFor(() => sessions.size === 0, 15_000, 'the socket released');
      release();
      const scheduler = t.app.get(BootstrapScheduler);
      const registry = t.app.get(SubscriptionService).registry;
      await waitFor(
        () => {
          const s = scheduler.stats();
          return s.running === 0 && s.waiting === 0 && s.sockets === 0 && cursorsClosed === cursorsOpened;
        },
        15_000,
        'the bootstrap to end',
      );
      expect(registry.stats()).toMatchObject({ sockets: 0, subscriptions: 0 });
      // the read stopped at the held page and the one read ahead during the count (and the document
      // telling whether that one is the last): the pages beyond were never read
      expect(rowsRead - readBefore).toBeLessThanOrEqual(2 * PAGE + 1);
      expect(sub.log.filter((e) => 'page' in e)).toHaveLength(0);
    } finally {
      countGate = null;
      countStarted = () => undefined;
      release?.();
      c.close();
    }
  }, 60_000);
});
