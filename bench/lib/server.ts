/* The server under test, alone in its own process: `node src/main.ts` compiled on the fly with SWC
 * (bench/lib/register.js, the same transform the test suites use) or the built dist/src/main.js
 * (--server=dist), with a raised file-descriptor limit, a free port, and the harness's probe. */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from '../../src/database/embedded-database';

export const ROOT = path.resolve(__dirname, '..', '..');

/** bash prefix raising the open-files limit as far as the hard limit allows. */
export const ULIMIT = 'ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

export interface ServerStartOptions {
  mongoUri: string;
  env?: Record<string, string>;
  /** Where the server's stdout/stderr go. */
  logFile: string;
  /** Run dist/src/main.js instead of compiling src/ on the fly. */
  useDist?: boolean;
  /** The checkout whose server runs (default: this one); e.g. another worktree for an A/B comparison. */
  root?: string;
  maxOldSpaceMb?: number;
}

export interface ServerMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export class ServerProcess {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private exited = false;
  private stopping = false;
  /** Set when the process died without being asked to stop (a crash). */
  crash?: { code: number | null; signal: string | null; at: number };

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly port: number,
    readonly startupMs: number,
    readonly logFile: string,
  ) {
    child.on('message', (m: any) => {
      if (!m || m.__benchProbe !== true) return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m.result);
    });
    child.once('exit', (code, signal) => {
      this.exited = true;
      if (!this.stopping) this.crash = { code, signal, at: Date.now() };
      for (const p of this.pending.values()) p.reject(new Error('server exited'));
      this.pending.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async start(o: ServerStartOptions): Promise<ServerProcess> {
    const port = await freePort();
    const entry = o.useDist ? 'dist/src/main.js' : 'src/main.ts';
    const root = o.root ?? ROOT;
    if (o.useDist && !fs.existsSync(path.join(root, entry))) throw new Error(`${entry} is missing: run npm run build first`);
    const nodeArgs = [
      '--expose-gc',
      `--max-old-space-size=${o.maxOldSpaceMb ?? 8192}`,
      '-r',
      './bench/lib/server-probe.js',
      ...(o.useDist ? [] : ['-r', './bench/lib/register.js']),
      entry,
    ];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(port),
      MONGODB_URI: o.mongoUri,
      AUTH_MODE: 'dev',
      RATE_LIMIT_DISABLED: 'true',
      LOG_LEVEL: 'warn',
      LOG_PRETTY: 'false',
      MAX_CONNECTIONS: '1000000',
      MAX_CONNECTIONS_PER_USER: '1000000',
      MAX_CONNECTIONS_PER_IP: '10000000',
      HTTP_RATE_LIMIT_MAX: '100000000',
      ...o.env,
    };
    delete env.NODE_OPTIONS;
    const log = fs.openSync(o.logFile, 'a');
    const quoted = nodeArgs.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const t0 = performance.now();
    const child = spawn('bash', ['-c', `${ULIMIT}; exec node ${quoted}`], { cwd: root, env, stdio: ['ignore', log, log, 'ipc'] });
    fs.closeSync(log);
    const url = `http://127.0.0.1:${port}`;
    let exitCode: number | null = null;
    child.once('exit', (code) => (exitCode = code ?? -1));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exitCode !== null) throw new Error(`the server exited during start-up (code ${exitCode}); see ${o.logFile}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`the server did not answer /ready within 60 s; see ${o.logFile}`);
      }
      try {
        const r = await fetch(`${url}/ready`);
        if (r.ok) break;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return new ServerProcess(child, url, port, Math.round(performance.now() - t0), o.logFile);
  }

  private call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error('server exited'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`server probe ${cmd} timed out`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.child.send({ __benchProbe: true, id, cmd, args });
    });
  }

  /** process.memoryUsage() of the server, after a full GC when `gc`. */
  memory(gc = true): Promise<ServerMemory> {
    return this.call('memory', { gc });
  }

  /** Writes a V8 heap snapshot of the server (after a GC). */
  heapSnapshot(file: string): Promise<void> {
    return this.call('heapSnapshot', { file }, 300_000);
  }

  profileStart(): Promise<void> {
    return this.call('profileStart', { samplingIntervalUs: 500 });
  }

  profileStop(file: string): Promise<void> {
    return this.call('profileStop', { file }, 120_000);
  }

  /** The first error lines of the server's log (for a crash report). */
  logExcerpt(maxChars = 600): string {
    try {
      const text = fs.readFileSync(this.logFile, 'utf8');
      const lines = text.split('\n').filter((l) => l.trim() && !l.includes('"level":40'));
      const i = lines.findIndex((l) => /Error|error|"level":50|"level":60/.test(l));
      return (i >= 0 ? lines.slice(i, i + 4) : lines.slice(-4)).join(' | ').replace(/\s+/g, ' ').slice(0, maxChars);
    } catch {
      return '';
    }
  }

  /** GET /stats (the server's own view: connections, changes, memory without a forced GC). */
  async stats(): Promise<Record<string, any>> {
    const r = await fetch(`${this.url}/stats`);
    if (!r.ok) throw new Error(`/stats answered ${r.status}`);
    return (await r.json()) as Record<string, any>;
  }

  /** Graceful stop (SIGTERM: Nest's shutdown hooks), then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopping = true;
    if (this.exited) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      this.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.child.kill('SIGTERM');
    });
  }
}
