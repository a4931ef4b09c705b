/* The load-generator processes: each runs bench/worker.ts, with a raised open-files limit, and
 * answers commands over the IPC channel. Clients are spread over the workers so that the generator is
 * not the bottleneck (and so that no process holds more sockets than its file limit). */
import { ChildProcess, spawn } from 'node:child_process';
import { ROOT, ULIMIT } from './server';

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  cmd: string;
}

export class WorkerHandle {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private exited = false;
  readonly ready: Promise<void>;

  constructor(
    readonly index: number,
    readonly child: ChildProcess,
  ) {
    let resolveReady!: () => void;
    this.ready = new Promise((r) => (resolveReady = r));
    child.on('message', (m: any) => {
      if (m?.ready) return resolveReady();
      const p = this.pending.get(m?.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error) p.reject(new Error(`worker ${index} ${p.cmd}: ${m.error}`));
      else p.resolve(m.result);
    });
    child.once('exit', (code, signal) => {
      this.exited = true;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`worker ${index} exited (code ${code}, signal ${signal}) during ${p.cmd}`));
      }
      this.pending.clear();
    });
  }

  call<T = any>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 600_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`worker ${this.index} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${this.index} ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, cmd });
      this.child.send({ id, cmd, args });
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      this.child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.call('exit', {}, 5000).catch(() => undefined);
    });
  }
}

export class WorkerPool {
  private constructor(readonly workers: WorkerHandle[]) {}

  static async start(n: number): Promise<WorkerPool> {
    const workers: WorkerHandle[] = [];
    for (let i = 0; i < n; i++) {
      const env: NodeJS.ProcessEnv = { ...process.env, BENCH_WORKER_INDEX: String(i) };
      delete env.NODE_OPTIONS;
      const child = spawn('bash', ['-c', `${ULIMIT}; exec node --max-old-space-size=8192 -r tsx/cjs bench/worker.ts`], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      workers.push(new WorkerHandle(i, child));
    }
    const pool = new WorkerPool(workers);
    await Promise.race([
      Promise.all(workers.map((w) => w.ready)),
      new Promise((_, reject) => setTimeout(() => reject(new Error('load-generator workers did not start within 30 s')), 30_000)),
    ]).catch(async (e) => {
      await pool.stop();
      throw e;
    });
    return pool;
  }

  get size(): number {
    return this.workers.length;
  }

  get pids(): (number | undefined)[] {
    return this.workers.map((w) => w.child.pid);
  }

  worker(i: number): WorkerHandle {
    return this.workers[i % this.workers.length];
  }

  /** The workers that hold client sockets (all but the last one, which is kept for a lone writer). */
  get clients(): WorkerHandle[] {
    return this.workers.length > 1 ? this.workers.slice(0, -1) : this.workers;
  }

  /** The worker of the fan-out writer (its own process, so its timing is not disturbed by subscribers). */
  get writer(): WorkerHandle {
    return this.workers[this.workers.length - 1];
  }

  /** Calls each of `among` (default: the client workers); args may depend on the index (null skips it). */
  all<T = any>(
    cmd: string,
    args: Record<string, unknown> | ((i: number) => Record<string, unknown> | null),
    timeoutMs?: number,
    among: WorkerHandle[] = this.clients,
  ): Promise<T[]> {
    return Promise.all(
      among.map((w, i) => {
        const a = typeof args === 'function' ? args(i) : args;
        return a === null ? (Promise.resolve(undefined) as Promise<T>) : w.call<T>(cmd, a, timeoutMs);
      }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}

/** Splits `total` items over `parts` as evenly as possible. */
export function split(total: number, parts: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < parts; i++) out.push(Math.floor(total / parts) + (i < total % parts ? 1 : 0));
  return out;
}

/**
 * Connects `count` joined clients spread over the client workers (user ids `${prefix(worker)}0`, `…1`, …),
 * subscribed to `subscribe` when given; throws, with each worker's errors, unless all of them connected.
 * Resolves with the clients each worker holds.
 */
export async function connectSpread(
  pool: WorkerPool,
  a: {
    url: string;
    count: number;
    prefix: (worker: number) => string;
    concurrency: number;
    what: string;
    subscribe?: { collection: string; filter?: string } | null;
  },
): Promise<number[]> {
  const perWorker = split(a.count, pool.clients.length);
  const conn = await pool.all<{ connected: number; errors: Record<string, number> } | undefined>('connect', (i) =>
    perWorker[i] ? { url: a.url, count: perWorker[i], userPrefix: a.prefix(i), offset: 0, concurrency: a.concurrency, subscribe: a.subscribe } : null,
  );
  const answered = conn.filter((c) => c !== undefined);
  const connected = answered.reduce((s, c) => s + c.connected, 0);
  if (connected < a.count) throw new Error(`only ${connected}/${a.count} ${a.what} connected: ${JSON.stringify(answered.map((c) => c.errors))}`);
  return perWorker;
}
