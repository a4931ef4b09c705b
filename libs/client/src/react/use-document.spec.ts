import { createElement } from 'react';
import { renderToString } from 'react-dom/server';
import { SyncClient } from '../sync-client';
import { MemoryStorage } from '../storage/memory-storage';
import { documentStore, SyncProvider, useDocument } from './index';
import type { DocumentIdInput } from '../object-id';

/** Renders useDocument(collection, id) once (server rendering: no DOM needed) and returns what it showed. */
function show(client: SyncClient, collection: string, id: DocumentIdInput): string {
  function Title() {
    const doc = useDocument(collection, id);
    return createElement('span', null, doc ? `title=${String(doc.title)}` : 'missing');
  }
  return renderToString(createElement(SyncProvider, { client }, createElement(Title)));
}

describe('useDocument with ObjectId ids', () => {
  const hex = '65a1f0c2e4b0a1b2c3d4e5f6';
  let client: SyncClient;
  beforeEach(async () => {
    client = new SyncClient('http://127.0.0.1:1', 'alice', new MemoryStorage(), { logger: null, watchNetwork: false });
    await client.makeChange('insert', 'tasks', { $oid: hex }, { title: 'oid' });
    await client.makeChange('insert', 'tasks', 'plain-id', { title: 'plain' });
  });
  afterEach(() => client.close());

  it('finds a document by a BSON.ObjectId-like value, by { $oid } (any case) and by its hex string', () => {
    class FakeObjectId {
      constructor(private readonly h: string) {}
      toHexString() {
        return this.h;
      }
    }
    expect(show(client, 'tasks', new FakeObjectId(hex))).toContain('title=oid');
    expect(show(client, 'tasks', new FakeObjectId(hex.toUpperCase()))).toContain('title=oid');
    expect(show(client, 'tasks', { $oid: hex })).toContain('title=oid');
    expect(show(client, 'tasks', { $oid: hex.toUpperCase() })).toContain('title=oid');
    expect(show(client, 'tasks', hex)).toContain('title=oid');
    expect(show(client, 'tasks', 'plain-id')).toContain('title=plain');
  });

  it('another ObjectId shows nothing; an ObjectId-like value without 24 hex characters throws', () => {
    expect(show(client, 'tasks', { $oid: 'ffffffffffffffffffffffff' })).toContain('missing');
    expect(() => show(client, 'tasks', { $oid: 'not-hex' })).toThrow(TypeError);
    expect(() => show(client, 'tasks', { toHexString: () => 42 as unknown as string })).toThrow(TypeError);
  });
});

describe("useDocument's store: live updates for ObjectId ids", () => {
  const hex = '65a1f0c2e4b0a1b2c3d4e5f6';
  it('notifies and shows the new state when the document named by { $oid } / toHexString() changes', async () => {
    const client = new SyncClient('http://127.0.0.1:1', 'alice', new MemoryStorage(), { logger: null, watchNetwork: false });
    try {
      for (const id of [{ $oid: hex.toUpperCase() }, { toHexString: () => hex }]) {
        const store = documentStore(client, 'tasks', id);
        let notified = 0;
        let wake!: () => void;
        let woke = new Promise<void>((r) => (wake = r));
        const off = store.subscribe(() => {
          notified++;
          wake();
        });
        await woke; // the notification a fresh subscription sends
        const before = notified;
        woke = new Promise<void>((r) => (wake = r));
        const title = `v${Math.random()}`;
        await client.makeChange('update', 'tasks', { $oid: hex }, { title });
        await woke;
        expect(notified).toBeGreaterThan(before);
        expect(store.getSnapshot().doc?.title).toBe(title);
        // a change to another document does not notify
        const count = notified;
        await client.makeChange('insert', 'tasks', 'other', { title: 'x' });
        await new Promise((r) => setImmediate(r));
        expect(notified).toBe(count);
        off();
      }
    } finally {
      await client.close();
    }
  });
});
