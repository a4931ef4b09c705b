/* Scenario 4 — connections: ramps idle sockets (connected, joined, subscribed when the server can)
 * in steps, and after each step reads the server's memory after a full GC (through the harness's
 * probe) and its /stats. Memory per connection is the least-squares slope over the steps. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { heapByClass, HeapClass, heapDiffPer } from '../lib/heap';
import { Ctx, phaseOf, fmt, kb, mb, Row, ScenarioResult } from '../lib/context';
import { mergeHistograms, summarize } from '../lib/hist';
import { split } from '../lib/pool';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Step {
  connections: number;
  active: number;
  rss: number;
  heapUsed: number;
  external: number;
  statsRss?: number;
  statsHeapUsed?: number;
  rampPerS: number;
  connectJoinMs: ReturnType<typeof summarize>;
  failed: number;
}

function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den ? num / den : 0;
}

export async function runConnections(ctx: Ctx): Promise<Omit<ScenarioResult, 'elapsedS'>> {
  const o = ctx.opts.connections;
  const server = await ctx.startServer('bench_connections');
  const rows: Row[] = [];
  const notes: string[] = [];
  const steps: Step[] = [];
  const phases: ScenarioResult['phases'] = {};
  const workers = ctx.pool.workers;
  try {
    const subscribe = (await ctx.subscriptions(server)) ? { collection: 'idle' } : null;
    await sleep(o.settleMs);
    const base = await server.memory(true);
    const baseStats = await server.stats();
    // with --profile: heap snapshots after the first and the last step say what a connection is made of
    const heapDir = path.join(ctx.tmpDir, 'heap');
    let heapBefore: Map<string, HeapClass> | undefined;
    let heapPerConnection: ReturnType<typeof heapDiffPer> | undefined;
    let heapFirst: { classes: Map<string, HeapClass>; held: number } | undefined;
    if (ctx.opts.profile) {
      fs.mkdirSync(heapDir, { recursive: true });
      await server.heapSnapshot(path.join(heapDir, 'rest.heapsnapshot'));
      heapBefore = heapByClass(path.join(heapDir, 'rest.heapsnapshot'));
    }
    let held = 0;
    const offsets = workers.map(() => 0);
    const obs = await ctx.observe(server, 'connections', null, async () => {
      for (const target of o.steps) {
        const delta = target - held;
        if (delta <= 0) continue;
        const per = split(delta, workers.length);
        const t0 = Date.now();
        const res = await ctx.pool.all<{ connected: number; failed: number; errors: Record<string, number>; hist: string }>(
          'connect',
          (i) => {
            if (!per[i]) return null;
            const a = {
              url: server.url,
              count: per[i],
              userPrefix: `idle-${i}-`,
              offset: offsets[i],
              concurrency: Math.max(1, Math.round(o.concurrency / workers.length)),
              subscribe,
            };
            offsets[i] += per[i];
            return a;
          },
          undefined,
          workers,
        );
        const took = (Date.now() - t0) / 1000;
        const ok = res.filter(Boolean);
        const connected = ok.reduce((s, r) => s + r.connected, 0);
        const failed = ok.reduce((s, r) => s + r.failed, 0);
        held += connected;
        if (failed) {
          const errors: Record<string, number> = {};
          for (const r of ok) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
          notes.push(`step ${target}: ${failed} sockets failed to connect/join: ${JSON.stringify(errors).slice(0, 300)}`);
        }
        await sleep(o.settleMs);
        const mem = await server.memory(true);
        const stats = await server.stats().catch(() => undefined);
        const step: Step = {
          connections: held,
          active: Number(stats?.activeConnections ?? NaN),
          rss: mem.rss,
          heapUsed: mem.heapUsed,
          external: mem.external,
          statsRss: stats?.memory?.rss,
          statsHeapUsed: stats?.memory?.heapUsed,
          rampPerS: Math.round(connected / took),
          connectJoinMs: summarize(mergeHistograms(ok.map((r) => r.hist))),
          failed,
        };
        steps.push(step);
        if (heapBefore && held > 0 && target === o.steps[o.steps.length - 1]) {
          // the last step against the first: what one more connection costs, without the code compiled and the
          // caches filled by the first connections
          const f = path.join(heapDir, `${held}.heapsnapshot`);
          await server.heapSnapshot(f);
          const from = heapFirst ?? { classes: heapBefore, held: 0 };
          const after = heapByClass(f);
          const all = heapDiffPer(from.classes, after, held - from.held, Infinity, true);
          heapPerConnection = all.slice(0, 20);
          const total = all.filter((h) => h.name !== '(code)').reduce((n, h) => n + h.bytesPer, 0);
          ctx.log(
            `    heap per connection by kind, ${from.held} → ${held} sockets (bytes, objects; all kinds but compiled code: ${total} B): ${heapPerConnection
              .map((h) => `${h.name} ${h.bytesPer} B ×${h.countPer}`)
              .join(', ')}`,
          );
          if (process.env.BENCH_KEEP_HEAP) fs.copyFileSync(f, process.env.BENCH_KEEP_HEAP);
          fs.rmSync(heapDir, { recursive: true, force: true });
        } else if (heapBefore && !heapFirst && held > 0) {
          const f = path.join(heapDir, `${held}.heapsnapshot`);
          await server.heapSnapshot(f);
          heapFirst = { classes: heapByClass(f), held };
          fs.rmSync(f, { force: true });
        }
        ctx.log(
          `    ${held} sockets (server sees ${step.active}): RSS ${mb(mem.rss)} MB, heap ${mb(mem.heapUsed)} MB, ramp ${step.rampPerS}/s, connect+join p99 ${fmt(step.connectJoinMs.p99)} ms`,
        );
        if (failed > delta / 2) {
          notes.push(`stopped the ramp at ${held}: most sockets of the last step failed`);
          break;
        }
      }
    });
    phases.connections = phaseOf(obs);
    const xs = [0, ...steps.map((s) => s.connections)];
    const rssSlope = slope(xs, [base.rss, ...steps.map((s) => s.rss)]);
    const heapSlope = slope(xs, [base.heapUsed, ...steps.map((s) => s.heapUsed)]);
    const extSlope = slope(xs, [base.external, ...steps.map((s) => s.external)]);
    const top = steps[steps.length - 1];
    if (top) {
      rows.push({ metric: 'sockets held (connected + joined' + (subscribe ? ' + subscribed)' : ')'), value: fmt(top.connections) });
      rows.push({ metric: 'server RSS at the top / at rest', value: `${mb(top.rss)} / ${mb(base.rss)}`, unit: 'MB' });
      rows.push({ metric: 'server heap used (after GC) at the top / at rest', value: `${mb(top.heapUsed)} / ${mb(base.heapUsed)}`, unit: 'MB' });
      rows.push({ metric: 'RSS per connection (slope)', value: fmt(kb(rssSlope)), unit: 'KB' });
      rows.push({ metric: 'heap per connection (slope, after GC)', value: fmt(kb(heapSlope)), unit: 'KB' });
      rows.push({ metric: 'ramp rate (last step)', value: fmt(top.rampPerS), unit: 'sockets/s' });
      rows.push({
        metric: 'connect + join (+ subscribe) p50 / p99 (last step)',
        value: `${fmt(top.connectJoinMs.p50)} / ${fmt(top.connectJoinMs.p99)}`,
        unit: 'ms',
      });
    }
    return {
      name: 'connections',
      title: 'Idle connections: memory per socket',
      params: { ...o, subscribed: !!subscribe },
      figures: {
        subscribed: !!subscribe,
        base: { rss: base.rss, heapUsed: base.heapUsed, external: base.external, statsRss: baseStats?.memory?.rss, statsHeapUsed: baseStats?.memory?.heapUsed },
        steps,
        perConnectionBytes: { rss: Math.round(rssSlope), heapUsed: Math.round(heapSlope), external: Math.round(extSlope) },
        ...(heapPerConnection ? { heapPerConnectionByKind: heapPerConnection } : {}),
      },
      rows,
      notes,
      phases,
    };
  } finally {
    await ctx.pool.all('disconnect', {}, undefined, workers).catch(() => undefined);
    await server.stop(30_000);
  }
}
