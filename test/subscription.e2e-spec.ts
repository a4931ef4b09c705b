import { randomUUID } from 'node:crypto';
import { connectTestDb } from './support/db';
import { collectEvents, emitAck, joinedClient, recordEvents, startTestApp, TestApp, waitFor, emitUntyped, ClientSocket } from './support/app';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('subscriptions (no rules: development allows all)', () => {
  let t: TestApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  const sockets: ClientSocket[] = [];
  const client = async (user: string) => {
    const s = await joinedClient(t.url, user);
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', BOOTSTRAP_PAGE_SIZE: '300' }, 'subscription');
    db = await connectTestDb('subscription', t.mongoUri);
    const docs = Array.from({ length: 2000 }, (_, i) => ({ _id: `d${String(i).padStart(5, '0')}`, n: i, even: i % 2 === 0, _sync_field_ts: { n: 1 } }));
    await db.db.collection('items').insertMany(docs as never[]);
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await db?.client.close();
    await t?.close();
  });

  it('bootstraps 2,000 documents in pages of BOOTSTRAP_PAGE_SIZE, in _id order, with a cursor and count', async () => {
    const s = await client('u1');
    const pages = recordEvents(s, 'sync:bootstrap');
    const ack = await emitAck(s, 'sync:subscribe', { collection: 'items' });
    expect(ack).toMatchObject({ success: true, count: 2000, subscriptionId: expect.any(String) });
    await waitFor(() => pages.some((p) => p.done), 15_000, 'the last page');
    expect(pages.map((p) => p.page)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(pages.map((p) => p.data.length)).toEqual([300, 300, 300, 300, 300, 300, 200]);
    expect(pages.every((p) => p.subscriptionId === ack.subscriptionId && p.collection === 'items')).toBe(true);
    expect(new Set(pages.map((p) => p.cursor)).size).toBe(1);
    const ids = pages.flatMap((p) => p.data.map((d: any) => d._id));
    expect(ids).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(2000);
    expect(pages[0].data[0]).not.toHaveProperty('_sync_field_ts');
  });

  it('bootstraps a filtered subscription with args; an empty result still gets one done page', async () => {
    const s = await client('u1');
    const pages = recordEvents(s, 'sync:bootstrap');
    const ack = await emitAck(s, 'sync:subscribe', { collection: 'items', filter: 'even == true AND n < $0', args: [100] });
    expect(ack).toMatchObject({ success: true, count: 50 });
    const none = await emitAck(s, 'sync:subscribe', { collection: 'items', filter: 'n > 1e9' });
    expect(none).toMatchObject({ success: true, count: 0 });
    await waitFor(() => pages.filter((p) => p.done).length === 2, 10_000, 'both bootstraps');
    const a = pages.filter((p) => p.subscriptionId === ack.subscriptionId).flatMap((p) => p.data);
    expect(a).toHaveLength(50);
    expect(a.every((d: any) => d.even && d.n < 100)).toBe(true);
    expect(pages.filter((p) => p.subscriptionId === none.subscriptionId)).toEqual([expect.objectContaining({ data: [], page: 1, done: true })]);
  });

  it('bootstrap: false sends no pages', async () => {
    const s = await client('u1');
    const pages = recordEvents(s, 'sync:bootstrap');
    expect(await emitAck(s, 'sync:subscribe', { collection: 'items', filter: 'n == 1', bootstrap: false })).toMatchObject({ success: true, count: 1 });
    await sleep(200);
    expect(pages).toEqual([]);
  });

  it.each([
    ['status ==', 9],
    ['a == 1 AND', 10],
    ['(a == 1', 7],
    ['a == $0', undefined],
  ])('INVALID_QUERY for %j', async (filter, position) => {
    const s = await client('u1');
    const ack = await emitAck(s, 'sync:subscribe', { collection: 'items', filter });
    expect(ack).toMatchObject({ success: false, code: 'INVALID_QUERY' });
    if (position !== undefined) expect(ack.error).toMatch(new RegExp(`position ${position}`));
  });

  it('INVALID_PAYLOAD for a bad collection or filter type; subscribe needs a join', async () => {
    const s = await client('u1');
    expect(await emitAck(s, 'sync:subscribe', { collection: '$bad' })).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
    expect(await emitUntyped(s, 'sync:subscribe', { collection: 'items', filter: { $ne: 1 } })).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
  });

  it('live delivery only to matching subscribers, outOfView when a document leaves, deletes to who had it', async () => {
    const writer = await client('w');
    const reds = await client('r');
    const blues = await client('b');
    await emitAck(reds, 'sync:subscribe', { collection: 'cars', filter: 'color == "red"', bootstrap: false });
    await emitAck(blues, 'sync:subscribe', { collection: 'cars', filter: 'color == $0', args: ['blue'], bootstrap: false });
    const gotRed = recordEvents(reds, 'sync:changes');
    const gotBlue = recordEvents(blues, 'sync:changes');
    const id = randomUUID();
    expect(await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'cars', documentId: id, data: { color: 'red' } })).toMatchObject({
      success: true,
    });
    await waitFor(() => gotRed.length === 1, 5000, 'red insert');
    expect(gotRed[0]).toMatchObject({ documentId: id, operation: 'insert', data: { color: 'red' } });
    // moves from red to blue: out of view for reds, in view for blues
    expect(await emitAck(writer, 'sync:change', { operation: 'update', collection: 'cars', documentId: id, data: { color: 'blue' } })).toMatchObject({
      success: true,
    });
    await waitFor(() => gotRed.length === 2 && gotBlue.length === 1, 5000, 'the move');
    expect(gotRed[1]).toMatchObject({ documentId: id, operation: 'update', outOfView: true });
    expect(gotRed[1].data).toBeUndefined();
    expect(gotBlue[0]).toMatchObject({ documentId: id, data: { color: 'blue' } });
    expect(gotBlue[0].outOfView).toBeUndefined();
    // a delete goes to blues only
    expect(await emitAck(writer, 'sync:change', { operation: 'delete', collection: 'cars', documentId: id })).toMatchObject({ success: true });
    await waitFor(() => gotBlue.length === 2, 5000, 'the delete');
    expect(gotBlue[1]).toMatchObject({ documentId: id, operation: 'delete' });
    await sleep(200);
    expect(gotRed).toHaveLength(2);
  });

  it('unsubscribe (by id, then by collection) stops delivery', async () => {
    const writer = await client('w');
    const s = await client('r');
    const a = await emitAck(s, 'sync:subscribe', { collection: 'notes', bootstrap: false });
    await emitAck(s, 'sync:subscribe', { collection: 'notes', filter: 'x == 1', bootstrap: false });
    await emitAck(s, 'sync:subscribe', { collection: 'other', bootstrap: false });
    const got = recordEvents(s, 'sync:changes');
    const send = (id: string) => emitAck(writer, 'sync:change', { operation: 'insert', collection: 'notes', documentId: id, data: { x: 1 } });
    await send('n1');
    await waitFor(() => got.length === 1, 5000, 'first note');
    expect(await emitAck(s, 'sync:unsubscribe', { subscriptionId: a.subscriptionId })).toEqual({ success: true, count: 2 });
    await send('n2'); // still matched by x == 1
    await waitFor(() => got.length === 2, 5000, 'second note');
    expect(await emitAck(s, 'sync:unsubscribe', { collection: 'notes' })).toEqual({ success: true, count: 1 });
    await send('n3');
    await sleep(300);
    expect(got.map((c) => c.documentId)).toEqual(['n1', 'n2']);
  });

  it('sync:update_subscriptions replaces the set (all or nothing) with an increasing version', async () => {
    const writer = await client('w');
    const s = await client('r');
    const got = recordEvents(s, 'sync:changes');
    const v1 = await emitAck(s, 'sync:update_subscriptions', { subscriptions: [{ collection: 'pets', query: 'kind == "cat"' }] });
    expect(v1).toEqual({ success: true, version: 1 });
    const bad = await emitAck(s, 'sync:update_subscriptions', {
      subscriptions: [
        { collection: 'pets', query: 'kind == "dog"' },
        { collection: 'pets', query: 'kind ==' },
      ],
    });
    expect(bad).toMatchObject({ success: false, code: 'INVALID_QUERY' });
    await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'pets', documentId: 'c1', data: { kind: 'cat' } });
    await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'pets', documentId: 'd1', data: { kind: 'dog' } });
    await waitFor(() => got.length === 1, 5000, 'the cat');
    const v2 = await emitAck(s, 'sync:update_subscriptions', { subscriptions: [{ collection: 'pets', query: 'kind == "dog"' }] });
    expect(v2).toEqual({ success: true, version: 2 });
    await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'pets', documentId: 'c2', data: { kind: 'cat' } });
    await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'pets', documentId: 'd2', data: { kind: 'dog' } });
    await waitFor(() => got.length === 2, 5000, 'the dog');
    await sleep(200);
    expect(got.map((c) => c.documentId)).toEqual(['c1', 'd2']);
  });

  it('sync:join with subscriptions subscribes and bootstraps', async () => {
    const s = await joinedClient(t.url, 'j');
    sockets.push(s);
    const pages = recordEvents(s, 'sync:bootstrap');
    const ack = await emitAck(s, 'sync:join', { userId: 'j', subscriptions: [{ collection: 'items', filter: 'n < 3' }] });
    expect(ack).toMatchObject({ success: true });
    await waitFor(() => pages.some((p) => p.done), 5000, 'bootstrap');
    expect(pages.flatMap((p) => p.data).map((d: any) => d.n)).toEqual([0, 1, 2]);
  });

  it('limits the subscriptions of a socket', async () => {
    const s = await client('many');
    for (let i = 0; i < 100; i++)
      expect(await emitAck(s, 'sync:subscribe', { collection: 'few', filter: `n == ${i}`, bootstrap: false })).toMatchObject({ success: true });
    expect(await emitAck(s, 'sync:subscribe', { collection: 'few', bootstrap: false })).toMatchObject({ success: false, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('a socket that never subscribed still receives every change (compatibility)', async () => {
    const writer = await client('w');
    const legacy = await client('l');
    const got = collectEvents(legacy, 'sync:changes', 1);
    await emitAck(writer, 'sync:change', { operation: 'insert', collection: 'legacy', documentId: 'x', data: { a: 1 } });
    expect((await got)[0]).toMatchObject({ documentId: 'x' });
  });
});
