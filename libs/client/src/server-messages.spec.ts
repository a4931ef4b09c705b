/* eslint-disable @typescript-eslint/no-explicit-any */
import { INVALID_SERVER_MESSAGE, readAnswer, readBootstrapPage, readChanges } from './server-messages';
import { SyncClientError } from './sync-client';
import { until, useFakeServer } from './testing/fake-harness';

/* What the server sends is parsed with the protocol's schemas: a malformed message is reported (an
 * `error` event, INVALID_SERVER_MESSAGE) and never crashes the client; well-formed ones still apply. */

const good = {
  changeId: 'c1',
  operation: 'insert',
  collection: 'tasks',
  documentId: 'a',
  data: { _id: 'a', n: 1 },
  timestamp: 5,
  userId: 'u',
  serverTimestamp: 6,
  cursor: 'x',
};

describe('reading server messages', () => {
  it('an answer that fits is returned as parsed; failure codes stay open for newer servers', () => {
    const reports: SyncClientError[] = [];
    const ok = readAnswer('sync:join', { success: true, userId: 'u', timestamp: 1, cursor: 'c' }, (e) => reports.push(e));
    expect(ok).toEqual({ success: true, userId: 'u', timestamp: 1, cursor: 'c' });
    const refused = readAnswer('sync:subscribe', { success: false, code: 'SOME_NEW_CODE', error: 'no', retryAfterMs: 5 }, (e) => reports.push(e));
    expect(refused).toEqual({ success: false, code: 'SOME_NEW_CODE', error: 'no', retryAfterMs: 5 });
    expect(reports).toEqual([]);
  });

  it('a malformed answer is reported and becomes an INTERNAL failure', () => {
    const reports: SyncClientError[] = [];
    for (const raw of [undefined, null, 'ok', { success: true, results: 'nope' }, { success: true, results: [{ success: true, changeId: 'x' }] }]) {
      const r = readAnswer('sync:changeBatch', raw, (e) => reports.push(e));
      expect(r).toMatchObject({ success: false, code: 'INTERNAL' });
    }
    expect(reports).toHaveLength(5);
    expect(reports.every((e) => e instanceof SyncClientError && e.code === INVALID_SERVER_MESSAGE)).toBe(true);
    expect(reports[4].message).toMatch(/sync:changeBatch/);
  });

  it('sync:changes: the well-formed items are kept, each malformed one is reported', () => {
    const reports: SyncClientError[] = [];
    const out = readChanges([good, { ...good, timestamp: 'soon' }, 42, { ...good, changeId: 'c2', documentId: 'b' }], (e) => reports.push(e));
    expect(out.map((c) => c.changeId)).toEqual(['c1', 'c2']);
    expect(reports).toHaveLength(2);
    expect(readChanges(good, (e) => reports.push(e))).toHaveLength(1);
  });

  it('a malformed bootstrap page is reported and dropped', () => {
    const reports: SyncClientError[] = [];
    expect(
      readBootstrapPage({ subscriptionId: 's', collection: 'tasks', data: 'nope', page: 0, done: true, cursor: 'c' }, (e) => reports.push(e)),
    ).toBeUndefined();
    expect(reports).toHaveLength(1);
  });
});

describe('a client facing a misbehaving server', () => {
  const h = useFakeServer({ reconnectDelayMs: 20 });

  it('reports malformed acks and pushed events, keeps syncing, loses no change', async () => {
    const errors: SyncClientError[] = [];
    let garbled = 0;
    // the first two batch answers are garbage: the change is retried until a proper answer comes
    h.server.interceptors.push((event) => (event === 'sync:changeBatch' && garbled++ < 2 ? { success: true, results: [{ nope: 1 }] } : undefined));
    const c = h.client('u');
    c.on('error', (e) => errors.push(e as SyncClientError));
    await c.subscribe('tasks');
    await c.connect();
    await c.makeChange('insert', 'tasks', 'mine', { title: 'kept' });
    await c.whenSynced();
    expect(garbled).toBe(3);
    expect(h.server.get('tasks', 'mine')).toMatchObject({ title: 'kept' });
    expect(c.getPendingChangesCount()).toBe(0);

    for (const s of h.server.io.sockets.sockets.values()) {
      s.emit('sync:changes', [
        { ...good, documentId: 'bad', timestamp: -1 },
        { ...good, documentId: 'pushed', data: { _id: 'pushed', n: 2 } },
      ]);
      s.emit('sync:bootstrap', { subscriptionId: 42 });
      s.emit('sync:error', 'not an object');
    }
    await until(() => c.getDocument('tasks', 'pushed') !== undefined, 'the well-formed pushed change');
    await until(() => errors.filter((e) => e.code === INVALID_SERVER_MESSAGE).length >= 5, 'five reports');
    expect(c.getDocument('tasks', 'bad')).toBeUndefined();
    expect(errors.filter((e) => e.code === INVALID_SERVER_MESSAGE).map((e) => e.message.split(':')[0])).toEqual([
      'malformed answer to sync',
      'malformed answer to sync',
      'malformed sync',
      'malformed sync',
      'malformed sync',
    ]);
  });
});
