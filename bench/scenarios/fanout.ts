/* Scenario 3 — fan-out latency: S subscribers on one collection, one writer process sending single
 * sync:change at a fixed rate, open loop, from one socket or round-robin from `--writers` sockets. Each change carries the writer's wall-clock
 * emit time (performance.timeOrigin + performance.now(), sub-millisecond, shared by all processes of
 * the machine); each subscriber records receipt − emit. The figure includes the server's write path
 * (the change is broadcast once applied), so the writer's ack latency is reported alongside. */
import { Ctx, phaseOf, fmt, Row, ScenarioResult } from '../lib/context';
import { createHistogram, mergeHistograms, recordMs, summarize, LatencySummary } from '../lib/hist';
import { connectSpread } from '../lib/pool';

export const FANOUT_COLLECTION = 'fanout';

export interface FanoutPoint {
  subscribers: number;
  targetRate: number;
  achievedRate: number;
  expected: number;
  delivered: number;
  deliveriesPerS: number;
  /** Deliveries per second of server CPU (its CPU share over the window; the write path included). */
  deliveriesPerServerCpuS: number | null;
  latencyMs: LatencySummary;
  /** Per change, last − first subscriber receipt. */
  spreadMs: LatencySummary;
  writerAckMs: LatencySummary;
  writerFailed: number;
  saturated: boolean;
  cpu: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runFanout(ctx: Ctx): Promise<Omit<ScenarioResult, 'elapsedS'>> {
  const o = ctx.opts.fanout;
  const points: FanoutPoint[] = [];
  const rows: Row[] = [];
  const phases: ScenarioResult['phases'] = {};
  const notes: string[] = [];
  for (const S of o.subscribers) {
    // a fresh server and database per point: the write path's cost grows with the feed on some
    // databases, and each point should measure the same write path
    const server = await ctx.startServer(`bench_fanout_${S}`);
    try {
      const subscribe = (await ctx.subscriptions(server)) ? { collection: FANOUT_COLLECTION } : null;
      ctx.log(
        `  ${S} subscribers, ${o.writers > 1 ? `${o.writers} writers` : 'writer'} at ${o.rate} changes/s (at most ${o.maxInFlight} in flight${o.batch > 1 ? `, batches of ${o.batch}` : ''}) for ${o.durationMs / 1000} s`,
      );
      const perWorker = await connectSpread(ctx.pool, {
        url: server.url,
        count: S,
        prefix: (i) => `sub-${S}-${i}-`,
        concurrency: 100,
        what: 'subscribers',
        subscribe,
      });
      await ctx.pool.writer.call('connect', { url: server.url, count: o.writers, userPrefix: `fanwriter-${S}-`, offset: 0, concurrency: 10, subscribe: null });
      const tag = `f${S}-${Date.now().toString(36)}`;
      await ctx.pool.all('listen', (i) => (perWorker[i] ? { tag } : null));
      const warmupAt = Date.now() + 300;
      const startAt = warmupAt + o.warmupMs;
      const endAt = startAt + o.durationMs;
      const obs = await ctx.observe(server, `fanout-${S}`, { startAt, endAt }, () =>
        ctx.pool.writer.call<{ sent: number; acked: number; failed: number; codes: Record<string, number>; hist: string; maxInFlight: number }>('writeRate', {
          rate: o.rate,
          warmupAt,
          startAt,
          endAt,
          collection: FANOUT_COLLECTION,
          tag,
          batch: o.batch,
          maxInFlight: o.maxInFlight,
        }),
      );
      const w = obs.value;
      const expected = w.acked * S;
      // let the last deliveries arrive: stop when all are in or nothing moved for 3 s
      let delivered = 0;
      let last = -1;
      let still = 0;
      let reports: { received: number; hist: string; spans: [number, number, number][]; minPerSocket: number; maxPerSocket: number; foreign: number }[] = [];
      for (let waited = 0; waited < 60_000; waited += 250) {
        reports = (await ctx.pool.all('listenReport', (i) => (perWorker[i] ? {} : null))).filter(Boolean);
        delivered = reports.reduce((s, r) => s + r.received, 0);
        if (delivered >= expected) break;
        still = delivered === last ? still + 250 : 0;
        if (still >= 3000) break;
        last = delivered;
        await sleep(250);
      }
      const latency = summarize(mergeHistograms(reports.map((r) => r.hist)));
      // broadcast spread: first to last subscriber receipt of the same change (the server's fan-out
      // work once the change is applied, plus the generator's share of the wait)
      const span = new Map<number, [number, number]>();
      for (const r of reports)
        for (const [q, first, last] of r.spans ?? []) {
          const cur = span.get(q);
          if (!cur) span.set(q, [first, last]);
          else span.set(q, [Math.min(cur[0], first), Math.max(cur[1], last)]);
        }
      const spreadHist = createHistogram();
      for (const [first, last] of span.values()) recordMs(spreadHist, last - first);
      const spread = summarize(spreadHist);
      const writerAck = summarize(mergeHistograms([w.hist]));
      const achievedRate = w.acked / (o.durationMs / 1000);
      const saturated = delivered < expected || latency.p99 > 1000;
      if (achievedRate < o.rate * 0.95)
        notes.push(
          `S=${S}: the writer reached ${fmt(achievedRate)} of ${o.rate} changes/s (at most ${o.maxInFlight} change(s) in flight: the write path is the limit)`,
        );
      const point: FanoutPoint = {
        subscribers: S,
        targetRate: o.rate,
        achievedRate: Math.round(achievedRate),
        expected,
        delivered,
        deliveriesPerS: Math.round(delivered / (o.durationMs / 1000)),
        deliveriesPerServerCpuS: obs.cpu.server ? Math.round(delivered / (o.durationMs / 1000) / (obs.cpu.server / 100)) : null,
        latencyMs: latency,
        spreadMs: spread,
        writerAckMs: writerAck,
        writerFailed: w.failed,
        saturated,
        cpu: obs.cpu,
      };
      points.push(point);
      phases[`fanout-${S}`] = phaseOf(obs);
      rows.push({
        metric: `S=${S}: delivery latency p50 / p99 / max`,
        value: `${fmt(latency.p50)} / ${fmt(latency.p99)} / ${fmt(latency.max)}`,
        unit: 'ms',
      });
      rows.push({ metric: `S=${S}: writer ack p50 / p99`, value: `${fmt(writerAck.p50)} / ${fmt(writerAck.p99)}`, unit: 'ms' });
      rows.push({ metric: `S=${S}: spread, first → last subscriber, p50 / p99`, value: `${fmt(spread.p50)} / ${fmt(spread.p99)}`, unit: 'ms' });
      rows.push({
        metric: `S=${S}: changes/s sent, deliveries/s, delivered`,
        value: `${fmt(achievedRate)} / ${fmt(point.deliveriesPerS)} / ${expected ? ((delivered / expected) * 100).toFixed(1) : '0'}%`,
      });
      rows.push({
        metric: `S=${S}: deliveries per second of server CPU`,
        value: point.deliveriesPerServerCpuS === null ? '?' : fmt(point.deliveriesPerServerCpuS),
      });
      rows.push({
        metric: `S=${S}: CPU server / database / generator`,
        value: `${obs.cpu.server ?? '?'} / ${obs.cpu.database ?? '?'} / ${obs.cpu.generator ?? '?'}`,
        unit: '% of a core',
      });
      if (saturated) notes.push(`S=${S}: saturated (delivered ${delivered}/${expected}, p99 ${fmt(latency.p99)} ms)`);
      if (w.failed) notes.push(`S=${S}: ${w.failed} writer changes failed ${JSON.stringify(w.codes)}`);
    } finally {
      await ctx.pool.all('disconnect', {}, undefined, ctx.pool.workers).catch(() => undefined);
      await server.stop();
    }
    if (server.crash) break;
  }
  return {
    name: 'fanout',
    title: 'Fan-out latency (writer emit → subscriber receipt)',
    params: { ...o },
    figures: { points },
    rows,
    notes,
    phases,
  };
}
