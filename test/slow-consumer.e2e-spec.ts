/* Slow consumers (issue 10, finding 4, live half): a client that stops reading its socket while it is
 * subscribed to a collection under a heavy write stream must not make the server buffer without bound.
 * Each socket has a bounded outgoing buffer (MAX_SOCKET_BUFFER_BYTES); a socket over it is disconnected
 * (after an optional `sync:error { code: 'SLOW_CONSUMER' }`) and catches up from the feed like after any
 * disconnect, while every other client keeps receiving everything. Measured in the server: what is
 * queued for the paused socket, and the heap after a full GC. */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import request from 'supertest';
import type { Server, Socket as ServerSocket } from 'socket.io';
import { queuedBytes } from '../src/common/socket-buffer';
import { SyncGateway } from '../src/gateway/sync.gateway';
import type { ClientChange } from '@sync/protocol';
import { emitAck, joinedClient, recordEvents, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';
import { RawSocket } from './support/raw-socket';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

const LIMIT = 1024 * 1024;
const BATCH = 50;
const FIELD = 'x'.repeat(10_000); // ~10 KB per change, ~500 KB per delivered batch
const MAX_BATCHES = 80; // ~40 MB in all, far beyond what the kernel's socket buffers absorb

describe('slow consumer: a paused socket is cut off at MAX_SOCKET_BUFFER_BYTES, nobody else suffers', () => {
  let t: TestApp;
  const sockets: ClientSocket[] = [];
  let raw: RawSocket | undefined;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', MAX_SOCKET_BUFFER_BYTES: String(LIMIT) }, 'slow_consumer');
  });
  afterAll(async () => {
    raw?.close();
    for (const s of sockets) s.close();
    await t?.close();
  });

  it('disconnects the paused socket once over its buffer bound; memory stays bounded; others get every change; nothing is lost', async () => {
    const io: Server = t.app.get(SyncGateway).server;
    const serverSocketOf = (user: string): ServerSocket | undefined =>
      [...io.sockets.sockets.values()].find((s) => (s.data as { user?: { id: string } }).user?.id === user);

    const writer = await joinedClient(t.url, 'writer');
    const honest = await joinedClient(t.url, 'honest');
    sockets.push(writer, honest);
    expect(await emitAck(honest, 'sync:subscribe', { collection: 'flood', bootstrap: false })).toMatchObject({ success: true });
    const got = recordEvents(honest, 'sync:changes');

    raw = await RawSocket.connect(t.url);
    const joined = (await raw.emitRaw('sync:join', JSON.stringify({ userId: 'slow' }))) as { success: boolean; cursor: string };
    expect(joined).toMatchObject({ success: true });
    expect(await raw.emitRaw('sync:subscribe', JSON.stringify({ collection: 'flood', bootstrap: false }))).toMatchObject({ success: true });
    const slow = serverSocketOf('slow')!;
    expect(slow).toBeDefined();
    raw.pauseReading();

    const baseline = heapAfterGc();
    let maxQueued = 0;
    let sent = 0;
    let batches = 0;
    let cutAfter = -1;
    for (; batches < MAX_BATCHES; batches++) {
      const changes = Array.from({ length: BATCH }, (_, j): ClientChange => ({
        operation: 'insert',
        collection: 'flood',
        documentId: `b${batches}-${j}`,
        data: { j, FIELD },
      }));
      const ack = await emitAck(writer, 'sync:changeBatch', { changes }, 60_000);
      expect(ack).toMatchObject({ success: true, successCount: BATCH });
      sent += BATCH;
      if (slow.connected) maxQueued = Math.max(maxQueued, queuedBytes(slow));
      else if (cutAfter < 0) cutAfter = batches;
      // a few more batches after the cut: the others keep receiving
      if (cutAfter >= 0 && batches >= cutAfter + 5) break;
    }
    const heapGrowth = heapAfterGc() - baseline;
    // eslint-disable-next-line no-console
    console.info(
      `slow consumer: cut after ${cutAfter} of ${batches + 1} batches; max queued ${maxQueued} bytes (limit ${LIMIT}); heap growth after GC ${Math.round(heapGrowth / 1024)} KiB`,
    );

    // the paused socket was cut off, and what was queued for it never went far beyond the bound
    expect({ disconnected: !slow.connected, cutAfter: cutAfter >= 0 }).toEqual({ disconnected: true, cutAfter: true });
    expect(maxQueued).toBeLessThanOrEqual(LIMIT + 2 * BATCH * (FIELD.length + 200));
    expect(heapGrowth).toBeLessThan(16 * 1024 * 1024);
    raw.resumeReading(); // it reads what reached it, then sees the server closed the connection
    await raw.waitClosed(20_000);

    // the honest client got every change, in order, once
    await waitFor(() => got.length >= sent, 60_000, 'the honest client receives everything');
    expect(got).toHaveLength(sent);
    const ids = got.map((c) => c.documentId as string);
    expect(new Set(ids).size).toBe(sent);
    expect(await request(t.url).get('/health').expect(200)).toBeTruthy();

    // nothing is lost: the slow client, back, catches up from the cursor it had
    const back = await joinedClient(t.url, 'slow');
    sockets.push(back);
    const seen: string[] = [];
    let cursor = joined.cursor;
    for (;;) {
      const page = await emitAck(back, 'sync:get_changes', { cursor, collection: 'flood', limit: 500 });
      expect(page).toMatchObject({ success: true });
      seen.push(...page.changes.map((c: { documentId: string }) => c.documentId));
      cursor = page.cursor;
      if (!page.hasMore) break;
    }
    expect(seen).toEqual(ids);
  }, 240_000);
});
