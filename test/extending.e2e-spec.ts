import { Socket } from 'socket.io-client';
import { ExtendingModule, InProcessHub } from '../examples/extending/extending.module';
import { testMongoUri } from './support/db';
import { collectEvents, emitAck, joinedClient, startTestApp, TestApp } from './support/app';

/*
 * docs/EXTENDING.md's example module, plugged into two nodes of one database through createApp's
 * `extensions`: its conflict resolver decides conflicts, its router decides who receives a change,
 * and its bus carries changes between the nodes.
 */
describe('extending: a user module provides the conflict resolver, the change router and the cluster bus', () => {
  const hub = new InProcessHub();
  let a: TestApp;
  let b: TestApp;
  const sockets: Socket[] = [];
  let seq = 0;
  const id = (p = 'doc') => `${p}-${++seq}-${Date.now()}`;
  const join = async (t: TestApp, userId: string) => {
    const s = await joinedClient(t.url, userId);
    sockets.push(s);
    return s;
  };

  beforeAll(async () => {
    const env = { AUTH_MODE: 'dev', MONGODB_URI: testMongoUri('extending') };
    a = await startTestApp(env, 'extending', [ExtendingModule.forRoot({ hub, node: 'a' })]);
    b = await startTestApp(env, 'extending', [ExtendingModule.forRoot({ hub, node: 'b' })]);
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await a?.close();
    await b?.close();
  });

  it('the custom resolver decides: a locked document refuses a newer change, an unlocked one takes it', async () => {
    const alice = await join(a, 'red.alice');
    const locked = id('locked');
    const open = id('open');
    for (const [docId, isLocked] of [
      [locked, true],
      [open, false],
    ] as const) {
      const ack = await emitAck(alice, 'sync:change', {
        operation: 'insert',
        collection: 'notes',
        documentId: docId,
        data: { title: 'v1', locked: isLocked },
        timestamp: 100,
      });
      expect(ack).toMatchObject({ success: true, timestamp: 100 });
    }
    // under the built-in last-write-wins a newer timestamp always applies
    const refused = await emitAck(alice, 'sync:change', {
      operation: 'update',
      collection: 'notes',
      documentId: locked,
      data: { title: 'v2' },
      timestamp: 200,
    });
    expect(refused).toMatchObject({ success: false, code: 'CONFLICT', timestamp: 100 });
    expect(refused.error).toBe('conflict: the document is locked');
    expect(refused.current).toMatchObject({ _id: locked, title: 'v1', locked: true });
    const applied = await emitAck(alice, 'sync:change', { operation: 'update', collection: 'notes', documentId: open, data: { title: 'v2' }, timestamp: 200 });
    expect(applied).toMatchObject({ success: true, timestamp: 200 });
    // and it still falls back to last-write-wins for older changes
    const older = await emitAck(alice, 'sync:change', { operation: 'update', collection: 'notes', documentId: open, data: { title: 'old' }, timestamp: 150 });
    expect(older).toMatchObject({ success: false, code: 'CONFLICT', timestamp: 200 });
  });

  it('the custom router delivers a change only to its author’s team, on this node and through the bus on the other', async () => {
    const alice = await join(a, 'red.alice');
    const bob = await join(a, 'red.bob'); // same team, same node
    const carol = await join(a, 'blue.carol'); // other team, same node
    const erin = await join(b, 'red.erin'); // same team, other node
    const frank = await join(b, 'blue.frank'); // other team, other node
    const dave = await join(b, 'blue.dave');

    const redDoc = id('red');
    const blueDoc = id('blue');
    const toBob = collectEvents(bob, 'sync:changes', 1, 20_000);
    const toErin = collectEvents(erin, 'sync:changes', 1, 20_000);
    // the blue sockets' first change must be blue's: the built-in router would have sent them red's first
    const toCarol = collectEvents(carol, 'sync:changes', 1, 20_000);
    const toFrank = collectEvents(frank, 'sync:changes', 1, 20_000);

    const redAck = await emitAck(alice, 'sync:change', {
      operation: 'insert',
      collection: 'notes',
      documentId: redDoc,
      data: { title: 'red' },
      timestamp: 1000,
    });
    expect(redAck).toMatchObject({ success: true });
    expect((await toBob)[0]).toMatchObject({ documentId: redDoc, userId: 'red.alice' });
    expect((await toErin)[0]).toMatchObject({ documentId: redDoc, userId: 'red.alice' });

    const blueAck = await emitAck(dave, 'sync:change', {
      operation: 'insert',
      collection: 'notes',
      documentId: blueDoc,
      data: { title: 'blue' },
      timestamp: 1000,
    });
    expect(blueAck).toMatchObject({ success: true });
    expect((await toFrank)[0]).toMatchObject({ documentId: blueDoc, userId: 'blue.dave' });
    expect((await toCarol)[0]).toMatchObject({ documentId: blueDoc, userId: 'blue.dave' });
  });

  it('the custom bus carries every applied change from the node that wrote it', () => {
    const fromA = hub.published.filter((m) => m.from === 'a').flatMap((m) => m.entries.map((e) => e.documentId));
    const fromB = hub.published.filter((m) => m.from === 'b').flatMap((m) => m.entries.map((e) => e.documentId));
    expect(fromA.filter((d) => d?.startsWith('red-'))).toHaveLength(1);
    expect(fromA.filter((d) => d?.startsWith('locked-'))).toHaveLength(1);
    expect(fromB.filter((d) => d?.startsWith('blue-'))).toHaveLength(1);
    expect(fromB.filter((d) => d?.startsWith('red-'))).toHaveLength(0);
  });
});
