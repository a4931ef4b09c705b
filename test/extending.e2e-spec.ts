import { ExtendingModule, InProcessHub } from '../examples/extending/extending.module';
import { testMongoUri } from './support/db';
import type { Operation } from '@sync/protocol';
import { collectEvents, emitAck, joinedClient, startTestApp, TestApp, ClientSocket } from './support/app';

/*
 * docs/EXTENDING.md's example module, plugged into two nodes of one database through createApp's
 * `extensions`: its conflict resolver decides conflicts, its router decides who receives a change,
 * and its bus carries changes between the nodes.
 */
describe('extending: a user module provides the conflict resolver, the change router and the cluster bus', () => {
  const hub = new InProcessHub();
  let a: TestApp;
  let b: TestApp;
  const sockets: ClientSocket[] = [];
  let seq = 0;
  const id = (p = 'doc') => `${p}-${++seq}-${Date.now()}`;
  const join = async (t: TestApp, userId: string) => {
    const s = await joinedClient(t.url, userId);
    sockets.push(s);
    return s;
  };
  /** `socket` sends one change to a note (an insert unless `operation` says otherwise). */
  const write = (socket: ClientSocket, documentId: string, data: Record<string, unknown>, timestamp: number, operation: Operation = 'insert') =>
    emitAck(socket, 'sync:change', { operation, collection: 'notes', documentId, data, timestamp });

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
      const ack = await write(alice, docId, { title: 'v1', locked: isLocked }, 100);
      expect(ack).toMatchObject({ success: true, timestamp: 100 });
    }
    // under the built-in last-write-wins a newer timestamp always applies
    const refused = await write(alice, locked, { title: 'v2' }, 200, 'update');
    expect(refused).toMatchObject({ success: false, code: 'CONFLICT', timestamp: 100 });
    expect(refused.error).toBe('conflict: the document is locked');
    expect(refused.current).toMatchObject({ _id: locked, title: 'v1', locked: true });
    const applied = await write(alice, open, { title: 'v2' }, 200, 'update');
    expect(applied).toMatchObject({ success: true, timestamp: 200 });
    // and it still falls back to last-write-wins for older changes
    const older = await write(alice, open, { title: 'old' }, 150, 'update');
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

    expect(await write(alice, redDoc, { title: 'red' }, 1000)).toMatchObject({ success: true });
    expect((await toBob)[0]).toMatchObject({ documentId: redDoc, userId: 'red.alice' });
    expect((await toErin)[0]).toMatchObject({ documentId: redDoc, userId: 'red.alice' });

    expect(await write(dave, blueDoc, { title: 'blue' }, 1000)).toMatchObject({ success: true });
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
