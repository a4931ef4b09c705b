import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IDBFactory } from 'fake-indexeddb';
import { FileStorage, StorageLockedError } from './file-storage';
import { IndexedDbStorage } from './indexeddb-storage';
import { MemoryStorage } from './memory-storage';
import type { DocRecord, OutboxEntry, SyncStorage } from './storage.types';

const entry = (seq: number, over: Partial<OutboxEntry> = {}): OutboxEntry => ({
  seq,
  changeId: `c-${seq}`,
  operation: 'insert',
  collection: 'tasks',
  documentId: `t-${seq}`,
  data: { title: `task ${seq}`, sync_updated_at: 1000 + seq },
  timestamp: 1000 + seq,
  createdAt: 1000 + seq,
  ...over,
});
const doc = (id: string, ts: number): DocRecord => ({
  collection: 'tasks',
  id,
  state: 'live',
  doc: { _id: id, n: ts },
  ts,
  cursor: 'c1' + String(ts).padStart(16, '0'),
});

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'sync-storage-'));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

type Kind = { name: string; make: () => { open: () => SyncStorage } };
let n = 0;
const kinds: Kind[] = [
  {
    name: 'MemoryStorage',
    make: () => {
      const s = new MemoryStorage();
      return { open: () => s };
    },
  },
  {
    name: 'FileStorage',
    make: () => {
      const dir = path.join(tmp, `fs-${++n}`);
      return { open: () => new FileStorage(dir) };
    },
  },
  {
    name: 'IndexedDbStorage',
    make: () => {
      const factory = new IDBFactory();
      const name = `db-${++n}`;
      return { open: () => new IndexedDbStorage(name, { indexedDB: factory }) };
    },
  },
];

describe.each(kinds)('$name', ({ make }) => {
  it('starts empty', async () => {
    const s = make().open();
    expect(await s.load()).toEqual({ outbox: [], docs: [], meta: {} });
    await s.close();
  });

  it('keeps outbox entries, documents and meta across reopening, outbox in seq order', async () => {
    const m = make();
    let s = m.open();
    await s.load();
    await s.write({ putOutbox: [entry(2)], meta: { lastSeq: 2, cursor: 'c1x' } });
    await s.write({ putOutbox: [entry(1), entry(3)], putDocs: [doc('a', 5), doc('b', 6)], meta: { lastTimestamp: 99 } });
    await s.write({ deleteOutbox: ['c-2'], deleteDocs: [{ collection: 'tasks', id: 'a' }], meta: { cursor: 'c1y' } });
    await s.close();
    s = m.open();
    const st = await s.load();
    expect(st.outbox.map((e) => e.changeId)).toEqual(['c-1', 'c-3']);
    expect(st.outbox[0]).toEqual(entry(1));
    expect(st.docs).toEqual([doc('b', 6)]);
    expect(st.meta).toEqual({ lastSeq: 2, cursor: 'c1y', lastTimestamp: 99 });
    await s.close();
  });

  it('clearDocs drops every document but keeps the outbox', async () => {
    const m = make();
    let s = m.open();
    await s.load();
    await s.write({ putOutbox: [entry(1)], putDocs: [doc('a', 1), doc('b', 2)] });
    await s.write({ clearDocs: true, putDocs: [doc('c', 3)] });
    await s.close();
    s = m.open();
    const st = await s.load();
    expect(st.docs).toEqual([doc('c', 3)]);
    expect(st.outbox).toHaveLength(1);
    await s.close();
  });

  it('does not share objects with the caller', async () => {
    const m = make();
    const s = m.open();
    await s.load();
    const e = entry(1);
    await s.write({ putOutbox: [e] });
    (e.data as Record<string, unknown>).title = 'mutated';
    const st = await s.load();
    expect(st.outbox[0].data!.title).toBe('task 1');
    await s.close();
  });

  it('concurrent writes all land, in order', async () => {
    const m = make();
    let s = m.open();
    await s.load();
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.write({ putOutbox: [entry(i + 1)], meta: { lastSeq: i + 1 } })));
    await s.close();
    s = m.open();
    const st = await s.load();
    expect(st.outbox).toHaveLength(50);
    expect(st.meta.lastSeq).toBe(50);
    await s.close();
  });
});

describe('FileStorage specifics', () => {
  it('cuts off a torn last log line (a write that never completed)', async () => {
    const dir = path.join(tmp, 'torn');
    let s = new FileStorage(dir);
    await s.load();
    await s.write({ putOutbox: [entry(1)] });
    await s.write({ putOutbox: [entry(2)] });
    await s.close();
    const log = path.join(dir, 'changes.log');
    const full = await fsp.readFile(log, 'utf8');
    // simulate a crash in the middle of appending a third write
    await fsp.appendFile(log, JSON.stringify({ putOutbox: [entry(3)] }).slice(0, 25));
    s = new FileStorage(dir);
    const st = await s.load();
    expect(st.outbox.map((e) => e.seq)).toEqual([1, 2]);
    expect(await fsp.readFile(log, 'utf8')).toBe(full);
    // and appending afterwards still works
    await s.write({ putOutbox: [entry(4)] });
    await s.close();
    s = new FileStorage(dir);
    expect((await s.load()).outbox.map((e) => e.seq)).toEqual([1, 2, 4]);
    await s.close();
  });

  it('compacts the log into an atomically replaced snapshot', async () => {
    const dir = path.join(tmp, 'compact');
    let s = new FileStorage(dir, { compactAfterBytes: 2000 });
    await s.load();
    for (let i = 1; i <= 40; i++) await s.write({ putOutbox: [entry(i)], deleteOutbox: i > 5 ? [`c-${i - 5}`] : [] });
    await s.close();
    const logSize = (await fsp.stat(path.join(dir, 'changes.log'))).size;
    expect(logSize).toBeLessThan(2500);
    expect((await fsp.readdir(dir)).sort()).toEqual(['changes.log', 'state.json']);
    s = new FileStorage(dir);
    expect((await s.load()).outbox.map((e) => e.seq)).toEqual([36, 37, 38, 39, 40]);
    await s.close();
  });

  it('replaying a log over a snapshot that already contains it changes nothing', async () => {
    const dir = path.join(tmp, 'replay');
    let s = new FileStorage(dir);
    await s.load();
    await s.write({ putOutbox: [entry(1), entry(2)], putDocs: [doc('a', 1)] });
    await s.write({ deleteOutbox: ['c-1'], deleteDocs: [{ collection: 'tasks', id: 'a' }], meta: { cursor: 'c1z' } });
    await s.close();
    // a crash after the snapshot rename but before the log truncation
    const probe = new FileStorage(dir);
    const expected = await probe.load();
    await probe.close();
    await fsp.writeFile(path.join(dir, 'state.json'), JSON.stringify(expected));
    s = new FileStorage(dir);
    expect(await s.load()).toEqual(expected);
    await s.close();
  });

  it('refuses a directory locked by a live process, takes over a dead one', async () => {
    const dir = path.join(tmp, 'locked');
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'LOCK'), String(process.ppid));
    await expect(new FileStorage(dir).load()).rejects.toBeInstanceOf(StorageLockedError);
    await fsp.writeFile(path.join(dir, 'LOCK'), '999999999');
    const s = new FileStorage(dir);
    await expect(s.load()).resolves.toBeDefined();
    await s.close();
    expect(await fsp.readdir(dir)).not.toContain('LOCK');
  });
});
