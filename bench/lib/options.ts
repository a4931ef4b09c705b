/* Command-line options of the benchmark: a preset (--quick, --full, --smoke) gives every knob a
 * value; any knob can be overridden (`--clients=16`, `--fanout-subscribers=10,100,1000`). */

export type Mode = 'quick' | 'full' | 'smoke' | 'custom';

export const SCENARIOS = ['write', 'singles', 'dblimit', 'fanout', 'connections', 'catchup'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchOptions {
  mode: Mode;
  only: ScenarioName[];
  /** Load-generator processes (clients are spread over them). */
  workers: number;
  /** Where the JSON, Markdown and SVG go. */
  outDir: string;
  /** V8 CPU profile of the server during each measured window (written next to the results). */
  profile: boolean;
  /** Route the server's database traffic through a timing proxy and report the commands (adds a hop). */
  dbSpy: boolean;
  /** Keep the temporary database folder (for inspection). */
  keepData: boolean;
  /** MONGODB_URI of an external MongoDB-wire server instead of the embedded FerretDB. */
  mongoUri?: string;
  /** Run src/main.ts compiled on the fly (default) or the built dist/src/main.js (`--server=dist`). */
  /** `--server-root=DIR`: run the server of another checkout (an A/B comparison with the same harness). */
  serverRoot?: string;
  serverEntry: 'src' | 'dist';
  /** Extra environment for the server process (`--server-env=KEY=VALUE,KEY2=VALUE`). */
  serverEnv: Record<string, string>;
  write: {
    clients: number;
    /** Measured window per mode (ms). */
    durationMs: number;
    warmupMs: number;
    batchSize: number;
    /** Clients for the single sync:change run (defaults to `clients`). */
    singleClients: number;
  };
  /** Single sync:change clients in a closed loop: one run per client count (e.g. 1 for latency, 50 for load). */
  singles: { clients: number[]; durationMs: number; warmupMs: number };
  dblimit: { durationMs: number; writers: number; batchSize: number };
  fanout: {
    /** Subscriber counts to sweep; the largest is the headline figure. */
    subscribers: number[];
    /** Writer rate, changes per second. */
    rate: number;
    /**
     * Most writer changes awaiting their ack (1 = the next change waits for the previous ack when
     * behind schedule). Concurrent single changes crash the current server on the embedded database
     * (see BENCHMARKS.md), so the default is 1.
     */
    maxInFlight: number;
    durationMs: number;
    warmupMs: number;
  };
  connections: { steps: number[]; settleMs: number; concurrency: number };
  /** Catch-up writes `changes` inserts of distinct documents; the bootstrap then loads those documents. */
  catchup: { changes: number; limit: number; fillClients: number; batchSize: number; fill: 'server' | 'direct'; ceiling: boolean };
}

const PRESETS: Record<
  Exclude<Mode, 'custom'>,
  Omit<BenchOptions, 'mode' | 'only' | 'outDir' | 'profile' | 'dbSpy' | 'keepData' | 'mongoUri' | 'serverEnv' | 'serverEntry' | 'serverRoot'>
> = {
  // a tiny configuration for the harness's own smoke test (bench/bench.spec.ts): one writer at a time
  smoke: {
    workers: 1,
    write: { clients: 1, durationMs: 700, warmupMs: 200, batchSize: 20, singleClients: 1 },
    singles: { clients: [1, 4], durationMs: 600, warmupMs: 100 },
    dblimit: { durationMs: 500, writers: 1, batchSize: 20 },
    fanout: { subscribers: [2, 4], rate: 5, maxInFlight: 1, durationMs: 600, warmupMs: 100 },
    connections: { steps: [10, 20], settleMs: 200, concurrency: 10 },
    catchup: { changes: 300, limit: 100, fillClients: 1, batchSize: 100, fill: 'server', ceiling: true },
  },
  quick: {
    workers: 2,
    write: { clients: 2, durationMs: 5000, warmupMs: 1000, batchSize: 100, singleClients: 2 },
    singles: { clients: [1, 50], durationMs: 5000, warmupMs: 1000 },
    dblimit: { durationMs: 2000, writers: 2, batchSize: 100 },
    fanout: { subscribers: [100], rate: 20, maxInFlight: 1, durationMs: 5000, warmupMs: 1000 },
    connections: { steps: [250, 500, 750, 1000], settleMs: 1000, concurrency: 100 },
    catchup: { changes: 1000, limit: 5000, fillClients: 1, batchSize: 500, fill: 'server', ceiling: true },
  },
  full: {
    workers: 2,
    write: { clients: 4, durationMs: 20_000, warmupMs: 3000, batchSize: 100, singleClients: 2 },
    singles: { clients: [1, 50], durationMs: 15_000, warmupMs: 2000 },
    dblimit: { durationMs: 10_000, writers: 4, batchSize: 100 },
    fanout: { subscribers: [10, 100, 250, 500, 1000, 2000], rate: 20, maxInFlight: 1, durationMs: 15_000, warmupMs: 2000 },
    connections: { steps: [1000, 2500, 5000, 7500, 10_000, 12_500, 15_000], settleMs: 3000, concurrency: 200 },
    catchup: { changes: 100_000, limit: 5000, fillClients: 2, batchSize: 500, fill: 'server', ceiling: true },
  },
};

export const USAGE = `npm run bench -- [--quick | --full | --smoke] [--only=write,fanout,...] [knobs]

Scenarios: ${SCENARIOS.join(', ')}
General:   --workers=N  --out=DIR  --profile  --db-spy  --keep-data  --mongodb-uri=URI  --server=src|dist  --server-root=DIR  --server-env=K=V,K2=V2
Write:     --clients=N --single-clients=N --duration=SECONDS --warmup=SECONDS --batch=N
Singles:   --singles=N[,N...] (concurrent single-change clients per run)
DB limit:  --db-writers=N --db-duration=SECONDS
Fan-out:   --subscribers=N[,N...] --rate=CHANGES_PER_S --inflight=N --fanout-duration=SECONDS
Connect:   --connections=N[,N...] (ramp steps; one number ramps in 4 steps) --settle=SECONDS
Catch-up:  --changes=N --limit=N --catchup-fill=server|direct (direct: written with the driver, same entries) --catchup-ceiling=on|off`;

const list = (v: string) =>
  v
    .split(',')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isFinite(n) && n > 0)
    .map(Math.round);

export function parseOptions(argv: string[], defaultsOut: string): BenchOptions {
  const flags = new Map<string, string>();
  for (const a of argv) {
    if (a === '--') continue;
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/i.exec(a);
    if (!m) throw new Error(`unknown argument "${a}"\n\n${USAGE}`);
    flags.set(m[1], m[2] ?? 'true');
  }
  if (flags.has('help')) throw new Error(USAGE);
  const preset: Exclude<Mode, 'custom'> = flags.has('full') ? 'full' : flags.has('smoke') ? 'smoke' : 'quick';
  const base = structuredClone(PRESETS[preset]);
  const num = (k: string, fallback: number, scale = 1) => {
    const v = flags.get(k);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a number (got "${v}")`);
    return Math.round(n * scale);
  };
  const knobs = [
    'clients',
    'single-clients',
    'duration',
    'warmup',
    'batch',
    'db-writers',
    'db-duration',
    'subscribers',
    'rate',
    'fanout-duration',
    'inflight',
    'connections',
    'settle',
    'changes',
    'limit',
    'workers',
    'singles',
  ];
  const customised = knobs.some((k) => flags.has(k));
  const only = (flags.get('only') ?? SCENARIOS.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--only: unknown scenario "${s}" (one of ${SCENARIOS.join(', ')})`);

  const serverEnv: Record<string, string> = {};
  for (const kv of (flags.get('server-env') ?? '').split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i > 0) serverEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  let steps = base.connections.steps;
  if (flags.has('connections')) {
    const l = list(flags.get('connections')!);
    steps = l.length === 1 ? [1, 2, 3, 4].map((k) => Math.round((l[0] * k) / 4)) : l;
  }
  const o: BenchOptions = {
    mode: customised ? 'custom' : preset,
    only: only as ScenarioName[],
    workers: Math.max(1, num('workers', base.workers)),
    outDir: flags.get('out') ?? defaultsOut,
    profile: flags.has('profile'),
    dbSpy: flags.has('db-spy'),
    keepData: flags.has('keep-data'),
    mongoUri: flags.get('mongodb-uri'),
    serverEnv,
    serverEntry: flags.get('server') === 'dist' ? 'dist' : 'src',
    serverRoot: flags.get('server-root'),
    write: {
      clients: Math.max(1, num('clients', base.write.clients)),
      singleClients: Math.max(1, num('single-clients', flags.has('clients') ? num('clients', 1) : base.write.singleClients)),
      durationMs: num('duration', base.write.durationMs, 1000),
      warmupMs: num('warmup', base.write.warmupMs, 1000),
      batchSize: Math.max(1, num('batch', base.write.batchSize)),
    },
    singles: {
      clients: flags.has('singles') ? [...new Set(list(flags.get('singles')!))] : base.singles.clients,
      durationMs: num('duration', base.singles.durationMs, 1000),
      warmupMs: num('warmup', base.singles.warmupMs, 1000),
    },
    dblimit: {
      durationMs: num('db-duration', base.dblimit.durationMs, 1000),
      writers: Math.max(1, num('db-writers', flags.has('clients') ? num('clients', 1) : base.dblimit.writers)),
      batchSize: Math.max(1, num('batch', base.dblimit.batchSize)),
    },
    fanout: {
      subscribers: flags.has('subscribers') ? list(flags.get('subscribers')!) : base.fanout.subscribers,
      rate: Math.max(1, num('rate', base.fanout.rate)),
      maxInFlight: Math.max(1, num('inflight', base.fanout.maxInFlight)),
      durationMs: num('fanout-duration', base.fanout.durationMs, 1000),
      warmupMs: base.fanout.warmupMs,
    },
    connections: {
      steps: [...new Set(steps)].sort((a, b) => a - b),
      settleMs: num('settle', base.connections.settleMs, 1000),
      concurrency: base.connections.concurrency,
    },
    catchup: {
      changes: Math.max(1, num('changes', base.catchup.changes)),
      limit: Math.max(1, num('limit', base.catchup.limit)),
      fillClients: base.catchup.fillClients,
      batchSize: base.catchup.batchSize,
      fill: flags.get('catchup-fill') === 'direct' ? 'direct' : 'server',
      ceiling: flags.get('catchup-ceiling') !== 'off',
    },
  };
  if (!o.singles.clients.length) throw new Error('--singles: give at least one positive number');
  if (!o.fanout.subscribers.length) throw new Error('--subscribers: give at least one positive number');
  o.fanout.subscribers = [...new Set(o.fanout.subscribers)].sort((a, b) => a - b);
  return o;
}
