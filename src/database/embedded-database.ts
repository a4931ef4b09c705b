import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export interface EmbeddedDatabaseLogger {
  log(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  debug?(msg: string): void;
}

export interface EmbeddedDatabaseOptions {
  /** Folder the SQLite files live in (created if missing). */
  dataDir: string;
  /** FerretDB binary; defaults to <project>/.tools/bin/ferretdb. */
  binary?: string;
  /** Fixed port; by default a free loopback port is chosen once and kept across restarts. */
  port?: number;
  logger?: EmbeddedDatabaseLogger;
  /** Restart the child when it dies unexpectedly (default true). */
  autoRestart?: boolean;
  startTimeoutMs?: number;
}

export const FERRETDB_VERSION = 'v1.24.2';

/** Walks up from this file to the folder holding package.json (works from src/ and dist/src/). */
export function projectRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'scripts', 'setup.sh'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

export class EmbeddedDatabaseMissingError extends Error {
  constructor(binary: string) {
    super(
      `The embedded database (FerretDB ${FERRETDB_VERSION}) is not installed at ${binary}.\n` +
        `  Do one of:\n` +
        `    - run 'bash scripts/setup.sh' (needs Go 1.22+: https://go.dev/doc/install) and start again;\n` +
        `    - set MONGODB_URI to a MongoDB 5.0+ server you run (e.g. mongodb://localhost:27017/realm-sync);\n` +
        `    - or run everything with Docker: 'docker compose up'.`,
    );
    this.name = 'EmbeddedDatabaseMissingError';
  }
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean) => {
      s.removeAllListeners();
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Written next to the data: which server process owns the database child (see reclaimDataDir). */
export const PIDFILE = 'ferretdb.pid';

export interface PidRecord {
  /** The server process that started the child. */
  owner: number;
  /** The FerretDB child. */
  child: number;
  port: number;
  startedAt: string;
}

export class DataDirInUseError extends Error {
  constructor(dataDir: string, owner: number) {
    super(`The data folder ${dataDir} is in use by another server (process ${owner}). Stop it, or give this one its own DATA_DIR.`);
    this.name = 'DataDirInUseError';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive and not a zombie (a zombie's command line is empty). */
function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  const cmd = commandLine(pid);
  return cmd === undefined || cmd.length > 0;
}

/** The command line of a process (Linux /proc), or undefined where that cannot be read. */
function commandLine(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

export function readPidRecord(dataDir: string): PidRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(dataDir, PIDFILE), 'utf8')) as Partial<PidRecord>;
    if (Number.isInteger(r.owner) && Number.isInteger(r.child) && Number.isInteger(r.port)) return r as PidRecord;
  } catch {
    /* missing or unreadable: nothing to reclaim */
  }
  return undefined;
}

/**
 * FerretDB (a MongoDB-wire server) on its SQLite backend, run as a managed child process on a
 * loopback port. Emits 'up' and 'down'; restarts the child with backoff when it dies, until stop().
 */
export class EmbeddedDatabase extends EventEmitter {
  private child?: ChildProcess;
  private port?: number;
  private stopping = false;
  private running = false;
  private restartTimer?: NodeJS.Timeout;
  private restarts = 0;
  readonly binary: string;

  constructor(private readonly opts: EmbeddedDatabaseOptions) {
    super();
    this.binary = opts.binary ?? path.join(projectRoot(), '.tools', 'bin', 'ferretdb');
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** mongodb:// URI of the server (without database name). */
  get uri(): string {
    if (this.port === undefined) throw new Error('embedded database not started');
    return `mongodb://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<string> {
    if (!fs.existsSync(this.binary)) throw new EmbeddedDatabaseMissingError(this.binary);
    this.stopping = false;
    fs.mkdirSync(this.opts.dataDir, { recursive: true });
    await this.reclaimDataDir();
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = this.opts.port ?? this.port ?? (await freePort());
      try {
        await this.spawnOnce();
        return this.uri;
      } catch (e) {
        lastError = e;
        if (this.opts.port === undefined) this.port = undefined; // port taken: pick another one
      }
    }
    throw lastError;
  }

  /**
   * A server killed without a chance to stop its database (SIGKILL, OOM killer, power cut of the
   * parent only) leaves the FerretDB child running on the same SQLite files. Two FerretDB processes
   * must never share them: the orphan is stopped here (gracefully, then SIGKILL). If the server that
   * started it is still alive, the folder is in use and start-up fails with a clear message.
   */
  private async reclaimDataDir(): Promise<void> {
    const dataDir = path.resolve(this.opts.dataDir);
    const rec = readPidRecord(dataDir);
    if (!rec || rec.owner === process.pid) return;
    const cmd = commandLine(rec.child);
    const isOurs = cmd !== undefined && cmd.includes('ferretdb') && cmd.includes(dataDir);
    if (!isOurs || !isRunning(rec.child)) return;
    if (isRunning(rec.owner)) throw new DataDirInUseError(dataDir, rec.owner);
    this.opts.logger?.warn(`[ferretdb] stopping the database process ${rec.child} left running by server process ${rec.owner}, which is gone`);
    try {
      process.kill(rec.child, 'SIGTERM');
    } catch {
      return;
    }
    let deadline = Date.now() + 5000;
    while (isRunning(rec.child) && Date.now() < deadline) await sleep(50);
    if (isRunning(rec.child)) {
      try {
        process.kill(rec.child, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
      deadline = Date.now() + 5000;
      while (isRunning(rec.child) && Date.now() < deadline) await sleep(20);
    }
  }

  private writePidRecord(child: number): void {
    const rec: PidRecord = { owner: process.pid, child, port: this.port!, startedAt: new Date().toISOString() };
    try {
      fs.writeFileSync(path.join(path.resolve(this.opts.dataDir), PIDFILE), JSON.stringify(rec) + '\n');
    } catch (e) {
      this.opts.logger?.warn(`[ferretdb] could not write ${PIDFILE}: ${(e as Error).message}`);
    }
  }

  private removePidRecord(): void {
    const file = path.join(path.resolve(this.opts.dataDir), PIDFILE);
    if (readPidRecord(path.resolve(this.opts.dataDir))?.owner === process.pid) fs.rmSync(file, { force: true });
  }

  private spawnOnce(): Promise<void> {
    const log = this.opts.logger;
    const dataDir = path.resolve(this.opts.dataDir);
    const args = [
      '--handler=sqlite',
      `--sqlite-url=file:${dataDir}${path.sep}`,
      `--state-dir=${dataDir}`,
      `--listen-addr=127.0.0.1:${this.port}`,
      '--telemetry=disable',
      '--debug-addr=-',
      '--log-level=warn',
      '--log-format=json',
      '--no-log-uuid',
    ];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    if (child.pid !== undefined) this.writePidRecord(child.pid);
    // process.exit() (a failed start-up, say) skips Nest's shutdown: the child must not outlive us
    const onExit = () => child.kill('SIGTERM');
    process.once('exit', onExit);
    child.once('exit', () => process.removeListener('exit', onExit));
    const forward = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        let level = 'INFO';
        let msg = line;
        try {
          const j = JSON.parse(line) as { level?: string; msg?: string };
          level = (j.level ?? level).toUpperCase();
          msg = j.msg ?? line;
        } catch {
          /* plain text line */
        }
        const text = `[ferretdb] ${msg}`;
        // our own readiness probes open and drop connections: FerretDB logs each one; and it dumps
        // the whole response of every failed command (an expected "ns not found", say) as a warning
        if (/use of closed network connection|connection reset by peer|EOF|^Connection stopped|^(Response|Request) (header|message)/.test(msg)) {
          log?.debug?.(text);
          continue;
        }
        if (level.startsWith('ERR') || level.startsWith('DPANIC') || level.startsWith('PANIC') || level.startsWith('FATAL')) log?.error(text);
        else if (level.startsWith('WARN')) log?.warn(text);
        else log?.debug?.(text);
      }
    };
    child.stdout?.on('data', forward);
    child.stderr?.on('data', forward);

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      child.once('error', (err) => {
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      child.once('exit', (code, signal) => {
        const wasRunning = this.running;
        this.running = false;
        if (this.child === child) this.child = undefined;
        if (!settled) {
          settled = true;
          reject(new Error(`FerretDB exited during start-up (code ${code}, signal ${signal})`));
          return;
        }
        if (wasRunning && !this.stopping) this.emit('down', { code, signal });
        if (!this.stopping && this.opts.autoRestart !== false) this.scheduleRestart();
      });
      const deadline = Date.now() + (this.opts.startTimeoutMs ?? 20_000);
      void (async () => {
        while (!settled && Date.now() < deadline) {
          if (await canConnect(this.port!)) {
            if (settled) return;
            settled = true;
            this.running = true;
            this.restarts = 0;
            this.emit('up', { port: this.port });
            resolve();
            return;
          }
          await sleep(50);
        }
        if (!settled) {
          settled = true;
          child.kill('SIGKILL');
          reject(new Error(`FerretDB did not accept connections on port ${this.port} within the start timeout`));
        }
      })();
    });
  }

  private scheduleRestart(): void {
    const delay = Math.min(5000, 200 * 2 ** this.restarts++);
    this.opts.logger?.warn(`[ferretdb] the database process died; restarting in ${delay} ms`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.spawnOnce().catch((e) => {
        this.opts.logger?.error(`[ferretdb] restart failed: ${(e as Error).message}`);
        if (!this.stopping) this.scheduleRestart();
      });
    }, delay);
    this.restartTimer.unref();
  }

  /** Kills the child without stopping supervision (for tests of the not-ready path). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child?.kill(signal);
  }

  /** Stops supervision and the child, gracefully then forcefully. */
  async stop(timeoutMs = 5000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) {
      this.removePidRecord();
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
    this.removePidRecord();
  }

  /** Starts the child again after stop() (same port, so connected drivers reconnect). */
  async restart(): Promise<void> {
    this.stopping = false;
    if (this.running) return;
    await this.spawnOnce();
  }
}
