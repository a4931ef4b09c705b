import { hs256, TEST_SECRET } from './support/jwt';
import { connectClient, emitAck, startTestApp, TestApp, ClientSocket } from './support/app';

/**
 * Issue 10, informational: cursors exposed raw feed positions that a client could also write
 * itself. Cursors now carry a tag keyed from the server secret; a made-up one is refused, and an old
 * unsigned one reads from the start of what the user may see.
 */
describe('cursors are tagged by the server', () => {
  let t: TestApp;
  let s: ClientSocket;

  beforeAll(async () => {
    t = await startTestApp({ AUTH_JWT_SECRET: TEST_SECRET }, 'cursor_tags');
    s = await connectClient(t.url, { auth: { token: await hs256({ sub: 'alice' }, { expiresIn: '1h' }) } });
    expect(await emitAck(s, 'sync:join', {})).toMatchObject({ success: true });
  });
  afterAll(async () => {
    s?.close();
    await t?.close();
  });

  it('issues tagged cursors that work, and refuses altered or made-up ones', async () => {
    const acks = [];
    for (let i = 0; i < 3; i++) acks.push(await emitAck(s, 'sync:change', { operation: 'insert', collection: 'notes', documentId: `n${i}`, data: { i } }));
    const cursors = acks.map((a) => a.cursor as string);
    for (const c of cursors) expect(c).toMatch(/^c2[0-9a-f]{16}\.[A-Za-z0-9_-]{11}$/);
    expect([...cursors].sort()).toEqual(cursors); // string order is feed order
    const after = await emitAck(s, 'sync:get_changes', { cursor: cursors[0] });
    expect(after).toMatchObject({ success: true });
    expect(after.changes.map((c: { documentId: string }) => c.documentId)).toEqual(['n1', 'n2']);
    // the next position with the first cursor's tag, and a cursor signed with another key
    const next = cursors[0].replace(/[0-9a-f](?=\.)/, (d) => ((parseInt(d, 16) + 1) % 16).toString(16));
    for (const forged of [next, `${cursors[0].slice(0, -2)}zz`, 'c2000000000000000a.AAAAAAAAAAA'])
      expect(await emitAck(s, 'sync:get_changes', { cursor: forged })).toMatchObject({ success: false, code: 'INVALID_PAYLOAD' });
  });

  it('reads an old unsigned cursor as the start of the feed, whatever position it names', async () => {
    const old = await emitAck(s, 'sync:get_changes', { cursor: 'c10000000000000002' });
    expect(old).toMatchObject({ success: true });
    expect(old.changes.map((c: { documentId: string }) => c.documentId)).toEqual(['n0', 'n1', 'n2']);
  });
});
