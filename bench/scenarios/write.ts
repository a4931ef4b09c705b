/* Scenario 1 — write throughput: N clients in a closed loop (send, await the ack, send again) for a
 * fixed window, first with sync:changeBatch (batches of 100 inserts), then with single sync:change. */
import { Ctx, phaseOf, fmt, Row, ScenarioResult } from '../lib/context';
import { mergeHistograms, summarize } from '../lib/hist';
import { connectSpread, split } from '../lib/pool';

export const WRITE_DATABASE = 'bench_write';
export const WRITE_COLLECTION = 'tasks';

export async function runWrite(ctx: Ctx): Promise<Omit<ScenarioResult, 'elapsedS'>> {
  const o = ctx.opts.write;
  const server = await ctx.startServer(WRITE_DATABASE);
  const rows: Row[] = [];
  const figures: Record<string, unknown> = {};
  const phases: ScenarioResult['phases'] = {};
  const notes: string[] = [];
  try {
    const nClients = Math.max(o.clients, o.singleClients);
    await connectSpread(ctx.pool, { url: server.url, count: nClients, prefix: (i) => `writer-${i}-`, concurrency: 50, what: 'writers' });

    for (const mode of ['batch', 'single'] as const) {
      const clients = split(mode === 'batch' ? o.clients : o.singleClients, ctx.pool.clients.length);
      const startAt = Date.now() + 300 + o.warmupMs;
      const endAt = startAt + o.durationMs;
      ctx.log(
        `  ${mode === 'batch' ? `sync:changeBatch (${o.batchSize} per batch)` : 'sync:change'}: ${clients.reduce((a, b) => a + b, 0)} clients, ${o.durationMs / 1000} s after ${o.warmupMs / 1000} s warm-up`,
      );
      const obs = await ctx.observe(server, `write-${mode}`, { startAt, endAt }, () =>
        ctx.pool.all<{ acked: number; failed: number; requests: number; codes: Record<string, number>; hist: string }>('write', (i) =>
          clients[i] ? { mode, clients: clients[i], startAt, endAt, batchSize: o.batchSize, collection: WRITE_COLLECTION, tag: `${mode}` } : null,
        ),
      );
      const res = obs.value.filter(Boolean);
      const acked = res.reduce((s, r) => s + r.acked, 0);
      const failed = res.reduce((s, r) => s + r.failed, 0);
      const requests = res.reduce((s, r) => s + r.requests, 0);
      const codes: Record<string, number> = {};
      for (const r of res) for (const [k, v] of Object.entries(r.codes)) codes[k] = (codes[k] ?? 0) + v;
      const lat = summarize(mergeHistograms(res.map((r) => r.hist)));
      const perS = acked / (o.durationMs / 1000);
      // the write path's cost grows with the feed on some databases: say how large it was
      const feedAtEnd = Number((await server.stats().catch(() => undefined))?.syncedChanges ?? NaN);
      figures[mode] = {
        clients: clients.reduce((a, b) => a + b, 0),
        changesPerS: Math.round(perS),
        requestsPerS: Math.round(requests / (o.durationMs / 1000)),
        acked,
        failed,
        failureCodes: codes,
        ackLatencyMs: lat,
        changesAppliedSinceStart: Number.isFinite(feedAtEnd) ? feedAtEnd : null,
      };
      phases[`write-${mode}`] = phaseOf(obs);
      const label = mode === 'batch' ? `changeBatch×${o.batchSize}` : 'single change';
      rows.push({ metric: `${label}: acked changes/s`, value: fmt(perS) });
      rows.push({ metric: `${label}: ack latency p50 / p95 / p99`, value: `${fmt(lat.p50)} / ${fmt(lat.p95)} / ${fmt(lat.p99)}`, unit: 'ms' });
      if (Number.isFinite(feedAtEnd)) rows.push({ metric: `${label}: changes in the feed at the end`, value: fmt(feedAtEnd) });
      rows.push({
        metric: `${label}: CPU server / database / generator`,
        value: `${obs.cpu.server ?? '?'} / ${obs.cpu.database ?? '?'} / ${obs.cpu.generator ?? '?'}`,
        unit: '% of a core',
      });
      if (failed) {
        rows.push({ metric: `${label}: failed changes`, value: failed });
        notes.push(`${label}: ${failed} changes failed (${JSON.stringify(codes)})`);
      }
    }
    ctx.shared.write = {
      batchChangesPerS: (figures.batch as { changesPerS: number }).changesPerS,
      singleChangesPerS: (figures.single as { changesPerS: number }).changesPerS,
      database: WRITE_DATABASE,
    };
  } finally {
    await ctx.pool.all('disconnect', {});
    await server.stop();
  }
  return {
    name: 'write',
    title: 'Write throughput (closed loop, acked)',
    params: { ...o },
    figures,
    rows,
    notes,
    phases,
  };
}
