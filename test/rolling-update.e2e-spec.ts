/* Rolling updates without loss (issue 13). A node that gets SIGTERM turns /ready to 503, refuses new
 * sockets and new messages (UNAVAILABLE, retryable), lets the messages it is handling finish, sends
 * every socket `sync:shutdown` and disconnects it, closes the bus and the database, and exits 0 within
 * SHUTDOWN_GRACE_MS.
 *
 * 1. In process: each step of the drain, observed from outside.
 * 2. Two server processes on one database with a real redis-server: SIGTERM one of them in the
 *    middle of write streams from clients on both. Every acked change is in the feed and the
 *    documents; the stopped node's clients move to the other node, resend what was refused and catch
 *    up; every client ends equal to the server; the clients of the surviving node never reconnect
 *    and get every change live. */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { io } from 'socket.io-client';
import { freePort } from '../src/database/embedded-database';
import { DrainService } from '../src/lifecycle/drain.service';
import { connectTestDb, testMongoUri } from './support/db';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, joinedClient, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';
import { haveRedisServer, REDIS_SERVER_BIN, TestRedis } from './support/redis';
import { feedEntries } from './support/feed';
import { spawnServer } from './support/server-process';

const GRACE_MS = 20_000;
const SERVICE_TOKEN = 'svc-token-0123456789-abcdefghijklmnopqrstuvwxyz';

describe('graceful shutdown, step by step (in process)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', SHUTDOWN_GRACE_MS: String(GRACE_MS) }, 'drain');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('/ready 503 at once, new sockets and new messages refused, in-flight write acked, then sync:shutdown and disconnect', async () => {
    await request(t.url).get('/ready').expect(200);
    const writer = await joinedClient(t.url, 'alice');
    const watcher = await joinedClient(t.url, 'bob');
    const notices: unknown[] = [];
    const reasons: string[] = [];
    for (const s of [writer, watcher]) {
      s.on('sync:shutdown', (n) => notices.push(n));
      s.on('disconnect', (r) => reasons.push(r));
    }
    // a batch in flight when the drain starts is finished and acknowledged
    const changes = Array.from({ length: 200 }, (_, i): ClientChange => ({
      changeId: `c${i}`,
      operation: 'insert',
      collection: 'drain',
      documentId: `d${i}`,
      data: { i },
    }));
    const inFlight = emitAck(writer, 'sync:changeBatch', { changes });
    const drain = t.app.get(DrainService);
    await waitFor(() => drain.pending > 0, 10_000, 'the batch being handled');
    const drained = drain.drain(GRACE_MS);

    const ready = await request(t.url).get('/ready');
    expect(ready.status).toBe(503);
    await expect(connectClient(t.url)).rejects.toThrow();

    const ack = await inFlight;
    expect(ack).toMatchObject({ success: true, successCount: 200 });
    const result = await drained;
    expect(result).toMatchObject({ finished: true, sockets: 2 });
    await waitFor(() => reasons.length === 2, 10_000, 'both sockets disconnected');
    expect(reasons).toEqual(['io server disconnect', 'io server disconnect']);
    expect(notices).toHaveLength(2);
    for (const n of notices) {
      expect(n).toMatchObject({ reason: 'server_shutdown' });
      expect((n as { retryAfterMs: number }).retryAfterMs).toBeGreaterThanOrEqual(0);
    }
  });

  it('a message that arrives while draining is answered UNAVAILABLE and nothing is written', async () => {
    // a fresh app: the previous one is draining for good
    const u = await startTestApp({ AUTH_MODE: 'dev', AUTH_SERVICE_TOKEN: SERVICE_TOKEN }, 'drain2');
    try {
      const s = await joinedClient(u.url, 'carol');
      const drain = u.app.get(DrainService);
      drain.stopAccepting(); // drain()'s first step, without the disconnect that follows
      const ack = await emitAck(s, 'sync:change', { changeId: 'late', operation: 'insert', collection: 'drain', documentId: 'late', data: {} });
      expect(ack).toMatchObject({ success: false, code: 'UNAVAILABLE' });
      expect(await emitAck(s, 'ping', {})).toMatchObject({ success: false, code: 'UNAVAILABLE' });
      // the REST ingest too (a write); reads and probes still answer
      const rest = await request(u.url)
        .post('/api/changes')
        .set('Authorization', `Bearer ${SERVICE_TOKEN}`)
        .send({ changes: [{ changeId: 'late-rest', operation: 'insert', collection: 'drain', documentId: 'late-rest', data: {} }] });
      expect(rest.status).toBe(503);
      expect(rest.body).toMatchObject({ success: false, code: 'UNAVAILABLE' });
      await request(u.url).get('/ready').expect(503);
      await request(u.url).get('/health').expect(200);
      const db = await connectTestDb('drain2', u.mongoUri);
      try {
        expect(await db.db.collection('_sync_feed').countDocuments({ changeId: { $in: ['late', 'late-rest'] } })).toBe(0);
      } finally {
        await db.client.close();
      }
      await drain.drain(1000);
    } finally {
      await u.close();
    }
  });
});

interface Node {
  name: string;
  url: string;
  proc: ChildProcess;
  log: string[];
  exited: Promise<{ code: number | null; signal: string | null; at: number }>;
}

function startNode(name: string, port: number, env: Record<string, string>): Node {
  const { proc, output: log } = spawnServer(port, { LOG_LEVEL: 'info', ...env });
  const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  return { name, url: `http://127.0.0.1:${port}`, proc, log, exited };
}

async function nodeReady(node: Node): Promise<void> {
  let gone = false;
  void node.exited.then(() => (gone = true));
  await waitFor(
    async () => {
      if (gone) throw new Error(`${node.name} exited before it was ready:\n${node.log.join('')}`);
      const h = await fetch(`${node.url}/health`)
        .then((r) => r.json())
        .catch(() => null);
      const ready = (await fetch(`${node.url}/ready`).catch(() => null))?.status === 200;
      return ready && h?.cluster?.status === 'up';
    },
    90_000,
    `${node.name} ready and on the bus`,
  );
}

interface Doc {
  data?: Record<string, unknown>;
  timestamp: number;
}

/**
 * A client as the SDK behaves: a local replica of the collection (live changes and catch-up, newest
 * version wins), an outbox resent after a refusal or a reconnect, and on `sync:shutdown` a reconnect
 * to the node the test names (the load balancer would pick it).
 */
class SimClient {
  socket!: ClientSocket;
  readonly local = new Map<string, Doc>();
  readonly acked = new Map<string, { documentId: string; n: number }>();
  readonly notices: unknown[] = [];
  readonly disconnects: string[] = [];
  cursor = '';
  reconnects = 0;
  /** Batches answered UNAVAILABLE (the node was draining) or not answered (its socket closed). */
  refusals = 0;
  private connecting?: Promise<void>;

  constructor(
    readonly user: string,
    public url: string,
    private readonly collection: string,
  ) {}

  private apply(c: { documentId: string; operation: string; data?: Record<string, unknown>; timestamp: number; outOfView?: boolean }) {
    const have = this.local.get(c.documentId);
    if (have && have.timestamp > c.timestamp) return;
    this.local.set(c.documentId, { data: c.operation === 'delete' || c.outOfView ? undefined : c.data, timestamp: c.timestamp });
  }

  async connect(): Promise<void> {
    const socket = io(this.url, { path: '/socket.io', transports: ['websocket'], reconnection: false, forceNew: true, timeout: 10_000 });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    this.socket = socket;
    socket.on('sync:changes', (changes: any[]) => changes.forEach((c) => this.apply(c)));
    socket.on('sync:shutdown', (n: unknown) => this.notices.push(n));
    socket.on('disconnect', (reason: string) => this.disconnects.push(reason));
    const join = await emitAck(socket, 'sync:join', { userId: this.user });
    if (!join.success) throw new Error(`join: ${JSON.stringify(join)}`);
    if (!this.cursor) this.cursor = join.cursor;
    const sub = await emitAck(socket, 'sync:subscribe', { collection: this.collection, bootstrap: false });
    if (!sub.success) throw new Error(`subscribe: ${JSON.stringify(sub)}`);
    // catch up from the last cursor the client has (after subscribing: nothing falls in between)
    for (;;) {
      const page = await emitAck(socket, 'sync:get_changes', { cursor: this.cursor, collection: this.collection, limit: 500 });
      if (!page.success) throw new Error(`get_changes: ${JSON.stringify(page)}`);
      page.changes.forEach((c: any) => this.apply(c));
      this.cursor = page.cursor;
      if (!page.hasMore) break;
    }
  }

  /** Reconnects (once at a time) when the socket was closed by the server. */
  async ensureConnected(): Promise<void> {
    if (this.socket.connected) return;
    this.connecting ??= (async () => {
      this.reconnects++;
      await this.connect();
    })().finally(() => (this.connecting = undefined));
    await this.connecting;
  }

  /** Sends one batch until it is acknowledged, across refusals and reconnects. */
  async send(changes: { changeId: string; documentId: string; data: { n: number; w: string }; timestamp: number }[]): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      await this.ensureConnected();
      const ack = await emitAck(
        this.socket,
        'sync:changeBatch',
        { changes: changes.map((c) => ({ ...c, operation: 'update', collection: this.collection })) },
        15_000,
      ).catch(() => null);
      if (ack?.success) {
        ack.results.forEach((r: any, i: number) => {
          if (!r.success) throw new Error(`change refused: ${JSON.stringify(r)}`);
          this.acked.set(changes[i].changeId, { documentId: changes[i].documentId, n: changes[i].data.n });
          this.apply({ documentId: changes[i].documentId, operation: 'update', data: changes[i].data, timestamp: r.timestamp });
        });
        return;
      }
      if (ack && ack.code !== 'UNAVAILABLE') throw new Error(`batch failed: ${JSON.stringify(ack)}`);
      this.refusals++;
      // refused while the node drains, or the socket closed: wait for the disconnect, then go on
      await waitFor(() => !this.socket.connected, 15_000, `${this.user}: the draining node disconnects`).catch(() => undefined);
    }
    throw new Error(`${this.user}: batch never acknowledged`);
  }

  close() {
    this.socket?.close();
  }
}

if (!haveRedisServer()) {
  // eslint-disable-next-line no-console
  console.warn(`rolling-update e2e (two nodes) SKIPPED: ${REDIS_SERVER_BIN} not found (bash scripts/setup.sh --test)`);
}
const describeIfRedis = haveRedisServer() ? describe : describe.skip;

describeIfRedis('rolling update: SIGTERM one of two nodes during write streams (child processes, Redis)', () => {
  const redis = new TestRedis();
  const nodes: Node[] = [];
  const clients: SimClient[] = [];
  let dir: string;
  let mongoUri: string;

  beforeAll(async () => {
    await redis.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rolling-'));
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify({ default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' } }));
    mongoUri = testMongoUri('rolling');
    const env = {
      AUTH_MODE: 'dev',
      SYNC_RULES_FILE: rules,
      REDIS_URL: redis.url,
      MONGODB_URI: mongoUri,
      RATE_LIMIT_DISABLED: 'true',
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
    };
    const [pa, pb] = [await freePort(), await freePort()];
    nodes.push(startNode('A', pa, env), startNode('B', pb, env));
    await Promise.all(nodes.map(nodeReady));
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const n of nodes) if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
    await redis.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loses no acked change; clients of the stopped node resume on the other; everyone ends equal to the server; exit 0 within the grace period', async () => {
    const [A, B] = nodes;
    const coll = 'roll';
    const writerA = new SimClient('wa', A.url, coll);
    const readerA = new SimClient('ra', A.url, coll);
    const writerB = new SimClient('wb', B.url, coll);
    const readerB = new SimClient('rb', B.url, coll);
    clients.push(writerA, readerA, writerB, readerB);
    for (const c of clients) await c.connect();
    // where the load balancer sends the stopped node's clients
    writerA.url = B.url;
    readerA.url = B.url;
    readerA.socket.on('disconnect', () => void readerA.ensureConnected().catch(() => undefined));

    const base = Date.now();
    let seq = 0;
    const BATCHES = 24;
    const batch = (w: string, k: number) =>
      Array.from({ length: 10 }, (_, j) => {
        const n = k * 10 + j;
        return { changeId: `${w}-${n}`, documentId: `${w}-doc${n % 25}`, data: { n, w }, timestamp: base + ++seq };
      });
    let sigtermAt = 0;
    let spent = 0;
    const stream = async (c: SimClient, w: string, onBatch?: (k: number) => void) => {
      for (let k = 0; k < BATCHES; k++) {
        onBatch?.(k);
        const t0 = Date.now();
        await c.send(batch(w, k));
        if (c === writerA && k < 8) spent += Date.now() - t0;
      }
    };
    // SIGTERM to A while writerA's 9th batch is being handled, most of the time (a third of a batch's
    // usual round trip after sending it); writerB streams through B all along
    await Promise.all([
      stream(writerA, 'wa', (k) => {
        if (k === 8)
          setTimeout(
            () => {
              sigtermAt = Date.now();
              A.proc.kill('SIGTERM');
            },
            Math.max(5, spent / 8 / 3),
          );
      }),
      stream(writerB, 'wb'),
    ]);

    const exit = await A.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - sigtermAt).toBeLessThan(GRACE_MS);
    const alog = A.log.join('');
    expect(alog).toMatch(/SIGTERM: shutting down/);
    expect(alog).toMatch(/drained in \d+ ms: \d+ socket\(s\) disconnected/);

    // the stopped node's clients were told why, were disconnected by the server and moved to B
    for (const c of [writerA, readerA]) {
      expect(c.notices).toEqual([expect.objectContaining({ reason: 'server_shutdown' })]);
      expect(c.disconnects[0]).toBe('io server disconnect');
      expect(c.reconnects).toBe(1);
      expect(c.url).toBe(B.url);
    }
    await waitFor(() => readerA.socket?.connected === true, 30_000, 'readerA on B');
    // B's clients never noticed
    for (const c of [writerB, readerB]) {
      expect(c.disconnects).toEqual([]);
      expect(c.reconnects).toBe(0);
    }

    // every acked change is in the feed (applied, once) and the documents hold the last of each
    const db = await connectTestDb('rolling', mongoUri);
    try {
      const acked = new Map([...writerA.acked, ...writerB.acked]);
      expect(acked.size).toBe(2 * BATCHES * 10);
      const feed = await feedEntries(db.db, { collection: coll });
      const applied = feed.filter((e) => e.state === 'applied');
      const appliedIds = applied.map((e) => e.changeId as string);
      expect(new Set(appliedIds).size).toBe(appliedIds.length);
      expect([...acked.keys()].filter((id) => !appliedIds.includes(id))).toEqual([]);
      const docs = await db.db.collection(coll).find({}).toArray();
      const server = new Map(docs.map((d) => [String(d._id), { n: d.n, w: d.w }]));
      const lastAcked = new Map<string, number>();
      for (const { documentId, n } of acked.values()) lastAcked.set(documentId, Math.max(n, lastAcked.get(documentId) ?? -1));
      expect(server.size).toBe(lastAcked.size);
      for (const [id, n] of lastAcked) expect(server.get(id)).toEqual({ n, w: id.split('-')[0] });

      // every client's replica equals the server (B's clients live only, A's after catching up on B)
      const view = (c: SimClient) => new Map([...c.local].filter(([, d]) => d.data).map(([id, d]) => [id, { n: d.data!.n, w: d.data!.w }]));
      for (const c of clients) {
        await waitFor(() => JSON.stringify([...view(c)].sort()) === JSON.stringify([...server].sort()), 30_000, `${c.user} equal to the server`).catch(() => {
          const mine = view(c);
          const diff = [...server].filter(([id, v]) => JSON.stringify(mine.get(id)) !== JSON.stringify(v)).slice(0, 5);
          throw new Error(
            `${c.user} differs from the server on ${diff.length}+ documents, e.g. ${JSON.stringify(diff.map(([id, v]) => [id, v, mine.get(id)]))}`,
          );
        });
      }
      // eslint-disable-next-line no-console
      console.log(
        `rolling update: ${acked.size} changes acked, A exited 0 ${exit.at - sigtermAt} ms after SIGTERM (grace ${GRACE_MS} ms), ` +
          `${feed.length} feed entries, ${server.size} documents, 4 clients equal to the server; writer on A resent ${writerA.refusals} refused batch(es)`,
      );
    } finally {
      await db.client.close();
    }
  }, 180_000);
});
