/* Live delivery's direct frames (src/delivery/direct-frame.ts, issue 12): a change is encoded once per
 * group of sockets into one WebSocket frame, written straight to each WebSocket connection when that
 * is order-safe; polling sockets, busy ones and paused readers take Socket.IO's normal path. Real
 * socket.io-client sockets on every transport must receive exactly the same events, in the same order,
 * as the feed holds them; a socket mid-write or not reading falls back, and what direct writes leave
 * unsent counts towards the per-socket buffer bound. */
import type { Server, Socket as ServerSocket } from 'socket.io';
import { queuedBytes } from '../src/common/socket-buffer';
import { directTarget, textFrame } from '../src/delivery/direct-frame';
import { SyncGateway } from '../src/gateway/sync.gateway';
import { MetricsService } from '../src/metrics/metrics.service';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';
import { RawSocket } from './support/raw-socket';

interface Delivered {
  documentId: string;
  operation: string;
  cursor: string;
  outOfView?: boolean;
  data?: Record<string, unknown>;
}

const COLLECTION = 'df';

describe('direct frames: the same events, in the same order, on every transport', () => {
  let t: TestApp;
  let io: Server;
  const sockets: ClientSocket[] = [];
  let raw: RawSocket | undefined;

  const serverSocketOf = (user: string): ServerSocket | undefined =>
    [...io.sockets.sockets.values()].find((s) => (s.data as { user?: { id: string } }).user?.id === user);
  const directFrames = async (): Promise<number> => {
    const m = await t.app.get(MetricsService).registry.getSingleMetric('sync_delivery_direct_frames_total')?.get();
    return m?.values[0]?.value ?? 0;
  };
  const client = async (user: string, transports: ('websocket' | 'polling')[]) => {
    const s = await connectClient(t.url, { transports });
    sockets.push(s);
    const joined = await emitAck(s, 'sync:join', { userId: user });
    expect(joined).toMatchObject({ success: true });
    return { s, cursor: joined.cursor as string };
  };

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true' }, 'direct_frame');
    io = t.app.get(SyncGateway).server;
  });
  afterAll(async () => {
    raw?.close();
    for (const s of sockets) s.close();
    await t?.close();
  });

  it('builds the frame ws would build (header lengths 7, 16 and 64 bits)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Sender } = require('ws') as { Sender: { frame(d: Buffer, o: object): Buffer[] } };
    for (const text of ['', 'a', 'é'.repeat(62), 'x'.repeat(125), 'x'.repeat(126), '€'.repeat(30_000), 'y'.repeat(65_535), 'z'.repeat(70_000)]) {
      const wsFrame = Buffer.concat(Sender.frame(Buffer.from(text), { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }));
      expect(textFrame(text).equals(wsFrame)).toBe(true);
    }
  });

  it('websocket, polling and upgrading clients receive identical event sequences, equal to the feed', async () => {
    const ws = await client('df-ws', ['websocket']);
    const poll = await client('df-poll', ['polling']);
    const upgrading = await client('df-upgrade', ['polling', 'websocket']);
    const writer = await client('df-writer', ['websocket']);
    // the writer also subscribes (no echo of its own changes, but a check that acks and frames interleave)
    const receivers = [ws, poll, upgrading];
    const events: Delivered[][][] = receivers.map(() => []);
    for (const [i, r] of receivers.entries()) {
      expect(await emitAck(r.s, 'sync:subscribe', { collection: COLLECTION, filter: 'open == true', bootstrap: false })).toMatchObject({ success: true });
      r.s.on('sync:changes', (batch: Delivered[]) => events[i].push(batch));
    }
    const framesBefore = await directFrames();

    const doc = (i: number, extra: Record<string, unknown> = {}) => ({ open: true, i, text: 'héllo ✓ 𝄞', ...extra });
    let expected = 0;
    // single changes, one after another (one change per frame)
    for (let i = 0; i < 10; i++) {
      const ack = await emitAck(writer.s, 'sync:change', { operation: 'insert', collection: COLLECTION, documentId: `s${i}`, data: doc(i) });
      expect(ack).toMatchObject({ success: true });
      expected++;
    }
    // payloads whose frames need the 16-bit and the 64-bit length
    for (const [id, size] of [
      ['mid', 300],
      ['big', 70_000],
    ] as const) {
      expect(
        await emitAck(writer.s, 'sync:change', { operation: 'insert', collection: COLLECTION, documentId: id, data: doc(0, { pad: 'p'.repeat(size) }) }),
      ).toMatchObject({
        success: true,
      });
      expected++;
    }
    // a batch (several changes per frame), with an update that moves a document out of view and a delete
    const batch: ClientChange[] = [
      ...Array.from({ length: 20 }, (_, j): ClientChange => ({ operation: 'insert', collection: COLLECTION, documentId: `b${j}`, data: doc(100 + j) })),
      { operation: 'update', collection: COLLECTION, documentId: 's1', data: { open: false, i: 1 } },
      { operation: 'delete', collection: COLLECTION, documentId: 's2' },
      { operation: 'update', collection: COLLECTION, documentId: 's3', data: doc(3, { edited: true }) },
    ];
    expect(await emitAck(writer.s, 'sync:changeBatch', { changes: batch }, 30_000)).toMatchObject({ success: true, successCount: batch.length });
    expected += batch.length;
    // concurrent single changes (group commit: several changes reach the sockets together)
    const acks = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        emitAck(writer.s, 'sync:change', { operation: 'insert', collection: COLLECTION, documentId: `c${i}`, data: doc(200 + i) }),
      ),
    );
    for (const a of acks) expect(a).toMatchObject({ success: true });
    expected += acks.length;

    const count = (i: number) => events[i].reduce((n, b) => n + b.length, 0);
    await waitFor(() => receivers.every((_, i) => count(i) >= expected), 30_000, 'every receiver gets every change');

    // the feed, as a client catching up reads it
    const feed: Delivered[] = [];
    let cursor = ws.cursor;
    for (;;) {
      const page = await emitAck(ws.s, 'sync:get_changes', { cursor, collection: COLLECTION, limit: 500 });
      expect(page).toMatchObject({ success: true });
      feed.push(...(page.changes as Delivered[]));
      cursor = page.cursor;
      if (!page.hasMore) break;
    }
    const flat = (i: number) => events[i].flat().map((c) => ({ id: c.documentId, op: c.operation, cursor: c.cursor, oov: c.outOfView ?? false }));
    expect(flat(0)).toHaveLength(expected);
    expect(flat(0).map(({ id, op, cursor: c }) => ({ id, op, cursor: c }))).toEqual(feed.map((c) => ({ id: c.documentId, op: c.operation, cursor: c.cursor })));
    // s1 was inserted, then its update took it out of view
    expect(
      flat(0)
        .filter((c) => c.id === 's1')
        .map((c) => c.oov),
    ).toEqual([false, true]);
    expect(
      flat(0)
        .filter((c) => c.oov)
        .map((c) => c.id),
    ).toEqual(['s1']);
    // identical events (same grouping, same content) on the three transports
    expect(events[1]).toEqual(events[0]);
    expect(events[2]).toEqual(events[0]);
    expect(events[0].flat().find((c) => c.documentId === 'big')?.data?.pad).toHaveLength(70_000);
    expect(events[0].flat().find((c) => c.documentId === 's0')?.data?.text).toBe('héllo ✓ 𝄞');
    // the websocket clients were served by direct frames; the polling one cannot be
    expect((await directFrames()) - framesBefore).toBeGreaterThanOrEqual(events[0].length);
    expect(directTarget(serverSocketOf('df-poll')!)).toBeNull();
    expect(directTarget(serverSocketOf('df-ws')!)).not.toBeNull();
  }, 90_000);

  it("changes of several writers delivered together: each writer gets the others' changes, never its own, in feed order", async () => {
    const a = await client('df-a', ['websocket']);
    const b = await client('df-b', ['polling']);
    const c = await client('df-c', ['websocket']);
    const got = new Map<string, Delivered[]>();
    for (const [name, r] of [
      ['a', a],
      ['b', b],
      ['c', c],
    ] as const) {
      expect(await emitAck(r.s, 'sync:subscribe', { collection: 'df-multi', bootstrap: false })).toMatchObject({ success: true });
      const list: Delivered[] = [];
      got.set(name, list);
      r.s.on('sync:changes', (batch: Delivered[]) => list.push(...batch));
    }
    const send = (r: { s: ClientSocket }, prefix: string) =>
      Array.from({ length: 12 }, (_, i) =>
        emitAck(r.s, 'sync:change', { operation: 'insert', collection: 'df-multi', documentId: `${prefix}${i}`, data: { i } }),
      );
    const acks = await Promise.all([...send(a, 'a'), ...send(b, 'b')]);
    for (const ack of acks) expect(ack).toMatchObject({ success: true });
    await waitFor(() => got.get('c')!.length >= 24 && got.get('a')!.length >= 12 && got.get('b')!.length >= 12, 30_000, 'deliveries');
    const feedOrder = got.get('c')!.map((d) => d.documentId);
    expect(new Set(feedOrder).size).toBe(24);
    const cursors = got.get('c')!.map((d) => d.cursor);
    expect(got.get('a')!.map((d) => d.documentId)).toEqual(feedOrder.filter((id) => id.startsWith('b')));
    expect(got.get('b')!.map((d) => d.documentId)).toEqual(feedOrder.filter((id) => id.startsWith('a')));
    expect(got.get('a')!.map((d) => d.cursor)).toEqual(cursors.filter((_, i) => feedOrder[i].startsWith('b')));
  }, 60_000);

  it('a socket mid-write takes the normal path; a paused reader falls back and its unsent bytes count', async () => {
    const writer = await client('df-writer2', ['websocket']);
    const { s: busy } = await client('df-busy', ['websocket']);
    const srv = serverSocketOf('df-busy')!;
    // an Engine.IO send awaiting its write callback: no direct frame may overtake or interleave with it
    srv.emit('df-probe', 'x'.repeat(10_000));
    expect(directTarget(srv)).toBeNull();
    await waitFor(() => directTarget(srv) !== null, 10_000, 'the transport writable again');
    busy.close();

    raw = await RawSocket.connect(t.url);
    expect(await raw.emitRaw('sync:join', JSON.stringify({ userId: 'df-paused' }))).toMatchObject({ success: true });
    expect(await raw.emitRaw('sync:subscribe', JSON.stringify({ collection: 'df-flood', bootstrap: false }))).toMatchObject({ success: true });
    const slow = serverSocketOf('df-paused')!;
    raw.pauseReading();
    const pad = 'f'.repeat(100_000);
    let fellBack = false;
    for (let b = 0; b < 60 && !fellBack; b++) {
      const changes = Array.from({ length: 10 }, (_, j): ClientChange => ({
        operation: 'insert',
        collection: 'df-flood',
        documentId: `f${b}-${j}`,
        data: { pad },
      }));
      expect(await emitAck(writer.s, 'sync:changeBatch', { changes }, 60_000)).toMatchObject({ success: true });
      fellBack = slow.connected && directTarget(slow) === null;
      if (fellBack) expect(queuedBytes(slow)).toBeGreaterThan(0);
    }
    expect(fellBack).toBe(true);
    raw.resumeReading();
  }, 120_000);
});
