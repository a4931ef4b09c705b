/* Scenario — single changes: `sync:change` one at a time in a closed loop (send, await the ack, send
 * again), first from one client (the ack latency a user feels at low load), then from many concurrent
 * clients (what group commit and the write path give under load). Each client writes its own
 * documents, so the figures measure the write path, not conflicts. */
import { Ctx, phaseOf, fmt, Row, ScenarioResult } from '../lib/context';
import { mergeHistograms, summarize } from '../lib/hist';
import { connectSpread, split } from '../lib/pool';

export const SINGLES_DATABASE = 'bench_singles';
const COLLECTION = 'tasks';

export async function runSingles(ctx: Ctx): Promise<Omit<ScenarioResult, 'elapsedS'>> {
  const o = ctx.opts.singles;
  const server = await ctx.startServer(SINGLES_DATABASE);
  const rows: Row[] = [];
  const figures: Record<string, unknown> = {};
  const phases: ScenarioResult['phases'] = {};
  const notes: string[] = [];
  try {
    const most = Math.max(...o.clients);
    await connectSpread(ctx.pool, { url: server.url, count: most, prefix: (i) => `single-${i}-`, concurrency: 50, what: 'clients' });

    for (const n of o.clients) {
      const clients = split(n, ctx.pool.clients.length);
      const startAt = Date.now() + 300 + o.warmupMs;
      const endAt = startAt + o.durationMs;
      ctx.log(`  sync:change from ${n} concurrent client(s): ${o.durationMs / 1000} s after ${o.warmupMs / 1000} s warm-up`);
      const obs = await ctx.observe(server, `singles-${n}`, { startAt, endAt }, () =>
        ctx.pool.all<{ acked: number; failed: number; requests: number; codes: Record<string, number>; hist: string }>('write', (i) =>
          clients[i] ? { mode: 'single', clients: clients[i], startAt, endAt, batchSize: 1, collection: COLLECTION, tag: `singles${n}` } : null,
        ),
      );
      const res = obs.value.filter(Boolean);
      const acked = res.reduce((s, r) => s + r.acked, 0);
      const failed = res.reduce((s, r) => s + r.failed, 0);
      const codes: Record<string, number> = {};
      for (const r of res) for (const [k, v] of Object.entries(r.codes)) codes[k] = (codes[k] ?? 0) + v;
      const lat = summarize(mergeHistograms(res.map((r) => r.hist)));
      const perS = acked / (o.durationMs / 1000);
      figures[`clients${n}`] = { clients: n, changesPerS: Math.round(perS), acked, failed, failureCodes: codes, ackLatencyMs: lat, cpu: obs.cpu };
      phases[`singles-${n}`] = phaseOf(obs);
      rows.push({ metric: `${n} client(s): acked changes/s`, value: fmt(perS) });
      rows.push({ metric: `${n} client(s): ack latency p50 / p95 / p99`, value: `${fmt(lat.p50)} / ${fmt(lat.p95)} / ${fmt(lat.p99)}`, unit: 'ms' });
      rows.push({
        metric: `${n} client(s): CPU server / database / generator`,
        value: `${obs.cpu.server ?? '?'} / ${obs.cpu.database ?? '?'} / ${obs.cpu.generator ?? '?'}`,
        unit: '% of a core',
      });
      if (failed) {
        rows.push({ metric: `${n} client(s): failed changes`, value: failed });
        notes.push(`${n} client(s): ${failed} changes failed (${JSON.stringify(codes)})`);
      }
    }
  } finally {
    await ctx.pool.all('disconnect', {});
    await server.stop();
  }
  return { name: 'singles', title: 'Single changes: low-load latency and many concurrent clients', params: { ...o }, figures, rows, notes, phases };
}
