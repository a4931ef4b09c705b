/* The benchmark harness: `npm run bench` (quick, about a minute), `npm run bench -- --full` (the figures
 * of BENCHMARKS.md), `--only=write,fanout`, size knobs: see options.ts or `--help`.
 *
 * Layout: this process coordinates. It starts the embedded database (FerretDB/SQLite, in a temporary
 * folder) unless --mongodb-uri is given, starts the server alone in its own process for each scenario
 * (fresh database each time), and drives load-generator processes (bench/worker.ts) over IPC. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EmbeddedDatabase, FERRETDB_VERSION } from '../src/database/embedded-database';
import { Ctx, makeContext, ScenarioResult } from './lib/context';
import { formatProfileSummary } from './lib/cpuprofile';
import { parseOptions, ScenarioName, SCENARIOS } from './lib/options';
import { WorkerPool } from './lib/pool';
import { WireSpy } from './lib/wire-spy';
import { formatStdout, RunReport, writeReport } from './lib/report';
import { ROOT } from './lib/server';
import { runCatchup } from './scenarios/catchup';
import { runConnections } from './scenarios/connections';
import { runDbLimit } from './scenarios/dblimit';
import { runFanout } from './scenarios/fanout';
import { runSingles } from './scenarios/singles';
import { runWrite } from './scenarios/write';

const RUNNERS: Record<ScenarioName, (ctx: Ctx) => Promise<Omit<ScenarioResult, 'elapsedS'>>> = {
  write: runWrite,
  singles: runSingles,
  dblimit: runDbLimit,
  fanout: runFanout,
  connections: runConnections,
  catchup: runCatchup,
};

const TITLES: Record<ScenarioName, string> = {
  write: 'Write throughput (closed loop, acked)',
  singles: 'Single changes: low-load latency and many concurrent clients',
  dblimit: 'Database limit (MongoDB driver, no server)',
  fanout: 'Fan-out latency (writer emit → subscriber receipt)',
  connections: 'Idle connections: memory per socket',
  catchup: 'Catch-up and bootstrap',
};

function git(args: string[], cwd = ROOT): string {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

const log = (msg: string) => process.stderr.write(`${msg}\n`);

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), path.join(ROOT, 'bench', 'results'));
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const startedAt = new Date();
  const date = startedAt.toISOString().slice(0, 10);
  const runId = `${date}-${opts.mode}`;
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sync-bench-'));
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  let aborted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      aborted = true;
      log(`\n${sig}: stopping the server, the workers and the database...`);
      void cleanup().finally(() => process.exit(130));
    });

  log(`sync server benchmark: ${opts.mode} mode, scenarios ${opts.only.join(', ')}; temporary files in ${tmpDir}`);
  const loadAverageAtStart = os.loadavg().map((l) => Math.round(l * 100) / 100);
  if (loadAverageAtStart[0] > os.cpus().length * 0.5)
    log(`warning: the machine is busy (load average ${loadAverageAtStart.join(' ')}): figures will be low and noisy`);

  // the database
  let dbBaseUri: string;
  let dbLabel: string;
  let dbPid: number | undefined;
  if (opts.mongoUri) {
    dbBaseUri = opts.mongoUri.replace(/\/[^/?]*(\?.*)?$/, '');
    dbLabel = `external MongoDB-wire server (${dbBaseUri.replace(/\/\/[^@/]*@/, '//***@')})`;
  } else {
    const dbLog = path.join(tmpDir, 'ferretdb.log');
    const toFile = (m: string) => fs.appendFileSync(dbLog, m + '\n');
    const db = new EmbeddedDatabase({ dataDir: path.join(tmpDir, 'db'), autoRestart: false, logger: { log: toFile, warn: toFile, error: toFile } });
    dbBaseUri = await db.start();
    dbPid = db.pid;
    cleanups.push(() => db.stop());
    dbLabel = `FerretDB ${FERRETDB_VERSION} (SQLite backend), embedded, data in a temporary folder`;
    log(`database: ${dbLabel}, pid ${dbPid}, ${dbBaseUri}`);
  }

  let spy: WireSpy | undefined;
  if (opts.dbSpy) {
    const u = new URL(dbBaseUri.replace(/^mongodb(\+srv)?:/, 'http:'));
    spy = new WireSpy(u.hostname, Number(u.port || 27017));
    await spy.start();
    cleanups.push(() => spy!.stop());
    log(`database spy: the server reaches the database through 127.0.0.1:${spy.port} (timings include one extra hop)`);
  }

  const pool = await WorkerPool.start(opts.workers + 1);
  cleanups.push(() => pool.stop());
  log(`load generator: ${opts.workers} client processes + 1 writer process (pids ${pool.pids.join(', ')})`);

  const ctx = makeContext({ opts, pool, dbBaseUri, dbLabel, dbPid, tmpDir, spy, runId, log, serverLogDir: tmpDir });
  const results: ScenarioResult[] = [];
  let failed = false;
  for (const name of SCENARIOS) {
    if (!opts.only.includes(name)) continue;
    log(`\n[${name}] ${TITLES[name]}`);
    const t0 = Date.now();
    ctx.servers = [];
    const crashes = () =>
      ctx.servers
        .filter((s) => s.crash)
        .map((s) => `the server process died during the scenario (exit code ${s.crash!.code}, signal ${s.crash!.signal}); its log: ${s.logExcerpt()}`);
    try {
      const r = await RUNNERS[name](ctx);
      const died = crashes();
      if (died.length) failed = true;
      results.push({
        ...r,
        notes: [...died, ...r.notes],
        elapsedS: Math.round((Date.now() - t0) / 100) / 10,
        ...(died.length ? { error: died[0].slice(0, 200) } : {}),
      });
      for (const [phase, p] of Object.entries(r.phases)) {
        if (p.profile) log(`  profile of ${phase} (${p.profile.file}): ${formatProfileSummary(p.profile)}`);
        if (p.db)
          log(
            `  database commands during ${phase} (count, total ms, mean ms, max ms):\n${p.db.map((c) => `    ${String(c.count).padStart(7)} ${String(c.totalMs).padStart(8)} ${String(c.meanMs).padStart(8)} ${String(c.maxMs).padStart(8)}  ${c.command}`).join('\n')}`,
          );
      }
    } catch (e) {
      failed = true;
      log(`  FAILED: ${(e as Error).stack ?? e}`);
      const died = crashes();
      for (const d of died) log(`  ${d}`);
      results.push({
        name,
        title: TITLES[name],
        params: {},
        figures: {},
        rows: [],
        notes: died,
        phases: {},
        elapsedS: Math.round((Date.now() - t0) / 100) / 10,
        error: String((e as Error).message ?? e),
      });
    }
  }
  await cleanup();
  if (opts.keepData || failed) log(`\nkept ${tmpDir} (database files and server logs)`);
  else fs.rmSync(tmpDir, { recursive: true, force: true });

  if (aborted) return 130;
  const cmdline = ['npm run bench --', ...process.argv.slice(2).filter((a) => a !== '--')].join(' ').replace(/ --$/, '');
  const report: RunReport = {
    tool: 'sync-server-bench',
    schemaVersion: 1,
    mode: opts.mode,
    date,
    startedAt: startedAt.toISOString(),
    durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
    command: cmdline,
    machine: {
      cpus: os.cpus().length,
      cpuModel: (os.cpus()[0]?.model ?? 'unknown').replace(/\s+/g, ' ').trim(),
      memoryGB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      loadAverageAtStart,
      loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
    },
    server: {
      commit: git(['rev-parse', '--short', 'HEAD'], opts.serverRoot) || 'unknown',
      dirty: git(['status', '--porcelain', '--', 'src', 'libs'], opts.serverRoot) !== '',
      entry: opts.serverEntry === 'dist' ? 'node dist/src/main.js' : 'node src/main.ts (SWC on the fly)',
      env: { NODE_ENV: 'development', AUTH_MODE: 'dev', RATE_LIMIT_DISABLED: 'true', LOG_LEVEL: 'warn', ...opts.serverEnv },
    },
    database: { kind: dbLabel, uri: dbBaseUri.replace(/\/\/[^@/]*@/, '//***@') },
    generator: { workers: opts.workers + 1, client: 'minimal Socket.IO v4 client over ws (bench/lib/lite-client.ts)' },
    options: opts as unknown as Record<string, unknown>,
    scenarios: results,
    files: { json: '', markdown: '' },
  };
  const written = writeReport(report, opts.outDir, runId);
  console.log(formatStdout(report));
  console.log(
    `\nwrote ${[written.files.json, written.files.markdown, written.files.chart]
      .filter(Boolean)
      .map((f) => path.relative(process.cwd(), f!))
      .join(', ')}`,
  );
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
