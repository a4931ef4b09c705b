import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { MetricsService } from '../health/metrics.service';

/** One point of the console's charts. */
export interface ConsoleSample {
  t: number;
  connections: number;
  users: number;
  changesPerSecond: number;
  deliveriesPerSecond: number;
  rejectedPerSecond: number;
  /** Apply latency (one change or one batch, until its acks) over the interval, in ms; null when idle. */
  p50: number | null;
  p99: number | null;
}

export const SAMPLE_INTERVAL_MS = 2000;
/** Ten minutes of history. */
export const SAMPLE_CAPACITY = 300;

interface Totals {
  t: number;
  received: number;
  delivered: number;
  rejected: number;
  buckets: Map<number, number>;
}

/** Estimates a quantile from cumulative histogram buckets (upper bounds in s), linear inside a bucket. */
export function quantileFromBuckets(buckets: [number, number][], q: number): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe * 1000;
      const inBucket = count - prevCount;
      const frac = inBucket > 0 ? (rank - prevCount) / inBucket : 1;
      return (prevLe + (le - prevLe) * frac) * 1000;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe * 1000;
}

/**
 * Samples the server's own counters every 2 s into a ring of ten minutes, so the console shows the
 * last minutes as soon as it opens. Reads prom-client counters only: nothing on the write path.
 */
@Injectable()
export class ConsoleSampler implements OnModuleInit, OnModuleDestroy {
  private readonly ring: ConsoleSample[] = [];
  private last?: Totals;
  private timer?: NodeJS.Timeout;

  constructor(private readonly metrics: MetricsService) {}

  onModuleInit(): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
  }

  history(): ConsoleSample[] {
    return [...this.ring];
  }

  latest(): ConsoleSample | undefined {
    return this.ring[this.ring.length - 1];
  }

  private async totals(): Promise<Totals> {
    const sum = async (m: { get(): Promise<{ values: { value: number }[] }> }) => (await m.get()).values.reduce((s, v) => s + v.value, 0);
    const buckets = new Map<number, number>();
    for (const v of (await this.metrics.applyDuration.get()).values) {
      if (!String(v.metricName).endsWith('_bucket')) continue;
      const raw = (v.labels as Record<string, string | number | undefined>).le;
      const le = raw === '+Inf' ? Infinity : Number(raw);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    }
    return {
      t: Date.now(),
      received: await sum(this.metrics.changesReceived),
      delivered: await sum(this.metrics.changesDelivered),
      rejected: await sum(this.metrics.changesRejected),
      buckets,
    };
  }

  /** Takes one sample (public for tests and for the first answer before the timer ticks). */
  async sample(): Promise<void> {
    const now = await this.totals();
    const prev = this.last;
    this.last = now;
    if (!prev) return;
    const secs = Math.max((now.t - prev.t) / 1000, 0.001);
    const delta: [number, number][] = [...now.buckets].map(([le, c]) => [le, c - (prev.buckets.get(le) ?? 0)]);
    this.ring.push({
      t: now.t,
      connections: await this.gauge(this.metrics.activeConnections),
      users: await this.gauge(this.metrics.activeUsers),
      changesPerSecond: round((now.received - prev.received) / secs),
      deliveriesPerSecond: round((now.delivered - prev.delivered) / secs),
      rejectedPerSecond: round((now.rejected - prev.rejected) / secs),
      p50: roundOrNull(quantileFromBuckets(delta, 0.5)),
      p99: roundOrNull(quantileFromBuckets(delta, 0.99)),
    });
    if (this.ring.length > SAMPLE_CAPACITY) this.ring.shift();
  }

  private async gauge(m: MetricsService['activeConnections']): Promise<number> {
    return (await m.get()).values.reduce((s, v) => s + v.value, 0);
  }
}

const round = (v: number) => Math.round(v * 100) / 100;
const roundOrNull = (v: number | null) => (v === null ? null : round(v));
