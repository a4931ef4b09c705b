/* WORK IN PROGRESS (not run by jest): the SIGKILL crash test of issue 3. It times out waiting for
 * the restarted server to be ready; see the note on issue 3. Rename to crash.e2e-spec.ts to run it. */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { Socket } from 'socket.io-client';
import { freePort } from '../src/database/embedded-database';
import { connectTestDb } from './support/db';
import { connectClient, emitAck, waitFor } from './support/app';

const root = path.join(__dirname, '..');

function startServer(port: number, mongoUri: string): ChildProcess {
  return spawn(process.execPath, ['-r', path.join(root, 'bench/lib/register.js'), path.join(root, 'src/main.ts')], {
    cwd: root,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', PORT: String(port), HOST: '127.0.0.1', MONGODB_URI: mongoUri, AUTH_MODE: 'dev', LOG_LEVEL: 'warn', SYNC_LOCK_TTL_MS: '500', RATE_LIMIT_DISABLED: 'true' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function ready(url: string) {
  await waitFor(async () => (await fetch(`${url}/ready`).catch(() => null))?.status === 200, 60_000, 'server ready');
}

/**
 * The server process is killed (SIGKILL) in the middle of a stream of batches; after a restart every
 * acknowledged change is in the documents and in the feed, and documents and feed agree.
 */
describe('crash safety: SIGKILL during a stream of batches', () => {
  it('loses no acknowledged change and leaves documents and feed consistent', async () => {
    const db = await connectTestDb('crash');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let server = startServer(port, db.uri);
    const acked = new Map<string, { documentId: string; timestamp: number }>();
    let socket: Socket | undefined;
    try {
      await ready(url);
      socket = await connectClient(url);
      await emitAck(socket, 'sync:join', { userId: 'writer' });
      let k = 0;
      let killed = false;
      const killTimer = setTimeout(() => {
        killed = true;
        server.kill('SIGKILL');
      }, 2500);
      // stream batches until the server dies under us
      while (!killed) {
        const changes = Array.from({ length: 25 }, (_, j) => ({
          changeId: `k${k}-${j}`,
          operation: j % 7 === 6 ? 'delete' : 'update',
          collection: 'crash',
          documentId: `d${(k * 25 + j) % 60}`,
          data: { k, j },
          timestamp: 1_000 + k * 100 + j,
        }));
        k++;
        const res = await emitAck(socket, 'sync:changeBatch', { changes }, 5000).catch(() => null);
        if (!res) break;
        res.results.forEach((r: any, j: number) => {
          if (r.success) acked.set(changes[j].changeId, { documentId: changes[j].documentId, timestamp: r.timestamp });
        });
      }
      clearTimeout(killTimer);
      socket.close();
      await new Promise((r) => server.once('exit', r));
      expect(acked.size).toBeGreaterThan(0);

      server = startServer(port, db.uri);
      await ready(url);
      // let the janitor replay what the dead process left pending
      await waitFor(async () => (await db.db.collection('_sync_feed').countDocuments({ state: 'pending' })) === 0, 30_000, 'no pending entries');

      const feed = await db.db.collection('_sync_feed').find({ state: 'applied' }).sort({ _id: 1 }).toArray();
      const applied = new Set(feed.map((e) => e.changeId));
      for (const id of acked.keys()) expect(applied.has(id)).toBe(true);
      // documents equal the last applied feed entry of each document
      const last = new Map<string, any>();
      for (const e of feed) last.set(e.documentId, e);
      for (const [docId, e] of last) {
        const doc = await db.db.collection('crash').findOne({ _id: docId as any });
        if (e.operation === 'delete') expect(doc).toBeNull();
        else expect(doc).toEqual(e.after);
      }
      // every acked change is reflected: the document holds it or a newer version
      for (const { documentId, timestamp } of acked.values()) {
        const doc = await db.db.collection('crash').findOne({ _id: documentId as any });
        const tomb = await db.db.collection('_sync_tombstones').findOne({ _id: `crash:${documentId}` as any });
        const ts = doc ? (doc.sync_updated_at as number) : (tomb?.timestamp as number);
        expect(ts).toBeGreaterThanOrEqual(timestamp);
      }
      // and a client reading the feed from the start sees every acked change
      const s2 = await connectClient(url);
      await emitAck(s2, 'sync:join', { userId: 'reader' });
      const seen = new Set<string>();
      let cursor: string | undefined;
      for (;;) {
        const page = await emitAck(s2, 'sync:get_changes', { cursor, limit: 5000, collection: 'crash' });
        page.changes.forEach((c: any) => seen.add(c.changeId));
        cursor = page.cursor;
        if (!page.hasMore) break;
      }
      s2.close();
      for (const id of acked.keys()) expect(seen.has(id)).toBe(true);
    } finally {
      socket?.close();
      server.kill('SIGKILL');
      await db.close();
    }
  }, 180_000);
});
