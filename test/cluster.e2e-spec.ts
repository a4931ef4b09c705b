import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import { testMongoUri } from './support/db';
import type { ClientChange, Operation } from '@sync/protocol';
import { emitAck, joinedClient, recordEvents, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';
import { haveRedisServer, REDIS_SERVER_BIN, TestRedis } from './support/redis';
import { BSON } from 'mongodb';
import { decodeMessage, deriveBusKey, encodeBatch, BusKey } from '../src/cluster/cluster.codec';
import type { FeedEntry } from '../src/feed/change-feed.repository';

/** Signed messages as a node would have sent them at `at` (a recording replayed later). */
function encodeBatchAt(node: string, entries: FeedEntry[], key: BusKey, at: number): Buffer[] {
  const realNow = Date.now;
  Date.now = () => at;
  try {
    const out = encodeBatch(node, entries, 1 << 20, key).messages;
    decodeMessage(out[0], 1 << 20, key, at); // sanity: valid at the time it was made
    return out;
  } finally {
    Date.now = realNow;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RULES = {
  default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' },
  collections: {
    // a note is readable by its owner only: the receiving node must apply that
    notes: { read: 'owner == %user.id', write: 'TRUEPREDICATE' },
  },
};

if (!haveRedisServer()) {
  // eslint-disable-next-line no-console
  console.warn(`cluster e2e SKIPPED: ${REDIS_SERVER_BIN} not found (install it with 'bash scripts/setup.sh --test' or 'apt-get install redis-server')`);
}
const describeIfRedis = haveRedisServer() ? describe : describe.skip;

describeIfRedis('horizontal scale: two nodes, one database, Redis cluster bus', () => {
  const redis = new TestRedis();
  let a: TestApp;
  let b: TestApp;
  let dir: string;
  let env: Record<string, string>;
  const apps: TestApp[] = [];
  const sockets: ClientSocket[] = [];
  const join = async (t: TestApp, user: string) => {
    const s = await joinedClient(t.url, user);
    sockets.push(s);
    return s;
  };
  const health = async (t: TestApp) => (await request(t.url).get('/health').expect(200)).body;
  const busUp = async (t: TestApp, up = true) => (await health(t)).cluster?.status === (up ? 'up' : 'down');
  const metric = async (t: TestApp, name: string) => {
    const text = (await request(t.url).get('/metrics').expect(200)).text;
    const m = text.match(new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : undefined;
  };
  const change = (s: ClientSocket, collection: string, documentId: string, data: Record<string, unknown>, operation: Operation = 'insert') =>
    emitAck(s, 'sync:change', { operation, collection, documentId, data });

  beforeAll(async () => {
    await redis.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cluster-'));
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify(RULES));
    // both nodes on the same database
    env = { AUTH_MODE: 'dev', SYNC_RULES_FILE: rules, REDIS_URL: redis.url, MONGODB_URI: testMongoUri('cluster') };
    a = await startTestApp(env);
    apps.push(a);
    b = await startTestApp(env);
    apps.push(b);
    await waitFor(async () => (await busUp(a)) && (await busUp(b)), 15_000, 'both nodes on the bus');
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    for (const t of apps) await t.close().catch(() => undefined);
    await redis.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports the bus in /health (up, same channel on both nodes, distinct node ids) and /metrics', async () => {
    const [ha, hb] = [await health(a), await health(b)];
    expect(ha).toMatchObject({ status: 'ok', cluster: { kind: 'redis', status: 'up', subscribed: true, publisher: 'ready', subscriber: 'ready' } });
    expect(ha.cluster.channel).toMatch(/^sync:cluster_[0-9a-f_A-Za-z]+:changes$/);
    expect(hb.cluster.channel).toBe(ha.cluster.channel);
    expect(hb.cluster.nodeId).not.toBe(ha.cluster.nodeId);
    expect(await metric(a, 'sync_cluster_bus_connected')).toBe(1);
    expect((await request(a.url).get('/stats').expect(200)).body.cluster).toMatchObject({ status: 'up', nodeId: ha.cluster.nodeId });
  });

  it('a change written on node A reaches a subscriber on node B exactly once; A delivers locally once; no echo to the writer', async () => {
    const writer = await join(a, 'alice');
    const localPeer = await join(a, 'carol');
    const remote = await join(b, 'bob');
    await emitAck(localPeer, 'sync:subscribe', { collection: 'chat', bootstrap: false });
    await emitAck(remote, 'sync:subscribe', { collection: 'chat', bootstrap: false });
    const gotWriter = recordEvents(writer, 'sync:changes');
    const gotLocal = recordEvents(localPeer, 'sync:changes');
    const gotRemote = recordEvents(remote, 'sync:changes');
    const ack = await change(writer, 'chat', 'm1', { text: 'hello from A' });
    expect(ack).toMatchObject({ success: true });
    await waitFor(() => gotRemote.length >= 1 && gotLocal.length >= 1, 5000, 'delivery on both nodes');
    await sleep(400); // any duplicate (bus echo, double publish) would arrive by now
    expect(gotRemote).toEqual([
      expect.objectContaining({
        documentId: 'm1',
        collection: 'chat',
        operation: 'insert',
        userId: 'alice',
        data: expect.objectContaining({ text: 'hello from A' }),
        cursor: ack.cursor,
      }),
    ]);
    expect(gotLocal).toHaveLength(1);
    expect(gotLocal[0]).toEqual(gotRemote[0]); // same payload whichever node delivers it
    expect(gotWriter).toEqual([]);
    // and the other way round
    const back = await change(remote, 'chat', 'm2', { text: 'hello from B' });
    expect(back).toMatchObject({ success: true });
    await waitFor(() => gotLocal.length === 2, 5000, 'B -> A');
    await sleep(300);
    expect(gotLocal.map((c) => c.documentId)).toEqual(['m1', 'm2']);
    expect(gotRemote).toHaveLength(1);
  });

  it('node B applies its own subscriptions and read rules to changes from A (filters, outOfView, deletes)', async () => {
    const writer = await join(a, 'alice');
    const bob = await join(b, 'bob');
    await emitAck(bob, 'sync:subscribe', { collection: 'cars', filter: 'color == "red"', bootstrap: false });
    await emitAck(bob, 'sync:subscribe', { collection: 'notes', bootstrap: false });
    const got = recordEvents(bob, 'sync:changes');
    expect(await change(writer, 'cars', 'blue1', { color: 'blue' })).toMatchObject({ success: true });
    expect(await change(writer, 'notes', 'n-alice', { owner: 'alice', text: 'private' })).toMatchObject({ success: true });
    expect(await change(writer, 'cars', 'red1', { color: 'red' })).toMatchObject({ success: true });
    expect(await change(writer, 'notes', 'n-bob', { owner: 'bob', text: 'for bob' })).toMatchObject({ success: true });
    await waitFor(() => got.length >= 2, 5000, 'the red car and bob’s note');
    // the red car leaves bob's filter: outOfView, without data; then a delete of a note he had
    expect(await change(writer, 'cars', 'red1', { color: 'green' }, 'update')).toMatchObject({ success: true });
    expect(await change(writer, 'notes', 'n-bob', {}, 'delete')).toMatchObject({ success: true });
    await waitFor(() => got.length >= 4, 5000, 'outOfView and delete');
    await sleep(300);
    expect(got.map((c) => [c.documentId, c.operation, c.outOfView ?? false])).toEqual([
      ['red1', 'insert', false],
      ['n-bob', 'insert', false],
      ['red1', 'update', true],
      ['n-bob', 'delete', false],
    ]);
    expect(got[2].data).toBeUndefined();
    expect(got[0].data).toMatchObject({ color: 'red' });
  });

  it('a batch written on A arrives on B complete and in feed order', async () => {
    const writer = await join(a, 'alice');
    const bob = await join(b, 'bob');
    await emitAck(bob, 'sync:subscribe', { collection: 'bulk', bootstrap: false });
    const got = recordEvents(bob, 'sync:changes');
    const changes = Array.from({ length: 60 }, (_, i): ClientChange => ({
      operation: 'insert',
      collection: 'bulk',
      documentId: `k${String(i).padStart(3, '0')}`,
      data: { i },
    }));
    const ack = await emitAck(writer, 'sync:changeBatch', { changes });
    expect(ack).toMatchObject({ success: true, successCount: 60 });
    await waitFor(() => got.length >= 60, 10_000, '60 changes on B');
    await sleep(300);
    expect(got.map((c) => c.documentId)).toEqual(changes.map((c) => c.documentId));
    expect(got.map((c) => c.cursor)).toEqual(ack.results.map((r: { cursor: string }) => r.cursor));
  });

  it('drops a malformed bus message with a log line and keeps delivering', async () => {
    const channel = (await health(b)).cluster.channel;
    const raw = new Redis(redis.url, { lazyConnect: true });
    try {
      await raw.connect();
      await raw.publish(channel, Buffer.from('definitely not a bus message'));
      await raw.publish(channel, Buffer.alloc(5 * 1024 * 1024, 1)); // over the default 4 MiB cap
    } finally {
      raw.disconnect();
    }
    await waitFor(
      async () => (await metric(b, 'sync_cluster_changes_dropped_total{reason="received_too_large"}')) === 1,
      5000,
      'the oversized message counted',
    );
    // garbage carries no signature: it is refused before any parsing
    expect(await metric(b, 'sync_cluster_changes_dropped_total{reason="received_unsigned"}')).toBe(1);
    const writer = await join(a, 'alice');
    const bob = await join(b, 'bob');
    await emitAck(bob, 'sync:subscribe', { collection: 'after_garbage', bootstrap: false });
    const got = recordEvents(bob, 'sync:changes');
    expect(await change(writer, 'after_garbage', 'x1', { ok: true })).toMatchObject({ success: true });
    await waitFor(() => got.length === 1, 5000, 'delivery after garbage');
  });

  it('attack: a message published on Redis by anyone but a node (unsigned, or signed with another key, or replayed late) is dropped and counted, never delivered', async () => {
    const channel = (await health(b)).cluster.channel;
    const writer = await join(a, 'alice');
    const bob = await join(b, 'bob');
    await emitAck(bob, 'sync:subscribe', { collection: 'forged', bootstrap: false });
    const got = recordEvents(bob, 'sync:changes');
    const now = Date.now();
    const forged = (i: number) =>
      ({
        _id: 900_000_000 + i,
        changeId: `forged-${i}`,
        state: 'applied',
        collection: 'forged',
        documentId: `f-${i}`,
        docKey: `forged:f-${i}`,
        operation: 'insert',
        after: { _id: `f-${i}`, owner: 'bob', text: 'FORGED-BY-REDIS-ACCESS', sync_updated_at: now },
        before: null,
        timestamp: now,
        userId: 'alice',
        serverTimestamp: now,
        createdAt: new Date(now),
      }) as unknown as FeedEntry;
    const count = async (reason: string) => (await metric(b, `sync_cluster_changes_dropped_total{reason="received_${reason}"}`)) ?? 0;
    const before = { unsigned: await count('unsigned'), forged: await count('forged'), stale: await count('stale') };
    const wrongKey = deriveBusKey('another-secret-another-secret-another-secret', channel);
    const rightKey = deriveBusKey(b.config.serverSecret.value, channel);
    const raw = new Redis(redis.url, { lazyConnect: true });
    try {
      await raw.connect();
      // the old, unsigned wire format, well formed
      await raw.publish(channel, Buffer.from(BSON.serialize({ v: 1, node: 'intruder', entries: [forged(1)] })));
      for (const m of encodeBatch('intruder', [forged(2)], 1 << 20, wrongKey).messages) await raw.publish(channel, m);
      // a properly signed message recorded long ago and replayed
      for (const m of encodeBatchAt('intruder', [forged(4)], rightKey, now - 3_600_000)) await raw.publish(channel, m);
    } finally {
      raw.disconnect();
    }
    await waitFor(async () => (await count('stale')) === before.stale + 1, 5000, 'the replayed message counted');
    expect(await count('unsigned')).toBe(before.unsigned + 1);
    expect(await count('forged')).toBe(before.forged + 1);
    expect(await change(writer, 'forged', 'real-1', { owner: 'bob' })).toMatchObject({ success: true });
    await waitFor(() => got.length >= 1, 5000, 'the real change on B');
    await sleep(200);
    expect(got.map((c) => c.documentId)).toEqual(['real-1']);
    expect(JSON.stringify(got)).not.toContain('FORGED-BY-REDIS-ACCESS');
  });

  it('Redis down: writes on A keep being acked, /ready stays 200, /health degraded; B still gets every change live (from the feed) and can catch up through it; when Redis is back the bus carries them again; every change exactly once', async () => {
    const writer = await join(a, 'alice');
    const bob = await join(b, 'bob');
    await emitAck(bob, 'sync:subscribe', { collection: 'outage', bootstrap: false });
    const got = recordEvents(bob, 'sync:changes');
    expect(await change(writer, 'outage', 'before', { n: 0 })).toMatchObject({ success: true });
    await waitFor(() => got.length === 1, 5000, 'live before the outage');
    const cursor = got[0].cursor;

    await redis.stop('SIGKILL');
    await waitFor(async () => (await busUp(a, false)) && (await busUp(b, false)), 10_000, 'both nodes see the bus down');
    const ha = await health(a);
    expect(ha).toMatchObject({ status: 'degraded', cluster: { status: 'down', subscribed: false } });
    expect(ha.cluster.lastError).toEqual(expect.any(String));
    expect(await metric(a, 'sync_cluster_bus_connected')).toBe(0);
    await request(a.url).get('/ready').expect(200);

    const acks = [];
    for (let i = 1; i <= 3; i++) acks.push(await change(writer, 'outage', `during${i}`, { n: i }));
    expect(acks.every((x) => x.success === true)).toBe(true);

    // a node started while Redis is down comes up, serves, and joins the bus later
    const c = await startTestApp(env);
    apps.push(c);
    expect((await health(c)).status).toBe('degraded');
    const carol = await join(c, 'carol');
    expect(await change(carol, 'outage', 'from-c', { n: 10 })).toMatchObject({ success: true });

    // the bus is down, yet B's subscriber gets every change live, in feed order, without reconnecting:
    // B reads them from the feed (issue 13; this used to assert that nothing arrived)
    await waitFor(() => got.length >= 5, 10_000, 'live delivery through the feed while the bus is down');
    expect(got.map((x) => x.documentId)).toEqual(['before', 'during1', 'during2', 'during3', 'from-c']);
    const page = await emitAck(bob, 'sync:get_changes', { cursor, collection: 'outage' });
    expect(page).toMatchObject({ success: true, hasMore: false });
    expect(page.changes.map((x: { documentId: string }) => x.documentId)).toEqual(['during1', 'during2', 'during3', 'from-c']);

    await redis.start(); // same port
    await waitFor(async () => (await busUp(a)) && (await busUp(b)) && (await busUp(c)), 20_000, 'all three nodes back on the bus');
    expect((await health(a)).status).toBe('ok');
    expect(await metric(a, 'sync_cluster_bus_connected')).toBe(1);
    expect(await metric(a, 'sync_cluster_changes_dropped_total{reason="bus_down"}')).toBe(3);
    expect(await change(writer, 'outage', 'after', { n: 4 })).toMatchObject({ success: true });
    expect(await change(carol, 'outage', 'after-c', { n: 5 })).toMatchObject({ success: true });
    // live through the bus again; what was applied on A and C during the outage was read from the feed
    // by B (they need not reconnect); every change exactly once
    const expected = ['before', 'during1', 'during2', 'during3', 'from-c', 'after', 'after-c'];
    await waitFor(() => got.length >= expected.length, 10_000, 'live delivery after the outage');
    await sleep(400);
    expect(got.map((x) => x.documentId).sort()).toEqual([...expected].sort());
    expect(got.findIndex((x) => x.documentId === 'after')).toBeLessThan(got.findIndex((x) => x.documentId === 'after-c'));
    expect(await metric(b, 'sync_cluster_changes_replayed_total')).toBe(4);

    // a node that shuts down closes both of its Redis connections
    const nodeC = (await health(c)).cluster.nodeId as string;
    const admin = new Redis(redis.url);
    try {
      const names = async () => ((await admin.client('LIST')) as string).split('\n').filter((l) => l.includes(nodeC));
      expect(await names()).toHaveLength(2);
      carol.close();
      await c.close();
      apps.splice(apps.indexOf(c), 1);
      await waitFor(async () => (await names()).length === 0, 5000, "node C's connections closed");
    } finally {
      admin.disconnect();
    }
  });
});

describe('without REDIS_URL: a single node, no bus', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'cluster_single');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('/health is plain ok without a cluster section, no bus metric, and local delivery works', async () => {
    const h = (await request(t.url).get('/health').expect(200)).body;
    expect(h.status).toBe('ok');
    expect(h).not.toHaveProperty('cluster');
    expect((await request(t.url).get('/stats').expect(200)).body).not.toHaveProperty('cluster');
    expect((await request(t.url).get('/metrics').expect(200)).text).not.toMatch(/sync_cluster_bus_connected/);
    const writer = await joinedClient(t.url, 'w');
    const reader = await joinedClient(t.url, 'r');
    try {
      await emitAck(reader, 'sync:subscribe', { collection: 'solo', bootstrap: false });
      const got = recordEvents(reader, 'sync:changes');
      expect(await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'solo', documentId: 's1', data: { a: 1 } })).toMatchObject({
        success: true,
      });
      await waitFor(() => got.length === 1, 5000, 'local delivery');
      await sleep(200);
      expect(got).toHaveLength(1);
    } finally {
      writer.close();
      reader.close();
    }
  });
});
