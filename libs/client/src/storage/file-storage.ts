import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { StateImage, StorageWrite, StoredState, SyncStorage } from './storage.types';

export interface FileStorageOptions {
  /** Rewrite the snapshot once the log is larger than this many bytes (default 4 MiB). */
  compactAfterBytes?: number;
  /** fsync every write (default true). Without it a write survives the process being killed, not a power cut. */
  fsync?: boolean;
}

const SNAPSHOT = 'state.json';
const LOG = 'changes.log';
const LOCK = 'LOCK';

export class StorageLockedError extends Error {
  constructor(dir: string, pid: number) {
    super(`sync storage ${dir} is in use by process ${pid}`);
    this.name = 'StorageLockedError';
  }
}

/**
 * Durable storage for Node: a directory with a snapshot (`state.json`) and an append-only log
 * (`changes.log`, one JSON write per line).
 *
 * - A write is appended to the log and fsynced before `write()` resolves; writes that arrive while
 *   one is being synced are committed together (group commit).
 * - A process killed at any moment leaves at most one torn last line, which was never reported as
 *   written: it is cut off when the storage is opened again.
 * - When the log grows, the whole state is written to `state.json.tmp`, fsynced, renamed over
 *   `state.json` (atomic), and the log is emptied. Replaying a log over a snapshot that already
 *   contains it is harmless (every log entry sets or deletes keys), so a crash between the rename
 *   and the truncation loses nothing.
 * - A LOCK file (with the owner's pid) keeps two processes from using one directory at once.
 */
export class FileStorage implements SyncStorage {
  readonly kind = 'file';
  readonly durable = true;
  readonly dir: string;
  private readonly compactAfterBytes: number;
  private readonly fsync: boolean;
  private image = new StateImage();
  private log?: fsp.FileHandle;
  private logBytes = 0;
  private queue: { line: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing?: Promise<void>;
  private closed = false;
  private locked = false;

  constructor(dir: string, opts: FileStorageOptions = {}) {
    this.dir = path.resolve(dir);
    this.compactAfterBytes = opts.compactAfterBytes ?? 4 * 1024 * 1024;
    this.fsync = opts.fsync ?? true;
  }

  async load(): Promise<StoredState> {
    if (this.log) return JSON.parse(JSON.stringify(this.image.toState())) as StoredState;
    this.closed = false;
    await fsp.mkdir(this.dir, { recursive: true });
    await this.lock();
    this.image = new StateImage();
    await fsp.rm(path.join(this.dir, SNAPSHOT + '.tmp'), { force: true });
    try {
      const snap = JSON.parse(await fsp.readFile(path.join(this.dir, SNAPSHOT), 'utf8')) as StoredState;
      this.image = StateImage.from(snap);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`sync storage ${this.dir}: unreadable ${SNAPSHOT}: ${(e as Error).message}`, { cause: e });
    }
    const logPath = path.join(this.dir, LOG);
    let buf: Buffer;
    try {
      buf = await fsp.readFile(logPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      buf = Buffer.alloc(0);
    }
    // replay complete lines; a torn or unparsable tail is cut off (it was never acknowledged)
    let good = 0;
    let start = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      const line = buf.subarray(start, nl).toString('utf8');
      let w: StorageWrite;
      try {
        w = JSON.parse(line) as StorageWrite;
      } catch {
        break;
      }
      this.image.apply(w);
      start = nl + 1;
      good = start;
    }
    this.log = await fsp.open(logPath, fsc.O_RDWR | fsc.O_CREAT);
    if (good < buf.length) {
      await this.log.truncate(good);
      await this.log.sync();
    }
    this.logBytes = good;
    await this.syncDir();
    return this.image.toState();
  }

  write(w: StorageWrite): Promise<void> {
    if (this.closed || !this.log) return Promise.reject(new Error(`sync storage ${this.dir} is not open`));
    const line = JSON.stringify(w) + '\n';
    this.image.apply(JSON.parse(line) as StorageWrite);
    return new Promise((resolve, reject) => {
      this.queue.push({ line, resolve, reject });
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.queue.length);
        const buf = Buffer.from(batch.map((b) => b.line).join(''), 'utf8');
        try {
          await this.log!.write(buf, 0, buf.length, this.logBytes);
          if (this.fsync) await this.log!.datasync();
          this.logBytes += buf.length;
          for (const b of batch) b.resolve();
        } catch (e) {
          for (const b of batch) b.reject(e);
          continue;
        }
        if (this.logBytes > this.compactAfterBytes) await this.compact().catch(() => undefined);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Writes the snapshot atomically and empties the log. */
  private async compact(): Promise<void> {
    const tmp = path.join(this.dir, SNAPSHOT + '.tmp');
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(this.image.toState()));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path.join(this.dir, SNAPSHOT));
    await this.syncDir();
    await this.log!.truncate(0);
    await this.log!.sync();
    this.logBytes = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.log?.close();
    this.log = undefined;
    if (this.locked) await fsp.rm(path.join(this.dir, LOCK), { force: true });
    this.locked = false;
  }

  private async lock(): Promise<void> {
    const file = path.join(this.dir, LOCK);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await fsp.open(file, 'wx');
        await fh.writeFile(String(process.pid));
        await fh.close();
        this.locked = true;
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim());
        if (pid && pid !== process.pid && isAlive(pid)) throw new StorageLockedError(this.dir, pid);
        await fsp.rm(file, { force: true }); // stale lock of a dead process
      }
    }
    throw new Error(`could not lock sync storage ${this.dir}`);
  }

  private async syncDir(): Promise<void> {
    if (!this.fsync) return;
    try {
      const d = await fsp.open(this.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch {
      // some platforms cannot fsync a directory
    }
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
