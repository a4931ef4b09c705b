/* Existing data: a database the way Atlas Device Sync left it (ObjectId _ids, nested objects,
 * arrays, dates, no sync_updated_at nor _updated_by), plus some string ids. The real SDK bootstraps
 * it, edits and deletes online and offline, a second client follows live and through get_changes;
 * afterwards the database still has ObjectId _ids (no string duplicates) and string ids stayed strings.
 * Also: the compare-and-set on a missing timestamp, both conflict strategies, the idType checks. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Db, MongoClient, ObjectId } from 'mongodb';
import { FileStorage, MemoryStorage, newObjectId, SyncClient } from '@sync/client';
import { ChangeFeedRepository, FeedEntry } from '../src/feed/change-feed.repository';
import { ChangeFeedService } from '../src/feed/change-feed.service';
import { DocumentRepository } from '../src/feed/document.repository';
import type { Operation } from '@sync/protocol';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, emitUntyped } from './support/app';

const clients: SyncClient[] = [];
function makeClient(t: TestApp, userId: string, storage: MemoryStorage | FileStorage = new MemoryStorage()): SyncClient {
  const c = new SyncClient(t.url, userId, storage, {
    logger: null,
    transports: ['websocket'],
    connectTimeoutMs: 20_000,
    socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 500 },
  });
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

const HEX_STRING_ID = 'abcdefabcdefabcdefabcdef'; // a 24-hex id stored as a string: it must stay one

/** Seeds what Atlas Device Sync would have left: ObjectId _ids, BSON dates and references, no sync fields. */
async function seedAtlasData(db: Db) {
  const owner = new ObjectId();
  const tasks = Array.from({ length: 6 }, (_, i) => ({
    _id: new ObjectId(),
    title: `legacy task ${i}`,
    owner_id: owner,
    createdAt: new Date(Date.UTC(2023, 0, i + 1)),
    tags: ['imported', `n${i}`],
    checklist: [{ name: 'step', done: i % 2 === 0 }],
    meta: { source: { app: 'realm', version: 12 } },
  }));
  await db.collection('tasks').insertMany(tasks as never[]);
  await db.collection('tasks').insertMany([
    { _id: 'legacy-str-1', title: 'string id' },
    { _id: HEX_STRING_ID, title: '24 hex characters, stored as a string' },
  ] as never[]);
  const items = Array.from({ length: 3 }, (_, i) => ({ _id: new ObjectId(), name: `item ${i}`, qty: i }));
  await db.collection('items').insertMany(items as never[]);
  return { owner, tasks, items };
}

function writeRules(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'existing-data-'));
  const file = path.join(dir, 'rules.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' },
      collections: {
        tasks: { fieldTypes: { owner_id: 'objectId', createdAt: 'date' } },
        items: { idType: 'objectId' },
        notes: { idType: 'string' },
      },
    }),
  );
  return file;
}

describe('existing data (Atlas Device Sync collections)', () => {
  let t: TestApp;
  let mongo: MongoClient;
  let db: Db;
  let seed: Awaited<ReturnType<typeof seedAtlasData>>;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_RULES_FILE: writeRules() }, 'existing');
    mongo = await MongoClient.connect(t.mongoUri, { retryWrites: false, serverSelectionTimeoutMS: 10_000 });
    db = mongo.db();
    seed = await seedAtlasData(db);
  });
  afterAll(async () => {
    await mongo?.close();
    await t?.close();
  });

  const hex = (i: number) => seed.tasks[i]._id.toHexString();
  const idsOf = async (coll: string, id: string) =>
    (
      await db
        .collection(coll)
        .find({ _id: { $in: [id, new ObjectId(id)] } } as never)
        .toArray()
    ).map((d) => d._id);

  it('bootstrap through the SDK: every document, ObjectId ids as hex strings (flagged), string ids as they are', async () => {
    const a = makeClient(t, 'alice');
    await a.subscribe('tasks');
    await a.subscribe('items');
    await a.connect();
    const tasks = a.getDocuments('tasks');
    expect(tasks.map((d) => d._id).sort()).toEqual([...seed.tasks.map((d) => d._id.toHexString()), 'legacy-str-1', HEX_STRING_ID].sort());
    const first = a.getDocument('tasks', hex(0))!;
    expect(first).toMatchObject({
      _id: hex(0),
      title: 'legacy task 0',
      owner_id: seed.owner.toHexString(), // references arrive as their hex form
      createdAt: '2023-01-01T00:00:00.000Z', // dates as ISO strings (JSON)
      tags: ['imported', 'n0'],
      checklist: [{ name: 'step', done: true }],
      meta: { source: { app: 'realm', version: 12 } },
    });
    expect(first).not.toHaveProperty('sync_updated_at');
    // a BSON.ObjectId-like value or { $oid } finds the same document
    expect(a.getDocument('tasks', { $oid: hex(0) })?.title).toBe('legacy task 0');
    expect(a.getDocument('tasks', { toHexString: () => hex(0) })?.title).toBe('legacy task 0');
    expect(a.idTypeOf('tasks', hex(0))).toBe('objectId');
    expect(a.idTypeOf('tasks', 'legacy-str-1')).toBe('string');
    expect(a.idTypeOf('tasks', HEX_STRING_ID)).toBe('string');
    expect(a.getDocuments('items')).toHaveLength(3);
    expect(a.idTypeOf('items', seed.items[0]._id.toHexString())).toBe('objectId');
    // local queries see them too
    expect(
      a
        .getDocuments('tasks', 'checklist.done == true AND meta.source.app == "realm"')
        .map((d) => d._id)
        .sort(),
    ).toEqual([hex(0), hex(2), hex(4)].sort());

    // a filtered subscription (the database evaluates it) over documents without sync metadata
    const b = makeClient(t, 'bob');
    await b.subscribe('tasks', 'checklist.done == true AND tags == $0', ['imported']);
    await b.connect();
    expect(
      b
        .getDocuments('tasks')
        .map((d) => d._id)
        .sort(),
    ).toEqual([hex(0), hex(2), hex(4)].sort());
    expect(b.idTypeOf('tasks', hex(2))).toBe('objectId');
  });

  it('the SDK remembers which ids are ObjectIds across a restart (file storage, offline)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'existing-sdk-'));
    const a = makeClient(t, 'alice', new FileStorage(dir));
    await a.subscribe('items');
    await a.connect();
    await a.close();
    const again = makeClient(t, 'alice', new FileStorage(dir));
    await again.initialize(); // not connected: everything comes from the storage
    expect(again.getDocuments('items').length).toBeGreaterThanOrEqual(3);
    expect(again.idTypeOf('items', seed.items[1]._id.toHexString())).toBe('objectId');
    expect(again.idTypeOf('items', 'unknown')).toBeUndefined();
    await again.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('online edits and deletes keep ObjectId _ids; a second client follows live; string ids stay strings', async () => {
    const a = makeClient(t, 'alice');
    const b = makeClient(t, 'bob');
    await a.subscribe('tasks');
    await b.subscribe('tasks');
    await Promise.all([a.connect(), b.connect()]);

    await a.makeChange('update', 'tasks', hex(0), { title: 'edited online' });
    await a.makeChange('delete', 'tasks', { $oid: hex(1) });
    await a.makeChange('update', 'tasks', 'legacy-str-1', { title: 'string edited' });
    await a.makeChange('update', 'tasks', HEX_STRING_ID, { title: 'hex string edited' });
    // the whole document sent back (references and dates in their JSON form): they keep their BSON types
    const d4 = a.getDocument('tasks', hex(4))!;
    await a.makeChange('update', 'tasks', hex(4), { ...d4, title: 'whole document sent back', owner_id: seed.owner.toHexString() });
    await a.whenSynced();
    expect(a.getPendingChangesCount()).toBe(0);

    await waitFor(() => b.getDocument('tasks', hex(0))?.title === 'edited online' && !b.getDocument('tasks', hex(1)), 15_000, 'live delivery at bob');
    await waitFor(() => b.getDocument('tasks', HEX_STRING_ID)?.title === 'hex string edited', 15_000, 'string-id edit at bob');
    expect(b.idTypeOf('tasks', hex(0))).toBe('objectId');

    // the database: same ObjectId documents, updated in place, untouched fields keep their BSON types
    expect(await idsOf('tasks', hex(0))).toEqual([seed.tasks[0]._id]);
    const d0 = await db.collection('tasks').findOne({ _id: seed.tasks[0]._id });
    expect(d0).toMatchObject({
      title: 'edited online',
      _updated_by: 'alice',
      owner_id: seed.owner,
      createdAt: seed.tasks[0].createdAt,
      tags: ['imported', 'n0'],
    });
    expect(typeof d0!.sync_updated_at).toBe('number');
    const d4After = await db.collection('tasks').findOne({ _id: seed.tasks[4]._id });
    expect(d4After).toMatchObject({
      title: 'whole document sent back',
      checklist: [{ name: 'step', done: true }],
      meta: { source: { app: 'realm', version: 12 } },
    });
    expect(d4After!.owner_id).toBeInstanceOf(ObjectId);
    expect(d4After!.owner_id).toEqual(seed.owner);
    expect(d4After!.createdAt).toBeInstanceOf(Date);
    expect(d4After!.createdAt).toEqual(seed.tasks[4].createdAt);
    expect(await idsOf('tasks', hex(1))).toEqual([]);
    const tomb = await db.collection('_sync_tombstones').findOne({ _id: `tasks:${hex(1)}` as never });
    expect(tomb).toMatchObject({ documentId: hex(1), idType: 'objectId', userId: 'alice' });
    expect(await db.collection('tasks').findOne({ _id: 'legacy-str-1' as never })).toMatchObject({ title: 'string edited' });
    expect(await idsOf('tasks', HEX_STRING_ID)).toEqual([HEX_STRING_ID]);
    expect(await db.collection('tasks').countDocuments()).toBe(7);
  });

  it('offline edits, deletes and inserts are sent on reconnect: ObjectId ids where asked, no duplicates', async () => {
    const a = makeClient(t, 'alice');
    const b = makeClient(t, 'bob');
    await a.subscribe('tasks');
    await a.subscribe('items');
    await b.subscribe('tasks');
    await b.subscribe('items');
    await Promise.all([a.connect(), b.connect()]);
    await a.disconnect();

    const fresh = newObjectId();
    const freshItem = newObjectId();
    const plainHex = newObjectId(); // a 24-hex string without the ObjectId flag: auto keeps it a string
    await a.makeChange('update', 'tasks', hex(2), { title: 'edited offline', tags: ['imported', 'n2', 'offline'] });
    await a.makeChange('delete', 'tasks', hex(3));
    await a.makeChange(
      'insert',
      'tasks',
      { $oid: fresh },
      { title: 'created offline with an ObjectId', owner_id: seed.owner.toHexString(), createdAt: '2024-05-06T07:08:09.010Z' },
    );
    await a.makeChange('insert', 'tasks', plainHex, { title: 'created offline with a string id' });
    await a.makeChange('insert', 'items', freshItem, { name: 'new item', qty: 9 }); // objectId collection: no flag needed
    await a.makeChange('update', 'items', seed.items[0]._id.toHexString(), { qty: 100 });
    expect(a.getPendingChangesCount()).toBe(6);
    expect(a.idTypeOf('tasks', fresh)).toBe('objectId');

    await a.connect();
    await a.whenSynced();
    expect(a.getPendingChangesCount()).toBe(0);

    expect(await idsOf('tasks', hex(2))).toEqual([seed.tasks[2]._id]);
    expect(await db.collection('tasks').findOne({ _id: seed.tasks[2]._id })).toMatchObject({
      title: 'edited offline',
      tags: ['imported', 'n2', 'offline'],
      createdAt: seed.tasks[2].createdAt,
    });
    expect(await idsOf('tasks', hex(3))).toEqual([]);
    expect(await idsOf('tasks', fresh)).toEqual([new ObjectId(fresh)]);
    // a new document: the rules file's fieldTypes store its reference and date as BSON, like the imported ones
    const created = await db.collection('tasks').findOne({ _id: new ObjectId(fresh) });
    expect(created!.owner_id).toBeInstanceOf(ObjectId);
    expect(created!.owner_id).toEqual(seed.owner);
    expect(created!.createdAt).toEqual(new Date('2024-05-06T07:08:09.010Z'));
    expect(await idsOf('tasks', plainHex)).toEqual([plainHex]);
    expect(await idsOf('items', freshItem)).toEqual([new ObjectId(freshItem)]);
    expect(await idsOf('items', seed.items[0]._id.toHexString())).toEqual([seed.items[0]._id]);
    expect(await db.collection('items').findOne({ _id: seed.items[0]._id })).toMatchObject({ qty: 100, name: 'item 0' });
    expect(await db.collection('items').countDocuments()).toBe(4);

    await waitFor(
      () =>
        b.getDocument('tasks', fresh)?.title === 'created offline with an ObjectId' &&
        !b.getDocument('tasks', hex(3)) &&
        b.getDocument('items', freshItem)?.qty === 9,
      15_000,
      'offline changes at bob',
    );
    expect(b.idTypeOf('tasks', fresh)).toBe('objectId');
    expect(b.idTypeOf('tasks', plainHex)).toBe('string');
    expect(b.idTypeOf('items', freshItem)).toBe('objectId');
  });

  it('get_changes catch-up carries documentId as hex and idType: "objectId"', async () => {
    const s = await joinedClient(t.url, 'carol');
    try {
      const changes: { documentId: string; collection: string; operation: string; idType?: string }[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 20; page++) {
        const ack = await emitAck(s, 'sync:get_changes', cursor ? { cursor } : {});
        expect(ack.success).toBe(true);
        changes.push(...ack.changes);
        cursor = ack.cursor;
        if (!ack.hasMore) break;
      }
      const of = (id: string) => changes.filter((c) => c.documentId === id);
      expect(of(hex(0))[0]).toMatchObject({ collection: 'tasks', operation: 'update', idType: 'objectId' });
      expect(of(hex(1))[0]).toMatchObject({ operation: 'delete', idType: 'objectId' });
      expect(of('legacy-str-1')[0]).not.toHaveProperty('idType');
      expect(of(HEX_STRING_ID)[0]).not.toHaveProperty('idType');
    } finally {
      s.close();
    }
  });

  it('a missing sync_updated_at is older than any change; a non-number one too; the compare-and-set still guards', async () => {
    const oldId = new ObjectId();
    const oddId = new ObjectId();
    await db.collection('tasks').insertMany([
      { _id: oldId, title: 'no timestamp' },
      { _id: oddId, title: 'odd timestamp', sync_updated_at: 'yesterday' },
    ] as never[]);
    const s = await joinedClient(t.url, 'dave');
    try {
      const send = (documentId: string, timestamp: number, data: Record<string, unknown>) =>
        emitAck(s, 'sync:change', { changeId: `cas-${documentId}-${timestamp}`, operation: 'update', collection: 'tasks', documentId, data, timestamp });
      expect(await send(oldId.toHexString(), 0, { title: 'at time 0' })).toMatchObject({ success: true, timestamp: 0 });
      expect(await send(oddId.toHexString(), 1, { title: 'at time 1' })).toMatchObject({ success: true, timestamp: 1 });
      // now stamped: an older change loses as usual
      expect(await send(oddId.toHexString(), 0, { title: 'older' })).toMatchObject({ success: false, code: 'CONFLICT', timestamp: 1 });
      expect(await db.collection('tasks').findOne({ _id: oldId })).toMatchObject({ title: 'at time 0', sync_updated_at: 0 });
      expect(await db.collection('tasks').findOne({ _id: oddId })).toMatchObject({ title: 'at time 1', sync_updated_at: 1 });
    } finally {
      s.close();
    }

    // the guard itself: expecting "no timestamp" must not overwrite a document that got one meanwhile
    const repo = t.app.get(DocumentRepository);
    const guarded = new ObjectId();
    await db.collection('tasks').insertOne({ _id: guarded, title: 'v1', sync_updated_at: 5 } as never);
    const failed = await repo.applyWrites([
      {
        collection: 'tasks',
        documentId: guarded.toHexString(),
        dbId: guarded,
        expected: { exists: true, timestamp: null },
        after: { _id: guarded.toHexString(), title: 'lost write', sync_updated_at: 6 },
      },
    ]);
    expect(failed.size).toBe(1);
    expect(await db.collection('tasks').findOne({ _id: guarded })).toMatchObject({ title: 'v1', sync_updated_at: 5 });
    const failedDelete = await repo.applyWrites([
      { collection: 'tasks', documentId: guarded.toHexString(), dbId: guarded, expected: { exists: true, timestamp: null }, after: null },
    ]);
    expect(failedDelete.size).toBe(1);
    expect(await db.collection('tasks').countDocuments({ _id: guarded })).toBe(1);
    expect(await idsOf('tasks', guarded.toHexString())).toEqual([guarded]); // no string duplicate from the refused upsert
  });

  it('auto: when a 24-hex id exists both as ObjectId and as string, the ObjectId document is the one changed', async () => {
    const id = new ObjectId();
    await db.collection('tasks').insertOne({ _id: id, title: 'the ObjectId one' } as never);
    // MongoDB keeps both; the embedded FerretDB (SQLite) indexes an ObjectId by its hex text, so
    // there the twin is refused as a duplicate key and only the ObjectId document exists
    const twin = await db
      .collection('tasks')
      .insertOne({ _id: id.toHexString(), title: 'the string one' } as never)
      .then(() => true)
      .catch((e: { code?: number }) => {
        if (e.code !== 11000) throw e;
        return false;
      });
    const s = await joinedClient(t.url, 'erin');
    try {
      expect(
        await emitAck(s, 'sync:change', {
          changeId: 'both-1',
          operation: 'update',
          collection: 'tasks',
          documentId: id.toHexString(),
          data: { title: 'changed' },
        }),
      ).toMatchObject({ success: true });
    } finally {
      s.close();
    }
    expect(await db.collection('tasks').findOne({ _id: id })).toMatchObject({ title: 'changed' });
    if (twin) expect(await db.collection('tasks').findOne({ _id: id.toHexString() as never })).toMatchObject({ title: 'the string one' });
    else expect(await idsOf('tasks', id.toHexString())).toEqual([id]);
  });

  it('refuses ids a collection cannot store (INVALID_PAYLOAD), and nothing is written', async () => {
    const s = await joinedClient(t.url, 'frank');
    try {
      const send = (c: Record<string, unknown>) => emitUntyped(s, 'sync:change', { operation: 'insert', data: { x: 1 }, ...c });
      expect(await send({ changeId: 'bad-1', collection: 'items', documentId: 'not-an-objectid' })).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
      expect(await send({ changeId: 'bad-2', collection: 'items', documentId: newObjectId().toUpperCase() })).toMatchObject({
        success: false,
        code: 'INVALID_PAYLOAD',
      });
      expect(await send({ changeId: 'bad-3', collection: 'notes', documentId: newObjectId(), idType: 'objectId' })).toMatchObject({
        success: false,
        code: 'INVALID_PAYLOAD',
      });
      expect(await send({ changeId: 'bad-4', collection: 'tasks', documentId: 'short', idType: 'objectId' })).toMatchObject({
        success: false,
        code: 'INVALID_PAYLOAD',
      });
      expect(await send({ changeId: 'bad-5', collection: 'tasks', documentId: newObjectId(), idType: { $ne: null } })).toMatchObject({
        success: false,
        code: 'INVALID_PAYLOAD',
      });
      // a string collection keeps 24-hex ids as strings
      const n = newObjectId();
      expect(await send({ changeId: 'ok-1', collection: 'notes', documentId: n })).toMatchObject({ success: true });
      expect(await idsOf('notes', n)).toEqual([n]);
    } finally {
      s.close();
    }
    expect(await db.collection('items').countDocuments({ x: 1 })).toBe(0);
  });
});

describe('existing data with CONFLICT_STRATEGY=field', () => {
  let t: TestApp;
  let mongo: MongoClient;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', CONFLICT_STRATEGY: 'field' }, 'existing_field');
    mongo = await MongoClient.connect(t.mongoUri, { retryWrites: false, serverSelectionTimeoutMS: 10_000 });
  });
  afterAll(async () => {
    await mongo?.close();
    await t?.close();
  });

  it('every field of a document without sync metadata is older than any change; deletes leave a tombstone', async () => {
    const db = mongo.db();
    const id = new ObjectId();
    const gone = new ObjectId();
    await db.collection('tasks').insertMany([
      { _id: id, a: 'a0', b: 'b0', when: new Date(Date.UTC(2022, 5, 1)) },
      { _id: gone, a: 'x' },
    ] as never[]);
    const s = await joinedClient(t.url, 'gina');
    try {
      const send = (changeId: string, operation: Operation, documentId: string, timestamp: number, data?: Record<string, unknown>) =>
        emitAck(s, 'sync:change', { changeId, operation, collection: 'tasks', documentId, data, timestamp });
      expect(await send('f1', 'update', id.toHexString(), 10, { a: 'a1' })).toMatchObject({ success: true, timestamp: 10 });
      expect(await send('f2', 'update', id.toHexString(), 3, { b: 'b1' })).toMatchObject({ success: true }); // b: untouched since the import
      expect(await send('f3', 'update', id.toHexString(), 4, { a: 'older' })).toMatchObject({ success: false, code: 'CONFLICT' });
      expect(await send('f4', 'delete', gone.toHexString(), 1)).toMatchObject({ success: true });
    } finally {
      s.close();
    }
    const doc = await db.collection('tasks').findOne({ _id: id });
    expect(doc).toMatchObject({ a: 'a1', b: 'b1', when: new Date(Date.UTC(2022, 5, 1)), sync_updated_at: 10 });
    expect(doc!._sync_field_ts).toEqual({ a: 10, b: 3, when: -1 });
    expect(await db.collection('tasks').countDocuments({ _id: { $in: [id.toHexString(), gone.toHexString(), gone] } } as never)).toBe(0);
    expect(await db.collection('_sync_tombstones').findOne({ _id: `tasks:${gone.toHexString()}` as never })).toMatchObject({
      idType: 'objectId',
      timestamp: 1,
    });
  });

  it('the replay of a crashed write (a pending feed entry) writes to the ObjectId document, and creates new ones as ObjectIds', async () => {
    const db = mongo.db();
    const existing = new ObjectId();
    const created = new ObjectId();
    await db.collection('tasks').insertOne({ _id: existing, a: 'before the crash' } as never);
    // what a writer that died after its write-ahead leaves: pending entries, documents untouched
    const feedRepo = t.app.get(ChangeFeedRepository);
    const first = (await feedRepo.maxPosition()) + 1;
    const entry = (pos: number, id: ObjectId, after: Record<string, unknown>, prev: number | null): FeedEntry => ({
      _id: pos,
      changeId: `crashed-${pos}`,
      state: 'pending',
      collection: 'tasks',
      documentId: id.toHexString(),
      docKey: `tasks:${id.toHexString()}`,
      idType: 'objectId',
      operation: 'update',
      after: { _id: id.toHexString(), ...after, sync_updated_at: 50, _updated_by: 'gina' },
      before: null,
      timestamp: 50,
      prevTimestamp: prev,
      userId: 'gina',
      serverTimestamp: Date.now(),
      createdAt: new Date(),
    });
    expect(await feedRepo.insertOrdered([entry(first, existing, { a: 'replayed' }, null), entry(first + 1, created, { a: 'new' }, null)])).toBe(2);
    await feedRepo.raiseHighWater(first + 1);
    const feed = t.app.get(ChangeFeedService);
    await feed.replayPending(`tasks:${existing.toHexString()}`);
    await feed.replayPending(`tasks:${created.toHexString()}`);
    expect(
      await db
        .collection('tasks')
        .find({ _id: { $in: [existing, existing.toHexString()] } } as never)
        .toArray(),
    ).toEqual([expect.objectContaining({ _id: existing, a: 'replayed', sync_updated_at: 50 })]);
    expect(
      await db
        .collection('tasks')
        .find({ _id: { $in: [created, created.toHexString()] } } as never)
        .toArray(),
    ).toEqual([expect.objectContaining({ _id: created, a: 'new' })]);
  });
});
