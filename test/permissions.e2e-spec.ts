import { connectTestDb } from './support/db';
import type { ClientChange } from '@sync/protocol';
import { emitAck, recordEvents, waitFor } from './support/app';
import { startRulesApp, type RulesApp } from './support/rules-app';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RULES = {
  default: { read: 'FALSEPREDICATE', write: 'FALSEPREDICATE' },
  collections: {
    tasks: { read: 'userId == %user.id', write: 'userId == %user.id' },
    chat: { read: 'TRUEPREDICATE', write: 'senderId == %user.id' },
    posts: { read: 'public == true OR authorId == %user.id', write: 'authorId == %user.id' },
    docs: { read: 'orgId == %user.org', write: 'orgId == %user.org AND %user.role == "editor"' },
  },
};

describe('permissions: the rules file', () => {
  let t: RulesApp;
  let db: Awaited<ReturnType<typeof connectTestDb>>;
  const join = (sub: string, claims: Record<string, unknown> = {}) => t.joined(sub, claims);

  beforeAll(async () => {
    t = await startRulesApp(RULES, {}, 'permissions');
    db = await connectTestDb('permissions', t.mongoUri);
  });
  afterAll(async () => {
    await db?.client.close();
    await t?.close();
  });

  it('a user never receives, bootstraps or reads through get_changes a document its read rule denies', async () => {
    const alice = await join('alice');
    const bob = await join('bob');
    const bobChanges = recordEvents(bob, 'sync:changes');
    const bobPages = recordEvents(bob, 'sync:bootstrap');
    await emitAck(bob, 'sync:subscribe', { collection: 'tasks', filter: 'TRUEPREDICATE', bootstrap: false });
    await emitAck(bob, 'sync:subscribe', { collection: 'chat', bootstrap: false });
    expect(
      await emitAck(alice, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: 'a1', data: { userId: 'alice', title: 'secret' } }),
    ).toMatchObject({ success: true });
    expect(
      await emitAck(bob, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: 'b1', data: { userId: 'bob', title: 'mine' } }),
    ).toMatchObject({ success: true });
    expect(
      await emitAck(alice, 'sync:change', { operation: 'insert', collection: 'chat', documentId: 'm1', data: { senderId: 'alice', text: 'hi' } }),
    ).toMatchObject({ success: true });
    await waitFor(() => bobChanges.some((c) => c.documentId === 'm1'), 5000, 'the public chat message');
    expect(bobChanges.map((c) => c.documentId)).toEqual(['m1']); // own b1: no echo; a1: denied

    const sub = await emitAck(bob, 'sync:subscribe', { collection: 'tasks', filter: 'userId == "alice" OR userId == "bob"' });
    expect(sub).toMatchObject({ success: true, count: 1 });
    await waitFor(() => bobPages.some((p) => p.done), 5000, 'bootstrap');
    expect(bobPages.flatMap((p) => p.data).map((d: any) => d._id)).toEqual(['b1']);

    const feed = await emitAck(bob, 'sync:get_changes', { since: 0 });
    expect(feed.success).toBe(true);
    expect(feed.changes.map((c: any) => c.documentId).sort()).toEqual(['b1', 'm1']);
    expect(JSON.stringify(feed)).not.toContain('secret');
  });

  it('a delete of a document the server does not have is refused where the write rule depends on the document', async () => {
    const carol = await join('carol');
    const dave = await join('dave');
    const head = (await emitAck(dave, 'sync:get_changes', { limit: 1 })).cursor;
    // chat: anyone may read; the write rule needs senderId, which a document that is not there lacks
    const chat = await emitAck(carol, 'sync:change', { operation: 'delete', collection: 'chat', documentId: 'never-was' });
    expect(chat).toMatchObject({ success: false, code: 'FORBIDDEN' });
    // posts: the write rule needs authorId: refused too, so nobody can plant a tombstone that would
    // void the owner's older offline insert of that id
    const post = await emitAck(carol, 'sync:change', { operation: 'delete', collection: 'posts', documentId: 'dave-post', timestamp: Date.now() + 50_000 });
    expect(post).toMatchObject({ success: false, code: 'FORBIDDEN' });
    const insert = await emitAck(dave, 'sync:change', {
      operation: 'insert',
      collection: 'posts',
      documentId: 'dave-post',
      data: { authorId: 'dave', public: true },
      timestamp: Date.now() - 10_000,
    });
    expect(insert).toMatchObject({ success: true });
    const feed = await emitAck(dave, 'sync:get_changes', { cursor: head });
    expect(feed.changes.map((c: any) => `${c.collection}/${c.documentId}`)).toEqual(['posts/dave-post']);
  });

  it('claims: %user.<claim> decides; a user without the claim sees nothing', async () => {
    const ed = await join('ed', { org: 'o1', role: 'editor' });
    const viewer = await join('vi', { org: 'o1', role: 'viewer' });
    const other = await join('ot', { org: 'o2', role: 'editor' });
    const none = await join('no');
    expect(await emitAck(ed, 'sync:change', { operation: 'insert', collection: 'docs', documentId: 'doc1', data: { orgId: 'o1' } })).toMatchObject({
      success: true,
    });
    expect(await emitAck(viewer, 'sync:change', { operation: 'update', collection: 'docs', documentId: 'doc1', data: { x: 1 } })).toMatchObject({
      success: false,
      code: 'FORBIDDEN',
    });
    expect(await emitAck(viewer, 'sync:subscribe', { collection: 'docs', bootstrap: false })).toMatchObject({ success: true, count: 1 });
    expect(await emitAck(other, 'sync:subscribe', { collection: 'docs', bootstrap: false })).toMatchObject({ success: true, count: 0 });
    expect(await emitAck(none, 'sync:subscribe', { collection: 'docs', bootstrap: false })).toMatchObject({ success: true, count: 0 });
  });

  it('a change that takes a document out of the read rule reaches its former reader as outOfView', async () => {
    const author = await join('au');
    const reader = await join('re');
    await emitAck(reader, 'sync:subscribe', { collection: 'posts', bootstrap: false });
    const got = recordEvents(reader, 'sync:changes');
    expect(
      await emitAck(author, 'sync:change', {
        operation: 'insert',
        collection: 'posts',
        documentId: 'p1',
        data: { authorId: 'au', public: true, body: 'hello' },
      }),
    ).toMatchObject({ success: true });
    await waitFor(() => got.length === 1, 5000, 'insert');
    expect(got[0]).toMatchObject({ documentId: 'p1', data: { body: 'hello' } });
    expect(
      await emitAck(author, 'sync:change', { operation: 'update', collection: 'posts', documentId: 'p1', data: { public: false, body: 'private now' } }),
    ).toMatchObject({ success: true });
    await waitFor(() => got.length === 2, 5000, 'out of view');
    expect(got[1]).toMatchObject({ documentId: 'p1', outOfView: true });
    expect(JSON.stringify(got[1])).not.toContain('private now');
    // later changes of the now private post do not reach the reader
    expect(await emitAck(author, 'sync:change', { operation: 'update', collection: 'posts', documentId: 'p1', data: { body: 'still private' } })).toMatchObject(
      { success: true },
    );
    expect(await emitAck(author, 'sync:change', { operation: 'delete', collection: 'posts', documentId: 'p1' })).toMatchObject({ success: true });
    await sleep(300);
    expect(got).toHaveLength(2);
  });

  it('a write the rule denies (before or after image) gets FORBIDDEN and changes nothing', async () => {
    const alice = await join('alice');
    const bob = await join('bob');
    expect(
      await emitAck(alice, 'sync:change', { operation: 'insert', collection: 'tasks', documentId: 'w1', data: { userId: 'alice', title: 't' } }),
    ).toMatchObject({ success: true });
    const before = await db.db.collection('tasks').findOne({ _id: 'w1' as never });
    const attempts: ClientChange[] = [
      { operation: 'update', collection: 'tasks', documentId: 'w1', data: { title: 'pwned' } }, // before image denied
      { operation: 'update', collection: 'tasks', documentId: 'w1', data: { userId: 'bob' } }, // take-over: before denied
      { operation: 'delete', collection: 'tasks', documentId: 'w1' },
      { operation: 'insert', collection: 'tasks', documentId: 'w2', data: { userId: 'alice' } }, // after image denied
      { operation: 'insert', collection: 'closed', documentId: 'c1', data: {} }, // default rule
    ];
    for (const change of attempts) expect(await emitAck(bob, 'sync:change', change)).toMatchObject({ success: false, code: 'FORBIDDEN' });
    // alice may not give her task away either (after image denied)
    expect(await emitAck(alice, 'sync:change', { operation: 'update', collection: 'tasks', documentId: 'w1', data: { userId: 'bob' } })).toMatchObject({
      success: false,
      code: 'FORBIDDEN',
    });
    expect(await db.db.collection('tasks').findOne({ _id: 'w1' as never })).toEqual(before);
    expect(await db.db.collection('tasks').findOne({ _id: 'w2' as never })).toBeNull();
    expect(await db.db.collection('closed').countDocuments()).toBe(0);
    await sleep(50);
  });
});
