import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connectTestDb } from './support/db';
import type { ClientChange } from '@sync/protocol';
import { emitAck, joinedClient, startTestApp, TestApp, waitFor, ClientSocket } from './support/app';

const SCHEMAS = path.join(__dirname, '..', 'config', 'schemas.example.json');
const SERVICE = 'svc-token-for-schema-tests-0123456789';

describe('collection schemas: enforced on the resulting document on every write path', () => {
  let t: TestApp;
  let a: ClientSocket;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  let seq = 0;
  const id = (p = 'p') => `${p}-${++seq}-${Date.now()}`;
  const person = (documentId: string, data: Record<string, unknown>, extra: Record<string, unknown> = {}): ClientChange => ({
    changeId: `c-${documentId}-${++seq}`,
    operation: 'insert',
    collection: 'people',
    documentId,
    data,
    ...extra,
  });
  const stored = (docId: string) => db.db.collection('people').findOne({ _id: docId as never });

  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev', SYNC_SCHEMAS_FILE: SCHEMAS, AUTH_SERVICE_TOKEN: SERVICE }, 'schemas');
    db = await connectTestDb('unused', t.mongoUri);
    a = await joinedClient(t.url, 'ann');
  });
  afterAll(async () => {
    a?.close();
    await db?.close();
    await t?.close();
  });

  it('accepts a document that fits (embedded object, list of embedded objects, optional fields)', async () => {
    const docId = id();
    const ack = await emitAck(
      a,
      'sync:change',
      person(docId, { name: 'Ann', age: 30, address: { city: 'Oslo' }, dogs: [{ name: 'Rex', age: 3 }], tags: ['a'], email: null }),
    );
    expect(ack).toMatchObject({ success: true });
    expect(await stored(docId)).toMatchObject({ name: 'Ann', dogs: [{ name: 'Rex', age: 3 }] });
    // a collection without a schema is not checked
    expect(await emitAck(a, 'sync:change', { operation: 'insert', collection: 'free', documentId: id(), data: { anything: [1, { x: true }] } })).toMatchObject({
      success: true,
    });
  });

  it('refuses a violation with INVALID_PAYLOAD and the JSON pointer, changes nothing, and audits it', async () => {
    const docId = id();
    const changeId = `bad-${docId}`;
    const ack = await emitAck(a, 'sync:change', { ...person(docId, { name: 'Ann', dogs: [{ name: 'Rex' }, { name: 'Fido', age: 'old' }] }), changeId });
    expect(ack).toMatchObject({ success: false, code: 'INVALID_PAYLOAD', changeId, details: { pointer: '/dogs/1/age', message: expect.any(String) } });
    expect(ack.error).toContain('/dogs/1/age');
    expect(await stored(docId)).toBeNull();
    expect(await db.db.collection('_sync_feed').countDocuments({ changeId })).toBe(0);
    await waitFor(async () => !!(await db.db.collection('_sync_audit').findOne({ changeId })), 15_000, 'the audit record');
    expect(await db.db.collection('_sync_audit').findOne({ changeId })).toMatchObject({
      userId: 'ann',
      code: 'INVALID_PAYLOAD',
      collection: 'people',
      documentId: docId,
      reason: expect.stringContaining('/dogs/1/age'),
    });

    const missing = await emitAck(a, 'sync:change', person(id(), { age: 3 }));
    expect(missing).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/name', message: 'is required' } });
    const extra = await emitAck(a, 'sync:change', person(id(), { name: 'A', colour: 'red' }));
    expect(extra).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/colour' } });
    const format = await emitAck(a, 'sync:change', person(id(), { name: 'A', email: 'not-an-email' }));
    expect(format).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/email' } });
  });

  it('checks an update on the merged document', async () => {
    const docId = id();
    expect(await emitAck(a, 'sync:change', person(docId, { name: 'Ann', age: 1 }, { timestamp: 10 }))).toMatchObject({ success: true });
    // the update carries no name: the merged document still has one
    expect(await emitAck(a, 'sync:change', { operation: 'update', collection: 'people', documentId: docId, data: { age: 2 }, timestamp: 20 })).toMatchObject({
      success: true,
    });
    const bad = await emitAck(a, 'sync:change', {
      operation: 'update',
      collection: 'people',
      documentId: docId,
      data: { address: { street: 'x' } },
      timestamp: 30,
    });
    expect(bad).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/address/city' } });
    expect(await stored(docId)).toMatchObject({ name: 'Ann', age: 2, sync_updated_at: 20 });
    // a change that loses its conflict is answered CONFLICT, whatever its data
    expect(await emitAck(a, 'sync:change', { operation: 'update', collection: 'people', documentId: docId, data: { age: -1 }, timestamp: 5 })).toMatchObject({
      code: 'CONFLICT',
    });
    // deletes are not checked
    expect(await emitAck(a, 'sync:change', { operation: 'delete', collection: 'people', documentId: docId, timestamp: 40 })).toMatchObject({ success: true });
  });

  it('is enforced in batches (each change on its own), compat events and the REST ingest', async () => {
    const [x, y, z] = [id(), id(), id()];
    const batch = await emitAck(a, 'sync:changeBatch', { changes: [person(x, { name: 'X' }), person(y, { name: 5 }), person(z, { name: 'Z' })] });
    expect(batch).toMatchObject({ success: true, successCount: 2, failureCount: 1 });
    expect(batch.results[1]).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/name' } });
    expect(await stored(y)).toBeNull();

    expect(await emitAck(a, 'mongoUpsert', { collection: 'people', update: { age: 'x' }, query: { _id: x } })).toBe('error');
    expect(await emitAck(a, 'mongoUpsert', { collection: 'people', update: { age: 44 }, query: { _id: x } })).toBe('ok');
    expect(await stored(x)).toMatchObject({ name: 'X', age: 44 });

    const res = await fetch(`${t.url}/api/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SERVICE}` },
      body: JSON.stringify({ changes: [person(id('rest'), { name: 'R' }), person(id('rest'), { nom: 'R' })] }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ successCount: 1, failureCount: 1 });
    expect(body.results[1]).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/name' } });
  });

  describe('with CONFLICT_STRATEGY=field', () => {
    let f: TestApp;
    let s: ClientSocket;
    let fdb: Awaited<ReturnType<typeof connectTestDb>>;
    beforeAll(async () => {
      f = await startTestApp({ AUTH_MODE: 'dev', SYNC_SCHEMAS_FILE: SCHEMAS, CONFLICT_STRATEGY: 'field' }, 'schemas_field');
      fdb = await connectTestDb('unused', f.mongoUri);
      s = await joinedClient(f.url, 'ann');
    });
    afterAll(async () => {
      s?.close();
      await fdb?.close();
      await f?.close();
    });

    it('keeps concurrent edits of different fields, and validates the merged document', async () => {
      const docId = id('field');
      const up = (data: Record<string, unknown>, timestamp: number) =>
        emitAck(s, 'sync:change', { operation: 'update', collection: 'people', documentId: docId, data, timestamp });
      expect(await emitAck(s, 'sync:change', person(docId, { name: 'A', age: 1 }, { timestamp: 10 }))).toMatchObject({ success: true });
      expect(await up({ age: 2 }, 30)).toMatchObject({ success: true });
      // older than the document, newer on its own field: merged
      expect(await up({ name: 'B' }, 20)).toMatchObject({ success: true });
      expect(await fdb.db.collection('people').findOne({ _id: docId as never })).toMatchObject({ name: 'B', age: 2 });
      // age loses per field (30 > 25); name wins: the merged document fits, though the sent age would not
      expect(await up({ age: -1, name: 'C' }, 25)).toMatchObject({ success: true });
      expect(await fdb.db.collection('people').findOne({ _id: docId as never })).toMatchObject({ name: 'C', age: 2 });
      // a merged document that would violate it is refused and nothing changes
      expect(await up({ age: -5 }, 40)).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/age' } });
      expect(await fdb.db.collection('people').findOne({ _id: docId as never })).toMatchObject({ name: 'C', age: 2 });
    });
  });

  describe('a schema in the rules file, with stored BSON types (fieldTypes)', () => {
    let r: TestApp;
    let s: ClientSocket;
    let rdb: Awaited<ReturnType<typeof connectTestDb>>;
    let dir: string;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'schemas-rules-'));
      const rules = path.join(dir, 'rules.json');
      fs.writeFileSync(
        rules,
        JSON.stringify({
          default: { read: 'TRUEPREDICATE', write: 'TRUEPREDICATE' },
          collections: {
            notes: {
              read: 'TRUEPREDICATE',
              write: 'TRUEPREDICATE',
              fieldTypes: { owner_id: 'objectId' },
              schema: {
                type: 'object',
                required: ['owner_id'],
                properties: { owner_id: { type: 'string', pattern: '^[0-9a-f]{24}$' }, text: { type: 'string' } },
                additionalProperties: false,
              },
            },
          },
        }),
      );
      r = await startTestApp({ AUTH_MODE: 'dev', SYNC_RULES_FILE: rules }, 'schemas_rules');
      rdb = await connectTestDb('unused', r.mongoUri);
      s = await joinedClient(r.url, 'ann');
    });
    afterAll(async () => {
      s?.close();
      await rdb?.close();
      await r?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('validates the document as clients see it (an ObjectId field in its hex form)', async () => {
      const owner = '64b7f0c2a1b2c3d4e5f60718';
      const docId = id('note');
      expect(
        await emitAck(s, 'sync:change', { operation: 'insert', collection: 'notes', documentId: docId, data: { owner_id: owner, text: 'a' } }),
      ).toMatchObject({ success: true });
      const stored = await rdb.db.collection('notes').findOne({ _id: docId as never });
      expect(stored?.owner_id?.constructor?.name).toBe('ObjectId');
      // an update of another field: the merged document still has the (stored) ObjectId, which fits
      expect(await emitAck(s, 'sync:change', { operation: 'update', collection: 'notes', documentId: docId, data: { text: 'b' } })).toMatchObject({
        success: true,
      });
      expect(await emitAck(s, 'sync:change', { operation: 'insert', collection: 'notes', documentId: id('note'), data: { text: 'no owner' } })).toMatchObject({
        code: 'INVALID_PAYLOAD',
        details: { pointer: '/owner_id' },
      });
      expect(
        await emitAck(s, 'sync:change', { operation: 'insert', collection: 'notes', documentId: id('note'), data: { owner_id: 'not-hex' } }),
      ).toMatchObject({ code: 'INVALID_PAYLOAD', details: { pointer: '/owner_id' } });
    });
  });
  describe('attack: a write-only user learns nothing of a stored version through a violation', () => {
    let r: TestApp;
    let rdb: Awaited<ReturnType<typeof connectTestDb>>;
    let dir: string;
    beforeAll(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'schemas-dropbox-'));
      const rules = path.join(dir, 'rules.json');
      fs.writeFileSync(
        rules,
        JSON.stringify({
          default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' },
          collections: {
            dropbox: {
              read: 'owner == %user.id',
              write: 'TRUEPREDICATE',
              schema: { type: 'object', properties: { owner: { type: 'string' }, note: { type: 'string' } }, additionalProperties: false },
            },
          },
        }),
      );
      r = await startTestApp({ AUTH_MODE: 'dev', SYNC_RULES_FILE: rules }, 'schemas_dropbox');
      rdb = await connectTestDb('unused', r.mongoUri);
      // a version stored before the schema existed (e.g. data left by Atlas Device Sync), with a secret field
      await rdb.db.collection('dropbox').insertOne({ _id: 'box-1' as never, owner: 'ann', note: 'x', secretPinCode: 1234, sync_updated_at: 1 });
    });
    afterAll(async () => {
      await rdb?.close();
      await r?.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('the owner is told what is wrong; another writer gets the refusal without the pointer', async () => {
      const bob = await joinedClient(r.url, 'bob');
      const ann = await joinedClient(r.url, 'ann');
      try {
        const bobs = await emitAck(bob, 'sync:change', { operation: 'update', collection: 'dropbox', documentId: 'box-1', data: { note: 'hi' } });
        expect(bobs).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
        expect(bobs.details).toBeUndefined();
        expect(JSON.stringify(bobs)).not.toMatch(/secretPinCode/);
        const anns = await emitAck(ann, 'sync:change', { operation: 'update', collection: 'dropbox', documentId: 'box-1', data: { note: 'hi' } });
        expect(anns).toMatchObject({ success: false, code: 'INVALID_PAYLOAD', details: { pointer: '/secretPinCode' } });
      } finally {
        bob.close();
        ann.close();
      }
    });
  });
});
