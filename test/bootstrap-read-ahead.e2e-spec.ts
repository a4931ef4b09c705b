import type { Socket as ServerSocket } from 'socket.io';
import { queuedBytes } from '../src/common/socket-buffer';
import { DocumentRepository } from '../src/feed/document.repository';
import { SyncGateway } from '../src/gateway/sync.gateway';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor } from './support/app';
import { RawSocket } from './support/raw-socket';

const PAGE = 20;
const BUFFER = 16 * 1024;
const DOCS = 3000;
const TEXT = 'r'.repeat(3000); // ~9 MB in all: far beyond what the kernel's socket buffers absorb

/**
 * A bootstrap reads its next page from the database while the current one is sent (read-ahead of one
 * page). Under a client that stops reading, what the server has read beyond what it sent stays at
 * most that one page (plus the document that tells whether a page is the last), and once the client
 * reads again every document arrives exactly once.
 */
describe('bootstrap read-ahead: bounded under a paused socket', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp(
      {
        AUTH_MODE: 'dev',
        RATE_LIMIT_DISABLED: 'true',
        BOOTSTRAP_PAGE_SIZE: String(PAGE),
        BOOTSTRAP_BUFFER_BYTES: String(BUFFER),
        BOOTSTRAP_DRAIN_TIMEOUT_MS: '120000',
      },
      'bootstrap_ahead',
    );
  });
  afterAll(async () => {
    await t?.close();
  });

  it('reads at most one page ahead of what the socket took, then delivers every document once', async () => {
    const writer = await joinedClient(t.url, 'writer');
    for (let k = 0; k < DOCS; k += 100) {
      const ack = await emitAck(writer, 'sync:changeBatch', {
        changes: Array.from({ length: 100 }, (_, i) => ({
          operation: 'insert',
          collection: 'ahead',
          documentId: `d${String(k + i).padStart(5, '0')}`,
          data: { text: TEXT },
        })),
      });
      expect(ack).toMatchObject({ success: true, successCount: 100 });
    }
    writer.close();

    // count the documents the bootstrap pulls from its database cursor, and those it sends
    const repo = t.app.get(DocumentRepository);
    const stream = repo.stream.bind(repo);
    let read = 0;
    repo.stream = (...args: Parameters<DocumentRepository['stream']>) => {
      const cursor = stream(...args);
      const next = cursor.next.bind(cursor);
      cursor.next = (async () => {
        const d = await next();
        if (d) read++;
        return d;
      }) as typeof cursor.next;
      return cursor;
    };

    const raw = await RawSocket.connect(t.url);
    raw.recordEvents = true;
    try {
      expect(await raw.emitRaw('sync:join', JSON.stringify({ userId: 'pauser' }))).toMatchObject({ success: true });
      const io = (t.app.get(SyncGateway) as SyncGateway).server;
      const serverSide = [...io.sockets.sockets.values()].find((s) => s.data.user?.id === 'pauser') as ServerSocket;
      let sent = 0;
      const emit = serverSide.emit.bind(serverSide);
      serverSide.emit = ((ev: string, ...args: any[]) => {
        if (ev === 'sync:bootstrap') sent += args[0].data.length;
        return emit(ev, ...args);
      }) as typeof serverSide.emit;

      raw.pauseReading();
      raw.sendFrame(`42${JSON.stringify(['sync:subscribe', { collection: 'ahead' }])}`);
      // the bootstrap stalls: the socket holds more than the buffer bound, and nothing more is read
      await waitFor(() => queuedBytes(serverSide) >= BUFFER, 60_000, 'the paused socket to fill');
      let last = -1;
      await waitFor(
        async () => {
          const now = read;
          const still = now === last;
          last = now;
          if (!still) await new Promise((r) => setTimeout(r, 300));
          return still;
        },
        60_000,
        'the bootstrap to stall',
      );
      expect(sent).toBeLessThan(DOCS);
      expect(read).toBeGreaterThanOrEqual(sent);
      // one page read ahead, plus the one document beyond it
      expect(read - sent).toBeLessThanOrEqual(PAGE + 1);

      raw.resumeReading();
      const pages = () => raw.events.filter((e) => e[0] === 'sync:bootstrap').map((e) => e[1] as { data: { _id: string }[]; page: number; done: boolean });
      await waitFor(() => pages().some((p) => p.done), 120_000, 'the last page');
      const ids = pages().flatMap((p) => p.data.map((d) => d._id));
      expect(ids).toHaveLength(DOCS);
      expect(new Set(ids).size).toBe(DOCS);
      expect(pages().map((p) => p.page)).toEqual(pages().map((_, i) => i + 1));
      expect(pages().filter((p) => p.done)).toHaveLength(1);
      expect(Math.max(...pages().map((p) => p.data.length))).toBeLessThanOrEqual(PAGE);
    } finally {
      raw.close();
    }
  }, 300_000);
});
