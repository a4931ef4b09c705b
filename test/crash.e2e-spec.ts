/* Crash safety (issue 3): the server process is killed with SIGKILL in the middle of a stream of
 * batches, on its own embedded database (FerretDB child, data in a temporary DATA_DIR), exactly as a
 * user runs it. After a restart every acknowledged change is in the documents and in the feed, the
 * two agree, and a reader of the feed sees each change once. Killing the server orphans its FerretDB
 * child: the restarted server must stop the orphan before it starts its own on the same files. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_DB_NAME } from '../src/database/database-launcher.service';
import { freePort, readPidRecord } from '../src/database/embedded-database';
import { connectTestDb } from './support/db';
import type { ClientChange } from '@sync/protocol';
import { connectClient, emitAck, waitFor, ClientSocket } from './support/app';
import { feedEntries } from './support/feed';
import { spawnServer, type ServerProcess } from './support/server-process';

const root = path.join(__dirname, '..');

type Server = ServerProcess;

function startServer(port: number, dataDir: string): Server {
  // `exited`: the exit code, or the signal's name (SIGTERM: the server drains, closes and exits 0)
  return spawnServer(port, { DATA_DIR: dataDir, AUTH_MODE: 'dev', SYNC_LOCK_TTL_MS: '500', RATE_LIMIT_DISABLED: 'true' });
}

async function ready(url: string, server: Server): Promise<void> {
  let exit: number | string | null | undefined;
  void server.exited.then((c) => (exit = c));
  await waitFor(
    async () => {
      if (exit !== undefined) throw new Error(`server exited (${exit}) before it was ready:\n${server.output.join('')}`);
      return (await fetch(`${url}/ready`).catch(() => null))?.status === 200;
    },
    90_000,
    'server ready',
  );
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') === '');
  } catch {
    return false;
  }
};

interface Acked {
  documentId: string;
  timestamp: number;
  operation: string;
  cursor: string;
  round: number;
}

/** Every batch sent, by round (the last one of a round was in flight when the server died). */
const sentBatches = new Map<number, any[][]>();

/**
 * Streams batches of 25 changes (updates and deletes over 60 documents); once `killAfter` batches are
 * acknowledged, kills the server a few milliseconds after sending the next one, so it dies with a
 * batch half written.
 */
async function streamUntilKilled(url: string, server: Server, round: number, killAfter: number, acked: Map<string, Acked>): Promise<number> {
  const socket: ClientSocket = await connectClient(url);
  await emitAck(socket, 'sync:join', { userId: `writer${round}` });
  let killed = false;
  let batches = 0;
  let spent = 0;
  try {
    for (let k = 0; !killed; k++) {
      const changes = Array.from({ length: 25 }, (_, j): ClientChange & { changeId: string } => ({
        changeId: `r${round}-k${k}-${j}`,
        operation: j % 7 === 6 ? 'delete' : 'update',
        collection: 'crash',
        documentId: `d${(k * 25 + j) % 60}`,
        data: { round, k, j },
        timestamp: round * 1_000_000 + 1_000 + k * 100 + j,
      }));
      const sent = Date.now();
      sentBatches.set(round, [...(sentBatches.get(round) ?? []), changes]);
      const pending = emitAck(socket, 'sync:changeBatch', { changes }, 15_000).catch(() => null);
      if (batches === killAfter) {
        // somewhere inside the batch's database work: 20-90 % of a batch's usual duration
        await new Promise((r) => setTimeout(r, (0.2 + 0.7 * Math.random()) * (spent / batches)));
        killed = true;
        server.proc.kill('SIGKILL');
      }
      const res = await pending;
      if (!res) break;
      batches++;
      spent += Date.now() - sent;
      res.results.forEach((r: any, j: number) => {
        if (r.success)
          acked.set(changes[j].changeId, {
            documentId: changes[j].documentId,
            timestamp: r.timestamp,
            operation: changes[j].operation,
            cursor: r.cursor,
            round,
          });
      });
    }
  } finally {
    socket.close();
  }
  if (!killed) server.proc.kill('SIGKILL');
  await server.exited;
  return batches;
}

describe('crash safety: SIGKILL during a stream of batches (embedded database)', () => {
  const dirs: string[] = [];
  const servers: Server[] = [];
  /** A DATA_DIR of its own for each test. */
  const freshDataDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sync-crash-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    for (const s of servers) s.proc.kill('SIGKILL');
    for (const dir of dirs) {
      const rec = readPidRecord(path.join(dir, 'ferretdb'));
      if (rec && alive(rec.child)) process.kill(rec.child, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loses no acknowledged change, stops the orphaned database, and leaves documents and feed consistent', async () => {
    const dataDir = freshDataDir();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const acked = new Map<string, Acked>();
    const orphans: number[] = [];

    // three crash rounds: the later ones kill a server that itself recovered from a crash
    for (const [round, killAfter] of [
      [1, 12],
      [2, 7],
      [3, 4],
    ] as const) {
      const server = startServer(port, dataDir);
      servers.push(server);
      await ready(url, server);
      const rec = readPidRecord(path.join(dataDir, 'ferretdb'));
      expect(rec?.owner).toBe(server.proc.pid);
      for (const o of orphans) expect(alive(o)).toBe(false); // the restarted server stopped it
      const before = acked.size;
      const batches = await streamUntilKilled(url, server, round, killAfter, acked);
      expect(batches).toBeGreaterThanOrEqual(killAfter);
      expect(acked.size).toBeGreaterThan(before);
      // SIGKILL gives the server no chance to stop its database; the child often dies by itself
      // (SIGPIPE on its next log line), but not always: the next start must make sure
      if (alive(rec!.child)) orphans.push(rec!.child);
    }

    const server = startServer(port, dataDir);
    servers.push(server);
    await ready(url, server);
    for (const o of orphans) expect(alive(o)).toBe(false);
    const replays = servers.flatMap((s) => s.output.join('').match(/replayed \d+ change\(s\)|replaying change #\d+/g) ?? []);
    console.log(
      `crash test: ${acked.size} changes acked over 3 crashes; ${orphans.length} orphaned database(s) stopped; recovery: ${replays.join(', ') || 'nothing was pending'}`,
    );

    const rec = readPidRecord(path.join(dataDir, 'ferretdb'))!;
    const db = await connectTestDb('crash', `mongodb://127.0.0.1:${rec.port}/${DEFAULT_DB_NAME}`);
    try {
      // the janitor replays what the dead processes left pending
      await waitFor(async () => (await feedEntries(db.db, {}, 'pending')).length === 0, 60_000, 'no pending feed entries');

      const feed = await feedEntries(db.db, {}, 'applied');
      const applied = new Map(feed.map((e) => [e.changeId as string, e]));
      const missing = [...acked.keys()].filter((id) => !applied.has(id));
      expect(missing).toEqual([]);
      // documents equal the last applied feed entry of each document
      const last = new Map<string, any>();
      for (const e of feed) last.set(e.documentId, e);
      expect(last.size).toBeGreaterThan(0);
      for (const [docId, e] of last) {
        const doc = await db.db.collection('crash').findOne({ _id: docId as any });
        if (e.operation === 'delete') expect(doc).toBeNull();
        else expect(doc).toEqual(e.after);
      }
      // every acked change is reflected: the document (or its tombstone) holds it or a newer version
      for (const { documentId, timestamp } of acked.values()) {
        const doc = await db.db.collection('crash').findOne({ _id: documentId as any });
        const tomb = await db.db.collection('_sync_tombstones').findOne({ _id: `crash:${documentId}` as any });
        const ts = doc ? (doc.sync_updated_at as number) : (tomb?.timestamp as number);
        expect(ts).toBeGreaterThanOrEqual(timestamp);
      }

      // the writer of the last round comes back and sends its last batches again (the acked one
      // before the crash, and the one in flight): the acked changes get their first ack again,
      // marked duplicate; nothing is applied twice
      const writer = await connectClient(url);
      await emitAck(writer, 'sync:join', { userId: 'writer3' });
      for (const changes of (sentBatches.get(3) ?? []).slice(-2)) {
        const res = await emitAck(writer, 'sync:changeBatch', { changes });
        res.results.forEach((r: any, j: number) => {
          const first = acked.get(changes[j].changeId);
          if (first) expect(r).toMatchObject({ success: true, duplicate: true, timestamp: first.timestamp, cursor: first.cursor });
          else expect(r.success).toBe(true); // in flight at the crash: applied now, or found written ahead
        });
      }
      writer.close();
      const feedAfter = await feedEntries(db.db, {}, 'applied');
      const counts = new Map<string, number>();
      for (const e of feedAfter) counts.set(e.changeId, (counts.get(e.changeId) ?? 0) + 1);
      expect([...counts.values()].every((n) => n === 1)).toBe(true);
      feed.splice(0, feed.length, ...feedAfter.sort((x: any, y: any) => x._id - y._id));

      // a client reading the feed from the start sees every acked change, each once
      const reader = await connectClient(url);
      await emitAck(reader, 'sync:join', { userId: 'reader' });
      const seen: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await emitAck(reader, 'sync:get_changes', { cursor, limit: 1000, collection: 'crash' });
        expect(page.success).toBe(true);
        page.changes.forEach((c: any) => seen.push(c.changeId));
        cursor = page.cursor;
        if (!page.hasMore) break;
      }
      reader.close();
      expect(new Set(seen).size).toBe(seen.length);
      const seenSet = new Set(seen);
      expect([...acked.keys()].filter((id) => !seenSet.has(id))).toEqual([]);
      expect(seen).toEqual(feed.map((e) => e.changeId));
    } finally {
      await db.client.close();
    }
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    // a clean stop stops the database child too and removes the record
    expect(alive(rec.child)).toBe(false);
    expect(readPidRecord(path.join(dataDir, 'ferretdb'))).toBeUndefined();
  }, 400_000);

  it('stops a database process left running by a dead server before starting its own', async () => {
    const dataDir = freshDataDir();
    const dir = path.join(dataDir, 'ferretdb');
    fs.mkdirSync(dir);
    // a FerretDB on the same files, owned (says the record) by a process that has exited
    const gone = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => gone.once('exit', r));
    const fport = await freePort();
    const orphan = spawn(
      path.join(root, '.tools/bin/ferretdb'),
      [
        '--handler=sqlite',
        `--sqlite-url=file:${dir}/`,
        `--state-dir=${dir}`,
        `--listen-addr=127.0.0.1:${fport}`,
        '--telemetry=disable',
        '--debug-addr=-',
        '--log-level=error',
      ],
      {
        stdio: 'ignore',
        detached: true,
      },
    );
    fs.writeFileSync(path.join(dir, 'ferretdb.pid'), JSON.stringify({ owner: gone.pid, child: orphan.pid, port: fport, startedAt: new Date().toISOString() }));
    await waitFor(async () => (await fetch(`http://127.0.0.1:${fport}`).catch((e) => e))?.cause?.code !== 'ECONNREFUSED', 20_000, 'orphan listening');
    expect(alive(orphan.pid!)).toBe(true);
    const orphanExit = new Promise((r) => orphan.once('exit', (code, signal) => r(signal ?? code)));

    const port = await freePort();
    const server = startServer(port, dataDir);
    servers.push(server);
    await ready(`http://127.0.0.1:${port}`, server);
    expect([0, 'SIGTERM']).toContain(await orphanExit); // asked to stop, gracefully (FerretDB exits 0 on SIGTERM)
    const rec = readPidRecord(dir)!;
    expect(rec.owner).toBe(server.proc.pid);
    expect(rec.child).not.toBe(orphan.pid);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 120_000);

  it('refuses to start on a data folder another live server is using', async () => {
    const dataDir = freshDataDir();
    const port = await freePort();
    const first = startServer(port, dataDir);
    servers.push(first);
    await ready(`http://127.0.0.1:${port}`, first);
    const second = startServer(await freePort(), dataDir);
    servers.push(second);
    expect(await second.exited).toBe(1);
    expect(second.output.join('')).toMatch(/in use by another server \(process \d+\)/);
    // the first one is untouched
    expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  }, 120_000);
});
