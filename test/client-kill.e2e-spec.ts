/* A client process (the example in script mode, FileStorage) killed with SIGKILL while it has unsent
 * changes delivers every change it had reported as made once it is started again. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { MongoClient } from 'mongodb';
import { emitAck, joinedClient, startTestApp, TestApp } from './support/app';

const ROOT = path.join(__dirname, '..');
const EXAMPLE = path.join(ROOT, 'libs', 'client', 'examples', 'example.ts');

interface Line {
  event: string;
  [k: string]: unknown;
}

/** Runs the example in script mode; `onLine` may return true to SIGKILL the process there and then. */
function runExample(
  args: string[],
  onLine: (l: Line) => boolean | void = () => undefined,
): Promise<{ lines: Line[]; signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    // one process (node with the tsx loader), so that SIGKILL hits the client itself, not a wrapper
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', EXAMPLE, ...args], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'test' },
    });
    const lines: Line[] = [];
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    readline.createInterface({ input: child.stdout }).on('line', (raw) => {
      let l: Line;
      try {
        l = JSON.parse(raw) as Line;
      } catch {
        return;
      }
      lines.push(l);
      if (onLine(l) === true) child.kill('SIGKILL');
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`example timed out; stderr: ${stderr}; lines: ${JSON.stringify(lines.slice(-5))}`));
    }, 90_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // let readline drain what is left
      setImmediate(() => resolve({ lines, signal, code, stderr }));
    });
    child.on('error', reject);
  });
}

/** A local port nobody listens on (the client sees "connection refused": offline). */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('client killed with SIGKILL', () => {
  let t: TestApp;
  let mongo: MongoClient;
  let dir: string;
  beforeAll(async () => {
    t = await startTestApp({ AUTH_MODE: 'dev' }, 'client_kill');
    mongo = await MongoClient.connect(t.mongoUri, { retryWrites: false });
  });
  afterAll(async () => {
    await mongo?.close();
    await t?.close();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'client-kill-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function serverIds(prefix: string): Promise<Set<string>> {
    const docs = await mongo
      .db()
      .collection<{ _id: string }>('tasks')
      .find({ _id: { $regex: `^${prefix}` } })
      .project({ _id: 1 })
      .toArray();
    return new Set(docs.map((d) => d._id));
  }

  it('offline: changes stored before the kill are delivered after a restart', async () => {
    const offline = `http://127.0.0.1:${await deadPort()}`;
    let stored = 0;
    const first = await runExample(
      ['killer-a', '--script', '--data', dir, '--server', offline, '--add', '500', '--linger', '-1'],
      (l) => l.event === 'stored' && ++stored === 60,
    );
    expect(first.signal).toBe('SIGKILL');
    const storedIds = first.lines.filter((l) => l.event === 'stored').map((l) => l.id as string);
    expect(storedIds.length).toBeGreaterThanOrEqual(60);

    const second = await runExample(['killer-a', '--script', '--data', dir, '--server', t.url, '--add', '0', '--linger', '0']);
    expect(second.code).toBe(0);
    const started = second.lines.find((l) => l.event === 'started')!;
    expect(started.pending as number).toBeGreaterThanOrEqual(storedIds.length);
    expect(second.lines.find((l) => l.event === 'synced')).toMatchObject({ pending: 0 });
    const onServer = await serverIds('killer-a-');
    for (const id of storedIds) expect(onServer).toContain(id);
  });

  it('online: killed mid-flight (batches in the air), the restart delivers the rest, each change once', async () => {
    let stored = 0;
    const first = await runExample(
      ['killer-b', '--script', '--data', dir, '--server', t.url, '--add', '400', '--linger', '-1'],
      (l) => l.event === 'stored' && ++stored === 150,
    );
    expect(first.signal).toBe('SIGKILL');
    const storedIds = first.lines.filter((l) => l.event === 'stored').map((l) => l.id as string);

    const second = await runExample(['killer-b', '--script', '--data', dir, '--server', t.url, '--add', '0', '--linger', '0']);
    expect(second.code).toBe(0);
    expect(second.lines.find((l) => l.event === 'synced')).toMatchObject({ pending: 0 });
    const onServer = await serverIds('killer-b-');
    for (const id of storedIds) expect(onServer).toContain(id);
    // the change feed holds each insert once (retries reuse the changeId; the server dedups)
    const socket = await joinedClient(t.url, 'auditor');
    try {
      const seen = new Map<string, number>();
      let cursor: string | undefined;
      for (;;) {
        const page = await emitAck(socket, 'sync:get_changes', { ...(cursor ? { cursor } : { since: 0 }), collection: 'tasks', limit: 5000 });
        expect(page.success).toBe(true);
        for (const c of page.changes as { documentId: string }[]) {
          if (c.documentId.startsWith('killer-b-')) seen.set(c.documentId, (seen.get(c.documentId) ?? 0) + 1);
        }
        cursor = page.cursor;
        if (!page.hasMore) break;
      }
      expect([...seen.values()].filter((n) => n > 1)).toEqual([]);
      expect(seen.size).toBe(onServer.size);
    } finally {
      socket.close();
    }
  });
});
