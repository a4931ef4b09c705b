/* A writer that fails between its write-ahead and its commit marker (the document write throws:
 * the database went away for a moment) rolls what it wrote ahead forward before it gives the
 * document back: the change is answered UNAVAILABLE, and its retry (answered from the feed entry)
 * finds the document written. When the roll-forward fails too, the document keeps its lease and
 * the next writer of it finishes it first. Without this, the feed held a change the document did not until the feed walk
 * replayed it as stale (SYNC_LOCK_TTL_MS x 1.5 later), and the retry was acknowledged meanwhile. */
import { MongoNetworkError } from 'mongodb';
import { DocumentRepository } from '../src/feed/document.repository';
import { LockRepository } from '../src/feed/lock.repository';
import { connectTestDb } from './support/db';
import { emitAck, joinedClient, startTestApp, TestApp, ClientSocket } from './support/app';
import { feedEntries } from './support/feed';

const COLL = 'failing';

describe('a commit that fails after its write-ahead', () => {
  let t: TestApp;
  let a: ClientSocket;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let docs: DocumentRepository;

  beforeAll(async () => {
    // leases of a minute: the feed walk's replay of stale entries cannot be what finishes them here
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '60000' }, 'failed_commit');
    a = await joinedClient(t.url, 'alice');
    db = await connectTestDb('unused', t.mongoUri);
    docs = t.app.get(DocumentRepository);
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    a?.close();
    await db?.client.close();
    await t?.close();
  });

  /** The next `times` document writes throw, as a database that went away would. */
  const failWrites = (times: number) => {
    const real = docs.applyWrites.bind(docs);
    let left = times;
    return jest.spyOn(docs, 'applyWrites').mockImplementation(async (writes) => {
      if (left-- > 0) throw new MongoNetworkError('connection reset (injected)');
      return real(writes);
    });
  };
  const stored = (id: string) => db.db.collection(COLL).findOne({ _id: id as never });
  const entriesOf = (id: string) => feedEntries(db.db, { documentId: id });

  it('rolls the write-ahead forward before answering: the retry is a duplicate of a written change', async () => {
    const spy = failWrites(1);
    const change = { changeId: 'fc-1', operation: 'insert' as const, collection: COLL, documentId: 'doc-1', data: { v: 1 } };
    const first = await emitAck(a, 'sync:change', change);
    expect(first).toMatchObject({ success: false, code: 'UNAVAILABLE' });
    // already in place, and the feed entry settled: nothing waits for the walk's stale replay
    expect(await stored('doc-1')).toMatchObject({ v: 1 });
    expect((await entriesOf('doc-1')).map((e) => e.state)).toEqual(['applied']);
    spy.mockRestore();
    const retry = await emitAck(a, 'sync:change', change);
    expect(retry).toMatchObject({ success: true, duplicate: true });
  });

  it('a batch fails: every change of it is rolled forward', async () => {
    const spy = failWrites(1);
    const changes = Array.from({ length: 5 }, (_, i) => ({
      changeId: `fb-${i}`,
      operation: 'insert' as const,
      collection: COLL,
      documentId: `batch-${i}`,
      data: { i },
    }));
    const res = await emitAck(a, 'sync:changeBatch', { changes });
    expect(res.results.map((r: any) => r.code)).toEqual(changes.map(() => 'UNAVAILABLE'));
    for (const c of changes) expect(await stored(c.documentId)).toMatchObject({ i: c.data.i });
    spy.mockRestore();
    const again = await emitAck(a, 'sync:changeBatch', { changes });
    expect(again.results.map((r: any) => r.duplicate)).toEqual(changes.map(() => true));
  });

  it('when the roll-forward fails too, the next writer of the document finishes it before resolving its own change', async () => {
    const spy = failWrites(2); // the commit and its roll-forward
    const first = await emitAck(a, 'sync:change', { changeId: 'fc-2', operation: 'insert', collection: COLL, documentId: 'doc-2', data: { v: 1, keep: true } });
    expect(first).toMatchObject({ success: false, code: 'UNAVAILABLE' });
    expect(await stored('doc-2')).toBeNull();
    // the document keeps its lease (another node would take it only once expired, replaying it first)
    expect(await t.app.get(LockRepository).tryAcquire([`${COLL}:doc-2`], 1000)).toEqual([`${COLL}:doc-2`]);
    spy.mockRestore();
    // an update of the document from another change: resolved over the finished insert, not over nothing
    const next = await emitAck(a, 'sync:change', { changeId: 'fc-3', operation: 'update', collection: COLL, documentId: 'doc-2', data: { v: 2 } });
    expect(next).toMatchObject({ success: true });
    expect(await stored('doc-2')).toMatchObject({ v: 2, keep: true });
    expect((await entriesOf('doc-2')).map((e) => [e.changeId, e.state])).toEqual([
      ['fc-2', 'applied'],
      ['fc-3', 'applied'],
    ]);
  });
});
