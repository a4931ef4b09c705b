/* What every scenario gets from the runner: options, the worker pool, the database, a way to start a
 * fresh server, CPU accounting and (with --profile) a CPU profile of the server over the measured window. */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { BenchOptions, ScenarioName } from './options';
import type { WorkerPool } from './pool';
import { CpuMeter } from './proc';
import type { ProfileSummary } from './cpuprofile';
import { summarizeProfileFile } from './cpuprofile';
import { LiteSocket } from './lite-client';
import { EV, insertChange } from './protocol';
import { ROOT, ServerProcess } from './server';
import type { CommandStat, WireSpy } from './wire-spy';

export interface Row {
  metric: string;
  value: string | number;
  unit?: string;
}

export interface PhaseObservation {
  /** Percent of one core used by each process group during the phase. */
  cpu: Record<string, number>;
  profile?: ProfileSummary & { file: string };
  /** With --db-spy: the server's database commands during the phase, heaviest first. */
  db?: CommandStat[];
}

export interface ScenarioResult {
  name: ScenarioName;
  title: string;
  params: Record<string, unknown>;
  figures: Record<string, unknown>;
  rows: Row[];
  notes: string[];
  phases: Record<string, PhaseObservation>;
  elapsedS: number;
  error?: string;
}

export interface WriteFigures {
  batchChangesPerS: number;
  singleChangesPerS: number;
  database: string;
}

export interface Ctx {
  opts: BenchOptions;
  pool: WorkerPool;
  /** mongodb://host:port (no database name). */
  dbBaseUri: string;
  dbLabel: string;
  dbPid?: number;
  tmpDir: string;
  /** The timing proxy in front of the database (--db-spy). */
  spy?: WireSpy;
  /** Prefix of the files written next to the results (e.g. "2026-11-24-full"). */
  runId: string;
  /** Figures a later scenario compares against. */
  shared: { write?: WriteFigures };
  /** Servers started during the current scenario (the runner reports crashes). */
  servers: ServerProcess[];
  log(msg: string): void;
  startServer(database: string): Promise<ServerProcess>;
  /** Whether the server implements sync:subscribe (probed once). */
  subscriptions(server: ServerProcess): Promise<boolean>;
  /**
   * Runs `work`, measuring CPU (and profiling with --profile) over [startAt, endAt] when a window is
   * given (the workers' measured window), otherwise over the whole of `work`.
   */
  observe<T>(
    server: ServerProcess | undefined,
    phase: string,
    window: { startAt: number; endAt: number } | null,
    work: () => Promise<T>,
  ): Promise<{ value: T } & PhaseObservation>;
}

/**
 * One change from one client before any concurrent load: it creates the feed counter. (On a fresh
 * database, concurrent first writes race the counter's upsert — E11000 on _sync_counters — and the
 * server process then dies of an unhandled rejection; see BENCHMARKS.md. The harness measures steady
 * state, so it primes each fresh database.)
 */
async function primeServer(server: ServerProcess): Promise<void> {
  const s = await LiteSocket.connect(server.url);
  try {
    await s.emitWithAck(EV.join, { userId: 'bench-prime' }, 30_000);
    const ack = await s.emitWithAck(EV.change, insertChange('bench_prime', 'prime', { primed: true }), 30_000);
    if (!ack?.success) throw new Error(`the priming change failed: ${JSON.stringify(ack)}`);
  } finally {
    s.close();
  }
}

const sleepUntil = async (t: number) => {
  const d = t - Date.now();
  if (d > 0) await new Promise((r) => setTimeout(r, d));
};

export function makeContext(base: Omit<Ctx, 'startServer' | 'subscriptions' | 'observe' | 'shared' | 'servers'> & { serverLogDir: string }): Ctx {
  let subs: boolean | undefined;
  let serverCount = 0;
  const ctx: Ctx = {
    ...base,
    shared: {},
    servers: [],
    async startServer(database: string) {
      const logFile = path.join(base.serverLogDir, `server-${++serverCount}-${database}.log`);
      const dbUri = base.spy ? `mongodb://127.0.0.1:${base.spy.port}` : base.dbBaseUri;
      const s = await ServerProcess.start({
        mongoUri: `${dbUri}/${database}`,
        // one server on the database this harness started: what the server's own embedded database is
        // (SYNC_SINGLE_NODE's default there); against --mongodb-uri the leases stay in the database
        env: { SYNC_SINGLE_NODE: base.opts.mongoUri ? 'false' : 'true', ...base.opts.serverEnv },
        logFile,
        useDist: base.opts.serverEntry === 'dist',
        root: base.opts.serverRoot,
      });
      base.log(`  server pid ${s.pid} on ${s.url} (started in ${s.startupMs} ms, log ${logFile})`);
      ctx.servers.push(s);
      await primeServer(s);
      return s;
    },
    async subscriptions(server: ServerProcess) {
      if (subs !== undefined) return subs;
      const s = await LiteSocket.connect(server.url);
      try {
        await s.emitWithAck(EV.join, { userId: 'bench-probe' }, 10_000);
        const ack = await s.emitWithAck(EV.subscribe, { collection: 'bench_probe', bootstrap: false }, 3000).catch(() => null);
        subs = ack?.success === true;
      } finally {
        s.close();
      }
      base.log(
        subs
          ? '  the server implements sync:subscribe: sockets subscribe'
          : '  the server does not answer sync:subscribe yet: sockets only join (every joined socket gets every change)',
      );
      return subs;
    },
    async observe(server, phase, window, work) {
      const meter = new CpuMeter(() => ({
        server: [server?.pid],
        database: [base.dbPid],
        generator: [...base.pool.pids, process.pid],
      }));
      const profiling = base.opts.profile && server;
      const profileFile = path.join(base.opts.outDir, 'profiles', `${base.runId}-${phase}.cpuprofile`);
      const begin = async () => {
        meter.start();
        base.spy?.reset();
        if (profiling) await server!.profileStart().catch((e) => base.log(`  (profiler did not start: ${(e as Error).message})`));
      };
      let cpu: Record<string, number> = {};
      let db: CommandStat[] | undefined;
      let profiled = false;
      const end = async () => {
        cpu = meter.stop();
        db = base.spy?.snapshot();
        if (profiling) {
          await fs.mkdir(path.dirname(profileFile), { recursive: true });
          profiled = await server!.profileStop(profileFile).then(
            () => true,
            (e) => (base.log(`  (profiler did not stop: ${(e as Error).message})`), false),
          );
        }
      };
      let value: any;
      if (window) {
        const p = work();
        p.catch(() => undefined);
        await sleepUntil(window.startAt);
        await begin();
        await sleepUntil(window.endAt);
        await end();
        value = await p;
      } else {
        await begin();
        try {
          value = await work();
        } finally {
          await end();
        }
      }
      const out: { value: Awaited<ReturnType<typeof work>> } & PhaseObservation = { value, cpu, ...(db ? { db } : {}) };
      if (profiled) out.profile = { file: path.relative(ROOT, profileFile), ...summarizeProfileFile(profileFile, ROOT, 15) };
      return out;
    },
  };
  return ctx;
}

/** The observation part of observe()'s answer (for ScenarioResult.phases). */
export function phaseOf(o: PhaseObservation): PhaseObservation {
  return { cpu: o.cpu, ...(o.profile ? { profile: o.profile } : {}), ...(o.db ? { db: o.db } : {}) };
}

/** Rounds for display: 3 significant digits at most, integers stay integers. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) || Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return String(Number(n.toPrecision(3)));
}

export const kb = (bytes: number) => Math.round(bytes / 102.4) / 10;
export const mb = (bytes: number) => Math.round(bytes / (1024 * 102.4)) / 10;
