/* Per-socket state lives in one session (SocketSession on socket.data) and goes with one release
 * (the gateway's handleDisconnect, or the handshake's end for a socket that never connected). Many
 * sockets are opened and closed in every phase: mid-handshake, before join, mid-join, after
 * subscribing, mid-bootstrap (and waiting for a bootstrap slot), with reads in flight, on token
 * expiry, on JOIN_TIMEOUT, on SLOW_CONSUMER, and disconnected by the server. Afterwards every
 * module's per-socket bookkeeping must be empty: the sessions, the connection slots and their
 * indexes, the subscription indexes, the bootstrap chains and slots, the deadlines. Removing one
 * step of the gateway's release (subscriptions, limits, the session) fails this test; the release at
 * the end of a handshake whose connection closed meanwhile is proven by auth.e2e-spec.ts ("hangs up
 * while its token is being verified", a deterministic slow verification). */
import type { Server } from 'socket.io';
import WebSocket from 'ws';
import { SocketSessions } from '../src/common/socket-session';
import { SocketAuthService } from '../src/gateway/socket-auth.service';
import { SyncGateway } from '../src/gateway/sync.gateway';
import { ConnectionLimitService } from '../src/limits/connection-limit.service';
import { BootstrapScheduler } from '../src/subscription/bootstrap.scheduler';
import { SubscriptionService } from '../src/subscription/subscription.service';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';
import { hs256, TEST_SECRET } from './support/jwt';
import { RawSocket } from './support/raw-socket';

const LIMIT = 64 * 1024;
const FIELD = 'x'.repeat(2000);
const BIG = 'x'.repeat(10_000);

describe('socket sessions: one object per socket, released by one handler in every phase', () => {
  let t: TestApp;
  const clients: ClientSocket[] = [];
  const raws: RawSocket[] = [];

  beforeAll(async () => {
    t = await startTestApp(
      {
        AUTH_JWT_SECRET: TEST_SECRET,
        RATE_LIMIT_DISABLED: 'true',
        JOIN_TIMEOUT_MS: '1500',
        TOKEN_EXPIRY_GRACE_MS: '300',
        MAX_SOCKET_BUFFER_BYTES: String(LIMIT),
        BOOTSTRAP_PAGE_SIZE: '10',
        BOOTSTRAP_BUFFER_BYTES: '16384',
        MAX_CONCURRENT_BOOTSTRAPS: '1',
        MAX_CONNECTIONS_PER_IP: '1000',
        MAX_CONNECTIONS_PER_USER: '100',
      },
      'socket_session',
    );
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of raws) r.close();
    await t?.close();
  });

  const token = (sub: string, expiresIn: string | number = '1h') => hs256({ sub }, { expiresIn });
  async function client(opts: Parameters<typeof connectClient>[1] = {}): Promise<ClientSocket> {
    const c = await connectClient(t.url, opts);
    clients.push(c);
    return c;
  }
  async function joined(user: string, expiresIn?: string | number): Promise<ClientSocket> {
    const c = await client({ auth: { token: await token(user, expiresIn) } });
    expect(await emitAck(c, 'sync:join', {})).toMatchObject({ success: true, userId: user });
    return c;
  }
  const closed = (c: ClientSocket) => new Promise<void>((resolve) => (c.disconnected ? resolve() : c.once('disconnect', () => resolve())));

  /** Everything a node keeps per socket, from every module. */
  function bookkeeping() {
    const io: Server = t.app.get(SyncGateway).server;
    const scheduler = t.app.get(BootstrapScheduler).stats();
    return {
      serverSockets: io.of('/').sockets.size,
      sessions: t.app.get(SocketSessions).size,
      trackedByAuth: t.app.get(SocketAuthService).trackedSockets,
      deadlines: t.app.get(SocketAuthService).pendingDeadlines,
      limits: t.app.get(ConnectionLimitService).stats(),
      subscriptions: t.app.get(SubscriptionService).registry.stats(),
      bootstraps: { running: scheduler.running, waiting: scheduler.waiting, sockets: scheduler.sockets },
    };
  }
  const EMPTY = {
    serverSockets: 0,
    sessions: 0,
    trackedByAuth: 0,
    deadlines: 0,
    limits: { sockets: 0, addresses: 0, users: 0 },
    subscriptions: { sockets: 0, collections: 0, subscriptions: 0, unsubscribed: 0, queries: 0 },
    bootstraps: { running: 0, waiting: 0, sockets: 0 },
  };

  it('holds one session per socket while connected, and nothing of any socket after every kind of disconnect', async () => {
    // documents to bootstrap (several pages each) and a writer
    const writer = await joined('writer');
    const docs = Array.from({ length: 60 }, (_, i): ClientChange => ({ operation: 'insert', collection: 'boot', documentId: `d${i}`, data: { i, FIELD } }));
    expect(await emitAck(writer, 'sync:changeBatch', { changes: docs }, 60_000)).toMatchObject({ success: true, successCount: 60 });

    // 1. mid-handshake: the WebSocket closes right after asking to connect (while its token is checked), or once connected
    const wsUrl = `${t.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
    for (let i = 0; i < 20; i++) {
      const auth = JSON.stringify({ token: await token(`hs-${i}`) });
      const ws = new WebSocket(wsUrl);
      ws.on('error', () => undefined);
      ws.on('message', (m) => {
        if (String(m).startsWith('0')) {
          ws.send(`40${auth}`);
          ws.terminate();
        }
      });
    }
    for (let i = 0; i < 5; i++) {
      const r = RawSocket.connect(t.url, { token: await token(`hs-late-${i}`) });
      r.then((s) => s.close()).catch(() => undefined);
    }
    // 2. before join: anonymous sockets that leave, and some that stay until JOIN_TIMEOUT (server-side)
    const anonymous = await Promise.all(Array.from({ length: 10 }, () => client()));
    const timedOut = anonymous.slice(5);
    for (const c of anonymous.slice(0, 5)) c.close();
    // 3. mid-join: the join is sent and the socket closed without waiting for the ack
    for (let i = 0; i < 5; i++) {
      const c = await client();
      c.emit('sync:join', { token: await token(`mid-join-${i}`) }, () => undefined);
      c.close();
    }
    // 4. after join and subscribe (joined unsubscribed ones too); a get_changes left in flight
    const idle = await Promise.all(Array.from({ length: 10 }, (_, i) => joined(`idle-${i}`)));
    for (const [i, c] of idle.entries())
      if (i % 2) expect(await emitAck(c, 'sync:subscribe', { collection: 'boot', filter: `i == ${i}`, bootstrap: false })).toMatchObject({ success: true });
    idle[0].emit('sync:get_changes', { limit: 500 }, () => undefined);

    // 5. mid-bootstrap (and waiting for the node's one bootstrap slot)
    const booting = await Promise.all(Array.from({ length: 6 }, (_, i) => joined(`boot-${i}`)));
    const firstPages = booting.map((c) => new Promise<void>((resolve) => c.once('sync:bootstrap', () => resolve())));
    for (const c of booting) c.emit('sync:subscribe', { collection: 'boot' }, () => undefined);
    await firstPages[0];

    // 6. token expiry: the server disconnects after the grace
    const expiring = await Promise.all(Array.from({ length: 3 }, (_, i) => joined(`exp-${i}`, Math.floor(Date.now() / 1000) + 2)));

    // 7. SLOW_CONSUMER: a socket that stops reading is cut off by the server
    const slow = await RawSocket.connect(t.url, { token: await token('slow') });
    raws.push(slow);
    expect(await slow.emitRaw('sync:join', '{}')).toMatchObject({ success: true });
    expect(await slow.emitRaw('sync:subscribe', JSON.stringify({ collection: 'flood', bootstrap: false }))).toMatchObject({ success: true });

    // while all of this is open: one session per socket the server holds
    const open = bookkeeping();
    expect(open.sessions).toBeGreaterThanOrEqual(open.serverSockets); // (handshakes in flight may add a few)
    expect(open.sessions).toBeGreaterThanOrEqual(1 + 10 + 6 + 3 + 1); // (the anonymous ones may have timed out already)
    expect(open.subscriptions.subscriptions).toBeGreaterThanOrEqual(5 + 1);

    slow.pauseReading();
    const slowHeld = () => [...(t.app.get(SyncGateway).server as Server).of('/').sockets.values()].some((s) => s.data.user?.id === 'slow');
    // ~500 KB per batch: far beyond what the kernel's socket buffers absorb within 80 batches
    for (let b = 0; b < 80 && slowHeld(); b++) {
      const changes = Array.from({ length: 50 }, (_, j): ClientChange => ({
        operation: 'insert',
        collection: 'flood',
        documentId: `f${b}-${j}`,
        data: { BIG },
      }));
      expect(await emitAck(writer, 'sync:changeBatch', { changes }, 60_000)).toMatchObject({ success: true });
    }
    expect(slowHeld()).toBe(false);
    slow.resumeReading();
    await slow.waitClosed(30_000);

    // 8. server-side disconnects: the booting sockets mid-bootstrap, and the rest as clients leave
    const io: Server = t.app.get(SyncGateway).server;
    for (const s of io.of('/').sockets.values()) if (s.data.user?.id.startsWith('boot-')) s.disconnect(true);
    await Promise.all(expiring.map(closed));
    await Promise.all(timedOut.map(closed));
    for (const c of [...idle, writer]) c.close();

    await waitFor(() => JSON.stringify(bookkeeping()) === JSON.stringify(EMPTY), 30_000, 'every per-socket record to be released');
    expect(bookkeeping()).toEqual(EMPTY);
  });
});
